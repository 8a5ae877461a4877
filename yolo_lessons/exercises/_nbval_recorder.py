"""A pytest plugin the grader loads into its nbval run: it records every cell's outcome.

For each notebook cell it keeps the outcome and the outputs the cell produced, and at
the end of the session writes them as JSON to the file named by the environment
variable ``YOLO_LESSONS_GRADE_REPORT``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

REPORT_VARIABLE = "YOLO_LESSONS_GRADE_REPORT"
_records: list[dict] = []


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    cell_num = getattr(item, "cell_num", None)
    if cell_num is None or not (call.when == "call" or report.failed):
        return
    _records.append(
        {
            "file": Path(str(item.fspath)).name,
            "cell": cell_num,
            "when": call.when,
            "outcome": report.outcome,
            "outputs": list(getattr(item, "test_outputs", None) or []),
            "message": str(call.excinfo.value) if call.excinfo else "",
        }
    )


def pytest_sessionfinish(session):
    target = os.environ.get(REPORT_VARIABLE)
    if target:
        Path(target).write_text(json.dumps(_records, default=str), encoding="utf-8")
