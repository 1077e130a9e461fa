//! The tessera server: configuration, the HTTP API, start-up and shutdown.
//!
//! This is the only crate that knows HTTP. It turns requests into calls on
//! `tessera-core` (accounts), `tessera-token` (JWTs) and `tessera-store`
//! (persistence), and their errors into the contract's error body.

pub mod accounts;
pub mod audit;
pub mod client_ip;
pub mod config;
pub mod hashing;
pub mod http;
pub mod import;
pub mod keys;
pub mod mail;
pub mod master;
pub mod ops;
pub mod ratelimit;
pub mod revocation;
pub mod secrets;
pub mod serve;
pub mod startup;
pub mod state;
pub mod telemetry;
pub mod tenants;
pub mod tokens;

pub use config::Config;
pub use startup::Application;
