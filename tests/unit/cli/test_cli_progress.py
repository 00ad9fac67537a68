"""Progress lines of `mbt run` from runner events (terminal and non-terminal output)."""

from __future__ import annotations

import io

from airflow_mbt.cli.execution import Progress

EVENTS = [
    {"event": "start", "index": 1, "total": 3, "step": "load_data"},
    {"event": "end", "index": 1, "total": 3, "step": "load_data", "status": "success", "seconds": 0.42},
    {"event": "start", "index": 2, "total": 3, "step": "split_data"},
    {"event": "end", "index": 2, "total": 3, "step": "split_data", "status": "failed", "seconds": 1.06,
     "error": "boom"},
    {"event": "end", "index": 3, "total": 3, "step": "train_model", "status": "skipped", "seconds": 0},
]
LINES = ["[1/3] load_data ... ok (0.4s)", "[2/3] split_data ... FAILED (1.1s)", "[3/3] train_model ... skipped"]


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_whole_lines_when_not_a_terminal():
    out = io.StringIO()
    progress = Progress(out)
    progress(EVENTS[0])
    assert out.getvalue() == ""  # nothing half-written while the step runs
    for event in EVENTS[1:]:
        progress(event)
    assert out.getvalue().splitlines() == LINES


def test_live_on_a_terminal():
    out = Terminal()
    progress = Progress(out)
    progress(EVENTS[0])
    assert out.getvalue() == "[1/3] load_data ... "
    for event in EVENTS[1:]:
        progress(event)
    assert out.getvalue().splitlines() == LINES
