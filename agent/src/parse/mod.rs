//! Pure parsers of macOS formats: bytes or text in, typed data or a typed
//! error out. No I/O, so every parser is tested on real-format fixtures
//! here on Linux and fuzzed (`fuzz/`).
pub mod codesign;

pub mod btm;
pub mod camera_log;
pub mod launchctl;
pub mod launchd;
pub mod libproc_abi;
pub mod pcblist;
pub mod plist_guard;
pub mod proc_bsdinfo;
pub mod procargs;
pub mod sw_vers;
pub mod tcc;
pub mod tcc_log;
pub mod utmpx;
