//! Logging: human-readable by default, JSON on request, filtered by
//! `TESSERA_LOG` (default `info`).
//!
//! Nothing here may print a secret: handlers log ids, never emails' passwords,
//! tokens or keys, and the HTTP stack's own trace output (which can include
//! header values) is capped at `info` whatever the filter says.

use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::EnvFilter;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Installs the global subscriber. Call once; later calls are ignored.
pub fn init(format: LogFormat, filter: &str) -> anyhow::Result<()> {
    let mut filter =
        EnvFilter::try_new(filter).map_err(|e| anyhow::anyhow!("TESSERA_LOG: {e} (try `info` or `tessera=debug`)"))?;
    for directive in ["hyper=info", "h2=info", "tower=info", "sqlx=warn"] {
        if let Ok(d) = directive.parse() {
            filter = filter.add_directive(d);
        }
    }
    let registry = tracing_subscriber::registry().with(filter);
    let result = match format {
        LogFormat::Text => registry
            .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
            .try_init(),
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_writer(std::io::stderr),
            )
            .try_init(),
    };
    let _ = result;
    Ok(())
}
