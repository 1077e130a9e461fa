//! The rate-limiter contract, one suite for every implementation: in
//! memory, in Redis, and in a Redis Cluster (where all of a request's keys
//! must share a slot). Time is a parameter, so nothing here sleeps.
//!
//! `limiter_suite!(name, constructor)` turns every check into one test per
//! implementation, as `store_suite!` does for the stores.

use std::any::Any;
use std::sync::Arc;

use tessera_store::RateLimiter;

/// A limiter under test, and whatever must outlive it.
pub struct Subject {
    pub limiter: Arc<dyn RateLimiter>,
    _keep: Box<dyn Any + Send + Sync>,
}

macro_rules! limiter_suite {
    ($name:ident, $make:path) => {
        mod $name {
            limiter_suite!(@each $make, [
                a_rate_allows_a_burst_then_one_per_interval,
                refused_requests_are_not_charged,
                a_rate_key_drains_within_its_period,
                keys_are_independent,
                limits_apply_in_order_and_stop_at_the_first_refusal,
                failures_lock_after_the_budget_then_back_off_exponentially_up_to_the_cap,
                a_locked_key_refuses_for_the_rest_of_its_lock,
                reset_forgets_failures_and_backoff,
                failures_within_the_budget_drain_like_a_rate,
                the_backoff_is_forgotten_a_period_after_the_last_lock,
                concurrent_checks_lose_no_count,
                concurrent_failures_get_exactly_the_budget,
                markers_are_remembered_until_they_expire_apart_from_counters,
                forget_drops_every_member_of_one_set,
                a_set_keeps_its_latest_members,
            ]);
        }
    };
    (@each $make:path, [$($check:ident),* $(,)?]) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $check() {
                let subject = $make().await;
                crate::ratelimit::suite::$check(&subject.limiter).await;
            }
        )*
    };
}

#[cfg(test)]
mod suite {
    use std::sync::Arc;
    use std::time::Duration;

    use tessera_store::{Limit, LimitDecision, LimitRule, RateLimiter};
    use tokio::sync::Barrier;

    /// A fixed "now" in unix milliseconds; the limiter has no clock.
    const T0: i64 = 1_700_000_000_000;

    fn rate(key: &str, count: u32, period_ms: u64) -> Limit {
        Limit {
            key: key.to_owned(),
            rule: LimitRule::Rate {
                count,
                period: Duration::from_millis(period_ms),
            },
        }
    }

    /// 3 free failures a minute, then locks of 1 s, 2 s, 4 s, capped at 5 s.
    fn failures(key: &str) -> Limit {
        Limit {
            key: key.to_owned(),
            rule: LimitRule::Failures {
                count: 3,
                period: Duration::from_secs(60),
                backoff: Duration::from_secs(1),
                backoff_max: Duration::from_secs(5),
            },
        }
    }

    fn allowed(locks_ms: u64) -> LimitDecision {
        LimitDecision::Allowed {
            locks_for: Duration::from_millis(locks_ms),
        }
    }

    fn limited(index: usize, retry_ms: u64) -> LimitDecision {
        LimitDecision::Limited {
            index,
            retry_after: Duration::from_millis(retry_ms),
        }
    }

    async fn check(limiter: &Arc<dyn RateLimiter>, limits: &[Limit], now: i64) -> LimitDecision {
        limiter.check(limits, now).await.unwrap()
    }

    pub async fn a_rate_allows_a_burst_then_one_per_interval(limiter: &Arc<dyn RateLimiter>) {
        // 5 a second: a burst of 5, then one every 200 ms.
        let limit = [rate("ip:a", 5, 1000)];
        for _ in 0..5 {
            assert_eq!(check(limiter, &limit, T0).await, allowed(0));
        }
        assert_eq!(check(limiter, &limit, T0).await, limited(0, 200));
        assert_eq!(check(limiter, &limit, T0 + 150).await, limited(0, 50));
        assert_eq!(check(limiter, &limit, T0 + 200).await, allowed(0));
        assert_eq!(check(limiter, &limit, T0 + 200).await, limited(0, 200));
    }

    pub async fn refused_requests_are_not_charged(limiter: &Arc<dyn RateLimiter>) {
        let limit = [rate("ip:b", 2, 1000)];
        check(limiter, &limit, T0).await;
        check(limiter, &limit, T0).await;
        for _ in 0..20 {
            assert_eq!(check(limiter, &limit, T0 + 10).await, limited(0, 490));
        }
        // A flood of refusals did not push the next slot back.
        assert_eq!(check(limiter, &limit, T0 + 500).await, allowed(0));
    }

    pub async fn a_rate_key_drains_within_its_period(limiter: &Arc<dyn RateLimiter>) {
        let limit = [rate("forgot:c", 3, 3_600_000)];
        for _ in 0..3 {
            assert_eq!(check(limiter, &limit, T0).await, allowed(0));
        }
        assert_eq!(check(limiter, &limit, T0 + 1).await, limited(0, 1_199_999));
        // A full period later the whole burst is back, and no more.
        let later = T0 + 3_600_000;
        for _ in 0..3 {
            assert_eq!(check(limiter, &limit, later).await, allowed(0));
        }
        assert!(matches!(
            check(limiter, &limit, later).await,
            LimitDecision::Limited { .. }
        ));
    }

    pub async fn keys_are_independent(limiter: &Arc<dyn RateLimiter>) {
        assert_eq!(check(limiter, &[rate("ip:d1", 1, 1000)], T0).await, allowed(0));
        assert_eq!(check(limiter, &[rate("ip:d1", 1, 1000)], T0).await, limited(0, 1000));
        assert_eq!(check(limiter, &[rate("ip:d2", 1, 1000)], T0).await, allowed(0));
        assert_eq!(check(limiter, &[failures("login:d1")], T0).await, allowed(0));
    }

    pub async fn limits_apply_in_order_and_stop_at_the_first_refusal(limiter: &Arc<dyn RateLimiter>) {
        let spent = rate("ip:e-spent", 1, 60_000);
        let fresh = rate("ip:e-fresh", 1, 60_000);
        assert_eq!(check(limiter, std::slice::from_ref(&spent), T0).await, allowed(0));
        // The first limit refuses: the second is neither checked nor charged.
        assert_eq!(
            check(limiter, &[spent.clone(), fresh.clone()], T0).await,
            limited(0, 60_000)
        );
        assert_eq!(check(limiter, std::slice::from_ref(&fresh), T0).await, allowed(0));
        // The second refuses: the first was charged all the same.
        let other = rate("ip:e-other", 1, 60_000);
        assert_eq!(
            check(limiter, &[other.clone(), fresh.clone()], T0).await,
            limited(1, 60_000)
        );
        assert_eq!(check(limiter, &[other], T0).await, limited(0, 60_000));
        // Every limit allows: every one is charged.
        let (x, y) = (rate("ip:e-x", 1, 60_000), rate("ip:e-y", 1, 60_000));
        assert_eq!(check(limiter, &[x.clone(), y.clone()], T0).await, allowed(0));
        assert_eq!(check(limiter, &[x], T0).await, limited(0, 60_000));
        assert_eq!(check(limiter, &[y], T0).await, limited(0, 60_000));
    }

    pub async fn failures_lock_after_the_budget_then_back_off_exponentially_up_to_the_cap(
        limiter: &Arc<dyn RateLimiter>,
    ) {
        let limit = [failures("login:f")];
        assert_eq!(check(limiter, &limit, T0).await, allowed(0));
        assert_eq!(check(limiter, &limit, T0).await, allowed(0));
        // The attempt that spends the budget locks (should it fail).
        assert_eq!(check(limiter, &limit, T0).await, allowed(1000));
        assert_eq!(check(limiter, &limit, T0).await, limited(0, 1000));
        // Each attempt after a lock locks again, twice as long, up to 5 s.
        let mut now = T0 + 1000;
        for lock in [2000, 4000, 5000, 5000, 5000] {
            assert_eq!(check(limiter, &limit, now).await, allowed(lock));
            assert_eq!(check(limiter, &limit, now).await, limited(0, lock));
            now += i64::try_from(lock).unwrap();
        }
    }

    pub async fn a_locked_key_refuses_for_the_rest_of_its_lock(limiter: &Arc<dyn RateLimiter>) {
        let limit = [failures("login:g")];
        for _ in 0..3 {
            check(limiter, &limit, T0).await;
        }
        assert_eq!(check(limiter, &limit, T0 + 1).await, limited(0, 999));
        assert_eq!(check(limiter, &limit, T0 + 999).await, limited(0, 1));
        // Refusals did not lengthen the lock.
        assert_eq!(check(limiter, &limit, T0 + 1000).await, allowed(2000));
    }

    pub async fn reset_forgets_failures_and_backoff(limiter: &Arc<dyn RateLimiter>) {
        let limit = [failures("login:h")];
        for _ in 0..3 {
            check(limiter, &limit, T0).await;
        }
        assert_eq!(check(limiter, &limit, T0 + 1000).await, allowed(2000));
        limiter.reset("login:h").await.unwrap();
        // A clean slate: the whole budget, then the first lock again.
        assert_eq!(check(limiter, &limit, T0 + 1001).await, allowed(0));
        assert_eq!(check(limiter, &limit, T0 + 1001).await, allowed(0));
        assert_eq!(check(limiter, &limit, T0 + 1001).await, allowed(1000));
        limiter.reset("login:never-seen").await.unwrap();
    }

    pub async fn markers_are_remembered_until_they_expire_apart_from_counters(limiter: &Arc<dyn RateLimiter>) {
        let day = Duration::from_secs(24 * 3600);
        assert!(!limiter.remembered("known:a", "c1", T0).await.unwrap());
        limiter.remember("known:a", "c1", day, T0).await.unwrap();
        assert!(limiter.remembered("known:a", "c1", T0).await.unwrap());
        assert!(limiter.remembered("known:a", "c1", T0 + 86_399_999).await.unwrap());
        assert!(!limiter.remembered("known:a", "c1", T0 + 86_400_000).await.unwrap());
        assert!(!limiter.remembered("known:a", "c2", T0).await.unwrap());
        assert!(!limiter.remembered("known:b", "c1", T0).await.unwrap());
        // Remembering again extends it.
        limiter.remember("known:a", "c1", day, T0 + 1000).await.unwrap();
        assert!(limiter.remembered("known:a", "c1", T0 + 86_400_500).await.unwrap());
        // A counter's reset leaves sets alone, and a set is no counter.
        limiter.reset("known:a").await.unwrap();
        assert!(limiter.remembered("known:a", "c1", T0 + 2000).await.unwrap());
        let limit = [failures("login:m")];
        assert_eq!(check(limiter, &limit, T0).await, allowed(0));
        assert!(!limiter.remembered("login:m", "c1", T0).await.unwrap());
        assert_eq!(check(limiter, &limit, T0).await, allowed(0));
    }

    pub async fn forget_drops_every_member_of_one_set(limiter: &Arc<dyn RateLimiter>) {
        let day = Duration::from_secs(24 * 3600);
        for member in ["c1", "c2", "c3"] {
            limiter.remember("known:f", member, day, T0).await.unwrap();
        }
        limiter.remember("known:g", "c1", day, T0).await.unwrap();
        limiter.forget("known:f").await.unwrap();
        for member in ["c1", "c2", "c3"] {
            assert!(!limiter.remembered("known:f", member, T0 + 1).await.unwrap());
        }
        assert!(limiter.remembered("known:g", "c1", T0 + 1).await.unwrap());
        limiter.forget("known:never").await.unwrap();
        // Remembered again after forgetting, a member counts again.
        limiter.remember("known:f", "c2", day, T0 + 2).await.unwrap();
        assert!(limiter.remembered("known:f", "c2", T0 + 3).await.unwrap());
    }

    pub async fn a_set_keeps_its_latest_members(limiter: &Arc<dyn RateLimiter>) {
        let day = Duration::from_secs(24 * 3600);
        let extra = 10;
        for i in 0..(tessera_store::MARKERS_PER_SET + extra) {
            limiter
                .remember("known:many", &format!("c{i}"), day, T0 + i as i64)
                .await
                .unwrap();
        }
        let now = T0 + 1000;
        for i in 0..extra {
            assert!(
                !limiter.remembered("known:many", &format!("c{i}"), now).await.unwrap(),
                "c{i}"
            );
        }
        for i in extra..(tessera_store::MARKERS_PER_SET + extra) {
            assert!(
                limiter.remembered("known:many", &format!("c{i}"), now).await.unwrap(),
                "c{i}"
            );
        }
    }

    pub async fn failures_within_the_budget_drain_like_a_rate(limiter: &Arc<dyn RateLimiter>) {
        // 3 a minute: one failure's worth comes back every 20 s.
        let limit = [failures("login:i")];
        assert_eq!(check(limiter, &limit, T0).await, allowed(0));
        assert_eq!(check(limiter, &limit, T0).await, allowed(0));
        let later = T0 + 40_000;
        assert_eq!(check(limiter, &limit, later).await, allowed(0));
        assert_eq!(check(limiter, &limit, later).await, allowed(0));
        assert_eq!(check(limiter, &limit, later).await, allowed(1000));
    }

    pub async fn the_backoff_is_forgotten_a_period_after_the_last_lock(limiter: &Arc<dyn RateLimiter>) {
        let limit = [failures("login:j")];
        for _ in 0..3 {
            check(limiter, &limit, T0).await;
        }
        assert_eq!(check(limiter, &limit, T0 + 1000).await, allowed(2000));
        // Still remembered just before a period has passed since the lock ended...
        let lock_end = T0 + 3000;
        assert_eq!(check(limiter, &limit, lock_end + 59_999).await, allowed(4000));
        // ...and forgotten a period after the last one.
        let quiet = lock_end + 59_999 + 4000 + 60_000;
        assert_eq!(check(limiter, &limit, quiet).await, allowed(0));
        assert_eq!(check(limiter, &limit, quiet).await, allowed(0));
        assert_eq!(check(limiter, &limit, quiet).await, allowed(1000));
    }

    pub async fn concurrent_checks_lose_no_count(limiter: &Arc<dyn RateLimiter>) {
        // 60 requests at once against a burst of 25: exactly 25 pass.
        let results = race(limiter, 60, rate("ip:k", 25, 60_000)).await;
        let passed = results
            .iter()
            .filter(|d| matches!(d, LimitDecision::Allowed { .. }))
            .count();
        assert_eq!(passed, 25, "{results:?}");
    }

    pub async fn concurrent_failures_get_exactly_the_budget(limiter: &Arc<dyn RateLimiter>) {
        // 40 guesses at once against 3 free failures: 3 are let through, and
        // exactly one of them locks.
        let results = race(limiter, 40, failures("login:l")).await;
        let passed: Vec<_> = results
            .iter()
            .filter(|d| matches!(d, LimitDecision::Allowed { .. }))
            .collect();
        assert_eq!(passed.len(), 3, "{results:?}");
        assert_eq!(passed.iter().filter(|d| **d == &allowed(1000)).count(), 1);
    }

    /// `n` concurrent checks of one limit at one instant, from tasks on
    /// several threads.
    async fn race(limiter: &Arc<dyn RateLimiter>, n: usize, limit: Limit) -> Vec<LimitDecision> {
        let barrier = Arc::new(Barrier::new(n));
        let limit = Arc::new([limit]);
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..n {
            let (barrier, limit, limiter) = (Arc::clone(&barrier), Arc::clone(&limit), Arc::clone(limiter));
            tasks.spawn(async move {
                barrier.wait().await;
                limiter.check(limit.as_slice(), T0).await.unwrap()
            });
        }
        tasks.join_all().await
    }
}

/// Every implementation, through the same suite.
#[cfg(test)]
mod backends {
    use std::sync::Arc;

    use tessera_store::{MemoryRateLimiter, RedisSessionStore, UserStore};

    use super::Subject;
    use crate::redis_support::{self, Cleanup};

    pub async fn memory() -> Subject {
        Subject {
            limiter: Arc::new(MemoryRateLimiter::default()),
            _keep: Box::new(()),
        }
    }

    /// The shared Redis, under a key prefix of this test's own.
    pub async fn redis() -> Subject {
        let (users, dir) = redis_support::sqlite_users().await;
        let users: Arc<dyn UserStore> = Arc::new(users);
        let prefix = redis_support::unique_prefix();
        let store = redis_support::connect_shared(users, &prefix).await;
        Subject {
            limiter: Arc::new(store.rate_limiter()),
            _keep: Box::new((
                Cleanup {
                    url: redis_support::url(),
                    prefix,
                },
                dir,
            )),
        }
    }

    /// A private three-master cluster: a script over keys of two slots fails there.
    pub async fn redis_cluster() -> Subject {
        let nodes = tokio::task::spawn_blocking(redis_support::cluster).await.unwrap();
        let nodes: Vec<&str> = nodes.iter().map(String::as_str).collect();
        let (users, dir) = redis_support::sqlite_users().await;
        let store = RedisSessionStore::connect_cluster(
            &nodes,
            Arc::new(users),
            redis_support::options(&redis_support::unique_prefix()),
        )
        .await
        .unwrap();
        Subject {
            limiter: Arc::new(store.rate_limiter()),
            _keep: Box::new(dir),
        }
    }

    limiter_suite!(memory, super::memory);
    limiter_suite!(redis, super::redis);
    limiter_suite!(redis_cluster, super::redis_cluster);
}

/// What only the in-memory limiter has: its bound.
#[cfg(test)]
mod memory_only {
    use std::time::Duration;

    use tessera_store::{Limit, LimitDecision, LimitRule, MemoryRateLimiter, RateLimiter};

    const T0: i64 = 1_700_000_000_000;

    fn limit(key: String, count: u32, period_ms: u64) -> Limit {
        Limit {
            key,
            rule: LimitRule::Rate {
                count,
                period: Duration::from_millis(period_ms),
            },
        }
    }

    #[tokio::test]
    async fn a_flood_of_distinct_keys_stays_within_the_capacity_and_spares_the_busiest_key() {
        let limiter = MemoryRateLimiter::new(1000);
        // A key under attack: its debt is an hour long.
        let busy = || limit("login:victim".to_owned(), 3, 3_600_000);
        for _ in 0..3 {
            limiter.check(&[busy()], T0).await.unwrap();
        }
        // Then 20 000 distinct addresses, each once (a debt of a second).
        for i in 0..20_000 {
            let decision = limiter
                .check(&[limit(format!("ip:{i}"), 100, 60_000)], T0)
                .await
                .unwrap();
            assert!(matches!(decision, LimitDecision::Allowed { .. }));
            assert!(limiter.len() <= 1000, "{} keys held", limiter.len());
        }
        assert!(limiter.evicted() > 0);
        assert!(
            matches!(
                limiter.check(&[busy()], T0).await.unwrap(),
                LimitDecision::Limited { .. }
            ),
            "the key with the most debt was not evicted"
        );
    }

    #[tokio::test]
    async fn marker_sets_are_bounded_and_the_most_recent_stay() {
        let limiter = MemoryRateLimiter::new(100);
        let week = std::time::Duration::from_secs(7 * 24 * 3600);
        for i in 0..1000_i64 {
            limiter
                .remember(&format!("known:{i}"), "c", week, T0 + i)
                .await
                .unwrap();
        }
        assert!(limiter.remembered("known:999", "c", T0 + 1000).await.unwrap());
        assert!(!limiter.remembered("known:0", "c", T0 + 1000).await.unwrap());
        let mut kept = 0;
        for i in 0..1000_i64 {
            if limiter.remembered(&format!("known:{i}"), "c", T0 + 1000).await.unwrap() {
                kept += 1;
            }
        }
        assert!((80..=100).contains(&kept), "{kept} sets kept");
        // Counters have their own room.
        assert!(limiter.is_empty());
    }

    #[tokio::test]
    async fn expired_keys_are_swept() {
        let limiter = MemoryRateLimiter::new(10_000);
        for i in 0..500 {
            limiter.check(&[limit(format!("ip:{i}"), 1, 1000)], T0).await.unwrap();
        }
        assert_eq!(limiter.len(), 500);
        // A minute later, the next check sweeps what has expired.
        limiter
            .check(&[limit("ip:late".to_owned(), 1, 1000)], T0 + 61_000)
            .await
            .unwrap();
        assert_eq!(limiter.len(), 1);
        assert_eq!(limiter.evicted(), 0);
    }
}

/// What only Redis has: key names, hash tags and times to live.
#[cfg(test)]
mod redis_only {
    use std::sync::Arc;
    use std::time::Duration;

    use tessera_store::{Limit, LimitRule, RateLimiter, UserStore};

    use crate::redis_support::{self, Cleanup};

    #[tokio::test]
    async fn counters_live_under_the_prefix_in_one_slot_and_expire() {
        let (users, _dir) = redis_support::sqlite_users().await;
        let users: Arc<dyn UserStore> = Arc::new(users);
        let prefix = redis_support::unique_prefix();
        let _cleanup = Cleanup {
            url: redis_support::url(),
            prefix: prefix.clone(),
        };
        let limiter = redis_support::connect_shared(users, &prefix).await.rate_limiter();
        let now = i64::try_from(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis(),
        )
        .unwrap();
        let limits = [
            Limit {
                key: "ip:192.0.2.1".to_owned(),
                rule: LimitRule::Rate {
                    count: 100,
                    period: Duration::from_secs(60),
                },
            },
            Limit {
                key: "login:digest".to_owned(),
                rule: LimitRule::Failures {
                    count: 10,
                    period: Duration::from_secs(900),
                    backoff: Duration::from_secs(60),
                    backoff_max: Duration::from_secs(900),
                },
            },
        ];
        limiter.check(&limits, now).await.unwrap();
        let mut raw = redis_support::raw(&redis_support::url());
        let mut keys: Vec<String> = redis::cmd("KEYS").arg(format!("{prefix}*")).query(&mut raw).unwrap();
        keys.sort();
        assert_eq!(
            keys,
            [
                format!("{prefix}{{rl}}:ip:192.0.2.1"),
                format!("{prefix}{{rl}}:login:digest")
            ]
        );
        assert_eq!(limiter.redis_key("ip:192.0.2.1"), keys[0]);
        // One request's debt: 0.6 s for the address, 90 s for the account.
        let ttl = |key: &str, raw: &mut redis::Connection| -> i64 { redis::cmd("PTTL").arg(key).query(raw).unwrap() };
        let ip_ttl = ttl(&keys[0], &mut raw);
        assert!((1..=600).contains(&ip_ttl), "{ip_ttl}");
        let login_ttl = ttl(&keys[1], &mut raw);
        assert!((85_000..=90_000).contains(&login_ttl), "{login_ttl}");
        limiter.reset("login:digest").await.unwrap();
        let exists: i64 = redis::cmd("EXISTS").arg(&keys[1]).query(&mut raw).unwrap();
        assert_eq!(exists, 0);
    }
}
