//! Helper threads that run beside the thread that spawned them, not
//! behind it.
//!
//! A scan splits its `/proc` reads between the calling thread and helpers
//! (the descriptor walk, the owners' identities), which pays only while
//! they run at the same time. A scheduler may put a new thread on its
//! spawner's CPU and move it only when the spawner's time slice ends. This
//! project's 2-vCPU VM packs threads that way: a helper spawned by a busy
//! thread started 2.3 ms late at the median, and in 37 of 100 scans the
//! walk's helper started more than half a millisecond late, as long as a
//! third of the walk it was meant to share (docs/benchmarks.md, issue 11).
//!
//! So the helper's first act is to take itself off the spawner's CPU
//! (keeping every other CPU it may use: nothing is pinned to one CPU, and
//! load balancing still moves it among the rest), and the spawner yields
//! once, so that a helper queued behind it runs, moves, and leaves this
//! CPU to the spawner. The work itself is shared out by an atomic cursor
//! or in halves joined at the end, so a helper that gets little CPU time
//! anyway costs no more than the spawner doing it all.

use std::thread::{Scope, ScopedJoinHandle};

use rustix::thread::{CpuSet, sched_getaffinity, sched_setaffinity};

/// [`Scope::spawn`], with the new thread kept off the caller's CPU.
pub fn spawn_beside<'scope, T, F>(
    scope: &'scope Scope<'scope, '_>,
    f: F,
) -> ScopedJoinHandle<'scope, T>
where
    F: FnOnce() -> T + Send + 'scope,
    T: Send + 'scope,
{
    // glibc's sched_getcpu, not rustix's: rustix calls into the vDSO
    // itself, which valgrind (the instruction counts in
    // docs/benchmarks.md) cannot follow; glibc's goes through rseq or a
    // plain getcpu.
    let here = nix::sched::sched_getcpu().ok();
    let handle = scope.spawn(move || {
        if let Some(here) = here {
            leave(here);
        }
        f()
    });
    std::thread::yield_now();
    handle
}

/// Take the calling thread off `cpu`. Best effort: a thread allowed only
/// that CPU, or a failed call, keeps its mask.
fn leave(cpu: usize) {
    if let Ok(allowed) = sched_getaffinity(None)
        && let Some(rest) = without(allowed, cpu)
    {
        // An error (a cpuset changed under us) leaves the thread where the
        // scheduler put it, which is where it would be without this.
        let _ = sched_setaffinity(None, &rest);
    }
}

/// `allowed` less `cpu`, if that leaves any CPU and `cpu` was in it.
fn without(mut allowed: CpuSet, cpu: usize) -> Option<CpuSet> {
    if cpu >= CpuSet::MAX_CPU || !allowed.is_set(cpu) {
        return None;
    }
    allowed.unset(cpu);
    (allowed.count() > 0).then_some(allowed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(cpus: &[usize]) -> CpuSet {
        let mut s = CpuSet::new();
        for &c in cpus {
            s.set(c);
        }
        s
    }

    #[test]
    fn the_spawners_cpu_is_taken_out_and_nothing_else() {
        let rest = without(set(&[0, 1, 3]), 1).expect("two CPUs left");
        assert!(rest.is_set(0) && rest.is_set(3) && !rest.is_set(1));
        assert_eq!(rest.count(), 2);
    }

    #[test]
    fn a_thread_allowed_one_cpu_keeps_it() {
        assert!(without(set(&[2]), 2).is_none());
        // A CPU outside the mask (the spawner ran where this thread may
        // not) changes nothing.
        assert!(without(set(&[0, 1]), 5).is_none());
        assert!(without(set(&[0, 1]), CpuSet::MAX_CPU).is_none());
    }

    #[test]
    fn a_helper_runs_off_its_spawners_cpu_and_returns_its_result() {
        let cpus = sched_getaffinity(None).expect("affinity").count();
        let (answer, mask) = std::thread::scope(|s| {
            let h = spawn_beside(s, || (42, sched_getaffinity(None).map(|m| m.count())));
            h.join().expect("helper")
        });
        assert_eq!(answer, 42);
        // The helper's mask lost one CPU, the spawner's, unless that was
        // the only one.
        assert_eq!(mask.expect("helper affinity"), (cpus - 1).max(1));
        // The caller's own mask is untouched.
        assert_eq!(sched_getaffinity(None).expect("affinity").count(), cpus);
    }
}
