//! Helpers for the end-to-end tests: spawning real processes and the
//! `lenscap` binary against temporary trees.
