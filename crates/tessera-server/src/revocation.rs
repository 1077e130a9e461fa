//! Revoking access tokens early (`TESSERA_REVOCATION_CHECK=on`).
//!
//! An access token names its session (`sid`). When a session ends before its
//! access tokens expire (logout of any scope, `DELETE /sessions/{id}`, a
//! password reset or change, a refresh-token reuse, an administrator's
//! revocation), the instance that ended it records the session id in the
//! store and announces it ([`Revocations::announce`], before the request
//! answers). Every instance keeps the ids in memory ([`RevokedSessions`]) and
//! refuses their tokens on `/api/auth/verify` and every bearer route: one
//! lookup in a sharded hash set, no store round trip, no allocation.
//!
//! Where the record and the feed live follows the sessions: Redis (a stream,
//! and `PUBLISH`) when `TESSERA_REDIS_URL` is set, else PostgreSQL (a table,
//! and `NOTIFY`), else SQLite (a table; one instance, which knows its own
//! revocations and reads the CLI's). A starting instance loads the live
//! record before it serves, so a restart forgets nothing; a periodic re-read
//! from its cursor double-checks the feed ([`follow`]), the way key changes
//! are followed in [`crate::keys`].
//!
//! A revocation lives as long as an access token of its session can:
//! `TESSERA_ACCESS_TTL` + `TESSERA_LEEWAY` + [`CLOCK_MARGIN_SECS`]. So memory
//! holds the sessions ended within one access-token lifetime, and no more.
//!
//! Failure. A session that ended but whose revocation could not be recorded
//! answers 503: this instance refuses its tokens at once and retries the
//! record every second until the store takes it (while the revocation can
//! still matter); other instances learn of it then. An instance that loses
//! its feed keeps serving from the set it has (and answers 503 on
//! `/readyz`, so a load balancer drains it), and reads on from its cursor as
//! soon as the store answers again. Why not refuse every token instead:
//! while the store is unreachable for everyone, no session can end anywhere
//! (ending one answers 503), so the set misses nothing, and failing closed
//! would turn a Redis outage into an outage of every service behind forward
//! auth; an instance cut off alone is drained by its `/readyz`.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use tessera_core::SessionId;
use tessera_store::{Revocation, RevocationCursor, RevocationEvent, RevocationListener, RevocationStore, StoreError};
use uuid::Uuid;

/// Added to a revocation's lifetime for clocks that disagree: an access
/// token's `exp` is the issuing instance's clock, the revocation's expiry the
/// revoking one's.
pub const CLOCK_MARGIN_SECS: i64 = 60;

/// How long a revocation must be kept with these settings: the access-token
/// lifetime, the clock leeway on `exp`, and [`CLOCK_MARGIN_SECS`].
pub fn lifetime(config: &crate::config::Config) -> i64 {
    let lifetimes = crate::keys::Lifetimes::of(config);
    lifetimes
        .access_ttl
        .saturating_add(lifetimes.leeway)
        .saturating_add(CLOCK_MARGIN_SECS)
}

/// Shards of [`RevokedSessions`]: a lookup locks one, and writers (a
/// revocation, the sweep) hold one at a time.
const SHARDS: usize = 64;

/// The ids of revoked sessions, with when each may be forgotten: what the
/// hot path reads.
///
/// A lookup reads one shard under a read lock, with a hash that is two
/// multiplications (session ids are random v4 uuids made by tessera, so no
/// caller chooses them), and skips even that while the set is empty.
pub struct RevokedSessions {
    shards: Box<[RwLock<Shard>]>,
    len: AtomicUsize,
}

type Shard = HashMap<Key, i64, BuildHasherDefault<IdHasher>>;

/// A session id as a map key: two words, so an entry (with its expiry) is
/// 24 bytes where a `u128` key would be aligned to 32.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Key([u64; 2]);

impl Key {
    #[inline]
    fn of(sid: &Uuid) -> Self {
        let id = sid.as_u128();
        Self([id as u64, (id >> 64) as u64])
    }

    /// The key's hash: two multiplications (see [`IdHasher`]).
    #[inline]
    fn mixed(self) -> u64 {
        let folded = self.0[0] ^ self.0[1].wrapping_mul(0x9E37_79B9_7F4A_7C15);
        folded.wrapping_mul(0xD6E8_FEB8_6659_FD93).rotate_left(32)
    }

    /// The shard: the top bits of the hash, so shards and buckets use
    /// different bits.
    #[inline]
    fn shard(self) -> usize {
        (self.mixed() >> (64 - SHARDS.trailing_zeros())) as usize
    }
}

impl std::hash::Hash for Key {
    #[inline]
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.mixed());
    }
}

impl Default for RevokedSessions {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| RwLock::new(Shard::default())).collect(),
            len: AtomicUsize::new(0),
        }
    }
}

impl RevokedSessions {
    /// Whether the session `sid` was revoked (and not yet swept).
    #[inline]
    pub fn contains(&self, sid: &Uuid) -> bool {
        if self.len.load(Ordering::Acquire) == 0 {
            return false;
        }
        let key = Key::of(sid);
        read(&self.shards[key.shard()]).contains_key(&key)
    }

    /// Adds `revocations`; one already there keeps the later expiry. Each
    /// shard is locked once per call, and only to read when it knows every
    /// one already (a periodic re-read finds mostly known revocations).
    pub fn insert(&self, revocations: impl IntoIterator<Item = Revocation>) {
        let mut by_shard: Vec<Vec<(Key, i64)>> = vec![Vec::new(); SHARDS];
        for revocation in revocations {
            let key = Key::of(&revocation.session.as_uuid());
            by_shard[key.shard()].push((key, revocation.expires_at));
        }
        for (shard, batch) in self.shards.iter().zip(by_shard) {
            if batch.is_empty() {
                continue;
            }
            let known = {
                let shard = read(shard);
                batch
                    .iter()
                    .all(|(key, until)| shard.get(key).is_some_and(|u| u >= until))
            };
            if known {
                continue;
            }
            let mut shard = write(shard);
            shard.reserve(batch.len());
            for (key, until) in batch {
                match shard.get_mut(&key) {
                    Some(old) => *old = (*old).max(until),
                    None => {
                        shard.insert(key, until);
                        self.len.fetch_add(1, Ordering::Release);
                    }
                }
            }
        }
    }

    /// Forgets revocations that expired before `now` (their tokens have
    /// expired too); returns how many.
    pub fn sweep(&self, now: i64) -> usize {
        let mut swept = 0;
        for shard in self.shards.iter() {
            let mut shard = write(shard);
            let before = shard.len();
            shard.retain(|_, until| *until >= now);
            swept += before - shard.len();
        }
        self.len.fetch_sub(swept, Ordering::Release);
        swept
    }

    pub fn len(&self) -> usize {
        self.len.load(Ordering::Acquire)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[inline]
fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(PoisonError::into_inner)
}

#[inline]
fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(PoisonError::into_inner)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Passes a [`Key`]'s own hash through (a multiply-fold of the session id,
/// instead of SipHash: the keys are random ids tessera made, not attacker
/// input).
#[derive(Default)]
pub struct IdHasher(u64);

impl Hasher for IdHasher {
    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }

    #[inline]
    fn write_u64(&mut self, hash: u64) {
        self.0 = hash;
    }

    /// Not used by [`Key`]; folds any bytes in, for completeness.
    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(byte)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
}

/// Revocations this instance made but could not record yet.
struct Pending {
    sessions: Vec<SessionId>,
    now: i64,
    expires_at: i64,
}

/// How many revoked sessions may wait to be recorded at most; beyond that
/// the oldest are given up (with an error in the log). Ending a session
/// needs the same store, so this fills only in the moment a store fails.
const PENDING_MAX: usize = 100_000;

/// The revocation check of one instance: the set, the store behind it, and
/// whether the set is current.
pub struct Revocations {
    revoked: RevokedSessions,
    store: Arc<dyn RevocationStore>,
    /// How long each revocation is kept, in seconds ([`lifetime`]).
    lifetime: i64,
    pending: Mutex<Vec<Pending>>,
    /// Where reading the record goes on from; the lock also keeps two reads
    /// from running at once.
    cursor: tokio::sync::Mutex<Option<RevocationCursor>>,
    /// Taken by [`follow`].
    listener: Mutex<Option<Box<dyn RevocationListener>>>,
    /// Whether the store announces revocations (Redis, PostgreSQL).
    announced: bool,
    /// The listener is connected (always true without one).
    listening: AtomicBool,
    /// The last read of the record succeeded.
    synced: AtomicBool,
    /// Announcements this instance made and waits to hear back ([`ECHO_WAIT`]).
    echoes: Mutex<HashMap<u128, Vec<tokio::sync::oneshot::Sender<()>>>>,
}

/// How long [`Revocations::announce`] waits to hear its own announcement
/// back from the store. Every instance is sent it at the same moment, so
/// once this one has it the others have it too (give or take their own
/// scheduling): a client that logs out and at once asks another instance
/// is refused there. It takes a round trip to Redis or PostgreSQL, well
/// under a millisecond on a LAN; past this bound the answer goes out anyway
/// (the revocation is recorded, and read again within seconds).
pub const ECHO_WAIT: Duration = Duration::from_millis(500);

impl Revocations {
    /// Starts listening, then loads every live revocation: what a starting
    /// (or restarted) instance must know before it serves a request.
    pub async fn start(store: Arc<dyn RevocationStore>, lifetime: i64, now: i64) -> Result<Arc<Self>, StoreError> {
        let listener = store.listen_revocations().await?;
        let page = store.revocations_since(None, now).await?;
        let revocations = Self {
            revoked: RevokedSessions::default(),
            store,
            lifetime,
            pending: Mutex::new(Vec::new()),
            cursor: tokio::sync::Mutex::new(Some(page.cursor)),
            announced: listener.is_some(),
            listener: Mutex::new(listener),
            listening: AtomicBool::new(true),
            synced: AtomicBool::new(true),
            echoes: Mutex::new(HashMap::new()),
        };
        let loaded = page.revocations.len();
        revocations.revoked.insert(page.revocations);
        tracing::info!(
            revoked = revocations.revoked.len(),
            read = loaded,
            announced = revocations.announced,
            "revocation check on: revoked sessions loaded"
        );
        Ok(Arc::new(revocations))
    }

    /// Whether the access tokens of session `sid` are to be refused.
    #[inline]
    pub fn is_revoked(&self, sid: &Uuid) -> bool {
        self.revoked.contains(sid)
    }

    /// Revoked sessions in memory.
    pub fn len(&self) -> usize {
        self.revoked.len()
    }

    pub fn is_empty(&self) -> bool {
        self.revoked.is_empty()
    }

    /// Whether this instance hears of revocations as they happen and its
    /// last read of the record succeeded: what `/readyz` reports.
    pub fn is_current(&self) -> bool {
        self.synced.load(Ordering::Acquire) && self.listening.load(Ordering::Acquire)
    }

    /// The `sessions` that just ended: refused here at once, then recorded
    /// and announced to every instance. An error (the store is unreachable)
    /// means the others have not heard: the caller answers 503, and this
    /// instance retries the record in the background until it succeeds.
    pub async fn announce(&self, sessions: &[SessionId], now: i64) -> Result<(), StoreError> {
        if sessions.is_empty() {
            return Ok(());
        }
        let expires_at = now.saturating_add(self.lifetime);
        self.revoked.insert(sessions.iter().map(|session| Revocation {
            session: *session,
            expires_at,
        }));
        // The last one is announced last: hearing it back means all were.
        let echo = match sessions.last() {
            Some(last) if self.announced && self.is_current() => Some(self.expect_echo(*last)),
            _ => None,
        };
        match self.store.record_revocations(sessions, now, expires_at).await {
            Ok(()) => {
                if let Some((id, echo)) = echo {
                    if tokio::time::timeout(ECHO_WAIT, echo).await.is_err() {
                        tracing::debug!("did not hear a revocation back in time; answering anyway");
                    }
                    self.forget_echo(id);
                }
                Ok(())
            }
            Err(err) => {
                if let Some((id, echo)) = echo {
                    drop(echo);
                    self.forget_echo(id);
                }
                tracing::warn!(
                    sessions = sessions.len(),
                    error = %err,
                    "could not record revoked sessions; refused here, retrying the record"
                );
                let mut pending = lock(&self.pending);
                pending.push(Pending {
                    sessions: sessions.to_vec(),
                    now,
                    expires_at,
                });
                let mut waiting: usize = pending.iter().map(|p| p.sessions.len()).sum();
                while waiting > PENDING_MAX && pending.len() > 1 {
                    let dropped = pending.remove(0);
                    waiting -= dropped.sessions.len();
                    tracing::error!(
                        sessions = dropped.sessions.len(),
                        "too many revocations wait to be recorded; the oldest are given up \
                         (other instances accept their tokens until they expire)"
                    );
                }
                Err(err)
            }
        }
    }

    fn expect_echo(&self, session: SessionId) -> (u128, tokio::sync::oneshot::Receiver<()>) {
        let id = session.as_uuid().as_u128();
        let (tx, rx) = tokio::sync::oneshot::channel();
        lock(&self.echoes).entry(id).or_default().push(tx);
        (id, rx)
    }

    fn forget_echo(&self, id: u128) {
        let mut echoes = lock(&self.echoes);
        if let Some(waiting) = echoes.get_mut(&id) {
            waiting.retain(|tx| !tx.is_closed());
            if waiting.is_empty() {
                echoes.remove(&id);
            }
        }
    }

    /// Applies revocations heard from the store, and wakes whoever waits
    /// for them.
    fn heard(&self, revoked: Vec<Revocation>) {
        {
            let mut echoes = lock(&self.echoes);
            if !echoes.is_empty() {
                for revocation in &revoked {
                    for tx in echoes
                        .remove(&revocation.session.as_uuid().as_u128())
                        .unwrap_or_default()
                    {
                        let _ = tx.send(());
                    }
                }
            }
        }
        self.revoked.insert(revoked);
    }

    /// Reads the record on from the cursor and adds what it finds.
    async fn catch_up(&self, now: i64) -> Result<usize, StoreError> {
        let mut cursor = self.cursor.lock().await;
        let page = match self.store.revocations_since(cursor.as_ref(), now).await {
            Ok(page) => page,
            Err(err) => {
                if self.synced.swap(false, Ordering::AcqRel) {
                    tracing::warn!(error = %err, "cannot read the revoked sessions; serving from the ones in memory");
                }
                return Err(err);
            }
        };
        let found = page.revocations.len();
        self.revoked.insert(page.revocations);
        *cursor = Some(page.cursor);
        if !self.synced.swap(true, Ordering::AcqRel) {
            tracing::info!(
                read = found,
                "revoked sessions read again; the revocation check is current"
            );
        }
        Ok(found)
    }

    /// Records what [`Self::announce`] could not, oldest first, dropping
    /// what no longer matters (expired).
    async fn retry_pending(&self, now: i64) {
        loop {
            let next = {
                let mut pending = lock(&self.pending);
                pending.retain(|p| p.expires_at > now);
                if pending.is_empty() {
                    return;
                }
                pending.remove(0)
            };
            match self
                .store
                .record_revocations(&next.sessions, next.now, next.expires_at)
                .await
            {
                Ok(()) => {
                    tracing::info!(
                        sessions = next.sessions.len(),
                        "revoked sessions recorded after a retry"
                    );
                }
                Err(err) => {
                    tracing::debug!(error = %err, "cannot record revoked sessions yet; will retry");
                    lock(&self.pending).insert(0, next);
                    return;
                }
            }
        }
    }

    fn has_pending(&self) -> bool {
        !lock(&self.pending).is_empty()
    }

    fn set_listening(&self, listening: bool) {
        if self.listening.swap(listening, Ordering::AcqRel) != listening {
            if listening {
                tracing::info!("listening for revoked sessions again");
            } else {
                tracing::warn!("revocation announcements interrupted; serving from the revoked sessions in memory");
            }
        }
    }
}

/// What the listener task tells [`follow`].
enum Heard {
    Event(RevocationEvent),
    Down,
}

/// How often the record is read again while the feed is healthy (a safety
/// net: a lost announcement is found within this).
const REREAD_EVERY: Duration = Duration::from_secs(5);
/// How often while it is not (or without announcements: SQLite, where the
/// CLI revokes behind the server's back), and while revocations wait to be
/// recorded.
const REREAD_DEGRADED_EVERY: Duration = Duration::from_secs(1);
/// How often expired revocations leave memory, and the store.
const SWEEP_EVERY: Duration = Duration::from_secs(10);
const PURGE_EVERY: Duration = Duration::from_secs(60);

/// Keeps the set current until the process ends: applies announcements,
/// reads the record on after a reconnect and periodically, retries
/// revocations not recorded yet, and sweeps expired ones.
pub async fn follow(revocations: Arc<Revocations>) {
    let (tx, mut heard) = tokio::sync::mpsc::channel::<Heard>(1024);
    let listener = lock(&revocations.listener).take();
    // The listener runs in a task of its own, so that the timers below never
    // cancel it in the middle of receiving an announcement.
    let listening = listener.map(|mut listener| {
        tokio::spawn(async move {
            loop {
                let news = match listener.next().await {
                    Ok(event) => Heard::Event(event),
                    Err(err) => {
                        tracing::debug!(error = %err, "the revocation listener cannot listen; retrying");
                        Heard::Down
                    }
                };
                let down = matches!(news, Heard::Down);
                if tx.send(news).await.is_err() {
                    return;
                }
                if down {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        })
    });
    let _stop_listening = AbortOnDrop(listening);
    let mut last_sweep = tokio::time::Instant::now();
    let mut last_purge = tokio::time::Instant::now();
    let mut last_reread = tokio::time::Instant::now();
    loop {
        let degraded = !revocations.is_current() || !revocations.announced || revocations.has_pending();
        let wait = if degraded { REREAD_DEGRADED_EVERY } else { REREAD_EVERY };
        // From the last re-read, not from the last announcement: a steady
        // stream of announcements must not put the re-read off forever.
        let reread_at = last_reread + wait;
        tokio::select! {
            news = heard.recv(), if revocations.announced => {
                match news {
                    Some(Heard::Event(RevocationEvent::Revoked(revoked))) => {
                        revocations.heard(revoked);
                        revocations.set_listening(true);
                    }
                    Some(Heard::Event(RevocationEvent::Missed)) => {
                        revocations.set_listening(true);
                        let _ = revocations.catch_up(crate::tokens::unix_now()).await;
                    }
                    Some(Heard::Down) => revocations.set_listening(false),
                    None => return,
                }
            }
            () = tokio::time::sleep_until(reread_at) => {
                last_reread = tokio::time::Instant::now();
                let now = crate::tokens::unix_now();
                let _ = revocations.catch_up(now).await;
                revocations.retry_pending(now).await;
            }
        }
        if last_sweep.elapsed() >= SWEEP_EVERY {
            last_sweep = tokio::time::Instant::now();
            let swept = revocations.revoked.sweep(crate::tokens::unix_now());
            if swept > 0 {
                tracing::debug!(swept, left = revocations.len(), "expired revocations forgotten");
            }
        }
        if last_purge.elapsed() >= PURGE_EVERY {
            last_purge = tokio::time::Instant::now();
            match revocations.store.purge_revocations(crate::tokens::unix_now()).await {
                Ok(0) => {}
                Ok(n) => tracing::debug!(purged = n, "expired revocations purged from the store"),
                Err(err) => tracing::debug!(error = %err, "could not purge expired revocations; will retry"),
            }
        }
    }
}

struct AbortOnDrop(Option<tokio::task::JoinHandle<()>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if let Some(task) = &self.0 {
            task.abort();
        }
    }
}

/// Records that `sessions` ended, for a process that serves nothing (the
/// CLI): running instances hear of it like of any revocation. Expired
/// records are purged on the way, since nothing else may be running to do
/// it.
pub async fn record_ended(
    store: &dyn RevocationStore,
    sessions: &[SessionId],
    lifetime: i64,
    now: i64,
) -> Result<(), StoreError> {
    store
        .record_revocations(sessions, now, now.saturating_add(lifetime))
        .await?;
    if let Err(err) = store.purge_revocations(now).await {
        tracing::debug!(error = %err, "could not purge expired revocations");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn revocation(until: i64) -> Revocation {
        Revocation {
            session: SessionId::random(),
            expires_at: until,
        }
    }

    #[test]
    fn revoked_sessions_are_found_until_swept() {
        let set = RevokedSessions::default();
        let (a, b) = (revocation(100), revocation(200));
        assert!(!set.contains(&a.session.as_uuid()));
        set.insert([a, b]);
        assert_eq!(set.len(), 2);
        assert!(set.contains(&a.session.as_uuid()) && set.contains(&b.session.as_uuid()));
        assert!(!set.contains(&SessionId::random().as_uuid()));
        // Recorded again with a later expiry: kept until then, counted once.
        set.insert([Revocation {
            session: a.session,
            expires_at: 300,
        }]);
        assert_eq!(set.len(), 2);
        assert_eq!(set.sweep(250), 1);
        assert!(set.contains(&a.session.as_uuid()));
        assert!(!set.contains(&b.session.as_uuid()));
        assert_eq!(set.sweep(301), 1);
        assert!(set.is_empty());
        assert!(!set.contains(&a.session.as_uuid()));
    }

    #[tokio::test]
    async fn an_echo_given_up_on_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let store = tessera_store::SqliteStore::connect(dir.path().join("t.db").to_str().unwrap())
            .await
            .unwrap();
        store.migrate().await.unwrap();
        let revocations = Revocations::start(Arc::new(store), 900, 1_700_000_000).await.unwrap();
        let session = SessionId::random();
        let (id, echo) = revocations.expect_echo(session);
        drop(echo);
        revocations.forget_echo(id);
        assert!(lock(&revocations.echoes).is_empty());
        // Heard back: whoever waits is woken, and the entry goes.
        let (_, echo) = revocations.expect_echo(session);
        revocations.heard(vec![revocation(1_700_000_900)]);
        assert_eq!(
            lock(&revocations.echoes).len(),
            1,
            "another session's echo wakes nobody"
        );
        revocations.heard(vec![Revocation {
            session,
            expires_at: 1_700_000_900,
        }]);
        assert!(echo.await.is_ok());
        assert!(lock(&revocations.echoes).is_empty());
        assert!(revocations.is_revoked(&session.as_uuid()));
    }

    #[tokio::test]
    async fn a_started_instance_knows_what_was_revoked_before_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = tessera_store::SqliteStore::connect(dir.path().join("t.db").to_str().unwrap())
            .await
            .unwrap();
        store.migrate().await.unwrap();
        let store: Arc<dyn RevocationStore> = Arc::new(store);
        let now = crate::tokens::unix_now();
        let first = Revocations::start(store.clone(), 900, now).await.unwrap();
        let (ended, live) = (SessionId::random(), SessionId::random());
        first.announce(&[ended], now).await.unwrap();
        assert!(first.is_revoked(&ended.as_uuid()));
        // No announcements on SQLite: nothing to wait for, and nothing left waiting.
        assert!(lock(&first.echoes).is_empty());
        let second = Revocations::start(store, 900, now).await.unwrap();
        assert!(second.is_revoked(&ended.as_uuid()));
        assert!(!second.is_revoked(&live.as_uuid()));
        assert!(second.is_current());
    }

    #[test]
    fn many_ids_spread_over_every_shard() {
        let set = RevokedSessions::default();
        let ids: Vec<Revocation> = (0..10_000).map(|_| revocation(1)).collect();
        set.insert(ids.iter().copied());
        assert_eq!(set.len(), 10_000);
        assert!(ids.iter().all(|r| set.contains(&r.session.as_uuid())));
        let sizes: Vec<usize> = set.shards.iter().map(|s| read(s).len()).collect();
        let (min, max) = (sizes.iter().min().copied(), sizes.iter().max().copied());
        assert!(min > Some(100) && max < Some(300), "{sizes:?}");
    }
}
