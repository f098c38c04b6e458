//! The outbox under damage: kill -9 of a real child process in the
//! middle of appending, a file deleted or smashed, a full disk, a lock held
//! by another writer — plus the benchmark behind the numbers in the report.

use std::io::{BufRead, BufReader, Write as _};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use lenscap_events::{Body, GENESIS_HASH, Mode};

use super::super::*;
use super::{all, health, host, kill_step, open, remediation, verify_chain};
use crate::report::convert;

#[test]
fn deleted_outbox_continues_above_the_reserved_mark() {
    let tmp = tempfile::tempdir().unwrap();
    {
        let mut outbox = open(tmp.path(), 0);
        for i in 0..3 {
            outbox.append(Mode::Monitor, &health(i)).unwrap();
        }
    }
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(tmp.path().join(format!("{FILE_NAME}{suffix}")));
    }
    let mut outbox = open(tmp.path(), 0);
    let e = outbox.append(Mode::Monitor, &health(9)).unwrap();
    assert_eq!(e.seq, SEQ_RESERVE_STEP + 1);
    assert_eq!(e.prev_hash.as_str(), GENESIS_HASH, "a new chain");
    std::fs::write(tmp.path().join(SEQ_FILE), "garbage").unwrap();
    drop(outbox);
    let err = Outbox::open(tmp.path(), host(), "0.1.0", 0).unwrap_err();
    assert!(matches!(err, OutboxError::SeqMark { .. }), "{err}");
}

#[test]
fn corrupt_file_is_moved_aside_and_a_new_chain_starts() {
    let tmp = tempfile::tempdir().unwrap();
    {
        let mut outbox = open(tmp.path(), 0);
        for i in 0..3 {
            outbox.append(Mode::Monitor, &health(i)).unwrap();
        }
    }
    let path = tmp.path().join(FILE_NAME);
    std::fs::write(&path, vec![0x5a; 8192]).unwrap();
    let err = Outbox::open(tmp.path(), host(), "0.1.0", 0).unwrap_err();
    assert!(err.is_corrupt(), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains(&path.display().to_string()) && msg.contains("corrupt-"),
        "{msg}"
    );

    let (outbox, recovery) =
        open_or_recover(tmp.path(), host(), "0.1.0", 0, Mode::Monitor).unwrap();
    let recovery = recovery.expect("a recovery");
    assert!(recovery.moved_to.exists());
    assert_eq!(std::fs::read(&recovery.moved_to).unwrap(), vec![0x5a; 8192]);
    // Above every seq the damaged file could have handed out.
    assert!(recovery.first_seq > 3);
    let events = all(&outbox);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].seq, recovery.first_seq);
    assert_eq!(events[0].prev_hash.as_str(), GENESIS_HASH);
    let Body::AgentHealth(h) = &events[0].body else {
        panic!("not health")
    };
    assert!(h.message.contains("damaged"), "{}", h.message);
    drop(outbox);
    // A healthy outbox is simply opened.
    let (_, again) = open_or_recover(tmp.path(), host(), "0.1.0", 0, Mode::Monitor).unwrap();
    assert_eq!(again, None);
}

#[test]
fn damaged_page_is_found_at_open() {
    let tmp = tempfile::tempdir().unwrap();
    {
        let mut outbox = open(tmp.path(), 0);
        let items: Vec<(Mode, Body)> = (0..400).map(|i| (Mode::Monitor, health(i))).collect();
        outbox.append_all(&items).unwrap();
    }
    // Closing checkpointed the WAL into the main file; smash interior pages.
    let path = tmp.path().join(FILE_NAME);
    let mut bytes = std::fs::read(&path).unwrap();
    assert!(bytes.len() > 16 * 4096, "{}", bytes.len());
    for b in &mut bytes[4096 * 2..4096 * 12] {
        *b = 0xff;
    }
    std::fs::write(&path, &bytes).unwrap();
    let err = Outbox::open(tmp.path(), host(), "0.1.0", 0).unwrap_err();
    assert!(err.is_corrupt(), "{err}");
}

#[test]
fn disk_full_writes_nothing_and_the_event_can_be_retried() {
    let tmp = tempfile::tempdir().unwrap();
    let mut outbox = open(tmp.path(), 0);
    outbox.append(Mode::Monitor, &health(0)).unwrap();
    let pages: i64 = outbox
        .conn
        .query_row("PRAGMA page_count", [], |r| r.get(0))
        .unwrap();
    // SQLite's own way to make a database full.
    outbox
        .conn
        .pragma_update(None, "max_page_count", pages)
        .unwrap();
    let big = convert::permission_missing("full_disk_access", &"x".repeat(64 * 1024));
    let err = outbox.append(Mode::Monitor, &big).unwrap_err();
    assert!(matches!(err, OutboxError::DiskFull { .. }), "{err}");
    assert_eq!(outbox.stats().unwrap().last_seq, 1);
    outbox
        .conn
        .pragma_update(None, "max_page_count", 1_000_000)
        .unwrap();
    let e = outbox.append(Mode::Monitor, &big).unwrap();
    assert_eq!(e.seq, 2);
    verify_chain(&all(&outbox), true);
}

#[test]
fn locked_by_another_writer_is_a_typed_error() {
    let tmp = tempfile::tempdir().unwrap();
    let mut outbox = open(tmp.path(), 0);
    let other = rusqlite::Connection::open(tmp.path().join(FILE_NAME)).unwrap();
    other.execute_batch("BEGIN IMMEDIATE").unwrap();
    let err = outbox.append(Mode::Monitor, &health(0)).unwrap_err();
    assert!(matches!(err, OutboxError::Locked { .. }), "{err}");
    other.execute_batch("ROLLBACK").unwrap();
    assert_eq!(outbox.append(Mode::Monitor, &health(0)).unwrap().seq, 1);
}

const CHILD_ENV: &str = "LENSCAP_OUTBOX_KILL_CHILD_DIR";

/// Not a test by itself: the child of `kill9_loses_no_returned_event`
/// (run with the env var set), appending until it is killed and printing
/// each seq only after `append` returned.
#[test]
fn kill9_child_process() {
    let Some(dir) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let mut outbox = open(Path::new(&dir), 0);
    let mut out = std::io::stdout().lock();
    for i in 0.. {
        let body = if i % 3 == 0 {
            remediation(i)
        } else {
            health(i)
        };
        let e = outbox.append(Mode::Remediate, &body).unwrap();
        writeln!(out, "appended {}", e.seq).unwrap();
        out.flush().unwrap();
    }
}

#[test]
fn kill9_loses_no_returned_event() {
    let tmp = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut printed_total = 0;
    for round in 0..4u64 {
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "report::outbox::tests::durability::kill9_child_process",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, tmp.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(seq) = line.strip_prefix("appended ") {
                    let _ = tx.send(seq.parse::<u64>().unwrap());
                }
            }
        });
        // Wait for the first append, then kill at a varying moment.
        let first = rx.recv_timeout(Duration::from_secs(60)).unwrap();
        let jitter = u64::from(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .subsec_nanos(),
        ) % 150;
        std::thread::sleep(Duration::from_millis(20 + round * 60 + jitter));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        reader.join().unwrap();
        let mut printed = vec![first];
        printed.extend(rx.try_iter());
        printed_total += printed.len();

        let outbox = open(tmp.path(), 0);
        let events = all(&outbox);
        let stored: std::collections::HashSet<u64> = events.iter().map(|e| e.seq).collect();
        for seq in &printed {
            assert!(
                stored.contains(seq),
                "round {round}: seq {seq} returned but lost"
            );
        }
        assert_eq!(events.first().map(|e| e.seq), Some(1));
        verify_chain(&events, true);
        println!(
            "round {round}: {} appends returned before SIGKILL, {} events stored",
            printed.len(),
            events.len()
        );
    }
    assert!(printed_total >= 4, "{printed_total}");
}

/// Measurements for the report and docs/benchmarks.md:
/// `cargo test -p lenscap --release --lib report::outbox::tests::durability::bench -- --ignored --nocapture`
#[test]
#[ignore = "benchmark: run by hand"]
fn bench_append() {
    let tmp = tempfile::tempdir().unwrap();
    let mut outbox = open(tmp.path(), 0);
    let body = kill_step();
    for _ in 0..50 {
        outbox.append(Mode::Remediate, &body).unwrap();
    }
    let n = 2000;
    let mut times: Vec<Duration> = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        outbox.append(Mode::Remediate, &body).unwrap();
        times.push(t.elapsed());
    }
    times.sort();
    let p = |q: f64| times[((n as f64 - 1.0) * q) as usize].as_micros();
    println!(
        "one append (commit, synchronous=FULL), n={n}: p50 {} µs, p95 {} µs, p99 {} µs",
        p(0.5),
        p(0.95),
        p(0.99)
    );

    let tmp = tempfile::tempdir().unwrap();
    let mut outbox = open(tmp.path(), 0);
    let t = Instant::now();
    for _ in 0..100_000 {
        outbox.append(Mode::Remediate, &body).unwrap();
    }
    println!(
        "100,000 appends, one commit each: {:.1} s",
        t.elapsed().as_secs_f64()
    );

    let tmp = tempfile::tempdir().unwrap();
    let mut outbox = open(tmp.path(), 0);
    let items: Vec<(Mode, Body)> = (0..1000).map(|_| (Mode::Remediate, body.clone())).collect();
    let t = Instant::now();
    for _ in 0..100 {
        outbox.append_all(&items).unwrap();
    }
    println!(
        "100,000 appends in commits of 1000: {:.2} s",
        t.elapsed().as_secs_f64()
    );
    let t = Instant::now();
    let batch = outbox.pending(100).unwrap();
    println!(
        "pending(100) with 100,000 queued: {} µs",
        t.elapsed().as_micros()
    );
    let seqs: Vec<u64> = batch.iter().map(|e| e.seq).collect();
    let t = Instant::now();
    outbox.mark_sent(&seqs).unwrap();
    println!("mark_sent(100): {} µs", t.elapsed().as_micros());
    drop(outbox);
    let t = Instant::now();
    let outbox = open(tmp.path(), 0);
    println!(
        "open with 100,000 events (quick_check): {} ms",
        t.elapsed().as_millis()
    );
    println!("stats: {:?}", outbox.stats().unwrap());
}
