//! Streaming reads: `read_all` (up to the head when called) and `subscribe` (catch-up
//! then live) over an ordered pull consumer filtered to the events
//! (`throughcare.person.*`; the records and claims that share the stream are skipped by
//! the server) that starts at the stream sequence of the requested position (found by
//! binary search, see `Shared::seq_of_position`). Positions are read from each event's
//! `Throughcare-Position` header and must run on without a gap.
//!
//! The ordered consumer delivers stream sequences in order and recreates itself at the
//! last delivered sequence + 1 when it detects a gap, a missed heartbeat or a server
//! restart; on top of that this cursor remembers the next position it owes the caller and
//! opens a fresh consumer there after any error, dropping anything below it. So the caller
//! sees each position once, in order: no gap and no duplicate at the seam between catch-up
//! and live (there is no seam: it is one consumer). JetStream delivers a message to
//! consumers only once it is stored (in a cluster, once a quorum has it), so nothing a
//! crash could lose is ever handed out.

use std::time::Duration;

use async_nats::jetstream::consumer::{pull, DeliverPolicy};
use futures::stream::{self, BoxStream, StreamExt};
use throughcare_events::RecordedEvent;
use throughcare_ledger::{Error, EventLog};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::log::{decode_message, JetStreamLog};
use crate::records::EVENT_SUBJECTS;

struct Cursor {
    log: JetStreamLog,
    /// The next position owed to the caller.
    next: u64,
    /// The stream sequence to open the next consumer at (found from `next` when unknown).
    next_seq: Option<u64>,
    /// `read_all`: the head when it was called; `subscribe`: none.
    end: Option<u64>,
    /// `read_all`: the head request sent when it was called.
    asked_end: Option<JoinHandle<Result<u64, Error>>>,
    live: bool,
    messages: Option<pull::Ordered>,
    /// Set after a final error: the stream ends.
    done: bool,
    /// Since when reading has been failing (reset by each delivered event); `read_all`
    /// gives up after `retry_for` of that, `subscribe` never does.
    failing_since: Option<Instant>,
    pause: Duration,
}

/// The stream sequence to start reading `position` at: its event's, or just after the
/// last event when it is beyond the head.
async fn start_of(log: &JetStreamLog, position: u64) -> Result<u64, String> {
    let inner = &log.inner;
    match inner.seq_of_position(position).await {
        Ok(Some(seq)) => Ok(seq),
        Ok(None) => match inner.last_event().await {
            Ok(last) => Ok(last.map_or(1, |l| l.seq + 1)),
            Err(e) => Err(e.to_string()),
        },
        Err(e) => Err(e.to_string()),
    }
}

async fn open(log: &JetStreamLog, from: u64) -> Result<pull::Ordered, String> {
    let consumer = log
        .inner
        .stream
        .create_consumer(pull::OrderedConfig {
            filter_subject: EVENT_SUBJECTS.to_string(),
            deliver_policy: DeliverPolicy::ByStartSequence {
                start_sequence: from,
            },
            ..Default::default()
        })
        .await
        .map_err(|e| format!("cannot create an ordered consumer at {from}: {e}"))?;
    consumer
        .messages()
        .await
        .map_err(|e| format!("cannot start an ordered consumer at {from}: {e}"))
}

impl Cursor {
    /// Waits before reopening; `Err` when a bounded read has waited long enough.
    async fn back_off(&mut self, why: String) -> Result<(), Error> {
        self.messages = None;
        let since = *self.failing_since.get_or_insert_with(Instant::now);
        if !self.live && since.elapsed() + self.pause > self.log.inner.config.retry_for {
            return Err(Error::Unavailable(format!("reading the stream: {why}")));
        }
        tracing::warn!(next = self.next, why = %why, "event stream interrupted; resuming");
        tokio::time::sleep(self.pause).await;
        self.pause = (self.pause * 2).min(Duration::from_secs(2));
        Ok(())
    }

    async fn step(&mut self) -> Option<Result<RecordedEvent, Error>> {
        loop {
            if !self.live && self.end.is_none() {
                let head = match self.asked_end.take() {
                    Some(asked) => asked.await.unwrap_or_else(|e| {
                        Err(Error::Unavailable(format!("reading the head: {e}")))
                    }),
                    None => self.log.head().await,
                };
                match head {
                    Ok(h) => self.end = Some(h),
                    Err(e) => return Some(Err(e)),
                }
            }
            if self.end.is_some_and(|end| self.next > end) {
                return None;
            }
            let messages = match self.messages.as_mut() {
                Some(m) => m,
                None => {
                    let opened = match self.next_seq {
                        Some(seq) => Ok(seq),
                        None => start_of(&self.log, self.next).await,
                    };
                    let opened = match opened {
                        Ok(seq) => {
                            self.next_seq = Some(seq);
                            open(&self.log, seq).await
                        }
                        Err(why) => Err(why),
                    };
                    match opened {
                        Ok(m) => self.messages.insert(m),
                        Err(why) => match self.back_off(why).await {
                            Ok(()) => continue,
                            Err(e) => return Some(Err(e)),
                        },
                    }
                }
            };
            let why = match messages.next().await {
                Some(Ok(msg)) => match msg.info() {
                    Ok(info) => {
                        let seq = info.stream_sequence;
                        if self.next_seq.is_some_and(|s| seq < s) {
                            continue;
                        }
                        let event = match decode_message(
                            seq,
                            msg.subject.as_str(),
                            msg.headers.as_ref(),
                            &msg.payload,
                        ) {
                            Ok(e) => e,
                            Err(e) => return Some(Err(e)),
                        };
                        self.next_seq = Some(seq + 1);
                        if event.position < self.next {
                            continue;
                        }
                        if event.position > self.next {
                            return Some(Err(Error::Corrupt(format!(
                                "position {} is missing from the stream (the next event is {})",
                                self.next, event.position
                            ))));
                        }
                        if self.end.is_some_and(|end| event.position > end) {
                            return None;
                        }
                        self.pause = Duration::from_millis(50);
                        self.failing_since = None;
                        self.next = event.position + 1;
                        return Some(Ok(event));
                    }
                    Err(e) => format!("a delivered message has no stream position: {e}"),
                },
                Some(Err(e)) => e.to_string(),
                None => "the consumer ended".to_string(),
            };
            if let Err(e) = self.back_off(why).await {
                return Some(Err(e));
            }
        }
    }
}

/// Counts a head request in flight until dropped (also if its task is cancelled).
struct HeadsGuard(JetStreamLog);

impl Drop for HeadsGuard {
    fn drop(&mut self) {
        self.0.inner.heads_in_flight.send_modify(|n| *n -= 1);
    }
}

/// The events from `from` on: up to the head (`live == false`) or forever.
pub(crate) fn events(
    log: JetStreamLog,
    from: u64,
    live: bool,
) -> BoxStream<'static, Result<RecordedEvent, Error>> {
    // `read_all` ends at the head when it was called, not when first polled: the head is
    // asked for right away, and this process's publishes wait for the answer, so an
    // append made after the call is never counted.
    let asked_end = match tokio::runtime::Handle::try_current() {
        Ok(rt) if !live => {
            let log = log.clone();
            // Publishes of this process wait until the answer is in (see `HeadsGuard`).
            log.inner.heads_in_flight.send_modify(|n| *n += 1);
            let guard = HeadsGuard(log.clone());
            Some(rt.spawn(async move {
                let head = log.head().await;
                drop(guard);
                head
            }))
        }
        _ => None,
    };
    let cursor = Cursor {
        asked_end,
        log,
        next: from.max(1),
        next_seq: None,
        end: None,
        live,
        messages: None,
        done: false,
        failing_since: None,
        pause: Duration::from_millis(50),
    };
    stream::unfold(cursor, |mut c| async move {
        if c.done {
            return None;
        }
        let item = c.step().await?;
        if item.is_err() {
            c.done = true;
        }
        Some((item, c))
    })
    .boxed()
}
