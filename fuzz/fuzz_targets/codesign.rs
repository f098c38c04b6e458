//! Fuzz the `codesign -dv --verbose=4` parser with arbitrary stderr text,
//! and the Team ID gate that guards requirement strings.
#![no_main]

use lenscap::parse::codesign::{self, Display, Requirement, TeamId};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Display::Signed(info) = codesign::parse_display(&text)
        && let Some(claim) = info.claimed_team_id.as_deref()
        && let Ok(team) = TeamId::parse(claim)
    {
        // Whatever was claimed, a requirement holds exactly two quotes.
        assert_eq!(Requirement::Team(team).text().matches('"').count(), 2);
    }
});
