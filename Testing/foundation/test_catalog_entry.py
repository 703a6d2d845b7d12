"""CryoAblation.json is a valid ExtensionsIndex catalog entry and meets the index's own rules."""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path

import jsonschema
import pytest

REPO = Path(__file__).resolve().parents[2]
SCHEMAS = REPO / "Testing" / "Data" / "extensions-index"

# The part we may use of ACCEPTED_EXTENSION_CATEGORIES (ExtensionsIndex scripts/check_description_files.py).
ACCEPTED_CATEGORIES_WE_USE = {"IGT", "Planning", "Simulation", "Quantification"}
LICENSE_NAMES = ("LICENSE", "LICENCE", "License.txt", "license.txt", "LICENSE.txt", "COPYING", "COPYING.txt")


@pytest.fixture(scope="module")
def entry() -> dict:
    return json.loads((REPO / "CryoAblation.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize("schema_version", ["v1.0.1", "v1.0.2"])
def test_entry_validates_against_the_catalog_schema(entry, schema_version):
    schema = json.loads(
        (SCHEMAS / f"slicer-extension-catalog-entry-schema-{schema_version}.json").read_text(encoding="utf-8")
    )
    jsonschema.validate(entry, schema)


def test_entry_points_to_a_published_schema(entry):
    assert entry["$schema"].endswith("slicer-extension-catalog-entry-schema-v1.0.1.json#")


def test_index_rules(entry):
    top = (REPO / "CMakeLists.txt").read_text(encoding="utf-8")
    project = re.search(r"^project\((\w+)\)", top, flags=re.M).group(1)
    assert project == "CryoAblation" == Path("CryoAblation.json").stem  # file name == project name
    assert not project.startswith("Slicer")
    assert entry["category"] in ACCEPTED_CATEGORIES_WE_USE
    repository = entry["scm_url"].rstrip("/").removesuffix(".git").rsplit("/", 1)[-1]
    assert re.match(r"^(Slicer|Slicer-|Slicer_|SlicerExtension-|SlicerExtension_)", repository)
    assert entry["scm_revision"] == "main"  # a branch, so updates need no new index pull request
    assert any((REPO / name).is_file() for name in LICENSE_NAMES)
    assert entry["build_dependencies"] == []  # keeps the index's Python-only packaging check on


def test_icon_is_a_128_pixel_png_at_the_advertised_path():
    top = (REPO / "CMakeLists.txt").read_text(encoding="utf-8")
    icon_url = re.search(r'set\(EXTENSION_ICONURL "([^"]+)"\)', top).group(1)
    relative = icon_url.split("/main/", 1)[1]
    data = (REPO / relative).read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (128, 128)


def test_every_advertised_screenshot_is_a_png_in_the_repository():
    top = (REPO / "CMakeLists.txt").read_text(encoding="utf-8")
    urls = re.search(r'set\(EXTENSION_SCREENSHOTURLS "([^"]+)"\)', top).group(1).split()
    assert urls
    for url in urls:
        data = (REPO / url.split("/main/", 1)[1]).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n", url
