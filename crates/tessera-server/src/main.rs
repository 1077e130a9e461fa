//! The `tessera` command.
//!
//! Exit codes: 0 success, 1 a runtime failure (cannot bind, database down),
//! 2 a configuration or usage error (the message names the setting).

use clap::{Args, Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use tessera_core::HashParams;
use tessera_server::client_ip::TrustedProxies;
use tessera_server::config::{parse_duration, Config, ConfigError};
use tessera_server::keys::KeyPolicy;
use tessera_server::ops::Operator;
use tessera_server::ratelimit::{Quota, RateLimitSettings};
use tessera_server::secrets::{self, SecretValue, SecretsSource};
use tessera_server::telemetry::{self, LogFormat};
use tessera_server::Application;
use tessera_store::RotationMode;
use tessera_token::Algorithm;

/// `println!` that returns an error instead of panicking when standard
/// output is gone (`tessera tenant list | head -1`).
macro_rules! outln {
    ($($arg:tt)*) => {
        write_line(format_args!($($arg)*))
    };
}

/// Self-hosted authentication: accounts, sessions and JSON Web Tokens.
#[derive(Parser)]
#[command(name = "tessera", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (embedded SQLite and generated keys unless configured).
    Serve(Box<ServeArgs>),
    /// Print a fresh JWT_SECRET / REFRESH_TOKEN_SECRET pair in .env form.
    Keygen,
    /// Apply database migrations and exit.
    Migrate(StoreArgs),
    /// Tenants: create, list, show, rotate their keys.
    Tenant {
        #[command(subcommand)]
        command: TenantCommand,
    },
    /// A tenant's users: list them, set a role, end their sessions, import them.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// A tenant's audit log, newest first.
    Audit(Box<AuditArgs>),
    /// The master key that seals every stored signing key.
    MasterKey {
        #[command(subcommand)]
        command: MasterKeyCommand,
    },
}

#[derive(Args)]
struct ImportArgs {
    /// The file, or - for standard input.
    file: PathBuf,
    /// The tenant's slug.
    #[arg(long, default_value = "default")]
    tenant: String,
    /// csv or jsonl (default: from the file's extension: .csv, .jsonl, .ndjson, .json).
    #[arg(long, value_parser = ["csv", "jsonl"])]
    format: Option<String>,
    /// skip: report users whose email (or id) is taken and import the others;
    /// fail: import nothing if any is.
    #[arg(long, value_parser = ["skip", "fail"], default_value = "skip")]
    on_conflict: String,
    /// Check every row and run every batch, then roll back: report what would happen.
    #[arg(long)]
    dry_run: bool,
    #[command(flatten)]
    store: StoreArgs,
    /// Give the servers' values: an imported Argon2 hash may ask for up to
    /// the larger of these and 64 MiB, t=10, p=8.
    #[command(flatten)]
    argon2: Argon2Args,
}

/// What operator commands need: the stores, the master key, and the token
/// lifetimes (a rotation keeps old keys verifying for exactly that long), as
/// the servers are configured.
#[derive(Args)]
struct OpsArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// Redis holding sessions, if the servers use it (a revoking rotation ends them there).
    #[arg(long, env = "TESSERA_REDIS_URL", hide_env_values = true)]
    redis_url: Option<String>,
    #[arg(long, env = "TESSERA_REDIS_KEY_PREFIX", default_value = "tessera")]
    redis_key_prefix: String,
    #[arg(long, env = "TESSERA_ACCESS_TTL", value_parser = |s: &str| duration_setting("TESSERA_ACCESS_TTL", s), default_value = "15m")]
    access_ttl: Duration,
    #[arg(long, env = "TESSERA_REFRESH_TTL", value_parser = |s: &str| duration_setting("TESSERA_REFRESH_TTL", s), default_value = "7d")]
    refresh_ttl: Duration,
    #[arg(long, env = "TESSERA_LEEWAY", value_parser = |s: &str| duration_setting("TESSERA_LEEWAY", s), default_value = "5s")]
    leeway: Duration,
    #[command(flatten)]
    keys: KeyArgs,
}

/// Signing algorithm, scheduled rotation, JWKS caching.
#[derive(Args)]
struct KeyArgs {
    /// How the default tenant's access tokens are signed: HS256, EdDSA, ES256 or RS256.
    #[arg(long, env = "TESSERA_SIGNING_ALG", value_parser = |s: &str| signing_alg("TESSERA_SIGNING_ALG", s), default_value = "HS256")]
    signing_alg: Algorithm,
    /// Rotate public-key tenants' keys this often (a duration, or off).
    #[arg(long, env = "TESSERA_KEY_ROTATION", value_parser = |s: &str| optional_duration("TESSERA_KEY_ROTATION", s), default_value = "30d")]
    key_rotation: OptionalDuration,
    /// Rotate HS256 tenants' keys this often (a duration, or off).
    #[arg(long, env = "TESSERA_HMAC_KEY_ROTATION", value_parser = |s: &str| optional_duration("TESSERA_HMAC_KEY_ROTATION", s), default_value = "off")]
    hmac_key_rotation: OptionalDuration,
    /// How long verifiers may cache a JWKS (its Cache-Control max-age).
    #[arg(long, env = "TESSERA_JWKS_MAX_AGE", value_parser = |s: &str| duration_setting("TESSERA_JWKS_MAX_AGE", s), default_value = "5m")]
    jwks_max_age: Duration,
}

impl KeyArgs {
    fn policy(&self) -> KeyPolicy {
        KeyPolicy {
            default_alg: self.signing_alg,
            rotation: self.key_rotation.0,
            hmac_rotation: self.hmac_key_rotation.0,
            jwks_max_age: self.jwks_max_age,
        }
    }
}

/// A duration, or `off`.
#[derive(Clone, Copy, Debug)]
struct OptionalDuration(Option<Duration>);

fn optional_duration(var: &str, raw: &str) -> Result<OptionalDuration, String> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "off" | "never" | "0" => Ok(OptionalDuration(None)),
        _ => duration_setting(var, raw).map(|d| OptionalDuration(Some(d))),
    }
}

/// A role as `tessera user set-role` takes it: a bad one is a usage error.
fn role_arg(raw: &str) -> Result<String, String> {
    tessera_core::Role::parse(raw)
        .map(|role| role.as_str().to_owned())
        .map_err(|_| format!("{raw:?} is not a role: use 1 to 32 of a-z, 0-9, _ and -"))
}

fn signing_alg(var: &str, raw: &str) -> Result<Algorithm, String> {
    Algorithm::from_name(raw.trim())
        .ok_or_else(|| format!("{raw:?} is not HS256, EdDSA, ES256 or RS256 (from --flag or {var})"))
}

#[derive(Subcommand)]
enum TenantCommand {
    /// Create a tenant with fresh keys; prints its API key once.
    Create {
        /// Display name.
        name: String,
        /// URL name (default: made from the name).
        #[arg(long)]
        slug: Option<String>,
        /// How the tenant's access tokens are signed: HS256, EdDSA, ES256 or RS256.
        #[arg(long = "alg", value_parser = |s: &str| signing_alg("--alg", s), default_value = "HS256")]
        tenant_alg: Algorithm,
        #[command(flatten)]
        ops: Box<OpsArgs>,
    },
    /// List tenants by slug.
    List {
        /// Start after this slug (paging).
        #[arg(long)]
        after: Option<String>,
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=1000))]
        limit: u32,
        #[command(flatten)]
        ops: Box<OpsArgs>,
    },
    /// A tenant and its keys (ids and states, never key material).
    Show {
        slug: String,
        #[command(flatten)]
        ops: Box<OpsArgs>,
    },
    /// Rotate a tenant's signing keys (`default` for the default tenant).
    RotateKeys {
        slug: String,
        /// graceful: old keys verify until their tokens expire; revoke: every token and session ends now.
        #[arg(long, value_parser = ["graceful", "revoke"], default_value = "graceful")]
        mode: String,
        /// Switch the tenant's access tokens to this algorithm: graceful publishes a key of it as
        /// the next key (it signs from the following rotation), revoke signs with it at once.
        #[arg(long = "alg", value_parser = |s: &str| signing_alg("--alg", s))]
        new_alg: Option<Algorithm>,
        #[command(flatten)]
        ops: Box<OpsArgs>,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Give an account a role: `admin` administers the tenant's users (/api/admin), `owner` also
    /// its keys; any other role (1 to 32 of a-z 0-9 _ -) is carried in tokens for your services.
    /// A change that is not a promotion ends the account's sessions.
    SetRole {
        email: String,
        #[arg(value_parser = role_arg)]
        role: String,
        /// The tenant's slug.
        #[arg(long, default_value = "default")]
        tenant: String,
        #[command(flatten)]
        ops: Box<OpsArgs>,
    },
    /// A tenant's accounts, newest first.
    List {
        /// The tenant's slug.
        #[arg(long, default_value = "default")]
        tenant: String,
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=1000))]
        limit: u32,
        /// Cursor: the `--before` a previous page printed.
        #[arg(long)]
        before: Option<String>,
        /// One JSON object per line (the API's user shape).
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        ops: Box<OpsArgs>,
    },
    /// End every session of an account (its refresh tokens stop working at once).
    RevokeSessions {
        email: String,
        /// The tenant's slug.
        #[arg(long, default_value = "default")]
        tenant: String,
        #[command(flatten)]
        ops: Box<OpsArgs>,
    },
    /// Import users with bcrypt (or Argon2) password hashes from CSV or JSON lines
    /// (docs/importing.md). Exit codes: 0 done (skipped users reported), 1 runtime
    /// failure, 2 bad arguments or unusable file, 3 bad rows or (with --on-conflict fail)
    /// existing users: nothing imported.
    Import(Box<ImportArgs>),
}

#[derive(Args)]
struct AuditArgs {
    /// The tenant's slug.
    #[arg(long, default_value = "default")]
    tenant: String,
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=500))]
    limit: u32,
    /// Cursor: the `next` a previous page printed.
    #[arg(long)]
    before: Option<i64>,
    /// One JSON object per line.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    ops: OpsArgs,
}

#[derive(Subcommand)]
enum MasterKeyCommand {
    /// Re-seal every stored key under the current master key. With
    /// TESSERA_MASTER_KEY: run after every instance has the new key in
    /// TESSERA_MASTER_KEY and the old one in TESSERA_MASTER_KEY_PREVIOUS.
    /// Embedded default: generates the new key into the data directory
    /// (stop the server first).
    Rotate(Box<OpsArgs>),
}

#[derive(Args)]
struct StoreArgs {
    /// Where the embedded default keeps its SQLite file and generated keys.
    #[arg(long, env = "TESSERA_DATA_DIR", default_value = "./tessera-data")]
    data_dir: PathBuf,
    /// `sqlite://...` (default: tessera.db in the data directory).
    #[arg(long, env = "TESSERA_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// PostgreSQL connections per instance.
    #[arg(long, env = "TESSERA_DATABASE_MAX_CONNECTIONS", value_parser = |s: &str| setting::<u32>("TESSERA_DATABASE_MAX_CONNECTIONS", "a whole number", s), default_value_t = 10)]
    database_max_connections: u32,
    /// Log filter, e.g. `info` or `tessera_server=debug`.
    #[arg(long, env = "TESSERA_LOG", default_value = "info")]
    log: String,
    /// Log format.
    #[arg(long, env = "TESSERA_LOG_FORMAT", value_parser = log_format, default_value = "text")]
    log_format: LogFormat,
}

/// The servers' Argon2id parameters: what they hash with, and so the most
/// a stored (imported) Argon2 hash may ask for.
#[derive(Args)]
struct Argon2Args {
    /// Argon2id memory in KiB (at least 19456, the OWASP minimum).
    #[arg(long, env = "TESSERA_ARGON2_MEMORY_KIB", value_parser = |s: &str| setting::<u32>("TESSERA_ARGON2_MEMORY_KIB", "a whole number of KiB", s), default_value_t = HashParams::OWASP_MINIMUM.memory_kib)]
    argon2_memory_kib: u32,
    /// Argon2id passes (at least 2).
    #[arg(long, env = "TESSERA_ARGON2_ITERATIONS", value_parser = |s: &str| setting::<u32>("TESSERA_ARGON2_ITERATIONS", "a whole number", s), default_value_t = HashParams::OWASP_MINIMUM.iterations)]
    argon2_iterations: u32,
}

impl Argon2Args {
    fn params(&self) -> HashParams {
        HashParams {
            memory_kib: self.argon2_memory_kib,
            iterations: self.argon2_iterations,
            parallelism: 1,
        }
    }
}

#[derive(Args)]
struct ServeArgs {
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    keys: KeyArgs,
    /// Listen address; port 0 picks a free port (the log says which).
    #[arg(long, env = "TESSERA_BIND", value_parser = |s: &str| setting::<SocketAddr>("TESSERA_BIND", "an address like 127.0.0.1:8080", s), default_value = "127.0.0.1:8080")]
    bind: SocketAddr,
    /// Access-token lifetime (90s, 15m, 2h, 7d or plain seconds).
    #[arg(long, env = "TESSERA_ACCESS_TTL", value_parser = |s: &str| duration_setting("TESSERA_ACCESS_TTL", s), default_value = "15m")]
    access_ttl: Duration,
    /// Refresh-token (session) lifetime.
    #[arg(long, env = "TESSERA_REFRESH_TTL", value_parser = |s: &str| duration_setting("TESSERA_REFRESH_TTL", s), default_value = "7d")]
    refresh_ttl: Duration,
    /// Grace window in which the parent of the current refresh token gets the current pair back; 0s turns it off.
    #[arg(long, env = "TESSERA_REFRESH_REUSE_GRACE", value_parser = |s: &str| duration_setting("TESSERA_REFRESH_REUSE_GRACE", s), default_value = "10s")]
    refresh_reuse_grace: Duration,
    /// Clock leeway on exp/nbf/iat, at most 30s.
    #[arg(long, env = "TESSERA_LEEWAY", value_parser = |s: &str| duration_setting("TESSERA_LEEWAY", s), default_value = "5s")]
    leeway: Duration,
    /// `iss` of issued tokens (default: the public URL, else http://<bind address>).
    #[arg(long, env = "TESSERA_ISSUER")]
    issuer: Option<String>,
    /// The URL clients use.
    #[arg(long, env = "TESSERA_PUBLIC_URL")]
    public_url: Option<String>,
    /// `aud` of issued access tokens.
    #[arg(long, env = "TESSERA_AUDIENCE", default_value = "tessera")]
    audience: String,
    /// Redis for sessions (`redis://host:6379`); unset keeps sessions in the database.
    #[arg(long, env = "TESSERA_REDIS_URL", hide_env_values = true)]
    redis_url: Option<String>,
    /// Prefix of every Redis key tessera writes.
    #[arg(long, env = "TESSERA_REDIS_KEY_PREFIX", default_value = "tessera")]
    redis_key_prefix: String,
    /// Password hashes computed at once (default: the number of CPUs).
    #[arg(long, env = "TESSERA_HASH_CONCURRENCY", value_parser = |s: &str| setting::<usize>("TESSERA_HASH_CONCURRENCY", "a whole number", s))]
    hash_concurrency: Option<usize>,
    /// Password checks that may wait for a hashing slot before new ones get 503.
    #[arg(long, env = "TESSERA_HASH_QUEUE", value_parser = |s: &str| setting::<usize>("TESSERA_HASH_QUEUE", "a whole number", s), default_value_t = 64)]
    hash_queue: usize,
    #[command(flatten)]
    argon2: Argon2Args,
    /// Deadline for a whole request, headers to answer; slower requests get 408.
    #[arg(long, env = "TESSERA_REQUEST_TIMEOUT", value_parser = |s: &str| duration_setting("TESSERA_REQUEST_TIMEOUT", s), default_value = "30s")]
    request_timeout: Duration,
    /// Longest wait for a request head (new, trickled or idle keep-alive connection) before closing it.
    #[arg(long, env = "TESSERA_HEADER_TIMEOUT", value_parser = |s: &str| duration_setting("TESSERA_HEADER_TIMEOUT", s), default_value = "10s")]
    header_timeout: Duration,
    /// Connections open at once; more wait in the accept queue (capped by the open-files limit).
    #[arg(long, env = "TESSERA_MAX_CONNECTIONS", value_parser = |s: &str| setting::<usize>("TESSERA_MAX_CONNECTIONS", "a whole number", s), default_value_t = 10_000)]
    max_connections: usize,
    /// Skip applying database migrations at start (run `tessera migrate` yourself).
    #[arg(long, env = "TESSERA_SKIP_MIGRATIONS")]
    skip_migrations: bool,
    /// How long audit events are kept.
    #[arg(long, env = "TESSERA_AUDIT_RETENTION", value_parser = |s: &str| duration_setting("TESSERA_AUDIT_RETENTION", s), default_value = "90d")]
    audit_retention: Duration,
    /// Whether POST /api/auth/signup creates tenants (on/off).
    #[arg(long, env = "TESSERA_SIGNUP", value_parser = on_off("TESSERA_SIGNUP"), default_value = "on")]
    signup: bool,
    /// Refuse logins of accounts whose email is not verified, and open no session at registration (on/off).
    #[arg(long, env = "TESSERA_REQUIRE_EMAIL_VERIFICATION", value_parser = on_off("TESSERA_REQUIRE_EMAIL_VERIFICATION"), default_value = "off")]
    require_email_verification: bool,
    /// Refuse access tokens of sessions that ended (logout, revocation, password reset) before they expire (on/off).
    #[arg(long, env = "TESSERA_REVOCATION_CHECK", value_parser = on_off("TESSERA_REVOCATION_CHECK"), default_value = "off")]
    revocation_check: bool,
    // TESSERA_SMTP_URL has no flag: it may hold a password (read in `config_from`).
    /// Sender of tessera's mail, `Name <address>` (default: tessera <no-reply@PUBLIC-URL-HOST>).
    #[arg(long, env = "TESSERA_MAIL_FROM")]
    mail_from: Option<String>,
    /// Base URL of mailed links (default: the public URL, else the issuer).
    #[arg(long, env = "TESSERA_MAIL_LINK_BASE")]
    mail_link_base: Option<String>,
    /// A directory of mail templates overriding the built-in ones.
    #[arg(long, env = "TESSERA_MAIL_TEMPLATES")]
    mail_templates: Option<PathBuf>,
    #[command(flatten)]
    limits: LimitArgs,
}

/// Rate limits and the client's address.
#[derive(Args)]
struct LimitArgs {
    /// Rate limits on, or off (for benchmarks only: nothing then slows down password guessing).
    #[arg(long, env = "TESSERA_RATE_LIMITS", value_parser = on_off("TESSERA_RATE_LIMITS"), default_value = "on")]
    rate_limits: bool,
    /// Requests per client address (IPv6: per /64) on the unauthenticated POST routes but refresh, as 100/1m, or off.
    #[arg(long, env = "TESSERA_IP_RATE_LIMIT", value_parser = |s: &str| quota_setting("TESSERA_IP_RATE_LIMIT", s), default_value = "100/1m")]
    ip_rate_limit: OptionalQuota,
    /// Failed logins per account (tenant and email) before it locks, as 10/15m, or off.
    #[arg(long, env = "TESSERA_LOGIN_FAILURE_LIMIT", value_parser = |s: &str| quota_setting("TESSERA_LOGIN_FAILURE_LIMIT", s), default_value = "10/15m")]
    login_failure_limit: OptionalQuota,
    /// The first lock of an account past its failures; each further failure doubles it.
    #[arg(long, env = "TESSERA_LOGIN_BACKOFF", value_parser = |s: &str| duration_setting("TESSERA_LOGIN_BACKOFF", s), default_value = "1m")]
    login_backoff: Duration,
    /// The longest lock of an account (locks always end).
    #[arg(long, env = "TESSERA_LOGIN_BACKOFF_MAX", value_parser = |s: &str| duration_setting("TESSERA_LOGIN_BACKOFF_MAX", s), default_value = "15m")]
    login_backoff_max: Duration,
    /// Forgot-password requests per email, as 3/1h, or off.
    #[arg(long, env = "TESSERA_FORGOT_RATE_LIMIT", value_parser = |s: &str| quota_setting("TESSERA_FORGOT_RATE_LIMIT", s), default_value = "3/1h")]
    forgot_rate_limit: OptionalQuota,
    /// Verification-mail resends per email, as 3/1h, or off.
    #[arg(long, env = "TESSERA_RESEND_RATE_LIMIT", value_parser = |s: &str| quota_setting("TESSERA_RESEND_RATE_LIMIT", s), default_value = "3/1h")]
    resend_rate_limit: OptionalQuota,
    /// Proxies (comma-separated IPs and CIDR networks) whose X-Forwarded-For names the client.
    #[arg(long, env = "TESSERA_TRUSTED_PROXIES", value_parser = |s: &str| TrustedProxies::parse(s).map_err(|e| format!("{e} (from --flag or TESSERA_TRUSTED_PROXIES)")))]
    trusted_proxies: Option<TrustedProxies>,
}

impl LimitArgs {
    fn settings(&self) -> RateLimitSettings {
        RateLimitSettings {
            enabled: self.rate_limits,
            per_client: self.ip_rate_limit.0,
            login_failures: self.login_failure_limit.0,
            login_backoff: self.login_backoff,
            login_backoff_max: self.login_backoff_max,
            forgot_per_email: self.forgot_rate_limit.0,
            resend_per_email: self.resend_rate_limit.0,
        }
    }
}

/// A rate limit, or `off`.
#[derive(Clone, Copy, Debug)]
struct OptionalQuota(Option<Quota>);

fn quota_setting(var: &str, raw: &str) -> Result<OptionalQuota, String> {
    Quota::parse(raw)
        .map(OptionalQuota)
        .map_err(|e| format!("{e} (from --flag or {var})"))
}

fn on_off(var: &'static str) -> impl Fn(&str) -> Result<bool, String> + Clone + Send + Sync + 'static {
    move |raw: &str| match raw.trim().to_ascii_lowercase().as_str() {
        "on" | "true" | "1" | "yes" => Ok(true),
        "off" | "false" | "0" | "no" => Ok(false),
        _ => Err(format!("{raw:?} is not on or off (from --flag or {var})")),
    }
}

/// Parses a duration setting; the message names the variable, because that is
/// where operators set it.
fn duration_setting(var: &str, raw: &str) -> Result<Duration, String> {
    parse_duration(raw).map_err(|e| format!("{e} (from --flag or {var})"))
}

/// Parses a setting with `FromStr`; the message names the variable.
fn setting<T: std::str::FromStr>(var: &str, what: &str, raw: &str) -> Result<T, String> {
    raw.trim()
        .parse()
        .map_err(|_| format!("{raw:?} is not {what} (from --flag or {var})"))
}

fn log_format(raw: &str) -> Result<LogFormat, String> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "text" => Ok(LogFormat::Text),
        "json" => Ok(LogFormat::Json),
        _ => Err(format!(
            "{raw:?} is not a log format; use text or json (from --log-format or TESSERA_LOG_FORMAT)"
        )),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Keygen => {
            use std::io::Write as _;
            match std::io::stdout().lock().write_all(secrets::keygen_env().as_bytes()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(err) => {
                    eprintln!("tessera: cannot write to standard output: {err}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Serve(args) => {
            let (format, filter) = (args.store.log_format, args.store.log.clone());
            run(format, &filter, serve(*args))
        }
        Command::Migrate(args) => {
            let config = Config {
                database_url: args.database_url,
                ..Config::embedded(args.data_dir)
            };
            run(args.log_format, &args.log, migrate(config))
        }
        Command::Tenant { command } => match command {
            TenantCommand::Create {
                name,
                slug,
                tenant_alg,
                ops,
            } => {
                let (format, filter) = (ops.store.log_format, ops.store.log.clone());
                run(
                    format,
                    &filter,
                    operate(*ops, |op| async move {
                        let (tenant, api_key) = op.create_tenant(&name, slug.as_deref(), tenant_alg).await?;
                        outln!("created tenant {}", tenant.slug)?;
                        outln!("  id       {}", tenant.id)?;
                        outln!("  name     {}", tenant.name)?;
                        outln!("  api key  {api_key}")?;
                        outln!("The API key is shown this once (tessera keeps only its hash); store it now.")?;
                        Ok(())
                    }),
                )
            }
            TenantCommand::List { after, limit, ops } => {
                let (format, filter) = (ops.store.log_format, ops.store.log.clone());
                run(
                    format,
                    &filter,
                    operate(*ops, |op| async move {
                        let tenants = op.list_tenants(after.as_deref(), limit).await?;
                        outln!("{:<40} {:<36} {:>7}  {:<20}  NAME", "SLUG", "ID", "USERS", "CREATED")?;
                        for (t, users) in &tenants {
                            outln!(
                                "{:<40} {:<36} {:>7}  {:<20}  {}",
                                t.slug.as_str(),
                                t.id.to_string(),
                                users,
                                when(t.created_at),
                                t.name
                            )?;
                        }
                        if tenants.len() == limit as usize {
                            if let Some((last, _)) = tenants.last() {
                                outln!("more: --after {}", last.slug)?;
                            }
                        }
                        Ok(())
                    }),
                )
            }
            TenantCommand::Show { slug, ops } => {
                let (format, filter) = (ops.store.log_format, ops.store.log.clone());
                run(
                    format,
                    &filter,
                    operate(*ops, |op| async move {
                        let report = op.show_tenant(&slug).await?;
                        let t = &report.record.tenant;
                        outln!("slug     {}", t.slug)?;
                        outln!("id       {}", t.id)?;
                        outln!("name     {}", t.name)?;
                        outln!("created  {}", when(t.created_at))?;
                        outln!("users    {}", report.users)?;
                        outln!(
                            "api key  {}",
                            if report.record.api_key_hash.is_some() {
                                "set (hash only)"
                            } else {
                                "none"
                            }
                        )?;
                        outln!("")?;
                        outln!(
                            "{:<24} {:<8} {:<6} {:<8} {:<20}  {:<20}  {:<20}  MASTER KEY",
                            "KID",
                            "KIND",
                            "ALG",
                            "STATE",
                            "CREATED",
                            "ACTIVATED",
                            "VERIFIES UNTIL"
                        )?;
                        for (k, alg) in report.keys.iter().zip(&report.algorithms) {
                            outln!(
                                "{:<24} {:<8} {:<6} {:<8} {:<20}  {:<20}  {:<20}  {}",
                                k.kid,
                                k.kind.as_str(),
                                alg.map(|a| a.name()).unwrap_or("-"),
                                k.state.as_str(),
                                when(k.created_at),
                                k.activated_at.map(when).unwrap_or_default(),
                                k.verify_until.map(when).unwrap_or_default(),
                                k.master_key_id
                            )?;
                        }
                        Ok(())
                    }),
                )
            }
            TenantCommand::RotateKeys {
                slug,
                mode,
                new_alg,
                ops,
            } => {
                let (format, filter) = (ops.store.log_format, ops.store.log.clone());
                let mode = if mode == "revoke" {
                    RotationMode::Revoke
                } else {
                    RotationMode::Graceful
                };
                run(
                    format,
                    &filter,
                    operate(*ops, |op| async move {
                        let rotated = op.rotate_keys(&slug, mode, new_alg).await?;
                        outln!("rotated the keys of {slug}")?;
                        outln!("  access kid   {}", rotated.access_kid)?;
                        outln!("  refresh kid  {}", rotated.refresh_kid)?;
                        Ok(())
                    }),
                )
            }
        },
        Command::User { command } => match command {
            UserCommand::SetRole {
                email,
                role,
                tenant,
                ops,
            } => {
                let (format, filter) = (ops.store.log_format, ops.store.log.clone());
                run(
                    format,
                    &filter,
                    operate(*ops, |op| async move {
                        let (change, ended) = op.set_role(&tenant, &email, &role).await?;
                        let user = &change.user;
                        if change.previous == user.role {
                            outln!("{} already has the role {}", user.email, user.role.as_str())?;
                        } else {
                            outln!(
                                "{} ({}) is now {} (was {})",
                                user.email,
                                user.id,
                                user.role.as_str(),
                                change.previous.as_str()
                            )?;
                            if ended > 0 {
                                outln!("ended {ended} session(s): no token keeps the old role")?;
                            }
                        }
                        Ok(())
                    }),
                )
            }
            UserCommand::List {
                tenant,
                limit,
                before,
                json,
                ops,
            } => {
                let (format, filter) = (ops.store.log_format, ops.store.log.clone());
                run(
                    format,
                    &filter,
                    operate(*ops, |op| async move {
                        let (users, next) = op.list_users(&tenant, before.as_deref(), limit).await?;
                        if !json {
                            outln!(
                                "{:<36}  {:<12} {:<8}  {:<20}  EMAIL",
                                "ID",
                                "ROLE",
                                "VERIFIED",
                                "CREATED"
                            )?;
                        }
                        for u in &users {
                            if json {
                                let dto = tessera_server::http::dto::UserDto::from(u);
                                outln!("{}", serde_json::to_string(&dto).unwrap_or_default())?;
                            } else {
                                outln!(
                                    "{:<36}  {:<12} {:<8}  {:<20}  {}",
                                    u.id.to_string(),
                                    u.role.as_str(),
                                    if u.email_verified { "yes" } else { "no" },
                                    when(u.created_at),
                                    u.email
                                )?;
                            }
                        }
                        if let Some(next) = next {
                            eprintln!("more: --before {next}");
                        }
                        Ok(())
                    }),
                )
            }
            UserCommand::Import(args) => {
                use tessera_server::import::{self, Format, ImportRequest, OnConflict};
                let args = *args;
                let (format, filter) = (args.store.log_format, args.store.log.clone());
                let config = Config {
                    database_url: args.store.database_url,
                    database_max_connections: args.store.database_max_connections,
                    hash_params: args.argon2.params(),
                    ..Config::embedded(args.store.data_dir)
                };
                let request = ImportRequest {
                    file: args.file,
                    format: args
                        .format
                        .map(|f| if f == "csv" { Format::Csv } else { Format::Jsonl }),
                    tenant: args.tenant,
                    on_conflict: if args.on_conflict == "fail" {
                        OnConflict::Fail
                    } else {
                        OnConflict::Skip
                    },
                    dry_run: args.dry_run,
                };
                let dry_run = request.dry_run;
                let tenant = request.tenant.clone();
                run(format, &filter, async move {
                    let summary = import::run(config, request, |line| eprintln!("{line}")).await?;
                    if dry_run {
                        outln!(
                            "dry run: {} of {} users would be imported into tenant {tenant} ({} with bcrypt hashes), \
                             {} skipped as already there; nothing was written",
                            summary.imported,
                            summary.rows,
                            summary.bcrypt,
                            summary.skipped
                        )
                    } else {
                        outln!(
                            "imported {} of {} users into tenant {tenant} ({} with bcrypt hashes, rehashed to Argon2id \
                             at each one's first login); {} skipped as already there",
                            summary.imported,
                            summary.rows,
                            summary.bcrypt,
                            summary.skipped
                        )
                    }
                })
            }
            UserCommand::RevokeSessions { email, tenant, ops } => {
                let (format, filter) = (ops.store.log_format, ops.store.log.clone());
                run(
                    format,
                    &filter,
                    operate(*ops, |op| async move {
                        let ended = op.revoke_sessions(&tenant, &email).await?;
                        outln!("ended {ended} session(s) of {email}")?;
                        if ended == 0 {
                            eprintln!(
                                "note: no session was found. If the servers keep sessions in Redis, run this with \
                                 their TESSERA_REDIS_URL and TESSERA_REDIS_KEY_PREFIX"
                            );
                        }
                        Ok(())
                    }),
                )
            }
        },
        Command::Audit(args) => {
            let args = *args;
            let (format, filter) = (args.ops.store.log_format, args.ops.store.log.clone());
            let (tenant, limit, before, json) = (args.tenant, args.limit, args.before, args.json);
            run(
                format,
                &filter,
                operate(args.ops, |op| async move {
                    let events = op.audit(&tenant, before, limit).await?;
                    for e in &events {
                        if json {
                            outln!("{}", audit_json(e))?;
                        } else {
                            outln!(
                                "{:>8}  {}  {:<16} user={} session={} ip={} detail={}",
                                e.id,
                                when(e.at),
                                e.kind,
                                e.user.map(|u| u.to_string()).unwrap_or_else(|| "-".to_owned()),
                                e.session.map(|s| s.to_string()).unwrap_or_else(|| "-".to_owned()),
                                e.ip.as_deref().unwrap_or("-"),
                                e.detail.as_deref().unwrap_or("-"),
                            )?;
                        }
                    }
                    if events.len() == limit as usize {
                        if let Some(last) = events.last() {
                            eprintln!("more: --before {}", last.id);
                        }
                    }
                    Ok(())
                }),
            )
        }

        Command::MasterKey {
            command: MasterKeyCommand::Rotate(ops),
        } => {
            let (format, filter) = (ops.store.log_format, ops.store.log.clone());
            run(
                format,
                &filter,
                operate(*ops, |op| async move {
                    let (resealed, stuck, current) = op.rotate_master_key().await?;
                    if stuck > 0 {
                        anyhow::bail!(
                            "re-sealed {resealed} key(s) under master key {current}, but {stuck} are sealed by a \
                             master key that is not configured; add it to TESSERA_MASTER_KEY_PREVIOUS and run this again"
                        );
                    }
                    outln!("re-sealed {resealed} key(s) under master key {current}")?;
                    outln!("every stored key opens with the current master key; previous keys can be dropped")?;
                    Ok(())
                }),
            )
        }
    }
}

fn write_line(args: std::fmt::Arguments<'_>) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    out.write_fmt(args)
        .and_then(|()| out.write_all(b"\n"))
        .and_then(|()| out.flush())
        .map_err(|e| anyhow::anyhow!("cannot write to standard output: {e}"))
}

fn ops_config(args: OpsArgs) -> anyhow::Result<Config> {
    let secrets = SecretsSource::from_env_values(
        std::env::var(secrets::ACCESS_VAR).ok(),
        std::env::var(secrets::REFRESH_VAR).ok(),
    )?;
    Ok(Config {
        database_url: args.store.database_url,
        database_max_connections: args.store.database_max_connections,
        redis_url: args.redis_url,
        redis_key_prefix: args.redis_key_prefix,
        master_key: master_key_from_env()?,
        previous_master_keys: previous_master_keys_from_env()?,
        secrets,
        access_ttl: args.access_ttl,
        refresh_ttl: args.refresh_ttl,
        leeway: args.leeway,
        keys: args.keys.policy(),
        ..Config::embedded(args.store.data_dir)
    })
}

async fn operate<F, Fut>(args: OpsArgs, job: F) -> anyhow::Result<()>
where
    F: FnOnce(Operator) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let config = ops_config(args)?;
    let op = Operator::open(config).await?;
    job(op).await
}

fn when(unix: i64) -> String {
    tessera_server::http::dto::rfc3339(unix)
}

fn audit_json(e: &tessera_store::AuditEvent) -> String {
    let dto = tessera_server::http::dto::AuditEventDto::from(e);
    serde_json::to_string(&dto).unwrap_or_default()
}

/// `TESSERA_MASTER_KEY_PREVIOUS`: comma-separated keys that still open what
/// they sealed, during a master-key rotation.
fn previous_master_keys_from_env() -> Result<Vec<SecretValue>, ConfigError> {
    Ok(std::env::var("TESSERA_MASTER_KEY_PREVIOUS")
        .ok()
        .map(|v| {
            v.split(',')
                .map(str::trim)
                .filter(|k| !k.is_empty())
                .map(|k| SecretValue::new(k.to_owned()))
                .collect()
        })
        .unwrap_or_default())
}

fn run(format: LogFormat, filter: &str, job: impl std::future::Future<Output = anyhow::Result<()>>) -> ExitCode {
    if let Err(err) = telemetry::init(format, filter) {
        eprintln!("tessera: {err:#}");
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("tessera: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(job) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            let sealed_by_another_key = matches!(
                err.downcast_ref::<secrets::SecretsError>(),
                Some(secrets::SecretsError::Sealed(_))
            );
            let code = if err.downcast_ref::<tessera_server::import::RejectedData>().is_some() {
                3
            } else if err.downcast_ref::<ConfigError>().is_some() || sealed_by_another_key {
                2
            } else {
                1
            };
            eprintln!("tessera: {err:#}");
            ExitCode::from(code)
        }
    }
}

/// `TESSERA_MASTER_KEY`, or the contents of the file `TESSERA_MASTER_KEY_FILE` names.
fn master_key_from_env() -> Result<Option<SecretValue>, ConfigError> {
    use std::os::unix::fs::PermissionsExt as _;
    let direct = std::env::var("TESSERA_MASTER_KEY").ok();
    let Ok(path) = std::env::var("TESSERA_MASTER_KEY_FILE") else {
        return Ok(direct.map(SecretValue::new));
    };
    if direct.is_some() {
        return Err(ConfigError::new(
            "TESSERA_MASTER_KEY_FILE",
            "is set together with TESSERA_MASTER_KEY; set one of them, so it is clear which key seals the data"
                .to_owned(),
        ));
    }
    let unreadable =
        |e: std::io::Error| ConfigError::new("TESSERA_MASTER_KEY_FILE", format!("cannot read {path}: {e}"));
    let mode = std::fs::metadata(&path).map_err(unreadable)?.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(ConfigError::new(
            "TESSERA_MASTER_KEY_FILE",
            format!("{path} is readable by other users (mode {mode:o}); run `chmod 600 {path}`"),
        ));
    }
    let contents = std::fs::read_to_string(&path).map_err(unreadable)?;
    Ok(Some(SecretValue::new(contents.trim().to_owned())))
}

/// Every variable tessera reads; anything else starting with `TESSERA_` is
/// probably a typo, and a typo must not silently change what runs.
const KNOWN_VARIABLES: &[&str] = &[
    "TESSERA_BIND",
    "TESSERA_DATA_DIR",
    "TESSERA_DATABASE_URL",
    "TESSERA_DATABASE_MAX_CONNECTIONS",
    "TESSERA_REDIS_URL",
    "TESSERA_REDIS_KEY_PREFIX",
    "TESSERA_MASTER_KEY",
    "TESSERA_MASTER_KEY_FILE",
    "TESSERA_MASTER_KEY_PREVIOUS",
    "TESSERA_AUDIT_RETENTION",
    "TESSERA_SIGNUP",
    "TESSERA_ACCESS_TTL",
    "TESSERA_REFRESH_TTL",
    "TESSERA_REFRESH_REUSE_GRACE",
    "TESSERA_LEEWAY",
    "TESSERA_ISSUER",
    "TESSERA_PUBLIC_URL",
    "TESSERA_AUDIENCE",
    "TESSERA_LOG",
    "TESSERA_LOG_FORMAT",
    "TESSERA_HASH_CONCURRENCY",
    "TESSERA_HASH_QUEUE",
    "TESSERA_ARGON2_MEMORY_KIB",
    "TESSERA_ARGON2_ITERATIONS",
    "TESSERA_REQUEST_TIMEOUT",
    "TESSERA_HEADER_TIMEOUT",
    "TESSERA_MAX_CONNECTIONS",
    "TESSERA_SKIP_MIGRATIONS",
    "TESSERA_SIGNING_ALG",
    "TESSERA_KEY_ROTATION",
    "TESSERA_HMAC_KEY_ROTATION",
    "TESSERA_JWKS_MAX_AGE",
    "TESSERA_REQUIRE_EMAIL_VERIFICATION",
    "TESSERA_SMTP_URL",
    "TESSERA_MAIL_FROM",
    "TESSERA_MAIL_LINK_BASE",
    "TESSERA_MAIL_TEMPLATES",
    "TESSERA_RATE_LIMITS",
    "TESSERA_IP_RATE_LIMIT",
    "TESSERA_LOGIN_FAILURE_LIMIT",
    "TESSERA_LOGIN_BACKOFF",
    "TESSERA_LOGIN_BACKOFF_MAX",
    "TESSERA_FORGOT_RATE_LIMIT",
    "TESSERA_RESEND_RATE_LIMIT",
    "TESSERA_TRUSTED_PROXIES",
    "TESSERA_REVOCATION_CHECK",
];

fn warn_about_unknown_variables() {
    for (name, _) in std::env::vars_os() {
        let Some(name) = name.to_str() else { continue };
        if name.starts_with("TESSERA_") && !KNOWN_VARIABLES.contains(&name) {
            tracing::warn!(
                variable = name,
                "unknown setting, ignored (a typo? see docs/configuration.md)"
            );
        }
    }
}

fn config_from(args: ServeArgs) -> anyhow::Result<Config> {
    let secrets = SecretsSource::from_env_values(
        std::env::var(secrets::ACCESS_VAR).ok(),
        std::env::var(secrets::REFRESH_VAR).ok(),
    )?;
    let base = Config::embedded(args.store.data_dir);
    Ok(Config {
        bind: args.bind,
        database_url: args.store.database_url,
        database_max_connections: args.store.database_max_connections,
        redis_url: args.redis_url,
        redis_key_prefix: args.redis_key_prefix,
        master_key: master_key_from_env()?,
        previous_master_keys: previous_master_keys_from_env()?,
        audit_retention: args.audit_retention,
        signup: args.signup,
        secrets,
        access_ttl: args.access_ttl,
        refresh_ttl: args.refresh_ttl,
        refresh_reuse_grace: args.refresh_reuse_grace,
        leeway: args.leeway,
        issuer: args.issuer,
        public_url: args.public_url,
        audience: args.audience,
        hash_params: args.argon2.params(),
        hash_concurrency: args.hash_concurrency.unwrap_or(base.hash_concurrency),
        hash_queue: args.hash_queue,
        migrate: !args.skip_migrations,
        request_timeout: args.request_timeout,
        header_timeout: args.header_timeout,
        max_connections: args.max_connections,
        keys: args.keys.policy(),
        require_email_verification: args.require_email_verification,
        mail: tessera_server::mail::MailSettings {
            smtp_url: std::env::var("TESSERA_SMTP_URL")
                .ok()
                .filter(|url| !url.trim().is_empty())
                .map(SecretValue::new),
            from: args.mail_from,
            link_base: args.mail_link_base,
            templates: args.mail_templates,
            ..base.mail.clone()
        },
        rate_limits: args.limits.settings(),
        trusted_proxies: args.limits.trusted_proxies.clone().unwrap_or_default(),
        revocation_check: args.revocation_check,
        ..base
    })
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    warn_about_unknown_variables();
    let config = config_from(args)?;
    let app = Application::build(config).await?;
    // Installed before the server says it is listening.
    let stopping = tessera_server::startup::shutdown_signal();
    // In-flight requests get this long to finish after SIGTERM.
    let drain = Duration::from_secs(30);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut server = tokio::spawn(app.run_until_stopped(async move {
        let mut rx = stop_rx;
        let _ = rx.wait_for(|stop| *stop).await;
    }));
    tokio::select! {
        joined = &mut server => return Ok(joined??),
        () = stopping => {}
    }
    let _ = stop_tx.send(true);
    match tokio::time::timeout(drain, server).await {
        Ok(joined) => joined??,
        Err(_) => tracing::warn!("requests still running after {}s; exiting anyway", drain.as_secs()),
    }
    tracing::info!("stopped");
    Ok(())
}

async fn migrate(mut config: Config) -> anyhow::Result<()> {
    // Migrating needs no master key: nothing is sealed or opened.
    if config.uses_postgres() && config.master_key.is_none() {
        config.master_key = Some(SecretValue::new(tessera_core::MasterKey::generate_base64()));
    }
    config.validate()?;
    if !config.uses_postgres() {
        tessera_server::secrets::ensure_data_dir(&config.data_dir)?;
    }
    tessera_server::startup::open_stores(&config).await?;
    println!(
        "database {} is up to date",
        tessera_server::startup::redact_url(&config.database_url())
    );
    Ok(())
}
