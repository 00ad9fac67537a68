"""``mbt`` run in this process (about 15 s cheaper per call than a subprocess on this machine).

``run_cli(*args) -> (exit code, text)``: ``text`` is what the command printed on stdout and
stderr plus every WARNING-or-higher log record, so a test can assert on warnings as a user
sees them.
"""

from __future__ import annotations

import contextlib
import io
import logging

from airflow_mbt.cli.main import main


def run_cli(*args: str) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    handler = logging.StreamHandler(err)
    handler.setLevel(logging.WARNING)
    logging.getLogger().addHandler(handler)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(list(args))
    finally:
        logging.getLogger().removeHandler(handler)
    return code, out.getvalue() + err.getvalue()
