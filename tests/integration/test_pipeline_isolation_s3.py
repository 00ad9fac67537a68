"""Two pipelines with the same step names run at the same time on the real SeaweedFS S3, even under
the SAME run id: their keys are ``<pipeline>/<run_id>/...``, so neither reads the other's
artifacts (each train_set holds only its own pipeline's customers)."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
from ml_pipeline_fixtures import deep_merge, dev_target, make_manifest, training_config

from airflow_mbt.runtime.artifact_registry import ArtifactRegistry
from airflow_mbt.runtime.context import RunContext, TargetRuntime
from airflow_mbt.runtime.invocation import invoke
from airflow_mbt.scaffold.sample_data import write_csvs

pytestmark = pytest.mark.services

RUN_ID = "run_20261126_000000_0000000000000001"  # shared on purpose: the worst case


def _pipeline(root: Path, name: str, n: int, s3_prefix: str):
    write_csvs(root / "sample_data", n_customers=n, n_score=10, seed=n)
    storage = {"type": "s3", "config": {"bucket": "mbt-pipeline-artifacts", "prefix": s3_prefix + "/",
                                        "conn_id": "mbt_s3"}}
    cfg = deep_merge(training_config(), {"project": {"name": name}})
    return make_manifest(cfg, dev_target(storage=storage))


def test_same_steps_same_run_id_two_pipelines_never_share_artifacts(tmp_path, s3_prefix, s3_client):
    jobs = {"alpha_churn": (tmp_path / "alpha", 300), "beta_churn": (tmp_path / "beta", 500)}
    manifests = {name: _pipeline(root, name, n, s3_prefix) for name, (root, n) in jobs.items()}
    errors: list[BaseException] = []
    start = threading.Barrier(len(jobs))

    def run(name: str) -> None:
        manifest, root = manifests[name], jobs[name][0]
        try:
            with TargetRuntime.from_manifest(manifest, root) as runtime:
                start.wait()
                for step in ("load_data", "split_data"):
                    invoke(manifest, step, RunContext(run_id=RUN_ID), runtime=runtime)
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(name,)) for name in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors

    for name, (root, n) in jobs.items():
        manifest = manifests[name]
        with TargetRuntime.from_manifest(manifest, root) as runtime:
            storage = runtime.storage()
            entries = ArtifactRegistry(storage, RUN_ID, pipeline=name).load()
            assert set(entries) == {"raw_data", "train_set", "test_set"}
            assert all(e["key"].startswith(f"{name}/{RUN_ID}/") for e in entries.values()), entries
            assert entries["raw_data"]["uri"] == f"s3://mbt-pipeline-artifacts/{s3_prefix}/{name}/{RUN_ID}/" \
                                                 "load_data/raw_data.parquet"
            # what split_data read is this pipeline's raw data: n rows, split into train and test
            from airflow_mbt.runtime import artifacts

            train = artifacts.fetch(storage, "train_set", entries["train_set"], tmp_path / f"{name}-fetch")
            test = artifacts.fetch(storage, "test_set", entries["test_set"], tmp_path / f"{name}-fetch2")
            assert len(train) + len(test) == n
    listed = s3_client.list_objects_v2(Bucket="mbt-pipeline-artifacts", Prefix=f"{s3_prefix}/")["Contents"]
    tops = {o["Key"].removeprefix(f"{s3_prefix}/").split("/")[0] for o in listed}
    assert tops == set(jobs)
