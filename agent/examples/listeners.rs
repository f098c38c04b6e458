//! Time `Platform::listeners()` the way a benchmark times `ss -ltnp`:
//! run it N times in this process and print the counts and the median.
//!
//! ```text
//! cargo run --release -p lenscap --example listeners -- 50
//! ```
//!
//! Prints one line: `listeners=<sockets> pairs=<socket,pid pairs>
//! runs=<N> median_ms=<…> min_ms=<…>`. The first run is included: a
//! one-shot `lenscap scan` pays it too.

use std::time::Instant;

use lenscap::platform::{Native, Platform, Tools};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let runs: usize = match std::env::args().nth(1) {
        Some(n) => n.parse()?,
        None => 20,
    };
    let platform = Native::new(Tools {
        codesign: "/usr/bin/codesign".into(),
        sfltool: "/usr/bin/sfltool".into(),
        launchctl: "/bin/launchctl".into(),
        utmpx: "/var/run/utmpx".into(),
    });
    let mut times = Vec::with_capacity(runs);
    let mut counts = (0, 0);
    for _ in 0..runs.max(1) {
        let start = Instant::now();
        let list = platform.listeners()?;
        times.push(start.elapsed().as_secs_f64() * 1000.0);
        counts = (list.len(), list.iter().map(|l| l.pids.len()).sum::<usize>());
    }
    times.sort_by(f64::total_cmp);
    println!(
        "listeners={} pairs={} runs={} median_ms={:.2} min_ms={:.2}",
        counts.0,
        counts.1,
        times.len(),
        times[times.len() / 2],
        times[0]
    );
    Ok(())
}
