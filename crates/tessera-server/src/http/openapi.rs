//! The OpenAPI 3.1 document, generated from the handlers' annotations.

use crate::state::AppState;
use axum::routing::get;
use axum::{Json, Router};
use utoipa::openapi::path::{ParameterBuilder, ParameterIn, PathItem};
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::Required;
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "tessera",
        description = "Self-hosted authentication: accounts, sessions and JSON Web Tokens. \
            Errors share one body: `{\"error\": code, \"message\": sentence}` (422 adds `fields`). \
            Every 401 carries an RFC 6750 `WWW-Authenticate: Bearer` challenge."
    ),
    paths(
        super::auth::register,
        super::auth::login,
        super::auth::refresh,
        super::auth::logout,
        super::auth::me,
        super::auth::verify,
        super::sessions::list_sessions,
        super::sessions::delete_session,
        super::password::forgot_password,
        super::password::reset_password,
        super::password::change_password,
        super::password::verify_email,
        super::password::resend_verification,
        super::tenants::signup,
        super::tenants::rotate_keys,
        super::tenants::audit,
        super::admin::list_users,
        super::admin::get_user,
        super::admin::set_role,
        super::admin::revoke_sessions,
        super::admin::audit,
        super::wellknown::jwks,
        super::wellknown::tenant_jwks,
        super::wellknown::discovery,
        super::wellknown::tenant_discovery,
        super::health::healthz,
        super::health::readyz,
        openapi_json,
    ),
    modifiers(&BearerScheme, &TenantRoutes),
    tags(
        (name = "auth", description = "Accounts and tokens"),
        (name = "sessions", description = "A user's sessions, one per device"),
        (name = "accounts", description = "Passwords and email addresses: reset, change, verification"),
        (name = "tenants", description = "Tenants: signup, key rotation, audit log. Every `/api/auth/...` account route also exists as `/api/tenants/{slug}/auth/...`, scoped to that tenant"),
        (name = "admin", description = "Administering a tenant's users: roles `admin` and `owner`, or the tenant's API key. Every `/api/admin/...` route also exists as `/api/tenants/{slug}/admin/...`"),
        (name = "keys", description = "Public keys (JWKS) and discovery, for services that verify tokens themselves"),
        (name = "health", description = "Probes"),
        (name = "meta", description = "This document"),
    )
)]
pub struct ApiDoc;

struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
        components.add_security_scheme(
            "apiKey",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-Api-Key",
                "The tenant's API key, shown once at signup",
            ))),
        );
    }
}

/// The account routes exist once per tenant: `/api/auth/x` is the default
/// tenant's, `/api/tenants/{slug}/auth/x` any tenant's. The handlers are
/// annotated once; this adds the scoped copies.
struct TenantRoutes;

impl Modify for TenantRoutes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let unknown_tenant = utoipa::openapi::ResponseBuilder::new()
            .description("`not_found`: no tenant has this slug")
            .content(
                "application/json",
                utoipa::openapi::ContentBuilder::new()
                    .schema(Some(utoipa::openapi::Ref::from_schema_name("ErrorBody")))
                    .build(),
            )
            .build();
        let scoped: Vec<(String, PathItem)> = openapi
            .paths
            .paths
            .iter()
            .filter(|(path, _)| {
                (path.starts_with("/api/auth/") && path.as_str() != "/api/auth/signup")
                    || path.starts_with("/api/admin/")
            })
            .map(|(path, item)| {
                let mut item = item.clone();
                let slug = ParameterBuilder::new()
                    .name("slug")
                    .parameter_in(ParameterIn::Path)
                    .required(Required::True)
                    .description(Some("The tenant's slug (`default` is the default tenant)"))
                    .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
                    .build();
                for op in [
                    &mut item.get,
                    &mut item.post,
                    &mut item.put,
                    &mut item.delete,
                    &mut item.head,
                    &mut item.patch,
                ]
                .into_iter()
                .flatten()
                {
                    op.operation_id = op.operation_id.take().map(|id| format!("tenant_{id}"));
                    op.parameters.get_or_insert_with(Vec::new).insert(0, slug.clone());
                    op.responses
                        .responses
                        .entry("404".to_owned())
                        .or_insert_with(|| unknown_tenant.clone().into());
                }
                let scoped = match path.strip_prefix("/api/admin/") {
                    Some(rest) => format!("/api/tenants/{{slug}}/admin/{rest}"),
                    None => path.replacen("/api/auth/", "/api/tenants/{slug}/auth/", 1),
                };
                (scoped, item)
            })
            .collect();
        openapi.paths.paths.extend(scoped);
        // One handler serves GET and HEAD; operation ids must stay unique.
        for item in openapi.paths.paths.values_mut() {
            let get_id = item.get.as_ref().and_then(|op| op.operation_id.clone());
            if let Some(head) = item.head.as_mut() {
                if head.operation_id.is_some() && head.operation_id == get_id {
                    head.operation_id = head.operation_id.take().map(|id| format!("{id}_head"));
                }
            }
        }
    }
}

pub fn router() -> Router<AppState> {
    Router::new().route("/api/openapi.json", get(openapi_json))
}

/// This document.
#[utoipa::path(get, path = "/api/openapi.json", tag = "meta", responses((status = 200, description = "OpenAPI 3.1 document")))]
async fn openapi_json() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
