//! A TCP proxy that can stop forwarding, for tests of stalls and
//! partitions between the store and its server.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};

/// A TCP proxy to the server that can stop forwarding, holding every byte
/// (and every connection) as a network partition or a frozen host would.
pub struct FreezableProxy {
    pub addr: SocketAddr,
    state: Arc<ProxyState>,
}

#[derive(Default)]
struct ProxyState {
    frozen: AtomicBool,
    /// Freeze as soon as the client sends bytes containing this.
    freeze_on: Mutex<Option<Vec<u8>>>,
}

impl ProxyState {
    /// Whether to hold `sent` (bytes from the client), freezing if they are
    /// what [`FreezableProxy::freeze_on`] waits for.
    fn holds(&self, sent: &[u8]) -> bool {
        let mut freeze_on = self.freeze_on.lock().unwrap();
        let matched = freeze_on
            .as_deref()
            .is_some_and(|marker| sent.windows(marker.len()).any(|w| w == marker));
        if matched {
            *freeze_on = None;
            self.frozen.store(true, Ordering::SeqCst);
        }
        self.frozen.load(Ordering::SeqCst)
    }
}

impl FreezableProxy {
    /// Listens on a free loopback port and forwards to `upstream`.
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(ProxyState::default());
        let pumps = Arc::clone(&state);
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(upstream).await else {
                    continue;
                };
                let (client_read, client_write) = client.into_split();
                let (server_read, server_write) = server.into_split();
                tokio::spawn(pump(client_read, server_write, Arc::clone(&pumps), true));
                tokio::spawn(pump(server_read, client_write, Arc::clone(&pumps), false));
            }
        });
        Self { addr, state }
    }

    /// Stops (or resumes) forwarding, in both directions, on every connection.
    pub fn freeze(&self, frozen: bool) {
        self.state.frozen.store(frozen, Ordering::SeqCst);
    }

    /// Freezes the moment a client sends `marker`, which is then held too:
    /// the network dies right after the client sent its query.
    pub fn freeze_on(&self, marker: &[u8]) {
        *self.state.freeze_on.lock().unwrap() = Some(marker.to_vec());
    }
}

async fn pump(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, state: Arc<ProxyState>, from_client: bool) {
    let mut buf = vec![0; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        while if from_client {
            state.holds(&buf[..n])
        } else {
            state.frozen.load(Ordering::SeqCst)
        } {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}
