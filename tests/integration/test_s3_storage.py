"""S3Storage against the stack's SeaweedFS: round trips, pagination, multipart, missing keys,
compare-and-swap under racing writers, and the artifact registry with concurrent recorders."""

from __future__ import annotations

import hashlib
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from airflow_mbt.errors import AuthenticationError, RegistryConflictError
from airflow_mbt.plugins.storage.s3 import S3Storage
from airflow_mbt.runtime.artifact_registry import ArtifactRegistry

pytestmark = pytest.mark.services

BUCKET = "mbt-pipeline-artifacts"


@pytest.fixture
def storage(s3_prefix):
    """Storage through the Airflow connection mbt_s3 (AIRFLOW_CONN_MBT_S3 from stack.env)."""
    s = S3Storage({"bucket": BUCKET, "conn_id": "mbt_s3", "prefix": s3_prefix}, None)
    yield s
    s.close()


def _explicit(env, prefix, **over):
    cfg = {"bucket": BUCKET, "prefix": prefix, "endpoint_url": env["MBT_S3_ENDPOINT_URL"],
           "access_key": env["MBT_S3_ACCESS_KEY"], "secret_key": env["MBT_S3_SECRET_KEY"], "region": "us-east-1"}
    cfg.update(over)
    return S3Storage(cfg, None)


def test_bytes_round_trip_exists_list_and_uri(storage, s3_client, s3_prefix):
    uri = storage.put("run_1/load_data/raw.json", b'{"a": 1}')
    assert uri == f"s3://{BUCKET}/{s3_prefix}/run_1/load_data/raw.json"
    assert storage.get("run_1/load_data/raw.json") == b'{"a": 1}'
    # really in the bucket, under the prefix
    body = s3_client.get_object(Bucket=BUCKET, Key=f"{s3_prefix}/run_1/load_data/raw.json")["Body"].read()
    assert body == b'{"a": 1}'
    storage.put("run_1/split/train.parquet", b"x" * 10)
    storage.put("run_10/other", b"")
    assert storage.exists("run_1/split/train.parquet") and not storage.exists("run_1/nothing")
    assert storage.list("run_1/") == ["run_1/load_data/raw.json", "run_1/split/train.parquet"]
    assert storage.list("run_1") == ["run_1/load_data/raw.json", "run_1/split/train.parquet", "run_10/other"]
    assert storage.get("run_10/other") == b""


def test_list_paginates_past_one_thousand_keys(storage):
    keys = [f"many/k{i:05d}" for i in range(1105)]
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda k: storage.put(k, b"1"), keys))
    assert storage.list("many/") == sorted(keys)


def test_missing_keys(storage, tmp_path):
    with pytest.raises(FileNotFoundError, match="nope"):
        storage.get("nope")
    target = tmp_path / "out.bin"
    with pytest.raises(FileNotFoundError):
        storage.get_file("nope", target)
    assert not target.exists() and list(tmp_path.iterdir()) == []
    assert storage.read_versioned("nope") == (None, None)
    assert storage.list("nope/") == []


def test_multipart_file_round_trip(storage, s3_client, s3_prefix, tmp_path):
    src = tmp_path / "model.tar"
    src.write_bytes(os.urandom(40 * 1024 * 1024 + 123))
    storage.put_file("run_1/train_model/model.tar", src)
    head = s3_client.head_object(Bucket=BUCKET, Key=f"{s3_prefix}/run_1/train_model/model.tar")
    assert head["ContentLength"] == src.stat().st_size
    assert head["ETag"].strip('"').endswith("-3")  # three 16 MiB parts: it went multipart
    dst = tmp_path / "back" / "model.tar"
    storage.get_file("run_1/train_model/model.tar", dst)
    assert hashlib.sha256(dst.read_bytes()).digest() == hashlib.sha256(src.read_bytes()).digest()


def test_conditional_writes(storage):
    v1 = storage.write_conditional("reg.json", b"1", None)
    with pytest.raises(RegistryConflictError):
        storage.write_conditional("reg.json", b"other", None)       # exists already
    v2 = storage.write_conditional("reg.json", b"2", v1)
    assert v2 != v1
    with pytest.raises(RegistryConflictError):
        storage.write_conditional("reg.json", b"stale", v1)         # stale ETag
    assert storage.read_versioned("reg.json") == (b"2", v2)


@pytest.mark.parametrize("trial", range(5))
def test_racing_writers_exactly_one_wins(stack_env, s3_prefix, trial):
    writers = [_explicit(stack_env, s3_prefix) for _ in range(8)]
    for w in writers:
        assert w.client is not None  # connect before the race
    base = writers[0].write_conditional(f"race{trial}.json", b"base", None)
    barrier = threading.Barrier(8)
    results: list = [None] * 8

    def attempt(i):
        barrier.wait()
        try:
            results[i] = writers[i].write_conditional(f"race{trial}.json", f"w{i}".encode(), base)
        except RegistryConflictError:
            results[i] = "lost"

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [i for i, r in enumerate(results) if r != "lost"]
    assert len(winners) == 1, results
    data, version = writers[0].read_versioned(f"race{trial}.json")
    assert data == f"w{winners[0]}".encode() and version == results[winners[0]]


def test_registry_with_concurrent_recorders_loses_nothing(stack_env, s3_prefix):
    run_id = "run_20261129_070000_abcd"
    errors: list = []

    def recorder(worker):
        storage = _explicit(stack_env, s3_prefix)
        registry = ArtifactRegistry(storage, run_id)
        try:
            for i in range(20):
                name = f"w{worker}_a{i}"
                registry.record({name: {"uri": storage.uri(f"{run_id}/s/{name}"), "key": f"{run_id}/s/{name}",
                                        "kind": "json", "sha256": "0" * 64, "size": 1, "step": f"s{worker}"}})
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=recorder, args=(w,)) for w in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    final = ArtifactRegistry(_explicit(stack_env, s3_prefix), run_id).load()
    assert sorted(final) == sorted(f"w{w}_a{i}" for w in range(2) for i in range(20))


def test_explicit_keys_and_wrong_secret(stack_env, s3_prefix):
    good = _explicit(stack_env, s3_prefix)
    good.put("k", b"v")
    assert good.get("k") == b"v"
    wrong = "definitely-not-the-secret-9f3a"
    bad = _explicit(stack_env, s3_prefix, secret_key=wrong)
    with pytest.raises(AuthenticationError) as err:
        bad.get("k")
    text = str(err.value)
    assert text.startswith("S3:") and stack_env["MBT_S3_ENDPOINT_URL"] in text and BUCKET in text
    assert wrong not in text and stack_env["MBT_S3_SECRET_KEY"] not in text


def test_rejected_connection_credentials_name_the_endpoint_not_the_secret(monkeypatch, stack_env):
    """The conn_id path goes through S3Hook's session; a bad key is an AuthenticationError that
    names the endpoint from the connection's extra and never the secret."""
    monkeypatch.setenv("AIRFLOW_CONN_MBT_BAD_S3", (
        '{"conn_type": "aws", "login": "nobody", "password": "wrong-secret-4711", '
        f'"extra": {{"endpoint_url": "{stack_env["MBT_S3_ENDPOINT_URL"]}"}}}}'))
    s = S3Storage({"bucket": BUCKET, "conn_id": "mbt_bad_s3"}, None)
    with pytest.raises(AuthenticationError) as err:
        s.get("anything")
    text = str(err.value)
    assert stack_env["MBT_S3_ENDPOINT_URL"] in text and BUCKET in text
    assert "wrong-secret-4711" not in text and not err.value.retryable
