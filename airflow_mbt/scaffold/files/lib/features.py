"""Example custom transform. Enable it in a pipeline with
``training.preprocessing.custom_transforms: ["lib.features:add_charges_per_month"]``.
A transform takes a DataFrame and returns a DataFrame; it runs in training and in serving."""


def add_charges_per_month(df):
    """Average charge per month of tenure (total_charges / tenure; missing stays missing)."""
    out = df.copy()
    out["charges_per_month"] = out["total_charges"] / out["tenure"].where(out["tenure"] > 0)
    return out
