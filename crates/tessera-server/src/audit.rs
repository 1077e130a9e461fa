//! The audit log: who did what to which account, when, from where.
//!
//! Handlers record events without waiting for the database: events go into a
//! bounded queue, and one task writes them in batches (one multi-row insert
//! per batch). A login or a refresh therefore pays nothing for its audit
//! line, and a burst of a thousand refreshes costs a handful of inserts.
//! Reading the log through this instance first flushes the queue, so a
//! client reads its own events. What the queue cannot take (the store down
//! for long, the queue full) is counted and reported in the log, never
//! allowed to fail the request that caused it.

use crate::http::extract::ClientMeta;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tessera_core::{SessionId, TenantId, UserId};
use tessera_store::{AuditStore, NewAuditEvent};
use tokio::sync::{mpsc, oneshot};

/// Events waiting to be written; past this, new events are dropped (and counted).
const QUEUE: usize = 20_000;
/// Events per insert.
const BATCH: usize = 500;
/// How long the writer gathers events before an insert.
const LINGER: std::time::Duration = std::time::Duration::from_millis(50);

/// The event types of the contract.
pub mod event {
    pub const USER_REGISTERED: &str = "user.registered";
    pub const LOGIN_SUCCEEDED: &str = "login.succeeded";
    pub const LOGIN_FAILED: &str = "login.failed";
    /// A failed password check locked its account (rate limits).
    pub const LOGIN_LOCKED: &str = "login.locked";
    pub const TOKEN_REFRESHED: &str = "token.refreshed";
    pub const REFRESH_REUSED: &str = "refresh.reused";
    pub const SESSION_REVOKED: &str = "session.revoked";
    pub const LOGOUT: &str = "logout";
    pub const KEYS_ROTATED: &str = "keys.rotated";
    pub const TENANT_CREATED: &str = "tenant.created";
    pub const PASSWORD_RESET_REQUESTED: &str = "password.reset_requested";
    pub const PASSWORD_RESET: &str = "password.reset";
    pub const PASSWORD_CHANGED: &str = "password.changed";
    pub const EMAIL_VERIFIED: &str = "email.verified";
    pub const ROLE_CHANGED: &str = "role.changed";
    /// `tessera user import`: counts in the detail, no per-user events.
    pub const USERS_IMPORTED: &str = "users.imported";
}

/// One event, built by a handler.
pub struct Event {
    inner: NewAuditEvent,
}

impl Event {
    pub fn new(kind: &'static str, tenant: TenantId, at: i64) -> Self {
        Self {
            inner: NewAuditEvent {
                tenant,
                at,
                kind: kind.to_owned(),
                user: None,
                session: None,
                ip: None,
                user_agent: None,
                detail: None,
            },
        }
    }

    pub fn user(mut self, user: UserId) -> Self {
        self.inner.user = Some(user);
        self
    }

    pub fn session(mut self, session: SessionId) -> Self {
        self.inner.session = Some(session);
        self
    }

    pub fn client(mut self, client: &ClientMeta) -> Self {
        self.inner.ip.clone_from(&client.ip);
        self.inner.user_agent.clone_from(&client.user_agent);
        self
    }

    /// A JSON object with what else matters (never a secret, password or token).
    pub fn detail(mut self, detail: serde_json::Value) -> Self {
        self.inner.detail = Some(detail.to_string());
        self
    }
}

enum Message {
    Event(NewAuditEvent),
    Flush(oneshot::Sender<()>),
}

#[derive(Clone)]
pub struct AuditLog {
    queue: mpsc::Sender<Message>,
    dropped: Arc<AtomicU64>,
}

impl AuditLog {
    /// Starts the writer task on the current runtime.
    pub fn start(store: Arc<dyn AuditStore>) -> Self {
        let (queue, rx) = mpsc::channel(QUEUE);
        let dropped = Arc::new(AtomicU64::new(0));
        tokio::spawn(write_events(store, rx, dropped.clone()));
        Self { queue, dropped }
    }

    /// Queues an event; never waits.
    pub fn record(&self, event: Event) {
        if self.queue.try_send(Message::Event(event.inner)).is_err() {
            let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if n.is_power_of_two() {
                tracing::error!(
                    dropped = n,
                    "audit events dropped: the audit queue is full (is the database down?)"
                );
            }
        }
    }

    /// Waits until every event queued before this call is written (or given up on).
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.queue.send(Message::Flush(done)).await.is_ok() {
            let _ = wait.await;
        }
    }
}

async fn write_events(store: Arc<dyn AuditStore>, mut rx: mpsc::Receiver<Message>, dropped: Arc<AtomicU64>) {
    let mut batch: Vec<NewAuditEvent> = Vec::with_capacity(BATCH);
    let mut waiting: Vec<oneshot::Sender<()>> = Vec::new();
    while let Some(first) = rx.recv().await {
        // Gather for a moment: under load that turns a stream of events into
        // a few large inserts instead of many small transactions competing
        // with the requests' own writes (SQLite has one writer). A flush
        // request ends the wait at once.
        let linger = tokio::time::sleep(LINGER);
        tokio::pin!(linger);
        let mut next = Some(first);
        while let Some(message) = next.take() {
            let flush = matches!(message, Message::Flush(_));
            match message {
                Message::Event(e) => batch.push(e),
                Message::Flush(done) => waiting.push(done),
            }
            if batch.len() >= BATCH {
                break;
            }
            next = match rx.try_recv() {
                Ok(message) => Some(message),
                Err(_) if flush || !waiting.is_empty() => None,
                Err(_) => tokio::select! {
                    message = rx.recv() => message,
                    () = &mut linger => None,
                },
            };
        }
        if !batch.is_empty() {
            write_batch(store.as_ref(), &mut batch, &dropped).await;
        }
        for done in waiting.drain(..) {
            let _ = done.send(());
        }
    }
}

/// Writes a batch, retrying a store that is down for a few seconds before
/// giving the batch up.
async fn write_batch(store: &dyn AuditStore, batch: &mut Vec<NewAuditEvent>, dropped: &AtomicU64) {
    let mut delay = Duration::from_millis(100);
    for attempt in 1..=5 {
        match store.append_audit(batch).await {
            Ok(()) => {
                batch.clear();
                return;
            }
            Err(err) if attempt < 5 => {
                tracing::warn!(error = %err, events = batch.len(), attempt, "cannot write audit events; retrying");
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
            Err(err) => {
                let n = batch.len() as u64;
                dropped.fetch_add(n, Ordering::Relaxed);
                tracing::error!(error = %err, events = n, "audit events lost: the store refused them");
            }
        }
    }
    batch.clear();
}

/// Deletes events older than the retention, hourly, in bounded batches.
pub async fn prune_audit(store: Arc<dyn AuditStore>, retention: Duration) {
    let retention = i64::try_from(retention.as_secs()).unwrap_or(i64::MAX);
    let mut tick = tokio::time::interval(Duration::from_secs(3600));
    loop {
        tick.tick().await;
        let cutoff = crate::tokens::unix_now().saturating_sub(retention);
        let mut total = 0u64;
        loop {
            match store.prune_audit(cutoff, 10_000).await {
                Ok(n) => {
                    total += n;
                    if n < 10_000 {
                        break;
                    }
                }
                Err(err) => {
                    tracing::warn!(error = %err, "could not prune the audit log");
                    break;
                }
            }
        }
        if total > 0 {
            tracing::info!(events = total, "pruned audit events past the retention");
        }
    }
}
