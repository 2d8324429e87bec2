//! CSRF tokens for the pages' forms. The session cookie is already SameSite=Strict; on
//! top of it every state-changing form carries a token: HMAC-SHA256, under a secret kept
//! only in this process (`Sessions::csrf_secret`), of the session id and the form's id
//! (the CloudEvent id the form will submit, or `sign-out`). A page of another site can
//! neither read a token nor compute one, and a token is good only for its session.

use sha2::{Digest, Sha256};

/// The form id of the sign-out button.
pub const SIGN_OUT: &str = "sign-out";

/// HMAC-SHA256 (RFC 2104) of `message` under `key`.
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    const BLOCK: usize = 64;
    let mut k = [0u8; BLOCK];
    if key.len() > BLOCK {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| k.map(|b| b ^ byte);
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(message)
        .finalize();
    Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .into()
}

/// The token of form `form` in session `session` (`""` for a caller without a session:
/// open development mode, or a bearer token, which a browser never sends by itself).
pub fn token(secret: &[u8], session: &str, form: &str) -> String {
    // The session id is base64url (no NUL), so the separator keeps the pairs apart.
    let message = format!("csrf\0{session}\0{form}");
    hex::encode(hmac_sha256(secret, message.as_bytes()))
}

/// Whether `given` is the token of `form` in `session`, compared in constant time.
pub fn check(secret: &[u8], session: &str, form: &str, given: Option<&str>) -> bool {
    let Some(given) = given else { return false };
    let want = token(secret, session, form);
    want.len() == given.len()
        && want
            .bytes()
            .zip(given.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc_4231() {
        // Test case 2 of RFC 4231.
        assert_eq!(
            hex::encode(hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // Test case 6: a key longer than the block is hashed first.
        assert_eq!(
            hex::encode(hmac_sha256(
                &[0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First"
            )),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn a_token_is_good_for_its_session_and_form_only() {
        let secret = [7u8; 32];
        let t = token(&secret, "session-a", "01JD3Z8Q6V2X9S7W4K5M1N0P3R");
        assert!(check(
            &secret,
            "session-a",
            "01JD3Z8Q6V2X9S7W4K5M1N0P3R",
            Some(&t)
        ));
        assert!(!check(
            &secret,
            "session-b",
            "01JD3Z8Q6V2X9S7W4K5M1N0P3R",
            Some(&t)
        ));
        assert!(!check(
            &secret,
            "session-a",
            "01JD3Z8Q6V2X9S7W4K5M1N0P3S",
            Some(&t)
        ));
        assert!(!check(
            &[8u8; 32],
            "session-a",
            "01JD3Z8Q6V2X9S7W4K5M1N0P3R",
            Some(&t)
        ));
        assert!(!check(
            &secret,
            "session-a",
            "01JD3Z8Q6V2X9S7W4K5M1N0P3R",
            None
        ));
        assert!(!check(
            &secret,
            "session-a",
            "01JD3Z8Q6V2X9S7W4K5M1N0P3R",
            Some("")
        ));
        assert!(!check(
            &secret,
            "session-a",
            "01JD3Z8Q6V2X9S7W4K5M1N0P3R",
            Some(&t[..63])
        ));
        // A session and form that run together differently are different messages.
        assert_ne!(token(&secret, "ab", "c"), token(&secret, "a", "bc"));
    }
}
