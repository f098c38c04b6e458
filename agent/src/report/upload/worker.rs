//! The delivery thread: everything that talks to the collector, on its own
//! OS thread so that no step of the daemon's loop ever waits on the
//! network (a blocking HTTP client in a thread is simpler to reason about
//! than one woven into the daemon's single-threaded runtime, and a slow
//! collector then costs one idle thread, nothing else).
//!
//! It owns a second connection to the outbox, used only for `pending` and
//! `mark_sent` (SQLite serialises that one short UPDATE with the daemon's
//! appends; a daemon append that meets it waits, or keeps its event in
//! memory and retries). Everything it has to *say* — health events, a new
//! fleet policy — goes to the daemon through `notify`, so the daemon stays
//! the only one appending to the outbox and the only one changing the
//! judge's policy.
//!
//! Its loop: enroll if there is no token; every `UploadIntervalSeconds`
//! drain the outbox (batch after batch while events are waiting, checking
//! for a stop between batches); every `PolicyIntervalSeconds` poll the
//! fleet policy. A 401 — on an upload or a policy poll — means the
//! collector no longer knows the token: enroll again, once, until a
//! request succeeds with the new token.

use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use lenscap_events::{Body, Host};

use super::client::{Client, CollectorUrl, Failure, PolicyAnswer};
use super::{BACKOFF_BASE, BACKOFF_CAP, Next, UploadStats, Uploader};
use crate::backoff::{self, Backoff};
use crate::config::{Config, Secret};
use crate::report::enroll::{self, HostToken};
use crate::report::outbox::Outbox;
use crate::report::policy_sync::{self, Fetched};

/// What delivery needs from the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliverySettings {
    pub url: CollectorUrl,
    pub secret: Secret,
    pub upload_interval: Duration,
    pub policy_interval: Duration,
    pub state_dir: PathBuf,
    pub max_outbox_bytes: u64,
}

impl DeliverySettings {
    /// `None` when `CollectorURL` is empty: no upload. (The loader has
    /// validated the URL; one that fails here is logged and treated as
    /// empty.)
    pub fn from_config(config: &Config) -> Option<DeliverySettings> {
        if config.collector_url.trim().is_empty() {
            return None;
        }
        let url = CollectorUrl::parse(&config.collector_url)
            .inspect_err(|e| tracing::error!(error = %e, "CollectorURL unusable; not uploading"))
            .ok()?;
        Some(DeliverySettings {
            url,
            secret: config.enrollment_secret.clone(),
            upload_interval: Duration::from_secs(config.upload_interval_seconds),
            policy_interval: Duration::from_secs(config.policy_interval_seconds),
            state_dir: config.state_dir.clone(),
            max_outbox_bytes: config.max_outbox_bytes,
        })
    }
}

/// What the delivery thread tells the daemon.
#[derive(Debug, Clone)]
pub enum Notice {
    /// A health event to append to the outbox.
    Health(Body),
    /// A new fleet policy, valid as a document: apply it, or reject it.
    Policy(Fetched),
}

enum Control {
    Settings(Box<DeliverySettings>),
    Stop,
}

/// The daemon's handle on the delivery thread.
#[derive(Debug)]
pub struct Delivery {
    control: Sender<Control>,
    thread: Option<JoinHandle<UploadStats>>,
}

impl Delivery {
    /// Start the thread. `policy_etag` is the stored policy's, so the
    /// first poll answers 304 when nothing changed.
    pub fn start(
        settings: DeliverySettings,
        host: Host,
        policy_etag: Option<String>,
        notify: Box<dyn FnMut(Notice) + Send>,
    ) -> std::io::Result<Delivery> {
        let (control, rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("lenscap-delivery".into())
            .spawn(move || Worker::new(settings, host, policy_etag, notify, rx).run())?;
        Ok(Delivery {
            control,
            thread: Some(thread),
        })
    }

    /// New settings after a configuration reload.
    pub fn reconfigure(&self, settings: DeliverySettings) {
        let _ = self.control.send(Control::Settings(Box::new(settings)));
    }

    /// Ask the thread to stop and wait up to `wait` for it. A request in
    /// flight is not waited for: its batch is sent again at the next start.
    pub fn stop(mut self, wait: Duration) -> Option<UploadStats> {
        let _ = self.control.send(Control::Stop);
        let thread = self.thread.take()?;
        let deadline = Instant::now() + wait;
        while !thread.is_finished() {
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        thread.join().ok()
    }
}

impl Drop for Delivery {
    fn drop(&mut self) {
        let _ = self.control.send(Control::Stop);
    }
}

struct Worker {
    settings: DeliverySettings,
    host: Host,
    client: Client,
    outbox: Option<Outbox>,
    token: Option<HostToken>,
    uploader: Uploader,
    /// Enrolled again after a 401, and no request has succeeded since.
    reenrolled: bool,
    enroll_backoff: Backoff,
    enroll_reported: bool,
    policy_etag: Option<String>,
    next_upload: Instant,
    next_policy: Instant,
    notify: Box<dyn FnMut(Notice) + Send>,
    rx: Receiver<Control>,
    stopping: bool,
}

impl Worker {
    fn new(
        settings: DeliverySettings,
        host: Host,
        policy_etag: Option<String>,
        notify: Box<dyn FnMut(Notice) + Send>,
        rx: Receiver<Control>,
    ) -> Worker {
        let now = Instant::now();
        Worker {
            client: Client::new(settings.url.clone()),
            settings,
            host,
            outbox: None,
            token: None,
            uploader: Uploader::new(),
            reenrolled: false,
            enroll_backoff: Backoff::new(BACKOFF_BASE, BACKOFF_CAP),
            enroll_reported: false,
            policy_etag,
            next_upload: now,
            next_policy: now,
            notify,
            rx,
            stopping: false,
        }
    }

    fn run(mut self) -> UploadStats {
        tracing::info!(collector = self.settings.url.as_str(), "delivery started");
        while !self.stopping {
            let wake = self.next_upload.min(self.next_policy);
            let now = Instant::now();
            if wake > now {
                match self.rx.recv_timeout(wake - now) {
                    Ok(c) => {
                        self.control(c);
                        continue;
                    }
                    Err(RecvTimeoutError::Disconnected) => break,
                    Err(RecvTimeoutError::Timeout) => {}
                }
            }
            if !self.ensure_token() {
                continue;
            }
            if Instant::now() >= self.next_upload {
                self.upload_round();
            }
            if !self.stopping && Instant::now() >= self.next_policy {
                self.policy_round();
            }
            self.forward_notices();
        }
        self.forward_notices();
        self.uploader.stats()
    }

    fn control(&mut self, c: Control) {
        match c {
            Control::Stop => self.stopping = true,
            Control::Settings(s) if *s != self.settings => {
                if s.url != self.settings.url {
                    tracing::info!(collector = s.url.as_str(), "CollectorURL changed");
                    self.client = Client::new(s.url.clone());
                    self.uploader = Uploader::new();
                }
                if s.secret != self.settings.secret {
                    self.enroll_reported = false;
                    self.enroll_backoff.reset();
                }
                self.settings = *s;
                // Try the new settings now rather than after an old wait.
                let now = Instant::now();
                self.next_upload = now;
                self.next_policy = now;
            }
            Control::Settings(_) => {}
        }
    }

    /// Between batches: act on a stop or new settings without waiting.
    fn poll_control(&mut self) -> bool {
        match self.rx.try_recv() {
            Ok(c) => {
                self.control(c);
                true
            }
            Err(TryRecvError::Disconnected) => {
                self.stopping = true;
                true
            }
            Err(TryRecvError::Empty) => false,
        }
    }

    /// A token from the file or from enrolling; false (with the next try
    /// scheduled) when there is none yet.
    fn ensure_token(&mut self) -> bool {
        if self.token.is_some() {
            return true;
        }
        let dir = &self.settings.state_dir;
        let token = match enroll::load_token(dir) {
            Ok(Some(t)) if !self.reenrolled => Ok(t),
            Ok(_) => enroll::enroll(&self.client, &self.settings.secret, &self.host, dir),
            Err(e) => Err(e),
        };
        match token {
            Ok(t) => {
                self.token = Some(t);
                self.enroll_backoff.reset();
                self.enroll_reported = false;
                true
            }
            Err(e) => {
                let wait = self.enroll_backoff.fail(backoff::random());
                tracing::error!(error = %e, retry_in_s = wait.as_secs(), "no host token; events stay in the outbox");
                if e.is_refused() && !self.enroll_reported {
                    self.enroll_reported = true;
                    self.uploader.refused(&Failure::Unauthorized(e.to_string()));
                }
                let at = Instant::now() + wait;
                self.next_upload = at;
                self.next_policy = at;
                false
            }
        }
    }

    /// A 401: the collector does not know the token. Enroll again once;
    /// a second 401 with the new token only backs off.
    fn unauthorized(&mut self) -> Option<Duration> {
        if self.reenrolled {
            let Next::Wait(d) = self.uploader.enroll_failed(
                "the collector refuses the token it issued at enrollment (401 after re-enrolling)",
            ) else {
                return Some(BACKOFF_CAP);
            };
            return Some(d);
        }
        tracing::warn!("the collector does not know this host's token (401); enrolling again");
        self.reenrolled = true;
        self.token = None;
        if self.ensure_token() {
            None
        } else {
            Some(Duration::ZERO)
        }
    }

    fn upload_round(&mut self) {
        let interval = self.settings.upload_interval;
        if self.outbox.is_none() {
            match Outbox::open(
                &self.settings.state_dir,
                self.host.clone(),
                env!("CARGO_PKG_VERSION"),
                self.settings.max_outbox_bytes,
            ) {
                Ok(o) => self.outbox = Some(o),
                Err(e) => {
                    tracing::error!(error = %e, "delivery cannot open the outbox; trying again later");
                    self.next_upload = Instant::now() + interval;
                    return;
                }
            }
        }
        loop {
            let (Some(outbox), Some(token)) = (self.outbox.as_mut(), self.token.as_ref()) else {
                return;
            };
            let client = &self.client;
            let next = self
                .uploader
                .step(outbox, &mut |body, n| client.post_events(token, body, n));
            let now = Instant::now();
            match next {
                Ok(Next::Idle) => {
                    self.next_upload = now + interval;
                    return;
                }
                Ok(Next::Now) => {
                    self.reenrolled = false;
                    self.forward_notices();
                    if self.poll_control() {
                        return;
                    }
                }
                Ok(Next::Wait(d)) => {
                    self.next_upload = now + d;
                    return;
                }
                Ok(Next::Reenroll) => match self.unauthorized() {
                    None => {}
                    Some(d) => {
                        self.next_upload = self.next_upload.max(now + d);
                        return;
                    }
                },
                Err(e) => {
                    tracing::error!(error = %e, "delivery cannot read the outbox; trying again later");
                    if e.is_corrupt() {
                        // The daemon moves a damaged file aside at its
                        // next start; reopen then.
                        self.outbox = None;
                    }
                    self.next_upload = now + interval;
                    return;
                }
            }
        }
    }

    fn policy_round(&mut self) {
        self.next_policy = Instant::now() + self.settings.policy_interval;
        let Some(token) = &self.token else { return };
        match self.client.policy(token, self.policy_etag.as_deref()) {
            Ok(PolicyAnswer::NotModified) => self.reenrolled = false,
            Ok(PolicyAnswer::Policy { body, etag }) => {
                self.reenrolled = false;
                // Without an ETag the body's own hash stands in, so an
                // unchanged policy is not applied again.
                let etag = etag.unwrap_or_else(|| {
                    format!(
                        "\"{}\"",
                        lenscap_events::canonical::sha256_hex(body.as_bytes())
                    )
                });
                match Fetched::parse(&body, etag.clone(), self.client.url()) {
                    Ok(f) => (self.notify)(Notice::Policy(f)),
                    Err(e) => {
                        tracing::error!(error = %e, %etag, "fleet policy rejected; the previous one stays");
                        (self.notify)(Notice::Health(policy_sync::rejected_notice(
                            &etag,
                            &e.to_string(),
                        )));
                    }
                }
                // Remembered even when rejected: the same bad policy is
                // reported once, not at every poll.
                self.policy_etag = Some(etag);
            }
            Err(Failure::Unauthorized(_)) => {
                if let Some(d) = self.unauthorized() {
                    self.next_policy = Instant::now() + d.max(self.settings.policy_interval);
                } else {
                    self.next_policy = Instant::now();
                }
            }
            Err(f) => {
                tracing::warn!(failure = %f, "fleet policy poll failed; trying at the next interval")
            }
        }
    }

    fn forward_notices(&mut self) {
        for body in self.uploader.take_notices() {
            (self.notify)(Notice::Health(body));
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    #[test]
    fn settings_follow_the_configuration() {
        let mut c = Config::default();
        assert_eq!(DeliverySettings::from_config(&c), None, "empty: no upload");
        c.collector_url = "https://c.example.com/lenscap".into();
        c.enrollment_secret = Secret::new("lc_enroll_x");
        c.upload_interval_seconds = 3;
        c.policy_interval_seconds = 60;
        let s = DeliverySettings::from_config(&c).unwrap();
        assert_eq!(
            s.url.endpoint("/api/v1/events"),
            "https://c.example.com/lenscap/api/v1/events"
        );
        assert_eq!(s.secret.expose(), "lc_enroll_x");
        assert_eq!(s.upload_interval, Duration::from_secs(3));
        assert_eq!(s.policy_interval, Duration::from_secs(60));
        assert_eq!(s.state_dir, c.state_dir);
        // The loader refuses this; were it to get here, no upload.
        c.collector_url = "http://c.example.com".into();
        assert_eq!(DeliverySettings::from_config(&c), None);
    }
}
