"""Learner copies and the grader (yolo_lessons.exercises).

The edge cases run on a small fixture chapter, tests/fixtures/mini_chapter.ipynb (two
exercises: a ConvBlock class and a function, checked by tests/fixtures/mini_checks.py).
The real chapters are graded a few times in all, by module-scoped fixtures, each variant
cut down to the setup cell and the Exercises section (nbval runs the whole chapters
anyway): the chapters themselves, their learner copies as generated, the learner copies
with the reference solutions filled in, and one known mistake planted per copy.
"""

from __future__ import annotations

import ast
import builtins
import copy
import csv
import os
import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from yolo_lessons.exercises import find_answer_key, format_table, grade, learner_copy, stub_solution
from yolo_lessons.exercises.__main__ import main
from yolo_lessons.exercises.copies import ExerciseFormatError, notebook_text, tags
from yolo_lessons.exercises.grading import PACKAGE_ROOT, _python, graded_copy

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"
MINI = FIXTURES / "mini_chapter.ipynb"
CHAPTERS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
EXERCISES = ROOT / "notebooks" / "exercises"


def read(path: Path):
    return nbformat.read(path, as_version=4)


def write(notebook, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, path)
    return path


def cell(notebook, cell_id: str):
    (found,) = [c for c in notebook.cells if c.get("id") == cell_id]
    return found


def solution_cells(notebook) -> list:
    return [c for c in notebook.cells if c.cell_type == "code" and "solution" in tags(c)]


def checkpoint_ids(notebook) -> list[str]:
    return [c.id for c in notebook.cells if c.cell_type == "code" and "checkpoint" in tags(c)]


def filled(copy_, chapter):
    """A learner copy with every stub replaced by the chapter's reference solution."""
    notebook = copy.deepcopy(copy_)
    for solution in solution_cells(chapter):
        cell(notebook, solution.id).source = solution.source
    return notebook


def plant(notebook, cell_id: str, old: str, new: str):
    """``notebook`` with ``old`` replaced by ``new`` in one cell, which must contain ``old``."""
    notebook = copy.deepcopy(notebook)
    target = cell(notebook, cell_id)
    assert target.source.count(old) == 1, f"the mistake was not planted: {old!r} not found once"
    target.source = target.source.replace(old, new)
    return notebook


def result_of(grades, path: Path):
    (found,) = [g for g in grades if g.path == path]
    return found


def details(result) -> dict[str, str]:
    return {c.cell_id: c.detail for c in result.checkpoints}


# --------------------------------------------------------------------------- stubs


CONV_BLOCK_SOLUTION = '''from torch import nn


@some_decorator
class MyConvBlock(nn.Module):
    """Conv2d -> BatchNorm2d -> LeakyReLU(0.1)."""

    # Hint: bias=False, then BatchNorm2d, then LeakyReLU(0.1)

    def __init__(self, in_channels: int, out_channels: int,
                 kernel_size: int, stride: int = 1):
        """Build the three layers."""
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, bias=False)

    def forward(self, x):
        return self.act(self.bn(self.conv(x)))


def twice(n: int) -> int: return 2 * n
'''


def test_a_stub_keeps_imports_signatures_and_docstrings_and_raises_the_hint():
    stub = stub_solution(CONV_BLOCK_SOLUTION)
    hint = 'raise NotImplementedError("bias=False, then BatchNorm2d, then LeakyReLU(0.1)")'
    assert stub == (
        "from torch import nn\n\n\n"
        "@some_decorator\n"
        "class MyConvBlock(nn.Module):\n"
        '    """Conv2d -> BatchNorm2d -> LeakyReLU(0.1)."""\n\n'
        "    def __init__(self, in_channels: int, out_channels: int,\n"
        "                 kernel_size: int, stride: int = 1):\n"
        '        """Build the three layers."""\n'
        f"        {hint}\n\n"
        "    def forward(self, x):\n"
        f"        {hint}\n\n\n"
        "def twice(n: int) -> int:\n"
        f"    {hint}"
    )


def test_constants_the_task_gives_are_kept_as_written():
    source = "import torch\nSPEC = [\n    (32, 3),  # first\n]\n\n\ndef f():\n    # Hint: use SPEC\n    return SPEC\n"
    assert stub_solution(source) == (
        'import torch\nSPEC = [\n    (32, 3),  # first\n]\n\n\ndef f():\n    raise NotImplementedError("use SPEC")'
    )


def test_a_function_stub_takes_the_hint_written_inside_it():
    source = (
        'def f(x):\n    """Doc."""\n    # Hint: add one\n    return x + 1\n\n\n'
        "def g():\n    # Hint: two\n    return 2\n"
    )
    assert stub_solution(source) == (
        'def f(x):\n    """Doc."""\n    raise NotImplementedError("add one")\n\n\n'
        'def g():\n    raise NotImplementedError("two")'
    )


@pytest.mark.parametrize(
    "source, complaint",
    [
        ("def f():\n    return 1\n", "Hint"),
        ("# Hint: h\nprint(1)\n\ndef f():\n    return 1\n", "only imports, constants and def / class"),
        ("# Hint: h\nimport torch\n", "at least one function or class"),
        ("# Hint: h\ndef f(:\n", "plain Python"),
    ],
)
def test_a_solution_cell_outside_the_conventions_is_refused(source, complaint):
    with pytest.raises(ExerciseFormatError, match=complaint):
        stub_solution(source)


# --------------------------------------------------------------------------- learner copies


def test_a_learner_copy_stubs_solutions_clears_their_outputs_and_keeps_everything_else():
    chapter = read(MINI)
    learner = learner_copy(chapter, "mini_chapter.ipynb")
    assert learner.metadata["yolo_lessons"] == {"exercise_of": "mini_chapter.ipynb"}
    assert learner.cells[1].id == "exercise-version" and "Exercise version" in learner.cells[1].source
    assert [c.id for c in learner.cells] == [chapter.cells[0].id, "exercise-version"] + [
        c.id for c in chapter.cells[1:]
    ]
    for original in chapter.cells:
        new = cell(learner, original.id)
        if "solution" in tags(original):
            assert "raise NotImplementedError(" in new.source and new.source != original.source
            assert new.outputs == [] and new.execution_count is None
        elif "checkpoint" in tags(original):
            assert new.source == original.source and new.outputs == [] and new.execution_count is None
        else:
            assert new == original
    stub = cell(learner, "solution-conv-block").source
    assert '"""Build the three layers."""' in stub and "nn.Conv2d" not in stub and "# Hint" not in stub


def test_make_writes_says_unchanged_and_never_overwrites_an_edited_copy_without_force(tmp_path, capsys):
    out = tmp_path / "exercises"
    target = out / MINI.name
    assert main(["make", str(MINI), "--out", str(out)]) == 0
    assert "written" in capsys.readouterr().out
    written = target.read_text()
    assert written == notebook_text(learner_copy(read(MINI), MINI.name))
    assert main(["make", str(MINI), "--out", str(out)]) == 0
    assert "unchanged" in capsys.readouterr().out

    learners_work = written.replace("raise NotImplementedError(", "return 3  # (")
    target.write_text(learners_work)
    assert main(["make", str(MINI), "--out", str(out)]) == 1
    assert "refused" in capsys.readouterr().err
    assert target.read_text() == learners_work, "a learner's work was overwritten"
    assert main(["make", str(MINI), "--out", str(out), "--force"]) == 0
    assert "overwritten" in capsys.readouterr().out
    assert target.read_text() == written


def test_make_refuses_a_learner_copy_as_its_input(tmp_path, capsys):
    write(learner_copy(read(MINI), MINI.name), tmp_path / "copy.ipynb")
    assert main(["make", str(tmp_path / "copy.ipynb"), "--out", str(tmp_path / "out")]) == 1
    assert "itself a learner copy" in capsys.readouterr().err


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.name)
def test_the_committed_learner_copy_is_what_make_writes_from_the_chapter(chapter):
    committed = EXERCISES / chapter.name
    assert committed.is_file(), (
        f"run: python -m yolo_lessons.exercises make {chapter.relative_to(ROOT)} --out notebooks/exercises"
    )
    assert committed.read_text() == notebook_text(learner_copy(read(chapter), chapter.name)), (
        f"{committed.relative_to(ROOT)} is stale: regenerate it with make --force"
    )


def test_every_committed_learner_copy_has_its_chapter():
    chapters = {p.name for p in CHAPTERS}
    assert all(p.name in chapters for p in EXERCISES.glob("*.ipynb"))


# --------------------------------------------------------------------------- the answer key


def test_the_answer_key_is_found_by_metadata_then_by_file_name(tmp_path):
    learner = learner_copy(read(MINI), MINI.name)
    assert find_answer_key(write(learner, tmp_path / "anything.ipynb"), [FIXTURES]) == MINI
    del learner.metadata["yolo_lessons"]
    assert find_answer_key(write(learner, tmp_path / "mini_chapter.ipynb"), [FIXTURES]) == MINI
    assert find_answer_key(write(learner, tmp_path / "renamed.ipynb"), [FIXTURES]) is None
    assert find_answer_key(MINI, [FIXTURES]) == MINI  # a chapter is its own key
    if CHAPTERS:  # a Colab download keeps the chapter's name inside its own
        colab = write(learner, tmp_path / f"Copy of {CHAPTERS[0].stem} (1).ipynb")
        assert find_answer_key(colab) == CHAPTERS[0]


def test_the_graded_copy_takes_checkpoints_from_the_key_and_trusts_no_learner_output():
    chapter = read(MINI)
    learner = learner_copy(chapter, MINI.name)
    faked = cell(learner, "checkpoint-grid-cells")
    faked.source = "# NBVAL_SKIP\nprint('ok')"
    faked.metadata["tags"] = ["nbval-skip", "raises-exception"]
    faked.outputs = [nbformat.v4.new_output("stream", name="stdout", text="ok\n")]
    cell(learner, "before").outputs = []
    learner.cells.remove(cell(learner, "checkpoint-conv-block"))
    graded, roles = graded_copy(learner, chapter, FIXTURES)
    assert roles[0] == ("setup", None) and str(FIXTURES) in graded.cells[0].source
    by_role = dict(zip(roles, graded.cells, strict=True))
    grid = by_role[("checkpoint", "checkpoint-grid-cells")]
    assert grid.source.endswith(cell(chapter, "checkpoint-grid-cells").source)
    assert grid.source.startswith("from mini_checks import")  # the checks are imported again first
    assert grid.outputs == cell(chapter, "checkpoint-grid-cells").outputs and "tags" not in grid.metadata
    assert ("checkpoint", "checkpoint-conv-block") not in roles  # deleted: graded as missing
    for (role, _), graded_cell in zip(roles, graded.cells, strict=True):
        if role != "checkpoint":
            assert graded_cell.outputs == [] and graded_cell.metadata["tags"] == ["nbval-ignore-output"]


# --------------------------------------------------------------------------- grading the fixture

# Known ConvBlock mistakes planted in the fixture's reference solution, and the words
# yolo_lessons.checkpoints.common.describe_conv_block_mistakes names each with.
CONV_BLOCK_MISTAKES = {
    "batchnorm-missing": (
        [
            ("        self.bn = nn.BatchNorm2d(out_channels)\n", ""),
            ("self.act(self.bn(self.conv(x)))", "self.act(self.conv(x))"),
        ],
        "CheckpointError: BatchNorm is missing",
    ),
    "batchnorm-unused": (
        [("self.act(self.bn(self.conv(x)))", "self.act(self.conv(x))")],
        "CheckpointError: BatchNorm is built but never used in forward (bn)",
    ),
    "conv-bias": ([("bias=False", "bias=True")], "CheckpointError: conv bias before BatchNorm (conv)"),
    "slope-0.01": ([("nn.LeakyReLU(0.1)", "nn.LeakyReLU(0.01)")], "CheckpointError: LeakyReLU slope is 0.01"),
}
GRID_SIDE_MISTAKE = ("return side * side", "return side")
GRID_SIDE_MESSAGE = "CheckpointError: grid_cells(416, 32) returned the grid's side, 13; count its cells"


@pytest.fixture(scope="module")
def mini(tmp_path_factory):
    """Every fixture variant graded in one nbval session: {variant: (path, grade)}."""
    folder = tmp_path_factory.mktemp("mini")
    chapter = read(MINI)
    stubbed = learner_copy(chapter, MINI.name)
    reference = filled(stubbed, chapter)
    variants = {"chapter": MINI, "as-generated": write(stubbed, folder / "as-generated.ipynb")}
    variants["filled"] = write(reference, folder / "filled.ipynb")
    for name, (edits, _) in CONV_BLOCK_MISTAKES.items():
        planted = reference
        for old, new in edits:
            planted = plant(planted, "solution-conv-block", old, new)
        variants[name] = write(planted, folder / f"{name}.ipynb")
    wrong = plant(reference, "solution-grid-cells", *GRID_SIDE_MISTAKE)

    ran = copy.deepcopy(wrong)  # the learner ran the wrong answer and saved the notebook
    environment = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PACKAGE_ROOT), environment]))
    try:
        NotebookClient(ran, timeout=120, allow_errors=True, resources={"metadata": {"path": str(FIXTURES)}}).execute()
    finally:
        os.environ.pop("PYTHONPATH") if environment is None else os.environ.update(PYTHONPATH=environment)
    assert any(o.output_type == "error" for o in cell(ran, "checkpoint-grid-cells").outputs)
    variants["ran-and-saved"] = write(ran, folder / "ran-and-saved.ipynb")

    cleared = copy.deepcopy(wrong)
    for c in cleared.cells:
        if c.cell_type == "code":
            c.outputs, c.execution_count = [], None
    variants["cleared"] = write(cleared, folder / "cleared.ipynb")

    faked = copy.deepcopy(wrong)  # the checkpoint edited to print what the chapter printed, tags changed
    grid = cell(faked, "checkpoint-grid-cells")
    expected = "".join(cell(chapter, "checkpoint-grid-cells").outputs[0]["text"])
    grid.source = f"# NBVAL_SKIP\nprint({expected.rstrip()!r})"
    grid.metadata["tags"] = ["raises-exception", "nbval-skip"]
    grid.outputs = cell(chapter, "checkpoint-grid-cells").outputs
    variants["checkpoint-faked"] = write(faked, folder / "checkpoint-faked.ipynb")

    shadowed = plant(  # a solution cell that also brings its own "check"
        wrong,
        "solution-grid-cells",
        "def grid_cells",
        f"def check_grid_cells(fn):\n    print({expected.rstrip()!r})\n\n\ndef grid_cells",
    )
    variants["check-shadowed"] = write(shadowed, folder / "check-shadowed.ipynb")

    deleted = copy.deepcopy(reference)
    deleted.cells.remove(cell(deleted, "checkpoint-conv-block"))
    retagged = cell(deleted, "checkpoint-grid-cells")
    retagged.metadata["tags"] = []  # a renamed tag does not hide a checkpoint either
    variants["checkpoint-deleted"] = write(deleted, folder / "checkpoint-deleted.ipynb")

    no_ids = copy.deepcopy(reference)  # as an editor that drops cell ids stores it
    no_ids.nbformat_minor = 4
    for c in no_ids.cells:
        del c["id"]
    path = folder / "no-ids.ipynb"
    path.write_text(nbformat.writes(no_ids, version=nbformat.NO_CONVERT))
    variants["no-ids"] = path

    grades = grade(list(variants.values()), key_dirs=[FIXTURES])
    return {name: (path, result_of(grades, path)) for name, path in variants.items()}


def test_the_fixture_chapter_grades_100_percent(mini):
    _, result = mini["chapter"]
    assert result.passed and len(result.checkpoints) == 2 and not result.other_failures, format_table([result])


def test_a_learner_copy_as_generated_fails_every_checkpoint_and_nothing_else(mini):
    _, result = mini["as-generated"]
    assert [c.passed for c in result.checkpoints] == [False, False]
    assert all(c.detail.startswith("CheckpointError: not implemented yet: ") for c in result.checkpoints)
    assert "Darknet's leaky slope 0.1" in details(result)["checkpoint-conv-block"]  # the stub's hint
    assert result.other_failures == []


def test_a_learner_copy_filled_with_the_reference_solutions_passes(mini):
    _, result = mini["filled"]
    assert result.passed and not result.other_failures, format_table([result])


@pytest.mark.parametrize("mistake", CONV_BLOCK_MISTAKES)
def test_a_planted_conv_block_mistake_fails_with_its_own_message(mini, mistake):
    _, result = mini[mistake]
    assert details(result)["checkpoint-conv-block"].startswith(CONV_BLOCK_MISTAKES[mistake][1])
    assert details(result)["checkpoint-grid-cells"] == ""  # the other exercise still passes
    assert not result.passed


@pytest.mark.parametrize("variant", ["ran-and-saved", "cleared", "checkpoint-faked", "check-shadowed"])
def test_a_wrong_answer_fails_whatever_the_notebook_stores(mini, variant):
    _, result = mini[variant]
    assert details(result) == {"checkpoint-conv-block": "", "checkpoint-grid-cells": GRID_SIDE_MESSAGE}
    assert not result.passed


def test_a_deleted_checkpoint_fails_as_missing(mini):
    _, result = mini["checkpoint-deleted"]
    assert details(result)["checkpoint-conv-block"].startswith("checkpoint cell missing")
    assert details(result)["checkpoint-grid-cells"] == ""  # found by id though its tag is gone
    assert not result.passed


def test_checkpoints_are_found_by_their_source_when_cell_ids_are_gone(mini):
    _, result = mini["no-ids"]
    assert result.passed, format_table([result])


def test_the_table_has_a_row_per_checkpoint_with_the_first_line_of_what_differed(mini):
    table = format_table([mini["filled"][1], mini["slope-0.01"][1]])
    rows = [line.split() for line in table.splitlines()]
    assert rows[0] == ["notebook", "checkpoint", "result", "what", "differed"]
    assert rows[2][:3] == [str(mini["filled"][0]), "check_conv_block(ConvBlock)", "PASS"]
    assert rows[4][:3] == [str(mini["slope-0.01"][0]), "check_conv_block(ConvBlock)", "FAIL"]
    assert " ".join(rows[4][3:]).startswith("CheckpointError: LeakyReLU slope is 0.01")
    assert table.splitlines()[-1] == "3 of 4 checkpoints passed"


def test_the_grade_command_exits_0_only_when_every_checkpoint_passes(tmp_path, capsys):
    assert main(["grade", str(MINI), "--key-dir", str(FIXTURES)]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "2 of 2 checkpoints passed"
    stray = write(nbformat.v4.new_notebook(), tmp_path / "stray.ipynb")  # no chapter of that name
    assert main(["grade", str(stray)]) == 2  # nothing was graded
    assert "no answer key" in capsys.readouterr().out


# --------------------------------------------------------------------------- the real chapters


def names(source: str) -> tuple[set[str], set[str]]:
    """(names a cell binds, names it reads from earlier cells), roughly: enough to follow a
    chapter's definitions."""
    tree = ast.parse(_python(source))
    bound, read_ = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            (bound if isinstance(node.ctx, ast.Store) else read_).add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(node.name)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            bound |= {(a.asname or a.name).split(".")[0] for a in node.names}
    return bound, read_ - bound - set(dir(builtins))


def exercises_only(notebook):
    """``notebook`` cut down, as a learner may delete cells, to its setup cell, its Exercises
    section, and the earlier code cells that define what the section uses (followed back
    through the cells): keeps a chapter's grading runs short."""
    notebook = copy.deepcopy(notebook)
    first_solution = notebook.cells.index(solution_cells(notebook)[0])
    heading = next(
        (
            i
            for i, c in enumerate(notebook.cells[:first_solution])
            if c.cell_type == "markdown" and re.search(r"^#+ *Exercises\b", c.source, re.M)
        ),
        first_solution,
    )
    earlier = [c for c in notebook.cells[:heading] if c.cell_type == "code"]
    needed = set()
    for c in notebook.cells[heading:]:
        if c.cell_type == "code":
            needed |= names(c.source)[1]
    kept = [earlier[0]]  # the setup cell
    for c in reversed(earlier[1:]):
        bound, read_ = names(c.source)
        if bound & needed:  # the last definition before the exercises is the one they see
            kept.insert(1, c)
            needed = (needed - bound) | read_
    notebook.cells = kept + notebook.cells[heading:]
    return notebook


# The known mistakes planted in the chapters' reference solutions: chapter, the name its
# solution cell defines, text replacements, and how the checkpoint's message begins.
CHAPTER_MISTAKES = {
    "batchnorm-missing": (
        "01_convblock",
        "MyConvBlock",
        [
            ("        self.bn = nn.BatchNorm2d(out_channels)\n", ""),
            ("self.act(self.bn(self.conv(x)))", "self.act(self.conv(x))"),
        ],
        "CheckpointError: BatchNorm is missing",
    ),
    "batchnorm-unused": (
        "01_convblock",
        "MyConvBlock",
        [("self.act(self.bn(self.conv(x)))", "self.act(self.conv(x))")],
        "CheckpointError: BatchNorm is built but never used in forward (bn)",
    ),
    "conv-bias": (
        "01_convblock",
        "MyConvBlock",
        [("padding=kernel_size // 2, bias=False)", "padding=kernel_size // 2, bias=True)")],
        "CheckpointError: conv bias before BatchNorm (conv)",
    ),
    "slope-0.01": (
        "01_convblock",
        "MyConvBlock",
        [("self.act = nn.LeakyReLU(0.1)", "self.act = nn.LeakyReLU()")],  # PyTorch's default slope
        "CheckpointError: LeakyReLU slope is 0.01",
    ),
    "passthrough-from-wrong-map": (
        "04_yolov2",
        "yolov2_forward",
        [("model.passthrough(stride16)", "model.passthrough(stride32)")],
        "CheckpointError: passthrough branch wired from the wrong feature map",
    ),
    "yolov2-concat-order": (
        "04_yolov2",
        "yolov2_forward",
        [("torch.cat([fine, coarse], dim=1)", "torch.cat([coarse, fine], dim=1)")],
        "CheckpointError: concatenated in the wrong order",
    ),
    "yolov2-fuse-skipped": (  # was misnamed "missing reorg" (issue 15)
        "04_yolov2",
        "yolov2_forward",
        [("model.detect(model.fuse(torch.cat(", "model.detect((torch.cat(")],
        "CheckpointError: model.fuse was skipped",
    ),
    "residual-addition-missing": (
        "05_darknet53",
        "MyResidualBlock",
        [("return x + self.act(self.bn2(self.conv2(branch)))", "return self.act(self.bn2(self.conv2(branch)))")],
        "CheckpointError: missing residual addition",
    ),
    "max-pool-misplaced": (
        "02_darknet19",
        "course_darknet",
        [("pool = i in (1, 2, 5, 8, 11)", "pool = i in (1, 2, 4, 8, 11)")],
        "CheckpointError: a max-pool is in the wrong place",
    ),
    "yolov3-concat-order": (
        "06_yolov3",
        "Stride16Path",
        [("torch.cat([up, stride16], dim=1)", "torch.cat([stride16, up], dim=1)")],
        "CheckpointError: concatenation in the wrong order",
    ),
}


def solution_defining(notebook, name: str):
    (found,) = [c for c in solution_cells(notebook) if re.search(rf"^(class|def) {name}\b", c.source, re.M)]
    return found


def checkpoint_after(notebook, solution_id: str) -> str:
    index = notebook.cells.index(cell(notebook, solution_id))
    return next(c.id for c in notebook.cells[index:] if c.cell_type == "code" and "checkpoint" in tags(c))


@pytest.fixture(scope="module")
def chapters(tmp_path_factory):
    """All the real-chapter variants graded in one nbval session: {(chapter, variant): grade,
    or the text of the error that kept the variant from being made; "targets": {mistake:
    id of the checkpoint it must fail}}."""
    if not CHAPTERS:
        pytest.skip("no chapters yet")
    folder = tmp_path_factory.mktemp("chapters")
    paths, problems, targets = {}, {}, {}
    for path in CHAPTERS:
        # Every variant is cut down to the setup cell, the Exercises section and what it
        # uses, as exercises_only says: the rest of a chapter is already run by nbval, is
        # identical in its learner copy (only solution cells change, and they all come after
        # the heading), and may train a network for a minute.
        try:
            chapter = read(path)
            paths[path.stem, "chapter"] = write(exercises_only(chapter), folder / "chapter" / path.name)
            stubbed = learner_copy(chapter, path.name)
            paths[path.stem, "as-generated"] = write(exercises_only(stubbed), folder / "as-generated" / path.name)
            reference = exercises_only(filled(stubbed, chapter))
            paths[path.stem, "filled"] = write(reference, folder / "filled" / path.name)
        except (AssertionError, ExerciseFormatError, ValueError) as exc:
            problem = f"{type(exc).__name__}: {exc}"
            for variant in ("chapter", "as-generated", "filled"):
                problems[path.stem, variant] = problem
    for name, (stem, defined, edits, _) in CHAPTER_MISTAKES.items():
        try:
            chapter = read(ROOT / "notebooks" / f"{stem}.ipynb")
            planted = exercises_only(filled(learner_copy(chapter, f"{stem}.ipynb"), chapter))
            solution = solution_defining(planted, defined)
            for old, new in edits:
                planted = plant(planted, solution.id, old, new)
            paths[stem, name] = write(planted, folder / name / f"{stem}.ipynb")
            targets[name] = checkpoint_after(planted, solution.id)
        except (AssertionError, ExerciseFormatError, ValueError, FileNotFoundError) as exc:
            problems[stem, name] = f"{type(exc).__name__}: {exc}"
    grades = grade(list(paths.values()), key_dirs=[ROOT / "notebooks"])
    return {key: result_of(grades, path) for key, path in paths.items()} | problems | {"targets": targets}


def graded(chapters, key):
    result = chapters[key]
    if isinstance(result, str):
        pytest.fail(f"{key}: {result}")
    return result


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_every_solution_cell_comes_after_the_exercises_heading(path):
    # What lets the chapter fixture grade cut-down copies: the cells before the heading are
    # the same in a learner copy and see no stub, so nbval's run of the chapter covers them.
    notebook = read(path)
    heading = next(
        i
        for i, c in enumerate(notebook.cells)
        if c.cell_type == "markdown" and re.search(r"^#+ *Exercises\b", c.source, re.M)
    )
    assert all(notebook.cells.index(c) > heading for c in solution_cells(notebook))


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_the_chapter_grades_100_percent(chapters, path):
    result = graded(chapters, (path.stem, "chapter"))
    assert result.passed, format_table([result])


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_the_chapter_learner_copy_fails_every_checkpoint_and_only_the_checkpoints(chapters, path):
    result = graded(chapters, (path.stem, "as-generated"))
    assert len(result.checkpoints) == len(checkpoint_ids(read(path)))
    failing = [c for c in result.checkpoints if c.passed or "not implemented yet" not in c.detail]
    assert not failing, format_table([result])
    assert result.other_failures == [], format_table([result])


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_the_chapter_learner_copy_filled_with_the_reference_solutions_passes(chapters, path):
    result = graded(chapters, (path.stem, "filled"))
    assert result.passed and not result.other_failures, format_table([result])


@pytest.mark.parametrize("mistake", CHAPTER_MISTAKES)
def test_a_mistake_planted_in_a_chapter_fails_its_checkpoint_with_its_own_message(chapters, mistake):
    stem, _, _, message = CHAPTER_MISTAKES[mistake]
    result = graded(chapters, (stem, mistake))
    target = chapters["targets"][mistake]  # the checkpoint after the solution the mistake is in
    assert details(result)[target].startswith(message), format_table([result])
    assert all(c.passed for c in result.checkpoints if c.cell_id != target), format_table([result])


# --------------------------------------------------------------------------- a class, and the command line


def test_a_class_folder_grades_every_student_despite_a_hanging_and_a_crashing_notebook(tmp_path, capsys):
    chapter = read(MINI)
    reference = filled(learner_copy(chapter, MINI.name), chapter)
    chatty = plant(  # a right answer that prints and warns: shown, not graded
        reference,
        "solution-conv-block",
        "        return self.act(",
        "        print('debug', x.shape)\n        _ = torch.tensor(x)\n        return self.act(",
    )
    students = {
        "alice": reference,
        "bob": plant(reference, "solution-grid-cells", "    side = ", "    while True:\n        pass\n    side = "),
        "carol": plant(reference, "solution-grid-cells", "    side = ", "    import os\n    os._exit(1)\n    side = "),
        "dave": chatty,
        "erin": plant(reference, "solution-grid-cells", "def grid_cells(", "def grid_cell("),
    }
    for student, notebook in students.items():
        write(notebook, tmp_path / "class" / student / MINI.name)
    no_setup = copy.deepcopy(reference)  # a student named by the file: "frank_mini_chapter.ipynb"
    no_setup.cells = [c for c in no_setup.cells if "remove-cell" not in tags(c)]
    write(no_setup, tmp_path / "class" / "frank.ipynb")

    code = main(["grade", str(tmp_path / "class"), "--key-dir", str(FIXTURES), "--timeout", "25",
                 "--csv", str(tmp_path / "grades.csv")])
    out = capsys.readouterr().out
    assert code == 1
    rows = list(csv.DictReader((tmp_path / "grades.csv").open()))
    totals = {r["student"]: r["result"] for r in rows if r["checkpoint"] == "total"}
    # alice and dave: both checkpoints; bob and carol: the conv block only (the grid exercise
    # stops the notebook); erin: the conv block (her grid_cell is misspelt); frank: the grid only
    # (without the setup cell, `nn` is undefined for his ConvBlock; grid_cells needs no import)
    assert totals == {"alice": "2/2", "bob": "1/2", "carol": "1/2", "dave": "2/2", "erin": "1/2", "frank": "1/2"}
    errors = {r["student"]: r["detail"] for r in rows if r["checkpoint"] == "-"}
    # grid_cells loops (or exits) when its checkpoint calls it
    assert errors["bob"].startswith("stopped after 25 s (the time limit) while running the checkpoint check_grid_cells")
    assert errors["carol"].startswith("the kernel crashed while running the checkpoint check_grid_cells(grid_cells)")
    assert errors["frank"].startswith("the setup cell (the chapter's first code cell: imports and seed) is missing")
    erin = [r["detail"] for r in rows if r["student"] == "erin" and r["checkpoint"] == "check_grid_cells(grid_cells)"]
    assert erin == ["grid_cells is not defined: the checkpoint uses that exact name (your notebook defines "
                    "grid_cell: a typo?); define it in the exercise's cell"]
    assert "alice: 2 of 2 checkpoints passed" in out and "Traceback" not in out


def test_the_grade_command_says_in_one_line_what_is_wrong_with_its_arguments(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["grade", str(tmp_path / "empty")]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith(f"error: {tmp_path / 'empty'}: no notebooks (*.ipynb) to grade; make learner copies first")
    assert "\n" not in error
    assert main(["grade", str(tmp_path / "09_nope.ipynb")]) == 2
    assert capsys.readouterr().err.strip() == (
        f"error: {tmp_path / '09_nope.ipynb'}: no such file or folder; pass a learner notebook or a folder of them"
    )
    assert main(["make", str(tmp_path / "09_nope.ipynb"), "--out", str(tmp_path / "out")]) == 1
    assert "no such chapter" in capsys.readouterr().err


def test_help_explains_make_and_grade_with_an_example_each(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    assert "python -m yolo_lessons.exercises make notebooks/02_darknet19.ipynb --out my-exercises/" in text
    assert "python -m yolo_lessons.exercises grade my-exercises/" in text
    assert "throwaway environment" in text
