"""Artifact storage plugins (entry-point group ``airflow_mbt.storage``)."""
