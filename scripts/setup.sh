#!/usr/bin/env bash
# Installs what building aduana needs beyond the Rust toolchain: the bare
# Wasm target the rule components are compiled for. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! rustc --print target-libdir --target wasm32-unknown-unknown >/dev/null 2>&1 \
   || [ ! -d "$(rustc --print target-libdir --target wasm32-unknown-unknown)" ]; then
  rustup target add wasm32-unknown-unknown
fi
# Download every crate up front: the nested build of the rule components
# (host/build.rs) then never has to fetch while the outer build runs.
cargo fetch --locked
