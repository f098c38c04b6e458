//! One observe → judge pass, as `lenscap scan` runs it, and its two
//! renderings: the JSON contract (docs/scan-json.md) and the human table.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::config;
use crate::judge::{self, JudgeError};
use crate::model::{Finding, FindingKind, HostInfo, ScanError, Verdict};
use crate::observe::inventory::{self, GatherOptions};
use crate::observe::signing::SignatureCache;
use crate::platform::Platform;

/// The result of `lenscap scan`. Its serde shape is the `--json` contract:
/// `{"host": {…}, "findings": [ … ], "errors": [ … ]}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScanReport {
    pub host: HostInfo,
    pub findings: Vec<Finding>,
    /// Items that could not be read; the scan went on without them.
    pub errors: Vec<ScanError>,
}

impl ScanReport {
    /// Does anything call for remediation? (`lenscap scan` exits 3 then.)
    pub fn needs_remediation(&self) -> bool {
        self.findings
            .iter()
            .any(|f| f.verdict == Verdict::Remediate)
    }
}

/// Observe once and judge. Changes nothing on the machine.
pub fn run(
    platform: &dyn Platform,
    loaded: &config::Loaded,
    opts: GatherOptions,
) -> Result<ScanReport, JudgeError> {
    // The daemon's policy: configured rules, `restore --allow` rules and
    // the stored fleet policy, not the configured rules alone.
    let merged = crate::policy::load(loaded)?;
    merged.log_problems();
    let cache = SignatureCache::default();
    let gathered = inventory::gather(platform, &loaded.config, &cache, opts);
    let findings = judge::judge(&merged.policy, &gathered.observations);
    Ok(ScanReport {
        host: platform.host_info(),
        findings,
        errors: gathered.errors,
    })
}

/// ANSI styles, used only when printing to a terminal.
struct Style {
    on: bool,
}

impl Style {
    fn paint(&self, code: &str, text: &str) -> String {
        if self.on {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }
}

/// The human table: grouped by verdict, most urgent first, each finding
/// with its reasons.
pub fn render_table(report: &ScanReport, color: bool) -> String {
    let style = Style { on: color };
    let mut out = String::new();
    let host = &report.host;
    let _ = writeln!(
        out,
        "lenscap {} on {} ({}{})",
        host.agent_version,
        host.hostname,
        host.os,
        host.os_version
            .as_deref()
            .map(|v| format!(" {v}"))
            .unwrap_or_default()
    );
    if !host.signatures_supported {
        let _ = writeln!(
            out,
            "note: code signatures are not available on this platform; nothing is trusted by signature"
        );
    }
    for (verdict, title, code) in [
        (Verdict::Remediate, "REMEDIATE", "1;31"),
        (Verdict::Report, "REPORT", "1;33"),
        (Verdict::Allow, "ALLOW", "1;32"),
    ] {
        let group: Vec<&Finding> = report
            .findings
            .iter()
            .filter(|f| f.verdict == verdict)
            .collect();
        let _ = writeln!(out, "\n{} ({})", style.paint(code, title), group.len());
        for f in group {
            let _ = writeln!(out, "  {}", headline(f));
            // Allowed items get one line, the judge's conclusion (its last
            // reason); the rest get every reason.
            let reasons: &[String] = if verdict == Verdict::Allow {
                &f.reasons[f.reasons.len().saturating_sub(1)..]
            } else {
                &f.reasons
            };
            for r in reasons {
                let _ = writeln!(out, "      - {r}");
            }
        }
    }
    if !report.errors.is_empty() {
        let _ = writeln!(
            out,
            "\n{} ({})",
            style.paint("1;35", "COULD NOT READ"),
            report.errors.len()
        );
        for e in &report.errors {
            match &e.path {
                Some(p) => {
                    let _ = writeln!(out, "  {}: {}: {}", e.source, p.display(), e.message);
                }
                None => {
                    let _ = writeln!(out, "  {}: {}", e.source, e.message);
                }
            }
        }
    }
    out
}

/// `pid 42 /path/to/exe` (the name when the path is unknown).
fn process_label(p: &crate::model::ProcessIdentity) -> String {
    format!(
        "pid {} {}",
        p.pid,
        p.path
            .as_deref()
            .map(|x| x.display().to_string())
            .unwrap_or_else(|| p.name.clone())
    )
}

/// One line naming what a finding is about.
fn headline(f: &Finding) -> String {
    let severity = format!("{:?}", f.severity).to_lowercase();
    let rule = f
        .rule
        .as_deref()
        .map(|r| format!(" [{r}]"))
        .unwrap_or_default();
    match f.kind {
        FindingKind::Listener => {
            let addr = f
                .listener
                .as_ref()
                .map(|l| match l.address {
                    std::net::IpAddr::V6(a) => format!("[{a}]:{}", l.port),
                    std::net::IpAddr::V4(a) => format!("{a}:{}", l.port),
                })
                .unwrap_or_default();
            let who = f
                .process
                .as_ref()
                .map(process_label)
                .unwrap_or_else(|| "owner unknown".to_string());
            let extra = match f.processes.len() {
                0 | 1 => String::new(),
                n => format!(" (+{} more)", n - 1),
            };
            format!("tcp {addr:<22} {who}{extra}  {severity}{rule}")
        }
        FindingKind::Persistence => {
            let p = f.persistence.as_ref();
            let label = p
                .and_then(|p| p.label.clone())
                .unwrap_or_else(|| "(no label)".into());
            let path = p.map(|p| p.path.display().to_string()).unwrap_or_default();
            let kind = p.map(|p| format!("{:?}", p.kind)).unwrap_or_default();
            format!("{kind} {label}  {path}  {severity}{rule}")
        }
        FindingKind::CameraGrant => {
            let (service, client, auth) = f
                .camera
                .as_ref()
                .map(|c| (c.service.as_str(), c.client.as_str(), c.auth.as_str()))
                .unwrap_or_default();
            format!("grant {service:<14} {auth:<8} {client}  {severity}{rule}")
        }
        FindingKind::CameraUse => {
            let who = match &f.process {
                Some(p) => process_label(p),
                None => f
                    .camera
                    .as_ref()
                    .map(|c| c.client.clone())
                    .unwrap_or_else(|| "an unknown process".into()),
            };
            format!("camera in use by {who}  {severity}{rule}")
        }
    }
}
