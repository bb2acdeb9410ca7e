#!/bin/sh
# Loads the livepatch modules of the boot stack, in order, as early as the
# initrd allows. dracut sources hooks, so this defines a function, calls it and
# never exits. Each result goes to the kernel log, where the boot-time check
# of transactional-livepatch and administrators find it.

tlp_kmsg() {
    echo "transactional-livepatch: $*" > /dev/kmsg 2> /dev/null || echo "transactional-livepatch: $*"
}

tlp_load_livepatches() {
    tlp_kver="$(uname -r)"
    tlp_stack="/etc/transactional-livepatch/stack/$tlp_kver"
    if [ ! -r "$tlp_stack" ]; then
        tlp_kmsg "no livepatch stack for kernel $tlp_kver in the initrd"
        return 0
    fi
    if [ ! -d /sys/kernel/livepatch ]; then
        tlp_kmsg "kernel $tlp_kver has no livepatch support; not loading livepatches"
        return 0
    fi
    while read -r tlp_name tlp_path _; do
        case "$tlp_name" in '' | \#*) continue ;; esac
        if [ -d "/sys/kernel/livepatch/$tlp_name" ]; then
            continue
        fi
        if insmod "$tlp_path"; then
            tlp_kmsg "loaded livepatch $tlp_name from the initrd"
        else
            # Never block boot: the boot-time check loads what is missing and says so.
            tlp_kmsg "FAILED to load livepatch $tlp_name ($tlp_path) from the initrd"
        fi
    done < "$tlp_stack"
}

tlp_load_livepatches
unset -f tlp_load_livepatches tlp_kmsg
unset tlp_kver tlp_stack tlp_name tlp_path
