"""Fault behaviour with real servers: a private scram-sha-256 PostgreSQL cluster (wrong password,
server stopped under a live connector) and private/absent SeaweedFS S3 endpoints. The shared
stack services other tests use are never stopped here."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import pytest

from airflow_mbt.errors import AuthenticationError, InfraError
from airflow_mbt.plugins.connectors.postgres import PostgresConnector
from airflow_mbt.plugins.storage.s3 import S3Storage

pytestmark = pytest.mark.services

PG_BIN = Path("/usr/lib/postgresql/15/bin")
REPO = Path(__file__).resolve().parents[2]
WEED = REPO / ".stack" / "venvs" / "seaweedfs" / "bin" / "weed"
FAULT_PASSWORD = "fault-Secret-7d1e2b"


def free_ports(n: int) -> list[int]:
    with ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(n)]
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]


def _as_postgres(*cmd, **kw):
    return subprocess.run(["runuser", "-u", "postgres", "--", *map(str, cmd)], check=True,
                          capture_output=True, text=True, **kw)


class PrivateCluster:
    """A throwaway PostgreSQL 15 cluster on its own port with scram-sha-256 over TCP."""

    def __init__(self):
        self.base = Path(tempfile.mkdtemp(prefix="mbt-faultpg-"))
        self.data = self.base / "data"
        self.port = free_ports(1)[0]
        os.chmod(self.base, 0o755)
        shutil.chown(self.base, "postgres", "postgres")
        _as_postgres(PG_BIN / "initdb", "-D", self.data, "-U", "postgres", "--auth-host=scram-sha-256",
                     "--auth-local=trust", "--no-sync")
        self.start()
        self.psql("postgres", f"CREATE ROLE fault_user LOGIN PASSWORD '{FAULT_PASSWORD}'")
        self.psql("postgres", "CREATE DATABASE faultdb OWNER fault_user")
        self.psql("faultdb", "SET ROLE fault_user; CREATE TABLE t (id int, name text); "
                             "INSERT INTO t VALUES (1, 'one'), (2, NULL)")

    def start(self):
        _as_postgres(PG_BIN / "pg_ctl", "-D", self.data, "-l", self.base / "server.log", "-w", "-o",
                     f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.base}", "start")

    def stop(self):
        _as_postgres(PG_BIN / "pg_ctl", "-D", self.data, "-m", "fast", "-w", "stop")

    def psql(self, db, sql):
        _as_postgres("psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", self.base, "-p", self.port, "-d", db,
                     "-c", sql)

    def destroy(self):
        subprocess.run(["runuser", "-u", "postgres", "--", str(PG_BIN / "pg_ctl"), "-D", str(self.data),
                        "-m", "immediate", "-w", "stop"], capture_output=True)
        shutil.rmtree(self.base, ignore_errors=True)

    def config(self, password=FAULT_PASSWORD) -> dict:
        return {"host": "127.0.0.1", "port": self.port, "database": "faultdb", "user": "fault_user",
                "password": password}


@pytest.fixture(scope="module")
def private_pg():
    cluster = PrivateCluster()
    yield cluster
    cluster.destroy()


def test_wrong_password_is_an_authentication_error_without_the_secret(private_pg):
    good = PostgresConnector(private_pg.config(), None)
    assert good.read_table("t").to_dict("list") == {"id": [1, 2], "name": ["one", None]}
    good.close()
    wrong = "not-the-password-3b9c"
    with pytest.raises(AuthenticationError) as err:
        PostgresConnector(private_pg.config(password=wrong), None).read_table("t")
    text = str(err.value)
    assert text.startswith("PostgreSQL:") and f"127.0.0.1:{private_pg.port}/faultdb" in text
    assert "fault_user" in text
    assert wrong not in text and FAULT_PASSWORD not in text
    assert err.value.retryable is False
    # the same through an Airflow connection (password from AIRFLOW_CONN_*)
    os.environ["AIRFLOW_CONN_MBT_FAULT_PG"] = json.dumps({
        "conn_type": "postgres", "host": "127.0.0.1", "port": private_pg.port, "login": "fault_user",
        "password": wrong, "schema": "faultdb"})
    try:
        with pytest.raises(AuthenticationError) as err2:
            PostgresConnector({"conn_id": "mbt_fault_pg"}, None).read_table("t")
        assert wrong not in str(err2.value) and "connection 'mbt_fault_pg'" in str(err2.value)
    finally:
        del os.environ["AIRFLOW_CONN_MBT_FAULT_PG"]


def test_postgres_down_is_a_clear_retryable_infra_error(private_pg):
    live = PostgresConnector(private_pg.config(), None)
    assert len(live.read_table("t")) == 2
    private_pg.stop()
    try:
        with pytest.raises(InfraError) as during:   # server gone under an open connection
            live.read_table("t")
        assert not isinstance(during.value, AuthenticationError)
        assert str(during.value).startswith("PostgreSQL:") and during.value.retryable
        with pytest.raises(InfraError) as fresh:     # nothing listening any more
            PostgresConnector(private_pg.config(), None).read_table("t")
        text = str(fresh.value)
        assert text.startswith(f"PostgreSQL: cannot connect to 127.0.0.1:{private_pg.port}/faultdb")
        assert FAULT_PASSWORD not in text and "scripts/stack.sh status postgres" in text
    finally:
        private_pg.start()
    assert len(live.read_table("t")) == 2          # the connector recovers once the server is back
    live.close()


def test_s3_endpoint_not_listening_names_s3_endpoint_and_bucket(stack_env):
    port = free_ports(1)[0]
    storage = S3Storage({"bucket": "mbt-pipeline-artifacts", "endpoint_url": f"http://127.0.0.1:{port}",
                         "access_key": stack_env["MBT_S3_ACCESS_KEY"],
                         "secret_key": stack_env["MBT_S3_SECRET_KEY"]}, None)
    for call in (lambda: storage.get("k"), lambda: storage.put("k", b"v"), lambda: storage.list("x/"),
                 lambda: storage.read_versioned("k"), lambda: storage.exists("k")):
        with pytest.raises(InfraError) as err:
            call()
        text = str(err.value)
        assert text.startswith("S3:") and f"http://127.0.0.1:{port}" in text and "mbt-pipeline-artifacts" in text
        assert stack_env["MBT_S3_SECRET_KEY"] not in text and err.value.retryable


@pytest.fixture
def private_weed(tmp_path):
    """A private SeaweedFS (weed mini) on free ports with its own identity; stopped by the test."""
    assert WEED.exists(), f"{WEED} missing: scripts/stack.sh up s3 installs it"
    ports = free_ports(10)
    ident = tmp_path / "s3.json"
    ident.write_text(json.dumps({"identities": [{"name": "t", "credentials": [
        {"accessKey": "fault_ak", "secretKey": "fault_sk_123"}], "actions": ["Admin", "Read", "Write", "List"]}]}))
    names = ["master.port", "volume.port", "filer.port", "s3.port", "admin.port"]
    args = [f"-{n}={p}" for n, p in zip(names, ports[:5])]
    args += [f"-{n}.grpc={p}" for n, p in zip(names, ports[5:])]
    log = open(tmp_path / "weed.log", "wb")
    proc = subprocess.Popen([str(WEED), "mini", f"-dir={tmp_path / 'data'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
                             "-master.telemetry=false", "-webdav=false", "-admin.ui=false", "-s3.port.iceberg=0",
                             "-s3.port.lance=0", f"-s3.config={ident}", "-bucket=faults", *args],
                            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    endpoint = f"http://127.0.0.1:{ports[3]}"
    storage = S3Storage({"bucket": "faults", "endpoint_url": endpoint, "access_key": "fault_ak",
                         "secret_key": "fault_sk_123"}, None)
    deadline = time.monotonic() + 60
    while True:
        try:
            storage.client.head_bucket(Bucket="faults")
            break
        except Exception:  # noqa: BLE001 - still starting
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"private weed did not start:\n{(tmp_path / 'weed.log').read_text()[-3000:]}")
            time.sleep(0.3)
    yield proc, storage, endpoint
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    log.close()


def test_s3_server_stopped_mid_run_is_a_clear_infra_error(private_weed):
    proc, storage, endpoint = private_weed
    storage.put("run/a.json", b"{}")
    assert storage.get("run/a.json") == b"{}"
    proc.terminate()
    proc.wait(timeout=60)
    with pytest.raises(InfraError) as err:
        storage.get("run/a.json")
    text = str(err.value)
    assert text.startswith("S3:") and endpoint in text and "bucket faults" in text
    assert "fault_sk_123" not in text
