//! Redis for the tests: the shared server (`TESSERA_TEST_REDIS_URL`, default
//! `redis://127.0.0.1:6379`), private servers a test may kill, and a private
//! three-master Redis Cluster.
//!
//! Each test binary uses part of this.
#![allow(dead_code)]

use std::collections::HashSet;
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use tessera_store::{RedisOptions, RedisSessionStore, SqliteStore, UserStore};
use uuid::Uuid;

/// How to start the Redis the tests expect.
pub const START_REDIS: &str = "redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save \"\" --appendonly no";

/// The shared Redis the suite runs against.
pub fn url() -> String {
    std::env::var("TESSERA_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// A key prefix no other test uses, so that tests running at once on one
/// Redis never see each other's keys.
pub fn unique_prefix() -> String {
    format!("tessera-test:{}:", Uuid::new_v4().simple())
}

pub fn options(prefix: &str) -> RedisOptions {
    RedisOptions {
        key_prefix: prefix.to_owned(),
        ..RedisOptions::default()
    }
}

/// A fresh, migrated SQLite user store in its own temporary directory.
pub async fn sqlite_users() -> (SqliteStore, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::connect(dir.path().join("tessera.db").to_str().unwrap())
        .await
        .unwrap();
    store.migrate().await.unwrap();
    (store, dir)
}

/// Connects to the shared Redis, failing the test with directions when it
/// does not answer: these tests never skip.
pub async fn connect_shared(users: Arc<dyn UserStore>, prefix: &str) -> RedisSessionStore {
    let url = url();
    match RedisSessionStore::connect_with(&url, users, options(prefix)).await {
        Ok(store) => store,
        Err(err) => panic!(
            "the Redis tests need a Redis at {url} (set TESSERA_TEST_REDIS_URL to use another), \
             but it does not answer: {err:?}. Start one with: {START_REDIS}"
        ),
    }
}

/// A synchronous connection for looking behind the store's back.
pub fn raw(url: &str) -> redis::Connection {
    let client = redis::Client::open(url).unwrap();
    client.get_connection_with_timeout(Duration::from_secs(2)).unwrap()
}

/// Deletes every key under a prefix when dropped, so that the shared Redis
/// does not collect test data (it would expire anyway).
pub struct Cleanup {
    pub url: String,
    pub prefix: String,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let Ok(client) = redis::Client::open(self.url.as_str()) else {
            return;
        };
        let Ok(mut conn) = client.get_connection_with_timeout(Duration::from_secs(1)) else {
            return;
        };
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{}*", self.prefix))
            .query(&mut conn)
            .unwrap_or_default();
        if !keys.is_empty() {
            let _: redis::RedisResult<i64> = redis::cmd("DEL").arg(keys).query(&mut conn);
        }
    }
}

/// A port nothing listens on whose cluster bus port (+10000) is free too.
pub fn free_port() -> u16 {
    static HANDED_OUT: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
    loop {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        if port > 55_000 || TcpListener::bind(("127.0.0.1", port + 10_000)).is_err() {
            continue;
        }
        let mut handed_out = HANDED_OUT.lock().unwrap();
        if handed_out.get_or_insert_with(HashSet::new).insert(port) {
            return port;
        }
    }
}

/// Waits until the Redis on `port` answers `PING`.
fn wait_until_up(port: u16) {
    let url = format!("redis://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let up = redis::Client::open(url.as_str())
            .and_then(|client| client.get_connection_with_timeout(Duration::from_millis(200)))
            .and_then(|mut conn| redis::cmd("PING").query::<String>(&mut conn));
        if up.is_ok() {
            return;
        }
        assert!(Instant::now() < deadline, "redis-server on port {port} did not come up");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn redis_server() -> Command {
    // Directions rather than a bare "No such file" when it is missing.
    if Command::new("redis-server").arg("--version").output().is_err() {
        panic!("redis-server is not installed (apt-get install redis-server); then: {START_REDIS}");
    }
    Command::new("redis-server")
}

/// A Redis of this test's own, without persistence, that the test may kill
/// and restart on the same port. Killed when dropped.
pub struct PrivateRedis {
    pub port: u16,
    child: Option<Child>,
    dir: tempfile::TempDir,
}

impl PrivateRedis {
    pub fn start() -> Self {
        let mut redis = Self {
            port: free_port(),
            child: None,
            dir: tempfile::tempdir().unwrap(),
        };
        redis.restart();
        redis
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The server's process id (for SIGSTOP/SIGCONT).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).unwrap_or(0)
    }

    /// Kills the server (SIGKILL: no goodbye to its clients).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        // Wait until the port refuses connections.
        let deadline = Instant::now() + Duration::from_secs(5);
        while TcpStream::connect(("127.0.0.1", self.port)).is_ok() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts the server (again) on the same port, empty.
    pub fn restart(&mut self) {
        self.kill();
        let child = redis_server()
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        wait_until_up(self.port);
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A three-master Redis Cluster on free ports, one per test binary, started
/// the first time it is asked for. Its servers stop (and their directories
/// go) when the test binary exits: each runs under a small shell that
/// watches this process.
pub fn cluster() -> &'static [String] {
    static CLUSTER: OnceLock<Vec<String>> = OnceLock::new();
    CLUSTER.get_or_init(start_cluster)
}

fn start_cluster() -> Vec<String> {
    const WATCH: &str = r#"dir="$1"; shift
redis-server "$@" &
server=$!
while kill -0 "$0" 2>/dev/null && kill -0 "$server" 2>/dev/null; do sleep 0.2; done
kill -9 "$server" 2>/dev/null
wait "$server" 2>/dev/null
rm -rf "$dir""#;
    redis_server();
    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    for port in &ports {
        let dir: PathBuf = std::env::temp_dir().join(format!("tessera-test-cluster-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let port = port.to_string();
        let mut watcher = Command::new("sh")
            .arg("-c")
            .arg(WATCH)
            .arg(std::process::id().to_string())
            .arg(&dir)
            .args(["--port", &port, "--bind", "127.0.0.1", "--daemonize", "no"])
            .args(["--cluster-enabled", "yes", "--cluster-config-file"])
            .arg(format!("nodes-{port}.conf"))
            .args(["--save", "", "--appendonly", "no", "--dir"])
            .arg(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Reaped when it ends, at the latest as this process exits.
        std::thread::spawn(move || watcher.wait());
    }
    for port in &ports {
        wait_until_up(*port);
    }
    let nodes: Vec<String> = ports.iter().map(|port| format!("127.0.0.1:{port}")).collect();
    let created = Command::new("redis-cli")
        .args(["--cluster", "create"])
        .args(&nodes)
        .args(["--cluster-replicas", "0", "--cluster-yes"])
        .output()
        .unwrap();
    assert!(
        created.status.success(),
        "redis-cli --cluster create failed: {}",
        String::from_utf8_lossy(&created.stdout)
    );
    let urls: Vec<String> = nodes.iter().map(|node| format!("redis://{node}")).collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    for url in &urls {
        loop {
            let info: String = redis::cmd("CLUSTER").arg("INFO").query(&mut raw(url)).unwrap();
            if info.contains("cluster_state:ok") {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the test cluster did not become ready: {info}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    urls
}
