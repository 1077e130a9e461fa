//! `tessera user import`, as an operator runs it: the real binary imports
//! CSV and JSON lines with bcrypt hashes made here, then the real server
//! logs the users in with their old passwords and rehashes them to
//! Argon2id. Bad rows, existing users, dry runs, and PostgreSQL.

use crate::helpers::*;
use crate::process::start;
use crate::smtp_sink::{link_params, readable};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Instant;
use tessera_core::{Email, TenantId};
use tessera_store::{AuditStore as _, SqliteStore, TenantStore as _, UserStore as _};

const BIN: &str = env!("CARGO_BIN_EXE_tessera");

/// Runs `tessera user import ARGS` on `data_dir` with `env`, feeding
/// `stdin` when given.
fn import(data_dir: &Path, env: &[(&str, &str)], args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("TESSERA_DATA_DIR", data_dir)
        .args(["user", "import"])
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(bytes) = stdin {
        input.write_all(bytes).unwrap();
    }
    drop(input);
    child.wait_with_output().unwrap()
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A bcrypt hash as the old Node service wrote it: `$2a$`, `$2b$` or
/// `$2y$`, at the lowest cost (tests, not security).
fn bcrypt(password: &str, prefix: &str) -> String {
    let made = bcrypt::hash(password, 4).unwrap();
    format!("{prefix}{}", &made[4..])
}

async fn sqlite(data_dir: &Path) -> SqliteStore {
    SqliteStore::connect(&format!("sqlite://{}", data_dir.join("tessera.db").display()))
        .await
        .unwrap()
}

async fn stored_hash(store: &dyn tessera_store::UserStore, tenant: TenantId, email: &str) -> String {
    store
        .find_user_by_email(tenant, &Email::parse(email).unwrap())
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("{email} is not stored"))
        .password_hash
}

async fn login(http: &reqwest::Client, url: &str, email: &str, password: &str) -> reqwest::Response {
    http.post(url)
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn csv_users_log_in_with_their_old_passwords_and_move_to_argon2id() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let id = uuid::Uuid::new_v4();
    // Node's bcrypt read 72 bytes; this user's password is longer.
    let long = format!("{}-and-then-some", "seventy-two bytes of passphrase ".repeat(3));
    assert!(long.len() > 72);
    let users = [
        ("ada@example.com", "ada's old password", "$2a$"),
        ("bob@example.com", "bob's old password", "$2b$"),
        ("cy@example.com", "cy's old password", "$2y$"),
        ("long@example.com", long.as_str(), "$2b$"),
        ("reset@example.com", "forgotten password", "$2b$"),
    ];
    let mut csv = String::from("email,passwordHash,firstName,lastName,role,emailVerified,createdAt,id\n");
    for (i, (email, password, prefix)) in users.iter().enumerate() {
        let (role, verified, created, id) = if i == 0 {
            ("admin", "true", "2019-05-06T07:08:09Z", id.to_string())
        } else {
            ("", "", "", String::new())
        };
        csv.push_str(&format!(
            "{email},{},\"Name, {i}\",Old,{role},{verified},{created},{id}\n",
            bcrypt(password, prefix)
        ));
    }
    let file = dir.path().join("users.csv");
    std::fs::write(&file, &csv).unwrap();

    let out = import(&data, &[], &[file.to_str().unwrap()], None);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(
        stdout.contains("imported 5 of 5 users into tenant default (5 with bcrypt hashes"),
        "{stdout}"
    );

    let store = sqlite(&data).await;
    assert!(stored_hash(&store, TenantId::DEFAULT, "ada@example.com")
        .await
        .starts_with("$2a$04$"));
    let server = start(&data, &[]);
    let http = reqwest::Client::new();
    let login_url = server.url("/api/auth/login");
    let res = login(&http, &login_url, "ada@example.com", "ada's old password").await;
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["user"]["id"], id.to_string(), "the id is kept");
    assert_eq!(body["user"]["role"], "admin");
    assert_eq!(body["user"]["emailVerified"], true);
    assert_eq!(body["user"]["createdAt"], "2019-05-06T07:08:09Z");
    assert_eq!(body["user"]["firstName"], "Name, 0");
    let (_, claims) = decode_parts(body["accessToken"].as_str().unwrap());
    assert_eq!(
        (claims["sub"].as_str(), claims["role"].as_str()),
        (Some(id.to_string().as_str()), Some("admin"))
    );

    for (email, password, _) in &users[..4] {
        assert_eq!(
            login(&http, &login_url, email, "not the old password").await.status(),
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            login(&http, &login_url, email, password).await.status(),
            StatusCode::OK,
            "{email}"
        );
        let hash = stored_hash(&store, TenantId::DEFAULT, email).await;
        assert!(
            hash.starts_with("$argon2id$"),
            "{email} is rehashed at the first login: {hash}"
        );
        assert_eq!(login(&http, &login_url, email, password).await.status(), StatusCode::OK);
    }
    // Rehashed from the whole password typed: the bytes past 72 count now.
    let other_tail = format!("{}-but-another-tail", &long[..72]);
    assert_eq!(
        login(&http, &login_url, "long@example.com", &other_tail).await.status(),
        StatusCode::UNAUTHORIZED
    );

    // A user still on bcrypt resets the password by mail.
    let res = http
        .post(server.url("/api/auth/password/forgot"))
        .json(&json!({"email": "reset@example.com"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    let token = wait_for_outbox_token(&data.join("outbox"), "reset@example.com").await;
    let res = http
        .post(server.url("/api/auth/password/reset"))
        .json(&json!({"token": token, "password": "a new passphrase at last"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert!(stored_hash(&store, TenantId::DEFAULT, "reset@example.com")
        .await
        .starts_with("$argon2id$"));
    assert_eq!(
        login(&http, &login_url, "reset@example.com", "forgotten password")
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        login(&http, &login_url, "reset@example.com", "a new passphrase at last")
            .await
            .status(),
        StatusCode::OK
    );
    let (status, _) = tokio::task::spawn_blocking(move || server.terminate()).await.unwrap();
    assert!(status.success());
}

async fn wait_for_outbox_token(outbox: &Path, to: &str) -> String {
    let deadline = Instant::now() + std::time::Duration::from_secs(30);
    loop {
        for entry in std::fs::read_dir(outbox).into_iter().flatten().flatten() {
            let Ok(raw) = std::fs::read(entry.path()) else { continue };
            let mail = readable(&raw);
            if mail.contains(to) && mail.contains("reset-password?token=") {
                let at = mail.find("http").unwrap();
                let link: String = mail[at..].chars().take_while(|c| !c.is_whitespace()).collect();
                return link_params(&link).0;
            }
        }
        assert!(Instant::now() < deadline, "no reset mail to {to}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn json_lines_from_stdin_go_into_a_tenant_beside_a_running_server() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = start(&data, &[]);
    let http = reqwest::Client::new();
    let res = http
        .post(server.url("/api/auth/signup"))
        .json(
            &json!({"email": unique_email(), "password": PASSWORD, "firstName": "O", "lastName": "",
                      "tenantName": "Imported Inc"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    let slug = res.json::<Value>().await.unwrap()["tenant"]["slug"]
        .as_str()
        .unwrap()
        .to_owned();

    let lines = [
        json!({"email": "Node.User@Example.com", "passwordHash": bcrypt("node password one", "$2b$"),
               "firstName": "Node", "lastName": "User", "emailVerified": true, "createdAt": 1_600_000_000,
               "role": "editor"}),
        json!({"email": "second@example.com", "password_hash": bcrypt("node password two", "$2a$"),
               "first_name": "Second", "last_name": null}),
    ];
    let input: String = lines.iter().map(|l| format!("{l}\n")).collect();
    let out = import(
        &data,
        &[],
        &["--tenant", &slug, "--format", "jsonl", "-"],
        Some(input.as_bytes()),
    );
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(
        stdout.contains(&format!("imported 2 of 2 users into tenant {slug}")),
        "{stdout}"
    );

    let tenant_login = server.url(&format!("/api/tenants/{slug}/auth/login"));
    let res = login(&http, &tenant_login, "node.user@example.com", "node password one").await;
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["user"]["role"], "editor");
    assert_eq!(body["user"]["emailVerified"], true);
    assert_eq!(body["user"]["createdAt"], "2020-09-13T12:26:40Z");
    assert_eq!(
        login(&http, &tenant_login, "second@example.com", "node password two")
            .await
            .status(),
        StatusCode::OK
    );
    // Only in that tenant.
    assert_eq!(
        login(
            &http,
            &server.url("/api/auth/login"),
            "second@example.com",
            "node password two"
        )
        .await
        .status(),
        StatusCode::UNAUTHORIZED
    );
    let (status, _) = tokio::task::spawn_blocking(move || server.terminate()).await.unwrap();
    assert!(status.success());
}

#[tokio::test]
async fn bad_rows_existing_users_and_dry_runs_are_reported_and_exit_codes_say_so() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let hash = bcrypt("shared old password", "$2b$");
    let file = dir.path().join("users.csv");
    let write = |rows: &[String]| {
        let mut csv = String::from("email,passwordHash,firstName,lastName\n");
        for row in rows {
            csv.push_str(row);
            csv.push('\n');
        }
        std::fs::write(&file, csv).unwrap();
    };
    let path = file.to_str().unwrap();

    // Bad rows: every one reported by line, nothing imported, exit 3.
    write(&[
        format!("good@example.com,{hash},Good,Row"),
        format!("not-an-email,{hash},Bad,Email"),
        "weak@example.com,5f4dcc3b5aa765d61d8327deb882cf99,Md5,Hash".to_owned(),
        format!("costly@example.com,$2b$16{},Too,Costly", &hash[6..]),
        format!("GOOD@example.com,{hash},Same,Again"),
    ]);
    let out = import(&data, &[], &[path], None);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(3), "{stdout}{stderr}");
    for expected in [
        "line 3: email:",
        "line 4: passwordHash: is not a bcrypt",
        "line 5: passwordHash: has bcrypt cost 16",
        "line 6: email: good@example.com is also on line 2",
        "4 of 5 rows are not valid; nothing was imported",
    ] {
        assert!(stderr.contains(expected), "{expected:?} in {stderr}");
    }
    assert!(!stderr.contains(&hash[7..]), "hashes are never printed");
    let store = sqlite(&data).await;
    assert_eq!(store.count_users(TenantId::DEFAULT).await.unwrap(), 0);

    // A clean file, with one email that exists already.
    let existing = store
        .import_users(
            &[tessera_store::ImportedUser {
                user: tessera_store::NewUser {
                    id: tessera_core::UserId::random(),
                    tenant: TenantId::DEFAULT,
                    email: Email::parse("taken@example.com").unwrap(),
                    password_hash: hash.clone(),
                    first_name: tessera_core::PersonName::parse("Taken").unwrap(),
                    last_name: tessera_core::PersonName::parse_optional("").unwrap(),
                    role: tessera_core::Role::user(),
                    created_at: now(),
                },
                email_verified: false,
            }],
            tessera_store::ImportMode::Commit,
        )
        .await
        .unwrap();
    assert!(existing.is_empty());
    write(&[
        format!("new1@example.com,{hash},New,One"),
        format!("Taken@Example.com,{hash},Taken,Again"),
        format!("new2@example.com,{hash},New,Two"),
    ]);

    // --on-conflict fail: nothing written, exit 3.
    let out = import(&data, &[], &["--on-conflict", "fail", path], None);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(3), "{stdout}{stderr}");
    assert!(
        stderr.contains("line 3: taken@example.com already has an account"),
        "{stderr}"
    );
    assert_eq!(store.count_users(TenantId::DEFAULT).await.unwrap(), 1);

    // --dry-run: the exact report, nothing written, exit 0.
    let out = import(&data, &[], &["--dry-run", path], None);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("dry run: 2 of 3 users would be imported"), "{stdout}");
    assert!(stdout.contains("1 skipped"), "{stdout}");
    assert!(stderr.contains("line 3: taken@example.com already has an account") && stderr.contains("(skipped)"));
    assert_eq!(store.count_users(TenantId::DEFAULT).await.unwrap(), 1);

    // The real run: the existing one is skipped and reported, exit 0.
    let out = import(&data, &[], &[path], None);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(
        stdout.contains("imported 2 of 3 users") && stdout.contains("1 skipped"),
        "{stdout}"
    );
    assert!(stderr.contains("line 3: taken@example.com already has an account in tenant default (skipped)"));
    assert_eq!(store.count_users(TenantId::DEFAULT).await.unwrap(), 3);
    let events = store.audit_events(TenantId::DEFAULT, None, 10).await.unwrap();
    assert!(events
        .iter()
        .any(|e| e.kind == "users.imported" && e.detail.as_deref().is_some_and(|d| d.contains("\"imported\":2"))));
    // Again: everything is there already.
    let out = import(&data, &[], &[path], None);
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out).0.contains("imported 0 of 3 users"));

    // Arguments and files tessera cannot use: exit 2, nothing else happens.
    let other_header = dir.path().join("other.csv");
    std::fs::write(&other_header, "mail,hash,name\nx@example.com,h,X\n").unwrap();
    let unknown_ext = dir.path().join("users.txt");
    std::fs::write(&unknown_ext, "").unwrap();
    for (args, mention) in [
        (vec!["--tenant", "no-such-tenant", path], "no-such-tenant"),
        (vec!["--tenant", "Not A Slug", path], "--tenant"),
        (vec![other_header.to_str().unwrap()], "\"mail\""),
        (vec![unknown_ext.to_str().unwrap()], "--format"),
        (vec!["/nonexistent/users.csv"], "cannot read"),
        (vec!["--format", "xml", path], "xml"),
        (vec!["--on-conflict", "overwrite", path], "overwrite"),
    ] {
        let out = import(&data, &[], &args, None);
        let (_, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(mention), "{args:?}: {stderr}");
    }
    let out = import(&data, &[("TESSERA_DATABASE_URL", "mysql://db/users")], &[path], None);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out).1);
    assert!(text(&out).1.contains("TESSERA_DATABASE_URL"));
    assert_eq!(store.count_users(TenantId::DEFAULT).await.unwrap(), 3);
}

#[tokio::test]
async fn import_into_postgres_then_log_in_there() {
    let db = TestDatabase::create().await;
    let dir = tempfile::tempdir().unwrap();
    let master = tessera_core::MasterKey::generate_base64();
    let env = [
        ("TESSERA_DATABASE_URL", db.url.as_str()),
        ("TESSERA_MASTER_KEY", master.as_str()),
    ];
    let file = dir.path().join("users.jsonl");
    let id = uuid::Uuid::new_v4();
    std::fs::write(
        &file,
        format!(
            "{}\n{}\n",
            json!({"email": "pg@example.com", "passwordHash": bcrypt("postgres old password", "$2y$"),
                   "firstName": "Pg", "id": id.to_string()}),
            json!({"email": "pg2@example.com", "passwordHash": bcrypt("postgres old password 2", "$2b$"),
                   "firstName": "Pg2"}),
        ),
    )
    .unwrap();
    let out = import(dir.path(), &env[..1], &[file.to_str().unwrap()], None);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("imported 2 of 2 users"), "{stdout}");
    assert!(!dir.path().join("tessera.db").exists(), "nothing goes to SQLite");

    let server = start(dir.path(), &env);
    let http = reqwest::Client::new();
    let res = login(
        &http,
        &server.url("/api/auth/login"),
        "pg@example.com",
        "postgres old password",
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.json::<Value>().await.unwrap()["user"]["id"], id.to_string());
    let store = tessera_store::PostgresStore::connect(&db.url).await.unwrap();
    assert!(stored_hash(&store, TenantId::DEFAULT, "pg@example.com")
        .await
        .starts_with("$argon2id$"));
    assert!(stored_hash(&store, TenantId::DEFAULT, "pg2@example.com")
        .await
        .starts_with("$2b$04$"));
    let (status, _) = tokio::task::spawn_blocking(move || server.terminate()).await.unwrap();
    assert!(status.success());
    drop(store);
    db.drop_now().await;
}

/// Many rows: batched, every one stored. Prints the rate (the binary is a
/// debug build here; BENCHMARKS-style numbers come from a release build).
#[tokio::test]
async fn twenty_thousand_rows_import_in_batches() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let hash = bcrypt("one password for all", "$2b$");
    let mut csv = String::from("email,passwordHash,firstName,lastName,emailVerified\n");
    for i in 0..20_000 {
        csv.push_str(&format!("user{i}@bulk.example,{hash},User,Number {i},{}\n", i % 2 == 0));
    }
    let file = dir.path().join("bulk.csv");
    std::fs::write(&file, csv).unwrap();
    let started = Instant::now();
    let out = import(&data, &[], &[file.to_str().unwrap()], None);
    let took = started.elapsed();
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    println!(
        "imported 20000 rows in {took:?} ({:.0} rows/s, debug build)",
        20_000.0 / took.as_secs_f64()
    );
    let store = sqlite(&data).await;
    assert_eq!(store.count_users(TenantId::DEFAULT).await.unwrap(), 20_000);
    let last = store
        .find_user_by_email(TenantId::DEFAULT, &Email::parse("user19999@bulk.example").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(last.user.last_name, "Number 19999");
    assert!(!last.user.email_verified);
}

/// An Argon2id hash as another system wrote it, with its parameters.
fn argon2(password: &str, memory_kib: u32, iterations: u32, parallelism: u32) -> String {
    let hasher = tessera_core::PasswordHasher::new(tessera_core::HashParams {
        memory_kib,
        iterations,
        parallelism,
    })
    .unwrap();
    let password = tessera_core::Password::parse(password.to_owned()).unwrap();
    hasher.hash(&password, &mut hasher.memory()).unwrap()
}

/// A well-formed Argon2 PHC string with these parameters (it matches no
/// password: its hash is made up).
fn argon2_with(variant: &str, params: &str) -> String {
    format!("${variant}$v=19${params}$c29tZXNhbHRzb21lc2FsdA$YWJjZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXoxMjM0NTY")
}

fn jsonl_user(email: &str, hash: &str) -> String {
    format!(
        "{}\n",
        json!({"email": email, "passwordHash": hash, "firstName": "Argon"})
    )
}

#[tokio::test]
async fn argon2_hashes_import_within_the_limits_and_costly_ones_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let file = dir.path().join("users.jsonl");
    let path = file.to_str().unwrap();

    // What the black-box tester imported: a denial of service at each login.
    let hostile = [
        argon2_with("argon2id", "m=19456,t=4294967295,p=1"),
        argon2_with("argon2id", "m=19456,t=100000,p=1"),
        argon2_with("argon2id", "m=1048576,t=2,p=1"),
        argon2_with("argon2id", "m=19456,t=2,p=64"),
        argon2_with("argon2d", "m=19456,t=2,p=1"),
    ];
    let mut input = jsonl_user("fine@example.com", &bcrypt("fine password", "$2b$"));
    for (i, hash) in hostile.iter().enumerate() {
        input.push_str(&jsonl_user(&format!("hostile{i}@example.com"), hash));
    }
    std::fs::write(&file, &input).unwrap();
    let out = import(&data, &[], &[path], None);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(3), "{stdout}{stderr}");
    for expected in [
        "line 2: passwordHash: has Argon2 cost m=19456 KiB, t=4294967295, p=1; tessera verifies at most m=65536 KiB, t=10, p=8",
        "line 3: passwordHash: has Argon2 cost m=19456 KiB, t=100000",
        "line 4: passwordHash: has Argon2 cost m=1048576 KiB",
        "line 5: passwordHash: has Argon2 cost m=19456 KiB, t=2, p=64",
        "line 6: passwordHash: is an $argon2d$ hash",
        "5 of 6 rows are not valid; nothing was imported",
    ] {
        assert!(stderr.contains(expected), "{expected:?} in {stderr}");
    }
    assert!(!stderr.contains("c29tZXNhbHRz"), "hashes are never printed");
    let store = sqlite(&data).await;
    assert_eq!(store.count_users(TenantId::DEFAULT).await.unwrap(), 0);

    // node-argon2's and argon2-cffi's default (64 MiB, t=3, p=4) and PHP's
    // (64 MiB, t=4, p=1) import, log in, and move to tessera's parameters.
    let node = argon2("node argon2 password", 65536, 3, 4);
    let php = argon2("php argon2 password", 65536, 4, 1);
    let django = argon2("django argon2 password", 102_400, 2, 8);
    std::fs::write(
        &file,
        jsonl_user("node@example.com", &node) + &jsonl_user("php@example.com", &php),
    )
    .unwrap();
    let out = import(&data, &[], &[path], None);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("imported 2 of 2 users"), "{stdout}");

    // Django's old default (100 MiB) is over the limit, unless the servers
    // hash with that much memory: the import takes their setting.
    std::fs::write(&file, jsonl_user("django@example.com", &django)).unwrap();
    let out = import(&data, &[], &[path], None);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out).1);
    assert!(text(&out)
        .1
        .contains("line 1: passwordHash: has Argon2 cost m=102400 KiB"));
    let out = import(&data, &[("TESSERA_ARGON2_MEMORY_KIB", "1000")], &[path], None);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out).1);
    assert!(text(&out).1.contains("TESSERA_ARGON2_MEMORY_KIB"));
    let big = [("TESSERA_ARGON2_MEMORY_KIB", "102400")];
    let out = import(&data, &big, &[path], None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out).1);

    let server = start(&data, &big);
    let http = reqwest::Client::new();
    let login_url = server.url("/api/auth/login");
    for (email, password) in [
        ("node@example.com", "node argon2 password"),
        ("php@example.com", "php argon2 password"),
        ("django@example.com", "django argon2 password"),
    ] {
        assert_eq!(
            login(&http, &login_url, email, "not the old password").await.status(),
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(login(&http, &login_url, email, password).await.status(), StatusCode::OK);
        let hash = stored_hash(&store, TenantId::DEFAULT, email).await;
        assert!(
            hash.starts_with("$argon2id$v=19$m=102400,t=2,p=1$"),
            "{email} is rehashed to the server's parameters: {hash}"
        );
    }
    let (status, _) = tokio::task::spawn_blocking(move || server.terminate()).await.unwrap();
    assert!(status.success());
}

/// The server's peak resident memory, from /proc.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/PID/status")
}

/// A hash that got into the database some other way (an older import, a
/// hand-written row) is never run when it asks for too much: a wrong
/// password after the work of an unknown email, in the pool's own memory.
#[tokio::test]
async fn stored_hashes_over_the_limits_cost_a_login_nothing_and_block_no_one() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // One hashing slot: a hash that held it would make everyone else wait.
    let server = start(&data, &[("TESSERA_HASH_CONCURRENCY", "1"), ("TESSERA_HASH_QUEUE", "8")]);
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(60))
        .build()
        .unwrap();
    let login_url = server.url("/api/auth/login");
    let res = http
        .post(server.url("/api/auth/register"))
        .json(&json!({"email": "bystander@example.com", "password": PASSWORD, "firstName": "By", "lastName": ""}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);

    let store = sqlite(&data).await;
    let hostile = [
        ("days@example.com", argon2_with("argon2id", "m=19456,t=4294967295,p=1")),
        ("passes@example.com", argon2_with("argon2id", "m=19456,t=100000,p=1")),
        ("gib@example.com", argon2_with("argon2id", "m=1048576,t=2,p=1")),
        ("bcrypt31@example.com", format!("$2b$31{}", &bcrypt("x", "$2b$")[6..])),
    ];
    let rows: Vec<_> = hostile
        .iter()
        .map(|(email, hash)| tessera_store::ImportedUser {
            user: tessera_store::NewUser {
                id: tessera_core::UserId::random(),
                tenant: TenantId::DEFAULT,
                email: Email::parse(email).unwrap(),
                password_hash: hash.clone(),
                first_name: tessera_core::PersonName::parse("Hostile").unwrap(),
                last_name: tessera_core::PersonName::parse_optional("").unwrap(),
                role: tessera_core::Role::user(),
                created_at: now(),
            },
            email_verified: true,
        })
        .collect();
    assert!(store
        .import_users(&rows, tessera_store::ImportMode::Commit)
        .await
        .unwrap()
        .is_empty());

    let started = Instant::now();
    let mut attempts = Vec::new();
    for (email, _) in &hostile {
        for _ in 0..2 {
            let (http, url, email) = (http.clone(), login_url.clone(), email.to_string());
            attempts.push(tokio::spawn(async move {
                login(&http, &url, &email, "any password at all").await.status()
            }));
        }
    }
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let bystander = login(&http, &login_url, "bystander@example.com", PASSWORD).await;
    assert_eq!(
        bystander.status(),
        StatusCode::OK,
        "the hashing slot is free for others"
    );
    for attempt in attempts {
        assert_eq!(attempt.await.unwrap(), StatusCode::UNAUTHORIZED);
    }
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "eight refused hashes and a login took {:?}",
        started.elapsed()
    );
    // The pool's buffer (19 MiB) served them: nothing near the 1 GiB asked.
    let peak = peak_rss_kib(server.pid());
    assert!(peak < 512 * 1024, "peak RSS {peak} KiB");
    let (status, log) = tokio::task::spawn_blocking(move || server.terminate()).await.unwrap();
    assert!(status.success());
    assert!(!log.contains("c29tZXNhbHRz"), "hashes are never logged");
}

/// The import's input rules, through the binary: JSON booleans are JSON
/// booleans, a key given twice, a CSV quote that never closes and names
/// with line separators make their rows bad, and nothing is imported.
#[tokio::test]
async fn strings_for_booleans_duplicate_keys_open_quotes_and_line_separators_are_bad_rows() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let hash = bcrypt("strict old password", "$2b$");
    let good = json!({"email": "good@example.com", "passwordHash": hash, "firstName": "Good"});
    let lines = [
        good.to_string(),
        json!({"email": "string@example.com", "passwordHash": hash, "firstName": "S", "emailVerified": "true"})
            .to_string(),
        // serde_json's json! cannot write a key twice; a file can.
        format!(r#"{{"email":"a@example.com","passwordHash":"{hash}","firstName":"Twice","email":"b@example.com"}}"#),
        json!({"email": "sep@example.com", "passwordHash": hash, "firstName": "Eve\u{2028}Bcc: x@evil.example"})
            .to_string(),
        json!({"email": "para@example.com", "passwordHash": hash, "firstName": "Eve", "lastName": "L\u{2029}Bcc: x@evil.example"})
            .to_string(),
    ];
    let file = dir.path().join("users.jsonl");
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    let out = import(&data, &[], &[file.to_str().unwrap()], None);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(3), "{stdout}{stderr}");
    for expected in [
        "line 2: emailVerified: must be a JSON boolean (true or false), not a string",
        "line 3: names email twice",
        "line 4: firstName: must not contain control",
        "line 5: lastName: must not contain control",
        "4 of 5 rows are not valid; nothing was imported",
    ] {
        assert!(stderr.contains(expected), "{expected:?} in {stderr}");
    }

    // The last row opens a quote that never closes: the csv crate would
    // read "Lovelace" and say nothing.
    let file = dir.path().join("users.csv");
    std::fs::write(
        &file,
        format!(
            "email,passwordHash,firstName,lastName\n\
             good@example.com,{hash},Good,Row\n\
             ada@example.com,{hash},Ada,\"Lovelace\n"
        ),
    )
    .unwrap();
    let out = import(&data, &[], &[file.to_str().unwrap()], None);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(3), "{stdout}{stderr}");
    assert!(
        stderr.contains("line 3: a quoted field opens here and never closes"),
        "{stderr}"
    );
    assert!(
        stderr.contains("1 of 2 rows are not valid; nothing was imported"),
        "{stderr}"
    );
    let store = sqlite(&data).await;
    assert_eq!(store.count_users(TenantId::DEFAULT).await.unwrap(), 0);
}
