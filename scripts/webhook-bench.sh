#!/usr/bin/env bash
# Webhook delivery benchmark on loopback (figures, not pass/fail; not in CI).
# For SQLite and PostgreSQL:
#   1. deliveries/s: assessments pile up events with delivery off, then a
#      node with delivery on sends them all to a local receiver
#      (host/examples/webhook_sink.rs), timed from its first to its last;
#   2. assess p99 at 500 assess/s with no endpoint, with an endpoint
#      subscribed to every event, and with that only endpoint hanging
#      (after the first part's writes are settled: vacuum and checkpoint).
#      No endpoint and every event alternate for WEBHOOK_BENCH_ROUNDS
#      rounds (default 3), then the hanging endpoint runs as many phases;
#      each kind's latencies are pooled over its phases and its p99 set
#      against the pooled no-endpoint p99. This machine's disk has
#      occasional fsync stalls of 40-370 ms (docs/benchmarks.md); a commit
#      waits for its fsync, so one stall can decide one phase's p99, and
#      pooling alternated phases spreads such stalls over the kinds
#      instead of charging them to whichever phase they hit.
#
# Usage: scripts/webhook-bench.sh [seconds-per-run]   (default 15)
# Environment: LOAD_BACKENDS="sqlite postgres", ADUANA_BIN, LOADGEN, SINK,
# WEBHOOK_BENCH_ROUNDS
# (binaries to use; default: build them); SINK_NICE=N runs the receivers at
# OS priority N (e.g. 10), standing in for a bank's receiver on another
# machine instead of competing with aduana for this machine's cores.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS="${1:-15}"
scripts/setup.sh
scripts/services.sh
if [ -z "${ADUANA_BIN:-}" ] || [ -z "${LOADGEN:-}" ] || [ -z "${SINK:-}" ]; then
  cargo build --locked --release -p aduana-host --bin aduana --example loadgen --example webhook_sink
fi
BIN="${ADUANA_BIN:-target/release/aduana}"
LOADGEN="${LOADGEN:-target/release/examples/loadgen}"
SINK="nice -n ${SINK_NICE:-0} ${SINK:-target/release/examples/webhook_sink}"
PORT=18089 OK_PORT=18090 HANG_PORT=18091
PG_ADMIN="${ADUANA_TEST_PG_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
export ADUANA_WEBHOOK_ALLOW_PRIVATE=1 ADUANA_LOG=warn

wait_ready() {
  for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$PORT/api/v1/health/ready" >/dev/null && return; sleep 0.1; done
  echo "server did not start" >&2; exit 1
}

hook() { # method path [json]
  curl -sf -X "$1" "http://127.0.0.1:$PORT$2" -H "Authorization: Bearer $key" \
    -H 'content-type: application/json' ${3:+-d "$3"}
}

count_events() {
  if [ -n "$db_url" ]; then psql "$db_url" -tAc "SELECT COUNT(*) FROM outbox"
  else python3 -c 'import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute("SELECT COUNT(*) FROM outbox").fetchone()[0])' "$ADUANA_DATA_DIR/aduana.db"; fi
}

run_backend() {
  local backend="$1" dir db_name=""
  dir="$(mktemp -d)"; db_url=""
  if [ "$backend" = postgres ]; then
    db_name="aduana_whbench_$$"
    psql "$PG_ADMIN" -qc "DROP DATABASE IF EXISTS $db_name" -c "CREATE DATABASE $db_name"
    db_url="${PG_ADMIN%/*}/$db_name"
  fi
  export ADUANA_DATA_DIR="$dir/data" DATABASE_URL="$db_url" ADUANA_LISTEN="127.0.0.1:$PORT"
  created="$($BIN tenant create --name "Webhooks $backend" --type banco --rate-limit-per-minute unlimited --json)"
  key="$(python3 -c 'import json,sys; print(json.load(sys.stdin)["api_key"])' <<<"$created")"

  # 1. Deliveries/s.
  ADUANA_WEBHOOK_DELIVERY=off $BIN serve & local pid=$!
  wait_ready
  hook POST /api/v1/webhooks "{\"url\": \"http://127.0.0.1:$OK_PORT/hook\"}" >/dev/null
  $LOADGEN --url "http://127.0.0.1:$PORT" --key "$key" --seconds 10 --concurrency 32 --label "$backend events (delivery off)"
  kill "$pid"; wait "$pid" 2>/dev/null || true
  local n; n="$(count_events)"
  $SINK --listen "127.0.0.1:$OK_PORT" --expect "$n" & local sink=$!
  $BIN serve & pid=$!
  wait "$sink"
  echo "$backend: $n events delivered (see the rate above)"
  # The backlog's aftermath (PostgreSQL's autovacuum of the rows the
  # delivery just updated and its checkpoint; SQLite's WAL) would land in
  # whichever latency phase comes first: settle it before them.
  if [ -n "$db_url" ]; then psql "$db_url" -qc "VACUUM ANALYZE" -c "CHECKPOINT"
  else python3 -c 'import sqlite3,sys; sqlite3.connect(sys.argv[1]).execute("PRAGMA wal_checkpoint(TRUNCATE)")' "$ADUANA_DATA_DIR/aduana.db"; fi

  # 2. Assess p99 at 500/s, alternating no endpoint and an endpoint taking
  #    every event; the hanging endpoint last (it leaves a backlog that a
  #    later phase would have to catch up on). A pause lets each phase's
  #    writes settle before the next.
  local id; id="$(hook GET /api/v1/webhooks | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"][0]["id"])')"
  $SINK --listen "127.0.0.1:$OK_PORT" & local ok=$!
  $SINK --listen "127.0.0.1:$HANG_PORT" --mode hang & local hang=$!
  sleep 3.3
  local rounds="${WEBHOOK_BENCH_ROUNDS:-3}" modes=()
  for _ in $(seq 1 "$rounds"); do modes+=(none every); done
  for _ in $(seq 1 "$rounds"); do modes+=(hang); done
  for mode in "${modes[@]}"; do
    case "$mode" in
      none) hook PATCH "/api/v1/webhooks/$id" '{"is_active": false}' >/dev/null ;;
      every) hook PATCH "/api/v1/webhooks/$id" "{\"is_active\": true, \"url\": \"http://127.0.0.1:$OK_PORT/hook\"}" >/dev/null ;;
      hang) hook PATCH "/api/v1/webhooks/$id" "{\"is_active\": true, \"url\": \"http://127.0.0.1:$HANG_PORT/hook\"}" >/dev/null ;;
    esac
    $LOADGEN --url "http://127.0.0.1:$PORT" --key "$key" --seconds "$SECS" --rate 500 --concurrency 16 \
      --latencies-out "$dir/latencies-$mode" --label "$backend at 500/s, endpoint: $mode"
    sleep 2
  done
  python3 - "$backend" "$dir" <<'PY'
import math, sys
backend, d = sys.argv[1], sys.argv[2]
def pct(l, p):  # as the load driver computes it
    return l[min(len(l), max(1, math.ceil(len(l) * p))) - 1]
pooled = {}
for mode in ("none", "every", "hang"):
    l = sorted(float(x) for x in open(f"{d}/latencies-{mode}"))
    pooled[mode] = pct(l, 0.99)
    print(f"{backend} pooled, endpoint {mode}: {len(l)} requests, p50 {pct(l, 0.5):.2f} ms, "
          f"p90 {pct(l, 0.9):.2f} ms, p99 {pct(l, 0.99):.2f} ms, "
          f"over 40 ms {sum(x > 40 for x in l)}, max {l[-1]:.2f} ms")
for mode in ("every", "hang"):
    print(f"{backend} pooled p99, endpoint {mode} / none: {pooled[mode] / pooled['none']:.2f}x")
PY
  kill "$pid" "$ok" "$hang" 2>/dev/null; wait "$pid" 2>/dev/null || true
  if [ -n "$db_name" ]; then psql "$PG_ADMIN" -qc "DROP DATABASE IF EXISTS $db_name WITH (FORCE)"; fi
  rm -rf "$dir"
}

echo "machine: $(nproc) cores; $SECS s per run"
for backend in ${LOAD_BACKENDS:-sqlite postgres}; do run_backend "$backend"; done
