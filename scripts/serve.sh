#!/usr/bin/env bash
# Runs the aduana service on the embedded SQLite default (./data/aduana.db),
# listening on ADUANA_LISTEN (default 127.0.0.1:8080). Builds the rule
# components and the service first.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec cargo run --locked --release -p aduana-host --bin aduana -- serve "$@"
