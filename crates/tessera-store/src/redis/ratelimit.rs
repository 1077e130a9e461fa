//! [`RateLimiter`] in Redis: every instance pointing at the same Redis (or
//! Redis Cluster) shares the counters.
//!
//! | key | type | holds | expires |
//! | --- | --- | --- | --- |
//! | `<prefix>{rl}:<key>` | hash | `tat`, `level`, `until`, `exp` (unix ms, by the callers' clock: a state past `exp` counts as none) | when the key's debt has drained (and, after a lock, a period after the lock ends) |
//! | `<prefix>{rl}:marker:<set>` | hash | each member of a set of [`RateLimiter::remember`] and when it expires (unix ms, by the callers' clock); its latest 64 members | a ttl after the last member was remembered |
//!
//! One check is one script (`ratelimit.lua`, sent as EVALSHA) over all of a
//! request's keys: one round trip, atomic, so concurrent requests on any
//! number of instances never lose a count. Every limiter key carries the
//! hash tag `{rl}`, so a script's keys are always in one Cluster slot. That
//! puts every counter on one master; the limited routes each cost an Argon2
//! hash (tens of milliseconds of CPU) while a check costs Redis microseconds,
//! so that master is never what runs out first.

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use ::redis::Script;

use super::{within, Connection, KeepAlive};
use crate::ratelimit::{Limit, LimitDecision, LimitRule, RateLimiter, MARKERS_PER_SET};
use crate::StoreError;

static CHECK: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("ratelimit.lua")));
static REMEMBER: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("remember.lua")));

/// Rate-limit counters in Redis, sharing the connection of the
/// [`super::RedisSessionStore`] it came from
/// ([`super::RedisSessionStore::rate_limiter`]).
#[derive(Clone)]
pub struct RedisRateLimiter {
    pub(super) conn: Connection,
    /// `<prefix>{rl}:`
    pub(super) namespace: Arc<str>,
    pub(super) command_timeout: Duration,
    pub(super) _keepalive: Arc<KeepAlive>,
}

impl std::fmt::Debug for RedisRateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisRateLimiter")
            .field("namespace", &self.namespace)
            .field("command_timeout", &self.command_timeout)
            .finish_non_exhaustive()
    }
}

impl RedisRateLimiter {
    /// The Redis key of limiter key `key`.
    pub fn redis_key(&self, key: &str) -> String {
        format!("{}{key}", self.namespace)
    }

    /// The Redis key of the set `set` of [`RateLimiter::remember`]: apart
    /// from the counters, so the two never meet, whatever keys the caller
    /// picks.
    pub fn marker_key(&self, set: &str) -> String {
        format!("{}marker:{set}", self.namespace)
    }
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[async_trait::async_trait]
impl RateLimiter for RedisRateLimiter {
    async fn check(&self, limits: &[Limit], now_ms: i64) -> Result<LimitDecision, StoreError> {
        if limits.is_empty() {
            return Ok(LimitDecision::Allowed {
                locks_for: Duration::ZERO,
            });
        }
        let mut invocation = CHECK.prepare_invoke();
        invocation.arg(now_ms);
        for limit in limits {
            invocation.key(self.redis_key(&limit.key));
            match limit.rule {
                LimitRule::Rate { count, period } => {
                    invocation.arg("rate").arg(count).arg(ms(period)).arg(0).arg(0);
                }
                LimitRule::Failures {
                    count,
                    period,
                    backoff,
                    backoff_max,
                } => {
                    invocation
                        .arg("failures")
                        .arg(count)
                        .arg(ms(period))
                        .arg(ms(backoff))
                        .arg(ms(backoff_max));
                }
            }
        }
        let mut conn = self.conn.clone();
        let reply: Vec<i64> = within(
            self.command_timeout,
            async move { invocation.invoke_async(&mut conn).await },
        )
        .await?;
        let millis = |v: i64| Duration::from_millis(u64::try_from(v).unwrap_or(0));
        match reply.as_slice() {
            [1, _, _, lock] => Ok(LimitDecision::Allowed {
                locks_for: millis(*lock),
            }),
            [0, index, retry, _] if *index >= 1 && (*index as usize) <= limits.len() => Ok(LimitDecision::Limited {
                index: (*index as usize) - 1,
                retry_after: millis(*retry).max(Duration::from_millis(1)),
            }),
            _ => Err(StoreError::Corrupt(
                "redis: the rate-limit script answered no known outcome".to_owned(),
            )),
        }
    }

    async fn reset(&self, key: &str) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        let key = self.redis_key(key);
        within(self.command_timeout, async move {
            ::redis::cmd("DEL").arg(key).query_async::<()>(&mut conn).await
        })
        .await
    }

    async fn remember(&self, set: &str, member: &str, ttl: Duration, now_ms: i64) -> Result<(), StoreError> {
        let expires_at = now_ms.saturating_add(i64::try_from(ms(ttl)).unwrap_or(i64::MAX));
        let mut invocation = REMEMBER.prepare_invoke();
        invocation
            .key(self.marker_key(set))
            .arg(member)
            .arg(expires_at)
            .arg(ms(ttl).max(1))
            .arg(now_ms)
            .arg(MARKERS_PER_SET);
        let mut conn = self.conn.clone();
        within(self.command_timeout, async move {
            invocation.invoke_async::<()>(&mut conn).await
        })
        .await
    }

    async fn remembered(&self, set: &str, member: &str, now_ms: i64) -> Result<bool, StoreError> {
        let mut conn = self.conn.clone();
        let key = self.marker_key(set);
        let member = member.to_owned();
        let expires_at: Option<i64> = within(self.command_timeout, async move {
            ::redis::cmd("HGET")
                .arg(key)
                .arg(member)
                .query_async::<Option<i64>>(&mut conn)
                .await
        })
        .await?;
        Ok(expires_at.is_some_and(|e| e > now_ms))
    }

    async fn forget(&self, set: &str) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        let key = self.marker_key(set);
        within(self.command_timeout, async move {
            ::redis::cmd("DEL").arg(key).query_async::<()>(&mut conn).await
        })
        .await
    }
}
