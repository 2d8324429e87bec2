//! Static bearer tokens: making a new one (`throughcare token`), the `[[principal]]` block
//! that goes with it, and the SHA-256 digests the auth file stores instead of tokens.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rand::rngs::OsRng;
use rand::RngCore as _;
use serde::Serialize;
use sha2::{Digest as _, Sha256};

use super::principal::Role;

/// A SHA-256 digest of a bearer token, as the auth file's `token_sha256` holds it in hex.
pub(crate) type Digest = [u8; 32];

/// SHA-256 of the token's bytes.
pub(crate) fn digest(token: &str) -> Digest {
    Sha256::digest(token.as_bytes()).into()
}

/// Equality of two digests without an early exit. Only digests of tokens are compared, so
/// timing would reveal little anyway; this keeps it from revealing anything.
pub(crate) fn digests_equal(a: &Digest, b: &Digest) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A new bearer token and the lower-case hex SHA-256 of its ASCII bytes (what the auth
/// file stores). The token is 32 bytes from the operating system's generator, base64url
/// without padding: 43 characters, safe in a header, a URL or a TOML string.
pub fn new_token() -> (String, String) {
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    let token = URL_SAFE_NO_PAD.encode(bytes);
    let hash = hex::encode(digest(&token));
    (token, hash)
}

/// The `[[principal]]` TOML block for the auth file. Empty lists and a missing `worker_id`
/// are left out, as the file format expects for roles they do not apply to. Strings are
/// quoted by the TOML serializer, so any name comes out as valid TOML.
pub fn principal_block(
    name: &str,
    role: Role,
    token_sha256: &str,
    worker_id: Option<&str>,
    prisons: &[String],
    sources: &[String],
    types: &[String],
) -> String {
    #[derive(Serialize)]
    struct File<'a> {
        principal: [Block<'a>; 1],
    }
    #[derive(Serialize)]
    struct Block<'a> {
        name: &'a str,
        role: &'static str,
        token_sha256: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        worker_id: Option<&'a str>,
        #[serde(skip_serializing_if = "<[String]>::is_empty")]
        prisons: &'a [String],
        #[serde(skip_serializing_if = "<[String]>::is_empty")]
        sources: &'a [String],
        #[serde(skip_serializing_if = "<[String]>::is_empty")]
        types: &'a [String],
    }
    let file = File {
        principal: [Block {
            name,
            role: role.as_str(),
            token_sha256,
            worker_id,
            prisons,
            sources,
            types,
        }],
    };
    // Strings and lists of strings always serialize; a failure here would be a bug.
    toml::to_string(&file).expect("a principal block serializes as TOML")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_token_is_43_base64url_chars_and_its_hash_matches() {
        let (token, hash) = new_token();
        assert_eq!(token.len(), 43);
        assert!(token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        assert_eq!(URL_SAFE_NO_PAD.decode(&token).unwrap().len(), 32);
        assert_eq!(hash.len(), 64);
        assert_eq!(hash, hex::encode(Sha256::digest(token.as_bytes())));
        assert!(hash.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')));
        assert_ne!(new_token().0, token);
    }

    #[test]
    fn digests_compare() {
        let a = digest("a");
        assert!(digests_equal(&a, &digest("a")));
        assert!(!digests_equal(&a, &digest("b")));
    }

    #[test]
    fn block_leaves_out_what_is_empty() {
        let block = principal_block(
            "jo.worker",
            Role::Worker,
            &"0".repeat(64),
            Some("W-WCI-01"),
            &[],
            &[],
            &[],
        );
        assert!(block.starts_with("[[principal]]\n"), "{block}");
        assert!(block.contains("name = \"jo.worker\""), "{block}");
        assert!(block.contains("role = \"WORKER\""), "{block}");
        assert!(block.contains("worker_id = \"W-WCI-01\""), "{block}");
        assert!(!block.contains("prisons"), "{block}");
        assert!(!block.contains("sources"), "{block}");
    }
}
