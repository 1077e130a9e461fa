//! The Redis session backend: login sessions shared by every tessera instance
//! that points at the same Redis (or Redis Cluster), while users stay in SQL.
//!
//! [`RedisSessionStore`] implements [`SessionStore`], [`RevocationStore`]
//! and [`Health`] only. It
//! holds the [`UserStore`] the users live in, because a [`Session`] carries
//! the user's email, role and tenant *now* (not at login) and a session may only be
//! created for a user that exists; see "Users" below.
//!
//! # Key layout
//!
//! `<prefix>` is [`RedisOptions::key_prefix`], `tessera:` by default. Ids are
//! hyphenated lowercase UUIDs; times are unix seconds in decimal.
//!
//! | key | type | holds | expires |
//! | --- | --- | --- | --- |
//! | `<prefix>{u:<user_id>}:s:<session_id>` | hash | one session: `user`, `created_at`, `last_used_at`, `expires_at`, `jti`, `access_jti`, `issued_at` (the current refresh pair), `previous_jti` and `rotated_at` (after the first rotation), `user_agent` and `ip` (when known) | with the session: its TTL is `expires_at - now`, set at creation and moved by every rotation |
//! | `<prefix>{u:<user_id>}:sessions` | sorted set | the user's session ids, scored by `expires_at`; `list_sessions` and the `revoke_*` calls start here | with the user's longest-lived session (its TTL only grows) |
//! | `<prefix>expiring-sessions` | sorted set | `<user_id>:<session_id>` of every session created, scored by its `expires_at` at creation (`purge_expired` requeues rotated ones); only `purge_expired` reads it | with the longest-lived session queued in it |
//! | `<prefix>{rl}:<key>` | hash | a rate-limit counter of [`RedisRateLimiter`] (`tat`, `level`, `until`, `exp`) | when its debt has drained, or a period after its last lock ends |
//! | `<prefix>revoked-sessions` | stream | revoked sessions ([`RevocationStore`]): one entry per announcement, field `r` = `<expires_at> <session_id>,<session_id>,...`, trimmed (`MINID ~`, Redis's clock) to the revocation's lifetime plus a minute as entries are added | a revocation lifetime plus a minute after its newest entry |
//!
//! Revocations are announced on the channel `<prefix>revocations` (the
//! entry's payload), by the script that adds the entry: a listener
//! subscribes on a connection of its own, through one node of a cluster
//! (any node relays a `PUBLISH` to all), and reads the stream on from the
//! last id it saw after a reconnect.
//!
//! The `{u:<user_id>}` hash tag puts all of one user's keys in one Redis
//! Cluster slot, and every script names every key it touches in `KEYS`, all
//! of them with the same tag, so each script runs on one node and is
//! cluster-safe. `expiring-sessions` and `revoked-sessions` are only ever
//! touched by single-key commands and single-key scripts. No key lives forever: Redis drops
//! everything once the last session has expired. The prefix may not contain
//! `{` or `}`, which would move the tag.
//!
//! # Atomicity
//!
//! Creating, rotating, revoking and purging are Lua scripts (sent as EVALSHA,
//! loaded on a `NOSCRIPT` miss), so each is one atomic step: of concurrent
//! refreshes presenting the same token exactly one rotates, on any number of
//! instances. Times are compared in Lua but only ever written back as the
//! decimal strings Rust passed in.
//!
//! # Expiry
//!
//! The store has no clock: the caller's "now" decides what is live, as for
//! the SQL backends, and a session key's time to live is `expires_at - now`
//! with the caller's now (at creation `created_at`, at rotation
//! `Rotation::now`). Redis then deletes the session on its own when its
//! lifetime runs out, so an expired session needs no purge to disappear. The
//! TTL is relative rather than an `EXPIREAT` on Redis's clock so that a skew
//! between an instance's clock and Redis's cannot end sessions early or keep
//! them late, and so that the store's notion of time stays the caller's.
//!
//! Redis losing its data (`FLUSHALL`, a restart without persistence, a
//! failover to a replica that had not caught up) ends the lost sessions:
//! their refresh tokens get [`RotationOutcome::Unknown`] and their users log
//! in again. Nothing else depends on the data.
//!
//! **Eviction must be off** (`maxmemory-policy noeviction`, the default):
//! an evicted index would let `revoke_all_sessions` miss sessions, so a
//! logout "everywhere" or a password reset would not end them.
//!
//! # Users
//!
//! Sessions do not copy the user's email, role and tenant: every read that
//! returns a [`Session`] (`session`, `rotate`, `list_sessions`) looks the
//! user up in the [`UserStore`] (one primary-key read; `session` and
//! `list_sessions` run it concurrently with the Redis read), so a changed
//! role or email shows on the next refresh, exactly as with the SQL
//! backends' join. A session whose user no longer exists is treated as
//! missing (`None`, `Unknown`, not listed), as the SQL backends' cascade
//! deletes it. `create_session` checks that the user exists
//! (`Conflict::UnknownUser` otherwise); a session id is unique per user (a
//! collision of two random UUIDs across users is not detected). There is no
//! per-tenant index: `revoke_tenant_sessions` pages through the tenant's
//! users in the [`UserStore`] and revokes each one's sessions.
//!
//! # Failures
//!
//! Every Redis call is bounded by [`RedisOptions::command_timeout`]; a
//! connection attempt by [`RedisOptions::connect_timeout`]. Timeouts, refused
//! or dropped connections, a cluster that is down, a Redis that is loading or
//! out of memory are [`StoreError::Unavailable`]. The connection reconnects
//! by itself: once Redis answers again, the same store works again.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use ::redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use ::redis::cluster::ClusterClientBuilder;
use ::redis::cluster_async::ClusterConnection;
use ::redis::{Cmd, ErrorKind, Pipeline, RedisError, RedisFuture, RedisResult, Script, Value};
use tessera_core::{SessionId, TenantId, UserId};
use uuid::Uuid;

mod ratelimit;
pub use ratelimit::RedisRateLimiter;

use crate::decode::{parse_revocation_announcement, revocation_announcements};
use crate::{
    Conflict, Health, NewSession, RefreshState, RevocationCursor, RevocationEvent, RevocationListener, RevocationPage,
    RevocationStore, Rotation, RotationOutcome, Session, SessionStore, StoreError, User, UserStore,
    REVOCATION_LISTENER_PING_EVERY,
};

static CREATE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("redis/create.lua")));
static ROTATE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("redis/rotate.lua")));
/// Redis's clock in milliseconds, read on the node that holds `KEYS[1]`
/// (which it does not touch), so that in a Cluster it is the clock of the
/// node a script on that key will run on.
static CLOCK: LazyLock<Script> = LazyLock::new(|| {
    Script::new("local t = redis.call('TIME') return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)")
});
static REVOKE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("redis/revoke.lua")));
static PURGE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("redis/purge.lua")));
static QUEUE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("redis/queue.lua")));
static RECORD_REVOCATIONS: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("redis/revocations.lua")));

/// How [`RedisSessionStore`] connects and names its keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisOptions {
    /// How long one attempt to connect may take (TCP, TLS, `HELLO`/`AUTH`).
    pub connect_timeout: Duration,
    /// How long one Redis call may take, including waiting for a reconnect,
    /// before it fails with [`StoreError::Unavailable`].
    pub command_timeout: Duration,
    /// Prepended to every key, so that several deployments (or tests) can
    /// share one Redis. A `:` is added unless it is empty or ends with one
    /// (`tessera` and `tessera:` are the same). Must not contain `{` or `}`.
    pub key_prefix: String,
}

impl Default for RedisOptions {
    fn default() -> Self {
        Self {
            connect_timeout: RedisSessionStore::CONNECT_TIMEOUT,
            command_timeout: RedisSessionStore::COMMAND_TIMEOUT,
            key_prefix: RedisSessionStore::KEY_PREFIX.to_owned(),
        }
    }
}

/// Login sessions in Redis, users in the [`UserStore`] it is given. Cheap to
/// clone: clones share the connection.
#[derive(Clone)]
pub struct RedisSessionStore {
    conn: Connection,
    users: Arc<dyn UserStore>,
    prefix: Arc<str>,
    command_timeout: Duration,
    connect_timeout: Duration,
    /// The URLs a revocation listener subscribes through: the one Redis, or
    /// the seed nodes of a cluster (any node hears every `PUBLISH`).
    nodes: Arc<[String]>,
    _keepalive: Arc<KeepAlive>,
}

/// Pings Redis every second for as long as any clone of the store lives.
///
/// The connection manager reconnects only after a command has failed on the
/// old connection. Without this, the first request after a Redis restart or
/// failover (however long afterwards) would fail; with it, the ping is what
/// fails and the requests that follow find the new connection.
struct KeepAlive(tokio::task::JoinHandle<()>);

impl Drop for KeepAlive {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl KeepAlive {
    const EVERY: Duration = Duration::from_secs(1);

    fn start(conn: Connection, limit: Duration) -> Self {
        Self(tokio::spawn(async move {
            let mut tick = tokio::time::interval(Self::EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let mut conn = conn.clone();
                // Failures are the point (they trigger the reconnect); they
                // are reported by the requests and `/readyz`, not here.
                let _ = within(
                    limit,
                    async move { ::redis::cmd("PING").query_async::<()>(&mut conn).await },
                )
                .await;
            }
        }))
    }
}

impl std::fmt::Debug for RedisSessionStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisSessionStore")
            .field("cluster", &matches!(self.conn, Connection::Cluster(_)))
            .field("prefix", &self.prefix)
            .field("command_timeout", &self.command_timeout)
            .finish_non_exhaustive()
    }
}

/// A single Redis (reconnecting by itself) or a Redis Cluster.
#[derive(Clone)]
enum Connection {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(conn) => conn.req_packed_command(cmd),
            Self::Cluster(conn) => conn.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(conn) => conn.req_packed_commands(cmd, offset, count),
            Self::Cluster(conn) => conn.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(conn) => conn.get_db(),
            Self::Cluster(conn) => conn.get_db(),
        }
    }
}

impl RedisSessionStore {
    /// Default of [`RedisOptions::connect_timeout`].
    pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
    /// Default of [`RedisOptions::command_timeout`].
    pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);
    /// Default of [`RedisOptions::key_prefix`].
    pub const KEY_PREFIX: &'static str = "tessera:";
    /// How many `expiring-sessions` entries `purge_expired` handles per round.
    const PURGE_BATCH: usize = 500;
    /// How many users `revoke_tenant_sessions` reads, and revokes at once,
    /// per round.
    const REVOKE_TENANT_PAGE: u32 = 100;
    /// How often "log out others / everywhere" reads the user's index again
    /// when logins keep changing it under the revocation script.
    const REVOKE_ATTEMPTS: usize = 5;
    /// Longest time to live a key gets (100 years), whatever `expires_at` says.
    const MAX_TTL_SECS: i64 = 100 * 365 * 24 * 3600;

    /// Connects to the Redis at `url` (`redis://[user:password@]host[:port][/db]`,
    /// `rediss://` needs a TLS feature of the `redis` crate that this build
    /// does not enable) with the default [`RedisOptions`].
    ///
    /// Fails with [`StoreError::Unavailable`] when Redis does not answer a
    /// `PING` within the timeouts. Later losses of the connection are
    /// repaired in the background.
    pub async fn connect(url: &str, users: Arc<dyn UserStore>) -> Result<Self, StoreError> {
        Self::connect_with(url, users, RedisOptions::default()).await
    }

    /// [`Self::connect`] with explicit options.
    pub async fn connect_with(url: &str, users: Arc<dyn UserStore>, options: RedisOptions) -> Result<Self, StoreError> {
        let prefix = key_prefix(&options.key_prefix)?;
        let client = ::redis::Client::open(url).map_err(map_err)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(options.connect_timeout)
            .set_response_timeout(options.command_timeout)
            // One attempt per reconnect, no backoff: while Redis is down a
            // call fails at once (refused) or at the connect timeout, and the
            // next call starts the next attempt, so the store is back as
            // soon as Redis is. Calls are bounded by `command_timeout` anyway.
            .set_number_of_retries(0);
        let conn = within(
            options.connect_timeout,
            ConnectionManager::new_with_config(client, config),
        )
        .await?;
        Self::ready(Connection::Single(conn), users, prefix, &options, vec![url.to_owned()]).await
    }

    /// Connects to a Redis Cluster through any of its `nodes` (URLs as for
    /// [`Self::connect`]); the client learns the rest of the cluster from
    /// them and follows slot moves and failovers.
    pub async fn connect_cluster(
        nodes: &[&str],
        users: Arc<dyn UserStore>,
        options: RedisOptions,
    ) -> Result<Self, StoreError> {
        let prefix = key_prefix(&options.key_prefix)?;
        let client = ClusterClientBuilder::new(nodes.to_vec())
            .connection_timeout(options.connect_timeout)
            .response_timeout(options.command_timeout)
            .retries(2)
            .min_retry_wait(50)
            .max_retry_wait(500)
            .build()
            .map_err(map_err)?;
        let conn = within(options.connect_timeout, client.get_async_connection()).await?;
        let nodes = nodes.iter().map(|n| (*n).to_owned()).collect();
        Self::ready(Connection::Cluster(conn), users, prefix, &options, nodes).await
    }

    async fn ready(
        conn: Connection,
        users: Arc<dyn UserStore>,
        prefix: Arc<str>,
        options: &RedisOptions,
        nodes: Vec<String>,
    ) -> Result<Self, StoreError> {
        let store = Self {
            _keepalive: Arc::new(KeepAlive::start(conn.clone(), options.command_timeout)),
            conn,
            users,
            prefix,
            command_timeout: options.command_timeout,
            connect_timeout: options.connect_timeout,
            nodes: nodes.into(),
        };
        store.ping().await?;
        Ok(store)
    }

    /// How long after Redis read its clock for a rotation the rotation may
    /// still run. The instance stops waiting for the rotation one command
    /// timeout after it sent it, which is after that reading; a rotation
    /// that ran later than that would have answered no one, and the
    /// client's retry with the same token would look like a stolen token.
    /// Shorter than the timeout by a margin for the answer's way back, and
    /// measured on one clock (Redis's), so no clock skew enters.
    fn stale_after_ms(&self) -> u64 {
        let margin = (self.command_timeout / 4).min(Duration::from_millis(250));
        u64::try_from(self.command_timeout.saturating_sub(margin).as_millis()).unwrap_or(u64::MAX)
    }

    /// Redis's clock, in milliseconds, on the node holding `key`.
    async fn clock_ms(&self, key: String) -> Result<i64, StoreError> {
        let mut conn = self.conn.clone();
        self.run(async move { CLOCK.key(key).invoke_async(&mut conn).await })
            .await
    }

    /// Rate-limit counters in the same Redis, over the same connection,
    /// under `<prefix>{rl}:` (see [`RedisRateLimiter`]).
    pub fn rate_limiter(&self) -> RedisRateLimiter {
        RedisRateLimiter {
            conn: self.conn.clone(),
            namespace: format!("{}{{rl}}:", self.prefix).into(),
            command_timeout: self.command_timeout,
            _keepalive: Arc::clone(&self._keepalive),
        }
    }

    /// The key of one session's hash.
    pub fn session_key(&self, user: UserId, id: SessionId) -> String {
        format!("{}{{u:{user}}}:s:{id}", self.prefix)
    }

    /// The key of a user's session index.
    pub fn index_key(&self, user: UserId) -> String {
        format!("{}{{u:{user}}}:sessions", self.prefix)
    }

    /// The key of the queue `purge_expired` works through.
    pub fn expiring_key(&self) -> String {
        format!("{}expiring-sessions", self.prefix)
    }

    /// The key of the revocation record (a stream).
    pub fn revocations_key(&self) -> String {
        format!("{}revoked-sessions", self.prefix)
    }

    /// The channel revocations are announced on.
    pub fn revocations_channel(&self) -> String {
        format!("{}revocations", self.prefix)
    }

    /// Redis's `maxmemory-policy`, for a start-up warning when it is not
    /// `noeviction` (see the module docs). `None` when Redis refuses
    /// `CONFIG GET` (managed services often do).
    pub async fn eviction_policy(&self) -> Result<Option<String>, StoreError> {
        let mut conn = self.conn.clone();
        let mut cmd = ::redis::cmd("CONFIG");
        cmd.arg("GET").arg("maxmemory-policy");
        let reply = within(self.command_timeout, async move {
            Ok(cmd.query_async::<HashMap<String, String>>(&mut conn).await)
        })
        .await?;
        match reply {
            Ok(config) => Ok(config.get("maxmemory-policy").cloned()),
            Err(err) if err.kind() == ErrorKind::ResponseError || err.code() == Some("NOPERM") => Ok(None),
            Err(err) => Err(map_err(err)),
        }
    }

    /// Runs one Redis call within the command timeout.
    async fn run<T>(&self, call: impl Future<Output = RedisResult<T>>) -> Result<T, StoreError> {
        within(self.command_timeout, call).await
    }

    /// The session hash `key`, or `None` if there is none.
    async fn read(&self, key: String) -> Result<Option<Fields>, StoreError> {
        let mut conn = self.conn.clone();
        let fields: HashMap<String, String> = self
            .run(async move { ::redis::cmd("HGETALL").arg(key).query_async(&mut conn).await })
            .await?;
        Ok((!fields.is_empty()).then_some(Fields(fields)))
    }

    /// Deletes the sessions `ids` of `user` (and their index entries) in one
    /// script; returns the ids of those that existed. With `all_but`, `ids`
    /// must be every session in the user's index except that one (`None`
    /// inside it: every session): should the index hold another by the time
    /// the script runs, nothing is deleted and the answer is `None`.
    async fn revoke(
        &self,
        user: UserId,
        ids: &[String],
        all_but: Option<Option<&str>>,
    ) -> Result<Option<Vec<SessionId>>, StoreError> {
        if ids.is_empty() && all_but.is_none() {
            return Ok(Some(Vec::new()));
        }
        let mut invocation = REVOKE.key(self.index_key(user));
        for id in ids {
            invocation.key(format!("{}{{u:{user}}}:s:{id}", self.prefix));
        }
        match all_but {
            Some(keep) => invocation.arg("1").arg(keep.unwrap_or_default()),
            None => invocation.arg("0").arg(""),
        };
        for id in ids {
            invocation.arg(id);
        }
        let mut conn = self.conn.clone();
        let reply: Vec<String> = self
            .run(async move { invocation.invoke_async(&mut conn).await })
            .await?;
        match reply.split_first() {
            Some((outcome, _)) if outcome == "changed" => Ok(None),
            Some((outcome, revoked)) if outcome == "revoked" => revoked
                .iter()
                .map(|id| {
                    SessionId::parse(id).ok_or_else(|| {
                        StoreError::Corrupt("redis: a session index member is not a canonical UUID".to_owned())
                    })
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            _ => Err(StoreError::Corrupt(
                "redis: the revocation script answered no known outcome".to_owned(),
            )),
        }
    }

    /// Ends every session of `user` but `keep`, as the index lists them when
    /// the script runs: read the index, and revoke what it lists unless it
    /// changed meanwhile (a login between the two), then read it again.
    async fn revoke_all_but(&self, user: UserId, keep: Option<SessionId>) -> Result<Vec<SessionId>, StoreError> {
        let keep = keep.map(|k| k.to_string());
        for _ in 0..Self::REVOKE_ATTEMPTS {
            let mut listed = self.indexed(user).await?;
            listed.retain(|id| Some(id) != keep.as_ref());
            if let Some(revoked) = self.revoke(user, &listed, Some(keep.as_deref())).await? {
                return Ok(revoked);
            }
        }
        Err(StoreError::unavailable(io::Error::new(
            io::ErrorKind::WouldBlock,
            "the user's sessions kept changing while they were being ended; try again",
        )))
    }

    /// The ids in `user`'s index.
    async fn indexed(&self, user: UserId) -> Result<Vec<String>, StoreError> {
        let mut conn = self.conn.clone();
        let key = self.index_key(user);
        self.run(async move {
            ::redis::cmd("ZRANGE")
                .arg(key)
                .arg(0)
                .arg(-1)
                .query_async(&mut conn)
                .await
        })
        .await
    }
}

/// Runs `call` within `limit`; running out of time is `Unavailable`.
async fn within<T>(limit: Duration, call: impl Future<Output = RedisResult<T>>) -> Result<T, StoreError> {
    match tokio::time::timeout(limit, call).await {
        Ok(result) => result.map_err(map_err),
        Err(_) => Err(StoreError::unavailable(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("Redis did not answer within {limit:?}"),
        ))),
    }
}

/// The prefix keys start with: `prefix`, ending in `:` unless empty.
fn key_prefix(prefix: &str) -> Result<Arc<str>, StoreError> {
    if prefix.contains(['{', '}']) {
        return Err(StoreError::unavailable(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the Redis key prefix must not contain '{' or '}': they would change the cluster hash tag",
        )));
    }
    if prefix.is_empty() || prefix.ends_with(':') {
        Ok(prefix.into())
    } else {
        Ok(format!("{prefix}:").into())
    }
}

/// Classifies a Redis error: what says "not now" is `Unavailable`; what says
/// "the data or a script is not what this build expects" is `Corrupt`.
fn map_err(err: RedisError) -> StoreError {
    let corrupt = match err.kind() {
        // Replies that do not decode into what was asked for, a script that
        // fails, keys in two slots: a bug or foreign data.
        ErrorKind::TypeError | ErrorKind::ResponseError | ErrorKind::CrossSlot | ErrorKind::ExecAbortError => true,
        ErrorKind::ExtensionError => matches!(err.code(), Some("WRONGTYPE" | "TESSERA_CORRUPT")),
        _ => false,
    };
    if corrupt {
        // Redis's messages name commands and types; the scripts' own errors
        // name fields. Neither quotes stored values.
        StoreError::Corrupt(format!("redis: {err}"))
    } else {
        StoreError::unavailable(err)
    }
}

/// A key's time to live for a session ending at `expires_at`, seen at `now`:
/// at least a second (Redis refuses 0), at most [`RedisSessionStore::MAX_TTL_SECS`].
fn ttl(expires_at: i64, now: i64) -> i64 {
    expires_at.saturating_sub(now).clamp(1, RedisSessionStore::MAX_TTL_SECS)
}

/// A session hash as Redis returned it.
struct Fields(HashMap<String, String>);

impl Fields {
    /// From a script's `{outcome, field, value, ...}` reply, without the outcome.
    fn from_pairs(pairs: &[String]) -> Result<Self, StoreError> {
        if !pairs.len().is_multiple_of(2) {
            return Err(StoreError::Corrupt(
                "redis: a session hash reply has an odd length".to_owned(),
            ));
        }
        Ok(Self(
            pairs
                .chunks_exact(2)
                .map(|pair| (pair[0].clone(), pair[1].clone()))
                .collect(),
        ))
    }

    fn text(&self, field: &str) -> Result<&str, StoreError> {
        self.0
            .get(field)
            .map(String::as_str)
            .ok_or_else(|| StoreError::Corrupt(format!("redis: session field {field} is missing")))
    }

    fn int(&self, field: &str) -> Result<i64, StoreError> {
        self.text(field)?.parse().map_err(|_| corrupt(field, "an integer"))
    }

    fn uuid(&self, field: &str) -> Result<Uuid, StoreError> {
        let raw = self.text(field)?;
        match Uuid::try_parse(raw) {
            Ok(id) if raw.len() == 36 => Ok(id),
            _ => Err(corrupt(field, "a canonical UUID")),
        }
    }

    /// The session `id` of `user` this hash holds, with the user's email and
    /// role now.
    fn into_session(mut self, id: SessionId, user: &User) -> Result<Session, StoreError> {
        if UserId::parse(self.text("user")?) != Some(user.id) {
            return Err(corrupt("user", "the user of its key"));
        }
        let expires_at = self.int("expires_at")?;
        Ok(Session {
            id,
            user_id: user.id,
            created_at: self.int("created_at")?,
            last_used_at: self.int("last_used_at")?,
            expires_at,
            current: RefreshState {
                jti: self.uuid("jti")?,
                access_jti: self.uuid("access_jti")?,
                issued_at: self.int("issued_at")?,
                expires_at,
            },
            user_agent: self.0.remove("user_agent"),
            ip: self.0.remove("ip"),
            email: user.email.clone(),
            role: user.role.clone(),
            tenant: user.tenant,
        })
    }
}

fn corrupt(field: &str, expected: &str) -> StoreError {
    // Never the value itself: it may be personal data.
    StoreError::Corrupt(format!("redis: session field {field} is not {expected}"))
}

#[async_trait::async_trait]
impl SessionStore for RedisSessionStore {
    async fn create_session(&self, session: NewSession) -> Result<(), StoreError> {
        if self.users.find_user(session.user_id).await?.is_none() {
            return Err(Conflict::UnknownUser.into());
        }
        let (user, id, refresh) = (session.user_id, session.id, session.refresh);
        let id_text = id.to_string();

        let ttl = ttl(refresh.expires_at, session.created_at);

        // Queued first, so that a session that exists is always queued for
        // the purge. A taken id keeps the entry of the session that has it.
        let mut queue = QUEUE.key(self.expiring_key());
        queue.arg(refresh.expires_at).arg(format!("{user}:{id}")).arg(ttl);
        let mut conn = self.conn.clone();
        self.run(async move { queue.invoke_async::<i64>(&mut conn).await })
            .await?;

        let mut invocation = CREATE.key(self.session_key(user, id));
        invocation
            .key(self.index_key(user))
            .arg(&id_text)
            .arg(refresh.expires_at)
            .arg(ttl)
            .arg("user")
            .arg(user.to_string())
            .arg("created_at")
            .arg(session.created_at)
            .arg("last_used_at")
            .arg(session.created_at)
            .arg("expires_at")
            .arg(refresh.expires_at)
            .arg("jti")
            .arg(refresh.jti.to_string())
            .arg("access_jti")
            .arg(refresh.access_jti.to_string())
            .arg("issued_at")
            .arg(refresh.issued_at);
        if let Some(user_agent) = &session.user_agent {
            invocation.arg("user_agent").arg(user_agent);
        }
        if let Some(ip) = &session.ip {
            invocation.arg("ip").arg(ip);
        }
        let mut conn = self.conn.clone();
        let stored: i64 = self
            .run(async move { invocation.invoke_async(&mut conn).await })
            .await?;
        if stored == 0 {
            return Err(Conflict::IdTaken.into());
        }
        Ok(())
    }

    async fn session(&self, user: UserId, id: SessionId, now: i64) -> Result<Option<Session>, StoreError> {
        let (owner, fields) = tokio::join!(self.users.find_user(user), self.read(self.session_key(user, id)));
        let (Some(owner), Some(fields)) = (owner?, fields?) else {
            return Ok(None);
        };
        let session = fields.into_session(id, &owner)?;
        Ok((session.expires_at > now).then_some(session))
    }

    async fn rotate(&self, rotation: Rotation) -> Result<RotationOutcome, StoreError> {
        // The user first: should the user store fail, nothing has rotated
        // yet, and the client's retry still presents the current token.
        let Some(owner) = self.users.find_user(rotation.user).await? else {
            return Ok(RotationOutcome::Unknown);
        };
        let next = rotation.next;
        let session_key = self.session_key(rotation.user, rotation.session);
        let asked_at = self.clock_ms(session_key.clone()).await?;
        let mut invocation = ROTATE.key(session_key);
        invocation
            .key(self.index_key(rotation.user))
            .arg(rotation.presented_jti.to_string())
            .arg(rotation.now)
            .arg(rotation.grace_secs)
            .arg(next.jti.to_string())
            .arg(next.access_jti.to_string())
            .arg(next.issued_at)
            .arg(next.expires_at)
            .arg(ttl(next.expires_at, rotation.now))
            .arg(rotation.session.to_string())
            .arg(asked_at)
            .arg(self.stale_after_ms());
        let mut conn = self.conn.clone();
        let reply: Vec<String> = self
            .run(async move { invocation.invoke_async(&mut conn).await })
            .await?;
        let session = |pairs: &[String]| Fields::from_pairs(pairs)?.into_session(rotation.session, &owner);
        match reply.split_first() {
            Some((outcome, pairs)) if outcome == "rotated" => Ok(RotationOutcome::Rotated(session(pairs)?)),
            Some((outcome, pairs)) if outcome == "grace" => Ok(RotationOutcome::Grace(session(pairs)?)),
            Some((outcome, _)) if outcome == "reused" => Ok(RotationOutcome::Reused),
            Some((outcome, _)) if outcome == "unknown" => Ok(RotationOutcome::Unknown),
            Some((outcome, _)) if outcome == "stale" => Err(StoreError::unavailable(io::Error::new(
                io::ErrorKind::TimedOut,
                "Redis got to the rotation too late for this instance to still be waiting for its answer (a \
                 stall); nothing changed",
            ))),
            _ => Err(StoreError::Corrupt(
                "redis: the rotation script answered no known outcome".to_owned(),
            )),
        }
    }

    async fn list_sessions(&self, user: UserId, now: i64) -> Result<Vec<Session>, StoreError> {
        let (owner, ids) = tokio::join!(self.users.find_user(user), self.indexed(user));
        let (owner, ids) = (owner?, ids?);
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = ::redis::pipe();
        for id in &ids {
            pipe.cmd("HGETALL").arg(format!("{}{{u:{user}}}:s:{id}", self.prefix));
        }
        let mut conn = self.conn.clone();
        let hashes: Vec<HashMap<String, String>> = self.run(async move { pipe.query_async(&mut conn).await }).await?;

        // Index entries of sessions Redis has expired (or that were deleted
        // since the index was read) go now; failing to tidy up is no reason
        // to fail the read, and the next list or purge tries again.
        let gone: Vec<&String> = ids
            .iter()
            .zip(&hashes)
            .filter(|(_, h)| h.is_empty())
            .map(|(id, _)| id)
            .collect();
        if !gone.is_empty() {
            let mut conn = self.conn.clone();
            let key = self.index_key(user);
            let _ = self
                .run(async move {
                    ::redis::cmd("ZREM")
                        .arg(key)
                        .arg(gone)
                        .query_async::<i64>(&mut conn)
                        .await
                })
                .await;
        }

        let Some(owner) = owner else {
            return Ok(Vec::new());
        };
        let mut sessions = Vec::with_capacity(ids.len());
        for (id, hash) in ids.iter().zip(hashes) {
            if hash.is_empty() {
                continue;
            }
            let id = SessionId::parse(id).ok_or_else(|| {
                StoreError::Corrupt("redis: a session index member is not a canonical UUID".to_owned())
            })?;
            let session = Fields(hash).into_session(id, &owner)?;
            if session.expires_at > now {
                sessions.push(session);
            }
        }
        sessions.sort_by(|a, b| {
            b.last_used_at
                .cmp(&a.last_used_at)
                .then(b.created_at.cmp(&a.created_at))
                .then(a.id.cmp(&b.id))
        });
        Ok(sessions)
    }

    async fn revoke_session(&self, user: UserId, id: SessionId) -> Result<bool, StoreError> {
        Ok(self
            .revoke(user, &[id.to_string()], None)
            .await?
            .is_some_and(|revoked| !revoked.is_empty()))
    }

    async fn revoke_other_sessions(&self, user: UserId, keep: SessionId) -> Result<Vec<SessionId>, StoreError> {
        self.revoke_all_but(user, Some(keep)).await
    }

    async fn revoke_all_sessions(&self, user: UserId) -> Result<Vec<SessionId>, StoreError> {
        self.revoke_all_but(user, None).await
    }

    /// Redis deletes sessions by itself when their time to live runs out, so
    /// in production this mostly tidies up: it works through
    /// `expiring-sessions` up to `now`, deletes each session that is still
    /// stored but expired at or before `now` (counted), drops the entries of
    /// sessions that are gone (not counted) and requeues rotated sessions at
    /// their new expiry.
    async fn purge_expired(&self, now: i64) -> Result<u64, StoreError> {
        let queue = self.expiring_key();
        let mut purged = 0;
        loop {
            let mut conn = self.conn.clone();
            let key = queue.clone();
            let batch: Vec<String> = self
                .run(async move {
                    ::redis::cmd("ZRANGEBYSCORE")
                        .arg(key)
                        .arg("-inf")
                        .arg(now)
                        .arg("LIMIT")
                        .arg(0)
                        .arg(Self::PURGE_BATCH)
                        .query_async(&mut conn)
                        .await
                })
                .await?;
            let mut done = Vec::new();
            let mut requeue = Vec::new();
            for member in &batch {
                let parsed = member
                    .split_once(':')
                    .and_then(|(user, id)| Some((UserId::parse(user)?, SessionId::parse(id)?)));
                let Some((user, id)) = parsed else {
                    // Not an entry this build writes; the queue is only
                    // bookkeeping, so drop it rather than stall every purge.
                    done.push(member);
                    continue;
                };
                let mut invocation = PURGE.key(self.session_key(user, id));
                invocation.key(self.index_key(user)).arg(now).arg(id.to_string());
                let mut conn = self.conn.clone();
                let outcome: String = self
                    .run(async move { invocation.invoke_async(&mut conn).await })
                    .await?;
                match outcome.as_str() {
                    "purged" => {
                        purged += 1;
                        done.push(member);
                    }
                    "gone" => done.push(member),
                    expires_at => match expires_at.parse::<i64>() {
                        Ok(expires_at) if expires_at > now => requeue.push((expires_at, member)),
                        _ => {
                            return Err(StoreError::Corrupt(
                                "redis: the purge script answered no outcome".into(),
                            ))
                        }
                    },
                }
            }
            if !done.is_empty() || !requeue.is_empty() {
                let mut pipe = ::redis::pipe();
                if !done.is_empty() {
                    pipe.cmd("ZREM").arg(&queue).arg(&done).ignore();
                }
                if !requeue.is_empty() {
                    pipe.cmd("ZADD").arg(&queue).arg(&requeue).ignore();
                }
                let mut conn = self.conn.clone();
                self.run(async move { pipe.query_async::<()>(&mut conn).await }).await?;
            }
            // Every entry handled left the range (removed, or requeued after
            // `now`), so the next round sees new ones only.
            if batch.len() < Self::PURGE_BATCH {
                return Ok(purged);
            }
        }
    }

    /// Sessions are keyed by user, so this pages through the tenant's users
    /// in the [`UserStore`] and revokes each one's sessions, a page of users
    /// at a time concurrently.
    async fn revoke_tenant_sessions(&self, tenant: TenantId) -> Result<u64, StoreError> {
        let mut revoked = 0;
        let mut after = None;
        loop {
            let page = self
                .users
                .user_ids_in_tenant(tenant, after, Self::REVOKE_TENANT_PAGE)
                .await?;
            let Some(last) = page.last() else {
                return Ok(revoked);
            };
            after = Some(*last);
            let mut revoking = tokio::task::JoinSet::new();
            for user in page {
                let store = self.clone();
                revoking.spawn(async move { store.revoke_all_sessions(user).await });
            }
            while let Some(done) = revoking.join_next().await {
                revoked += done.map_err(StoreError::unavailable)??.len() as u64;
            }
        }
    }
}

impl RedisSessionStore {
    /// Stream entries read per `XRANGE`.
    const REVOCATION_PAGE: usize = 1000;
    /// How much longer than its revocation lives a stream entry is kept:
    /// the stream is trimmed by Redis's clock, the revocations expire by the
    /// instances', and they may differ a little.
    const REVOCATION_KEEP_MARGIN_MS: i64 = 60_000;
}

#[async_trait::async_trait]
impl RevocationStore for RedisSessionStore {
    async fn record_revocations(&self, sessions: &[SessionId], now: i64, expires_at: i64) -> Result<(), StoreError> {
        if sessions.is_empty() {
            return Ok(());
        }
        let keep_ms = expires_at
            .saturating_sub(now)
            .max(1)
            .saturating_mul(1000)
            .saturating_add(Self::REVOCATION_KEEP_MARGIN_MS);
        let mut invocation = RECORD_REVOCATIONS.key(self.revocations_key());
        invocation.arg(self.revocations_channel()).arg(keep_ms);
        for payload in revocation_announcements(sessions, expires_at) {
            invocation.arg(payload);
        }
        let mut conn = self.conn.clone();
        self.run(async move { invocation.invoke_async::<String>(&mut conn).await })
            .await?;
        Ok(())
    }

    async fn revocations_since(
        &self,
        since: Option<&RevocationCursor>,
        now: i64,
    ) -> Result<RevocationPage, StoreError> {
        // Stream ids only grow, and an entry is visible as soon as it is
        // added: reading on from the last id seen misses nothing.
        let mut last = since.map(|c| c.0.clone()).filter(|id| is_stream_id(id));
        let mut revocations = Vec::new();
        loop {
            let start = last.as_ref().map_or_else(|| "-".to_owned(), |id| format!("({id}"));
            let mut conn = self.conn.clone();
            let key = self.revocations_key();
            let entries: Vec<(String, Vec<String>)> = self
                .run(async move {
                    ::redis::cmd("XRANGE")
                        .arg(key)
                        .arg(start)
                        .arg("+")
                        .arg("COUNT")
                        .arg(Self::REVOCATION_PAGE)
                        .query_async(&mut conn)
                        .await
                })
                .await?;
            let full = entries.len() == Self::REVOCATION_PAGE;
            for (id, fields) in entries {
                // Fields come as name, value pairs; the one tessera writes is `r`.
                for pair in fields.chunks_exact(2) {
                    if pair[0] == "r" {
                        let revoked = parse_revocation_announcement(&pair[1]).ok_or_else(|| {
                            StoreError::Corrupt("redis: a revocation stream entry is not one tessera writes".to_owned())
                        })?;
                        revocations.extend(revoked.into_iter().filter(|r| r.expires_at > now));
                    }
                }
                last = Some(id);
            }
            if !full {
                break;
            }
        }
        Ok(RevocationPage {
            revocations,
            cursor: RevocationCursor(last.unwrap_or_else(|| "0-0".to_owned())),
        })
    }

    /// The stream trims itself as revocations are recorded (and expires
    /// when none has been for a revocation's lifetime): nothing to do.
    async fn purge_revocations(&self, _now: i64) -> Result<u64, StoreError> {
        Ok(0)
    }

    async fn listen_revocations(&self) -> Result<Option<Box<dyn RevocationListener>>, StoreError> {
        let mut listener = RedisRevocationListener {
            nodes: self.nodes.clone(),
            channel: self.revocations_channel(),
            connect_timeout: self.connect_timeout,
            command_timeout: self.command_timeout,
            next_node: 0,
            subscription: None,
        };
        listener.subscribe().await?;
        Ok(Some(Box::new(listener)))
    }
}

/// Whether `id` looks like a stream id (`<ms>-<seq>`); a cursor of another
/// backend reads the whole record instead.
fn is_stream_id(id: &str) -> bool {
    id.split_once('-')
        .is_some_and(|(ms, seq)| ms.parse::<u64>().is_ok() && seq.parse::<u64>().is_ok())
}

/// [`RevocationListener`] for Redis: `SUBSCRIBE <prefix>revocations` on a
/// connection of its own (subscribed connections can do nothing else). On a
/// cluster it subscribes through one node, the next one after a failure:
/// every node hears every `PUBLISH`.
struct RedisRevocationListener {
    nodes: Arc<[String]>,
    channel: String,
    connect_timeout: Duration,
    command_timeout: Duration,
    next_node: usize,
    /// `None` after a failure: the next call subscribes anew.
    subscription: Option<(::redis::aio::PubSubSink, ::redis::aio::PubSubStream)>,
}

impl RedisRevocationListener {
    async fn subscribe(&mut self) -> Result<(), StoreError> {
        let node = self
            .nodes
            .get(self.next_node % self.nodes.len().max(1))
            .cloned()
            .ok_or_else(|| StoreError::Corrupt("redis: no node to subscribe through".to_owned()))?;
        self.next_node = self.next_node.wrapping_add(1);
        let client = ::redis::Client::open(node.as_str()).map_err(map_err)?;
        let pubsub = within(self.connect_timeout, client.get_async_pubsub()).await?;
        let (mut sink, stream) = pubsub.split();
        let channel = self.channel.clone();
        within(self.command_timeout, async move {
            sink.subscribe(channel).await.map(|()| sink)
        })
        .await
        .map(|sink| self.subscription = Some((sink, stream)))
    }
}

#[async_trait::async_trait]
impl RevocationListener for RedisRevocationListener {
    async fn next(&mut self) -> Result<RevocationEvent, StoreError> {
        use futures_util::StreamExt as _;
        loop {
            let Some((sink, stream)) = self.subscription.as_mut() else {
                self.subscribe().await?;
                // Whatever was announced while there was no subscription is lost.
                return Ok(RevocationEvent::Missed);
            };
            match tokio::time::timeout(REVOCATION_LISTENER_PING_EVERY, stream.next()).await {
                Ok(Some(message)) => {
                    let payload: Option<String> = message.get_payload().ok();
                    return Ok(match payload.as_deref().and_then(parse_revocation_announcement) {
                        Some(revoked) => RevocationEvent::Revoked(revoked),
                        None => RevocationEvent::Missed,
                    });
                }
                // The connection is gone.
                Ok(None) => {
                    self.subscription = None;
                    return Err(StoreError::unavailable(io::Error::new(
                        io::ErrorKind::ConnectionAborted,
                        "the Redis connection of the revocation listener closed",
                    )));
                }
                // Quiet for a while: make sure the connection is still there.
                Err(_) => {
                    if let Err(err) = within(self.command_timeout, sink.ping::<()>()).await {
                        self.subscription = None;
                        return Err(err);
                    }
                }
            }
        }
    }
}

#[async_trait::async_trait]
impl Health for RedisSessionStore {
    async fn ping(&self) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        self.run(async move { ::redis::cmd("PING").query_async::<()>(&mut conn).await })
            .await
    }
}
