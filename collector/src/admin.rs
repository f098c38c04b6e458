//! What the `host` and `token` subcommands do, on the same store `serve`
//! uses (SQLite or PostgreSQL), so an admin can act while it runs: list
//! and decide held enrolments, list and revoke tokens. Each function
//! returns the text to print; `main.rs` only parses arguments.
//!
//! Raw tokens are never shown: the collector has only their hashes. A
//! token is named by its id, the first hex digits of its hash.

use crate::auth::{token_hash, token_id};
use crate::store::{EnrollRequestRecord, HostKey, RequestState, Store, StoreError, TokenInfo};
use crate::timefmt::human;

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(
        "no host matches {0:?}: give a host id, hostname, hardware UUID, machine-id or serial (`lenscap-collector host list`)"
    )]
    NoHost(String),
    #[error("{text:?} matches several hosts ({list}): give the host id")]
    ManyHosts { text: String, list: String },
    #[error(
        "host {host} has no enrolment waiting for approval; one appears in `lenscap-collector host pending` when an agent enrols as it{refused}"
    )]
    NothingWaiting { host: String, refused: String },
    #[error(
        "host {host} has {n} enrolments waiting (requests {list}): choose one with --request ID after comparing them in `lenscap-collector host pending`"
    )]
    ManyWaiting {
        host: String,
        n: usize,
        list: String,
    },
    #[error(
        "request {request} is not an undecided enrolment of host {host} (`lenscap-collector host pending --all` lists every request)"
    )]
    NoSuchRequest { request: i64, host: String },
    #[error(
        "no token or host matches {0:?}: give a token id from `lenscap-collector token list`, the token itself, or a host id, hostname or identity"
    )]
    NothingToRevoke(String),
    #[error("{text:?} matches several tokens ({list}): give more digits of the id")]
    ManyTokens { text: String, list: String },
    #[error(transparent)]
    Alert(#[from] crate::alerts::AlertError),
    #[error("an alert destination named {0:?} exists already (`lenscap-collector alert list`)")]
    AlertExists(String),
    #[error("no alert destination named {0:?} (`lenscap-collector alert list`)")]
    NoAlert(String),
    #[error("alert destination name {0:?}: use 1 to 64 letters, digits, `-`, `_` or `.`")]
    BadAlertName(String),
    #[error("give exactly one of --webhook URL or --syslog tcp://HOST:PORT|tls://HOST:PORT")]
    AlertKind,
    #[error(
        "--ca checks a receiver's TLS certificate: it goes with --syslog tls://HOST:PORT or --webhook https://…"
    )]
    CaWithoutTls,
    #[error("--secret signs webhooks only; syslog has no signature")]
    SyslogSecret,
    #[error("no system randomness to make a secret: {0}")]
    NoRandomness(String),
    #[error("test alert to {name} not delivered: {error}")]
    AlertTestFailed { name: String, error: String },
    #[error(
        "{text:?} names both token {token} and host {host}: give a longer token id, or the host's hostname or identity"
    )]
    Ambiguous {
        text: String,
        token: String,
        host: String,
    },
}

/// Shortest token id `token revoke` accepts.
const MIN_ID: usize = 6;

fn host_label(h: &HostKey) -> String {
    format!(
        "{} ({}, {} {})",
        h.id, h.hostname, h.identity_field, h.identity_value
    )
}

async fn one_host(store: &Store, text: &str) -> Result<HostKey, AdminError> {
    let mut hosts = store.find_hosts(text).await?;
    match hosts.len() {
        0 => Err(AdminError::NoHost(text.to_string())),
        1 => Ok(hosts.remove(0)),
        _ => Err(AdminError::ManyHosts {
            text: text.to_string(),
            list: hosts.iter().map(host_label).collect::<Vec<_>>().join("; "),
        }),
    }
}

/// The request of `host` an admin means: `--request` if given (it must be
/// one of `allowed`), else the host's only held one.
async fn choose_request(
    store: &Store,
    host: &HostKey,
    request: Option<i64>,
    allowed: &[RequestState],
) -> Result<EnrollRequestRecord, AdminError> {
    let label = host_label(host);
    if let Some(id) = request {
        return store
            .enroll_requests(Some(host.id), allowed)
            .await?
            .into_iter()
            .find(|r| r.id == id)
            .ok_or(AdminError::NoSuchRequest {
                request: id,
                host: label,
            });
    }
    let mut held = store
        .enroll_requests(Some(host.id), &[RequestState::Held])
        .await?;
    match held.len() {
        0 => {
            let refused = store
                .enroll_requests(Some(host.id), &[RequestState::Refused])
                .await?;
            let refused = match refused.as_slice() {
                [] => String::new(),
                rs => format!(
                    " (refused earlier: request {}; `--request ID` decides one again)",
                    rs.iter()
                        .map(|r| r.id.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            };
            Err(AdminError::NothingWaiting {
                host: label,
                refused,
            })
        }
        1 => Ok(held.remove(0)),
        n => Err(AdminError::ManyWaiting {
            host: label,
            n,
            list: held
                .iter()
                .map(|r| {
                    format!(
                        "{} from {}",
                        r.id,
                        r.peer.as_deref().unwrap_or("an unknown address")
                    )
                })
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

/// `host approve HOST [--request ID]`.
pub async fn approve(
    store: &Store,
    host: &str,
    request: Option<i64>,
    now: i64,
) -> Result<String, AdminError> {
    let h = one_host(store, host).await?;
    let r = choose_request(
        store,
        &h,
        request,
        &[RequestState::Held, RequestState::Refused],
    )
    .await?;
    let revoked =
        store
            .decide_request(r.id, true, now)
            .await?
            .ok_or(AdminError::NoSuchRequest {
                request: r.id,
                host: host_label(&h),
            })?;
    let keyless = if r.has_key {
        ""
    } else {
        "\nnote: that agent sent no enroll key (an older agent), so the token goes to the next keyless enrolment of this identity"
    };
    Ok(format!(
        "approved request {} for host {}: the agent that asked from {} gets its token at its next enrolment attempt (an agent retries within about 5 minutes).\nrevoked {revoked} older token(s) of the host: the installation that held them can no longer send events.{keyless}",
        r.id,
        host_label(&h),
        r.peer.as_deref().unwrap_or("an unknown address"),
    ))
}

/// `host refuse HOST [--request ID]`.
pub async fn refuse(
    store: &Store,
    host: &str,
    request: Option<i64>,
    now: i64,
) -> Result<String, AdminError> {
    let h = one_host(store, host).await?;
    let r = choose_request(
        store,
        &h,
        request,
        &[RequestState::Held, RequestState::Approved],
    )
    .await?;
    store
        .decide_request(r.id, false, now)
        .await?
        .ok_or(AdminError::NoSuchRequest {
            request: r.id,
            host: host_label(&h),
        })?;
    Ok(format!(
        "refused request {} for host {}, made from {}: its enrolment attempts are answered 403 enroll_refused. The host's current token is untouched (`lenscap-collector token revoke {}` revokes it).",
        r.id,
        host_label(&h),
        r.peer.as_deref().unwrap_or("an unknown address"),
        h.id
    ))
}

/// Columns padded to their widest cell.
fn table(head: &[&str], rows: &[Vec<String>]) -> String {
    let mut width: Vec<usize> = head.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in width.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let mut out = String::new();
        for (i, (cell, w)) in cells.iter().zip(&width).enumerate() {
            if i + 1 == cells.len() {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<w$}  "));
            }
        }
        out.trim_end().to_string()
    };
    let mut out = line(head.iter().map(|h| h.to_string()).collect());
    for row in rows {
        out.push('\n');
        out.push_str(&line(row.clone()));
    }
    out
}

/// `host pending [--all]`: enrolments waiting for an admin (all of them,
/// decided too, with `--all`).
pub async fn pending(store: &Store, all: bool) -> Result<String, AdminError> {
    let states: &[RequestState] = if all {
        &[
            RequestState::Held,
            RequestState::Approved,
            RequestState::Refused,
            RequestState::Issued,
        ]
    } else {
        &[RequestState::Held, RequestState::Approved]
    };
    let requests = store.enroll_requests(None, states).await?;
    if requests.is_empty() {
        return Ok(if all {
            "no enrolment requests".into()
        } else {
            "no enrolment waiting for approval".into()
        });
    }
    let rows: Vec<Vec<String>> = requests
        .iter()
        .map(|r| {
            vec![
                r.id.to_string(),
                r.state.as_str().to_string(),
                format!("{} ({})", r.host_id, r.host_hostname),
                format!("{} {}", r.identity_field, r.identity_value),
                r.hostname.clone(),
                r.peer.clone().unwrap_or_else(|| "-".into()),
                if r.has_key { "yes" } else { "no" }.to_string(),
                human(r.requested_at),
                human(r.last_attempt_at),
                r.attempts.to_string(),
            ]
        })
        .collect();
    let mut out = table(
        &[
            "REQUEST", "STATE", "HOST", "IDENTITY", "SAYS", "FROM", "KEY", "FIRST", "LAST", "TRIES",
        ],
        &rows,
    );
    if requests.iter().any(|r| r.state == RequestState::Held) {
        out.push_str("\n\napprove: lenscap-collector host approve HOST [--request REQUEST]\nrefuse:  lenscap-collector host refuse HOST [--request REQUEST]");
    }
    Ok(out)
}

/// `incidents rebuild`: forget every incident and group every stored
/// event again (incidents are derived from events only). Safe while
/// collectors serve: they take turns grouping, and the queue is kept, so
/// "grouped" counts only what this command grouped itself.
pub async fn incidents_rebuild(store: &Store) -> Result<String, AdminError> {
    let queued = store.rebuild_incidents().await?;
    let grouped = store.group_all_pending().await?;
    Ok(format!(
        "incidents rebuilt: {queued} stored events queued, {grouped} grouped"
    ))
}

/// `host list`: every host with its active tokens and waiting requests.
pub async fn host_list(store: &Store) -> Result<String, AdminError> {
    let hosts = store.hosts().await?;
    if hosts.is_empty() {
        return Ok("no hosts enrolled".into());
    }
    let tokens = store.tokens(false).await?;
    let waiting = store.enroll_requests(None, &[RequestState::Held]).await?;
    let rows: Vec<Vec<String>> = hosts
        .iter()
        .map(|h| {
            vec![
                h.id.to_string(),
                h.hostname.clone(),
                format!("{} {}", h.identity_field, h.identity_value),
                h.last_seen.map(human).unwrap_or_else(|| "never".into()),
                tokens
                    .iter()
                    .filter(|t| t.host_id == Some(h.id))
                    .count()
                    .to_string(),
                waiting
                    .iter()
                    .filter(|r| r.host_id == h.id)
                    .count()
                    .to_string(),
            ]
        })
        .collect();
    Ok(table(
        &[
            "ID",
            "HOSTNAME",
            "IDENTITY",
            "LAST SEEN",
            "TOKENS",
            "WAITING",
        ],
        &rows,
    ))
}

/// `token list [--all]`.
pub async fn token_list(store: &Store, all: bool) -> Result<String, AdminError> {
    let tokens = store.tokens(all).await?;
    if tokens.is_empty() {
        return Ok("no tokens".into());
    }
    let rows: Vec<Vec<String>> = tokens
        .iter()
        .map(|t| {
            vec![
                token_id(&t.hash).to_string(),
                t.role.as_str().to_string(),
                match (t.host_id, &t.hostname) {
                    (Some(id), Some(name)) => format!("{id} ({name})"),
                    (Some(id), None) => id.to_string(),
                    _ => "-".into(),
                },
                human(t.created_at),
                t.revoked_at.map(human).unwrap_or_else(|| "-".into()),
                t.note.clone().unwrap_or_default(),
            ]
        })
        .collect();
    Ok(table(
        &["ID", "ROLE", "HOST", "CREATED", "REVOKED", "NOTE"],
        &rows,
    ))
}

fn token_label(t: &TokenInfo) -> String {
    match (t.host_id, &t.hostname) {
        (Some(id), Some(name)) => format!(
            "{} token {} of host {id} ({name})",
            t.role.as_str(),
            token_id(&t.hash)
        ),
        _ => format!("{} token {}", t.role.as_str(), token_id(&t.hash)),
    }
}

/// `token revoke TARGET`: a token id (or the token itself), or a host
/// (every token of it).
pub async fn token_revoke(store: &Store, target: &str, now: i64) -> Result<String, AdminError> {
    let target = target.trim();
    let tokens = if target.starts_with("lc_") {
        store.tokens_by_prefix(&token_hash(target)).await?
    } else {
        let lower = target.to_ascii_lowercase();
        if lower.len() >= MIN_ID
            && lower.len() <= 64
            && lower.bytes().all(|b| b.is_ascii_hexdigit())
        {
            store.tokens_by_prefix(&lower).await?
        } else {
            Vec::new()
        }
    };
    let hosts = if target.starts_with("lc_") {
        Vec::new()
    } else {
        store.find_hosts(target).await?
    };
    match (tokens.as_slice(), hosts.as_slice()) {
        ([], []) => Err(AdminError::NothingToRevoke(target.to_string())),
        ([t], [h]) => Err(AdminError::Ambiguous {
            text: target.to_string(),
            token: token_id(&t.hash).to_string(),
            host: host_label(h),
        }),
        ([t], []) => {
            if let Some(at) = t.revoked_at {
                return Ok(format!(
                    "{} was already revoked on {}",
                    token_label(t),
                    human(at)
                ));
            }
            store.revoke_token(&t.hash, now).await?;
            let then = if t.host_id.is_some() {
                " Its host's next upload gets 401, and the agent's enrolment waits for `lenscap-collector host approve`."
            } else {
                ""
            };
            Ok(format!(
                "revoked {}: it gets 401 from now on.{then}",
                token_label(t)
            ))
        }
        (ts, []) => Err(AdminError::ManyTokens {
            text: target.to_string(),
            list: ts
                .iter()
                .map(|t| token_id(&t.hash).to_string())
                .collect::<Vec<_>>()
                .join(", "),
        }),
        ([], [h]) => {
            let n = store.revoke_host(h.id, now).await?;
            Ok(format!(
                "revoked {n} token(s) of host {}: its next upload gets 401, and its enrolment waits for `lenscap-collector host approve {}`.",
                host_label(h),
                h.id
            ))
        }
        (_, hs) => Err(AdminError::ManyHosts {
            text: target.to_string(),
            list: hs.iter().map(host_label).collect::<Vec<_>>().join("; "),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_columns_and_trim_ends() {
        let t = table(
            &["ID", "NAME", "NOTE"],
            &[
                vec!["1".into(), "mac-a".into(), String::new()],
                vec!["22".into(), "b".into(), "x".into()],
            ],
        );
        assert_eq!(t, "ID  NAME   NOTE\n1   mac-a\n22  b      x");
    }
}

/// What `alert add` was given.
#[derive(Debug, Clone, Default)]
pub struct AlertAdd {
    pub name: String,
    pub webhook: Option<String>,
    pub syslog: Option<String>,
    /// Webhook signing secret; made when not given.
    pub secret: Option<String>,
    /// `info`…`critical`.
    pub min_severity: String,
    /// Comma-separated incident states; empty: every state.
    pub states: String,
    /// Only incidents of this rule.
    pub rule: Option<String>,
    /// Only incidents on the Mac with this hostname.
    pub host: Option<String>,
    /// Comma-separated verdicts (remediate, report, allow); only
    /// incidents whose strongest verdict is one of them.
    pub verdict: Option<String>,
    /// Comma-separated finding kinds (listener, persistence,
    /// camera_grant, camera_use); only incidents holding one of them.
    pub finding_kind: Option<String>,
    /// PEM certificates (the file's text) a `tls://` syslog or https
    /// webhook receiver must chain to, instead of the public web roots.
    pub ca_pem: Option<String>,
    /// Plain http to a host other than loopback.
    pub allow_http: bool,
}

fn severity_name(rank: i64) -> &'static str {
    match rank {
        5 => "critical",
        4 => "high",
        3 => "medium",
        2 => "low",
        _ => "info",
    }
}

/// `alert add NAME (--webhook URL [--secret S] | --syslog tcp://H:P)`.
pub async fn alert_add(store: &Store, add: AlertAdd, now: i64) -> Result<String, AdminError> {
    let name_ok = !add.name.is_empty()
        && add.name.len() <= 64
        && add
            .name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !name_ok {
        return Err(AdminError::BadAlertName(add.name));
    }
    let min_rank = crate::alerts::parse_severity(&add.min_severity)?;
    let states = crate::alerts::parse_states(&add.states)?;
    let verdict = add
        .verdict
        .as_deref()
        .map(crate::alerts::parse_verdicts)
        .transpose()?
        .flatten();
    let finding_kind = add
        .finding_kind
        .as_deref()
        .map(crate::alerts::parse_kinds)
        .transpose()?
        .flatten();
    if let Some(pem) = &add.ca_pem {
        let tls_syslog = add
            .syslog
            .as_deref()
            .is_some_and(|u| u.starts_with("tls://"));
        let https_webhook = add.webhook.as_deref().is_some_and(|u| {
            u.get(..8)
                .is_some_and(|s| s.eq_ignore_ascii_case("https://"))
        });
        if !tls_syslog && !https_webhook {
            return Err(AdminError::CaWithoutTls);
        }
        crate::alerts::parse_ca(pem)?;
    }
    let (kind, url, secret, made) = match (&add.webhook, &add.syslog) {
        (Some(url), None) => {
            crate::alerts::check_webhook_url(url, add.allow_http)?;
            match &add.secret {
                Some(s) => {
                    crate::alerts::check_secret(s)?;
                    ("webhook", url.clone(), Some(s.clone()), false)
                }
                None => {
                    let s = crate::alerts::new_secret()
                        .map_err(|e| AdminError::NoRandomness(e.to_string()))?;
                    ("webhook", url.clone(), Some(s), true)
                }
            }
        }
        (None, Some(url)) => {
            if add.secret.is_some() {
                return Err(AdminError::SyslogSecret);
            }
            crate::alerts::check_syslog_url(url)?;
            ("syslog", url.clone(), None, false)
        }
        _ => return Err(AdminError::AlertKind),
    };
    let added = store
        .add_alert_destination(&crate::store::AlertDestination {
            id: 0,
            name: add.name.clone(),
            kind: kind.to_string(),
            url: url.clone(),
            secret: secret.clone(),
            min_rank,
            states: states.clone(),
            rule: add.rule.clone(),
            host: add.host.clone(),
            verdict: verdict.clone(),
            finding_kind: finding_kind.clone(),
            ca_pem: add.ca_pem.clone(),
            created_at: now,
        })
        .await?;
    if added.is_none() {
        return Err(AdminError::AlertExists(add.name));
    }
    let states = if states.is_empty() {
        "every state".to_string()
    } else {
        states
    };
    let mut out = format!(
        "alert destination {} added: {kind} {url}, incidents of severity {} or worse, {states}",
        add.name,
        severity_name(min_rank)
    );
    if let Some(r) = &add.rule {
        out.push_str(&format!(", rule {r}"));
    }
    if let Some(h) = &add.host {
        out.push_str(&format!(", host {h}"));
    }
    if let Some(v) = &verdict {
        out.push_str(&format!(", verdict {v}"));
    }
    if let Some(k) = &finding_kind {
        out.push_str(&format!(", finding kind {k}"));
    }
    if add.ca_pem.is_some() {
        out.push_str(", receiver certificate checked against the given CA");
    }
    if let (true, Some(s)) = (made, &secret) {
        out.push_str(&format!(
            "\nsecret (shown once; the receiver checks {} with it): {s}",
            crate::alerts::SIGNATURE_HEADER
        ));
    }
    Ok(out)
}

/// `alert list`: destinations, the queue's counts and the dead letters.
pub async fn alert_list(store: &Store) -> Result<String, AdminError> {
    let dests = store.alert_destinations().await?;
    if dests.is_empty() {
        return Ok("no alert destinations (`lenscap-collector alert add`)".into());
    }
    let mut out = String::new();
    for d in &dests {
        let states = if d.states.is_empty() {
            "every state"
        } else {
            d.states.as_str()
        };
        out.push_str(&format!(
            "{}\t{}\t{}\tseverity >= {}\t{}\trule {}\thost {}\tverdict {}\tkind {}{}\n",
            d.name,
            d.kind,
            d.url,
            severity_name(d.min_rank),
            states,
            d.rule.as_deref().unwrap_or("any"),
            d.host.as_deref().unwrap_or("any"),
            d.verdict.as_deref().unwrap_or("any"),
            d.finding_kind.as_deref().unwrap_or("any"),
            if d.ca_pem.is_some() {
                "\tcustom CA"
            } else {
                ""
            },
        ));
    }
    let c = store.alert_counts().await?;
    out.push_str(&format!(
        "alerts: {} pending, {} sent, {} dead",
        c.pending, c.sent, c.dead
    ));
    let dead = store.alerts(Some("dead"), 50).await?;
    for a in &dead {
        out.push_str(&format!(
            "\ndead {}\t{}\tincident {} {}\t{} attempts\t{}",
            a.id,
            a.destination,
            a.incident_id,
            a.state,
            a.attempts,
            a.last_error.as_deref().unwrap_or("")
        ));
    }
    Ok(out)
}

/// `alert queue [--status S]`: the newest alerts.
pub async fn alert_queue(
    store: &Store,
    status: Option<&str>,
    limit: i64,
) -> Result<String, AdminError> {
    let alerts = store.alerts(status, limit.clamp(1, 10_000)).await?;
    if alerts.is_empty() {
        return Ok("no alerts".into());
    }
    Ok(alerts
        .iter()
        .map(|a| {
            format!(
                "{}\t{}\t{}\tincident {} {}\tqueued {}\t{} attempts\t{}",
                a.id,
                a.status,
                a.destination,
                a.incident_id,
                a.state,
                human(a.queued_at),
                a.attempts,
                a.last_error.as_deref().unwrap_or("")
            )
        })
        .collect::<Vec<_>>()
        .join("\n"))
}

/// `alert retry`: dead alerts go back in the queue.
pub async fn alert_retry(store: &Store, now: i64) -> Result<String, AdminError> {
    let n = store.retry_dead_alerts(now).await?;
    Ok(format!("{n} dead alerts queued again"))
}

/// `alert test NAME`: send a test alert now, outside the queue, and say
/// whether it arrived.
pub async fn alert_test(store: &Store, name: &str, now: i64) -> Result<String, AdminError> {
    let dest = store
        .alert_destinations()
        .await?
        .into_iter()
        .find(|d| d.name == name)
        .ok_or_else(|| AdminError::NoAlert(name.to_string()))?;
    let body = serde_json::json!({
        "type": "test",
        "incident": {
            "id": 0, "hostname": "lenscap-test", "state": "open", "severity": "info",
            "title": "lenscap-collector test alert",
        },
        "sent_at": now,
    })
    .to_string();
    let d = dest.clone();
    let result = tokio::task::spawn_blocking(move || crate::alerts::deliver(&d, 0, &body))
        .await
        .unwrap_or_else(|e| Err(e.to_string()));
    match result {
        Ok(()) => Ok(format!("test alert delivered to {name} ({})", dest.url)),
        Err(error) => Err(AdminError::AlertTestFailed {
            name: name.to_string(),
            error,
        }),
    }
}

/// `alert remove NAME`: the destination and its queued alerts.
pub async fn alert_remove(store: &Store, name: &str) -> Result<String, AdminError> {
    if store.remove_alert_destination(name).await? {
        Ok(format!("alert destination {name} removed"))
    } else {
        Err(AdminError::NoAlert(name.to_string()))
    }
}
