//! Tenant-token verification against default-tenant verification, measured
//! so that a noisy machine cannot tilt the comparison: every configuration
//! runs once per round, in the same round, for 300 rounds; each round
//! verifies 2,048 tokens (a rotation over 1,024, so a large key set is not
//! all in cache). Reported: the fastest round (what the code costs when the
//! machine leaves it alone) and the median round, in ns per token, and each
//! against the default keyring.
//!
//!     cargo bench -p tessera-token --bench tenant_spread
#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::borrow::Cow;
use std::hint::black_box;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use tessera_token::{AccessClaims, Key, KeySet, Keyring, SigningKeys, TokenBuf, TokenKind, Validation, DEFAULT_TENANT};
use uuid::Uuid;

const ISS: &str = "https://auth.example.com";
const AUD: &str = "tessera";
const SAMPLE: usize = 1024;
const PER_ROUND: usize = 2048;
const ROUNDS: usize = 300;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn bytes<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        for chunk in out.chunks_mut(8) {
            chunk.copy_from_slice(&self.next().to_le_bytes()[..chunk.len()]);
        }
        out
    }

    fn uuid(&mut self) -> Uuid {
        Uuid::from_u128(u128::from_le_bytes(self.bytes()))
    }
}

fn claims(rng: &mut Rng, tenant: Uuid, now: i64) -> AccessClaims<'static> {
    AccessClaims {
        iss: Cow::Borrowed(ISS),
        aud: Cow::Borrowed(AUD),
        sub: rng.uuid(),
        sid: rng.uuid(),
        tid: tenant,
        email: Cow::Borrowed("ada.lovelace@example.com"),
        role: Cow::Borrowed("user"),
        iat: now,
        nbf: now,
        exp: now + 3600,
        jti: rng.uuid(),
    }
}

/// A set of `tenants` tenants (active and next keys of both kinds, random
/// 22-character kids and 64-byte secrets, as the server makes them) and
/// 1,024 tokens of random tenants.
/// Tokens with the tenant they belong to.
type Sample = Vec<(Uuid, String)>;

fn tenant_set(rng: &mut Rng, tenants: usize, now: i64) -> (KeySet, Sample) {
    let mut set = KeySet::with_capacity(4 * tenants);
    let mut signers = Vec::with_capacity(tenants);
    for _ in 0..tenants {
        let tenant = rng.uuid();
        let mut key = |kind| {
            Key::with_kid(kind, &URL_SAFE_NO_PAD.encode(rng.bytes::<16>()), &rng.bytes::<64>())
                .unwrap()
                .for_tenant(tenant)
        };
        let pair = SigningKeys::new(key(TokenKind::Access), key(TokenKind::Refresh)).unwrap();
        set.insert(pair.access_key().clone()).unwrap();
        set.insert(pair.refresh_key().clone()).unwrap();
        set.insert(key(TokenKind::Access)).unwrap();
        set.insert(key(TokenKind::Refresh)).unwrap();
        signers.push((tenant, pair));
    }
    let tokens = (0..SAMPLE)
        .map(|_| {
            let (tenant, pair) = &signers[(rng.next() % tenants as u64) as usize];
            (*tenant, pair.sign_access(&claims(rng, *tenant, now)))
        })
        .collect();
    (set, tokens)
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` does not: then
    // only check that every configuration verifies.
    let rounds = if std::env::args().any(|a| a == "--bench") {
        ROUNDS
    } else {
        2
    };
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64;
    let validation = Validation::new(ISS, AUD);
    let mut rng = Rng(0x5eed);

    let keyring = Keyring::new(
        Key::from_secret(TokenKind::Access, &rng.bytes::<64>()).unwrap(),
        Key::from_secret(TokenKind::Refresh, &rng.bytes::<64>()).unwrap(),
    )
    .unwrap();
    let default_tokens: Vec<String> = (0..SAMPLE)
        .map(|_| keyring.sign_access(&claims(&mut rng, DEFAULT_TENANT, now)))
        .collect();
    let sets: Vec<(usize, KeySet, Sample)> = [1usize, 1_000, 100_000]
        .into_iter()
        .map(|n| {
            let (set, tokens) = tenant_set(&mut rng, n, now);
            (n, set, tokens)
        })
        .collect();

    let mut names = vec!["default tenant, Keyring::verify_access".to_owned()];
    names.extend(
        sets.iter()
            .map(|(n, _, _)| format!("{n} tenants, KeySet::verify_access_for")),
    );
    let mut times: Vec<Vec<f64>> = vec![Vec::with_capacity(rounds); names.len()];
    let mut buf = TokenBuf::new();
    for round in 0..rounds {
        let start = Instant::now();
        for i in 0..PER_ROUND {
            let token = &default_tokens[(i + round) % SAMPLE];
            let exp = keyring
                .verify_access(black_box(token), &validation, now, &mut buf)
                .unwrap()
                .exp;
            black_box(exp);
        }
        times[0].push(start.elapsed().as_nanos() as f64 / PER_ROUND as f64);
        for (slot, (_, set, tokens)) in sets.iter().enumerate() {
            let start = Instant::now();
            for i in 0..PER_ROUND {
                let (tenant, token) = &tokens[(i + round) % SAMPLE];
                let exp = set
                    .verify_access_for(black_box(token), *tenant, &validation, now, &mut buf)
                    .unwrap()
                    .exp;
                black_box(exp);
            }
            times[slot + 1].push(start.elapsed().as_nanos() as f64 / PER_ROUND as f64);
        }
    }
    let summary: Vec<(f64, f64)> = times
        .iter_mut()
        .map(|t| {
            t.sort_by(f64::total_cmp);
            (t[0], t[t.len() / 2])
        })
        .collect();
    println!("| configuration | fastest round, ns/token | vs default | median round, ns/token | vs default |");
    println!("| --- | --- | --- | --- | --- |");
    let (base_min, base_median) = summary[0];
    for (name, (min, median)) in names.iter().zip(&summary) {
        println!(
            "| {name} | {min:.0} | {:+.1}% | {median:.0} | {:+.1}% |",
            (min / base_min - 1.0) * 100.0,
            (median / base_median - 1.0) * 100.0
        );
    }
}
