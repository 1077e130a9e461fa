//! What the revocation check costs a request: one lookup of the token's
//! session id in the in-memory set of revoked sessions
//! (`tessera_server::revocation::RevokedSessions`), with 0, 10 000 and
//! 1 000 000 revoked sessions, for ids that are not in it (every request of
//! a live session) and ids that are. Each iteration looks up the next of
//! 1 024 ids, so a large set is not all in cache. `contended` looks up one
//! id while another thread looks it up in a loop too: forward auth of one
//! session's requests on both cores, the shard's lock word going back and
//! forth between them. Also prints the resident memory the set takes per
//! revoked session, with a million of them (a smaller set fits in memory the
//! allocator already had).
//!
//!     cargo bench -p tessera-server --bench revocation
#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use tessera_core::SessionId;
use tessera_server::revocation::RevokedSessions;
use tessera_store::Revocation;
use uuid::Uuid;

const SAMPLE: usize = 1024;
const SIZES: [usize; 3] = [0, 10_000, 1_000_000];

fn revocations(n: usize) -> Vec<Revocation> {
    (0..n)
        .map(|_| Revocation {
            session: SessionId::random(),
            expires_at: i64::MAX,
        })
        .collect()
}

/// Resident memory of this process, in bytes (Linux).
fn rss() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: usize = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

fn lookups(c: &mut Criterion) {
    let mut group = c.benchmark_group("revoked_sessions");
    group.warm_up_time(Duration::from_millis(500));
    group.measurement_time(Duration::from_secs(2));
    for n in SIZES {
        let before = rss();
        let revoked = revocations(n);
        let set = RevokedSessions::default();
        set.insert(revoked.iter().copied());
        let grown = rss().saturating_sub(before);
        // The vector of revocations is part of `grown`: 24 bytes each.
        if let Some(per_entry) = grown
            .saturating_sub(n * std::mem::size_of::<Revocation>())
            .checked_div(n)
            .filter(|_| n >= 1_000_000)
        {
            println!("revoked_sessions/{n}: about {per_entry} bytes of resident memory per revoked session");
        }
        let misses: Vec<Uuid> = (0..SAMPLE).map(|_| Uuid::new_v4()).collect();
        group.bench_with_input(BenchmarkId::new("miss", n), &n, |b, _| {
            let mut i = 0;
            b.iter(|| {
                i = (i + 1) % SAMPLE;
                black_box(set.contains(black_box(&misses[i])))
            });
        });
        if n > 0 {
            let hits: Vec<Uuid> = revoked
                .iter()
                .step_by((n / SAMPLE).max(1))
                .take(SAMPLE)
                .map(|r| r.session.as_uuid())
                .collect();
            group.bench_with_input(BenchmarkId::new("hit", n), &n, |b, _| {
                let mut i = 0;
                b.iter(|| {
                    i = (i + 1) % hits.len();
                    black_box(set.contains(black_box(&hits[i])))
                });
            });
        }
        let hot = misses[0];
        let stop = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|scope| {
            scope.spawn(|| {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    black_box(set.contains(black_box(&hot)));
                }
            });
            group.bench_with_input(BenchmarkId::new("contended", n), &n, |b, _| {
                b.iter(|| black_box(set.contains(black_box(&hot))));
            });
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
        });
    }
    group.finish();
}

criterion_group!(benches, lookups);
criterion_main!(benches);
