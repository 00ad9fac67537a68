"""Failure handling of the operators, from the one classification table (``errors.classify``):
a non-retryable failure (bad input, data contract, validation criteria, integrity, rejected
credentials) becomes ``AirflowFailException`` so Airflow does not retry it; everything else
propagates unchanged and is retried. Pods use the same table through their exit code
(``errors.classify_exit_code``)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from airflow_mbt.errors import NON_RETRYABLE_EXIT_CODES, classify, describe

__all__ = ["NON_RETRYABLE_EXIT_CODES", "airflow_failures", "is_retryable"]


def is_retryable(exc: BaseException) -> bool:
    return classify(exc).retryable


@contextmanager
def airflow_failures() -> Iterator[None]:
    """Re-raise non-retryable failures as ``AirflowFailException`` (the message kept, no secrets
    added); let every other exception through unchanged so Airflow retries it."""
    try:
        yield
    except Exception as exc:
        kind = classify(exc)
        if kind.retryable:
            raise
        from airflow.sdk.exceptions import AirflowFailException

        raise AirflowFailException(f"{type(exc).__name__} ({kind.category}): {describe(exc)}") from exc
