//! The server crate's one error type. Each variant says what whoever sees it can do about
//! it; messages are lower case and their detail is safe to show (a credential is never
//! echoed back, only why it was refused).

/// What went wrong, by what the caller can do about it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A configuration file (the auth file or the JWKS it names, a TLS certificate or
    /// key) cannot be used: the operator fixes it and starts the server again. The
    /// detail names the file and every problem found in it, with where it is.
    #[error("unusable configuration: {0}")]
    Config(String),
    /// The credential was refused (malformed, unknown, expired, badly signed, lacking a
    /// role): the caller signs in again or asks for a new token. Answered with 401.
    #[error("not authenticated: {0}")]
    Unauthenticated(String),
}

impl Error {
    /// An `Unauthenticated` with a fixed, client-safe reason.
    pub(crate) fn unauthenticated(reason: impl Into<String>) -> Error {
        Error::Unauthenticated(reason.into())
    }
}
