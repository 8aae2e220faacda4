#!/usr/bin/env bash
# Prove the README's two commands from nothing: a fresh clone, an empty Kafka cache, a fresh
# virtualenv, a state directory of its own (under a mode-700 parent, as `mktemp -d` makes them)
# and ports of its own, so it runs beside a working checkout's infrastructure.
#
#   bash scripts/fresh-machine.sh            # make demo (200 records, exits after the sync)
#   bash scripts/fresh-machine.sh --test     # ... then make test in the same clone
#   TETHER_FRESH_SCREENSHOTS=DIR ...         # keep the demo's console screenshots in DIR
#
# It clones the committed HEAD of this repository (uncommitted changes are not part of it).
# What it cannot make fresh: pip's download cache and Debian's installed packages (root's apt-get
# installs them once per machine; a machine that lacks them pays that on the first run too).
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
run_tests=0
[ "${1:-}" = "--test" ] && run_tests=1

work="$(mktemp -d)"
clone="$work/tether"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
export TETHER_CACHE_DIR="$work/cache"            # empty: Kafka is resolved from Maven Central
export TETHER_INFRA_DIR="$work/infra"            # $work is mode 700
export TETHER_KAFKA_PORT="$(free_port)" TETHER_KAFKA_CONTROLLER_PORT="$(free_port)"
export TETHER_POSTGRES_PORT="$(free_port)"
unset TETHER_KAFKA_BOOTSTRAP_SERVERS TETHER_POSTGRES_DSN TETHER_KEEP_INFRA
cleanup() {
  (cd "$clone" 2>/dev/null && python3 scripts/infra.py down >/dev/null 2>&1) || true
  rm -rf "$work"
}
trap cleanup EXIT

echo "[fresh-machine] cloning $repo (HEAD $(git -C "$repo" rev-parse --short HEAD)) into $clone"
git clone -q "$repo" "$clone"
cd "$clone"

t0=$(date +%s)
echo "[fresh-machine] make demo DEMO_ARGS=\"--records 200 --exit-after-sync\""
make demo DEMO_ARGS="--records 200 --exit-after-sync --report $work/demo-report.json --screenshots ${TETHER_FRESH_SCREENSHOTS:-$work/screenshots}"
t1=$(date +%s)
python3 - "$work/demo-report.json" <<'PY'
import json, sys
report = json.load(open(sys.argv[1]))
sync = report["initial_sync"]
print(f"[fresh-machine] demo: {sync['contacts_created']} contacts created, "
      f"{sync['contacts_matched']} matched, {len(report['review_items'])} in review, "
      f"{sync['duplicate_contacts']} duplicates; exact expected counts: {report['expected_counts_met']}")
sys.exit(0 if report["expected_counts_met"] else 1)
PY
echo "[fresh-machine] make demo from nothing took $((t1 - t0)) s"

if [ "$run_tests" = 1 ]; then
  echo "[fresh-machine] make test"
  make test
  t2=$(date +%s)
  echo "[fresh-machine] make test took $((t2 - t1)) s (venv and Kafka already there from the demo)"
fi
echo "[fresh-machine] OK"
