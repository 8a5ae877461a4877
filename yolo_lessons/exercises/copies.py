"""Learner copies: a chapter with its solutions replaced by stubs.

A solution cell holds only imports and top-level ``def`` / ``class`` definitions, each
with a docstring, and one ``# Hint: ...`` comment (CONTRIBUTING.md); constants the task
gives (``SPEC = [...]``) are tolerated. Its stub keeps the imports and constants as
written, every signature and every docstring, and replaces each body -- each method's
body, for a class -- with ``raise NotImplementedError("<hint>")``.
"""

from __future__ import annotations

import ast
import copy
import enum
import json
import re
from pathlib import Path

import nbformat

# Notebook metadata of a learner copy: {"yolo_lessons": {"exercise_of": "<chapter file name>"}}.
METADATA_KEY = "yolo_lessons"
SOURCE_FIELD = "exercise_of"
NOTE_CELL_ID = "exercise-version"
HINT_LINE = re.compile(r"^\s*#\s*Hint:\s*(?P<hint>.+?)\s*$")


class ExerciseFormatError(ValueError):
    """A chapter's solution cell does not follow the exercise conventions."""


def tags(cell) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def stub_solution(source: str) -> str:
    """The learner's version of a solution cell: signatures, docstrings, hint; no answers."""
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        raise ExerciseFormatError(f"a solution cell must be plain Python: {exc}") from None
    lines = source.splitlines()
    hints = [(number, match["hint"]) for number, line in enumerate(lines, 1) if (match := HINT_LINE.match(line))]
    if not hints:
        raise ExerciseFormatError("a solution cell needs one '# Hint: ...' comment line")
    pieces, simple = [], []  # simple: a run of imports and constants, kept as written
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom, ast.Assign, ast.AnnAssign)):
            simple.append(node)
            continue
        if simple:
            pieces.append(_verbatim(simple, lines))
            simple = []
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            pieces.append(_stub_definition(node, lines, _hint_for(node, hints, tree)))
        else:
            raise ExerciseFormatError(
                f"line {node.lineno} of a solution cell is a {type(node).__name__}: a solution cell holds "
                "only imports, constants and def / class definitions"
            )
    if simple:
        pieces.append(_verbatim(simple, lines))
    if not any(isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) for n in tree.body):
        raise ExerciseFormatError("a solution cell must define at least one function or class")
    return "\n\n\n".join(pieces)


def _verbatim(nodes: list[ast.stmt], lines: list[str]) -> str:
    """The source lines of consecutive statements, without the hint."""
    kept = [line for line in lines[nodes[0].lineno - 1 : nodes[-1].end_lineno] if not HINT_LINE.match(line)]
    return "\n".join(kept).strip("\n")


def _hint_for(node: ast.stmt, hints: list[tuple[int, str]], tree: ast.Module) -> str:
    """The hint written inside ``node``, else the hints written outside every definition."""
    own = [hint for line, hint in hints if node.lineno <= line <= node.end_lineno]
    if own:
        return " ".join(own)
    inside_any = {line for line, _ in hints for other in tree.body if other.lineno <= line <= (other.end_lineno or 0)}
    loose = [hint for line, hint in hints if line not in inside_any]
    return " ".join(loose or [hint for _, hint in hints])


def _stub_definition(node, lines: list[str], hint: str) -> str:
    first = min([node.lineno] + [d.lineno for d in node.decorator_list])
    body = node.body
    if body[0].lineno == node.lineno:  # a one-liner such as `def f(): ...`: rebuild its header
        bare = copy.deepcopy(node)
        bare.body = [ast.Pass()]
        header = [" " * node.col_offset + line for line in ast.unparse(bare).splitlines()[:-1]]
        indent = " " * (node.col_offset + 4)
    else:
        header = lines[first - 1 : body[0].lineno - 1]
        while header and (not header[-1].strip() or header[-1].strip().startswith("#")):
            header.pop()  # comments (the hint) and blank lines between the signature and the body
        indent = lines[body[0].lineno - 1][: body[0].col_offset]
    out = list(header)
    rest = body
    if _is_docstring(body[0]):
        if body[0].lineno == node.lineno:
            out.append(indent + ast.unparse(body[0]))
        else:
            out.extend(lines[body[0].lineno - 1 : body[0].end_lineno])
        rest = body[1:]
    if isinstance(node, ast.ClassDef):
        methods = [s for s in rest if isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef))]
        for method in methods:
            out.append("")
            out.append(_stub_definition(method, lines, hint))
        if not methods and not _is_docstring(body[0]):
            out.append(indent + "pass")
    else:
        out.append(f"{indent}raise NotImplementedError({json.dumps(hint, ensure_ascii=False)})")
    return "\n".join(out)


def _is_docstring(statement: ast.stmt) -> bool:
    return (
        isinstance(statement, ast.Expr)
        and isinstance(statement.value, ast.Constant)
        and isinstance(statement.value.value, str)
    )


def note_cell(chapter_name: str):
    """The markdown cell at the top of every learner copy."""
    text = (
        f"> **Exercise version.** This is the learner copy of the chapter `{chapter_name}`. Every solution\n"
        "> cell under *Exercises* is a stub: the signature and docstring are kept and the body raises\n"
        "> `NotImplementedError` with a hint. Replace each body with your code and run the checkpoint cell\n"
        "> below it: it prints a short report, or raises an error that names the mistake when it is a known\n"
        "> one. To grade the whole notebook, run it from a clone of the repository:\n"
        "> `python -m yolo_lessons.exercises grade <this notebook>`. The grader runs your notebook afresh\n"
        "> and compares the checkpoints with the chapter, so the outputs saved in your file do not count."
    )
    cell = nbformat.v4.new_markdown_cell(text)
    cell["id"] = NOTE_CELL_ID
    return cell


def learner_copy(chapter, chapter_name: str):
    """The learner copy of a chapter notebook (a new notebook; ``chapter`` is not changed)."""
    notebook = copy.deepcopy(chapter)
    solutions = 0
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type != "code":
            continue
        if "solution" in tags(cell):
            try:
                cell.source = stub_solution(cell.source)
            except ExerciseFormatError as exc:
                raise ExerciseFormatError(f"{chapter_name}, cell {index}: {exc}") from None
            solutions += 1
        if "solution" in tags(cell) or "checkpoint" in tags(cell):
            cell.outputs = []
            cell.execution_count = None
    if not solutions:
        raise ExerciseFormatError(f"{chapter_name} has no cell tagged 'solution'")
    first = notebook.cells[0] if notebook.cells else None
    title_first = first is not None and first.cell_type == "markdown" and first.source.lstrip().startswith("# ")
    notebook.cells.insert(1 if title_first else 0, note_cell(chapter_name))
    notebook.metadata[METADATA_KEY] = {SOURCE_FIELD: chapter_name}
    nbformat.validate(notebook)
    return notebook


def notebook_text(notebook) -> str:
    """A notebook as ``nbformat.write`` stores it."""
    text = nbformat.writes(notebook)
    return text if text.endswith("\n") else text + "\n"


class WriteStatus(enum.Enum):
    WRITTEN = "written"
    UNCHANGED = "unchanged"
    OVERWRITTEN = "overwritten (--force)"
    REFUSED = "refused"


def write_learner_copy(chapter_path: Path, out_dir: Path, force: bool = False) -> tuple[Path, WriteStatus]:
    """Write the learner copy of ``chapter_path`` into ``out_dir`` under the chapter's file name.

    An existing file that differs from what would be written is left alone (``REFUSED``)
    unless ``force``: it may hold a learner's work.
    """
    chapter_path, out_dir = Path(chapter_path), Path(out_dir)
    chapter = nbformat.read(chapter_path, as_version=4)
    if chapter.metadata.get(METADATA_KEY, {}).get(SOURCE_FIELD):
        raise ExerciseFormatError(f"{chapter_path} is itself a learner copy; pass the chapter notebook")
    text = notebook_text(learner_copy(chapter, chapter_path.name))
    target = out_dir / chapter_path.name
    if target.resolve() == chapter_path.resolve():
        raise ExerciseFormatError(f"{target} is the chapter itself; choose another --out folder")
    if target.exists():
        if target.read_text(encoding="utf-8") == text:
            return target, WriteStatus.UNCHANGED
        if not force:
            return target, WriteStatus.REFUSED
        status = WriteStatus.OVERWRITTEN
    else:
        status = WriteStatus.WRITTEN
    out_dir.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")
    return target, status
