#!/usr/bin/env bash
# Run a command with the local Kafka and PostgreSQL up and their settings in the environment.
# Infrastructure that this script started is stopped again when the command ends; infrastructure
# that was already running (e.g. `make infra-up`) is left running.
#
# `infra.py up` prints the settings as KEY=value lines on standard output (everything else goes to
# standard error). They are read as data, never evaluated: only TETHER_* names are exported, and
# any other line is an error, so a tool that prints to standard output cannot run as a command.
set -euo pipefail
cd "$(dirname "$0")/.."
started_here=0
if ! python3 scripts/infra.py env >/dev/null 2>&1; then started_here=1; fi
cleanup() { if [ "$started_here" = 1 ] && [ -z "${TETHER_KEEP_INFRA:-}" ]; then python3 scripts/infra.py down; fi; }
trap cleanup EXIT
settings=$(python3 scripts/infra.py up)
while IFS= read -r line; do
  [ -z "$line" ] && continue
  if [[ "$line" =~ ^(TETHER_[A-Z0-9_]+)=(.*)$ ]]; then
    export "${BASH_REMATCH[1]}=${BASH_REMATCH[2]}"
  else
    printf '[infra] unexpected line in the settings from scripts/infra.py up: %q\n' "$line" >&2
    exit 1
  fi
done <<<"$settings"
"$@"
