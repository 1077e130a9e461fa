//! The project service of tessera's design notes: a small API whose users
//! log in with tessera and send its access token as `Authorization: Bearer
//! <token>`. It verifies the token itself with [`tessera_verify`], from
//! memory, and never calls tessera for a request (in JWKS mode, only to
//! fetch and refresh the key set).
//!
//! - `GET /healthz`: `{"status": "ok"}`, no token needed.
//! - `GET /api/projects`: `{"projects": [...]}`, the caller's own.
//! - `POST /api/projects` `{"name", "description"}`: 201 with the project
//!   `{id, name, description, ownerId, createdAt}`.
//! - `GET /api/admin/projects`: every user's projects (of the caller's
//!   tenant), for role `admin` only.
//!
//! Errors have tessera's body, `{"error": "<code>", "message": "..."}`
//! (422 adds `fields`). Projects live in memory, at most
//! [`MAX_PROJECTS_PER_USER`] per user.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, FailedToBufferBody};
use axum::extract::{DefaultBodyLimit, FromRef, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use serde_json::Value;
use tessera_verify::tessera_token::Uuid;
use tessera_verify::{Authenticated, Claims, RequireRole, Verifier, VerifyLayer};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

pub mod config;

/// Most projects one user may have; creating one more is a 409.
pub const MAX_PROJECTS_PER_USER: usize = 1000;
/// Longest request body, as tessera's.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// Longest project name, in characters, after trimming.
pub const MAX_NAME_CHARS: usize = 100;
/// Longest project description, in characters, after trimming.
pub const MAX_DESCRIPTION_CHARS: usize = 2000;

/// One project, as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Project {
    pub id: Uuid,
    pub name: String,
    pub description: String,
    /// The `sub` of the token that created it.
    pub owner_id: Uuid,
    /// RFC 3339, UTC.
    pub created_at: String,
    /// The owner's tenant (the token's `tid`); not shown.
    #[serde(skip)]
    pub tenant: Uuid,
}

/// Every user's projects, in creation order.
#[derive(Debug, Default)]
struct Store {
    projects: Mutex<HashMap<Uuid, Vec<Project>>>,
}

#[derive(Clone)]
struct AppState {
    verifier: Verifier,
    store: Arc<Store>,
    limit: usize,
}

impl FromRef<AppState> for Verifier {
    fn from_ref(state: &AppState) -> Self {
        state.verifier.clone()
    }
}

/// The service, verifying tokens with `verifier`.
pub fn router(verifier: Verifier) -> Router {
    router_with_limit(verifier, MAX_PROJECTS_PER_USER)
}

/// The service, with at most `limit` projects per user.
pub fn router_with_limit(verifier: Verifier, limit: usize) -> Router {
    let state = AppState {
        verifier: verifier.clone(),
        store: Arc::default(),
        limit,
    };
    // The admin routes check the token in layers: VerifyLayer (outermost,
    // runs first) puts the claims in the request, RequireRole checks them.
    let admin = Router::new()
        .route("/api/admin/projects", get(every_project))
        .route_layer(RequireRole::new("admin"))
        .route_layer(VerifyLayer::new(verifier));
    Router::new()
        .route("/healthz", get(healthz))
        // These use the `Authenticated` extractor instead.
        .route("/api/projects", get(my_projects).post(create_project))
        .merge(admin)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

async fn healthz() -> Json<Value> {
    Json(serde_json::json!({"status": "ok"}))
}

#[derive(Serialize)]
struct Projects {
    projects: Vec<Project>,
}

async fn my_projects(State(state): State<AppState>, Authenticated(claims): Authenticated) -> Json<Projects> {
    let projects = state
        .store
        .projects
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get(&claims.sub)
        .cloned()
        .unwrap_or_default();
    Json(Projects { projects })
}

async fn every_project(State(state): State<AppState>, claims: Claims) -> Json<Projects> {
    let mut projects: Vec<Project> = {
        let store = state.store.projects.lock().unwrap_or_else(PoisonError::into_inner);
        store
            .values()
            .flatten()
            .filter(|project| project.tenant == claims.tid)
            .cloned()
            .collect()
    };
    projects.sort_by(|a, b| (&a.created_at, a.id).cmp(&(&b.created_at, b.id)));
    Json(Projects { projects })
}

async fn create_project(
    State(state): State<AppState>,
    Authenticated(claims): Authenticated,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Project>), ApiError> {
    let body = json_object(&headers, body)?;
    let (name, description) = validate(&body)?;
    let created_at = OffsetDateTime::now_utc()
        .format(&Rfc3339)
        .map_err(|_| ApiError::internal())?;
    let project = Project {
        id: Uuid::new_v4(),
        name,
        description,
        owner_id: claims.sub,
        created_at,
        tenant: claims.tid,
    };
    {
        let mut store = state.store.projects.lock().unwrap_or_else(PoisonError::into_inner);
        let mine = store.entry(claims.sub).or_default();
        if mine.len() >= state.limit {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "conflict",
                format!("you already have {} projects, the most one user may have", state.limit),
            ));
        }
        mine.push(project.clone());
    }
    tracing::info!(project = %project.id, owner = %project.owner_id, "project created");
    Ok((StatusCode::CREATED, Json(project)))
}

/// The body as a JSON object: 415 if it is not declared JSON, 413 past
/// [`MAX_BODY_BYTES`], 400 if it does not parse, 422 if it is not an object.
fn json_object(
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<serde_json::Map<String, Value>, ApiError> {
    let mime = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase());
    let is_json =
        mime.is_some_and(|m| m == "application/json" || (m.starts_with("application/") && m.ends_with("+json")));
    if !is_json {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "request body must be JSON (Content-Type: application/json)",
        ));
    }
    let bytes = body.map_err(|rejection| match rejection {
        BytesRejection::FailedToBufferBody(FailedToBufferBody::LengthLimitError(_)) => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "request body is larger than 64 KiB",
        ),
        _ => ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "the request body could not be read",
        ),
    })?;
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(ApiError::fields([("body", "must be a JSON object".to_owned())])),
        Err(err) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            format!(
                "the request body is not valid JSON (line {}, column {})",
                err.line(),
                err.column()
            ),
        )),
    }
}

/// `name` (required, 1 to 100 characters after trimming) and `description`
/// (optional, at most 2000), trimmed; every bad field is reported at once.
fn validate(body: &serde_json::Map<String, Value>) -> Result<(String, String), ApiError> {
    let mut bad = Vec::new();
    let name = match body.get("name") {
        None | Some(Value::Null) => {
            bad.push(("name", "is required".to_owned()));
            String::new()
        }
        Some(Value::String(name)) => {
            let name = name.trim();
            let chars = name.chars().count();
            if chars == 0 {
                bad.push(("name", "must not be empty".to_owned()));
            } else if chars > MAX_NAME_CHARS {
                bad.push(("name", format!("must be at most {MAX_NAME_CHARS} characters")));
            }
            name.to_owned()
        }
        Some(_) => {
            bad.push(("name", "must be a string".to_owned()));
            String::new()
        }
    };
    let description = match body.get("description") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(description)) => {
            let description = description.trim();
            if description.chars().count() > MAX_DESCRIPTION_CHARS {
                bad.push((
                    "description",
                    format!("must be at most {MAX_DESCRIPTION_CHARS} characters"),
                ));
            }
            description.to_owned()
        }
        Some(_) => {
            bad.push(("description", "must be a string".to_owned()));
            String::new()
        }
    };
    if bad.is_empty() {
        Ok((name, description))
    } else {
        Err(ApiError::fields(bad))
    }
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this method is not allowed on this route",
    )
}

/// An error answer with tessera's body.
#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    fields: Option<BTreeMap<&'static str, String>>,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'static str,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    fields: Option<&'a BTreeMap<&'static str, String>>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            fields: None,
        }
    }

    /// 422 `validation_failed` naming each bad field.
    fn fields(fields: impl IntoIterator<Item = (&'static str, String)>) -> Self {
        Self {
            fields: Some(fields.into_iter().collect()),
            ..Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation_failed",
                "request fields are missing or invalid",
            )
        }
    }

    fn internal() -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: self.code,
            message: &self.message,
            fields: self.fields.as_ref(),
        };
        (self.status, Json(body)).into_response()
    }
}
