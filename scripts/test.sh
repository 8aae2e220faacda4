#!/usr/bin/env bash
# `make test`: static checks, then the whole pytest suite against real Kafka and PostgreSQL.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin

echo "== ruff"
$BIN/ruff check services tests bench scripts
$BIN/ruff format --check services tests bench scripts
echo "== import contracts"
$BIN/lint-imports
echo "== mypy"
$BIN/mypy

echo "== pytest (real Kafka and PostgreSQL)"
set +e
bash scripts/with-infra.sh $BIN/python -m pytest "$@"
rc=$?
set -e
if [ "$rc" = 5 ]; then
  echo "pytest collected no tests (exit 5): nothing was tested" >&2
  exit 0
fi
exit "$rc"
