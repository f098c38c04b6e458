//! Telling the person at the keyboard (issue 15). Telling is not acting:
//! in monitor mode every step of a plan is only journaled as "would do",
//! but the person is still told what lenscap found and would do, and how
//! to let it (`sudo lenscap mode remediate`); in remediate mode, what it
//! did and how to undo it (`sudo lenscap quarantine restore <ID> --allow`:
//! without `--allow` the restored helper would be removed again the next
//! time it runs).
//!
//! Design notes:
//!
//! - **One notification per incident.** An incident has a key (`would:`,
//!   `did:` or `reinstall:` and the plan key; `camera:` and the session;
//!   `found:` and a finding) and [`Telling`] tells of a key at most once
//!   per [`REPEAT`]: a KeepAlive helper that keeps coming back, a helper
//!   re-planned after a restart of its job, or a reinstall loop is one
//!   notification an hour, not one per sweep. A per-user cap
//!   ([`PER_USER_PER_HOUR`]) bounds what a flood of decoy helpers can make
//!   lenscap show (and spawn: each notification is a process).
//! - **`NotifyUser`** (`all`, `remediations`, `none`) is read here only:
//!   plans keep their notify step whatever the setting, and the step's
//!   outcome in the journal says when and why nobody was told.
//! - **Words a person knows.** The app is named by its bundle's
//!   `CFBundleDisplayName`, else `CFBundleName`, else the program's file
//!   name. Those are claims the helper's author wrote, shown to a person
//!   in a notification signed "lenscap": [`app_name`] keeps letters,
//!   digits and a few punctuation marks and caps the length, so a name
//!   cannot carry instructions, links or a fake second sentence.
//! - **Who is told.** The user who owns the helper, else whoever is at the
//!   console; never root. The platform runs the notification in that
//!   user's session *as that user* (`launchctl asuser <uid> sudo -u <user>
//!   osascript`), with the text as one escaped AppleScript string literal
//!   (`platform::notify`): nothing of the text is ever run, and what runs
//!   has only that user's rights.

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::path::Path;
use std::time::{Duration, Instant};

use crate::config::NotifyUser;
use crate::model::{Finding, FindingKind, Severity, Verdict, enclosing_bundle};

use super::execute::Notifier;

/// A notification title stays on one line of a banner.
pub const TITLE_MAX: usize = 48;
/// A notification body: what a banner shows expanded, without cutting off
/// the command line at its end.
pub const BODY_MAX: usize = 240;
/// Longest app name shown (characters).
pub const NAME_MAX: usize = 32;
/// The same incident is told of at most once in this long.
pub const REPEAT: Duration = Duration::from_secs(3600);
/// At most this many notifications per user per [`REPEAT`].
pub const PER_USER_PER_HOUR: usize = 20;
/// Stands for the quarantine record id in a remediate-mode message written
/// at plan time; the notify step puts the real id in.
pub const ID_SLOT: &str = "<ID>";

pub const TITLE_WOULD: &str = "lenscap found a hidden helper";
pub const TITLE_REMOVED: &str = "lenscap removed a hidden helper";
pub const TITLE_REINSTALL: &str = "lenscap removed a helper again";
pub const TITLE_CAMERA: &str = "lenscap: camera used by a hidden helper";
pub const TITLE_FOUND: &str = "lenscap found something to check";

/// The app a program belongs to, as a person knows it: the display name
/// of its bundle, else the bundle's name, else the file name.
pub fn app_name(program: &Path) -> String {
    let from_bundle = enclosing_bundle(program).and_then(|bundle| {
        let info = crate::observe::apps::info_plist(&bundle.join("Contents/Info.plist"))
            .ok()
            .flatten()?;
        ["CFBundleDisplayName", "CFBundleName"]
            .iter()
            .filter_map(|k| info.get(k).and_then(plist::Value::as_string))
            .map(clean_name)
            .find(|n| !n.is_empty())
    });
    from_bundle.unwrap_or_else(|| {
        let file = program
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let name = clean_name(&file);
        if name.is_empty() {
            "An app".to_string()
        } else {
            name
        }
    })
}

/// Letters, digits, spaces and `. - _ + & ( ) '` only, runs of spaces
/// collapsed, at most [`NAME_MAX`] characters.
fn clean_name(s: &str) -> String {
    let kept: String = s
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || " .-_+&()'".contains(c) {
                c
            } else {
                ' '
            }
        })
        .collect();
    let words: Vec<&str> = kept.split_whitespace().collect();
    words.join(" ").chars().take(NAME_MAX).collect::<String>()
}

/// What a helper does, for the body: a web server when it listens.
fn what(web: bool) -> &'static str {
    if web {
        "a hidden web server any web page can reach"
    } else {
        "a hidden helper lenscap flags as unsafe"
    }
}

/// Monitor mode: what lenscap found and would do, and how to let it.
pub fn would_remove(app: &str, web: bool) -> String {
    format!(
        "{app} runs {}; lenscap would stop it and move it to quarantine. \
         To let lenscap do that: sudo lenscap mode remediate",
        what(web)
    )
}

/// Remediate mode: what lenscap did and how to undo it, with [`ID_SLOT`]
/// for the quarantine id (known once the quarantine step ran).
pub fn removed(app: &str, web: bool) -> String {
    format!(
        "{app} ran {}; lenscap stopped it and moved it to quarantine. \
         To undo: sudo lenscap quarantine restore {ID_SLOT} --allow",
        what(web).replace("can reach", "could reach")
    )
}

/// A [`removed`] message with the quarantine id in place of [`ID_SLOT`]
/// (the last one: the slot is written after the app's name, and names
/// cannot hold `<` or `>` anyway). Without an id — nothing was moved — the
/// person is pointed at the list.
pub fn with_quarantine_id(message: &str, id: Option<&str>) -> String {
    match (message.rfind(ID_SLOT), id) {
        (Some(at), Some(id)) => format!("{}{id}{}", &message[..at], &message[at + ID_SLOT.len()..]),
        (Some(_), None) => format!("{message} (IDs: sudo lenscap quarantine list)"),
        (None, _) => message.to_string(),
    }
}

/// A reinstall attempt moved into quarantine again (or, in monitor mode
/// or past the breaker, left in place).
pub fn reinstalled(app: &str, id: Option<&str>, done: bool) -> String {
    if done {
        with_quarantine_id(
            &format!(
                "{app} put back a helper lenscap had removed; lenscap moved it to quarantine \
                 again. To undo: sudo lenscap quarantine restore {ID_SLOT} --allow"
            ),
            id,
        )
    } else {
        format!(
            "{app} put back a helper lenscap had removed; lenscap would move it to \
             quarantine again. To let lenscap do that: sudo lenscap mode remediate"
        )
    }
}

/// A critical camera incident: the camera in use by (or through) a
/// flagged helper.
pub fn camera(app: &str) -> String {
    format!(
        "{app} turned the camera on through a hidden helper a web page can reach. \
         Check your camera; sudo lenscap events shows what happened"
    )
}

/// `NotifyUser all`: a finding that is only reported.
pub fn found(app: &str) -> String {
    format!("lenscap found something about {app} worth checking: sudo lenscap events")
}

/// Whether a notification was shown, or why not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Told {
    Shown,
    /// Held back: `NotifyUser`, the hourly repeat or the per-user cap.
    Held(&'static str),
}

/// Which incidents a setting tells of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A finding that is, or would be, remediated; a reinstall attempt.
    Remediation,
    /// A critical camera incident.
    Camera,
    /// A finding that is only reported.
    Report,
}

/// What has been told, across sweeps: the last time of each incident and
/// each user's recent notifications. Interior mutability because the
/// notify step reaches it through [`Notifier`], whose methods take
/// `&self`; the daemon is single-threaded.
#[derive(Debug)]
pub struct Telling {
    level: NotifyUser,
    told: RefCell<HashMap<String, Instant>>,
    per_user: RefCell<HashMap<Option<u32>, VecDeque<Instant>>>,
    /// The plan-less incidents of the last judgement: one still found is
    /// the same incident, not a new one an hour later.
    seen: RefCell<BTreeSet<String>>,
}

impl Telling {
    pub fn new(level: NotifyUser) -> Telling {
        Telling {
            level,
            told: RefCell::new(HashMap::new()),
            per_user: RefCell::new(HashMap::new()),
            seen: RefCell::new(BTreeSet::new()),
        }
    }

    /// A reloaded `NotifyUser`.
    pub fn set_level(&mut self, level: NotifyUser) {
        self.level = level;
    }

    /// May incident `key` (of `kind`, for `uid`) be told of now? Records
    /// it when it may.
    pub fn admit(
        &self,
        kind: Kind,
        key: &str,
        uid: Option<u32>,
        now: Instant,
    ) -> Result<(), &'static str> {
        match (self.level, kind) {
            (NotifyUser::None, _) => return Err("NotifyUser is none"),
            (NotifyUser::Remediations, Kind::Report) => {
                return Err("NotifyUser is remediations");
            }
            _ => {}
        }
        let mut told = self.told.borrow_mut();
        told.retain(|_, at| now.saturating_duration_since(*at) < REPEAT);
        if told.contains_key(key) {
            return Err("told of this within the hour");
        }
        let mut per_user = self.per_user.borrow_mut();
        let recent = per_user.entry(uid).or_default();
        while recent
            .front()
            .is_some_and(|at| now.saturating_duration_since(*at) >= REPEAT)
        {
            recent.pop_front();
        }
        if recent.len() >= PER_USER_PER_HOUR {
            return Err("this user's notifications for the hour are used up");
        }
        recent.push_back(now);
        told.insert(key.to_string(), now);
        Ok(())
    }

    /// Tell of incident `key` through `notifier`, unless held back.
    pub fn tell(
        &self,
        notifier: &dyn Notifier,
        kind: Kind,
        key: &str,
        uid: Option<u32>,
        title: &str,
        body: &str,
    ) -> Result<Told, String> {
        if let Err(why) = self.admit(kind, key, uid, Instant::now()) {
            tracing::debug!(incident = key, "not notified: {why}");
            return Ok(Told::Held(why));
        }
        notifier.notify(uid, title, body).map(|()| Told::Shown)
    }

    /// The incidents of one judgement that are told of without a plan:
    /// critical camera use, and (`NotifyUser all`) findings only reported.
    /// Allowed findings are never told of.
    pub fn findings(&self, notifier: &dyn Notifier, findings: &[Finding]) {
        let mut now_seen = BTreeSet::new();
        for f in findings {
            let (kind, key, title, body) = match (f.kind, f.verdict) {
                (_, Verdict::Allow) => continue,
                (FindingKind::CameraUse, _) if f.severity == Severity::Critical => {
                    let who = subject_of(f);
                    let session = f
                        .camera
                        .as_ref()
                        .and_then(|c| c.pid)
                        .or(f.process.as_ref().map(|p| p.pid));
                    (
                        Kind::Camera,
                        format!("camera:{who}:{session:?}"),
                        TITLE_CAMERA,
                        camera(&name_of(f)),
                    )
                }
                // Plans tell of what is remediated.
                (_, Verdict::Remediate) => continue,
                (_, Verdict::Report) => (
                    Kind::Report,
                    format!("found:{}", subject_of(f)),
                    TITLE_FOUND,
                    found(&name_of(f)),
                ),
            };
            let uid = f.process.as_ref().map(|p| p.uid).filter(|u| *u != 0);
            let new = !self.seen.borrow().contains(&key);
            now_seen.insert(key.clone());
            if !new {
                continue;
            }
            if let Err(e) = self.tell(notifier, kind, &key, uid, title, &body) {
                tracing::warn!(incident = key, error = %e, "could not notify");
            }
        }
        *self.seen.borrow_mut() = now_seen;
    }
}

/// What a finding is about, for its incident key.
fn subject_of(f: &Finding) -> String {
    if let Some(p) = &f.judged_path {
        return p.display().to_string();
    }
    if let Some(p) = &f.persistence {
        return p.path.display().to_string();
    }
    if let Some(p) = f.process.as_ref().and_then(|p| p.path.as_ref()) {
        return p.display().to_string();
    }
    if let Some(c) = &f.camera {
        return c.client.clone();
    }
    format!("{:?}", f.kind)
}

/// The app a finding is about, as a person knows it.
fn name_of(f: &Finding) -> String {
    let path = f
        .judged_path
        .as_deref()
        .or(f.process.as_ref().and_then(|p| p.path.as_deref()))
        .or(f.persistence.as_ref().map(|p| p.path.as_path()));
    if let Some(p) = path {
        return app_name(p);
    }
    // A camera session names its user by path or bundle id.
    if let Some(client) = f.camera.as_ref().map(|c| c.client.as_str()) {
        if client.starts_with('/') {
            return app_name(Path::new(client));
        }
        let name = clean_name(client);
        if !name.is_empty() {
            return name;
        }
    }
    f.process
        .as_ref()
        .map(|p| clean_name(&p.name))
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "An app".to_string())
}

/// The notify step's notifier in the daemon: every incident passes
/// [`Telling::admit`] before the platform shows it.
pub struct Gate<'a> {
    pub telling: &'a Telling,
    pub inner: &'a dyn Notifier,
}

impl std::fmt::Debug for Gate<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gate")
            .field("telling", self.telling)
            .finish_non_exhaustive()
    }
}

impl Notifier for Gate<'_> {
    fn notify(&self, uid: Option<u32>, title: &str, message: &str) -> Result<(), String> {
        self.inner.notify(uid, title, message)
    }

    fn notify_incident(
        &self,
        incident: &str,
        uid: Option<u32>,
        title: &str,
        message: &str,
    ) -> Result<Told, String> {
        self.telling
            .tell(self.inner, Kind::Remediation, incident, uid, title, message)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test
#[path = "tell/tests.rs"]
mod tests;
