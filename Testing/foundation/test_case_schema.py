"""The case format's JSON Schema is the format's reference: it is a valid draft 2020-12 schema,
the documented examples and the demo case satisfy it, every bound on a quantity says its unit and
why, and the code's own limits agree with it."""

from __future__ import annotations

import importlib
import json
import re
import sys
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from CryoAblationLogic.io import case_file
from CryoAblationLogic.io.case_file import MAX_RUN_S, case_schema, parse_case
from CryoAblationLogic.io.demo_case import build_demo_case

REPO = Path(__file__).resolve().parents[2]
CASE_FORMAT_DOC = REPO / "docs/case-format.md"


def documented_examples(kind: str) -> list[dict]:
    """The JSON blocks of docs/case-format.md whose format is ``kind``."""
    text = CASE_FORMAT_DOC.read_text(encoding="utf-8")
    blocks = [json.loads(block) for block in re.findall(r"```json\n(.*?)```", text, flags=re.S)]
    return [block for block in blocks if block.get("format") == kind]


def bounded_properties(schema, path="#"):
    """(path, subschema) of every subschema that bounds a number."""
    if isinstance(schema, dict):
        if any(key in schema for key in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")):
            yield path, schema
        for key, value in schema.items():
            yield from bounded_properties(value, f"{path}/{key}")
    elif isinstance(schema, list):
        for index, value in enumerate(schema):
            yield from bounded_properties(value, f"{path}/{index}")


def test_schema_is_valid_draft_2020_12():
    schema = case_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(schema)


def test_documented_case_examples_satisfy_the_schema_and_parse():
    examples = documented_examples("cryoablation-case/1")
    assert len(examples) >= 2, "docs/case-format.md shows a case example and a label-map example"
    validator = Draft202012Validator(case_schema())
    for example in examples:
        assert list(validator.iter_errors(example)) == []
        if "tissue" in example:  # the label-map example names a file that the page does not ship
            parse_case(example)


def test_the_demo_case_satisfies_the_schema():
    data, labels = build_demo_case(spacing_mm=2.0)
    assert list(Draft202012Validator(case_schema()).iter_errors(data)) == []
    parse_case(data, arrays={"labels.nrrd": labels})


def test_every_bound_states_its_unit_or_reason():
    """A bound without its unit and reason cannot be judged by a reader; each one has both."""
    schema = case_schema()
    bounded = list(bounded_properties(schema))
    assert len(bounded) >= 20
    for path, subschema in bounded:
        if "$ref" in subschema:
            continue
        description = subschema.get("description", "")
        parent_described = "items" in path  # items of a described list (spacing's three values)
        assert description or parent_described, f"{path} has bounds but no description"


def test_run_length_bound_agrees_with_the_schema():
    step = case_schema()["$defs"]["step"]["properties"]["duration_s"]
    assert step["maximum"] == MAX_RUN_S == case_schema()["$defs"]["time_s"]["maximum"]


@pytest.mark.parametrize("key", ["grid", "protocol", "probes", "materials", "tissue_map", "outputs"])
def test_the_schema_documents_each_section(key):
    assert key in case_schema()["properties"]
    assert "docs/case-format.md" in case_schema()["description"]


def test_the_case_module_imports_without_jsonschema_and_says_what_is_missing(monkeypatch):
    """Inside Slicer jsonschema arrives with numba on first use: importing must not need it."""
    monkeypatch.setitem(sys.modules, "jsonschema", None)  # an import of it now fails
    fresh = importlib.reload(case_file)
    try:
        with pytest.raises(ModuleNotFoundError, match="pip install jsonschema"):
            fresh.validate_schema({"format": "cryoablation-case/1"})
    finally:
        monkeypatch.delitem(sys.modules, "jsonschema")
        importlib.reload(case_file)
