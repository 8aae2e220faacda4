#!/usr/bin/env bash
# Install the operations tools the deploy tests use, from Debian's packages, when missing:
#   promtool + prometheus (package `prometheus`): rule/config checks, rule unit tests, and the
#   real Prometheus of tests/deploy/test_prometheus_e2e.py.
# Idempotent; needs root for apt-get (prints what is missing and exits 1 otherwise).
# The package's own service is never started here (no systemd in CI; policy-rc.d blocks it).
set -euo pipefail

if command -v promtool >/dev/null 2>&1 && command -v prometheus >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "install-ops-tools: promtool/prometheus missing and not root: apt-get install prometheus" >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
# Keep the package's post-install from starting a Prometheus daemon on :9090.
policy=/usr/sbin/policy-rc.d
created_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy"
  chmod +x "$policy"
  created_policy=1
fi
cleanup() { if [ "$created_policy" = 1 ]; then rm -f "$policy"; fi; }
trap cleanup EXIT

if ! apt-get install -y -qq --no-install-recommends prometheus >/dev/null 2>&1; then
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends prometheus >/dev/null
fi
command -v promtool >/dev/null && command -v prometheus >/dev/null
