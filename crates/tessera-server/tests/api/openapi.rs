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
        ("/healthz", "get"),
        ("/readyz", "get"),
        ("/api/openapi.json", "get"),
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
        ]
        .contains(&path);
        if needs_bearer {
            assert!(responses.contains_key("401"), "{method} {path} must document 401");
            assert!(
                op["security"].to_string().contains("bearer"),
                "{method} {path} must declare bearer security"
            );
        }
    }
    assert_eq!(doc["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
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
