//! The daemon's prober: probes run on a thread of their own, beside the
//! sweeps, at most `concurrency` at a time.
//!
//! A sweep hands it the [`Job`]s [`Schedule::due`](super::schedule::Schedule::due)
//! chose and goes on; the next sweep picks up the [`Done`]s that arrived.
//! When a result changes what is known about a socket, the prober also
//! wakes the daemon ([`Prober::ready`]) so it judges again at once rather
//! than at its next periodic sweep: a helper's first probe result is what
//! its containment waits for.
//!
//! Why a thread and not tasks on the daemon's runtime: the daemon's runtime
//! is current-thread and a sweep is synchronous, so probe tasks there would
//! stand still for the whole sweep (their timeouts running on); and the
//! sweep stays a plain function that tests call without a runtime.
//!
//! Order when busy: the jobs wait in a queue that gives out the most urgent
//! kind first (a never-probed socket before an owner change, before a
//! retry, before a refresh) and, within a kind, takes turns between
//! owners — so one process opening a thousand silent listeners delays
//! another process's helper by one probe, not a thousand.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::{Notify, Semaphore};

use super::schedule::{Done, Job, Known, Urgency, merge};

/// Jobs waiting for a free slot.
#[derive(Debug, Default)]
pub struct Queue {
    jobs: Vec<(u64, Job)>,
    next_seq: u64,
    /// Jobs given out per owner, for taking turns.
    served: HashMap<u32, u64>,
}

impl Queue {
    pub fn push(&mut self, job: Job) {
        self.jobs.push((self.next_seq, job));
        self.next_seq += 1;
    }

    /// The most urgent job; among equals, the owner served least so far,
    /// then the oldest. Linear: the queue holds one job per socket at most.
    pub fn pop(&mut self) -> Option<Job> {
        let served = &self.served;
        let key = |(seq, job): &(u64, Job)| -> (Urgency, u64, u64) {
            (
                job.urgency,
                served.get(&job.owner).copied().unwrap_or(0),
                *seq,
            )
        };
        let at = (0..self.jobs.len()).min_by_key(|&i| key(&self.jobs[i]))?;
        let (_, job) = self.jobs.swap_remove(at);
        *self.served.entry(job.owner).or_insert(0) += 1;
        Some(job)
    }

    /// Drop jobs for sockets no longer listening.
    pub fn retain(&mut self, mut keep: impl FnMut(u64) -> bool) {
        self.jobs.retain(|(_, j)| keep(j.socket_id));
        if self.jobs.is_empty() {
            // Turns start over; the map does not grow with every pid seen.
            self.served.clear();
        }
    }

    pub fn len(&self) -> usize {
        self.jobs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.jobs.is_empty()
    }
}

#[derive(Debug)]
struct Shared {
    queue: Mutex<Queue>,
    /// New jobs, or stop.
    work: Notify,
    /// A result changed something: the daemon should judge again.
    ready: Arc<Notify>,
    stop: AtomicBool,
    /// Probes in flight; closed on stop, so a loop waiting for a free
    /// slot ends at once.
    slots: Arc<Semaphore>,
}

/// The prober thread and its two channels.
#[derive(Debug)]
pub struct Prober {
    shared: Arc<Shared>,
    results: mpsc::Receiver<Done>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Prober {
    /// Start the thread. `ready` is notified when a result changes what is
    /// known about a socket.
    pub fn start(concurrency: usize, ready: Arc<Notify>) -> std::io::Result<Prober> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue::default()),
            work: Notify::new(),
            ready,
            stop: AtomicBool::new(false),
            slots: Arc::new(Semaphore::new(concurrency.max(1))),
        });
        let (tx, results) = mpsc::channel();
        let serving = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("probe".into())
            .spawn(move || runtime.block_on(serve(serving, tx)))?;
        Ok(Prober {
            shared,
            results,
            thread: Some(thread),
        })
    }

    /// Queue jobs; they start as slots free up.
    pub fn submit(&self, jobs: Vec<Job>) {
        if jobs.is_empty() {
            return;
        }
        let mut queue = self.queue();
        for job in jobs {
            queue.push(job);
        }
        drop(queue);
        self.shared.work.notify_one();
    }

    /// Forget queued jobs of sockets that are gone.
    pub fn cancel(&self, keep: impl FnMut(u64) -> bool) {
        self.queue().retain(keep);
    }

    /// Jobs not yet started.
    pub fn queued(&self) -> usize {
        self.queue().len()
    }

    /// Every result that arrived since the last call.
    pub fn results(&self) -> Vec<Done> {
        self.results.try_iter().collect()
    }

    /// Like [`Prober::results`], but when none has arrived yet wait for
    /// one until `deadline`.
    pub fn results_by(&self, deadline: std::time::Instant) -> Vec<Done> {
        let wait = deadline.saturating_duration_since(std::time::Instant::now());
        let mut out: Vec<Done> = self.results.recv_timeout(wait).into_iter().collect();
        out.extend(self.results.try_iter());
        out
    }

    /// Is the thread still there? (It ends only if a probe panicked the
    /// runtime.)
    pub fn alive(&self) -> bool {
        self.thread.as_ref().is_some_and(|t| !t.is_finished())
    }

    fn queue(&self) -> std::sync::MutexGuard<'_, Queue> {
        // A panic while holding the lock leaves a queue that is still a
        // valid queue.
        self.shared
            .queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for Prober {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.shared.slots.close();
        self.shared.work.notify_one();
        if let Some(t) = self.thread.take() {
            // Returns at once: the loop sees `stop` or the closed slots,
            // and probes in flight are dropped with the runtime.
            let _ = t.join();
        }
    }
}

async fn serve(shared: Arc<Shared>, tx: mpsc::Sender<Done>) {
    let mut tasks = tokio::task::JoinSet::new();
    loop {
        while tasks.try_join_next().is_some() {}
        // Closed only on stop.
        let Ok(slot) = Arc::clone(&shared.slots).acquire_owned().await else {
            return;
        };
        let job = loop {
            if shared.stop.load(Ordering::SeqCst) {
                return;
            }
            let next = shared
                .queue
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .pop();
            match next {
                Some(job) => break job,
                // notify_one stores a permit when nobody waits, so a job
                // submitted between the pop and here is not missed.
                None => shared.work.notified().await,
            }
        };
        let (tx, ready) = (tx.clone(), Arc::clone(&shared.ready));
        tasks.spawn(async move {
            let _slot = slot;
            let target = std::net::SocketAddr::new(job.address.0, job.address.1);
            let probed = super::probe_settled(target, job.timeout).await;
            let known = Known {
                probe: probed.probe,
                settled: probed.settled,
            };
            let changes = merge(job.previous.as_ref(), &known).is_some();
            let done = Done {
                socket_id: job.socket_id,
                generation: job.generation,
                known,
            };
            // The receiver goes only with the Prober, which stops us.
            if tx.send(done).is_ok() && changes {
                ready.notify_one();
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{IpAddr, Ipv4Addr};
    use std::time::Duration;

    fn job(id: u64, owner: u32, urgency: Urgency) -> Job {
        Job {
            socket_id: id,
            generation: 0,
            address: (IpAddr::V4(Ipv4Addr::LOCALHOST), 1),
            urgency,
            owner,
            timeout: Duration::from_millis(100),
            previous: None,
        }
    }

    #[test]
    fn most_urgent_first_then_turns_between_owners() {
        let mut q = Queue::default();
        // A thousand listeners of one process, queued first...
        for id in 0..1000 {
            q.push(job(id, 500, Urgency::First));
        }
        // ... a retry, and another process's new helper after them.
        q.push(job(5000, 600, Urgency::Retry));
        q.push(job(4000, 700, Urgency::First));
        let order: Vec<u64> = std::iter::from_fn(|| q.pop())
            .map(|j| j.socket_id)
            .collect();
        assert_eq!(order[0], 0);
        assert_eq!(order[1], 4000, "the other owner's helper waits one probe");
        assert_eq!(order[2..1001], (1..1000).collect::<Vec<_>>()[..]);
        assert_eq!(order[1001], 5000, "retries after every first probe");
        assert!(q.is_empty());
    }

    #[test]
    fn cancelled_jobs_are_not_started() {
        let mut q = Queue::default();
        for id in 0..4 {
            q.push(job(id, 1, Urgency::Refresh));
        }
        q.retain(|id| id % 2 == 0);
        let left: Vec<u64> = std::iter::from_fn(|| q.pop())
            .map(|j| j.socket_id)
            .collect();
        assert_eq!(left, [0, 2]);
        q.retain(|_| true);
        assert!(q.served.is_empty());
    }

    #[test]
    fn results_come_back_and_wake_the_daemon() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            use std::io::{Read, Write};
            for mut s in listener.incoming().flatten() {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf);
                let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
            }
        });
        let ready = Arc::new(Notify::new());
        let prober = Prober::start(2, Arc::clone(&ready)).unwrap();
        let mut j = job(1, 1, Urgency::First);
        j.address.1 = port;
        j.timeout = Duration::from_secs(2);
        prober.submit(vec![j]);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            tokio::time::timeout(Duration::from_secs(10), ready.notified())
                .await
                .unwrap();
        });
        let done = prober.results();
        assert_eq!(done.len(), 1);
        assert!(done[0].known.probe.http && done[0].known.settled);
        assert!(prober.alive());
        assert_eq!(prober.queued(), 0);
        drop(prober);
    }

    #[test]
    fn stopping_does_not_wait_for_probes_in_flight() {
        // Every slot taken by a listener that never answers, within a
        // timeout far longer than this test.
        let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = silent.local_addr().unwrap().port();
        let prober = Prober::start(1, Arc::new(Notify::new())).unwrap();
        let mut j = job(1, 1, Urgency::First);
        j.address.1 = port;
        j.timeout = Duration::from_secs(600);
        let mut queued = j.clone();
        queued.socket_id = 2;
        prober.submit(vec![j, queued]);
        std::thread::sleep(Duration::from_millis(200));
        let started = std::time::Instant::now();
        drop(prober);
        // Not a timing assertion: the probe in flight would take ten minutes.
        assert!(started.elapsed() < Duration::from_secs(60));
        drop(silent);
    }
}
