//! Tenants: one key set for all of them, the `tid` binding, the legacy rule,
//! `verify_*_for`, the set's own operations and `header_kid`.

use std::borrow::Cow;

use proptest::prelude::*;

use super::*;
use crate::keyring::tests::{
    claims, header_json, refresh_claims, sign_json, sign_segments, validation, ACCESS_SECRET, NOW, REFRESH_SECRET,
};
use crate::keyring::SigningKeys;
use crate::{Keyring, DEFAULT_TENANT, MAX_KID_CHARS};

const ACME: Uuid = Uuid::from_u128(0x0a_c3e0_0000_4000_8000_0000_0000_0001);
const GLOBEX: Uuid = Uuid::from_u128(0x0b_10be_0000_4000_8000_0000_0000_0002);

/// The default tenant's pair (derived kids), and a pair per named tenant
/// with kids `<name>-a` and `<name>-r`.
fn default_keys() -> SigningKeys {
    SigningKeys::new(
        Key::from_secret(TokenKind::Access, ACCESS_SECRET).unwrap(),
        Key::from_secret(TokenKind::Refresh, REFRESH_SECRET).unwrap(),
    )
    .unwrap()
}

fn tenant_keys(tenant: Uuid, name: &str) -> SigningKeys {
    let secret = |kind: &str| format!("{name}-{kind}-secret-0123456789abcdefghijklmnop");
    SigningKeys::new(
        Key::with_kid(TokenKind::Access, &format!("{name}-a"), secret("access").as_bytes())
            .unwrap()
            .for_tenant(tenant),
        Key::with_kid(TokenKind::Refresh, &format!("{name}-r"), secret("refresh").as_bytes())
            .unwrap()
            .for_tenant(tenant),
    )
    .unwrap()
}

fn acme() -> SigningKeys {
    tenant_keys(ACME, "acme")
}

fn globex() -> SigningKeys {
    tenant_keys(GLOBEX, "globex")
}

/// The default tenant's keys, acme's and globex's, in one set.
fn set() -> KeySet {
    let mut set = KeySet::new();
    for keys in [default_keys(), acme(), globex()] {
        set.insert(keys.access_key().clone()).unwrap();
        set.insert(keys.refresh_key().clone()).unwrap();
    }
    set
}

fn claims_of(tenant: Uuid) -> AccessClaims<'static> {
    AccessClaims {
        tid: tenant,
        ..claims()
    }
}

fn refresh_claims_of(tenant: Uuid) -> RefreshClaims<'static> {
    RefreshClaims {
        tid: tenant,
        ..refresh_claims()
    }
}

/// Verifies with both header paths, checks they agree, returns the result.
fn verify(set: &KeySet, token: &str, tenant: Option<Uuid>, now: i64) -> Result<AccessClaims<'static>, TokenError> {
    let v = validation();
    let (mut fast_buf, mut slow_buf) = (TokenBuf::new(), TokenBuf::new());
    let fast = set.verify_access_with(token, tenant, &v, now, &mut fast_buf, true);
    let slow = set.verify_access_with(token, tenant, &v, now, &mut slow_buf, false);
    assert_eq!(fast, slow, "fast and slow header paths disagree on {token}");
    // The public entry points are the fast path.
    let mut buf = TokenBuf::new();
    let public = match tenant {
        Some(t) => set.verify_access_for(token, t, &v, now, &mut buf),
        None => set.verify_access(token, &v, now, &mut buf),
    };
    assert_eq!(public, fast);
    fast.map(AccessClaims::into_owned)
}

fn verify_refresh(
    set: &KeySet,
    token: &str,
    tenant: Option<Uuid>,
    now: i64,
) -> Result<RefreshClaims<'static>, TokenError> {
    let v = validation();
    let (mut fast_buf, mut slow_buf) = (TokenBuf::new(), TokenBuf::new());
    let fast = set.verify_refresh_with(token, tenant, &v, now, &mut fast_buf, true);
    let slow = set.verify_refresh_with(token, tenant, &v, now, &mut slow_buf, false);
    assert_eq!(fast, slow, "fast and slow header paths disagree on {token}");
    let mut buf = TokenBuf::new();
    let public = match tenant {
        Some(t) => set.verify_refresh_for(token, t, &v, now, &mut buf),
        None => set.verify_refresh(token, &v, now, &mut buf),
    };
    assert_eq!(public, fast);
    fast.map(RefreshClaims::into_owned)
}

/// `json` without its `tid` member: what tessera signed before tenants.
fn without_tid(json: &str, tid: Uuid) -> String {
    let legacy = json.replacen(&format!(",\"tid\":\"{tid}\""), "", 1);
    assert!(!legacy.contains("\"tid\""), "{json}");
    legacy
}

/// A token of `kind` signed by `key` whose payload has no `tid`.
fn legacy_token(key: &Key) -> String {
    let (payload, typ) = match key.kind() {
        TokenKind::Access => (serde_json::to_string(&claims()).unwrap(), "at+jwt"),
        TokenKind::Refresh => (serde_json::to_string(&refresh_claims()).unwrap(), "rt+jwt"),
    };
    let payload = without_tid(&payload, DEFAULT_TENANT);
    sign_json(key, &header_json("HS256", typ, key.kid()), &payload)
}

// --- the tid binding -----------------------------------------------------------------

#[test]
fn each_tenants_tokens_verify_in_the_shared_set_with_their_tid() {
    let set = set();
    for (keys, tenant) in [(default_keys(), DEFAULT_TENANT), (acme(), ACME), (globex(), GLOBEX)] {
        let token = keys.sign_access(&claims_of(tenant));
        assert_eq!(verify(&set, &token, None, NOW), Ok(claims_of(tenant)));
        assert_eq!(verify(&set, &token, Some(tenant), NOW), Ok(claims_of(tenant)));
        let token = keys.sign_refresh(&refresh_claims_of(tenant));
        assert_eq!(verify_refresh(&set, &token, None, NOW), Ok(refresh_claims_of(tenant)));
        assert_eq!(
            verify_refresh(&set, &token, Some(tenant), NOW),
            Ok(refresh_claims_of(tenant))
        );
    }
}

#[test]
fn legacy_token_without_tid_verifies_under_a_default_tenant_key_as_the_default_tenant() {
    let set = set();
    let keys = default_keys();
    let token = legacy_token(keys.access_key());
    let got = verify(&set, &token, None, NOW).unwrap();
    assert_eq!(got.tid, DEFAULT_TENANT);
    assert_eq!(got, claims());
    assert_eq!(verify(&set, &token, Some(DEFAULT_TENANT), NOW), Ok(claims()));
    let token = legacy_token(keys.refresh_key());
    assert_eq!(verify_refresh(&set, &token, None, NOW), Ok(refresh_claims()));
    assert_eq!(
        verify_refresh(&set, &token, Some(DEFAULT_TENANT), NOW),
        Ok(refresh_claims())
    );
    // A verify-only default key (an old one, kept through a rotation) too.
    let old = Key::with_kid(TokenKind::Access, "old", b"the-old-access-secret-0123456789abc").unwrap();
    let mut set = set;
    set.insert(old.clone()).unwrap();
    assert_eq!(verify(&set, &legacy_token(&old), None, NOW), Ok(claims()));
}

#[test]
fn legacy_token_signed_by_another_tenants_key_is_tenant_mismatch() {
    let set = set();
    for keys in [acme(), globex()] {
        let token = legacy_token(keys.access_key());
        for expected in [None, Some(keys.tenant()), Some(DEFAULT_TENANT)] {
            assert_eq!(verify(&set, &token, expected, NOW), Err(TokenError::TenantMismatch));
        }
        let token = legacy_token(keys.refresh_key());
        assert_eq!(verify_refresh(&set, &token, None, NOW), Err(TokenError::TenantMismatch));
    }
}

#[test]
fn tid_of_another_tenant_than_the_signing_key_is_tenant_mismatch() {
    let set = set();
    // globex's tid, acme's key.
    let token = acme().sign_access(&claims_of(GLOBEX));
    for expected in [None, Some(ACME), Some(GLOBEX), Some(DEFAULT_TENANT)] {
        assert_eq!(verify(&set, &token, expected, NOW), Err(TokenError::TenantMismatch));
    }
    // The default tenant's tid on acme's key, and acme's on the default key.
    let token = acme().sign_access(&claims_of(DEFAULT_TENANT));
    assert_eq!(verify(&set, &token, None, NOW), Err(TokenError::TenantMismatch));
    let token = default_keys().sign_access(&claims_of(ACME));
    assert_eq!(verify(&set, &token, None, NOW), Err(TokenError::TenantMismatch));
    let token = acme().sign_refresh(&refresh_claims_of(GLOBEX));
    assert_eq!(
        verify_refresh(&set, &token, Some(ACME), NOW),
        Err(TokenError::TenantMismatch)
    );
}

#[test]
fn tenant_mismatch_comes_after_the_signature_and_before_the_times() {
    let set = set();
    let token = acme().sign_access(&claims_of(GLOBEX));
    // Long expired, still a mismatch: not something to refresh.
    assert_eq!(
        verify(&set, &token, None, NOW + 86_400),
        Err(TokenError::TenantMismatch)
    );
    // A forger learns only that the signature is bad.
    let (input, sig) = token.rsplit_once('.').unwrap();
    let mut bytes = B64.decode(sig).unwrap();
    bytes[0] ^= 1;
    let forged = format!("{input}.{}", B64.encode(bytes));
    assert_eq!(verify(&set, &forged, None, NOW), Err(TokenError::BadSignature));
    // Claims are read before the binding: a broken tid is invalid claims.
    let payload = serde_json::to_string(&claims_of(ACME))
        .unwrap()
        .replacen(&ACME.to_string(), "acme", 1);
    let token = sign_json(acme().access_key(), &header_json("HS256", "at+jwt", "acme-a"), &payload);
    assert_eq!(
        verify(&set, &token, Some(ACME), NOW),
        Err(TokenError::InvalidClaims("tid must be a lowercase hyphenated uuid"))
    );
}

#[test]
fn explicit_default_tid_is_the_same_as_none() {
    let set = set();
    let token = default_keys().sign_access(&claims_of(DEFAULT_TENANT));
    assert_eq!(verify(&set, &token, Some(DEFAULT_TENANT), NOW), Ok(claims()));
}

// --- verify_*_for ----------------------------------------------------------------------

#[test]
fn genuine_token_of_another_tenant_is_wrong_tenant() {
    let set = set();
    let token = acme().sign_access(&claims_of(ACME));
    assert_eq!(verify(&set, &token, Some(GLOBEX), NOW), Err(TokenError::WrongTenant));
    assert_eq!(
        verify(&set, &token, Some(DEFAULT_TENANT), NOW),
        Err(TokenError::WrongTenant)
    );
    let token = default_keys().sign_access(&claims());
    assert_eq!(verify(&set, &token, Some(ACME), NOW), Err(TokenError::WrongTenant));
    let token = legacy_token(default_keys().access_key());
    assert_eq!(verify(&set, &token, Some(ACME), NOW), Err(TokenError::WrongTenant));
    let token = acme().sign_refresh(&refresh_claims_of(ACME));
    assert_eq!(
        verify_refresh(&set, &token, Some(GLOBEX), NOW),
        Err(TokenError::WrongTenant)
    );
}

#[test]
fn wrong_tenant_is_reported_even_when_the_token_is_expired_or_not_yet_valid() {
    let set = set();
    let token = acme().sign_access(&claims_of(ACME));
    let exp = NOW + 900;
    assert_eq!(verify(&set, &token, Some(ACME), exp + 6), Err(TokenError::Expired));
    assert_eq!(
        verify(&set, &token, Some(GLOBEX), exp + 6),
        Err(TokenError::WrongTenant)
    );
    assert_eq!(
        verify(&set, &token, Some(GLOBEX), NOW - 600),
        Err(TokenError::WrongTenant)
    );
    // With another issuer or audience too: whose token it is comes first.
    let mut c = claims_of(ACME);
    c.aud = Cow::Borrowed("billing");
    let token = acme().sign_access(&c);
    assert_eq!(verify(&set, &token, Some(GLOBEX), NOW), Err(TokenError::WrongTenant));
    assert_eq!(verify(&set, &token, Some(ACME), NOW), Err(TokenError::WrongAudience));
    let token = acme().sign_refresh(&refresh_claims_of(ACME));
    let exp = NOW + 7 * 86_400;
    assert_eq!(
        verify_refresh(&set, &token, Some(GLOBEX), exp + 6),
        Err(TokenError::WrongTenant)
    );
    assert_eq!(
        verify_refresh(&set, &token, Some(ACME), exp + 6),
        Err(TokenError::Expired)
    );
}

#[test]
fn kind_and_signature_come_before_the_tenant() {
    let set = set();
    // A refresh token of acme is not an access token of anyone.
    let token = acme().sign_refresh(&refresh_claims_of(ACME));
    assert_eq!(verify(&set, &token, Some(GLOBEX), NOW), Err(TokenError::WrongKind));
    // globex's kid, acme's signature: bad signature, whoever is expected.
    let token = acme().sign_access(&claims_of(GLOBEX));
    let (_, rest) = token.split_once('.').unwrap();
    let swapped = format!("{}.{rest}", globex().access_key().header_b64());
    for expected in [None, Some(ACME), Some(GLOBEX)] {
        assert_eq!(verify(&set, &swapped, expected, NOW), Err(TokenError::BadSignature));
    }
}

// --- the set -----------------------------------------------------------------------------

#[test]
fn kids_are_unique_across_tenants() {
    let mut set = set();
    let clash = Key::with_kid(TokenKind::Access, "acme-a", ACCESS_SECRET)
        .unwrap()
        .for_tenant(GLOBEX);
    assert_eq!(
        set.insert(clash.clone()).err(),
        Some(KeyError::DuplicateKid("acme-a".into()))
    );
    // Unchanged: still acme's key.
    assert_eq!(set.get("acme-a").map(Key::tenant), Some(ACME));
    assert_eq!(set.len(), 6);
}

#[test]
fn upsert_replaces_and_returns_the_old_key() {
    let mut set = set();
    let token = acme().sign_access(&claims_of(ACME));
    let replacement = Key::with_kid(TokenKind::Access, "acme-a", b"a-brand-new-secret-0123456789abcdefgh")
        .unwrap()
        .for_tenant(ACME);
    let old = set.upsert(replacement.clone()).unwrap();
    assert_eq!((old.kid(), old.tenant()), ("acme-a", ACME));
    assert_eq!(set.len(), 6);
    // The old secret's tokens no longer verify; the new one's do.
    assert_eq!(verify(&set, &token, Some(ACME), NOW), Err(TokenError::BadSignature));
    let new_token = SigningKeys::new(replacement, acme().refresh_key().clone())
        .unwrap()
        .sign_access(&claims_of(ACME));
    assert_eq!(verify(&set, &new_token, Some(ACME), NOW), Ok(claims_of(ACME)));
    // A new kid is an insert.
    let fresh = Key::with_kid(TokenKind::Access, "acme-next", ACCESS_SECRET).unwrap();
    assert!(set.upsert(fresh).is_none());
    assert_eq!(set.len(), 7);
}

#[test]
fn get_contains_remove() {
    let mut set = set();
    assert!(set.contains("globex-r"));
    assert_eq!(set.get("globex-r").map(Key::kind), Some(TokenKind::Refresh));
    assert!(set.get("nobody").is_none() && !set.contains("nobody"));
    let token = globex().sign_refresh(&refresh_claims_of(GLOBEX));
    assert!(verify_refresh(&set, &token, Some(GLOBEX), NOW).is_ok());
    let removed = set.remove("globex-r").unwrap();
    assert_eq!(removed.tenant(), GLOBEX);
    assert!(set.remove("globex-r").is_none());
    assert!(!set.contains("globex-r"));
    assert_eq!(set.len(), 5);
    assert_eq!(
        verify_refresh(&set, &token, Some(GLOBEX), NOW),
        Err(TokenError::UnknownKey)
    );
}

#[test]
fn retain_and_remove_tenant() {
    let mut set = set();
    assert_eq!(set.remove_tenant(GLOBEX), 2);
    assert_eq!(set.remove_tenant(GLOBEX), 0);
    assert_eq!(set.len(), 4);
    assert!(set.iter().all(|k| k.tenant() != GLOBEX));
    let token = globex().sign_access(&claims_of(GLOBEX));
    assert_eq!(verify(&set, &token, None, NOW), Err(TokenError::UnknownKey));

    set.retain(|k| k.kind() == TokenKind::Access);
    let mut kids: Vec<&str> = set.iter().map(Key::kid).collect();
    kids.sort_unstable();
    let default_kid = default_keys().access_kid().to_owned();
    let mut expected = vec!["acme-a", default_kid.as_str()];
    expected.sort_unstable();
    assert_eq!(kids, expected);

    set.retain(|_| false);
    assert!(set.is_empty() && set.iter().next().is_none());
    assert_eq!(set.len(), 0);
}

#[test]
fn new_and_default_are_empty_and_debug_shows_only_the_count() {
    assert!(KeySet::new().is_empty());
    assert!(KeySet::default().is_empty());
    assert!(KeySet::with_capacity(100).is_empty());
    let shown = format!("{:?}", set());
    assert_eq!(shown, "KeySet { len: 6 }");
}

#[test]
fn a_set_of_many_tenants_finds_each_key() {
    let tenants: Vec<(Uuid, SigningKeys)> = (0..200u16)
        .map(|n| {
            let tenant = Uuid::from_u128(u128::from(n) + 1);
            (tenant, tenant_keys(tenant, &format!("t{n}")))
        })
        .collect();
    let mut set = KeySet::with_capacity(2 * tenants.len());
    for (_, keys) in &tenants {
        set.insert(keys.access_key().clone()).unwrap();
        set.insert(keys.refresh_key().clone()).unwrap();
    }
    for (i, (tenant, keys)) in tenants.iter().enumerate().step_by(17) {
        let token = keys.sign_access(&claims_of(*tenant));
        assert_eq!(verify(&set, &token, Some(*tenant), NOW), Ok(claims_of(*tenant)));
        let other = tenants[(i + 1) % tenants.len()].0;
        assert_eq!(verify(&set, &token, Some(other), NOW), Err(TokenError::WrongTenant));
    }
}

// --- header paths ------------------------------------------------------------------------

/// The fast path's reading of a header segment, owned.
fn fast(segment: &str) -> Option<(Algorithm, TokenKind, Vec<u8>)> {
    let mut scratch = [0u8; TAIL_SCRATCH];
    canonical_header_kid(segment, &mut scratch).map(|(alg, kind, kid)| (alg, kind, kid.to_vec()))
}

/// What the fast path stands for: decode the whole segment, then match the
/// JSON against the form keys sign with.
fn reference(segment: &str) -> Option<(Algorithm, TokenKind, Vec<u8>)> {
    let json = B64.decode(segment).ok()?;
    Algorithm::ALL.into_iter().find_map(|alg| {
        [TokenKind::Access, TokenKind::Refresh].into_iter().find_map(|kind| {
            let kid = json
                .strip_prefix(crate::key::header_prefix(alg, kind).as_slice())?
                .strip_suffix(HEADER_SUFFIX)?;
            crate::key::valid_kid(kid).then(|| (alg, kind, kid.to_vec()))
        })
    })
}

#[test]
fn the_fixed_part_of_the_header_segment_is_its_prefix_encoded() {
    for alg in Algorithm::ALL {
        for kind in [TokenKind::Access, TokenKind::Refresh] {
            let prefix = crate::key::header_prefix(alg, kind);
            assert_eq!(prefix.len(), 37);
            assert_eq!(header_b64_prefix(alg, kind), B64.encode(&prefix[..36]));
            assert_eq!(&prefix[36..], b"\"");
        }
    }
    let longest = "k".repeat(MAX_KID_CHARS);
    let key = Key::with_kid(TokenKind::Access, &longest, ACCESS_SECRET).unwrap();
    assert_eq!(key.header_b64().len(), 48 + TAIL_B64_MAX);
    assert_eq!(
        fast(&key.header_b64()),
        Some((Algorithm::HS256, TokenKind::Access, longest.into_bytes()))
    );
}

#[test]
fn the_fast_path_reads_exactly_the_headers_keys_sign_with() {
    for kind in [TokenKind::Access, TokenKind::Refresh] {
        for kid in ["some-kid", "k", "Xy3_kP0-abcdefghijklmn"] {
            let key = Key::with_kid(kind, kid, ACCESS_SECRET).unwrap();
            assert_eq!(
                fast(&key.header_b64()),
                Some((Algorithm::HS256, kind, kid.as_bytes().to_vec()))
            );
        }
    }
    let long = format!(
        r#"{{"alg":"HS256","typ":"at+jwt","kid":"{}"}}"#,
        "k".repeat(MAX_KID_CHARS + 1)
    );
    for bad in [
        r#"{"alg":"HS256","typ":"at+jwt","kid":""}"#,
        r#"{"alg":"HS256","typ":"at+jwt","kid":"a b"}"#,
        r#"{"alg":"HS256","typ":"at+jwt","kid":"a\"b"}"#,
        r#"{"alg":"HS256","typ":"at+jwt","kid":"k1"} "#,
        r#"{"alg":"HS256","typ":"at+jwt","kid":"k1"}}"#,
        r#"{"alg":"HS256","typ":"at+jwt","kid":"k1""#,
        r#"{"alg":"HS256","typ":"at+jwt","kid":k1"}"#,
        r#"{"alg":"HS256","typ":"JWT","kid":"k1"}"#,
        r#"{"alg":"none","typ":"at+jwt","kid":"k1"}"#,
        r#"{"typ":"at+jwt","alg":"HS256","kid":"k1"}"#,
        r#"{"alg":"HS256","typ":"at+jwt","kid":"k1","kid":"k2"}"#,
        &long,
    ] {
        let segment = B64.encode(bad);
        assert_eq!(fast(&segment), None, "{bad}");
        assert_eq!(reference(&segment), None, "{bad}");
    }
    // Right JSON, wrong encodings: padded, or trailing bits set.
    let good = Key::with_kid(TokenKind::Access, "k1", ACCESS_SECRET)
        .unwrap()
        .header_b64();
    assert_eq!(fast(&format!("{good}=")), None);
    assert_eq!(fast(&format!("{good}==")), None);
    let last = good.chars().last().unwrap();
    let bumped = format!("{}{}", &good[..good.len() - 1], (last as u8 + 1) as char);
    assert_eq!(B64.decode(&bumped).ok(), None);
    assert_eq!(fast(&bumped), None);
}

/// The fast path accepts a key when the header's typ is the key's kind; the
/// rule it stands for is "when the token's header segment is the one the
/// key signs with". Both are the same test, on every header of the
/// canonical form a set's keys can be named in.
#[test]
fn fast_path_typ_check_is_header_segment_equality() {
    let set = set();
    for key in set.iter() {
        for typ in ["at+jwt", "rt+jwt"] {
            let segment = B64.encode(header_json("HS256", typ, key.kid()));
            let (_, kind, kid) = fast(&segment).unwrap();
            assert_eq!(kid, key.kid().as_bytes());
            assert_eq!(kind == key.kind(), segment == key.header_b64(), "{typ} {}", key.kid());
        }
    }
}

fn arb_segment() -> impl Strategy<Value = String> {
    let headers: Vec<String> = ["k", "acme-a", "Xy3_kP0-abcdefghijklmn", &"k".repeat(MAX_KID_CHARS)]
        .iter()
        .flat_map(|kid| {
            [TokenKind::Access, TokenKind::Refresh]
                .map(|kind| Key::with_kid(kind, kid, ACCESS_SECRET).unwrap().header_b64())
        })
        .collect();
    let alphabet = "[A-Za-z0-9_=+/ -]";
    prop_oneof![
        proptest::sample::select(headers.clone()),
        // One character changed, dropped or added.
        (
            proptest::sample::select(headers.clone()),
            any::<prop::sample::Index>(),
            alphabet,
            0..3u8
        )
            .prop_map(|(h, at, c, op)| {
                let i = at.index(h.len());
                match op {
                    0 => format!("{}{c}{}", &h[..i], &h[i + 1..]),
                    1 => format!("{}{}", &h[..i], &h[i + 1..]),
                    _ => format!("{}{c}{}", &h[..i], &h[i..]),
                }
            }),
        // The fixed start, then anything.
        (
            prop_oneof![
                Just(Algorithm::HS256),
                Just(Algorithm::EdDSA),
                Just(Algorithm::ES256),
                Just(Algorithm::RS256)
            ],
            prop_oneof![Just(TokenKind::Access), Just(TokenKind::Refresh)],
            "[A-Za-z0-9_=+/ -]{0,100}"
        )
            .prop_map(|(alg, kind, rest)| format!("{}{rest}", header_b64_prefix(alg, kind))),
        // Headers of any kid-like JSON string.
        ("[ -~]{0,70}", prop_oneof![Just("at+jwt"), Just("rt+jwt")])
            .prop_map(|(kid, typ)| B64.encode(header_json("HS256", typ, &kid))),
    ]
}

proptest! {
    #[test]
    fn the_fast_header_reading_is_the_full_decoding(segment in arb_segment()) {
        prop_assert_eq!(fast(&segment), reference(&segment), "{}", segment);
    }
}

#[test]
fn unknown_kid_in_the_canonical_form_is_unknown_on_both_paths() {
    let set = set();
    let payload = serde_json::to_string(&claims()).unwrap();
    for kid in ["no-such-key", "acme-A", "acme-a-"] {
        let token = sign_json(acme().access_key(), &header_json("HS256", "at+jwt", kid), &payload);
        assert_eq!(verify(&set, &token, None, NOW), Err(TokenError::UnknownKey), "{kid}");
    }
}

#[test]
fn typ_of_the_other_kind_in_the_canonical_form_is_wrong_kind_on_both_paths() {
    let set = set();
    let payload = serde_json::to_string(&claims_of(ACME)).unwrap();
    // acme's access key, refresh typ: its header segment is not the key's.
    let token = sign_json(acme().access_key(), &header_json("HS256", "rt+jwt", "acme-a"), &payload);
    assert_eq!(verify(&set, &token, Some(ACME), NOW), Err(TokenError::WrongKind));
    assert_eq!(
        verify_refresh(&set, &token, Some(ACME), NOW),
        Err(TokenError::WrongKind)
    );
    // The refresh key's own header on an access verification.
    let token = sign_segments(
        acme().refresh_key(),
        &acme().refresh_key().header_b64(),
        &B64.encode(&payload),
    );
    assert_eq!(verify(&set, &token, Some(ACME), NOW), Err(TokenError::WrongKind));
}

#[test]
fn keyring_and_key_set_answer_alike() {
    let ring = Keyring::new(
        default_keys().access_key().clone(),
        default_keys().refresh_key().clone(),
    )
    .unwrap();
    let set = set();
    let v = validation();
    for token in [
        ring.sign_access(&claims()),
        legacy_token(default_keys().access_key()),
        acme().sign_access(&claims_of(ACME)),
        default_keys().sign_access(&claims_of(ACME)),
        "x.y.z".to_owned(),
    ] {
        let (mut a, mut b) = (TokenBuf::new(), TokenBuf::new());
        let from_ring = ring.verify_access(&token, &v, NOW, &mut a);
        let from_set = set.verify_access_for(&token, DEFAULT_TENANT, &v, NOW, &mut b);
        // The ring does not hold acme's keys: unknown there, another
        // tenant's in the set.
        if token.starts_with(&acme().access_key().header_b64()) {
            assert_eq!(from_ring, Err(TokenError::UnknownKey));
            assert_eq!(from_set, Err(TokenError::WrongTenant));
        } else {
            assert_eq!(from_ring, from_set, "{token}");
        }
    }
}

// --- header_kid ----------------------------------------------------------------------------

fn kid_of(token: &str) -> Result<String, TokenError> {
    let mut buf = TokenBuf::new();
    header_kid(token, &mut buf).map(str::to_owned)
}

/// A token with this header JSON (the rest is never read).
fn with_header(header: &str) -> String {
    format!("{}.e30.{}", B64.encode(header), "A".repeat(SIGNATURE_B64_LEN))
}

#[test]
fn header_kid_reads_the_kid_of_good_tokens() {
    assert_eq!(kid_of(&acme().sign_access(&claims_of(ACME))).as_deref(), Ok("acme-a"));
    assert_eq!(
        kid_of(&globex().sign_refresh(&refresh_claims_of(GLOBEX))).as_deref(),
        Ok("globex-r")
    );
    let keys = default_keys();
    assert_eq!(kid_of(&keys.sign_access(&claims())).as_deref(), Ok(keys.access_kid()));
    // Any member order, escapes, whitespace: it is JSON.
    assert_eq!(
        kid_of(&with_header(
            r#" {"kid":"k\u0031","typ":"rt+jwt","alg":"HS\u0032\u0035\u0036"} "#
        ))
        .as_deref(),
        Ok("k1")
    );
    // A kid no set knows is still a kid: that is what it is for. The
    // payload and signature are never looked at.
    assert_eq!(
        kid_of(&with_header(&header_json("HS256", "at+jwt", "brand-new"))).as_deref(),
        Ok("brand-new")
    );
    let token = format!("{}.!!.!", B64.encode(header_json("HS256", "at+jwt", "k")));
    assert_eq!(kid_of(&token).as_deref(), Ok("k"));
    let longest = "k".repeat(MAX_KID_CHARS);
    assert_eq!(
        kid_of(&with_header(&header_json("HS256", "at+jwt", &longest))),
        Ok(longest)
    );
}

#[test]
fn header_kid_refuses_malformed_tokens() {
    let good = acme().sign_access(&claims_of(ACME));
    let (two, _) = good.rsplit_once('.').unwrap();
    assert_eq!(
        kid_of(two),
        Err(TokenError::Malformed("a token has exactly three segments"))
    );
    assert_eq!(
        kid_of(&format!("{good}.x")),
        Err(TokenError::Malformed("a token has exactly three segments"))
    );
    assert_eq!(
        kid_of(&good[good.find('.').unwrap()..]),
        Err(TokenError::Malformed("empty segment"))
    );
    assert_eq!(kid_of(&"a.b.c".repeat(1000)), Err(TokenError::TooLong));
    let header = B64.encode(header_json("HS256", "at+jwt", "k"));
    assert_eq!(
        kid_of(&format!("{header}=.e30.sig")),
        Err(TokenError::Malformed("header is not canonical base64url"))
    );
    for (json, error) in [
        ("not json", TokenError::Malformed("header is not valid json")),
        ("[]", TokenError::Malformed("header is not a json object")),
        (
            r#"{"alg":"HS256","typ":"at+jwt"}"#,
            TokenError::Malformed("header lacks kid"),
        ),
        (
            r#"{"alg":"HS256","typ":"at+jwt","kid":"k","kid":"j"}"#,
            TokenError::Malformed("duplicate header member"),
        ),
        (
            r#"{"alg":"HS256","typ":"at+jwt","kid":7}"#,
            TokenError::Malformed("header kid must be a string"),
        ),
    ] {
        assert_eq!(kid_of(&with_header(json)), Err(error), "{json}");
    }
}

#[test]
fn header_kid_refuses_other_algorithms_and_members() {
    for alg in [
        "none", "None", "HS384", "RS512", "PS256", "ES384", "Ed25519", "eddsa", "hs256", "",
    ] {
        assert_eq!(
            kid_of(&with_header(&header_json(alg, "at+jwt", "k"))),
            Err(TokenError::AlgorithmMismatch),
            "{alg}"
        );
    }
    // alg none with an empty signature: the token is malformed first.
    let unsigned = format!("{}.e30.", B64.encode(header_json("none", "at+jwt", "k")));
    assert_eq!(kid_of(&unsigned), Err(TokenError::Malformed("empty segment")));
    for (member, name) in [
        (r#""crit":["exp"]"#, "crit"),
        (r#""jku":"https://evil.example/jwks.json""#, "jku"),
        (r#""jwk":{"kty":"oct","k":"AAAA"}"#, "jwk"),
        (r#""x5u":"https://evil.example/cert.pem""#, "x5u"),
        (r#""foo":1"#, "unknown member"),
    ] {
        let header = format!(r#"{{"alg":"HS256","typ":"at+jwt","kid":"k",{member}}}"#);
        assert_eq!(
            kid_of(&with_header(&header)),
            Err(TokenError::UnsupportedHeader(name)),
            "{member}"
        );
    }
    for typ in ["JWT", "AT+JWT", ""] {
        assert_eq!(
            kid_of(&with_header(&header_json("HS256", typ, "k"))),
            Err(TokenError::WrongKind),
            "{typ}"
        );
    }
}

#[test]
fn header_kid_refuses_kids_no_key_can_have() {
    let too_long = "k".repeat(MAX_KID_CHARS + 1);
    for kid in ["", "a b", "a.b", "é", "a/b", too_long.as_str()] {
        assert_eq!(
            kid_of(&with_header(&header_json("HS256", "at+jwt", kid))),
            Err(TokenError::UnknownKey),
            "{kid}"
        );
    }
    // Verification says the same of such a token.
    let token = sign_json(
        acme().access_key(),
        &header_json("HS256", "at+jwt", "a b"),
        &serde_json::to_string(&claims_of(ACME)).unwrap(),
    );
    assert_eq!(verify(&set(), &token, None, NOW), Err(TokenError::UnknownKey));
}

#[test]
fn header_kid_then_insert_then_verify() {
    // What the server does with a kid it does not know yet.
    let mut set = KeySet::new();
    let token = acme().sign_access(&claims_of(ACME));
    assert_eq!(verify(&set, &token, Some(ACME), NOW), Err(TokenError::UnknownKey));
    let kid = kid_of(&token).unwrap();
    let stored = acme();
    assert_eq!(stored.access_kid(), kid);
    set.insert(stored.access_key().clone()).unwrap();
    assert_eq!(verify(&set, &token, Some(ACME), NOW), Ok(claims_of(ACME)));
}

// --- both header paths on arbitrary headers, across tenants ---------------------------------

fn arb_header() -> impl Strategy<Value = String> {
    let kid = prop_oneof![
        Just("acme-a".to_owned()),
        Just("acme-r".to_owned()),
        Just("globex-a".to_owned()),
        Just(default_keys().access_kid().to_owned()),
        Just("nobody".to_owned()),
        Just(String::new()),
        Just("a b".to_owned()),
        Just("k".repeat(MAX_KID_CHARS + 1)),
        Just("acme\\u002da".to_owned()),
    ];
    (
        prop_oneof![Just("HS256"), Just("none"), Just("HS384")],
        prop_oneof![Just("at+jwt"), Just("rt+jwt"), Just("JWT")],
        kid,
        prop_oneof![
            Just(""),
            Just(r#","crit":[]"#),
            Just(r#","jku":"x""#),
            Just(r#","alg":"HS256""#)
        ],
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(alg, typ, kid, extra, reorder, space)| {
            let header = if reorder {
                format!(r#"{{"kid":"{kid}","typ":"{typ}","alg":"{alg}"{extra}}}"#)
            } else {
                format!(r#"{{"alg":"{alg}","typ":"{typ}","kid":"{kid}"{extra}}}"#)
            };
            if space {
                format!("{header} ")
            } else {
                header
            }
        })
}

fn arb_signer() -> impl Strategy<Value = Key> {
    prop_oneof![
        Just(acme().access_key().clone()),
        Just(acme().refresh_key().clone()),
        Just(globex().access_key().clone()),
        Just(default_keys().access_key().clone()),
    ]
}

fn arb_tid() -> impl Strategy<Value = Option<Uuid>> {
    prop_oneof![
        Just(None),
        Just(Some(ACME)),
        Just(Some(GLOBEX)),
        Just(Some(DEFAULT_TENANT))
    ]
}

proptest! {
    #[test]
    fn both_header_paths_agree_across_tenants(
        header in arb_header(),
        signer in arb_signer(),
        tid in arb_tid(),
        expected in arb_tid(),
        refresh in any::<bool>(),
        late in any::<bool>(),
    ) {
        let set = set();
        let now = if late { NOW + 30 * 86_400 } else { NOW };
        let payload = if refresh {
            let json = serde_json::to_string(&refresh_claims()).unwrap();
            match tid {
                None => without_tid(&json, DEFAULT_TENANT),
                Some(t) => serde_json::to_string(&refresh_claims_of(t)).unwrap(),
            }
        } else {
            let json = serde_json::to_string(&claims()).unwrap();
            match tid {
                None => without_tid(&json, DEFAULT_TENANT),
                Some(t) => serde_json::to_string(&claims_of(t)).unwrap(),
            }
        };
        let token = sign_json(&signer, &header, &payload);
        // Both checks compare the fast and the strict header path.
        let access = verify(&set, &token, expected, now);
        let refreshed = verify_refresh(&set, &token, expected, now);
        // Whatever verifies is the signer's tenant's, as expected.
        if let Ok(c) = &access {
            prop_assert_eq!(c.tid, signer.tenant());
            prop_assert!(expected.is_none_or(|t| t == c.tid));
        }
        if let Ok(c) = &refreshed {
            prop_assert_eq!(c.tid, signer.tenant());
            prop_assert!(expected.is_none_or(|t| t == c.tid));
        }
        // header_kid never panics and never accepts what verification
        // refuses for the header's sake.
        let mut buf = TokenBuf::new();
        let kid = header_kid(&token, &mut buf).map(str::to_owned);
        if access.is_ok() || refreshed.is_ok() {
            prop_assert_eq!(kid.as_deref(), Ok(signer.kid()));
        }
    }
}
