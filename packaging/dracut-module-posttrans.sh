#!/bin/sh
# dracut-module-posttrans [--status]
#
# Run from the %posttrans scriptlet of the transactional-livepatch package:
# regenerates the initrds of this root (usually a new snapshot that
# transactional-update is filling) only when the dracut module of
# transactional-livepatch differs from the one the initrds were built with.
#
# The record of "what the initrds were built with" is a stamp holding the
# sha256 over the module's files, kept next to the initrds in /boot, so it
# belongs to the same snapshot as they do and rolls back with them. (In
# /var it would be wrong: /var is shared by all snapshots, and after a
# rollback to an older snapshot the stamp would describe a newer one.)
#
#   stamp equal to the module            nothing to do (upgrade without a
#                                        module change, reinstall)
#   stamp missing or different           regenerate, then write the stamp
#   not a complete system (image build)  nothing now, stamp left alone: the
#                                        first real install/upgrade does it
#
# Regeneration uses SUSE's mechanism where it exists (the flag
# /run/regenerate-initrd/all and regenerate-initrd-posttrans, which honour the
# configured initrd generator and batch with other packages); elsewhere dracut
# rebuilds each existing initrd in place. If that fails the stamp is not
# written, so the next install or upgrade tries again, and the exit status is 1
# (rpm reports the scriptlet failure).
#
# --status prints "unchanged" or "changed" and changes nothing.
set -u

moddir=/usr/lib/dracut/modules.d/90transactional-livepatch
stamp=/boot/.transactional-livepatch-dracut-module.sha256
suse_posttrans=/usr/lib/module-init-tools/regenerate-initrd-posttrans

say() { echo "transactional-livepatch: $*"; }

module_sum() {
	(cd "$moddir" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum) |
		sha256sum | cut -d ' ' -f 1
}

[ -d "$moddir" ] || exit 0
new=$(module_sum) || {
	say "cannot checksum $moddir" >&2
	exit 1
}
old=$(cat "$stamp" 2>/dev/null) || old=""

if [ "${1:-}" = --status ]; then
	if [ "$new" = "$old" ]; then echo unchanged; else echo changed; fi
	exit 0
fi

if [ "$new" = "$old" ]; then
	say "dracut module unchanged; the initrds are left as they are"
	exit 0
fi

# The same test as SUSE's regenerate-initrd-posttrans: a build root or an
# image being assembled has no usable /etc/fstab yet.
if [ ! -f /etc/fstab ] || [ -e /.buildenv ]; then
	say "dracut module changed, but this is not a complete system: initrds not regenerated"
	exit 0
fi

say "dracut module changed: regenerating the initrds"
if [ -x "$suse_posttrans" ]; then
	if ! { mkdir -p /run/regenerate-initrd && : >/run/regenerate-initrd/all && "$suse_posttrans"; }; then
		say "regenerating the initrds failed; run 'dracut -f --regenerate-all'" >&2
		exit 1
	fi
else
	if ! command -v dracut >/dev/null 2>&1; then
		say "dracut is not installed: initrds not regenerated"
		exit 0
	fi
	seen=" "
	failed=0
	for dir in /lib/modules/* /usr/lib/modules/*; do
		[ -d "$dir" ] || continue
		kver=${dir##*/}
		case $seen in *" $kver "*) continue ;; esac
		seen="$seen$kver "
		for initrd in "/boot/initrd-$kver" "/boot/initrd.img-$kver"; do
			[ -f "$initrd" ] || continue
			if dracut --force --quiet "$initrd" "$kver"; then
				say "rebuilt $initrd"
			else
				say "dracut failed for $initrd" >&2
				failed=1
			fi
		done
	done
	[ "$failed" = 0 ] || exit 1
fi

if ! { printf '%s\n' "$new" >"$stamp.new" && mv -f "$stamp.new" "$stamp"; }; then
	say "cannot write $stamp" >&2
	exit 1
fi
exit 0
