//! Request extractors that turn raw requests into checked values or an
//! [`ApiError`] with the contract's status: 415 for a non-JSON body, 413 past
//! the size limit, 400 for broken JSON, 422 for missing or invalid fields.

use super::error::{ApiError, ApiResult, FieldErrors};
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, FailedToBufferBody};
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};
use serde_json::{Map, Value};
use std::fmt::Display;
use std::net::SocketAddr;

/// The contract's request body limit.
pub const BODY_LIMIT: usize = 64 * 1024;

/// A JSON object body. Anything else is refused with the right status.
pub struct JsonObject(pub Map<String, Value>);

/// A body that may be absent (empty); when present it must be a JSON object.
pub struct OptionalJsonObject(pub Option<Map<String, Value>>);

/// Whether the body is JSON as it stands: a JSON media type, and no
/// `Content-Encoding` (a gzipped body would otherwise read as bad JSON).
fn is_json(headers: &HeaderMap) -> bool {
    let encoded = headers
        .get_all(header::CONTENT_ENCODING)
        .iter()
        .any(|v| !v.to_str().is_ok_and(|v| v.trim().eq_ignore_ascii_case("identity")));
    if encoded {
        return false;
    }
    let Some(value) = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let mime = value.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))
}

async fn read_body<S: Send + Sync>(req: Request, state: &S) -> ApiResult<Bytes> {
    // A declared length over the limit is refused before reading a byte (and
    // before hyper would send `100 Continue` inviting the upload).
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > BODY_LIMIT as u64) {
        return Err(ApiError::PayloadTooLarge);
    }
    Bytes::from_request(req, state)
        .await
        .map_err(|rejection| match rejection {
            BytesRejection::FailedToBufferBody(FailedToBufferBody::LengthLimitError(_)) => ApiError::PayloadTooLarge,
            _ => ApiError::InvalidRequest("the request body could not be read".to_owned()),
        })
}

fn parse_object(bytes: &[u8]) -> ApiResult<Map<String, Value>> {
    match serde_json::from_slice::<Body>(bytes) {
        Ok(Body::Object(map)) => Ok(map),
        Ok(Body::Other) => Err(ApiError::field("body", "must be a JSON object")),
        Err(e) if e.is_data() => Err(ApiError::InvalidRequest(e.to_string())),
        Err(e) => Err(ApiError::InvalidRequest(format!(
            "the request body is not valid JSON (line {}, column {})",
            e.line(),
            e.column()
        ))),
    }
}

/// A request body: an object whose member names are unique (a proxy or WAF
/// that keeps the first of two `email` members while we keep the last would
/// be checking a different request than the one we serve), or anything else.
enum Body {
    Object(Map<String, Value>),
    Other,
}

impl<'de> serde::Deserialize<'de> for Body {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Body;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON value")
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut access: A) -> Result<Body, A::Error> {
                let mut map = Map::new();
                while let Some(key) = access.next_key::<String>()? {
                    if map.contains_key(&key) {
                        return Err(serde::de::Error::custom(format_args!(
                            "the request body has the member {key:?} twice"
                        )));
                    }
                    let value = access.next_value::<Value>()?;
                    map.insert(key, value);
                }
                Ok(Body::Object(map))
            }

            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut access: A) -> Result<Body, A::Error> {
                // Parsed as values so the nesting limit (128) still applies.
                while access.next_element::<Value>()?.is_some() {}
                Ok(Body::Other)
            }

            fn visit_bool<E>(self, _: bool) -> Result<Body, E> {
                Ok(Body::Other)
            }
            fn visit_i64<E>(self, _: i64) -> Result<Body, E> {
                Ok(Body::Other)
            }
            fn visit_u64<E>(self, _: u64) -> Result<Body, E> {
                Ok(Body::Other)
            }
            fn visit_f64<E>(self, _: f64) -> Result<Body, E> {
                Ok(Body::Other)
            }
            fn visit_str<E>(self, _: &str) -> Result<Body, E> {
                Ok(Body::Other)
            }
            fn visit_unit<E>(self) -> Result<Body, E> {
                Ok(Body::Other)
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

impl<S: Send + Sync> FromRequest<S> for JsonObject {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(req.headers()) {
            return Err(ApiError::UnsupportedMediaType);
        }
        let bytes = read_body(req, state).await?;
        parse_object(&bytes).map(Self)
    }
}

impl<S: Send + Sync> FromRequest<S> for OptionalJsonObject {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let json = is_json(req.headers());
        let bytes = read_body(req, state).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Self(None));
        }
        if !json {
            return Err(ApiError::UnsupportedMediaType);
        }
        parse_object(&bytes).map(|m| Self(Some(m)))
    }
}

/// Pulls typed fields out of a JSON object, collecting every problem so one
/// 422 names all the fields at fault.
pub struct Fields {
    object: Map<String, Value>,
    errors: FieldErrors,
}

impl Fields {
    pub fn new(object: Map<String, Value>) -> Self {
        Self {
            object,
            errors: FieldErrors::new(),
        }
    }

    /// A required string field, parsed by `parse`.
    pub fn required<T, E: Display>(
        &mut self,
        name: &'static str,
        parse: impl FnOnce(String) -> Result<T, E>,
    ) -> Option<T> {
        match self.object.remove(name) {
            None | Some(Value::Null) => {
                self.errors.insert(name, "is required".to_owned());
                None
            }
            Some(Value::String(s)) => self.apply(name, s, parse),
            Some(_) => {
                self.errors.insert(name, "must be a string".to_owned());
                None
            }
        }
    }

    /// An optional string field: `Ok(None)` when absent or null.
    pub fn optional<T, E: Display>(
        &mut self,
        name: &'static str,
        parse: impl FnOnce(String) -> Result<T, E>,
    ) -> Option<Option<T>> {
        match self.object.remove(name) {
            None | Some(Value::Null) => Some(None),
            Some(Value::String(s)) => self.apply(name, s, parse).map(Some),
            Some(_) => {
                self.errors.insert(name, "must be a string".to_owned());
                None
            }
        }
    }

    fn apply<T, E: Display>(
        &mut self,
        name: &'static str,
        raw: String,
        parse: impl FnOnce(String) -> Result<T, E>,
    ) -> Option<T> {
        match parse(raw) {
            Ok(v) => Some(v),
            Err(e) => {
                self.errors.insert(name, e.to_string());
                None
            }
        }
    }

    /// 422 if any field failed.
    pub fn finish(self) -> ApiResult<()> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(ApiError::Validation(self.errors))
        }
    }
}

/// Unwraps a field that [`Fields::finish`] has already vouched for.
pub fn checked<T>(value: Option<T>) -> ApiResult<T> {
    value.ok_or_else(|| ApiError::internal(anyhow::anyhow!("BUG: a validated field is missing")))
}

/// The bearer token of a request (RFC 6750 §2.1), or the reason there is none.
pub fn bearer_token(headers: &HeaderMap) -> ApiResult<&str> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Err(ApiError::MissingToken);
    };
    if values.next().is_some() {
        return Err(ApiError::InvalidToken("send exactly one Authorization header"));
    }
    let value = value
        .to_str()
        .map_err(|_| ApiError::InvalidToken("the Authorization header is not valid"))?;
    let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(ApiError::MissingToken);
    }
    let token = token.trim_start_matches(' ');
    if token.is_empty() || token.contains(' ') {
        return Err(ApiError::InvalidToken(
            "the Authorization header must be `Bearer <token>`",
        ));
    }
    Ok(token)
}

/// The verified bearer of an access token.
#[derive(Debug, Clone, Copy)]
pub struct Caller {
    pub tenant: tessera_core::TenantId,
    pub user: tessera_core::UserId,
    pub session: tessera_core::SessionId,
}

/// The caller named by a valid access token of `scope`'s tenant. No store
/// is read (unless the token's key is new to this instance), so a logged-out
/// session's token still passes until it expires, unless the revocation
/// check is on (`TESSERA_REVOCATION_CHECK`), which refuses it from memory.
pub async fn token_caller(
    state: &crate::state::AppState,
    headers: &HeaderMap,
    scope: &TenantScope,
) -> ApiResult<Caller> {
    caller(state, headers, scope, true).await
}

/// Like [`token_caller`], but a token of a session that has ended passes
/// even with the revocation check on: for logging out, where ending a
/// session again is no error.
pub async fn token_caller_of_any_session(
    state: &crate::state::AppState,
    headers: &HeaderMap,
    scope: &TenantScope,
) -> ApiResult<Caller> {
    caller(state, headers, scope, false).await
}

async fn caller(
    state: &crate::state::AppState,
    headers: &HeaderMap,
    scope: &TenantScope,
    live_only: bool,
) -> ApiResult<Caller> {
    let token = bearer_token(headers)?;
    let mut buf = tessera_token::TokenBuf::new();
    let now = crate::tokens::unix_now();
    let claims = if live_only {
        state.tokens.verify_access(token, scope.scope(), now, &mut buf).await?
    } else {
        state
            .tokens
            .verify_access_of_any_session(token, scope.scope(), now, &mut buf)
            .await?
    };
    Ok(Caller {
        tenant: tessera_core::TenantId::from_uuid(claims.tid),
        user: tessera_core::UserId::from_uuid(claims.sub),
        session: tessera_core::SessionId::from_uuid(claims.sid),
    })
}

/// Like [`token_caller`], and the token's session must still be live.
pub async fn session_caller(
    state: &crate::state::AppState,
    headers: &HeaderMap,
    scope: &TenantScope,
) -> ApiResult<Caller> {
    let caller = token_caller(state, headers, scope).await?;
    match state
        .sessions
        .session(caller.user, caller.session, crate::tokens::unix_now())
        .await?
    {
        // `session` only returns a session of this user.
        Some(_) => Ok(caller),
        None => Err(ApiError::InvalidToken(crate::tokens::SESSION_ENDED)),
    }
}

/// The query string as names and their values. Malformed, or with a name
/// given twice (`?limit=1&limit=500`: which one would count is a guess), it
/// is 400 `invalid_request`.
pub struct QueryParams(pub std::collections::HashMap<String, String>);

impl<S: Send + Sync> FromRequestParts<S> for QueryParams {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let axum::extract::Query(pairs) = axum::extract::Query::<Vec<(String, String)>>::try_from_uri(&parts.uri)
            .map_err(|_| ApiError::InvalidRequest("the query string is malformed".to_owned()))?;
        let mut params = std::collections::HashMap::with_capacity(pairs.len());
        for (name, value) in pairs {
            if params.insert(name, value).is_some() {
                return Err(ApiError::InvalidRequest(
                    "a query parameter is given twice; give each once".to_owned(),
                ));
            }
        }
        Ok(Self(params))
    }
}

/// The `limit` query parameter of a paged list: `default` when absent, else
/// a whole number from 1 to `max` (400 `invalid_request` otherwise).
pub fn page_limit(query: &std::collections::HashMap<String, String>, default: u32, max: u32) -> ApiResult<u32> {
    match query.get("limit") {
        None => Ok(default),
        Some(raw) => raw
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=max).contains(n))
            .ok_or_else(|| ApiError::InvalidRequest(format!("limit must be a whole number from 1 to {max}"))),
    }
}

/// The caller, if its session is live and the session's user has one of
/// `roles` (as stored now, not as the token says: a user demoted since the
/// token was issued is refused at once); 403 `forbidden` otherwise.
pub async fn require_role(
    state: &crate::state::AppState,
    headers: &HeaderMap,
    scope: &TenantScope,
    roles: &[&str],
) -> ApiResult<(Caller, tessera_core::Role)> {
    let caller = token_caller(state, headers, scope).await?;
    let Some(session) = state
        .sessions
        .session(caller.user, caller.session, crate::tokens::unix_now())
        .await?
    else {
        return Err(ApiError::InvalidToken("the session of this token has ended"));
    };
    if roles.contains(&session.role.as_str()) {
        Ok((caller, session.role))
    } else {
        Err(ApiError::Forbidden("your role does not allow this"))
    }
}

/// The tenant a route serves: `{slug}` in `/api/tenants/{slug}/...`, else
/// the default tenant (`/api/auth/...`). An unknown slug is a 404.
#[derive(Clone)]
pub struct TenantScope {
    pub tenant: std::sync::Arc<crate::tenants::TenantInfo>,
    /// Whether the route names its tenant (`/api/tenants/{slug}/...`, even
    /// `default`) rather than being a plain `/api/auth/...` route.
    pub named: bool,
}

impl TenantScope {
    pub fn id(&self) -> tessera_core::TenantId {
        self.tenant.id
    }

    /// Whose tokens the route accepts: its tenant's only.
    pub fn scope(&self) -> crate::tokens::Scope {
        crate::tokens::Scope::Tenant(self.tenant.id)
    }
}

impl FromRequestParts<crate::state::AppState> for TenantScope {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &crate::state::AppState) -> Result<Self, Self::Rejection> {
        let slug = match axum::extract::RawPathParams::from_request_parts(parts, state).await {
            Ok(params) => params
                .iter()
                .find(|(name, _)| *name == "slug")
                .map(|(_, v)| v.to_owned()),
            // Routes without parameters serve the default tenant.
            Err(axum::extract::rejection::RawPathParamsRejection::MissingPathParams(_)) => None,
            // A parameter that is not UTF-8 names no tenant (nor anything else).
            Err(_) => return Err(ApiError::NotFound("no such tenant")),
        };
        let Some(raw) = slug else {
            return Ok(Self {
                tenant: state.tenants.default_tenant(),
                named: false,
            });
        };
        let unknown = ApiError::NotFound("no such tenant");
        let slug = tessera_core::TenantSlug::parse(&raw).map_err(|_| unknown)?;
        let tenant = state
            .tenants
            .by_slug(&slug)
            .await?
            .ok_or(ApiError::NotFound("no such tenant"))?;
        // A tenant created elsewhere (another instance, the CLI) may be
        // served before this instance has heard of its keys.
        let keys = state.tokens.keys();
        if keys.signer(tenant.id).is_none() {
            keys.reload_tenant(tenant.id, crate::tokens::unix_now()).await?;
        }
        Ok(Self { tenant, named: true })
    }
}

/// Who is calling, as recorded on a session.
#[derive(Clone)]
pub struct ClientMeta {
    /// The client's address as text (what sessions and the audit log record).
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    /// The client's address: the TCP peer, or, behind a proxy named in
    /// `TESSERA_TRUSTED_PROXIES`, what it put in `X-Forwarded-For`.
    pub addr: Option<std::net::IpAddr>,
}

impl FromRequestParts<crate::state::AppState> for ClientMeta {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &crate::state::AppState) -> Result<Self, Self::Rejection> {
        let addr = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(peer)| state.trusted_proxies.client(peer.ip(), &parts.headers));
        let user_agent = parts.headers.get(header::USER_AGENT).map(|v| {
            String::from_utf8_lossy(v.as_bytes())
                .chars()
                .filter(|c| !c.is_control())
                .take(256)
                .collect()
        });
        Ok(Self {
            ip: addr.map(|a| a.to_string()),
            user_agent,
            addr,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn auth(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        h
    }

    #[test]
    fn bearer_scheme_is_case_insensitive() {
        assert_eq!(bearer_token(&auth("Bearer abc")).unwrap(), "abc");
        assert_eq!(bearer_token(&auth("bearer abc")).unwrap(), "abc");
        assert_eq!(bearer_token(&auth("BEARER  abc")).unwrap(), "abc");
    }

    #[test]
    fn other_schemes_count_as_no_token() {
        assert!(matches!(bearer_token(&HeaderMap::new()), Err(ApiError::MissingToken)));
        assert!(matches!(bearer_token(&auth("Basic YTpi")), Err(ApiError::MissingToken)));
    }

    #[test]
    fn empty_or_split_tokens_are_invalid() {
        assert!(matches!(bearer_token(&auth("Bearer")), Err(ApiError::InvalidToken(_))));
        assert!(matches!(
            bearer_token(&auth("Bearer a b")),
            Err(ApiError::InvalidToken(_))
        ));
    }

    #[test]
    fn json_content_types() {
        let with = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_str(v).unwrap());
            is_json(&h)
        };
        assert!(with("application/json"));
        assert!(with("Application/JSON; charset=utf-8"));
        assert!(with("application/merge-patch+json"));
        assert!(!with("text/plain"));
        assert!(!with("application/x-www-form-urlencoded"));
        assert!(!is_json(&HeaderMap::new()));
    }

    #[test]
    fn fields_collect_every_problem() {
        let obj = serde_json::json!({"a": 1, "b": "x"}).as_object().unwrap().clone();
        let mut f = Fields::new(obj);
        assert!(f.required("a", Ok::<_, String>).is_none());
        assert!(f.required("b", |_| Err::<String, _>("is bad")).is_none());
        assert!(f.required("c", Ok::<_, String>).is_none());
        let Err(ApiError::Validation(errors)) = f.finish() else {
            panic!("expected 422")
        };
        assert_eq!(errors["a"], "must be a string");
        assert_eq!(errors["b"], "is bad");
        assert_eq!(errors["c"], "is required");
    }
}
