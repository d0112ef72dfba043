//! Each layer against a bare `service_fn`; the whole stack forwarding over loopback against a raw
//! hyper forward; envelope parsing, and the builder-payload checks on a ~1 MiB, 5,000-transaction
//! payload. Every group ends with a table of ratios to its baseline, measured in the same run.
//!
//! `cargo bench --bench layers`

// criterion_group! generates an undocumented function; a bench reports on the terminal.
#![allow(missing_docs, clippy::print_stderr, clippy::unwrap_used)]

use std::{convert::Infallible, future::ready, hint::black_box, time::Duration};

use bytes::Bytes;
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use http::{Request, Response, header};
use serde_json::{Value, json};
use switchyard_layers::{
    BoostSyncLayer, FcuMuxLayer, HealthLayer, MeasureLayer, MinerMirrorLayer, PayloadSelectLayer,
    RequireJwtLayer, RpcMethodLayer, SignJwtLayer, TxMirrorLayer,
    body::RpcBody,
    builder::ModeSwitch,
    engine::Envelope,
    fcu_mux::{PayloadJob, PayloadJobs},
    health::{Health, HealthReport},
    jsonrpc,
    payload_select::{check_attributes, check_block_hash, check_payload},
};
use switchyard_sim::{ChainSpec, EngineSim, Fork, Forks, Sequencer, SequencerConfig, SimConfig};
use tower::{Layer, Service, ServiceExt, service_fn};

const CALL: &[u8] = br#"{"jsonrpc":"2.0","id":1,"method":"eth_chainId","params":[]}"#;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// `CALL` as op-node sends it, with `token` as its `Authorization` if given.
fn call_request(token: Option<&str>) -> Request<RpcBody> {
    let mut req = Request::post("/")
        .body(RpcBody::new(Bytes::from_static(CALL)))
        .unwrap();
    req.headers_mut()
        .insert(header::CONTENT_TYPE, "application/json".parse().unwrap());
    if let Some(token) = token {
        req.headers_mut()
            .insert(header::AUTHORIZATION, token.parse().unwrap());
    }
    req
}

/// The daemon's stack, outermost first (as `src/stack.rs` composes it, without builders), around
/// `inner`.
fn whole_stack<S>(
    secret: &switchyard_layers::JwtSecret,
    inner: S,
) -> impl Service<Request<RpcBody>, Response = Response<RpcBody>, Error = Infallible, Future: Send> + Clone
where
    S: Service<Request<RpcBody>, Response = Response<RpcBody>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let mode = ModeSwitch::default();
    let jobs = PayloadJobs::new(64);
    tower::ServiceBuilder::new()
        .layer(HealthLayer::new(|| {
            HealthReport::new(Health::Healthy, true)
        }))
        .layer(RequireJwtLayer::new(secret.clone()))
        .layer(RpcMethodLayer::new())
        .layer(MeasureLayer::inbound())
        .layer(BoostSyncLayer::new(Vec::new(), mode.clone()))
        .layer(FcuMuxLayer::new(Vec::new(), jobs.clone(), mode.clone()))
        .layer(PayloadSelectLayer::new(Vec::new(), jobs, mode))
        .layer(TxMirrorLayer::new(Vec::new()))
        .layer(MinerMirrorLayer::new(Vec::new()))
        .layer(SignJwtLayer::new(secret.clone()))
        .layer(MeasureLayer::upstream("l2"))
        .service(inner)
}

/// The layers `src/lib.rs` puts around the daemon's stack, from tower-http.
fn tower_http_guards() -> tower::ServiceBuilder<
    tower::layer::util::Stack<
        tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer,
        tower::layer::util::Stack<
            switchyard_layers::panic::CatchPanicLayer<switchyard_layers::panic::JsonRpcPanic>,
            tower::layer::util::Identity,
        >,
    >,
> {
    tower::ServiceBuilder::new()
        .layer(switchyard_layers::panic::catch_panic_layer())
        .layer(
            tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer::new([
                http::header::AUTHORIZATION,
            ]),
        )
}

/// The innermost service of every stack here: answers at once, without looking.
fn bare()
-> impl Service<Request<RpcBody>, Response = Response<RpcBody>, Error = Infallible, Future: Send>
+ Clone
+ Send {
    service_fn(|_req: Request<RpcBody>| {
        ready(Ok(Response::new(RpcBody::new(Bytes::from_static(b"{}")))))
    })
}

/// The median time, in nanoseconds, criterion recorded for `group/name`.
fn median_ns(group: &str, name: &str) -> Option<f64> {
    let dir = std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into());
    let path = format!("{dir}/criterion/{group}/{name}/new/estimates.json");
    let estimates: Value = serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()?;
    estimates["median"]["point_estimate"].as_f64()
}

fn report(group: &str, baseline: &str, names: &[&str]) {
    let Some(base) = median_ns(group, baseline) else {
        return;
    };
    eprintln!("\n{group}: medians, and ratio to {baseline} ({base:.0} ns)");
    for name in names {
        if let Some(t) = median_ns(group, name) {
            eprintln!(
                "  {name:<28} {t:>10.0} ns   {:>6.2}x   (+{:.0} ns)",
                t / base,
                t - base
            );
        }
    }
}

fn layers(c: &mut Criterion) {
    let rt = runtime();
    let secret = switchyard_layers::JwtSecret::from_bytes([7; 32]);
    let token = format!("Bearer {}", secret.token_now().unwrap());
    let request = |with_token: bool| call_request(with_token.then_some(token.as_str()));
    // A parsed request, as every layer below RpcMethod sees it.
    let parsed = || {
        let mut req = request(false);
        let Ok(jsonrpc::Parsed::Single(Ok(call))) = jsonrpc::parse(&Bytes::from_static(CALL))
        else {
            unreachable!()
        };
        req.extensions_mut().insert(call);
        req
    };
    let mode = ModeSwitch::default();
    let jobs = PayloadJobs::new(64);

    let mut group = c.benchmark_group("layers");
    group
        .measurement_time(Duration::from_secs(2))
        .warm_up_time(Duration::from_millis(500));
    group.bench_function("baseline", |b| {
        b.to_async(&rt).iter(|| bare().oneshot(request(true)))
    });
    group.bench_function("require_jwt", |b| {
        let svc = RequireJwtLayer::new(secret.clone()).layer(bare());
        b.to_async(&rt).iter(|| svc.clone().oneshot(request(true)))
    });
    group.bench_function("sign_jwt", |b| {
        let svc = SignJwtLayer::new(secret.clone()).layer(bare());
        b.to_async(&rt).iter(|| svc.clone().oneshot(request(false)))
    });
    group.bench_function("rpc_method", |b| {
        let svc = RpcMethodLayer::new().layer(bare());
        b.to_async(&rt).iter(|| svc.clone().oneshot(request(false)))
    });
    group.bench_function("measure", |b| {
        let svc = MeasureLayer::inbound().layer(bare());
        b.to_async(&rt).iter(|| svc.clone().oneshot(parsed()))
    });
    group.bench_function("boost_sync", |b| {
        let svc = BoostSyncLayer::new(Vec::new(), mode.clone()).layer(bare());
        b.to_async(&rt).iter(|| svc.clone().oneshot(parsed()))
    });
    group.bench_function("fcu_mux", |b| {
        let svc = FcuMuxLayer::new(Vec::new(), jobs.clone(), mode.clone()).layer(bare());
        b.to_async(&rt).iter(|| svc.clone().oneshot(parsed()))
    });
    group.bench_function("payload_select", |b| {
        let svc = PayloadSelectLayer::new(Vec::new(), jobs.clone(), mode.clone()).layer(bare());
        b.to_async(&rt).iter(|| svc.clone().oneshot(parsed()))
    });
    group.bench_function("tx_mirror", |b| {
        let svc = TxMirrorLayer::new(Vec::new()).layer(bare());
        b.to_async(&rt).iter(|| svc.clone().oneshot(parsed()))
    });
    group.bench_function("miner_mirror", |b| {
        let svc = MinerMirrorLayer::new(Vec::new()).layer(bare());
        b.to_async(&rt).iter(|| svc.clone().oneshot(parsed()))
    });
    group.bench_function("health_routes", |b| {
        let svc = HealthLayer::new(|| HealthReport::new(Health::Healthy, true)).layer(bare());
        b.to_async(&rt).iter(|| svc.clone().oneshot(request(false)))
    });
    group.bench_function("whole_stack", |b| {
        let svc = whole_stack(&secret, bare());
        b.to_async(&rt).iter(|| svc.clone().oneshot(request(true)))
    });
    // tower-http's two layers the daemon puts outermost: the cost of catching panics (a boxed
    // response body) and of marking Authorization sensitive.
    group.bench_function("tower_http_guards", |b| {
        let svc = tower_http_guards().service(bare());
        b.to_async(&rt).iter(|| svc.clone().oneshot(request(true)))
    });
    group.bench_function("whole_stack_guarded", |b| {
        let svc = tower_http_guards().service(whole_stack(&secret, bare()));
        b.to_async(&rt).iter(|| svc.clone().oneshot(request(true)))
    });
    group.finish();
    report(
        "layers",
        "baseline",
        &[
            "require_jwt",
            "sign_jwt",
            "rpc_method",
            "measure",
            "boost_sync",
            "fcu_mux",
            "payload_select",
            "tx_mirror",
            "miner_mirror",
            "health_routes",
            "whole_stack",
            "tower_http_guards",
            "whole_stack_guarded",
        ],
    );
    report("layers", "whole_stack", &["whole_stack_guarded"]);
}

/// A ~1 MiB, 5,000-transaction getPayloadV4 result, the job that asked for it, and a newPayload body.
fn big_payload(rt: &tokio::runtime::Runtime) -> (Bytes, PayloadJob, Bytes) {
    let spec = ChainSpec {
        forks: Forks::through(Fork::Isthmus),
        gas_limit: 200_000_000,
        ..Default::default()
    };
    let mut config = SimConfig::op_geth(spec.clone());
    config.filler = Some((5_000, 100));
    rt.block_on(async {
        let sim = EngineSim::spawn(config).await.unwrap();
        let seq = Sequencer::connect(&sim.url(), sim.secret(), SequencerConfig::new(spec.clone()))
            .await
            .unwrap();
        let attributes = seq.next_attributes();
        let parent = seq.head();
        let state =
            json!({"headBlockHash": parent, "safeBlockHash": parent, "finalizedBlockHash": parent});
        let updated: Value = serde_json::from_slice(
            &sim.call(
                "engine_forkchoiceUpdatedV3",
                &serde_json::to_vec(&json!([state, attributes])).unwrap(),
            )
            .unwrap(),
        )
        .unwrap();
        let envelope = sim
            .call(
                "engine_getPayloadV4",
                &serde_json::to_vec(&json!([updated["payloadId"]])).unwrap(),
            )
            .unwrap();
        let parsed: Value = serde_json::from_slice(&envelope).unwrap();
        let new_payload = serde_json::to_vec(&json!({
            "jsonrpc": "2.0", "id": 1, "method": "engine_newPayloadV4",
            "params": [parsed["executionPayload"], [], parsed["parentBeaconBlockRoot"], []],
        }))
        .unwrap();
        let job = PayloadJob {
            fcu_version: 3,
            parent,
            timestamp: attributes.payload_attributes.timestamp,
            attributes: Some(attributes),
            builders: Vec::new(),
            trace: Default::default(),
        };
        (Bytes::from(envelope), job, Bytes::from(new_payload))
    })
}

fn payloads(c: &mut Criterion) {
    let rt = runtime();
    let (envelope, job, new_payload) = big_payload(&rt);
    let parsed = Envelope::parse(4, &envelope).unwrap();
    assert!(parsed.payload().transactions.len() >= 5_000);
    eprintln!(
        "payload: {} transactions, {} KiB of transactions, {} KiB of JSON",
        parsed.payload().transactions.len(),
        parsed.transactions_size() / 1024,
        envelope.len() / 1024
    );
    check_payload(&parsed, &job).unwrap();
    let answer = Bytes::from(jsonrpc::result_response(b"1", &envelope).to_vec());

    let mut group = c.benchmark_group("payload_1mib");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(3));
    group.bench_function("parse_envelope_small", |b| {
        b.iter(|| jsonrpc::parse(black_box(&Bytes::from_static(CALL))))
    });
    group.bench_function("parse_envelope_1mib", |b| {
        b.iter(|| jsonrpc::parse(black_box(&new_payload)))
    });
    // What FcuMux decodes of each forkchoice update it fans out to a builder.
    let attributes = serde_json::to_string(&job.attributes.as_ref().unwrap()).unwrap();
    group.bench_function("decode_fcu_attributes", |b| {
        b.iter(|| {
            serde_json::from_str::<op_alloy_rpc_types_engine::OpPayloadAttributes>(black_box(
                &attributes,
            ))
            .unwrap()
        })
    });
    group.bench_function("decode_payload", |b| {
        b.iter(|| Envelope::parse(4, black_box(&envelope)).unwrap())
    });
    // As switchyard hashes: the decoded payload consumed (the copies are made outside the timing).
    group.bench_function("block_hash", |b| {
        b.iter_batched(
            || parsed.clone(),
            |e| e.into_block_hash().unwrap(),
            BatchSize::LargeInput,
        )
    });
    // The least the block-hash check can cost: keccak over every transaction's bytes once (the
    // transactions trie hashes each inside its leaf, then the branches above them).
    group.bench_function("keccak_transactions", |b| {
        b.iter(|| {
            for tx in &parsed.payload().transactions {
                black_box(alloy_primitives::keccak256(tx));
            }
        })
    });
    group.bench_function("check_attributes_and_hash", |b| {
        b.iter_batched(
            || parsed.clone(),
            |e| {
                check_attributes(black_box(&e), &job).unwrap();
                check_block_hash(e).unwrap()
            },
            BatchSize::LargeInput,
        )
    });
    group.bench_function("decode_answer", |b| {
        b.iter(|| Envelope::parse_answer(4, black_box(&answer)).unwrap())
    });
    group.bench_function("write_once", |b| b.iter(|| black_box(parsed.write())));
    group.bench_function("write_serde", |b| {
        b.iter(|| match &parsed {
            Envelope::V4(e) => black_box(serde_json::to_vec(e).unwrap()),
            _ => unreachable!(),
        })
    });

    group.finish();
    report(
        "payload_1mib",
        "parse_envelope_1mib",
        &[
            "parse_envelope_small",
            "decode_fcu_attributes",
            "decode_payload",
            "decode_answer",
            "keccak_transactions",
            "block_hash",
            "check_attributes_and_hash",
            "write_once",
            "write_serde",
        ],
    );
}

/// What the in-process upstream answers to every call.
const ANSWER: &[u8] = br#"{"jsonrpc":"2.0","id":1,"result":"0x1"}"#;

/// Forwarding one call to an upstream on loopback (a hyper server on the same runtime that
/// answers at once): hyper-util's pooled client as a bare forwarder uses it, switchyard's
/// `Forward`, and the whole stack in front of `Forward`.
fn forwarding(c: &mut Criterion) {
    use http_body_util::{BodyExt, Full};
    use hyper_util::{
        client::legacy::{Client, connect::HttpConnector},
        rt::{TokioExecutor, TokioIo},
    };
    use switchyard_layers::Forward;

    let rt = runtime();
    let uri: http::Uri = rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                stream.set_nodelay(true).unwrap();
                tokio::spawn(async move {
                    let answer = hyper::service::service_fn(|_req| {
                        ready(Ok::<_, Infallible>(Response::new(Full::new(
                            Bytes::from_static(ANSWER),
                        ))))
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), answer)
                        .await;
                });
            }
        });
        format!("http://{addr}/").parse().unwrap()
    });
    let secret = switchyard_layers::JwtSecret::from_bytes([7; 32]);
    let token = format!("Bearer {}", secret.token_now().unwrap());
    let request = |with_token: bool| call_request(with_token.then_some(token.as_str()));

    let mut group = c.benchmark_group("forwarding");
    group
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_millis(500));
    group.bench_function("raw_hyper", |b| {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client: Client<HttpConnector, Full<Bytes>> =
            Client::builder(TokioExecutor::new()).build(connector);
        b.to_async(&rt).iter(|| {
            let (client, uri) = (client.clone(), uri.clone());
            async move {
                let req = Request::post(uri)
                    .header(header::CONTENT_TYPE, "application/json")
                    .body(Full::new(Bytes::from_static(CALL)))
                    .unwrap();
                let response = client.request(req).await.unwrap();
                response.into_body().collect().await.unwrap().to_bytes()
            }
        })
    });
    group.bench_function("forward", |b| {
        let svc = Forward::new("l2", uri.clone());
        b.to_async(&rt).iter(|| {
            let svc = svc.clone();
            async {
                let response = svc.oneshot(request(false)).await.unwrap();
                response.into_body().collect().await.unwrap().to_bytes()
            }
        })
    });
    group.bench_function("whole_stack", |b| {
        let svc = whole_stack(&secret, Forward::new("l2", uri.clone()));
        b.to_async(&rt).iter(|| {
            let svc = svc.clone();
            async {
                let response = svc.oneshot(request(true)).await.unwrap();
                response.into_body().collect().await.unwrap().to_bytes()
            }
        })
    });
    group.finish();
    report("forwarding", "raw_hyper", &["forward", "whole_stack"]);
}

criterion_group!(benches, layers, forwarding, payloads);
criterion_main!(benches);
