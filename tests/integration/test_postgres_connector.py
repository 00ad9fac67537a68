"""PostgresConnector against the stack's PostgreSQL: round trips with awkward identifiers and
values, schema.table names, chunked reads, idempotent publish, clear input errors."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from airflow_mbt.errors import DataContractError, InfraError, MBTInputError
from airflow_mbt.plugins.connectors.postgres import PostgresConnector

pytestmark = pytest.mark.services


@pytest.fixture
def connector(stack_env):
    """Configured from explicit settings (the other way, conn_id, is tested below)."""
    conn = PostgresConnector({"host": stack_env["MBT_STACK_HOST"], "port": stack_env["MBT_PG_PORT"],
                              "database": "warehouse", "user": "mbt_user",
                              "password": stack_env["MBT_PG_PASSWORD"]}, None)
    yield conn
    conn.close()


def _awkward_frame() -> pd.DataFrame:
    return pd.DataFrame({
        "Customer ID": ["A-1", "b\"2", "c,3", "d\n4", ""],
        "select": [1, 2, 3, 4, 5],                                  # reserved word
        "Amount €": [1.5, None, -3.25, 0.0, 1e10],
        "flag": [True, False, True, False, True],
        "note": ["x", None, "", "line1\nline2", "quote \"q\""],      # NULL vs empty string
        "seen_at": pd.to_datetime(["2026-01-01 00:00:00", "2026-02-03 04:05:06.123456",
                                   "2026-03-01", "2026-12-31 23:59:59", "2026-06-15 12:00:00"], format="ISO8601"),
    })


def test_round_trip_creates_missing_weird_table_and_preserves_values(connector, scratch_schema, pg_warehouse,
                                                                     caplog):
    df = _awkward_frame()
    table = f'"{scratch_schema}"."Weird Table"'
    with caplog.at_level("WARNING", logger="airflow_mbt"):
        assert connector.write_table(df, table) == 5
    assert "did not exist" in caplog.text
    cols = pg_warehouse.execute(
        "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = %s "
        "AND table_name = 'Weird Table' ORDER BY ordinal_position", (scratch_schema,)).fetchall()
    assert cols == [("Customer ID", "text"), ("select", "bigint"), ("Amount €", "double precision"),
                    ("flag", "boolean"), ("note", "text"), ("seen_at", "timestamp without time zone")]
    back = connector.read_table(table)
    assert list(back.columns) == list(df.columns)
    back = back.sort_values("select").reset_index(drop=True)
    pd.testing.assert_frame_equal(back, df, check_dtype=False)
    assert back["note"].isna().tolist() == [False, True, False, False, False]  # "" stays "", None stays NULL
    assert back["note"][2] == ""
    assert str(back["seen_at"].dtype) == "datetime64[ns]"
    assert back["flag"].dtype == bool


def test_schema_dot_table_with_existing_typed_table_and_column_subset(connector, scratch_schema, pg_warehouse):
    pg_warehouse.execute(f'CREATE TABLE "{scratch_schema}".preds (LIKE public.churn_predictions)')
    df = pd.DataFrame({"customer_id": ["C1", "C2", "C3"],
                       "prediction": [1.0, 0.0, None],   # float frame into an integer column: whole numbers
                       "prediction_probability": [0.9, 0.2, 0.5],
                       "execution_date": pd.Timestamp("2026-11-29 07:00:00", tz="UTC"),
                       "model_run_id": "m1", "serving_run_id": "run_a"})
    connector.write_table(df, f"{scratch_schema}.preds")
    rows = pg_warehouse.execute(f'SELECT customer_id, prediction, execution_date FROM "{scratch_schema}".preds '
                                "ORDER BY customer_id").fetchall()
    assert [(r[0], r[1]) for r in rows] == [("C1", 1), ("C2", 0), ("C3", None)]
    assert str(rows[0][2]) == "2026-11-29 07:00:00"
    sub = connector.read_table(f"{scratch_schema}.preds", columns=["prediction_probability", "customer_id"])
    assert list(sub.columns) == ["prediction_probability", "customer_id"]
    assert sorted(sub["customer_id"]) == ["C1", "C2", "C3"]
    with pytest.raises(DataContractError, match="fractional"):
        connector.write_table(df.assign(prediction=[0.5, 1.0, 0.0]), f"{scratch_schema}.preds")


def test_default_schema_from_config_and_case_folding(stack_env, scratch_schema, pg_warehouse):
    pg_warehouse.execute(f'CREATE TABLE "{scratch_schema}".events (id int, label text)')
    pg_warehouse.execute(f"INSERT INTO \"{scratch_schema}\".events VALUES (1, 'a'), (2, NULL)")
    conn = PostgresConnector({"conn_id": "mbt_warehouse", "schema": scratch_schema}, None)
    try:
        df = conn.read_table("Events")  # unquoted-style name folds to lowercase like SQL
        assert df.to_dict("list") == {"id": [1, 2], "label": ["a", None]}
    finally:
        conn.close()


def test_conn_id_reads_the_seeded_customers_table(stack_runtime):
    connector = stack_runtime.connector()
    assert isinstance(connector, PostgresConnector)
    df = connector.read_table("customers")
    assert len(df) == 5000
    assert list(df.columns) == ["customer_id", "tenure", "monthly_charges", "total_charges", "contract_type",
                                "churned"]
    assert df["customer_id"].is_unique and df["customer_id"].str.startswith("CUST_").all()
    assert str(df["tenure"].dtype) == "int64" and str(df["total_charges"].dtype) == "float64"
    assert 0.005 < df["total_charges"].isna().mean() < 0.05
    assert set(df["contract_type"]) == {"month-to-month", "one_year", "two_year"}
    assert 0.1 < df["churned"].mean() < 0.4
    scoring = connector.read_table("public.customers_to_score")
    assert len(scoring) == 1000 and "churned" not in scoring.columns


def test_iter_table_yields_bounded_chunks_equal_to_full_read(connector, scratch_schema, pg_warehouse):
    pg_warehouse.execute(f'CREATE TABLE "{scratch_schema}".big AS SELECT g AS id, md5(g::text) AS h, '
                         f"CASE WHEN g % 7 = 0 THEN NULL ELSE g * 0.5 END AS v FROM generate_series(1, 25003) g")
    chunks = list(connector.iter_table(f"{scratch_schema}.big", chunk_rows=5000))
    assert [len(c) for c in chunks] == [5000] * 5 + [3]
    whole = connector.read_table(f"{scratch_schema}.big")
    pd.testing.assert_frame_equal(pd.concat(chunks, ignore_index=True), whole)
    assert whole["v"].isna().sum() == 25003 // 7
    stopped = connector.iter_table(f"{scratch_schema}.big", chunk_rows=100)  # consumer stops early:
    assert len(next(stopped)) == 100                                          # the COPY is cancelled
    stopped.close()
    assert len(connector.read_table(f"{scratch_schema}.big")) == 25003
    pg_warehouse.execute(f'CREATE TABLE "{scratch_schema}".empty (id int, name text)')
    empty = list(connector.iter_table(f"{scratch_schema}.empty"))
    assert len(empty) == 1 and empty[0].empty and list(empty[0].columns) == ["id", "name"]
    assert connector.read_table(f"{scratch_schema}.empty").empty


def test_publish_is_idempotent_per_serving_run(connector, scratch_schema, pg_warehouse):
    table = f"{scratch_schema}.churn_predictions"
    pg_warehouse.execute(f'CREATE TABLE "{scratch_schema}".churn_predictions (LIKE public.churn_predictions)')

    def frame(run_id, n):
        return pd.DataFrame({"customer_id": [f"CUST_{i:05d}" for i in range(n)], "prediction": [i % 2 for i in range(n)],
                             "prediction_probability": [i / n for i in range(n)],
                             "execution_date": pd.Timestamp("2026-11-29"), "model_run_id": "m",
                             "serving_run_id": run_id})

    def count(run_id):
        return pg_warehouse.execute(f'SELECT count(*) FROM "{scratch_schema}".churn_predictions '
                                    "WHERE serving_run_id = %s", (run_id,)).fetchone()[0]

    connector.write_table(frame("run_other", 300), table, replace_where={"serving_run_id": "run_other"})
    for _ in range(3):
        connector.write_table(frame("run_1", 1000), table, replace_where={"serving_run_id": "run_1"})
        assert count("run_1") == 1000
    assert count("run_other") == 300
    # a failing rewrite (bad value) rolls back its DELETE too: the earlier rows survive
    bad = frame("run_1", 10).assign(prediction=0.5)
    with pytest.raises(DataContractError):
        connector.write_table(bad, table, replace_where={"serving_run_id": "run_1"})
    assert count("run_1") == 1000


def test_input_errors_name_the_table_and_never_run_injected_sql(connector, pg_warehouse):
    with pytest.raises(MBTInputError, match=r"public\.no_such_table does not exist") as err:
        connector.read_table("no_such_table")
    assert "customers" in str(err.value)  # the hint lists what exists
    evil = 'customers; DROP TABLE customers_to_score; --'
    with pytest.raises(MBTInputError, match="does not exist"):
        connector.read_table(evil)
    assert pg_warehouse.execute("SELECT count(*) FROM customers_to_score").fetchone()[0] == 1000
    with pytest.raises(DataContractError, match="nope"):
        connector.read_table("customers", columns=["customer_id", "nope"])
    with pytest.raises(DataContractError, match="not in table"):
        connector.write_table(pd.DataFrame({"customer_id": ["x"], "extra": [1]}), "churn_predictions")
    with pytest.raises(MBTInputError, match="invalid table name"):
        connector.read_table('a.b.c')


def test_write_chunks_streams_in_one_transaction(connector, scratch_schema, pg_warehouse):
    """iter_table -> write_chunks copies a table chunk by chunk through the same connector (the
    read holds its own connection: ~6 MB of COPY text is several 1 MiB segments); a bad chunk
    mid-stream commits nothing (not even the replace_where DELETE)."""
    rows = 123_456
    pg_warehouse.execute(f'CREATE TABLE "{scratch_schema}".src AS SELECT g AS id, md5(g::text) AS h, '
                         f"'run_x'::text AS run FROM generate_series(1, {rows}) g")
    pg_warehouse.execute(f'CREATE TABLE "{scratch_schema}".dst (id int, h text, run text)')
    chunks = connector.iter_table(f"{scratch_schema}.src", chunk_rows=1000)
    assert connector.write_chunks(chunks, f"{scratch_schema}.dst", replace_where={"run": "run_x"}) == rows
    count = lambda: pg_warehouse.execute(f'SELECT count(*), count(DISTINCT h) FROM "{scratch_schema}".dst').fetchone()  # noqa: E731
    assert count() == (rows, rows)

    def bad_stream():
        yield from connector.iter_table(f"{scratch_schema}.src", chunk_rows=50_000)
        yield pd.DataFrame({"id": [1], "other": ["x"]})

    with pytest.raises(DataContractError, match="differ from the first chunk"):
        connector.write_chunks(bad_stream(), f"{scratch_schema}.dst", replace_where={"run": "run_x"})
    assert count() == (rows, rows)
    assert connector.write_chunks(iter(()), f"{scratch_schema}.dst", replace_where={"run": "run_x"}) == 0
    assert count() == (0, 0)  # no rows for the run: its old rows are replaced by nothing


def _conn_json(stack_env, **extra) -> str:
    return json.dumps({"conn_type": "postgres", "host": stack_env["MBT_STACK_HOST"],
                       "port": int(stack_env["MBT_PG_PORT"]), "login": stack_env["MBT_PG_USER"],
                       "password": stack_env["MBT_PG_PASSWORD"], "schema": stack_env["MBT_PG_DATABASE"],
                       "extra": extra})


def test_connection_extras_reach_the_server(stack_env, monkeypatch):
    """Extras of the Airflow connection (read through PostgresHook) are libpq parameters of the
    COPY connection: the server sees them; the hook's own keys (cursor) are not passed on."""
    monkeypatch.setenv("AIRFLOW_CONN_MBT_EXTRA_PROBE", _conn_json(
        stack_env, application_name="mbt-extra-probe", options="-c statement_timeout=4321",
        client_encoding="LATIN1", cursor="dictcursor"))
    conn = PostgresConnector({"conn_id": "mbt_extra_probe"}, None)
    try:
        assert conn.conn.execute("SHOW application_name").fetchone() == ("mbt-extra-probe",)
        assert conn.conn.execute("SHOW statement_timeout").fetchone() == ("4321ms",)
        assert conn.conn.execute("SHOW client_encoding").fetchone() == ("LATIN1",)
    finally:
        conn.close()


def test_sslmode_from_the_connection_reaches_libpq_without_leaking_the_password(stack_env, monkeypatch,
                                                                              pg_warehouse):
    """extra sslmode=require: against a server with ssl = off the connect fails naming the server;
    with ssl = on the session is encrypted."""
    monkeypatch.setenv("AIRFLOW_CONN_MBT_SSL_PROBE", _conn_json(stack_env, sslmode="require"))
    conn = PostgresConnector({"conn_id": "mbt_ssl_probe"}, None)
    try:
        if pg_warehouse.execute("SHOW ssl").fetchone() == ("on",):
            row = conn.conn.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").fetchone()
            assert row == (True,)
            return
        with pytest.raises(InfraError) as info:
            conn.read_table("customers")
    finally:
        conn.close()
    where = f"{stack_env['MBT_STACK_HOST']}:{stack_env['MBT_PG_PORT']}/{stack_env['MBT_PG_DATABASE']}"
    assert where in str(info.value) and "SSL" in str(info.value)
    assert stack_env["MBT_PG_PASSWORD"] not in str(info.value)
