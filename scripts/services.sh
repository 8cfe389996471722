#!/usr/bin/env bash
# Makes sure the services the test suite needs are up: PostgreSQL on
# 127.0.0.1:5432 (starting the machine's cluster if it is down) and Redis.
# Fails loudly when it cannot: no half of the suite is ever skipped.
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

# Redis: the rate-limit tests start private `redis-server` processes of
# their own (so they can stop one), and the machine's server on 6379 is
# started when it is down, for `ADUANA_REDIS_URL=redis://127.0.0.1:6379/`.
if ! command -v redis-server >/dev/null; then
  echo "error: redis-server is not installed (Debian package redis-server)" >&2
  exit 1
fi
redis_up() { redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG; }
if ! redis_up; then
  echo "Redis is down; starting it" >&2
  redis-server --daemonize yes --port 6379 --save "" --appendonly no >/dev/null
  for _ in $(seq 1 30); do redis_up && break; sleep 0.2; done
fi
redis_up || { echo "error: Redis is not reachable on 127.0.0.1:6379" >&2; exit 1; }
