//! C2SP signed-note with Ed25519 keys, in the text formats of Go's
//! `golang.org/x/mod/sumdb/note`: signing and verifier key texts, signing a text, opening
//! a note. Below the note format everything is `ed25519-dalek` and `sha2`.

use std::fmt;
use std::str::FromStr;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use ed25519_dalek::Signer as _;
use sha2::{Digest, Sha256};

use crate::Error;

/// The signature type byte of Ed25519 in signed-note (and in Go's key texts).
const ALG_ED25519: u8 = 0x01;

/// At most this many signature lines are read (the spec requires at least 16; Go reads 100).
const MAX_SIGNATURES: usize = 100;

/// An Ed25519 note signing key with its name. Its `Debug` never shows the secret.
#[derive(Clone)]
pub struct SigningKey {
    name: String,
    key_hash: u32,
    key: ed25519_dalek::SigningKey,
}

/// An Ed25519 note verifier key: `<name>+<8 hex key hash>+<base64(0x01 || public key)>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifierKey {
    name: String,
    key_hash: u32,
    key: ed25519_dalek::VerifyingKey,
}

/// A new key pair named `name` from a 32-byte Ed25519 seed (the caller draws the seed from
/// its RNG): `(signing key text, verifier key text)`, as Go's `note.GenerateKey` writes them.
pub fn keygen(name: &str, seed: [u8; 32]) -> Result<(String, String), Error> {
    let key = SigningKey::from_seed(name, seed)?;
    Ok((key.to_text(), key.verifier().to_string()))
}

impl SigningKey {
    /// The signing key named `name` with the Ed25519 secret key `seed`.
    pub fn from_seed(name: &str, seed: [u8; 32]) -> Result<Self, Error> {
        check_name(name)?;
        let key = ed25519_dalek::SigningKey::from_bytes(&seed);
        Ok(Self {
            name: name.to_string(),
            key_hash: key_hash(name, &key.verifying_key()),
            key,
        })
    }

    /// Reads a signing key text `PRIVATE+KEY+<name>+<8 hex key hash>+<base64(0x01 ||
    /// 32-byte seed)>` (surrounding whitespace, such as a file's final newline, is ignored).
    pub fn parse(text: &str) -> Result<Self, Error> {
        let text = text.trim();
        let mut parts = text.splitn(5, '+');
        let (Some("PRIVATE"), Some("KEY"), Some(name), Some(hash), Some(key)) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(Error::InvalidKey(
                "a signing key reads PRIVATE+KEY+<name>+<hash>+<key>",
            ));
        };
        let hash = parse_key_hash(hash)?;
        let seed: [u8; 32] = decode_typed_key(key)?;
        let key = Self::from_seed(name, seed)?;
        if key.key_hash != hash {
            return Err(Error::InvalidKey("key hash does not match the key"));
        }
        Ok(key)
    }

    /// The signing key text (`PRIVATE+KEY+...`): a secret, for a key file only.
    pub fn to_text(&self) -> String {
        let mut seed = vec![ALG_ED25519];
        seed.extend_from_slice(self.key.as_bytes());
        format!(
            "PRIVATE+KEY+{}+{:08x}+{}",
            self.name,
            self.key_hash,
            BASE64.encode(seed)
        )
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The verifier key of this signing key.
    pub fn verifier(&self) -> VerifierKey {
        VerifierKey {
            name: self.name.clone(),
            key_hash: self.key_hash,
            key: self.key.verifying_key(),
        }
    }

    /// Signs `text` as a note: the text (which must end in a newline and hold no control
    /// characters but newlines), a blank line, and `— <name> <base64(key hash || signature)>`.
    pub fn sign_note(&self, text: &str) -> Result<String, Error> {
        if !text.ends_with('\n') {
            return Err(Error::MalformedNote("note text must end with a newline"));
        }
        check_no_controls(text)?;
        let signature = self.key.sign(text.as_bytes());
        let mut sig = self.key_hash.to_be_bytes().to_vec();
        sig.extend_from_slice(&signature.to_bytes());
        Ok(format!("{text}\n— {} {}\n", self.name, BASE64.encode(sig)))
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("name", &self.name)
            .field("key_hash", &format_args!("{:08x}", self.key_hash))
            .finish_non_exhaustive()
    }
}

impl VerifierKey {
    /// Reads a verifier key text `<name>+<8 hex key hash>+<base64(0x01 || public key)>`
    /// (surrounding whitespace is ignored); the hash must be the key's.
    pub fn parse(text: &str) -> Result<Self, Error> {
        let text = text.trim();
        let mut parts = text.splitn(3, '+');
        let (Some(name), Some(hash), Some(key)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(Error::InvalidKey(
                "a verifier key reads <name>+<hash>+<key>",
            ));
        };
        check_name(name)?;
        let hash = parse_key_hash(hash)?;
        let key = ed25519_dalek::VerifyingKey::from_bytes(&decode_typed_key(key)?)
            .map_err(|_| Error::InvalidKey("not an Ed25519 public key"))?;
        if key_hash(name, &key) != hash {
            return Err(Error::InvalidKey("key hash does not match the key"));
        }
        Ok(Self {
            name: name.to_string(),
            key_hash: hash,
            key,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The 4-byte key ID: SHA-256(name || "\n" || 0x01 || public key)[..4], big-endian.
    pub fn key_hash(&self) -> u32 {
        self.key_hash
    }

    /// The 32-byte Ed25519 public key.
    pub fn public_key(&self) -> [u8; 32] {
        self.key.to_bytes()
    }

    /// Opens a signed note: checks its syntax, ignores signatures by other keys, verifies
    /// the one by this key (which must be there, and valid), and returns the note text
    /// (ending in its newline, without the blank line and signatures).
    pub fn open_note<'a>(&self, note: &'a str) -> Result<&'a str, Error> {
        check_no_controls(note)?;
        let split = note
            .rfind("\n\n")
            .ok_or(Error::MalformedNote("no blank line before the signatures"))?;
        let (text, sigs) = (&note[..split + 1], &note[split + 2..]);
        if sigs.is_empty() || !sigs.ends_with('\n') {
            return Err(Error::MalformedNote(
                "signature lines must end with a newline",
            ));
        }
        let mut verified = false;
        for (i, line) in sigs.split_terminator('\n').enumerate() {
            if i == MAX_SIGNATURES {
                return Err(Error::MalformedNote("too many signatures"));
            }
            let (name, sig) = parse_signature_line(line)?;
            let hash = u32::from_be_bytes([sig[0], sig[1], sig[2], sig[3]]);
            // Signatures by other keys, even ones sharing our name or hash, are ignored;
            // a repeated signature by ours is checked once.
            if name != self.name || hash != self.key_hash || verified {
                continue;
            }
            let signature = ed25519_dalek::Signature::from_slice(&sig[4..])
                .map_err(|_| Error::BadSignature(self.id()))?;
            self.key
                .verify_strict(text.as_bytes(), &signature)
                .map_err(|_| Error::BadSignature(self.id()))?;
            verified = true;
        }
        if !verified {
            return Err(Error::NotSigned(self.id()));
        }
        Ok(text)
    }

    /// `<name>+<hash>`, how errors name the key.
    fn id(&self) -> String {
        format!("{}+{:08x}", self.name, self.key_hash)
    }
}

impl fmt::Display for VerifierKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut key = vec![ALG_ED25519];
        key.extend_from_slice(self.key.as_bytes());
        write!(
            f,
            "{}+{:08x}+{}",
            self.name,
            self.key_hash,
            BASE64.encode(key)
        )
    }
}

impl FromStr for VerifierKey {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Self::parse(s)
    }
}

/// The key ID of an Ed25519 key: SHA-256(name || 0x0A || 0x01 || public key)[..4].
fn key_hash(name: &str, key: &ed25519_dalek::VerifyingKey) -> u32 {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update(b"\n");
    h.update([ALG_ED25519]);
    h.update(key.as_bytes());
    let digest = h.finalize();
    u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]])
}

/// A key name: non-empty, no Unicode space and no `+` (as Go's `note` checks), and no
/// ASCII control character (which no note may hold).
fn check_name(name: &str) -> Result<(), Error> {
    if name.is_empty()
        || name
            .chars()
            .any(|c| c.is_whitespace() || c < ' ' || c == '+')
    {
        return Err(Error::InvalidKey(
            "a key name is non-empty, without spaces, control characters or '+'",
        ));
    }
    Ok(())
}

fn parse_key_hash(hex: &str) -> Result<u32, Error> {
    if hex.len() != 8 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Error::InvalidKey("a key hash is 8 hex digits"));
    }
    u32::from_str_radix(hex, 16).map_err(|_| Error::InvalidKey("a key hash is 8 hex digits"))
}

/// base64(0x01 || 32 bytes) -> the 32 bytes.
fn decode_typed_key(b64: &str) -> Result<[u8; 32], Error> {
    let bytes = BASE64
        .decode(b64)
        .map_err(|_| Error::InvalidKey("key is not base64"))?;
    match bytes.split_first() {
        Some((&ALG_ED25519, key)) => key
            .try_into()
            .map_err(|_| Error::InvalidKey("an Ed25519 key is 32 bytes")),
        _ => Err(Error::InvalidKey("not an Ed25519 key (type byte 0x01)")),
    }
}

/// `— <name> <base64(4-byte key hash || signature)>` -> (name, decoded bytes, >= 5 long).
fn parse_signature_line(line: &str) -> Result<(&str, Vec<u8>), Error> {
    const MALFORMED: Error = Error::MalformedNote("a signature line reads — <name> <base64>");
    let rest = line.strip_prefix("— ").ok_or(MALFORMED)?;
    let (name, b64) = rest.split_once(' ').ok_or(MALFORMED)?;
    check_name(name).map_err(|_| MALFORMED)?;
    let sig = BASE64.decode(b64).map_err(|_| MALFORMED)?;
    if sig.len() < 5 {
        return Err(MALFORMED);
    }
    Ok((name, sig))
}

/// Notes are UTF-8 (a `&str` already is) without ASCII control characters but newline.
fn check_no_controls(text: &str) -> Result<(), Error> {
    if text.chars().any(|c| c < ' ' && c != '\n') {
        return Err(Error::MalformedNote(
            "control characters other than newline are not allowed",
        ));
    }
    Ok(())
}
