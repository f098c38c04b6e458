//! Enrollment, delivery of every event exactly once, a batch posted twice,
//! a gap where an event truly never existed, and HTTPS.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Duration;

use lenscap::report::hostid;
use lenscap::report::outbox::Outbox;
use lenscap_e2e::{Daemon, temp_tree, wait_until};
use lenscap_events::Mode;

use super::{
    Collector, agent_config, assert_contiguous, assert_stored_exactly_once, host_row, http,
    outbox_events, start_helper, stored_events, wait_delivered,
};

#[test]
fn agent_enrolls_and_delivers_every_event_exactly_once_and_a_replay_changes_nothing() {
    let tree = temp_tree();
    let root = tree.path();
    let mut c = Collector::start(&root.join("collector"));
    let secret = c.token("enroll");
    let reader = c.token("reader");
    // A helper in a hidden folder, so there are findings to deliver.
    let (_helper, _) = start_helper(
        &root.join("Users/alice/.acmeopener/acmeopener"),
        &root.join("helper.port"),
    );
    let config = agent_config(root, &c.url(), &secret, &[]);
    let mut d = Daemon::start(&config, &[]);
    let state = d.state_dir().to_path_buf();

    let (outbox, stored) = wait_delivered(&state, &c, &reader, Duration::from_secs(60));
    assert!(
        outbox
            .iter()
            .any(|e| e.body.kind().as_str() == "detection_finding"),
        "no finding in {outbox:#?}"
    );
    assert_contiguous(&outbox);
    assert_stored_exactly_once(&outbox, &stored);

    // The token: root-only, and never in the log, nor the secret.
    let token_file = state.join("host-token");
    let meta = std::fs::metadata(&token_file).unwrap();
    assert_eq!(meta.mode() & 0o777, 0o600);
    assert_eq!(meta.uid(), unsafe { libc::geteuid() });
    let token = std::fs::read_to_string(&token_file)
        .unwrap()
        .trim()
        .to_string();
    assert!(token.starts_with("lc_host_"), "{token}");
    let log = d.log();
    assert!(
        !log.contains(&token) && !log.contains(&secret),
        "a secret in the log:\n{log}"
    );
    let shown = std::process::Command::new(lenscap_e2e::lenscap_bin())
        .args(["config", "show", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&shown.stdout);
    assert!(
        shown.contains("(set)") && !shown.contains(&secret),
        "{shown}"
    );

    // (d) The same batch posted again with the host token: stored once.
    let batch: Vec<_> = outbox.iter().take(20).collect();
    let body = serde_json::to_vec(&batch).unwrap();
    let mut resp = http()
        .post(format!("{}/api/v1/events", c.url()))
        .header("Authorization", format!("Bearer {token}"))
        .header("Content-Type", "application/json")
        .send(&body[..])
        .unwrap();
    let answer: serde_json::Value = resp.body_mut().read_json().unwrap();
    assert_eq!(resp.status().as_u16(), 200, "{answer}");
    assert_eq!(
        answer,
        serde_json::json!({"accepted": 0, "duplicate": batch.len()})
    );
    assert_stored_exactly_once(&outbox_events(&state), &stored_events(&c, &reader));
    let host = host_row(&c, &reader);
    assert_eq!(host["gaps"], 0, "{host:#}");
    assert_eq!(host["chain_breaks"], 0, "{host:#}");
    assert_eq!(host["mode"], "monitor", "{host:#}");

    // Enrollment happens once: a restart reuses the token.
    d.stop();
    let mut d = Daemon::start(&config, &[]);
    let (outbox, stored) = wait_delivered(&state, &c, &reader, Duration::from_secs(60));
    assert_stored_exactly_once(&outbox, &stored);
    assert_eq!(
        std::fs::read_to_string(&token_file).unwrap().trim(),
        token,
        "enrolled again"
    );
    d.stop();
    c.stop();
}

#[test]
fn a_collector_that_forgot_the_token_gets_one_new_enrollment() {
    let tree = temp_tree();
    let root = tree.path();
    let c = Collector::start(&root.join("collector"));
    let secret = c.token("enroll");
    let reader = c.token("reader");
    let config = agent_config(root, &c.url(), &secret, &[]);
    let mut d = Daemon::start(&config, &[]);
    let state = d.state_dir().to_path_buf();
    let (before, _) = wait_delivered(&state, &c, &reader, Duration::from_secs(60));
    let first = std::fs::read_to_string(state.join("host-token")).unwrap();

    // The collector loses every host token (a restored backup, a revoke).
    let db = rusqlite::Connection::open(root.join("collector/collector.db")).unwrap();
    db.execute("DELETE FROM tokens WHERE role = 'host'", [])
        .unwrap();
    drop(db);
    // New events: a helper's finding. The upload meets a 401, the agent
    // enrolls again with its secret, and everything arrives.
    let (_helper, _) = start_helper(
        &root.join("Users/alice/.later/laterd"),
        &root.join("later.port"),
    );
    wait_until(Duration::from_secs(20), "a new event", || {
        (outbox_events(&state).len() > before.len()).then_some(())
    });
    let (outbox, stored) = wait_delivered(&state, &c, &reader, Duration::from_secs(60));
    assert_stored_exactly_once(&outbox, &stored);
    let second = std::fs::read_to_string(state.join("host-token")).unwrap();
    assert_ne!(first, second, "a new token was stored");
    assert!(d.log().contains("enrolling again"), "{}", d.log());
    let host = host_row(&c, &reader);
    assert_eq!(host["gaps"], 0, "the same host, its history kept: {host:#}");
    d.stop();
}

#[test]
fn a_gap_shows_only_where_an_event_never_existed() {
    let tree = temp_tree();
    let root = tree.path();
    let c = Collector::start(&root.join("collector"));
    let secret = c.token("enroll");
    let reader = c.token("reader");
    let config = agent_config(root, &c.url(), &secret, &[]);
    let state = root.join("state");
    // Ten events queued before the agent ever ran, as the daemon writes
    // them (same host identity), then seq 5 deleted from the file before
    // anything could send it.
    {
        let mut outbox =
            Outbox::open(&state, hostid::detect(), env!("CARGO_PKG_VERSION"), 0).unwrap();
        let items: Vec<_> = (0..10)
            .map(|i| {
                (
                    Mode::Monitor,
                    lenscap::report::convert::config_changed(&[format!("Key{i}")], "test"),
                )
            })
            .collect();
        outbox.append_all(&items).unwrap();
    }
    delete_event(&state, 5);

    let mut d = Daemon::start(&config, &[]);
    let (outbox, stored) = wait_delivered(&state, &c, &reader, Duration::from_secs(60));
    assert!(outbox.iter().all(|e| e.seq != 5));
    assert_stored_exactly_once(&outbox, &stored);
    let host = wait_until(Duration::from_secs(10), "the host row", || {
        let h = host_row(&c, &reader);
        (h["last_seq"].as_u64() >= Some(11)).then_some(h)
    });
    assert_eq!(host["gaps"], 1, "exactly one gap: {host:#}");
    assert_eq!(host["missing_events"], 1, "exactly seq 5: {host:#}");
    assert_eq!(host["chain_breaks"], 0, "{host:#}");
    d.stop();
}

/// `DELETE FROM events WHERE seq = ?` in the agent's outbox file.
fn delete_event(state: &Path, seq: i64) {
    let db = rusqlite::Connection::open(state.join("outbox.sqlite")).unwrap();
    let n = db
        .execute("DELETE FROM events WHERE seq = ?1 AND sent = 0", [seq])
        .unwrap();
    assert_eq!(n, 1);
}

#[test]
fn https_trusts_the_system_roots_and_nothing_else() {
    let tls = Path::new(env!("CARGO_MANIFEST_DIR")).join("../collector/tests/fixtures/tls");
    let tree = temp_tree();
    let root = tree.path();
    let cert = tls.join("cert.pem").display().to_string();
    let key = tls.join("key.pem").display().to_string();
    let c = Collector::start_with(
        &root.join("collector"),
        &["--tls-cert", &cert, "--tls-key", &key],
        "https",
    );
    let secret = c.token("enroll");
    let url = format!("https://localhost:{}", c.port);

    // The test CA is not among the system's roots: no enrollment, so
    // neither the secret nor any event went anywhere.
    let untrusting = root.join("untrusting");
    std::fs::create_dir_all(&untrusting).unwrap();
    let config = agent_config(&untrusting, &url, &secret, &[]);
    let mut d = Daemon::start(&config, &[]);
    d.wait_sweeps(3);
    assert!(!untrusting.join("state/host-token").exists());
    let log = wait_until(Duration::from_secs(20), "a TLS error in the log", || {
        let log = d.log();
        log.contains("no host token").then_some(log)
    });
    assert!(log.to_lowercase().contains("certificate"), "{log}");
    d.stop();

    // The same CA as a system root (the Linux build's verifier reads
    // SSL_CERT_FILE as the system's store, as the System keychain is on a
    // Mac): delivered.
    let trusting = root.join("trusting");
    std::fs::create_dir_all(&trusting).unwrap();
    let config = agent_config(&trusting, &url, &secret, &[]);
    let ca = tls.join("ca.pem");
    let mut d = Daemon::start(&config, &[("SSL_CERT_FILE", ca.as_os_str())]);
    let state = d.state_dir().to_path_buf();
    wait_until(Duration::from_secs(60), "enrolled over https", || {
        state.join("host-token").exists().then_some(())
    });
    let reader = c.token("reader");
    let https = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .tls_config(
            ureq::tls::TlsConfig::builder()
                .provider(ureq::tls::TlsProvider::Rustls)
                .root_certs(ureq::tls::RootCerts::new_with_certs(&[
                    ureq::tls::Certificate::from_pem(&std::fs::read(&ca).unwrap()).unwrap(),
                ]))
                .build(),
        )
        .build()
        .new_agent();
    let count = || {
        let mut resp = https
            .get(format!("{url}/api/v1/hosts"))
            .header("Authorization", format!("Bearer {reader}"))
            .call()
            .unwrap();
        let hosts: serde_json::Value = resp.body_mut().read_json().unwrap();
        hosts["hosts"][0]["events"].as_u64().unwrap_or(0)
    };
    wait_until(Duration::from_secs(60), "events over https", || {
        (count() >= 1).then_some(())
    });
    d.stop();
}
