#!/usr/bin/env bash
# A kernel crate of a user's own, outside this workspace: `cargo check`
# (not only `cargo build`) fails at the user's own line when the scheme
# covers fewer CPUs than the kernel (lazymm::assert_fits!), and passes
# when it covers them. The crate is written to a temporary directory and
# depends on this checkout by path, with default features off (no_std).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
mkdir -p "$dir/src"
cat >"$dir/Cargo.toml" <<EOF
[package]
name = "user-kernel"
version = "0.0.0"
edition = "2021"
publish = false

[dependencies]
lazymm = { path = "$root", default-features = false }

[workspace]
EOF

# write_kernel CPUS: the user's kernel of 8 CPUs with a Tagged<CPUS> scheme;
# the assert_fits! line is line 22.
write_kernel() {
  cat >"$dir/src/lib.rs" <<EOF
#![no_std]
use lazymm::cpu::{CpuId, CpuSet};
use lazymm::lazy::{tagged::Tagged, Kernel, MmPtr};

pub struct MmStruct(u64);
pub struct Os;

impl Kernel for Os {
    type Mm = MmPtr<MmStruct>;
    const NR_CPUS: usize = 8;
    type CpuMask = CpuSet<1>;
    fn mmgrab(&self, _: CpuId, _: Self::Mm) {}
    fn mmdrop(&self, _: CpuId, _: Self::Mm) {}
    fn mm_users(&self, _: Self::Mm) -> usize { 1 }
    fn mm_cpumask(&self, _: Self::Mm) -> CpuSet<1> { CpuSet::new() }
    fn shoot_lazies(&self, _: CpuId, _: &CpuSet<1>, _: Self::Mm) {}
}

pub static SCHEME: Tagged<$1> = Tagged::new();

// The kernel's own compile-time check:
lazymm::assert_fits!(Os, Tagged<$1>);
EOF
}

export CARGO_TARGET_DIR=$root/target/user-check
log=$(mktemp)
write_kernel 4
if (cd "$dir" && cargo check -q) >"$log" 2>&1; then
  cat "$log"
  echo "FAILED: cargo check passed a kernel of 8 CPUs with Tagged<4>"
  exit 1
fi
if ! grep -q "lazymm: the scheme's per-CPU state covers fewer CPUs than Kernel::NR_CPUS" "$log" ||
  ! grep -q "src/lib.rs:22" "$log"; then
  cat "$log"
  echo "FAILED: cargo check failed, but not with assert_fits!'s message at src/lib.rs:22"
  exit 1
fi
echo "cargo check of a user kernel with Tagged<4> for 8 CPUs fails at its own line:"
grep -E "^(error|  -->)" "$log" | head -n 4
write_kernel 8
(cd "$dir" && cargo check -q)
echo "cargo check of the same kernel with Tagged<8> passes"
