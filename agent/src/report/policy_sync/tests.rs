//! The health events for a fleet policy applied or rejected.

use super::*;
use crate::config::CollectorUrl;

const API_EXAMPLE: &str = r#"{"catalog":[{"id":"ringcentral-opener","name":"RingCentral opener","paths":["/Users/*/.ringcentralopener/**"],"ports":[19424],"severity":"high"}],
 "rules":[{"action":"allow","id":"allow-jetbrains","port":63342,"team_id":"2ZEFAR8TH3"}]}"#;

fn parse(body: &str) -> Result<Fetched, PolicySyncError> {
    let url =
        CollectorUrl::parse("https://collector.example.com:8470").unwrap_or_else(|e| panic!("{e}"));
    Fetched::parse(body, "\"etag-1\"".into(), &url)
}

#[test]
fn notices_say_what_happened() {
    let f = parse(API_EXAMPLE).unwrap_or_else(|e| panic!("{e}"));
    let Body::AgentHealth(h) = applied_notice(&f) else {
        panic!()
    };
    assert_eq!(
        h.message,
        "Fleet policy \"etag-1\" applied: 1 rules, 1 catalog entries"
    );
    let Body::AgentHealth(h) = rejected_notice("\"e2\"", "rules[0] (r): port 0") else {
        panic!()
    };
    assert!(h.message.contains("previous policy stays") && h.message.contains("port 0"));
    assert!(
        matches!(h.status, HealthStatus::ConfigChanged { ref source, .. } if source == "fleet_policy")
    );
}
