#!/usr/bin/env bash
# Idle cost of two lenscap builds side by side (docs/benchmarks.md,
# "Probing beside the sweep"): both daemons run at the same time on the same
# machine, so a change in its load falls on both alike. Each gets its own
# temporary tree (remediate mode, shipping SweepSeconds 2, no persistence,
# no login items); after WARM seconds, CPU (utime + stime), sweeps and RSS
# are measured over SECS.
#
#   bench/idle-ab.sh BIN_A BIN_B [SECS] [WARM]      (defaults 300 10)
#
# e.g. with the build of another commit copied aside:
#   git worktree add /tmp/old 8397703 && (cd /tmp/old && cargo build --release -p lenscap)
#   bench/idle-ab.sh target/release/lenscap /tmp/old/target/release/lenscap 300 330
#
# AB_CAMERA=1 gives each daemon a camera device (a file standing in for
# /dev/video0, CameraDevices pointing at it) that nobody opens: the cost
# of watching a camera that is present. AB_PLIST adds raw plist lines to
# both configs (e.g. '<key>SweepSeconds</key><real>0.5</real>'), AB_PLIST_A
# and AB_PLIST_B to one only (an older build may refuse a newer value).
#
# AB_NETNS=N runs each daemon in a network namespace of its own with N
# listening sockets in it (held by a small python3 process): its sock_diag
# dumps then see only those, so sockets other programs on the machine open
# and close (tests, compilers' servers) do not make it walk. That measures
# a quiet machine's sweep on a busy one. The /proc walks still see every
# process (the pid namespace is shared).
#
# CPU is reported twice: utime + stime from /proc/PID/stat (clock ticks,
# every thread that ever ran) and the sum of /proc/PID/task/*/schedstat
# (nanoseconds, threads alive at both ends).
#
# Linux only (/proc). Run as root, like the daemon.
set -euo pipefail
# shellcheck source=bench/daemon-tree.sh
. "$(dirname "$0")/daemon-tree.sh"
a=$1; b=$2; secs=${3:-300}; warm=${4:-10}
hz=$(getconf CLK_TCK)
start() {
    local bin=$1 own=${2:-} w; w=$(mktemp -d /tmp/lenscap-ab.XXXXXX)
    local extra="${AB_PLIST:-}$own"
    if [ "${AB_CAMERA:-0}" = 1 ]; then
        mkdir -p "$w/dev" && : >"$w/dev/video0"
        extra="$extra<key>CameraDevices</key><array><string>$w/dev/video*</string></array>"
    fi
    daemon_tree "$w" "$extra"
    if [ -n "${AB_NETNS:-}" ]; then
        local ns; ns=lenscap-ab-$(basename "$w")
        netns_with_listeners "$ns" "$AB_NETNS"
        echo "$!" >"$w/holder.pid"
        echo "$ns" >"$w/netns"
        ip netns exec "$ns" "$bin" run --config "$w/config.plist" >"$w/log" 2>&1 &
    else
        "$bin" run --config "$w/config.plist" >"$w/log" 2>&1 &
    fi
    echo "$! $w"
}
stop() {
    local w=$1
    if [ -f "$w/holder.pid" ]; then kill "$(cat "$w/holder.pid")" 2>/dev/null || true; fi
    if [ -f "$w/netns" ]; then ip netns del "$(cat "$w/netns")" 2>/dev/null || true; fi
    rm -rf "$w"
}
read -r pa wa < <(start "$a" "${AB_PLIST_A:-}"); read -r pb wb < <(start "$b" "${AB_PLIST_B:-}")
trap 'kill $pa $pb 2>/dev/null; wait $pa $pb 2>/dev/null || true; stop "$wa"; stop "$wb"' EXIT
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
sleep "$warm"
ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
nanos() { cat /proc/$1/task/*/schedstat | awk '{n+=$1} END {print n}'; }
sweeps() { grep -o '"sweeps": *[0-9]*' "$1/state/status.json" | grep -o '[0-9]*$'; }
ta=$(ticks $pa); tb=$(ticks $pb); sa=$(sweeps $wa); sb=$(sweeps $wb); na=$(nanos $pa); nb=$(nanos $pb)
sleep "$secs"
for x in "A $a $pa $wa $ta $sa $na" "B $b $pb $wb $tb $sb $nb"; do
    set -- $x
    t=$(( $(ticks $3) - $5 )); s=$(( $(sweeps $4) - $6 )); ns=$(( $(nanos $3) - $7 ))
    rss=$(awk '/VmRSS/{print $2}' /proc/$3/status)
    threads=$(awk '/Threads/{print $2}' /proc/$3/status)
    awk -v n="$1" -v bin="$2" -v t="$t" -v s="$s" -v hz="$hz" -v secs="$secs" -v rss="$rss" \
        -v ns="$ns" -v th="$threads" 'BEGIN {
        printf "%s %s: cpu=%.2fs (%.3f%% of one core) sweeps=%d (%.2f ms/sweep) rss=%.1fMB\n",
            n, bin, t/hz, 100*t/hz/secs, s, 1000*t/hz/(s>0?s:1), rss/1024
        printf "  schedstat: %.3fs (%.4f%% of one core, %.3f ms/sweep), threads=%d\n",
            ns/1e9, 100*ns/1e9/secs, ns/1e6/(s>0?s:1), th }'
done
echo "load: $(cut -d' ' -f1-3 /proc/loadavg); listening TCP sockets: $(ss -ltnH | wc -l)"
