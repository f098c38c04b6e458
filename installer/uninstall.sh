#!/bin/bash
# Remove lenscap from this Mac: stop the daemon, delete its files, forget
# the package receipt. The state dir is kept unless --purge is given,
# because it holds the quarantine: files lenscap moved away that someone
# may still want back (see docs/install.md, "Restoring quarantined files").
#
#   sudo /usr/local/share/lenscap/uninstall.sh [--purge]
#
# If an MDM deployed lenscap, remove it through the MDM instead: the MDM
# would reinstall the pkg, and its profiles stay until the MDM removes them.
#
# Environment (for tests; the defaults are the real system):
#   LENSCAP_ROOT  prefix for every path         (default "")
#   LAUNCHCTL     launchctl to call             (default /bin/launchctl)
#   PKGUTIL       pkgutil to call               (default /usr/sbin/pkgutil)
set -u

LABEL="io.lenscap.agent"
ROOT="${LENSCAP_ROOT:-}"
LAUNCHCTL="${LAUNCHCTL:-/bin/launchctl}"
PKGUTIL="${PKGUTIL:-/usr/sbin/pkgutil}"

PLIST="$ROOT/Library/LaunchDaemons/$LABEL.plist"
BINARY="$ROOT/usr/local/bin/lenscap"
SHARE_DIR="$ROOT/usr/local/share/lenscap"
LOG_DIR="$ROOT/Library/Logs/lenscap"
STATE_DIR="$ROOT/Library/Application Support/lenscap"

usage() {
	printf 'usage: sudo %s [--purge]\n' "$0"
	printf '  --purge  also delete %s (the quarantine, journal and outbox)\n' "$STATE_DIR"
}

purge=0
for arg in "$@"; do
	case "$arg" in
	--purge) purge=1 ;;
	-h | --help)
		usage
		exit 0
		;;
	*)
		printf 'lenscap uninstall: unknown argument: %s\n' "$arg" >&2
		usage >&2
		exit 2
		;;
	esac
done

# A test root needs no privileges; the real system does.
if [ -z "$ROOT" ] && [ "$(id -u)" -ne 0 ]; then
	printf 'lenscap uninstall: run as root: sudo %s\n' "$0" >&2
	exit 1
fi

say() { printf 'lenscap uninstall: %s\n' "$*"; }
failed=0

out="$("$LAUNCHCTL" bootout "system/$LABEL" 2>&1)"
rc=$?
case "$rc" in
0) say "stopped system/$LABEL" ;;
3 | 113) say "system/$LABEL was not running" ;;
*)
	say "warning: launchctl bootout system/$LABEL exited $rc: $out"
	failed=1
	;;
esac

remove() {
	if [ -e "$1" ] || [ -L "$1" ]; then
		if rm -rf "$1"; then
			say "removed $1"
		else
			say "warning: could not remove $1"
			failed=1
		fi
	else
		say "already gone: $1"
	fi
}

remove "$PLIST"
remove "$BINARY"
remove "$LOG_DIR"
remove "$SHARE_DIR"

if "$PKGUTIL" --pkg-info "$LABEL" >/dev/null 2>&1; then
	if "$PKGUTIL" --forget "$LABEL" >/dev/null; then
		say "forgot package receipt $LABEL"
	else
		say "warning: pkgutil --forget $LABEL failed"
		failed=1
	fi
else
	say "no package receipt $LABEL"
fi

if [ "$purge" -eq 1 ]; then
	remove "$STATE_DIR"
elif [ -d "$STATE_DIR" ]; then
	say "kept $STATE_DIR (quarantined files, journal, outbox); run again with --purge to delete it"
fi

if [ "$failed" -ne 0 ]; then
	say "finished with warnings (see above)"
	exit 1
fi
say "done"
