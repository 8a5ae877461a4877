"""Command line: ``python -m yolo_lessons.exercises make|grade ...`` (see the package docstring)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .copies import ExerciseFormatError, WriteStatus, write_learner_copy
from .grading import format_table, grade


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m yolo_lessons.exercises", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    make = commands.add_parser("make", help="write learner copies of chapter notebooks")
    make.add_argument("notebooks", nargs="+", type=Path, metavar="NOTEBOOK")
    make.add_argument("--out", required=True, type=Path, metavar="DIR", help="folder for the learner copies")
    make.add_argument("--force", action="store_true", help="overwrite learner copies that were edited")
    check = commands.add_parser("grade", help="grade learner notebooks against their chapters")
    check.add_argument("notebooks", nargs="+", type=Path, metavar="NOTEBOOK", help="files or folders")
    check.add_argument("--key-dir", action="append", type=Path, metavar="DIR", help="where the chapters are")
    arguments = parser.parse_args(argv)

    if arguments.command == "make":
        refused = 0
        for chapter in arguments.notebooks:
            try:
                target, status = write_learner_copy(chapter, arguments.out, force=arguments.force)
            except ExerciseFormatError as exc:
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

    grades = grade(arguments.notebooks, key_dirs=arguments.key_dir)
    print(format_table(grades))
    return 0 if grades and all(g.passed for g in grades) else 1


if __name__ == "__main__":
    sys.exit(main())
