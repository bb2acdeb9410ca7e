#!/bin/bash
# Entry point of the VM test tier's host harness (tests/vm.rs calls it):
#
#   vm.sh prereqs                                  print what is missing (empty: ready)
#   vm.sh build IMAGE BIN                          build a test image with BIN installed
#   vm.sh boot IMAGE STAGE STEPS LOG TIMEOUT_SECS  boot it once (see guest/init for STEPS)
#   vm.sh tool IMAGE BIN ARGS...                   run BIN --root <mounted image> ARGS on the host
#
# boot exits with QEMU's status (124: timed out); the guest's results are the
# TLP-RESULT lines in LOG.
set -euo pipefail
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

cmd=${1:-}
shift || true
case $cmd in
prereqs)
	(($# == 0)) || vm_die "usage: vm.sh prereqs"
	vm_missing_prereqs
	;;
build)
	(($# == 2)) || vm_die "usage: vm.sh build IMAGE BIN"
	vm_build_image "$1" "$2"
	;;
boot)
	(($# == 5)) || vm_die "usage: vm.sh boot IMAGE STAGE STEPS LOG TIMEOUT_SECS"
	vm_boot "$@"
	;;
tool)
	(($# >= 2)) || vm_die "usage: vm.sh tool IMAGE BIN ARGS..."
	vm_host_tool "$@"
	;;
*)
	vm_die "usage: vm.sh prereqs | build IMAGE BIN | boot IMAGE STAGE STEPS LOG TIMEOUT_SECS | tool IMAGE BIN ARGS..."
	;;
esac
