#!/usr/bin/env bash
# The workspace's layering, checked on the resolved dependency graph (docs/ARCHITECTURE.md):
# - rampart-model, rampart-eval and rampart-api are pure: no tokio, hyper, axum or sqlx;
# - rampart-gateway (the data plane) depends on neither rampart-store nor rampart-control.
# Exits non-zero, naming the offending edge, when an arrow points up.
set -euo pipefail
cd "$(dirname "$0")/.."
fail=0
for crate in rampart-model rampart-eval rampart-api; do
  bad=$(cargo tree --locked -p "$crate" -e normal --prefix none | awk '{print $1}' |
    grep -xE 'tokio|hyper|axum|sqlx' | sort -u | tr '\n' ' ' || true)
  if [ -n "$bad" ]; then
    echo "layering: $crate must stay pure but pulls in: $bad"
    cargo tree --locked -p "$crate" -e normal -i "$(echo "$bad" | awk '{print $1}')" | head -20
    fail=1
  fi
done
bad=$(cargo tree --locked -p rampart-gateway -e normal --prefix none | awk '{print $1}' |
  grep -xE 'rampart-store|rampart-control' | sort -u | tr '\n' ' ' || true)
if [ -n "$bad" ]; then
  echo "layering: rampart-gateway (the data plane) must not depend on: $bad"
  fail=1
fi
[ "$fail" = 0 ] && echo "layering: model, eval and api are pure; the gateway depends on no store or control plane"
exit "$fail"
