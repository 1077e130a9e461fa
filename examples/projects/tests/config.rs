//! Configuration: what each variable means, and the real binary's exit
//! codes and messages.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use projects_example::config::{Config, KeySource};
use tessera_token::Uuid;

const SECRET: &str = "the JWT_SECRET tessera and this service share, 32+ bytes";

fn config(vars: &[(&str, &str)]) -> Result<Config, projects_example::config::ConfigError> {
    let vars: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    Config::from_lookup(|name| vars.get(name).cloned())
}

#[test]
fn defaults_and_values() {
    let config = config(&[
        ("TESSERA_ISSUER", "http://127.0.0.1:8080"),
        ("TESSERA_JWKS_URL", "http://127.0.0.1:8080/.well-known/jwks.json"),
    ])
    .unwrap();
    assert_eq!(config.bind, "127.0.0.1:3000".parse().unwrap());
    assert_eq!(config.audience, "tessera");
    assert_eq!(config.issuer, "http://127.0.0.1:8080");
    assert_eq!(
        config.keys,
        KeySource::Jwks("http://127.0.0.1:8080/.well-known/jwks.json".into())
    );
    assert_eq!(config.tenant, None);

    let tenant = Uuid::new_v4();
    let tenant_text = tenant.to_string();
    let config = self::config(&[
        ("TESSERA_ISSUER", "https://auth.example.com"),
        ("JWT_SECRET", SECRET),
        ("TESSERA_JWKS_URL", ""),
        ("TESSERA_AUDIENCE", "projects"),
        ("TESSERA_TENANT", &tenant_text),
        ("PROJECTS_BIND", "0.0.0.0:0"),
    ])
    .unwrap();
    assert_eq!(config.keys, KeySource::Secret(SECRET.into()));
    assert_eq!(config.audience, "projects");
    assert_eq!(config.tenant, Some(tenant));
    assert_eq!(config.bind.port(), 0);
    assert!(!format!("{config:?}").contains(SECRET));
}

#[test]
fn bad_configuration_names_the_variable() {
    let issuer = ("TESSERA_ISSUER", "http://127.0.0.1:8080");
    let secret = ("JWT_SECRET", SECRET);
    let jwks = ("TESSERA_JWKS_URL", "http://127.0.0.1:8080/.well-known/jwks.json");
    for (vars, variable, says) in [
        (vec![secret], "TESSERA_ISSUER", "is not set"),
        (vec![issuer], "TESSERA_JWKS_URL", "nor JWT_SECRET"),
        (vec![issuer, secret, jwks], "TESSERA_JWKS_URL", "both set"),
        (
            vec![issuer, ("JWT_SECRET", "too-short")],
            "JWT_SECRET",
            "shorter than 32 bytes",
        ),
        (
            vec![issuer, secret, ("PROJECTS_BIND", "localhost")],
            "PROJECTS_BIND",
            "not an address",
        ),
        (
            vec![issuer, secret, ("TESSERA_TENANT", "acme")],
            "TESSERA_TENANT",
            "not a uuid",
        ),
    ] {
        let err = config(&vars).unwrap_err();
        assert_eq!(err.variable, variable, "{err}");
        assert!(err.to_string().contains(says), "{err}");
        assert!(!err.to_string().contains("too-short"), "{err}");
    }
}

fn binary() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_projects-example"));
    command.env_clear().env("PROJECTS_LOG", "info");
    command
}

#[test]
fn the_binary_exits_2_on_bad_configuration() {
    let output = binary().output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("TESSERA_ISSUER: is not set"), "{stderr}");

    let output = binary()
        .env("TESSERA_ISSUER", "http://127.0.0.1:8080")
        .env("TESSERA_JWKS_URL", "ftp://127.0.0.1/jwks.json")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("http or https"));
}

#[test]
fn the_binary_exits_1_when_tessera_is_unreachable() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let output = binary()
        .env("TESSERA_ISSUER", "http://127.0.0.1:8080")
        .env(
            "TESSERA_JWKS_URL",
            format!("http://127.0.0.1:{port}/.well-known/jwks.json"),
        )
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("check that tessera is running"), "{stderr}");
}

#[test]
fn the_binary_serves_with_a_secret() {
    let mut child = binary()
        .env("TESSERA_ISSUER", "http://127.0.0.1:8080")
        .env("JWT_SECRET", SECRET)
        .env("PROJECTS_BIND", "127.0.0.1:0")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if let Some(addr) = line.split("addr=").nth(1) {
                let _ = tx.send(addr.split_whitespace().next().unwrap_or_default().to_owned());
            }
            // Never print the secret.
            assert!(!line.contains(SECRET), "{line}");
        }
    });
    let addr = rx.recv_timeout(Duration::from_secs(20));
    let result = addr.map(|addr| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let response = reqwest::get(format!("http://{addr}/healthz")).await.unwrap();
            (response.status(), response.text().await.unwrap())
        })
    });
    child.kill().unwrap();
    child.wait().unwrap();
    let (status, body) = result.expect("the service did not log its address");
    assert_eq!(status, reqwest::StatusCode::OK);
    assert_eq!(body, r#"{"status":"ok"}"#);
}
