"""A pytest plugin the grader loads into its nbval run: it records every cell's outcome.

For each notebook cell it appends the outcome and the outputs the cell produced, as one
JSON line, to the file named by the environment variable ``YOLO_LESSONS_GRADE_REPORT``,
as soon as the cell has run: if the run is stopped (a time limit), what ran is known.
Before each cell it writes a "started" line, and while the cell runs a watchdog checks
that the kernel is alive: when the kernel dies (``os._exit``, a segfault, memory), nbval
would wait forever, so the watchdog records a "crashed" line and ends the run at once.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest

REPORT_VARIABLE = "YOLO_LESSONS_GRADE_REPORT"
CRASH_EXIT_CODE = 86  # the run ended because the kernel died
_WATCH_INTERVAL_S = 0.5


def _write(record: dict) -> None:
    target = os.environ.get(REPORT_VARIABLE)
    if target:
        with Path(target).open("a", encoding="utf-8") as report:
            report.write(json.dumps(record, default=str) + "\n")
            report.flush()


def _watch(kernel_manager, record: dict, stop: threading.Event) -> None:
    while not stop.wait(_WATCH_INTERVAL_S):
        try:
            alive = kernel_manager.is_alive()
        except Exception:  # the manager is being shut down
            return
        if not alive and not stop.is_set():
            _write({**record, "when": "call", "outcome": "crashed", "message": "the kernel died"})
            os._exit(CRASH_EXIT_CODE)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    cell_num = getattr(item, "cell_num", None)
    kernel = getattr(getattr(item, "parent", None), "kernel", None)
    stop = threading.Event()
    if cell_num is not None:
        record = {"file": Path(str(item.fspath)).name, "cell": cell_num, "outputs": []}
        _write({**record, "when": "start", "outcome": "started", "message": ""})
        if kernel is not None and getattr(kernel, "km", None) is not None:
            threading.Thread(target=_watch, args=(kernel.km, record, stop), daemon=True).start()
    try:
        yield
    finally:
        stop.set()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    cell_num = getattr(item, "cell_num", None)
    if cell_num is None or not (call.when == "call" or report.failed):
        return
    _write(
        {
            "file": Path(str(item.fspath)).name,
            "cell": cell_num,
            "when": call.when,
            "outcome": report.outcome,
            "outputs": list(getattr(item, "test_outputs", None) or []),
            "message": str(call.excinfo.value) if call.excinfo else "",
        }
    )
