//! Shared-secret mode: tokens signed as tessera signs them with
//! `JWT_SECRET` verify with the same secret, and nothing else does.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::borrow::Cow;
use std::time::Duration;

use common::{claims, tamper, AUDIENCE, ISSUER};
use tessera_token::{Key, KeyError, Keyring, TokenError, TokenKind, Uuid, DEFAULT_TENANT};
use tessera_verify::{BuildError, Verifier, VerifyError};

const JWT_SECRET: &str = "0123456789abcdef0123456789abcdef-a-test-jwt-secret";
const REFRESH_SECRET: &str = "fedcba9876543210fedcba9876543210-a-refresh-secret";

fn tessera_with(secret: &str) -> Keyring {
    Keyring::new(
        Key::from_secret(TokenKind::Access, secret.as_bytes()).unwrap(),
        Key::from_secret(TokenKind::Refresh, REFRESH_SECRET.as_bytes()).unwrap(),
    )
    .unwrap()
}

async fn verifier() -> Verifier {
    Verifier::builder(ISSUER, AUDIENCE)
        .secret(JWT_SECRET)
        .build()
        .await
        .unwrap()
}

#[tokio::test]
async fn verifies_what_tessera_signs_with_the_same_secret() {
    let tessera = tessera_with(JWT_SECRET);
    let claims = claims(DEFAULT_TENANT);
    let verified = verifier().await.verify(&tessera.sign_access(&claims)).await.unwrap();
    assert_eq!(verified.sub, claims.sub);
    assert_eq!(verified.sid, claims.sid);
    assert_eq!(verified.tid, DEFAULT_TENANT);
    assert_eq!(verified.email, claims.email);
    assert_eq!(verified.role, claims.role);
    assert_eq!(verified.iat, claims.iat);
    assert_eq!(verified.exp, claims.exp);
    assert_eq!(verified.jti, claims.jti);
    assert_eq!(verifier().await.key_count(), 1);
}

#[tokio::test]
async fn refuses_everything_else() {
    let verifier = verifier().await;
    let tessera = tessera_with(JWT_SECRET);

    // Another secret: another kid, so an unknown key.
    let other = tessera_with("another secret, also long enough to be a key...");
    let err = verifier
        .verify(&other.sign_access(&claims(DEFAULT_TENANT)))
        .await
        .unwrap_err();
    assert_eq!(err, VerifyError::Invalid(TokenError::UnknownKey));

    let token = tessera.sign_access(&claims(DEFAULT_TENANT));
    assert_eq!(
        verifier.verify(&tamper(&token)).await,
        Err(VerifyError::Invalid(TokenError::BadSignature))
    );

    // A refresh token is never an access token.
    let refresh = tessera.sign_refresh(&tessera_token::RefreshClaims {
        iss: Cow::Borrowed(ISSUER),
        sub: Uuid::new_v4(),
        sid: Uuid::new_v4(),
        tid: DEFAULT_TENANT,
        jti: Uuid::new_v4(),
        iat: common::now(),
        exp: common::now() + 3600,
    });
    assert!(verifier.verify(&refresh).await.unwrap_err().is_invalid());

    let mut expired = claims(DEFAULT_TENANT);
    expired.iat -= 1000;
    expired.nbf -= 1000;
    expired.exp = common::now() - 60;
    let err = verifier.verify(&tessera.sign_access(&expired)).await.unwrap_err();
    assert!(err.is_expired());
    assert_eq!(err.to_string(), "the token has expired");

    let mut future = claims(DEFAULT_TENANT);
    future.nbf += 600;
    assert_eq!(
        verifier.verify(&tessera.sign_access(&future)).await,
        Err(VerifyError::Invalid(TokenError::NotYetValid))
    );

    let mut wrong = claims(DEFAULT_TENANT);
    wrong.aud = Cow::Borrowed("billing");
    let err = verifier.verify(&tessera.sign_access(&wrong)).await.unwrap_err();
    assert_eq!(err, VerifyError::Invalid(TokenError::WrongAudience));
    assert_eq!(err.description(), "the token was not issued for this service");
}

#[tokio::test]
async fn leeway_is_applied_and_capped() {
    let tessera = tessera_with(JWT_SECRET);
    let mut claims = claims(DEFAULT_TENANT);
    claims.iat -= 1000;
    claims.nbf -= 1000;
    claims.exp = common::now() - 20;
    let token = tessera.sign_access(&claims);
    // Default 5 s: expired.
    assert!(verifier().await.verify(&token).await.unwrap_err().is_expired());
    let lenient = Verifier::builder(ISSUER, AUDIENCE)
        .secret(JWT_SECRET)
        .leeway(Duration::from_secs(25))
        .build()
        .await
        .unwrap();
    lenient.verify(&token).await.unwrap();

    // More than 30 s counts as 30 s.
    claims.exp = common::now() - 40;
    let token = tessera.sign_access(&claims);
    let too_lenient = Verifier::builder(ISSUER, AUDIENCE)
        .secret(JWT_SECRET)
        .leeway(Duration::from_secs(3600))
        .build()
        .await
        .unwrap();
    assert!(too_lenient.verify(&token).await.unwrap_err().is_expired());
}

#[tokio::test]
async fn a_tenant_verifier_refuses_default_tenant_tokens() {
    let tenant = Uuid::new_v4();
    let verifier = Verifier::builder(ISSUER, AUDIENCE)
        .secret(JWT_SECRET)
        .tenant(tenant)
        .build()
        .await
        .unwrap();
    let token = tessera_with(JWT_SECRET).sign_access(&claims(DEFAULT_TENANT));
    assert_eq!(
        verifier.verify(&token).await,
        Err(VerifyError::Invalid(TokenError::WrongTenant))
    );
}

#[tokio::test]
async fn bad_configuration_is_refused_without_showing_the_secret() {
    let err = Verifier::builder(ISSUER, AUDIENCE)
        .secret("short-secret-123")
        .build()
        .await
        .unwrap_err();
    assert_eq!(err, BuildError::InvalidSecret(KeyError::SecretTooShort));
    assert!(!err.to_string().contains("short-secret-123"), "{err}");
    assert!(err.to_string().contains("JWT_SECRET"), "{err}");

    let err = Verifier::builder(ISSUER, AUDIENCE).build().await.unwrap_err();
    assert_eq!(err, BuildError::NoKeySource);
    let err = Verifier::builder(ISSUER, AUDIENCE)
        .secret(JWT_SECRET)
        .jwks_url("http://127.0.0.1:8080/.well-known/jwks.json")
        .build()
        .await
        .unwrap_err();
    assert_eq!(err, BuildError::ConflictingKeySources);

    let builder = Verifier::builder(ISSUER, AUDIENCE).secret(JWT_SECRET);
    let debug = format!("{builder:?}");
    assert!(!debug.contains(JWT_SECRET) && debug.contains("<redacted>"), "{debug}");
    let verifier = builder.build().await.unwrap();
    let debug = format!("{verifier:?}");
    assert!(!debug.contains(JWT_SECRET) && debug.contains("secret"), "{debug}");

    // Errors never echo the token either.
    let token = tessera_with(JWT_SECRET).sign_access(&claims(DEFAULT_TENANT));
    let err = verifier.verify(&tamper(&token)).await.unwrap_err();
    let shown = format!("{err} {err:?}");
    assert!(!shown.contains(&token[..20]), "{shown}");
}
