"""The kruise-manager container image, built without a container daemon (``make image``).

The recipe, in the same steps as the ``Dockerfile`` (which a test builds with buildah, so the
two cannot drift apart):

1. *runtime base*: a minimal Debian (``mmdebstrap --variant=custom``) with Debian's python3 and
   the user 65532; no apt, no pip, no compiler.
2. *build base*: the same plus Debian's pip. In a chroot of it, pip installs the locked
   dependencies (``requirements-lock.txt``, hashes checked, wheels only) and then the project
   into an empty ``/usr/local``, offline from a wheelhouse downloaded beforehand.
3. The image: the runtime base as one layer, that ``/usr/local`` as the second (umoci), with
   the entrypoint, user, ports and OCI labels; skopeo writes ``dist/kruise-manager-<version>
   .oci.tar`` (OCI archive) and ``dist/kruise-manager-<version>.docker.tar`` (docker-archive:
   ``docker load``, ``kind load image-archive``, ``ctr images import``).

Each step is cached under ``.cache/image/`` by a hash of its inputs (the recipe, the package
set, the lock, the sources); only labelling the result with the checkout's revision runs every
time. The Debian steps need root (mmdebstrap's root mode, chroot).
"""

from __future__ import annotations

import ast
import contextlib
import fcntl
import gzip
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from .build import CACHE_DIR, REPO_ROOT

IMAGE_CACHE = CACHE_DIR / "image"
DIST_DIR = REPO_ROOT / "dist"
NAME = "kruisectl/kruise-manager"
SUITE = "bookworm"
PYTHON = "3.11"  # Debian bookworm's python3: the wheels are chosen for it
GLIBC_MINOR = 36  # bookworm's glibc 2.36: manylinux wheels up to manylinux_2_36
USER = "65532:65532"
ENTRYPOINT = ["kruise-manager"]
PORTS = ("9876/tcp", "8000/tcp", "8080/tcp")
ENV = ("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "PYTHONDONTWRITEBYTECODE=1",
       "PYTHONUNBUFFERED=1")
# What the image holds from Debian: python3 and what dpkg needs to configure it.
RUNTIME_PACKAGES = ("base-files", "base-passwd", "dash", "coreutils", "diffutils", "findutils", "grep", "sed",
                    "mawk", "libc-bin", "dpkg", "python3")
# The build base is Debian's essential set (pip pulls in debconf, which needs its perl) plus pip.
BUILD_PACKAGES = ("python3", "python3-pip")
DPKG_EXCLUDES = ("/usr/share/man/*", "/usr/share/info/*", "/usr/share/locale/*", "/usr/share/doc/*",
                 "/usr/share/lintian/*")
NONROOT_PASSWD = "nonroot:x:65532:65532:nonroot:/nonexistent:/usr/sbin/nologin"
NONROOT_GROUP = "nonroot:x:65532:"
# The project's files that go into the image (the Dockerfile COPYs the same).
SOURCES = ("pyproject.toml", "README.md", "kruisectl", "manager", "kubekit")
LOCK = "requirements-lock.txt"
# The install steps, run in the build base with /src the sources and /usr/local empty; the
# Dockerfile's build stage runs these same lines (a unit test checks it).
INSTALL_STEPS = (
    "python3 -m pip install --require-hashes --only-binary=:all: -r /src/requirements-lock.txt",
    "python3 -m pip install --no-deps /src",
)
PIP_ENV = {"PIP_NO_CACHE_DIR": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_BREAK_SYSTEM_PACKAGES": "1",
           "PIP_ROOT_USER_ACTION": "ignore"}
TOOLS = {"mmdebstrap": "mmdebstrap", "umoci": "umoci", "skopeo": "skopeo"}  # command -> Debian package
# Never in the image: compilers, package managers and their caches.
FORBIDDEN = (
    re.compile(r"^usr/bin/(gcc|cc|c\+\+|g\+\+|clang|ld|as|make)(-[0-9.]+)?$"),
    re.compile(r"^usr/(local/)?bin/pip[0-9.]*$"),
    re.compile(r"^usr/(local/)?lib/python3[^/]*/(dist|site)-packages/pip/"),
    re.compile(r"^var/cache/apt/.+\.deb$"),
    re.compile(r"^var/lib/apt/lists/.+"),
    re.compile(r"^(root|nonexistent|home/[^/]+)/\.cache/"),
    re.compile(r"(^|/)\.cache/pip/"),
    re.compile(r"^tmp/.+"),
)


class ImageError(RuntimeError):
    """The image cannot be built here; the message says why (and what to install)."""


@dataclass
class Built:
    """A finished image: its archives and what was measured on the way."""

    oci_archive: Path
    docker_archive: Path
    version: str
    revision: str
    key: str
    steps: dict[str, float] = field(default_factory=dict)  # step -> seconds (0 when cached)

    @property
    def reference(self) -> str:
        return f"{NAME}:{self.version}"


# ---- inputs ------------------------------------------------------------------------------
def project_version(root: Path = REPO_ROOT) -> str:
    """kruisectl.__version__ of the checkout at ``root``, read without importing it (the
    project's one version: pyproject.toml takes it from there too)."""
    return version_of(root / "kruisectl" / "__init__.py")


def version_of(module: Path) -> str:
    for node in ast.parse(module.read_text()).body:
        if isinstance(node, ast.Assign) and [getattr(t, "id", None) for t in node.targets] == ["__version__"]:
            return ast.literal_eval(node.value)
    raise ImageError(f"{module} sets no __version__")


def build_requires(root: Path = REPO_ROOT) -> list[str]:
    return list(tomllib.loads((root / "pyproject.toml").read_text())["build-system"]["requires"])


def source_files(root: Path = REPO_ROOT) -> list[Path]:
    """The files the image is built from, relative to ``root``, sorted (no bytecode)."""
    files = []
    for name in SOURCES + (LOCK,):
        path = root / name
        if path.is_file():
            files.append(Path(name))
            continue
        for found in path.rglob("*"):
            if found.is_file() and "__pycache__" not in found.parts and not found.name.endswith(".pyc"):
                files.append(found.relative_to(root))
    return sorted(files)


def _digest(*parts: object) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part if isinstance(part, bytes) else json.dumps(part, sort_keys=True).encode())
        digest.update(b"\0")
    return digest.hexdigest()[:16]


def base_key(packages: tuple[str, ...]) -> str:
    """A base is what its mmdebstrap command line says (the Debian archive moving on is not
    seen: ``rm -r .cache/image`` for a fresh one)."""
    return _digest("base", _mmdebstrap_argv(packages, Path("TARGET"), packages == RUNTIME_PACKAGES))


def wheels_key(root: Path = REPO_ROOT) -> str:
    return _digest("wheels", PYTHON, GLIBC_MINOR, (root / LOCK).read_bytes(), build_requires(root))


def app_key(root: Path = REPO_ROOT) -> str:
    digest = hashlib.sha256()
    for relative in source_files(root):
        digest.update(relative.as_posix().encode() + b"\0" + (root / relative).read_bytes() + b"\0")
    return _digest("app", base_key(RUNTIME_PACKAGES), base_key(BUILD_PACKAGES), wheels_key(root),
                   digest.hexdigest(), Path(__file__).read_bytes())


def revision(root: Path = REPO_ROOT) -> str:
    """The commit the sources are from (``+dirty`` when they differ from it), else ``unknown``."""
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                              check=True).stdout.strip()
        status = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--", *SOURCES, LOCK],
                                capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+dirty" if status else "")


def source_url(root: Path = REPO_ROOT) -> str:
    """Where the sources come from: the checkout's ``origin`` remote, else the checkout."""
    try:
        url = subprocess.run(["git", "-C", str(root), "remote", "get-url", "origin"], capture_output=True,
                             text=True, check=True).stdout.strip()
        if url:
            return url
    except (OSError, subprocess.CalledProcessError):
        pass
    return root.resolve().as_uri()


def source_date_epoch(root: Path = REPO_ROOT) -> int:
    """The build's timestamp: the last commit's, so the same commit builds the same bytes."""
    if os.environ.get("SOURCE_DATE_EPOCH", "").isdigit():
        return int(os.environ["SOURCE_DATE_EPOCH"])
    try:
        return int(subprocess.run(["git", "-C", str(root), "log", "-1", "--format=%ct"], capture_output=True,
                                  text=True, check=True).stdout.strip())
    except (OSError, subprocess.CalledProcessError, ValueError):
        return 0


def labels(version: str, revision_: str, source: str, created: str) -> dict[str, str]:
    return {"org.opencontainers.image.title": "kruise-manager",
            "org.opencontainers.image.description": "kruisectl's packaged kruise-manager: webhook and "
                                                    "leader-elected SidecarSet controller",
            "org.opencontainers.image.version": version, "org.opencontainers.image.revision": revision_,
            "org.opencontainers.image.source": source, "org.opencontainers.image.created": created,
            "org.opencontainers.image.licenses": "Apache-2.0"}


def manylinux_platforms() -> list[str]:
    """pip's ``--platform`` values that bookworm's glibc runs (pip does not expand them)."""
    return [f"manylinux_2_{minor}_x86_64" for minor in range(GLIBC_MINOR, 16, -1)] + [
        "manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64"]


def missing_tools(tools=TOOLS) -> list[str]:
    """The Debian packages of the tools that are not on PATH."""
    return sorted({package for command, package in tools.items() if not shutil.which(command)})


def unavailable() -> str | None:
    """None when ``make image`` can run here, else why not."""
    if os.geteuid() != 0:
        return "building the image needs root (mmdebstrap's root mode and a chroot)"
    missing = missing_tools()
    if missing:
        return f"missing tools: {', '.join(missing)} (make image installs them with apt-get)"
    return None


# ---- steps -------------------------------------------------------------------------------
def _run(argv: list[str], log: Path, env: dict | None = None, cwd: Path | None = None) -> None:
    with open(log, "ab") as out:
        out.write(f"\n$ {' '.join(argv)}\n".encode())
        out.flush()
        result = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=env, cwd=cwd)
    if result.returncode != 0:
        tail = log.read_text(errors="replace").splitlines()[-15:]
        raise ImageError(f"{argv[0]} failed (exit {result.returncode}); log {log}:\n" + "\n".join(tail))


def _clean_env(**extra: str) -> dict[str, str]:
    """The host's environment without its pip and Python settings (they are not the image's)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "PYTHON", "VIRTUAL_ENV"))}
    env.update(extra)
    return env


@contextlib.contextmanager
def _locked(path: Path):
    """One builder at a time per cache entry (the cache is shared by checkouts)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def _mmdebstrap_argv(packages: tuple[str, ...], target: Path, tarball: bool) -> list[str]:
    variant = "custom" if packages == RUNTIME_PACKAGES else "essential"
    argv = ["mmdebstrap", "--mode=root", f"--variant={variant}", f"--include={','.join(packages)}"]
    argv += [f"--dpkgopt=path-exclude={pattern}" for pattern in DPKG_EXCLUDES]
    argv += ["--dpkgopt=path-include=/usr/share/doc/*/copyright"]  # the licences stay
    argv += [f"--customize-hook=echo '{NONROOT_PASSWD}' >> \"$1\"/etc/passwd",
             f"--customize-hook=echo '{NONROOT_GROUP}' >> \"$1\"/etc/group",
             # the host's, copied for the build: not the image's
             '--customize-hook=rm -f "$1"/etc/resolv.conf "$1"/etc/hostname',
             '--customize-hook=rm -rf "$1"/var/cache/debconf/*-old "$1"/var/lib/dpkg/*-old']
    if tarball:
        # No apt in the image: its files from the build go (here, as mmdebstrap's own clean-up
        # would leave empty lists behind), and device nodes are the runtime's to make.
        argv += ["--skip=output/dev", "--skip=cleanup/apt", "--skip=cleanup/mmdebstrap",
                 '--customize-hook=rm -rf "$1"/etc/apt "$1"/var/lib/apt "$1"/var/cache/apt "$1"/var/log/apt']
    else:
        argv += ['--customize-hook=mkdir -p "$1"/src "$1"/wheels']  # mount points of install_app
    return argv + [SUITE, str(target)]


def runtime_base(log: Path, epoch: int) -> Path:
    """The runtime base's root filesystem as a layer tarball (cached)."""
    key = base_key(RUNTIME_PACKAGES)
    target = IMAGE_CACHE / f"base-{SUITE}-{key}.tar"
    with _locked(IMAGE_CACHE / "locks" / target.name):
        if not target.exists():
            scratch = target.with_name(target.name + f".{os.getpid()}.tar")
            _run(_mmdebstrap_argv(RUNTIME_PACKAGES, scratch, True), log,
                 env=_clean_env(SOURCE_DATE_EPOCH=str(epoch)))
            scratch.rename(target)
    return _used(target)


def build_base(log: Path, epoch: int) -> Path:
    """The build base's root filesystem as a directory to chroot into (cached)."""
    key = base_key(BUILD_PACKAGES)
    target = IMAGE_CACHE / f"build-{SUITE}-{key}"
    with _locked(IMAGE_CACHE / "locks" / target.name):
        if not (target / "usr" / "bin" / "python3").exists():
            scratch = target.with_name(target.name + f".{os.getpid()}")
            shutil.rmtree(scratch, ignore_errors=True)
            _run(_mmdebstrap_argv(BUILD_PACKAGES, scratch, False), log,
                 env=_clean_env(SOURCE_DATE_EPOCH=str(epoch)))
            shutil.rmtree(target, ignore_errors=True)
            scratch.rename(target)
    return _used(target)


def wheelhouse(log: Path, root: Path = REPO_ROOT) -> Path:
    """The locked dependencies (hashes checked) and the build requirements, as wheels for
    bookworm's CPython, downloaded once (cached)."""
    target = IMAGE_CACHE / f"wheels-{wheels_key(root)}"
    with _locked(IMAGE_CACHE / "locks" / target.name):
        if not (target / ".complete").exists():
            scratch = target.with_name(target.name + f".{os.getpid()}")
            shutil.rmtree(scratch, ignore_errors=True)
            scratch.mkdir(parents=True)
            common = [sys.executable, "-m", "pip", "download", "--quiet", "--dest", str(scratch), "--only-binary=:all:",
                      "--python-version", PYTHON, "--implementation", "cp", "--abi", f"cp{PYTHON.replace('.', '')}",
                      "--abi", "abi3", "--abi", "none", *[f"--platform={p}" for p in manylinux_platforms()]]
            env = {k: v for k, v in os.environ.items() if k != "PIP_FIND_LINKS"}  # from the index only
            _run([*common, "--require-hashes", "-r", str(root / LOCK)], log, env=env)
            _run([*common, *build_requires(root)], log, env=env)
            (scratch / ".complete").write_text("")
            shutil.rmtree(target, ignore_errors=True)
            scratch.rename(target)
    return _used(target)


def stage_sources(destination: Path, root: Path = REPO_ROOT) -> None:
    for relative in source_files(root):
        (destination / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / relative, destination / relative)


_CHROOT_SCRIPT = """
set -e
root=$1 src=$2 wheels=$3 local=$4; shift 4
mount --bind "$src" "$root/src"
mount --bind -o ro "$wheels" "$root/wheels"
mount --bind "$local" "$root/usr/local"
mount -t tmpfs tmpfs "$root/tmp"
mount -t proc proc "$root/proc"
exec chroot "$root" /bin/sh -ec "$*"
"""


def install_app(build_root: Path, wheels: Path, work: Path, log: Path, epoch: int, root: Path = REPO_ROOT) -> Path:
    """Run :data:`INSTALL_STEPS` in the build base (in a private mount namespace, so the cached
    base stays as it is) into an empty /usr/local; returns that directory."""
    src, local = work / "src", work / "usr-local"
    stage_sources(src, root)
    local.mkdir()
    env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/tmp", "LANG": "C.UTF-8", "PIP_NO_INDEX": "1",
           "PIP_FIND_LINKS": "/wheels", "SOURCE_DATE_EPOCH": str(epoch), **PIP_ENV}  # hash-checked .pyc
    _run(["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", _CHROOT_SCRIPT, "chroot-install",
          str(build_root), str(src), str(wheels), str(local), " && ".join(INSTALL_STEPS)], log, env=env)
    if not (local / "bin" / ENTRYPOINT[0]).exists():
        raise ImageError(f"the install left no /usr/local/bin/{ENTRYPOINT[0]} (log {log})")
    return local


def layer_tar(directory: Path, prefix: str, target: Path, epoch: int) -> None:
    """``directory`` as an uncompressed layer at ``prefix``: sorted, owned by root, mtimes
    clamped to ``epoch`` (the .pyc files are hash-checked, so they stay valid)."""
    with tarfile.open(target, "w", format=tarfile.PAX_FORMAT) as tar:
        parts = prefix.strip("/").split("/")
        for i in range(1, len(parts) + 1):
            info = tarfile.TarInfo("/".join(parts[:i]))
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, epoch
            tar.addfile(info)
        for path in sorted(directory.rglob("*")):
            info = tar.gettarinfo(str(path), arcname=f"{prefix.strip('/')}/{path.relative_to(directory).as_posix()}")
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            info.mtime = min(int(info.mtime), epoch)
            if info.isfile():
                with open(path, "rb") as handle:
                    tar.addfile(info, handle)
            else:
                tar.addfile(info)


def assemble(layout: Path, base_tar: Path, app_tar: Path, log: Path, epoch: int) -> None:
    """An OCI layout with the two layers and the image config (labels come later)."""
    created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))
    image = f"{layout}:build"
    _run(["umoci", "init", "--layout", str(layout)], log)
    _run(["umoci", "new", "--image", image], log)
    _run(["umoci", "raw", "add-layer", "--image", image, "--history.created", created,
          "--history.created_by", f"mmdebstrap --variant=custom {SUITE}: {' '.join(RUNTIME_PACKAGES)}",
          str(base_tar)], log)
    _run(["umoci", "raw", "add-layer", "--image", image, "--history.created", created,
          "--history.created_by", " && ".join(INSTALL_STEPS), str(app_tar)], log)
    argv = ["umoci", "config", "--image", image, "--no-history", "--created", created, "--os", "linux",
            "--architecture", "amd64", "--config.user", USER, "--config.workingdir", "/",
            "--clear=config.env", "--clear=config.entrypoint", "--clear=config.cmd"]
    argv += [f"--config.env={value}" for value in ENV]
    argv += [f"--config.entrypoint={word}" for word in ENTRYPOINT]
    argv += [f"--config.exposedports={port}" for port in PORTS]
    _run(argv, log)
    _run(["umoci", "gc", "--layout", str(layout)], log)


def app_layout(log: Path, epoch: int, root: Path = REPO_ROOT, steps: dict | None = None,
               fresh_into: Path | None = None) -> tuple[Path, str]:
    """The image without its labels, as an OCI layout, cached by :func:`app_key`; with
    ``fresh_into`` (a directory) it is built there again, neither read from nor put in the
    cache (the bases and the wheelhouse still are)."""
    steps = steps if steps is not None else {}
    key = app_key(root)
    target = fresh_into / "oci" if fresh_into else IMAGE_CACHE / f"oci-{key}"
    with _locked(IMAGE_CACHE / "locks" / f"oci-{key}"):
        if fresh_into is None and (target / "index.json").exists():
            return _used(target), key
        started = time.monotonic()
        base_tar = runtime_base(log, epoch)
        steps["runtime base"] = time.monotonic() - started
        started = time.monotonic()
        build_root = build_base(log, epoch)
        steps["build base"] = time.monotonic() - started
        started = time.monotonic()
        wheels = wheelhouse(log, root)
        steps["wheelhouse"] = time.monotonic() - started
        started = time.monotonic()
        with tempfile.TemporaryDirectory(dir=IMAGE_CACHE, prefix="work-") as scratch:
            work = Path(scratch)
            local = install_app(build_root, wheels, work, log, epoch, root)
            steps["install"] = time.monotonic() - started
            started = time.monotonic()
            layer_tar(local, "usr/local", work / "app.tar", epoch)
            layout = work / "oci"
            assemble(layout, base_tar, work / "app.tar", log, epoch)
            shutil.rmtree(target, ignore_errors=True)
            shutil.move(str(layout), target)
        steps["layers"] = time.monotonic() - started
    return target, key


def base_layout(log: Path) -> Path:
    """Both bases as images in one OCI layout (tags ``runtime-base``, ``build-base``): what the
    Dockerfile's BASE and BUILD_BASE are when the test builds it (cached)."""
    key = _digest("bases", base_key(RUNTIME_PACKAGES), base_key(BUILD_PACKAGES))
    target = IMAGE_CACHE / f"bases-{key}"
    with _locked(IMAGE_CACHE / "locks" / target.name):
        if (target / "index.json").exists():
            return _used(target)
        epoch = source_date_epoch()
        with tempfile.TemporaryDirectory(dir=IMAGE_CACHE, prefix="bases-") as scratch:
            layout, build_tar = Path(scratch) / "oci", Path(scratch) / "build.tar"
            _run(["tar", "--create", "--file", str(build_tar), "--directory", str(build_base(log, epoch)),
                  "--sort=name", "--numeric-owner", "--exclude=./dev/*", "--exclude=./proc/*", "--exclude=./tmp/*",
                  "."], log)
            _run(["umoci", "init", "--layout", str(layout)], log)
            for tag, tar in (("runtime-base", runtime_base(log, epoch)), ("build-base", build_tar)):
                _run(["umoci", "new", "--image", f"{layout}:{tag}"], log)
                _run(["umoci", "raw", "add-layer", "--image", f"{layout}:{tag}", str(tar)], log)
                _run(["umoci", "config", "--image", f"{layout}:{tag}", "--no-history", f"--config.env={ENV[0]}",
                      "--os", "linux", "--architecture", "amd64"], log)
            _run(["umoci", "gc", "--layout", str(layout)], log)
            layout.rename(target)
    return _used(target)


def label_and_export(layout: Path, version: str, revision_: str, source: str, epoch: int, dist: Path,
                     log: Path) -> tuple[Path, Path]:
    """Label a copy of the layout and write the two archives (atomically) to ``dist``."""
    created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))
    dist.mkdir(parents=True, exist_ok=True)
    oci_archive = dist / f"kruise-manager-{version}.oci.tar"
    docker_archive = dist / f"kruise-manager-{version}.docker.tar"
    with tempfile.TemporaryDirectory(dir=IMAGE_CACHE, prefix="label-") as scratch:
        copy = Path(scratch) / "oci"
        shutil.copytree(layout, copy)
        argv = ["umoci", "config", "--image", f"{copy}:build", "--tag", version, "--no-history", "--created", created]
        argv += [f"--config.label={key}={value}" for key, value in labels(version, revision_, source, created).items()]
        _run(argv, log)
        reference = f"{NAME}:{version}"
        for transport, target in (("oci-archive", oci_archive), ("docker-archive", docker_archive)):
            scratch_target = Path(scratch) / target.name
            _run(["skopeo", "copy", "--quiet", f"oci:{copy}:{version}", f"{transport}:{scratch_target}:{reference}"],
                 log)
            shutil.move(str(scratch_target), target)
    return oci_archive, docker_archive


KEEP = 3  # cache entries of each kind kept, the most recently used ones


def prune(keep: int = KEEP) -> list[Path]:
    """Remove all but the ``keep`` most recently used entries of each kind (a checkout's old
    sources, an older recipe's bases), skipping any that a build holds; returns the removed."""
    removed = []
    for kind in ("base-", "build-", "bases-", "wheels-", "oci-"):
        entries = sorted((p for p in IMAGE_CACHE.glob(f"{kind}*") if re.fullmatch(rf"{kind}{SUITE}-[0-9a-f]+(\.tar)?|"
                                                                                     rf"{kind}[0-9a-f]+", p.name)),
                         key=lambda p: p.stat().st_mtime, reverse=True)
        for entry in entries[keep:]:
            with open(IMAGE_CACHE / "locks" / entry.name, "a") as lock:
                try:
                    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:
                    continue
                if entry.is_dir():
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    entry.unlink(missing_ok=True)
                removed.append(entry)
    return removed


def _used(path: Path) -> Path:
    """Mark a cache entry as just used (for :func:`prune`)."""
    os.utime(path)
    return path


def build(root: Path = REPO_ROOT, dist: Path = DIST_DIR, log_to=sys.stderr, fresh: bool = False) -> Built:
    """Build (or find cached) the image and write its archives to ``dist``; ``fresh`` builds
    the project's layer again (only the Debian bases and the wheelhouse come from the cache)."""
    from .build import refuse_in_unit_tier

    refuse_in_unit_tier("the manager image was requested")
    reason = unavailable()
    if reason:
        raise ImageError(reason)
    IMAGE_CACHE.mkdir(parents=True, exist_ok=True)
    log = IMAGE_CACHE / "build.log"
    if log.exists() and log.stat().st_size > 4 << 20:
        log.replace(log.with_name("build.log.1"))
    epoch = source_date_epoch(root)
    version, revision_, source = project_version(root), revision(root), source_url(root)
    steps: dict[str, float] = {}
    print(f"image {NAME}:{version} (revision {revision_[:12]}), log {log}", file=log_to, flush=True)
    oci_archive = dist / f"kruise-manager-{version}.oci.tar"
    docker_archive = dist / f"kruise-manager-{version}.docker.tar"
    with tempfile.TemporaryDirectory(dir=IMAGE_CACHE, prefix="fresh-") if fresh else contextlib.nullcontext() as scratch:
        layout, key = app_layout(log, epoch, root, steps, Path(scratch) if scratch else None)
        stamp = dist / f".kruise-manager-{version}.stamp"
        wanted = json.dumps({"key": key, "revision": revision_, "source": source})
        started = time.monotonic()
        if fresh or not (stamp.exists() and stamp.read_text() == wanted and oci_archive.exists()
                         and docker_archive.exists()):
            stamp.unlink(missing_ok=True)
            label_and_export(layout, version, revision_, source, epoch, dist, log)
            stamp.write_text(wanted)
            steps["archives"] = time.monotonic() - started
    prune()
    return Built(oci_archive, docker_archive, version, revision_, key, steps)


# ---- checks on the result ----------------------------------------------------------------
def inspect(archive: Path) -> dict:
    """``skopeo inspect --config`` of an archive (oci-archive or docker-archive by its name)."""
    transport = "docker-archive" if archive.name.endswith(".docker.tar") else "oci-archive"
    result = subprocess.run(["skopeo", "inspect", "--config", f"{transport}:{archive}"], capture_output=True,
                            text=True)
    if result.returncode != 0:
        raise ImageError(f"skopeo inspect {archive}: {result.stderr.strip()}")
    return json.loads(result.stdout)


def layer_members(oci_archive: Path, directories: bool = True) -> list[list[str]]:
    """The paths in each layer of an OCI archive, in layer order (no leading ``./``)."""
    with tarfile.open(oci_archive) as outer:
        index = json.load(outer.extractfile("index.json"))
        manifest_digest = index["manifests"][0]["digest"].split(":", 1)[1]
        manifest = json.load(outer.extractfile(f"blobs/sha256/{manifest_digest}"))
        layers = []
        for layer in manifest["layers"]:
            blob = outer.extractfile(f"blobs/sha256/{layer['digest'].split(':', 1)[1]}")
            with tarfile.open(fileobj=gzip.GzipFile(fileobj=blob) if "gzip" in layer["mediaType"] else blob,
                              mode="r|") as inner:
                layers.append([re.sub(r"^\./", "", member.name).rstrip("/") for member in inner
                               if directories or not member.isdir()])
    return layers


def problems(config: dict, members: list[list[str]], version: str) -> list[str]:
    """What is wrong with an image (its ``skopeo inspect --config`` and its layers' paths),
    against what the chart needs from it; empty when nothing is."""
    found = []
    settings = config.get("config") or {}
    if settings.get("Entrypoint") != ENTRYPOINT:
        found.append(f"entrypoint is {settings.get('Entrypoint')}, not {ENTRYPOINT}")
    if settings.get("User") != USER:
        found.append(f"user is {settings.get('User')!r}, not {USER!r}")
    image_labels = settings.get("Labels") or {}
    if image_labels.get("org.opencontainers.image.version") != version:
        found.append(f"label org.opencontainers.image.version is {image_labels.get('org.opencontainers.image.version')!r}")
    for key in ("source", "revision"):
        if not image_labels.get(f"org.opencontainers.image.{key}"):
            found.append(f"label org.opencontainers.image.{key} is missing")
    for layer in members:
        for path in layer:
            if any(pattern.search(path) for pattern in FORBIDDEN):
                found.append(f"{path} must not be in the image")
    return found


def size(oci_archive: Path) -> dict[str, int]:
    """Bytes: the layers compressed (what a registry stores) and the archive."""
    with tarfile.open(oci_archive) as outer:
        index = json.load(outer.extractfile("index.json"))
        manifest = json.load(outer.extractfile(f"blobs/sha256/{index['manifests'][0]['digest'].split(':', 1)[1]}"))
    return {"compressed": sum(layer["size"] for layer in manifest["layers"]), "archive": oci_archive.stat().st_size}


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m localcluster.image", description=__doc__.splitlines()[0])
    parser.add_argument("--fresh", action="store_true", help="build the project's layer again, even when cached")
    parser.add_argument("--dist", type=Path, default=DIST_DIR)
    args = parser.parse_args(argv)
    started = time.monotonic()
    try:
        built = build(dist=args.dist, fresh=args.fresh)
        config = inspect(built.oci_archive)
        found = problems(config, layer_members(built.oci_archive), built.version)
    except ImageError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    for problem in found:
        print(f"error: {problem}", file=sys.stderr)
    took = time.monotonic() - started
    steps = ", ".join(f"{name} {seconds:.0f}s" for name, seconds in built.steps.items()) or "all cached"
    sizes = size(built.oci_archive)
    print(f"{built.reference}: {built.oci_archive}, {built.docker_archive}")
    print(f"  {sizes['compressed'] / 1e6:.1f} MB compressed; built in {took:.1f}s ({steps})")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
