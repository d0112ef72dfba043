use std::path::PathBuf;

/// Why a bearer token was refused.
///
/// The `Display` strings are what geth answers in its 401 body, so operators see the same words.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum JwtError {
    /// No `Authorization: Bearer ...` header.
    #[error("missing token")]
    Missing,
    /// The token is not a well-formed HS256 JWT, or its claims are not readable.
    #[error("invalid token: {0}")]
    Malformed(String),
    /// The signature does not match the secret.
    #[error("signature is invalid")]
    BadSignature,
    /// The token has no `iat` claim.
    #[error("missing issued-at")]
    MissingIat,
    /// `iat` is more than 60 s in the past.
    #[error("stale token")]
    Stale,
    /// `iat` is more than 60 s in the future.
    #[error("future token")]
    Future,
    /// The optional `exp` claim has passed.
    #[error("token is expired")]
    Expired,
}

impl JwtError {
    /// A short, fixed label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::Malformed(_) => "malformed",
            Self::BadSignature => "bad_signature",
            Self::MissingIat => "missing_iat",
            Self::Stale => "stale",
            Self::Future => "future",
            Self::Expired => "expired",
        }
    }
}

/// Why a JWT secret could not be read. Never contains the secret itself.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JwtSecretError {
    /// The text is not hex.
    #[error("JWT secret is not hex (a bad character at position {position})")]
    NotHex {
        /// Zero-based position of the first bad character, after trimming and the `0x` prefix.
        position: usize,
    },
    /// The hex does not decode to 32 bytes.
    #[error("JWT secret must be 32 bytes (64 hex digits), found {digits} hex digits")]
    WrongLength {
        /// How many hex digits were found.
        digits: usize,
    },
    /// The file could not be read.
    #[error("cannot read JWT secret file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file was read but does not hold a valid secret.
    #[error("JWT secret file {path}: {source}")]
    InvalidFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with its contents.
        #[source]
        source: Box<JwtSecretError>,
    },
}
