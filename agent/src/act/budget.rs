//! The remediation budget: `MaxRemediationsPerHour` guards against a bad
//! rule, and no user can spend it for someone else.
//!
//! - **Per actor.** Each actor (the uid whose reach bounds a plan, see
//!   `plan::Plan::actor`) has its own window. A user who floods their own
//!   LaunchAgents opens only their own breaker; root's and other users'
//!   remediations go on.
//! - **Distinct running programs.** A plan costs only when it stops
//!   something that runs or could run: a process to terminate, or a
//!   program that exists. A plist whose program does not exist and runs
//!   nowhere is moved for free, so a dozen decoy plists cannot open the
//!   breaker. The same program remediated again (a helper that keeps
//!   coming back) is one program, not many.
//!
//! When a charge would go past the limit the plan runs in monitor mode (it
//! is journaled and reported as "would do"), and the first refusal after
//! the breaker was closed says so in a critical health event naming the
//! actor and the programs it spent the window on.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use crate::config::Mode;

use super::plan::Plan;

/// The window of the remediation circuit breaker.
pub const BREAKER_WINDOW: Duration = Duration::from_secs(3600);

/// The budget's answer for one plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Charge {
    /// Costs nothing: it stops nothing that runs or exists.
    Free,
    /// Within the budget (counted, or the program was already counted).
    Spent,
    /// Over the budget: act in monitor mode. `opened` is true the first
    /// time (the breaker just opened); `programs` are the window's.
    Over { opened: bool, programs: Vec<String> },
}

/// An actor's breaker that closed again (its window passed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Closed {
    pub actor: Option<u32>,
}

/// Per-actor windows of distinct programs.
#[derive(Debug)]
pub struct Budget {
    max: usize,
    window: Duration,
    spent: BTreeMap<Option<u32>, VecDeque<(Instant, String)>>,
    open: BTreeMap<Option<u32>, bool>,
}

impl Budget {
    pub fn new(max: u64, window: Duration) -> Budget {
        Budget {
            max: usize::try_from(max).unwrap_or(usize::MAX),
            window,
            spent: BTreeMap::new(),
            open: BTreeMap::new(),
        }
    }

    /// A new limit (configuration reloaded); the windows are kept.
    pub fn set_max(&mut self, max: u64) {
        self.max = usize::try_from(max).unwrap_or(usize::MAX);
    }

    /// Charge one plan for `program`, on behalf of `actor`.
    pub fn charge(
        &mut self,
        actor: Option<u32>,
        program: &str,
        costly: bool,
        now: Instant,
    ) -> Charge {
        if !costly {
            return Charge::Free;
        }
        self.expire(now);
        let spent = self.spent.entry(actor).or_default();
        if spent.iter().any(|(_, p)| p == program) {
            spent.push_back((now, program.to_string()));
            return Charge::Spent;
        }
        let distinct = distinct(spent);
        if distinct.len() >= self.max {
            let was_open = self.open.insert(actor, true).unwrap_or(false);
            return Charge::Over {
                opened: !was_open,
                programs: distinct,
            };
        }
        spent.push_back((now, program.to_string()));
        Charge::Spent
    }

    /// The mode one plan runs in: `configured`, unless the plan's actor is
    /// over the budget (then monitor). The programs the window was spent
    /// on come back the first time, when this plan opened the breaker, so
    /// the caller says so once (a critical health event).
    pub fn mode_for(
        &mut self,
        configured: Mode,
        plan: &Plan,
        now: Instant,
    ) -> (Mode, Option<Vec<String>>) {
        if configured == Mode::Monitor {
            return (Mode::Monitor, None);
        }
        match self.charge(plan.actor, &plan.key, plan.costs, now) {
            Charge::Free | Charge::Spent => (Mode::Remediate, None),
            Charge::Over { opened, programs } => (Mode::Monitor, opened.then_some(programs)),
        }
    }

    /// Is `actor`'s breaker open? (For reinstall undo, which is not a new
    /// remediation but must not run past an open breaker either.)
    pub fn is_open(&mut self, actor: Option<u32>, now: Instant) -> bool {
        self.expire(now);
        self.open.get(&actor).copied().unwrap_or(false)
    }

    /// Is any actor's breaker open? (For `status`.)
    pub fn any_open(&self) -> bool {
        self.open.values().any(|&o| o)
    }

    /// Forget what left the window; breakers whose actor is back under the
    /// limit close, and are returned so they can be reported.
    pub fn expire(&mut self, now: Instant) -> Vec<Closed> {
        for spent in self.spent.values_mut() {
            while spent
                .front()
                .is_some_and(|(t, _)| now.duration_since(*t) >= self.window)
            {
                spent.pop_front();
            }
        }
        self.spent.retain(|_, s| !s.is_empty());
        let mut closed = Vec::new();
        for (actor, open) in &mut self.open {
            let under = self
                .spent
                .get(actor)
                .is_none_or(|s| distinct(s).len() < self.max);
            if *open && under {
                *open = false;
                closed.push(Closed { actor: *actor });
            }
        }
        self.open.retain(|_, o| *o);
        closed
    }
}

fn distinct(spent: &VecDeque<(Instant, String)>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for (_, p) in spent {
        if !out.contains(p) {
            out.push(p.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    #[test]
    fn inert_plans_cost_nothing() {
        let mut b = Budget::new(2, HOUR);
        let t = Instant::now();
        for n in 0..100 {
            assert_eq!(
                b.charge(Some(501), &format!("/gone/{n}"), false, t),
                Charge::Free
            );
        }
        assert_eq!(
            b.charge(Some(501), "/Users/eve/.h/helper", true, t),
            Charge::Spent
        );
        assert!(!b.any_open());
    }

    #[test]
    fn the_same_program_again_is_one_program() {
        let mut b = Budget::new(2, HOUR);
        let t = Instant::now();
        for _ in 0..10 {
            assert_eq!(b.charge(Some(501), "/h", true, t), Charge::Spent);
        }
        assert_eq!(b.charge(Some(501), "/i", true, t), Charge::Spent);
        assert!(!b.any_open());
    }

    #[test]
    fn one_actors_flood_opens_only_their_breaker_and_says_what() {
        let mut b = Budget::new(2, HOUR);
        let t = Instant::now();
        assert_eq!(b.charge(Some(501), "/a", true, t), Charge::Spent);
        assert_eq!(b.charge(Some(501), "/b", true, t), Charge::Spent);
        assert_eq!(
            b.charge(Some(501), "/c", true, t),
            Charge::Over {
                opened: true,
                programs: vec!["/a".into(), "/b".into()]
            }
        );
        // Reported once, not on every refusal.
        assert!(matches!(
            b.charge(Some(501), "/d", true, t),
            Charge::Over { opened: false, .. }
        ));
        // Another user, and root, are untouched by it.
        assert_eq!(b.charge(Some(502), "/x", true, t), Charge::Spent);
        assert_eq!(b.charge(Some(0), "/y", true, t), Charge::Spent);
        assert!(b.is_open(Some(501), t) && !b.is_open(Some(502), t));
        // An hour later the window is empty and the breaker closes.
        let later = t + HOUR;
        assert_eq!(b.expire(later), vec![Closed { actor: Some(501) }]);
        assert!(!b.any_open());
        assert_eq!(b.charge(Some(501), "/c", true, later), Charge::Spent);
    }

    #[test]
    fn zero_means_nothing_is_remediated() {
        let mut b = Budget::new(0, HOUR);
        assert!(matches!(
            b.charge(Some(0), "/a", true, Instant::now()),
            Charge::Over { opened: true, .. }
        ));
    }
}
