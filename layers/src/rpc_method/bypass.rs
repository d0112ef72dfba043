//! Calls that no layer of a stack handles go around it (see [`Bypass`]).

use std::{
    pin::Pin,
    task::{Context, Poll, ready},
};

use futures_util::future::Either;
use http::{Request, Response};
use tower::{Layer, Service};

use crate::{body::RpcBody, jsonrpc::RpcCall};

/// Whether a method is handled by the wrapped stack.
pub type Claims = fn(&str) -> bool;

/// Wraps a stack in a [`Bypass`]: calls whose method `claims` does not hold go to `around`.
#[derive(Clone, Debug)]
pub struct BypassLayer<B> {
    claims: Claims,
    around: B,
}

impl<B> BypassLayer<B> {
    /// Calls whose method `claims` holds go through the wrapped stack; everything else to
    /// `around`.
    pub fn new(claims: Claims, around: B) -> Self {
        Self { claims, around }
    }
}

impl<S, B: Clone> Layer<S> for BypassLayer<B> {
    type Service = Bypass<S, B>;

    fn layer(&self, through: S) -> Self::Service {
        Bypass {
            claims: self.claims,
            through,
            around: self.around.clone(),
        }
    }
}

/// Sends claimed calls through a stack and everything else around it.
///
/// # Behaviour
///
/// It wraps a stack of layers that each act on a few methods (the Engine API layers act
/// on forkchoice updates, getPayload, newPayload, transactions and `miner_*` settings) and pass
/// everything else through. A call whose [`RpcCall`] method the predicate claims goes through
/// that stack; every other request (other calls, and batches forwarded whole) goes straight to
/// the bypass service, which is normally the same service the stack ends in. The answer is the
/// same either way: only the pass-through work of each layer is saved. The stack's future is
/// boxed, so that the future of every other call is no larger than the bypass service's.
///
/// Both services are polled ready before a call, as tower's `Steer` does.
///
/// # Example
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use bytes::Bytes;
/// use http::{Request, Response};
/// use http_body_util::{BodyExt, Full};
/// use switchyard_layers::{BypassLayer, RpcMethodLayer, body::RpcBody, jsonrpc::{self, RpcCall}};
/// use tower::{ServiceBuilder, ServiceExt, service_fn};
///
/// fn answer(text: &'static str) -> impl Fn(Request<RpcBody>) -> std::future::Ready<Result<Response<RpcBody>, std::convert::Infallible>> + Clone {
///     move |req| {
///         let id = req.extensions().get::<RpcCall>().map(|c| c.id().to_vec()).unwrap_or_default();
///         std::future::ready(Ok(Response::new(RpcBody::new(jsonrpc::result_response(&id, text.as_bytes())))))
///     }
/// }
///
/// let svc = ServiceBuilder::new()
///     .layer(RpcMethodLayer::new())
///     .layer(BypassLayer::new(|method| method.starts_with("engine_"), service_fn(answer("\"around\""))))
///     .service_fn(answer("\"through\""));
/// let req = Request::new(Full::new(Bytes::from_static(br#"{"jsonrpc":"2.0","id":1,"method":"eth_chainId"}"#)));
/// let body = svc.oneshot(req).await.unwrap().into_body().collect().await.unwrap().to_bytes();
/// assert_eq!(&body[..], br#"{"jsonrpc":"2.0","id":1,"result":"around"}"#);
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct Bypass<S, B> {
    claims: Claims,
    through: S,
    around: B,
}

impl<S, B> Bypass<S, B> {
    /// The stack claimed calls go through.
    pub fn get_ref(&self) -> &S {
        &self.through
    }

    /// The service everything else goes to.
    pub fn around(&self) -> &B {
        &self.around
    }
}

impl<S, B> Service<Request<RpcBody>> for Bypass<S, B>
where
    S: Service<Request<RpcBody>, Response = Response<RpcBody>>,
    B: Service<Request<RpcBody>, Response = Response<RpcBody>, Error = S::Error>,
{
    type Response = Response<RpcBody>;
    type Error = S::Error;
    type Future = Either<Pin<Box<S::Future>>, B::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // Either may take the next call, so both must be ready for it.
        ready!(self.through.poll_ready(cx))?;
        self.around.poll_ready(cx)
    }

    fn call(&mut self, req: Request<RpcBody>) -> Self::Future {
        let claimed = req
            .extensions()
            .get::<RpcCall>()
            .is_some_and(|call| (self.claims)(call.method()));
        if claimed {
            // Boxed: a stack's future is large (1,136 bytes for switchyard's Engine layers, 280
            // around them), and every wrapper above moves its caller's future by value; boxed,
            // the common call stays small, for one allocation per claimed call.
            Either::Left(Box::pin(self.through.call(req)))
        } else {
            Either::Right(self.around.call(req))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::{
        convert::Infallible,
        sync::{
            Arc,
            atomic::{AtomicUsize, Ordering},
        },
    };

    use bytes::Bytes;
    use http::Request;
    use http_body_util::{BodyExt, Full};
    use tower::{ServiceBuilder, ServiceExt, service_fn};

    use super::{BypassLayer, Claims};
    use crate::{RpcMethodLayer, body::RpcBody, jsonrpc};

    /// A service that counts its calls and answers each with the method it was built for.
    fn counted(
        text: &'static str,
        calls: Arc<AtomicUsize>,
    ) -> impl tower::Service<
        Request<RpcBody>,
        Response = http::Response<RpcBody>,
        Error = Infallible,
        Future: Send,
    > + Clone {
        service_fn(move |req: Request<RpcBody>| {
            calls.fetch_add(1, Ordering::SeqCst);
            let id = req
                .extensions()
                .get::<jsonrpc::RpcCall>()
                .map(|c| c.id().to_vec())
                .unwrap_or_else(|| b"null".to_vec());
            let body = jsonrpc::result_response(&id, format!("\"{text}\"").as_bytes());
            std::future::ready(Ok(http::Response::new(RpcBody::new(body))))
        })
    }

    async fn ask(
        svc: impl tower::Service<
            Request<Full<Bytes>>,
            Response = http::Response<RpcBody>,
            Error = Infallible,
        >,
        body: &'static [u8],
    ) -> Bytes {
        let response = svc
            .oneshot(Request::new(Full::new(Bytes::from_static(body))))
            .await
            .unwrap_or_else(|never| match never {});
        response
            .into_body()
            .collect()
            .await
            .map(|c| c.to_bytes())
            .unwrap_or_default()
    }

    #[tokio::test]
    async fn claimed_calls_go_through_and_the_rest_around() {
        let through = Arc::new(AtomicUsize::new(0));
        let around = Arc::new(AtomicUsize::new(0));
        // One predicate for both: what the bypass sends through, the router splits out of batches.
        let engine: Claims = |method| method.starts_with("engine_");
        let svc = ServiceBuilder::new()
            .layer(RpcMethodLayer::new().claim_with(engine))
            .layer(BypassLayer::new(engine, counted("around", around.clone())))
            .service(counted("through", through.clone()));

        let engine = ask(
            svc.clone(),
            br#"{"jsonrpc":"2.0","id":1,"method":"engine_getPayloadV4","params":["0x01"]}"#,
        )
        .await;
        assert_eq!(
            &engine[..],
            br#"{"jsonrpc":"2.0","id":1,"result":"through"}"#
        );

        let eth = ask(
            svc.clone(),
            br#"{"jsonrpc":"2.0","id":2,"method":"eth_chainId"}"#,
        )
        .await;
        assert_eq!(&eth[..], br#"{"jsonrpc":"2.0","id":2,"result":"around"}"#);

        // A batch of unclaimed calls travels whole, around the stack.
        let _ = ask(
            svc.clone(),
            br#"[{"jsonrpc":"2.0","id":3,"method":"eth_chainId"},{"jsonrpc":"2.0","id":4,"method":"net_version"}]"#,
        )
        .await;
        // A batch holding a claimed call is split: each call takes its own way.
        let split = ask(
            svc.clone(),
            br#"[{"jsonrpc":"2.0","id":5,"method":"engine_getPayloadV4","params":["0x01"]},{"jsonrpc":"2.0","id":6,"method":"eth_blockNumber"}]"#,
        )
        .await;
        assert_eq!(
            &split[..],
            br#"[{"jsonrpc":"2.0","id":5,"result":"through"},{"jsonrpc":"2.0","id":6,"result":"around"}]"#
        );
        // Any method the predicate holds is split out, not only those named anywhere.
        let split = ask(
            svc,
            br#"[{"jsonrpc":"2.0","id":7,"method":"net_version"},{"jsonrpc":"2.0","id":8,"method":"engine_newPayloadV1","params":[{}]}]"#,
        )
        .await;
        assert_eq!(
            &split[..],
            br#"[{"jsonrpc":"2.0","id":7,"result":"around"},{"jsonrpc":"2.0","id":8,"result":"through"}]"#
        );
        assert_eq!(through.load(Ordering::SeqCst), 3);
        assert_eq!(around.load(Ordering::SeqCst), 4);
    }
}
