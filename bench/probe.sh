#!/usr/bin/env bash
# Probing beside the sweep (docs/benchmarks.md, "Probing beside the sweep"),
# on a release build: one daemon sweep (in-process, `SweepState::sweep` as
# the daemon calls it) when 1,000 silent loopback listeners (bound, never
# accepting) and one real helper web server in another process appear at
# once — how long the sweep takes, how long until the helper's probe result
# is there to judge, and until every silent listener has been probed once.
#
#   bench/probe.sh [LISTENERS] [RUNS]     (defaults 1000 3)
#
# The harness is tests/tests/daemon/probe.rs (`bench_sweep_with_silent_listeners`,
# an ignored test of lenscap-e2e). The helper's contain time and the idle
# cost are bench/daemon.sh's (`bench/daemon.sh 50 120 300`). Every socket
# is on 127.0.0.1 and closed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
export PROBE_BENCH_LISTENERS=${1:-1000}
export PROBE_BENCH_RUNS=${2:-3}
# The listeners, the probes' connections and the test's own descriptors.
ulimit -n "$(( PROBE_BENCH_LISTENERS * 2 + 1024 ))" 2>/dev/null || true

echo "machine: $(uname -srm); $(nproc) CPUs; $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg); open files allowed: $(ulimit -n)"
cargo test --release -q -p lenscap-e2e --test daemon --no-run
cargo test --release -q -p lenscap-e2e --test daemon -- \
    --ignored --exact probe::bench_sweep_with_silent_listeners --nocapture --test-threads 1 2>&1 |
    grep -E '^(BENCH|thread|test result)' || true
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
