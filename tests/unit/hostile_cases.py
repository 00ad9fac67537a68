"""The hostile-input corpus (issue 10), as a table: one ``Case`` per hostile or careless input.

Each case writes files into a fresh ``mbt init`` project whose ``profiles.yaml`` is ``PROFILES``
(a planted ``{{ secret('MBT_PLANTED_SECRET') }}`` in the dev target) and whose training pipeline
is ``PIPE``; then runs the CLI in-process. ``at`` is (file, line, col): ``line`` may be a marker
text (the first line holding it), ``col`` None accepts any column.
"""

from __future__ import annotations

from dataclasses import dataclass, field

PLANTED_SECRET = "planted-S3CRET-value-4242"
PLANTED_ENV = "planted-ENV-value-9191"
P = "pipelines/training_churn_model_v1.yaml"
S = "pipelines/serving_churn_model_v1.yaml"
PR = "profiles.yaml"
V = "validate training_churn_model_v1"
C = "compile training_churn_model_v1 --target dev"


class Dir:
    """A folder at this path."""


@dataclass(frozen=True)
class Symlink:
    to: str  # absolute, or relative to the project


class Fifo:
    """A named pipe at this path."""


@dataclass
class Case:
    id: str
    files: dict
    args: str
    at: tuple
    field: str | None
    message: str
    code: int = 2
    env: dict = field(default_factory=dict)


PIPE = """\
schema_version: 1
project:
  name: training_churn_model_v1
  experiment_name: churn_prediction
  problem_type: binary_classification
  description: churn
  tags: [churn]
deployment:
  mode: batch
  cadence: monthly
training:
  data_source:
    label_table: customers
  schema:
    target:
      label_column: churned
      classes: [0, 1]
      positive_class: 1
    identifiers:
      primary_key: customer_id
  split: {test_size: 0.2, seed: 42}
  model_training:
    framework: h2o_automl
    config:
      max_models: 2
      seed: 42
  evaluation:
    primary_metric: roc_auc
    validation_criteria: ["roc_auc >= 0.6"]
"""

SK = PIPE.replace("""    framework: h2o_automl
    config:
      max_models: 2
      seed: 42
""", """    framework: sklearn
    config:
      model: LogisticRegression
      max_iter: 100
""")

SERVING = """\
schema_version: 1
project:
  name: serving_churn_model_v1
  experiment_name: churn_prediction
  problem_type: binary_classification
deployment:
  mode: batch
  cadence: daily
training:
  schema:
    target: {label_column: churned, classes: [0, 1], positive_class: 1}
    identifiers: {primary_key: customer_id}
  model_training: {framework: h2o_automl}
serving:
  model_source: {registry: mlflow, run_id: abc123}
  data_source: {scoring_table: customers_to_score}
  output:
    destination: local_file
    path: predictions.csv
"""

PROFILES = """\
proj:
  target: dev
  outputs:
    dev:
      executor: {type: local}
      storage: {type: local, config: {base_path: ./local_artifacts}}
      data_connector: {type: local_file, config: {data_path: ./sample_data}}
      mlflow:
        tracking_uri: "sqlite:///mlruns/mlflow.db"
        artifact_location: ./mlruns/artifacts
        registry_uri: "{{ secret('MBT_PLANTED_SECRET') }}"
      h2o: {mode: local, port: 54331}
    prod:
      executor: {type: kubernetes, config: {namespace: mbt}}
      storage: {type: s3, config: {bucket: b, conn_id: mbt_s3}}
      data_connector: {type: postgres, config: {conn_id: mbt_warehouse}}
      mlflow: {conn_id: mbt_mlflow}
      manifests: {uri: "s3://b/manifests/", conn_id: mbt_s3}
"""


def _sub(text: str, old: str, new: str) -> str:
    assert old in text, old
    return text.replace(old, new, 1)


def pipe(old: str, new: str, base: str = PIPE) -> dict:
    return {P: _sub(base, old, new)}


def sk(old: str, new: str) -> dict:
    return pipe(old, new, SK)


def prof(old: str, new: str) -> dict:
    return {PR: _sub(PROFILES, old, new)}


def serving(old: str, new: str) -> dict:
    return {S: _sub(SERVING, old, new)}


def nested_aliases(levels: int) -> str:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]")
    return "\n".join(lines) + "\n"


BOMB = nested_aliases(9)
DESC = "  description: churn\n"
BIG = "#" + "x" * (1024 * 1024 + 10) + "\n"
ST = "  split: {test_size: 0.2, seed: 42}"
TGT = "{type: local, config: {base_path: ./local_artifacts}}"
DCN = "{type: local_file, config: {data_path: ./sample_data}}"
URI = '        tracking_uri: "sqlite:///mlruns/mlflow.db"'
HOST = "{type: postgres, config: {conn_id: mbt_warehouse}}"


def _include_chain(n: int) -> dict:
    files = {P: _sub(PIPE, DESC, "  description: !include ../fragments/f0.yaml\n")}
    for i in range(n):
        files[f"fragments/f{i}.yaml"] = f"!include f{i + 1}.yaml\n"
    files[f"fragments/f{n}.yaml"] = "churn\n"
    return files


CASES: list[Case] = [
    # ---- 1. confinement -------------------------------------------------------------------
    Case("include_absolute", pipe(DESC, "  description: !include /etc/hostname\n"), V,
         (P, "!include", 16), "project.description", "only relative paths inside the project"),
    Case("include_dev_zero", pipe(DESC, "  description: !include /dev/zero\n"), V,
         (P, "!include", 16), "project.description", "only relative paths"),
    Case("include_home", pipe(DESC, "  description: !include ~/.bashrc\n"), V,
         (P, "!include", 16), "project.description", "only relative paths"),
    Case("include_dotdot_escape", pipe(DESC, "  description: !include ../../../../../../etc/hostname\n"), V,
         (P, "!include", 16), "project.description", "points outside the project"),
    Case("include_symlink_escape", {**pipe(DESC, "  description: !include ../fragments/link.yaml\n"),
                                    "fragments/link.yaml": Symlink("/etc/hostname")}, V,
         (P, "!include", 16), "project.description", "points outside the project"),
    Case("include_symlink_dev_zero", {**pipe(DESC, "  description: !include ../fragments/zero.yaml\n"),
                                      "fragments/zero.yaml": Symlink("/dev/zero")}, V,
         (P, "!include", 16), "project.description", "points outside the project"),
    Case("include_directory", {**pipe(DESC, "  description: !include ../fragments\n"), "fragments/x.yaml": "a\n"}, V,
         (P, "!include", 16), "!include", "is a directory"),
    Case("include_fifo", {**pipe(DESC, "  description: !include ../fragments/f.yaml\n"), "fragments/f.yaml": Fifo()},
         V, (P, "!include", 16), "!include", "not a regular file"),
    Case("include_too_big", {**pipe(DESC, "  description: !include ../fragments/big.yaml\n"),
                             "fragments/big.yaml": BIG}, V, (P, "!include", 16), "!include", "over the limit"),
    Case("include_nul_in_path", pipe(DESC, '  description: !include "a\\0b.yaml"\n'), V,
         (P, "!include", 16), "project.description", "only relative paths"),
    Case("include_empty_path", pipe(DESC, '  description: !include ""\n'), V,
         (P, "!include", 16), "project.description", "needs a file path"),
    Case("include_missing", pipe(DESC, "  description: !include ../fragments/nope.yaml\n"), V,
         (P, "!include", 16), "!include", "does not exist"),
    Case("include_chain_too_deep", _include_chain(20), V, ("fragments/f15.yaml", 1, 1), "project.description",
         "nested deeper than 16 files"),
    Case("pipeline_symlink_outside", {P: Symlink("/etc/hostname")}, V, (P, 1, 1), None, "outside the project"),
    Case("base_pipeline_escape", pipe("schema_version: 1\n", "schema_version: 1\nbase_pipeline: ../../etc/passwd\n"),
         V, (P, "base_pipeline", 1), "base_pipeline", "invalid pipeline name"),
    Case("serving_output_absolute", serving("path: predictions.csv", "path: /tmp/mbt_predictions.csv"),
         "validate serving_churn_model_v1", (S, "path:", 5), "serving.output.path", "is not a relative path"),
    Case("serving_output_dotdot", serving("path: predictions.csv", "path: ../../predictions.csv"),
         "validate serving_churn_model_v1", (S, "path:", 5), "serving.output.path", "resolves outside the project"),
    Case("serving_output_symlink", {**serving("path: predictions.csv", "path: out/p.csv"), "out": Symlink("/tmp")},
         "validate serving_churn_model_v1", (S, "path:", 5), "serving.output.path", "resolves outside the project"),
    Case("storage_base_path_dotdot", prof("base_path: ./local_artifacts", "base_path: ../../artifacts"), V,
         (PR, "base_path", None), "proj.outputs.dev.storage.config.base_path", "resolves outside the project"),
    Case("storage_base_path_symlink", {**prof("base_path: ./local_artifacts", "base_path: ./la"), "la": Symlink("/tmp")},
         V, (PR, "base_path", None), "proj.outputs.dev.storage.config.base_path", "resolves outside the project"),
    Case("storage_base_path_env_absolute",
         prof("base_path: ./local_artifacts", "base_path: \"{{ env_var('MBT_NO_SUCH_DIR_VAR', '/tmp/a') }}\""), V,
         (PR, "base_path", None), "proj.outputs.dev.storage.config.base_path", "absolute path"),
    Case("data_path_var_dotdot", prof("data_path: ./sample_data", "data_path: \"{{ var('d', '../data') }}\""), V,
         (PR, "data_path", None), "proj.outputs.dev.data_connector.config.data_path", "resolves outside"),
    Case("data_tables_dotdot", prof("data_path: ./sample_data}", "data_path: ./sample_data, tables: {t: ../t.csv}}"),
         V, (PR, "data_path", None), "proj.outputs.dev.data_connector.config.tables.t", "resolves outside"),
    Case("mlflow_sqlite_dotdot", prof("sqlite:///mlruns/mlflow.db", "sqlite:///../mlflow.db"), V,
         (PR, "tracking_uri", 9), "proj.outputs.dev.mlflow.tracking_uri", "resolves outside"),
    Case("mlflow_file_uri_var", prof("sqlite:///mlruns/mlflow.db", "{{ var('u', 'file:///tmp/mlruns') }}"), V,
         (PR, "tracking_uri", 9), "proj.outputs.dev.mlflow.tracking_uri", "absolute path"),
    Case("mlflow_artifacts_dotdot", prof("./mlruns/artifacts", "../artifacts"), V,
         (PR, "artifact_location", 9), "proj.outputs.dev.mlflow.artifact_location", "resolves outside"),
    # ---- 2. resource limits ---------------------------------------------------------------
    Case("alias_bomb", pipe(DESC, "  description: churn\n" + "".join("  " + line + "\n" for line in BOMB.splitlines())),
         V, (P, "a5:", None), None, "alias-expansion limit"),
    Case("nesting_20000_brackets", pipe(DESC, "  description: " + "[" * 20000 + "]" * 20000 + "\n"), V,
         (P, "description", None), None, "nested deeper than 64 levels"),
    Case("nesting_block_100", pipe(DESC, "".join("  " * (i + 1) + f"k{i}:\n" for i in range(100)) + "  " * 101 + "x\n"),
         V, (P, "k63:", 129), None, "nested deeper than 64 levels"),
    Case("document_too_big", {P: PIPE + BIG}, V, (P, 1, 1), None, "over the limit of 1048576 bytes"),
    Case("total_bytes_too_big", {P: _sub(PIPE, "  tags: [churn]\n", "  tags:\n" + "".join(
        f"    - !include ../fragments/f{i}.yaml\n" for i in range(5))),
        **{f"fragments/f{i}.yaml": "x" * 1000 + "\n" + "#" * (1000 * 1000) + "\n" for i in range(5)}}, V,
         (P, "f4.yaml", 7), "!include", "4194304 bytes in all"),
    Case("integer_5000_digits", pipe("max_models: 2", "max_models: " + "9" * 5000), V,
         (P, "max_models", 19), "training.model_training.config.max_models", "more than 20 digits"),
    Case("integer_25_digits", pipe("seed: 42\n  evaluation", "seed: " + "1" * 25 + "\n  evaluation"), V,
         (P, "      seed:", 13), "training.model_training.config.seed", "more than 20 digits"),
    Case("integer_sexagesimal", pipe("max_models: 2", "max_models: " + ":".join(["59"] * 20)), V,
         (P, "max_models", 19), "training.model_training.config.max_models", "more than 20 digits"),
    Case("profiles_port_digits", prof("port: 54331", "port: " + "5" * 5000), V,
         (PR, "port:", None), "proj.outputs.dev.h2o.port", "more than 20 digits"),
    Case("profiles_alias_bomb", {PR: PROFILES + BOMB}, V, (PR, "a5:", None), None, "alias-expansion limit"),
    # ---- 3. messages with a location and a hint -------------------------------------------
    Case("binary_garbage", {P: bytes(range(256)) * 4}, V, (P, 2, 118), None, "not UTF-8 text"),
    Case("latin1_byte", {P: PIPE.replace("description: churn", "description: caf\u00e9").encode("latin-1")}, V,
         (P, "description", 19), None, "byte 0xe9"),
    Case("nul_character", pipe("description: churn", "description: ch\x00urn"), V,
         (P, "description", 18), None, "control character U+0000"),
    Case("bell_character", pipe("label_column: churned", "label_column: chur\x07ned"), V,
         (P, "label_column", None), None, "control character U+0007"),
    Case("recursive_alias", pipe("  tags: [churn]", "  tags: &t [churn, *t]"), V, (P, "tags", 20), None,
         "recursive alias *t"),
    Case("undefined_alias", pipe("  tags: [churn]", "  tags: [churn, *nope]"), V, (P, "tags", 17), None,
         "undefined alias *nope"),
    Case("label_column_empty", pipe("label_column: churned", 'label_column: ""'), V,
         (P, "label_column", None), "training.schema.target.label_column", "must not be empty"),
    Case("primary_key_empty", pipe("primary_key: customer_id", 'primary_key: ""'), V,
         (P, "primary_key", None), "training.schema.identifiers.primary_key", "must not be empty"),
    Case("pipeline_is_a_folder", {"pipelines/dir.yaml/x": "a: 1\n"}, "validate dir", ("pipelines/dir.yaml", None, None),
         None, "a folder, not a pipeline file"),
    Case("base_pipeline_is_a_folder", {**pipe("schema_version: 1\n", "schema_version: 1\nbase_pipeline: _b\n"),
                                       "pipelines/_b.yaml/x": "a: 1\n"}, V, (P, "base_pipeline", 1), "base_pipeline",
         "pipelines/_b.yaml is a folder"),
    Case("name_300_characters", {}, "validate " + "p" * 300, None, "NAME", "over the limit of 128"),
    Case("name_with_slash", {}, "validate ../../etc/passwd", None, "NAME", "invalid pipeline name"),
    Case("compile_name_300", {}, "compile " + "q" * 300 + " --target dev", None, "NAME", "over the limit"),
    Case("target_is_a_file", {"target": "not a folder\n"}, C, ("target", None, None), None, "is a file"),
    Case("target_pipeline_is_a_file", {"target/training_churn_model_v1": "x\n"}, C,
         ("target/training_churn_model_v1", None, None), None, "is a file"),
    Case("manifest_is_a_folder", {"target/training_churn_model_v1/manifest.json/x": "x\n"}, C,
         ("target/training_churn_model_v1/manifest.json", None, None), None, "is a folder"),
    Case("tab_indentation", pipe("  cadence: monthly", "\tcadence: monthly"), V, (P, "cadence", None), None,
         "YAML syntax error"),
    Case("two_documents", {P: PIPE + "---\na: 1\n"}, V, (P, "---", 1), None, "YAML syntax error"),
    Case("bad_merge_key", pipe("  tags: [churn]", "  <<: 5\n  tags: [churn]"), V, (P, "<<", 7), "project",
         "invalid merge key"),
    Case("python_tag", pipe("description: churn", "description: !!python/object:os.system ls"), V,
         (P, "description", 16), "project.description", "unsupported YAML tag"),
    Case("binary_tag", pipe("description: churn", "description: !!binary aGVsbG8="), V,
         (P, "description", 16), "project.description", "unsupported YAML tag"),
    Case("complex_key", pipe("  tags: [churn]", "  ? [a, b]\n  : 1\n  tags: [churn]"), V, (P, "? [a, b]", 5),
         "project", "mapping keys must be plain scalars"),
    Case("pipeline_is_a_list", {P: "- a\n- b\n"}, V, (P, 1, 1), None, "must be a mapping"),
    Case("profiles_binary", {PR: b"\x89PNG\r\n\x1a\n\x00\x00"}, V, (PR, 1, 1), None, "not UTF-8 text"),
    Case("profiles_nul", {PR: PROFILES.replace("target: dev", "target: d\x00ev")}, V, (PR, 2, 12), None,
         "control character"),
    Case("profiles_include_outside", prof(TGT, "!include /etc/passwd"), V, (PR, "storage", 16), None,
         "only relative paths"),
    # ---- 4. credentials -------------------------------------------------------------------
    Case("password_integer", prof(HOST, "{type: postgres, config: {host: db, password: 12345678}}"),
         "compile training_churn_model_v1 --target prod", (PR, "password", None),
         "proj.outputs.prod.data_connector.config.password", "literal credential"),
    Case("db_password", prof(DCN, "{type: local_file, config: {data_path: ./sample_data, db_password: hunter2}}"),
         V, (PR, "db_password", None), "proj.outputs.dev.data_connector.config.db_password", "literal credential"),
    Case("api_key", prof(TGT, "{type: local, config: {base_path: ./local_artifacts, api_key: abc}}"), V,
         (PR, "api_key", None), "proj.outputs.dev.storage.config.api_key", "literal credential"),
    Case("aws_secret_access_key", prof("{type: s3, config: {bucket: b, conn_id: mbt_s3}}",
                                       "{type: s3, config: {bucket: b, aws_secret_access_key: xyz}}"),
         "validate training_churn_model_v1 --target prod", (PR, "aws_secret", None),
         "proj.outputs.prod.storage.config.aws_secret_access_key", "literal credential"),
    Case("token_uppercase", prof(TGT, "{type: local, config: {base_path: ./local_artifacts, Auth_TOKEN: t}}"), V,
         (PR, "Auth_TOKEN", None), "proj.outputs.dev.storage.config.Auth_TOKEN", "literal credential"),
    Case("access_key_float", prof(TGT, "{type: local, config: {base_path: ./local_artifacts, access_key: 1.5}}"), V,
         (PR, "access_key", None), "proj.outputs.dev.storage.config.access_key", "literal credential"),
    Case("password_from_env_var", prof(TGT, "{type: local, config: {base_path: ./local_artifacts, "
                                            "password: \"{{ env_var('MBT_PLANTED_ENV') }}\"}}"), V,
         (PR, "password", None), "proj.outputs.dev.storage.config.password", "template other than secret()"),
    Case("password_from_var", prof(TGT, "{type: local, config: {base_path: ./local_artifacts, "
                                        "password: \"{{ var('pw') }}\"}}"), V + " --vars pw=x",
         (PR, "password", None), "proj.outputs.dev.storage.config.password", "template other than secret()"),
    Case("url_credentials", prof(URI, '        tracking_uri: "http://alice:wonderland@mlflow:5000"'), V,
         (PR, "tracking_uri", 9), "proj.outputs.dev.mlflow.tracking_uri", "credentials embedded in a URL"),
    Case("url_credentials_env_var", prof(URI, "        tracking_uri: \"http://alice:{{ env_var('MBT_PLANTED_ENV') }}"
                                              "@mlflow:5000\""), V,
         (PR, "tracking_uri", 9), "proj.outputs.dev.mlflow.tracking_uri", "credentials embedded in a URL"),
    Case("url_credentials_secret_inside", prof(URI, "        tracking_uri: \"http://a:{{ secret('MBT_PLANTED_SECRET') }}"
                                                    "@mlflow:5000\""), V,
         (PR, "tracking_uri", 9), "proj.outputs.dev.mlflow.tracking_uri", "credentials embedded in a URL"),
    Case("url_credentials_from_vars", prof(URI, "        tracking_uri: \"{{ var('uri') }}\""),
         V + " --vars uri=http://bob:builder@mlflow:5000", (PR, "tracking_uri", 9),
         "proj.outputs.dev.mlflow.tracking_uri", "credentials embedded in a URL"),
    Case("pipeline_literal_token", pipe("max_models: 2", "api_token: abc\n      max_models: 2"), V,
         (P, "api_token", 7), "training.model_training.config.api_token", "literal credential"),
    Case("pipeline_url_credentials", pipe("description: churn", "description: see postgres://u:pw@db/x"), V,
         (P, "description", 3), "project.description", "credentials embedded in a URL"),
    Case("secret_unset_at_compile", prof("{{ secret('MBT_PLANTED_SECRET') }}", "{{ secret('MBT_SURELY_UNSET_S') }}"),
         C, (PR, "registry_uri", 9), "proj.outputs.dev.mlflow.registry_uri", "secret 'MBT_SURELY_UNSET_S' is not set"),
    Case("secret_unset_at_run", prof("{{ secret('MBT_PLANTED_SECRET') }}", "{{ secret('MBT_SURELY_UNSET_S') }}"),
         "run --select training_churn_model_v1 --target dev", (PR, "registry_uri", 9),
         "proj.outputs.dev.mlflow.registry_uri", "is not set"),
    Case("secret_in_pipeline", pipe("max_models: 2", "max_models: \"{{ secret('MBT_PLANTED_SECRET') }}\""), V,
         (P, "max_models", 7), "training.model_training.config.max_models", "only allowed in profiles.yaml"),
    # ---- 5. numbers ------------------------------------------------------------------------
    Case("test_size_nan", pipe(ST, "  split: {test_size: .nan, seed: 42}"), V, (P, "split", 22),
         "training.split.test_size", "non-finite number"),
    Case("test_size_inf", pipe(ST, "  split: {test_size: .inf, seed: 42}"), V, (P, "split", 22),
         "training.split.test_size", "non-finite number"),
    Case("seed_minus_inf", pipe(ST, "  split: {test_size: 0.2, seed: -.Inf}"), V, (P, "split", 33),
         "training.split.seed", "non-finite number"),
    Case("float_overflow", pipe(ST, "  split: {test_size: 1.0e+999, seed: 42}"), V, (P, "split", 22),
         "training.split.test_size", "non-finite number"),
    Case("nan_key", pipe("  tags: [churn]", "  tags: [churn]\n  .nan: 1"), V, (P, ".nan", 3), "project",
         "non-finite number"),
    Case("vars_nan", pipe(ST, "  split: {test_size: \"{{ var('ts') }}\", seed: 42}"), V + " --vars ts=.nan",
         None, "--vars", "non-finite number"),
    Case("env_nan_stays_text", pipe(ST, "  split: {test_size: \"{{ env_var('MBT_TS') }}\", seed: 42}"), V,
         (P, "split", 11), "training.split.test_size", "expected a number", env={"MBT_TS": ".nan"}),
    Case("profiles_port_nan", prof("port: 54331", "port: .nan"), V, (PR, "port:", None), "proj.outputs.dev.h2o.port",
         "non-finite number"),
    Case("vars_5000_digits", {}, V + " --vars x=" + "7" * 5000, None, "--vars", "more than 20 digits"),
    Case("vars_mapping_5000_digits", {}, V + " --vars '{x: " + "7" * 5000 + "}'", None, "--vars", "more than 20 digits"),
    Case("vars_alias_bomb", {}, V + " --vars '{" + ", ".join(BOMB.strip().splitlines()) + "}'", None, "--vars",
         "alias-expansion limit"),
    Case("vars_recursive_alias", {}, V + " --vars '{a: &a [*a]}'", None, "--vars", "recursive alias"),
    Case("vars_deep", {}, V + " --vars '{a: " + "[" * 5000 + "]" * 5000 + "}'", None, "--vars",
         "nested deeper than 64"),
    Case("vars_too_long", {}, V + " --vars x=" + "y" * 70000, None, "--vars", "over the limit of 65536"),
    # ---- 6. validate does what needs no data ------------------------------------------------
    Case("sklearn_param_typo", sk("max_iter: 100", "max_iters: 100"), V, (P, "max_iters", 7),
         "training.model_training.config.max_iters", "did you mean 'max_iter'"),
    Case("sklearn_param_type", sk("max_iter: 100", 'C: "strong"'), V, (P, "C:", 7),
         "training.model_training.config.C", "must be a float"),
    Case("sklearn_unknown_estimator", sk("model: LogisticRegression", "model: Frobnicator"), V, (P, "model:", 7),
         "training.model_training.config.model", "not a scikit-learn classifier"),
    Case("sklearn_bool_as_text", sk("max_iter: 100", 'fit_intercept: "yes"'), V, (P, "fit_intercept", 7),
         "training.model_training.config.fit_intercept", "fit_intercept"),
    Case("sklearn_forest_param", sk("model: LogisticRegression\n      max_iter: 100",
                                    "model: RandomForestClassifier\n      n_estimators: many"), V,
         (P, "n_estimators", 7), "training.model_training.config.n_estimators", "n_estimators"),
    Case("h2o_option_typo", pipe("max_models: 2", "max_model: 2"), V, (P, "max_model", 7),
         "training.model_training.config.max_model", "did you mean 'max_models'"),
    Case("h2o_option_type", pipe("max_models: 2", "max_models: ten"), V, (P, "max_models", 7),
         "training.model_training.config.max_models", "expected an integer"),
]
