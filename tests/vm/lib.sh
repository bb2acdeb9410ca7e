# shellcheck shell=bash
# Host side of the VM test tier, shared by tests/vm/vm.sh (which tests/vm.rs
# calls) and tests/vm/demo.sh. Sourced, never run; callers use
# `set -euo pipefail`.
#
# An image is tests/support/make-image.sh's SLE Micro-layout btrfs image with
# this project installed by its own `make install`, the guest init
# (guest/init, PID 1 of every test boot), a test configuration, and the test
# RPMs plus the stall helper module on the shared /var. A boot works like a
# bootloader: kernel and initrd come from the btrfs DEFAULT subvolume, and
# the initrd mounts the default too, so each boot proves what the default
# really boots.

VM_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
VM_REPO=$(cd -- "$VM_DIR/../.." && pwd)
VM_SUPPORT=$VM_REPO/tests/support
export VM_DIR VM_REPO VM_SUPPORT

vm_log() {
	printf 'vm: %s\n' "$*" >&2
}

vm_die() {
	vm_log "error: $*"
	exit 1
}

# What this tier needs that is not there, one word each, on stdout (nothing
# when all is present). The support scripts install their own deps
# (tests/support/deps.sh); this only names what is missing.
vm_missing_prereqs() {
	local c missing=()
	[[ $(id -u) -eq 0 ]] || missing+=(root)
	for c in qemu-system-x86_64 timeout mkfs.btrfs btrfs losetup mmdebstrap rpmbuild make zstd strip createrepo_c; do
		command -v "$c" >/dev/null 2>&1 || missing+=("$c")
	done
	[[ -e /dev/loop-control ]] || missing+=(/dev/loop-control)
	local s
	for s in kernel-abi.sh rootfs.sh make-image.sh livepatches.sh; do
		[[ -x $VM_SUPPORT/$s ]] || missing+=("tests/support/$s")
	done
	if [[ -x $VM_SUPPORT/kernel-abi.sh ]] && ((${#missing[@]} == 0)); then
		local abi
		if abi=$(TLP_NO_APT_UPDATE=1 "$VM_SUPPORT/kernel-abi.sh" 2>/dev/null); then
			[[ -f /usr/src/linux-headers-$abi/Makefile ]] || missing+=("linux-headers-$abi")
		else
			missing+=("kernel ABI (apt metadata)")
		fi
	fi
	echo "${missing[*]}"
}

# vm_build_image IMAGE BIN: a fresh test image with BIN (a failpoints build of
# the tool) installed. Livepatch RPMs and the rootfs come from the support
# scripts' caches.
vm_build_image() {
	local image=$1 bin=$2 rpms
	[[ -x $bin ]] || vm_die "no tool binary at $bin"
	rpms=$(mktemp -d "${TMPDIR:-/tmp}/tlp-vm-rpms.XXXXXX")
	if ! "$VM_SUPPORT/livepatches.sh" "$rpms" >/dev/null ||
		! VM_BIN=$(realpath -- "$bin") VM_RPMS=$rpms \
			TLP_INSTALL_CMD="$VM_DIR/install-guest.sh" \
			"$VM_SUPPORT/make-image.sh" "$image" >/dev/null; then
		rm -rf -- "$rpms"
		vm_die "building the test image $image failed"
	fi
	rm -rf -- "$rpms"
}

# vm_kernel_from_default IMAGE DIR: copy vmlinuz and initrd of the image's
# default subvolume to DIR/vmlinuz and DIR/initrd, as a bootloader would read
# them: read-only, without replaying the btrfs log tree (GRUB does not).
# Returns non-zero (after cleaning up) when it cannot.
vm_kernel_from_default() {
	local image=$1 dir=$2 mnt kernels initrds
	mnt=$(mktemp -d "${TMPDIR:-/tmp}/tlp-vm-boot.XXXXXX")
	if ! mount -o loop,ro,rescue=nologreplay -- "$image" "$mnt"; then
		rmdir -- "$mnt"
		vm_log "error: cannot mount the default subvolume of $image"
		return 1
	fi
	kernels=("$mnt"/boot/vmlinuz-*)
	local kver=${kernels[0]##*/vmlinuz-}
	initrds=("$mnt/boot/initrd-$kver" "$mnt/boot/initrd.img-$kver")
	local ok=1
	cp -- "$mnt/boot/vmlinuz-$kver" "$dir/vmlinuz" || ok=0
	if [[ -f ${initrds[0]} ]]; then
		cp -- "${initrds[0]}" "$dir/initrd" || ok=0
	else
		cp -- "${initrds[1]}" "$dir/initrd" || ok=0
	fi
	# Something scanning mounts can hold it for a moment: retry, then detach
	# lazily rather than leak the mount and its loop device.
	local _try
	for _try in 1 2 3 4 5; do
		umount -- "$mnt" 2>/dev/null && break
		sleep 1
	done
	if mountpoint -q -- "$mnt"; then
		vm_log "umount $mnt failed; detaching lazily"
		umount -l -- "$mnt"
	fi
	rmdir -- "$mnt"
	((ok)) || {
		vm_log "error: cannot read kernel $kver and its initrd from the default subvolume of $image"
		return 1
	}
}

# vm_boot IMAGE STAGE STEPS LOG TIMEOUT_SECS: boot the image's default
# subvolume once; the guest init runs STEPS (see guest/init) and powers off.
# The serial console goes to LOG (QEMU's own messages to LOG.qemu). Returns
# QEMU's status (124: timed out).
#
# -no-reboot: a reboot (the power-cut failpoint) ends QEMU like a power-off.
# -cpu qemu64: TCG emulates AVX/AVX2 slowly, and glibc picks them under
#   `-cpu max`: depmod took 72 s there and 40 s with qemu64 (95 s Haswell).
# -smp 1: dracut (thousands of fork/exec) ran 1.5x slower with 2 vCPUs on
#   this 2-core host: multi-threaded TCG synchronises all vCPUs for TLB
#   flushes. The livepatch consistency model does not need a second CPU.
# vectors=0: no MSI-X on the disk; QEMU 7.2 under TCG sometimes aborted early
#   in boot with "msix_table_mmio_write: Assertion ... failed".
# quiet: the kernel's boot messages over the emulated serial line cost
#   seconds; they stay in the ring buffer, which the guest saves to /var.
# VM_CPU, VM_SMP, VM_TCG_OPTS (",tb-size=..."), VM_KERNEL_ARGS override.
vm_boot() {
	local image=$1 stage=$2 steps=$3 log=$4 timeout_secs=$5 kdir rc attempt
	kdir=$(mktemp -d "${TMPDIR:-/tmp}/tlp-vm-kernel.XXXXXX")
	if ! vm_kernel_from_default "$image" "$kdir"; then
		rm -rf -- "$kdir"
		return 1
	fi
	: >"$log.qemu"
	for attempt in 1 2; do
		: >"$log"
		rc=0
		timeout --kill-after=10 "$timeout_secs" qemu-system-x86_64 \
			-accel "tcg${VM_TCG_OPTS:-}" -machine q35 -cpu "${VM_CPU:-qemu64}" \
			-smp "${VM_SMP:-1}" -m 2G \
			-nodefaults -display none -no-reboot \
			-serial "file:$log" \
			-drive "file=$image,format=raw,if=none,id=root,cache=unsafe" \
			-device virtio-blk-pci,drive=root,vectors=0 \
			-kernel "$kdir/vmlinuz" -initrd "$kdir/initrd" \
			-append "root=/dev/vda rootfstype=btrfs rw console=ttyS0,115200 ${VM_KERNEL_ARGS-quiet} init=/usr/lib/tlp-test/init panic=-1 rd.shell=0 tlp.stage=$stage tlp.steps=$steps" \
			</dev/null >>"$log.qemu" 2>&1 || rc=$?
		# QEMU itself failed before the guest's init ran (nothing of the
		# test happened yet): once more, saying so.
		if ((rc != 0 && rc != 124 && attempt == 1)) && ! grep -q 'TLP-RESULT stage=' "$log"; then
			vm_log "QEMU exited with $rc before the guest init ran; booting again ($log.qemu)"
			echo "vm.sh: QEMU exited with $rc before init; retrying" >>"$log.qemu"
			continue
		fi
		break
	done
	rm -rf -- "$kdir"
	return "$rc"
}

# vm_host_tool IMAGE BIN ARGS...: run BIN --root MNT ARGS... on the host, with
# the image mounted as the running system sees itself (default subvolume,
# /.snapshots, /var; tests/support/mount-image.sh), from MNT, so ARGS name
# the image's files by relative paths. For what needs no running guest
# kernel (`apply --boot-only`): seconds instead of an apply under TCG, with
# the same dracut, module and verification chrooted into the new snapshot.
# The tool's stdout and stderr pass through; returns its exit status.
vm_host_tool() {
	local image=$1 bin=$2 mnt rc=0
	shift 2
	bin=$(realpath -- "$bin") || return 1
	mnt=$(mktemp -d "${TMPDIR:-/tmp}/tlp-vm-host.XXXXXX")
	if ! "$VM_SUPPORT/mount-image.sh" "$image" "$mnt"; then
		rmdir -- "$mnt"
		vm_log "error: cannot mount $image"
		return 1
	fi
	(cd -- "$mnt" && "$bin" --root "$mnt" "$@") || rc=$?
	if ! "$VM_SUPPORT/umount-image.sh" "$mnt"; then
		vm_log "error: cannot unmount $mnt"
		((rc)) || rc=1
	fi
	rmdir -- "$mnt" 2>/dev/null || true
	return "$rc"
}

# vm_results LOG: the TLP-RESULT lines of a serial log as KEY=VALUE, without
# the console's carriage returns.
vm_results() {
	tr -d '\r' <"$1" | sed -n 's/^.*TLP-RESULT //p'
}

# vm_get LOG KEY: the first value of KEY (empty if none). awk reads to the
# end: an early exit would SIGPIPE the writers and, with pipefail, fail the
# caller.
vm_get() {
	vm_results "$1" | awk -v k="$2" '!found && index($0, k "=") == 1 { print substr($0, length(k) + 2); found = 1 }'
}
