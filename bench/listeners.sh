#!/usr/bin/env bash
# Listener inventory benchmark: `lenscap scan --json --no-probe` against
# `ss -ltnp` and `lsof -nP -iTCP -sTCP:LISTEN` in the same run, on a machine
# loaded with extra processes and listening sockets. Prints medians and the
# ratios recorded in docs/benchmarks.md.
#
#   bench/listeners.sh [RUNS] [EXTRA_PROCS] [EXTRA_LISTENERS]   (defaults 50 300 50)
#
# LENSCAP_B=/path/to/other/lenscap adds that build's scan to the same
# hyperfine run (e.g. the build of the commit before a change);
# LENSCAP_A=/path/to/lenscap measures that binary instead of building
# target/release/lenscap.
#
# The tools are timed in ROUNDS rounds (default 8) of RUNS/ROUNDS runs each,
# one hyperfine run per round, so the machine's drift falls on all alike.
#
# PERF_STAT=N also counts each tool's CPU time (task-clock) over N runs with
# `perf stat`, one tool after the other, which a busy machine disturbs less
# than wall time.
#
# Needs: ss (iproute2), lsof, hyperfine (installed from Debian's packages
# when missing). Run as root to let every tool see every owner.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-50}
procs=${2:-300}
listeners=${3:-50}

if ! command -v hyperfine >/dev/null && command -v apt-get >/dev/null; then
    apt-get update -qq && apt-get install -y -qq hyperfine iproute2 lsof >/dev/null
fi
for tool in ss lsof hyperfine; do
    command -v "$tool" >/dev/null || { echo "needs $tool (apt-get install iproute2 lsof hyperfine)" >&2; exit 1; }
done

[ -n "${LENSCAP_A:-}" ] || cargo build --release -q -p lenscap --bin lenscap
cargo build --release -q -p lenscap-e2e --bin rogue-helper
lenscap=${LENSCAP_A:-target/release/lenscap}
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

nproc_now=$(find /proc -maxdepth 1 -name '[0-9]*' | wc -l)
nsock=$(ss -ltnH | wc -l)
# Sockets in TIME_WAIT (a probing scan leaves one per probe for 60 s) make
# `ss -ltnp` and `lsof` slower while barely touching lenscap: measured with
# 9,500 of them, `ss -ltnp` took 17.6 ms against 8.6 ms without. Wait for
# the machine's to drain so an earlier run cannot flatter the ratio.
for _ in $(seq 90); do
    tw=$(ss -Htan state time-wait | wc -l)
    [ "$tw" -lt 200 ] && break
    sleep 1
done
echo "processes: $nproc_now, listening TCP sockets: $nsock, TIME_WAIT: $(ss -Htan state time-wait | wc -l), runs: $runs"
# -N: no intermediate shell, so each number is the tool alone.
echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"
# The commands compared, in the order the ratios below read them.
cmds=("$lenscap scan --json --no-probe --config $work/config.plist" "ss -ltnp" "lsof -nP -iTCP -sTCP:LISTEN")
if [ -n "${LENSCAP_B:-}" ]; then
    cmds+=("$LENSCAP_B scan --json --no-probe --config $work/config.plist")
fi
# In ROUNDS rounds of RUNS/ROUNDS runs of every tool (default 8), not one
# batch per tool: the machine drifts (one run measured `ss -ltnp` at 20
# ms, the next at 27), and a drift between batches would land on one tool
# only. Interleaved, it falls on every tool alike; medians are over all
# rounds' runs.
rounds=${ROUNDS:-8}
per=$(( (runs + rounds - 1) / rounds ))
hyperfine -N --warmup 5 --runs 2 "${cmds[@]}" >/dev/null
for r in $(seq "$rounds"); do
    hyperfine -N --runs "$per" --export-json "$work/round$r.json" "${cmds[@]}" >/dev/null
done
# Every run's time from hyperfine's JSON (jq-free: python3 is optional, so
# awk over the one-value-per-line "times" arrays hyperfine writes), as
# "<command index> <ms>", then each command's median.
awk '
    FNR == 1          { i = 0 }
    /"command":/      { i++ }
    /"times": \[/     { in_times = 1; next }
    in_times && /\]/  { in_times = 0 }
    in_times          { gsub(/[ ,]/, ""); print i, $0 * 1000 }' "$work"/round*.json >"$work/times"
medians=()
for i in $(seq "${#cmds[@]}"); do
    m=$(awk -v i="$i" '$1 == i { print $2 }' "$work/times" | sort -n |
        awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }')
    medians+=("$m")
    printf '%-60s median %7.2f ms (%d runs)\n' "${cmds[$((i - 1))]%% --config*}" "$m" \
        "$(awk -v i="$i" '$1 == i' "$work/times" | wc -l)"
done
awk -v a="${medians[0]}" -v s="${medians[1]}" -v l="${medians[2]}" \
    'BEGIN { printf "ratio lenscap/ss: %.2f×   lenscap/lsof: %.2f×\n", a / s, a / l }'
if [ -n "${PERF_STAT:-}" ] && command -v perf >/dev/null; then
    for c in "${cmds[@]}"; do
        # shellcheck disable=SC2086 # each entry is a command line
        ms=$(perf stat -x, -r "$PERF_STAT" -e task-clock $c 2>&1 >/dev/null | awk -F, '/task-clock/ { print $1 }')
        printf '%-60s CPU %7.2f ms\n' "${c%% --config*}" "$ms"
    done
fi
# The probing scan last, on its own: its probes leave TIME_WAIT sockets
# that would slow the tools above.
echo "lenscap scan --json (probing every listener):"
hyperfine -N --warmup 2 --runs "$(( runs < 20 ? runs : 20 ))" \
    "$lenscap scan --json --config $work/config.plist" 2>/dev/null | grep -E 'Time|Range'
