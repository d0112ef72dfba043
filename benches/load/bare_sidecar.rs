//! `--bare-sidecar <op-geth addr> <builder addrs> <builder secrets>` (comma-separated): the least
//! a builder sidecar must do, written for this bench, on one thread as switchyard runs. It reads
//! each call's method and nothing it can skip; forwards every call to op-geth with op-node's own
//! JWT; copies forkchoice updates and `newPayload` to each builder through an ordered lane (op-geth's
//! request written first); on getPayload asks op-geth and every builder at once, has op-geth
//! validate each builder's payload, and answers with the first valid one, else op-geth's. It
//! checks nothing else (no JWT, no attributes, no block hash, no deadline), keeps one sequencer's
//! job only (block cycles at concurrency 1), and counts on a well-behaved builder.
//!
//! Its added latency beyond the floor is the least a sidecar on one thread adds for the builder
//! path: the yardstick for switchyard's, in the block-cycle rows (configuration `sidecar`).
//! `BARE_SIDECAR_THREADS=2` runs it on two threads (it read no better on 2 cores; figures in
//! BENCHMARKS.md).
//!
//! With `--checks <op-node's secret>` (configuration `checked`) it also does what the design asks
//! of every call and every builder payload, with switchyard's own functions and no more: each
//! call's JWT checked ([`JwtSecret::validate_header`]); the attributes decoded once op-geth's
//! forkchoice request is written; each call to op-geth or a builder bounded by switchyard's
//! default timeout; at getPayload the builders given switchyard's deadline, and a builder's answer
//! read, held to them ([`check_attributes`]), and its block hash recomputed
//! ([`check_block_hash`]) while op-geth validates it. That is the least a sidecar true to the
//! design does.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use alloy_rpc_types_engine::ForkchoiceState;
use bytes::Bytes;
use http::{HeaderValue, Request, Response, Uri, header};
use http_body_util::{BodyExt, Either, Full};
use hyper::body::Incoming;
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::{TokioExecutor, TokioIo},
};
use op_alloy_rpc_types_engine::OpPayloadAttributes;
use serde::Deserialize;
use serde_json::value::RawValue;
use switchyard_layers::{
    JwtSecret,
    engine::Envelope as BuiltEnvelope,
    fcu_mux::PayloadJob,
    payload_select::{check_attributes, check_block_hash},
};
use tokio::sync::{mpsc, oneshot};

type Error = Box<dyn std::error::Error + Send + Sync>;
type Answer = Response<Either<Incoming, Full<Bytes>>>;

/// A call to one builder, and where its answer goes (`None`: nowhere).
type LaneCall = (Bytes, Option<oneshot::Sender<Option<Bytes>>>);

struct Sidecar {
    client: Client<HttpConnector, Full<Bytes>>,
    l2: Uri,
    lanes: Vec<mpsc::UnboundedSender<LaneCall>>,
    /// Each builder's answer to the last forkchoice update with attributes.
    building: Mutex<Vec<oneshot::Receiver<Option<Bytes>>>>,
    /// getPayloads, and those answered with a builder's payload.
    payloads: (AtomicU64, AtomicU64),
    /// With `--checks`: the attributes of the last forkchoice update with attributes, to hold
    /// the builders' payloads to (`None` in the slot: they could not be read).
    checks: Option<Mutex<Option<Arc<PayloadJob>>>>,
    /// With `--checks`: op-node's secret, that each call's JWT is checked against, and the
    /// token last found good with the second it was checked in (op-node signs a new one each
    /// second: within that second, the same bytes are the same verdict, as switchyard caches).
    inbound: Option<(JwtSecret, Mutex<(HeaderValue, u64)>)>,
}

/// How long the checking sidecar waits for the builders at getPayload: the bench gives
/// switchyard `--payload-deadline 2s`.
const PAYLOAD_DEADLINE: Duration = Duration::from_secs(2);

/// The checking sidecar's bound on one call to op-geth, and to a builder: switchyard's defaults
/// (`--l2-timeout`, `--builder-timeout`).
const L2_TIMEOUT: Duration = Duration::from_secs(2);
const BUILDER_TIMEOUT: Duration = Duration::from_secs(1);

/// `checks`: op-node's secret (hex), with `--checks`.
pub(crate) fn run(l2: &str, builders: &str, secrets: &str, checks: Option<&str>) {
    // `BARE_SIDECAR_THREADS=<n>`: n worker threads instead (where more threads win or lose).
    let threads = std::env::var("BARE_SIDECAR_THREADS")
        .ok()
        .and_then(|n| n.parse::<usize>().ok())
        .filter(|&n| n > 1);
    let runtime = match threads {
        None => tokio::runtime::Builder::new_current_thread(),
        Some(threads) => {
            let mut builder = tokio::runtime::Builder::new_multi_thread();
            builder.worker_threads(threads);
            builder
        }
    }
    .enable_all()
    .build()
    .unwrap();
    runtime.block_on(async {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new()).build(connector);
        let lanes = builders
            .split(',')
            .zip(secrets.split(','))
            .map(|(addr, secret)| {
                let uri: Uri = format!("http://{addr}").parse().unwrap();
                let secret = JwtSecret::from_hex(secret).unwrap();
                let (sender, receiver) = mpsc::unbounded_channel();
                let limit = checks.map(|_| BUILDER_TIMEOUT);
                tokio::spawn(lane(client.clone(), uri, secret, limit, receiver));
                sender
            })
            .collect();
        let sidecar = Arc::new(Sidecar {
            client,
            l2: format!("http://{l2}").parse().unwrap(),
            lanes,
            building: Mutex::new(Vec::new()),
            payloads: Default::default(),
            checks: checks.map(|_| Mutex::new(None)),
            inbound: checks.map(|secret| {
                let last = Mutex::new((HeaderValue::from_static(""), 0));
                (JwtSecret::from_hex(secret).unwrap(), last)
            }),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        println!("ADDR {}", listener.local_addr().unwrap());
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let _ = stream.set_nodelay(true);
            let sidecar = sidecar.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| sidecar.clone().handle(req));
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
}

/// One builder's calls, one at a time, in order, each signed with a token minted once a second.
async fn lane(
    client: Client<HttpConnector, Full<Bytes>>,
    uri: Uri,
    secret: JwtSecret,
    limit: Option<Duration>,
    mut calls: mpsc::UnboundedReceiver<LaneCall>,
) {
    let mut token = (0, HeaderValue::from_static(""));
    while let Some((body, answer)) = calls.recv().await {
        let now = unix_now();
        if token.0 != now {
            let bearer = format!("Bearer {}", secret.token(now).unwrap());
            token = (now, HeaderValue::from_str(&bearer).unwrap());
        }
        let answered = post(&client, &uri, Some(&token.1), body, limit).await.ok();
        if let Some(answer) = answer {
            let _ = answer.send(answered);
        }
    }
}

/// Posts `body` and reads the whole answer, within `limit` if there is one.
async fn post(
    client: &Client<HttpConnector, Full<Bytes>>,
    uri: &Uri,
    auth: Option<&HeaderValue>,
    body: Bytes,
    limit: Option<Duration>,
) -> Result<Bytes, Error> {
    let mut request = Request::post(uri.clone())
        .header(header::CONTENT_TYPE, "application/json")
        .body(Full::new(body))?;
    if let Some(auth) = auth {
        request
            .headers_mut()
            .insert(header::AUTHORIZATION, auth.clone());
    }
    bounded(limit, async {
        let response = client.request(request).await?;
        Ok(response.into_body().collect().await?.to_bytes())
    })
    .await
}

/// `call`, given up after `limit` if there is one.
async fn bounded<T>(
    limit: Option<Duration>,
    call: impl Future<Output = Result<T, Error>>,
) -> Result<T, Error> {
    match limit {
        Some(limit) => tokio::time::timeout(limit, call).await?,
        None => call.await,
    }
}

#[derive(Deserialize)]
struct Call<'a> {
    #[serde(borrow)]
    id: &'a RawValue,
    method: &'a str,
    #[serde(borrow)]
    params: &'a RawValue,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Envelope<'a> {
    #[serde(borrow)]
    execution_payload: &'a RawValue,
    #[serde(borrow, default)]
    parent_beacon_block_root: Option<&'a RawValue>,
    #[serde(borrow, default)]
    execution_requests: Option<&'a RawValue>,
}

/// The method of a JSON-RPC call, found without parsing the rest (a `newPayload` body is large).
fn method_of(body: &[u8]) -> &[u8] {
    const KEY: &[u8] = b"\"method\":\"";
    let Some(at) = body.windows(KEY.len()).position(|w| w == KEY) else {
        return b"";
    };
    let rest = &body[at + KEY.len()..];
    let end = rest.iter().position(|&b| b == b'"').unwrap_or(0);
    &rest[..end]
}

/// The result of a JSON-RPC answer, raw.
fn result_of(answer: &[u8]) -> Option<&RawValue> {
    #[derive(Deserialize)]
    struct Answer<'a> {
        #[serde(borrow)]
        result: Option<&'a RawValue>,
    }
    serde_json::from_slice::<Answer<'_>>(answer).ok()?.result
}

impl Sidecar {
    /// The bound on one call to op-geth: with `--checks`, switchyard's default.
    fn l2_limit(&self) -> Option<Duration> {
        self.checks.as_ref().map(|_| L2_TIMEOUT)
    }

    async fn handle(self: Arc<Self>, req: Request<Incoming>) -> Result<Answer, Error> {
        let (parts, body) = req.into_parts();
        if let Some((secret, last)) = &self.inbound {
            let token = parts.headers.get(header::AUTHORIZATION);
            let now = unix_now();
            let known = token.is_some_and(|token| *last.lock().unwrap() == (token.clone(), now));
            if !known {
                if secret
                    .validate_header(token.map(HeaderValue::as_bytes), now)
                    .is_err()
                {
                    let refused = Response::builder()
                        .status(http::StatusCode::UNAUTHORIZED)
                        .body(Either::Right(Full::new(Bytes::new())))?;
                    return Ok(refused);
                }
                if let Some(token) = token {
                    *last.lock().unwrap() = (token.clone(), now);
                }
            }
        }
        let body = body.collect().await?.to_bytes();
        let auth = parts.headers.get(header::AUTHORIZATION).cloned();
        let method = method_of(&body);
        if method.starts_with(b"engine_getPayload") {
            return self.get_payload(auth, body).await;
        }
        let copy = if method.starts_with(b"engine_newPayload") {
            Some(None)
        } else if method.starts_with(b"engine_forkchoiceUpdated") {
            let call: Call<'_> = serde_json::from_slice(&body)?;
            let (_, attributes): (serde::de::IgnoredAny, Option<&RawValue>) =
                serde_json::from_str(call.params.get())?;
            Some(attributes.map(|_| call))
        } else {
            None
        };
        let forward = self.forward(auth, body.clone());
        let Some(with_attributes) = copy else {
            return forward.await;
        };
        // op-geth's request is written first: its connection's task runs before this one resumes.
        let queue = async {
            tokio::task::yield_now().await;
            self.copy_to_builders(&body, with_attributes.is_some());
            if let (Some(slot), Some(call)) = (&self.checks, with_attributes) {
                *slot.lock().unwrap() = job_of(&call).map(Arc::new);
            }
        };
        tokio::join!(forward, queue).0
    }

    fn forward(
        &self,
        auth: Option<HeaderValue>,
        body: Bytes,
    ) -> impl Future<Output = Result<Answer, Error>> + '_ {
        let mut request = Request::post(self.l2.clone())
            .header(header::CONTENT_TYPE, "application/json")
            .body(Full::new(body));
        if let (Ok(request), Some(auth)) = (&mut request, auth) {
            request.headers_mut().insert(header::AUTHORIZATION, auth);
        }
        let limit = self.l2_limit();
        async move {
            let response = bounded(limit, async { Ok(self.client.request(request?).await?) });
            Ok(response.await?.map(Either::Left))
        }
    }

    fn copy_to_builders(&self, body: &Bytes, with_attributes: bool) {
        let mut building = Vec::new();
        for lane in &self.lanes {
            let answer = with_attributes.then(|| {
                let (sender, receiver) = oneshot::channel();
                building.push(receiver);
                sender
            });
            let _ = lane.send((body.clone(), answer));
        }
        if with_attributes {
            *self.building.lock().unwrap() = building;
        }
    }

    async fn get_payload(&self, auth: Option<HeaderValue>, body: Bytes) -> Result<Answer, Error> {
        let building = std::mem::take(&mut *self.building.lock().unwrap());
        let job = self.checks.as_ref().map(|slot| slot.lock().unwrap().take());
        let local = self.forward(auth.clone(), body.clone());
        let built = async {
            let call: Call<'_> = serde_json::from_slice(&body).ok()?;
            let each = self.lanes.iter().zip(building).map(|(lane, fcu)| {
                self.builder_payload(&call, auth.as_ref(), lane, fcu, job.clone())
            });
            let all = futures_util::future::join_all(each);
            let answered = if self.checks.is_some() {
                tokio::time::timeout(PAYLOAD_DEADLINE, all).await.ok()?
            } else {
                all.await
            };
            answered.into_iter().flatten().next()
        };
        let (local, built) = tokio::join!(local, built);
        self.payloads.0.fetch_add(1, Ordering::Relaxed);
        let Some(built) = built else {
            return local;
        };
        let used = self.payloads.1.fetch_add(1, Ordering::Relaxed) + 1;
        if used.is_multiple_of(1_000) {
            eprintln!(
                "{} sidecar: {used} of {} getPayloads answered with a builder's payload",
                if self.checks.is_some() {
                    "checking"
                } else {
                    "bare"
                },
                self.payloads.0.load(Ordering::Relaxed)
            );
        }
        Ok(Response::builder()
            .header(header::CONTENT_TYPE, "application/json")
            .body(Either::Right(Full::new(built)))?)
    }

    /// A builder's payload for its last forkchoice update, if op-geth finds it valid (and, with
    /// `--checks`, it passes the checks against `job`: `Some(None)` fails them all).
    async fn builder_payload(
        &self,
        call: &Call<'_>,
        auth: Option<&HeaderValue>,
        lane: &mpsc::UnboundedSender<LaneCall>,
        fcu: oneshot::Receiver<Option<Bytes>>,
        job: Option<Option<Arc<PayloadJob>>>,
    ) -> Option<Bytes> {
        let fcu = fcu.await.ok()??;
        let id = serde_json::from_str::<serde_json::Value>(result_of(&fcu)?.get())
            .ok()?
            .get("payloadId")?
            .as_str()?
            .to_owned();
        let request = format!(
            r#"{{"jsonrpc":"2.0","id":{},"method":"{}","params":["{id}"]}}"#,
            call.id.get(),
            call.method
        );
        let (sender, receiver) = oneshot::channel();
        lane.send((Bytes::from(request), Some(sender))).ok()?;
        let answer = receiver.await.ok()??;
        let envelope: Envelope<'_> = serde_json::from_str(result_of(&answer)?.get()).ok()?;
        let payload = envelope.execution_payload.get();
        let version = call.method.strip_prefix("engine_getPayloadV")?;
        let beacon = envelope
            .parent_beacon_block_root
            .map_or("null", RawValue::get);
        let requests = envelope.execution_requests.map_or("[]", RawValue::get);
        let params = match version {
            "2" => format!("[{payload}]"),
            "3" => format!("[{payload},[],{beacon}]"),
            _ => format!("[{payload},[],{beacon},{requests}]"),
        };
        let validate = format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"engine_newPayloadV{version}","params":{params}}}"#
        );
        let checked = match job {
            None => None,
            Some(job) => {
                let (built, _) =
                    BuiltEnvelope::parse_answer_with_transactions(version.parse().ok()?, &answer)
                        .ok()?;
                check_attributes(&built, job.as_deref()?).ok()?;
                Some(built)
            }
        };
        let validation = post(
            &self.client,
            &self.l2,
            auth,
            Bytes::from(validate),
            self.l2_limit(),
        );
        // Recomputed while op-geth validates; its request is queued first.
        let hashing = async {
            let Some(built) = checked else {
                return true;
            };
            tokio::task::yield_now().await;
            check_block_hash(built).is_ok()
        };
        let (status, hashed) = tokio::join!(validation, hashing);
        let valid = status
            .ok()?
            .windows(br#""status":"VALID""#.len())
            .any(|w| w == br#""status":"VALID""#);
        (valid && hashed).then_some(answer)
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// What op-node asked to be built, from its forkchoice update with attributes.
fn job_of(call: &Call<'_>) -> Option<PayloadJob> {
    let (state, attributes): (ForkchoiceState, OpPayloadAttributes) =
        serde_json::from_str(call.params.get()).ok()?;
    let fcu_version = call
        .method
        .strip_prefix("engine_forkchoiceUpdatedV")?
        .parse()
        .ok()?;
    Some(PayloadJob {
        fcu_version,
        parent: state.head_block_hash,
        timestamp: attributes.payload_attributes.timestamp,
        attributes: Some(attributes),
        builders: Vec::new(),
        trace: Default::default(),
    })
}
