"""Run ids: format, uniqueness within a second, stable Airflow derivation, validation."""

import re
from datetime import datetime, timedelta, timezone

import pytest

from airflow_mbt.errors import MBTInputError
from airflow_mbt.runtime.run_id import new_run_id, run_id_from_airflow, validate_run_id

FORMAT = re.compile(r"run_\d{8}_\d{6}_[0-9a-f]{16}")


def test_new_run_id_format_and_utc_stamp():
    moment = datetime(2026, 3, 4, 5, 6, 7, tzinfo=timezone(timedelta(hours=2)))
    rid = new_run_id(moment)
    assert FORMAT.fullmatch(rid)
    assert rid.startswith("run_20260304_030607_")
    assert validate_run_id(rid) == rid


def test_new_run_ids_never_repeat_within_one_second():
    moment = datetime(2026, 1, 1, tzinfo=timezone.utc)
    ids = [new_run_id(moment) for _ in range(5000)]
    assert len(set(ids)) == 5000


def test_airflow_run_id_is_stable_and_depends_on_the_dag_run():
    when = datetime(2026, 2, 1, 3, 0, tzinfo=timezone.utc)
    a = run_id_from_airflow("mbt_training_churn", "scheduled__2026-02-01T03:00:00+00:00", when)
    assert a == run_id_from_airflow("mbt_training_churn", "scheduled__2026-02-01T03:00:00+00:00",
                                    "2026-02-01T03:00:00Z")
    assert FORMAT.fullmatch(a) and a.startswith("run_20260201_030000_")
    b = run_id_from_airflow("mbt_training_churn", "manual__2026-02-01T03:00:00+00:00", when)
    c = run_id_from_airflow("mbt_serving_churn", "scheduled__2026-02-01T03:00:00+00:00", when)
    assert len({a, b, c}) == 3
    # naive datetimes are UTC
    assert run_id_from_airflow("d", "r", datetime(2026, 2, 1, 3)) == run_id_from_airflow("d", "r", when)


def test_airflow_run_id_requires_a_date():
    with pytest.raises(MBTInputError, match="logical date"):
        run_id_from_airflow("d", "r", None)


@pytest.mark.parametrize("bad", ["", "../etc", "a/b", ".hidden", "-x", "run 1", "x" * 129, None, 5, "ü"])
def test_validate_rejects_unsafe_values(bad):
    with pytest.raises(MBTInputError) as err:
        validate_run_id(bad)
    assert "run_id" in str(err.value) and "hint" in str(err.value)


@pytest.mark.parametrize("good", ["run_20260101_000000_abcd", "manual-1.2", "X"])
def test_validate_accepts_safe_values(good):
    assert validate_run_id(good) == good


def test_airflow_pendulum_dates_in_other_time_zones():
    import pendulum  # what Airflow hands operators as logical_date / run_after

    paris = pendulum.datetime(2026, 2, 1, 4, 0, tz="Europe/Paris")
    utc = datetime(2026, 2, 1, 3, 0, tzinfo=timezone.utc)
    assert run_id_from_airflow("d", "r", paris) == run_id_from_airflow("d", "r", utc)
    assert run_id_from_airflow("d", "r", paris).startswith("run_20260201_030000_")
