#!/usr/bin/env bash
# Bulk blocklist import benchmark: for SQLite and PostgreSQL, starts
# `aduana serve` on a fresh database and times POST /api/v1/blocklists/import
# of N generated rows (CSV, five pay-in and five payout list types), then
# reports rows/s. Loopback only; not part of CI (figures, not pass/fail).
#
# Usage: scripts/import-bench.sh [rows]   (default 1000000)
# Environment: ADUANA_BIN=path (default: build it), LOAD_BACKENDS="sqlite postgres"
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS="${1:-1000000}"
scripts/setup.sh
scripts/services.sh
if [ -z "${ADUANA_BIN:-}" ]; then
  cargo build --locked --release -p aduana-host --bin aduana
fi
BIN="${ADUANA_BIN:-target/release/aduana}"
PORT=18090
PG_ADMIN="${ADUANA_TEST_PG_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
python3 - "$ROWS" "$work/rows.csv" <<'PY'
import sys
n, path = int(sys.argv[1]), sys.argv[2]
with open(path, "w") as f:
    f.write("list_type,value,flow_scope,severity,reason\n")
    for i in range(n):
        k = i % 10
        if k == 0: row = f"email,user{i}@example.com,payin,block,bench"
        elif k == 1: row = f"ip_range,10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}/32,payin,flag,bench"
        elif k == 2: row = f"card_hash,h{i:012x},payin,block,bench"
        elif k == 3: row = f"phone,+52{5500000000 + i},payin,review,bench"
        elif k == 4: row = f"customer_id,cus_{i},all,block,bench"
        elif k == 5: row = f"beneficiary_id,ben_{i},payout,block,bench"
        elif k == 6: row = f"account_hash,a{i:012x},payout,block,bench"
        elif k == 7: row = f"device_fingerprint,fp{i},payin,flag,bench"
        elif k == 8: row = f"email_domain,d{i}.example,payin,review,bench"
        else: row = f"card_bin,{400000 + i % 100000},payin,review,bench"
        f.write(row + "\n")
PY
echo "rows: $ROWS ($(du -h "$work/rows.csv" | cut -f1) of CSV)"
for backend in ${LOAD_BACKENDS:-sqlite postgres}; do
  dir="$work/$backend" db_url="" db_name=""
  mkdir -p "$dir"
  if [ "$backend" = postgres ]; then
    db_name="aduana_import_$$"
    psql "$PG_ADMIN" -qc "DROP DATABASE IF EXISTS $db_name" -c "CREATE DATABASE $db_name"
    db_url="${PG_ADMIN%/*}/$db_name"
  fi
  export ADUANA_DATA_DIR="$dir/data" DATABASE_URL="$db_url" ADUANA_LOG=warn
  created="$($BIN tenant create --name "Import $backend" --type banco --rate-limit-per-minute unlimited --json)"
  key="$(python3 -c 'import json,sys; print(json.load(sys.stdin)["api_key"])' <<<"$created")"
  ADUANA_LISTEN="127.0.0.1:$PORT" $BIN serve & pid=$!
  for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$PORT/api/v1/health/ready" >/dev/null && break; sleep 0.1; done
  started=$(date +%s.%N)
  answer="$(curl -s -X POST "http://127.0.0.1:$PORT/api/v1/blocklists/import" \
    -H "Authorization: Bearer $key" -H 'content-type: text/csv' --data-binary @"$work/rows.csv")"
  ended=$(date +%s.%N)
  python3 - "$backend" "$started" "$ended" "$answer" <<'PY'
import json, sys
backend, t0, t1, answer = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
a = json.loads(answer)
secs = t1 - t0
if "inserted" not in a:
    sys.exit(f"{backend}: import failed: {answer[:500]}")
print(f"{backend}: {a['inserted']} rows inserted in {secs:.1f} s: {a['inserted'] / secs:,.0f} rows/s")
PY
  kill "$pid"; wait "$pid" 2>/dev/null || true
  if [ -n "$db_name" ]; then psql "$PG_ADMIN" -qc "DROP DATABASE IF EXISTS $db_name WITH (FORCE)"; fi
done
