"""Where a ``--report FILE`` goes: checked before a long run starts (a drill must not find out at
its end that its page cannot be written), then written without clobbering what is there unless
``--overwrite`` was given."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from .errors import KruisectlError


def check(path: str, overwrite: bool) -> None:
    """KruisectlError (one line) unless ``path`` can be written: not a directory, its directory there and
    writable, not existing unless ``overwrite``. Tried, not guessed from mode bits (root)."""
    target = Path(path)
    if not path:
        raise KruisectlError("--report: an empty path; name a file")
    if target.is_dir():
        raise KruisectlError(f"--report {path}: is a directory; name a file")
    if target.exists() or target.is_symlink():
        if not overwrite:
            raise KruisectlError(f"--report {path}: exists (--overwrite replaces it)")
        try:
            with open(target, "ab"):
                pass
        except OSError as err:
            raise KruisectlError(f"--report {path}: cannot be written ({err.strerror or err})") from None
        return
    if not target.parent.is_dir():
        raise KruisectlError(f"--report {path}: no directory {target.parent}")
    try:
        os.close(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
        os.unlink(target)
    except OSError as err:
        raise KruisectlError(f"--report {path}: cannot be written ({err.strerror or err})") from None


def write(path: str, text: str, overwrite: bool) -> None:
    """The whole file or nothing: written beside it, then moved in place (``overwrite``) or
    linked there only if the name is still free."""
    target = Path(path)
    try:
        fd, temporary = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(text)
            os.chmod(temporary, 0o644)
            if overwrite:
                os.replace(temporary, target)
            else:
                os.link(temporary, target)
        finally:
            if os.path.exists(temporary):
                os.unlink(temporary)
    except FileExistsError:
        raise KruisectlError(f"--report {path}: appeared during the run (--overwrite replaces it); not written") from None
    except OSError as err:
        raise KruisectlError(f"--report {path}: cannot be written ({err.strerror or err})") from None
