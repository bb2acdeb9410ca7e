#!/bin/bash
# dracut module of transactional-livepatch: puts the livepatch modules a
# snapshot boots with into the initrd, and a hook that loads them early, before
# the root filesystem's init runs, so the booted kernel runs the same patches
# the running one had when the snapshot was made.
#
# The ordered list of modules (the boot stack) is written by
# transactional-livepatch into /etc/transactional-livepatch/stack/<kver>, one
# "name path" line per module. The hook is a plain dracut hook (pre-udev): in a
# systemd initrd dracut-pre-udev.service runs it, in a shell initrd the init
# script does, so it works in both (the VM tier boots both: tests/vm.rs,
# systemd_initrd_loads_the_boot_stack and the other scenarios).

# shellcheck disable=SC2154 # $kernel, $moddir, $dracutsysrootdir come from dracut

tlp_stack_file() {
    echo "${dracutsysrootdir-}/etc/transactional-livepatch/stack/${kernel}"
}

# Included when asked for (transactional-livepatch passes --add) or when the
# kernel has livepatch modules; otherwise only on request.
check() {
    local f
    [[ -s "$(tlp_stack_file)" ]] && return 0
    for f in "${dracutsysrootdir-}"/lib/modules/"$kernel"/livepatch/*.ko \
        "${dracutsysrootdir-}"/usr/lib/modules/"$kernel"/livepatch/*.ko; do
        [[ -f "$f" ]] && return 0
    done
    return 255
}

depends() {
    return 0
}

# Kernel modules only here: every module of the stack at the same path.
installkernel() {
    local stack name path
    stack="$(tlp_stack_file)"
    [[ -r "$stack" ]] || return 0
    while read -r name path _; do
        [[ -z "$name" || "$name" == \#* ]] && continue
        case "$path" in
            /lib/modules/"$kernel"/livepatch/*.ko | /usr/lib/modules/"$kernel"/livepatch/*.ko) ;;
            *)
                derror "transactional-livepatch: ignoring $name: $path is not a livepatch module path"
                continue
                ;;
        esac
        inst_simple "${dracutsysrootdir-}$path" "$path" ||
            dfatal "transactional-livepatch: cannot install livepatch module $path"
    done < "$stack"
}

install() {
    local stack
    stack="$(tlp_stack_file)"
    inst_multiple insmod
    if [[ -r "$stack" ]]; then
        inst_simple "$stack" "/etc/transactional-livepatch/stack/${kernel}"
    fi
    inst_hook pre-udev 00 "$moddir/tlp-load-livepatches.sh"
}
