//! `tessera user import`: accounts from another system, with their bcrypt
//! (or Argon2) hashes, into one tenant.
//!
//! The whole file is read and every row checked first (parse, don't
//! validate: each field becomes an `Email`, an `ImportedHash`, a
//! `PersonName`, a `Role`, a `UserId`); if any row is bad, every error is
//! reported with its line number and nothing is written. Then the users go
//! to the store in batches of [`BATCH`], one transaction each
//! ([`tessera_store::UserStore::import_users`]), so a server running beside
//! the import waits at most for one batch. An email (or id) the tenant
//! already has is skipped and reported; with `--on-conflict fail`, every
//! batch is first checked in a rolled-back transaction, and any conflict
//! stops the import before anything is written. `--dry-run` runs every
//! batch and rolls each back.
//!
//! Columns (CSV header) and keys (JSON lines), camelCase or snake_case:
//! `email`, `passwordHash`, `firstName` required; `lastName`, `role`
//! (default `user`), `emailVerified` (default false), `createdAt` (unix
//! seconds or RFC 3339; default now), `id` (a UUID; default a new one).
//! See docs/importing.md.

use crate::audit::event;
use crate::config::{check_hash_params, Config, ConfigError};
use crate::startup::open_stores;
use crate::tokens::unix_now;
use anyhow::Context as _;
use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Instant;
use tessera_core::{Email, HashParams, ImportedHash, PersonName, Role, TenantId, TenantSlug, UserId};
use tessera_store::{Conflict, ImportMode, ImportedUser, NewAuditEvent, NewUser};

/// Users per transaction.
pub const BATCH: usize = 1000;
/// Row errors printed before the rest are only counted.
const SHOWN_ERRORS: usize = 100;
/// `createdAt` values above this many seconds (year 2286) are milliseconds.
const MAX_UNIX_SECONDS: i64 = 9_999_999_999;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Jsonl,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnConflict {
    Skip,
    Fail,
}

pub struct ImportRequest {
    /// A path, or `-` for standard input.
    pub file: PathBuf,
    pub format: Option<Format>,
    pub tenant: String,
    pub on_conflict: OnConflict,
    pub dry_run: bool,
}

/// The file had bad rows, or (with `--on-conflict fail`) rows that
/// conflict: nothing was written. `tessera` exits with 3.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct RejectedData(pub String);

/// What a finished import did.
#[derive(Debug, Default)]
pub struct Summary {
    pub rows: usize,
    pub imported: usize,
    pub skipped: usize,
    pub bcrypt: usize,
}

/// A column of the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Field {
    Email,
    PasswordHash,
    FirstName,
    LastName,
    Role,
    EmailVerified,
    CreatedAt,
    Id,
}

impl Field {
    const ALL: [Field; 8] = [
        Self::Email,
        Self::PasswordHash,
        Self::FirstName,
        Self::LastName,
        Self::Role,
        Self::EmailVerified,
        Self::CreatedAt,
        Self::Id,
    ];
    const REQUIRED: [Field; 3] = [Self::Email, Self::PasswordHash, Self::FirstName];

    fn name(self) -> &'static str {
        match self {
            Self::Email => "email",
            Self::PasswordHash => "passwordHash",
            Self::FirstName => "firstName",
            Self::LastName => "lastName",
            Self::Role => "role",
            Self::EmailVerified => "emailVerified",
            Self::CreatedAt => "createdAt",
            Self::Id => "id",
        }
    }

    fn snake(self) -> &'static str {
        match self {
            Self::PasswordHash => "password_hash",
            Self::FirstName => "first_name",
            Self::LastName => "last_name",
            Self::EmailVerified => "email_verified",
            Self::CreatedAt => "created_at",
            other => other.name(),
        }
    }

    fn from_name(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.name() == raw || f.snake() == raw)
    }

    fn known() -> String {
        Self::ALL.map(Field::name).join(", ")
    }
}

/// A field's value as the file gave it.
enum Raw<'a> {
    Text(&'a str),
    Bool(bool),
    Number(&'a serde_json::Number),
}

/// One row: its fields, or the reason it could not even be split into fields.
struct Row<'a> {
    line: u64,
    fields: HashMap<Field, Raw<'a>>,
    /// From JSON lines, where values are typed: a boolean is a JSON boolean.
    json: bool,
}

/// A bad row.
#[derive(Debug)]
pub struct RowError {
    pub line: u64,
    pub message: String,
}

/// The rows of a file, parsed.
pub struct Parsed {
    /// With their line numbers.
    pub users: Vec<(u64, ImportedUser)>,
    pub errors: Vec<RowError>,
}

/// Parses `input` into users of `tenant`, with password hashes the servers
/// (hashing with `hash_params`) will run. A header (CSV) that tessera cannot
/// use is a [`ConfigError`]; a bad row is a [`RowError`] in the result.
pub fn parse(
    input: &[u8],
    format: Format,
    tenant: TenantId,
    now: i64,
    hash_params: &HashParams,
) -> Result<Parsed, ConfigError> {
    let mut parsed = Parsed {
        users: Vec::new(),
        errors: Vec::new(),
    };
    let mut emails: HashMap<Email, u64> = HashMap::new();
    let mut ids: HashMap<UserId, u64> = HashMap::new();
    let mut accept = |row: Row<'_>, parsed: &mut Parsed| match user_of(&row, tenant, now, hash_params) {
        Ok(user) => {
            if let Some(first) = emails.get(&user.user.email) {
                parsed.errors.push(RowError {
                    line: row.line,
                    message: format!("email: {} is also on line {first}", user.user.email),
                });
            } else if let Some(first) = ids.get(&user.user.id) {
                parsed.errors.push(RowError {
                    line: row.line,
                    message: format!("id: {} is also on line {first}", user.user.id),
                });
            } else {
                emails.insert(user.user.email.clone(), row.line);
                ids.insert(user.user.id, row.line);
                parsed.users.push((row.line, user));
            }
        }
        Err(message) => parsed.errors.push(RowError {
            line: row.line,
            message,
        }),
    };
    match format {
        Format::Csv => {
            let mut reader = csv::ReaderBuilder::new()
                .has_headers(true)
                .flexible(false)
                .from_reader(input);
            let header = reader
                .byte_headers()
                .map_err(|e| ConfigError::new("FILE", format!("cannot read the CSV header: {e}")))?
                .clone();
            let columns = csv_columns(&header)?;
            // The csv crate reads a quoted field that never closes to the
            // end of the input, without an error: find it first.
            let open_quote = unterminated_quote(input);
            let mut record = csv::ByteRecord::new();
            // The csv crate's line count skips blank lines; count newlines
            // up to each record's byte offset instead.
            let mut lines = LineCounter::default();
            let mut last_record = None;
            loop {
                match reader.read_byte_record(&mut record) {
                    Ok(false) => break,
                    Ok(true) => {}
                    Err(err) => {
                        let line = lines.line_at(input, err.position().map_or(0, |p| p.byte()));
                        last_record = Some(line);
                        parsed.errors.push(RowError {
                            line,
                            message: format!("not a CSV row of {} fields: {}", columns.len(), csv_reason(&err)),
                        });
                        if matches!(err.kind(), csv::ErrorKind::Io(_)) {
                            break;
                        }
                        continue;
                    }
                }
                let line = lines.line_at(input, record.position().map_or(0, |p| p.byte()));
                if record.iter().all(|f| f.is_empty()) {
                    continue;
                }
                last_record = Some(line);
                let mut fields = HashMap::new();
                let mut bad = None;
                for (field, value) in columns.iter().zip(record.iter()) {
                    match std::str::from_utf8(value) {
                        // An empty cell is an absent value.
                        Ok("") => {}
                        Ok(text) => {
                            fields.insert(*field, Raw::Text(text));
                        }
                        Err(_) => bad = Some(format!("{}: is not UTF-8 text", field.name())),
                    }
                }
                match bad {
                    Some(message) => parsed.errors.push(RowError { line, message }),
                    None => accept(
                        Row {
                            line,
                            fields,
                            json: false,
                        },
                        &mut parsed,
                    ),
                }
            }
            if let Some(line) = open_quote {
                // That field swallowed the rest of the file into the last
                // record: the quote is its one error.
                if let Some(start) = last_record {
                    parsed.users.retain(|(l, _)| *l != start);
                    parsed.errors.retain(|e| e.line != start);
                }
                parsed.errors.push(RowError {
                    line,
                    message: "a quoted field opens here and never closes (a \" is missing); \
                              the rest of the file would have been read into it"
                        .to_owned(),
                });
            }
        }
        Format::Jsonl => {
            for (index, line_bytes) in input.split(|b| *b == b'\n').enumerate() {
                let line = index as u64 + 1;
                let text = match std::str::from_utf8(line_bytes) {
                    Ok(text) => text.trim_start_matches('\u{feff}').trim(),
                    Err(_) => {
                        parsed.errors.push(RowError {
                            line,
                            message: "is not UTF-8 text".to_owned(),
                        });
                        continue;
                    }
                };
                if text.is_empty() {
                    continue;
                }
                let object: Members = match serde_json::from_str(text) {
                    Ok(object) => object,
                    Err(err) => {
                        parsed.errors.push(RowError {
                            line,
                            message: format!("is not a JSON object: {err}"),
                        });
                        continue;
                    }
                };
                match json_fields(&object) {
                    Ok(fields) => accept(
                        Row {
                            line,
                            fields,
                            json: true,
                        },
                        &mut parsed,
                    ),
                    Err(message) => parsed.errors.push(RowError { line, message }),
                }
            }
        }
    }
    Ok(parsed)
}

/// Line numbers of byte offsets met in increasing order.
#[derive(Default)]
struct LineCounter {
    offset: usize,
    line: u64,
}

impl LineCounter {
    fn line_at(&mut self, input: &[u8], offset: u64) -> u64 {
        let mut offset = usize::try_from(offset).unwrap_or(usize::MAX).min(input.len());
        // A record's position is where the reader started, before the blank
        // lines it skipped; a record itself never starts with a line break.
        while matches!(input.get(offset), Some(b'\n' | b'\r')) {
            offset += 1;
        }
        if offset > self.offset {
            self.line += input[self.offset..offset].iter().filter(|b| **b == b'\n').count() as u64;
            self.offset = offset;
        }
        self.line + 1
    }
}

/// The line on which a quoted CSV field opens and never closes, if one
/// does. Follows the csv crate's reading with tessera's settings (`,`
/// between fields, `"` quotes only at the start of a field, `""` a quote
/// inside one, `\r`, `\n` or both ending a record; after the closing quote
/// the field goes on unquoted).
fn unterminated_quote(input: &[u8]) -> Option<u64> {
    let input = input.strip_prefix(b"\xef\xbb\xbf").unwrap_or(input);
    let mut line = 1u64;
    let mut field_start = true;
    // Inside a quoted field: the line it opened on, and whether the last
    // byte was a quote (which closes the field unless another follows).
    let mut quoted: Option<u64> = None;
    let mut quote_seen = false;
    for &byte in input {
        if quoted.is_some() {
            if quote_seen {
                quote_seen = false;
                if byte == b'"' {
                    continue;
                }
                quoted = None;
            } else {
                match byte {
                    b'"' => quote_seen = true,
                    b'\n' => line += 1,
                    _ => {}
                }
                continue;
            }
        }
        match byte {
            b'"' if field_start => {
                quoted = Some(line);
                field_start = false;
            }
            b',' | b'\r' => field_start = true,
            b'\n' => {
                line += 1;
                field_start = true;
            }
            _ => field_start = false,
        }
    }
    quoted.filter(|_| !quote_seen)
}

/// The CSV error without its position (the report adds the line) and
/// without the row's content.
fn csv_reason(err: &csv::Error) -> String {
    match err.kind() {
        csv::ErrorKind::UnequalLengths { expected_len, len, .. } => {
            format!("it has {len} fields, the header {expected_len}")
        }
        csv::ErrorKind::Io(e) => format!("read error: {e}"),
        _ => "malformed CSV".to_owned(),
    }
}

fn csv_columns(header: &csv::ByteRecord) -> Result<Vec<Field>, ConfigError> {
    let mut columns = Vec::with_capacity(header.len());
    for raw in header.iter() {
        let name = String::from_utf8_lossy(raw);
        let name = name.trim_start_matches('\u{feff}').trim();
        let field = Field::from_name(name).ok_or_else(|| {
            ConfigError::new(
                "FILE",
                format!(
                    "the CSV header has a column {name:?} tessera does not know; the columns are {} \
                     (or their snake_case forms); remove or rename it",
                    Field::known()
                ),
            )
        })?;
        if columns.contains(&field) {
            return Err(ConfigError::new(
                "FILE",
                format!("the CSV header names {} twice", field.name()),
            ));
        }
        columns.push(field);
    }
    for required in Field::REQUIRED {
        if !columns.contains(&required) {
            return Err(ConfigError::new(
                "FILE",
                format!(
                    "the CSV header has no {} column (required: email, passwordHash, firstName)",
                    required.name()
                ),
            ));
        }
    }
    Ok(columns)
}

/// A JSON object's members in the order written, every one kept: a
/// `serde_json::Map` keeps only the last of two equal keys, and a row
/// naming a field twice must be refused, not read as whichever came last.
struct Members(Vec<(String, serde_json::Value)>);

impl<'de> serde::Deserialize<'de> for Members {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Members;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Members, A::Error> {
                let mut members = Vec::new();
                while let Some(member) = map.next_entry::<String, serde_json::Value>()? {
                    members.push(member);
                }
                Ok(Members(members))
            }
        }
        deserializer.deserialize_map(Visit)
    }
}

fn json_fields(object: &Members) -> Result<HashMap<Field, Raw<'_>>, String> {
    let mut fields = HashMap::new();
    let mut named = Vec::with_capacity(object.0.len());
    for (key, value) in &object.0 {
        let field = Field::from_name(key).ok_or_else(|| {
            format!(
                "has a key {key:?} tessera does not know; the keys are {}",
                Field::known()
            )
        })?;
        // Twice is refused whatever the values, nulls included.
        if named.contains(&field) {
            return Err(format!("names {} twice", field.name()));
        }
        named.push(field);
        let raw = match value {
            serde_json::Value::Null => continue,
            serde_json::Value::String(s) => Raw::Text(s),
            serde_json::Value::Bool(b) => Raw::Bool(*b),
            serde_json::Value::Number(n) => Raw::Number(n),
            _ => return Err(format!("{}: must be a string, a number or a boolean", field.name())),
        };
        fields.insert(field, raw);
    }
    Ok(fields)
}

/// The user a row describes, or what is wrong with it (every bad field).
fn user_of(row: &Row<'_>, tenant: TenantId, now: i64, hash_params: &HashParams) -> Result<ImportedUser, String> {
    let mut problems: Vec<String> = Vec::new();
    let text = |field: Field, problems: &mut Vec<String>| -> Option<&str> {
        match row.fields.get(&field) {
            None => None,
            Some(Raw::Text(s)) => Some(s),
            Some(_) => {
                problems.push(format!("{}: must be a string", field.name()));
                None
            }
        }
    };
    let required = |field: Field, problems: &mut Vec<String>| -> Option<&str> {
        let value = text(field, problems);
        if value.is_none() && !row.fields.contains_key(&field) {
            problems.push(format!("{}: is required", field.name()));
        }
        value
    };
    let email = required(Field::Email, &mut problems)
        .and_then(|raw| Email::parse(raw).map_err(|e| problems.push(format!("email: {e}"))).ok());
    let hash = required(Field::PasswordHash, &mut problems).and_then(|raw| {
        ImportedHash::parse_for(raw, hash_params)
            .map_err(|e| problems.push(format!("passwordHash: {e}")))
            .ok()
    });
    let first_name = required(Field::FirstName, &mut problems).and_then(|raw| {
        PersonName::parse(raw)
            .map_err(|e| problems.push(format!("firstName: {e}")))
            .ok()
    });
    let last_name = match text(Field::LastName, &mut problems) {
        None => PersonName::parse_optional("").ok(),
        Some(raw) => PersonName::parse_optional(raw)
            .map_err(|e| problems.push(format!("lastName: {e}")))
            .ok(),
    };
    let role = match text(Field::Role, &mut problems) {
        None => Some(Role::user()),
        Some(raw) => Role::parse(raw.trim())
            .map_err(|e| problems.push(format!("role: {e}")))
            .ok()
            .filter(|role| {
                let refused = role.is_owner() && tenant.is_default();
                if refused {
                    problems.push("role: the default tenant has no owner; use admin".to_owned());
                }
                !refused
            }),
    };
    let id = match text(Field::Id, &mut problems) {
        None => Some(UserId::random()),
        Some(raw) => uuid::Uuid::try_parse(raw.trim())
            .ok()
            .filter(|u| !u.is_nil())
            .map(UserId::from_uuid)
            .or_else(|| {
                problems.push("id: must be a UUID (omit the column to let tessera choose)".to_owned());
                None
            }),
    };
    let email_verified = match row.fields.get(&Field::EmailVerified) {
        None => Some(false),
        Some(Raw::Bool(b)) => Some(*b),
        Some(Raw::Text(_)) if row.json => {
            problems.push("emailVerified: must be a JSON boolean (true or false), not a string".to_owned());
            None
        }
        Some(Raw::Text(raw)) => match raw.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "t" | "y" => Some(true),
            "false" | "0" | "no" | "f" | "n" => Some(false),
            _ => {
                problems.push("emailVerified: must be true or false".to_owned());
                None
            }
        },
        Some(Raw::Number(_)) => {
            problems.push("emailVerified: must be true or false".to_owned());
            None
        }
    };
    let created_at = match row.fields.get(&Field::CreatedAt) {
        None => Some(now),
        Some(raw) => created_at(raw, now)
            .map_err(|e| problems.push(format!("createdAt: {e}")))
            .ok(),
    };
    match (email, hash, first_name, last_name, role, id, email_verified, created_at) {
        (
            Some(email),
            Some(hash),
            Some(first_name),
            Some(last_name),
            Some(role),
            Some(id),
            Some(email_verified),
            Some(created_at),
        ) if problems.is_empty() => Ok(ImportedUser {
            user: NewUser {
                id,
                tenant,
                email,
                password_hash: hash.into_string(),
                first_name,
                last_name,
                role,
                created_at,
            },
            email_verified,
        }),
        _ => Err(problems.join("; ")),
    }
}

fn created_at(raw: &Raw<'_>, now: i64) -> Result<i64, String> {
    let seconds = match raw {
        Raw::Number(n) => n
            .as_i64()
            .ok_or_else(|| "must be whole unix seconds or an RFC 3339 time".to_owned())?,
        Raw::Text(s) => {
            let s = s.trim();
            match s.parse::<i64>() {
                Ok(n) => n,
                Err(_) => time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
                    .map(|t| t.unix_timestamp())
                    .map_err(|_| {
                        format!("{s:?} is neither unix seconds nor an RFC 3339 time like 2021-03-04T05:06:07Z")
                    })?,
            }
        }
        Raw::Bool(_) => return Err("must be whole unix seconds or an RFC 3339 time".to_owned()),
    };
    if seconds > MAX_UNIX_SECONDS {
        return Err(format!("{seconds} looks like milliseconds; give seconds"));
    }
    if seconds < 0 {
        return Err("is before 1970".to_owned());
    }
    if seconds > now + 86_400 {
        return Err("is in the future".to_owned());
    }
    Ok(seconds)
}

/// The format named by `file`'s extension.
pub fn format_of(file: &Path) -> Option<Format> {
    match file.extension()?.to_str()?.to_ascii_lowercase().as_str() {
        "csv" => Some(Format::Csv),
        "jsonl" | "ndjson" | "json" => Some(Format::Jsonl),
        _ => None,
    }
}

/// Runs an import; progress and per-row reports go to standard error via
/// `report`, the summary is returned.
pub async fn run(config: Config, request: ImportRequest, mut report: impl FnMut(String)) -> anyhow::Result<Summary> {
    let started = Instant::now();
    let format = match request.format.or_else(|| format_of(&request.file)) {
        Some(format) => format,
        None => {
            return Err(ConfigError::new(
                "--format",
                format!(
                    "cannot tell the format of {}; say --format csv or --format jsonl",
                    request.file.display()
                ),
            )
            .into())
        }
    };
    let slug = TenantSlug::parse(&request.tenant)
        .map_err(|e| ConfigError::new("--tenant", format!("{:?} {e}", request.tenant)))?;
    check_hash_params(&config.hash_params)?;
    let input = read_input(&request.file)?;

    if let Some(url) = &config.database_url {
        if !config.uses_postgres() && !url.starts_with("sqlite:") {
            return Err(ConfigError::new(
                "TESSERA_DATABASE_URL",
                "must start with sqlite:// or postgres://".to_owned(),
            )
            .into());
        }
    }
    if !config.uses_postgres() {
        crate::secrets::ensure_data_dir(&config.data_dir)?;
    }
    let stores = open_stores(&config).await?;
    let tenant = stores
        .tenants
        .tenant_by_slug(&slug)
        .await
        .context("cannot read the tenant")?
        .ok_or_else(|| {
            ConfigError::new(
                "--tenant",
                format!("there is no tenant {slug} (`tessera tenant list` shows them)"),
            )
        })?
        .tenant;

    let now = unix_now();
    let parsed = parse(&input, format, tenant.id, now, &config.hash_params)?;
    drop(input);
    let mut summary = Summary {
        rows: parsed.users.len() + parsed.errors.len(),
        ..Summary::default()
    };
    if !parsed.errors.is_empty() {
        for error in parsed.errors.iter().take(SHOWN_ERRORS) {
            report(format!("line {}: {}", error.line, error.message));
        }
        if parsed.errors.len() > SHOWN_ERRORS {
            report(format!("... and {} more bad rows", parsed.errors.len() - SHOWN_ERRORS));
        }
        return Err(RejectedData(format!(
            "{} of {} rows are not valid; nothing was imported (fix them and run this again)",
            parsed.errors.len(),
            summary.rows
        ))
        .into());
    }
    let (lines, users): (Vec<u64>, Vec<ImportedUser>) = parsed.users.into_iter().unzip();
    // Every hash parsed as an `ImportedHash`: bcrypt is `$2?$`.
    summary.bcrypt = users.iter().filter(|u| u.user.password_hash.starts_with("$2")).count();

    let describe = |index: usize, conflict: Conflict| {
        let user = &users[index].user;
        match conflict {
            Conflict::IdTaken => format!("line {}: id {} is already taken", lines[index], user.id),
            _ => format!(
                "line {}: {} already has an account in tenant {slug}",
                lines[index], user.email
            ),
        }
    };

    if request.on_conflict == OnConflict::Fail {
        let mut conflicts = 0;
        for (n, batch) in users.chunks(BATCH).enumerate() {
            for c in stores.users.import_users(batch, ImportMode::DryRun).await? {
                conflicts += 1;
                if conflicts <= SHOWN_ERRORS {
                    report(describe(n * BATCH + c.index, c.conflict));
                }
            }
        }
        if conflicts > 0 {
            return Err(RejectedData(format!(
                "{conflicts} of {} users already exist (--on-conflict fail); nothing was imported",
                users.len()
            ))
            .into());
        }
    }

    let mode = if request.dry_run {
        ImportMode::DryRun
    } else {
        ImportMode::Commit
    };
    for (n, batch) in users.chunks(BATCH).enumerate() {
        let conflicts = stores.users.import_users(batch, mode).await.with_context(|| {
            format!(
                "import stopped at line {} ({} users imported before it)",
                lines[n * BATCH],
                summary.imported
            )
        })?;
        summary.skipped += conflicts.len();
        summary.imported += batch.len() - conflicts.len();
        for c in conflicts {
            report(format!("{} (skipped)", describe(n * BATCH + c.index, c.conflict)));
        }
    }
    tracing::info!(
        tenant = %slug,
        imported = summary.imported,
        skipped = summary.skipped,
        dry_run = request.dry_run,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "users imported"
    );
    if !request.dry_run && summary.imported > 0 {
        let detail = serde_json::json!({"imported": summary.imported, "skipped": summary.skipped, "by": "cli"});
        let recorded = stores
            .audit
            .append_audit(&[NewAuditEvent {
                tenant: tenant.id,
                at: unix_now(),
                kind: event::USERS_IMPORTED.to_owned(),
                user: None,
                session: None,
                ip: None,
                user_agent: None,
                detail: Some(detail.to_string()),
            }])
            .await;
        if let Err(err) = recorded {
            tracing::warn!(error = %err, "could not record the import in the audit log");
        }
    }
    if request.on_conflict == OnConflict::Fail && summary.skipped > 0 {
        return Err(RejectedData(format!(
            "{} users were registered while the import ran and were skipped (--on-conflict fail); \
             the other {} were imported",
            summary.skipped, summary.imported
        ))
        .into());
    }
    Ok(summary)
}

fn read_input(file: &Path) -> Result<Vec<u8>, ConfigError> {
    let mut input = Vec::new();
    let read = if file == Path::new("-") {
        std::io::stdin().lock().read_to_end(&mut input)
    } else {
        std::fs::File::open(file).and_then(|mut f| f.read_to_end(&mut input))
    };
    read.map_err(|e| ConfigError::new("FILE", format!("cannot read {}: {e}", file.display())))?;
    Ok(input)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "$2b$04$abcdefghijklmnopqrstuuQ5rZ7dEeU3Pn4cHmgyfFhRn7hSGkK9y";
    const NOW: i64 = 1_700_000_000;

    fn csv(text: &str) -> Parsed {
        parse(
            text.as_bytes(),
            Format::Csv,
            TenantId::DEFAULT,
            NOW,
            &HashParams::default(),
        )
        .unwrap()
    }

    #[test]
    fn csv_rows_become_users_with_defaults() {
        let id = uuid::Uuid::new_v4();
        let parsed = csv(&format!(
            "\u{feff}email,password_hash,first_name,last_name,role,email_verified,created_at,id\n\
             Ada@Example.com,{HASH},Ada,Lovelace,admin,true,2021-03-04T05:06:07Z,{id}\n\
             \n\
             bob@example.com,{HASH},Bob,,,,,\n"
        ));
        assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
        let (line, ada) = &parsed.users[0];
        assert_eq!(*line, 2);
        assert_eq!(ada.user.email.as_str(), "ada@example.com");
        assert_eq!(ada.user.id.as_uuid(), id);
        assert_eq!(ada.user.role.as_str(), "admin");
        assert!(ada.email_verified);
        assert_eq!(ada.user.created_at, 1_614_834_367);
        let (line, bob) = &parsed.users[1];
        assert_eq!(*line, 4);
        assert_eq!(
            (bob.user.role.as_str(), bob.email_verified, bob.user.created_at),
            ("user", false, NOW)
        );
        assert_eq!(bob.user.last_name.as_str(), "");
    }

    #[test]
    fn every_bad_row_is_reported_with_its_line() {
        let parsed = csv(&format!(
            "email,passwordHash,firstName,lastName,createdAt,id\n\
             not-an-email,{HASH},Ada,L,,\n\
             eve@example.com,plaintext,Eve,L,,\n\
             zed@example.com,{HASH},,L,,\n\
             kim@example.com,{HASH},Kim,L,1700000000000,\n\
             lee@example.com,{HASH},Lee,L,,42\n\
             ok@example.com,{HASH},Ok,L,,\n\
             OK@example.com,{HASH},Twice,L,,\n\
             short@example.com,{HASH}\n\
             cost@example.com,$2b$31{rest},C,L,,\n",
            rest = &HASH[6..]
        ));
        let lines: Vec<(u64, &str)> = parsed.errors.iter().map(|e| (e.line, e.message.as_str())).collect();
        let expect = [
            (2, "email:"),
            (3, "passwordHash: is not a bcrypt"),
            (4, "firstName: is required"),
            (5, "looks like milliseconds"),
            (6, "id: must be a UUID"),
            (8, "is also on line 7"),
            (9, "it has 2 fields, the header 6"),
            (10, "cost 31"),
        ];
        assert_eq!(lines.len(), expect.len(), "{lines:?}");
        for ((line, message), (want_line, want)) in lines.iter().zip(expect) {
            assert_eq!(*line, want_line, "{message}");
            assert!(message.contains(want), "line {line}: {message}");
        }
        assert!(
            lines.iter().all(|(_, m)| !m.contains(&HASH[7..])),
            "hashes are never echoed"
        );
        assert_eq!(parsed.users.len(), 1);
    }

    #[test]
    fn unusable_headers_are_configuration_errors() {
        for header in [
            "email,passwordHash",
            "email,passwordHash,firstName,pasword",
            "email,passwordHash,firstName,first_name",
        ] {
            let err = parse(
                header.as_bytes(),
                Format::Csv,
                TenantId::DEFAULT,
                NOW,
                &HashParams::default(),
            )
            .err()
            .unwrap();
            assert_eq!(err.var, "FILE", "{header}");
        }
    }

    #[test]
    fn json_lines_take_typed_values() {
        let text = format!(
            "{{\"email\":\"ada@example.com\",\"passwordHash\":\"{HASH}\",\"firstName\":\"Ada\",\"emailVerified\":true,\"createdAt\":1600000000,\"lastName\":null}}\n\
             \n\
             {{\"email\":\"bob@example.com\",\"passwordHash\":\"{HASH}\",\"firstName\":\"Bob\",\"emailVerified\":false,\"createdAt\":\"2020-01-01T00:00:00+01:00\"}}\n\
             [1,2]\n\
             {{\"email\":\"eve@example.com\",\"passwordHash\":\"{HASH}\",\"firstName\":\"Eve\",\"admin\":true}}\n\
             {{\"email\":\"kim@example.com\",\"passwordHash\":\"{HASH}\",\"firstName\":7,\"emailVerified\":1}}\n"
        );
        let parsed = jsonl(&text);
        assert_eq!(parsed.users.len(), 2);
        assert_eq!(parsed.users[0].1.user.created_at, 1_600_000_000);
        assert!(parsed.users[0].1.email_verified);
        assert!(!parsed.users[1].1.email_verified);
        assert_eq!(parsed.users[1].1.user.created_at, 1_577_833_200);
        let lines: Vec<u64> = parsed.errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, [4, 5, 6]);
        assert!(parsed.errors[1].message.contains("\"admin\""));
        assert!(parsed.errors[2].message.contains("firstName: must be a string"));
        assert!(parsed.errors[2].message.contains("emailVerified"));
    }

    fn jsonl(text: &str) -> Parsed {
        parse(
            text.as_bytes(),
            Format::Jsonl,
            TenantId::DEFAULT,
            NOW,
            &HashParams::default(),
        )
        .unwrap()
    }

    fn messages(parsed: &Parsed) -> Vec<(u64, &str)> {
        parsed.errors.iter().map(|e| (e.line, e.message.as_str())).collect()
    }

    #[test]
    fn json_booleans_are_json_booleans() {
        let row = |verified: &str| {
            format!("{{\"email\":\"ada@example.com\",\"passwordHash\":\"{HASH}\",\"firstName\":\"Ada\",\"emailVerified\":{verified}}}\n")
        };
        for bad in ["\"true\"", "\"false\"", "\"yes\"", "\"1\"", "1", "0"] {
            let parsed = jsonl(&format!("\n{}", row(bad)));
            assert!(parsed.users.is_empty(), "{bad}");
            let errors = messages(&parsed);
            assert_eq!(errors.len(), 1, "{bad}: {errors:?}");
            assert_eq!(errors[0].0, 2, "{bad}: the line is named");
            assert!(errors[0].1.contains("emailVerified: must be"), "{bad}: {errors:?}");
        }
        assert!(messages(&jsonl(&row("\"true\"")))[0].1.contains("JSON boolean"));
        assert!(jsonl(&row("true")).users[0].1.email_verified);
        assert!(!jsonl(&row("false")).users[0].1.email_verified);
        assert!(!jsonl(&row("null")).users[0].1.email_verified);
        // CSV has no types: its words stay.
        let parsed = csv(&format!(
            "email,passwordHash,firstName,emailVerified\nada@example.com,{HASH},Ada,true\n"
        ));
        assert!(parsed.users[0].1.email_verified);
    }

    #[test]
    fn a_json_key_given_twice_makes_the_row_bad() {
        let base = format!("\"passwordHash\":\"{HASH}\",\"firstName\":\"Ada\"");
        for object in [
            format!("{{\"email\":\"a@example.com\",\"email\":\"b@example.com\",{base}}}"),
            format!("{{\"email\":\"a@example.com\",{base},\"email\":null}}"),
            format!("{{\"email\":null,\"email\":\"b@example.com\",{base}}}"),
            format!("{{\"email\":\"a@example.com\",{base},\"emailVerified\":false,\"emailVerified\":true}}"),
            format!("{{\"email\":\"a@example.com\",{base},\"first_name\":\"Eve\"}}"),
        ] {
            let parsed = jsonl(&format!("{object}\n"));
            assert!(parsed.users.is_empty(), "{object}");
            let errors = messages(&parsed);
            assert_eq!(errors.len(), 1, "{object}");
            assert_eq!(errors[0].0, 1);
            assert!(errors[0].1.contains("twice"), "{object}: {errors:?}");
        }
        assert_eq!(
            jsonl(&format!("{{\"email\":\"a@example.com\",{base}}}\n")).users.len(),
            1
        );
    }

    #[test]
    fn an_unterminated_csv_quote_is_an_error_on_its_line() {
        let header = "email,passwordHash,firstName,lastName\n";
        // On the last line, with and without a final newline: the csv crate
        // reads `Lovelace` (or `Lovelace\n`, trimmed) and no error.
        for tail in ["", "\n", "\r\n"] {
            let parsed = csv(&format!(
                "{header}bob@example.com,{HASH},Bob,B\nada@example.com,{HASH},Ada,\"Lovelace{tail}"
            ));
            let errors = messages(&parsed);
            assert_eq!(errors.len(), 1, "{tail:?}: {errors:?}");
            assert_eq!(errors[0].0, 3, "{tail:?}");
            assert!(errors[0].1.contains("never closes"), "{errors:?}");
        }
        // In the middle: the rest of the file would be one name.
        let parsed = csv(&format!(
            "{header}ada@example.com,{HASH},\"Ada,L\nbob@example.com,{HASH},Bob,B\ncy@example.com,{HASH},Cy,C\n"
        ));
        let errors = messages(&parsed);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].0 == 2 && errors[0].1.contains("never closes"), "{errors:?}");
        assert!(parsed.users.is_empty());
        // After a closed quote in a doubled-quote field, and in a last column.
        let parsed = csv(&format!(
            "{header}ada@example.com,{HASH},\"Ada \"\"the\"\" L\",L\nbob@example.com,{HASH},Bob,\"B"
        ));
        assert_eq!(messages(&parsed), [(3, messages(&parsed)[0].1)]);
        assert_eq!(parsed.users.len(), 1, "the row before it parses");
        // Quotes that close are fine, multi-line fields and quotes inside
        // unquoted fields included.
        let parsed = csv(&format!(
            "{BOM}\"email\",passwordHash,firstName,lastName\n\
             ada@example.com,{HASH},\"Ada, \"\"the first\"\"\",\"\"\n\
             bob@example.com,{HASH},Bo\"b,\"\"\"Bee\"\"\"\n\
             cy@example.com,{HASH},\"Cy\",C\r\n",
            BOM = '\u{feff}'
        ));
        assert!(parsed.errors.is_empty(), "{:?}", messages(&parsed));
        assert_eq!(parsed.users.len(), 3);
        assert_eq!(parsed.users[0].1.user.first_name.as_str(), "Ada, \"the first\"");
        assert_eq!(parsed.users[1].1.user.first_name.as_str(), "Bo\"b");
        assert_eq!(parsed.users[1].1.user.last_name.as_str(), "\"Bee\"");
        assert_eq!(unterminated_quote(b"a,\"b\nc\n\"\"\nd"), Some(1));
        assert_eq!(unterminated_quote(b"a,\"b\nc\"\n\"d\""), None);
        assert_eq!(unterminated_quote(b"a\n\n\"x\"\"\n"), Some(3));
    }

    #[test]
    fn costly_argon2_hashes_are_bad_rows_within_the_servers_limits() {
        let salt_and_hash = "c29tZXNhbHRzb21lc2FsdA$YWJjZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXoxMjM0NTY";
        let mut text = String::from("email,passwordHash,firstName\n");
        for (i, params) in [
            "m=19456,t=4294967295,p=1",
            "m=19456,t=100000,p=1",
            "m=1048576,t=2,p=1",
            "m=102400,t=2,p=8",
            "m=65536,t=3,p=4",
        ]
        .iter()
        .enumerate()
        {
            // PHC strings hold commas: quoted in CSV.
            text.push_str(&format!(
                "u{i}@example.com,\"$argon2id$v=19${params}${salt_and_hash}\",U\n"
            ));
        }
        text.push_str(&format!(
            "d@example.com,\"$argon2d$v=19$m=19456,t=2,p=1${salt_and_hash}\",D\n"
        ));
        let parsed = csv(&text);
        let errors = messages(&parsed);
        let lines: Vec<u64> = errors.iter().map(|e| e.0).collect();
        assert_eq!(lines, [2, 3, 4, 5, 7], "{errors:?}");
        assert!(errors[0].1.contains("t=4294967295"), "{errors:?}");
        assert!(errors[4].1.contains("$argon2d$"), "{errors:?}");
        assert!(errors.iter().all(|(_, m)| !m.contains(salt_and_hash)));
        // A server configured with 100 MiB runs (and so imports) Django's default.
        let big = HashParams {
            memory_kib: 102_400,
            ..HashParams::default()
        };
        let parsed = parse(text.as_bytes(), Format::Csv, TenantId::DEFAULT, NOW, &big).unwrap();
        let lines: Vec<u64> = parsed.errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, [2, 3, 4, 7]);
    }
}
