"""What this kruisectl installs when given no chart and no image: the chart it carries and the
image reference that chart's defaults name. Read from the bundled chart's own files (as helm
reads them), so ``kruisectl version`` cannot disagree with ``kruisectl install``."""

from __future__ import annotations

from pathlib import Path

import yaml

from . import __version__
from .helm import BUNDLED_CHART


def defaults(chart: Path = BUNDLED_CHART) -> dict:
    """kruisectl's version, the bundled chart (None when this installation has none, as the
    manager image's kruisectl) and the image its values name (tag empty: the appVersion, as the
    chart's ``kruise.image`` helper)."""
    info: dict = {"kruisectl": __version__, "chart": None, "image": None}
    if not (chart / "Chart.yaml").is_file():
        return info
    meta = yaml.safe_load((chart / "Chart.yaml").read_text())
    image = yaml.safe_load((chart / "values.yaml").read_text())["manager"]["image"]
    app_version = str(meta["appVersion"])
    info["chart"] = {"name": meta["name"], "version": str(meta["version"]), "appVersion": app_version,
                     "path": str(chart)}
    info["image"] = f"{image['repository']}:{image.get('tag') or app_version}"
    return info
