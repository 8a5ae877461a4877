"""Exercise versions of the chapters, and a grader that trusts only the chapters.

Two commands (``python -m yolo_lessons.exercises --help``):

* ``make NOTEBOOK... --out DIR`` writes a learner copy of each chapter: every cell
  tagged ``solution`` becomes a stub (signatures and docstrings kept, each body a
  ``raise NotImplementedError(<hint>)``), the outputs of solution and checkpoint cells
  are cleared, a note at the top says how to check answers, and the notebook's metadata
  names the chapter it came from. A file that differs from what would be written (a
  learner's work) is never overwritten without ``--force``.
* ``grade NOTEBOOK_OR_FOLDER...`` runs each submission under nbval with the checkpoint
  cells (source and expected outputs) taken from the chapter, the answer key, matched by
  cell id. Outputs stored in the submission are never trusted, other cells do not
  decide the grade, and a missing checkpoint fails. Prints one row per checkpoint; the
  exit code is 0 only when every checkpoint passes.
"""

from .copies import WriteStatus, learner_copy, stub_solution, write_learner_copy
from .grading import (
    CheckpointResult,
    NotebookGrade,
    find_answer_key,
    find_notebooks,
    format_table,
    grade,
    rows,
    write_csv,
)

__all__ = [
    "CheckpointResult",
    "NotebookGrade",
    "WriteStatus",
    "find_answer_key",
    "find_notebooks",
    "format_table",
    "grade",
    "rows",
    "learner_copy",
    "stub_solution",
    "write_csv",
    "write_learner_copy",
]
