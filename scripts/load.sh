#!/usr/bin/env bash
# Loopback load test: builds aduana and the project's load driver
# (host/examples/loadgen.rs) in release mode, then for SQLite and for
# PostgreSQL starts `aduana serve` on a fresh database and reports
# assess/s and p50/p99 for (1) a closed loop at full speed and (2) an open
# loop at a fixed 500 assess/s. Traffic goes to 127.0.0.1 only; every run is
# bounded in time. Not part of CI (figures, not pass/fail).
#
# Usage: scripts/load.sh [seconds-per-run]   (default 15)
# Environment:
#   LOAD_BLOCKLIST_ENTRIES=N   seed N blocklist entries (none matching the
#                              load's payouts) for the tenant before the runs
#   LOAD_BACKENDS="sqlite postgres"   which backends to run
#   ADUANA_BIN=path LOADGEN=path   the server binary and load driver to use
#                              (default: build both)
#   ADUANA_SQLITE_SYNCHRONOUS  passed through (full by default, or normal)
#   LOAD_FLOWS="payout payin"  which flows to run, each on the same server
set -euo pipefail
cd "$(dirname "$0")/.."
SECS="${1:-15}"
scripts/setup.sh
scripts/services.sh
# With both ADUANA_BIN and LOADGEN given (old/new pairs), nothing is built.
if [ -z "${ADUANA_BIN:-}" ] || [ -z "${LOADGEN:-}" ]; then
  cargo build --locked --release -p aduana-host --bin aduana --example loadgen
fi
BIN="${ADUANA_BIN:-target/release/aduana}"
ENTRIES="${LOAD_BLOCKLIST_ENTRIES:-0}"
LOADGEN="${LOADGEN:-target/release/examples/loadgen}"
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
  created="$($BIN tenant create --name "Load $backend" --type banco --rate-limit-per-minute unlimited --json)"
  key="$(python3 -c 'import json,sys; print(json.load(sys.stdin)["api_key"])' <<<"$created")"
  tenant="$(python3 -c 'import json,sys; print(json.load(sys.stdin)["tenant_id"])' <<<"$created")"
  if [ "$ENTRIES" -gt 0 ]; then seed_blocklist "$backend" "$tenant" "$db_url"; fi
  ADUANA_LISTEN="127.0.0.1:$PORT" $BIN serve & local pid=$!
  for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$PORT/api/v1/health/ready" >/dev/null && break; sleep 0.1; done
  for flow in ${LOAD_FLOWS:-payout}; do
    local f=()
    if [ "$flow" != payout ]; then f=(--flow "$flow"); fi
    $LOADGEN "${f[@]}" --url "http://127.0.0.1:$PORT" --key "$key" --seconds 3 --concurrency 16 --label "$backend $flow warm-up" >/dev/null
    $LOADGEN "${f[@]}" --url "http://127.0.0.1:$PORT" --key "$key" --seconds "$SECS" --concurrency 32 --label "$backend $flow max (32 conns)"
    $LOADGEN "${f[@]}" --url "http://127.0.0.1:$PORT" --key "$key" --seconds "$SECS" --rate 500 --concurrency 16 --label "$backend $flow at 500/s"
  done
  kill "$pid"; wait "$pid" 2>/dev/null || true
  if [ -n "$db_name" ]; then psql "$PG_ADMIN" -qc "DROP DATABASE IF EXISTS $db_name WITH (FORCE)"; fi
  rm -rf "$dir"
}

# N entries of five list types, straight into the database (the API would
# take minutes); values never match a load payout. On PostgreSQL the bulk
# insert is vacuumed, analyzed and checkpointed first, so its write-back
# does not land in the measured runs.
seed_blocklist() {
  local backend="$1" tenant="$2" db_url="$3" started=$SECONDS
  if [ "$backend" = postgres ]; then
    psql "$db_url" -qc "INSERT INTO blocklist_entries (id, tenant_id, list_type, value, flow_scope,
      severity, reason, source, is_active, expires_at, created_at, updated_at)
      SELECT 'bl_seed_' || n, '$tenant', (ARRAY['clabe','iban','beneficiary_id','account_hash','swift_bic',
        'email','ip_range','card_bin','phone','customer_id'])[n % 10 + 1],
        'seed' || lpad(n::text, 14, '0'), 'all', 'block', 'seed', 'manual', 1, NULL, 0, 0
      FROM generate_series(1, $ENTRIES) AS n" -c "VACUUM ANALYZE blocklist_entries" -c "CHECKPOINT"
  else
    python3 - "$ADUANA_DATA_DIR/aduana.db" "$tenant" "$ENTRIES" <<'PY'
import sqlite3, sys
db, tenant, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
types = ["clabe", "iban", "beneficiary_id", "account_hash", "swift_bic",
         "email", "ip_range", "card_bin", "phone", "customer_id"]
con = sqlite3.connect(db)
con.executemany(
    "INSERT INTO blocklist_entries (id, tenant_id, list_type, value, flow_scope, severity, reason,"
    " source, is_active, expires_at, created_at, updated_at)"
    " VALUES (?, ?, ?, ?, 'all', 'block', 'seed', 'manual', 1, NULL, 0, 0)",
    ((f"bl_seed_{i}", tenant, types[i % 10], f"seed{i:014d}") for i in range(1, n + 1)),
)
con.commit()
con.close()
PY
  fi
  echo "$backend: seeded $ENTRIES blocklist entries in $((SECONDS - started)) s"
}

echo "machine: $(nproc) cores; $SECS s per run; $ENTRIES blocklist entries"
for backend in ${LOAD_BACKENDS:-sqlite postgres}; do run_backend "$backend"; done
