//! Rate-limit counters: [`RateLimiter`], kept in Redis when instances share
//! one ([`crate::RedisRateLimiter`]), in this process's memory otherwise
//! ([`MemoryRateLimiter`]).
//!
//! # Algorithm
//!
//! Both rules are built on GCRA, the generic cell rate algorithm (the one
//! `governor` and `redis-cell` use): a key's whole state is one time, its
//! *theoretical arrival time* `tat`. A rule of `count` per `period` spaces
//! requests `period / count` apart but tolerates a burst of `count`: a
//! request at `now` is allowed when `max(tat, now) + interval - now <=
//! period`, and then moves `tat` on by one interval. So:
//!
//! - a burst of `count` passes at once, and then one more every
//!   `period / count` (100 a minute: a burst of 100, then one every 0.6 s);
//! - there is no window edge where twice the limit gets through (a fixed
//!   window lets `count` in just before the edge and `count` just after);
//! - the state is one number per key, not a log of requests, and a key
//!   expires as soon as its debt has drained (`tat - now`), so an idle key
//!   costs nothing and a flood of distinct keys lives only as long as each
//!   key's own traffic keeps it alive;
//! - the wait until the next request would pass is exact, which is what
//!   `Retry-After` says.
//!
//! [`LimitRule::Failures`] adds exponential backoff on top, for failed
//! logins: the GCRA budget of `count` failures per `period` is the free
//! allowance; the attempt that spends it locks the key for `backoff`, and
//! every attempt allowed after a lock (there is no other kind: while locked,
//! everything is refused) locks it again for twice as long as the last,
//! never longer than `backoff_max`. The escalation is forgotten with the
//! key, `period` after the last lock ends (or once the budget has drained,
//! if that is later), or by [`RateLimiter::reset`]. A lock never outlasts
//! `backoff_max`, so nobody can lock an account for good.
//!
//! An attempt is counted when it is allowed, *before* the caller checks the
//! password, so concurrent guesses cannot all slip past the check before any
//! of them is recorded; a login that turns out right calls
//! [`RateLimiter::reset`]. Refused requests are never counted: they cost the
//! attacker nothing, but they do not lengthen anyone's wait either, so a
//! lock always ends `backoff_max` at most after it began.
//!
//! # Several limits per request
//!
//! [`RateLimiter::check`] applies a list of limits in order, atomically
//! (one Lua script in Redis, one lock in memory): each limit that allows is
//! charged, the first that refuses stops the request, and the limits after
//! it are neither checked nor charged. A request refused by its client's
//! address limit therefore never touches the account's count, while one
//! refused by a locked account still counts against its address.
//!
//! Times are unix milliseconds, passed in by the caller: the store has no
//! clock, and the tests move time by hand.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use crate::StoreError;

/// What one limit allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitRule {
    /// `count` requests per `period`: a burst of `count`, then one every
    /// `period / count` (GCRA).
    Rate { count: u32, period: Duration },
    /// `count` failures per `period` for free, then the key locks for
    /// `backoff`, doubling with every further allowed attempt up to
    /// `backoff_max`.
    Failures {
        count: u32,
        period: Duration,
        backoff: Duration,
        backoff_max: Duration,
    },
}

impl LimitRule {
    fn count(&self) -> u32 {
        match self {
            Self::Rate { count, .. } | Self::Failures { count, .. } => *count,
        }
    }

    fn period_ms(&self) -> i64 {
        match self {
            Self::Rate { period, .. } | Self::Failures { period, .. } => millis(*period),
        }
    }

    /// The GCRA emission interval: `period / count`, at least 1 ms.
    fn interval_ms(&self) -> i64 {
        (self.period_ms() / i64::from(self.count().max(1))).max(1)
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// One limit of a request: the counter `key` under `rule`.
///
/// Keys are opaque to the store. The caller keeps them short and free of
/// personal data (tessera passes digests of email addresses, never the
/// addresses), and must not use one key under two rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limit {
    pub key: String,
    pub rule: LimitRule,
}

/// What [`RateLimiter::check`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitDecision {
    /// Every limit allowed the request, and each was charged.
    Allowed {
        /// When a [`LimitRule::Failures`] limit locked its key with this
        /// attempt (should it fail): for how long. Zero otherwise.
        locks_for: Duration,
    },
    /// `limits[index]` refused; the limits before it were charged, the
    /// ones after it were not looked at.
    Limited {
        index: usize,
        /// How long until the same request would pass (at least 1 ms).
        retry_after: Duration,
    },
}

/// How many members a set of [`RateLimiter::remember`] keeps: the latest.
pub const MARKERS_PER_SET: usize = 64;

/// Counters for rate limits, shared by every instance that shares the
/// backend.
#[async_trait::async_trait]
pub trait RateLimiter: Send + Sync + 'static {
    /// Applies `limits` in order, atomically, at `now_ms` (unix
    /// milliseconds): see the module documentation.
    async fn check(&self, limits: &[Limit], now_ms: i64) -> Result<LimitDecision, StoreError>;

    /// Forgets `key` entirely (a login that succeeded clears its account's
    /// failures and backoff). Unknown keys are fine.
    async fn reset(&self, key: &str) -> Result<(), StoreError>;

    /// Remembers `member` in the set `set` until `now_ms + ttl` (a client
    /// that logged in to an account: it is *known* to that account from
    /// then on). Remembering it again extends it. A set keeps its
    /// [`MARKERS_PER_SET`] latest members. Sets live apart from the
    /// counters: a set and a [`Limit`] of the same key never meet.
    async fn remember(&self, set: &str, member: &str, ttl: Duration, now_ms: i64) -> Result<(), StoreError>;

    /// Whether `member` of the set `set` is remembered at `now_ms`.
    async fn remembered(&self, set: &str, member: &str, now_ms: i64) -> Result<bool, StoreError>;

    /// Forgets every member of the set `set` (an account whose password
    /// changed, or whose sessions were all ended, knows no client any more).
    async fn forget(&self, set: &str) -> Result<(), StoreError>;
}

/// The state of one key.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct KeyState {
    /// GCRA theoretical arrival time (ms).
    pub tat: i64,
    /// [`LimitRule::Failures`]: how many locks in a row (0: none yet).
    pub level: u32,
    /// [`LimitRule::Failures`]: locked until (ms); 0 when never locked.
    pub until: i64,
}

/// Locks never double past this level: `2^40` backoffs are beyond any cap.
const MAX_LEVEL: u32 = 40;

/// What one rule makes of one key's state at `now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// Allowed: the new state, when it may be forgotten (ms), and the lock
    /// this attempt set (ms, 0 for none).
    Allow {
        state: KeyState,
        expires_at: i64,
        lock_ms: i64,
    },
    /// Refused: how long until it would pass (ms, at least 1).
    Refuse { retry_ms: i64 },
}

/// The one implementation of both rules; `redis/ratelimit.lua` is its
/// transcription, and the shared test suite holds both to the same answers.
pub(crate) fn step(rule: &LimitRule, state: KeyState, now: i64) -> Step {
    let period = rule.period_ms();
    let interval = rule.interval_ms();
    match *rule {
        LimitRule::Rate { .. } => {
            let tat = state.tat.max(now).saturating_add(interval);
            if tat - now > period {
                return Step::Refuse {
                    retry_ms: (tat - now - period).max(1),
                };
            }
            Step::Allow {
                state: KeyState { tat, ..state },
                expires_at: tat,
                lock_ms: 0,
            }
        }
        LimitRule::Failures {
            backoff, backoff_max, ..
        } => {
            if state.until > now {
                return Step::Refuse {
                    retry_ms: state.until - now,
                };
            }
            let tat = state.tat.max(now).saturating_add(interval);
            let (level, lock_ms) = if state.level == 0 && tat - now <= period {
                // Within the free budget; the attempt that spends it locks.
                if tat - now + interval > period {
                    (1, millis(backoff))
                } else {
                    (0, 0)
                }
            } else {
                let level = (state.level + 1).min(MAX_LEVEL);
                let doubled = millis(backoff).saturating_mul(1_i64 << (level - 1).min(62));
                (level, doubled.min(millis(backoff_max)))
            };
            let until = if lock_ms > 0 { now + lock_ms } else { state.until };
            let expires_at = if level > 0 {
                tat.max(until.saturating_add(period))
            } else {
                tat
            };
            Step::Allow {
                state: KeyState { tat, level, until },
                expires_at,
                lock_ms,
            }
        }
    }
}

/// Rate-limit counters in this process's memory, for a single instance.
///
/// Bounded: at most `capacity` keys. Expired keys are swept once a minute
/// (by the clock the callers pass in) and whenever the table is full; if it
/// is still full then, the eighth of the keys closest to expiring is
/// dropped (each forgives the least), so a flood of distinct keys costs a
/// bounded amount of memory and cannot push out the state of a key under
/// attack, whose debt is the largest.
pub struct MemoryRateLimiter {
    inner: Mutex<Table>,
    capacity: usize,
}

struct Table {
    entries: HashMap<String, Entry>,
    /// Sets of [`RateLimiter::remember`]: each member and when it expires.
    /// At most `capacity` sets, apart from the counters, so markers (which
    /// live for weeks) never crowd out a counter.
    markers: HashMap<String, Vec<(String, i64)>>,
    next_sweep: i64,
    /// Keys dropped while still live because the table was full.
    evicted: u64,
}

#[derive(Clone, Copy)]
struct Entry {
    state: KeyState,
    expires_at: i64,
}

impl std::fmt::Debug for MemoryRateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryRateLimiter")
            .field("capacity", &self.capacity)
            .field("len", &self.len())
            .finish()
    }
}

impl MemoryRateLimiter {
    /// Default capacity: 100 000 keys, about 15 MB at most (a key of tessera's
    /// is under 64 bytes).
    pub const DEFAULT_CAPACITY: usize = 100_000;
    const SWEEP_EVERY_MS: i64 = 60_000;

    pub fn new(capacity: usize) -> Self {
        Self {
            inner: Mutex::new(Table {
                entries: HashMap::new(),
                markers: HashMap::new(),
                next_sweep: 0,
                evicted: 0,
            }),
            capacity: capacity.max(1),
        }
    }

    /// Keys held now, expired ones not yet swept included.
    pub fn len(&self) -> usize {
        self.lock().map(|t| t.entries.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Keys dropped before they expired because the table was full.
    pub fn evicted(&self) -> u64 {
        self.lock().map(|t| t.evicted).unwrap_or(0)
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Table>, StoreError> {
        // A panic while holding the lock cannot leave a half-written entry
        // (entries are replaced whole), so a poisoned lock is still usable.
        Ok(self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner))
    }

    fn make_room(&self, table: &mut Table, now: i64) {
        table.entries.retain(|_, e| e.expires_at > now);
        table.next_sweep = now + Self::SWEEP_EVERY_MS;
        if table.entries.len() < self.capacity {
            return;
        }
        let drop = (self.capacity / 8).max(1);
        let mut expiries: Vec<i64> = table.entries.values().map(|e| e.expires_at).collect();
        let (_, nth, _) = expiries.select_nth_unstable(drop - 1);
        let threshold = *nth;
        let mut left = drop;
        table.entries.retain(|_, e| {
            if left > 0 && e.expires_at <= threshold {
                left -= 1;
                false
            } else {
                true
            }
        });
        table.evicted += (drop - left) as u64;
    }
}

impl Default for MemoryRateLimiter {
    fn default() -> Self {
        Self::new(Self::DEFAULT_CAPACITY)
    }
}

#[async_trait::async_trait]
impl RateLimiter for MemoryRateLimiter {
    async fn check(&self, limits: &[Limit], now_ms: i64) -> Result<LimitDecision, StoreError> {
        let mut table = self.lock()?;
        if now_ms >= table.next_sweep {
            table.entries.retain(|_, e| e.expires_at > now_ms);
            table.markers.retain(|_, members| {
                members.retain(|(_, expires_at)| *expires_at > now_ms);
                !members.is_empty()
            });
            table.next_sweep = now_ms + Self::SWEEP_EVERY_MS;
        }
        let mut locks_for = 0;
        for (index, limit) in limits.iter().enumerate() {
            let current = table
                .entries
                .get(&limit.key)
                .filter(|e| e.expires_at > now_ms)
                .map(|e| e.state)
                .unwrap_or_default();
            match step(&limit.rule, current, now_ms) {
                Step::Refuse { retry_ms } => {
                    return Ok(LimitDecision::Limited {
                        index,
                        retry_after: Duration::from_millis(u64::try_from(retry_ms).unwrap_or(1)),
                    })
                }
                Step::Allow {
                    state,
                    expires_at,
                    lock_ms,
                } => {
                    locks_for = locks_for.max(lock_ms);
                    if !table.entries.contains_key(&limit.key) && table.entries.len() >= self.capacity {
                        self.make_room(&mut table, now_ms);
                    }
                    table.entries.insert(limit.key.clone(), Entry { state, expires_at });
                }
            }
        }
        Ok(LimitDecision::Allowed {
            locks_for: Duration::from_millis(u64::try_from(locks_for).unwrap_or(0)),
        })
    }

    async fn reset(&self, key: &str) -> Result<(), StoreError> {
        self.lock()?.entries.remove(key);
        Ok(())
    }

    async fn remember(&self, set: &str, member: &str, ttl: Duration, now_ms: i64) -> Result<(), StoreError> {
        let expires_at = now_ms.saturating_add(millis(ttl));
        let mut table = self.lock()?;
        if !table.markers.contains_key(set) && table.markers.len() >= self.capacity {
            table.markers.retain(|_, members| {
                members.retain(|(_, e)| *e > now_ms);
                !members.is_empty()
            });
            if table.markers.len() >= self.capacity {
                // The sets whose latest member expires first go first: the
                // accounts seen longest ago.
                let latest = |members: &Vec<(String, i64)>| members.iter().map(|(_, e)| *e).max().unwrap_or(0);
                let drop = (self.capacity / 8).max(1);
                let mut expiries: Vec<i64> = table.markers.values().map(latest).collect();
                let (_, nth, _) = expiries.select_nth_unstable(drop - 1);
                let threshold = *nth;
                let mut left = drop;
                table.markers.retain(|_, members| {
                    if left > 0 && latest(members) <= threshold {
                        left -= 1;
                        false
                    } else {
                        true
                    }
                });
            }
        }
        let members = table.markers.entry(set.to_owned()).or_default();
        members.retain(|(m, e)| m != member && *e > now_ms);
        members.push((member.to_owned(), expires_at));
        if members.len() > MARKERS_PER_SET {
            members.sort_by_key(|(_, e)| std::cmp::Reverse(*e));
            members.truncate(MARKERS_PER_SET);
        }
        Ok(())
    }

    async fn remembered(&self, set: &str, member: &str, now_ms: i64) -> Result<bool, StoreError> {
        Ok(self
            .lock()?
            .markers
            .get(set)
            .is_some_and(|members| members.iter().any(|(m, e)| m == member && *e > now_ms)))
    }

    async fn forget(&self, set: &str) -> Result<(), StoreError> {
        self.lock()?.markers.remove(set);
        Ok(())
    }
}
