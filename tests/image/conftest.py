"""The manager image, built once per session by make image's code (cached under .cache/image)."""

from __future__ import annotations

import sys

import pytest

from localcluster import image


@pytest.fixture(scope="session")
def manager_image() -> image.Built:
    reason = image.unavailable()
    if reason:
        pytest.skip(f"the image cannot be built here: {reason}")
    return image.build(log_to=sys.stderr)
