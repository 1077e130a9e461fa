//! Password hashing off the async runtime, with bounded concurrency.
//!
//! Argon2id takes tens of milliseconds and the configured memory (19 MiB by
//! default; an imported hash at most 64 MiB) per hash. Run on the async
//! workers it would stall every other request; run unbounded, a login flood
//! would exhaust memory. So hashes run on the blocking pool, at most
//! `concurrency` at once; up to `queue` more wait, and beyond that (or after
//! waiting too long) the request gets 503 with `Retry-After`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;
use tessera_core::{HashError, HashMemory, Password, PasswordHasher, PasswordVerdict};
use tokio::sync::Semaphore;

/// Why a hashing job did not run.
#[derive(Debug, thiserror::Error)]
pub enum HashPoolError {
    #[error("password hashing is saturated")]
    Busy,
    #[error(transparent)]
    Hash(#[from] HashError),
    #[error("password hashing task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

#[derive(Clone)]
pub struct HashPool {
    inner: Arc<Inner>,
}

struct Inner {
    hasher: PasswordHasher,
    /// One working buffer per hashing slot, reused: at most `concurrency` exist.
    memory: Mutex<Vec<HashMemory>>,
    /// Owned permits travel into the blocking task: a request cancelled by a
    /// disconnecting client must not free its slot while its hash still runs.
    permits: Arc<Semaphore>,
    waiting: AtomicUsize,
    max_waiting: usize,
    max_wait: Duration,
}

impl HashPool {
    pub fn new(hasher: PasswordHasher, concurrency: usize, queue: usize) -> Self {
        Self::with_max_wait(hasher, concurrency, queue, Duration::from_secs(10))
    }

    /// Like [`HashPool::new`], with a job waiting at most `max_wait` for a slot.
    pub fn with_max_wait(hasher: PasswordHasher, concurrency: usize, queue: usize, max_wait: Duration) -> Self {
        Self {
            inner: Arc::new(Inner {
                hasher,
                memory: Mutex::new(Vec::new()),
                permits: Arc::new(Semaphore::new(concurrency.max(1))),
                waiting: AtomicUsize::new(0),
                max_waiting: queue,
                max_wait,
            }),
        }
    }

    /// A place for one password check: a free slot, or a place in the
    /// queue; `Busy` at once when there is neither. See [`Ticket::ready`].
    pub fn ticket(&self) -> Result<Ticket, HashPoolError> {
        let inner = &self.inner;
        if let Ok(permit) = Arc::clone(&inner.permits).try_acquire_owned() {
            return Ok(Ticket {
                pool: self.clone(),
                place: Place::Slot(permit),
            });
        }
        let queued = inner.waiting.fetch_add(1, Ordering::AcqRel);
        let place = Place::Queue(QueuePlace(Arc::clone(inner)));
        if queued >= inner.max_waiting {
            return Err(HashPoolError::Busy);
        }
        Ok(Ticket {
            pool: self.clone(),
            place,
        })
    }

    pub async fn hash(&self, password: Password) -> Result<String, HashPoolError> {
        self.run(move |h, mem| h.hash(&password, mem))
            .await?
            .map_err(HashPoolError::from)
    }

    /// `stored` is `None` for an unknown user: the same work is done.
    pub async fn verify(&self, password: Password, stored: Option<String>) -> Result<PasswordVerdict, HashPoolError> {
        self.run(move |h, mem| h.verify(&password, stored.as_deref(), mem))
            .await
    }

    async fn run<T, F>(&self, job: F) -> Result<T, HashPoolError>
    where
        F: FnOnce(&PasswordHasher, &mut HashMemory) -> T + Send + 'static,
        T: Send + 'static,
    {
        self.ticket()?.run(job).await
    }
}

/// A place in the [`HashPool`] for one job, from [`HashPool::ticket`].
pub struct Ticket {
    pool: HashPool,
    place: Place,
}

enum Place {
    Slot(tokio::sync::OwnedSemaphorePermit),
    /// Counted in `waiting` until dropped.
    Queue(QueuePlace),
}

struct QueuePlace(Arc<Inner>);

impl Drop for QueuePlace {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Ticket {
    /// Waits (up to the queue's limit) until this ticket holds a hashing
    /// slot; `Busy` if it does not get one in time. A login waits here
    /// before it is counted against its account, so a check that never
    /// runs costs the account nothing.
    pub async fn ready(self) -> Result<Ticket, HashPoolError> {
        let permit = match self.place {
            Place::Slot(permit) => permit,
            Place::Queue(place) => {
                let inner = &self.pool.inner;
                let waited = tokio::time::timeout(inner.max_wait, Arc::clone(&inner.permits).acquire_owned()).await;
                drop(place);
                match waited {
                    Ok(Ok(permit)) => permit,
                    _ => return Err(HashPoolError::Busy),
                }
            }
        };
        Ok(Ticket {
            pool: self.pool,
            place: Place::Slot(permit),
        })
    }

    /// Checks `password` against `stored` (`None` for an unknown user: the
    /// same work is done) in this ticket's place.
    pub async fn verify(self, password: Password, stored: Option<String>) -> Result<PasswordVerdict, HashPoolError> {
        self.run(move |h, mem| h.verify(&password, stored.as_deref(), mem))
            .await
    }

    async fn run<T, F>(self, job: F) -> Result<T, HashPoolError>
    where
        F: FnOnce(&PasswordHasher, &mut HashMemory) -> T + Send + 'static,
        T: Send + 'static,
    {
        let ready = self.ready().await?;
        let Place::Slot(permit) = ready.place else {
            return Err(HashPoolError::Busy);
        };
        let this = Arc::clone(&ready.pool.inner);
        let result = tokio::task::spawn_blocking(move || {
            let spare = this.memory.lock().ok().and_then(|mut spares| spares.pop());
            let mut memory = spare.unwrap_or_else(|| this.hasher.memory());
            let out = job(&this.hasher, &mut memory);
            if let Ok(mut spares) = this.memory.lock() {
                spares.push(memory);
            }
            drop(permit);
            out
        })
        .await;
        Ok(result?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_core::HashParams;

    fn pool(concurrency: usize, queue: usize) -> HashPool {
        HashPool::new(PasswordHasher::new(HashParams::default()).unwrap(), concurrency, queue)
    }

    fn pw() -> Password {
        Password::parse("correct horse battery".to_owned()).unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn flood_beyond_the_queue_is_refused_not_queued_forever() {
        let pool = pool(1, 2);
        let jobs: Vec<_> = (0..12)
            .map(|_| {
                tokio::spawn({
                    let pool = pool.clone();
                    async move { pool.verify(pw(), None).await }
                })
            })
            .collect();
        let mut busy = 0;
        let mut done = 0;
        for job in jobs {
            match job.await.unwrap() {
                Ok(PasswordVerdict::Invalid) => done += 1,
                Err(HashPoolError::Busy) => busy += 1,
                other => panic!("unexpected {other:?}"),
            }
        }
        assert!(busy >= 1, "some of the flood must be refused");
        assert!(done >= 3, "the running job and the queue must complete, got {done}");
        assert_eq!(pool.inner.waiting.load(Ordering::Acquire), 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn cancelled_requests_keep_their_slot_until_the_hash_ends() {
        let pool = pool(1, 0);
        let first = tokio::spawn({
            let pool = pool.clone();
            async move { pool.verify(pw(), None).await }
        });
        tokio::time::sleep(Duration::from_millis(5)).await;
        first.abort();
        // The aborted request's hash is still running: no slot, no queue.
        assert!(matches!(pool.verify(pw(), None).await, Err(HashPoolError::Busy)));
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(pool.verify(pw(), None).await.is_ok());
        assert!(pool.inner.memory.lock().unwrap().len() <= 1, "one slot, one buffer");
    }

    #[tokio::test]
    async fn hash_then_verify_through_the_pool() {
        let pool = pool(2, 8);
        let hash = pool.hash(pw()).await.unwrap();
        assert_eq!(
            pool.verify(pw(), Some(hash)).await.unwrap(),
            PasswordVerdict::Valid { needs_rehash: false }
        );
    }
}
