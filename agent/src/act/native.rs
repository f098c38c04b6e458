//! The platform's implementations of act's traits: [`ProcessControl`]
//! (identity and verified signals for `kill`), [`Notifier`] (telling
//! the user) and [`Sessions`] (who is logged in) for [`Native`]. Here rather than in `platform/`, which never
//! imports act: the platform answers questions, act decides what to ask.

use crate::model::{ProcessIdentity, SignalOutcome};
use crate::platform::{Native, Platform, PlatformError};

use super::execute::{Notifier, Sessions};
use super::kill::ProcessControl;

impl ProcessControl for Native {
    fn process(&self, pid: u32) -> Result<ProcessIdentity, PlatformError> {
        Platform::process(self, pid)
    }

    fn signal_verified(
        &self,
        expected: &ProcessIdentity,
        signal: i32,
    ) -> Result<SignalOutcome, PlatformError> {
        Native::signal_verified(self, expected, signal)
    }

    fn child_pids(&self, pid: u32) -> Result<Vec<u32>, PlatformError> {
        Native::child_pids(self, pid)
    }
}

impl Notifier for Native {
    fn notify(&self, uid: Option<u32>, title: &str, message: &str) -> Result<(), String> {
        self.notify_user(uid, title, message)
    }
}

impl Sessions for Native {
    fn console_users(&self) -> Result<Vec<u32>, String> {
        Platform::console_users(self).map_err(|e| e.to_string())
    }

    fn user_name(&self, uid: u32) -> Option<String> {
        Platform::user_name_of(self, uid)
    }
}
