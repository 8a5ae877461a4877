"""Command line: ``python -m yolo_lessons.exercises make|grade ...`` (see the package docstring)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .copies import ExerciseFormatError, WriteStatus, write_learner_copy
from .grading import NOTEBOOK_TIMEOUT_S, find_notebooks, format_table, grade, write_csv

DESCRIPTION = """\
Exercises of the book "YOLO from Scratch": make learner copies of the chapters, and grade them.

  make   writes a learner copy of each chapter: every solution is replaced by a stub that
         keeps its signature and docstring and raises NotImplementedError with a hint.
         A copy you have edited is never overwritten unless you pass --force.
           python -m yolo_lessons.exercises make notebooks/02_darknet19.ipynb --out my-exercises/

  grade  runs learner notebooks afresh and compares every checkpoint with the chapter's (the
         answer key), never with the outputs saved in the notebook. One row per checkpoint;
         exit status 0 only when every checkpoint passes. A folder of students' copies (one
         sub-folder, or one file name, per student) gives one row per student and checkpoint
         and a total per student; --csv writes them for a gradebook.
           python -m yolo_lessons.exercises grade my-exercises/
           python -m yolo_lessons.exercises grade class/ --csv grades.csv --timeout 300

Grading runs the notebooks' code on this machine, as any notebook grader does: grade other
people's work in a throwaway environment (a fresh virtual environment or a container).
"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m yolo_lessons.exercises",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="{make,grade}")
    make = commands.add_parser(
        "make",
        help="write learner copies of chapter notebooks",
        description="Write a learner copy of each chapter (solutions replaced by stubs).",
        epilog="example: python -m yolo_lessons.exercises make notebooks/02_darknet19.ipynb --out my-exercises/",
    )
    make.add_argument("notebooks", nargs="+", type=Path, metavar="NOTEBOOK", help="chapter notebooks")
    make.add_argument("--out", required=True, type=Path, metavar="DIR", help="folder for the learner copies")
    make.add_argument("--force", action="store_true", help="overwrite learner copies that were edited")
    check = commands.add_parser(
        "grade",
        help="grade learner notebooks (or a class folder) against their chapters",
        description="Grade learner notebooks against the chapters' checkpoints.",
        epilog="examples:\n  python -m yolo_lessons.exercises grade my-exercises/\n"
        "  python -m yolo_lessons.exercises grade class/ --csv grades.csv",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    check.add_argument("notebooks", nargs="+", type=Path, metavar="NOTEBOOK", help="files or folders")
    check.add_argument("--key-dir", action="append", type=Path, metavar="DIR", help="where the chapters are")
    check.add_argument("--csv", type=Path, metavar="FILE", help="also write the rows to FILE (CSV)")
    check.add_argument(
        "--timeout",
        type=int,
        default=NOTEBOOK_TIMEOUT_S,
        metavar="SECONDS",
        help=f"stop a notebook that runs longer than this (default {NOTEBOOK_TIMEOUT_S})",
    )
    return parser


def _error(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    arguments = _parser().parse_args(argv)

    if arguments.command == "make":
        refused = 0
        for chapter in arguments.notebooks:
            if not chapter.is_file():
                print(f"{chapter}: error: no such chapter (the chapters are notebooks/NN_*.ipynb)", file=sys.stderr)
                refused += 1
                continue
            try:
                target, status = write_learner_copy(chapter, arguments.out, force=arguments.force)
            except (ExerciseFormatError, ValueError, OSError) as exc:
                print(f"{chapter}: error: {exc}", file=sys.stderr)
                refused += 1
                continue
            if status is WriteStatus.REFUSED:
                refused += 1
                print(
                    f"{target}: refused: it differs from the learner copy of {chapter} (edited, perhaps a "
                    "learner's work, or made from an older chapter); not overwritten, use --force to replace it",
                    file=sys.stderr,
                )
            else:
                print(f"{target}: {status.value}")
        return 1 if refused else 0

    try:
        found = find_notebooks(arguments.notebooks)
    except FileNotFoundError as exc:
        return _error(f"{exc}; pass a learner notebook or a folder of them")
    if not found:
        shown = " ".join(map(str, arguments.notebooks))
        return _error(
            f"{shown}: no notebooks (*.ipynb) to grade; make learner copies first, e.g. "
            "python -m yolo_lessons.exercises make notebooks/01_convblock.ipynb --out my-exercises/"
        )
    if arguments.timeout <= 0:
        return _error(f"--timeout must be a positive number of seconds, got {arguments.timeout}")
    try:
        grades = grade(arguments.notebooks, key_dirs=arguments.key_dir, timeout=arguments.timeout)
    except RuntimeError as exc:
        return _error(str(exc).splitlines()[0])
    print(format_table(grades))
    if arguments.csv:
        write_csv(grades, arguments.csv)
        print(f"wrote {arguments.csv}")
    if not any(g.checkpoints for g in grades):
        return 2  # nothing was graded
    return 0 if all(g.passed for g in grades) else 1


if __name__ == "__main__":
    sys.exit(main())
