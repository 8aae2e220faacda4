#!/usr/bin/env bash
# Run a command with the local Kafka and PostgreSQL up and their settings in the environment.
# Infrastructure that this script started is stopped again when the command ends; infrastructure
# that was already running (e.g. `make infra-up`) is left running.
set -euo pipefail
cd "$(dirname "$0")/.."
started_here=0
if ! python3 scripts/infra.py env >/dev/null 2>&1; then started_here=1; fi
cleanup() { if [ "$started_here" = 1 ] && [ -z "${TETHER_KEEP_INFRA:-}" ]; then python3 scripts/infra.py down; fi; }
trap cleanup EXIT
set -a
# shellcheck disable=SC1090
eval "$(python3 scripts/infra.py up)"
set +a
"$@"
