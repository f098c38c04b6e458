//! Link-time choices for the `lenscap` binary that depend on the target.
//!
//! On Linux with glibc ≥ 2.36, link with packed relative relocations
//! (`-z pack-relative-relocs`, DT_RELR). The binary has ~25,000 relative
//! relocations (vtables, string tables); as RELA records they are a 660 KB
//! table the dynamic loader reads at every start and that stays resident in
//! the daemon. Packed they take 13 KB: the idle daemon's RSS drops by about
//! 0.8 MB (docs/benchmarks.md, issue 11). A DT_RELR binary needs glibc
//! 2.36 to run, so the flag is added only when the machine building it has
//! that glibc and builds for itself; anything else links as before. macOS
//! (chained fixups) has no use for it.

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let env = |k: &str| std::env::var(k).unwrap_or_default();
    let native = env("TARGET") == env("HOST");
    if env("CARGO_CFG_TARGET_OS") == "linux"
        && env("CARGO_CFG_TARGET_ENV") == "gnu"
        && native
        && host_glibc().is_some_and(|v| v >= (2, 36))
    {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}

/// The build machine's glibc version, from `getconf GNU_LIBC_VERSION`
/// ("glibc 2.36"); `None` when it cannot be told, which keeps the default.
fn host_glibc() -> Option<(u32, u32)> {
    let out = Command::new("getconf")
        .arg("GNU_LIBC_VERSION")
        .output()
        .ok()?;
    parse_glibc(std::str::from_utf8(&out.stdout).ok()?)
}

fn parse_glibc(s: &str) -> Option<(u32, u32)> {
    let version = s.trim().strip_prefix("glibc ")?;
    let mut parts = version.split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts
        .next()?
        .trim_end_matches(|c: char| !c.is_ascii_digit())
        .parse()
        .ok()?;
    Some((major, minor))
}
