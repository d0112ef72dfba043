use std::{
    collections::HashMap,
    convert::Infallible,
    sync::Arc,
    task::{Context, Poll},
};

use futures_util::future::{BoxFuture, Either};
use http::{Request, Response};
use tower::{Service, ServiceExt, util::BoxCloneSyncService};

use crate::{body::RpcBody, jsonrpc::RpcCall};

type Route = BoxCloneSyncService<Request<RpcBody>, Response<RpcBody>, Infallible>;

/// Service that sends each method to its own service, and every other request to a fallback.
///
/// It reads the [`RpcCall`] that [`RpcMethod`](super::RpcMethod) put in the extensions; a request
/// without one (a batch forwarded whole) goes to the fallback. Routed methods should also be
/// [claimed](super::RpcMethodLayer::claim) so that batches holding them are split.
/// See the [module docs](super).
#[derive(Clone)]
pub struct MethodRouter<F> {
    routes: Arc<HashMap<Box<str>, Route>>,
    fallback: F,
}

impl<F> std::fmt::Debug for MethodRouter<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MethodRouter")
            .field("methods", &self.routes.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl<F> MethodRouter<F> {
    /// A router that sends everything to `fallback` until routes are added.
    pub fn new(fallback: F) -> Self {
        Self {
            routes: Arc::new(HashMap::new()),
            fallback,
        }
    }

    /// Sends calls of `method` to `service`.
    pub fn route<S>(mut self, method: impl Into<Box<str>>, service: S) -> Self
    where
        S: Service<Request<RpcBody>, Response = Response<RpcBody>, Error = Infallible>
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
    {
        Arc::make_mut(&mut self.routes).insert(method.into(), BoxCloneSyncService::new(service));
        self
    }

    /// The methods that have a route.
    pub fn methods(&self) -> impl Iterator<Item = &str> {
        self.routes.keys().map(AsRef::as_ref)
    }
}

impl<F> Service<Request<RpcBody>> for MethodRouter<F>
where
    F: Service<Request<RpcBody>, Response = Response<RpcBody>, Error = Infallible>,
{
    type Response = Response<RpcBody>;
    type Error = Infallible;
    type Future = Either<BoxFuture<'static, Result<Response<RpcBody>, Infallible>>, F::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.fallback.poll_ready(cx)
    }

    fn call(&mut self, req: Request<RpcBody>) -> Self::Future {
        let route = req
            .extensions()
            .get::<RpcCall>()
            .and_then(|call| self.routes.get(call.method()))
            .cloned();
        match route {
            Some(route) => Either::Left(Box::pin(route.oneshot(req))),
            None => Either::Right(self.fallback.call(req)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{RpcMethodLayer, jsonrpc};
    use bytes::Bytes;
    use http_body_util::{BodyExt, Full};
    use tower::{ServiceBuilder, service_fn};

    fn answer(
        text: &'static str,
    ) -> impl Fn(Request<RpcBody>) -> std::future::Ready<Result<Response<RpcBody>, Infallible>> + Clone
    {
        move |req: Request<RpcBody>| {
            let id = req
                .extensions()
                .get::<RpcCall>()
                .map(|c| c.id().to_vec())
                .unwrap_or_default();
            let body = jsonrpc::result_response(&id, format!("\"{text}\"").as_bytes());
            std::future::ready(Ok(Response::new(RpcBody::new(body))))
        }
    }

    #[tokio::test]
    async fn routes_each_call_of_a_split_batch_and_falls_back_for_the_rest() {
        let router = MethodRouter::new(service_fn(answer("fallback")))
            .route("eth_chainId", service_fn(answer("chain")))
            .route("eth_call", service_fn(answer("call")));
        let svc = ServiceBuilder::new()
            .layer(RpcMethodLayer::new().claim_all())
            .service(router);
        let body = br#"[{"id":1,"method":"eth_call"},{"id":2,"method":"admin_peers"},{"id":3,"method":"eth_chainId"}]"#;
        let response = svc
            .oneshot(Request::new(Full::new(Bytes::from_static(body))))
            .await
            .expect("infallible");
        let bytes = response
            .into_body()
            .collect()
            .await
            .map(|c| c.to_bytes())
            .unwrap_or_default();
        assert_eq!(
            &bytes[..],
            br#"[{"jsonrpc":"2.0","id":1,"result":"call"},{"jsonrpc":"2.0","id":2,"result":"fallback"},{"jsonrpc":"2.0","id":3,"result":"chain"}]"#
        );
    }
}
