"""Partitioned serving (``serving.partitions``): the plan, the partition filter as SQL (run in
DuckDB over real files, and composed for PostgreSQL), the compiled steps, the mapped task group of
the DAG, the mapped pods, and per-partition artifact keys."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime, timezone

import pytest
from airflow_manifests import build_manifest

from airflow_mbt.errors import MBTInputError
from airflow_mbt.manifest import Manifest
from airflow_mbt.partitions import PartitionFilter, PartitionPlan, artifact_name, plan_of, storage_step
from airflow_mbt.sources import SourceQuery, partition_predicate, range_value_sql

ROWS = 500


def partitioned_manifest(name: str, count: int = 4, executor: str = "local") -> Manifest:
    """``build_manifest`` serving shape plus ``serving.partitions`` and the ``verify`` step, as
    ``mbt compile`` writes them."""
    from airflow_mbt.pipeline.compiler import manifest_steps

    base = build_manifest(name, "serving", executor=executor).to_json()
    body = json.loads(base)
    body["config"]["serving"]["partitions"] = {"count": count, "by": "customer_id"}
    body["steps"] = manifest_steps("serving", {}, partitioned=True)
    for key in ("content_hash",):
        body.pop(key, None)
    return Manifest.build({k: v for k, v in body.items() if k not in ("schema_version",)})


# ---- the plan ------------------------------------------------------------------------------------
def test_plan_of_reads_hash_and_range():
    assert plan_of({"serving": {}}) is None
    assert plan_of({"serving": {"partitions": {"count": 4, "by": "id"}}}) == PartitionPlan(4, "id", "hash")
    assert plan_of({"serving": {"partitions": {"count": 2, "by_range": "ts"}}}) == PartitionPlan(2, "ts", "range")


@pytest.mark.parametrize("spec, field", [({"count": 2}, "serving.partitions"),
                                         ({"count": 2, "by": "a", "by_range": "b"}, "serving.partitions"),
                                         ({"count": 0, "by": "a"}, "serving.partitions.count")])
def test_bad_plans_are_input_errors(spec, field):
    with pytest.raises(MBTInputError) as err:
        plan_of({"serving": {"partitions": spec}})
    assert err.value.field == field


def test_filter_index_is_range_checked():
    plan = PartitionPlan(3, "id", "hash")
    assert plan.filter(2) == PartitionFilter("hash", "id", 3, 2)
    for bad in (3, -1, True):
        with pytest.raises(MBTInputError, match="out of range") as err:
            plan.filter(bad)
        assert err.value.field == "--partition"


def test_artifact_names_and_keys_include_the_partition():
    assert artifact_name("predictions", 3) == "predictions@p3"
    assert storage_step("predict", 3) == "predict/p3"


# ---- the filter as SQL ------------------------------------------------------------------------------
def test_predicate_binds_values_and_quotes_the_column():
    from airflow_mbt.sources import Param

    segs = partition_predicate(PartitionFilter("hash", 'we"ird', 4, 1), "postgres")
    text = "".join(s for s in segs if isinstance(s, str))
    assert '"we""ird"' in text and "hashtextextended" in text
    assert [s.value for s in segs if isinstance(s, Param)][-1] == 1  # the index is a value, not SQL text
    assert "4" not in text and "1" not in text.replace("0)", "")


def test_range_value_sql_by_type():
    part = PartitionFilter("range", "t", 2, 0)
    assert "EPOCH" in range_value_sql(part, "timestamptz", "postgres")
    assert "EPOCH" in range_value_sql(part, "TIMESTAMP WITH TIME ZONE", "duckdb")
    assert range_value_sql(part, "DECIMAL(10,2)", "duckdb").startswith("CAST")
    with pytest.raises(MBTInputError) as err:
        range_value_sql(part, "text", "postgres")
    assert err.value.field == "serving.partitions.by_range"


@pytest.fixture
def scoring_dir(tmp_path):
    import random

    rng = random.Random(7)
    lines = ["customer_id,amount,signup"]
    for i in range(ROWS):
        cid = "" if i % 97 == 0 else str(1000 + i)  # some NULL keys
        amount = "" if i % 89 == 0 else f"{rng.uniform(-50, 500):.3f}"
        lines.append(f"{cid},{amount},2026-01-{1 + i % 28:02d} {i % 24:02d}:00:00")
    (tmp_path / "scoring.csv").write_text("\n".join(lines) + "\n")
    return tmp_path


@pytest.mark.parametrize("method, column", [("hash", "customer_id"), ("range", "amount"), ("range", "signup")])
@pytest.mark.parametrize("count", [1, 4])
def test_partitions_are_disjoint_and_cover_every_row(scoring_dir, method, column, count):
    from airflow_mbt.plugins.connectors.local_file import LocalFileConnector

    conn = LocalFileConnector({"data_path": str(scoring_dir)})
    whole = SourceQuery("scoring", None, None, "serving.data_source.scoring_table")
    seen: list[str] = []
    sizes = []
    for i in range(count):
        df = conn.read_source(replace(whole, partition=PartitionFilter(method, column, count, i)))
        sizes.append(len(df))
        seen += list(df["signup"].astype(str) + "|" + df["customer_id"].astype(str) + "|" + df["amount"].astype(str))
    assert sum(sizes) == ROWS == conn.count_source(whole)
    assert len(set(seen)) == len(seen)  # rows are unique in the fixture: no row in two partitions
    if count == 4 and method == "hash":
        assert min(sizes) > ROWS / 8  # a hash spreads the keys


def test_where_and_partition_compose(scoring_dir):
    from airflow_mbt.plugins.connectors.local_file import LocalFileConnector

    conn = LocalFileConnector({"data_path": str(scoring_dir)})
    where = SourceQuery("scoring", None, ("amount > 100",), "serving.data_source.where")
    total = conn.count_source(where)
    parts = [len(conn.read_source(replace(where, partition=PartitionFilter("range", "amount", 3, i))))
             for i in range(3)]
    assert sum(parts) == total < ROWS


def test_unknown_partition_column_is_an_input_error(scoring_dir):
    from airflow_mbt.plugins.connectors.local_file import LocalFileConnector

    conn = LocalFileConnector({"data_path": str(scoring_dir)})
    with pytest.raises(MBTInputError, match="not a column") as err:
        conn.read_source(SourceQuery("scoring", None, None, "f", PartitionFilter("hash", "nope", 2, 0)))
    assert err.value.field == "serving.partitions"


# ---- compiled steps, DAG, pods ------------------------------------------------------------------------
def test_partitioned_manifest_ends_with_verify():
    manifest = partitioned_manifest("serve_parts")
    names = [s.name for s in manifest.steps]
    assert names[-1] == "verify" and manifest.step("verify").depends_on == ("publish",)


def test_dag_maps_the_partition_steps_in_one_task_group():
    from airflow.sdk.definitions.taskgroup import MappedTaskGroup

    from airflow_mbt.dag_factory import build_dag

    dag = build_dag(partitioned_manifest("serve_parts"), "s3://b/m.json")
    ids = set(dag.task_dict)
    assert ids == {"load_model", "verify", *(f"partitions.{s}" for s in
                                             ("load_scoring_data", "apply_transforms", "predict", "publish"))}
    group = dag.task_group_dict["partitions"]
    assert isinstance(group, MappedTaskGroup)
    assert dag.get_task("partitions.load_scoring_data").upstream_task_ids == {"load_model"}  # group roots
    assert dag.get_task("partitions.apply_transforms").upstream_task_ids == {"partitions.load_scoring_data"}
    assert dag.get_task("verify").upstream_task_ids == {"partitions.publish"}


def test_unpartitioned_dag_is_unchanged():
    from airflow_mbt.dag_factory import build_dag

    dag = build_dag(build_manifest("serve_plain", "serving"), "s3://b/m.json")
    assert set(dag.task_dict) == {"load_model", "load_scoring_data", "apply_transforms", "predict", "publish"}


def test_mapped_pods_render_their_partition_and_validate(monkeypatch):
    import kubernetes_validate
    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import TaskInstance
    from kubernetes.client import ApiClient

    from airflow_mbt.dag_factory import build_dag

    monkeypatch.setenv("PG_PASSWORD", "pw")
    dag = build_dag(partitioned_manifest("serve_k8s", executor="kubernetes"), "s3://b/m.json")
    when = datetime(2026, 3, 1, tzinfo=timezone.utc)
    dag_run = DagRun(dag_id=dag.dag_id, run_id="scheduled__2026-03-01", logical_date=when, run_after=when,
                     data_interval=(when, when), run_type="scheduled")
    for task_id, index, expect in (("partitions.predict", 2, ["--partition", "2"]), ("load_model", -1, None)):
        op = dag.get_task(task_id)
        ti = TaskInstance(op, run_id=dag_run.run_id, dag_version_id=None, map_index=index)
        op.render_template_fields({"dag_run": dag_run, "ti": ti})
        spec = ApiClient().sanitize_for_serialization(op.build_pod_request_obj(dry_run=True))
        args = spec["spec"]["containers"][0]["args"]
        if expect:
            assert args[-2:] == expect
        else:
            assert "--partition" not in args
        for version in ("1.30.0", kubernetes_validate.latest_version()):
            kubernetes_validate.validate(spec, version, strict=True)


def test_operator_run_context_takes_the_map_index():
    from types import SimpleNamespace

    from airflow_mbt.operators.step import run_context_from_airflow

    when = datetime(2026, 3, 1, tzinfo=timezone.utc)
    dag_run = SimpleNamespace(run_id="r", dag_id="d", logical_date=when, run_type="manual")
    for index, expect in ((3, 3), (-1, None)):
        ctx = {"dag_run": dag_run, "ti": SimpleNamespace(try_number=1, map_index=index), "logical_date": when}
        assert run_context_from_airflow(ctx, "run_20260301_000000_0011223344556677").partition == expect


def test_step_execute_parses_partition():
    from airflow_mbt.cli.parser import build_parser

    base = ["step", "execute", "--pipeline", "p", "--step", "predict", "--target", "t", "--run-id", "r"]
    parser = build_parser()
    assert parser.parse_args(base + ["--partition", "3"]).partition == 3
    assert parser.parse_args(base + ["--partition", "-1"]).partition is None
    with pytest.raises(SystemExit) as exit_:
        parser.parse_args(base + ["--partition", "x"])
    assert exit_.value.code == 2
    assert build_parser().parse_args(["run", "-s", "p", "--parallel", "2"]).parallel == 2


# ---- runner phases and verify ------------------------------------------------------------------------
def test_runner_groups_the_partitioned_steps_into_one_phase():
    from airflow_mbt.runtime.runner import _phases

    assert _phases(partitioned_manifest("serve_parts")) == [
        "load_model", ("load_scoring_data", "apply_transforms", "predict", "publish"), "verify"]
    assert _phases(build_manifest("serve_plain", "serving"))[1] == "load_scoring_data"


def test_executor_refuses_a_partitioned_step_without_a_partition(tmp_path):
    from airflow_mbt.runtime.context import RunContext, TargetRuntime
    from airflow_mbt.runtime.executor import execute_step

    manifest = partitioned_manifest("serve_parts")
    runtime = TargetRuntime(target=manifest.target, project_dir=tmp_path)
    for step, part, match in (("predict", None, "which one"), ("load_model", 1, "not partitioned"),
                              ("predict", 4, "out of range")):
        with pytest.raises(MBTInputError, match=match) as err:
            execute_step(manifest, step, "run_20260301_000000_0011223344556677", runtime,
                         run=RunContext(run_id="run_20260301_000000_0011223344556677", partition=part))
        assert err.value.field == "--partition"


def test_verify_fails_when_the_partitions_do_not_add_up(scoring_dir):
    import logging
    from types import SimpleNamespace

    from airflow_mbt.errors import IntegrityError
    from airflow_mbt.plugins.connectors.local_file import LocalFileConnector
    from airflow_mbt.steps import verify

    conn = LocalFileConnector({"data_path": str(scoring_dir)})
    manifest = partitioned_manifest("serve_parts", count=2)
    config = {**manifest.config, "serving": {**manifest.config["serving"],
                                             "data_source": {"scoring_table": "scoring"}}}
    ctx = SimpleNamespace(config=config, run_id="r1", run=None, connector=lambda: conn, chunk_rows=lambda: 100,
                          log=logging.getLogger("t"), manifest=manifest)
    ok = verify.run.__wrapped__(ctx, {"publish_result": [{"rows": 200, "serving_run_id": "r1"},
                                                         {"rows": ROWS - 200, "serving_run_id": "r1"}]})
    assert ok["verify_result"]["source_rows"] == ROWS
    with pytest.raises(IntegrityError, match="published 499 rows"):
        verify.run.__wrapped__(ctx, {"publish_result": [{"rows": 200, "serving_run_id": "r1"},
                                                        {"rows": ROWS - 201, "serving_run_id": "r1"}]})
    with pytest.raises(IntegrityError, match="another run"):
        verify.run.__wrapped__(ctx, {"publish_result": [{"rows": 200, "serving_run_id": "r0"},
                                                        {"rows": ROWS - 200, "serving_run_id": "r1"}]})
