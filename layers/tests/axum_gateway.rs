//! The axum example, run over real HTTP: the gateway on 127.0.0.1:0 in front of an upstream that
//! checks its own JWT (with jsonwebtoken directly, not with our layer).

use std::{
    convert::Infallible,
    sync::{Arc, Mutex},
};

use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper_util::{
    client::legacy::Client,
    rt::{TokioExecutor, TokioIo},
};
use switchyard_layers::JwtSecret;

#[path = "../examples/axum_gateway.rs"]
#[allow(dead_code)]
mod example;

/// What the upstream saw: each request's body, and whether its JWT was signed with its secret.
type Seen = Arc<Mutex<Vec<(bool, Bytes)>>>;

async fn upstream(secret: [u8; 32]) -> (String, Seen) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let seen: Seen = Arc::default();
    let record = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let record = record.clone();
            let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let record = record.clone();
                async move {
                    let signed = req
                        .headers()
                        .get(header::AUTHORIZATION)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.strip_prefix("Bearer "))
                        .is_some_and(|token| {
                            let mut validation =
                                jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
                            validation.required_spec_claims = ["iat".to_owned()].into();
                            validation.validate_exp = false;
                            jsonwebtoken::decode::<serde_json::Value>(
                                token,
                                &jsonwebtoken::DecodingKey::from_secret(&secret),
                                &validation,
                            )
                            .is_ok()
                        });
                    let body = req.into_body().collect().await.expect("body").to_bytes();
                    record.lock().expect("seen").push((signed, body));
                    let answer = if signed {
                        &br#"{"jsonrpc":"2.0","id":1,"result":"0x385"}"#[..]
                    } else {
                        &b"unauthorized"[..]
                    };
                    let mut response = Response::new(Full::new(Bytes::from_static(answer)));
                    if !signed {
                        *response.status_mut() = StatusCode::UNAUTHORIZED;
                    }
                    Ok::<_, Infallible>(response)
                }
            });
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (format!("http://{addr}"), seen)
}

async fn post(url: &str, token: Option<String>, body: &'static [u8]) -> (StatusCode, Bytes) {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let mut request = Request::post(url).header(header::CONTENT_TYPE, "application/json");
    if let Some(token) = token {
        request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let request = request
        .body(Full::new(Bytes::from_static(body)))
        .expect("request");
    let response = client.request(request).await.expect("response");
    let status = response.status();
    (
        status,
        response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes(),
    )
}

#[tokio::test]
async fn the_axum_gateway_authenticates_parses_re_signs_and_forwards() {
    let upstream_secret = [9u8; 32];
    let (upstream_url, seen) = upstream(upstream_secret).await;
    let callers = JwtSecret::from_bytes([4; 32]);
    let app = example::router(
        callers.clone(),
        upstream_url.parse().expect("url"),
        JwtSecret::from_bytes(upstream_secret),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });

    const CALL: &[u8] = br#"{"jsonrpc":"2.0","id":1,"method":"eth_chainId","params":[]}"#;
    // No JWT: refused before anything reaches the upstream.
    let (status, _) = post(&format!("{url}/"), None, CALL).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // The upstream's own secret is not the callers'.
    let wrong = JwtSecret::from_bytes(upstream_secret).token_now().ok();
    assert_eq!(
        post(&format!("{url}/"), wrong, CALL).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert!(seen.lock().expect("seen").is_empty());

    // Signed by a caller: forwarded byte for byte, re-signed for the upstream.
    let (status, answer) = post(&format!("{url}/"), callers.token_now().ok(), CALL).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer, &br#"{"jsonrpc":"2.0","id":1,"result":"0x385"}"#[..]);
    assert_eq!(
        seen.lock().expect("seen").as_slice(),
        [(true, Bytes::from_static(CALL))]
    );

    // Not JSON: a JSON-RPC parse error from the gateway itself.
    let (status, answer) = post(&format!("{url}/"), callers.token_now().ok(), b"{nope").await;
    assert_eq!(status, StatusCode::OK);
    let answer: serde_json::Value = serde_json::from_slice(&answer).expect("JSON-RPC");
    assert_eq!(answer["error"]["code"], -32700);
    assert_eq!(seen.lock().expect("seen").len(), 1);

    // Routes outside the route layer need no JWT.
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let live = client
        .get(format!("{url}/livez").parse().expect("uri"))
        .await
        .expect("livez");
    assert_eq!(live.status(), StatusCode::OK);
}
