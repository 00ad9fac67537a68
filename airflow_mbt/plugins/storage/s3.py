"""``S3Storage``: artifact storage in an S3 bucket (AWS or SeaweedFS/MinIO via ``endpoint_url``).

Config: ``bucket`` (required), ``prefix`` (optional key prefix), and credentials either from an
Airflow aws connection ``conn_id`` - resolved by the amazon provider's ``S3Hook`` session, so
keys, session tokens, ``role_arn`` and ``extra.region_name``/``extra.endpoint_url`` behave as
everywhere else in Airflow - or from ``endpoint_url``, ``access_key``, ``secret_key``, ``region``.
Client limits: ``connect_timeout`` (5 s), ``read_timeout`` (60 s), ``max_attempts`` (3); the
manifest store passes shorter ones so a DAG parse never hangs on a dead endpoint.
Large files go multipart (16 MiB parts). ``read_versioned``/``write_conditional`` use the ETag
with ``IfMatch``/``IfNoneMatch`` (a 412 becomes ``RegistryConflictError``). Errors name S3, the
endpoint and the bucket, never a key secret. boto3 is imported lazily.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

from airflow_mbt._fs import atomic_target
from airflow_mbt.errors import (AuthenticationError, InfraError, MBTInputError,
                                RegistryConflictError)
from airflow_mbt.plugins.base import Storage
from airflow_mbt.connections import get_connection

MULTIPART_BYTES = 16 * 1024 * 1024
AUTH_CODES = {"InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "InvalidToken",
              "ExpiredToken", "AuthorizationHeaderMalformed"}
MISSING_CODES = {"NoSuchKey", "404", "NotFound"}
CONFLICT_CODES = {"PreconditionFailed", "412", "ConditionalRequestConflict", "409"}


class S3Storage(Storage):
    type_name = "s3"

    def __init__(self, config: dict, runtime=None):
        super().__init__(config or {}, runtime)
        self.bucket = self.config.get("bucket")
        if not self.bucket:
            raise MBTInputError("S3 storage needs a bucket", field="storage.config.bucket",
                                hint="e.g. storage: {type: s3, config: "
                                     "{bucket: mbt-pipeline-artifacts, conn_id: mbt_s3}}")
        prefix = str(self.config.get("prefix") or "").strip("/")
        self.prefix = f"{prefix}/" if prefix else ""
        self._client = None
        self.endpoint_url = self.config.get("endpoint_url")

    # ---- client ---------------------------------------------------------------------------
    def _settings(self) -> dict:
        """boto3 client keyword arguments from the explicit config (contains secrets: never log)."""
        renames = {"endpoint_url": "endpoint_url", "access_key": "aws_access_key_id",
                   "secret_key": "aws_secret_access_key", "region": "region_name"}
        kw = {arg: self.config[key] for key, arg in renames.items() if self.config.get(key)}
        kw.setdefault("region_name", "us-east-1")
        return kw

    def _session_from_connection(self, conn_id: str):
        """(boto3 session, endpoint_url) of an Airflow aws connection, through ``S3Hook``."""
        # a clear MBTInputError when the connection is not defined (S3Hook would fall back to an
        # anonymous default chain and fail later with a vaguer message)
        self.runtime.connection(conn_id) if self.runtime is not None else get_connection(conn_id)
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook

        hook = S3Hook(aws_conn_id=conn_id)
        cfg = hook.conn_config
        session = hook.get_session(region_name=self.config.get("region") or cfg.region_name or "us-east-1")
        return session, self.config.get("endpoint_url") or cfg.get_service_endpoint_url("s3")

    @property
    def client(self):
        if self._client is None:
            import boto3
            from botocore.config import Config

            conn_id = self.config.get("conn_id")
            if conn_id:
                session, endpoint = self._session_from_connection(conn_id)
                kw = {"endpoint_url": endpoint} if endpoint else {}
            else:
                session, kw = boto3, self._settings()
            self.endpoint_url = kw.get("endpoint_url") or "https://s3.amazonaws.com"
            self._client = session.client(
                "s3", config=Config(retries={"max_attempts": int(self.config.get("max_attempts", 3)),
                                             "mode": "standard"},
                                    connect_timeout=float(self.config.get("connect_timeout", 5)),
                                    read_timeout=float(self.config.get("read_timeout", 60)),
                                    signature_version="s3v4",
                                    s3={"addressing_style": "path"} if kw.get("endpoint_url") else None),
                **kw)
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
        self._client = None

    @contextmanager
    def _errors(self, doing: str, key: str | None = None):
        """Translate botocore errors: missing key -> FileNotFoundError, 412 -> conflict,
        credentials -> AuthenticationError, the rest -> InfraError naming endpoint and bucket."""
        from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

        where = f"bucket {self.bucket}"
        try:
            self.client  # noqa: B018 - resolve the endpoint (and session) before it is named
            where = f"endpoint {self.endpoint_url}, {where}"
            yield
        except ClientError as exc:
            err = exc.response.get("Error", {})
            code = str(err.get("Code", ""))
            status = str(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))
            if key is not None and (code in MISSING_CODES or (status == "404" and code != "NoSuchBucket")):
                raise FileNotFoundError(self.uri(key)) from None
            if code in CONFLICT_CODES or status == "412":
                raise RegistryConflictError(f"{self.uri(key or '')} changed concurrently ({code or status})") from None
            if code in AUTH_CODES or status == "403":
                raise AuthenticationError("S3", f"{doing}: credentials rejected ({code or status}) at {where}",
                                          hint="check the access/secret key of the storage connection") from None
            if code == "NoSuchBucket":
                raise InfraError("S3", f"{doing}: bucket {self.bucket} does not exist at {self.endpoint_url}",
                                 hint="create it (scripts/stack.sh up s3 creates the stack buckets)") from None
            detail = f"{code or status} {err.get('Message', '')}".strip()
            raise InfraError("S3", f"{doing} failed at {where}: {detail}") from None
        except NoCredentialsError:
            raise AuthenticationError("S3", f"{doing}: no credentials for {where}",
                                      hint="set conn_id or access_key/secret_key") from None
        except BotoCoreError as exc:
            raise InfraError("S3", f"{doing}: cannot reach {where} ({type(exc).__name__})",
                             hint="is the S3 endpoint up? (scripts/stack.sh status s3)") from None

    # ---- keys -----------------------------------------------------------------------------
    def _key(self, key: str) -> str:
        parts = key.split("/") if isinstance(key, str) and key else []
        if not parts or any(p in ("", ".", "..") for p in parts) or "\\" in key or "\0" in key:
            raise MBTInputError(f"invalid storage key {key!r}",
                                hint="keys are relative paths like <pipeline>/<run_id>/<step>/<artifact>")
        return self.prefix + key

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{self.prefix}{key}"

    # ---- bytes and files ------------------------------------------------------------------
    def put(self, key: str, data: bytes) -> str:
        with self._errors(f"writing {self.uri(key)}"):
            self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)
        return self.uri(key)

    def get(self, key: str) -> bytes:
        with self._errors(f"reading {self.uri(key)}", key):
            return self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"].read()

    def _transfer(self):
        from boto3.s3.transfer import TransferConfig

        return TransferConfig(multipart_threshold=MULTIPART_BYTES, multipart_chunksize=MULTIPART_BYTES,
                              max_concurrency=4)

    def put_file(self, key: str, path: Path) -> str:
        with self._errors(f"uploading {path} to {self.uri(key)}"):
            self.client.upload_file(str(path), self.bucket, self._key(key), Config=self._transfer())
        return self.uri(key)

    def get_file(self, key: str, path: Path) -> None:
        with atomic_target(path) as tmp, self._errors(f"downloading {self.uri(key)}", key):
            self.client.download_file(self.bucket, self._key(key), str(tmp), Config=self._transfer())

    def exists(self, key: str) -> bool:
        try:
            with self._errors(f"checking {self.uri(key)}", key):
                self.client.head_object(Bucket=self.bucket, Key=self._key(key))
        except FileNotFoundError:
            return False
        return True

    def list(self, prefix: str) -> list[str]:
        """Keys starting with ``prefix`` (string prefix), relative to the storage prefix, sorted."""
        return list(self.list_versions(prefix))

    def list_versions(self, prefix: str) -> dict[str, str | None]:
        """Keys starting with ``prefix`` -> ETag (as ``read_versioned`` returns it), from the LIST."""
        out: dict[str, str | None] = {}
        with self._errors(f"listing {self.uri(prefix)}"):
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self.prefix + prefix)
            for page in pages:
                out.update((obj["Key"][len(self.prefix):], obj["ETag"]) for obj in page.get("Contents", []))
        return dict(sorted(out.items()))

    def delete_prefix(self, prefix: str) -> int:
        """Delete every key under ``prefix`` (tests and cleanup); returns how many."""
        keys = self.list(prefix)
        with self._errors(f"deleting {self.uri(prefix)}"):
            for start in range(0, len(keys), 1000):
                self.client.delete_objects(Bucket=self.bucket, Delete={
                    "Objects": [{"Key": self.prefix + k} for k in keys[start:start + 1000]], "Quiet": True})
        return len(keys)

    # ---- compare-and-swap -----------------------------------------------------------------
    def read_versioned(self, key: str) -> tuple[bytes | None, str | None]:
        try:
            with self._errors(f"reading {self.uri(key)}", key):
                obj = self.client.get_object(Bucket=self.bucket, Key=self._key(key))
                return obj["Body"].read(), obj["ETag"]
        except FileNotFoundError:
            return None, None

    def write_conditional(self, key: str, data: bytes, expected_version: str | None) -> str:
        condition = {"IfNoneMatch": "*"} if expected_version is None else {"IfMatch": expected_version}
        with self._errors(f"conditional write of {self.uri(key)}", key):
            try:
                resp = self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data, **condition)
            except Exception as exc:
                # IfMatch on a key deleted meanwhile answers 404: the precondition failed too
                if expected_version is not None and _status(exc) == "404":
                    raise RegistryConflictError(f"{self.uri(key)} disappeared concurrently") from None
                raise
        return resp["ETag"]


def _status(exc: Exception) -> str:
    resp = getattr(exc, "response", None) or {}
    return str(resp.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))
