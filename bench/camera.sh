#!/usr/bin/env bash
# Camera-watching benchmarks (docs/benchmarks.md, "## Camera watching"), on
# a release build, on a machine loaded with extra processes:
#   1. one camera-holder walk (lenscap's `camera_holders`, what each daemon
#      sweep does with CameraWatch on) against `fuser FILE` and `lsof FILE`
#      asked the same question in the same run: who holds this file open?
#      A temp file stands in for /dev/video0, held open by a `sleep`.
#      Also `lenscap scan --json --no-probe` with CameraWatch true and false
#      (the difference is the camera part of a scan) and `true` (the cost
#      of starting any process, which the peers pay and the in-process
#      walk does not).
#   2. the daemon idle (SweepSeconds 2) with CameraWatch off and on,
#      alternating (ABBA), CPU and RSS.
#
#   bench/camera.sh [RUNS] [IDLE_SECS] [EXTRA_PROCS] [ROUNDS]   (defaults 50 150 300 2)
#
# IDLE_SECS is per daemon run; each mode gets ROUNDS runs. Needs fuser
# (psmisc), lsof, hyperfine: installed from Debian's packages when missing.
# Run as root so every tool sees every process's descriptors.
#
# On a shared machine, BENCH_MAX_LOAD=0.7 waits before each measurement
# (after building; up to BENCH_WAIT_MINUTES in all, default 40) for the
# 1-minute load average to drop below it, and says when it did not. The
# load is printed before and after each measurement.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-50}
idle_secs=${2:-150}
procs=${3:-300}
rounds=${4:-2}

need=()
command -v fuser >/dev/null || need+=(psmisc)
command -v lsof >/dev/null || need+=(lsof)
command -v hyperfine >/dev/null || need+=(hyperfine)
if [ ${#need[@]} -gt 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && apt-get install -y -qq "${need[@]}" >/dev/null
fi
for tool in fuser lsof hyperfine; do
    command -v "$tool" >/dev/null || { echo "needs $tool (apt-get install psmisc lsof hyperfine)" >&2; exit 1; }
done

load() { cut -d' ' -f1-3 /proc/loadavg; }
echo "machine: $(uname -srm); $(nproc) CPUs; $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo "tools: $(fuser -V 2>&1 | head -1); lsof $(lsof -v 2>&1 | sed -n 's/^ *revision: *//p'); $(hyperfine --version)"
cargo build --release -q -p lenscap --bin lenscap
# The test binary itself, run directly below, so a source edited mid-run
# (others may be working in this tree) cannot trigger a rebuild between
# measurements. Its daemon bench runs the target/release/lenscap beside it.
testbin=$(cargo test --release -q -p lenscap-e2e --test daemon --no-run --message-format=json |
    grep '"kind":\["test"\]' | grep '"name":"daemon"' |
    grep -o '"executable":"[^"]*"' | tail -1 | cut -d'"' -f4)
[ -x "$testbin" ] || { echo "no test binary for lenscap-e2e --test daemon" >&2; exit 1; }

work=$(mktemp -d /tmp/lenscap-camera-bench.XXXXXX)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
# Scans run a copy, for the same reason.
cp target/release/lenscap "$work/lenscap"
lenscap=$work/lenscap

# Before each measurement: with BENCH_MAX_LOAD set, wait for a quiet
# machine (the deadline is shared by all three waits).
deadline=$((SECONDS + 60 * ${BENCH_WAIT_MINUTES:-40}))
settle() {
    [ -n "${BENCH_MAX_LOAD:-}" ] || return 0
    until awk -v max="$BENCH_MAX_LOAD" '{ exit !($1 < max) }' /proc/loadavg; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            echo "NOTE: load not below $BENCH_MAX_LOAD; measuring anyway"
            return 0
        fi
        sleep 30
    done
}

# The stand-in camera, held open (as stdout) by one process.
device=$work/video0
: >"$device"
sleep 3600 >"$device" & pids+=($!)
holder=$!
for _ in $(seq "$procs"); do sleep 3600 & pids+=($!); done

# Scan configs: no persistence, no login items, so a scan is the listener
# inventory plus (with CameraWatch) the camera walk over the same globs.
for watch in true false; do
    cat >"$work/camera-$watch.plist" <<PLIST
<?xml version="1.0" encoding="UTF-8"?>
<plist version="1.0"><dict>
<key>PersistenceDirs</key><array><string>$work/none</string></array>
<key>ApplicationDirs</key><array><string>$work/none</string></array>
<key>LoginItems</key><false/>
<key>StateDir</key><string>$work/state-$watch</string>
<key>CameraWatch</key><$watch/>
<key>CameraDevices</key><array><string>$work/video*</string></array>
</dict></plist>
PLIST
done

# Every tool must find the holder, or the comparison is meaningless.
fuser "$device" 2>/dev/null | grep -qw "$holder" || { echo "fuser does not see $holder" >&2; exit 1; }
lsof -t "$device" | grep -qx "$holder" || { echo "lsof does not see $holder" >&2; exit 1; }
"$lenscap" scan --json --no-probe --config "$work/camera-true.plist" | grep -q "\"pid\": *$holder" ||
    { echo "lenscap scan does not see $holder" >&2; exit 1; }

nproc_now=$(find /proc -maxdepth 1 -name '[0-9]*' | wc -l)
nfds=$(find /proc/[0-9]*/fd -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)
echo "processes: $nproc_now, open descriptors: $nfds, hyperfine runs: $runs"

settle
echo "== 1a. in-process camera_holders walk (load before: $(load))"
CAMERA_BENCH_DEVICE=$device DAEMON_BENCH_PROCS=0 CAMERA_BENCH_ITERS=$((runs * 6)) \
    "$testbin" --quiet --ignored --exact bench::bench_camera_holders --nocapture --test-threads 1 2>&1 |
    grep -E '^(BENCH|NOTE|thread|test result)' | tee "$work/walk.txt" || true
walk_p50=$(sed -n 's/.*camera_holders:.* p50=\([0-9.]*\)ms.*/\1/p' "$work/walk.txt")
walk_cpu=$(sed -n 's/.*camera_holders:.* cpu=\([0-9.]*\)ms.*/\1/p' "$work/walk.txt")

settle
echo "== 1b. peers and scans, hyperfine -N (load before: $(load))"
# -N: no intermediate shell, so each number is the tool alone. -i: fuser
# exits 1 when it finds nobody; it must find the holder, but a non-zero
# exit must not abort the run.
hyperfine -N -i --warmup 5 --runs "$runs" --export-json "$work/result.json" \
    "fuser $device" \
    "lsof $device" \
    "$lenscap scan --json --no-probe --config $work/camera-true.plist" \
    "$lenscap scan --json --no-probe --config $work/camera-false.plist" \
    "true" >/dev/null
echo "load after: $(load)"
# Medians and CPU (user + system means) from hyperfine's JSON, one field a
# line; the rows are in the order above.
awk -v walk="${walk_p50:-0}" -v walkcpu="${walk_cpu:-0}" '
    /"command":/ { gsub(/.*"command": "|",$/, ""); name[++n] = $0 }
    /"median":/  { gsub(/.*"median": |,$/, ""); med[n] = $0 * 1000 }
    /"user":/    { gsub(/.*"user": |,$/, ""); usr[n] = $0 * 1000 }
    /"system":/  { gsub(/.*"system": |,$/, ""); sys[n] = $0 * 1000 }
    END {
        for (i = 1; i <= n; i++)
            printf "%-90s median %7.2f ms  cpu %7.2f ms\n", name[i], med[i], usr[i] + sys[i]
        printf "scan camera cost (CameraWatch true - false): median %+.2f ms, cpu %+.2f ms\n",
            med[3] - med[4], usr[3] + sys[3] - usr[4] - sys[4]
        if (walk > 0) {
            printf "walk p50 %.3f ms / fuser median: %.3fx   / lsof median: %.3fx\n",
                walk, walk / med[1], walk / med[2]
            printf "walk cpu %.3f ms / fuser cpu: %.3fx   / lsof cpu: %.3fx\n",
                walkcpu, walkcpu / (usr[1] + sys[1]), walkcpu / (usr[2] + sys[2])
            printf "fuser median minus process start (true): %.2f ms; walk / that: %.3fx\n",
                med[1] - med[5], walk / (med[1] - med[5])
        }
        printf "scan with camera / fuser: %.2fx   / lsof: %.2fx (medians)\n",
            med[3] / med[1], med[3] / med[2]
    }' "$work/result.json"

settle
echo "== 2. daemon idle, CameraWatch off and on, ${rounds} x ${idle_secs} s each (load before: $(load))"
# The load above stays running; the test spawns no extra processes.
DAEMON_BENCH_CAMERA=both DAEMON_BENCH_ROUNDS=$rounds DAEMON_BENCH_IDLE_SECS=$idle_secs \
    DAEMON_BENCH_PROCS=0 DAEMON_BENCH_SWEEP=2 \
    "$testbin" --quiet --ignored --exact bench::bench_idle_footprint --nocapture --test-threads 1 2>&1 |
    grep -E '^(BENCH|NOTE|thread|test result)' || true
echo "load after: $(load)"
