"""The churn demo data generator: deterministic, shaped as CONTRACTS §6, with a learnable signal."""

import csv

from airflow_mbt.scaffold.sample_data import COLUMNS, CONTRACT_TYPES, iter_rows, write_csvs


def test_rows_are_deterministic_and_shaped():
    a = list(iter_rows(300, seed=7))
    assert a == list(iter_rows(300, seed=7))
    assert a != list(iter_rows(300, seed=8))
    assert a[0]["customer_id"] == "CUST_00001" and a[-1]["customer_id"] == "CUST_00300"
    assert set(a[0]) == set(COLUMNS)
    assert all(r["contract_type"] in CONTRACT_TYPES and isinstance(r["tenure"], int) for r in a)


def test_scoring_rows_have_no_label_and_new_ids():
    rows = list(iter_rows(5, labeled=False))
    assert rows[0]["customer_id"] == "CUST_NEW_00001"
    assert all("churned" not in r for r in rows)


def test_label_rate_missing_values_and_signal():
    rows = list(iter_rows(5000, seed=42))
    rate = sum(r["churned"] for r in rows) / len(rows)
    assert 0.18 < rate < 0.32
    missing = sum(r["total_charges"] is None for r in rows) / len(rows)
    assert 0.005 < missing < 0.04

    def churn(rs):
        return sum(r["churned"] for r in rs) / len(rs)

    m2m = [r for r in rows if r["contract_type"] == "month-to-month"]
    two = [r for r in rows if r["contract_type"] == "two_year"]
    assert churn(m2m) > 2 * churn(two)
    short = [r for r in rows if r["tenure"] <= 6]
    long_ = [r for r in rows if r["tenure"] >= 36]
    assert churn(short) > churn(long_)


def test_write_csvs(tmp_path):
    paths = write_csvs(tmp_path / "data", n_customers=50, n_score=20, seed=1)
    assert [p.name for p in paths] == ["customers.csv", "customers_to_score.csv"]
    with paths[0].open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 50 and list(rows[0]) == COLUMNS
    with paths[1].open() as fh:
        score = list(csv.DictReader(fh))
    assert len(score) == 20 and "churned" not in score[0]
    # same seed -> same bytes
    again = write_csvs(tmp_path / "again", n_customers=50, n_score=20, seed=1)
    assert again[0].read_bytes() == paths[0].read_bytes()
