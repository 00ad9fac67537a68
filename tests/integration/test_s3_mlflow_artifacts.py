"""The stack's MLflow server proxies artifacts into SeaweedFS: a client with no S3 keys logs an
artifact and it lands in s3://mbt-mlflow-artifacts/<experiment>/<run>/artifacts/."""

from __future__ import annotations

import os
import uuid

import pytest

pytestmark = pytest.mark.services


def test_proxied_artifacts_land_in_the_mlflow_bucket(mlflow_tracking_uri, s3_client, tmp_path, monkeypatch):
    import mlflow

    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "MLFLOW_S3_ENDPOINT_URL"):
        monkeypatch.delenv(var, raising=False)
    client = mlflow.MlflowClient(mlflow_tracking_uri)
    exp_id = client.create_experiment(f"mbt_c_stack_{uuid.uuid4().hex[:8]}")
    try:
        assert client.get_experiment(exp_id).artifact_location.startswith("mlflow-artifacts:/")
        run = client.create_run(exp_id)
        note = tmp_path / "note.txt"
        note.write_text("stored through the proxy")
        client.log_artifact(run.info.run_id, str(note))
        client.set_terminated(run.info.run_id)
        key = f"{exp_id}/{run.info.run_id}/artifacts/note.txt"
        body = s3_client.get_object(Bucket="mbt-mlflow-artifacts", Key=key)["Body"].read()
        assert body == b"stored through the proxy"
        back = client.download_artifacts(run.info.run_id, "note.txt", str(tmp_path / "dl"))
        assert open(back).read() == "stored through the proxy"
        assert "AWS_SECRET_ACCESS_KEY" not in os.environ
    finally:
        client.delete_experiment(exp_id)
