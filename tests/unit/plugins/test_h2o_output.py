"""h2o_output routes the h2o library's prints and warnings to the airflow_mbt.h2o logger (DEBUG),
leaves other threads and other modules alone, and captures nothing when that logger is at DEBUG
(``mbt -v``); the shipped MOJO scorer class was built from the shipped source."""

from __future__ import annotations

import hashlib
import logging
import threading
import warnings

import pytest

from airflow_mbt.plugins.frameworks import h2o_output as out
from airflow_mbt.plugins.frameworks.h2o_scorer import CLASS_DIR, CLASS_NAME


class H2ODependencyWarning(UserWarning):
    """Named like h2o's own warning class."""


def _h2o_noise() -> None:
    print("Warning: Your H2O cluster version is (6 months) old.")
    warnings.warn("Converting H2O frame to pandas dataframe using single-thread.", H2ODependencyWarning, stacklevel=2)


def test_quiet_by_default_and_logged_at_debug(capsys, caplog):
    logging.getLogger(out.LOGGER).setLevel(logging.NOTSET)
    with caplog.at_level(logging.INFO), warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with out.h2o_output():
            _h2o_noise()
            thread = threading.Thread(target=lambda: print("[3/5] train_model ... ok"))
            thread.start()
            thread.join()
            warnings.warn("not from h2o", DeprecationWarning, stacklevel=2)
    captured = capsys.readouterr()
    assert "H2O cluster version" not in captured.out + captured.err
    assert "[3/5] train_model ... ok" in captured.out  # another thread's progress line passes through
    assert [type(w.message) for w in seen] == [DeprecationWarning]  # only the foreign warning is re-raised
    assert not caplog.records  # INFO (Airflow task logs) does not show the h2o chatter


def test_verbose_logger_shows_everything(capsys):
    logger = logging.getLogger(out.LOGGER)
    logger.setLevel(logging.DEBUG)
    try:
        assert out.chatty()
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            with out.h2o_output():
                _h2o_noise()
        assert "H2O cluster version" in capsys.readouterr().out
        assert [type(w.message) for w in seen] == [H2ODependencyWarning]
    finally:
        logger.setLevel(logging.NOTSET)


def test_the_scorer_class_is_built_from_the_shipped_source():
    recorded = (CLASS_DIR / f"{CLASS_NAME}.sha256").read_text().split()[0]
    assert recorded == hashlib.sha256((CLASS_DIR / f"{CLASS_NAME}.java").read_bytes()).hexdigest(), \
        "run scripts/build_h2o_scorer.sh after editing MbtMojoScorer.java"
    assert (CLASS_DIR / f"{CLASS_NAME}.class").read_bytes()[:4] == bytes.fromhex("cafebabe")


@pytest.mark.parametrize("verbose", [False, True])
def test_cli_verbose_flag_sets_the_h2o_logger(verbose):
    from airflow_mbt.cli.main import _setup_logging

    logger = logging.getLogger(out.LOGGER)
    logger.setLevel(logging.NOTSET)
    try:
        _setup_logging(verbose)
        assert out.chatty() is verbose
    finally:
        logger.setLevel(logging.NOTSET)
