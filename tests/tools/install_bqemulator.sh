#!/usr/bin/env bash
# The BigQuery API emulator of tests/energy/test_bigquery.py, in its own virtual environment
# (.venv-bqemulator): bqemulator pins protobuf < 7 and DuckDB, which must not change the
# project's environment; it runs as a separate process, reached over HTTP on loopback.
# bqemulator loads DuckDB's spatial extension at start and would download it: the PyPI wheel
# duckdb-extension-spatial ships it, so DuckDB is pinned to that wheel's version and the file is
# placed where DuckDB looks ($HOME/.duckdb/extensions), under a HOME the test fixture sets.
set -euo pipefail
cd "$(dirname "$0")/../.."
VENV=.venv-bqemulator
DUCKDB=1.5.5
python3 -m venv "$VENV"
"$VENV/bin/pip" install --quiet -c tests/tools/bqemulator-constraints.txt bqemulator==1.4.0 \
    duckdb==$DUCKDB duckdb-extension-spatial==$DUCKDB numpy
EXT=$("$VENV/bin/python" -c "import duckdb_extension_spatial, pathlib; \
print(next(pathlib.Path(duckdb_extension_spatial.__file__).parent.rglob('spatial.duckdb_extension')))")
PLATFORM=$("$VENV/bin/python" -c "import duckdb; \
print(duckdb.execute('PRAGMA platform').fetchone()[0])")
mkdir -p "$VENV/duckdb-home/.duckdb/extensions/v$DUCKDB/$PLATFORM"
ln -sf "$(realpath "$EXT")" "$VENV/duckdb-home/.duckdb/extensions/v$DUCKDB/$PLATFORM/"
echo "installed: $VENV/bin/bqemulator"
