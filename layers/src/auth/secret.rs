use std::{
    fmt,
    path::Path,
    str::FromStr,
    time::{SystemTime, UNIX_EPOCH},
};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, errors::ErrorKind};
use serde::{Deserialize, Serialize};

use super::{JwtError, JwtSecretError};

/// How far `iat` may be from now, either way, in seconds (Engine API authentication spec).
pub const JWT_MAX_IAT_DIFF_SECS: u64 = 60;

/// A 256-bit Engine API JWT secret.
///
/// See the [module docs](super). `Debug` prints `JwtSecret(<redacted>)`.
#[derive(Clone)]
pub struct JwtSecret {
    // Shared: services holding a secret are cloned per request, and the keys are heap buffers.
    keys: std::sync::Arc<Keys>,
}

struct Keys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

#[derive(Serialize, Deserialize)]
struct Claims {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    iat: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    exp: Option<u64>,
}

impl JwtSecret {
    /// A secret from its 32 raw bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        // geth checks the algorithm and iat itself and ignores other registered claims but exp.
        let mut validation = Validation::new(Algorithm::HS256);
        validation.required_spec_claims.clear();
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.leeway = 0;
        Self {
            keys: std::sync::Arc::new(Keys {
                encoding: EncodingKey::from_secret(&bytes),
                decoding: DecodingKey::from_secret(&bytes),
                validation,
            }),
        }
    }

    /// Reads hex text: 64 hex digits, optionally `0x`-prefixed, surrounding whitespace ignored.
    ///
    /// # Errors
    ///
    /// [`JwtSecretError::NotHex`] or [`JwtSecretError::WrongLength`].
    pub fn from_hex(text: &str) -> Result<Self, JwtSecretError> {
        let text = text.trim();
        let digits = text
            .strip_prefix("0x")
            .or_else(|| text.strip_prefix("0X"))
            .unwrap_or(text);
        if let Some(position) = digits.bytes().position(|b| !b.is_ascii_hexdigit()) {
            return Err(JwtSecretError::NotHex { position });
        }
        if digits.len() != 64 {
            return Err(JwtSecretError::WrongLength {
                digits: digits.len(),
            });
        }
        let mut bytes = [0u8; 32];
        for (byte, pair) in bytes.iter_mut().zip(digits.as_bytes().chunks_exact(2)) {
            *byte = (hex_value(pair[0]) << 4) | hex_value(pair[1]);
        }
        Ok(Self::from_bytes(bytes))
    }

    /// Reads a secret file as geth and op-node write it.
    ///
    /// # Errors
    ///
    /// [`JwtSecretError::Read`] if the file cannot be read, [`JwtSecretError::InvalidFile`] if
    /// it does not hold a secret; both name the path.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, JwtSecretError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| JwtSecretError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_hex(&text).map_err(|source| JwtSecretError::InvalidFile {
            path: path.to_owned(),
            source: Box::new(source),
        })
    }

    /// An HS256 token with `iat` = `iat` (seconds since the Unix epoch) and no other claim,
    /// as geth's and op-node's clients send.
    ///
    /// # Errors
    ///
    /// Only if the JWT library fails to sign, which it does not for HS256.
    pub fn token(&self, iat: u64) -> Result<String, JwtError> {
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &Claims {
                iat: Some(iat),
                exp: None,
            },
            &self.keys.encoding,
        )
        .map_err(|e| JwtError::Malformed(e.to_string()))
    }

    /// A token issued now.
    ///
    /// # Errors
    ///
    /// See [`JwtSecret::token`].
    pub fn token_now(&self) -> Result<String, JwtError> {
        self.token(unix_now())
    }

    /// Checks `token` against this secret at time `now` (seconds since the Unix epoch).
    ///
    /// # Errors
    ///
    /// The [`JwtError`] that explains the refusal.
    pub fn validate(&self, token: &str, now: u64) -> Result<(), JwtError> {
        self.verify(token).and_then(|window| window.check(now))
    }

    /// Verifies the signature and reads the claims, without looking at the clock.
    pub(crate) fn verify(&self, token: &str) -> Result<TimeWindow, JwtError> {
        let data = jsonwebtoken::decode::<Claims>(
            token.as_bytes(),
            &self.keys.decoding,
            &self.keys.validation,
        )
        .map_err(|e| match e.kind() {
            ErrorKind::InvalidSignature => JwtError::BadSignature,
            kind => JwtError::Malformed(format!("{kind:?}")),
        })?;
        let iat = data.claims.iat.ok_or(JwtError::MissingIat)?;
        Ok(TimeWindow {
            iat,
            exp: data.claims.exp,
        })
    }

    /// Checks the `Authorization` header value of a request (`Bearer <token>`) at time `now`.
    ///
    /// # Errors
    ///
    /// [`JwtError::Missing`] when the value is absent or not a bearer token, else as
    /// [`JwtSecret::validate`].
    pub fn validate_header(&self, value: Option<&[u8]>, now: u64) -> Result<(), JwtError> {
        let token = value
            .and_then(|v| v.strip_prefix(b"Bearer "))
            .and_then(|t| std::str::from_utf8(t).ok())
            .ok_or(JwtError::Missing)?;
        self.validate(token, now)
    }
}

/// The time claims of a verified token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TimeWindow {
    iat: u64,
    exp: Option<u64>,
}

impl TimeWindow {
    /// Whether the token is valid at `now`: `iat` within ±60 s, `exp` not passed.
    pub(crate) fn check(self, now: u64) -> Result<(), JwtError> {
        if now.abs_diff(self.iat) > JWT_MAX_IAT_DIFF_SECS {
            return Err(if self.iat < now {
                JwtError::Stale
            } else {
                JwtError::Future
            });
        }
        if self.exp.is_some_and(|exp| now > exp) {
            return Err(JwtError::Expired);
        }
        Ok(())
    }
}

impl FromStr for JwtSecret {
    type Err = JwtSecretError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::from_hex(s)
    }
}

impl fmt::Debug for JwtSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("JwtSecret(<redacted>)")
    }
}

/// Seconds since the Unix epoch, by the wall clock (JWT `iat` is wall-clock time).
pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn hex_value(digit: u8) -> u8 {
    match digit {
        b'0'..=b'9' => digit - b'0',
        b'a'..=b'f' => digit - b'a' + 10,
        _ => digit - b'A' + 10,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "0102030405060708091011121314151617181920212223242526272829303132";

    fn secret() -> JwtSecret {
        JwtSecret::from_hex(HEX).expect("valid")
    }

    #[test]
    fn reads_hex_with_prefix_and_whitespace() {
        for text in [HEX.to_owned(), format!("0x{HEX}"), format!("  0X{HEX}\n")] {
            let token = JwtSecret::from_hex(&text)
                .expect(&text)
                .token(1_000)
                .expect("signs");
            assert_eq!(secret().validate(&token, 1_000), Ok(()));
        }
    }

    #[test]
    fn rejects_short_long_and_non_hex_secrets() {
        assert!(matches!(
            JwtSecret::from_hex(&HEX[..62]),
            Err(JwtSecretError::WrongLength { digits: 62 })
        ));
        assert!(matches!(
            JwtSecret::from_hex(&format!("{HEX}00")),
            Err(JwtSecretError::WrongLength { digits: 66 })
        ));
        assert!(matches!(
            JwtSecret::from_hex(&format!("zz{}", &HEX[2..])),
            Err(JwtSecretError::NotHex { position: 0 })
        ));
    }

    #[test]
    fn debug_never_shows_the_key() {
        let shown = format!("{:?}", secret());
        assert_eq!(shown, "JwtSecret(<redacted>)");
        assert!(!shown.contains("0102"));
    }

    #[test]
    fn file_errors_name_the_path_not_the_contents() {
        let dir = std::env::temp_dir().join(format!("switchyard-jwt-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("tmp");
        let path = dir.join("bad.hex");
        std::fs::write(&path, "0xdeadbeef").expect("write");
        let err = JwtSecret::from_file(&path).expect_err("short").to_string();
        assert!(
            err.contains("bad.hex") && err.contains("found 8 hex digits"),
            "{err}"
        );
        assert!(!err.contains("deadbeef"));
        let missing = JwtSecret::from_file(dir.join("absent"))
            .expect_err("absent")
            .to_string();
        assert!(missing.contains("absent"), "{missing}");
    }

    #[test]
    fn accepts_iat_60s_either_side() {
        let s = secret();
        assert_eq!(s.validate(&s.token(1_000).expect("t"), 1_060), Ok(()));
        assert_eq!(s.validate(&s.token(1_060).expect("t"), 1_000), Ok(()));
    }

    #[test]
    fn rejects_iat_61s_in_past_or_future() {
        let s = secret();
        assert_eq!(
            s.validate(&s.token(1_000).expect("t"), 1_061),
            Err(JwtError::Stale)
        );
        assert_eq!(
            s.validate(&s.token(1_061).expect("t"), 1_000),
            Err(JwtError::Future)
        );
    }

    #[test]
    fn rejects_a_token_signed_with_another_key() {
        let other = JwtSecret::from_bytes([7; 32]);
        assert_eq!(
            secret().validate(&other.token(5).expect("t"), 5),
            Err(JwtError::BadSignature)
        );
    }

    #[test]
    fn rejects_other_algorithms_and_alg_none() {
        let claims = Claims {
            iat: Some(5),
            exp: None,
        };
        let hs512 = jsonwebtoken::encode(
            &Header::new(Algorithm::HS512),
            &claims,
            &EncodingKey::from_secret(&[0; 32]),
        )
        .expect("hs512");
        assert!(matches!(
            secret().validate(&hs512, 5),
            Err(JwtError::Malformed(_))
        ));
        // {"alg":"none","typ":"JWT"}.{"iat":5}.
        let none = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJpYXQiOjV9.";
        assert!(matches!(
            secret().validate(none, 5),
            Err(JwtError::Malformed(_))
        ));
    }

    #[test]
    fn requires_iat_and_honours_exp_if_present() {
        let s = secret();
        let no_iat = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &Claims {
                iat: None,
                exp: None,
            },
            &s.keys.encoding,
        )
        .expect("t");
        assert_eq!(s.validate(&no_iat, 5), Err(JwtError::MissingIat));
        let expired = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &Claims {
                iat: Some(100),
                exp: Some(101),
            },
            &s.keys.encoding,
        )
        .expect("t");
        assert_eq!(s.validate(&expired, 102), Err(JwtError::Expired));
    }

    #[test]
    fn header_must_be_exactly_bearer_space_token() {
        let s = secret();
        let token = s.token(9).expect("t");
        assert_eq!(
            s.validate_header(Some(format!("Bearer {token}").as_bytes()), 9),
            Ok(())
        );
        for bad in [
            format!("bearer {token}"),
            format!("BearerBearer {token}"),
            format!("Basic {token}"),
            token.clone(),
        ] {
            assert_eq!(
                s.validate_header(Some(bad.as_bytes()), 9),
                Err(JwtError::Missing),
                "{bad}"
            );
        }
        assert_eq!(s.validate_header(None, 9), Err(JwtError::Missing));
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Any header at all: a verdict, never a panic, and never a pass without the secret.
        #[test]
        fn arbitrary_headers_never_pass(header in prop::collection::vec(any::<u8>(), 0..300), now in any::<u64>()) {
            let secret = JwtSecret::from_bytes([9; 32]);
            prop_assert!(secret.validate_header(Some(&header), now).is_err());
        }

        /// A token passes exactly within ±60 s of its `iat`.
        #[test]
        fn the_window_is_sixty_seconds(iat in 100_000u64..1_000_000_000, skew in -200i64..200) {
            let secret = JwtSecret::from_bytes([9; 32]);
            let token = secret.token(iat).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let now = iat.saturating_add_signed(skew);
            let verdict = secret.validate(&token, now);
            prop_assert_eq!(verdict.is_ok(), skew.unsigned_abs() <= 60, "{:?}", verdict);
        }

        /// A token signed with another key never passes, whatever its claims.
        #[test]
        fn other_keys_never_pass(key in any::<[u8; 32]>(), iat in 0u64..2_000_000_000) {
            prop_assume!(key != [9; 32]);
            let token = JwtSecret::from_bytes(key).token(iat).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(JwtSecret::from_bytes([9; 32]).validate(&token, iat), Err(JwtError::BadSignature));
        }
    }
}
