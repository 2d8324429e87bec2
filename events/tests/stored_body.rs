//! The stored body spliced from an event's one-time encoding (`StoredBody::assemble`,
//! `EncodedEvent`) is byte for byte the RFC 8785 canonical JSON of the whole body, for
//! every catalogue example (with strings that need escaping added), and its digest is
//! `Event::digest`.

use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use throughcare_events::{EncodedEvent, Event, Hash, PersonId, StoredBody};

/// The stored body as it was made before [`StoredBody::assemble`]: the whole body as
/// one JSON value through the canonicaliser.
fn reference(
    person_id: PersonId,
    recorded_at: DateTime<Utc>,
    prev: Hash,
    event: &Event,
) -> Vec<u8> {
    throughcare_tlog::canonical_json(&serde_json::json!({
        "person_id": person_id,
        "recorded_at": recorded_at.to_rfc3339_opts(SecondsFormat::Micros, true),
        "prev": prev,
        "event": event.to_json(),
    }))
}

/// Every catalogue example, spliced from its one-time encoding, gives the bytes the
/// canonicaliser gives for the whole body, and the digest `Event::digest` gives.
#[test]
fn assembled_bodies_are_the_canonical_bytes() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut seen = 0;
    for entry in std::fs::read_dir(dir).expect("examples dir") {
        let path = entry.expect("dir entry").path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let value: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).expect("read example"))
                .expect("example is JSON");
        let mut event = Event::from_stored(&value)
            .unwrap_or_else(|p| panic!("{} does not parse: {p:?}", path.display()));
        // Strings that need escaping, and non-ASCII ones, inside the envelope.
        event.id = format!("{}-\"q\"\\\u{1}\u{e9}\u{1f600}", event.id);
        let person = PersonId(ulid::Ulid(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef));
        let at = Utc.with_ymd_and_hms(2026, 11, 29, 12, 0, 0).unwrap()
            + chrono::Duration::microseconds(123_456);
        let prev = Hash::of(b"previous");
        let encoded = EncodedEvent::new(&event);
        let want = reference(person, at, prev, &event);
        assert_eq!(StoredBody::assemble(person, at, prev, &encoded.json), want);
        assert_eq!(StoredBody::encode(person, at, prev, &event), want);
        assert_eq!(encoded.digest, event.digest());
        let back = StoredBody::decode(7, &want).expect("decodes");
        assert_eq!(back.event, event);
        seen += 1;
    }
    assert!(seen >= 20, "only {seen} examples read");
}
