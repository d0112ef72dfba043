use std::{
    sync::{Arc, Mutex},
    task::{Context, Poll},
};

use http::{HeaderValue, Request, header};
use tower::{Layer, Service};

use super::{JwtSecret, secret::unix_now};

/// Layer that signs each outbound request with an upstream's JWT secret.
/// See the [module docs](super).
#[derive(Clone, Debug)]
pub struct SignJwtLayer {
    signer: Signer,
}

impl SignJwtLayer {
    /// Signs with `secret`.
    pub fn new(secret: JwtSecret) -> Self {
        Self {
            signer: Signer {
                secret,
                cached: Arc::new(Mutex::new(None)),
            },
        }
    }
}

impl<S> Layer<S> for SignJwtLayer {
    type Service = SignJwt<S>;

    fn layer(&self, inner: S) -> Self::Service {
        SignJwt {
            inner,
            signer: self.signer.clone(),
        }
    }
}

/// Service that sets `Authorization: Bearer <fresh token>` on each request.
/// See the [module docs](super).
#[derive(Clone, Debug)]
pub struct SignJwt<S> {
    inner: S,
    signer: Signer,
}

impl<S> SignJwt<S> {
    /// Signs requests to `inner` with `secret`.
    pub fn new(inner: S, secret: JwtSecret) -> Self {
        SignJwtLayer::new(secret).layer(inner)
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// Consumes `self`, returning the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

/// Mints tokens, at most one per second: `iat` has one-second resolution, so a token minted
/// earlier in the same second is the same token.
#[derive(Clone)]
struct Signer {
    secret: JwtSecret,
    cached: Arc<Mutex<Option<(u64, HeaderValue)>>>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("secret", &self.secret)
            .finish_non_exhaustive()
    }
}

impl Signer {
    fn header(&self) -> Option<HeaderValue> {
        let now = unix_now();
        let mut cached = self
            .cached
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some((iat, value)) = cached.as_ref()
            && *iat == now
        {
            return Some(value.clone());
        }
        let token = self.secret.token(now).ok()?;
        let mut value = HeaderValue::try_from(format!("Bearer {token}")).ok()?;
        value.set_sensitive(true);
        *cached = Some((now, value.clone()));
        Some(value)
    }
}

impl<S, B> Service<Request<B>> for SignJwt<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        match self.signer.header() {
            Some(value) => {
                req.headers_mut().insert(header::AUTHORIZATION, value);
            }
            None => {
                // Unreachable for HS256; the upstream will answer 401, which is the honest outcome.
                req.headers_mut().remove(header::AUTHORIZATION);
                tracing::error!(target: "switchyard::auth", "could not sign an outbound JWT");
            }
        }
        self.inner.call(req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::convert::Infallible;
    use tower::ServiceExt;

    #[tokio::test]
    async fn replaces_the_inbound_token_with_one_for_the_upstream() {
        let upstream = JwtSecret::from_bytes([2; 32]);
        let check = upstream.clone();
        let svc = SignJwtLayer::new(upstream).layer(tower::service_fn(move |req: Request<()>| {
            let header = req
                .headers()
                .get(header::AUTHORIZATION)
                .map(|v| v.as_bytes().to_vec());
            let verdict = check.validate_header(header.as_deref(), unix_now());
            async move { Ok::<_, Infallible>(verdict) }
        }));
        let inbound = Request::builder()
            .header(header::AUTHORIZATION, "Bearer not-for-upstream")
            .body(())
            .expect("request");
        assert_eq!(svc.oneshot(inbound).await, Ok(Ok(())));
    }

    #[test]
    fn marks_the_header_sensitive() {
        let signer = SignJwtLayer::new(JwtSecret::from_bytes([3; 32])).signer;
        assert!(signer.header().is_some_and(|v| v.is_sensitive()));
    }
}
