#!/usr/bin/env bash
# Listener inventory benchmark: `lenscap scan --json --no-probe` against
# `ss -ltnp` and `lsof -nP -iTCP -sTCP:LISTEN` in the same run, on a machine
# loaded with extra processes and listening sockets. Prints medians and the
# ratios recorded in docs/benchmarks.md.
#
#   bench/listeners.sh [RUNS] [EXTRA_PROCS] [EXTRA_LISTENERS]   (defaults 50 300 50)
#
# Needs: ss (iproute2), lsof. Run as root to let every tool see every owner.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-50}
procs=${2:-300}
listeners=${3:-50}

for tool in ss lsof; do
    command -v "$tool" >/dev/null || { echo "needs $tool (apt-get install iproute2 lsof)" >&2; exit 1; }
done

cargo build --release -q -p lenscap --bin lenscap
cargo build --release -q -p lenscap-e2e --bin rogue-helper
lenscap=target/release/lenscap
helper=target/release/rogue-helper

work=$(mktemp -d /tmp/lenscap-bench.XXXXXX)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

# Extra load: sleeping processes and listening helpers.
for _ in $(seq "$procs"); do sleep 3600 & pids+=($!); done
for i in $(seq "$listeners"); do
    "$helper" --port-file "$work/port$i" >/dev/null 2>&1 & pids+=($!)
done
for i in $(seq "$listeners"); do
    until [ -s "$work/port$i" ]; do sleep 0.01; done
done
# A config that reads no persistence and skips login items, so the
# measurement is the listener inventory (sockets → owners with identity).
cat >"$work/config.plist" <<PLIST
<?xml version="1.0" encoding="UTF-8"?>
<plist version="1.0"><dict>
<key>PersistenceDirs</key><array><string>$work/none</string></array>
<key>ApplicationDirs</key><array><string>$work/none</string></array>
<key>LoginItems</key><false/>
<key>StateDir</key><string>$work/state</string>
</dict></plist>
PLIST

median_ms() { # runs a command $runs times, prints the median wall time in ms
    local times=() t0 t1
    for _ in $(seq "$runs"); do
        t0=$(date +%s%N); "$@" >/dev/null 2>&1 || true; t1=$(date +%s%N)
        times+=($(( (t1 - t0) / 1000 )))
    done
    printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {m=a[int((NR+1)/2)]; printf "%.2f", m/1000}'
}

nproc_now=$(ls -d /proc/[0-9]* | wc -l)
nsock=$(ss -ltnH | wc -l)
echo "processes: $nproc_now, listening TCP sockets: $nsock, runs: $runs"
l=$(median_ms "$lenscap" scan --json --no-probe --config "$work/config.plist")
s=$(median_ms ss -ltnp)
o=$(median_ms lsof -nP -iTCP -sTCP:LISTEN)
full=$(median_ms "$lenscap" scan --json --config "$work/config.plist")
echo "lenscap scan --json --no-probe : $l ms"
echo "ss -ltnp                       : $s ms"
echo "lsof -nP -iTCP -sTCP:LISTEN    : $o ms"
echo "lenscap scan --json (probing)  : $full ms"
awk -v l="$l" -v s="$s" -v o="$o" 'BEGIN {printf "ratio vs ss: %.2f×   ratio vs lsof: %.2f×\n", l/s, l/o}'
