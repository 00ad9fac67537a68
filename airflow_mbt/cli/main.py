"""``mbt`` entry point: parse arguments, run the command, map errors to exit codes.

Exit codes: 0 success; 2 bad input (``MBTInputError``, usage errors), message only;
3 a failure that a retry cannot fix (unmet validation criteria, rejected credentials, a corrupt
artifact); 1 other failures (a step, a service), one line; tracebacks of unexpected errors only
with -v. Orchestrators retry only exit code 1.
"""

from __future__ import annotations

import sys

from airflow_mbt.errors import MBTError, MBTInputError

COMMANDS = {
    "init": ("airflow_mbt.cli.authoring", "cmd_init"),
    "validate": ("airflow_mbt.cli.authoring", "cmd_validate"),
    "compile": ("airflow_mbt.cli.authoring", "cmd_compile"),
    "run": ("airflow_mbt.cli.execution", "cmd_run"),
    "step": ("airflow_mbt.cli.execution", "cmd_step_execute"),
    "deploy": ("airflow_mbt.cli.deploy", "cmd_deploy"),
}


def _setup_logging(verbose: bool) -> None:
    import logging

    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, stream=sys.stderr,
                        format="%(levelname)s %(name)s: %(message)s")
    if verbose:  # H2O's own banners, warnings and progress bars (airflow_mbt/plugins/frameworks/h2o_output.py)
        logging.getLogger("airflow_mbt.h2o").setLevel(logging.DEBUG)


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
    except MBTInputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except MBTError as err:
        print(f"error: {err or type(err).__name__}", file=sys.stderr)
        if verbose:
            import traceback

            traceback.print_exc()
        return 1 if err.retryable else 3
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # noqa: BLE001 - the CLI boundary
        if verbose:
            import traceback

            traceback.print_exc()
        where = f" in step {err.step!r}" if getattr(err, "step", None) else ""
        print(f"error: unexpected {type(err).__name__}{where}: {err}"
              + ("" if verbose else "\n  (run with -v for the traceback)"), file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
