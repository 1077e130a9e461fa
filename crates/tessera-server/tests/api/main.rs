//! The HTTP API, black-box: each test starts the real server on port 0 with
//! its own SQLite file and talks to it over HTTP.
//!
//! One test binary on purpose (z2p, kanidm): add a module here, not a new
//! file under `tests/`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod accounts;
mod admin;
mod attacks;
mod attacks_public_key;
mod errors;
mod faults;
mod helpers;
mod import;
mod interop;
mod jwks;
mod limits;
mod logout;
mod mail;
mod openapi;
mod process;
mod refresh;
mod register_login;
mod revocation;
mod scale;
mod sessions;
mod smtp_sink;
mod tenants;
mod verify;
mod verify_crate;
