//! Creating and checking the stream: its configuration, what makes an existing stream
//! unfit (anything that could drop a message, or the layout of an older throughcare), and
//! which JetStream API errors are worth retrying. Shared with the access log.

use std::time::Duration;

use async_nats::jetstream::{self, stream};
use tokio::time::Instant;

use crate::config::JetStreamConfig;
use crate::error::JetStreamError;
use crate::records::{stream_subjects, STREAM};

/// Streams of the previous layout (KV buckets holding identity claims and submission
/// intents): their presence means the data was written by an older throughcare.
pub(crate) const OLD_BUCKET_STREAMS: [&str; 2] =
    ["KV_THROUGHCARE_IDENTITY", "KV_THROUGHCARE_SUBMISSIONS"];

pub(crate) fn stream_config(config: &JetStreamConfig) -> stream::Config {
    stream::Config {
        allow_atomic_publish: true,
        ..kept_stream(
            STREAM,
            "throughcare event ledger: events (one subject per person), submission records and \
             identity claims, appended in atomic batches, never deleted",
            stream_subjects(),
            config,
        )
    }
}

/// What every stream of the ledger (events, access log) is made with: file-backed, limits
/// retention with no limits, no deletes or purges (what [`stream_problems`] checks), direct
/// gets, and `config`'s replicas and dedupe window.
pub(crate) fn kept_stream(
    name: &str,
    description: &str,
    subjects: Vec<String>,
    config: &JetStreamConfig,
) -> stream::Config {
    stream::Config {
        name: name.into(),
        description: Some(description.into()),
        subjects,
        storage: stream::StorageType::File,
        retention: stream::RetentionPolicy::Limits,
        num_replicas: config.replicas,
        deny_delete: true,
        deny_purge: true,
        allow_direct: true,
        duplicate_window: config.duplicate_window.unwrap_or_default(),
        ..Default::default()
    }
}

/// What makes an existing stream unfit to hold a log whose subjects are
/// `<prefix><id>` (the ledger's events, or the access log's entries): anything that could
/// drop or delete a message.
pub(crate) fn stream_problems(c: &stream::Config, prefix: &str) -> Vec<String> {
    let mut p = Vec::new();
    let subject = format!("{prefix}*");
    let wildcard = format!("{prefix}>");
    if !c.subjects.iter().any(|s| *s == subject || *s == wildcard) {
        p.push(format!(
            "its subjects {:?} do not include {subject}",
            c.subjects
        ));
    }
    if c.storage != stream::StorageType::File {
        p.push("it is not file-backed".into());
    }
    if !c.deny_delete {
        p.push("deny_delete is off".into());
    }
    if !c.deny_purge {
        p.push("deny_purge is off".into());
    }
    if c.retention != stream::RetentionPolicy::Limits {
        p.push("its retention is not Limits (messages would be removed)".into());
    }
    if c.max_age > Duration::ZERO
        || c.max_messages > 0
        || c.max_bytes > 0
        || c.max_messages_per_subject > 0
    {
        p.push("it has limits that would discard messages (max_age, max_msgs, max_bytes or max_msgs_per_subject)".into());
    }
    p
}

/// Whether an existing event stream was made by the previous layout (events only, claims
/// and intents in KV buckets, no atomic batches): such a stream has no submission records
/// or position headers, and this version cannot read or extend it.
pub(crate) fn old_layout(c: &stream::Config) -> Option<String> {
    let missing: Vec<String> = stream_subjects()
        .into_iter()
        .filter(|s| !c.subjects.contains(s))
        .collect();
    if !missing.is_empty() {
        return Some(format!("its subjects {:?} lack {missing:?}", c.subjects));
    }
    if !c.allow_atomic_publish {
        return Some("it does not allow atomic batches".into());
    }
    None
}

/// Whether a JetStream API error is worth retrying (503: temporarily unavailable, e.g. no
/// leader yet or a server restarting; 408: timed out).
pub(crate) fn transient_api(e: &jetstream::Error) -> bool {
    matches!(e.code(), 503 | 408)
}

pub(crate) fn source_api_error<'a>(
    e: &'a (dyn std::error::Error + 'static),
) -> Option<&'a jetstream::Error> {
    let mut cur = e.source();
    while let Some(s) = cur {
        if let Some(api) = s.downcast_ref::<jetstream::Error>() {
            return Some(api);
        }
        cur = s.source();
    }
    None
}

/// Gets or creates a stream, retrying transient failures until `deadline`.
pub(crate) async fn ensure_stream(
    js: &jetstream::Context,
    config: stream::Config,
    deadline: Instant,
) -> Result<stream::Stream, JetStreamError> {
    let name = config.name.clone();
    let mut pause = Duration::from_millis(50);
    loop {
        let err = match js.get_or_create_stream(config.clone()).await {
            Ok(s) => return Ok(s),
            Err(e) => e,
        };
        let transient = match err.kind() {
            jetstream::context::CreateStreamErrorKind::TimedOut
            | jetstream::context::CreateStreamErrorKind::JetStreamUnavailable => true,
            jetstream::context::CreateStreamErrorKind::JetStream(api) => transient_api(&api),
            _ => false,
        };
        if !transient || Instant::now() + pause > deadline {
            return Err(JetStreamError::Setup {
                what: format!("stream {name}"),
                detail: err.to_string(),
            });
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(1));
    }
}

/// Refuses a server where the previous layout's KV buckets exist, before anything is
/// created next to them.
pub(crate) async fn refuse_old_buckets(js: &jetstream::Context) -> Result<(), JetStreamError> {
    for name in OLD_BUCKET_STREAMS {
        if js.get_stream(name).await.is_ok() {
            return Err(JetStreamError::OldLayout {
                detail: format!("stream {name} (a KV bucket of the previous layout) exists"),
            });
        }
    }
    Ok(())
}
