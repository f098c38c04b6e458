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
//!
//! On x86_64 Linux, where rustc links with its own lld unless told
//! otherwise, place the functions an idle daemon runs first and together
//! (`link-order.txt`, `--symbol-ordering-file`). The kernel maps code 64 KB
//! around each page fault, so resident code is every 64 KB window start-up
//! and the idle loop touch: scattered, the ~2 MB they run kept 6.8 MB
//! resident; together, about 3 (docs/benchmarks.md, "Link order"). Names
//! the binary no longer has are skipped, so a stale file costs memory,
//! never a build. `LENSCAP_LINK_ORDER=0`, or any linker choice of one's
//! own, links in the default order.

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=link-order.txt");
    println!("cargo:rerun-if-env-changed=LENSCAP_LINK_ORDER");
    println!("cargo:rerun-if-env-changed=CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_LINKER");
    let env = |k: &str| std::env::var(k).unwrap_or_default();
    let native = env("TARGET") == env("HOST");
    if env("CARGO_CFG_TARGET_OS") == "linux"
        && env("CARGO_CFG_TARGET_ENV") == "gnu"
        && native
        && host_glibc().is_some_and(|v| v >= (2, 36))
    {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
    if let Some(order) = link_order(&env) {
        println!("cargo:rustc-link-arg-bins=-Wl,--symbol-ordering-file={order}");
        println!("cargo:rustc-link-arg-bins=-Wl,--no-warn-symbol-ordering");
    }
}

/// The ordering file, when the link is rustc's own lld: the default for
/// x86_64-unknown-linux-gnu since Rust 1.90. Another target, a linker set
/// through Cargo's environment or RUSTFLAGS (`-C linker`,
/// `-C link-self-contained`, `-fuse-ld`), or `LENSCAP_LINK_ORDER=0` leave
/// the order alone (GNU ld and gold do not know the option). A linker set
/// in a Cargo config file is not visible here: such a build sets
/// `LENSCAP_LINK_ORDER=0`.
fn link_order(env: &dyn Fn(&str) -> String) -> Option<String> {
    let rustflags = env("CARGO_ENCODED_RUSTFLAGS");
    let own_linker = !env("CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_LINKER").is_empty()
        || rustflags.contains("linker")
        || rustflags.contains("link-self-contained")
        || rustflags.contains("fuse-ld");
    if env("TARGET") != "x86_64-unknown-linux-gnu" || own_linker || env("LENSCAP_LINK_ORDER") == "0"
    {
        return None;
    }
    let file = std::path::Path::new(&env("CARGO_MANIFEST_DIR")).join("link-order.txt");
    // -Wl, splits its argument at commas.
    let name = file.to_str().filter(|f| !f.contains(','))?;
    file.is_file().then(|| name.to_string())
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
