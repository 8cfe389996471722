#!/usr/bin/env bash
# Runs every test: unit tests, rule snapshot fixtures through the real
# components, runtime containment tests, and the HTTP integration suite on
# both SQLite and PostgreSQL, then a bounded schema-based fuzz of the served
# OpenAPI document (scripts/schema-fuzz.sh). Snapshots are never written here.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/services.sh
export INSTA_UPDATE=no CI="${CI:-true}"
cargo test --locked --workspace --all-targets "$@"
cargo test --locked --workspace --doc "$@"
scripts/schema-fuzz.sh
