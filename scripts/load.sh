#!/usr/bin/env bash
# Loopback load test: builds aduana and the project's load driver
# (host/examples/loadgen.rs) in release mode, then for SQLite and for
# PostgreSQL starts `aduana serve` on a fresh database and reports
# assess/s and p50/p99 for (1) a closed loop at full speed and (2) an open
# loop at a fixed 500 assess/s. Traffic goes to 127.0.0.1 only; every run is
# bounded in time. Not part of CI (figures, not pass/fail).
#
# Usage: scripts/load.sh [seconds-per-run]   (default 15)
set -euo pipefail
cd "$(dirname "$0")/.."
SECS="${1:-15}"
scripts/setup.sh
scripts/services.sh
cargo build --locked --release -p aduana-host --bin aduana --example loadgen
BIN=target/release/aduana
LOADGEN=target/release/examples/loadgen
PORT=18089
PG_ADMIN="${ADUANA_TEST_PG_URL:-postgres://postgres@127.0.0.1:5432/postgres}"

run_backend() {
  local backend="$1" dir db_url="" db_name=""
  dir="$(mktemp -d)"
  if [ "$backend" = postgres ]; then
    db_name="aduana_load_$$"
    psql "$PG_ADMIN" -qc "DROP DATABASE IF EXISTS $db_name" -c "CREATE DATABASE $db_name"
    db_url="${PG_ADMIN%/*}/$db_name"
  fi
  export ADUANA_DATA_DIR="$dir/data" DATABASE_URL="$db_url" ADUANA_LOG=warn
  key="$($BIN tenant create --name "Load $backend" --type banco --rate-limit-per-minute unlimited --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["api_key"])')"
  ADUANA_LISTEN="127.0.0.1:$PORT" $BIN serve & local pid=$!
  for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$PORT/api/v1/health/ready" >/dev/null && break; sleep 0.1; done
  $LOADGEN --url "http://127.0.0.1:$PORT" --key "$key" --seconds 3 --concurrency 16 --label "$backend warm-up" >/dev/null
  $LOADGEN --url "http://127.0.0.1:$PORT" --key "$key" --seconds "$SECS" --concurrency 32 --label "$backend max (32 conns)"
  $LOADGEN --url "http://127.0.0.1:$PORT" --key "$key" --seconds "$SECS" --rate 500 --concurrency 16 --label "$backend at 500/s"
  kill "$pid"; wait "$pid" 2>/dev/null || true
  if [ -n "$db_name" ]; then psql "$PG_ADMIN" -qc "DROP DATABASE IF EXISTS $db_name WITH (FORCE)"; fi
  rm -rf "$dir"
}

echo "machine: $(nproc) cores; $SECS s per run"
run_backend sqlite
run_backend postgres
