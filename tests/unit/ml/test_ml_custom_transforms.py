"""Custom transforms imported from the project directory, and label normalization."""

import textwrap

import pandas as pd
import pytest

from airflow_mbt.errors import DataContractError, MBTInputError
from airflow_mbt.ml import custom_transforms
from airflow_mbt.ml.schema import PipelineSchema, match_class, normalize_labels


def write_lib(project, body):
    (project / "lib").mkdir(parents=True, exist_ok=True)
    (project / "lib" / "features.py").write_text(textwrap.dedent(body))


def test_transform_from_project_lib(tmp_path):
    write_lib(tmp_path, """
        def add_ratio(df):
            df["ratio"] = df["a"] / df["b"]
            return df
    """)
    df = pd.DataFrame({"a": [2.0, 9.0], "b": [1.0, 3.0]})
    out = custom_transforms.apply(df, ["lib.features:add_ratio"], tmp_path)
    assert out["ratio"].tolist() == [2.0, 3.0]
    assert "ratio" not in df.columns  # the caller's frame is untouched


def test_two_projects_with_the_same_module_name_do_not_share_code(tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    write_lib(one, "def f(df):\n    return df.assign(v=1)\n")
    write_lib(two, "def f(df):\n    return df.assign(v=2)\n")
    df = pd.DataFrame({"x": [0]})
    assert custom_transforms.apply(df, ["lib.features:f"], one)["v"].tolist() == [1]
    assert custom_transforms.apply(df, ["lib.features:f"], two)["v"].tolist() == [2]


@pytest.mark.parametrize("spec,needle", [("lib.features", "module:function"), ("lib.nothere:f", "cannot import"),
                                         ("lib.features:nope", "has no function 'nope'")])
def test_bad_specs_are_input_errors_naming_the_item(tmp_path, spec, needle):
    write_lib(tmp_path, "def f(df):\n    return df\n")
    with pytest.raises(MBTInputError) as err:
        custom_transforms.apply(pd.DataFrame({"x": [1]}), ["lib.features:f", spec], tmp_path)
    assert needle in str(err.value)
    assert err.value.field == "training.preprocessing.custom_transforms[1]"


def test_missing_column_inside_a_transform_is_a_data_contract_error(tmp_path):
    write_lib(tmp_path, "def f(df):\n    return df.assign(r=df['total'] / 2)\n")
    with pytest.raises(DataContractError) as err:
        custom_transforms.apply(pd.DataFrame({"x": [1]}), ["lib.features:f"], tmp_path)
    assert "'total'" in str(err.value) and "lib.features:f" in str(err.value)


@pytest.mark.parametrize("body,needle", [("def f(df):\n    return None\n", "not a DataFrame"),
                                         ("def f(df):\n    return df.head(1)\n", "row count"),
                                         ("def f(df):\n    raise RuntimeError('boom')\n", "RuntimeError: boom")])
def test_misbehaving_transforms(tmp_path, body, needle):
    write_lib(tmp_path, body)
    with pytest.raises(MBTInputError, match=needle):
        custom_transforms.apply(pd.DataFrame({"x": [1, 2]}), ["lib.features:f"], tmp_path)


def test_labels_from_databases_and_csv_map_onto_declared_classes():
    assert match_class(True, [0, 1]) == 1 and match_class("0", [0, 1]) == 0 and match_class(1.0, [0, 1]) == 1
    assert match_class("Yes", ["no", "yes"]) == "yes"
    y = normalize_labels(pd.Series([True, False, True], name="churned"), [0, 1], "churned")
    assert y.tolist() == [1, 0, 1] and str(y.dtype) == "int64"
    with pytest.raises(DataContractError) as err:
        normalize_labels(pd.Series([0, 1, 2]), [0, 1], "churned")
    assert "[2]" in str(err.value) and "churned" in str(err.value)
    with pytest.raises(DataContractError, match="no label"):
        normalize_labels(pd.Series([0, None]), [0, 1], "churned")


def test_schema_from_config_and_inferred_classes():
    cfg = {"project": {"problem_type": "binary_classification"},
           "training": {"schema": {"target": {"label_column": "y"}, "identifiers": {"primary_key": "id"}}}}
    schema = PipelineSchema.from_config(cfg)
    assert schema.classes is None and schema.primary_key == "id"
    assert schema.resolve_classes(pd.Series(["b", "a", "b"])) == ["a", "b"]
    with pytest.raises(DataContractError, match="exactly 2"):
        schema.resolve_classes(pd.Series(["a", "b", "c"]))
    cfg["project"]["problem_type"] = "ranking"
    with pytest.raises(MBTInputError, match="problem_type"):
        PipelineSchema.from_config(cfg)


def test_imports_are_isolated_and_cleaned_up(tmp_path):
    import sys

    write_lib(tmp_path, "def f(df):\n    return df.assign(v=1)\n")
    custom_transforms.apply(pd.DataFrame({"x": [0]}), ["lib.features:f"], tmp_path)
    assert str(tmp_path.resolve()) not in sys.path
    assert not any(str(getattr(m, "__file__", "") or "").startswith(str(tmp_path.resolve()))
                   for m in list(sys.modules.values()))


def test_row_filters_may_drop_rows_but_not_add_them(tmp_path):
    write_lib(tmp_path, "def keep(df):\n    return df[df['x'] > 0]\n\n"
                        "def grow(df):\n    import pandas as pd\n    return pd.concat([df, df])\n")
    df = pd.DataFrame({"x": [0, 1, 2]})
    assert custom_transforms.apply(df, ["lib.features:keep"], tmp_path, row_filters=True)["x"].tolist() == [1, 2]
    with pytest.raises(MBTInputError, match="subset"):
        custom_transforms.apply(df, ["lib.features:grow"], tmp_path, row_filters=True)
    with pytest.raises(MBTInputError, match="row_filters"):
        custom_transforms.apply(df, ["lib.features:keep"], tmp_path)


def test_logged_code_runs_instead_of_the_edited_lib(tmp_path):
    project, logged = tmp_path / "project", tmp_path / "logged"
    write_lib(project, "def f(df):\n    return df.assign(v=1)\n")
    files = custom_transforms.read_code(["lib.features:f"], project)
    assert list(files) == ["lib/features.py"]
    before = custom_transforms.code_hash(files)
    write_lib(project, "def f(df):\n    return df.assign(v=2)\n")  # the edit after training
    assert custom_transforms.changed_files(files, project) == ["lib/features.py"]
    assert custom_transforms.code_hash(custom_transforms.read_code(["lib.features:f"], project)) != before
    root = custom_transforms.materialize(files, logged)
    out = custom_transforms.run(pd.DataFrame({"x": [0]}), custom_transforms.load_all(["lib.features:f"], root))
    assert out["v"].tolist() == [1]
    with pytest.raises(MBTInputError, match="unsafe path"):
        custom_transforms.materialize({"../evil.py": "x = 1"}, logged)


def test_an_import_inside_the_function_finds_the_project(tmp_path):
    (tmp_path / "lib").mkdir(parents=True, exist_ok=True)
    (tmp_path / "lib" / "helpers.py").write_text("K = 3\n")
    write_lib(tmp_path, "def f(df):\n    from lib.helpers import K\n    return df.assign(v=K)\n")
    assert custom_transforms.apply(pd.DataFrame({"x": [0]}), ["lib.features:f"], tmp_path)["v"].tolist() == [3]
