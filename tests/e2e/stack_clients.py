"""Clients of the local stack's services for the end-to-end checks, built from the connections
in scripts/stack.env (``AIRFLOW_CONN_MBT_*``): SeaweedFS S3 (boto3), the warehouse (psycopg 3)
and the MLflow tracking server."""

from __future__ import annotations

import json

MLFLOW_URI = "http://127.0.0.1:5000"


def s3_client(env: dict):
    import boto3

    conn = json.loads(env["AIRFLOW_CONN_MBT_S3"])
    return boto3.client("s3", endpoint_url=conn["extra"]["endpoint_url"], aws_access_key_id=conn["login"],
                        aws_secret_access_key=conn["password"], region_name=conn["extra"].get("region_name"))


def s3_keys(client, bucket: str, prefix: str) -> list[str]:
    keys = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys += [o["Key"] for o in page.get("Contents", [])]
    return keys


def s3_delete_prefix(client, bucket: str, prefix: str) -> int:
    keys = s3_keys(client, bucket, prefix)
    for i in range(0, len(keys), 500):
        client.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in keys[i:i + 500]]})
    return len(keys)


def warehouse(env: dict):
    import psycopg

    conn = json.loads(env["AIRFLOW_CONN_MBT_WAREHOUSE"])
    return psycopg.connect(host=conn["host"], port=conn["port"], dbname=conn["schema"], user=conn["login"],
                           password=conn["password"], connect_timeout=10)


def mlflow_client():
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=MLFLOW_URI)
