//! Interoperability with JWT clients nobody here wrote: PyJWT (with
//! `PyJWKClient`) and the npm `jose` package fetch a tenant's JWKS from the
//! running server and verify its EdDSA, ES256 and RS256 access tokens, and
//! reject tampered ones. `scripts/interop/setup.sh` installs both, pinned,
//! into `scripts/interop/` (PyPI and npm; a second run is a no-op).

use crate::helpers::*;
use crate::jwks::{get_jwks, signup_with, ASYMMETRIC};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::Command;

fn interop_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/interop")
}

/// Runs a command off the runtime: the server under test shares its thread.
async fn run(program: &'static str, args: Vec<std::ffi::OsString>) -> (bool, String) {
    tokio::task::spawn_blocking(move || run_blocking(program, &args))
        .await
        .unwrap()
}

fn run_blocking(program: &str, args: &[std::ffi::OsString]) -> (bool, String) {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program} ({e}); the interop tests need python3 and node"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// `header.payload.signature` with the payload's role changed.
fn tampered_payload(token: &str) -> String {
    let (_, mut claims) = decode_parts(token);
    claims["role"] = json!("admin");
    let p: Vec<&str> = token.split('.').collect();
    format!("{}.{}.{}", p[0], b64(claims.to_string().as_bytes()), p[2])
}

fn flipped_signature(token: &str) -> String {
    let (input, sig) = token.rsplit_once('.').unwrap();
    let mut bytes = b64_decode(sig);
    bytes[10] ^= 0x40;
    format!("{input}.{}", b64(&bytes))
}

#[tokio::test]
async fn pyjwt_and_jose_verify_every_algorithm_from_the_jwks() {
    let dir = interop_dir();
    let (ok, log) = run("bash", vec![dir.join("setup.sh").into()]).await;
    assert!(ok, "scripts/interop/setup.sh failed:\n{log}");

    let app = spawn_app().await;
    let tenants: Vec<_> = {
        let mut out = Vec::new();
        for alg in ASYMMETRIC {
            out.push((alg, signup_with(&app, &format!("Interop {alg}"), alg).await));
        }
        out
    };
    for (i, (alg, (tenant, body))) in tenants.iter().enumerate() {
        let access = body["accessToken"].as_str().unwrap();
        let refresh = body["refreshToken"].as_str().unwrap();
        let sub = body["user"]["id"].as_str().unwrap();
        let jwks_path = format!("/api/tenants/{}/.well-known/jwks.json", tenant.slug);
        let jwk = get_jwks(&app, &jwks_path).await.remove(0);
        let public = serde_json::to_string(&jwk).unwrap();
        let mut confused = decode_parts(access).0;
        confused["alg"] = json!("HS256");
        let (other_alg, (_, other_body)) = &tenants[(i + 1) % tenants.len()];
        let cases = json!({
            "jwks_url": app.url(&jwks_path),
            "issuer": app.issuer,
            "audience": "tessera",
            "cases": [
                {"name": format!("{alg} genuine"), "token": access, "alg": alg, "expect": "accept", "sub": sub},
                {"name": format!("{alg} tampered payload"), "token": tampered_payload(access), "alg": alg, "expect": "reject"},
                {"name": format!("{alg} flipped signature bit"), "token": flipped_signature(access), "alg": alg, "expect": "reject"},
                {"name": format!("{alg} signature cut off"), "token": access.rsplit_once('.').unwrap().0.to_owned() + ".", "alg": alg, "expect": "reject"},
                {"name": format!("{alg} as HS256 with the public JWK as secret"),
                 "token": forge(&confused.to_string(), &decode_parts(access).1.to_string(), public.as_bytes()),
                 "alg": alg, "expect": "reject"},
                {"name": format!("{alg} refresh token (HS256, rt+jwt)"), "token": refresh, "alg": alg, "expect": "reject"},
                {"name": format!("{other_alg} token of another tenant"), "token": other_body["accessToken"], "alg": other_alg, "expect": "reject"},
            ],
        });
        let file = app.data_dir.path().join(format!("interop-{alg}.json"));
        std::fs::write(&file, serde_json::to_vec(&cases).unwrap()).unwrap();
        for (program, script) in [("python3", "pyjwt_verify.py"), ("node", "jose_verify.mjs")] {
            let (ok, log) = run(program, vec![dir.join(script).into(), file.clone().into()]).await;
            assert!(ok, "{script} disagrees with tessera on {alg}:\n{log}");
            let summary = log.lines().find(|l| l.ends_with(" failed")).unwrap_or_default();
            assert_eq!(summary, "7 passed, 0 failed", "{script} {alg}:\n{log}");
            let accepted: Vec<Value> = log
                .lines()
                .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                .filter(|v| v["result"] == "accept")
                .collect();
            assert_eq!(accepted.len(), 1, "{script} {alg}: {accepted:?}");
        }
    }
}
