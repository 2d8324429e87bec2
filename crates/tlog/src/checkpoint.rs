//! C2SP tlog-checkpoint: the tree head (origin, size, root) as the text of a signed note.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;

use crate::hash::Hash;
use crate::note::{SigningKey, VerifierKey};
use crate::Error;

/// A tree head as a checkpoint states it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The log's identity, e.g. `throughcare.local/<ledger id>`: non-empty, one line.
    pub origin: String,
    /// The number of leaves.
    pub size: u64,
    /// The RFC 9162 root hash of the first `size` leaves.
    pub root: Hash,
}

impl Checkpoint {
    /// The note text: `<origin>\n<size>\n<base64 root>\n`.
    pub fn body(&self) -> String {
        format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            BASE64.encode(self.root)
        )
    }

    /// Reads a checkpoint note text (the body, not the signed note: see
    /// [`VerifierKey::open`]). Exactly three lines: throughcare never writes extension
    /// lines, so a text with more is not one of its checkpoints and is refused.
    pub fn parse(body: &str) -> Result<Self, Error> {
        let lines = body
            .strip_suffix('\n')
            .ok_or(Error::MalformedNote("a checkpoint ends with a newline"))?;
        let mut lines = lines.split('\n');
        let (Some(origin), Some(size), Some(root), None) =
            (lines.next(), lines.next(), lines.next(), lines.next())
        else {
            return Err(Error::MalformedNote(
                "a checkpoint is three lines: origin, size, root",
            ));
        };
        if origin.is_empty() || origin.chars().any(|c| c < ' ') {
            return Err(Error::MalformedNote(
                "a checkpoint origin is non-empty, without control characters",
            ));
        }
        let canonical_size = !size.is_empty()
            && size.bytes().all(|b| b.is_ascii_digit())
            && (size == "0" || !size.starts_with('0'));
        let size = canonical_size
            .then(|| size.parse::<u64>().ok())
            .flatten()
            .ok_or(Error::MalformedNote(
                "a checkpoint size is a decimal number without leading zeros",
            ))?;
        let root = BASE64
            .decode(root)
            .ok()
            .and_then(|r| Hash::try_from(r).ok())
            .ok_or(Error::MalformedNote(
                "a checkpoint root is the base64 of 32 bytes",
            ))?;
        Ok(Self {
            origin: origin.to_string(),
            size,
            root,
        })
    }
}

impl SigningKey {
    /// Signs a checkpoint: the signed note whose text is [`Checkpoint::body`].
    pub fn sign(&self, checkpoint: &Checkpoint) -> Result<String, Error> {
        let body = checkpoint.body();
        // Refuses an origin that would not read back as the same checkpoint.
        if Checkpoint::parse(&body)? != *checkpoint {
            return Err(Error::MalformedNote(
                "checkpoint does not read back as itself",
            ));
        }
        self.sign_note(&body)
    }
}

impl VerifierKey {
    /// Opens a signed checkpoint: the signature by this key must verify (other keys'
    /// signatures, e.g. witnesses', are ignored) and the text must be a checkpoint. The
    /// caller checks the origin it expects.
    pub fn open(&self, note: &str) -> Result<Checkpoint, Error> {
        Checkpoint::parse(self.open_note(note)?)
    }
}
