//! The JWKS cache: tessera's public keys, fetched over HTTP, held in memory,
//! refreshed when stale, refetched (rate-limited) for an unknown kid.
//!
//! Verification reads an `Arc<KeySet>` under a read lock held for the
//! length of a pointer copy; a fetch builds a whole new set and swaps it in.
//! At most one fetch is in flight (the `fetch_lock`), every fetch runs in
//! its own task (a cancelled request cannot abandon it half-way), and
//! fetches start at most once per `min_refetch` whatever triggers them.
//! A failed fetch changes nothing but the `last_failed` flag.

use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, AGE, CACHE_CONTROL, ETAG, IF_NONE_MATCH};
use reqwest::{StatusCode, Url};
use serde::Deserialize as _;
use tessera_token::{Jwk, Key, KeySet, TokenKind};
use tokio::sync::OwnedMutexGuard;

use crate::error::{BuildError, FetchError};

/// Largest JWKS response read, in bytes; a larger one is a failed fetch.
pub const MAX_JWKS_BYTES: usize = 1024 * 1024;

/// How long a JWKS without `Cache-Control: max-age` is fresh (at most the
/// verifier's `max_cache_age`).
pub const DEFAULT_CACHE_AGE: Duration = Duration::from_secs(300);

pub(crate) struct JwksSettings {
    pub url: String,
    pub http_timeout: Duration,
    pub min_refetch: Duration,
    pub max_cache_age: Duration,
}

pub(crate) struct Jwks {
    url: Url,
    /// The URL with any password replaced, for messages.
    shown_url: String,
    client: reqwest::Client,
    min_refetch: Duration,
    max_cache_age: Duration,
    snapshot: RwLock<Snapshot>,
    attempts: Mutex<Attempts>,
    /// Held by the one fetch in flight; unknown-kid callers wait on it.
    fetch_lock: Arc<tokio::sync::Mutex<()>>,
    /// Kids tessera published once and has since withdrawn (bounded).
    withdrawn: Mutex<std::collections::HashSet<String>>,
}

struct Snapshot {
    keys: Arc<KeySet>,
    etag: Option<HeaderValue>,
    fetched_at: Instant,
    ttl: Duration,
}

#[derive(Default)]
struct Attempts {
    /// When the last fetch after the first one started.
    last: Option<Instant>,
    /// Whether the last fetch failed.
    last_failed: bool,
}

enum Fetched {
    Modified {
        keys: KeySet,
        etag: Option<HeaderValue>,
        ttl: Duration,
    },
    NotModified {
        ttl: Duration,
    },
}

impl Jwks {
    /// Checks the URL, builds the client and fetches the key set once.
    pub(crate) async fn connect(settings: JwksSettings) -> Result<Arc<Self>, BuildError> {
        let shown_url = redact(&settings.url);
        let url = Url::parse(&settings.url).map_err(|_| BuildError::InvalidUrl {
            url: shown_url.clone(),
            reason: "it does not parse as an absolute URL (e.g. http://127.0.0.1:8080/.well-known/jwks.json)",
        })?;
        match url.scheme() {
            "http" => {}
            "https" if cfg!(feature = "rustls") => {}
            "https" => return Err(BuildError::TlsUnavailable { url: shown_url }),
            _ => {
                return Err(BuildError::InvalidUrl {
                    url: shown_url,
                    reason: "the scheme must be http or https",
                })
            }
        }
        let shown_url = redact(url.as_str());
        let client = reqwest::Client::builder()
            .timeout(settings.http_timeout)
            .connect_timeout(settings.http_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("tessera-verify/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|err| BuildError::HttpClient(err.without_url().to_string()))?;
        let jwks = Self {
            url,
            shown_url,
            client,
            min_refetch: settings.min_refetch,
            max_cache_age: settings.max_cache_age,
            snapshot: RwLock::new(Snapshot {
                keys: Arc::new(KeySet::new()),
                etag: None,
                fetched_at: Instant::now(),
                ttl: Duration::ZERO,
            }),
            attempts: Mutex::new(Attempts::default()),
            fetch_lock: Arc::new(tokio::sync::Mutex::new(())),
            withdrawn: Mutex::new(std::collections::HashSet::new()),
        };
        let fetch_error = |source| BuildError::Fetch {
            url: jwks.shown_url.clone(),
            source,
        };
        match jwks.fetch(None).await {
            Ok(Fetched::Modified { keys, etag, ttl }) => {
                if keys.is_empty() {
                    return Err(BuildError::NoKeys {
                        url: jwks.shown_url.clone(),
                    });
                }
                tracing::info!(url = %jwks.shown_url, keys = keys.len(), "fetched tessera's JWKS");
                jwks.store(keys, etag, ttl);
            }
            // Nothing was cached, so nothing was asked conditionally.
            Ok(Fetched::NotModified { .. }) => return Err(fetch_error(FetchError::Status { status: 304 })),
            Err(err) => return Err(fetch_error(err)),
        }
        Ok(Arc::new(jwks))
    }

    /// The keys to verify with now. If they are stale (older than their
    /// max-age), starts a refresh in the background: this call and those
    /// after it keep verifying with these keys until it lands.
    pub(crate) fn keys(self: &Arc<Self>) -> Arc<KeySet> {
        let (keys, stale) = {
            let snapshot = self.snapshot.read().unwrap_or_else(PoisonError::into_inner);
            (snapshot.keys.clone(), snapshot.fetched_at.elapsed() >= snapshot.ttl)
        };
        if stale {
            self.start_fetch();
        }
        keys
    }

    /// The keys, without any refresh.
    pub(crate) fn current(&self) -> Arc<KeySet> {
        self.snapshot
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .keys
            .clone()
    }

    /// For a token whose kid is not in the set: starts a fetch unless one
    /// started less than `min_refetch` ago, and waits for the fetch in
    /// flight (this one or another caller's) to finish. Then the caller
    /// verifies again with [`Jwks::current`].
    pub(crate) async fn refetch_for_unknown_kid(self: &Arc<Self>) {
        self.start_fetch();
        drop(self.fetch_lock.lock().await);
    }

    /// Whether the last fetch failed (so an unknown kid may be a key that
    /// could not be loaded, rather than no key at all).
    pub(crate) fn last_fetch_failed(&self) -> bool {
        self.attempts.lock().unwrap_or_else(PoisonError::into_inner).last_failed
    }

    pub(crate) fn key_count(&self) -> usize {
        self.current().len()
    }

    pub(crate) fn shown_url(&self) -> &str {
        &self.shown_url
    }

    /// Spawns a fetch if none is in flight and none started within
    /// `min_refetch`.
    fn start_fetch(self: &Arc<Self>) {
        let Ok(guard) = self.fetch_lock.clone().try_lock_owned() else {
            return; // one is in flight
        };
        {
            let mut attempts = self.attempts.lock().unwrap_or_else(PoisonError::into_inner);
            let now = Instant::now();
            if attempts
                .last
                .is_some_and(|last| now.saturating_duration_since(last) < self.min_refetch)
            {
                return;
            }
            attempts.last = Some(now);
        }
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                let jwks = Arc::clone(self);
                runtime.spawn(async move { jwks.refresh(guard).await });
            }
            Err(_) => tracing::warn!("not on a tokio runtime: cannot refresh tessera's JWKS"),
        }
    }

    /// One refresh, under the fetch lock. Never drops the cached keys on a
    /// failure.
    async fn refresh(&self, _in_flight: OwnedMutexGuard<()>) {
        let etag = self
            .snapshot
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .etag
            .clone();
        let result = self.fetch(etag.as_ref()).await;
        let failed = result.is_err();
        match result {
            Ok(Fetched::Modified { keys, etag, ttl }) => {
                if keys.is_empty() {
                    tracing::warn!(url = %self.shown_url, "tessera's JWKS now has no keys (HS256?): every token will be refused");
                } else {
                    tracing::debug!(url = %self.shown_url, keys = keys.len(), "refreshed tessera's JWKS");
                }
                self.store(keys, etag, ttl);
            }
            Ok(Fetched::NotModified { ttl }) => {
                let mut snapshot = self.snapshot.write().unwrap_or_else(PoisonError::into_inner);
                snapshot.fetched_at = Instant::now();
                snapshot.ttl = ttl;
                tracing::debug!(url = %self.shown_url, "tessera's JWKS is unchanged");
            }
            Err(err) => {
                let cached = self.current().len();
                tracing::warn!(
                    url = %self.shown_url,
                    error = %err,
                    cached_keys = cached,
                    "could not refresh tessera's JWKS; still verifying with the cached keys"
                );
            }
        }
        self.attempts.lock().unwrap_or_else(PoisonError::into_inner).last_failed = failed;
    }

    /// Whether tessera published `kid` once and has withdrawn it since.
    pub(crate) fn was_withdrawn(&self, kid: &str) -> bool {
        self.withdrawn
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(kid)
    }

    fn store(&self, keys: KeySet, etag: Option<HeaderValue>, ttl: Duration) {
        let mut snapshot = self.snapshot.write().unwrap_or_else(PoisonError::into_inner);
        {
            const MAX_WITHDRAWN: usize = 10_000;
            let mut withdrawn = self.withdrawn.lock().unwrap_or_else(PoisonError::into_inner);
            for key in snapshot.keys.iter().filter(|key| !keys.contains(key.kid())) {
                if withdrawn.len() >= MAX_WITHDRAWN {
                    withdrawn.clear();
                }
                withdrawn.insert(key.kid().to_owned());
            }
        }
        *snapshot = Snapshot {
            keys: Arc::new(keys),
            etag,
            fetched_at: Instant::now(),
            ttl,
        };
    }

    /// One GET of the key set, conditional when `etag` is known.
    async fn fetch(&self, etag: Option<&HeaderValue>) -> Result<Fetched, FetchError> {
        let mut request = self
            .client
            .get(self.url.clone())
            .header(ACCEPT, "application/jwk-set+json, application/json");
        if let Some(etag) = etag {
            request = request.header(IF_NONE_MATCH, etag.clone());
        }
        let mut response = request.send().await.map_err(request_error)?;
        let status = response.status();
        let ttl = cache_ttl(response.headers(), self.max_cache_age);
        if status == StatusCode::NOT_MODIFIED && etag.is_some() {
            return Ok(Fetched::NotModified { ttl });
        }
        if status != StatusCode::OK {
            return Err(FetchError::Status {
                status: status.as_u16(),
            });
        }
        let etag = response.headers().get(ETAG).cloned();
        if response.content_length().is_some_and(|len| len > MAX_JWKS_BYTES as u64) {
            return Err(FetchError::TooLarge);
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(request_error)? {
            if body.len() + chunk.len() > MAX_JWKS_BYTES {
                return Err(FetchError::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        let keys = parse_key_set(&body, &self.shown_url)?;
        Ok(Fetched::Modified { keys, etag, ttl })
    }
}

/// The usable keys of a JWK set. A key that does not parse, or that
/// [`Key::from_jwk`] refuses (unsupported `kty`/`alg`, weak, not for
/// signatures, duplicate kid), is skipped with a warning. A set that lists
/// keys of which none is usable is an error, so that a broken document does
/// not replace good cached keys; an empty set (`{"keys":[]}`) is not.
fn parse_key_set(body: &[u8], url: &str) -> Result<KeySet, FetchError> {
    let document: serde_json::Value =
        serde_json::from_slice(body).map_err(|err| FetchError::NotJson(err.to_string()))?;
    let Some(serde_json::Value::Array(entries)) = document.get("keys") else {
        return Err(FetchError::NotAJwkSet);
    };
    let listed = entries.len();
    let mut keys = KeySet::with_capacity(listed);
    for (index, entry) in entries.iter().enumerate() {
        let kid = entry.get("kid").and_then(serde_json::Value::as_str).unwrap_or("");
        let jwk = match Jwk::deserialize(entry) {
            Ok(jwk) => jwk,
            Err(err) => {
                tracing::warn!(url, index, kid, error = %err, "skipping a JWK that does not parse");
                continue;
            }
        };
        let key = match Key::from_jwk(TokenKind::Access, &jwk) {
            Ok(key) => key,
            Err(err) => {
                tracing::warn!(url, index, kid, kty = %jwk.kty, alg = ?jwk.alg, error = %err, "skipping an unusable JWK");
                continue;
            }
        };
        if let Err(err) = keys.insert(key) {
            tracing::warn!(url, index, kid, error = %err, "skipping a JWK");
        }
    }
    if listed > 0 && keys.is_empty() {
        return Err(FetchError::NoUsableKeys { listed });
    }
    Ok(keys)
}

/// How long a response is fresh: its `max-age` (less its `Age`), zero for
/// `no-cache`/`no-store`, [`DEFAULT_CACHE_AGE`] without either; at most
/// `max_cache_age`.
fn cache_ttl(headers: &HeaderMap, max_cache_age: Duration) -> Duration {
    let mut max_age: Option<u64> = None;
    let mut no_cache = false;
    for value in headers.get_all(CACHE_CONTROL) {
        let Ok(value) = value.to_str() else { continue };
        for directive in value.split(',') {
            let (name, argument) = match directive.split_once('=') {
                Some((name, argument)) => (name.trim(), Some(argument.trim().trim_matches('"'))),
                None => (directive.trim(), None),
            };
            if name.eq_ignore_ascii_case("max-age") {
                if let Some(secs) = argument.and_then(|a| a.parse::<u64>().ok()) {
                    max_age = Some(max_age.map_or(secs, |seen| seen.min(secs)));
                }
            } else if name.eq_ignore_ascii_case("no-cache") || name.eq_ignore_ascii_case("no-store") {
                no_cache = true;
            }
        }
    }
    let age = headers
        .get(AGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(0);
    let ttl = if no_cache {
        Duration::ZERO
    } else {
        max_age.map_or(DEFAULT_CACHE_AGE, |secs| Duration::from_secs(secs.saturating_sub(age)))
    };
    ttl.min(max_cache_age)
}

fn request_error(err: reqwest::Error) -> FetchError {
    if err.is_timeout() {
        return FetchError::Timeout;
    }
    // The URL is reported separately (redacted); the cause chain says why.
    let err = err.without_url();
    let mut message = err.to_string();
    let mut source = std::error::Error::source(&err);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    FetchError::Request(message)
}

/// `url` with its password, if any, replaced by `***`.
fn redact(url: &str) -> String {
    match Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            if parsed.set_password(Some("***")).is_ok() {
                parsed.to_string()
            } else {
                "<the JWKS URL>".to_owned()
            }
        }
        Ok(_) => url.to_owned(),
        // Cannot tell what in it is secret.
        Err(_) if url.contains('@') => "<the JWKS URL>".to_owned(),
        Err(_) => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn cache_control_is_read() {
        let cap = Duration::from_secs(3600);
        assert_eq!(cache_ttl(&headers(&[]), cap), DEFAULT_CACHE_AGE);
        assert_eq!(
            cache_ttl(&headers(&[("cache-control", "public, max-age=60")]), cap),
            Duration::from_secs(60)
        );
        assert_eq!(
            cache_ttl(&headers(&[("cache-control", "Max-Age=\"60\"")]), cap),
            Duration::from_secs(60)
        );
        assert_eq!(
            cache_ttl(&headers(&[("cache-control", "max-age=60"), ("age", "50")]), cap),
            Duration::from_secs(10)
        );
        assert_eq!(cache_ttl(&headers(&[("cache-control", "max-age=99999")]), cap), cap);
        assert_eq!(
            cache_ttl(&headers(&[("cache-control", "no-cache, max-age=60")]), cap),
            Duration::ZERO
        );
        assert_eq!(
            cache_ttl(&headers(&[("cache-control", "max-age=abc")]), cap),
            DEFAULT_CACHE_AGE
        );
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(redact("http://u:pw@host/jwks"), "http://u:***@host/jwks");
        assert_eq!(redact("http://host/jwks"), "http://host/jwks");
        assert_eq!(redact("nonsense@x"), "<the JWKS URL>");
    }

    #[test]
    fn key_set_documents() {
        assert!(matches!(parse_key_set(b"<html>", "u"), Err(FetchError::NotJson(_))));
        assert!(matches!(
            parse_key_set(b"{\"kids\":[]}", "u"),
            Err(FetchError::NotAJwkSet)
        ));
        assert!(matches!(parse_key_set(b"[1]", "u"), Err(FetchError::NotAJwkSet)));
        assert!(parse_key_set(b"{\"keys\":[]}", "u").unwrap().is_empty());
        assert!(matches!(
            parse_key_set(
                br#"{"keys":[{"kty":"oct","kid":"a","alg":"HS256","k":"AAAA"}, 7]}"#,
                "u"
            ),
            Err(FetchError::NoUsableKeys { listed: 2 })
        ));
    }
}
