//! lenscap-collector: receives the fleet's events, stores them (SQLite or
//! PostgreSQL), and serves them to security teams: a JSON API, NDJSON/CSV
//! exports, Prometheus metrics and a server-rendered dashboard.
//!
//! `main.rs` parses the command line; [`server::start`] does the rest in
//! order: config → store → migrations → serve.

pub mod admin;
pub mod alerts;
pub mod auth;
pub mod config;
pub mod conn_limit;
pub mod error;
pub mod export;
pub mod http;
pub mod incidents;
pub mod metrics;
pub mod server;
pub mod state;
pub mod store;
pub mod timefmt;
pub mod web;
