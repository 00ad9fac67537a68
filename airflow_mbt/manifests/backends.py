"""Where published manifests live, and their key layout.

A manifests location is a local folder or an ``s3://bucket/prefix/``, served by the same
``Storage`` plugins as artifacts (``LocalStorage`` / ``S3Storage``): an ``s3://`` location is
read through the Airflow ``aws`` connection's ``S3Hook`` session (endpoint, keys, session
tokens, ``role_arn``), and S3 errors are translated by ``S3Storage``'s one error map.

Layout under a location (same on disk and in S3)::

    <pipeline>/manifest.json      current manifest of the pipeline (what the DAG loader lists)
    <pipeline>/<hash-hex>.json    immutable pinned copy = a release (what a task fetches by hash)
    <pipeline>/releases.json      release history (``airflow_mbt.manifests.releases``)

``ManifestLocation`` offers the operations the store and the parse cache need, on keys
relative to the location: ``list`` (key -> version, one request on S3), ``get`` (bytes and
version, ``None`` when missing), ``put_if_absent`` and ``put_if_match`` (compare-and-swap; a
failed precondition raises ``RegistryConflictError``). Nothing here imports boto3: the S3
client is built on the first request.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from airflow_mbt.errors import MBTInputError

if TYPE_CHECKING:  # pragma: no cover
    from airflow_mbt.plugins.base import Storage

CURRENT = "manifest.json"
_HEX = re.compile(r"[0-9a-f]{64}")
# a DAG parse must not hang on an unreachable endpoint: short timeouts, one retry
PARSE_CLIENT_LIMITS = {"connect_timeout": 3, "read_timeout": 20, "max_attempts": 2}


def hash_hex(content_hash: str) -> str:
    """``sha256:<hex>`` (or bare hex) -> the 64 hex digits; anything else is an input error."""
    value = content_hash.split(":", 1)[-1]
    if not _HEX.fullmatch(value):
        raise MBTInputError(f"invalid manifest hash {content_hash!r}", field="--manifest-hash",
                            hint="expected sha256:<64 hex digits> as printed by `mbt compile`")
    return value


def current_key(pipeline: str) -> str:
    return f"{pipeline}/{CURRENT}"


def pinned_key(pipeline: str, content_hash: str) -> str:
    return f"{pipeline}/{hash_hex(content_hash)}.json"


def is_pinned_key(key: str) -> bool:
    name, _, leaf = key.partition("/")
    return bool(name) and leaf.endswith(".json") and bool(_HEX.fullmatch(leaf[:-5]))


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


class ManifestLocation:
    """A manifests prefix on one ``Storage`` plugin (``is_s3`` tells which kind)."""

    def __init__(self, storage: Storage, label: str, *, is_s3: bool):
        self.storage = storage
        self.label = label
        self.is_s3 = is_s3
        self._base = label if label.endswith("/") else label + "/"

    def uri(self, key: str) -> str:
        """What ``storage.uri(key)`` gives for a valid key, without re-validating it (the parse
        path names every manifest twice)."""
        return self._base + key

    def list(self) -> dict[str, str | None]:
        """Every ``<pipeline>/<leaf>.json`` key -> its version (``None`` on disk: ``get`` hashes)."""
        if not self.is_s3 and not Path(self.label).is_dir():
            raise MBTInputError(f"manifest folder {self.label} does not exist", field="manifests_uri",
                                hint="run `mbt compile` / `mbt deploy`, or point MBT_MANIFESTS_URI at the folder")
        return {k: v for k, v in self.storage.list_versions("").items()
                if k.count("/") == 1 and k.endswith(".json")}

    def read(self, key: str) -> bytes | None:
        """The bytes of ``key`` (no version: on disk that would hash them), ``None`` when missing."""
        try:
            return self.storage.get(key)
        except FileNotFoundError:
            return None

    def get(self, key: str) -> tuple[bytes, str] | None:
        data, version = self.storage.read_versioned(key)
        return None if data is None or version is None else (data, version)

    def put_if_absent(self, key: str, data: bytes) -> None:
        self.storage.write_conditional(key, data, None)

    def put_if_match(self, key: str, data: bytes, version: str) -> None:
        self.storage.write_conditional(key, data, version)

    def delete(self, key: str) -> None:
        """Remove ``key`` (missing is fine); not conditional (see ``releases``)."""
        if self.is_s3:
            from airflow_mbt.plugins.storage.s3 import S3Storage

            assert isinstance(self.storage, S3Storage)
            self.storage.delete_prefix(key)  # just that key: no other key starts with "<pipeline>/<leaf>.json"
        else:
            Path(self.storage.uri(key)).unlink(missing_ok=True)

    def close(self) -> None:
        close = getattr(self.storage, "close", None)
        if close is not None:
            close()


def s3_location(uri: str, conn_id: str | None, **client_limits: float) -> ManifestLocation:
    """An ``s3://`` location read through Airflow connection ``conn_id`` (S3Hook session)."""
    from airflow_mbt.plugins.storage.s3 import S3Storage

    bucket, prefix = split_s3_uri(uri)
    config: dict[str, object] = {"bucket": bucket, "prefix": prefix, **client_limits}
    if conn_id:
        config["conn_id"] = conn_id
    return ManifestLocation(S3Storage(config), f"s3://{bucket}/{prefix}", is_s3=True)


def location_for(uri: str, conn_id: str | None = None, **client_limits: float) -> ManifestLocation:
    """The location of a manifests prefix: ``s3://...`` (connection ``conn_id``, default
    ``[mbt] manifests_conn_id``) or a local folder (``file://`` allowed)."""
    if not uri:
        raise MBTInputError("no manifests location configured", field="manifests_uri",
                            hint="set [mbt] manifests_uri or env MBT_MANIFESTS_URI")
    if uri.startswith("s3://"):
        from airflow_mbt.settings import setting

        return s3_location(uri, conn_id or setting("manifests_conn_id"), **client_limits)
    if "://" in uri and not uri.startswith("file://"):
        raise MBTInputError(f"unsupported manifests location {uri!r}", field="manifests_uri",
                            hint="use s3://bucket/prefix/ or a local folder")
    from airflow_mbt.plugins.storage.local import LocalStorage

    root = Path(uri.removeprefix("file://")).expanduser().resolve()
    return ManifestLocation(LocalStorage({"base_path": str(root)}), str(root), is_s3=False)


backend_for = location_for  # the name the old airflow_mbt.manifest_backends used
