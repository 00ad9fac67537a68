"""Where published manifests live: a local folder or an ``s3://bucket/prefix/``.

Both backends offer the same four operations on keys relative to the prefix: ``list`` (key ->
ETag, one request on S3), ``get`` (bytes + ETag), ``put_if_absent`` and ``put_if_match``
(compare-and-swap, 412 on S3 / a lock + re-check on disk). boto3 is imported only when an S3
backend is actually used.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from airflow_mbt._fs import atomic_write_bytes
from airflow_mbt.errors import InfraError, MBTInputError, RegistryConflictError


def split_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix/`` -> ``("bucket", "some/prefix/")`` (prefix ends with / or is empty)."""
    rest = uri[len("s3://"):]
    bucket, _, prefix = rest.partition("/")
    if not bucket:
        raise MBTInputError(f"S3 URI {uri!r} has no bucket", field="manifests.uri",
                            hint="use s3://<bucket>/<prefix>/")
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    return bucket, prefix


def s3_client(conn_id: str):
    """A boto3 S3 client from an Airflow ``aws`` connection (login = access key, password =
    secret key, extra ``endpoint_url`` / ``region_name``). Short timeouts, one retry: a parse
    must not hang on an unreachable endpoint."""
    import boto3
    from botocore.config import Config

    from airflow_mbt.project.connections import get_connection

    conn = get_connection(conn_id)
    extra = conn.extra_dejson
    endpoint = extra.get("endpoint_url") or (extra.get("service_config") or {}).get("s3", {}).get("endpoint_url")
    return boto3.client(
        "s3",
        aws_access_key_id=conn.login or None,
        aws_secret_access_key=conn.password or None,
        endpoint_url=endpoint or None,
        region_name=extra.get("region_name") or "us-east-1",
        config=Config(connect_timeout=3, read_timeout=20, retries={"max_attempts": 2, "mode": "standard"},
                      s3={"addressing_style": "path"}),
    )


class LocalBackend:
    """A folder on disk; the "ETag" is the content's sha256 (cheap enough for small JSON files)."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root).expanduser().resolve()
        self.label = str(self.root)

    def uri(self, key: str) -> str:
        return str(self.root / key)

    def list(self) -> dict[str, str | None]:
        """key -> None (local listing does not hash; ``get`` does)."""
        if not self.root.is_dir():
            raise MBTInputError(f"manifest folder {self.root} does not exist", field="manifests_uri",
                                hint="run `mbt compile` / `mbt deploy`, or point MBT_MANIFESTS_URI at the folder")
        return {p.relative_to(self.root).as_posix(): None for p in sorted(self.root.glob("*/*.json"))}

    def get(self, key: str) -> tuple[bytes, str] | None:
        try:
            data = (self.root / key).read_bytes()
        except FileNotFoundError:
            return None
        return data, hashlib.sha256(data).hexdigest()

    def _write(self, key: str, data: bytes, expected: str | None, *, must_be_absent: bool) -> None:
        import fcntl

        path = self.root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path.parent / ".lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            current = self.get(key)
            if must_be_absent and current is not None:
                raise RegistryConflictError(f"{path} already exists")
            if not must_be_absent and (current is None or current[1] != expected):
                raise RegistryConflictError(f"{path} changed concurrently")
            atomic_write_bytes(path, data)

    def put_if_absent(self, key: str, data: bytes) -> None:
        self._write(key, data, None, must_be_absent=True)

    def put_if_match(self, key: str, data: bytes, etag: str) -> None:
        self._write(key, data, etag, must_be_absent=False)


class S3Backend:
    """``s3://bucket/prefix/`` through an Airflow ``aws`` connection."""

    def __init__(self, uri: str, conn_id: str):
        self.bucket, self.prefix = split_s3_uri(uri)
        self.conn_id = conn_id
        self.label = f"s3://{self.bucket}/{self.prefix}"
        self._client = None

    @property
    def client(self):
        if self._client is None:
            self._client = s3_client(self.conn_id)
        return self._client

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{self.prefix}{key}"

    def _infra(self, exc: Exception, what: str) -> InfraError:
        # botocore messages name the endpoint/bucket, never the keys
        return InfraError("S3", f"{what} {self.label} failed: {type(exc).__name__}: {exc}",
                          hint=f"check the endpoint and credentials of connection {self.conn_id!r}")

    def list(self) -> dict[str, str | None]:
        out: dict[str, str | None] = {}
        token = None
        try:
            while True:
                kwargs = {"Bucket": self.bucket, "Prefix": self.prefix}
                if token:
                    kwargs["ContinuationToken"] = token
                page = self.client.list_objects_v2(**kwargs)
                for obj in page.get("Contents", []):
                    out[obj["Key"][len(self.prefix):]] = obj["ETag"].strip('"')
                if not page.get("IsTruncated"):
                    return out
                token = page["NextContinuationToken"]
        except MBTInputError:
            raise
        except Exception as exc:  # botocore ClientError / EndpointConnectionError / ...
            raise self._infra(exc, "listing") from None

    def get(self, key: str) -> tuple[bytes, str] | None:
        try:
            resp = self.client.get_object(Bucket=self.bucket, Key=self.prefix + key)
            return resp["Body"].read(), resp["ETag"].strip('"')
        except Exception as exc:
            code = getattr(exc, "response", {}).get("Error", {}).get("Code")
            if code in ("NoSuchKey", "404", "NotFound"):
                return None
            if isinstance(exc, MBTInputError):
                raise
            raise self._infra(exc, f"reading {key} from") from None

    def _put(self, key: str, data: bytes, **cond) -> None:
        try:
            self.client.put_object(Bucket=self.bucket, Key=self.prefix + key, Body=data,
                                   ContentType="application/json", **cond)
        except Exception as exc:
            code = getattr(exc, "response", {}).get("Error", {}).get("Code")
            if code in ("PreconditionFailed", "412", "ConditionalRequestConflict"):
                raise RegistryConflictError(f"{self.uri(key)} changed concurrently") from None
            if isinstance(exc, MBTInputError):
                raise
            raise self._infra(exc, f"writing {key} to") from None

    def put_if_absent(self, key: str, data: bytes) -> None:
        self._put(key, data, IfNoneMatch="*")

    def put_if_match(self, key: str, data: bytes, etag: str) -> None:
        self._put(key, data, IfMatch=f'"{etag}"')


def backend_for(uri: str, conn_id: str | None = None):
    """The backend of a manifests prefix: ``s3://...`` or a local folder (``file://`` allowed)."""
    if not uri:
        raise MBTInputError("no manifests location configured", field="manifests_uri",
                            hint="set [mbt] manifests_uri or env MBT_MANIFESTS_URI")
    if uri.startswith("s3://"):
        from airflow_mbt.airflow_config import setting

        return S3Backend(uri, conn_id or setting("manifests_conn_id"))
    if "://" in uri and not uri.startswith("file://"):
        raise MBTInputError(f"unsupported manifests location {uri!r}", field="manifests_uri",
                            hint="use s3://bucket/prefix/ or a local folder")
    return LocalBackend(uri[len("file://"):] if uri.startswith("file://") else uri)
