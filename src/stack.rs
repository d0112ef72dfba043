//! The one place the layers are composed, outermost first.

use std::{convert::Infallible, sync::Arc};

use http::{Request, Response};
use hyper::body::Incoming;
use switchyard_layers::{
    BoostSyncLayer, BypassLayer, FcuMuxLayer, Forward, MeasureLayer, MinerMirrorLayer,
    PayloadSelectLayer, RequireJwtLayer, RpcMethodLayer, SignJwtLayer, TxMirrorLayer,
    body::RpcBody,
    builder::{Builder, BuilderClient, CircuitBreaker, LaneConfig, ModeSwitch},
    fcu_mux::PayloadJobs,
    flashblocks::{AcceptConfig, Flashblocks, PublishConfig, Publisher},
    rpc_method::Claims,
    tls::{TlsError, UpstreamConnector},
};
use tower::{Service, ServiceBuilder};

use crate::config::{Config, Upstream};

/// Room for the JSON-RPC frame around a maximal payload in a builder's answer.
const FRAME_SLACK: usize = 64 * 1024;

/// State the layers share with the rest of the daemon (health poller, admin endpoint).
#[derive(Clone, Debug)]
pub struct Parts {
    /// The client of op-geth (built once: its TLS configuration is read at start).
    pub l2: Forward<UpstreamConnector>,
    /// The builders, in configuration order.
    pub builders: Vec<Arc<Builder>>,
    /// The execution mode.
    pub mode: ModeSwitch,
    /// Payload jobs by op-geth's payload id.
    pub jobs: Arc<PayloadJobs>,
    /// Builders' flashblocks, when turned on.
    pub flashblocks: Option<Flashblocks>,
}

impl Parts {
    /// Creates the upstream clients and the builders (starting their lane workers: call inside a
    /// tokio runtime).
    ///
    /// # Errors
    ///
    /// If an upstream's TLS configuration cannot be built.
    pub fn new(config: &Config) -> Result<Self, TlsError> {
        let policy = &config.builder_policy;
        let lanes = LaneConfig {
            engine_capacity: policy.engine_queue,
            transaction_capacity: policy.transaction_queue,
            ..LaneConfig::default()
        };
        let builders: Vec<Arc<Builder>> = config
            .builders
            .iter()
            .map(|upstream| {
                let forward =
                    forward(upstream)?.with_response_limit(policy.max_payload_size + FRAME_SLACK);
                let client =
                    BuilderClient::new(upstream.name.clone(), forward, upstream.secret.clone());
                // Behind a call that takes the whole timeout, a forkchoice update is stale.
                let lanes = LaneConfig {
                    forkchoice_stale_after: upstream.timeout,
                    ..lanes
                };
                let breaker =
                    CircuitBreaker::new(policy.breaker_threshold, policy.breaker_cooldown);
                Ok(Builder::with_breaker(client, lanes, breaker))
            })
            .collect::<Result<_, TlsError>>()?;
        let mode = ModeSwitch::new(policy.mode);
        let jobs = PayloadJobs::new(64);
        let flashblocks = config.flashblocks.as_ref().map(|settings| {
            let publisher = Publisher::new(PublishConfig {
                queue: settings.subscriber_queue,
                max_subscribers: settings.max_subscribers,
            });
            Flashblocks::new(
                builders.clone(),
                jobs.clone(),
                mode.clone(),
                publisher,
                AcceptConfig {
                    max_block_bytes: policy.max_payload_size,
                    publish_builder: settings.publish_builder,
                    ..AcceptConfig::default()
                },
            )
        });
        Ok(Self {
            l2: forward(&config.l2)?,
            builders,
            mode,
            jobs,
            flashblocks,
        })
    }
}

/// The client of one upstream: plain or TLS, by its URL.
///
/// # Errors
///
/// If its TLS configuration cannot be built.
pub fn forward(upstream: &Upstream) -> Result<Forward<UpstreamConnector>, TlsError> {
    Ok(
        Forward::with_tls(upstream.name.clone(), upstream.url.clone(), &upstream.tls)?
            .with_timeout(upstream.timeout),
    )
}

/// A client of op-geth for side calls (the health poller), signed with its secret.
pub fn l2_client(config: &Config, parts: &Parts) -> BuilderClient {
    BuilderClient::new("l2", parts.l2.clone(), config.l2.secret.clone())
}

/// The service op-node talks to.
pub fn stack(
    config: &Config,
    parts: &Parts,
) -> impl Service<Request<Incoming>, Response = Response<RpcBody>, Error = Infallible, Future: Send>
+ Clone
+ Send
+ 'static {
    let policy = &config.builder_policy;
    let engine_claims: Claims = if parts.builders.is_empty() {
        |_| false
    } else {
        switchyard_layers::claims::handled_by_engine_layers
    };
    let mut select = PayloadSelectLayer::new(
        parts.builders.clone(),
        parts.jobs.clone(),
        parts.mode.clone(),
    )
    .with_deadline(policy.payload_deadline)
    .with_policy(policy.selection)
    .with_max_payload_size(policy.max_payload_size)
    .with_external_state_root(policy.external_state_root);
    if let Some(sink) = config.decision_sink.clone() {
        select = select.on_decision(move |decision| sink(decision));
    }
    if let Some(check) = config.payload_check.clone() {
        select = select.with_payload_check(move |builder, payload| check(builder, payload));
    }
    if let Some(flashblocks) = parts.flashblocks.clone() {
        select = select.with_flashblocks(flashblocks);
    }
    let l2 = ServiceBuilder::new()
        // op-geth checks its own secret: sign last, just before the wire.
        .layer(SignJwtLayer::new(config.l2.secret.clone()))
        // Every call to op-geth, ours included (validation, health), counted and timed.
        .layer(MeasureLayer::upstream(config.l2.name.clone()))
        .service(parts.l2.clone());
    ServiceBuilder::new()
        // First: an unauthenticated caller gets 401 before we read a byte of its body.
        .layer(RequireJwtLayer::new(config.rpc_secret.clone()))
        // Parse once, under the body cap; every layer below reads the RpcCall. Batches holding an
        // engine call are split so that each call meets the layer that handles it.
        .layer(
            RpcMethodLayer::new()
                .with_limit(config.limits.max_request_size)
                .with_body_timeout(config.limits.body_read_timeout)
                .claim_with(engine_claims),
        )
        // Counted and timed per method as op-node sees it, once parsed.
        .layer(MeasureLayer::inbound())
        // The Engine layers below pass every other call untouched (and, with no builder, every
        // call): those go to op-geth around them, without a pass-through per layer (eth_* is
        // most of op-node's traffic).
        .layer(BypassLayer::new(engine_claims, l2.clone()))
        // Chain updates enter each builder's lane as they arrive, ahead of the next block's
        // attributes, and never wait for an answer.
        .layer(
            BoostSyncLayer::new(parts.builders.clone(), parts.mode.clone())
                .skip_unsynced(policy.ignore_unhealthy),
        )
        // Forkchoice updates with attributes: op-geth answers op-node; builders get the same call.
        .layer(FcuMuxLayer::new(
            parts.builders.clone(),
            parts.jobs.clone(),
            parts.mode.clone(),
        ))
        // getPayload. Sits below the relays: its own validation calls must reach op-geth only.
        .layer(select)
        // Transactions go to op-geth, and a copy to each synced builder.
        .layer(TxMirrorLayer::new(parts.builders.clone()))
        // miner_* settings (the batcher's DA throttle) too, kept and replayed to a builder that
        // missed one.
        .layer(MinerMirrorLayer::new(parts.builders.clone()))
        .service(l2)
}
