"""The artifact registry and artifact transfer over real S3 (the local SeaweedFS of
scripts/stack.sh): concurrent registry updates from separate processes lose nothing, and a
multipart-sized table round-trips with its sha256 verified (and tampering is caught)."""

from __future__ import annotations

import multiprocessing
import subprocess
import uuid
from pathlib import Path

import pytest

from airflow_mbt.plugins.storage.s3 import S3Storage
from airflow_mbt.runtime import artifacts
from airflow_mbt.runtime.artifact_registry import ArtifactRegistry

pytestmark = pytest.mark.services
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def s3_config():
    """S3 storage config for the stack's bucket, under a prefix of its own (removed afterwards)."""
    out = subprocess.run(["bash", "-c", "set -a; . scripts/stack.env; env -0"], cwd=ROOT,
                         capture_output=True, text=True, check=True)
    env = dict(item.split("=", 1) for item in out.stdout.split("\0") if "=" in item)
    config = {"bucket": "mbt-pipeline-artifacts", "endpoint_url": env["MBT_S3_ENDPOINT_URL"],
              "access_key": env["MBT_S3_ACCESS_KEY"], "secret_key": env["MBT_S3_SECRET_KEY"],
              "prefix": f"test-runtime-{uuid.uuid4().hex[:8]}"}
    yield config
    S3Storage(config).delete_prefix("")


def _writer(config: dict, run_id: str, tag: str, count: int, barrier) -> None:
    registry = ArtifactRegistry(S3Storage(config), run_id)
    barrier.wait()
    for i in range(count):
        registry.record({f"{tag}_{i}": {"uri": "u", "key": "k", "kind": "json", "sha256": "0", "size": 0,
                                        "step": tag}})


@pytest.mark.parametrize("repetition", range(5))
def test_concurrent_processes_lose_no_registry_update(s3_config, repetition):
    ctx = multiprocessing.get_context("fork")
    run_id = f"run_s3_{repetition}_{uuid.uuid4().hex[:4]}"
    barrier = ctx.Barrier(2)
    procs = [ctx.Process(target=_writer, args=(s3_config, run_id, tag, 15, barrier))
             for tag in ("load_model", "load_scoring_data")]
    [p.start() for p in procs]
    [p.join(300) for p in procs]
    assert [p.exitcode for p in procs] == [0, 0]
    names = ArtifactRegistry(S3Storage(s3_config), run_id).load()
    assert len(names) == 30


def test_large_table_round_trip_and_tamper_detection(s3_config, tmp_path):
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(1)
    df = pd.DataFrame({"a": rng.random(3_000_000), "b": rng.integers(0, 1 << 40, 3_000_000)})
    storage = S3Storage(s3_config)
    entry = artifacts.store(storage, "run_big", "load_data", "raw_data", "table", df, tmp_path)
    assert entry["size"] > 40 << 20  # several multipart parts
    assert entry["uri"] == f"s3://mbt-pipeline-artifacts/{s3_config['prefix']}/run_big/load_data/raw_data.parquet"
    pd.testing.assert_frame_equal(artifacts.fetch(storage, "raw_data", entry, tmp_path / "f"), df)

    storage.put(entry["key"], b"PAR1 not the artifact")
    with pytest.raises(artifacts.ArtifactError, match=r"'raw_data' at s3://.*failed verification"):
        artifacts.fetch(storage, "raw_data", entry, tmp_path / "g")
