"""Argument parser of ``mbt``: commands, options and help texts with examples."""

from __future__ import annotations

import argparse

from airflow_mbt import __version__
from airflow_mbt.constants import ExitCode

DESCRIPTION = """\
mbt - declarative tabular ML pipelines: pipelines/*.yaml -> target/<name>/manifest.json,
run locally (mbt run), one step per process (mbt step execute) or as Airflow DAGs."""

EPILOG = f"""\
examples:
  mbt init demo-project
  mbt validate
  mbt compile training_churn_model_v1 --target dev
  mbt run --select training_churn_model_v1 --target dev --vars max_runtime_secs=60
  mbt deploy --target prod --dry-run
  mbt releases serving_churn_model_v1 --target prod && mbt rollback serving_churn_model_v1 --target prod

exit codes (orchestrators retry only 1 and 143):
{ExitCode.describe()}"""


class _Formatter(argparse.RawDescriptionHelpFormatter):
    pass


def _common() -> argparse.ArgumentParser:
    """Options accepted before or after the command (``mbt -v run ...`` and ``mbt run ... -v``)."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--project-dir", metavar="DIR", default=argparse.SUPPRESS,
                   help="project folder (default: nearest folder with profiles.yaml, upwards from here)")
    p.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                   help="log progress details and show tracebacks of unexpected errors")
    return p


def _target_options(p: argparse.ArgumentParser, vars_: bool = True) -> None:
    p.add_argument("--target", "-t", metavar="T", help="target in profiles.yaml (default: the profile's `target:`)")
    p.add_argument("--profile", metavar="P", help="profile in profiles.yaml (default: the only one, or the "
                                                  "one named like the project folder)")
    if vars_:
        p.add_argument("--vars", action="append", metavar="K=V", default=[],
                       help="template variable for {{ var('K') }}; repeatable, or a YAML mapping '{k: v}'")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}")
    return value


def _partition_index(text: str) -> int | None:
    if text in ("", "-1"):  # an unmapped task's map_index: no partition
        return None
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a partition number >= 0, got {text!r}")
    return value


def _sub(subs, name: str, help_: str, examples: str, common) -> argparse.ArgumentParser:
    return subs.add_parser(name, help=help_, description=help_, epilog=f"examples:\n{examples}",
                           formatter_class=_Formatter, parents=[common])


def build_parser() -> argparse.ArgumentParser:
    common = _common()
    parser = argparse.ArgumentParser(prog="mbt", description=DESCRIPTION, epilog=EPILOG,
                                     formatter_class=_Formatter, parents=[common])
    parser.add_argument("--version", action="version", version=f"mbt {__version__}")
    subs = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = _sub(subs, "init", "create a new project folder that runs as is",
             "  mbt init demo-project\n  mbt init demo-project --dir ~/work\n"
             "  mbt init demo-project --framework sklearn", common)
    p.add_argument("name", metavar="NAME", help="folder (and profile) name")
    p.add_argument("--dir", metavar="PARENT", default=".", help="create the folder under PARENT (default: .)")
    p.add_argument("--framework", choices=("h2o", "sklearn"), default="h2o",
                   help="example pipelines trained with H2O AutoML (default) or scikit-learn")

    p = _sub(subs, "validate", "check pipelines (YAML, schema, metrics, sample data columns)",
             "  mbt validate\n  mbt validate training_churn_model_v1 --vars max_runtime_secs=60", common)
    p.add_argument("names", nargs="*", metavar="NAME", help="pipelines to check (default: all but _base files)")
    _target_options(p)

    p = _sub(subs, "compile", "write target/<NAME>/manifest.json for a target",
             "  mbt compile training_churn_model_v1 --target dev\n  mbt compile --target prod\n"
             "  mbt compile --target prod --image zot-registry:5050/demo-project@sha256:<64 hex>", common)
    p.add_argument("names", nargs="*", metavar="NAME", help="pipelines to compile (default: all but _base files)")
    _target_options(p)
    p.add_argument("--image", metavar="REF@sha256:HEX", help="runner image of a kubernetes target, pinned by "
                   "digest or a unique tag (recorded in the manifest; the pods run it)")

    p = _sub(subs, "run", "compile, then run every step of a pipeline in this process",
             "  mbt run --select training_churn_model_v1 --target dev\n"
             "  mbt run --select training_churn_model_v1 --vars max_runtime_secs=30\n"
             "  mbt run --select serving_partitioned --parallel 2   # serving.partitions, 2 processes", common)
    p.add_argument("--select", "-s", required=True, metavar="NAME", help="the pipeline to run")
    p.add_argument("--run-id", metavar="R", help="run id to use (default: a new run_YYYYMMDD_HHMMSS_<16 hex>)")
    p.add_argument("--logical-date", metavar="DATE", help="the date the run is for, YYYY-MM-DD or ISO 8601 "
                   "(default: now, UTC); the interval is the cadence period ending at it")
    p.add_argument("--parallel", type=_positive_int, default=1, metavar="K",
                   help="with serving.partitions: score K partitions at a time in K processes "
                        "(default 1: one partition after another)")
    _target_options(p)

    p = _sub(subs, "step", "run one step of a compiled pipeline (used by pods and operators)",
             "  mbt step execute --pipeline training_churn_model_v1 --step train_model \\\n"
             "      --target prod --run-id run_20260101_000000_ab12", common)
    step_subs = p.add_subparsers(dest="step_command", metavar="ACTION")
    step_subs.required = True
    e = _sub(step_subs, "execute", "execute one step of one run",
             "  mbt step execute --pipeline training_churn_model_v1 --step load_data --target dev \\\n"
             "      --run-id run_20260101_000000_ab12\n"
             "  mbt step execute --pipeline P --step S --target prod --run-id R \\\n"
             "      --manifest s3://mbt-pipeline-artifacts/manifests/P/manifest.json --manifest-hash sha256:...",
             common)
    e.add_argument("--pipeline", required=True, metavar="N", help="pipeline name")
    e.add_argument("--step", required=True, metavar="S", help="step name, e.g. train_model")
    e.add_argument("--target", required=True, metavar="T", help="must match the manifest's target")
    e.add_argument("--run-id", required=True, metavar="R", help="run id shared by all steps of one run")
    e.add_argument("--manifest", metavar="PATH_OR_URI", help="default: target/<N>/manifest.json in the project")
    e.add_argument("--manifest-hash", metavar="sha256:HEX", help="refuse any other manifest version")
    e.add_argument("--manifest-conn-id", metavar="CONN", default=None,
                   help="Airflow connection for an s3:// manifest (default: the store's default)")
    e.add_argument("--try-number", type=int, default=1, metavar="K", help="attempt number (Airflow retries)")
    e.add_argument("--logical-date", metavar="DATE", help="YYYY-MM-DD or ISO 8601 (default: now, UTC)")
    e.add_argument("--interval-start", metavar="DATE", help="start of the data interval (default: from the cadence)")
    e.add_argument("--interval-end", metavar="DATE", help="end of the data interval (default: the logical date)")
    e.add_argument("--run-type", metavar="TYPE", help="Airflow run type (scheduled, manual, backfill, ...)")
    e.add_argument("--dag-id", metavar="DAG", help="Airflow DAG id of the run")
    e.add_argument("--airflow-run-id", metavar="RUN", help="Airflow DAG run id")
    e.add_argument("--partition", type=_partition_index, default=None, metavar="I",
                   help="with serving.partitions: the partition (0..count-1) a partitioned step runs for "
                        "(Airflow passes the mapped task's map_index)")
    e.add_argument("--xcom-file", metavar="PATH", default=None,
                   help="after the step succeeded, write its result (the operator's XCom value: name, status, "
                        "outputs, summary) as JSON to PATH (default: env MBT_XCOM_FILE; the Kubernetes operator "
                        "sets it to /airflow/xcom/return.json for the promote steps)")

    p = _sub(subs, "deploy", "publish the compiled manifests of a target as releases and make them current "
             "with the project code they name (a changed pipeline is a new release; an unchanged one, comments "
             "aside, publishes nothing; code changed since `mbt compile` is refused)",
             "  mbt compile --target prod && mbt deploy --target prod\n"
             "  mbt deploy --target prod --select training_churn_model_v1 --dry-run   # field-level diff", common)
    p.add_argument("--target", "-t", required=True, metavar="T", help="deploy the manifests compiled for T")
    p.add_argument("--profile", metavar="P", help="profile holding T (default: as for compile)")
    p.add_argument("--select", "-s", action="append", metavar="NAME", default=[],
                   help="only these pipelines (repeatable; default: every manifest compiled for T)")
    p.add_argument("--to", metavar="URI", help="destination (default: the target's manifests.uri)")
    p.add_argument("--conn-id", metavar="CONN", help="connection for the destination (default: manifests.conn_id)")
    p.add_argument("--force", action="store_true", help="deprecated, ignored: changes never need it")
    p.add_argument("--dry-run", action="store_true", help="show the changes and their diff, write nothing")

    p = _sub(subs, "clean", "prune old local runs (local_artifacts/) and stale target/ folders",
             "  mbt clean --dry-run\n  mbt clean --keep 3\n  mbt clean --keep 0   # every local run", common)
    p.add_argument("--keep", type=int, default=5, metavar="N",
                   help="keep the N newest runs of each pipeline in local_artifacts/ (default: 5)")
    p.add_argument("--target", "-t", metavar="T", help="whose local storage to prune (default: the default target)")
    p.add_argument("--profile", metavar="P", help="profile holding T")
    p.add_argument("--dry-run", action="store_true", help="list what would be removed, remove nothing")

    def release_command(name: str, help_: str, examples: str) -> argparse.ArgumentParser:
        r = _sub(subs, name, help_, examples, common)
        r.add_argument("pipeline", metavar="PIPELINE", help="pipeline name (its DAG id)")
        r.add_argument("--target", "-t", metavar="T", help="the target whose manifests.uri holds the releases")
        r.add_argument("--profile", metavar="P", help="profile holding T (default: as for compile)")
        r.add_argument("--manifests", metavar="URI", help="manifests location (default: the target's manifests.uri)")
        r.add_argument("--conn-id", metavar="CONN", help="connection for the location (default: manifests.conn_id)")
        return r

    p = release_command("rollback", "make an earlier release of a pipeline current again (the next DAG run "
                        "executes it; running DAG runs keep their pinned release)",
                        "  mbt rollback serving_churn_model_v1 --target prod          # the release before\n"
                        "  mbt rollback serving_churn_model_v1 --target prod --to 3   # event #3 of `mbt releases`\n"
                        "  mbt rollback serving_churn_model_v1 --target prod --to 9f2c01ab")
    p.add_argument("--to", metavar="RELEASE", help="event number or hash prefix from `mbt releases` "
                   "(default: the release current before this one)")
    p.add_argument("--dry-run", action="store_true", help="show the change and its diff, write nothing")
    p = release_command("undeploy", "remove a pipeline from Airflow: its DAG and schedule go at the next parse; "
                        "releases and history stay (`mbt rollback` re-deploys)",
                        "  mbt undeploy serving_churn_model_v1 --target prod")
    p.add_argument("--dry-run", action="store_true", help="show the change, write nothing")
    p = release_command("releases", "list the release history of a pipeline (* marks the current release)",
                        "  mbt releases serving_churn_model_v1 --target prod\n"
                        "  mbt releases serving_churn_model_v1 --manifests s3://mbt-manifests/prod/ --json")
    p.add_argument("--json", action="store_true", help="print the history as JSON")
    return parser
