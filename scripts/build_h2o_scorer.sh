#!/usr/bin/env bash
# Rebuild airflow_mbt/plugins/frameworks/java/MbtMojoScorer.class from its .java source against the
# genmodel classes in the project venv's h2o.jar (Java 17 bytecode), and record the source's sha256
# in MbtMojoScorer.sha256 (a unit test checks that the shipped class was built from this source).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DIR=$ROOT/airflow_mbt/plugins/frameworks/java
JAR=$("$ROOT/.venv/bin/python" -c "import h2o, pathlib; print(pathlib.Path(h2o.__file__).parent / 'backend/bin/h2o.jar')")
command -v javac >/dev/null || { echo "javac not found (apt-get install openjdk-17-jdk-headless)" >&2; exit 1; }
javac --release 17 -cp "$JAR" -d "$DIR" "$DIR/MbtMojoScorer.java"
(cd "$DIR" && sha256sum MbtMojoScorer.java > MbtMojoScorer.sha256)
echo "built $DIR/MbtMojoScorer.class"
