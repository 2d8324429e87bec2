//! HMPPS domain events as HMPPS publishes them, bare and in the SNS notification SQS
//! delivers, with synthetic values: what the HMPPS adapter's unit tests and the end-to-end
//! tests of `POST /v1/hmpps/domain-events` and the JetStream consumer feed in.

use serde_json::{json, Value};

/// The `eventType` prefix of HMPPS prisoner movement events (`...released`, `...received`).
pub const PRISONER_EVENT: &str = "prison-offender-events.prisoner";

/// A domain event of `event_type` (the full name, e.g.
/// `prison-offender-events.prisoner.released`) about NOMS number `noms`; `info`'s fields
/// join `nomsNumber` in `additionalInformation`.
pub fn domain_event(
    event_type: &str,
    noms: &str,
    info: Value,
    occurred: &str,
    published: &str,
) -> Value {
    let mut additional = json!({ "nomsNumber": noms });
    for (k, v) in info.as_object().expect("info is a JSON object") {
        additional[k] = v.clone();
    }
    json!({
        "version": 1,
        "eventType": event_type,
        "description": "A prisoner movement (synthetic test data)",
        "occurredAt": occurred,
        "publishedAt": published,
        "personReference": { "identifiers": [ { "type": "NOMS", "value": noms } ] },
        "additionalInformation": additional,
    })
}

/// The SNS notification SQS delivers, with `event` as a JSON string in `Message`.
pub fn sns(event: &Value, message_id: &str, timestamp: &str) -> Value {
    json!({
        "Type": "Notification",
        "MessageId": message_id,
        "TopicArn": "arn:aws:sns:eu-west-2:000000000000:synthetic-domain-events",
        "Message": event.to_string(),
        "Timestamp": timestamp,
        "SignatureVersion": "1",
        "MessageAttributes": { "eventType": { "Type": "String", "Value": event["eventType"] } },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_envelope_carries_the_event_as_text() {
        let e = domain_event(
            &format!("{PRISONER_EVENT}.released"),
            "A1234BC",
            json!({ "reason": "RELEASED" }),
            "2026-11-20T09:30:00Z",
            "2026-11-20T09:30:05Z",
        );
        assert_eq!(e["additionalInformation"]["nomsNumber"], "A1234BC");
        assert_eq!(e["additionalInformation"]["reason"], "RELEASED");
        let n = sns(&e, "m-1", "2026-11-20T09:30:06Z");
        let inner: Value = serde_json::from_str(n["Message"].as_str().unwrap()).unwrap();
        assert_eq!(inner, e);
        assert_eq!(n["MessageAttributes"]["eventType"]["Value"], e["eventType"]);
    }
}
