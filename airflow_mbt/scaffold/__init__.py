"""Project scaffolding for ``mbt init``: template files and the churn demo sample data."""
