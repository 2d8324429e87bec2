//! Reads: one message by subject or sequence (gets answered by the stream leader, so a
//! reader sees every acknowledged write, also in a cluster), the last event and the
//! stream's tail, a person's history by walking back along `Throughcare-Prev-Seq`, and
//! the stream sequence of a position.
//!
//! Positions count events only, so an event's position is read from its
//! `Throughcare-Position` header, never from its stream sequence. Positions grow with
//! stream sequences (the writer stamps them in order under the global expected-last-
//! sequence check), which lets [`Shared::seq_of_position`] binary-search.

use std::sync::Arc;

use async_nats::jetstream::{message::StreamMessage, stream};
use async_nats::HeaderMap;
use chrono::{DateTime, Utc};
use throughcare_events::{PersonId, RecordedEvent, StoredBody};
use throughcare_ledger::Error;

use super::setup::transient_api;
use super::{unavailable, PersonTail, Shared};
use crate::cache::History;
use crate::error::Attempt;
use crate::records::{
    person_of_subject, subject_of, ALL_SUBJECTS, EVENT_SUBJECTS, HASH_HEADER, POSITION_HEADER,
    PREV_SEQ_HEADER,
};

/// The stream's last message as the writer needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StreamTail {
    /// The last stream sequence (0 when empty).
    pub seq: u64,
    /// The last event's position (0 when none).
    pub position: u64,
    /// The last event's `recorded_at`.
    pub recorded_at: Option<DateTime<Utc>>,
}

/// The last event: its sequence, position and recording time.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LastEvent {
    pub seq: u64,
    pub position: u64,
    pub recorded_at: DateTime<Utc>,
}

pub(crate) fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).map(|v| v.as_str())
}

fn header_u64(headers: Option<&HeaderMap>, name: &str) -> Option<u64> {
    headers
        .and_then(|h| header_str(h, name))
        .and_then(|v| v.parse().ok())
}

/// The position stamped on an event message.
pub(crate) fn position_of(seq: u64, headers: Option<&HeaderMap>) -> Result<u64, Error> {
    header_u64(headers, POSITION_HEADER)
        .filter(|p| *p > 0 && *p <= seq)
        .ok_or_else(|| {
            Error::Corrupt(format!(
                "the event at stream sequence {seq} has no valid {POSITION_HEADER} header"
            ))
        })
}

/// Reads a stored event message back as a recorded event (its position from the header),
/// checking the hash header against the bytes and the subject against the body.
pub(crate) fn decode_message(
    seq: u64,
    subject: &str,
    headers: Option<&HeaderMap>,
    payload: &[u8],
) -> Result<RecordedEvent, Error> {
    let position = position_of(seq, headers)?;
    let e = StoredBody::decode(position, payload)?;
    let stored = headers.and_then(|h| header_str(h, HASH_HEADER));
    if stored != Some(e.hash.to_hex().as_str()) {
        return Err(Error::Corrupt(format!(
            "hash mismatch at position {position}: the stored bytes do not match their {HASH_HEADER} header"
        )));
    }
    if person_of_subject(subject) != Some(e.person_id) {
        return Err(Error::Corrupt(format!(
            "event at position {position} belongs to person {} but is on subject {subject}",
            e.person_id
        )));
    }
    Ok(e)
}

fn decode_stream_message(m: &StreamMessage) -> Result<RecordedEvent, Error> {
    decode_message(m.sequence, &m.subject, Some(&m.headers), &m.payload)
}

impl Shared {
    /// One leader get (`STREAM.MSG.GET`), retrying transient failures for up to
    /// `retry_for`; `None` if there is no such message.
    pub(crate) async fn get_message(
        &self,
        what: &str,
        request: impl Fn() -> stream::RawMessageBuilder,
    ) -> Result<Option<StreamMessage>, Error> {
        self.retrying(what, || {
            let builder = request();
            async move {
                match builder.send().await {
                    Ok(m) => Ok(Some(m)),
                    Err(e) => match e.kind() {
                        stream::LastRawMessageErrorKind::NoMessageFound => Ok(None),
                        stream::LastRawMessageErrorKind::InvalidSubject => {
                            Err(Attempt::Fail(unavailable(what, "invalid subject")))
                        }
                        stream::LastRawMessageErrorKind::JetStream(api) if !transient_api(&api) => {
                            Err(Attempt::Fail(unavailable(what, api)))
                        }
                        _ => Err(Attempt::Retry(e.to_string())),
                    },
                }
            }
        })
        .await
    }

    pub(crate) async fn last_on_subject(
        &self,
        subject: &str,
    ) -> Result<Option<StreamMessage>, Error> {
        let stream = &self.stream;
        self.get_message("reading the last message of a subject", || {
            stream.raw_message_builder().last_by_subject(subject)
        })
        .await
    }

    pub(crate) async fn message_at(&self, seq: u64) -> Result<Option<StreamMessage>, Error> {
        let stream = &self.stream;
        self.get_message("reading a message", || {
            stream.raw_message_builder().sequence(seq)
        })
        .await
    }

    /// The first event at or after stream sequence `seq`.
    async fn event_from(&self, seq: u64) -> Result<Option<StreamMessage>, Error> {
        let stream = &self.stream;
        self.get_message("reading an event", || {
            stream
                .raw_message_builder()
                .sequence(seq)
                .next_by_subject(EVENT_SUBJECTS)
        })
        .await
    }

    /// The last event of the stream, if any.
    pub(crate) async fn last_event(&self) -> Result<Option<LastEvent>, Error> {
        let Some(m) = self.last_on_subject(EVENT_SUBJECTS).await? else {
            return Ok(None);
        };
        let e = decode_stream_message(&m)?;
        Ok(Some(LastEvent {
            seq: m.sequence,
            position: e.position,
            recorded_at: e.recorded_at,
        }))
    }

    /// The stream's last sequence and last event, read from the leader (stream info can
    /// lag behind acknowledged writes in a cluster). Every batch ends with an event, so
    /// the last message is normally the last event and one get does.
    pub(crate) async fn stream_tail(&self) -> Result<StreamTail, Error> {
        let Some(m) = self.last_on_subject(ALL_SUBJECTS).await? else {
            return Ok(StreamTail {
                seq: 0,
                position: 0,
                recorded_at: None,
            });
        };
        let last = if person_of_subject(&m.subject).is_some() {
            let e = decode_stream_message(&m)?;
            Some((e.position, e.recorded_at))
        } else {
            self.last_event()
                .await?
                .map(|l| (l.position, l.recorded_at))
        };
        Ok(StreamTail {
            seq: m.sequence,
            position: last.map_or(0, |l| l.0),
            recorded_at: last.map(|l| l.1),
        })
    }

    /// A person's last event as stored now (and remembered as a hint).
    pub(crate) async fn person_tail(&self, person: PersonId) -> Result<PersonTail, Error> {
        let tail = match self.last_on_subject(&subject_of(person)).await? {
            None => PersonTail::NONE,
            Some(m) => {
                let e = decode_stream_message(&m)?;
                PersonTail {
                    seq: m.sequence,
                    position: e.position,
                    hash: e.hash,
                }
            }
        };
        if tail.seq > 0 {
            self.hints.lock().expect("hints lock").person(person, tail);
        }
        Ok(tail)
    }

    /// The stream sequence of the event at `position`, `None` beyond the last event.
    /// Positions grow with sequences and an event's sequence is at least its position, so
    /// a binary search over [position, last sequence] with "first event at or after" gets
    /// finds it in O(log n) gets.
    pub(crate) async fn seq_of_position(&self, position: u64) -> Result<Option<u64>, Error> {
        let position = position.max(1);
        let Some(last) = self.last_event().await? else {
            return Ok(None);
        };
        if position > last.position {
            return Ok(None);
        }
        if position == last.position {
            return Ok(Some(last.seq));
        }
        let (mut lo, mut hi) = (position, last.seq);
        // Invariant: the event at `position` has a sequence in [lo, hi].
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let m = self.event_from(mid).await?.ok_or_else(|| {
                Error::Corrupt(format!("no event at or after stream sequence {mid}"))
            })?;
            let p = position_of(m.sequence, Some(&m.headers))?;
            if p == position {
                return Ok(Some(m.sequence));
            }
            if p < position {
                lo = m.sequence + 1;
            } else {
                hi = mid;
            }
        }
        let m = self.event_from(lo).await?;
        match m {
            Some(m) if position_of(m.sequence, Some(&m.headers))? == position => {
                Ok(Some(m.sequence))
            }
            _ => Err(Error::Corrupt(format!(
                "position {position} is missing from the stream"
            ))),
        }
    }

    /// The event at `position`, or `None` beyond the last event.
    pub(crate) async fn read_at(&self, position: u64) -> Result<Option<RecordedEvent>, Error> {
        let Some(seq) = self.seq_of_position(position).await? else {
            return Ok(None);
        };
        let m = self
            .message_at(seq)
            .await?
            .ok_or_else(|| Error::Corrupt(format!("position {position} vanished")))?;
        decode_stream_message(&m).map(Some)
    }

    pub(crate) async fn read_person(
        &self,
        person: PersonId,
        from: u64,
    ) -> Result<Vec<RecordedEvent>, Error> {
        let history = match self.cache.get(person) {
            Some(cached) => match self.history(person, Some(cached), 1).await? {
                Some(h) => h,
                None => {
                    // The stream does not continue the cached history (it was replaced).
                    self.cache.forget(person);
                    self.history(person, None, from).await?.unwrap_or_default()
                }
            },
            None => self.history(person, None, from).await?.unwrap_or_default(),
        };
        Ok(history
            .iter()
            .filter(|e| e.position >= from)
            .cloned()
            .collect())
    }

    /// A person's events, oldest first, by walking back from the subject's last message
    /// along `Throughcare-Prev-Seq`: one get by sequence per event, never a scan, and the
    /// links cannot lie (the first event of a person in each batch carried its link as the
    /// `Nats-Expected-Last-Subject-Sequence` the server checked; later ones of the same
    /// batch were stored right behind it, atomically). With a cached history only the
    /// events after it are fetched (`None` if the stream does not continue it); without
    /// one the walk stops before `from`. Complete histories are cached.
    async fn history(
        &self,
        person: PersonId,
        cached: Option<History>,
        from: u64,
    ) -> Result<Option<History>, Error> {
        let subject = subject_of(person);
        let base = cached
            .as_ref()
            .and_then(|c| c.last())
            .map(|e| (e.position, e.hash));
        let mut newer = Vec::new();
        let mut next = self.last_on_subject(&subject).await?;
        let mut complete = false;
        let mut tail: Option<PersonTail> = None;
        while let Some(m) = next {
            let e = decode_stream_message(&m)?;
            tail.get_or_insert(PersonTail {
                seq: m.sequence,
                position: e.position,
                hash: e.hash,
            });
            if let Some((position, hash)) = base {
                if e.position < position {
                    return Ok(None);
                }
                if e.position == position {
                    if e.hash != hash {
                        return Ok(None);
                    }
                    complete = true;
                    break;
                }
            }
            let prev: u64 = header_str(&m.headers, PREV_SEQ_HEADER)
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| {
                    Error::Corrupt(format!("position {} has no {PREV_SEQ_HEADER}", e.position))
                })?;
            if prev >= m.sequence {
                return Err(Error::Corrupt(format!(
                    "position {} names a previous event at stream sequence {prev}, which is not earlier",
                    e.position
                )));
            }
            let position = e.position;
            newer.push(e);
            if prev == 0 {
                complete = true;
                break;
            }
            if base.is_none() && position <= from {
                break;
            }
            let m = self.message_at(prev).await?.ok_or_else(|| {
                Error::Corrupt(format!(
                    "{subject}: previous event at sequence {prev} is missing"
                ))
            })?;
            if m.subject.as_str() != subject {
                return Err(Error::Corrupt(format!(
                    "{subject}: previous event at sequence {prev} is on another subject"
                )));
            }
            next = Some(m);
        }
        if let Some(t) = tail {
            self.hints.lock().expect("hints lock").person(person, t);
        }
        if base.is_some() && !complete {
            return Ok(None);
        }
        newer.reverse();
        let history: History = match cached {
            Some(c) if newer.is_empty() => c,
            Some(c) => Arc::new(c.iter().cloned().chain(newer).collect()),
            None => Arc::new(newer),
        };
        if complete {
            self.cache.put(person, history.clone());
        }
        Ok(Some(history))
    }
}
