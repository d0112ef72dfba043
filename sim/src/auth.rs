//! The simulator's own Engine API JWT check, written against `jsonwebtoken` directly.
//!
//! It deliberately shares no code with switchyard's auth layer: if that layer had a bug, a
//! simulator using it would agree with the bug.

use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct Claims {
    #[serde(skip_serializing_if = "Option::is_none")]
    iat: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    exp: Option<i64>,
}

/// Seconds since the Unix epoch.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Checks an `Authorization` header value as geth does; `Err` holds geth's 401 text.
pub(crate) fn check(secret: &[u8; 32], header: Option<&[u8]>) -> Result<(), &'static str> {
    let token = header
        .and_then(|h| h.strip_prefix(b"Bearer "))
        .and_then(|t| std::str::from_utf8(t).ok())
        .ok_or("missing token")?;
    let mut validation = Validation::new(Algorithm::HS256);
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    validation.validate_aud = false;
    let claims =
        jsonwebtoken::decode::<Claims>(token, &DecodingKey::from_secret(secret), &validation)
            .map_err(|_| "invalid token")?
            .claims;
    let now = now();
    let iat = claims.iat.ok_or("missing issued-at")?;
    if iat < now - 60 {
        return Err("stale token");
    }
    if iat > now + 60 {
        return Err("future token");
    }
    if claims.exp.is_some_and(|exp| now > exp) {
        return Err("token is expired");
    }
    Ok(())
}

/// A token with `iat` = now + `skew_secs`, signed with `secret`, as a client would send it.
pub fn token(secret: &[u8; 32], skew_secs: i64) -> String {
    let claims = Claims {
        iat: Some(now() + skew_secs),
        exp: None,
    };
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret),
    )
    .unwrap_or_default()
}

/// A token signed with `secret` under another HMAC algorithm (HS384), for negative tests.
pub fn token_hs384(secret: &[u8; 32]) -> String {
    let claims = Claims {
        iat: Some(now()),
        exp: None,
    };
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS384),
        &claims,
        &EncodingKey::from_secret(secret),
    )
    .unwrap_or_default()
}

/// Hex text of a secret, as a secret file holds it.
pub fn secret_hex(secret: &[u8; 32]) -> String {
    secret.iter().map(|b| format!("{b:02x}")).collect()
}

/// A fresh random secret.
pub fn random_secret() -> [u8; 32] {
    let mut secret = [0u8; 32];
    secret.iter_mut().for_each(|b| *b = fastrand::u8(..));
    secret
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn geth_rules() {
        let secret = [5u8; 32];
        assert_eq!(check(&secret, None), Err("missing token"));
        let ok = format!("Bearer {}", token(&secret, 0));
        assert_eq!(check(&secret, Some(ok.as_bytes())), Ok(()));
        let edge = format!("Bearer {}", token(&secret, -59));
        assert_eq!(check(&secret, Some(edge.as_bytes())), Ok(()));
        let stale = format!("Bearer {}", token(&secret, -61));
        assert_eq!(check(&secret, Some(stale.as_bytes())), Err("stale token"));
        let future = format!("Bearer {}", token(&secret, 61));
        assert_eq!(check(&secret, Some(future.as_bytes())), Err("future token"));
        let other = format!("Bearer {}", token(&[6u8; 32], 0));
        assert_eq!(check(&secret, Some(other.as_bytes())), Err("invalid token"));
        let hs384 = format!("Bearer {}", token_hs384(&secret));
        assert_eq!(check(&secret, Some(hs384.as_bytes())), Err("invalid token"));
    }
}
