"""Failure classification shared by the operators: input, data-contract and validation-criteria
errors (``retryable = False``) fail the task without retries; everything else propagates and is
retried by Airflow."""

from __future__ import annotations

from contextlib import contextmanager

from airflow_mbt.errors import MBTError

# Exit codes of `mbt step execute` for non-retryable errors (see airflow_mbt/cli/main.py).
NON_RETRYABLE_EXIT_CODES = frozenset({2, 3})  # mbt: 2 bad input, 3 not fixable by a retry


def is_retryable(exc: BaseException) -> bool:
    return not (isinstance(exc, MBTError) and not exc.retryable)


@contextmanager
def airflow_failures():
    """Re-raise non-retryable mbt errors as ``AirflowFailException`` (message kept, no secrets
    added); let every other exception through unchanged so Airflow retries it."""
    try:
        yield
    except MBTError as exc:
        if is_retryable(exc):
            raise
        from airflow.sdk.exceptions import AirflowFailException

        raise AirflowFailException(f"{type(exc).__name__}: {exc}") from exc
