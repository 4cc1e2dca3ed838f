#!/usr/bin/env bash
# The project's one test command: everything CI checks, in order.
# Runs on a fresh machine as root with only the package registries reachable;
# installs what it needs and starts (and stops) every server its tests use,
# on 127.0.0.1 only.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

step() { printf '\n==> %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy --all-targets -D warnings"
cargo clippy --workspace --all-targets -- -D warnings

step "cargo test --workspace"
cargo test --workspace 2>&1

step "cargo doc (warnings are errors)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps

step "all checks passed"
