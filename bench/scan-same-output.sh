#!/usr/bin/env bash
# Two lenscap builds scan the same machine state and must print the same
# report (docs/benchmarks.md, "Issue 11 … Scan"): a speed change to the
# one-shot scan is only a speed change if this prints IDENTICAL.
#
#   bench/scan-same-output.sh BEFORE AFTER     (root: runs in its own network namespace)
#
# In a fresh network namespace (`unshare -n`) only this script's listeners
# are in the socket table: ten plain helpers, one sharing its socket with a
# forked child, one whose parent has exited (the child holds the socket
# alone), an IPv6 one, and two processes holding a stand-in camera device.
# Reports are compared byte for byte after zeroing `since_unix_us` (a camera
# session's start is "now" in a one-shot scan).
set -euo pipefail
if [ "${1:-}" = "--inside" ]; then
    shift
    before=$1 after=$2 helper=$3
    work=$(mktemp -d /tmp/lenscap-same.XXXXXX)
    ip link set lo up
    pids=()
    # Every process in this private network namespace is this script's,
    # including the helpers' forked children, which outlive their parents
    # (the orphan case does so on purpose) and are nobody's child here.
    # shellcheck disable=SC2317 # run by the EXIT trap
    cleanup() {
        kill "${pids[@]}" 2>/dev/null || true
        local me p
        me=$(readlink /proc/$$/ns/net)
        for p in /proc/[0-9]*; do
            [ "${p#/proc/}" = "$$" ] && continue
            if [ "$(readlink "$p/ns/net" 2>/dev/null)" = "$me" ]; then kill "${p#/proc/}" 2>/dev/null || true; fi
        done
        rm -rf "$work"
    }
    trap cleanup EXIT
    touch "$work/video0" "$work/video1"
    for i in $(seq 10); do "$helper" --port-file "$work/p$i" >/dev/null 2>&1 & pids+=($!); done
    "$helper" --share-with-child --port-file "$work/share" >/dev/null 2>&1 & pids+=($!)
    "$helper" --camera "$work/video0" --port-file "$work/cam" >/dev/null 2>&1 & pids+=($!)
    "$helper" --bind '[::1]:0' --port-file "$work/v6" >/dev/null 2>&1 & pids+=($!)
    "$helper" --share-with-child --port-file "$work/orphan" >/dev/null 2>&1 & orphan=$!
    sleep 3600 7<"$work/video1" & pids+=($!)
    for f in p1 p10 share cam v6 orphan; do until [ -s "$work/$f" ]; do sleep 0.02; done; done
    sleep 0.3; kill "$orphan"; sleep 0.2
    cat >"$work/config.plist" <<PLIST
<?xml version="1.0" encoding="UTF-8"?>
<plist version="1.0"><dict>
<key>PersistenceDirs</key><array><string>$work/none</string></array>
<key>ApplicationDirs</key><array><string>$work/none</string></array>
<key>LoginItems</key><false/>
<key>StateDir</key><string>$work/state</string>
<key>CameraDevices</key><array><string>$work/video*</string></array>
</dict></plist>
PLIST
    run() { "$1" scan --json --no-probe --config "$work/config.plist" |
        sed -E 's/"since_unix_us": [0-9]+/"since_unix_us": 0/' >"$2"; }
    run "$before" "$work/before.json"
    run "$after" "$work/after.json"
    run "$before" "$work/before2.json"
    cmp -s "$work/before.json" "$work/before2.json" ||
        { echo "the machine changed between scans; run again" >&2; exit 2; }
    if cmp -s "$work/before.json" "$work/after.json"; then
        echo "IDENTICAL ($(grep -c '"kind": "listener"' "$work/after.json") listener findings, $(grep -c '"device"' "$work/after.json") camera sessions)"
    else
        echo DIFFERENT; diff "$work/before.json" "$work/after.json" | head -60; exit 1
    fi
    exit 0
fi
cd "$(dirname "$0")/.."
[ $# -eq 2 ] || { echo "usage: $0 BEFORE AFTER" >&2; exit 64; }
cargo build --release -q -p lenscap-e2e --bin rogue-helper
exec unshare -n "$0" --inside "$(realpath "$1")" "$(realpath "$2")" "$PWD/target/release/rogue-helper"
