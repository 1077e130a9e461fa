//! Outgoing mail: email verification, password reset, password-changed
//! notices.
//!
//! [`Mailer::send`] never waits and never fails the request that called it:
//! the message goes into a bounded queue (full: dropped with a warning), and
//! one task renders and delivers it in the background, at most
//! [`MailSettings::concurrency`] at once.
//!
//! - With `TESSERA_SMTP_URL`, delivery is SMTP through `lettre` (rustls for
//!   `smtps://` and STARTTLS, see [`SmtpTarget`]). Each attempt, from the
//!   connection to the reply to the message's data, has one deadline
//!   ([`MailSettings::smtp_timeout`]): lettre's own timeout covers only the
//!   TCP connection, so a server that never sends its banner, or stops
//!   answering, would otherwise hold a delivery slot for good. Transient
//!   failures (connection refused or lost, that deadline, 4xx replies) are
//!   retried with exponential backoff and jitter, without a slot while they
//!   wait; a 5xx reply is final. Each failure is logged, with the kind of
//!   message, never its recipient, link or token.
//! - Without it, each message is an RFC 5322 file (what SMTP would carry)
//!   in `<data dir>/outbox/`, mode 0600, written to a temporary name and
//!   renamed, so a reader never sees half a message.
//!
//! Messages are rendered from minijinja templates (subject, plain text, and
//! HTML with auto-escaping, sent as multipart/alternative), built in or read
//! from `TESSERA_MAIL_TEMPLATES` at start-up ([`Templates`]). Names and
//! addresses come from users; lettre encodes every header (RFC 2047, quoted
//! display names), and subjects lose any control character, so nothing a
//! user types can add a header or a recipient.

use crate::config::ConfigError;
use crate::secrets::SecretValue;
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{Address, AsyncSmtpTransport, AsyncTransport as _, Message, Tokio1Executor};
use std::path::{Path, PathBuf};
use std::str::FromStr as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tessera_core::{Email, TenantSlug};
use tokio::sync::{mpsc, Notify, OwnedSemaphorePermit, Semaphore};

/// What a message is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MailKind {
    EmailVerification,
    PasswordReset,
    PasswordChanged,
}

impl MailKind {
    pub const ALL: [MailKind; 3] = [Self::EmailVerification, Self::PasswordReset, Self::PasswordChanged];

    /// The templates' base name, also the link's path.
    pub fn name(self) -> &'static str {
        match self {
            Self::EmailVerification => "verify-email",
            Self::PasswordReset => "reset-password",
            Self::PasswordChanged => "password-changed",
        }
    }

    /// How long the link lives, for the text.
    fn valid_for(self) -> Option<&'static str> {
        match self {
            Self::EmailVerification => Some("24 hours"),
            Self::PasswordReset => Some("15 minutes"),
            Self::PasswordChanged => None,
        }
    }
}

/// One message to one user.
pub struct Mail {
    pub to: Email,
    pub kind: MailKind,
    pub first_name: String,
    /// `None` for the default tenant.
    pub tenant_name: Option<String>,
    /// With its token; `None` for a notice.
    pub link: Option<String>,
}

/// The mail settings (`TESSERA_SMTP_URL`, `TESSERA_MAIL_*`) and the fixed
/// delivery policy.
#[derive(Debug, Clone)]
pub struct MailSettings {
    /// `smtp://` or `smtps://` URL; `None` writes the outbox.
    pub smtp_url: Option<SecretValue>,
    /// The `From` mailbox; `None`: `tessera <no-reply@HOST>`, HOST from the
    /// public URL.
    pub from: Option<String>,
    /// Base of the links; `None`: the public URL, else the issuer.
    pub link_base: Option<String>,
    /// A directory of template overrides.
    pub templates: Option<PathBuf>,
    /// Messages waiting to be delivered; more are dropped with a warning.
    pub queue: usize,
    /// Deliveries in flight at once.
    pub concurrency: usize,
    /// Delivery attempts per message, over SMTP or into the outbox (1 = no
    /// retry).
    pub attempts: u32,
    /// Wait before the first retry; doubled for each next one, with jitter.
    pub retry_base: Duration,
    /// The longest wait between two attempts.
    pub retry_max: Duration,
    /// The deadline of one SMTP delivery attempt: connection, TLS, every
    /// command and the message's data, together. Its expiry is a transient
    /// failure.
    pub smtp_timeout: Duration,
}

impl Default for MailSettings {
    fn default() -> Self {
        Self {
            smtp_url: None,
            from: None,
            link_base: None,
            templates: None,
            queue: 1024,
            concurrency: 4,
            // 2 s, 4 s, 8 s, 16 s, 32 s: a relay restarting, or greylisting
            // for a minute, still gets the message.
            attempts: 6,
            retry_base: Duration::from_secs(2),
            retry_max: Duration::from_secs(120),
            smtp_timeout: Duration::from_secs(30),
        }
    }
}

impl MailSettings {
    /// Checks every setting that can be checked without the network: the
    /// SMTP URL, the From mailbox, the link base. (Templates are read when
    /// the mailer starts, also as a [`ConfigError`].)
    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Some(url) = &self.smtp_url {
            SmtpTarget::parse(url.expose())?;
        }
        if let Some(from) = &self.from {
            parse_from(from)?;
        }
        if let Some(base) = &self.link_base {
            check_link_base(base)?;
        }
        if self.queue == 0 || self.concurrency == 0 || self.attempts == 0 {
            return Err(ConfigError::new(
                "TESSERA_SMTP_URL",
                "the mail queue, concurrency and attempts must be at least 1".to_owned(),
            ));
        }
        Ok(())
    }
}

/// How an SMTP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    /// `smtps://`: TLS from the first byte (port 465).
    Implicit,
    /// STARTTLS, and no delivery without it (`?tls=required`; the default
    /// with credentials).
    Required,
    /// STARTTLS when the server offers it (`?tls=opportunistic`; the default
    /// without credentials).
    Opportunistic,
    /// Plain text (`?tls=none`): a relay on the same host only.
    None,
}

/// A parsed `TESSERA_SMTP_URL`:
/// `smtp[s]://[user:password@]host[:port][?tls=required|opportunistic|none]`.
/// User and password are percent-decoded. Credentials are refused over a
/// connection that may be plain text, except to a loopback host.
pub struct SmtpTarget {
    pub host: String,
    pub port: u16,
    pub tls: TlsMode,
    credentials: Option<(String, SecretValue)>,
}

impl std::fmt::Debug for SmtpTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpTarget")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("user", &self.credentials.as_ref().map(|(user, _)| user))
            .finish()
    }
}

impl SmtpTarget {
    pub fn parse(raw: &str) -> Result<Self, ConfigError> {
        let shown = crate::startup::redact_url(raw);
        let bad = |why: &str| {
            ConfigError::new(
                "TESSERA_SMTP_URL",
                format!(
                    "{shown} {why}; expected smtp[s]://[user:password@]host[:port][?tls=required|opportunistic|none]"
                ),
            )
        };
        let url = url::Url::parse(raw.trim()).map_err(|_| bad("is not a URL"))?;
        let implicit = match url.scheme() {
            "smtps" => true,
            "smtp" => false,
            _ => return Err(bad("must start with smtp:// or smtps://")),
        };
        let host = match url.host() {
            Some(url::Host::Domain(d)) if !d.is_empty() => d.to_owned(),
            Some(url::Host::Ipv4(ip)) => ip.to_string(),
            Some(url::Host::Ipv6(ip)) => ip.to_string(),
            _ => return Err(bad("has no host")),
        };
        if !matches!(url.path(), "" | "/") || url.fragment().is_some() {
            return Err(bad("must have no path"));
        }
        let mut tls = None;
        for (key, value) in url.query_pairs() {
            match (key.as_ref(), value.as_ref()) {
                ("tls", "required") => tls = Some(TlsMode::Required),
                ("tls", "opportunistic") => tls = Some(TlsMode::Opportunistic),
                ("tls", "none") => tls = Some(TlsMode::None),
                ("tls", _) => return Err(bad("has a tls= other than required, opportunistic or none")),
                _ => return Err(bad(&format!("has an unknown parameter {key:?}"))),
            }
        }
        let decode = |s: &str| {
            percent_decode(s).ok_or_else(|| bad("has a user or password that is not valid percent-encoded UTF-8"))
        };
        let credentials = match (url.username(), url.password()) {
            ("", None) => None,
            (user, Some(password)) if !user.is_empty() => Some((decode(user)?, SecretValue::new(decode(password)?))),
            _ => return Err(bad("has a user without a password (or a password without a user)")),
        };
        let tls = match (implicit, tls) {
            (true, None | Some(TlsMode::Required)) => TlsMode::Implicit,
            (true, Some(_)) => return Err(bad("is smtps:// (TLS from the start) with a weaker tls=")),
            (false, Some(mode)) => mode,
            (false, None) if credentials.is_some() => TlsMode::Required,
            (false, None) => TlsMode::Opportunistic,
        };
        let loopback = host == "localhost"
            || host
                .trim_matches(|c| c == '[' || c == ']')
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        if credentials.is_some() && matches!(tls, TlsMode::Opportunistic | TlsMode::None) && !loopback {
            return Err(bad(
                "would send the password over a connection that may be plain text; use tls=required or smtps://",
            ));
        }
        let port = url.port().unwrap_or(match tls {
            TlsMode::Implicit => 465,
            TlsMode::Required => 587,
            TlsMode::Opportunistic | TlsMode::None => 25,
        });
        Ok(Self {
            host,
            port,
            tls,
            credentials,
        })
    }

    fn transport(&self, hello: &str, timeout: Duration) -> Result<AsyncSmtpTransport<Tokio1Executor>, ConfigError> {
        let tls_params = || {
            TlsParameters::new(self.host.clone())
                .map_err(|e| ConfigError::new("TESSERA_SMTP_URL", format!("cannot set up TLS for {}: {e}", self.host)))
        };
        let tls = match self.tls {
            TlsMode::Implicit => Tls::Wrapper(tls_params()?),
            TlsMode::Required => Tls::Required(tls_params()?),
            TlsMode::Opportunistic => Tls::Opportunistic(tls_params()?),
            TlsMode::None => Tls::None,
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(self.host.clone())
            .port(self.port)
            .tls(tls)
            .timeout(Some(timeout))
            .hello_name(ClientId::Domain(hello.to_owned()));
        if let Some((user, password)) = &self.credentials {
            builder = builder.credentials(Credentials::new(user.clone(), password.expose().to_owned()));
        }
        Ok(builder.build())
    }
}

fn percent_decode(raw: &str) -> Option<String> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = raw.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn parse_from(raw: &str) -> Result<Mailbox, ConfigError> {
    Mailbox::from_str(raw.trim()).map_err(|e| {
        ConfigError::new(
            "TESSERA_MAIL_FROM",
            format!("{raw:?} is not a mailbox ({e}); write `Name <address@example.com>` or `address@example.com`"),
        )
    })
}

fn check_link_base(raw: &str) -> Result<(), ConfigError> {
    let bad = || {
        ConfigError::new(
            "TESSERA_MAIL_LINK_BASE",
            format!("{raw:?} is not an http:// or https:// URL without query or fragment (links append /reset-password?token=...)"),
        )
    };
    let url = url::Url::parse(raw).map_err(|_| bad())?;
    if !matches!(url.scheme(), "http" | "https")
        || url.host().is_none()
        || url.query().is_some()
        || url.fragment().is_some()
        || raw.len() > 512
    {
        return Err(bad());
    }
    Ok(())
}

/// The default sender: `tessera <no-reply@HOST>`, HOST from `public_base`
/// when it is a domain name, else `localhost`.
fn default_from(public_base: &str) -> Result<Mailbox, ConfigError> {
    let host = url::Url::parse(public_base)
        .ok()
        .and_then(|u| match u.host() {
            Some(url::Host::Domain(d)) => Some(d.to_owned()),
            _ => None,
        })
        .unwrap_or_else(|| "localhost".to_owned());
    let address = Address::new("no-reply", &host)
        .or_else(|_| Address::new("no-reply", "localhost"))
        .map_err(|e| {
            ConfigError::new(
                "TESSERA_MAIL_FROM",
                format!("cannot make a sender address from {public_base:?} ({e}); set TESSERA_MAIL_FROM"),
            )
        })?;
    Ok(Mailbox::new(Some("tessera".to_owned()), address))
}

const TEMPLATE_PARTS: [&str; 3] = ["subject", "txt", "html"];

/// The built-in templates, `<kind>.<part>`.
fn builtin(name: &str) -> Option<&'static str> {
    macro_rules! builtins {
        ($($file:literal),*) => {
            match name {
                $($file => Some(include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/templates/mail/", $file))),)*
                _ => None,
            }
        };
    }
    builtins!(
        "verify-email.subject",
        "verify-email.txt",
        "verify-email.html",
        "reset-password.subject",
        "reset-password.txt",
        "reset-password.html",
        "password-changed.subject",
        "password-changed.txt",
        "password-changed.html"
    )
}

/// The message templates, compiled once at start-up.
///
/// Each kind (`verify-email`, `reset-password`, `password-changed`) has a
/// `.subject`, a `.txt` and a `.html` template. A directory overrides any of
/// them by file name; a missing file keeps the built-in, except that a
/// directory with a kind's `.txt` and without its `.html` sends that kind as
/// plain text only (the built-in HTML would not say what the text says).
/// Any other file, a syntax error, or a template using a variable it is not
/// given is refused at start-up. Variables: `first_name`, `email`,
/// `tenant_name` (none for the default tenant), `link` and `valid_for`
/// (not for `password-changed`). `.html` templates are auto-escaped.
pub struct Templates {
    env: minijinja::Environment<'static>,
    /// Per kind in [`MailKind::ALL`] order: whether a `.html` part is sent.
    html: [bool; 3],
}

pub struct Rendered {
    pub subject: String,
    pub text: String,
    pub html: Option<String>,
}

impl Templates {
    pub fn load(dir: Option<&Path>) -> Result<Self, ConfigError> {
        let mut env = minijinja::Environment::new();
        env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
        env.set_keep_trailing_newline(true);
        let mut html = [true; 3];
        let bad = |message: String| ConfigError::new("TESSERA_MAIL_TEMPLATES", message);
        let mut overridden = std::collections::BTreeMap::new();
        if let Some(dir) = dir {
            let entries =
                std::fs::read_dir(dir).map_err(|e| bad(format!("cannot read the directory {}: {e}", dir.display())))?;
            for entry in entries {
                let entry = entry.map_err(|e| bad(format!("cannot read {}: {e}", dir.display())))?;
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.starts_with('.') {
                    continue;
                }
                if builtin(&name).is_none() {
                    return Err(bad(format!(
                        "{} is not a template tessera knows; expected KIND.subject, KIND.txt or KIND.html \
                         with KIND one of verify-email, reset-password, password-changed",
                        entry.path().display()
                    )));
                }
                let path = entry.path();
                let meta = std::fs::metadata(&path).map_err(|e| bad(format!("cannot read {}: {e}", path.display())))?;
                if !meta.is_file() || meta.len() > 64 * 1024 {
                    return Err(bad(format!("{} must be a file of at most 64 KiB", path.display())));
                }
                let source = std::fs::read_to_string(&path)
                    .map_err(|e| bad(format!("cannot read {} as UTF-8 text: {e}", path.display())))?;
                overridden.insert(name, source);
            }
        }
        for (i, kind) in MailKind::ALL.iter().enumerate() {
            let text_overridden = overridden.contains_key(&format!("{}.txt", kind.name()));
            let html_overridden = overridden.contains_key(&format!("{}.html", kind.name()));
            html[i] = html_overridden || !text_overridden;
            for part in TEMPLATE_PARTS {
                let name = format!("{}.{part}", kind.name());
                let (source, origin) = match overridden.remove(&name) {
                    Some(source) => (source, "override"),
                    None => (builtin(&name).unwrap_or_default().to_owned(), "built-in"),
                };
                env.add_template_owned(name.clone(), source)
                    .map_err(|e| bad(format!("the {origin} template {name}: {e:#}")))?;
            }
        }
        let templates = Self { env, html };
        // Every template renders with every variable it may be given, so a
        // typo fails now, not at a user's first reset.
        for kind in MailKind::ALL {
            for tenant in [None, Some("Acme".to_owned())] {
                let sample = Mail {
                    to: Email::parse("ada@example.com").map_err(|e| bad(e.to_string()))?,
                    kind,
                    first_name: "Ada".to_owned(),
                    tenant_name: tenant,
                    link: kind
                        .valid_for()
                        .map(|_| format!("https://auth.example/{}?token=sample", kind.name())),
                };
                templates
                    .render(&sample)
                    .map_err(|e| bad(format!("a {} template does not render: {e:#}", kind.name())))?;
            }
        }
        Ok(templates)
    }

    pub fn render(&self, mail: &Mail) -> Result<Rendered, minijinja::Error> {
        // `link` and `valid_for` only exist for messages that have them, so
        // a notice template that uses them fails at start-up.
        let mut context = std::collections::BTreeMap::new();
        context.insert("first_name", minijinja::Value::from(mail.first_name.as_str()));
        context.insert("email", minijinja::Value::from(mail.to.as_str()));
        context.insert("tenant_name", minijinja::Value::from(mail.tenant_name.as_deref()));
        if let Some(link) = &mail.link {
            context.insert("link", minijinja::Value::from(link.as_str()));
        }
        if let Some(valid_for) = mail.kind.valid_for() {
            context.insert("valid_for", minijinja::Value::from(valid_for));
        }
        let render = |part: &str| {
            self.env
                .get_template(&format!("{}.{part}", mail.kind.name()))
                .and_then(|t| t.render(&context))
        };
        let subject = render("subject")?;
        // One line, whatever the template or a name holds.
        let subject = subject
            .split(|c: char| c.is_control() || c.is_whitespace())
            .filter(|w| !w.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        let text = render("txt")?;
        let index = MailKind::ALL.iter().position(|k| *k == mail.kind).unwrap_or(0);
        let html = if self.html[index] { Some(render("html")?) } else { None };
        Ok(Rendered { subject, text, html })
    }
}

/// Where messages go.
enum Delivery {
    Outbox(PathBuf),
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
}

struct Worker {
    delivery: Delivery,
    templates: Templates,
    from: Mailbox,
    /// Domain of the Message-ID.
    domain: String,
    settings: MailSettings,
}

/// Sends mail in the background. Cheap to clone.
#[derive(Clone)]
pub struct Mailer {
    queue: mpsc::Sender<Mail>,
    link_base: Arc<str>,
    pending: Arc<Pending>,
}

/// Messages accepted and not yet delivered or given up on.
#[derive(Default)]
struct Pending {
    count: AtomicUsize,
    idle: Notify,
}

impl Pending {
    fn done(&self) {
        if self.count.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.idle.notify_waiters();
        }
    }
}

impl Mailer {
    /// Reads the templates, prepares the transport and starts the delivery
    /// task. `public_base` is the public URL (else the issuer): the default
    /// link base and sender domain. Bad settings are [`ConfigError`]s.
    pub fn start(settings: &MailSettings, outbox: PathBuf, public_base: &str) -> Result<Self, ConfigError> {
        settings.validate()?;
        let templates = Templates::load(settings.templates.as_deref())?;
        let from = match &settings.from {
            Some(raw) => parse_from(raw)?,
            None => default_from(public_base)?,
        };
        let domain = from.email.domain().to_owned();
        let delivery = match &settings.smtp_url {
            Some(url) => {
                let target = SmtpTarget::parse(url.expose())?;
                tracing::info!(host = %target.host, port = target.port, tls = ?target.tls, "mail goes out over SMTP");
                Delivery::Smtp(target.transport(&domain, settings.smtp_timeout)?)
            }
            None => {
                tracing::info!(outbox = %outbox.display(), "TESSERA_SMTP_URL is not set: mail is written to the outbox");
                Delivery::Outbox(outbox)
            }
        };
        let link_base = settings
            .link_base
            .as_deref()
            .unwrap_or(public_base)
            .trim_end_matches('/')
            .into();
        let (queue, received) = mpsc::channel(settings.queue);
        let pending = Arc::new(Pending::default());
        let worker = Arc::new(Worker {
            delivery,
            templates,
            from,
            domain,
            settings: settings.clone(),
        });
        tokio::spawn(run(worker, received, pending.clone()));
        Ok(Self {
            queue,
            link_base,
            pending,
        })
    }

    /// Queues `mail`; never waits. A full queue drops it, with a warning.
    pub fn send(&self, mail: Mail) {
        let kind = mail.kind.name();
        self.pending.count.fetch_add(1, Ordering::AcqRel);
        if self.queue.try_send(mail).is_err() {
            self.pending.done();
            tracing::warn!(kind, "the mail queue is full; a message was dropped");
        }
    }

    /// The link for a token: `<link base>/<verify-email|reset-password>?token=...`,
    /// with `&tenant=<slug>` for tenants other than the default.
    pub fn link(&self, kind: MailKind, token: &str, tenant_slug: &TenantSlug) -> String {
        let mut link = format!("{}/{}?token={token}", self.link_base, kind.name());
        if !tenant_slug.is_default() {
            link.push_str("&tenant=");
            link.push_str(tenant_slug.as_str());
        }
        link
    }

    /// Waits until every accepted message is delivered or given up on, at
    /// most `deadline`; the number still pending then.
    pub async fn drain(&self, deadline: Duration) -> usize {
        let waited = tokio::time::timeout(deadline, async {
            loop {
                let idle = self.pending.idle.notified();
                if self.pending.count.load(Ordering::Acquire) == 0 {
                    return;
                }
                idle.await;
            }
        })
        .await;
        match waited {
            Ok(()) => 0,
            Err(_) => self.pending.count.load(Ordering::Acquire),
        }
    }
}

async fn run(worker: Arc<Worker>, mut received: mpsc::Receiver<Mail>, pending: Arc<Pending>) {
    let slots = Arc::new(Semaphore::new(worker.settings.concurrency.max(1)));
    while let Some(mail) = received.recv().await {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            break;
        };
        let (worker, pending, slots) = (worker.clone(), pending.clone(), slots.clone());
        tokio::spawn(async move {
            worker
                .deliver(
                    mail,
                    Slot {
                        held: Some(slot),
                        slots,
                    },
                )
                .await;
            pending.done();
        });
    }
}

/// A delivery slot, given back while a failed delivery waits to retry, so
/// that messages behind it go out meanwhile.
struct Slot {
    held: Option<OwnedSemaphorePermit>,
    slots: Arc<Semaphore>,
}

impl Slot {
    /// Waits `wait` without the slot, then takes one again; false if the
    /// mailer is closing.
    async fn wait_without(&mut self, wait: Duration) -> bool {
        self.held = None;
        tokio::time::sleep(wait).await;
        match self.slots.clone().acquire_owned().await {
            Ok(permit) => {
                self.held = Some(permit);
                true
            }
            Err(_) => false,
        }
    }
}

/// Why one SMTP delivery attempt failed.
#[derive(Debug)]
enum SmtpFailure {
    Smtp(lettre::transport::smtp::Error),
    TimedOut(Duration),
}

impl std::fmt::Display for SmtpFailure {
    /// A server's reply often names the recipient ("550 <bob@…>: User
    /// unknown"), so of a reply only its code is shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Smtp(err) => match err.status() {
                Some(code) => write!(
                    f,
                    "the SMTP server answered {code} (its text is not logged: it can name the recipient)"
                ),
                None if err.is_response() => f.write_str("the SMTP server sent a reply that could not be read"),
                None => write!(f, "{err}"),
            },
            Self::TimedOut(deadline) => write!(
                f,
                "no answer within {} ms (connection, TLS, a command or the message's data); the connection was closed",
                deadline.as_millis()
            ),
        }
    }
}

impl SmtpFailure {
    /// A 5xx reply: retrying would get the same.
    fn is_permanent(&self) -> bool {
        matches!(self, Self::Smtp(err) if err.is_permanent())
    }
}

impl Worker {
    async fn deliver(&self, mail: Mail, slot: Slot) {
        let kind = mail.kind.name();
        let message = match self.message(&mail) {
            Ok(message) => message,
            Err(err) => {
                tracing::warn!(kind, error = %err, "could not build a message; it was dropped");
                return;
            }
        };
        drop(mail);
        match &self.delivery {
            Delivery::Outbox(dir) => self.deliver_outbox(dir, kind, message.formatted(), slot).await,
            Delivery::Smtp(transport) => self.deliver_smtp(transport, kind, message, slot).await,
        }
    }

    /// Writes the message into the outbox, retried as SMTP deliveries are:
    /// a full disk or a directory an operator is fixing may come right.
    async fn deliver_outbox(&self, dir: &Path, kind: &str, bytes: Vec<u8>, mut slot: Slot) {
        let bytes: Arc<[u8]> = bytes.into();
        let attempts = self.settings.attempts.max(1);
        for attempt in 1..=attempts {
            let (dir, bytes) = (dir.to_path_buf(), bytes.clone());
            let failure = match tokio::task::spawn_blocking(move || write_outbox(&dir, &bytes)).await {
                Ok(Ok(())) => {
                    tracing::debug!(kind, attempt, "mail written to the outbox");
                    return;
                }
                Ok(Err(err)) => err,
                Err(err) => std::io::Error::other(err),
            };
            if attempt == attempts {
                tracing::warn!(kind, attempts, error = %failure, "could not write a message to the outbox; giving up");
                return;
            }
            let wait = backoff(&self.settings, attempt);
            tracing::warn!(kind, attempt, retry_in_ms = wait.as_millis() as u64, error = %failure, "could not write a message to the outbox; retrying");
            if !slot.wait_without(wait).await {
                return;
            }
        }
    }

    async fn deliver_smtp(
        &self,
        transport: &AsyncSmtpTransport<Tokio1Executor>,
        kind: &str,
        message: Message,
        mut slot: Slot,
    ) {
        let attempts = self.settings.attempts.max(1);
        let deadline = self.settings.smtp_timeout;
        for attempt in 1..=attempts {
            // Dropping the send at the deadline drops its connection.
            let failure = match tokio::time::timeout(deadline, transport.send(message.clone())).await {
                Ok(Ok(_)) => {
                    tracing::info!(kind, attempt, "mail delivered");
                    return;
                }
                Ok(Err(err)) => SmtpFailure::Smtp(err),
                Err(_) => SmtpFailure::TimedOut(deadline),
            };
            if failure.is_permanent() {
                tracing::warn!(kind, attempt, error = %failure, "the SMTP server refused a message for good (5xx); not retrying");
                return;
            }
            if attempt == attempts {
                tracing::warn!(kind, attempts, error = %failure, "could not deliver a message; giving up");
                return;
            }
            let wait = backoff(&self.settings, attempt);
            tracing::info!(kind, attempt, retry_in_ms = wait.as_millis() as u64, error = %failure, "mail delivery failed; retrying");
            if !slot.wait_without(wait).await {
                return;
            }
        }
    }

    fn message(&self, mail: &Mail) -> Result<Message, MessageError> {
        let rendered = self.templates.render(mail)?;
        // An internationalized domain goes out in its ASCII form, which every
        // SMTP server takes (a non-ASCII one needs SMTPUTF8).
        let to = mail.to.with_ascii_domain().ok_or(MessageError::Address)?;
        let address = Address::from_str(&to).map_err(|_| MessageError::Address)?;
        // The display name is the user's; lettre quotes or encodes it.
        let display = Some(mail.first_name.clone()).filter(|n| !n.is_empty());
        let to = Mailbox::new(display, address);
        let builder = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(rendered.subject)
            .message_id(Some(format!("<{}@{}>", uuid::Uuid::new_v4().simple(), self.domain)));
        let message = match rendered.html {
            Some(html) => builder.multipart(MultiPart::alternative_plain_html(rendered.text, html)),
            None => builder.singlepart(SinglePart::plain(rendered.text)),
        };
        message.map_err(|e| MessageError::Build(e.to_string()))
    }
}

#[derive(Debug, thiserror::Error)]
enum MessageError {
    #[error("a template failed: {0:#}")]
    Template(#[from] minijinja::Error),
    #[error("the recipient's address is not one the mail library can send to")]
    Address,
    #[error("{0}")]
    Build(String),
}

/// `base × 2^(attempt-1)`, at most `retry_max`, less up to a quarter at
/// random so that messages failing together do not retry together.
fn backoff(settings: &MailSettings, attempt: u32) -> Duration {
    let exp = settings
        .retry_base
        .saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1)))
        .min(settings.retry_max);
    let jitter = rand::random::<f64>() * 0.25;
    exp.mul_f64(1.0 - jitter)
}

/// Writes one message into `dir` (created 0700 if missing) as
/// `<unix ms>-<random>.eml`, mode 0600: first under a hidden temporary
/// name, then renamed, so a reader sees the whole file or none.
fn write_outbox(dir: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or_default();
    let name = format!("{millis}-{}.eml", uuid::Uuid::new_v4().simple());
    let temporary = dir.join(format!(".{name}.tmp"));
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&temporary)
        .and_then(|mut file| file.write_all(bytes));
    match written.and_then(|()| std::fs::rename(&temporary, dir.join(&name))) {
        Ok(()) => Ok(()),
        Err(err) => {
            let _ = std::fs::remove_file(&temporary);
            Err(err)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smtp_urls_parse_with_safe_defaults() {
        let t = SmtpTarget::parse("smtp://mail.example").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.tls),
            ("mail.example", 25, TlsMode::Opportunistic)
        );
        let t = SmtpTarget::parse("smtp://app:p%40ss%3Aword@mail.example").unwrap();
        assert_eq!(
            (t.port, t.tls),
            (587, TlsMode::Required),
            "credentials require STARTTLS"
        );
        assert_eq!(
            t.credentials.as_ref().map(|(u, p)| (u.as_str(), p.expose())),
            Some(("app", "p@ss:word"))
        );
        assert!(!format!("{t:?}").contains("p@ss"));
        let t = SmtpTarget::parse("smtps://app:secret@mail.example").unwrap();
        assert_eq!((t.port, t.tls), (465, TlsMode::Implicit));
        let t = SmtpTarget::parse("smtp://127.0.0.1:2525?tls=none").unwrap();
        assert_eq!((t.host.as_str(), t.port, t.tls), ("127.0.0.1", 2525, TlsMode::None));
        let t = SmtpTarget::parse("smtp://u:p@localhost:2525?tls=none").unwrap();
        assert_eq!(
            t.tls,
            TlsMode::None,
            "a password in clear text to a local relay is allowed"
        );
        let t = SmtpTarget::parse("smtp://[::1]:2525?tls=opportunistic").unwrap();
        assert_eq!(t.tls, TlsMode::Opportunistic);
    }

    #[test]
    fn bad_smtp_urls_name_the_variable_and_never_the_password() {
        for bad in [
            "mail.example:25",
            "http://mail.example",
            "smtp://",
            "smtp://mail.example/path",
            "smtp://mail.example?tls=maybe",
            "smtp://mail.example?starttls=yes",
            "smtp://user@mail.example",
            "smtp://user:hunter2@mail.example?tls=opportunistic",
            "smtp://user:hunter2@mail.example?tls=none",
            "smtps://user:hunter2@mail.example?tls=none",
            "smtp://user:hunter2%ff@mail.example?tls=required",
        ] {
            let err = SmtpTarget::parse(bad).unwrap_err();
            assert_eq!(err.var, "TESSERA_SMTP_URL", "{bad}");
            assert!(!err.to_string().contains("hunter2"), "{err}");
        }
    }

    #[test]
    fn default_sender_comes_from_the_public_host() {
        assert_eq!(
            default_from("https://auth.example.com").unwrap().to_string(),
            "tessera <no-reply@auth.example.com>"
        );
        assert_eq!(
            default_from("http://127.0.0.1:8080").unwrap().email.to_string(),
            "no-reply@localhost"
        );
        assert!(parse_from("Acme <auth@acme.example>").is_ok());
        assert_eq!(parse_from("not a mailbox").unwrap_err().var, "TESSERA_MAIL_FROM");
        assert_eq!(
            check_link_base("https://app.example/account?x=1").unwrap_err().var,
            "TESSERA_MAIL_LINK_BASE"
        );
        assert!(check_link_base("https://app.example/account").is_ok());
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_with_jitter() {
        let settings = MailSettings {
            retry_base: Duration::from_secs(2),
            retry_max: Duration::from_secs(10),
            ..MailSettings::default()
        };
        for (attempt, full) in [(1, 2.0), (2, 4.0), (3, 8.0), (4, 10.0), (30, 10.0)] {
            let wait = backoff(&settings, attempt).as_secs_f64();
            assert!(wait <= full && wait >= full * 0.75, "attempt {attempt}: {wait}");
        }
    }

    #[test]
    fn built_in_templates_render_every_kind_and_escape_html() {
        let templates = Templates::load(None).unwrap();
        let mail = Mail {
            to: Email::parse("eve@example.com").unwrap(),
            kind: MailKind::PasswordReset,
            first_name: "<b>Eve</b>".to_owned(),
            tenant_name: Some("Acme & Co\r\nBcc: x@evil.example".to_owned()),
            link: Some("https://auth.example/reset-password?token=tpr_x&tenant=acme".to_owned()),
        };
        let r = templates.render(&mail).unwrap();
        assert!(
            !r.subject.contains('\n') && !r.subject.contains('\r'),
            "{:?}",
            r.subject
        );
        assert!(r.text.contains("<b>Eve</b>"), "plain text is not escaped");
        let html = r.html.unwrap();
        assert!(
            html.contains("&lt;b&gt;Eve&lt;&#x2f;b&gt;") || html.contains("&lt;b&gt;Eve&lt;/b&gt;"),
            "{html}"
        );
        assert!(!html.contains("<b>Eve"));
        assert!(html.contains("Acme &amp; Co"));
    }
}
