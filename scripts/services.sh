#!/usr/bin/env bash
# Makes sure the local PostgreSQL the test suite needs is up on
# 127.0.0.1:5432 (starting the machine's cluster if it is down). Fails loudly
# when it cannot: the PostgreSQL half of the suite is never skipped.
set -euo pipefail
pg_up() { pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; }
if ! pg_up; then
  if command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ]; then
    echo "PostgreSQL is down; starting it" >&2
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
  fi
  for _ in $(seq 1 30); do pg_up && break; sleep 1; done
fi
if ! pg_up; then
  echo "error: PostgreSQL is not reachable on 127.0.0.1:5432 (set ADUANA_TEST_PG_URL to use another server)" >&2
  exit 1
fi
