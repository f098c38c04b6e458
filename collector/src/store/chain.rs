//! Sequence gaps and hash-chain breaks, worked out without I/O.
//!
//! Each host numbers its events 1, 2, 3, … and each event names the hash of
//! the one before (docs/events.md). Events may arrive late, twice, or out
//! of order (an agent retries after the collector was down), so a gap is
//! *recorded* when a higher seq arrives and *shrunk or closed* when the
//! missing seqs arrive later. Only seqs that never arrived stay in a gap.
//!
//! The store loads what this needs under the host's lock — the host's
//! highest seq and its hash, the gaps the batch's late events fall in, and
//! the stored neighbours (seq ± 1) of late events — and applies the plan.

use std::collections::{BTreeMap, BTreeSet};

use lenscap_events::GENESIS_HASH;

/// The host's chain before the batch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChainState {
    pub max_seq: i64,
    /// Hash of the stored event at `max_seq`.
    pub last_hash: Option<String>,
}

/// A newly stored event's place in the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub seq: i64,
    pub uid: String,
    pub hash: String,
    pub prev_hash: String,
}

/// Seqs `first..=last` that have not arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Gap {
    pub first: i64,
    pub last: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakKind {
    /// `prev_hash` is not the hash of the stored predecessor: an event was
    /// altered or replaced.
    HashMismatch,
    /// A second, different event (new uid) with a seq already stored: the
    /// agent's state was reset, or someone replays.
    SeqReused,
}

impl BreakKind {
    pub fn as_str(self) -> &'static str {
        match self {
            BreakKind::HashMismatch => "hash_mismatch",
            BreakKind::SeqReused => "seq_reused",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Break {
    pub seq: i64,
    pub uid: String,
    pub kind: BreakKind,
    pub expected: Option<String>,
    pub actual: Option<String>,
}

/// What to write after the batch's events are stored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Gaps to delete, by `first` (the key with the host).
    pub delete_gaps: Vec<i64>,
    pub insert_gaps: Vec<Gap>,
    pub breaks: Vec<Break>,
    pub state: ChainState,
    /// How many more seqs are missing after the batch than before (the
    /// host's `missing_events` counter moves by this).
    pub missing_delta: i64,
}

/// Work out the plan. `new` are the events of the batch that were not
/// stored before (duplicates removed), any order. `gaps` must hold every
/// stored gap containing the seq of a late event (seq ≤ `state.max_seq`);
/// `stored` every stored event at seq ± 1 of a late event, by seq.
pub fn plan(
    state: &ChainState,
    gaps: &[Gap],
    stored: &BTreeMap<i64, Vec<Link>>,
    new: &[Link],
) -> Plan {
    let mut sorted: Vec<&Link> = new.iter().collect();
    sorted.sort_by_key(|l| l.seq);

    let mut open: BTreeSet<Gap> = gaps.iter().copied().collect();
    let mut batch: BTreeMap<i64, &Link> = BTreeMap::new();
    let mut breaks = Vec::new();
    let mut max_seq = state.max_seq;
    let mut last_hash = state.last_hash.clone();

    for link in sorted {
        let s = link.seq;
        let late = s <= max_seq;
        if late {
            match open.iter().find(|g| g.first <= s && s <= g.last).copied() {
                Some(g) => {
                    open.remove(&g);
                    if g.first < s {
                        open.insert(Gap {
                            first: g.first,
                            last: s - 1,
                        });
                    }
                    if s < g.last {
                        open.insert(Gap {
                            first: s + 1,
                            last: g.last,
                        });
                    }
                }
                None => {
                    // Not missing, so this seq is taken by another uid.
                    breaks.push(Break {
                        seq: s,
                        uid: link.uid.clone(),
                        kind: BreakKind::SeqReused,
                        expected: None,
                        actual: None,
                    });
                    continue;
                }
            }
        } else if s > max_seq + 1 {
            open.insert(Gap {
                first: max_seq + 1,
                last: s - 1,
            });
        }

        // The predecessor's hash, where the predecessor is known.
        let expected: Vec<&str> = if s == 1 {
            vec![GENESIS_HASH]
        } else if let Some(prev) = batch.get(&(s - 1)) {
            vec![prev.hash.as_str()]
        } else if !late && s - 1 == max_seq {
            last_hash.as_deref().into_iter().collect()
        } else {
            stored
                .get(&(s - 1))
                .map(|v| v.iter().map(|l| l.hash.as_str()).collect())
                .unwrap_or_default()
        };
        if !expected.is_empty() && !expected.contains(&link.prev_hash.as_str()) {
            breaks.push(Break {
                seq: s,
                uid: link.uid.clone(),
                kind: BreakKind::HashMismatch,
                expected: expected.first().map(|h| h.to_string()),
                actual: Some(link.prev_hash.clone()),
            });
        }
        // A late event also completes the link to its stored successor.
        if late {
            for succ in stored.get(&(s + 1)).into_iter().flatten() {
                if succ.prev_hash != link.hash {
                    breaks.push(Break {
                        seq: succ.seq,
                        uid: succ.uid.clone(),
                        kind: BreakKind::HashMismatch,
                        expected: Some(link.hash.clone()),
                        actual: Some(succ.prev_hash.clone()),
                    });
                }
            }
        }
        batch.insert(s, link);
        if s > max_seq {
            max_seq = s;
            last_hash = Some(link.hash.clone());
        }
    }

    let before: BTreeSet<Gap> = gaps.iter().copied().collect();
    let size = |g: &Gap| g.last - g.first + 1;
    Plan {
        delete_gaps: before.difference(&open).map(|g| g.first).collect(),
        insert_gaps: open.difference(&before).copied().collect(),
        breaks,
        state: ChainState { max_seq, last_hash },
        // Every gap the batch changed was loaded (`gaps` holds those its
        // late events fall in) or is new, so the difference of the two
        // sums is the change over all the host's gaps.
        missing_delta: open.iter().map(size).sum::<i64>() - before.iter().map(size).sum::<i64>(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A well-formed chain: hash of seq n is "h<n>".
    fn link(seq: i64) -> Link {
        Link {
            seq,
            uid: format!("u{seq}"),
            hash: format!("h{seq}"),
            prev_hash: if seq == 1 {
                GENESIS_HASH.to_string()
            } else {
                format!("h{}", seq - 1)
            },
        }
    }

    /// Run batches through `plan` like the store does, keeping gaps and
    /// stored links in memory.
    struct Sim {
        state: ChainState,
        gaps: BTreeSet<Gap>,
        stored: BTreeMap<i64, Vec<Link>>,
        breaks: Vec<Break>,
        /// The sum of the plans' `missing_delta`s.
        missing: i64,
    }

    impl Sim {
        fn new() -> Sim {
            Sim {
                state: ChainState::default(),
                gaps: BTreeSet::new(),
                stored: BTreeMap::new(),
                breaks: Vec::new(),
                missing: 0,
            }
        }
        fn ingest(&mut self, batch: Vec<Link>) {
            let gaps: Vec<Gap> = self.gaps.iter().copied().collect();
            let p = plan(&self.state, &gaps, &self.stored, &batch);
            for first in &p.delete_gaps {
                self.gaps.retain(|g| g.first != *first);
            }
            self.gaps.extend(p.insert_gaps.iter().copied());
            self.breaks.extend(p.breaks);
            self.missing += p.missing_delta;
            for l in batch {
                self.stored.entry(l.seq).or_default().push(l);
            }
            self.state = p.state;
        }
    }

    #[test]
    fn in_order_batches_make_no_gap_and_no_break() {
        let mut sim = Sim::new();
        sim.ingest((1..=100).map(link).collect());
        sim.ingest((101..=200).map(link).collect());
        assert!(sim.gaps.is_empty());
        assert!(sim.breaks.is_empty());
        assert_eq!(sim.state.max_seq, 200);
        assert_eq!(sim.state.last_hash.as_deref(), Some("h200"));
    }

    #[test]
    fn a_gap_opens_then_shrinks_and_closes_as_late_events_arrive() {
        let mut sim = Sim::new();
        sim.ingest(vec![link(1), link(2), link(7)]);
        assert_eq!(sim.gaps, BTreeSet::from([Gap { first: 3, last: 6 }]));
        sim.ingest(vec![link(4)]);
        assert_eq!(
            sim.gaps,
            BTreeSet::from([Gap { first: 3, last: 3 }, Gap { first: 5, last: 6 }])
        );
        sim.ingest(vec![link(6), link(3), link(5)]);
        assert!(sim.gaps.is_empty());
        assert!(sim.breaks.is_empty(), "{:?}", sim.breaks);
    }

    #[test]
    fn first_event_after_seq_one_means_the_early_ones_are_missing() {
        let mut sim = Sim::new();
        sim.ingest(vec![link(5)]);
        assert_eq!(sim.gaps, BTreeSet::from([Gap { first: 1, last: 4 }]));
    }

    #[test]
    fn an_altered_event_breaks_the_chain_on_both_sides() {
        let mut sim = Sim::new();
        sim.ingest(vec![link(1), link(3)]);
        let mut forged = link(2);
        forged.hash = "forged".into();
        forged.prev_hash = "h0-wrong".into();
        sim.ingest(vec![forged]);
        let kinds: Vec<(i64, BreakKind)> = sim.breaks.iter().map(|b| (b.seq, b.kind)).collect();
        assert_eq!(
            kinds,
            vec![(2, BreakKind::HashMismatch), (3, BreakKind::HashMismatch)]
        );
        assert_eq!(sim.breaks[0].expected.as_deref(), Some("h1"));
        assert!(sim.gaps.is_empty());
    }

    #[test]
    fn a_reused_seq_is_a_break_not_a_gap_fill() {
        let mut sim = Sim::new();
        sim.ingest((1..=3).map(link).collect());
        let mut again = link(2);
        again.uid = "other".into();
        sim.ingest(vec![again]);
        assert_eq!(sim.breaks.len(), 1);
        assert_eq!(sim.breaks[0].kind, BreakKind::SeqReused);
        assert!(sim.gaps.is_empty());
    }

    #[test]
    fn a_wrong_genesis_is_a_break() {
        let mut sim = Sim::new();
        let mut first = link(1);
        first.prev_hash = "x".into();
        sim.ingest(vec![first]);
        assert_eq!(sim.breaks[0].kind, BreakKind::HashMismatch);
    }

    proptest! {
        /// Whatever the order and batching, and whichever seqs never
        /// arrive: the gaps are exactly the missing seqs below the highest
        /// seen, and a clean chain has no breaks.
        #[test]
        fn gaps_are_exactly_the_missing_seqs(
            present in prop::collection::btree_set(1i64..60, 1..50),
            order in any::<prop::sample::Index>(),
            cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..6),
        ) {
            let mut seqs: Vec<i64> = present.iter().copied().collect();
            // A deterministic shuffle picked by proptest.
            let rot = order.index(seqs.len());
            seqs.rotate_left(rot);
            seqs.reverse();
            let mut bounds: Vec<usize> = cuts.iter().map(|c| c.index(seqs.len() + 1)).collect();
            bounds.push(0);
            bounds.push(seqs.len());
            bounds.sort();
            bounds.dedup();
            let mut sim = Sim::new();
            for w in bounds.windows(2) {
                sim.ingest(seqs[w[0]..w[1]].iter().map(|s| link(*s)).collect());
            }
            let max = *present.iter().max().unwrap();
            let missing: BTreeSet<i64> = (1..=max).filter(|s| !present.contains(s)).collect();
            let in_gaps: BTreeSet<i64> = sim.gaps.iter().flat_map(|g| g.first..=g.last).collect();
            prop_assert_eq!(sim.missing, missing.len() as i64);
            prop_assert_eq!(in_gaps, missing);
            // Gaps never touch or overlap.
            let v: Vec<Gap> = sim.gaps.iter().copied().collect();
            for w in v.windows(2) {
                prop_assert!(w[0].last + 1 < w[1].first);
            }
            prop_assert!(sim.breaks.is_empty(), "{:?}", sim.breaks);
            prop_assert_eq!(sim.state.max_seq, max);
        }
    }
}
