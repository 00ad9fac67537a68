"""``H2OHook``: the ``h2o`` connection type (an H2O-3 cluster reached over its REST API)."""

from __future__ import annotations

import json

from airflow_mbt.hooks._base import ServiceHook
from airflow_mbt.hooks._url import flag


class H2OHook(ServiceHook):
    """Connect to an existing H2O cluster described by an Airflow connection.

    Fields: host, port (54321), schema (http|https), login/password (optional basic auth),
    extra ``verify_ssl`` (default true) and ``context_path``.
    """

    conn_name_attr = "h2o_conn_id"
    default_conn_name = "mbt_h2o"
    conn_type = "h2o"
    hook_name = "H2O cluster"
    default_port = 54321
    service = "H2O"
    path_extra = "context_path"

    def __init__(self, h2o_conn_id: str = default_conn_name, **kwargs) -> None:
        super().__init__(h2o_conn_id, **kwargs)

    def get_url(self) -> str:
        """Base URL of the cluster (no credentials)."""
        return self.base_url()

    def connect_kwargs(self) -> dict:
        """Keyword arguments for ``h2o.connect`` (contains the password when one is set)."""
        conn = self.connection
        kwargs: dict = {"url": self.get_url(),
                        "verify_ssl_certificates": flag(conn.extra_dejson, "verify_ssl", True),
                        "verbose": False}
        if conn.login:
            kwargs["auth"] = (conn.login, conn.password or "")
        return kwargs

    def connect(self):
        """Attach the h2o client library to the cluster and return the ``H2OConnection``."""
        import h2o  # lazy: heavy, and only needed when a step really talks to H2O

        return h2o.connect(**self.connect_kwargs())

    def get_conn(self):
        return self.connect()

    def test_connection(self) -> tuple[bool, str]:
        """Ask the cluster for its status (``GET /3/Cloud``) without the h2o library; the message
        names the cloud, its size (nodes), health and version."""
        from airflow_mbt.hooks._probe import probe

        return probe(self.get_url() + "/3/Cloud", "H2O",
                     auth=(self.connection.login, self.connection.password) if self.connection.login else None,
                     verify=flag(self.connection.extra_dejson, "verify_ssl", True), describe=describe_cloud)


def cloud_status(body: bytes) -> dict:
    """The fields of a ``/3/Cloud`` answer that say what the cluster is (name, size, health, version)."""
    doc = json.loads(body)
    return {"cloud_name": doc.get("cloud_name"), "cloud_size": int(doc.get("cloud_size") or 0),
            "cloud_healthy": bool(doc.get("cloud_healthy")), "version": doc.get("version")}


def describe_cloud(body: bytes) -> str:
    """``cloud mbt-shared, cloud_size 2, healthy, version 3.46.0.11`` (or why the body is unusable)."""
    try:
        status = cloud_status(body)
    except (ValueError, TypeError, AttributeError):
        return "not an H2O /3/Cloud answer"
    health = "healthy" if status["cloud_healthy"] else "NOT healthy"
    return (f"cloud {status['cloud_name']}, cloud_size {status['cloud_size']}, {health}, "
            f"version {status['version']}")
