#!/usr/bin/env bash
# The minimum supported Rust version (Cargo.toml's rust-version, 1.85): the
# library builds on it with and without default features (the kernel build is
# `--no-default-features`). Uses an installed 1.85 toolchain, else tries to
# install a minimal one; when that fails (offline), prints "SKIP: ..." with the
# reason and exits 0. Its own target directory keeps the stable builds'
# caches intact.
set -euo pipefail
cd "$(dirname "$0")/.."

msrv=1.85
target_dir=${CARGO_TARGET_DIR:-target}/msrv

if ! command -v rustup >/dev/null 2>&1; then
  echo "SKIP: rustup not found, cannot select Rust $msrv"
  exit 0
fi

# An installed 1.85 toolchain: "1.85-<host>" or "1.85.<patch>-<host>".
installed() {
  rustup toolchain list | awk '{print $1}' | grep -E "^${msrv//./\\.}(\.[0-9]+)?-" | sort -V | tail -n 1
}

toolchain=$(installed || true)
if [ -z "$toolchain" ]; then
  echo "Rust $msrv is not installed; trying: rustup toolchain install $msrv --profile minimal"
  log=$(mktemp)
  if ! timeout 600 rustup toolchain install "$msrv" --profile minimal >"$log" 2>&1; then
    reason=$(grep -v '^\s*$' "$log" | tail -n 3 | tr '\n' ' ')
    rm -f "$log"
    echo "SKIP: Rust $msrv is not installed and could not be installed (offline?): ${reason:-no output}"
    exit 0
  fi
  rm -f "$log"
  toolchain=$(installed || true)
  if [ -z "$toolchain" ]; then
    echo "SKIP: rustup reported installing Rust $msrv but lists no such toolchain"
    exit 0
  fi
fi

echo "=== $(rustc "+$toolchain" --version)"
echo "=== cargo +$toolchain check --no-default-features (the kernel build)"
CARGO_TARGET_DIR=$target_dir cargo "+$toolchain" check --no-default-features
echo "=== cargo +$toolchain check (default features: std, model, epoch, haphazard)"
CARGO_TARGET_DIR=$target_dir cargo "+$toolchain" check
echo "=== MSRV $msrv: ok"
