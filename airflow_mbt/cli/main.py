"""``mbt`` entry point: parse arguments, run the command, map errors to exit codes.

Every failure is classified by ``errors.classify`` (the one table, shared with the operators and
the pod failure handler) and printed as ONE ``error:`` message: 2 bad input, 3 not fixable by a
retry, 1 a service or an unexpected error (traceback only with -v), 130 SIGINT, 143 SIGTERM.
Orchestrators retry only 1 and 143.
"""

from __future__ import annotations

import os
import sys

from airflow_mbt.constants import ExitCode
from airflow_mbt.errors import StepFailedError, StepTerminated, classify, describe

COMMANDS = {
    "init": ("airflow_mbt.cli.authoring", "cmd_init"),
    "validate": ("airflow_mbt.cli.authoring", "cmd_validate"),
    "compile": ("airflow_mbt.cli.authoring", "cmd_compile"),
    "run": ("airflow_mbt.cli.execution", "cmd_run"),
    "step": ("airflow_mbt.cli.execution", "cmd_step_execute"),
    "deploy": ("airflow_mbt.cli.deploy", "cmd_deploy"),
    "clean": ("airflow_mbt.cli.clean", "cmd_clean"),
    "rollback": ("airflow_mbt.cli.deploy", "cmd_rollback"),
    "undeploy": ("airflow_mbt.cli.deploy", "cmd_undeploy"),
    "releases": ("airflow_mbt.cli.deploy", "cmd_releases"),
}


def _setup_logging(verbose: bool) -> None:
    import logging

    from airflow_mbt.redaction import install_log_filter

    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, stream=sys.stderr,
                        format="%(levelname)s %(name)s: %(message)s")
    install_log_filter()
    if verbose:  # H2O's own banners, warnings and progress bars (airflow_mbt/plugins/frameworks/h2o_output.py)
        logging.getLogger("airflow_mbt.h2o").setLevel(logging.DEBUG)
    else:
        quiet_mlflow()


def quiet_mlflow() -> None:
    """MLflow's own log lines (database setup, CloudPickle and signature notes, pip version) and
    Python warnings raised from MLflow and its stores: hidden unless ``-v``. MLflow configures its
    loggers when imported (later, lazily), from ``MLFLOW_LOGGING_LEVEL``; an explicit setting wins."""
    import os
    import warnings

    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "ERROR")
    for module in (r"mlflow(\..*)?", r"sqlalchemy(\..*)?", r"alembic(\..*)?"):
        warnings.filterwarnings("ignore", module=module)


def main(argv: list[str] | None = None) -> int:
    from airflow_mbt.cli.parser import build_parser

    parser = build_parser()
    args = parser.parse_args(argv)  # usage errors exit 2 with a message, no traceback
    if not args.command:
        parser.print_help()
        return 2
    verbose = getattr(args, "verbose", False)
    _setup_logging(verbose)
    module, func = COMMANDS[args.command]
    try:
        import importlib

        return int(getattr(importlib.import_module(module), func)(args) or 0)
    except SystemExit:
        raise  # argparse inside a command
    except BaseException as err:  # noqa: BLE001 - the CLI boundary: one message, one exit code
        code = report(err, verbose)
        if isinstance(err, StepTerminated):
            # the step has unwound (rolled back, temp folders removed, run_results written); the
            # interpreter's teardown of a large heap (measured: >10 s of final GC after a 1.5M-row
            # publish) must not outlast the orchestrator's grace period before SIGKILL
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
        return code


def report(err: BaseException, verbose: bool) -> int:
    """Print the one message for ``err``; return its exit code."""
    kind = classify(err)
    if kind.exit_code == ExitCode.SIGINT:
        print("interrupted", file=sys.stderr)
        return int(kind.exit_code)
    if kind.expected:
        text = describe(err)
    else:  # a bug: name the exception (and the step), traceback with -v
        cause = err.__cause__ if isinstance(err, StepFailedError) and err.__cause__ else err
        where = f" in step {err.step!r}" if getattr(err, "step", None) else ""
        text = f"unexpected {type(cause).__name__}{where}: {cause}"
        if not verbose:
            text += "\n  (run with -v for the traceback)"
    from airflow_mbt.redaction import redact

    if verbose and kind.category != "input":
        import traceback

        print(redact("".join(traceback.format_exception(err))), file=sys.stderr, end="")
    print(redact(f"error: {text}"), file=sys.stderr)
    return int(kind.exit_code)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
