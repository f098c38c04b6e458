#!/bin/bash
# lenscap end to end on a real Mac: what the Linux suite proves against
# stand-ins (tests/tests/daemon/remediate.rs), done here with the real
# launchd, libproc, codesign and Installer.
#
#   sudo tests/macos/e2e.sh [--pkg dist/lenscap-X.pkg] [--user NAME] [--force]
#
# Steps (each prints what it saw; docs/macos-first-run.md explains how to
# read the output):
#   1. build the pkg (installer/build-pkg.sh) unless --pkg names one;
#   2. install it with `installer` and check launchd runs the daemon;
#   3. compile tests/macos/helper.c with cc into a hidden folder of the
#      logged-in user (~/.lenscap-e2e/helper) and bootstrap it as a
#      KeepAlive LaunchAgent in that user's gui domain;
#   4. run the installed lenscap in remediate mode (own config and state
#      dir) and check: the job is booted out, the process is gone, the
#      plist and folder are quarantined with owner and mode recorded;
#   5. `lenscap quarantine restore`: every file back byte for byte with
#      its owner and mode; then the plist re-created and loaded is removed
#      again;
#   6. `lenscap scan --json` with a ZoomOpener (built-in catalog) running
#      from ~/.zoomus: flagged `remediate` by catalog:zoomopener;
#   7. uninstall.sh --purge leaves nothing behind.
#
# Safety: remediate mode acts on the whole machine. Before the helper
# exists, a scan must find nothing to remediate, or the script stops
# (unless --force): on a throwaway CI Mac that is true; on your own Mac,
# read what it lists first.
#
# Exit status: 0 every check passed, 1 a check failed, 2 usage or
# preconditions (not macOS, not root, no logged-in user).
set -u

LABEL="io.lenscap.agent"
HELPER_LABEL="io.lenscap.e2e.helper"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
BIN=/usr/local/bin/lenscap
WAIT=90 # seconds any one expectation may take (bootout waits up to ExitTimeOut)

pkg=""
user=""
force=0
while [ $# -gt 0 ]; do
	case "$1" in
	--pkg)
		pkg="${2:-}"
		shift 2 || exit 2
		;;
	--user)
		user="${2:-}"
		shift 2 || exit 2
		;;
	--force)
		force=1
		shift
		;;
	-h | --help)
		sed -n 2,30p "$0"
		exit 0
		;;
	*)
		printf 'e2e: unknown argument %s\n' "$1" >&2
		exit 2
		;;
	esac
done

passed=0
failed=0
failures=()
step() { printf '\n== %s\n' "$*"; }
saw() { printf '   saw: %s\n' "$*"; }
pass() {
	passed=$((passed + 1))
	printf '   PASS %s\n' "$*"
}
fail() {
	failed=$((failed + 1))
	failures+=("$*")
	printf '   FAIL %s\n' "$*"
}
check() { # check "what" command...: PASS when the command succeeds
	local what="$1"
	shift
	if "$@"; then pass "$what"; else fail "$what"; fi
}
# Poll `cmd` once a second until it succeeds or $WAIT seconds pass.
eventually() {
	local what="$1" i=0
	shift
	while [ "$i" -lt "$WAIT" ]; do
		if "$@"; then
			pass "$what (after ${i}s)"
			return 0
		fi
		sleep 1
		i=$((i + 1))
	done
	fail "$what (not within ${WAIT}s)"
	return 1
}
precondition() {
	printf 'e2e: %s\n' "$*" >&2
	exit 2
}

[ "$(uname -s)" = Darwin ] || precondition "this runs on macOS only (this is $(uname -s)); on Linux run cargo test"
[ "$(id -u)" -eq 0 ] || precondition "run it as root: sudo $0 $*"
if [ -z "$user" ]; then
	user="$(stat -f %Su /dev/console)"
	case "$user" in root | loginwindow | "") user="${SUDO_USER:-}" ;; esac
fi
if [ -z "$user" ] || [ "$user" = root ]; then
	precondition "nobody is logged in at the console; pass --user NAME"
fi
uid="$(id -u "$user")" || precondition "no such user $user"
home="$(dscl . -read "/Users/$user" NFSHomeDirectory | awk '{print $2}')"
[ -d "$home" ] || precondition "home of $user ($home) does not exist"
printf 'e2e: macOS %s (%s), user %s (uid %s, home %s)\n' \
	"$(sw_vers -productVersion)" "$(uname -m)" "$user" "$uid" "$home"

work="$(mktemp -d /private/tmp/lenscap-e2e.XXXXXX)"
chmod 755 "$work"
hidden="$home/.lenscap-e2e"
helper="$hidden/helper"
agents="$home/Library/LaunchAgents"
plist="$agents/$HELPER_LABEL.plist"
port=$((19000 + RANDOM % 900))
zoom_dir="$home/.zoomus"
daemon_pid=""
zoom_pid=""

cleanup() {
	[ -n "$daemon_pid" ] && kill "$daemon_pid" 2>/dev/null
	[ -n "$zoom_pid" ] && kill "$zoom_pid" 2>/dev/null
	launchctl bootout "gui/$uid/$HELPER_LABEL" >/dev/null 2>&1
	rm -rf "$hidden" "$plist" "$zoom_dir/ZoomOpener.app"
	rmdir "$zoom_dir" 2>/dev/null
	printf '\ne2e: work files (config, state, logs) kept in %s\n' "$work"
}
trap cleanup EXIT

# Owner, group, mode and sha256 of a file: one comparable line.
facts() {
	if [ -e "$1" ]; then
		printf '%s %s\n' "$(stat -f '%u:%g %Lp' "$1")" "$(shasum -a 256 <"$1" | cut -c1-64)"
	else
		echo absent
	fi
}
# A value from JSON by plutil key path (plutil reads JSON too).
json() { plutil -extract "$2" raw -o - "$1" 2>/dev/null; }
write_config() { # write_config FILE MODE
	cat >"$1" <<PLIST
<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0"><dict>
	<key>Mode</key><string>$2</string>
	<key>SweepSeconds</key><integer>2</integer>
	<key>StateDir</key><string>$work/state-$2</string>
	<key>PlaceholderBlock</key><true/>
</dict></plist>
PLIST
}
helper_plist() {
	cat <<PLIST
<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0"><dict>
	<key>Label</key><string>$HELPER_LABEL</string>
	<key>ProgramArguments</key><array><string>$helper</string><string>$port</string></array>
	<key>RunAtLoad</key><true/>
	<key>KeepAlive</key><true/>
</dict></plist>
PLIST
}
job_loaded() { launchctl print "gui/$uid/$HELPER_LABEL" >/dev/null 2>&1; }
job_pid() { launchctl print "gui/$uid/$HELPER_LABEL" 2>/dev/null | awk -F' = ' '/^\tpid = /{print $2}'; }
listening() { lsof -nP -iTCP:"$port" -sTCP:LISTEN >/dev/null 2>&1; }
alive() { kill -0 "$1" 2>/dev/null; }
daemon_loaded() { launchctl print "system/$LABEL" >/dev/null 2>&1; }
has_receipt() { pkgutil --pkg-info "$LABEL" >/dev/null 2>&1; }
not() { ! "$@"; }

# 1. Build ---------------------------------------------------------------
step "1. build the pkg"
if [ -z "$pkg" ]; then
	# Built as the invoking user when there is one: cargo's caches are theirs.
	if [ -n "${SUDO_USER:-}" ]; then
		sudo -u "$SUDO_USER" "$repo/installer/build-pkg.sh" || precondition "build-pkg.sh failed"
	else
		"$repo/installer/build-pkg.sh" || precondition "build-pkg.sh failed"
	fi
	for built in "$repo"/dist/lenscap-*.pkg; do pkg="$built"; done
fi
[ -f "$pkg" ] || precondition "no pkg at $pkg"
saw "$pkg ($(stat -f %z "$pkg") bytes)"

# 2. Install -------------------------------------------------------------
step "2. install with installer(8)"
installer -pkg "$pkg" -target / 2>&1 | sed 's/^/   installer: /'
check "the binary is installed root:wheel 755" test "$(stat -f '%Su:%Sg %Lp' "$BIN" 2>/dev/null)" = "root:wheel 755"
check "the daemon plist is root:wheel 644" test "$(stat -f '%Su:%Sg %Lp' "/Library/LaunchDaemons/$LABEL.plist" 2>/dev/null)" = "root:wheel 644"
printed="$(launchctl print "system/$LABEL" 2>&1)"
printf '%s\n' "$printed" | grep -E '^	(state|pid|program|last exit code) = ' | sed 's/^\t/   launchctl print: /'
check "launchd runs system/$LABEL" grep -q '^	state = running' <<<"$printed"
saw "codesign of the binary: $(codesign -dv "$BIN" 2>&1 | grep -E '^(Identifier|TeamIdentifier|Signature)=' | tr '\n' ' ')"

write_config "$work/monitor.plist" monitor
write_config "$work/remediate.plist" remediate
saw "lenscap config show: $("$BIN" config show --config "$work/remediate.plist" 2>&1 | grep -i -E 'mode|statedir' | tr '\n' ' ')"

# Safety gate: nothing on this Mac may already be up for remediation.
"$BIN" scan --json --no-probe --config "$work/monitor.plist" >"$work/scan-before.json" 2>"$work/scan-before.err"
rc=$?
saw "scan before the helper exists: exit $rc, $(grep -o '"verdict": *"remediate"' "$work/scan-before.json" | wc -l | tr -d ' ') remediate finding(s)"
if [ "$rc" -eq 3 ] && [ "$force" -eq 0 ]; then
	printf '   this Mac already has findings lenscap would remediate (see %s); refusing to run remediate mode. --force to go on anyway.\n' "$work/scan-before.json"
	exit 2
fi
check "scan runs (exit 0 or 3)" test "$rc" -eq 0 -o "$rc" -eq 3

# 3. The helper ------------------------------------------------------------
step "3. a helper web server in a hidden folder, as a KeepAlive LaunchAgent of $user"
mkdir -p "$hidden" "$agents"
cc -O2 -o "$helper" "$here/helper.c" || precondition "cc failed (xcode-select --install)"
helper_plist >"$plist"
chown -R "$user" "$hidden"
chown "$user" "$plist"
chmod 644 "$plist"
before_plist="$(facts "$plist")"
before_helper="$(facts "$helper")"
before_dir="$(stat -f '%u:%g %Lp' "$hidden")"
saw "plist $before_plist; helper $before_helper; folder $before_dir"
launchctl bootstrap "gui/$uid" "$plist" 2>&1 | sed 's/^/   launchctl bootstrap: /'
eventually "the helper listens on 127.0.0.1:$port" listening
helper_pid="$(job_pid)"
[ -n "$helper_pid" ] || fail "launchctl print shows no pid for the helper"
saw "launchd job pid ${helper_pid:-none}; $(curl -s -o /dev/null -w 'GET / -> %{http_code} %{content_type}' "http://127.0.0.1:$port/")"

# 4. Remediate -------------------------------------------------------------
step "4. lenscap run in remediate mode"
"$BIN" run --config "$work/remediate.plist" >"$work/daemon.log" 2>&1 &
daemon_pid=$!
saw "lenscap run pid $daemon_pid, log $work/daemon.log"
eventually "the job is booted out of gui/$uid" not job_loaded
[ -n "$helper_pid" ] && eventually "the helper process $helper_pid is gone" not alive "$helper_pid"
eventually "nothing listens on $port any more" not listening
eventually "the plist was moved away" test ! -e "$plist"
saw "where the folder was: $(ls -ld "$hidden" 2>&1)"
"$BIN" quarantine list --json --config "$work/remediate.plist" >"$work/quarantine.json" 2>&1
saw "quarantine list: $(tr -d '\n' <"$work/quarantine.json" | cut -c1-400)"
id=""
plist_item=""
i=0
while [ -z "$id" ] && json "$work/quarantine.json" "$i.id" >/dev/null; do
	j=0
	while json "$work/quarantine.json" "$i.items.$j.original" >/dev/null; do
		if [ "$(json "$work/quarantine.json" "$i.items.$j.original")" = "$plist" ]; then
			id="$(json "$work/quarantine.json" "$i.id")"
			plist_item="$i.items.$j"
		fi
		j=$((j + 1))
	done
	i=$((i + 1))
done
check "a quarantine record holds the plist" test -n "$id"
if [ -n "$id" ]; then
	recorded="$(json "$work/quarantine.json" "$plist_item.uid"):$(json "$work/quarantine.json" "$plist_item.gid") $(printf '%o' "$(($(json "$work/quarantine.json" "$plist_item.mode") & 07777))")"
	saw "record $id: plist recorded as $recorded (was ${before_plist% *})"
	check "owner, group and mode recorded" test "$recorded" = "${before_plist% *}"
	check "sha256 recorded" test "$(json "$work/quarantine.json" "$plist_item.sha256")" = "${before_plist##* }"
fi
"$BIN" events --json --limit 20 --config "$work/remediate.plist" >"$work/events.json" 2>&1
saw "events: $(grep -o '"kind": *"[a-z_]*"' "$work/events.json" | sort | uniq -c | tr -s ' \n' ' ')"
saw "state dir: $(find "$work/state-remediate" -maxdepth 2 2>/dev/null | sed "s|$work/||" | tr '\n' ' ')"

# 5. Restore, then a re-created plist is removed again -------------------
step "5. quarantine restore, byte for byte"
if [ -n "$id" ]; then
	"$BIN" quarantine restore "$id" --config "$work/remediate.plist" 2>&1 | sed 's/^/   restore: /'
	check "plist back: owner, mode, bytes" test "$(facts "$plist")" = "$before_plist"
	check "helper back: owner, mode, bytes" test "$(facts "$helper")" = "$before_helper"
	check "folder back with its owner and mode" test "$(stat -f '%u:%g %Lp' "$hidden" 2>/dev/null)" = "$before_dir"
else
	fail "nothing to restore (no record)"
fi
step "5b. the helper comes back: removed again"
[ -e "$helper" ] || {
	mkdir -p "$hidden"
	cc -O2 -o "$helper" "$here/helper.c"
	chown -R "$user" "$hidden"
}
helper_plist >"$plist"
chown "$user" "$plist"
chmod 644 "$plist"
launchctl bootstrap "gui/$uid" "$plist" 2>&1 | sed 's/^/   launchctl bootstrap: /'
eventually "the re-created plist is removed again" test ! -e "$plist"
eventually "and its job is not loaded" not job_loaded
kill "$daemon_pid" 2>/dev/null
wait "$daemon_pid" 2>/dev/null
rc=$?
saw "lenscap run exited $rc on SIGTERM; last log lines:"
tail -n 15 "$work/daemon.log" | sed 's/^/   | /'
daemon_pid=""

# 6. Catalog ----------------------------------------------------------------
step "6. lenscap scan --json with ZoomOpener in ~/.zoomus"
zoom_bin="$zoom_dir/ZoomOpener.app/Contents/MacOS/ZoomOpener"
mkdir -p "$(dirname "$zoom_bin")"
cc -O2 -o "$zoom_bin" "$here/helper.c"
chown -R "$user" "$zoom_dir"
sudo -u "$user" "$zoom_bin" 19421 >/dev/null 2>&1 &
zoom_pid=$!
port=19421
eventually "ZoomOpener listens on 19421" listening
"$BIN" scan --json --config "$work/monitor.plist" >"$work/scan-zoom.json" 2>"$work/scan-zoom.err"
rc=$?
saw "scan exit $rc; findings naming catalog:zoomopener: $(grep -c 'catalog:zoomopener' "$work/scan-zoom.json")"
check "scan exits 3 (something to remediate)" test "$rc" -eq 3
check "ZoomOpener is flagged by catalog:zoomopener" grep -q '"rule": *"catalog:zoomopener"' "$work/scan-zoom.json"
kill "$zoom_pid" 2>/dev/null
zoom_pid=""

# 7. Uninstall ----------------------------------------------------------------
step "7. uninstall.sh --purge"
/usr/local/share/lenscap/uninstall.sh --purge 2>&1 | sed 's/^/   uninstall: /'
check "system/$LABEL is not loaded" not daemon_loaded
for path in "$BIN" "/Library/LaunchDaemons/$LABEL.plist" /usr/local/share/lenscap \
	"/Library/Application Support/lenscap" /Library/Logs/lenscap; do
	check "gone: $path" test ! -e "$path"
done
check "no package receipt" not has_receipt
leftover="$(pgrep -x lenscap || true)"
check "no lenscap process left" test -z "$leftover"

printf '\n== summary: %d passed, %d failed\n' "$passed" "$failed"
for f in "${failures[@]+"${failures[@]}"}"; do printf '   FAIL %s\n' "$f"; done
[ "$failed" -eq 0 ]
