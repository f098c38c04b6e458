//! Collector benchmark: ingest throughput in batches of 100 over HTTP, and
//! `GET /api/v1/events` latency with a large stored set.
//!
//! ```text
//! cargo run --release -p lenscap-collector --example bench -- --db sqlite
//! LENSCAP_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test \
//!   cargo run --release -p lenscap-collector --example bench -- --db postgres
//! ```
//!
//! **Fleet mode** (`--url`): against a `lenscap-collector serve` already
//! running (any version, so two builds can be compared in one run; see
//! bench/fleet-ab.sh), enrol simulated Macs through the API — each
//! enrolled, each sending two chained events — up to each size in
//! `--fleet`, and after each size time what readers fetch: the hosts API,
//! the fleet page, one host's page, the Remediations page, and (where the
//! collector has them) the Incidents page and API.
//!
//! Everything runs on this machine: a real collector on 127.0.0.1:0 and
//! client threads sending pre-built gzip-less JSON batches (building and
//! hashing events is the agent's cost, so it is done before the clock
//! starts). The PostgreSQL run uses a schema of its own and drops it.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark: fail loudly
// The allocator `lenscap-collector` runs with (src/main.rs).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use lenscap_collector::auth::{new_token, token_hash};
use lenscap_collector::config::{Limits, NetLimits, ServeConfig};
use lenscap_collector::server;
use lenscap_collector::store::{DbUrl, Role};
use lenscap_events::samples;
use lenscap_events::{Body, Event, Host, Mode, Sha256Hex, Verdict};
use sqlx::Connection;

#[derive(Debug, Parser)]
struct Args {
    /// sqlite or postgres (URL from LENSCAP_TEST_POSTGRES_URL).
    #[arg(long, default_value = "sqlite")]
    db: String,
    /// Events stored in total before the query measurement.
    #[arg(long, default_value_t = 1_000_000)]
    events: u64,
    /// Events in the timed ingest run (a prefix of the total).
    #[arg(long, default_value_t = 200_000)]
    ingest_events: u64,
    /// Hosts the events are spread over.
    #[arg(long, default_value_t = 50)]
    hosts: u64,
    /// Concurrent uploading clients (agents uploading at the same time).
    #[arg(long, default_value_t = 8)]
    clients: usize,
    /// Queries per query shape.
    #[arg(long, default_value_t = 100)]
    queries: usize,
    /// Alerting on: a webhook destination for every incident (severity
    /// info and up, every state) whose receiver, on 127.0.0.1, answers
    /// 200; compare the ingest rate with and without.
    #[arg(long)]
    alerts: bool,
    /// Fleet mode: the base URL of a running collector.
    #[arg(long)]
    url: Option<String>,
    /// Fleet mode: an enroll token of that collector.
    #[arg(long)]
    enroll_token: Option<String>,
    /// Fleet mode: a reader token of that collector.
    #[arg(long)]
    reader_token: Option<String>,
    /// Fleet mode: fleet sizes to measure at, ascending.
    #[arg(long, value_delimiter = ',', default_value = "5000,20000")]
    fleet: Vec<u64>,
    /// Fleet mode: after enrolling the last size, send more events (the
    /// bench's mix of findings, steps and health) until this many are
    /// stored in all, from the first `--busy-hosts` Macs, then measure
    /// again.
    #[arg(long, default_value_t = 0)]
    fleet_events: u64,
    /// Fleet mode: how many Macs send the extra events.
    #[arg(long, default_value_t = 1000)]
    busy_hosts: u64,
    /// Fleet mode: enrol and send nothing, only time every page of a
    /// collector already holding a fleet of the last `--fleet` size (to
    /// time two builds on copies of one database: bench/fleet-copy-ab.sh).
    #[arg(long)]
    fleet_measure_only: bool,
}

const BATCH: u64 = 100;

fn host(i: u64) -> Host {
    Host {
        hostname: format!("bench-mac-{i:03}"),
        hardware_uuid: Some(format!("00000000-0000-4000-8000-{i:012}")),
        serial: Some(format!("BENCH{i:07}")),
        machine_id: None,
    }
}

/// Batches of 100 events of host `h`, seqs `from..from+count`, chained
/// after `prev`. Returns the JSON bodies and the last hash.
fn batches(h: &Host, from: u64, count: u64, prev: Sha256Hex) -> (Vec<Vec<u8>>, Sha256Hex) {
    let t0 = 1_764_312_000_000i64;
    let mut events: Vec<Event> = (from..from + count)
        .map(|seq| {
            let body = match seq % 10 {
                0 => Body::AgentHealth(samples::started()),
                1..=3 => Body::DetectionFinding(Box::new(samples::zoom_finding(
                    Verdict::Remediate,
                    Some("catalog:zoom-opener"),
                ))),
                4..=7 => {
                    Body::DetectionFinding(Box::new(samples::zoom_finding(Verdict::Report, None)))
                }
                8 => Body::ProcessRemediation(samples::kill_zoom(false)),
                _ => Body::FileRemediation(samples::quarantine_zoom()),
            };
            samples::event(h, seq, t0 + seq as i64 * 1000, Mode::Remediate, body)
        })
        .collect();
    let last = samples::link(&mut events, prev);
    let bodies = events
        .chunks(BATCH as usize)
        .map(|c| serde_json::to_vec(c).unwrap())
        .collect();
    (bodies, last)
}

struct Fleet {
    hosts: Vec<(Host, String)>,
    next_seq: Vec<u64>,
    last_hash: Vec<Sha256Hex>,
}

impl Fleet {
    /// Build `per_host` more events for every host, as (token, body) work.
    fn work(&mut self, per_host: u64) -> Vec<(String, Vec<u8>)> {
        let mut out = Vec::new();
        for i in 0..self.hosts.len() {
            let (h, token) = &self.hosts[i];
            let (bodies, last) = batches(h, self.next_seq[i], per_host, self.last_hash[i].clone());
            self.next_seq[i] += per_host;
            self.last_hash[i] = last;
            // Interleave hosts so concurrent clients hit different hosts.
            out.push(
                bodies
                    .into_iter()
                    .map(|b| (token.clone(), b))
                    .collect::<Vec<_>>(),
            );
        }
        let mut interleaved = Vec::new();
        let longest = out.iter().map(Vec::len).max().unwrap_or(0);
        for k in 0..longest {
            for per in &out {
                if let Some(w) = per.get(k) {
                    interleaved.push(w.clone());
                }
            }
        }
        interleaved
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(120)))
        .build()
        .into()
}

/// Send all work with `clients` threads; events per second.
fn ingest(base: &str, work: &[(String, Vec<u8>)], clients: usize) -> f64 {
    let next = AtomicUsize::new(0);
    let started = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..clients {
            s.spawn(|| {
                let a = agent();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some((token, body)) = work.get(i) else {
                        break;
                    };
                    let mut resp = a
                        .post(format!("{base}/api/v1/events"))
                        .header("authorization", format!("Bearer {token}"))
                        .header("content-type", "application/json")
                        .send(&body[..])
                        .unwrap();
                    let text = resp.body_mut().read_to_string().unwrap();
                    assert_eq!(resp.status(), 200, "{text}");
                }
            });
        }
    });
    (work.len() as u64 * BATCH) as f64 / started.elapsed().as_secs_f64()
}

/// (batches, seconds spent in the store) from /metrics.
fn store_time(a: &ureq::Agent, base: &str) -> (f64, f64) {
    let text = a
        .get(format!("{base}/metrics"))
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    let value = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse::<f64>().ok())
            .unwrap()
    };
    (
        value("lenscap_collector_batches_total"),
        value("lenscap_collector_ingest_seconds_total"),
    )
}

/// CPU seconds used so far by this process's threads, by thread name
/// (Linux `/proc/self/task/*/stat`; empty elsewhere). The collector's
/// threads are `tokio-rt-worker` (HTTP, JSON, hashing) and
/// `sqlx-sqlite-worker` (SQLite; the name is cut to 15 bytes); the
/// uploading clients are `bench`.
fn cpu_by_thread() -> std::collections::BTreeMap<String, f64> {
    let mut out = std::collections::BTreeMap::new();
    // The whole process, finished threads included: what is not in a
    // live thread below was spent by the (finished) client threads.
    if let Some(total) = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| cpu_secs(&s).map(|(_, secs)| secs))
    {
        out.insert("process".to_string(), total);
    }
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return out;
    };
    for task in tasks.flatten() {
        if let Some((comm, secs)) = std::fs::read_to_string(task.path().join("stat"))
            .ok()
            .and_then(|s| cpu_secs(&s))
        {
            *out.entry(comm).or_insert(0.0) += secs;
        }
    }
    out
}

/// (comm, utime + stime in seconds) from a `/proc/…/stat` line: "pid
/// (comm) state ppid …", where comm may hold spaces, so split at the last
/// ')'; utime and stime are fields 14 and 15, in ticks of 1/100 s.
fn cpu_secs(stat: &str) -> Option<(String, f64)> {
    let (open, close) = (stat.find('(')?, stat.rfind(')')?);
    let fields: Vec<&str> = stat.get(close + 2..)?.split(' ').collect();
    let ticks = |i: usize| fields.get(i - 3).and_then(|f| f.parse::<f64>().ok());
    Some((
        stat[open + 1..close].to_string(),
        (ticks(14)? + ticks(15)?) / 100.0,
    ))
}

/// Print CPU microseconds per event spent by each kind of thread between
/// two [`cpu_by_thread`] snapshots.
fn print_cpu(before: &std::collections::BTreeMap<String, f64>, events: u64) {
    let after = cpu_by_thread();
    if after.is_empty() {
        return;
    }
    let used = |name: &str| {
        after.get(name).copied().unwrap_or(0.0) - before.get(name).copied().unwrap_or(0.0)
    };
    let per_event = |secs: f64| secs * 1e6 / events as f64;
    let mut threads = 0.0;
    let mut parts = Vec::new();
    for name in after.keys().filter(|n| *n != "process") {
        let secs = used(name);
        threads += secs;
        if secs > 0.0 {
            parts.push(format!("{name} {:.1}", per_event(secs)));
        }
    }
    parts.push(format!(
        "clients {:.1}",
        per_event((used("process") - threads).max(0.0))
    ));
    println!("  CPU µs per event by thread: {}", parts.join(", "));
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

fn main() {
    let args = Args::parse();
    if let Some(url) = &args.url {
        fleet_mode(&args, url);
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut pg_cleanup = None;
    let url = match args.db.as_str() {
        "sqlite" => format!("sqlite:{}", dir.path().join("bench.db").display()),
        "postgres" => {
            let base = std::env::var("LENSCAP_TEST_POSTGRES_URL")
                .expect("set LENSCAP_TEST_POSTGRES_URL for --db postgres");
            let schema = format!("lc_bench_{}", std::process::id());
            rt.block_on(pg_exec(&base, &format!("CREATE SCHEMA {schema}")));
            pg_cleanup = Some((base.clone(), schema.clone()));
            let sep = if base.contains('?') { '&' } else { '?' };
            format!("{base}{sep}options[search_path]={schema}")
        }
        other => panic!("--db sqlite|postgres, not {other}"),
    };
    let config = ServeConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        db: DbUrl::parse(&url).unwrap(),
        tls: None,
        limits: Limits::default(),
        // Every simulated host connects from 127.0.0.1.
        net: NetLimits {
            max_connections_per_ip: 0,
            ..NetLimits::default()
        },
        // `store_time` scrapes /metrics without a token.
        public_metrics: true,
        alerts: Default::default(),
    };
    let running = rt.block_on(server::start(config)).unwrap();
    let base = running.base_url();
    let store = running.store.clone();
    let mk = |role| {
        let t = new_token(role).unwrap();
        rt.block_on(store.insert_token(&token_hash(&t), role, None, None, 0))
            .unwrap();
        t
    };
    let enroll = mk(Role::Enroll);
    let reader = mk(Role::Reader);
    let alerts_received = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    if args.alerts {
        let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
        let port = server.server_addr().to_ip().unwrap().port();
        let count = alerts_received.clone();
        std::thread::spawn(move || {
            for req in server.incoming_requests() {
                count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let _ = req.respond(tiny_http::Response::empty(200));
            }
        });
        let said = rt
            .block_on(lenscap_collector::admin::alert_add(
                &store,
                lenscap_collector::admin::AlertAdd {
                    name: "bench".into(),
                    webhook: Some(format!("http://127.0.0.1:{port}/hook")),
                    min_severity: "info".into(),
                    ..Default::default()
                },
                0,
            ))
            .unwrap();
        println!("alerting on: {}", said.lines().next().unwrap_or(""));
    }
    let a = agent();
    let hosts: Vec<(Host, String)> = (0..args.hosts)
        .map(|i| {
            let h = host(i);
            let mut resp = a
                .post(format!("{base}/api/v1/enroll"))
                .header("authorization", format!("Bearer {enroll}"))
                .header("content-type", "application/json")
                .send(serde_json::json!({"host": h, "agent_version": "0.1.0"}).to_string())
                .unwrap();
            let v: serde_json::Value =
                serde_json::from_str(&resp.body_mut().read_to_string().unwrap()).unwrap();
            (h, v["token"].as_str().unwrap().to_string())
        })
        .collect();
    let n = args.hosts as usize;
    let mut fleet = Fleet {
        hosts,
        next_seq: vec![1; n],
        last_hash: vec![Sha256Hex::genesis(); n],
    };

    println!(
        "backend: {}  hosts: {}  clients: {}",
        args.db, args.hosts, args.clients
    );
    let per_host = args.ingest_events / args.hosts / BATCH * BATCH;
    let work = fleet.work(per_host);
    let cpu_before = cpu_by_thread();
    let rate = ingest(&base, &work, args.clients);
    println!(
        "ingest: {} events in batches of {BATCH}: {:.0} events/s",
        work.len() as u64 * BATCH,
        rate
    );
    print_cpu(&cpu_before, work.len() as u64 * BATCH);
    drop(work);
    if args.alerts {
        // Let the grouper and sender catch up, then say what was told.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
        while rt.block_on(store.incidents_pending()).unwrap() > 0
            && std::time::Instant::now() < deadline
        {
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        std::thread::sleep(std::time::Duration::from_secs(2));
        let c = rt.block_on(store.alert_counts()).unwrap();
        println!(
            "alerts: {} received by the webhook; queue {} pending, {} sent, {} dead",
            alerts_received.load(std::sync::atomic::Ordering::Relaxed),
            c.pending,
            c.sent,
            c.dead
        );
    }
    let (batches, store_secs) = store_time(&a, &base);
    println!(
        "  of which storing (transaction incl. commit): {:.2} ms per batch on average",
        store_secs / batches * 1e3
    );

    // Fill up to the total in chunks, reporting the rate as it grows.
    let mut stored = per_host * args.hosts;
    while stored < args.events {
        let chunk = (200_000u64).min(args.events - stored);
        let per_host = (chunk / args.hosts / BATCH).max(1) * BATCH;
        let work = fleet.work(per_host);
        let cpu_before = cpu_by_thread();
        let rate = ingest(&base, &work, args.clients);
        stored += per_host * args.hosts;
        println!("fill: {stored} stored, last chunk {rate:.0} events/s");
        print_cpu(&cpu_before, per_host * args.hosts);
    }

    let t0 = 1_764_312_000_000i64;
    let mid = t0 + (fleet.next_seq[0] as i64 / 2) * 1000;
    let shapes: Vec<(&str, String)> = vec![
        ("newest 100", "limit=100".into()),
        ("one host", "host=bench-mac-007&limit=100".into()),
        ("kind", "kind=file_remediation&limit=100".into()),
        ("verdict", "verdict=remediate&limit=100".into()),
        ("rule", "rule=catalog%3Azoom-opener&limit=100".into()),
        (
            "time window",
            format!("since={}&until={}&limit=100", mid, mid + 60_000),
        ),
        (
            "host + kind + window",
            format!(
                "host=bench-mac-042&kind=detection_finding&since={}&until={}&limit=100",
                t0, mid
            ),
        ),
    ];
    let mut all = Vec::new();
    println!(
        "GET /api/v1/events with {stored} events stored ({} requests per shape):",
        args.queries
    );
    for (name, q) in &shapes {
        let mut times = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..args.queries {
            // Walk pages: later requests go deeper via the cursor.
            let url = match &cursor {
                Some(c) => format!("{base}/api/v1/events?{q}&cursor={c}"),
                None => format!("{base}/api/v1/events?{q}"),
            };
            let started = Instant::now();
            let mut resp = a
                .get(&url)
                .header("authorization", format!("Bearer {reader}"))
                .call()
                .unwrap();
            let text = resp
                .body_mut()
                .with_config()
                .limit(64 << 20)
                .read_to_string()
                .unwrap();
            times.push(started.elapsed());
            assert_eq!(resp.status(), 200, "{text}");
            let v: serde_json::Value = serde_json::from_str(&text).unwrap();
            cursor = v["next_cursor"].as_str().map(str::to_string);
        }
        times.sort();
        println!(
            "  {name:<22} p50 {:>6.1} ms  p95 {:>6.1} ms  max {:>6.1} ms",
            percentile(&times, 0.5).as_secs_f64() * 1e3,
            percentile(&times, 0.95).as_secs_f64() * 1e3,
            times.last().unwrap().as_secs_f64() * 1e3
        );
        all.extend(times);
    }
    all.sort();
    println!(
        "  {:<22} p50 {:>6.1} ms  p95 {:>6.1} ms  max {:>6.1} ms",
        "all shapes",
        percentile(&all, 0.5).as_secs_f64() * 1e3,
        percentile(&all, 0.95).as_secs_f64() * 1e3,
        all.last().unwrap().as_secs_f64() * 1e3
    );

    rt.block_on(running.shutdown()).unwrap();
    if let Some((base, schema)) = pg_cleanup {
        rt.block_on(pg_exec(&base, &format!("DROP SCHEMA {schema} CASCADE")));
    }
}

async fn pg_exec(url: &str, sql: &str) {
    let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string()))
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
}

/// Enrol host `i` and send its two chained events; with `clients`
/// threads over `range`. Returns (index, host, token, last hash) of the
/// hosts below `keep`, for sending them more.
fn enrol_and_send(
    base: &str,
    enroll: &str,
    range: std::ops::Range<u64>,
    clients: usize,
    keep: u64,
) -> Vec<(u64, Host, String, Sha256Hex)> {
    let next = std::sync::atomic::AtomicU64::new(range.start);
    let kept = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..clients {
            s.spawn(|| {
                let a = agent();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= range.end {
                        break;
                    }
                    let h = Host {
                        hostname: format!("fleet-mac-{i:06}"),
                        hardware_uuid: Some(format!("00000000-0000-4000-9000-{i:012}")),
                        serial: Some(format!("FLEET{i:07}")),
                        machine_id: None,
                    };
                    let mut resp = a
                        .post(format!("{base}/api/v1/enroll"))
                        .header("authorization", format!("Bearer {enroll}"))
                        .header("content-type", "application/json")
                        .send(serde_json::json!({"host": h, "agent_version": "0.1.0"}).to_string())
                        .unwrap();
                    let text = resp.body_mut().read_to_string().unwrap();
                    assert_eq!(resp.status(), 200, "{text}");
                    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
                    let token = v["token"].as_str().unwrap();
                    // Every tenth Mac has an open finding (it needs
                    // attention); the rest report health.
                    let t0 = 1_764_312_000_000i64 + i as i64;
                    let second = if i.is_multiple_of(10) {
                        Body::DetectionFinding(Box::new(samples::zoom_finding(
                            Verdict::Remediate,
                            Some("catalog:zoom-opener"),
                        )))
                    } else {
                        Body::AgentHealth(samples::started())
                    };
                    let mut events = vec![
                        samples::event(
                            &h,
                            1,
                            t0,
                            Mode::Remediate,
                            Body::AgentHealth(samples::started()),
                        ),
                        samples::event(&h, 2, t0 + 1000, Mode::Remediate, second),
                    ];
                    let last = samples::link(&mut events, Sha256Hex::genesis());
                    if i < keep {
                        kept.lock()
                            .unwrap()
                            .push((i, h.clone(), token.to_string(), last));
                    }
                    let mut resp = a
                        .post(format!("{base}/api/v1/events"))
                        .header("authorization", format!("Bearer {token}"))
                        .header("content-type", "application/json")
                        .send(serde_json::to_vec(&events).unwrap().as_slice())
                        .unwrap();
                    let text = resp.body_mut().read_to_string().unwrap();
                    assert_eq!(resp.status(), 200, "{text}");
                }
            });
        }
    });
    let mut kept = kept.into_inner().unwrap();
    kept.sort_by_key(|k| k.0);
    kept
}

/// GET `path` `n` times (bearer token for /api, the session cookie for
/// /ui); sorted times and the answer's size, or `None` when the
/// collector does not serve it (404).
fn time_get(
    a: &ureq::Agent,
    base: &str,
    path: &str,
    reader: &str,
    n: usize,
) -> Option<(Vec<Duration>, usize)> {
    let mut times = Vec::with_capacity(n);
    let mut size = 0;
    for _ in 0..n {
        let req = a.get(format!("{base}{path}"));
        let req = if path.starts_with("/ui") {
            req.header("cookie", format!("lenscap_session={reader}"))
        } else {
            req.header("authorization", format!("Bearer {reader}"))
        };
        let started = Instant::now();
        let mut resp = req.call().unwrap();
        let text = resp
            .body_mut()
            .with_config()
            .limit(1 << 30)
            .read_to_string()
            .unwrap();
        times.push(started.elapsed());
        if resp.status() == 404 {
            return None;
        }
        assert_eq!(resp.status(), 200, "{path}: {text}");
        size = text.len();
    }
    times.sort();
    Some((times, size))
}

fn fleet_mode(args: &Args, base: &str) {
    let reader = args.reader_token.as_deref().expect("--reader-token");
    let a = agent();
    if args.fleet_measure_only {
        let size = args.fleet.last().copied().unwrap_or(0);
        measure_fleet(args, &a, base, reader, size);
        return;
    }
    let enroll = args.enroll_token.as_deref().expect("--enroll-token");
    let mut enrolled = 0;
    let mut busy: Vec<(u64, Host, String, Sha256Hex)> = Vec::new();
    for &size in &args.fleet {
        let started = Instant::now();
        busy.extend(enrol_and_send(
            base,
            enroll,
            enrolled..size,
            args.clients,
            args.busy_hosts,
        ));
        println!(
            "fleet: {size} hosts (enrolled {} more in {:.1} s)",
            size - enrolled,
            started.elapsed().as_secs_f64()
        );
        enrolled = size;
        measure_fleet(args, &a, base, reader, size);
    }
    let mut stored = enrolled * 2;
    if args.fleet_events > stored && !busy.is_empty() {
        let n = busy.len();
        let mut fleet = Fleet {
            hosts: busy.iter().map(|b| (b.1.clone(), b.2.clone())).collect(),
            next_seq: vec![3; n],
            last_hash: busy.iter().map(|b| b.3.clone()).collect(),
        };
        let started = Instant::now();
        while stored < args.fleet_events {
            let chunk = 200_000u64.min(args.fleet_events - stored);
            let per_host = (chunk / n as u64 / BATCH).max(1) * BATCH;
            let work = fleet.work(per_host);
            let rate = ingest(base, &work, args.clients);
            stored += per_host * n as u64;
            println!("fill: {stored} events stored, last chunk {rate:.0} events/s");
        }
        println!(
            "fleet: {stored} events stored ({:.1} s for the extra events); waiting for grouping",
            started.elapsed().as_secs_f64()
        );
        wait_grouped(&a, base, reader);
        measure_fleet(args, &a, base, reader, enrolled);
    }
}

/// Wait until the collector's incident queue is empty (its /metrics), so
/// readers are timed on a settled collector.
fn wait_grouped(a: &ureq::Agent, base: &str, reader: &str) {
    let deadline = Instant::now() + Duration::from_secs(1800);
    loop {
        let text = a
            .get(format!("{base}/metrics"))
            .header("authorization", format!("Bearer {reader}"))
            .call()
            .unwrap()
            .body_mut()
            .read_to_string()
            .unwrap();
        let pending = text
            .lines()
            .find_map(|l| {
                l.strip_prefix("lenscap_collector_incident_queue_depth ")
                    .or_else(|| l.strip_prefix("lenscap_collector_incidents_pending "))
            })
            .and_then(|v| v.trim().parse::<f64>().ok());
        match pending {
            Some(p) if p > 0.0 && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_secs(2))
            }
            _ => return,
        }
    }
}

/// Time what readers fetch from a collector holding `size` hosts.
fn measure_fleet(args: &Args, a: &ureq::Agent, base: &str, reader: &str, size: u64) {
    {
        let mid = format!("fleet-mac-{:06}", size / 2);
        // One host from the middle of the fleet, by name.
        let page: serde_json::Value = serde_json::from_str(
            &a.get(format!("{base}/api/v1/hosts?name_prefix={mid}"))
                .header("authorization", format!("Bearer {reader}"))
                .call()
                .unwrap()
                .body_mut()
                .with_config()
                .limit(1 << 30)
                .read_to_string()
                .unwrap(),
        )
        .unwrap();
        // A collector before paging answers with every host in an array.
        let list = page.get("hosts").unwrap_or(&page);
        let id = list
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h["hostname"] == mid.as_str())
            .unwrap()["id"]
            .as_i64()
            .unwrap();
        let fleet_page = if time_get(a, base, "/ui/fleet", reader, 1).is_some() {
            "/ui/fleet"
        } else {
            "/ui/"
        };
        let host_page = format!("/ui/hosts/{id}");
        // The newest incident, for its API answer and its page.
        let newest: Option<i64> = time_get(a, base, "/api/v1/incidents?limit=1", reader, 1)
            .and_then(|_| {
                let v: serde_json::Value = serde_json::from_str(
                    &a.get(format!("{base}/api/v1/incidents?limit=1"))
                        .header("authorization", format!("Bearer {reader}"))
                        .call()
                        .unwrap()
                        .body_mut()
                        .read_to_string()
                        .unwrap(),
                )
                .unwrap();
                v["incidents"][0]["id"].as_i64()
            });
        let incident_api = newest.map(|i| format!("/api/v1/incidents/{i}"));
        let incident_page = newest.map(|i| format!("/ui/incidents/{i}"));
        let mut shapes: Vec<(&str, &str)> = vec![
            ("GET /api/v1/hosts", "/api/v1/hosts"),
            (
                "GET /api/v1/hosts?attention=true",
                "/api/v1/hosts?attention=true",
            ),
            ("GET /api/v1/events", "/api/v1/events"),
            (
                "GET /api/v1/events?kind=detection_finding",
                "/api/v1/events?kind=detection_finding",
            ),
            ("GET /api/v1/incidents", "/api/v1/incidents"),
            (
                "GET /api/v1/incidents?state=contained",
                "/api/v1/incidents?state=contained",
            ),
            ("GET /api/v1/alerts", "/api/v1/alerts"),
            ("GET /api/v1/policy", "/api/v1/policy"),
            ("GET /metrics", "/metrics"),
            ("fleet page", fleet_page),
            ("one host's page", &host_page),
            ("Remediations page", "/ui/remediations"),
            (
                "Incidents page",
                if fleet_page == "/ui/fleet" {
                    "/ui/"
                } else {
                    "/ui/none"
                },
            ),
            ("Camera page", "/ui/camera"),
            ("Gaps page", "/ui/gaps"),
            ("Rules page", "/ui/rules"),
            ("Alerts page", "/ui/alerts"),
        ];
        if let (Some(api), Some(page)) = (&incident_api, &incident_page) {
            shapes.push(("GET /api/v1/incidents/{id}", api));
            shapes.push(("one incident's page", page));
        }
        for (name, path) in shapes {
            match time_get(a, base, path, reader, args.queries) {
                Some((times, size)) => println!(
                    "  {name:<40} p50 {:>7.1} ms  p95 {:>7.1} ms  {:>9} bytes",
                    percentile(&times, 0.5).as_secs_f64() * 1e3,
                    percentile(&times, 0.95).as_secs_f64() * 1e3,
                    size
                ),
                None => println!("  {name:<40} (not served)"),
            }
        }
    }
}
