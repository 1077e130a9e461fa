use crate::helpers::*;
use reqwest::StatusCode;
use serde_json::Value;

/// Every route of the contract, and only those, is in the document.
#[tokio::test]
async fn the_openapi_document_describes_the_contract() {
    let app = spawn_app().await;
    let res = app.client.get(app.url("/api/openapi.json")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let doc: Value = res.json().await.unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let expected = [
        ("/api/auth/register", "post"),
        ("/api/auth/login", "post"),
        ("/api/auth/refresh", "post"),
        ("/api/auth/logout", "post"),
        ("/api/auth/me", "get"),
        ("/api/auth/verify", "get"),
        ("/api/auth/verify", "head"),
        ("/api/auth/sessions", "get"),
        ("/api/auth/sessions/{id}", "delete"),
        ("/api/auth/password/forgot", "post"),
        ("/api/auth/password/reset", "post"),
        ("/api/auth/password/change", "post"),
        ("/api/auth/email/verify", "post"),
        ("/api/auth/email/resend", "post"),
        ("/healthz", "get"),
        ("/readyz", "get"),
        ("/api/openapi.json", "get"),
        ("/api/auth/signup", "post"),
        ("/api/tenants/{slug}/keys/rotate", "post"),
        ("/api/tenants/{slug}/audit", "get"),
        ("/api/tenants/{slug}/auth/register", "post"),
        ("/api/tenants/{slug}/auth/login", "post"),
        ("/api/tenants/{slug}/auth/refresh", "post"),
        ("/api/tenants/{slug}/auth/logout", "post"),
        ("/api/tenants/{slug}/auth/me", "get"),
        ("/api/tenants/{slug}/auth/verify", "get"),
        ("/api/tenants/{slug}/auth/verify", "head"),
        ("/api/tenants/{slug}/auth/sessions", "get"),
        ("/api/tenants/{slug}/auth/sessions/{id}", "delete"),
        ("/api/tenants/{slug}/auth/password/forgot", "post"),
        ("/api/tenants/{slug}/auth/password/reset", "post"),
        ("/api/tenants/{slug}/auth/password/change", "post"),
        ("/api/tenants/{slug}/auth/email/verify", "post"),
        ("/api/tenants/{slug}/auth/email/resend", "post"),
        ("/api/admin/users", "get"),
        ("/api/admin/users/{id}", "get"),
        ("/api/admin/users/{id}/role", "put"),
        ("/api/admin/users/{id}/revoke-sessions", "post"),
        ("/api/admin/audit", "get"),
        ("/api/tenants/{slug}/admin/users", "get"),
        ("/api/tenants/{slug}/admin/users/{id}", "get"),
        ("/api/tenants/{slug}/admin/users/{id}/role", "put"),
        ("/api/tenants/{slug}/admin/users/{id}/revoke-sessions", "post"),
        ("/api/tenants/{slug}/admin/audit", "get"),
        ("/.well-known/jwks.json", "get"),
        ("/.well-known/openid-configuration", "get"),
        ("/api/tenants/{slug}/.well-known/jwks.json", "get"),
        ("/api/tenants/{slug}/.well-known/openid-configuration", "get"),
    ];
    let paths = doc["paths"].as_object().unwrap();
    let mut documented: Vec<(String, String)> = paths
        .iter()
        .flat_map(|(p, ops)| ops.as_object().unwrap().keys().map(move |m| (p.clone(), m.clone())))
        .filter(|(_, m)| m != "parameters")
        .collect();
    documented.sort();
    let mut want: Vec<(String, String)> = expected
        .iter()
        .map(|(p, m)| ((*p).to_owned(), (*m).to_owned()))
        .collect();
    want.sort();
    assert_eq!(documented, want);

    for (path, method) in expected {
        let op = &paths[path][method];
        let responses = op["responses"].as_object().unwrap();
        assert!(!responses.is_empty(), "{method} {path} documents no response");
        let needs_bearer = [
            "/api/auth/me",
            "/api/auth/verify",
            "/api/auth/sessions",
            "/api/auth/sessions/{id}",
            "/api/auth/password/change",
        ]
        .iter()
        .any(|p| path == *p || path == p.replacen("/api/auth/", "/api/tenants/{slug}/auth/", 1))
            || path.contains("/admin/");
        if path.starts_with("/api/tenants/{slug}/") {
            assert!(
                responses.contains_key("404"),
                "{method} {path} must document the 404 of an unknown tenant"
            );
            let params = op["parameters"].to_string();
            assert!(
                params.contains("\"slug\""),
                "{method} {path} must document its slug: {params}"
            );
            assert!(
                op["operationId"].as_str().is_some_and(|id| !id.is_empty()),
                "{method} {path}"
            );
        }
        if needs_bearer {
            assert!(responses.contains_key("401"), "{method} {path} must document 401");
            assert!(
                op["security"].to_string().contains("bearer"),
                "{method} {path} must declare bearer security"
            );
        }
    }
    // Every rate-limited route documents its 429 and the Retry-After header.
    let limited = [
        "/api/auth/register",
        "/api/auth/login",
        "/api/auth/password/forgot",
        "/api/auth/password/reset",
        "/api/auth/password/change",
        "/api/auth/email/verify",
        "/api/auth/email/resend",
    ];
    for path in limited
        .iter()
        .flat_map(|p| {
            [
                (*p).to_owned(),
                p.replacen("/api/auth/", "/api/tenants/{slug}/auth/", 1),
            ]
        })
        .chain(["/api/auth/signup".to_owned()])
    {
        let too_many = &paths[path.as_str()]["post"]["responses"]["429"];
        assert!(too_many.is_object(), "POST {path} must document 429");
        assert!(
            too_many["headers"]["Retry-After"].is_object(),
            "POST {path}: {too_many}"
        );
    }
    for unlimited in ["/api/auth/refresh", "/api/auth/logout"] {
        assert!(paths[unlimited]["post"]["responses"]["429"].is_null(), "{unlimited}");
    }
    assert_eq!(doc["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
    assert_eq!(doc["components"]["securitySchemes"]["apiKey"]["name"], "X-Api-Key");
    // Operation ids stay unique across the default and the tenant copies.
    let mut ids: Vec<&str> = paths
        .values()
        .flat_map(|ops| ops.as_object().unwrap().values())
        .filter_map(|op| op["operationId"].as_str())
        .collect();
    let total = ids.len();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), total, "duplicate operationIds");
    let logout_body = &paths["/api/auth/logout"]["post"]["requestBody"];
    assert_ne!(
        logout_body["required"], true,
        "logout's body is optional: {logout_body}"
    );
    for schema in ["UserDto", "AuthResponse", "TokenResponse", "ErrorBody", "SessionList"] {
        assert!(
            doc["components"]["schemas"][schema].is_object(),
            "schema {schema} missing"
        );
    }
    // Every reference names a schema the document has.
    fn refs(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(map) => {
                for (k, v) in map {
                    match (k.as_str(), v.as_str()) {
                        ("$ref", Some(r)) => out.push(r.to_owned()),
                        _ => refs(v, out),
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }
    let mut all = Vec::new();
    refs(&doc, &mut all);
    assert!(!all.is_empty());
    for r in all {
        let name = r.strip_prefix("#/components/schemas/").unwrap_or_else(|| panic!("{r}"));
        assert!(doc["components"]["schemas"][name].is_object(), "{r} does not resolve");
    }
    let user = &doc["components"]["schemas"]["UserDto"]["properties"];
    for field in [
        "id",
        "email",
        "emailVerified",
        "firstName",
        "lastName",
        "role",
        "createdAt",
    ] {
        assert!(user[field].is_object(), "user.{field} missing");
    }
}
