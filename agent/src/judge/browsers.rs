//! Which browsers let a public web page reach a helper without asking the
//! person first, in plain words for a finding's reasons. In 2019 every
//! browser let any page talk to `localhost`; in 2026 Chrome asks first for
//! a page's fetches (Local Network Access), Firefox is rolling out its own
//! prompt, and Safari asks nothing. What a helper answers decides which of
//! these gates apply: a plain HTTP server is behind Chrome's prompt for
//! fetches but not for navigations; a WebSocket that accepts any `Origin`
//! is behind none of Chrome's.
//!
//! The table is data (`browsers.json`, compiled in) so that a browser's
//! change is a data change with its source beside it, not a code change.

use std::sync::OnceLock;

use serde::Deserialize;

use crate::model::HttpProbe;

#[derive(Debug, Clone, Deserialize)]
struct Table {
    browsers: Vec<Browser>,
}

#[derive(Debug, Clone, Deserialize)]
struct Browser {
    browser: String,
    versions: String,
    asks_first: Vec<Kind>,
    without_asking: Vec<Kind>,
    #[allow(dead_code)] // read by the table's tests and by people
    sources: Vec<String>,
}

/// How a page reaches a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Kind {
    Fetch,
    Websocket,
    Navigation,
}

impl Kind {
    fn words(self) -> &'static str {
        match self {
            Kind::Fetch => "a page's requests",
            Kind::Websocket => "a WebSocket",
            Kind::Navigation => "a navigation or form post",
        }
    }
}

fn table() -> &'static [Browser] {
    static TABLE: OnceLock<Vec<Browser>> = OnceLock::new();
    TABLE.get_or_init(|| {
        // Compiled in and checked by this module's tests: a parse failure
        // here is a build defect, and the judge then says nothing of
        // browsers rather than panic.
        serde_json::from_str::<Table>(include_str!("browsers.json"))
            .map(|t| t.browsers)
            .unwrap_or_default()
    })
}

/// One reason: which browsers let any page reach what this helper answers
/// without asking, and which ask first. `None` when it answers nothing a
/// page can use.
pub(crate) fn reach_note(probe: &HttpProbe) -> Option<String> {
    let mut kinds = Vec::new();
    if probe.http {
        kinds.extend([Kind::Fetch, Kind::Navigation]);
    }
    if probe.websocket {
        kinds.push(Kind::Websocket);
    }
    if kinds.is_empty() {
        return None;
    }
    let mut open: Vec<String> = Vec::new();
    let mut asks: Vec<String> = Vec::new();
    for b in table() {
        let unasked: Vec<&str> = kinds
            .iter()
            .filter(|k| b.without_asking.contains(k) && !b.asks_first.contains(k))
            .map(|k| k.words())
            .collect();
        let name = format!("{} ({})", b.browser, b.versions);
        if unasked.is_empty() {
            asks.push(name);
        } else if unasked.len() == kinds.len() {
            open.push(name);
        } else {
            open.push(format!("{name}, by {}", unasked.join(" or ")));
        }
    }
    let mut said = Vec::new();
    if !open.is_empty() {
        said.push(format!(
            "browsers that let any web page reach it without asking: {}",
            open.join("; ")
        ));
    }
    if !asks.is_empty() {
        said.push(format!(
            "browsers that ask the person first: {}",
            asks.join("; ")
        ));
    }
    (!said.is_empty()).then(|| said.join(". "))
}

/// The helper opted in to being reached from public pages.
pub(crate) fn opt_in_note(probe: &HttpProbe) -> Option<String> {
    probe.private_network.then(|| {
        "it answers the private-network preflight with Access-Control-Allow-Private-Network: \
         true: it asks to be reached from public web pages"
            .to_string()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(http: bool, websocket: bool) -> HttpProbe {
        HttpProbe {
            http,
            websocket,
            status: Some(200),
            ..crate::judge::testkit::not_http()
        }
    }

    #[test]
    fn every_browser_in_the_table_cites_a_source_and_decides_each_kind_once() {
        let t = table();
        assert!(t.len() >= 3, "the table parsed: {t:?}");
        for b in t {
            assert!(!b.sources.is_empty(), "{} cites no source", b.browser);
            assert!(
                b.sources.iter().all(|s| s.starts_with("https://")),
                "{:?}",
                b.sources
            );
            for k in &b.asks_first {
                assert!(!b.without_asking.contains(k), "{}: {k:?} twice", b.browser);
            }
        }
    }

    #[test]
    fn a_plain_http_helper_is_open_to_safari_and_to_chrome_navigations() {
        let said = reach_note(&probe(true, false)).unwrap();
        assert!(
            said.contains("without asking: Chrome (142 and later), by a navigation or form post"),
            "{said}"
        );
        assert!(said.contains("Safari (all)"), "{said}");
        // Navigations are outside every prompt in the table.
        assert!(!said.contains("ask the person first"), "{said}");
    }

    #[test]
    fn a_websocket_open_to_any_origin_is_beyond_chrome_prompt() {
        let said = reach_note(&probe(false, true)).unwrap();
        assert!(said.contains("Chrome (142 and later)"), "{said}");
        assert!(said.contains("Safari (all)"), "{said}");
        assert!(said.contains("ask the person first: Firefox"), "{said}");
    }

    #[test]
    fn nothing_a_page_can_use_says_nothing() {
        assert_eq!(reach_note(&probe(false, false)), None);
        assert_eq!(opt_in_note(&probe(true, false)), None);
        let mut p = probe(true, false);
        p.private_network = true;
        assert!(
            opt_in_note(&p)
                .unwrap()
                .contains("Access-Control-Allow-Private-Network")
        );
    }
}
