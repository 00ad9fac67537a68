"""Package exports are lazy: importing the packages loads no provider, touching a name loads it."""

import subprocess
import sys

CODE = """
import sys
import airflow_mbt, airflow_mbt.operators as ops, airflow_mbt.hooks as hooks
heavy = ("airflow_mbt.operators.kubernetes", "kubernetes.client", "airflow.providers.cncf.kubernetes.operators.pod")
before = [m for m in heavy if m in sys.modules]
assert ops.MBTStepOperator.__name__ == "MBTStepOperator" and hooks.H2OHook.conn_type == "h2o"
middle = [m for m in heavy if m in sys.modules]
assert ops.MBTKubernetesStepOperator.__name__ == "MBTKubernetesStepOperator"
after = [m for m in heavy if m in sys.modules]
try:
    ops.Nope
except AttributeError as err:
    missing = str(err)
print(before, middle, after, missing, sep="|")
"""


def test_operator_and_hook_exports_load_on_first_use():
    out = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, check=True).stdout
    before, middle, after, missing = out.strip().splitlines()[-1].split("|")
    assert before == "[]" and middle == "[]"
    assert "airflow_mbt.operators.kubernetes" in after and "kubernetes.client" in after
    assert "has no attribute 'Nope'" in missing
