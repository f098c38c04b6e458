//! Where lenscap's logs go and what they may contain.
//!
//! - **Format**: `--log-format text` (default; one human line per event) or
//!   `--log-format json` (one JSON object per line:
//!   `{"timestamp","level","target","fields":{…},"spans":[{"name","fields":{…}}]}`).
//! - **Level**: the `LENSCAP_LOG` environment variable, an `EnvFilter`
//!   directive (`debug`, `lenscap=debug,self_update=info`); `info` when
//!   unset or invalid (an invalid value is logged as a warning rather than
//!   stopping the daemon).
//! - **Destination**: stderr, or `--log-file PATH` (appended, created with
//!   mode 0640). Colour only when stderr is a terminal.
//!
//! **macOS.** The daemon's stderr is what launchd's `StandardErrorPath`
//! names, `/Library/Logs/lenscap/lenscap.err.log`
//! (`tail -f /Library/Logs/lenscap/lenscap.err.log`). lenscap does *not*
//! write to the unified log (`os_log`, `log show`): the one crate for it,
//! `tracing-oslog`, compiles a C shim that needs Xcode, which breaks the
//! macOS type-check this project's CI runs on Linux, and it logs every
//! field `%{public}` anyway. docs/install.md says how to read the files.
//!
//! **Secrets.** No field whose name contains `token`, `secret`, `password`,
//! `passwd`, `credential`, `authorization`, `api_key`/`apikey` or
//! `private_key` is ever written: its value is replaced by `<redacted>` in
//! both formats, in events and in spans. The free-text message is not
//! inspected, so code must never format a secret into a message; pass it
//! as a field if it must be mentioned at all.

use std::fmt;
use std::fs::OpenOptions;
use std::io::IsTerminal;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::{FormatEvent, FormatFields, Writer};
use tracing_subscriber::fmt::{FmtContext, FormattedFields};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer};

/// The environment variable holding the filter directive.
pub const ENV_FILTER: &str = "LENSCAP_LOG";

/// What replaces a secret field's value.
pub const REDACTED: &str = "<redacted>";

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// How `lenscap` logs; from the command line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogOptions {
    pub format: LogFormat,
    /// Append to this file instead of writing to stderr.
    pub file: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum LoggingError {
    #[error("cannot open log file {}: {source}; check that its directory exists and is writable, or drop --log-file to log to stderr", .path.display())]
    OpenFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Installs the global subscriber. A second call (tests) changes nothing.
pub fn init(options: &LogOptions) -> Result<(), LoggingError> {
    let (filter, bad_filter) = filter_from_env();
    let result = match &options.file {
        Some(path) => {
            let file = open_log_file(path)?;
            let layer = layer(options.format, Mutex::new(file), false);
            tracing_subscriber::registry()
                .with(layer.with_filter(filter))
                .try_init()
        }
        None => {
            let ansi = std::io::stderr().is_terminal();
            let layer = layer(options.format, std::io::stderr, ansi);
            tracing_subscriber::registry()
                .with(layer.with_filter(filter))
                .try_init()
        }
    };
    if result.is_ok()
        && let Some((value, err)) = bad_filter
    {
        tracing::warn!("{ENV_FILTER}={value:?} is not a valid filter ({err}); logging at info");
    }
    Ok(())
}

/// `LENSCAP_LOG`, or `info`; with the rejected value and why, if any.
fn filter_from_env() -> (EnvFilter, Option<(String, String)>) {
    match std::env::var(ENV_FILTER) {
        Ok(value) => match EnvFilter::try_new(&value) {
            Ok(filter) => (filter, None),
            Err(err) => (EnvFilter::new("info"), Some((value, err.to_string()))),
        },
        Err(_) => (EnvFilter::new("info"), None),
    }
}

fn open_log_file(path: &Path) -> Result<std::fs::File, LoggingError> {
    OpenOptions::new()
        .create(true)
        .append(true)
        // Not world-readable: fields are redacted, but paths and user
        // names in findings are still nobody else's business.
        .mode(0o640)
        .open(path)
        .map_err(|source| LoggingError::OpenFile {
            path: path.to_path_buf(),
            source,
        })
}

/// The formatting layer for `format`, writing to `writer`.
pub fn layer<S, W>(format: LogFormat, writer: W, ansi: bool) -> Box<dyn Layer<S> + Send + Sync>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    let base = tracing_subscriber::fmt::layer()
        .with_writer(writer)
        .with_ansi(ansi);
    match format {
        LogFormat::Text => base.with_target(false).fmt_fields(TextFields).boxed(),
        LogFormat::Json => base.fmt_fields(JsonFields).event_format(JsonEvent).boxed(),
    }
}

/// Is a field with this name a secret whose value must never be written?
pub fn is_secret(name: &str) -> bool {
    const MARKERS: &[&str] = &[
        "token",
        "secret",
        "password",
        "passwd",
        "credential",
        "authorization",
        "api_key",
        "apikey",
        "private_key",
    ];
    let lower = name.to_ascii_lowercase();
    MARKERS.iter().any(|m| lower.contains(m))
}

/// `key=value` fields, space-separated, secrets redacted.
#[derive(Debug, Clone, Copy, Default)]
pub struct TextFields;

impl<'w> FormatFields<'w> for TextFields {
    fn format_fields<R: RecordFields>(&self, writer: Writer<'w>, fields: R) -> fmt::Result {
        let mut visitor = TextVisitor {
            writer,
            first: true,
            result: Ok(()),
        };
        fields.record(&mut visitor);
        visitor.result
    }
}

struct TextVisitor<'w> {
    writer: Writer<'w>,
    first: bool,
    result: fmt::Result,
}

impl Visit for TextVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.record_debug(field, &format_args!("{value}"));
        } else {
            self.record_debug(field, &value);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let name = field.name();
        // log-crate records (self_update logs through `log`) carry their
        // metadata as `log.*` fields; the event formatter shows it already.
        if self.result.is_err() || name.starts_with("log.") {
            return;
        }
        let sep = if self.first { "" } else { " " };
        self.first = false;
        self.result = if name == "message" {
            write!(self.writer, "{sep}{value:?}")
        } else if is_secret(name) {
            write!(self.writer, "{sep}{name}={REDACTED}")
        } else {
            write!(self.writer, "{sep}{name}={value:?}")
        };
    }
}

/// Fields as a JSON object, secrets redacted. Span fields are stored in
/// this form and embedded by [`JsonEvent`].
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonFields;

impl<'w> FormatFields<'w> for JsonFields {
    fn format_fields<R: RecordFields>(&self, mut writer: Writer<'w>, fields: R) -> fmt::Result {
        let mut visitor = JsonVisitor::default();
        fields.record(&mut visitor);
        write!(writer, "{}", Value::Object(visitor.fields))
    }

    fn add_fields(
        &self,
        current: &'w mut FormattedFields<Self>,
        fields: &tracing::span::Record<'_>,
    ) -> fmt::Result {
        let mut visitor = JsonVisitor {
            fields: serde_json::from_str(&current.fields).unwrap_or_default(),
            log_target: None,
        };
        fields.record(&mut visitor);
        current.fields = Value::Object(visitor.fields).to_string();
        Ok(())
    }
}

#[derive(Default)]
struct JsonVisitor {
    fields: Map<String, Value>,
    /// `log.target` of a log-crate record: the real target.
    log_target: Option<String>,
}

impl JsonVisitor {
    fn put(&mut self, field: &Field, value: Value) {
        match field.name() {
            "log.target" => self.log_target = value.as_str().map(str::to_string),
            // The rest of a log-crate record's metadata (module, file, line).
            name if name.starts_with("log.") => {}
            name if is_secret(name) => {
                self.fields.insert(name.to_string(), Value::from(REDACTED));
            }
            name => {
                self.fields.insert(name.to_string(), value);
            }
        }
    }
}

impl Visit for JsonVisitor {
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, Value::from(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, Value::from(value));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, Value::from(value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, Value::from(value));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, Value::from(value));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.put(field, Value::from(format!("{value:?}")));
    }
}

/// One JSON object per event. Written by hand rather than with
/// tracing-subscriber's `json()` because that formatter records event
/// fields with its own visitor, past any field formatter, so it could not
/// redact them.
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonEvent;

impl<S> FormatEvent<S, JsonFields> for JsonEvent
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, JsonFields>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        let mut visitor = JsonVisitor::default();
        event.record(&mut visitor);
        let mut spans = Vec::new();
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                let fields = span
                    .extensions()
                    .get::<FormattedFields<JsonFields>>()
                    .and_then(|f| serde_json::from_str::<Value>(&f.fields).ok())
                    .unwrap_or_else(|| Value::Object(Map::new()));
                spans.push(serde_json::json!({ "name": span.name(), "fields": fields }));
            }
        }
        let timestamp = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        let line = serde_json::json!({
            "timestamp": timestamp,
            "level": meta.level().as_str(),
            "target": visitor.log_target.as_deref().unwrap_or(meta.target()),
            "fields": Value::Object(visitor.fields),
            "spans": spans,
        });
        writeln!(writer, "{line}")
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::fmt::MakeWriter;

    use super::*;

    /// Collects everything written, for inspection.
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Buffer {
        type Writer = Buffer;
        fn make_writer(&'a self) -> Buffer {
            self.clone()
        }
    }

    /// Logs a span and an event with secret and ordinary fields through
    /// the layer for `format`, and returns the output.
    fn capture(format: LogFormat) -> String {
        let buffer = Buffer::default();
        let subscriber = tracing_subscriber::registry().with(layer(format, buffer.clone(), false));
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!(
                "upload",
                collector = "https://c.example",
                api_token = "tok-SPAN-1234",
                password = tracing::field::Empty
            );
            let _entered = span.enter();
            span.record("password", "hunter2-LATE");
            tracing::info!(
                client_secret = "sec-EVENT-5678",
                Authorization = "Bearer abc-HDR",
                batch = 3,
                "sent batch"
            );
        });
        String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap()
    }

    fn assert_no_secret(out: &str) {
        for secret in ["tok-SPAN-1234", "hunter2-LATE", "sec-EVENT-5678", "abc-HDR"] {
            assert!(!out.contains(secret), "{secret} leaked:\n{out}");
        }
    }

    #[test]
    fn text_redacts_secret_fields_in_spans_and_events() {
        let out = capture(LogFormat::Text);
        assert_no_secret(&out);
        for expected in [
            "sent batch",
            "batch=3",
            "client_secret=<redacted>",
            "Authorization=<redacted>",
            "collector=\"https://c.example\"",
            "api_token=<redacted>",
            "password=<redacted>",
        ] {
            assert!(out.contains(expected), "missing {expected}:\n{out}");
        }
    }

    #[test]
    fn json_redacts_secret_fields_in_spans_and_events() {
        let out = capture(LogFormat::Json);
        assert_no_secret(&out);
        let line: Value = serde_json::from_str(out.trim()).unwrap();
        assert_eq!(line["level"], "INFO");
        assert_eq!(line["fields"]["message"], "sent batch");
        assert_eq!(line["fields"]["batch"], 3);
        assert_eq!(line["fields"]["client_secret"], REDACTED);
        assert_eq!(line["fields"]["Authorization"], REDACTED);
        let span = &line["spans"][0];
        assert_eq!(span["name"], "upload");
        assert_eq!(span["fields"]["collector"], "https://c.example");
        assert_eq!(span["fields"]["api_token"], REDACTED);
        assert_eq!(span["fields"]["password"], REDACTED);
        assert!(line["timestamp"].as_str().unwrap().ends_with('Z'));
    }

    #[test]
    fn secret_names() {
        for name in [
            "token",
            "auth_token",
            "Password",
            "client_secret",
            "API_KEY",
        ] {
            assert!(is_secret(name), "{name}");
        }
        for name in ["path", "pid", "label", "key_id", "public_key"] {
            assert!(!is_secret(name), "{name}");
        }
    }

    #[test]
    fn log_file_is_appended_and_not_world_readable() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lenscap.log");
        std::fs::write(&path, "old\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        let mut file = open_log_file(&path).unwrap();
        writeln!(file, "new").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "old\nnew\n");
        let fresh = dir.path().join("fresh.log");
        open_log_file(&fresh).unwrap();
        let mode = std::fs::metadata(&fresh).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode & 0o007, 0, "mode {mode:o}");
        let err = open_log_file(&dir.path().join("missing/dir.log")).unwrap_err();
        assert!(err.to_string().contains("missing/dir.log"), "{err}");
    }
}
