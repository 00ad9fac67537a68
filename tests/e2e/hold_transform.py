"""A custom transform that keeps a step running: it waits while a HOLD file exists.

``source(hold_file, max_seconds)`` is the text of a ``lib/hold.py`` whose ``hold(df)`` returns
``df`` unchanged once ``hold_file`` is gone, or after ``max_seconds`` at the latest, so a test
that forgets to remove the file cannot hang an Airflow worker for long.
"""

from __future__ import annotations


def source(hold_file: str, max_seconds: int) -> str:
    return f"""import os
import time


def hold(df):
    deadline = time.monotonic() + {int(max_seconds)}
    while os.path.exists({hold_file!r}) and time.monotonic() < deadline:
        time.sleep(0.5)
    return df
"""
