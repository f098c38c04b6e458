//! Outbox tests on real files in temporary directories: the chain across
//! reopen, the uploader's queue, history filters, the disk bound, and a
//! reader beside the writer. Damage and kill -9: `tests/durability.rs`.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use lenscap_events::{Body, Event, GENESIS_HASH, Host, Kind, Mode};

use super::*;
use crate::report::convert::{
    self, FileAction, ProcessAction, StepContext, StepOutcome, file_target,
};

fn host() -> Host {
    Host {
        hostname: "test-host".into(),
        hardware_uuid: None,
        serial: None,
        machine_id: Some("0123456789abcdef0123456789abcdef".into()),
    }
}

fn open(dir: &Path, max_bytes: u64) -> Outbox {
    Outbox::open(dir, host(), "0.1.0", max_bytes).unwrap_or_else(|e| panic!("{e}"))
}

fn health(i: u64) -> Body {
    convert::config_changed(&[format!("Key{i}")], "preferences")
}

fn remediation(i: u64) -> Body {
    convert::file_remediation(
        file_target(Path::new(&format!("/Users/a/.helper{i}"))),
        FileAction::Quarantine,
        Some("q1"),
        &StepOutcome::Success(None),
        &StepContext::default(),
    )
}

fn kill_step() -> Body {
    convert::process_remediation(
        convert::job_target("us.zoom.ZoomDaemon", None),
        ProcessAction::StopJob,
        &StepOutcome::WouldDo,
        &StepContext::default(),
    )
}

fn all(outbox: &Outbox) -> Vec<Event> {
    outbox
        .history(&HistoryFilter {
            limit: usize::MAX >> 1,
            ..HistoryFilter::default()
        })
        .unwrap()
}

/// Every link whose two ends are stored must hold; with `contiguous`, no
/// seq may be missing either.
fn verify_chain(events: &[Event], contiguous: bool) {
    for pair in events.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        assert!(b.seq > a.seq, "seq went back: {} then {}", a.seq, b.seq);
        if contiguous {
            assert_eq!(b.seq, a.seq + 1, "gap after {}", a.seq);
        }
        if b.seq == a.seq + 1 {
            assert_eq!(
                b.prev_hash,
                a.hash().unwrap(),
                "broken link at seq {}",
                b.seq
            );
        }
    }
    for e in events {
        e.check().unwrap();
    }
}

#[test]
fn open_creates_private_files_and_schema() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("state");
    let mut outbox = open(&dir, 0);
    outbox.append(Mode::Monitor, &health(1)).unwrap();
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&dir.join(FILE_NAME)), 0o600);
    assert_eq!(mode(&dir.join(format!("{FILE_NAME}-wal"))), 0o600);
    assert_eq!(mode(&dir.join(SEQ_FILE)), 0o600);
    let version: i64 = outbox
        .conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, store::SCHEMA_VERSION);
    let journal: String = outbox
        .conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(journal, "wal");
    let sync: i64 = outbox
        .conn
        .query_row("PRAGMA synchronous", [], |r| r.get(0))
        .unwrap();
    assert_eq!(sync, 2, "synchronous=FULL");
}

#[test]
fn refuses_a_world_writable_state_dir_and_a_linked_file() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("state");
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let err = Outbox::open(&dir, host(), "0.1.0", 0).unwrap_err();
    assert!(matches!(err, OutboxError::Insecure { .. }), "{err}");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    let elsewhere = tmp.path().join("elsewhere");
    std::fs::write(&elsewhere, b"").unwrap();
    std::os::unix::fs::symlink(&elsewhere, dir.join(FILE_NAME)).unwrap();
    let err = Outbox::open(&dir, host(), "0.1.0", 0).unwrap_err();
    assert!(matches!(err, OutboxError::Insecure { .. }), "{err}");
    assert_eq!(std::fs::read(&elsewhere).unwrap(), b"");
}

#[test]
fn seq_and_chain_continue_across_reopen() {
    let tmp = tempfile::tempdir().unwrap();
    let first = {
        let mut outbox = open(tmp.path(), 0);
        let a = outbox.append(Mode::Monitor, &health(1)).unwrap();
        assert_eq!(a.seq, 1);
        assert_eq!(a.prev_hash.as_str(), GENESIS_HASH);
        outbox.append(Mode::Monitor, &remediation(2)).unwrap();
        outbox.append(Mode::Remediate, &kill_step()).unwrap()
    };
    let mut outbox = open(tmp.path(), 0);
    let next = outbox.append(Mode::Remediate, &health(4)).unwrap();
    assert_eq!(next.seq, first.seq + 1);
    assert_eq!(next.prev_hash, first.hash().unwrap());
    let events = all(&outbox);
    assert_eq!(
        events.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![1, 2, 3, 4]
    );
    verify_chain(&events, true);
    assert_eq!(events[2], first, "stored exactly as returned");
}

#[test]
fn append_all_is_one_contiguous_commit() {
    let tmp = tempfile::tempdir().unwrap();
    let mut outbox = open(tmp.path(), 0);
    let items: Vec<(Mode, Body)> = (0..5).map(|i| (Mode::Monitor, health(i))).collect();
    let events = outbox.append_all(&items).unwrap();
    assert_eq!(
        events.iter().map(|e| e.seq).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5]
    );
    verify_chain(&all(&outbox), true);
}

#[test]
fn pending_and_mark_sent() {
    let tmp = tempfile::tempdir().unwrap();
    let mut outbox = open(tmp.path(), 0);
    for i in 0..5 {
        outbox.append(Mode::Monitor, &health(i)).unwrap();
    }
    assert_eq!(outbox.pending(10).unwrap().len(), 5);
    assert_eq!(
        outbox
            .pending(2)
            .unwrap()
            .iter()
            .map(|e| e.seq)
            .collect::<Vec<_>>(),
        [1, 2]
    );
    // A batch acknowledged twice, and a seq that does not exist.
    assert_eq!(outbox.mark_sent(&[1, 2, 99]).unwrap(), 2);
    assert_eq!(outbox.mark_sent(&[1, 2]).unwrap(), 0);
    let pending: Vec<u64> = outbox.pending(10).unwrap().iter().map(|e| e.seq).collect();
    assert_eq!(pending, [3, 4, 5]);
    let stats = outbox.stats().unwrap();
    assert_eq!(stats.events, 5);
    assert_eq!(stats.pending, 3);
    assert_eq!(stats.oldest_pending_seq, Some(3));
    assert!(stats.oldest_pending_time_ms.is_some());
    assert_eq!(stats.last_seq, 5);
    assert!(stats.bytes > 5 * store::ROW_OVERHEAD);
    assert!(stats.file_bytes > 0);
    // Sent events stay in the local history.
    assert_eq!(all(&outbox).len(), 5);
}

#[test]
fn history_filters_newest_last() {
    let tmp = tempfile::tempdir().unwrap();
    let mut outbox = open(tmp.path(), 0);
    for i in 0..6 {
        let body = if i % 2 == 0 {
            health(i)
        } else {
            remediation(i)
        };
        outbox.append(Mode::Monitor, &body).unwrap();
    }
    let last_two = outbox
        .history(&HistoryFilter {
            limit: 2,
            ..HistoryFilter::default()
        })
        .unwrap();
    assert_eq!(last_two.iter().map(|e| e.seq).collect::<Vec<_>>(), [5, 6]);
    let files = outbox
        .history(&HistoryFilter {
            kinds: vec![Kind::FileRemediation, Kind::ProcessRemediation],
            ..HistoryFilter::default()
        })
        .unwrap();
    assert_eq!(files.iter().map(|e| e.seq).collect::<Vec<_>>(), [2, 4, 6]);
    let future = outbox
        .history(&HistoryFilter {
            since_ms: Some(unix_now_ms() + 60_000),
            ..HistoryFilter::default()
        })
        .unwrap();
    assert!(future.is_empty());
}

#[test]
fn disk_bound_never_drops_a_remediation() {
    let tmp = tempfile::tempdir().unwrap();
    let max = 16 * 1024;
    let mut outbox = open(tmp.path(), max);
    let mut remediations = Vec::new();
    let mut returned = Vec::new();
    for i in 0..300 {
        let body = if i % 20 == 0 {
            remediation(i)
        } else {
            health(i)
        };
        let e = outbox.append(Mode::Remediate, &body).unwrap();
        if i % 20 == 0 {
            remediations.push(e.seq);
        }
        returned.push(e.seq);
    }
    let events = all(&outbox);
    let stored: Vec<u64> = events.iter().map(|e| e.seq).collect();
    for seq in &remediations {
        assert!(stored.contains(seq), "remediation seq {seq} was dropped");
    }
    // Something was dropped, said so, and what is left links up.
    let fulls: Vec<&Event> = events
        .iter()
        .filter(|e| matches!(&e.body, Body::AgentHealth(h) if h.status.name() == "outbox_full"))
        .collect();
    assert!(!fulls.is_empty(), "no outbox_full event");
    let stats = outbox.stats().unwrap();
    assert!(stats.dropped_total > 0);
    assert!(stats.last_seq >= *returned.last().unwrap());
    assert!(stats.bytes <= max + 4096, "{} bytes stored", stats.bytes);
    verify_chain(&events, false);
    // Only health events are missing.
    for seq in 1..=stats.last_seq {
        if !stored.contains(&seq) {
            assert!(!remediations.contains(&seq));
        }
    }
}

#[test]
fn sent_events_go_first_and_lose_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let mut outbox = open(tmp.path(), 0);
    let mut seqs = Vec::new();
    for i in 0..40 {
        seqs.push(outbox.append(Mode::Monitor, &health(i)).unwrap().seq);
    }
    outbox.mark_sent(&seqs[..30]).unwrap();
    let bytes = outbox.stats().unwrap().bytes;
    // Room for about two thirds: only sent events need to go.
    outbox.set_max_bytes(bytes * 2 / 3);
    let e = outbox.append(Mode::Monitor, &health(99)).unwrap();
    let stats = outbox.stats().unwrap();
    assert_eq!(stats.dropped_total, 0);
    assert_eq!(stats.pending, 11, "every unsent event kept");
    assert_eq!(stats.last_seq, e.seq, "no outbox_full: nothing was lost");
    assert!(stats.bytes <= bytes * 2 / 3);
}

#[test]
fn over_bound_with_only_remediations_reports_once() {
    let tmp = tempfile::tempdir().unwrap();
    let mut outbox = open(tmp.path(), 2048);
    for i in 0..20 {
        outbox.append(Mode::Remediate, &remediation(i)).unwrap();
    }
    let events = all(&outbox);
    let fulls = events
        .iter()
        .filter(|e| matches!(&e.body, Body::AgentHealth(_)))
        .count();
    assert_eq!(fulls, 1, "one outbox_full for one episode");
    assert_eq!(
        events
            .iter()
            .filter(|e| e.kind() == Kind::FileRemediation)
            .count(),
        20
    );
}

#[test]
fn reader_works_beside_an_active_writer() {
    let tmp = tempfile::tempdir().unwrap();
    let err = OutboxReader::open(tmp.path()).unwrap_err();
    assert!(matches!(err, OutboxError::Missing { .. }), "{err}");
    let mut outbox = open(tmp.path(), 0);
    outbox.append(Mode::Monitor, &health(0)).unwrap();
    let reader = OutboxReader::open(tmp.path()).unwrap();
    assert_eq!(reader.history(&HistoryFilter::default()).unwrap().len(), 1);
    // The writer keeps committing while the reader is open…
    for i in 1..5 {
        outbox.append(Mode::Monitor, &health(i)).unwrap();
    }
    // …and the reader sees each commit.
    let events = reader.history(&HistoryFilter::default()).unwrap();
    assert_eq!(events.len(), 5);
    assert_eq!(reader.stats().unwrap().pending, 5);
    assert_eq!(reader.pending(2).unwrap().len(), 2);
    // A reader in the middle of a read does not block a commit.
    let mut stmt = reader.conn.prepare("SELECT seq FROM events").unwrap();
    let mut rows = stmt.query([]).unwrap();
    assert!(rows.next().unwrap().is_some());
    outbox.append(Mode::Monitor, &health(9)).unwrap();
    drop(rows);
    drop(stmt);
    drop(outbox);
    // And after the daemon stopped.
    let reader = OutboxReader::open(tmp.path()).unwrap();
    assert_eq!(reader.stats().unwrap().last_seq, 6);
}

mod durability;
