//! The attack suite: one row per known JWT attack or malformed encoding
//! (RFC 8725, the OWASP JWT cheat sheet, CVEs of JWT libraries). Every row
//! must get a 401 with the documented body from every route that takes the
//! token, and change nothing.

use crate::helpers::*;
use hmac::{Hmac, Mac};
use reqwest::StatusCode;
use serde_json::{json, Value};
use sha2::{Sha384, Sha512};

struct Ctx {
    header: Value,
    claims: Value,
    refresh_header: Value,
    refresh_claims: Value,
    access: String,
    refresh: String,
    secret: Vec<u8>,
    refresh_secret: Vec<u8>,
}

#[derive(Clone, Copy)]
enum Target {
    Access,
    Refresh,
}

struct Case {
    name: &'static str,
    target: Target,
    expect: &'static str,
    build: fn(&Ctx) -> String,
}

const INVALID: &str = "invalid_token";

fn sign(header: &Value, claims: &Value, key: &[u8]) -> String {
    forge(&header.to_string(), &claims.to_string(), key)
}

fn with_header(ctx: &Ctx, f: impl FnOnce(&mut serde_json::Map<String, Value>)) -> String {
    let mut h = ctx.header.as_object().unwrap().clone();
    f(&mut h);
    sign(&Value::Object(h), &ctx.claims, &ctx.secret)
}

fn with_claims(ctx: &Ctx, f: impl FnOnce(&mut serde_json::Map<String, Value>)) -> String {
    let mut c = ctx.claims.as_object().unwrap().clone();
    f(&mut c);
    sign(&ctx.header, &Value::Object(c), &ctx.secret)
}

fn unsigned(header: &Value, claims: &Value) -> String {
    format!(
        "{}.{}.",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    )
}

fn parts(token: &str) -> Vec<String> {
    token.split('.').map(str::to_owned).collect()
}

/// Claims JSON text with one member appended verbatim (duplicates, odd types).
fn claims_text_with(ctx: &Ctx, extra: &str) -> String {
    let text = ctx.claims.to_string();
    format!("{},{}}}", &text[..text.len() - 1], extra)
}

fn mac_sign<M: Mac + hmac::digest::KeyInit>(input: &str, key: &[u8]) -> String {
    let mut mac = <M as Mac>::new_from_slice(key).unwrap();
    mac.update(input.as_bytes());
    b64(&mac.finalize().into_bytes())
}

fn cases() -> Vec<Case> {
    use Target::*;
    vec![
        Case {
            name: "alg none, empty signature (RFC 8725 §2.1)",
            target: Access,
            expect: INVALID,
            build: |c| {
                let mut h = c.header.clone();
                h["alg"] = json!("none");
                unsigned(&h, &c.claims)
            },
        },
        Case {
            name: "alg None, capitalised (CVE-2015-9235 variants)",
            target: Access,
            expect: INVALID,
            build: |c| {
                let mut h = c.header.clone();
                h["alg"] = json!("None");
                unsigned(&h, &c.claims)
            },
        },
        Case {
            name: "alg NONE",
            target: Access,
            expect: INVALID,
            build: |c| {
                let mut h = c.header.clone();
                h["alg"] = json!("NONE");
                unsigned(&h, &c.claims)
            },
        },
        Case {
            name: "alg nOnE keeping the original signature",
            target: Access,
            expect: INVALID,
            build: |c| {
                let mut h = c.header.clone();
                h["alg"] = json!("nOnE");
                let p = parts(&c.access);
                format!("{}.{}.{}", b64(h.to_string().as_bytes()), p[1], p[2])
            },
        },
        Case {
            name: "alg none without kid or typ",
            target: Access,
            expect: INVALID,
            build: |c| unsigned(&json!({"alg": "none"}), &c.claims),
        },
        Case {
            name: "alg HS384 signed with the real key (algorithm substitution)",
            target: Access,
            expect: INVALID,
            build: |c| {
                let mut h = c.header.clone();
                h["alg"] = json!("HS384");
                let input = format!(
                    "{}.{}",
                    b64(h.to_string().as_bytes()),
                    b64(c.claims.to_string().as_bytes())
                );
                format!("{input}.{}", mac_sign::<Hmac<Sha384>>(&input, &c.secret))
            },
        },
        Case {
            name: "alg HS512 signed with the real key",
            target: Access,
            expect: INVALID,
            build: |c| {
                let mut h = c.header.clone();
                h["alg"] = json!("HS512");
                let input = format!(
                    "{}.{}",
                    b64(h.to_string().as_bytes()),
                    b64(c.claims.to_string().as_bytes())
                );
                format!("{input}.{}", mac_sign::<Hmac<Sha512>>(&input, &c.secret))
            },
        },
        Case {
            name: "alg RS256 with an HMAC signature (key confusion, CVE-2016-10555)",
            target: Access,
            expect: INVALID,
            build: |c| {
                with_header(c, |h| {
                    h.insert("alg".into(), json!("RS256"));
                })
            },
        },
        Case {
            name: "alg ES256 with r = s = 0 (psychic signatures, CVE-2022-21449)",
            target: Access,
            expect: INVALID,
            build: |c| {
                let mut h = c.header.clone();
                h["alg"] = json!("ES256");
                format!(
                    "{}.{}.{}",
                    b64(h.to_string().as_bytes()),
                    b64(c.claims.to_string().as_bytes()),
                    b64(&[0u8; 64])
                )
            },
        },
        Case {
            name: "alg EdDSA with an HMAC signature",
            target: Access,
            expect: INVALID,
            build: |c| {
                with_header(c, |h| {
                    h.insert("alg".into(), json!("EdDSA"));
                })
            },
        },
        Case {
            name: "alg member missing",
            target: Access,
            expect: INVALID,
            build: |c| {
                with_header(c, |h| {
                    h.remove("alg");
                })
            },
        },
        Case {
            name: "alg as a number",
            target: Access,
            expect: INVALID,
            build: |c| {
                with_header(c, |h| {
                    h.insert("alg".into(), json!(256));
                })
            },
        },
        Case {
            name: "alg null",
            target: Access,
            expect: INVALID,
            build: |c| {
                with_header(c, |h| {
                    h.insert("alg".into(), Value::Null);
                })
            },
        },
        Case {
            name: "kid unknown",
            target: Access,
            expect: INVALID,
            build: |c| {
                with_header(c, |h| {
                    h.insert("kid".into(), json!("not-a-key"));
                })
            },
        },
        Case {
            name: "kid missing",
            target: Access,
            expect: INVALID,
            build: |c| {
                with_header(c, |h| {
                    h.remove("kid");
                })
            },
        },
        Case {
            name: "kid of the refresh key, signed with the refresh secret",
            target: Access,
            expect: INVALID,
            build: |c| {
                let mut h = c.header.clone();
                h["kid"] = c.refresh_header["kid"].clone();
                sign(&h, &c.claims, &c.refresh_secret)
            },
        },
        Case {
            name: "kid path traversal to an empty file, signed with an empty key",
            target: Access,
            expect: INVALID,
            build: |c| {
                let mut h = c.header.clone();
                h["kid"] = json!("../../../../../../dev/null");
                forge(&h.to_string(), &c.claims.to_string(), b"")
            },
        },
        Case {
            name: "kid SQL injection selecting a known key",
            target: Access,
            expect: INVALID,
            build: |c| {
                let mut h = c.header.clone();
                h["kid"] = json!("x' UNION SELECT 'key' -- ");
                sign(&h, &c.claims, b"key")
            },
        },
        Case {
            name: "typ missing",
            target: Access,
            expect: INVALID,
            build: |c| {
                with_header(c, |h| {
                    h.remove("typ");
                })
            },
        },
        Case {
            name: "typ JWT instead of at+jwt (RFC 8725 §3.11)",
            target: Access,
            expect: INVALID,
            build: |c| {
                with_header(c, |h| {
                    h.insert("typ".into(), json!("JWT"));
                })
            },
        },
        Case {
            name: "typ rt+jwt on an access key",
            target: Access,
            expect: INVALID,
            build: |c| {
                with_header(c, |h| {
                    h.insert("typ".into(), json!("rt+jwt"));
                })
            },
        },
        Case {
            name: "crit header naming an unknown extension",
            target: Access,
            expect: INVALID,
            build: |c| {
                with_header(c, |h| {
                    h.insert("crit".into(), json!(["exp"]));
                })
            },
        },
        Case {
            name: "jku header pointing at an attacker's key set",
            target: Access,
            expect: INVALID,
            build: |c| {
                with_header(c, |h| {
                    h.insert("jku".into(), json!("https://attacker.example/jwks.json"));
                })
            },
        },
        Case {
            name: "x5u header pointing at an attacker's certificate",
            target: Access,
            expect: INVALID,
            build: |c| {
                with_header(c, |h| {
                    h.insert("x5u".into(), json!("https://attacker.example/cert.pem"));
                })
            },
        },
        Case {
            name: "embedded jwk header with the attacker's key (CVE-2018-0114)",
            target: Access,
            expect: INVALID,
            build: |c| {
                let mut h = c.header.clone();
                h["jwk"] = json!({"kty": "oct", "k": b64(b"attacker-key")});
                sign(&h, &c.claims, b"attacker-key")
            },
        },
        Case {
            name: "x5c header with a self-signed chain",
            target: Access,
            expect: INVALID,
            build: |c| {
                with_header(c, |h| {
                    h.insert("x5c".into(), json!(["MIIBszCCAVmgAwIBAgIJAL"]));
                })
            },
        },
        Case {
            name: "b64 false header (RFC 7797 unencoded payload)",
            target: Access,
            expect: INVALID,
            build: |c| {
                with_header(c, |h| {
                    h.insert("b64".into(), json!(false));
                })
            },
        },
        Case {
            name: "duplicate alg member in the header",
            target: Access,
            expect: INVALID,
            build: |c| {
                let h = format!(
                    r#"{{"alg":"none","alg":"HS256","typ":"at+jwt","kid":{}}}"#,
                    c.header["kid"]
                );
                forge(&h, &c.claims.to_string(), &c.secret)
            },
        },
        Case {
            name: "duplicate sub claim (parser differential)",
            target: Access,
            expect: INVALID,
            build: |c| {
                forge(
                    &c.header.to_string(),
                    &claims_text_with(c, r#""sub":"00000000-0000-0000-0000-000000000001""#),
                    &c.secret,
                )
            },
        },
        Case {
            name: "duplicate exp claim extending the lifetime",
            target: Access,
            expect: INVALID,
            build: |c| {
                forge(
                    &c.header.to_string(),
                    &claims_text_with(c, r#""exp":99999999999"#),
                    &c.secret,
                )
            },
        },
        Case {
            name: "duplicate unknown claim",
            target: Access,
            expect: INVALID,
            build: |c| forge(&c.header.to_string(), &claims_text_with(c, r#""x":1,"x":2"#), &c.secret),
        },
        Case {
            name: "exp as a string (skipped by jsonwebtoken < 10.3)",
            target: Access,
            expect: INVALID,
            build: |c| {
                with_claims(c, |m| {
                    let e = m["exp"].to_string();
                    m.insert("exp".into(), json!(e));
                })
            },
        },
        Case {
            name: "exp as a float",
            target: Access,
            expect: INVALID,
            build: |c| {
                with_claims(c, |m| {
                    let e = m["exp"].as_i64().unwrap() as f64 + 0.5;
                    m.insert("exp".into(), json!(e));
                })
            },
        },
        Case {
            name: "exp beyond any integer type",
            target: Access,
            expect: INVALID,
            build: |c| {
                forge(
                    &c.header.to_string(),
                    &c.claims.to_string().replacen("\"exp\":", "\"exp\":1e400,\"_\":", 1),
                    &c.secret,
                )
            },
        },
        Case {
            name: "exp missing",
            target: Access,
            expect: INVALID,
            build: |c| {
                with_claims(c, |m| {
                    m.remove("exp");
                })
            },
        },
        Case {
            name: "nbf missing",
            target: Access,
            expect: INVALID,
            build: |c| {
                with_claims(c, |m| {
                    m.remove("nbf");
                })
            },
        },
        Case {
            name: "iat missing",
            target: Access,
            expect: INVALID,
            build: |c| {
                with_claims(c, |m| {
                    m.remove("iat");
                })
            },
        },
        Case {
            name: "nbf in the future",
            target: Access,
            expect: INVALID,
            build: |c| {
                with_claims(c, |m| {
                    m.insert("nbf".into(), json!(now() + 3600));
                })
            },
        },
        Case {
            name: "iat in the future",
            target: Access,
            expect: INVALID,
            build: |c| {
                with_claims(c, |m| {
                    m.insert("iat".into(), json!(now() + 3600));
                })
            },
        },
        Case {
            name: "exp in the past (validly signed)",
            target: Access,
            expect: "token_expired",
            build: |c| {
                with_claims(c, |m| {
                    m.insert("exp".into(), json!(now() - 3600));
                })
            },
        },
        Case {
            name: "iss of another issuer",
            target: Access,
            expect: INVALID,
            build: |c| {
                with_claims(c, |m| {
                    m.insert("iss".into(), json!("https://evil.example"));
                })
            },
        },
        Case {
            name: "aud of another service",
            target: Access,
            expect: INVALID,
            build: |c| {
                with_claims(c, |m| {
                    m.insert("aud".into(), json!("billing"));
                })
            },
        },
        Case {
            name: "aud as an array containing ours",
            target: Access,
            expect: INVALID,
            build: |c| {
                with_claims(c, |m| {
                    let a = m["aud"].clone();
                    m.insert("aud".into(), json!([a, "other"]));
                })
            },
        },
        Case {
            name: "sub not a uuid",
            target: Access,
            expect: INVALID,
            build: |c| {
                with_claims(c, |m| {
                    m.insert("sub".into(), json!("admin"));
                })
            },
        },
        Case {
            name: "sub as a number",
            target: Access,
            expect: INVALID,
            build: |c| {
                with_claims(c, |m| {
                    m.insert("sub".into(), json!(1));
                })
            },
        },
        Case {
            name: "sid missing",
            target: Access,
            expect: INVALID,
            build: |c| {
                with_claims(c, |m| {
                    m.remove("sid");
                })
            },
        },
        Case {
            name: "email as an object",
            target: Access,
            expect: INVALID,
            build: |c| {
                with_claims(c, |m| {
                    m.insert("email".into(), json!({"$ne": null}));
                })
            },
        },
        Case {
            name: "role escalated without re-signing",
            target: Access,
            expect: INVALID,
            build: |c| {
                let mut claims = c.claims.clone();
                claims["role"] = json!("admin");
                let p = parts(&c.access);
                format!("{}.{}.{}", p[0], b64(claims.to_string().as_bytes()), p[2])
            },
        },
        Case {
            name: "signed with a guessed secret",
            target: Access,
            expect: INVALID,
            build: |c| sign(&c.header, &c.claims, b"your-secret-key-change-this-in-production"),
        },
        Case {
            name: "signed with an empty key",
            target: Access,
            expect: INVALID,
            build: |c| sign(&c.header, &c.claims, b""),
        },
        Case {
            name: "signed with the refresh secret",
            target: Access,
            expect: INVALID,
            build: |c| sign(&c.header, &c.claims, &c.refresh_secret),
        },
        Case {
            name: "signature truncated",
            target: Access,
            expect: INVALID,
            build: |c| c.access[..c.access.len() - 4].to_owned(),
        },
        Case {
            name: "signature removed, trailing dot kept",
            target: Access,
            expect: INVALID,
            build: |c| {
                let p = parts(&c.access);
                format!("{}.{}.", p[0], p[1])
            },
        },
        Case {
            name: "signature with an extra byte",
            target: Access,
            expect: INVALID,
            build: |c| {
                let p = parts(&c.access);
                let mut sig = b64_decode(&p[2]);
                sig.push(0);
                format!("{}.{}.{}", p[0], p[1], b64(&sig))
            },
        },
        Case {
            name: "non-canonical base64url in the signature (trailing bits)",
            target: Access,
            expect: INVALID,
            build: |c| {
                // 32 bytes encode to 43 chars; the last char carries 2 unused bits.
                let mut t = c.access.clone();
                let last = t.pop().unwrap();
                const ALPHA: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
                let i = ALPHA.find(last).unwrap();
                t.push(ALPHA.as_bytes()[i ^ 1] as char);
                t
            },
        },
        Case {
            name: "base64 padding appended to the payload",
            target: Access,
            expect: INVALID,
            build: |c| {
                let p = parts(&c.access);
                format!("{}.{}==.{}", p[0], p[1], p[2])
            },
        },
        Case {
            name: "standard base64 alphabet instead of url-safe",
            target: Access,
            expect: INVALID,
            build: |c| c.access.replace('-', "+").replace('_', "/") + "+/",
        },
        Case {
            name: "two segments",
            target: Access,
            expect: INVALID,
            build: |c| {
                let p = parts(&c.access);
                format!("{}.{}", p[0], p[1])
            },
        },
        Case {
            name: "four segments",
            target: Access,
            expect: INVALID,
            build: |c| format!("{}.{}", c.access, parts(&c.access)[2]),
        },
        Case {
            name: "JWE-shaped five segments",
            target: Access,
            expect: INVALID,
            build: |c| {
                let h = b64(br#"{"alg":"dir","enc":"A256GCM"}"#);
                format!(
                    "{h}..{}.{}.{}",
                    b64(b"iv"),
                    b64(c.claims.to_string().as_bytes()),
                    b64(b"tag")
                )
            },
        },
        Case {
            name: "only dots",
            target: Access,
            expect: INVALID,
            build: |_| "..".to_owned(),
        },
        Case {
            name: "header is not JSON",
            target: Access,
            expect: INVALID,
            build: |c| forge("not json", &c.claims.to_string(), &c.secret),
        },
        Case {
            name: "header is a JSON array",
            target: Access,
            expect: INVALID,
            build: |c| forge("[\"HS256\"]", &c.claims.to_string(), &c.secret),
        },
        Case {
            name: "payload is not JSON",
            target: Access,
            expect: INVALID,
            build: |c| forge(&c.header.to_string(), "sub=admin", &c.secret),
        },
        Case {
            name: "payload is a JSON array",
            target: Access,
            expect: INVALID,
            build: |c| forge(&c.header.to_string(), "[]", &c.secret),
        },
        Case {
            name: "payload with trailing garbage",
            target: Access,
            expect: INVALID,
            build: |c| forge(&c.header.to_string(), &format!("{}garbage", c.claims), &c.secret),
        },
        Case {
            name: "payload with a byte order mark",
            target: Access,
            expect: INVALID,
            build: |c| forge(&c.header.to_string(), &format!("\u{feff}{}", c.claims), &c.secret),
        },
        Case {
            name: "claim nested 500 levels deep (parser stack exhaustion)",
            target: Access,
            expect: INVALID,
            build: |c| {
                let deep = format!("{}{}", "[".repeat(500), "]".repeat(500));
                let text = c
                    .claims
                    .to_string()
                    .replacen("\"email\":", &format!("\"email\":{deep},\"_\":"), 1);
                forge(&c.header.to_string(), &text, &c.secret)
            },
        },
        Case {
            name: "token over the size cap, validly signed",
            target: Access,
            expect: INVALID,
            build: |c| {
                with_claims(c, |m| {
                    m.insert("pad".into(), json!("x".repeat(8000)));
                })
            },
        },
        Case {
            name: "whitespace inside the token",
            target: Access,
            expect: INVALID,
            build: |c| {
                let p = parts(&c.access);
                format!("{}.\t{}.{}", p[0], p[1], p[2])
            },
        },
        Case {
            name: "refresh token signed with the access secret",
            target: Refresh,
            expect: INVALID,
            build: |c| sign(&c.refresh_header, &c.refresh_claims, &c.secret),
        },
        Case {
            name: "access token presented as a refresh token",
            target: Refresh,
            expect: INVALID,
            build: |c| c.access.clone(),
        },
        Case {
            name: "refresh token with alg none",
            target: Refresh,
            expect: INVALID,
            build: |c| {
                let mut h = c.refresh_header.clone();
                h["alg"] = json!("none");
                unsigned(&h, &c.refresh_claims)
            },
        },
        Case {
            name: "refresh token with a modified jti, original signature",
            target: Refresh,
            expect: INVALID,
            build: |c| {
                let mut claims = c.refresh_claims.clone();
                claims["jti"] = json!(uuid::Uuid::new_v4());
                let p = parts(&c.refresh);
                format!("{}.{}.{}", p[0], b64(claims.to_string().as_bytes()), p[2])
            },
        },
        Case {
            name: "refresh token with typ at+jwt",
            target: Refresh,
            expect: INVALID,
            build: |c| {
                let mut h = c.refresh_header.clone();
                h["typ"] = json!("at+jwt");
                sign(&h, &c.refresh_claims, &c.refresh_secret)
            },
        },
        Case {
            name: "refresh token with a duplicate jti",
            target: Refresh,
            expect: INVALID,
            build: |c| {
                let text = c.refresh_claims.to_string();
                let claims = format!("{},\"jti\":\"{}\"}}", &text[..text.len() - 1], uuid::Uuid::new_v4());
                forge(&c.refresh_header.to_string(), &claims, &c.refresh_secret)
            },
        },
        Case {
            name: "refresh token expired (validly signed)",
            target: Refresh,
            expect: INVALID,
            build: |c| {
                let mut claims = c.refresh_claims.clone();
                claims["exp"] = json!(now() - 3600);
                sign(&c.refresh_header, &claims, &c.refresh_secret)
            },
        },
        Case {
            name: "refresh token for a session that does not exist",
            target: Refresh,
            expect: INVALID,
            build: |c| {
                let mut claims = c.refresh_claims.clone();
                claims["sid"] = json!(uuid::Uuid::new_v4());
                sign(&c.refresh_header, &claims, &c.refresh_secret)
            },
        },
    ]
}

async fn assert_refused(res: reqwest::Response, case: &str, route: &str, expect: &str) {
    let status = res.status();
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "case {case:?} on {route}: got {status}"
    );
    let challenge = res
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned());
    assert!(
        challenge.is_some_and(|c| c.starts_with("Bearer ")),
        "case {case:?} on {route}: no challenge"
    );
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"], expect, "case {case:?} on {route}: {body}");
}

#[tokio::test]
async fn every_known_jwt_attack_is_refused() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    let (header, claims) = decode_parts(&user.access);
    let (refresh_header, refresh_claims) = decode_parts(&user.refresh);
    let ctx = Ctx {
        header,
        claims,
        refresh_header,
        refresh_claims,
        access: user.access.clone(),
        refresh: user.refresh.clone(),
        secret: app.jwt_secret.as_bytes().to_vec(),
        refresh_secret: app.refresh_secret.as_bytes().to_vec(),
    };
    let cases = cases();
    assert!(cases.len() >= 40, "the suite has {} cases", cases.len());
    for case in &cases {
        let token = (case.build)(&ctx);
        let original = match case.target {
            Target::Access => &user.access,
            Target::Refresh => &user.refresh,
        };
        assert_ne!(&token, original, "case {:?} must change the token", case.name);
        match case.target {
            Target::Access => {
                for route in ["/api/auth/verify", "/api/auth/me", "/api/auth/sessions"] {
                    assert_refused(app.get_auth(route, &token).await, case.name, route, case.expect).await;
                }
                let res = app
                    .client
                    .post(app.url("/api/auth/logout"))
                    .bearer_auth(&token)
                    .send()
                    .await
                    .unwrap();
                assert_refused(res, case.name, "/api/auth/logout", case.expect).await;
            }
            Target::Refresh => {
                assert_refused(app.refresh(&token).await, case.name, "/api/auth/refresh", case.expect).await;
                let res = app.post_json("/api/auth/logout", &json!({"refreshToken": token})).await;
                assert_refused(res, case.name, "/api/auth/logout (body)", case.expect).await;
            }
        }
    }
    // None of it changed anything: the real tokens still work.
    assert_eq!(
        app.get_auth("/api/auth/verify", &user.access).await.status(),
        StatusCode::OK
    );
    assert_eq!(app.refresh(&user.refresh).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn malformed_authorization_headers_are_refused() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    let cases: &[(&str, &str)] = &[
        ("Bearer", INVALID),
        ("Bearer ", INVALID),
        ("Bearer a b", INVALID),
        ("Basic dXNlcjpwYXNz", "missing_token"),
        ("Token abc", "missing_token"),
        ("", "missing_token"),
        ("Bearerabc", "missing_token"),
    ];
    for (value, expect) in cases {
        let res = app
            .client
            .get(app.url("/api/auth/verify"))
            .header("authorization", *value)
            .send()
            .await
            .unwrap();
        assert_refused(res, value, "/api/auth/verify", expect).await;
    }
    let res = app
        .client
        .get(app.url("/api/auth/verify"))
        .header("authorization", format!("Bearer {}", user.access))
        .header("authorization", "Bearer second")
        .send()
        .await
        .unwrap();
    assert_refused(res, "two Authorization headers", "/api/auth/verify", INVALID).await;
    let long = format!("Bearer {}", "a".repeat(60_000));
    let res = app
        .client
        .get(app.url("/api/auth/verify"))
        .header("authorization", long)
        .send()
        .await
        .unwrap();
    assert!(
        res.status().is_client_error(),
        "an oversized header is a client error, got {}",
        res.status()
    );
}
