"""Property-based tests (hypothesis): random mutations of a valid case file and of a valid NRRD
header always give either a valid result or an ``InputError`` naming a key (or the file's line),
never another exception, and within a time bound (2 s an example; a parse takes milliseconds)."""

from __future__ import annotations

import copy
import json
import math
import string
from datetime import timedelta

from foundation_cases import small_case
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from CryoAblationLogic.core.errors import InputError
from CryoAblationLogic.io.case_file import MAX_RUN_S, case_schema, load_case, parse_case
from CryoAblationLogic.io.volumes import read_nrrd

TOP_LEVEL_KEYS = set(case_schema()["properties"]) | {"case"}
PROPERTY_SETTINGS = settings(
    max_examples=100,
    derandomize=True,  # the same examples on every run: the default test run never flakes
    deadline=timedelta(seconds=2),
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

json_leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**40), max_value=10**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=-1e4, max_value=1e4),
    st.sampled_from(
        ["all", "fixed", "adiabatic", "freeze", "thaw", "off", "sphere", "line_sink", "P1", "gel"]
    ),
    st.text(max_size=12),
)
json_values = st.recursive(
    json_leaves,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


def paths(value, prefix=()):
    """Every key path inside a JSON value (the value's own path first)."""
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from paths(item, (*prefix, index))


@st.composite
def mutated_cases(draw):
    data = small_case()
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        candidates = [p for p in paths(data) if p]
        path = draw(st.sampled_from(candidates))
        parent = data
        for part in path[:-1]:
            parent = parent[part]
        action = draw(st.sampled_from(["replace", "delete", "scale", "add"]))
        if action == "replace":
            parent[path[-1]] = draw(json_values)
        elif action == "delete":
            del parent[path[-1]]
        elif (
            action == "scale"
            and isinstance(parent[path[-1]], (int, float))
            and not isinstance(parent[path[-1]], bool)
        ):
            factor = draw(st.sampled_from([-1.0, 0.0, 1e-9, 1e3, 1e9, 1e300]))
            parent[path[-1]] = parent[path[-1]] * factor
        elif isinstance(parent, dict):
            parent[draw(st.text(min_size=1, max_size=8))] = draw(json_values)
        else:
            parent.append(draw(json_values))
    return data


def key_root(key: str) -> str:
    """The top-level key of a key path: ``probes[1].tip_mm`` → ``probes``; ``[" "].x`` → ``" "``."""
    if key.startswith('["'):
        return json.JSONDecoder().raw_decode(key[1:])[0]
    return key.split(".", maxsplit=1)[0].split("[", maxsplit=1)[0]


def _check_outcome(data):
    try:
        case = parse_case(copy.deepcopy(data))
    except InputError as error:
        assert error.key, f"no key in {error}"
        root = key_root(error.key)
        # The key starts at a key of the format or of the file (an unknown key is named as written).
        assert root in TOP_LEVEL_KEYS | {str(key) for key in data}, f"{error.key!r} names no key of the case"
        assert len(str(error)) < 2000
        return None
    # Accepted: every number the solver will see is finite and bounded, and the case round-trips.
    assert math.isfinite(case.initial_temperature_c) and -200 <= case.initial_temperature_c <= 100
    assert 0 < case.duration_s <= MAX_RUN_S
    assert all(math.isfinite(v) for p in case.probes for v in (*p.tip_mm, *p.entry_mm, p.active_length_mm))
    assert parse_case(case.to_dict()).to_dict() == case.to_dict()
    return case


@PROPERTY_SETTINGS
@given(data=mutated_cases())
def test_a_mutated_case_is_a_case_or_an_error_naming_a_key(data):
    _check_outcome(data)


@PROPERTY_SETTINGS
@given(
    position=st.floats(min_value=0.0, max_value=1.0),
    removed=st.integers(min_value=0, max_value=8),
    inserted=st.binary(max_size=8),
)
def test_a_corrupted_case_file_is_a_case_or_an_input_error(tmp_path_factory, position, removed, inserted):
    raw = json.dumps(small_case(), indent=1).encode()
    at = int(position * len(raw))
    folder = tmp_path_factory.mktemp("case")
    path = folder / "case.cryo.json"
    path.write_bytes(raw[:at] + inserted + raw[at + removed :])
    try:
        load_case(path)
    except InputError as error:
        assert error.key and "Traceback" not in str(error)


GOOD_HEADER = [
    "type: unsigned char",
    "dimension: 3",
    "space: left-posterior-superior",
    "sizes: 4 3 2",
    "space directions: (-2,0,0) (0,-2,0) (0,0,2)",
    "kinds: domain domain domain",
    "endian: little",
    "encoding: raw",
    "space origin: (10,10,-10)",
]
header_text = st.text(alphabet=string.printable.replace("\n", "").replace("\r", ""), max_size=40)
header_lines = st.one_of(
    header_text,
    st.sampled_from(
        [
            "sizes: ",
            "type: ",
            "dimension: ",
            "encoding: ",
            "space directions: ",
            "space origin: ",
            "spacings: ",
        ]
    ).flatmap(lambda field: header_text.map(lambda value: field + value)),
)


@PROPERTY_SETTINGS
@given(
    edits=st.lists(
        st.tuples(st.sampled_from(["replace", "insert", "delete"]), st.integers(0, 8), header_lines),
        min_size=1,
        max_size=3,
    ),
    body=st.binary(max_size=64),
)
def test_a_mutated_nrrd_header_reads_or_is_refused_naming_the_file(tmp_path_factory, edits, body):
    lines = list(GOOD_HEADER)
    for action, index, line in edits:
        index = min(index, len(lines) - 1) if lines else 0
        if action == "replace" and lines:
            lines[index] = line
        elif action == "insert":
            lines.insert(index, line)
        elif lines:
            del lines[index]
    path = tmp_path_factory.mktemp("nrrd") / "volume.nrrd"
    path.write_bytes(("\n".join(["NRRD0004", *lines]) + "\n\n").encode() + body)
    try:
        array, grid = read_nrrd(path)
    except InputError as error:
        assert str(path) in error.key
        return
    assert array.shape == grid.size
    assert all(math.isfinite(v) for v in (*grid.origin_mm, *grid.spacing_mm))
