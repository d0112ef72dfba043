use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
};

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, header};
use pin_project_lite::pin_project;
use tower::{Layer, Service};

use super::{
    JwtError, JwtSecret,
    metrics::AUTH_FAILURES,
    secret::{TimeWindow, unix_now},
};
use crate::warn::WarnLimiter;
use std::sync::{Arc, Mutex};

/// Layer that requires a valid Engine API JWT on every request. See the [module docs](super).
#[derive(Clone, Debug)]
pub struct RequireJwtLayer {
    secret: JwtSecret,
}

impl RequireJwtLayer {
    /// Requires tokens signed with `secret`.
    pub fn new(secret: JwtSecret) -> Self {
        Self { secret }
    }
}

impl<S> Layer<S> for RequireJwtLayer {
    type Service = RequireJwt<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequireJwt::new(inner, self.secret.clone())
    }
}

/// Service that answers `401` to requests without a valid JWT. See the [module docs](super).
#[derive(Clone, Debug)]
pub struct RequireJwt<S> {
    inner: S,
    secret: JwtSecret,
    last: Arc<Mutex<Option<VerifiedToken>>>,
}

/// The last token that passed the HMAC check, with its time claims.
type VerifiedToken = (Box<[u8]>, TimeWindow);

/// Constant-time equality: the cached token must not leak through comparison timing.
fn same_token(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |diff, (x, y)| diff | (x ^ y)) == 0
}

impl<S> RequireJwt<S> {
    /// Checks the `Authorization` header. op-node signs `{"iat": now}` with one-second resolution,
    /// so consecutive requests carry the very same token: one that was verified before only needs
    /// its time window checked again, not its HMAC.
    fn check(&self, header: Option<&[u8]>, now: u64) -> Result<(), JwtError> {
        let token = header
            .and_then(|v| v.strip_prefix(b"Bearer "))
            .ok_or(JwtError::Missing)?;
        {
            let last = self
                .last
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            if let Some((cached, window)) = last.as_ref()
                && same_token(cached, token)
            {
                return window.check(now);
            }
        }
        let text = std::str::from_utf8(token).map_err(|_| JwtError::Missing)?;
        let window = self.secret.verify(text)?;
        window.check(now)?;
        *self
            .last
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some((token.into(), window));
        Ok(())
    }
}

impl<S> RequireJwt<S> {
    /// Guards `inner` with tokens signed with `secret`.
    pub fn new(inner: S, secret: JwtSecret) -> Self {
        Self {
            inner,
            secret,
            last: Arc::new(Mutex::new(None)),
        }
    }

    /// The layer form of [`RequireJwt::new`].
    pub fn layer(secret: JwtSecret) -> RequireJwtLayer {
        RequireJwtLayer::new(secret)
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Consumes `self`, returning the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

static REFUSALS: WarnLimiter = WarnLimiter::new();

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for RequireJwt<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: From<Bytes>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let header = req
            .headers()
            .get(header::AUTHORIZATION)
            .map(HeaderValue::as_bytes);
        match self.check(header, unix_now()) {
            Ok(()) => ResponseFuture {
                kind: Kind::Authorized {
                    future: self.inner.call(req),
                },
            },
            Err(error) => {
                metrics::counter!(AUTH_FAILURES, "reason" => error.label()).increment(1);
                if let Some(suppressed) = REFUSALS.check() {
                    tracing::warn!(
                        target: "switchyard::auth",
                        %error,
                        suppressed,
                        "refused a request without a valid JWT"
                    );
                }
                ResponseFuture {
                    kind: Kind::Unauthorized { error: Some(error) },
                }
            }
        }
    }
}

pin_project! {
    /// Response future of [`RequireJwt`].
    pub struct ResponseFuture<F> {
        #[pin]
        kind: Kind<F>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F> {
        Authorized { #[pin] future: F },
        Unauthorized { error: Option<JwtError>, },
    }
}

impl<F> std::fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: From<Bytes>,
{
    type Output = Result<Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Authorized { future } => future.poll(cx),
            KindProj::Unauthorized { error } => {
                let reason = error.take().map(|e| e.to_string()).unwrap_or_default();
                Poll::Ready(Ok(unauthorized(reason)))
            }
        }
    }
}

/// geth's answer to a bad token: 401 with the reason as plain text.
fn unauthorized<B: From<Bytes>>(reason: String) -> Response<B> {
    let mut response = Response::new(B::from(Bytes::from(reason + "\n")));
    *response.status_mut() = StatusCode::UNAUTHORIZED;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, Full};
    use std::{
        convert::Infallible,
        sync::{
            Arc,
            atomic::{AtomicUsize, Ordering},
        },
    };
    use tower::{ServiceBuilder, ServiceExt};

    fn guarded(
        secret: JwtSecret,
        calls: Arc<AtomicUsize>,
    ) -> impl Service<Request<Full<Bytes>>, Response = Response<Full<Bytes>>, Error = Infallible> + Clone
    {
        ServiceBuilder::new()
            .layer(RequireJwtLayer::new(secret))
            .service_fn(move |_req| {
                calls.fetch_add(1, Ordering::SeqCst);
                async {
                    Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"inner"))))
                }
            })
    }

    fn request(auth: Option<String>) -> Request<Full<Bytes>> {
        let mut builder = Request::builder();
        if let Some(auth) = auth {
            builder = builder.header(header::AUTHORIZATION, auth);
        }
        builder.body(Full::new(Bytes::new())).expect("request")
    }

    async fn body_text(response: Response<Full<Bytes>>) -> String {
        let bytes = response
            .into_body()
            .collect()
            .await
            .map(|c| c.to_bytes())
            .unwrap_or_default();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    #[tokio::test]
    async fn missing_token_is_401_and_not_forwarded() {
        let calls = Arc::new(AtomicUsize::new(0));
        let svc = guarded(JwtSecret::from_bytes([1; 32]), calls.clone());
        let response = svc.oneshot(request(None)).await.expect("infallible");
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(body_text(response).await, "missing token\n");
        assert_eq!(calls.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn stale_token_says_so() {
        let secret = JwtSecret::from_bytes([1; 32]);
        let calls = Arc::new(AtomicUsize::new(0));
        let token = secret.token(unix_now() - 61).expect("token");
        let response = guarded(secret, calls.clone())
            .oneshot(request(Some(format!("Bearer {token}"))))
            .await
            .expect("infallible");
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(body_text(response).await, "stale token\n");
        assert_eq!(calls.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn a_cached_token_is_still_held_to_the_clock() {
        let secret = JwtSecret::from_bytes([1; 32]);
        let svc = RequireJwt::new((), secret.clone());
        let header = format!("Bearer {}", secret.token(1_000).expect("token"));
        assert_eq!(svc.check(Some(header.as_bytes()), 1_000), Ok(()));
        assert_eq!(svc.check(Some(header.as_bytes()), 1_030), Ok(()), "cached");
        assert_eq!(
            svc.check(Some(header.as_bytes()), 1_061),
            Err(JwtError::Stale),
            "cached, but stale"
        );
        let forged = format!(
            "Bearer {}",
            JwtSecret::from_bytes([2; 32]).token(1_000).expect("token")
        );
        assert_eq!(
            svc.check(Some(forged.as_bytes()), 1_000),
            Err(JwtError::BadSignature)
        );
    }

    #[tokio::test]
    async fn valid_token_reaches_the_inner_service() {
        let secret = JwtSecret::from_bytes([1; 32]);
        let calls = Arc::new(AtomicUsize::new(0));
        let token = secret.token_now().expect("token");
        let response = guarded(secret, calls.clone())
            .oneshot(request(Some(format!("Bearer {token}"))))
            .await
            .expect("infallible");
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(body_text(response).await, "inner");
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }
}
