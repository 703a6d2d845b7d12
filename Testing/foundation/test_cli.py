"""The ``cryoablation`` command: discoverable subcommands, clear errors with exit status 2."""

from __future__ import annotations

import subprocess
import sys

import pytest

from CryoAblationLogic.cli import main as cli
from CryoAblationLogic.io.volumes import read_nrrd


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "CryoAblationLogic", *args], capture_output=True, text=True, timeout=120
    )


def test_help_lists_every_subcommand():
    result = run_cli("--help")
    assert result.returncode == 0
    for module_name in cli.SUBCOMMAND_MODULES:
        module = __import__(f"CryoAblationLogic.cli.{module_name}", fromlist=["NAME"])
        assert module.NAME in result.stdout
    assert "not a medical device" in result.stdout.replace("\n", " ")


def test_console_script_is_installed():
    import importlib.metadata

    scripts = {ep.name: ep.value for ep in importlib.metadata.entry_points(group="console_scripts")}
    assert scripts.get("cryoablation") == "CryoAblationLogic.cli.main:main"


def test_bad_option_value_exits_2_and_names_it(tmp_path):
    result = run_cli("phantom", "--out", str(tmp_path), "--spacing-mm", "0.01")
    assert result.returncode == 2
    assert "--spacing-mm" in result.stderr
    assert not any(tmp_path.iterdir()), "nothing is written when the input is refused"


def test_phantom_command_writes_volumes_that_load_at_case_coordinates(tmp_path):
    assert cli.main(["phantom", "--out", str(tmp_path), "--spacing-mm", "2.0"]) == 0
    image, grid = read_nrrd(tmp_path / "phantom_image.nrrd")
    labels, label_grid = read_nrrd(tmp_path / "phantom_labels.nrrd")
    assert grid == label_grid
    assert image.shape == labels.shape == grid.size
    assert grid.spacing_mm == (2.0, 2.0, 2.0)
    assert grid.origin_mm[0] == pytest.approx(-60.0)
