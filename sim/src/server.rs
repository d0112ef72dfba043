//! HTTP/1.1 serving: JWT, JSON-RPC framing, transport faults, the control endpoint.

use std::{convert::Infallible, net::SocketAddr, sync::Arc, time::Duration};

use bytes::Bytes;
use futures_util::stream;
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde_json::value::RawValue;
use tokio::{net::TcpListener, sync::watch, task::JoinSet, time::Instant};

use crate::{
    auth,
    engine::Engine,
    faults::{Fault, FaultRule},
    log::{LogEntry, RequestLog},
};

type Body = BoxBody<Bytes, std::io::Error>;

/// Everything a connection handler needs.
pub(crate) struct Shared {
    pub(crate) engine: Engine,
    pub(crate) log: RequestLog,
    pub(crate) secret: [u8; 32],
    pub(crate) tls: Option<tokio_rustls::TlsAcceptor>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("engine", &self.engine)
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

fn text(status: StatusCode, body: &'static str) -> Response<Body> {
    let mut response = Response::new(full(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

fn json_response(body: Vec<u8>) -> Response<Body> {
    let mut response = Response::new(full(body));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// Accepts connections until `shutdown` changes.
pub(crate) async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut connections = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.changed() => break,
        };
        let Ok((stream, _)) = accepted else { continue };
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        let mut stop = shutdown.clone();
        let tls = shared.tls.clone();
        connections.spawn(async move {
            let stop = async move {
                let _ = stop.changed().await;
            };
            match tls {
                None => serve_io(stream, shared, stop).await,
                Some(acceptor) => {
                    // A refused handshake (wrong client certificate, ...) just ends the connection.
                    if let Ok(stream) = acceptor.accept(stream).await {
                        serve_io(stream, shared, stop).await;
                    }
                }
            }
        });
        while connections.try_join_next().is_some() {}
    }
    connections.abort_all();
}

async fn serve_io<I>(io: I, shared: Arc<Shared>, stop: impl std::future::Future<Output = ()>)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |req| {
        let shared = shared.clone();
        async move { Ok::<_, Infallible>(handle(shared, req).await) }
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .serve_connection(TokioIo::new(io), service);
    tokio::pin!(connection);
    tokio::select! {
        _ = connection.as_mut() => {}
        () = stop => {}
    }
}

async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Response<Body> {
    if req.uri().path().starts_with("/_sim/") {
        return control(&shared, req).await;
    }
    let authorization = req
        .headers()
        .get(header::AUTHORIZATION)
        .map(|v| v.as_bytes().to_vec());
    if let Err(reason) = auth::check(&shared.secret, authorization.as_deref()) {
        shared.log.refused();
        let mut response = text(StatusCode::UNAUTHORIZED, "");
        *response.body_mut() = full(format!("{reason}\n"));
        return response;
    }
    let Ok(body) = req.into_body().collect().await.map(|c| c.to_bytes()) else {
        return text(StatusCode::BAD_REQUEST, "body read failed\n");
    };
    let arrived = Instant::now();
    let arrived_unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    let calls = match parse(&body) {
        Ok(calls) => calls,
        Err(response) => return json_response(response),
    };
    for call in &calls.items {
        if let Some((method, params)) = &call.parsed {
            let id = call
                .id
                .as_ref()
                .map_or_else(|| "null".to_owned(), |id| id.get().to_owned());
            shared.log.push(LogEntry {
                method: method.clone(),
                params: params.clone(),
                id,
                at: arrived,
                unix_nanos: arrived_unix,
            });
        }
    }
    let methods: Vec<&str> = calls
        .items
        .iter()
        .filter_map(|c| c.parsed.as_ref().map(|(m, _)| m.as_str()))
        .collect();
    let transport = methods
        .iter()
        .find_map(|m| shared.engine.faults.take(m, Fault::is_transport));
    match transport {
        Some(Fault::Delay { ms }) => tokio::time::sleep(Duration::from_millis(ms)).await,
        Some(Fault::Hang) => {
            let mut release = shared.engine.faults.hang_release();
            let _ = release.changed().await;
        }
        Some(Fault::HttpStatus { status }) => {
            let mut response = text(
                StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                "",
            );
            *response.body_mut() = full(format!("simulated HTTP {status}\n"));
            return response;
        }
        Some(Fault::MalformedJson) => {
            return json_response(b"{\"jsonrpc\":\"2.0\",\"id\":<garbage>,\"result\":[}".to_vec());
        }
        _ => {}
    }
    let answers: Vec<Vec<u8>> = calls
        .items
        .iter()
        .filter_map(|call| answer(&shared.engine, call))
        .collect();
    let mut bytes = if calls.batch {
        let mut out = b"[".to_vec();
        for (i, answer) in answers.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(answer);
        }
        out.push(b']');
        out
    } else {
        answers.into_iter().next().unwrap_or_default()
    };
    bytes.push(b'\n');
    match transport {
        Some(Fault::TruncatedBody) => {
            bytes.truncate(bytes.len() / 2);
            json_response(bytes)
        }
        Some(Fault::CloseConnection) => {
            let total = bytes.len();
            bytes.truncate(total / 2);
            let chunks = stream::iter([
                Ok(Frame::data(Bytes::from(bytes))),
                Err(std::io::Error::new(
                    std::io::ErrorKind::ConnectionReset,
                    "simulated connection drop",
                )),
            ]);
            let mut response = Response::new(BodyExt::boxed(StreamBody::new(chunks)));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            response
                .headers_mut()
                .insert(header::CONTENT_LENGTH, HeaderValue::from(total));
            response
        }
        _ => json_response(bytes),
    }
}

struct Call {
    id: Option<Box<RawValue>>,
    /// `(method, params)`, or `None` for an invalid request.
    parsed: Option<(String, Bytes)>,
}

struct Calls {
    batch: bool,
    items: Vec<Call>,
}

#[derive(serde::Deserialize)]
struct Envelope<'a> {
    // geth answers `"id": null` (a call), but not an absent id (a notification).
    #[serde(default, deserialize_with = "present")]
    id: Option<Box<RawValue>>,
    #[serde(default)]
    method: Option<String>,
    #[serde(borrow, default)]
    params: Option<&'a RawValue>,
}

fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Box<RawValue>>, D::Error> {
    <Box<RawValue> as serde::Deserialize>::deserialize(d).map(Some)
}

fn parse(body: &Bytes) -> Result<Calls, Vec<u8>> {
    let parse_error = || {
        b"{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":-32700,\"message\":\"parse error\"}}\n".to_vec()
    };
    let batch = body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[');
    let raws: Vec<&RawValue> = if batch {
        serde_json::from_slice(body).map_err(|_| parse_error())?
    } else {
        vec![serde_json::from_slice(body).map_err(|_| parse_error())?]
    };
    if batch && raws.is_empty() {
        return Err(b"{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":-32600,\"message\":\"empty batch\"}}\n".to_vec());
    }
    let items = raws
        .into_iter()
        .map(
            |raw| match serde_json::from_str::<Envelope<'_>>(raw.get()) {
                Ok(Envelope {
                    id,
                    method: Some(method),
                    params,
                }) => Call {
                    id,
                    parsed: Some((
                        method,
                        params
                            .map(|p| body.slice_ref(p.get().as_bytes()))
                            .unwrap_or_default(),
                    )),
                },
                Ok(Envelope { id, .. }) => Call { id, parsed: None },
                Err(_) => Call {
                    id: None,
                    parsed: None,
                },
            },
        )
        .collect();
    Ok(Calls { batch, items })
}

/// One call's answer; `None` for a notification.
fn answer(engine: &Engine, call: &Call) -> Option<Vec<u8>> {
    let id = call.id.as_ref().map_or("null", |id| id.get());
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(b"{\"jsonrpc\":\"2.0\",\"id\":");
    out.extend_from_slice(id.as_bytes());
    let Some((method, params)) = &call.parsed else {
        out.extend_from_slice(b",\"error\":{\"code\":-32600,\"message\":\"invalid request\"}}");
        return Some(out);
    };
    let result = engine.handle(method, params);
    call.id.as_ref()?;
    match result {
        Ok(result) => {
            out.extend_from_slice(b",\"result\":");
            out.extend_from_slice(&result);
            out.push(b'}');
        }
        Err(error) => {
            out.extend_from_slice(
                format!(",\"error\":{{\"code\":{},\"message\":", error.code).as_bytes(),
            );
            out.extend_from_slice(&serde_json::to_vec(&error.message).unwrap_or_default());
            out.extend_from_slice(b"}}");
        }
    }
    Some(out)
}

/// `/_sim/faults` (POST a rule, DELETE all), `/_sim/release` (POST), `/_sim/log` (GET the calls
/// whose method starts with `?prefix=`, each as its method, a hash of its params and its arrival
/// in Unix nanoseconds; DELETE to forget them): for out-of-process runs.
async fn control(shared: &Shared, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path().to_owned();
    let query = req.uri().query().unwrap_or_default().to_owned();
    let method = req.method().clone();
    let body = req
        .into_body()
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    let faults = &shared.engine.faults;
    match (method.as_str(), path.as_str()) {
        ("POST", "/_sim/faults") => match serde_json::from_slice::<FaultRule>(&body) {
            Ok(rule) => json_response(format!("{{\"id\":{}}}\n", faults.add(rule)).into_bytes()),
            Err(e) => {
                let mut response = text(StatusCode::BAD_REQUEST, "");
                *response.body_mut() = full(format!("bad fault rule: {e}\n"));
                response
            }
        },
        ("DELETE", "/_sim/faults") => {
            faults.clear();
            text(StatusCode::OK, "cleared\n")
        }
        ("GET", "/_sim/faults") => {
            json_response(serde_json::to_vec(&faults.rules()).unwrap_or_default())
        }
        ("POST", "/_sim/release") => {
            faults.release_hangs();
            text(StatusCode::OK, "released\n")
        }
        ("GET", "/_sim/log") => {
            let prefix = query.strip_prefix("prefix=").unwrap_or_default();
            let calls: Vec<serde_json::Value> = shared
                .log
                .calls(prefix)
                .iter()
                .map(|call| {
                    use std::hash::{Hash, Hasher};
                    // The same call relayed elsewhere has the same params: this pairs them.
                    let mut hasher = std::hash::DefaultHasher::new();
                    call.params.hash(&mut hasher);
                    serde_json::json!({
                        "method": call.method,
                        "params_hash": hasher.finish(),
                        "unix_nanos": call.unix_nanos,
                    })
                })
                .collect();
            json_response(serde_json::to_vec(&calls).unwrap_or_default())
        }
        ("DELETE", "/_sim/log") => {
            shared.log.clear();
            text(StatusCode::OK, "cleared\n")
        }
        _ => text(StatusCode::NOT_FOUND, "unknown control path\n"),
    }
}

/// Binds `addr`, retrying briefly while a previous holder of the port lets go of it.
pub(crate) async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let mut attempt = 0;
    loop {
        match TcpListener::bind(addr).await {
            Ok(listener) => return Ok(listener),
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && attempt < 50 => {
                attempt += 1;
                tokio::task::yield_now().await;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => return Err(e),
        }
    }
}
