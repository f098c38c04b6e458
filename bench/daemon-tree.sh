# shellcheck shell=bash
# Sourced by the bench scripts that run `lenscap run` on a temporary tree
# (bench/idle-ab.sh, bench/link-order.sh): one place for the tree's layout
# and for a network namespace of the daemon's own.

# daemon_tree DIR [EXTRA]: a tree under DIR and DIR/config.plist for a
# remediating daemon that reads persistence and applications only there,
# skips login items and keeps its state in DIR/state. EXTRA: raw plist
# lines added to the dict.
daemon_tree() {
    local w=$1 extra=${2:-}
    mkdir -p "$w/Users/ann/Library/LaunchAgents" "$w/Applications" "$w/private/tmp"
    cat >"$w/config.plist" <<PLIST
<?xml version="1.0" encoding="UTF-8"?>
<plist version="1.0"><dict>
<key>Mode</key><string>remediate</string>
<key>PersistenceDirs</key><array><string>$w/Users/*/Library/LaunchAgents</string></array>
<key>ApplicationDirs</key><array><string>$w/Applications</string></array>
<key>StateDir</key><string>$w/state</string>
<key>LoginItems</key><false/>
$extra
</dict></plist>
PLIST
}

# netns_with_listeners NS N: a new network namespace NS (loopback up) with
# N idle listening sockets held by a python3 process started in the
# background, so a daemon run in NS sees only those: sockets other programs
# open and close do not make it walk. The holder is the caller's last
# background job (`$!`).
netns_with_listeners() {
    local ns=$1 n=$2
    ip netns add "$ns"
    ip -n "$ns" link set lo up
    ip netns exec "$ns" python3 -c '
import signal, socket, sys
held = []
for i in range(int(sys.argv[1])):
    s = socket.socket(socket.AF_INET6 if i % 2 else socket.AF_INET)
    s.bind(("::1" if i % 2 else "127.0.0.1", 0)); s.listen(); held.append(s)
signal.pause()' "$n" >/dev/null 2>&1 &
}
