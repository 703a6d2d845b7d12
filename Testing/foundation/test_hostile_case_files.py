"""Hostile and broken case files (issue 12): each one is refused by ``cryoablation simulate`` with
exit status 2 and a message naming the key (or the file and line), before any computing starts and
without writing anything; never a traceback, a hang or a silently wrong result."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from foundation_cases import small_case

from CryoAblationLogic.cli import main as cli
from CryoAblationLogic.core.errors import InputError
from CryoAblationLogic.core.grid import Grid
from CryoAblationLogic.io.case_file import MAX_CASE_FILE_BYTES, load_case, parse_case
from CryoAblationLogic.io.volumes import write_nrrd


def _set(path, value):
    """A mutation of the small case that puts ``value`` at ``path``."""

    def mutate(data):
        target = data
        for part in path[:-1]:
            target = target[part]
        target[path[-1]] = value
        return data

    return mutate


def _text(mutate, replacements):
    """The small case as JSON text, mutated, with literal text replaced (for numbers JSON can carry)."""
    text = json.dumps(mutate(small_case()))
    for old, new in replacements:
        assert old in text
        text = text.replace(old, new, 1)
    return text


HUGE_INTEGER = "1" + "0" * 4999  # 5 000 digits: Python refuses to convert it (ValueError, no key)
HUGE_FLOAT = "1" + "0" * 4999 + ".5"  # overflows to infinity

# (what was sent, file content, the key the message must name)
HOSTILE_CASES = [
    ("non-UTF-8 bytes", json.dumps(small_case()).encode().replace(b"gel", b"g\xe9l", 1), "not UTF-8"),
    (
        "model as a list",
        json.dumps(_set(("probes", 0, "model"), ["argon-1.47mm"])(small_case())),
        "probes[0].model",
    ),
    (
        "a 5 000-digit integer coordinate",
        _text(_set(("probes", 0, "tip_mm", 2), 123456789), [("123456789", HUGE_INTEGER)]),
        "probes[0].tip_mm[2]",
    ),
    (
        "a 5 000-digit float temperature",
        _text(_set(("initial_temperature_c",), 36.125), [("36.125", HUGE_FLOAT)]),
        "initial_temperature_c",
    ),
    (
        "NaN (not JSON, accepted by Python)",
        _text(_set(("materials", "gel", "k_frozen"), 7.125), [("7.125", "NaN")]),
        "materials.gel.k_frozen",
    ),
    (
        "Infinity",
        _text(_set(("sources", 0, "temperature_c"), -7.125), [("-7.125", "-Infinity")]),
        "sources[0].temperature_c",
    ),
    (
        "1e400 (overflows)",
        _text(_set(("protocol", 0, "duration_s"), 7.125), [("7.125", "1e400")]),
        "protocol[0].duration_s",
    ),
    (
        "30 000 nested brackets",
        _text(_set(("description",), "deep"), [('"deep"', "[" * 30000 + "]" * 30000)]),
        "nested too deeply",
    ),
    ("grid size 10³⁰", json.dumps(_set(("grid", "size", 0), 10**30)(small_case())), "grid.size[0]"),
    (
        "k = 1e300",
        json.dumps(_set(("materials", "gel", "k_unfrozen"), 1e300)(small_case())),
        "materials.gel.k_unfrozen",
    ),
    (
        "a sphere of radius 1e9 m",
        json.dumps(_set(("sources", 0, "radius_mm"), 1e12)(small_case())),
        "sources[0].radius_mm",
    ),
    (
        "initial temperature 1e300",
        json.dumps(_set(("initial_temperature_c",), 1e300)(small_case())),
        "initial_temperature_c",
    ),
    (
        "boundary temperature 1e300",
        json.dumps(_set(("boundaries", "default", "temperature_c"), 1e300)(small_case())),
        "boundaries.default.temperature_c",
    ),
    (
        "a 1 km probe",
        json.dumps(_set(("probes", 0, "active_length_mm"), 1e6)(small_case())),
        "probes[0].active_length_mm",
    ),
    (
        "a 1 m wide probe",
        json.dumps(_set(("probes", 0, "diameter_mm"), 1000.0)(small_case())),
        "probes[0].diameter_mm",
    ),
    (
        "duration_s 1e12",
        json.dumps(_set(("protocol", 0, "duration_s"), 1e12)(small_case())),
        "protocol[0].duration_s",
    ),
    (
        "ten one-day steps (10 days in all)",
        json.dumps(_set(("protocol",), [{"action": "off", "duration_s": 86400}] * 10)(small_case())),
        "protocol",
    ),
    (
        "perfusion 1e300",
        json.dumps(_set(("materials", "gel", "perfusion"), 1e300)(small_case())),
        "materials.gel.perfusion",
    ),
    (
        "latent heat below 0",
        json.dumps(_set(("materials", "gel", "latent_heat"), -1.0)(small_case())),
        "materials.gel.latent_heat",
    ),
    (
        "line sink of 1e300 W/m",
        json.dumps(
            _set(
                ("sources", 0),
                {"type": "line_sink", "start_mm": [0, 0, 0], "end_mm": [0, 0, 4], "power_w_per_m": 1e300},
            )(small_case())
        ),
        "sources[0].power_w_per_m",
    ),
    (
        "a snapshot after the run",
        json.dumps(_set(("outputs", "snapshot_times_s"), [30, 51])(small_case())),
        "outputs.snapshot_times_s[1]",
    ),
    (
        "100 000 snapshots",
        json.dumps(_set(("outputs", "snapshot_times_s"), [0.001 * i for i in range(100_000)])(small_case())),
        "outputs.snapshot_times_s",
    ),
    (
        "10 000 sensors",
        json.dumps(
            _set(("sensors",), [{"name": f"S{i}", "position_mm": [0, 0, 0]} for i in range(10_000)])(
                small_case()
            )
        ),
        "sensors",
    ),
    ("spacing 0", json.dumps(_set(("grid", "spacing_mm"), 0)(small_case())), "grid.spacing_mm"),
    ("a top-level list", "[1, 2, 3]", "case"),
    ("an empty file", "", "not valid JSON"),
    ("truncated JSON", json.dumps(small_case())[:200], "not valid JSON"),
    ("a bare number", "1e999", "case"),
    ("unknown key", json.dumps(_set(("colour",), "blue")(small_case())), "colour"),
    (
        "a freeze step with a thaw mode",
        json.dumps(_set(("protocol", 0, "mode"), "active")(small_case())),
        "protocol[0].mode",
    ),
    (
        "a probe named by a number in a step",
        json.dumps(_set(("protocol", 1, "probes"), [1])(small_case())),
        "protocol[1].probes[0]",
    ),
]


@pytest.mark.parametrize(("sent", "content", "named"), HOSTILE_CASES, ids=[case[0] for case in HOSTILE_CASES])
def test_hostile_case_file_exits_2_naming_the_key(write_case, tmp_path, capsys, sent, content, named):
    path = write_case(content)
    out = tmp_path / "out"
    status = cli.main(["simulate", str(path), "--out", str(out), "--quiet"])
    captured = capsys.readouterr()
    assert status == 2, f"{sent}: exit {status}; {captured.err}"
    assert named in captured.err, captured.err
    assert "Traceback" not in captured.err
    assert len(captured.err) < 2000, "the message is a line or two, not a dump of the input"
    assert not out.exists(), "nothing is written when the input is refused"


def test_an_oversized_case_file_is_refused_before_it_is_parsed(write_case):
    path = write_case(b" " * (MAX_CASE_FILE_BYTES + 1))
    with pytest.raises(InputError) as error:
        load_case(path)
    assert "too large" in str(error.value)


def test_a_day_long_run_request_does_not_hang_the_command_line(write_case, tmp_path):
    """``duration_s`` 1e12 used to run (for ever): now the command answers at once."""
    path = write_case(_set(("protocol", 0, "duration_s"), 1e12)(small_case()))
    result = subprocess.run(
        [sys.executable, "-m", "CryoAblationLogic", "simulate", str(path), "--out", str(tmp_path / "o")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert "protocol[0].duration_s" in result.stderr and "86400" in result.stderr


# --- files stay in the case's folder ------------------------------------------------------------


def _label_case(labelmap: str) -> dict:
    data = small_case()
    del data["tissue"]
    data["tissue_map"] = {"labelmap": labelmap, "labels": {"0": "gel"}}
    return data


def _grid() -> Grid:
    return Grid((-10.0, -10.0, -10.0), (2.0, 2.0, 2.0), (11, 11, 11))


def test_a_label_volume_beside_the_case_is_read(write_case):
    path = write_case(_label_case("labels/labels.nrrd"))
    write_nrrd(path.parent / "labels" / "labels.nrrd", np.zeros((11, 11, 11), np.uint8), _grid())
    case = load_case(path)
    assert case.label_materials == {0: "gel"}


@pytest.mark.parametrize(
    ("labelmap", "reason"),
    [
        ("../outside.nrrd", "leaves the case file's folder"),
        ("labels/../../outside.nrrd", "leaves the case file's folder"),
        ("..\\outside.nrrd", "leaves the case file's folder"),
        ("/etc/passwd", "absolute path"),
        ("C:\\Windows\\labels.nrrd", "absolute path"),
        ("link.nrrd", "outside the case file's folder"),
    ],
)
def test_a_label_volume_outside_the_case_folder_is_refused(write_case, tmp_path, labelmap, reason):
    path = write_case(_label_case(labelmap))
    outside = tmp_path / "outside.nrrd"
    write_nrrd(outside, np.zeros((11, 11, 11), np.uint8), _grid())
    os.symlink(outside, path.parent / "link.nrrd")
    with pytest.raises(InputError) as error:
        load_case(path)
    assert error.value.key == "tissue_map.labelmap" and reason in error.value.reason


def _nrrd_with_header(folder, header_lines: list[str]) -> None:
    """An uncompressed 11³ uint8 label volume with the given header lines."""
    header = "\n".join(["NRRD0004", *header_lines]) + "\n\n"
    (folder / "labels.nrrd").write_bytes(header.encode() + bytes(11**3))


GOOD_HEADER = [
    "type: unsigned char",
    "dimension: 3",
    "space: left-posterior-superior",
    "sizes: 11 11 11",
    "space directions: (-2,0,0) (0,-2,0) (0,0,2)",
    "kinds: domain domain domain",
    "endian: little",
    "encoding: raw",
    "space origin: (10,10,-10)",
]


def test_a_hand_written_attached_header_is_read(write_case):
    path = write_case(_label_case("labels.nrrd"))
    _nrrd_with_header(path.parent, GOOD_HEADER)
    assert load_case(path).tissue_labels.shape == (11, 11, 11)


@pytest.mark.parametrize(
    ("line_number", "line", "reason"),
    [
        (9, "data file: /etc/hostname", "another file"),
        (9, "datafile: other.raw", "another file"),
        (5, "sizes: 11 11 eleven", "sizes"),
        (5, "sizes: 11 11 99999999999", "sizes"),
        (2, "type: complex", "unknown type"),
        (9, "encoding: zip", "unknown encoding"),
        (6, "space directions: (-2,0,0) (0,-2,0) (0,0,nan)", "finite"),
        (10, "space origin: 10,10,-10", "space origin"),
        (4, "this is not a field", "not an NRRD field"),
        (4, "sp\xe4ce: lps", "ASCII"),
    ],
)
def test_a_corrupted_nrrd_header_is_refused_naming_its_line(write_case, line_number, line, reason):
    path = write_case(_label_case("labels.nrrd"))
    lines = list(GOOD_HEADER)
    index = line_number - 2  # line 1 is the magic
    lines[index : index + 1] = [line]
    header = "\n".join(["NRRD0004", *lines]) + "\n\n"
    (path.parent / "labels.nrrd").write_bytes(header.encode("latin-1") + bytes(11**3))
    with pytest.raises(InputError) as error:
        load_case(path)
    assert error.value.key == "tissue_map.labelmap"
    assert f"line {line_number}" in error.value.reason and reason in error.value.reason


def test_a_detached_header_never_opens_its_data_file(write_case, tmp_path):
    secret = tmp_path / "secret.raw"
    secret.write_bytes(bytes(11**3))
    path = write_case(_label_case("labels.nrrd"))
    lines = [*GOOD_HEADER, f"data file: {secret}"]
    (path.parent / "labels.nrrd").write_text("\n".join(["NRRD0004", *lines]) + "\n")
    atime = secret.stat().st_atime_ns
    with pytest.raises(InputError) as error:
        load_case(path)
    assert "another file" in error.value.reason
    assert secret.stat().st_atime_ns == atime


def test_a_header_declaring_petabytes_is_refused_before_reading(write_case):
    path = write_case(_label_case("labels.nrrd"))
    lines = [line if not line.startswith("sizes") else "sizes: 65536 65536 65536" for line in GOOD_HEADER]
    lines = [line if not line.startswith("type") else "type: double" for line in lines]
    _nrrd_with_header(path.parent, lines)
    with pytest.raises(InputError) as error:
        load_case(path)
    assert error.value.key == "tissue_map.labelmap" and "GB" in error.value.reason


def test_a_mutated_case_keeps_its_original_valid(case_dict):
    """The table above mutates copies: the small case itself is valid (else every test is vacuous)."""
    case = parse_case(copy.deepcopy(case_dict))
    assert case.duration_s == 50.0 and len(case.probes) == 1


def test_a_folder_given_for_the_case_file_is_named_as_one(tmp_path, capsys):
    assert cli.main(["simulate", str(tmp_path), "--out", str(tmp_path / "r")]) == 2
    assert "is a folder: give the case file (.cryo.json) in it" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()
