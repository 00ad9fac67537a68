"""Error types shared by every layer, and THE classification table.

Every exception that reaches a boundary (the CLI, an operator, a pod's exit code) is classified
by ``classify`` and nowhere else:

=====================  =========================================  ====  =========
category               raised as                                  exit  retried
=====================  =========================================  ====  =========
input                  ``MBTInputError`` (YAML, profiles, args,    2     no
                       data contract, connections)
not_retryable          ``ValidationCriteriaError``,                3     no
                       ``AuthenticationError``, ``IntegrityError``,
                       ``MonitoringBreachError``
                       (and any ``MBTError`` with ``retryable``
                       False)
infrastructure         ``InfraError`` and other ``MBTError``       1     yes
unexpected             ``StepFailedError`` (a step's bug) and      1     yes
                       any other exception (traceback with -v)
interrupted            ``KeyboardInterrupt`` (SIGINT)              130   no
terminated             ``StepTerminated`` (SIGTERM)                143   yes
=====================  =========================================  ====  =========

``str(MBTInputError)`` is ``file:line:col: field.path: message`` (parts omitted when unknown),
followed by ``\n  hint: ...`` when a hint is given.
"""

from __future__ import annotations

from airflow_mbt.constants import ExitCode


class MBTError(Exception):
    """Base class of all airflow-mbt errors."""

    retryable = True
    step: str | None = None  # the step it happened in, set once by the invocation path


class MBTInputError(MBTError):
    """Bad user input: YAML, profiles, CLI arguments, connections, data."""

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

    def location(self) -> str:
        loc = ""
        if self.file:
            loc = str(self.file)
            if self.line is not None:
                loc += f":{self.line}"
                if self.col is not None:
                    loc += f":{self.col}"
        return loc

    def format(self) -> str:
        loc = self.location()
        field = f"{self.field}: " if self.field else ""
        text = f"{loc + ': ' if loc else ''}{field}{self.message}"
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text

    def relocate(self, *, file: str | None = None, line: int | None = None, col: int | None = None) -> None:
        """Set the source position (used when a step's error is pointed at the pipeline YAML)."""
        self.file, self.line, self.col = file, line, col
        self.args = (self.format(),)


class DataContractError(MBTInputError):
    """Data does not match what the pipeline declares (missing/extra columns, wrong types)."""


class ValidationCriteriaError(MBTError):
    """A trained model did not meet ``evaluation.validation_criteria``."""

    retryable = False


class MonitoringBreachError(MBTError):
    """Serving data drifted past ``serving.monitoring.max_psi`` under ``on_breach: fail``, or the
    served model has no reference statistics to compare with. Not retryable: the same data and
    model breach again."""

    retryable = False


class IntegrityError(MBTError):
    """Stored data failed a check no retry can fix: a checksum mismatch, a tampered artifact or
    registry, an artifact of the wrong shape."""

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


class StepFailedError(MBTError):
    """A step raised something that is not an ``MBTError`` (a bug): the original is the
    ``__cause__``. Classified as ``unexpected``."""


class StepTerminated(BaseException):
    """The step process received SIGTERM (Airflow timeout or "mark failed", pod eviction).

    A ``BaseException`` so that ``except Exception`` in step or library code cannot swallow it.
    """

    def __init__(self, signum: int = 15):
        self.signum = signum
        super().__init__(f"terminated by signal {signum}")


class Classification:
    """One row of the table: ``category`` (input | not_retryable | infrastructure | interrupted |
    terminated | unexpected), the exit code, and whether an orchestrator retries it. (A plain
    class, not a dataclass: ``mbt --help`` imports this module and stays light.)"""

    __slots__ = ("category", "exit_code", "retryable")

    def __init__(self, category: str, exit_code: ExitCode, retryable: bool) -> None:
        self.category = category
        self.exit_code = exit_code
        self.retryable = retryable

    def __repr__(self) -> str:
        return f"Classification({self.category!r}, {int(self.exit_code)}, retryable={self.retryable})"

    @property
    def expected(self) -> bool:
        """False for a bug (``unexpected``): only then is a traceback useful."""
        return self.category != "unexpected"


INPUT = Classification("input", ExitCode.INPUT, False)
NOT_RETRYABLE = Classification("not_retryable", ExitCode.NOT_RETRYABLE, False)
INFRASTRUCTURE = Classification("infrastructure", ExitCode.FAILURE, True)
INTERRUPTED = Classification("interrupted", ExitCode.SIGINT, False)
TERMINATED = Classification("terminated", ExitCode.SIGTERM, True)
UNEXPECTED = Classification("unexpected", ExitCode.FAILURE, True)

# Exit codes after which an orchestrator must not retry (pods: ``MBTKubernetesStepOperator``).
NON_RETRYABLE_EXIT_CODES = frozenset(c.exit_code for c in (INPUT, NOT_RETRYABLE, INTERRUPTED))


def classify(exc: BaseException) -> Classification:
    """The one table mapping an exception to its category, exit code and retry decision."""
    if isinstance(exc, KeyboardInterrupt):
        return INTERRUPTED
    if isinstance(exc, StepTerminated):
        return TERMINATED
    if isinstance(exc, MBTInputError):
        return INPUT
    if isinstance(exc, StepFailedError):
        return UNEXPECTED
    if isinstance(exc, MBTError):
        return INFRASTRUCTURE if exc.retryable else NOT_RETRYABLE
    return UNEXPECTED


def classify_exit_code(code: int | None) -> Classification:
    """The classification of a step process (or pod) that exited with ``code``."""
    for c in (INPUT, NOT_RETRYABLE, INTERRUPTED, TERMINATED):
        if code == c.exit_code:
            return c
    return INFRASTRUCTURE


def describe(exc: BaseException) -> str:
    """The one-line (plus hint) text shown to a user for ``exc``."""
    if isinstance(exc, MBTError):
        return str(exc) or type(exc).__name__
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    if isinstance(exc, StepTerminated):
        return str(exc)
    return f"unexpected {type(exc).__name__}: {exc}"
