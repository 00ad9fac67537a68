"""Interval-aware data sources and partitioned publish on the dev target (issue 9, points 2 and 3).

``data_source.where`` / ``query`` keep their ``{{ ds }}``-style templates in the manifest, are
validated with sqlglot (file:line:col), bound at run time from the ``RunContext`` and run in
DuckDB over the local files; publish replaces the (pipeline, logical date) partition.
"""

from __future__ import annotations

import shutil
from datetime import date, datetime, timezone
from pathlib import Path

import pandas as pd
import pytest

from airflow_mbt.cli.main import main
from airflow_mbt.errors import MBTInputError
from airflow_mbt.manifest import Manifest
from airflow_mbt.plugins.connectors.local_file import LocalFileConnector, replace_csv_rows
from airflow_mbt.runtime.context import RunContext, TargetRuntime
from airflow_mbt.scaffold.project_init import init_project
from airflow_mbt.scaffold.sample_data import write_dated_csvs
from airflow_mbt.sources import Param, bind

REPO = Path(__file__).resolve().parents[3]
EXAMPLE = REPO / "examples" / "daily_scoring" / "pipelines"
TRAIN, SERVE = "training_churn_joined_v1", "serving_churn_daily_v1"
UTC = timezone.utc


def day(d: int) -> RunContext:
    start = datetime(2026, 1, d, tzinfo=UTC)
    return RunContext(run_id=f"run_202601{d:02d}_000000_abcd", logical_date=start, interval_start=start,
                      interval_end=datetime(2026, 1, d + 1, tzinfo=UTC))


@pytest.fixture
def project(tmp_path, monkeypatch):
    root = init_project("proj", tmp_path)
    for f in EXAMPLE.iterdir():
        shutil.copy(f, root / "pipelines" / f.name)
    write_dated_csvs(root / "sample_data", n_customers=600, days=4, rows_per_day=50)
    monkeypatch.chdir(root)
    return root


def _compile(root: Path, name: str, *extra: str) -> Manifest:
    assert main(["compile", name, "--target", "dev", *extra]) == 0
    return Manifest.read(root / "target" / name / "manifest.json")


def _validate_error(root: Path, capsys, name: str, edit) -> str:
    path = root / "pipelines" / f"{name}.yaml"
    path.write_text(edit(path.read_text()))
    assert main(["validate", name, "--vars", "model_run_id=abc"]) == 2
    return capsys.readouterr().err


def test_templates_reach_the_manifest_verbatim_and_bind_per_run(project):
    manifest = _compile(project, SERVE, "--vars", "model_run_id=abc")
    source = manifest.config["serving"]["data_source"]
    assert source["where"] == "snapshot_date = {{ ds }}"
    assert _compile(project, SERVE, "--vars", "model_run_id=abc").content_hash == manifest.content_hash
    bound = bind(manifest.config, "serving", day(2))
    assert bound.table == "customers_daily" and bound.where == ("snapshot_date = ", Param("ds", date(2026, 1, 2)))
    with pytest.raises(MBTInputError, match="no value"):
        bind(manifest.config, "serving", RunContext(run_id="run_20260101_000000_abcd"))


@pytest.mark.parametrize("edit, expected", [
    (lambda t: t.replace("{{ ds }}", "{{ dss }}"), "did you mean {{ ds }}"),
    (lambda t: t.replace('"snapshot_date = {{ ds }}"', '"snapshot_date = {{ ds }}; DROP TABLE x"'),
     "2 statements"),
    (lambda t: t.replace('"snapshot_date = {{ ds }}"', '"SELECT 1"'), "where must be a boolean expression"),
    (lambda t: t.replace('"snapshot_date = {{ ds }}"', '"snapshot_date = = {{ ds }}"'), "invalid duckdb SQL"),
    (lambda t: t.replace("    scoring_table: customers_daily\n", ""), "needs scoring_table or query"),
    (lambda t: t.replace("    scoring_table: customers_daily\n",
                         "    scoring_table: customers_daily\n    query: SELECT 1\n"), "alternatives"),
])
def test_validate_rejects_bad_sql_with_its_position(project, capsys, edit, expected):
    err = _validate_error(project, capsys, SERVE, edit)
    assert expected in err and f"pipelines/{SERVE}.yaml:" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) <= 3


@pytest.mark.parametrize("replacement, expected", [
    ("DELETE FROM customer_profiles; SELECT 1", "got 2 statements"),
    ("UPDATE customer_profiles SET tenure = 1", "query must be a SELECT, not UPDATE"),
    ("WITH x AS (DELETE FROM customer_profiles RETURNING *) SELECT * FROM x", "not allowed"),
])
def test_validate_rejects_a_query_that_is_not_a_select(project, capsys, replacement, expected):
    original = ("SELECT p.customer_id, p.tenure, p.contract_type, b.monthly_charges, b.total_charges, b.churned\n"
                "      FROM customer_profiles AS p JOIN customer_billing AS b ON b.customer_id = p.customer_id")
    err = _validate_error(project, capsys, TRAIN, lambda t: t.replace(original, replacement))
    assert expected in err and "Traceback" not in err


def test_position_points_into_a_one_line_value(project, capsys):
    err = _validate_error(project, capsys, SERVE, lambda t: t.replace("{{ ds }}", "{{ interval_en }}"))
    lines = (project / "pipelines" / f"{SERVE}.yaml").read_text().splitlines()
    [row] = [i for i, line in enumerate(lines, 1) if "where:" in line]
    assert f"{SERVE}.yaml:{row}:" in err


def test_duckdb_where_and_query_over_the_files(project):
    conn = LocalFileConnector({"data_path": str(project / "sample_data")}, None)
    cfg = {"serving": {"data_source": {"scoring_table": "customers_daily", "where": "snapshot_date = {{ ds }}"}}}
    df = conn.read_source(bind(cfg, "serving", day(3)))
    assert len(df) == 50 and set(df["snapshot_date"].astype(str)) == {"2026-01-03"}
    chunks = list(conn.iter_source(bind(cfg, "serving", day(3)), 20))
    assert [len(c) for c in chunks] == [20, 20, 10]
    interval = {"serving": {"data_source": {"query": "SELECT customer_id FROM customers_daily WHERE snapshot_date "
                                            ">= {{ interval_start }} AND snapshot_date < {{ interval_end }}"}}}
    assert len(conn.read_source(bind(interval, "serving", day(1)))) == 50
    joined = conn.read_source(bind({"training": {"data_source": {"query": (
        "SELECT p.customer_id, p.tenure, b.churned FROM customer_profiles p "
        "JOIN customer_billing b USING (customer_id)")}}}, "training"))
    assert list(joined.columns) == ["customer_id", "tenure", "churned"] and len(joined) == 600
    empty = list(conn.iter_source(bind(cfg, "serving", day(20)), 20))
    assert [len(c) for c in empty] == [0] and "customer_id" in empty[0].columns
    with pytest.raises(MBTInputError, match="DuckDB rejected"):
        conn.read_source(bind({"serving": {"data_source": {"query": "SELECT * FROM nope"}}}, "serving"))


def test_csv_partition_replace_keeps_other_partitions(tmp_path):
    path = tmp_path / "out.csv"
    frame = pd.DataFrame({"id": ["a", "b"], "pipeline_name": "p", "execution_date": pd.Timestamp("2026-01-01")})
    key = {"pipeline_name": "p", "execution_date": pd.Timestamp("2026-01-01").to_pydatetime()}
    assert replace_csv_rows(path, [frame], key) == 2
    other = frame.assign(pipeline_name="q")
    replace_csv_rows(path, [other], {**key, "pipeline_name": "q"})
    replace_csv_rows(path, [frame.iloc[:1], frame.iloc[1:]], key)  # a rerun of p in two chunks
    table = pd.read_csv(path)
    assert table.groupby("pipeline_name").size().to_dict() == {"p": 2, "q": 2}
    # a file of the older layout (no pipeline_name) is migrated: old rows kept, columns united
    legacy = tmp_path / "legacy.csv"
    legacy.write_text("id,execution_date\nz,2025-12-31\n")
    replace_csv_rows(legacy, [frame], key)
    table = pd.read_csv(legacy, keep_default_na=False)
    assert list(table.columns) == ["id", "execution_date", "pipeline_name"] and len(table) == 3


def test_dev_target_reruns_replace_one_partition_per_logical_date(project):
    """`mbt run` on the dev target (the one invocation path, in process): the same logical date
    twice, then another date -> exactly one partition each in ./predictions.csv."""
    from airflow_mbt.runtime.runner import run_pipeline

    training = _compile(project, TRAIN)
    with TargetRuntime.from_manifest(training, project) as runtime:
        run_pipeline(training, runtime, run=RunContext(run_id="run_20260101_000000_aaaa"))
    from airflow_mbt.runtime.artifact_registry import ArtifactRegistry
    from airflow_mbt.runtime import artifacts

    with TargetRuntime.from_manifest(training, project) as runtime:
        storage = runtime.storage()
        entry = ArtifactRegistry(storage, "run_20260101_000000_aaaa", pipeline=training.name).lookup("mlflow_run")
        mlflow_run = artifacts.fetch(storage, "mlflow_run", entry, project / "tmp_fetch")
    serving = _compile(project, SERVE, "--vars", f"model_run_id={mlflow_run['run_id']}")
    for run in (day(2), RunContext(**{**day(2).__dict__, "run_id": "run_20260102_000001_bbbb"}), day(3)):
        with TargetRuntime.from_manifest(serving, project) as runtime:
            run_pipeline(serving, runtime, run=run)
    import duckdb

    rows = duckdb.sql(f"SELECT pipeline_name, execution_date, count(*) AS n, count(DISTINCT customer_id) AS ids, "
                      f"min(serving_run_id) AS run FROM read_csv('{project / 'predictions.csv'}') "
                      f"GROUP BY ALL ORDER BY execution_date").fetchall()
    assert [(r[0], str(r[1])[:10], r[2], r[3], r[4]) for r in rows] == [
        (SERVE, "2026-01-02", 50, 50, "run_20260102_000001_bbbb"),
        (SERVE, "2026-01-03", 50, 50, "run_20260103_000000_abcd")]
    scored = duckdb.sql(f"SELECT count(*) FROM read_csv('{project / 'predictions.csv'}') p JOIN "
                        f"read_csv('{project / 'sample_data' / 'customers_daily.csv'}') d USING (customer_id) "
                        "WHERE CAST(p.execution_date AS DATE) = d.snapshot_date").fetchall()[0][0]
    assert scored == 100  # every row is a row of its own day


@pytest.mark.parametrize("interval, expected", [
    ("{cadence: daily, days: 2}", "interval sets both cadence and days"),
    ("{days: 0, hours: 0}", "must be longer than zero"),
])
def test_validate_rejects_an_ambiguous_or_empty_interval(project, capsys, interval, expected):
    err = _validate_error(project, capsys, SERVE,
                          lambda t: t.replace("  cadence: daily\n", f"  cadence: daily\n  interval: {interval}\n", 1))
    lines = (project / "pipelines" / f"{SERVE}.yaml").read_text().splitlines()
    [row] = [i for i, line in enumerate(lines, 1) if "interval:" in line]
    assert expected in err and f"{SERVE}.yaml:{row}:" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) <= 3


def test_validate_accepts_a_cadence_or_a_duration_interval(project, capsys):
    path = project / "pipelines" / f"{SERVE}.yaml"
    text = path.read_text()
    for interval in ("{cadence: weekly}", "{days: 2, hours: 6}"):
        path.write_text(text.replace("  cadence: daily\n", f"  cadence: daily\n  interval: {interval}\n", 1))
        assert main(["validate", SERVE, "--vars", "model_run_id=abc"]) == 0, capsys.readouterr().err
