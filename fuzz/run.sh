#!/usr/bin/env bash
# Runs every fuzz target for a bounded time, for CI.
#
# Usage: fuzz/run.sh [seconds-per-target]   (default 30)
#
# Each target starts from its committed corpus in fuzz/corpus/<target>/ and
# fails the script on the first crash (the reproducer lands in
# fuzz/artifacts/<target>/). New inputs go to a scratch directory, so runs
# leave the committed corpora alone; to grow one, run
# `cargo fuzz run <target>` and then `cargo fuzz cmin <target>`.
# Uses the nightly toolchain when rustup has one; otherwise stable with
# RUSTC_BOOTSTRAP=1, which cargo-fuzz's -Z flags need.
set -euo pipefail

seconds="${1:-30}"
cd "$(dirname "$0")/.."

if ! command -v cargo-fuzz >/dev/null 2>&1; then
    echo "cargo-fuzz is not installed: cargo install cargo-fuzz" >&2
    exit 1
fi

toolchain=()
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    toolchain=(+nightly)
else
    export RUSTC_BOOTSTRAP=1
fi

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT

for target in $(cargo "${toolchain[@]}" fuzz list); do
    echo "== fuzzing $target for ${seconds}s"
    mkdir -p "$scratch/$target" "fuzz/corpus/$target"
    cargo "${toolchain[@]}" fuzz run "$target" "$scratch/$target" "$PWD/fuzz/corpus/$target" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
done
