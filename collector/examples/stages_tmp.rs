#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]
use lenscap_events::*;
fn cpu() -> f64 { let mut t = libc::timespec{tv_sec:0,tv_nsec:0}; unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) }; t.tv_sec as f64 + t.tv_nsec as f64*1e-9 }
fn main() {
    let h = samples::host();
    let mut events: Vec<Event> = (1..=100u64).map(|seq| {
        let body = match seq % 10 { 0 => Body::AgentHealth(samples::started()),
            1..=3 => Body::DetectionFinding(Box::new(samples::zoom_finding(Verdict::Remediate, Some("catalog:zoom-opener")))),
            4..=7 => Body::DetectionFinding(Box::new(samples::zoom_finding(Verdict::Report, None))),
            8 => Body::ProcessRemediation(samples::kill_zoom(false)), _ => Body::FileRemediation(samples::quarantine_zoom()) };
        samples::event(&h, seq, seq as i64 * 1000, Mode::Remediate, body) }).collect();
    samples::link(&mut events, Sha256Hex::genesis());
    let bytes = serde_json::to_vec(&events).unwrap();
    println!("batch {} bytes, {} per event", bytes.len(), bytes.len()/100);
    let n = 300;
    let t = cpu(); for _ in 0..n { let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap(); std::hint::black_box(v); } println!("parse Value: {:.2} us/event", (cpu()-t)*1e6/(n as f64*100.0));
    let vals: Vec<serde_json::Value> = serde_json::from_slice(&bytes).unwrap();
    let t = cpu(); for _ in 0..n { for v in &vals { std::hint::black_box(canonical_json(v)); } } println!("canonical: {:.2} us/event", (cpu()-t)*1e6/(n as f64*100.0));
    let cj: Vec<String> = vals.iter().map(canonical_json).collect();
    let t = cpu(); for _ in 0..n { for c in &cj { std::hint::black_box(Sha256Hex::of_bytes(c.as_bytes())); } } println!("sha256: {:.2} us/event", (cpu()-t)*1e6/(n as f64*100.0));
    let t = cpu(); for _ in 0..n { for v in &vals { std::hint::black_box(Event::from_value(v.clone()).unwrap()); } } println!("clone+from_value: {:.2} us/event", (cpu()-t)*1e6/(n as f64*100.0));
    let t = cpu(); for _ in 0..n { for v in &vals { std::hint::black_box(v.clone()); } } println!("clone only: {:.2} us/event", (cpu()-t)*1e6/(n as f64*100.0));
    let raws: Vec<Box<serde_json::value::RawValue>> = Vec::new(); let _ = raws;
    let strs: Vec<String> = vals.iter().map(|v| serde_json::to_string(v).unwrap()).collect();
    let t = cpu(); for _ in 0..n { for s in &strs { std::hint::black_box(serde_json::from_str::<Event>(s).unwrap()); } } println!("typed from_str: {:.2} us/event", (cpu()-t)*1e6/(n as f64*100.0));
}
