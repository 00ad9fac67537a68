"""``ServiceHook``: common base of the airflow-mbt hooks (one HTTP service per connection)."""

from __future__ import annotations

from airflow.sdk import BaseHook

from airflow_mbt.hooks._url import base_url


class ServiceHook(BaseHook):
    """Holds the connection id (under ``conn_name_attr``) and builds the service base URL."""

    conn_name_attr = "conn_id"
    default_conn_name = ""
    default_port = 80
    service = ""
    path_extra = "path"  # extra field holding a URL path prefix

    def __init__(self, conn_id: str | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        setattr(self, self.conn_name_attr, conn_id or self.default_conn_name)
        self._conn = None

    @property
    def conn_id(self) -> str:
        return getattr(self, self.conn_name_attr)

    @property
    def connection(self):
        if self._conn is None:
            self._conn = self.get_connection(self.conn_id)
        return self._conn

    def base_url(self) -> str:
        conn = self.connection
        return base_url(conn, default_port=self.default_port, service=self.service,
                        path=conn.extra_dejson.get(self.path_extra) or "")
