"""Locate the data files of the top-level ``Resources/`` folder (probe catalog, tissue library, ...).

They are found, in order, inside the package (a wheel, or the Slicer extension build, copies them
to ``CryoAblationLogic/Resources``) or beside it (the source tree and editable installs).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

_PACKAGE_DIR = Path(__file__).resolve().parent.parent  # CryoAblationLogic/


def resources_dir() -> Path:
    for candidate in (_PACKAGE_DIR / "Resources", _PACKAGE_DIR.parent / "Resources"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(
        f"CryoAblation's Resources folder was not found inside or beside {_PACKAGE_DIR}; "
        "the installation is incomplete"
    )


def resource_path(*parts: str) -> Path:
    path = resources_dir().joinpath(*parts)
    if not path.exists():
        raise FileNotFoundError(f"CryoAblation resource missing: {path}")
    return path


def load_json_resource(*parts: str) -> Any:
    with resource_path(*parts).open(encoding="utf-8") as stream:
        return json.load(stream)
