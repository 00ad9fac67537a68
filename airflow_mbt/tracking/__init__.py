"""MLflow tracking: store resolution (``store``), logging a training run (``run_logger``), the
pyfunc model wrapper (``pyfunc``) and fetching a logged model back (``model_fetch``)."""
