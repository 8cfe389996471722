#!/usr/bin/env bash
# Refreshes rules/disposable-email/data/disposable-domains.txt from a release
# of the mailchecker crate (MIT License, github.com/FGRibreau/mailchecker),
# whose maintainers keep its list of disposable e-mail domains current.
#
# Usage: scripts/update-disposable-domains.sh [mailchecker-version]
# Then review the diff, rebuild (the rule embeds the list) and bump
# rules/disposable-email's version: a new list is a new rule version.
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION="${1:-6.0.21}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/src"
cat >"$work/Cargo.toml" <<TOML
[package]
name = "fetch-mailchecker"
version = "0.0.0"
edition = "2021"
[dependencies]
mailchecker = "=$VERSION"
TOML
touch "$work/src/lib.rs"
cargo fetch --manifest-path "$work/Cargo.toml" >/dev/null
src="$(cargo metadata --manifest-path "$work/Cargo.toml" --format-version 1 \
  | python3 -c 'import json,sys; m=json.load(sys.stdin); print([p["manifest_path"] for p in m["packages"] if p["name"]=="mailchecker"][0])')"
python3 - "$(dirname "$src")/src/lib.rs" "$VERSION" <<'PY'
import re, sys, datetime
text = open(sys.argv[1]).read()
start = text.index("static BLACKLIST")
block = text[start:text.index("];", start)]
domains = sorted({d.strip().lower() for d in re.findall(r'"([^"]+)"', block) if d.strip()})
out = "rules/disposable-email/data/disposable-domains.txt"
with open(out, "w") as f:
    f.write("# Disposable e-mail domains: one per line, lower case, sorted.\n")
    f.write(f"# Source: the mailchecker crate {sys.argv[2]} (MIT License, github.com/FGRibreau/mailchecker).\n")
    f.write(f"# Extracted: {datetime.date.today().isoformat()} by scripts/update-disposable-domains.sh\n")
    for d in domains:
        f.write(d + "\n")
print(f"{len(domains)} domains written to {out}")
PY
