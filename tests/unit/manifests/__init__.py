"""Tests of airflow_mbt.manifests (a package so module names stay unique; tests/unit is on sys.path)."""
