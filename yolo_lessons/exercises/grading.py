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
Lines a check prints for the learner's own prints and warnings (``NOTE_PREFIX``) are
removed before the comparison: they are shown, never graded.

Each notebook runs in its own nbval process under a time limit (``timeout``): a notebook
that loops forever is stopped and marked, a kernel that dies is noticed at once, and the
other notebooks are graded all the same. A class is a folder with one sub-folder (or one
file name) per student; ``format_table`` and ``write_csv`` give one row per student and
checkpoint, and a total per student.
"""

from __future__ import annotations

import ast
import csv
import dataclasses
import difflib
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat

from ..checkpoints.common import NOTE_PREFIX
from ._nbval_recorder import CRASH_EXIT_CODE, REPORT_VARIABLE
from .copies import METADATA_KEY, SOURCE_FIELD, tags

PACKAGE_ROOT = Path(__file__).resolve().parents[2]  # the folder holding yolo_lessons/
CHAPTERS = PACKAGE_ROOT / "notebooks"  # where the chapters live in a clone of the repository
SANITIZE = PACKAGE_ROOT / "tests" / "nbval_sanitize.cfg"
CELL_TIMEOUT_S = 300
NOTEBOOK_TIMEOUT_S = 600  # per notebook: every chapter's exercises run in well under a minute
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
    student: str = ""  # the sub-folder or file name that names the student ('' for one learner)
    checkpoints: list[CheckpointResult] = dataclasses.field(default_factory=list)
    other_failures: list[str] = dataclasses.field(default_factory=list)  # cells that do not decide the grade
    error: str = ""  # why the notebook could not be graded (fully)

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


def find_notebooks(paths: list[Path]) -> list[tuple[Path, str]]:
    """Every notebook to grade, with the student it belongs to.

    A file given by name belongs to '' (one learner). In a folder, a notebook in a
    sub-folder belongs to the sub-folder's name (``class/alice/02_darknet19.ipynb`` ->
    alice); one directly in the folder to its file name without the chapter's name
    (``class/bob_02_darknet19.ipynb`` -> bob, ``my-exercises/02_darknet19.ipynb`` -> '').
    Raises ``FileNotFoundError`` for a path that does not exist.
    """
    found = []
    for path in map(Path, paths):
        if not path.exists():
            raise FileNotFoundError(f"{path}: no such file or folder")
        if path.is_file():
            found.append((path, ""))
            continue
        for notebook in sorted(path.rglob("*.ipynb")):
            relative = notebook.relative_to(path)
            if any(part.startswith(".") for part in relative.parts):  # .ipynb_checkpoints and the like
                continue
            if len(relative.parts) > 1:
                found.append((notebook, relative.parts[0]))
            else:
                name = CHAPTER_NAME.sub("", notebook.stem).strip(" _-.()")
                found.append((notebook, name))
    return found


def _defined_names(notebook) -> set[str]:
    names = set()
    for cell in notebook.cells:
        if cell.cell_type == "code" and (tree := _parse(cell.source)) is not None:
            for node in tree.body:
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    names.add(node.name)
                elif isinstance(node, ast.Assign):
                    names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
    return names


def _setup_missing(submission, key) -> bool:
    """True when the chapter's setup cell (its first code cell, hidden in the book) is gone."""
    setup = next((c for c in key.cells if c.cell_type == "code"), None)
    if setup is None or "remove-cell" not in tags(setup):
        return False
    return not any(
        c.cell_type == "code" and (c.get("id") == setup.get("id") or c.source.strip() == setup.source.strip())
        for c in submission.cells
    )


def grade(
    paths: list[Path],
    key_dirs: list[Path] | None = None,
    cell_timeout: int = CELL_TIMEOUT_S,
    timeout: int | None = None,
) -> list[NotebookGrade]:
    """Grade each notebook (folders: every ``*.ipynb`` in them and their sub-folders), each in
    its own nbval run stopped after ``timeout`` seconds (default ``NOTEBOOK_TIMEOUT_S``)."""
    grades = [NotebookGrade(path=p, key=None, student=student) for p, student in find_notebooks(paths)]
    limit = timeout or NOTEBOOK_TIMEOUT_S
    with tempfile.TemporaryDirectory(prefix="yolo-lessons-grade-") as tmp:
        tmp = Path(tmp)
        _write_config(tmp)
        runs = {}  # temporary file name -> (grade, roles, key notebook, submission)
        for number, result in enumerate(grades):
            try:
                submission = nbformat.read(result.path, as_version=4)
            except Exception as exc:  # not a notebook at all
                result.error = f"cannot read the notebook ({_first_line(exc)}): is it a Jupyter notebook?"
                continue
            result.key = find_answer_key(result.path, key_dirs)
            if result.key is None:
                result.error = (
                    "no answer key: the chapter this notebook comes from was not found; name the chapter's "
                    "folder with --key-dir DIR (or keep the notebook's chapter name, e.g. 02_darknet19.ipynb)"
                )
                continue
            key = nbformat.read(result.key, as_version=4)
            notebook, roles = graded_copy(submission, key, result.key.resolve().parent)
            name = f"{number:03d}_{re.sub(r'[^A-Za-z0-9_]+', '_', result.path.stem)}.ipynb"
            nbformat.write(notebook, tmp / name)
            runs[name] = (result, roles, key, submission)
        records, statuses = _run_nbval(tmp, sorted(runs), cell_timeout, limit)
        for name, (result, roles, key, submission) in runs.items():
            _collect(result, roles, key, records, name, _defined_names(submission))
            stopped = _stopped_at(records, roles, name, key)
            if statuses.get(name) == "timeout":
                result.error = (
                    f"stopped after {limit} s (the time limit) while running {stopped}: "
                    "an endless loop, or far too slow; the checkpoints after it were not graded"
                )
            elif statuses.get(name) == "crashed":
                result.error = f"the kernel crashed while running {stopped}; the checkpoints after it were not graded"
            elif _setup_missing(submission, key):
                result.error = (
                    "the setup cell (the chapter's first code cell: imports and seed) is missing: "
                    "copy it back from the chapter, then grade again"
                )
    return grades


def _write_config(folder: Path) -> None:
    """pytest.ini, and a sanitize file: the project's patterns plus one that drops the lines a
    check prints for the learner's own prints and warnings, so those are never compared."""
    (folder / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")
    patterns = SANITIZE.read_text(encoding="utf-8") + "\n" if SANITIZE.is_file() else ""
    patterns += "[learner output, shown and not graded]\n"
    patterns += f"regex: (?m)^{re.escape(NOTE_PREFIX)}.*(?:\\n|$)\nreplace: \n"
    (folder / "sanitize.cfg").write_text(patterns, encoding="utf-8")


def _run_nbval(folder: Path, names: list[str], cell_timeout: int, timeout: int) -> tuple[dict, dict[str, str]]:
    """Run the notebooks under nbval, in one session while all goes well.

    The recorder reports each cell as it starts; a notebook still running ``timeout``
    seconds after its first cell started is stopped (the whole session with it, in its
    own process group), marked "timeout", and a new session grades the notebooks after
    it. A kernel that dies ends the session the same way, marked "crashed". Returns the
    records by (file, cell) and the status of each stopped notebook."""
    report = folder / "report.jsonl"
    statuses: dict[str, str] = {}
    remaining = list(names)
    while remaining:
        stopped, output = _one_session(folder, remaining, report, cell_timeout, timeout)
        if stopped is None:
            if not report.is_file():
                raise RuntimeError(f"nbval did not run: {output[-3000:]}")
            break
        name, status = stopped
        statuses[name] = status
        remaining = remaining[remaining.index(name) + 1 :]
    records: dict = {}
    lines = report.read_text(encoding="utf-8").splitlines() if report.is_file() else []
    for line in lines:
        record = json.loads(line)
        key = (record["file"], record["cell"])
        if key not in records or records[key]["outcome"] == "started":
            records[key] = record  # a cell's first result counts (a setup failure comes first)
    return records, statuses


def _one_session(
    folder: Path, names: list[str], report: Path, cell_timeout: int, timeout: int
) -> tuple[tuple[str, str] | None, str]:
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
        f"--nbval-cell-timeout={min(cell_timeout, timeout)}",
        f"--nbval-sanitize-with={folder / 'sanitize.cfg'}",
        *names,
    ]
    environment = dict(os.environ)
    environment["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PACKAGE_ROOT), environment.get("PYTHONPATH")]))
    environment[REPORT_VARIABLE] = str(report)
    log = folder / "session.log"
    with log.open("w", encoding="utf-8") as output:
        process = subprocess.Popen(
            command, cwd=folder, env=environment, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
        )
        current, since, seen = None, 0.0, 0
        stopped = None
        try:
            while process.poll() is None:
                time.sleep(0.2)
                if report.is_file():
                    lines = report.read_text(encoding="utf-8").splitlines()
                    for line in lines[seen:]:
                        name = json.loads(line)["file"]
                        if name != current:
                            current, since = name, time.monotonic()
                    seen = len(lines)
                if current is not None and time.monotonic() - since > timeout:
                    stopped = (current, "timeout")
                    break
        finally:
            try:
                os.killpg(process.pid, signal.SIGKILL)  # nbval and the kernels it started
            except (ProcessLookupError, PermissionError):
                pass
            process.wait()
    if stopped is None and process.returncode == CRASH_EXIT_CODE and current is not None:
        stopped = (current, "crashed")
    return stopped, log.read_text(encoding="utf-8", errors="replace")


def _stopped_at(records: dict, roles, name: str, key) -> str:
    """Which cell was running when the run stopped, in the learner's words."""
    labels = {c.id: checkpoint_label(c.source) for c in key.cells if c.cell_type == "code"}
    for cell_num in range(len(roles) - 1, -1, -1):
        record = records.get((name, cell_num))
        if record is not None and record["outcome"] in ("started", "crashed"):
            role, what = roles[cell_num]
            if role == "cell":
                return f"code cell {what}"
            return f"the checkpoint {labels[what]}" if role == "checkpoint" else "the grader's setup cell"
    return "the notebook"


def _name_hint(detail: str, defined: set[str]) -> str:
    """For "NameError: name 'X' is not defined", say which definition the checkpoint wants."""
    match = re.search(r"NameError: name '(\w+)' is not defined", detail)
    if not match:
        return detail
    wanted = match.group(1)
    close = difflib.get_close_matches(wanted, sorted(defined), n=1)
    guess = f" (your notebook defines {close[0]}: a typo?)" if close else ""
    return f"{wanted} is not defined: the checkpoint uses that exact name{guess}; define it in the exercise's cell"


def _collect(result: NotebookGrade, roles, key, records: dict, name: str, defined: set[str] = frozenset()) -> None:
    checkpoints = {c.id: c for c in key.cells if c.cell_type == "code" and "checkpoint" in tags(c)}
    seen = set()
    for cell_num, (role, what) in enumerate(roles):
        record = records.get((name, cell_num))
        if record is not None and record["outcome"] == "started":
            record = None  # stopped while running
        passed = record is not None and record["outcome"] == "passed"
        if role == "checkpoint":
            seen.add(what)
            expected = checkpoints[what]
            detail = "" if passed else _name_hint(describe_failure(record, expected.outputs), defined)
            result.checkpoints.append(CheckpointResult(checkpoint_label(expected.source), what, passed, detail))
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


def rows(grades: list[NotebookGrade]) -> list[dict[str, str]]:
    """One row per student and checkpoint (and per notebook that could not be graded), then
    one "total" row per student: student, notebook, checkpoint, result, detail."""
    table: list[dict[str, str]] = []
    totals: dict[str, list[int]] = {}
    for result in grades:
        passed_total = totals.setdefault(result.student, [0, 0])
        if result.error:
            table.append(_row(result, "-", "FAIL", result.error))
        for c in result.checkpoints:
            table.append(_row(result, c.checkpoint, "PASS" if c.passed else "FAIL", c.detail))
            passed_total[0] += c.passed
            passed_total[1] += 1
    for student, (passed, total) in totals.items():
        table.append({"student": student, "notebook": "", "checkpoint": "total", "result": f"{passed}/{total}",
                      "detail": f"{passed} of {total} checkpoints passed"})
    return table


def _row(result: NotebookGrade, checkpoint: str, outcome: str, detail: str) -> dict[str, str]:
    return {"student": result.student, "notebook": str(result.path), "checkpoint": checkpoint,
            "result": outcome, "detail": detail}


def write_csv(grades: list[NotebookGrade], target: Path) -> None:
    """The rows of ``rows(grades)`` as a CSV file for a gradebook."""
    with Path(target).open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["student", "notebook", "checkpoint", "result", "detail"])
        writer.writeheader()
        writer.writerows(rows(grades))


def format_table(grades: list[NotebookGrade]) -> str:
    """One row per (student and) checkpoint: notebook, checkpoint, PASS/FAIL and what differed,
    a total per student when there are several, and notes on cells that do not decide the grade."""
    with_students = any(result.student for result in grades)
    columns = ["student", "notebook", "checkpoint", "result"] if with_students else ["notebook", "checkpoint", "result"]
    table = rows(grades)
    body = [r for r in table if r["checkpoint"] != "total"]
    lines_rows = [columns + ["what differed"]] + [[r[c] for c in columns] + [r["detail"]] for r in body]
    widths = [max(len(row[i]) for row in lines_rows) for i in range(len(columns))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row[:-1], widths, strict=True)) + "  " + row[-1]
             for row in lines_rows]
    lines.insert(1, "  ".join("-" * w for w in widths) + "  " + "-" * len("what differed"))
    lines.append("")
    for result in grades:
        lines += [f"note: {result.path}, {failure} (not a checkpoint)" for failure in result.other_failures]
    if with_students:
        lines += [f"{r['student'] or '(no name)'}: {r['detail']}" for r in table if r["checkpoint"] == "total"]
    total = sum(len(r.checkpoints) for r in grades)
    passed = sum(c.passed for r in grades for c in r.checkpoints)
    lines.append(f"{passed} of {total} checkpoints passed")
    return "\n".join(line.rstrip() for line in lines)
