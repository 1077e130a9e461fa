//! The attack suite for public-key tokens (EdDSA, ES256, RS256): one row
//! per known attack on asymmetric JWTs. Every row must get a 401
//! `invalid_token` from every route that takes the token, fetch nothing,
//! and change nothing.
//!
//! - RFC 8725 §2.1 / CVE-2016-10555 and kin: the public key, in every form
//!   an attacker may find it (PEM, DER, JWK, raw), used as an HS256 secret.
//! - CVE-2022-21449 ("psychic signatures"): ECDSA with r or s zero, or at
//!   or above the group order.
//! - CVE-2018-0114 and RFC 8725 §3.10: keys embedded in the header (`jwk`)
//!   or named by URL (`jku`, `x5u`, `x5c`); a local listener records any
//!   fetch.
//! - Cross-tenant: a tenant's genuine token on another tenant's routes, its
//!   signature under another tenant's kid, its `tid` rewritten.

use crate::helpers::*;
use crate::jwks::{get_jwks, signup_with, spawn_signing, ASYMMETRIC};
use base64::Engine as _;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tessera_token::Jwk;

struct Ctx {
    alg: &'static str,
    header: Value,
    claims: Value,
    access: String,
    jwk: Jwk,
    /// A URL on a listener that counts connections.
    trap: String,
}

struct Case {
    name: &'static str,
    /// Only for this algorithm, or every one.
    only: Option<&'static str>,
    build: fn(&Ctx) -> String,
}

fn parts(token: &str) -> Vec<String> {
    token.split('.').map(str::to_owned).collect()
}

fn segment(value: &Value) -> String {
    b64(value.to_string().as_bytes())
}

/// The real token with its signature replaced.
fn resigned(ctx: &Ctx, signature: &[u8]) -> String {
    let p = parts(&ctx.access);
    format!("{}.{}.{}", p[0], p[1], b64(signature))
}

fn hs256_with(ctx: &Ctx, secret: &[u8]) -> String {
    let mut header = ctx.header.clone();
    header["alg"] = json!("HS256");
    forge(&header.to_string(), &ctx.claims.to_string(), secret)
}

/// The public key as SubjectPublicKeyInfo DER and PEM, made from its JWK.
fn spki(jwk: &Jwk) -> (Vec<u8>, String) {
    use ed25519_dalek::pkcs8::EncodePublicKey as _;
    let decode = |v: &Option<String>| b64_decode(v.as_deref().unwrap());
    match jwk.kty.as_str() {
        "OKP" => {
            let key = ed25519_dalek::VerifyingKey::from_bytes(&decode(&jwk.x).try_into().unwrap()).unwrap();
            (
                key.to_public_key_der().unwrap().as_bytes().to_vec(),
                key.to_public_key_pem(Default::default()).unwrap(),
            )
        }
        "EC" => {
            let (x, y) = (decode(&jwk.x), decode(&jwk.y));
            let point = p256::EncodedPoint::from_affine_coordinates(
                p256::FieldBytes::from_slice(&x),
                p256::FieldBytes::from_slice(&y),
                false,
            );
            let key = p256::ecdsa::VerifyingKey::from_encoded_point(&point).unwrap();
            (
                key.to_public_key_der().unwrap().as_bytes().to_vec(),
                key.to_public_key_pem(Default::default()).unwrap(),
            )
        }
        _ => {
            let key = rsa::RsaPublicKey::new(
                rsa::BigUint::from_bytes_be(&decode(&jwk.n)),
                rsa::BigUint::from_bytes_be(&decode(&jwk.e)),
            )
            .unwrap();
            (
                key.to_public_key_der().unwrap().as_bytes().to_vec(),
                key.to_public_key_pem(Default::default()).unwrap(),
            )
        }
    }
}

/// An attacker's own Ed25519 key, and a token it signs with `header`.
fn attacker_token(ctx: &Ctx, mut header: Value) -> String {
    use ed25519_dalek::Signer as _;
    let key = ed25519_dalek::SigningKey::from_bytes(&[42u8; 32]);
    let public = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key.verifying_key().as_bytes());
    let attacker_jwk = json!({"kty": "OKP", "crv": "Ed25519", "x": public, "kid": "attacker", "alg": "EdDSA"});
    for value in header.as_object_mut().unwrap().values_mut() {
        if value == "$JWK" {
            *value = attacker_jwk.clone();
        }
        if value == "$TRAP" {
            *value = json!(ctx.trap);
        }
    }
    let mut claims = ctx.claims.clone();
    claims["role"] = json!("admin");
    let input = format!("{}.{}", segment(&header), segment(&claims));
    format!("{input}.{}", b64(&key.sign(input.as_bytes()).to_bytes()))
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "public key (PEM) as the HS256 secret",
            only: None,
            build: |c| hs256_with(c, spki(&c.jwk).1.as_bytes()),
        },
        Case {
            name: "public key (PEM, no trailing newline) as the HS256 secret",
            only: None,
            build: |c| hs256_with(c, spki(&c.jwk).1.trim_end().as_bytes()),
        },
        Case {
            name: "public key (DER) as the HS256 secret",
            only: None,
            build: |c| hs256_with(c, &spki(&c.jwk).0),
        },
        Case {
            name: "public key (JWK JSON) as the HS256 secret",
            only: None,
            build: |c| hs256_with(c, serde_json::to_string(&c.jwk).unwrap().as_bytes()),
        },
        Case {
            name: "public key (raw x or n) as the HS256 secret",
            only: None,
            build: |c| hs256_with(c, &b64_decode(c.jwk.x.as_deref().or(c.jwk.n.as_deref()).unwrap())),
        },
        Case {
            name: "public key (base64url x or n text) as the HS256 secret",
            only: None,
            build: |c| hs256_with(c, c.jwk.x.as_deref().or(c.jwk.n.as_deref()).unwrap().as_bytes()),
        },
        Case {
            name: "alg none with the key's kid",
            only: None,
            build: |c| {
                let mut h = c.header.clone();
                h["alg"] = json!("none");
                format!("{}.{}.", segment(&h), segment(&c.claims))
            },
        },
        Case {
            name: "header alg swapped to another public-key algorithm, signature kept",
            only: None,
            build: |c| {
                let mut h = c.header.clone();
                h["alg"] = json!(if c.alg == "RS256" { "ES256" } else { "RS256" });
                let p = parts(&c.access);
                format!("{}.{}.{}", segment(&h), p[1], p[2])
            },
        },
        Case {
            name: "header alg PS256 (same key type as RS256), signature kept",
            only: Some("RS256"),
            build: |c| {
                let mut h = c.header.clone();
                h["alg"] = json!("PS256");
                let p = parts(&c.access);
                format!("{}.{}.{}", segment(&h), p[1], p[2])
            },
        },
        Case {
            name: "ECDSA r = s = 0 (CVE-2022-21449)",
            only: Some("ES256"),
            build: |c| resigned(c, &[0u8; 64]),
        },
        Case {
            name: "ECDSA r = 0",
            only: Some("ES256"),
            build: |c| {
                let mut sig = b64_decode(&parts(&c.access)[2]);
                sig[..32].fill(0);
                resigned(c, &sig)
            },
        },
        Case {
            name: "ECDSA s = 0",
            only: Some("ES256"),
            build: |c| {
                let mut sig = b64_decode(&parts(&c.access)[2]);
                sig[32..].fill(0);
                resigned(c, &sig)
            },
        },
        Case {
            name: "ECDSA r = n (the group order)",
            only: Some("ES256"),
            build: |c| {
                let mut sig = b64_decode(&parts(&c.access)[2]);
                sig[..32].copy_from_slice(&P256_ORDER);
                resigned(c, &sig)
            },
        },
        Case {
            name: "ECDSA s = n",
            only: Some("ES256"),
            build: |c| {
                let mut sig = b64_decode(&parts(&c.access)[2]);
                sig[32..].copy_from_slice(&P256_ORDER);
                resigned(c, &sig)
            },
        },
        Case {
            name: "ECDSA high S: (r, n - s), the same signature to a lax verifier",
            only: Some("ES256"),
            build: |c| {
                let mut sig = b64_decode(&parts(&c.access)[2]);
                let mut borrow = 0i16;
                for i in (0..32).rev() {
                    let diff = i16::from(P256_ORDER[i]) - i16::from(sig[32 + i]) - borrow;
                    borrow = i16::from(diff < 0);
                    sig[32 + i] = diff.rem_euclid(256) as u8;
                }
                resigned(c, &sig)
            },
        },
        Case {
            name: "ECDSA r, s = 2^256 - 1",
            only: Some("ES256"),
            build: |c| resigned(c, &[0xffu8; 64]),
        },
        Case {
            name: "ECDSA signature DER-encoded instead of r || s",
            only: Some("ES256"),
            build: |c| {
                let sig = b64_decode(&parts(&c.access)[2]);
                let (r, s) = (&sig[..32], &sig[32..]);
                let mut der = vec![0x30, 0x44, 0x02, 0x20];
                der.extend_from_slice(r);
                der.extend_from_slice(&[0x02, 0x20]);
                der.extend_from_slice(s);
                resigned(c, &der)
            },
        },
        Case {
            name: "Ed25519 signature all zeros",
            only: Some("EdDSA"),
            build: |c| resigned(c, &[0u8; 64]),
        },
        Case {
            name: "RSA signature of one byte less",
            only: Some("RS256"),
            build: |c| {
                let sig = b64_decode(&parts(&c.access)[2]);
                resigned(c, &sig[1..])
            },
        },
        Case {
            name: "RSA signature 0 and 1",
            only: Some("RS256"),
            build: |c| {
                let mut one = vec![0u8; 256];
                one[255] = 1;
                resigned(c, &one)
            },
        },
        Case {
            name: "signature of another token of the same key",
            only: None,
            build: |c| {
                let mut claims = c.claims.clone();
                claims["role"] = json!("admin");
                let p = parts(&c.access);
                format!("{}.{}.{}", p[0], segment(&claims), p[2])
            },
        },
        Case {
            name: "embedded jwk header with the attacker's key (CVE-2018-0114)",
            only: None,
            build: |c| {
                let mut h = c.header.clone();
                h["alg"] = json!("EdDSA");
                h["jwk"] = json!("$JWK");
                attacker_token(c, h)
            },
        },
        Case {
            name: "embedded jwk header, attacker's kid",
            only: None,
            build: |c| {
                attacker_token(
                    c,
                    json!({"alg": "EdDSA", "typ": "at+jwt", "kid": "attacker", "jwk": "$JWK"}),
                )
            },
        },
        Case {
            name: "jku header naming the attacker's JWKS",
            only: None,
            build: |c| {
                attacker_token(
                    c,
                    json!({"alg": "EdDSA", "typ": "at+jwt", "kid": "attacker", "jku": "$TRAP"}),
                )
            },
        },
        Case {
            name: "jku header with the real kid",
            only: None,
            build: |c| {
                let mut h = c.header.clone();
                h["jku"] = json!("$TRAP");
                attacker_token(c, h)
            },
        },
        Case {
            name: "x5u header naming the attacker's certificate",
            only: None,
            build: |c| {
                attacker_token(
                    c,
                    json!({"alg": "EdDSA", "typ": "at+jwt", "kid": "attacker", "x5u": "$TRAP"}),
                )
            },
        },
        Case {
            name: "x5c header with an embedded chain",
            only: None,
            build: |c| {
                attacker_token(
                    c,
                    json!({"alg": "EdDSA", "typ": "at+jwt", "kid": "attacker", "x5c": ["MIIB"]}),
                )
            },
        },
        Case {
            name: "kid as a URL",
            only: None,
            build: |c| attacker_token(c, json!({"alg": "EdDSA", "typ": "at+jwt", "kid": "$TRAP"})),
        },
        Case {
            name: "no kid at all (a verifier must not try every key)",
            only: None,
            build: |c| {
                let mut h = c.header.clone();
                h.as_object_mut().unwrap().remove("kid");
                let p = parts(&c.access);
                format!("{}.{}.{}", segment(&h), p[1], p[2])
            },
        },
    ]
}

/// The order of P-256's group.
const P256_ORDER: [u8; 32] = [
    0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xbc, 0xe6, 0xfa,
    0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51,
];

/// A listener that counts every connection: the server must make none.
async fn trap() -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    tokio::spawn(async move {
        while let Ok((conn, _)) = listener.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
            drop(conn);
        }
    });
    (url, hits)
}

async fn assert_invalid(res: reqwest::Response, case: &str, route: &str) {
    let status = res.status();
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "case {case:?} on {route}: got {status}"
    );
    assert!(
        res.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer "),
        "case {case:?} on {route}"
    );
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"], "invalid_token", "case {case:?} on {route}: {body}");
}

#[tokio::test]
async fn every_known_public_key_attack_is_refused() {
    let (trap_url, hits) = trap().await;
    let mut tried = 0;
    for alg in ASYMMETRIC {
        let app = spawn_signing(alg, |_| {}).await;
        let user = app.new_user().await;
        let (header, claims) = decode_parts(&user.access);
        let kid = header["kid"].as_str().unwrap().to_owned();
        let jwk = get_jwks(&app, "/.well-known/jwks.json")
            .await
            .into_iter()
            .find(|k| k.kid == kid)
            .unwrap();
        let ctx = Ctx {
            alg,
            header,
            claims,
            access: user.access.clone(),
            jwk,
            trap: trap_url.clone(),
        };
        for case in cases().iter().filter(|c| c.only.is_none_or(|a| a == alg)) {
            let token = (case.build)(&ctx);
            assert_ne!(token, user.access, "case {:?} must change the token", case.name);
            for route in ["/api/auth/verify", "/api/auth/me", "/api/auth/sessions"] {
                assert_invalid(app.get_auth(route, &token).await, case.name, route).await;
            }
            tried += 1;
        }
        // Nothing changed: the real token still works.
        assert_eq!(
            app.get_auth("/api/auth/verify", &user.access).await.status(),
            StatusCode::OK
        );
    }
    assert!(tried >= 60, "{tried} cases");
    // Give a stray fetch time to arrive, then make sure none did.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(hits.load(Ordering::SeqCst), 0, "the server fetched a URL a token named");
}

#[tokio::test]
async fn one_tenants_keys_are_no_good_for_another() {
    let app = spawn_app().await;
    let (acme, acme_body) = signup_with(&app, "Acme", "EdDSA").await;
    let (globex, _) = signup_with(&app, "Globex", "EdDSA").await;
    let acme_token = acme_body["accessToken"].as_str().unwrap().to_owned();
    let globex_kid = get_jwks(&app, &format!("/api/tenants/{}/.well-known/jwks.json", globex.slug)).await[0]
        .kid
        .clone();
    let (mut header, mut claims) = decode_parts(&acme_token);
    let p = parts(&acme_token);

    // A genuine acme token on globex's routes.
    for route in ["/auth/me", "/auth/verify", "/auth/sessions"] {
        let route = format!("/api/tenants/{}{route}", globex.slug);
        assert_invalid(app.get_auth(&route, &acme_token).await, "acme token on globex", &route).await;
    }
    // Its signature under globex's kid.
    header["kid"] = json!(globex_kid);
    let under_globex_kid = format!("{}.{}.{}", segment(&header), p[1], p[2]);
    // Its tid rewritten to globex's.
    claims["tid"] = json!(globex.id);
    let retargeted = format!("{}.{}.{}", p[0], segment(&claims), p[2]);
    for (name, token) in [("globex kid", &under_globex_kid), ("globex tid", &retargeted)] {
        for route in [
            "/api/auth/verify".to_owned(),
            format!("/api/tenants/{}/auth/me", globex.slug),
            format!("/api/tenants/{}/auth/me", acme.slug),
        ] {
            assert_invalid(app.get_auth(&route, token).await, name, &route).await;
        }
    }
    // Acme's own token still works where it belongs.
    let res = app
        .get_auth(&format!("/api/tenants/{}/auth/me", acme.slug), &acme_token)
        .await;
    assert_eq!(res.status(), StatusCode::OK);
}
