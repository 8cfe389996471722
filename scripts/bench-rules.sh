#!/usr/bin/env bash
# Tenant-rule benchmarks (upload → active, N tenants with a custom rule each:
# RSS and assess p50/p99, restart time, hostile-neighbour p99). The service
# runs as its own `aduana serve` process; this drives it over loopback.
# Usage: scripts/bench-rules.sh [TENANTS]   (default 1000)
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
cargo build --release -p aduana-host --bin aduana --example tenant_rules_bench
exec ./target/release/examples/tenant_rules_bench "${1:-1000}"
