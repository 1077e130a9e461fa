//! A small SMTP server on loopback for the mail tests: it speaks enough of
//! RFC 5321 for lettre (EHLO, AUTH PLAIN, MAIL, RCPT, DATA with dot
//! unstuffing, RSET, NOOP, QUIT), records every message with its envelope,
//! and can be told to answer 451 to the next N transactions or 550 to all,
//! or to go silent in the next N sessions ([`Stall`]): before its banner,
//! after it, or after a message's data, holding the connection open until
//! the client closes it.
//! No STARTTLS: the mailer's opportunistic default sends in plain text to it.
//!
//! Written here rather than taken from PyPI (aiosmtpd) so the tests need
//! nothing beyond cargo; it is test code and never faces the network.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};

/// One message as the sink received it.
#[derive(Clone, Debug)]
pub struct Received {
    pub mail_from: String,
    pub rcpt_to: Vec<String>,
    pub data: Vec<u8>,
}

impl Received {
    pub fn parsed(&self) -> mail_parser::Message<'_> {
        mail_parser::MessageParser::default()
            .parse(&self.data)
            .expect("an RFC 5322 message")
    }
}

/// Where a stalling session stops answering.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stall {
    /// Accepts the connection and never sends its `220` banner.
    BeforeBanner,
    /// Sends the banner, then answers nothing (not even `EHLO`).
    AfterBanner,
    /// Answers up to `354`, reads the whole message, and never answers its
    /// end: the client cannot know whether it was accepted.
    AfterData,
}

#[derive(Default)]
struct State {
    messages: Mutex<Vec<Received>>,
    /// `AUTH PLAIN` payloads (decoded) the clients sent.
    logins: Mutex<Vec<String>>,
    transient: AtomicUsize,
    permanent: AtomicBool,
    /// `MAIL FROM` commands seen: one per delivery attempt.
    attempts: AtomicUsize,
    /// The next sessions to stall, and where.
    stalls: Mutex<Option<(Stall, usize)>>,
    /// Sessions that stalled and that the client then closed.
    stalls_closed: AtomicUsize,
    /// Messages read to their end and never answered (not in `messages`).
    unanswered: AtomicUsize,
}

impl State {
    fn take_stall(&self) -> Option<Stall> {
        let mut stalls = self.stalls.lock().unwrap();
        let (stall, left) = (*stalls)?;
        *stalls = (left > 1).then_some((stall, left - 1));
        Some(stall)
    }
}

pub struct SmtpSink {
    pub port: u16,
    state: Arc<State>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl SmtpSink {
    pub async fn start() -> Self {
        Self::start_on(0).await
    }

    /// On a given port (a test that starts the sink late, after the mailer
    /// has met a refused connection there).
    pub async fn start_on(port: u16) -> Self {
        let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(State::default());
        let shared = state.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(session(stream, shared.clone()));
            }
        });
        Self { port, state, task }
    }

    /// `smtp://127.0.0.1:PORT`: no credentials, opportunistic STARTTLS.
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Answer `451` to the next `n` transactions.
    pub fn fail_next(&self, n: usize) {
        self.state.transient.store(n, Ordering::SeqCst);
    }

    /// Answer `550` to every recipient, naming it in the reply.
    pub fn refuse_permanently(&self) {
        self.state.permanent.store(true, Ordering::SeqCst);
    }

    pub fn attempts(&self) -> usize {
        self.state.attempts.load(Ordering::SeqCst)
    }

    /// The next `n` sessions go silent at `stall`.
    pub fn stall_next(&self, n: usize, stall: Stall) {
        *self.state.stalls.lock().unwrap() = (n > 0).then_some((stall, n));
    }

    /// Stalled sessions whose connection the client closed.
    pub fn stalls_closed(&self) -> usize {
        self.state.stalls_closed.load(Ordering::SeqCst)
    }

    /// Messages read whole and never answered.
    pub fn unanswered(&self) -> usize {
        self.state.unanswered.load(Ordering::SeqCst)
    }

    pub fn messages(&self) -> Vec<Received> {
        self.state.messages.lock().unwrap().clone()
    }

    pub fn logins(&self) -> Vec<String> {
        self.state.logins.lock().unwrap().clone()
    }

    /// The messages addressed (envelope) to `to`.
    pub fn messages_to(&self, to: &str) -> Vec<Received> {
        self.messages()
            .into_iter()
            .filter(|m| m.rcpt_to.iter().any(|r| r == to))
            .collect()
    }

    pub async fn wait_for_message_to(&self, to: &str, nth: usize) -> Received {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(message) = self.messages_to(to).into_iter().nth(nth) {
                return message;
            }
            assert!(Instant::now() < deadline, "no message #{nth} reached {to}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn angle_address(arg: &str) -> String {
    let start = arg.find('<').map(|i| i + 1).unwrap_or(0);
    let end = arg[start..].find('>').map(|i| start + i).unwrap_or(arg.len());
    arg[start..end].to_owned()
}

/// A stalled session: answers nothing, reads (and drops) whatever comes,
/// and keeps its side open until the client closes the connection.
async fn hold(mut lines: BufReader<OwnedReadHalf>, write: OwnedWriteHalf, state: &State) {
    let mut sink = Vec::new();
    loop {
        sink.clear();
        match lines.read_until(b'\n', &mut sink).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
    drop(write);
    state.stalls_closed.fetch_add(1, Ordering::SeqCst);
}

async fn session(stream: TcpStream, state: Arc<State>) {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read);
    let stall = state.take_stall();
    let reply = |text: String| {
        let mut out = text.into_bytes();
        out.extend_from_slice(b"\r\n");
        out
    };
    if stall == Some(Stall::BeforeBanner) {
        return hold(lines, write, &state).await;
    }
    if write.write_all(&reply("220 sink.test ESMTP".into())).await.is_err() {
        return;
    }
    if stall == Some(Stall::AfterBanner) {
        return hold(lines, write, &state).await;
    }
    let (mut from, mut rcpt): (Option<String>, Vec<String>) = (None, Vec::new());
    let mut line = String::new();
    loop {
        line.clear();
        match lines.read_line(&mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let command = line.trim_end_matches(['\r', '\n']).to_owned();
        let upper = command.to_ascii_uppercase();
        let answer = if upper.starts_with("EHLO") {
            "250-sink.test\r\n250-AUTH PLAIN\r\n250-8BITMIME\r\n250 SIZE 10485760".to_owned()
        } else if upper.starts_with("HELO") {
            "250 sink.test".to_owned()
        } else if upper.starts_with("AUTH PLAIN ") {
            use base64::Engine as _;
            let payload = base64::engine::general_purpose::STANDARD
                .decode(command[11..].trim())
                .unwrap_or_default();
            state
                .logins
                .lock()
                .unwrap()
                .push(String::from_utf8_lossy(&payload).replace('\0', " "));
            "235 2.7.0 accepted".to_owned()
        } else if upper.starts_with("MAIL FROM:") {
            state.attempts.fetch_add(1, Ordering::SeqCst);
            let transient = state
                .transient
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok();
            if transient {
                "451 4.3.0 try again later".to_owned()
            } else {
                from = Some(angle_address(&command[10..]));
                rcpt.clear();
                "250 2.1.0 ok".to_owned()
            }
        } else if upper.starts_with("RCPT TO:") {
            let to = angle_address(&command[8..]);
            if state.permanent.load(Ordering::SeqCst) {
                // As Postfix does: the reply names the recipient.
                format!("550 5.1.1 <{to}>: Recipient address rejected: User unknown")
            } else {
                rcpt.push(to);
                "250 2.1.5 ok".to_owned()
            }
        } else if upper == "DATA" {
            if write
                .write_all(&reply("354 end with <CRLF>.<CRLF>".into()))
                .await
                .is_err()
            {
                return;
            }
            let mut data = Vec::new();
            let mut raw = Vec::new();
            loop {
                raw.clear();
                match lines.read_until(b'\n', &mut raw).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
                if raw == b".\r\n" || raw == b".\n" {
                    break;
                }
                let unstuffed = if raw.first() == Some(&b'.') {
                    &raw[1..]
                } else {
                    &raw[..]
                };
                data.extend_from_slice(unstuffed);
            }
            if stall == Some(Stall::AfterData) {
                state.unanswered.fetch_add(1, Ordering::SeqCst);
                return hold(lines, write, &state).await;
            }
            state.messages.lock().unwrap().push(Received {
                mail_from: from.take().unwrap_or_default(),
                rcpt_to: std::mem::take(&mut rcpt),
                data,
            });
            "250 2.0.0 queued".to_owned()
        } else if upper == "RSET" {
            from = None;
            rcpt.clear();
            "250 2.0.0 ok".to_owned()
        } else if upper == "NOOP" {
            "250 2.0.0 ok".to_owned()
        } else if upper == "QUIT" {
            let _ = write.write_all(&reply("221 2.0.0 bye".into())).await;
            return;
        } else {
            "502 5.5.2 not implemented".to_owned()
        };
        if write.write_all(&reply(answer)).await.is_err() {
            return;
        }
    }
}

/// A message as a reader sees it: its header section as sent, then its
/// decoded plain-text and HTML bodies (whatever the transfer encoding).
pub fn readable(raw: &[u8]) -> String {
    let parsed = mail_parser::MessageParser::default()
        .parse(raw)
        .expect("an RFC 5322 message");
    let headers_end = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or(raw.len());
    let mut out = String::from_utf8_lossy(&raw[..headers_end]).into_owned();
    out.push_str("\r\n\r\n");
    if let Some(text) = parsed.body_text(0) {
        out.push_str(&text);
    }
    out.push('\n');
    if let Some(html) = parsed.body_html(0) {
        out.push_str(&html);
    }
    out
}

/// The link in `text` that starts with `prefix`.
pub fn link_in(text: &str, prefix: &str) -> String {
    let at = text
        .find(prefix)
        .unwrap_or_else(|| panic!("no link starting with {prefix} in:\n{text}"));
    text[at..]
        .chars()
        .take_while(|c| !c.is_whitespace() && *c != '"' && *c != '<')
        .collect()
}

/// The `token` (and `tenant`) query parameters of a link.
pub fn link_params(link: &str) -> (String, Option<String>) {
    let url = reqwest::Url::parse(link).unwrap();
    let get = |key: &str| url.query_pairs().find(|(k, _)| k == key).map(|(_, v)| v.into_owned());
    (get("token").expect("a token parameter"), get("tenant"))
}
