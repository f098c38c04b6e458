#!/usr/bin/env bash
# Regenerate agent/link-order.txt: the functions an idle `lenscap run`
# executes, in the order the linker should place them (agent/build.rs
# passes the file to lld as --symbol-ordering-file).
#
#   bench/link-order.sh [SECS]      (default 90: seconds per daemon run)
#   bench/link-order.sh --check BIN (how many of the file's names BIN has)
#
# Why: the kernel maps a file's pages 64 KB around each fault
# (fault_around_bytes), so the daemon's resident code is every 64 KB
# window that start-up and the idle loop touch, not the code they run.
# Scattered over the 10 MB of text, the ~2 MB that runs kept 6.8 MB
# resident; placed together it keeps about 3 (docs/benchmarks.md,
# "Link order").
#
# How: two release daemons run under valgrind's callgrind (which names
# every function executed), each in a network namespace of its own with
# 12 idle listeners, on a temporary tree:
#   1. idle: start-up and the sweeps of a quiet machine;
#   2. a helper from a temp folder starts listening after a while, and the
#      daemon stops it, moves it to quarantine and reports it.
# The file lists run 1's functions, then those only run 2 executed, so
# code that only a remediation runs sits after the idle code instead of
# among it. Symbol names carry hashes that change with the toolchain,
# dependency versions and features, so regenerate after any of those;
# the names that no longer exist are skipped by the linker and the
# script says how many of the file's names the new binary still has.
#
# Run as root (the daemon runs as root; everything stays in a temporary
# directory and its own network namespace). Needs valgrind and iproute2.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = --check ]; then
    # The names are exact symbols, hashes included: a build whose hashes
    # differ (another toolchain, other features) keeps few of them.
    total=$(grep -vc '^#' agent/link-order.txt)
    kept=$(nm --defined-only "$2" | awk '{ print $NF }' | sort -u |
        comm -12 - <(grep -v '^#' agent/link-order.txt | sort -u) | wc -l)
    echo "$2 has $kept of the $total functions in agent/link-order.txt"
    exit 0
fi
# shellcheck source=bench/daemon-tree.sh
. bench/daemon-tree.sh
secs=${1:-90}
for tool in valgrind ip nm; do
    command -v "$tool" >/dev/null || { echo "needs $tool (apt-get install valgrind iproute2 binutils)" >&2; exit 1; }
done
cargo build --release -q -p lenscap --bin lenscap
cargo build --release -q -p lenscap-e2e --bin rogue-helper
bin=$(realpath target/release/lenscap)

work=$(mktemp -d /tmp/lenscap-order.XXXXXX)
holder=""
ns=lenscap-order-$$
cleanup() {
    pkill -TERM -f "callgrind-out-file=$work" 2>/dev/null || true
    if [ -n "$holder" ]; then kill "$holder" 2>/dev/null || true; fi
    pkill -f "$work/tmp/helper" 2>/dev/null || true
    ip netns del "$ns" 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
netns_with_listeners "$ns" 12
holder=$!

# One daemon run under callgrind; $2 = "helper" starts a hidden helper
# after a third of the time.
run() {
    local name=$1 what=$2 w="$work/$1"
    daemon_tree "$w"
    ip netns exec "$ns" valgrind --tool=callgrind --dump-instr=no --compress-strings=no \
        --demangle=no --callgrind-out-file="$work/$name.out" \
        "$bin" run --config "$w/config.plist" >"$w/log" 2>&1 &
    local daemon=$!
    if [ "$what" = helper ]; then
        sleep $((secs / 3))
        cp target/release/rogue-helper "$work/tmp/helper"
        # Orphaned at once, as a launchd job's process is launchd's child:
        # a helper whose parent is this shell is a program someone ran,
        # which lenscap reports but does not remove.
        (ip netns exec "$ns" "$work/tmp/helper" --port-file "$w/port" >/dev/null 2>&1 &)
        sleep $((secs - secs / 3))
    else
        sleep "$secs"
    fi
    kill -TERM "$daemon"
    wait "$daemon" || true
    if [ "$what" = helper ] && ! grep -q "lenscap removed a hidden helper" "$w/log"; then
        echo "note: run '$name' shows no remediation in its log; its extra code is not in the order" >&2
    fi
}
mkdir -p "$work/tmp"
run idle idle
run remediate helper

python3 - "$bin" "$work/idle.out" "$work/remediate.out" >agent/link-order.txt <<'PY'
import re, subprocess, sys
binary, outs = sys.argv[1], sys.argv[2:]
defined = set()
for line in subprocess.run(["nm", "--defined-only", binary], capture_output=True, text=True).stdout.splitlines():
    parts = line.split()
    if len(parts) == 3 and parts[1] in "tTwW":
        defined.add(parts[2])
seen, order = set(), []
for out in outs:
    ob = None
    for line in open(out, errors="replace"):
        if line.startswith("ob="):
            ob = line[3:].strip()
        elif line.startswith("fn=") and ob == binary:
            name = line[3:].strip()
            if name in defined and name not in seen:
                seen.add(name)
                order.append(name)
print("# The functions an idle `lenscap run` executes, then those a remediation")
print("# adds: lld places them first and together (agent/build.rs). Generated by")
print("# bench/link-order.sh; regenerate after a toolchain, dependency or feature")
print("# change (names carry hashes). A name the binary lacks is skipped.")
print("\n".join(order))
print(f"{len(order)} functions", file=sys.stderr)
PY
echo "wrote agent/link-order.txt; relink with: cargo build --release -p lenscap"
