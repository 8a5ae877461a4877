"""Grading learner notebooks against the chapters, with nbval doing the comparing.

nbval compares each cell's new output with the output stored in the file it runs, so
running it on a learner's file would trust whatever the learner saved. The grader runs
a temporary copy of each submission instead, in which

* every checkpoint cell of the chapter (the answer key) is found by cell id (or, when a
  notebook editor dropped the ids, by its exact source) and gets the chapter's source,
  tags and stored outputs, so nbval compares the learner's run with the chapter's;
* every other code cell keeps the learner's source but loses its outputs and is tagged
  ``nbval-ignore-output``, so it runs (the checkpoints need what it defines) but its
  output never decides the grade;
* a first, hidden cell moves the kernel into the chapter's folder, so relative paths and
  imports behave as they do in the chapter.

A checkpoint the submission lacks fails. The checks a checkpoint calls are imported again
right before it runs, so a learner's cell cannot replace them by defining the same name.
"""

from __future__ import annotations

import ast
import dataclasses
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import nbformat

from ._nbval_recorder import REPORT_VARIABLE
from .copies import METADATA_KEY, SOURCE_FIELD, tags

PACKAGE_ROOT = Path(__file__).resolve().parents[2]  # the folder holding yolo_lessons/
CHAPTERS = PACKAGE_ROOT / "notebooks"  # where the chapters live in a clone of the repository
SANITIZE = PACKAGE_ROOT / "tests" / "nbval_sanitize.cfg"
CELL_TIMEOUT_S = 300
NOTEBOOK_TIMEOUT_S = 900
IGNORE_OUTPUT = "nbval-ignore-output"
CHAPTER_NAME = re.compile(r"\d\d_[A-Za-z0-9_]+")


@dataclasses.dataclass
class CheckpointResult:
    checkpoint: str  # the checkpoint's call, e.g. "check_conv_block(ConvBlock)"
    cell_id: str
    passed: bool
    detail: str = ""  # the first line of what differed, or of the error


@dataclasses.dataclass
class NotebookGrade:
    path: Path
    key: Path | None
    checkpoints: list[CheckpointResult] = dataclasses.field(default_factory=list)
    other_failures: list[str] = dataclasses.field(default_factory=list)  # cells that do not decide the grade
    error: str = ""  # why the notebook could not be graded at all

    @property
    def passed(self) -> bool:
        return not self.error and bool(self.checkpoints) and all(c.passed for c in self.checkpoints)


def find_answer_key(path: Path, key_dirs: list[Path] | None = None) -> Path | None:
    """The chapter a notebook is graded against: the chapter named in its metadata (or,
    failing that, in its file name), looked for in ``key_dirs``, next to the notebook's
    folder, in it, and in the repository's ``notebooks/``. A chapter (a notebook in
    ``key_dirs`` or ``notebooks/``) is its own key; no other notebook is."""
    path = Path(path)
    notebook = nbformat.read(path, as_version=4)
    name = notebook.metadata.get(METADATA_KEY, {}).get(SOURCE_FIELD)
    if not name:
        match = CHAPTER_NAME.search(path.stem)  # "Copy of 02_darknet19 (1).ipynb" -> 02_darknet19
        name = f"{match.group(0)}.ipynb" if match else path.name
    trusted = [*(key_dirs or []), CHAPTERS]
    for folder in [*trusted[:-1], path.parent.parent, path.parent, CHAPTERS]:
        candidate = Path(folder) / name
        if not candidate.is_file() or _is_learner_copy(candidate):
            continue
        if candidate.resolve() == path.resolve() and Path(folder) not in trusted:
            continue  # a notebook outside the chapters' folders never grades itself
        return candidate
    return None


def _is_learner_copy(path: Path) -> bool:
    return bool(nbformat.read(path, as_version=4).metadata.get(METADATA_KEY, {}).get(SOURCE_FIELD))


def checkpoint_label(source: str) -> str:
    """A checkpoint's last line of code, its call into the checks, without the module path."""
    code = [line.strip() for line in source.splitlines() if line.strip() and not line.strip().startswith("#")]
    label = re.sub(r"^(\w+\.)+(?=\w+\()", "", code[-1]) if code else "(empty)"
    return label if len(label) <= 60 else label[:57] + "..."


def _python(source: str) -> str:
    """Cell source with IPython magics (``%pip ...``, ``!ls``) replaced by ``pass``."""
    return "\n".join(
        line[: len(line) - len(line.lstrip())] + "pass" if line.lstrip().startswith(("%", "!")) else line
        for line in source.splitlines()
    )


def _parse(source: str) -> ast.Module | None:
    try:
        return ast.parse(_python(source))
    except SyntaxError:
        return None


def check_imports(key) -> str:
    """The key's top-level imports of names its checkpoint cells use (and its solutions do
    not define), as lines of code to run again before each checkpoint."""
    cells = [c for c in key.cells if c.cell_type == "code"]
    used, defined = set(), set()
    for cell in cells:
        tree = _parse(cell.source)
        if tree is None:
            continue
        if "checkpoint" in tags(cell):
            used |= {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
        if "solution" in tags(cell):
            defined |= {getattr(n, "name", None) for n in tree.body}
    wanted = used - defined
    lines = []
    for cell in cells:
        if "solution" in tags(cell) or "checkpoint" in tags(cell) or (tree := _parse(cell.source)) is None:
            continue
        for node in tree.body:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                aliases = [a for a in node.names if (a.asname or a.name.split(".")[0]) in wanted]
                if aliases:
                    node = (
                        ast.ImportFrom(node.module, aliases, node.level)
                        if isinstance(node, ast.ImportFrom)
                        else ast.Import(aliases)
                    )
                    line = ast.unparse(node)
                    if line not in lines:
                        lines.append(line)
    return "\n".join(lines)


def graded_copy(submission, key, key_folder: Path):
    """The notebook nbval runs for ``submission``, and what each of its code cells stands for:
    ``("setup", None)``, ``("checkpoint", id)`` or ``("cell", n)`` (the submission's n-th code cell)."""
    checkpoints = {c.id: c for c in key.cells if c.cell_type == "code" and "checkpoint" in tags(c)}
    code = [c for c in submission.cells if c.cell_type == "code"]
    matched: dict[int, str] = {}
    for index, cell in enumerate(code):
        if cell.get("id") in checkpoints and cell.get("id") not in matched.values():
            matched[index] = cell.id
    for cell_id, expected in checkpoints.items():  # ids dropped by an editor: match the exact source
        if cell_id in matched.values():
            continue
        for index, cell in enumerate(code):
            if index not in matched and cell.source.strip() == expected.source.strip():
                matched[index] = cell_id
                break
    prefix = check_imports(key)
    setup = nbformat.v4.new_code_cell(
        f"import os, sys\nos.chdir({str(key_folder)!r})\nsys.path.insert(0, {str(key_folder)!r})"
    )
    setup.metadata["tags"] = [IGNORE_OUTPUT]
    cells, roles = [setup], [("setup", None)]
    for index, cell in enumerate(code):
        if index in matched:
            expected = checkpoints[matched[index]]
            graded = nbformat.v4.new_code_cell(
                (prefix + "\n" if prefix else "") + expected.source,
                outputs=expected.outputs,
                execution_count=expected.execution_count or 1,
            )
            roles.append(("checkpoint", matched[index]))
        else:
            graded = nbformat.v4.new_code_cell(cell.source)
            graded.metadata["tags"] = [IGNORE_OUTPUT]
            roles.append(("cell", index + 1))
        cells.append(graded)
    notebook = nbformat.v4.new_notebook(cells=cells, metadata={"kernelspec": key.metadata.get("kernelspec", {})})
    return notebook, roles


def _output_text(outputs) -> list[str]:
    text = []
    for output in outputs:
        if output.get("output_type") == "stream":
            text.append("".join(output.get("text", "")))
        elif "data" in output:
            text.append("".join(output["data"].get("text/plain", "")))
    return "".join(text).splitlines()


def _first_line(text: str) -> str:
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    return lines[0] if lines else ""


def describe_failure(record: dict | None, expected_outputs=None) -> str:
    """The first line of what went wrong in one cell's run."""
    if record is None:
        return "did not run (an earlier cell stopped the kernel or timed out)"
    for output in record["outputs"]:
        if output.get("output_type") == "error":
            value = _first_line(output.get("evalue", ""))
            return f"{output.get('ename', 'Error')}: {value}" if value else output.get("ename", "Error")
    if expected_outputs is not None and "outputs differ" in record["message"]:
        want, got = _output_text(expected_outputs), _output_text(record["outputs"])
        for i in range(max(len(want), len(got))):
            a = want[i] if i < len(want) else None
            b = got[i] if i < len(got) else None
            if a != b:
                return (
                    f"output line {i + 1}: expected {a!r}, got {b!r}"
                    if a is not None
                    else (f"output line {i + 1}: expected nothing more, got {b!r}")
                )
        return "the outputs differ (not in their text)"
    return _first_line(record["message"]) or record["outcome"]


def grade(
    paths: list[Path],
    key_dirs: list[Path] | None = None,
    cell_timeout: int = CELL_TIMEOUT_S,
    timeout: int | None = None,
) -> list[NotebookGrade]:
    """Grade each notebook (folders: every ``*.ipynb`` in them) in one nbval session."""
    notebooks = []
    for path in map(Path, paths):
        notebooks.extend(sorted(path.glob("*.ipynb")) if path.is_dir() else [path])
    grades = [NotebookGrade(path=p, key=None) for p in notebooks]
    with tempfile.TemporaryDirectory(prefix="yolo-lessons-grade-") as tmp:
        tmp = Path(tmp)
        runs = {}  # temporary file name -> (grade, roles, key notebook)
        for number, result in enumerate(grades):
            try:
                submission = nbformat.read(result.path, as_version=4)
            except Exception as exc:  # not a notebook at all
                result.error = f"cannot read the notebook: {_first_line(exc)}"
                continue
            result.key = find_answer_key(result.path, key_dirs)
            if result.key is None:
                result.error = "no answer key: the chapter this notebook comes from was not found"
                continue
            key = nbformat.read(result.key, as_version=4)
            notebook, roles = graded_copy(submission, key, result.key.resolve().parent)
            name = f"{number:03d}_{re.sub(r'[^A-Za-z0-9_]+', '_', result.path.stem)}.ipynb"
            nbformat.write(notebook, tmp / name)
            runs[name] = (result, roles, key)
        records = _run_nbval(tmp, sorted(runs), cell_timeout, timeout or NOTEBOOK_TIMEOUT_S * max(1, len(runs)))
        for name, (result, roles, key) in runs.items():
            _collect(result, roles, key, records, name)
    return grades


def _run_nbval(folder: Path, names: list[str], cell_timeout: int, timeout: int) -> dict:
    if not names:
        return {}
    (folder / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")
    report = folder / "report.json"
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "-p",
        "yolo_lessons.exercises._nbval_recorder",
        "-c",
        str(folder / "pytest.ini"),
        "--rootdir",
        str(folder),
        "--nbval",
        "--nbval-current-env",
        f"--nbval-cell-timeout={cell_timeout}",
    ]
    if SANITIZE.is_file():
        command.append(f"--nbval-sanitize-with={SANITIZE}")
    environment = dict(os.environ)
    environment["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PACKAGE_ROOT), environment.get("PYTHONPATH")]))
    environment[REPORT_VARIABLE] = str(report)
    try:
        finished = subprocess.run(
            command + names, cwd=folder, env=environment, capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"grading took longer than {timeout} s") from None
    if not report.is_file():
        raise RuntimeError(f"nbval did not run:\n{finished.stdout[-3000:]}\n{finished.stderr[-3000:]}")
    records: dict = {}
    for record in json.loads(report.read_text(encoding="utf-8")):
        records.setdefault((record["file"], record["cell"]), record)  # a setup failure comes first
    return records


def _collect(result: NotebookGrade, roles, key, records: dict, name: str) -> None:
    checkpoints = {c.id: c for c in key.cells if c.cell_type == "code" and "checkpoint" in tags(c)}
    seen = set()
    for cell_num, (role, what) in enumerate(roles):
        record = records.get((name, cell_num))
        passed = record is not None and record["outcome"] == "passed"
        if role == "checkpoint":
            seen.add(what)
            expected = checkpoints[what]
            result.checkpoints.append(
                CheckpointResult(
                    checkpoint_label(expected.source),
                    what,
                    passed,
                    "" if passed else describe_failure(record, expected.outputs),
                )
            )
        elif not passed and record is not None and record["outcome"] != "skipped":
            where = "the grader's setup cell" if role == "setup" else f"code cell {what}"
            result.other_failures.append(f"{where}: {describe_failure(record)}")
    for cell_id, expected in checkpoints.items():
        if cell_id not in seen:
            result.checkpoints.append(
                CheckpointResult(
                    checkpoint_label(expected.source),
                    cell_id,
                    False,
                    f"checkpoint cell missing (id {cell_id!r}): restore it from the chapter",
                )
            )
    order = list(checkpoints)
    result.checkpoints.sort(key=lambda c: order.index(c.cell_id))


def format_table(grades: list[NotebookGrade]) -> str:
    """One row per checkpoint: notebook, checkpoint, PASS/FAIL and what differed."""
    rows = [("notebook", "checkpoint", "result", "what differed")]
    notes = []
    for result in grades:
        if result.error:
            rows.append((str(result.path), "-", "FAIL", result.error))
        for c in result.checkpoints:
            rows.append((str(result.path), c.checkpoint, "PASS" if c.passed else "FAIL", c.detail))
        notes += [f"{result.path}, {failure} (not a checkpoint)" for failure in result.other_failures]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row[:3], widths, strict=True)) + "  " + row[3]
        for row in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths) + "  " + "-" * len(rows[0][3]))
    total = sum(len(r.checkpoints) for r in grades)
    passed = sum(c.passed for r in grades for c in r.checkpoints)
    lines.append("")
    lines += [f"note: {note}" for note in notes]
    lines.append(f"{passed} of {total} checkpoints passed")
    return "\n".join(line.rstrip() for line in lines)
