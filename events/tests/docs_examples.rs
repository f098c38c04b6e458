//! docs/events.md shows real output: every block between
//! `<!-- generated:NAME -->` and `<!-- /generated -->` must equal what the
//! code produces now. After a deliberate change to the wire format, run
//! `LENSCAP_BLESS=1 cargo test -p lenscap-events --test docs_examples` to
//! rewrite the blocks, and read the diff.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use lenscap_events::samples;
use lenscap_events::{Body, Event, Mode};

fn pretty(e: &Event) -> String {
    format!(
        "```json\n{}\n```",
        serde_json::to_string_pretty(e).expect("events serialise")
    )
}

fn blocks() -> Vec<(&'static str, String)> {
    let chain = samples::docs_chain();
    let mut monitor = samples::event(
        &samples::host(),
        3,
        chain[2].time,
        Mode::Monitor,
        Body::ProcessRemediation(samples::kill_zoom(true)),
    );
    monitor.uid = "2f3e4d5c-6b7a-4980-a1b2-c3d4e5f60705"
        .to_string()
        .try_into()
        .unwrap();
    monitor.prev_hash = chain[1].hash().unwrap();
    let mut table = String::from(
        "| seq | kind | uid | hash (the next event's `prev_hash`) |\n|---|---|---|---|\n",
    );
    for e in &chain {
        table.push_str(&format!(
            "| {} | `{}` | `{}` | `{}` |\n",
            e.seq,
            e.kind().as_str(),
            e.uid,
            e.hash().unwrap()
        ));
    }
    let mut blocks = vec![
        ("agent_health", pretty(&chain[0])),
        ("detection_finding", pretty(&chain[1])),
        ("process_remediation", pretty(&chain[2])),
        ("file_remediation", pretty(&chain[3])),
        ("process_remediation_monitor", pretty(&monitor)),
        ("chain", table.trim_end().to_string()),
    ];
    blocks.extend(
        samples::docs_camera_examples()
            .into_iter()
            .map(|(name, event)| (name, pretty(&event))),
    );
    blocks
}

fn splice(doc: &str, name: &str, content: &str) -> Result<String, String> {
    let open = format!("<!-- generated:{name} -->");
    let close = "<!-- /generated -->";
    let start = doc
        .find(&open)
        .ok_or_else(|| format!("docs/events.md has no `{open}` marker"))?
        + open.len();
    let end = start
        + doc[start..]
            .find(close)
            .ok_or_else(|| format!("`{open}` is not closed by `{close}`"))?;
    Ok(format!("{}\n{}\n{}", &doc[..start], content, &doc[end..]))
}

#[test]
fn docs_show_what_the_code_produces() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/events.md");
    let doc = std::fs::read_to_string(&path).expect("docs/events.md exists");
    let mut want = doc.clone();
    for (name, content) in blocks() {
        want = splice(&want, name, &content).unwrap();
    }
    if std::env::var_os("LENSCAP_BLESS").is_some() {
        std::fs::write(&path, &want).unwrap();
        return;
    }
    if want != doc {
        let first = want
            .lines()
            .zip(doc.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(0);
        panic!(
            "docs/events.md is out of date from line {} on; rerun with LENSCAP_BLESS=1 and review the diff",
            first + 1
        );
    }
}
