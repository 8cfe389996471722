#!/usr/bin/env bash
# Schema-based fuzzing: schemathesis (pinned, from PyPI, in a venv under
# target/) generates requests from the OpenAPI document a running aduana
# serves (SQLite, loopback, an admin key of a fresh tenant) and fails on any
# 5xx or any response that breaks the document (status, content type, body
# schema). Bounded: at most SCHEMA_FUZZ_EXAMPLES examples per operation
# (default 25) with a fixed seed, so a run is repeatable and takes minutes.
# Called by .ci/run after the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION=4.32.5
VENV=target/schemathesis-venv
if ! "$VENV/bin/schemathesis" --version 2>/dev/null | grep -q "$VERSION"; then
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$VERSION"
fi
# The same selection as the test suite's build, so after `cargo test` this
# reuses its artifacts (building only the bin would resolve features
# differently and recompile the dependencies).
cargo build --locked --workspace --all-targets
BIN=target/debug/aduana
dir="$(mktemp -d)"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
export ADUANA_DATA_DIR="$dir/data" ADUANA_LOG=warn DATABASE_URL=
key="$($BIN tenant create --name "Schema fuzz" --type banco --rate-limit-per-minute unlimited --json \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["api_key"])')"
ADUANA_LISTEN="127.0.0.1:$port" ADUANA_OPERATOR_TOKEN="op_fuzz_$$" $BIN serve > "$dir/serve.log" 2>&1 &
pid=$!
cleanup() { kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$dir"; }
trap cleanup EXIT
for _ in $(seq 1 200); do
  curl -sf "http://127.0.0.1:$port/api/v1/health/ready" >/dev/null && break
  sleep 0.1
done
# One worker: with two, hypothesis's shared caches raced once (an
# "Inconsistent results" error inside the generator, not a server finding).
# A run whose only problems are such tool errors (no check failed) is tried
# once more with the same seed; a failed check is never retried.
fuzz() {
  "$VENV/bin/schemathesis" run "http://127.0.0.1:$port/openapi.json" \
    --header "Authorization: Bearer $key" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
    --max-examples "${SCHEMA_FUZZ_EXAMPLES:-25}" \
    --seed 20261206 \
    --workers 1 \
    --request-timeout 30 \
    --no-color 2>&1 | tee "$dir/fuzz.log"
  return "${PIPESTATUS[0]}"
}
started=$SECONDS
if ! fuzz; then
  summary="$(grep -E '^=+ .* in [0-9.]+s =+$' "$dir/fuzz.log" | tail -n 1)"
  case "$summary" in
    *failure*|"") exit 1 ;;
    *error*)
      echo "schemathesis reported only tool errors ($summary); trying once more" >&2
      fuzz ;;
    *) exit 1 ;;
  esac
fi
echo "schema fuzzing took $((SECONDS - started)) s"
if grep -q "panicked" "$dir/serve.log"; then
  echo "the server panicked during schema fuzzing:" >&2
  grep -m 5 -A 5 "panicked" "$dir/serve.log" >&2
  exit 1
fi
