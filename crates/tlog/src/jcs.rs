//! RFC 8785 (JCS) canonical JSON: the exact bytes that are hashed and stored.

/// The RFC 8785 canonical form of `value`: object members sorted by their names' UTF-16
/// code units, no insignificant whitespace, ECMAScript number serialisation (`4.50` ->
/// `4.5`, `1E30` -> `1e+30`, `-0` -> `0`) and the minimal JSON string escaping.
///
/// Numbers are IEEE 754 doubles as RFC 8785 requires (I-JSON): an integer beyond 2^53
/// is written as the double nearest to it.
pub fn canonical_json(value: &serde_json::Value) -> Vec<u8> {
    // A `Value` holds only finite numbers and string keys, the two things the canonicaliser
    // can refuse, so this cannot fail.
    serde_json_canonicalizer::to_vec(value).expect("a serde_json::Value always canonicalises")
}
