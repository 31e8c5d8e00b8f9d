"""The fidelity documents name, for each real behaviour, the tests that hold it: each named test
and file must exist, so that a renamed or removed test cannot leave a behaviour cited as held."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from tests.processes import ROOT

DOCS = sorted((ROOT / "docs").glob("fidelity*.md"))
# `tests/test_x.py::test_y`, `test_x.py::test_y` and `::test_z` (in the file named last on the
# same line); a parametrized id's brackets are ignored.
CITATION = re.compile(r"`((?:tests/)?test_\w+\.py)?(?:::(\w+)[^`]*)?`")
SOURCE = re.compile(r"`(reconciler/[\w/.]*)`")


def _definitions(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.ClassDef)}


def _citations() -> list[tuple[str, int, str, str]]:
    """(document, line, test file, test name) of every test the documents cite."""
    found = []
    for doc in DOCS:
        for number, line in enumerate(doc.read_text().splitlines(), 1):
            current = ""
            for match in CITATION.finditer(line):
                current = match.group(1) or current
                if match.group(2):
                    found.append((doc.name, number, current, match.group(2)))
    return found


def test_fidelity_docs__every_cited_test_exists() -> None:
    citations = _citations()
    assert len(citations) >= 100  # the documents' tests columns were read
    definitions: dict[str, set[str]] = {}
    missing = []
    for doc, number, file, name in citations:
        path = ROOT / "tests" / Path(file).name
        if file and path.exists():
            if file not in definitions:
                definitions[file] = _definitions(path)
            if name in definitions[file]:
                continue
        missing.append(f"{doc}:{number}: {file or '(no file)'}::{name}")
    assert missing == []


def test_fidelity_docs__every_cited_source_path_exists() -> None:
    paths = {m for doc in DOCS for m in SOURCE.findall(doc.read_text())}
    assert paths
    assert sorted(p for p in paths if not (ROOT / p).exists()) == []
