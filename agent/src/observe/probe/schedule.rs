//! When the daemon probes a listener again (docs/design.md §4: "what did not
//! answer is asked again"). Pure bookkeeping — sockets, owners, results
//! and times in, probe jobs out — so every rule below is tested without a
//! socket or a clock.
//!
//! One entry per listening socket (by socket id) that a browser can reach:
//!
//! - A new socket is probed at once ([`Urgency::First`]).
//! - An answer that does not settle what the socket is — nothing within the
//!   timeout, a reset, a hang-up, a refused connect, bytes that are not
//!   HTTP — is asked again with backoff: first within
//!   [`Timing::first_retry`], doubling, capped at [`Timing::max_retry`],
//!   each wait jittered into its upper half so a helper cannot count on
//!   the moment. A helper that stays silent for its first seconds, or
//!   hangs up on the first connections, is found by a later try.
//! - A retry gets a browser's patience: at least [`RETRY_TIMEOUT`] to
//!   answer, not the first probe's short timeout, so a helper that keeps
//!   every new connection waiting a few seconds (a browser waits) is still
//!   seen answering. Retries run beside the sweeps, so their patience
//!   costs a sweep nothing.
//! - A settled answer (it spoke HTTP, or TLS) is asked again every
//!   [`Timing::reprobe`] (jittered down by up to a tenth): a helper that
//!   changes its answers over time is seen within that period.
//! - When the socket's owners change (another pid, start time or
//!   executable: a fork handed it on, or an `exec` replaced the program),
//!   it is probed again at once; a result of a probe started before the
//!   change is dropped ([`Job::generation`]).
//! - A settled answer is not replaced by an unsettled one: a socket that
//!   answered HTTP is a web server, whatever silence it tries later (its
//!   retries still run, with backoff).

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::backoff::Backoff;
use crate::model::{HttpProbe, StartTime};

/// The waits between probes of one socket. [`Timing::default`] is what
/// the daemon uses; tests shorten it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// The longest wait before the first retry of an unsettled answer
    /// (the wait is random in its upper half).
    pub first_retry: Duration,
    /// The longest wait between retries.
    pub max_retry: Duration,
    /// How often a settled answer is asked again.
    pub reprobe: Duration,
}

/// Retry an unsettled answer within 10 s (5–10 s), then 10–20 s, …
pub const FIRST_RETRY: Duration = Duration::from_secs(10);
/// … up to 2.5–5 minutes apart.
pub const MAX_RETRY: Duration = Duration::from_secs(300);
/// Every settled answer is asked again after 9–10 minutes.
pub const REPROBE: Duration = Duration::from_secs(600);
/// A job with no result after this long is taken as lost (its task
/// died) and issued again. Far above any queue wait: 1,000 silent
/// listeners take ~20 s at the daemon's concurrency.
const LOST_AFTER: Duration = Duration::from_secs(300);

impl Default for Timing {
    fn default() -> Timing {
        Timing {
            first_retry: FIRST_RETRY,
            max_retry: MAX_RETRY,
            reprobe: REPROBE,
        }
    }
}

/// The least time a retry waits for an answer (see the module doc).
pub const RETRY_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a job was issued; lower goes first when the prober is busy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Urgency {
    /// A socket never probed: its judgement waits for this.
    First,
    /// The socket changed hands.
    OwnerChanged,
    /// An unsettled answer asked again.
    Retry,
    /// A settled answer refreshed.
    Refresh,
}

/// Who holds a socket, as far as probing cares: pid, start time and
/// executable of each owner, ascending by pid.
pub type Owners = Vec<(u32, StartTime, Option<PathBuf>)>;

/// One browser-reachable listening socket as a sweep sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub socket_id: u64,
    pub address: (IpAddr, u16),
    pub owners: Owners,
}

/// A probe to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    pub socket_id: u64,
    /// Bumped when the owners change; a result of an older generation is
    /// dropped.
    pub generation: u64,
    pub address: (IpAddr, u16),
    pub urgency: Urgency,
    /// Whose socket (its first owner's pid, 0 if unknown): the prober
    /// takes turns between owners, so one process opening a thousand
    /// listeners cannot make another's wait.
    pub owner: u32,
    pub timeout: Duration,
    /// What is known now, to tell whether the result changes it.
    pub previous: Option<Known>,
}

/// A probe's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Done {
    pub socket_id: u64,
    pub generation: u64,
    pub known: Known,
}

/// A probe result and whether it settles what the socket is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Known {
    pub probe: HttpProbe,
    pub settled: bool,
}

/// What is known after `new` arrives where `previous` was: `None` when
/// nothing changes — the same answer again; an unsettled answer where a
/// settled one stands; or an unsettled answer where an unsettled one
/// stands (its reason may differ, a reset instead of silence, but the
/// judge reads them alike — "whether it speaks HTTP is unknown" — so
/// the first reason stays and nothing is judged again for it).
pub fn merge(previous: Option<&Known>, new: &Known) -> Option<Known> {
    match previous {
        Some(p) if p == new => None,
        Some(_) if !new.settled => None,
        _ => Some(new.clone()),
    }
}

#[derive(Debug)]
struct Entry {
    address: (IpAddr, u16),
    owners: Owners,
    known: Option<Known>,
    backoff: Backoff,
    generation: u64,
    /// When the next probe is due, and why. Ignored while in flight.
    due: Instant,
    urgency: Urgency,
    /// When the job in flight was issued.
    in_flight: Option<Instant>,
}

/// Every probed socket's state.
#[derive(Debug)]
pub struct Schedule {
    timing: Timing,
    entries: HashMap<u64, Entry>,
}

impl Default for Schedule {
    fn default() -> Schedule {
        Schedule::new(Timing::default())
    }
}

impl Schedule {
    pub fn new(timing: Timing) -> Schedule {
        Schedule {
            timing,
            entries: HashMap::new(),
        }
    }

    /// Bring the schedule in line with this sweep's sockets and return the
    /// probes due now (marked in flight). Sockets not in `current` are
    /// forgotten.
    pub fn due(&mut self, current: &[Target], now: Instant, timeout: Duration) -> Vec<Job> {
        let live: std::collections::HashSet<u64> = current.iter().map(|t| t.socket_id).collect();
        self.entries.retain(|id, _| live.contains(id));
        let mut jobs = Vec::new();
        for t in current {
            let timing = self.timing;
            let e = self.entries.entry(t.socket_id).or_insert_with(|| Entry {
                address: t.address,
                owners: t.owners.clone(),
                known: None,
                backoff: Backoff::new(timing.first_retry, timing.max_retry),
                generation: 0,
                due: now,
                urgency: Urgency::First,
                in_flight: None,
            });
            if e.owners != t.owners {
                e.owners = t.owners.clone();
                e.generation += 1;
                e.due = now;
                e.urgency = Urgency::OwnerChanged;
                e.in_flight = None;
                e.backoff.reset();
            }
            if e.in_flight
                .is_some_and(|since| now.saturating_duration_since(since) >= LOST_AFTER)
            {
                e.in_flight = None;
                e.due = now;
            }
            if e.in_flight.is_some() || now < e.due {
                continue;
            }
            e.in_flight = Some(now);
            jobs.push(Job {
                socket_id: t.socket_id,
                generation: e.generation,
                address: e.address,
                urgency: e.urgency,
                owner: t.owners.first().map_or(0, |o| o.0),
                timeout: if e.urgency == Urgency::Retry {
                    timeout.max(RETRY_TIMEOUT)
                } else {
                    timeout
                },
                previous: e.known.clone(),
            });
        }
        jobs
    }

    /// Take in a result; `random` jitters the next wait. Returns whether
    /// what is known about the socket changed. A result for a socket
    /// gone, or of an older generation, is dropped.
    pub fn record(&mut self, done: Done, now: Instant, random: u64) -> bool {
        let Some(e) = self.entries.get_mut(&done.socket_id) else {
            return false;
        };
        if done.generation != e.generation {
            return false;
        }
        e.in_flight = None;
        if done.known.settled {
            e.backoff.reset();
            let reprobe = self.timing.reprobe;
            let tenth = u64::try_from((reprobe / 10).as_millis()).unwrap_or(u64::MAX);
            e.due = now + reprobe - Duration::from_millis(random % tenth.saturating_add(1));
            e.urgency = Urgency::Refresh;
        } else {
            e.due = now + e.backoff.fail(random);
            e.urgency = Urgency::Retry;
        }
        match merge(e.known.as_ref(), &done.known) {
            Some(k) => {
                e.known = Some(k);
                true
            }
            None => false,
        }
    }

    /// What is known about a socket.
    pub fn known(&self, socket_id: u64) -> Option<&Known> {
        self.entries.get(&socket_id)?.known.as_ref()
    }

    /// When the socket is next probed (`None`: in flight or unknown).
    pub fn next_due(&self, socket_id: u64) -> Option<Instant> {
        let e = self.entries.get(&socket_id)?;
        e.in_flight.is_none().then_some(e.due)
    }

    /// Forget everything (probing was turned off).
    pub fn clear(&mut self) {
        self.entries.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Cors;
    use std::net::Ipv4Addr;

    const TIMEOUT: Duration = Duration::from_millis(300);

    fn probe(http: bool, error: Option<&str>) -> HttpProbe {
        HttpProbe {
            http,
            websocket: false,
            status: http.then_some(200),
            server: None,
            content_type: None,
            cors: Cors::None,
            image: false,
            error: error.map(str::to_string),
        }
    }

    fn silent() -> Known {
        Known {
            probe: probe(false, Some("no answer within 300 ms")),
            settled: false,
        }
    }

    fn web() -> Known {
        Known {
            probe: probe(true, None),
            settled: true,
        }
    }

    fn owners(pid: u32, start: u64, exe: &str) -> Owners {
        vec![(
            pid,
            StartTime {
                unix_us: start,
                resolution_us: 10_000,
            },
            Some(PathBuf::from(exe)),
        )]
    }

    fn target(id: u64, owners: Owners) -> Target {
        Target {
            socket_id: id,
            address: (IpAddr::V4(Ipv4Addr::LOCALHOST), 19421),
            owners,
        }
    }

    fn done(job: &Job, known: Known) -> Done {
        Done {
            socket_id: job.socket_id,
            generation: job.generation,
            known,
        }
    }

    /// Run the schedule for one socket that always answers `answer`,
    /// returning the wait before each probe after the first.
    fn waits(s: &mut Schedule, t: &Target, answer: &Known, n: usize, random: u64) -> Vec<Duration> {
        let mut now = Instant::now();
        let mut out = Vec::new();
        let mut last = now;
        let mut issued = 0;
        while issued < n {
            let jobs = s.due(std::slice::from_ref(t), now, TIMEOUT);
            if let Some(job) = jobs.first() {
                if issued > 0 {
                    out.push(now - last);
                }
                issued += 1;
                last = now;
                s.record(done(job, answer.clone()), now, random);
            }
            now += Duration::from_millis(250);
        }
        out
    }

    #[test]
    fn unsettled_answers_are_retried_with_growing_capped_waits() {
        let mut s = Schedule::default();
        let t = target(1, owners(10, 1, "/h"));
        // The smallest and largest jitter draws bracket every wait.
        for random in [0, u64::MAX] {
            let w = waits(&mut Schedule::default(), &t, &silent(), 12, random);
            assert!(
                w[0] <= Duration::from_secs(30) && w[0] >= FIRST_RETRY / 2,
                "{w:?}"
            );
            assert!(w.windows(2).take(4).all(|p| p[1] > p[0]), "{w:?}");
            assert!(
                w.iter()
                    .all(|d| *d <= MAX_RETRY + Duration::from_millis(250)),
                "{w:?}"
            );
            assert!(w[w.len() - 1] >= MAX_RETRY / 2, "{w:?}");
        }
        // Settled answers come back every ~10 minutes.
        let w = waits(&mut s, &t, &web(), 3, 12345);
        for d in w {
            assert!(
                d >= REPROBE * 9 / 10 && d <= REPROBE + Duration::from_secs(1),
                "{d:?}"
            );
        }
    }

    #[test]
    fn nothing_is_issued_twice_while_in_flight() {
        let mut s = Schedule::default();
        let t = target(1, owners(10, 1, "/h"));
        let now = Instant::now();
        let jobs = s.due(std::slice::from_ref(&t), now, TIMEOUT);
        assert_eq!(jobs.len(), 1);
        assert_eq!(jobs[0].urgency, Urgency::First);
        assert_eq!(jobs[0].owner, 10);
        assert!(
            s.due(std::slice::from_ref(&t), now + FIRST_RETRY * 3, TIMEOUT)
                .is_empty()
        );
        // A job whose task died is issued again, eventually.
        let again = s.due(std::slice::from_ref(&t), now + LOST_AFTER, TIMEOUT);
        assert_eq!(again.len(), 1);
    }

    #[test]
    fn silent_at_first_then_http() {
        let mut s = Schedule::default();
        let t = target(7, owners(10, 1, "/h"));
        let now = Instant::now();
        let job = s.due(std::slice::from_ref(&t), now, TIMEOUT).remove(0);
        assert!(s.record(done(&job, silent()), now, 0));
        assert_eq!(s.known(7), Some(&silent()));
        let due = s.next_due(7).unwrap();
        assert!(due - now <= Duration::from_secs(30));
        let job = s.due(std::slice::from_ref(&t), due, TIMEOUT).remove(0);
        assert_eq!(job.urgency, Urgency::Retry);
        assert_eq!(job.previous, Some(silent()));
        // The retry waits as a browser would, not the first probe's 300 ms.
        assert_eq!(job.timeout, TIMEOUT.max(RETRY_TIMEOUT));
        assert!(s.record(done(&job, web()), due, 0));
        assert_eq!(s.known(7), Some(&web()));
        // A later silence does not undo what it showed.
        let later = s.next_due(7).unwrap();
        let job = s.due(std::slice::from_ref(&t), later, TIMEOUT).remove(0);
        assert_eq!(job.urgency, Urgency::Refresh);
        assert!(!s.record(done(&job, silent()), later, 0));
        assert_eq!(s.known(7), Some(&web()));
        // ... and it is asked again soon, not in ten minutes.
        assert!(s.next_due(7).unwrap() - later <= FIRST_RETRY);
    }

    #[test]
    fn owner_change_probes_again_at_once_and_drops_stale_results() {
        let mut s = Schedule::default();
        let now = Instant::now();
        let a = owners(10, 1, "/a");
        let first = s.due(&[target(3, a.clone())], now, TIMEOUT).remove(0);
        assert!(s.record(done(&first, web()), now, 0));
        assert!(s.due(&[target(3, a)], now, TIMEOUT).is_empty());
        // Same pid, new executable (exec); new start time (pid reuse);
        // another pid (fork, then the parent exits): each is a new owner,
        // probed again at once.
        let mut generation = first.generation;
        for o in [
            owners(10, 1, "/b"),
            owners(10, 2, "/b"),
            owners(11, 2, "/b"),
        ] {
            let job = s.due(&[target(3, o.clone())], now, TIMEOUT).remove(0);
            assert_eq!(job.urgency, Urgency::OwnerChanged);
            assert!(job.generation > generation);
            generation = job.generation;
            s.record(done(&job, web()), now, 0);
            assert!(s.due(&[target(3, o)], now, TIMEOUT).is_empty());
        }
        // The owners change again while a probe is in flight: its result
        // is dropped, the new owner's counts.
        let stale = s
            .due(&[target(3, owners(12, 3, "/c"))], now, TIMEOUT)
            .remove(0);
        let fresh = s
            .due(&[target(3, owners(13, 3, "/c"))], now, TIMEOUT)
            .remove(0);
        assert!(fresh.generation > stale.generation);
        let tls = Known {
            probe: probe(false, Some("TLS alert: HTTPS listener?")),
            settled: true,
        };
        assert!(!s.record(done(&stale, tls.clone()), now, 0));
        assert_eq!(s.known(3), Some(&web()));
        assert!(s.record(done(&fresh, tls.clone()), now, 0));
        assert_eq!(s.known(3), Some(&tls));
    }

    #[test]
    fn gone_sockets_are_forgotten() {
        let mut s = Schedule::default();
        let now = Instant::now();
        let job = s.due(&[target(1, vec![])], now, TIMEOUT).remove(0);
        assert_eq!(job.owner, 0);
        s.due(&[], now, TIMEOUT);
        assert!(!s.record(done(&job, web()), now, 0));
        assert!(s.known(1).is_none());
        // A new socket with the same id later starts from scratch.
        let again = s.due(&[target(1, vec![])], now, TIMEOUT);
        assert_eq!(again[0].urgency, Urgency::First);
    }

    #[test]
    fn merge_rules() {
        assert_eq!(merge(None, &silent()), Some(silent()));
        assert_eq!(merge(Some(&silent()), &silent()), None);
        let reset = Known {
            probe: probe(false, Some("connection reset")),
            settled: false,
        };
        assert_eq!(merge(Some(&silent()), &reset), None);
        assert_eq!(merge(Some(&silent()), &web()), Some(web()));
        assert_eq!(merge(Some(&web()), &silent()), None);
        let other = Known {
            probe: probe(false, Some("TLS alert: HTTPS listener?")),
            settled: true,
        };
        assert_eq!(merge(Some(&web()), &other), Some(other));
    }
}
