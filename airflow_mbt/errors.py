"""Error types shared by every layer.

The CLI maps ``MBTInputError`` (and subclasses) to exit code 2 with a one-line message and no
traceback; operators map the ``retryable = False`` family to ``AirflowFailException``.
"""

from __future__ import annotations


class MBTError(Exception):
    """Base class of all airflow-mbt errors."""

    retryable = True


class MBTInputError(MBTError):
    """Bad user input: YAML, profiles, CLI arguments, connections, data.

    ``str(err)`` is ``file:line:col: field.path: message`` (parts omitted when unknown),
    followed by ``\n  hint: ...`` when a hint is given.
    """

    retryable = False

    def __init__(self, message: str, *, file: str | None = None, line: int | None = None,
                 col: int | None = None, field: str | None = None, hint: str | None = None):
        self.message = message
        self.file = file
        self.line = line
        self.col = col
        self.field = field
        self.hint = hint
        super().__init__(self.format())

    def format(self) -> str:
        loc = ""
        if self.file:
            loc = str(self.file)
            if self.line is not None:
                loc += f":{self.line}"
                if self.col is not None:
                    loc += f":{self.col}"
            loc += ": "
        field = f"{self.field}: " if self.field else ""
        text = f"{loc}{field}{self.message}"
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text


class DataContractError(MBTInputError):
    """Data does not match what the pipeline declares (missing/extra columns, wrong types)."""


class ValidationCriteriaError(MBTError):
    """A trained model did not meet ``evaluation.validation_criteria``."""

    retryable = False


class InfraError(MBTError):
    """A service (PostgreSQL, S3, MLflow, H2O) failed or is unreachable. Retryable.

    The message names the service and its address, never a secret.
    """

    def __init__(self, service: str, message: str, *, hint: str | None = None):
        self.service = service
        self.hint = hint
        text = f"{service}: {message}"
        if hint:
            text += f"\n  hint: {hint}"
        super().__init__(text)


class AuthenticationError(InfraError):
    """Credentials were rejected. Not retryable."""

    retryable = False


class RegistryConflictError(MBTError):
    """A conditional write lost a race (the caller re-reads and retries)."""
