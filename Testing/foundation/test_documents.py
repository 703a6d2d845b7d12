"""The project's documents: every document the code refers to is in the repository, and the
documents link to the case format's schema."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CODE_FOLDERS = ("CryoAblationLogic", "CryoAblation", "benchmarks", "Testing")
CODE_SUFFIXES = {".py", ".txt", ".json", ".ui", ".toml", ".cmake"}
# A reference to a document: a path ending in .md (``docs/physics.md``, ``README.md``).
REFERENCE = re.compile(r"(?<![\w/.-])((?:[\w.-]+/)*[\w-]+\.md)\b")
DOCUMENTS = ("docs/case-format.md", "docs/live-link.md", "docs/physics.md", "docs/architecture.md")


def code_files():
    for folder in CODE_FOLDERS:
        for path in (REPO / folder).rglob("*"):
            if path.suffix in CODE_SUFFIXES and "Data" not in path.relative_to(REPO).parts[:2]:
                if "__pycache__" not in path.parts and ".venv" not in path.parts:
                    yield path


def test_every_document_referenced_from_code_exists():
    missing = []
    for path in code_files():
        for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            for reference in REFERENCE.findall(line):
                if not (REPO / reference).is_file():
                    missing.append(f"{path.relative_to(REPO)}:{number}: {reference}")
    assert missing == [], "references to documents that are not in the repository:\n" + "\n".join(missing)


def test_the_project_documents_exist_and_are_linked_from_the_readme():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    for name in DOCUMENTS:
        assert (REPO / name).is_file()
        assert name in readme, f"README does not link {name}"


def test_the_case_format_document_points_at_the_schema():
    text = (REPO / "docs/case-format.md").read_text(encoding="utf-8")
    assert "Resources/case.schema.json" in text


def test_relative_links_inside_the_documents_resolve():
    broken = []
    for doc in (REPO / "docs").glob("*.md"):
        for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", doc.read_text(encoding="utf-8")):
            if "://" in target:
                continue
            if not (doc.parent / target).resolve().exists():
                broken.append(f"{doc.name}: {target}")
    assert broken == []
