#!/bin/bash
# Runs every test tier, installing what they need first (as root, on a Debian
# 12 machine): lints, unit tests, the privileged tier on loop-device btrfs,
# and the VM tier under QEMU. Under CI=true a missing prerequisite fails.
#
#   tests/run-all.sh            everything
#   TLP_TIERS="unit privileged" tests/run-all.sh   a subset (lint unit privileged vm)
set -euo pipefail
cd "$(dirname -- "${BASH_SOURCE[0]}")/.."

tiers=${TLP_TIERS:-lint unit privileged vm}
start=$SECONDS
declare -a summary=()

say() { printf '\n=== %s (%ss)\n' "$*" "$((SECONDS - start))"; }
want() { [[ " $tiers " == *" $1 "* ]]; }

say "installing prerequisites"
tests/support/deps.sh
if ! command -v cargo >/dev/null; then
    echo "cargo is missing: this machine kind ships Rust via rustup" >&2
    exit 1
fi
rustup component add rustfmt clippy >/dev/null 2>&1 || true

if want lint; then
    say "lint: cargo fmt, clippy, shellcheck"
    cargo fmt --all -- --check
    cargo clippy --locked --all-targets --features failpoints -- -D warnings
    mapfile -t shells < <(git ls-files '*.sh' .ci/run)
    shellcheck -x "${shells[@]}"
    summary+=("lint: ok")
fi

# The privileged and VM tiers exercise the failpoints build of the binary.
cargo build --locked --features failpoints --all-targets

# Their images install the tool from its own RPM (built from `make dist` by
# the spec, with failpoints), so the package is what they test.
if want privileged || want vm; then
    say "the tool's RPM for the test images"
    TLP_TOOL_RPM=$(tests/support/tool-rpm.sh)
    export TLP_TOOL_RPM
    echo "$TLP_TOOL_RPM"
fi

if want unit; then
    say "unit tests"
    cargo test --locked --features failpoints --lib --bins
    summary+=("unit: ok")
fi

if want privileged; then
    say "privileged tier (loop-device btrfs, real rpm, dracut, lsinitrd, zypper)"
    # --no-fail-fast: one run reports every failing test file, not the first.
    cargo test --locked --features failpoints --no-fail-fast \
        --test btrfs_loop --test package_preflight --test privileged --test update --test hostile --test dbus --test packaging --test cockpit -- --test-threads=2
    summary+=("privileged: ok")
fi

if want vm; then
    say "VM tier (QEMU, real kernel livepatching)"
    if [[ -f tests/vm.rs ]]; then
        # Two VMs at a time: each guest has one vCPU (-smp 1, see
        # tests/vm/lib.sh) and the tier is CPU-bound under TCG, so on a
        # 2-core machine this halves its time. TLP_VM_THREADS overrides.
        cargo test --locked --features failpoints --no-fail-fast --test vm -- --test-threads="${TLP_VM_THREADS:-2}"
        summary+=("vm: ok")
    else
        echo "the VM tier is missing (tests/vm.rs)" >&2
        [[ ${CI:-} == true ]] && exit 1
    fi
fi

say "done"
printf '%s\n' "${summary[@]}"
