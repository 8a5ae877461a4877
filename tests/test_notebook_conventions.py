"""The conventions every chapter notebook shares (CONTRIBUTING.md)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from book_sources import chapters, repository_url

CHAPTERS = chapters()
VOLATILE = [
    (re.compile(r"(/root/|/home/|/tmp/|/work/|/Users/|[A-Z]:\\\\)"), "an absolute path"),
    (re.compile(r"0x[0-9a-fA-F]{6,}"), "a memory address"),
    (re.compile(r"Units\."), "torchinfo's 'Units.' artefact"),
    (re.compile(r"Traceback \(most recent call last\)"), "a traceback"),
    (re.compile(r"\b\d+(\.\d+)?\s*(ms|µs|seconds)\b"), "a timing"),
]


def code_cells(path: Path) -> list[dict]:
    return [c for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]


def test_there_are_chapters():
    assert CHAPTERS, "no chapter notebooks found in notebooks/"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_setup_cell_installs_from_the_one_repository_url(path):
    setup = "".join(code_cells(path)[0]["source"])
    assert f'REPOSITORY = "{repository_url()}"' in setup, f"{path.name}: setup cell URL differs from _config.yml"
    assert "--no-deps" in setup and "google.colab" in setup
    assert "torch.manual_seed(0)" in setup


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_stored_outputs_are_clean(path):
    for i, cell in enumerate(code_cells(path)):
        assert cell["execution_count"] is not None, f"{path.name} cell {i} was never executed"
        for output in cell["outputs"]:
            assert output["output_type"] != "error", f"{path.name} cell {i} stores an error"
            assert output.get("name") != "stderr", f"{path.name} cell {i} stores stderr output"
            text = "".join(output.get("text", "")) + "".join(output.get("data", {}).get("text/plain", ""))
            for pattern, what in VOLATILE:
                assert not pattern.search(text), f"{path.name} cell {i} output contains {what}"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_no_execution_timestamps_are_stored(path):
    cells = json.loads(path.read_text())["cells"]
    stamped = [i for i, c in enumerate(cells) if "execution" in c.get("metadata", {})]
    assert not stamped, f"{path.name} cells {stamped} store execution timestamps (run tools/execute_notebook.py)"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_every_exercise_has_a_solution_and_a_checkpoint(path):
    tags = [c.get("metadata", {}).get("tags", []) for c in code_cells(path)]
    solutions = sum("solution" in t for t in tags)
    checkpoints = sum("checkpoint" in t for t in tags)
    assert solutions >= 1 and checkpoints >= solutions, f"{path.name}: {solutions} solutions, {checkpoints} checkpoints"


CODE_WIDTH = 88  # characters of a code line that fit the book's column (book/_ext/code_width.py)
TEXT_WIDTH = 78  # characters of a printed line that fit it (checkpoints.common.WIDTH)


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_code_and_printed_lines_fit_the_column(path):
    """The browser check measures the rendered page; this finds the same lines without a browser."""
    for i, cell in enumerate(code_cells(path)):
        if "remove-cell" in cell["metadata"].get("tags", []):
            continue  # the setup cell is not on the page
        for line in "".join(cell["source"]).splitlines():
            assert len(line) <= CODE_WIDTH, f"{path.name} cell {i}: a code line of {len(line)} characters: {line}"
        for output in cell.get("outputs", []):
            text = "".join(output.get("text", "")) if output.get("output_type") == "stream" else ""
            for line in text.splitlines():
                assert len(line) <= TEXT_WIDTH, f"{path.name} cell {i}: a printed line of {len(line)}: {line}"
