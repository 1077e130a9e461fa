//! Mail over SMTP (to the loopback sink in `smtp_sink.rs`) and into the
//! outbox: the messages are parsed as a mail client would, their links
//! followed; retries, a server that is down or refuses, templates, and
//! names that try to smuggle headers in.

use crate::helpers::*;
use crate::smtp_sink::{link_in, link_params, readable, SmtpSink, Stall};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::os::unix::fs::PermissionsExt as _;
use std::time::{Duration, Instant};
use tessera_server::config::{Config, ConfigError};
use tessera_server::secrets::SecretValue;
use tessera_server::Application;

/// Mail to `url`, retrying fast (the real default waits seconds).
fn smtp(url: &str) -> impl FnOnce(&mut Config) + '_ {
    move |c: &mut Config| {
        c.mail.smtp_url = Some(SecretValue::new(url.to_owned()));
        c.mail.retry_base = Duration::from_millis(50);
        c.mail.retry_max = Duration::from_millis(200);
        c.mail.smtp_timeout = Duration::from_secs(10);
    }
}

/// Like [`smtp`], with a deadline of one second per delivery attempt.
fn smtp_with_deadline(url: &str) -> impl FnOnce(&mut Config) + '_ {
    move |c: &mut Config| {
        smtp(url)(c);
        c.mail.smtp_timeout = Duration::from_secs(1);
    }
}

/// What the server logs (at info and above) on this test's thread, which
/// is where `#[tokio::test]` runs the server and its mail task, until the
/// guard is dropped.
struct Logs(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl Logs {
    fn capture() -> (Self, tracing::subscriber::DefaultGuard) {
        let buffer = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO)
            .with_writer(move || LogWriter(writer.clone()))
            .finish();
        (Self(buffer), tracing::subscriber::set_default(subscriber))
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

struct LogWriter(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for LogWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn outbox_files(app: &TestApp) -> Vec<std::path::PathBuf> {
    match std::fs::read_dir(app.data_dir.path().join("data").join("outbox")) {
        Ok(entries) => entries.filter_map(Result::ok).map(|e| e.path()).collect(),
        Err(_) => Vec::new(),
    }
}

/// HTML-escaped text as a browser reads it (minijinja escapes `/` too).
fn unescape(html: &str) -> String {
    html.replace("&#x2f;", "/").replace("&amp;", "&")
}

async fn register_named(app: &TestApp, prefix: &str, email: &str, first: &str) -> reqwest::Response {
    app.post_json(
        &format!("{prefix}/register"),
        &json!({"email": email, "password": PASSWORD, "firstName": first, "lastName": "Lovelace"}),
    )
    .await
}

#[tokio::test]
async fn registration_mails_a_verification_link_over_smtp_that_verifies_the_email() {
    let sink = SmtpSink::start().await;
    let url = sink.url();
    let app = spawn_app_with(|c| {
        smtp(&url)(c);
        c.public_url = Some("https://auth.example".to_owned());
    })
    .await;
    let user = app.new_user().await;
    let received = sink.wait_for_message_to(&user.email, 0).await;
    assert_eq!(received.rcpt_to, [user.email.as_str()], "one recipient: the user");
    assert_eq!(received.mail_from, "no-reply@auth.example");

    let message = received.parsed();
    assert_eq!(message.subject(), Some("Confirm your email address"));
    let to = message.to().and_then(|a| a.first()).unwrap();
    assert_eq!(to.address(), Some(user.email.as_str()));
    assert_eq!(to.name(), Some("Ada"));
    assert!(message.message_id().is_some_and(|id| id.ends_with("@auth.example")));
    assert!(message.date().is_some());
    let text = message.body_text(0).unwrap();
    let html = message.body_html(0).unwrap();
    let link = link_in(&text, "https://auth.example/verify-email?token=");
    assert!(unescape(&html).contains(&link), "the HTML part has the same link");
    let (token, tenant) = link_params(&link);
    assert!(token.starts_with("tev_") && tenant.is_none());

    let res = app.post_json("/api/auth/email/verify", &json!({"token": token})).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let me: Value = app.get_auth("/api/auth/me", &user.access).await.json().await.unwrap();
    assert_eq!(me["emailVerified"], true);
    assert!(outbox_files(&app).is_empty(), "with SMTP nothing is written to disk");
}

#[tokio::test]
async fn forgot_password_mail_over_smtp_resets_with_the_links_token() {
    let sink = SmtpSink::start().await;
    let url = sink.url();
    let app = spawn_app_with(|c| {
        smtp(&url)(c);
        c.mail.link_base = Some("https://app.example/account/".to_owned());
        c.mail.from = Some("Acme Accounts <accounts@acme.example>".to_owned());
    })
    .await;
    let res = app
        .post_json(
            "/api/auth/signup",
            &json!({"email": unique_email(), "password": PASSWORD, "firstName": "Owner", "lastName": "",
                    "tenantName": "Mail Acme"}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let slug = res.json::<Value>().await.unwrap()["tenant"]["slug"]
        .as_str()
        .unwrap()
        .to_owned();
    let prefix = format!("/api/tenants/{slug}/auth");
    let email = unique_email();
    assert_eq!(
        register_named(&app, &prefix, &email, "Ada").await.status(),
        StatusCode::CREATED
    );
    sink.wait_for_message_to(&email, 0).await;

    let res = app
        .post_json(&format!("{prefix}/password/forgot"), &json!({"email": email}))
        .await;
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    let received = sink.wait_for_message_to(&email, 1).await;
    assert_eq!(received.mail_from, "accounts@acme.example");
    let message = received.parsed();
    assert_eq!(message.subject(), Some("Reset your password for Mail Acme"));
    let from = message.from().and_then(|a| a.first()).unwrap();
    assert_eq!(
        (from.name(), from.address()),
        (Some("Acme Accounts"), Some("accounts@acme.example"))
    );
    let link = link_in(
        &message.body_text(0).unwrap(),
        "https://app.example/account/reset-password?",
    );
    let (token, tenant) = link_params(&link);
    assert_eq!(tenant.as_deref(), Some(slug.as_str()), "the link names its tenant");

    let res = app
        .post_json(
            &format!("{prefix}/password/reset"),
            &json!({"token": token, "password": "a brand new passphrase"}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let res = app
        .post_json(
            &format!("{prefix}/login"),
            &json!({"email": email, "password": "a brand new passphrase"}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    // And the notice, which carries no link.
    let notice = sink.wait_for_message_to(&email, 2).await;
    let notice = notice.parsed();
    assert_eq!(notice.subject(), Some("Your password was changed (Mail Acme)"));
    let text = notice.body_text(0).unwrap();
    assert!(!text.contains("token") && !text.contains("https://"), "{text}");
}

#[tokio::test]
async fn transient_smtp_failures_are_retried_until_delivered() {
    let sink = SmtpSink::start().await;
    sink.fail_next(3);
    let url = sink.url();
    let app = spawn_app_with(smtp(&url)).await;
    let user = app.new_user().await;
    let received = sink.wait_for_message_to(&user.email, 0).await;
    assert_eq!(sink.attempts(), 4, "three 451s, then delivered");
    assert_eq!(sink.messages().len(), 1, "delivered once");
    assert!(readable(&received.data).contains("tev_"));
}

#[tokio::test]
async fn a_server_that_is_down_at_first_gets_the_message_when_it_comes_up() {
    let port = free_port();
    let url = format!("smtp://127.0.0.1:{port}");
    let app = spawn_app_with(|c| {
        smtp(&url)(c);
        c.mail.attempts = 30;
    })
    .await;
    let user = app.new_user().await;
    // Connections are refused for a while; then the server is there.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let sink = SmtpSink::start_on(port).await;
    let received = sink.wait_for_message_to(&user.email, 0).await;
    assert!(readable(&received.data).contains("tev_"));
}

#[tokio::test]
async fn permanent_refusals_are_not_retried() {
    let sink = SmtpSink::start().await;
    sink.refuse_permanently();
    let url = sink.url();
    let (logs, _guard) = Logs::capture();
    let app = spawn_app_with(smtp(&url)).await;
    let user = app.new_user().await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while sink.attempts() == 0 {
        assert!(Instant::now() < deadline, "the mailer never tried");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Retries come after 50-200 ms; give them ten times that.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(sink.attempts(), 1, "a 550 is final");
    assert!(sink.messages().is_empty());
    // The server's reply names the recipient; the log keeps only its code.
    let log = logs.text();
    assert!(
        log.contains("refused a message for good") && log.contains("550"),
        "{log}"
    );
    assert!(!log.contains(&user.email), "the log holds the address: {log}");
}

#[tokio::test]
async fn with_smtp_down_the_api_answers_as_documented_and_writes_nothing() {
    // Nothing listens there: every connection is refused.
    let url = format!("smtp://127.0.0.1:{}", free_port());
    let app = spawn_app_with(smtp(&url)).await;
    let started = Instant::now();
    let user = app.new_user().await;
    let (_, _) = app.new_session(&user).await;
    for (path, body) in [
        ("/api/auth/password/forgot", json!({"email": user.email})),
        ("/api/auth/email/resend", json!({"email": user.email})),
        ("/api/auth/password/forgot", json!({"email": unique_email()})),
    ] {
        assert_eq!(
            app.post_json(path, &body).await.status(),
            StatusCode::ACCEPTED,
            "{path}"
        );
    }
    let res = app
        .client
        .post(app.url("/api/auth/password/change"))
        .bearer_auth(&user.access)
        .json(&json!({"currentPassword": PASSWORD, "newPassword": "another good passphrase"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        StatusCode::NO_CONTENT,
        "the notice cannot go out; the change stands"
    );
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "no request waited for SMTP ({:?})",
        started.elapsed()
    );
    let res = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(
        res.status(),
        StatusCode::OK,
        "a mail server is not a readiness dependency"
    );
    // Past the second within which forgot and resend start their work.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(outbox_files(&app).is_empty(), "no fallback writes tokens to disk");
}

#[tokio::test]
async fn outbox_messages_are_whole_private_rfc5322_files() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let file = loop {
        if let Some(file) = outbox_files(&app).into_iter().next() {
            break file;
        }
        assert!(Instant::now() < deadline, "no message in the outbox");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let dir = file.parent().unwrap();
    assert_eq!(std::fs::metadata(dir).unwrap().permissions().mode() & 0o777, 0o700);
    assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
    let name = file.file_name().unwrap().to_str().unwrap();
    assert!(name.ends_with(".eml") && !name.starts_with('.'), "{name}");
    let raw = std::fs::read(&file).unwrap();
    let message = mail_parser::MessageParser::default().parse(&raw).unwrap();
    for header in ["From", "To", "Subject", "Date", "Message-ID", "MIME-Version"] {
        assert!(message.header(header).is_some(), "{header} missing");
    }
    assert_eq!(
        message.to().and_then(|a| a.first()).and_then(|a| a.address()),
        Some(user.email.as_str())
    );
    assert!(message.body_text(0).unwrap().contains("/verify-email?token=tev_"));
    assert!(message.body_html(0).is_some(), "multipart/alternative");
    // Writing is a rename: no temporary file is left over.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(outbox_files(&app)
        .iter()
        .all(|p| p.extension().is_some_and(|e| e == "eml")));
}

#[tokio::test]
async fn a_template_directory_overrides_the_built_in_messages() {
    let templates = tempfile::tempdir().unwrap();
    std::fs::write(
        templates.path().join("verify-email.subject"),
        "Welcome{% if tenant_name %} to {{ tenant_name }}{% endif %}, {{ first_name }}!\n",
    )
    .unwrap();
    std::fs::write(
        templates.path().join("verify-email.txt"),
        "Hi {{ first_name }}, confirm here: {{ link }} (valid {{ valid_for }})\n",
    )
    .unwrap();
    std::fs::write(
        templates.path().join("reset-password.html"),
        "<p>Reset for {{ first_name }}: <a href=\"{{ link }}\">here</a></p>\n",
    )
    .unwrap();
    std::fs::write(templates.path().join(".gitkeep"), "").unwrap();
    let sink = SmtpSink::start().await;
    let url = sink.url();
    let dir = templates.path().to_owned();
    let app = spawn_app_with(|c| {
        smtp(&url)(c);
        c.mail.templates = Some(dir);
    })
    .await;
    let email = unique_email();
    let res = register_named(&app, "/api/auth", &email, "<b>Zoë</b>").await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let message = sink.wait_for_message_to(&email, 0).await;
    let message = message.parsed();
    assert_eq!(message.subject(), Some("Welcome, <b>Zoë</b>!"));
    let text = message.body_text(0).unwrap();
    assert!(
        text.starts_with("Hi <b>Zoë</b>, confirm here: http") && text.contains("(valid 24 hours)"),
        "{text}"
    );
    let raw = String::from_utf8_lossy(&sink.messages_to(&email)[0].data).to_ascii_lowercase();
    assert!(
        raw.contains("content-type: text/plain") && !raw.contains("text/html"),
        "text overridden without HTML: plain text only"
    );

    app.post_json("/api/auth/password/forgot", &json!({"email": email}))
        .await;
    let reset = sink.wait_for_message_to(&email, 1).await;
    let reset = reset.parsed();
    let html = reset.body_html(0).unwrap();
    assert!(
        html.contains("Reset for &lt;b&gt;Zo"),
        "HTML overrides are auto-escaped: {html}"
    );
    assert!(!html.contains("<b>Zo"));
    assert_eq!(
        reset.subject(),
        Some("Reset your password"),
        "the built-in subject stays"
    );
    let link = link_in(&unescape(&html), "http");
    assert!(link.contains("/reset-password?token=tpr_"), "{link}");
}

async fn build_error(tweak: impl FnOnce(&mut Config)) -> ConfigError {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::embedded(dir.path().to_owned());
    config.bind = "127.0.0.1:0".parse().unwrap();
    tweak(&mut config);
    match Application::build(config).await {
        Ok(_) => panic!("the server must refuse these settings"),
        Err(err) => match err.downcast::<ConfigError>() {
            Ok(config_error) => config_error,
            Err(other) => panic!("not a configuration error: {other:#}"),
        },
    }
}

#[tokio::test]
async fn bad_template_directories_and_mail_settings_stop_startup() {
    let cases: Vec<(&str, &str, &str)> = vec![
        ("reset-pasword.txt", "{{ link }}", "not a template tessera knows"),
        ("reset-password.txt", "{% if link %}unclosed", "reset-password.txt"),
        ("password-changed.txt", "{{ link }}", "does not render"),
        ("verify-email.html", "{{ frist_name }}", "does not render"),
    ];
    for (file, source, expected) in cases {
        let templates = tempfile::tempdir().unwrap();
        std::fs::write(templates.path().join(file), source).unwrap();
        let dir = templates.path().to_owned();
        let err = build_error(|c| c.mail.templates = Some(dir)).await;
        assert_eq!(err.var, "TESSERA_MAIL_TEMPLATES", "{file}");
        assert!(err.to_string().contains(expected), "{file}: {err}");
    }
    let err = build_error(|c| c.mail.templates = Some("/nonexistent/templates".into())).await;
    assert_eq!(err.var, "TESSERA_MAIL_TEMPLATES");
    let err =
        build_error(|c| c.mail.smtp_url = Some(SecretValue::new("smtp://u:hunter2@mail.example?tls=none".into())))
            .await;
    assert_eq!(err.var, "TESSERA_SMTP_URL");
    assert!(!err.to_string().contains("hunter2"));
    let err = build_error(|c| c.mail.from = Some("tessera".into())).await;
    assert_eq!(err.var, "TESSERA_MAIL_FROM");
    let err = build_error(|c| c.mail.link_base = Some("app.example".into())).await;
    assert_eq!(err.var, "TESSERA_MAIL_LINK_BASE");
}

#[tokio::test]
async fn names_and_tenant_names_cannot_inject_headers_or_recipients() {
    let sink = SmtpSink::start().await;
    let url = sink.url();
    let app = spawn_app_with(smtp(&url)).await;

    // Line breaks never get in: names refuse control characters, Unicode
    // line and paragraph separators, and invisible formatting.
    for first in [
        "Eve\r\nBcc: attacker@evil.example",
        "Eve\nX-Injected: 1",
        "Eve\u{85}Bcc: x@evil.example",
        "Eve\u{2028}Bcc: attacker@evil.example",
        "Eve\u{2029}Bcc: attacker@evil.example",
        "Eve\u{ad}\u{e0042}\u{e0063}\u{e0063}",
    ] {
        let res = register_named(&app, "/api/auth", &unique_email(), first).await;
        assert_error(res, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    }
    for tenant_name in ["Evil\u{2028}Bcc: y@evil.example", "Evil\u{2029}Inc"] {
        let res = app
            .post_json(
                "/api/auth/signup",
                &json!({"email": unique_email(), "password": PASSWORD, "firstName": "O", "lastName": "",
                        "tenantName": tenant_name}),
            )
            .await;
        assert_error(res, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    }

    // What does get in is quoted and encoded, and stays one display name.
    let hostile = [
        "Eve\" <attacker@evil.example>, \"Mallory",
        "Eve <attacker@evil.example>",
        "=?utf-8?q?Bcc=3A_attacker=40evil.example?=",
        "Zoë; Bcc: attacker@evil.example",
        "Ev\u{e9}: Cc: attacker@evil.example",
    ];
    let res = app
        .post_json(
            "/api/auth/signup",
            &json!({"email": unique_email(), "password": PASSWORD, "firstName": "O", "lastName": "",
                    "tenantName": "Evil <x@evil.example>; Bcc: y@evil.example"}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let slug = res.json::<Value>().await.unwrap()["tenant"]["slug"]
        .as_str()
        .unwrap()
        .to_owned();
    for (i, first) in hostile.iter().enumerate() {
        let email = unique_email();
        let prefix = if i % 2 == 0 {
            "/api/auth".to_owned()
        } else {
            format!("/api/tenants/{slug}/auth")
        };
        let res = register_named(&app, &prefix, &email, first).await;
        assert_eq!(res.status(), StatusCode::CREATED, "{first}");
        let received = sink.wait_for_message_to(&email, 0).await;
        assert_eq!(
            received.rcpt_to,
            [email.as_str()],
            "{first}: the envelope has one recipient"
        );
        let message = received.parsed();
        let to: Vec<_> = message.to().unwrap().iter().collect();
        assert_eq!(to.len(), 1, "{first}: one To address");
        assert_eq!(to[0].address(), Some(email.as_str()), "{first}");
        assert_eq!(to[0].name(), Some(*first), "{first}: the name reads back as typed");
        assert!(message.cc().is_none() && message.bcc().is_none(), "{first}");
        assert!(message.header("X-Injected").is_none());
        if i % 2 == 1 {
            assert_eq!(
                message.subject(),
                Some("Confirm your email address for Evil <x@evil.example>; Bcc: y@evil.example")
            );
        }
        let raw = String::from_utf8_lossy(&received.data).to_ascii_lowercase();
        assert!(
            !raw.lines().any(|l| l.starts_with("bcc:") || l.starts_with("cc:")),
            "{first}: {raw}"
        );
        assert!(!raw.contains("rcpt"));
    }
    assert!(sink
        .messages()
        .iter()
        .all(|m| m.rcpt_to.len() == 1 && !m.rcpt_to[0].contains("evil.example")));
}

/// The real binary against the sink with credentials: a retried delivery,
/// and a log at `trace` that holds neither the SMTP password, nor the link,
/// nor the token.
#[tokio::test]
async fn the_binary_mails_over_smtp_and_logs_no_password_link_or_token() {
    let sink = SmtpSink::start().await;
    sink.fail_next(1);
    let dir = tempfile::tempdir().unwrap();
    let smtp_password = "smtp-pass-Z9x8c7v6";
    let url = format!("smtp://tessera:{smtp_password}@127.0.0.1:{}?tls=none", sink.port);
    let env = [
        ("TESSERA_SMTP_URL", url.as_str()),
        ("TESSERA_LOG", "trace"),
        ("TESSERA_PUBLIC_URL", "https://auth.example"),
    ];
    let server = crate::process::start(dir.path(), &env);
    let http = reqwest::Client::new();
    let email = unique_email();
    let res = http
        .post(server.url("/api/auth/register"))
        .json(&json!({"email": email, "password": PASSWORD, "firstName": "Ada", "lastName": "L"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    // The first attempt gets 451; the retry (2 s later by default) delivers.
    let received = sink.wait_for_message_to(&email, 0).await;
    assert!(
        sink.logins().iter().any(|l| l.contains(smtp_password)),
        "AUTH PLAIN used"
    );
    let message = received.parsed();
    let link = link_in(&message.body_text(0).unwrap(), "https://auth.example/verify-email?");
    let (token, _) = link_params(&link);
    let (status, log) = tokio::task::spawn_blocking(move || server.terminate()).await.unwrap();
    assert!(status.success());
    assert!(log.contains("mail delivery failed; retrying"), "{log}");
    assert!(log.contains("mail delivered"), "{log}");
    for secret in [smtp_password, token.as_str(), link.as_str(), PASSWORD] {
        assert!(!log.contains(secret), "the log holds a secret ({}...)", &secret[..6]);
    }
    assert!(!std::path::Path::new(&dir.path().join("outbox")).exists());
}

#[test]
fn the_binary_refuses_bad_mail_settings_with_exit_2_naming_the_variable() {
    let templates = tempfile::tempdir().unwrap();
    std::fs::write(templates.path().join("verify-email.txt"), "{{ no_such_variable }}").unwrap();
    let cases = [
        (
            "TESSERA_SMTP_URL",
            "smtp://app:s3cret-pw@mail.example?tls=opportunistic".to_owned(),
        ),
        ("TESSERA_SMTP_URL", "mail.example:587".to_owned()),
        ("TESSERA_MAIL_FROM", "no address here".to_owned()),
        ("TESSERA_MAIL_LINK_BASE", "ftp://app.example".to_owned()),
        ("TESSERA_MAIL_TEMPLATES", templates.path().display().to_string()),
        ("TESSERA_MAIL_TEMPLATES", "/nonexistent/tessera-templates".to_owned()),
    ];
    for (var, value) in cases {
        let dir = tempfile::tempdir().unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_tessera"))
            .env_clear()
            .env("TESSERA_DATA_DIR", dir.path())
            .env("TESSERA_BIND", "127.0.0.1:0")
            .env(var, &value)
            .arg("serve")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{var}={value}: {stderr}");
        assert!(stderr.contains(var), "{var}: {stderr}");
        assert!(
            !stderr.contains("s3cret-pw"),
            "the SMTP password is never printed: {stderr}"
        );
    }
}

/// One delivery attempt meets a server that goes silent at `stall`: the
/// attempt's deadline (1 s here, 30 s by default) closes the connection, the
/// failure is logged without recipient, link or token, and the retry
/// delivers the message once.
async fn a_silent_server_is_timed_out_logged_and_retried(stall: Stall) {
    let sink = SmtpSink::start().await;
    sink.stall_next(1, stall);
    let url = sink.url();
    let (logs, _guard) = Logs::capture();
    let app = spawn_app_with(smtp_with_deadline(&url)).await;
    let started = Instant::now();
    let user = app.new_user().await;
    let received = sink.wait_for_message_to(&user.email, 0).await;
    let took = started.elapsed();
    assert!(took >= Duration::from_secs(1), "{stall:?}: delivered after {took:?}");
    assert!(took < Duration::from_secs(10), "{stall:?}: delivered after {took:?}");
    assert_eq!(
        sink.stalls_closed(),
        1,
        "{stall:?}: tessera closed the silent connection"
    );
    assert_eq!(sink.messages_to(&user.email).len(), 1, "{stall:?}");
    if stall == Stall::AfterData {
        assert_eq!(sink.unanswered(), 1, "the first attempt's data went unanswered");
    }
    let link = link_in(&received.parsed().body_text(0).unwrap(), "http");
    let (token, _) = link_params(&link);
    let log = logs.text();
    assert!(
        log.contains("mail delivery failed; retrying")
            && log.contains("no answer within 1000 ms")
            && log.contains("kind=\"verify-email\""),
        "{stall:?}: {log}"
    );
    assert!(log.contains("mail delivered"), "{stall:?}: {log}");
    for secret in [user.email.as_str(), link.as_str(), token.as_str()] {
        assert!(!log.contains(secret), "{stall:?}: the log holds {secret}: {log}");
    }
}

#[tokio::test]
async fn a_server_that_never_sends_its_banner_is_timed_out_and_retried() {
    a_silent_server_is_timed_out_logged_and_retried(Stall::BeforeBanner).await;
}

#[tokio::test]
async fn a_server_that_goes_silent_after_its_banner_is_timed_out_and_retried() {
    a_silent_server_is_timed_out_logged_and_retried(Stall::AfterBanner).await;
}

#[tokio::test]
async fn a_server_that_never_answers_the_data_is_timed_out_and_retried() {
    a_silent_server_is_timed_out_logged_and_retried(Stall::AfterData).await;
}

/// As many silent connections as delivery slots (4) stopped all mail: the
/// messages behind them waited for good. Now each attempt ends at its
/// deadline, and a message waiting to retry holds no slot: the ones behind
/// go out first.
#[tokio::test]
async fn silent_connections_do_not_hold_up_the_mail_behind_them() {
    let sink = SmtpSink::start().await;
    sink.stall_next(4, Stall::AfterBanner);
    let url = sink.url();
    let app = spawn_app_with(|c| {
        smtp_with_deadline(&url)(c);
        // Retries 6 to 8 s after the deadline: long after the others.
        c.mail.retry_base = Duration::from_secs(8);
        c.mail.retry_max = Duration::from_secs(8);
    })
    .await;
    let mut users = Vec::new();
    for _ in 0..6 {
        users.push(app.new_user().await);
    }
    for user in &users[4..] {
        sink.wait_for_message_to(&user.email, 0).await;
    }
    assert_eq!(
        sink.messages().len(),
        2,
        "the two messages behind the silent ones went out before their retries"
    );
    for user in &users[..4] {
        sink.wait_for_message_to(&user.email, 0).await;
    }
    assert_eq!(sink.stalls_closed(), 4);
    assert_eq!(sink.messages().len(), 6, "each message once");
}

/// A message that cannot be written to the outbox (here a file stands
/// where the directory should be) is written once the operator fixes it.
#[tokio::test]
async fn an_outbox_that_cannot_be_written_is_retried() {
    let (logs, _guard) = Logs::capture();
    let app = spawn_app_with(|c| {
        c.mail.retry_base = Duration::from_millis(100);
        c.mail.retry_max = Duration::from_millis(400);
    })
    .await;
    let outbox = app.data_dir.path().join("data").join("outbox");
    std::fs::create_dir_all(outbox.parent().unwrap()).unwrap();
    std::fs::write(&outbox, b"not a directory").unwrap();
    let user = app.new_user().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !logs
        .text()
        .contains("could not write a message to the outbox; retrying")
    {
        assert!(Instant::now() < deadline, "no failed write: {}", logs.text());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    std::fs::remove_file(&outbox).unwrap();

    let deadline = Instant::now() + Duration::from_secs(10);
    while outbox_files(&app).is_empty() {
        assert!(Instant::now() < deadline, "the message never reached the outbox");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let raw = std::fs::read(&outbox_files(&app)[0]).unwrap();
    assert!(readable(&raw).contains(&user.email));
    let log = logs.text();
    assert!(!log.contains(&user.email), "the log holds the address: {log}");
}

/// An internationalized domain is one account however it is spelled, and
/// its mail goes out to the ASCII (punycode) form, which SMTP servers
/// without SMTPUTF8 take.
#[tokio::test]
async fn an_internationalized_domain_is_one_account_mailed_in_ascii() {
    let sink = SmtpSink::start().await;
    let url = sink.url();
    let app = spawn_app_with(smtp(&url)).await;
    let local = format!("pv-{}", uuid::Uuid::new_v4().simple());
    let res = app.register(&format!("{local}@bücher.example"), PASSWORD).await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["user"]["email"], format!("{local}@bücher.example"));

    let ascii = format!("{local}@xn--bcher-kva.example");
    let received = sink.wait_for_message_to(&ascii, 0).await;
    assert_eq!(received.rcpt_to, [ascii.as_str()]);
    let message = received.parsed();
    let to = message.to().and_then(|a| a.first()).unwrap();
    assert_eq!(to.address(), Some(ascii.as_str()));

    // The punycode spelling names the same account.
    assert_error(
        app.register(&ascii, PASSWORD).await,
        StatusCode::CONFLICT,
        "email_taken",
    )
    .await;
    assert_eq!(app.login(&ascii, PASSWORD).await.status(), StatusCode::OK);
}
