//! The contract's general rules: 415/413/400/422/404/405, the error body,
//! request ids, and no 5xx for any body.

use crate::helpers::*;
use reqwest::StatusCode;
use serde_json::json;

const POST_ROUTES: &[&str] = &[
    "/api/auth/register",
    "/api/auth/login",
    "/api/auth/refresh",
    "/api/auth/logout",
];

#[tokio::test]
async fn non_json_bodies_get_415() {
    let app = spawn_app().await;
    for route in POST_ROUTES {
        let res = app
            .client
            .post(app.url(route))
            .header("content-type", "text/plain")
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_error(res, StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type").await;
        let res = app
            .client
            .post(app.url(route))
            .header("content-type", "application/x-www-form-urlencoded")
            .body("email=a&password=b")
            .send()
            .await
            .unwrap();
        assert_error(res, StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type").await;
    }
    let res = app
        .client
        .post(app.url("/api/auth/login"))
        .body(r#"{"email":"a"}"#)
        .send()
        .await
        .unwrap();
    assert_error(res, StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type").await;
    // A compressed body is not read as (bad) JSON; `identity` is no encoding.
    for (encoding, status) in [
        ("gzip", StatusCode::UNSUPPORTED_MEDIA_TYPE),
        ("br", StatusCode::UNSUPPORTED_MEDIA_TYPE),
        ("identity", StatusCode::UNAUTHORIZED),
    ] {
        let res = app
            .client
            .post(app.url("/api/auth/login"))
            .header("content-type", "application/json")
            .header("content-encoding", encoding)
            .body(r#"{"email":"nobody@example.com","password":"not the password"}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), status, "{encoding}");
    }
}

#[tokio::test]
async fn bodies_over_64_kib_get_413() {
    let app = spawn_app().await;
    let big = json!({"email": "a@example.com", "password": "x".repeat(70 * 1024)}).to_string();
    for route in POST_ROUTES {
        let res = app
            .client
            .post(app.url(route))
            .header("content-type", "application/json")
            .body(big.clone())
            .send()
            .await
            .unwrap();
        assert_error(res, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large").await;
    }
    // Without a Content-Length (chunked), the limit still holds.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = (0..80).map(|_| Ok(vec![b' '; 1024])).collect();
    let res = app
        .client
        .post(app.url("/api/auth/login"))
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
        .send()
        .await
        .unwrap();
    assert_error(res, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large").await;
    // Exactly at the limit is accepted as far as size goes.
    let at_limit = format!("{{\"email\":\"a\",\"password\":\"b\"{}}}", " ".repeat(64 * 1024 - 29));
    assert_eq!(at_limit.len(), 64 * 1024 - 1);
    let res = app
        .client
        .post(app.url("/api/auth/login"))
        .header("content-type", "application/json")
        .body(at_limit)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn malformed_json_gets_400() {
    let app = spawn_app().await;
    let bad_bodies: Vec<Vec<u8>> = vec![
        b"{".to_vec(),
        b"{\"email\": }".to_vec(),
        b"{\"email\": \"a\",}".to_vec(),
        b"{'email': 'a'}".to_vec(),
        b"".to_vec(),
        b"{\"email\": \"\xff\xfe\"}".to_vec(),
        b"{\"a\":1} trailing".to_vec(),
        b"NaN".to_vec(),
        b"\xef\xbb\xbf{}".to_vec(),
        [b"[".repeat(200), b"]".repeat(200)].concat(),
    ];
    for route in ["/api/auth/register", "/api/auth/login", "/api/auth/refresh"] {
        for body in &bad_bodies {
            let res = app
                .client
                .post(app.url(route))
                .header("content-type", "application/json")
                .body(body.clone())
                .send()
                .await
                .unwrap();
            assert_error(res, StatusCode::BAD_REQUEST, "invalid_request").await;
        }
    }
}

#[tokio::test]
async fn duplicate_members_in_a_body_get_400() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    let body = format!(
        r#"{{"email":"{}","email":"someone@else.example","password":"{}"}}"#,
        user.email, user.password
    );
    let res = app
        .client
        .post(app.url("/api/auth/login"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let err = assert_error(res, StatusCode::BAD_REQUEST, "invalid_request").await;
    assert!(err["message"].as_str().unwrap().contains("twice"), "{err}");
}

#[tokio::test]
async fn a_declared_oversized_body_is_refused_before_it_is_sent() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let app = spawn_app().await;
    let addr = app.base.trim_start_matches("http://").to_owned();
    for expect in ["", "Expect: 100-continue\r\n"] {
        let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
        let head = format!(
            "POST /api/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n{expect}\r\n"
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        let mut buf = vec![0u8; 1024];
        let n = tokio::time::timeout(std::time::Duration::from_secs(5), stream.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        let text = String::from_utf8_lossy(&buf[..n]);
        assert!(text.starts_with("HTTP/1.1 413"), "{expect:?}: {text}");
        assert!(!text.contains("100 Continue"), "{text}");
    }
}

#[tokio::test]
async fn nothing_the_api_answers_may_be_cached() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    for path in ["/api/auth/me", "/api/auth/sessions", "/api/auth/verify", "/healthz"] {
        let res = app.get_auth(path, &user.access).await;
        assert_eq!(res.headers()["cache-control"], "no-store", "{path}");
    }
}

#[tokio::test]
async fn json_that_is_not_an_object_gets_422() {
    let app = spawn_app().await;
    for body in ["[]", "\"text\"", "42", "null", "true"] {
        let res = app
            .client
            .post(app.url("/api/auth/login"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let err = assert_error(res, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
        assert_eq!(err["fields"]["body"], "must be a JSON object");
    }
}

#[tokio::test]
async fn unknown_routes_and_methods_get_json_errors() {
    let app = spawn_app().await;
    let res = app.client.get(app.url("/api/nope")).send().await.unwrap();
    assert_error(res, StatusCode::NOT_FOUND, "not_found").await;
    let res = app.client.get(app.url("/api/auth/login")).send().await.unwrap();
    assert_error(res, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed").await;
    let res = app.client.delete(app.url("/api/auth/me")).send().await.unwrap();
    assert_error(res, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed").await;
}

#[tokio::test]
async fn every_response_has_a_request_id() {
    let app = spawn_app().await;
    let ok = app.client.get(app.url("/healthz")).send().await.unwrap();
    let missing = app.client.get(app.url("/nope")).send().await.unwrap();
    let unauthorized = app.client.get(app.url("/api/auth/verify")).send().await.unwrap();
    let mut ids = Vec::new();
    for res in [ok, missing, unauthorized] {
        let id = res.headers()["x-request-id"].to_str().unwrap().to_owned();
        assert!(!id.is_empty());
        ids.push(id);
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 3, "ids are unique");

    let res = app
        .client
        .get(app.url("/healthz"))
        .header("x-request-id", "trace-abc_123.4")
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["x-request-id"], "trace-abc_123.4");
    let res = app
        .client
        .get(app.url("/healthz"))
        .header("x-request-id", "bad id with spaces")
        .send()
        .await
        .unwrap();
    assert_ne!(res.headers()["x-request-id"], "bad id with spaces");
}

#[tokio::test]
async fn health_and_readiness() {
    let app = spawn_app().await;
    let res = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.json::<serde_json::Value>().await.unwrap()["status"], "ok");
    let res = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
}

/// Bodies of every shape, on every POST route: never a 5xx, always the
/// documented error body.
#[tokio::test]
async fn no_body_shape_produces_a_server_error() {
    let app = spawn_app().await;
    let long = "x".repeat(10_000);
    let values = [
        json!(null),
        json!(true),
        json!(0),
        json!(-1),
        json!(1e308),
        json!(u64::MAX),
        json!(""),
        json!(" "),
        json!("\u{0}"),
        json!(long),
        json!([]),
        json!({}),
        json!({"$gt": ""}),
        json!("' OR 1=1 --"),
        json!("🔑🔑🔑🔑🔑🔑🔑🔑"),
        json!("a@b.c"),
        json!("eyJhbGciOiJub25lIn0.e30."),
    ];
    let fields = ["email", "password", "firstName", "lastName", "refreshToken", "scope"];
    for route in POST_ROUTES {
        for (i, v) in values.iter().enumerate() {
            let mut body = serde_json::Map::new();
            for (j, f) in fields.iter().enumerate() {
                body.insert((*f).to_owned(), values[(i + j) % values.len()].clone());
            }
            body.insert("extra".to_owned(), v.clone());
            let res = app.post_json(route, &serde_json::Value::Object(body)).await;
            let status = res.status();
            assert!(
                status.is_client_error() || status.is_success(),
                "{route} answered {status}"
            );
            if status.is_client_error() {
                let err: serde_json::Value = res.json().await.unwrap();
                assert!(err["error"].is_string() && err["message"].is_string(), "{err}");
            }
        }
    }
}

/// An error answered before the handler needs the body (401, 404, 415) must
/// not leave the body unread on a keep-alive connection: the client's next
/// request on it has to be answered too.
#[tokio::test]
async fn early_errors_keep_the_connection_usable() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let app = spawn_app().await;
    let addr = app.base.trim_start_matches("http://").to_owned();
    let body = format!("{{\"email\":\"{}\",\"password\":\"{}\"}}", "x".repeat(4000), PASSWORD);
    let early = [
        ("POST /api/tenants/nope-nope/auth/login", "application/json", 404),
        ("POST /api/auth/login", "text/plain", 415),
        ("POST /api/tenants/default/keys/rotate", "application/json", 401),
        ("POST /api/auth/logout", "application/json", 401),
    ];
    for (line, content_type, status) in early {
        let mut conn = tokio::net::TcpStream::connect(&addr).await.unwrap();
        let first = format!(
            "{line} HTTP/1.1\r\nHost: t\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        conn.write_all(first.as_bytes()).await.unwrap();
        conn.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
            .await
            .unwrap();
        let mut seen = Vec::new();
        let mut buf = [0u8; 8192];
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while std::time::Instant::now() < deadline {
            let text = String::from_utf8_lossy(&seen).into_owned();
            if text.matches("HTTP/1.1 ").count() >= 2 && text.ends_with("}") {
                break;
            }
            match tokio::time::timeout(std::time::Duration::from_millis(500), conn.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => break,
                Ok(Ok(n)) => seen.extend_from_slice(&buf[..n]),
                Err(_) => {}
            }
        }
        let text = String::from_utf8_lossy(&seen);
        assert!(text.starts_with(&format!("HTTP/1.1 {status}")), "{line}: {text}");
        assert!(
            text.contains("HTTP/1.1 200 OK"),
            "{line}: the next request was not answered: {text}"
        );
    }
}
