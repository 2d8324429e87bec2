//! An event encoded once for the ledger: the RFC 8785 canonical JSON of its CloudEvent
//! (the `event` member of the stored body) and its idempotency digest, both from one
//! `Event::to_json` and, for nearly every event, one serialisation.
//!
//! Why one serialisation is enough: `Event::digest` is SHA-256 over serde_json's compact
//! form of `to_json()`, and for a value whose numbers are all integers of magnitude at most
//! 2^53 and whose object members come out in ASCII order, that compact form IS the JCS
//! form (serde_json and RFC 8785 escape strings alike: `\"`, `\\`, `\b \f \n \r \t`,
//! other controls as lower-case `\u00xx`, nothing else). Any other value (a float, a huge
//! integer, a non-ASCII member name) is encoded both ways, so the bytes never depend on
//! this shortcut.

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::envelope::Event;

/// Largest integer JCS writes as itself (it writes numbers as IEEE 754 doubles).
const MAX_EXACT: u64 = 1 << 53;

/// The stored-body encoding of one event, made once (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedEvent {
    /// RFC 8785 canonical JSON of the event's CloudEvent (`Event::to_json`).
    pub json: Vec<u8>,
    /// [`Event::digest`]: SHA-256 of the compact JSON, the idempotency digest.
    pub digest: [u8; 32],
}

impl EncodedEvent {
    pub fn new(event: &Event) -> EncodedEvent {
        let value = event.to_json();
        let compact = serde_json::to_vec(&value).expect("json values serialize");
        let digest = Sha256::digest(&compact).into();
        let json = if compact_is_canonical(&value) {
            compact
        } else {
            throughcare_tlog::canonical_json(&value)
        };
        EncodedEvent { json, digest }
    }
}

/// The canonical JSON of a value: serde_json's compact form when that is already JCS,
/// else the full canonicaliser.
pub(crate) fn canonical(value: &Value) -> Vec<u8> {
    if compact_is_canonical(value) {
        serde_json::to_vec(value).expect("json values serialize")
    } else {
        throughcare_tlog::canonical_json(value)
    }
}

/// Whether serde_json's compact form of `value` is its RFC 8785 form: every number an
/// integer JCS writes unchanged, every object's members in ascending ASCII order as
/// serde_json writes them (checked, not assumed: a `preserve_order` build keeps insertion
/// order and then falls back).
fn compact_is_canonical(value: &Value) -> bool {
    match value {
        Value::Null | Value::Bool(_) | Value::String(_) => true,
        Value::Number(n) => match (n.as_u64(), n.as_i64()) {
            (Some(u), _) => u <= MAX_EXACT,
            (None, Some(i)) => i.unsigned_abs() <= MAX_EXACT,
            _ => false,
        },
        Value::Array(items) => items.iter().all(compact_is_canonical),
        Value::Object(map) => {
            let mut last: Option<&str> = None;
            for (k, v) in map {
                if !k.is_ascii() || last.is_some_and(|l| l >= k.as_str()) {
                    return false;
                }
                if !compact_is_canonical(v) {
                    return false;
                }
                last = Some(k);
            }
            true
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// The shortcut gives exactly the canonicaliser's bytes, or is not taken.
    fn check(value: Value) {
        assert_eq!(
            canonical(&value),
            throughcare_tlog::canonical_json(&value),
            "{value}"
        );
    }

    #[test]
    fn compact_form_is_jcs_where_the_shortcut_is_taken() {
        check(json!({"b": 1, "a": [true, null, "x"], "c": {"z": -3, "y": "\u{1f600}"}}));
        check(json!({"s": "quote \" back \\ slash / ctl \u{1} \u{1f} \u{7f} \n\t\r\u{8}\u{c}"}));
        check(json!({"u": "\u{2028}\u{2029}\u{e000}\u{ffff}\u{10000}"}));
        check(json!({"big": 9_007_199_254_740_992_u64, "neg": -9_007_199_254_740_992_i64}));
        check(json!({"bigger": 9_007_199_254_740_993_u64}));
        check(json!({"huge": u64::MAX, "min": i64::MIN}));
        check(json!({"f": 4.5, "g": 1e30, "h": -0.0, "i": 1.0, "j": 0.000001}));
        check(json!({"\u{e000}": 1, "\u{10000}": 2, "a": 3}));
        check(json!({"é": 1, "e": 2}));
        check(json!([]));
        check(json!({}));
        check(json!("top-level string"));
    }

    #[test]
    fn floats_and_big_numbers_take_the_canonicaliser() {
        assert!(!compact_is_canonical(&json!({"f": 1.5})));
        assert!(!compact_is_canonical(&json!([9_007_199_254_740_993_u64])));
        assert!(!compact_is_canonical(&json!({"é": 1})));
        assert!(compact_is_canonical(&json!({"a": [1, -2, "x"], "b": null})));
    }
}
