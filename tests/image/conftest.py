"""The manager image, built once per session by make image's code (cached under .cache/image)."""

from __future__ import annotations

import sys

import pytest

from localcluster import image
from tests.conftest import require


@pytest.fixture(scope="session")
def manager_image() -> image.Built:
    require("image")
    return image.build(log_to=sys.stderr)
