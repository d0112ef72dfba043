//! A simulated OP Stack chain over real HTTP and real JWTs: op-geth, block builders and op-node.
//!
//! switchyard sits between op-node and op-geth and talks to block builders; none of those run in
//! CI. This crate stands in for all three wherever switchyard depends on their behaviour, and
//! shares no code with switchyard (not even its JWT check), so that a bug in switchyard cannot
//! hide behind a simulator that agrees with it.
//!
//! - [`EngineSim`] is a simulated execution client (op-geth, or a builder with [`Profile::Builder`])
//!   served over HTTP/1.1 on `127.0.0.1:0`, with a [`RequestLog`] and run-time [`Faults`].
//! - [`Sequencer`] is the op-node stand-in: it drives blocks through an Engine API URL.
//! - The `engine-sim` binary serves one simulator on a given port, for benchmarks and manual runs.
//!
//! # Faithful
//!
//! - **Wire:** JSON-RPC 2.0 over HTTP/1.1, batches, geth's framing (a newline after each answer);
//!   unknown method `-32601`, malformed JSON `-32700`, invalid request `-32600`.
//! - **JWT:** HS256 only, `iat` within ±60 s, `exp` honoured if present; failures are HTTP 401 with
//!   geth's plain-text reason, and nothing is processed.
//! - **Engine API:** method versions per fork (FCU V1/V2/V3, getPayload V2–V5, newPayload V2–V4)
//!   with `-38005` for the wrong one; FCU to an unknown head `SYNCING`; unknown safe/finalized
//!   `-38002`; bad attributes `-38003` with op-geth's messages (missing gasLimit, timestamp not after
//!   the parent, eip1559Params and minBaseFee before/after Holocene and Jovian); unknown payload id
//!   `-38001`; op-geth's payload-id derivation (sha256 over parent and attributes, first byte the
//!   FCU version) and its refusal of foreign ids on getPayloadV3+; op-reth's `0x04` ids as an option.
//! - **Blocks:** real headers per fork and real block hashes; the attributes' transactions first,
//!   then the mempool (unless `noTxPool`) up to the gas limit; the right getPayload envelope per
//!   version. newPayload recomputes the hash, the transactions root, gas used, base fee and state
//!   root, and answers `VALID`, `INVALID` with a `validationError`, or `SYNCING` for an unknown
//!   parent. A block becomes canonical only through a forkchoice update.
//!
//! # Stand-ins
//!
//! - **Execution and state:** nothing is executed. Gas used, state root, receipts root and block
//!   value are deterministic functions of the parent and the transactions, documented in
//!   [`chain`]. Two simulators with the same genesis therefore agree on every block, and a wrong
//!   state root is caught the way op-geth catches it: by recomputing.
//! - **Transactions:** real EIP-2718 encodings ([`tx`]); user transactions carry a fixed stand-in
//!   signature, since no sender is ever recovered.
//! - **p2p:** simulators sharing a [`Network`] learn each other's validated blocks; one that fell
//!   behind answers `SYNCING` and catches up from the network for its next call.
//! - **Sync status:** `eth_syncing` is always `false`.
//! - **Flashblocks** ([`flashblocks`]): a builder streams each block it builds as flashblocks over
//!   WebSocket (text or brotli frames, the `OpFlashblockPayload` JSON of op-rbuilder), every
//!   prefix sealed with real roots and hash, the last one the block its getPayload returns;
//!   [`FlashFault`] spoils one block's stream. Timing is a fixed interval from the forkchoice
//!   update, not a build loop.

#![forbid(unsafe_code)]

pub mod chain;
pub mod conductor;
pub mod driver;
pub mod engine;
pub mod faults;
pub mod flashblocks;
pub mod log;
pub mod spec;
pub mod tx;

mod auth;
mod server;
#[cfg(test)]
mod tests;

use std::{net::SocketAddr, sync::Arc};

use alloy_primitives::B256;
use tokio::{sync::watch, task::JoinHandle};

pub use auth::{now as unix_now, random_secret, secret_hex, token, token_hs384};
pub use chain::Block;
pub use conductor::{Conductor, SidecarHealth, Transfer};
pub use driver::{BlockReport, BuilderPath, DriverError, EngineClient, Sequencer, SequencerConfig};
pub use engine::{Network, PayloadIdScheme, Profile};
pub use faults::{Fault, FaultRule, Faults, Scope, Tamper};
pub use flashblocks::{FlashFault, FlashblocksConfig};
pub use log::{LogEntry, RequestLog};
pub use spec::{ChainSpec, Fork, Forks};

/// How to start a simulator.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Name used in logs and `web3_clientVersion`.
    pub name: String,
    /// Genesis and forks.
    pub spec: ChainSpec,
    /// Block-building behaviour.
    pub profile: Profile,
    /// Payload-id derivation.
    pub payload_ids: PayloadIdScheme,
    /// JWT secret; random when `None`.
    pub secret: Option<[u8; 32]>,
    /// Address to listen on; `127.0.0.1:0` when `None`.
    pub addr: Option<SocketAddr>,
    /// A p2p stand-in shared with other simulators.
    pub network: Option<Arc<Network>>,
    /// How many calls the request log keeps.
    pub log_capacity: usize,
    /// How many recent blocks keep their bodies.
    pub retain_blocks: usize,
    /// How many built payloads stay retrievable by id, the oldest forgotten first (op-geth keeps
    /// 10; more for many concurrent sequencers on one simulator, as in the load benchmark).
    pub payloads_kept: usize,
    /// Serve HTTPS with this certificate instead of plain HTTP.
    pub tls: Option<SimTls>,
    /// Add this many generated transactions of this many calldata bytes to every block built
    /// (as if the mempool never ran dry): blocks of a steady size for benchmarks.
    pub filler: Option<(usize, usize)>,
    /// Stream every block built as flashblocks over WebSocket (a builder's), on a port of its own.
    pub flashblocks: Option<FlashblocksConfig>,
    /// Build blocks with a zero state root (their hash over the zero), as a builder that leaves
    /// the root to op-geth does.
    pub zero_state_root: bool,
}

/// The simulator's TLS identity, in PEM.
#[derive(Clone, Debug)]
pub struct SimTls {
    /// Certificate chain, leaf first.
    pub cert_chain_pem: String,
    /// The leaf's private key.
    pub key_pem: String,
    /// Require client certificates issued by this CA (mutual TLS).
    pub client_ca_pem: Option<String>,
}

impl SimTls {
    fn acceptor(&self) -> std::io::Result<tokio_rustls::TlsAcceptor> {
        use rustls_pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
        let invalid = |e: &dyn std::fmt::Display| {
            std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string())
        };
        let chain = CertificateDer::pem_slice_iter(self.cert_chain_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| invalid(&e))?;
        let key =
            PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes()).map_err(|e| invalid(&e))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| invalid(&e))?;
        let builder = match &self.client_ca_pem {
            None => builder.with_no_client_auth(),
            Some(ca) => {
                let mut roots = rustls::RootCertStore::empty();
                for cert in CertificateDer::pem_slice_iter(ca.as_bytes()) {
                    roots
                        .add(cert.map_err(|e| invalid(&e))?)
                        .map_err(|e| invalid(&e))?;
                }
                let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots),
                    provider,
                )
                .build()
                .map_err(|e| invalid(&e))?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let mut config = builder
            .with_single_cert(chain, key)
            .map_err(|e| invalid(&e))?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
    }
}

impl SimConfig {
    /// An op-geth stand-in for `spec`.
    pub fn op_geth(spec: ChainSpec) -> Self {
        Self {
            name: "op-geth".into(),
            spec,
            profile: Profile::OpGeth,
            payload_ids: PayloadIdScheme::OpGeth,
            secret: None,
            addr: None,
            network: None,
            log_capacity: 100_000,
            retain_blocks: 4_096,
            payloads_kept: 16,
            tls: None,
            filler: None,
            flashblocks: None,
            zero_state_root: false,
        }
    }

    /// A builder stand-in for `spec`: two transactions of its own per block, op-reth payload ids.
    pub fn builder(spec: ChainSpec) -> Self {
        Self {
            name: "builder".into(),
            profile: Profile::Builder { extra_txs: 2 },
            payload_ids: PayloadIdScheme::OpReth,
            ..Self::op_geth(spec)
        }
    }

    /// Streams flashblocks (see [`flashblocks`]).
    pub fn with_flashblocks(mut self, config: FlashblocksConfig) -> Self {
        self.flashblocks = Some(config);
        self
    }

    /// Sets the name.
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Sets the JWT secret.
    pub fn with_secret(mut self, secret: [u8; 32]) -> Self {
        self.secret = Some(secret);
        self
    }

    /// Joins a p2p stand-in.
    pub fn with_network(mut self, network: Arc<Network>) -> Self {
        self.network = Some(network);
        self
    }

    /// Listens on `addr`.
    pub fn with_addr(mut self, addr: SocketAddr) -> Self {
        self.addr = Some(addr);
        self
    }
}

/// A running simulator. Dropping it stops the server.
#[derive(Debug)]
pub struct EngineSim {
    addr: SocketAddr,
    flashblocks_addr: Option<SocketAddr>,
    shared: Arc<server::Shared>,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl EngineSim {
    /// Starts a simulator.
    ///
    /// # Errors
    ///
    /// If the address cannot be bound.
    pub async fn spawn(config: SimConfig) -> std::io::Result<Self> {
        let faults = Arc::new(Faults::default());
        let mut engine = engine::Engine::new(
            config.name,
            config.spec,
            config.profile,
            config.payload_ids,
            config.network,
            config.retain_blocks,
            faults,
        )
        .with_filler(config.filler)
        .with_payloads_kept(config.payloads_kept);
        engine.flashblocks = config.flashblocks.map(flashblocks::FlashSource::new);
        engine.zero_state_root = config.zero_state_root;
        let tls = config.tls.as_ref().map(SimTls::acceptor).transpose()?;
        let shared = Arc::new(server::Shared {
            engine,
            log: RequestLog::new(config.log_capacity),
            secret: config.secret.unwrap_or_else(random_secret),
            tls,
        });
        Self::serve(
            shared,
            config
                .addr
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0))),
        )
        .await
    }

    async fn serve(shared: Arc<server::Shared>, addr: SocketAddr) -> std::io::Result<Self> {
        Self::serve_with(shared, addr, None).await
    }

    async fn serve_with(
        shared: Arc<server::Shared>,
        addr: SocketAddr,
        flashblocks_addr: Option<SocketAddr>,
    ) -> std::io::Result<Self> {
        let listener = server::bind(addr).await?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = watch::channel(false);
        let flashblocks_addr = match &shared.engine.flashblocks {
            Some(source) => {
                let at = flashblocks_addr.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)));
                let listener = flashblocks::bind(at).await?;
                let at = listener.local_addr()?;
                tokio::spawn(flashblocks::serve(
                    listener,
                    source.clone(),
                    shared.tls.clone(),
                    stopped.clone(),
                ));
                Some(at)
            }
            None => None,
        };
        let task = tokio::spawn(server::serve(listener, shared.clone(), stopped));
        Ok(Self {
            addr,
            flashblocks_addr,
            shared,
            stop,
            task: Some(task),
        })
    }

    /// Stops serving and closes every connection; the chain is kept for [`EngineSim::restart`].
    pub async fn stop(&mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }

    /// Serves again on the same address with the same chain, like an op-geth restart.
    ///
    /// # Errors
    ///
    /// If the address cannot be bound again.
    pub async fn restart(&mut self) -> std::io::Result<()> {
        self.stop().await;
        let again = Self::serve_with(self.shared.clone(), self.addr, self.flashblocks_addr).await?;
        let old = std::mem::replace(self, again);
        drop(old);
        Ok(())
    }

    /// The flashblocks stream's `ws://` URL, if it streams flashblocks.
    pub fn flashblocks_url(&self) -> Option<String> {
        let tls = self.shared.tls.is_some();
        self.flashblocks_addr
            .map(|addr| flashblocks::url(addr, tls))
    }

    /// Spoils the stream of the next block built (see [`FlashFault`]).
    pub fn flashblocks_fault(&self, fault: FlashFault) {
        if let Some(source) = &self.shared.engine.flashblocks {
            source.set_fault(fault);
        }
    }

    /// Flashblocks sent so far (every subscriber got each one sent while it was connected).
    pub fn flashblocks_sent(&self) -> Option<watch::Receiver<u64>> {
        self.shared.engine.flashblocks.as_ref().map(|s| s.sent())
    }

    /// Connections accepted by the flashblocks stream so far.
    pub fn flashblocks_connections(&self) -> Option<watch::Receiver<usize>> {
        self.shared
            .engine
            .flashblocks
            .as_ref()
            .map(|s| s.connected())
    }

    /// Keeps every connection to the flashblocks stream open but silent (no frame, no pong)
    /// while `muted`.
    pub fn flashblocks_mute(&self, muted: bool) {
        if let Some(source) = &self.shared.engine.flashblocks {
            source.mute(muted);
        }
    }

    /// Closes every connection to the flashblocks stream (it stays open to new ones).
    pub fn flashblocks_disconnect(&self) {
        if let Some(source) = &self.shared.engine.flashblocks {
            source.disconnect_all();
        }
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:<port>` (`https://` when serving TLS).
    pub fn url(&self) -> String {
        let scheme = if self.shared.tls.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{}", self.addr)
    }

    /// The name given in its configuration.
    pub fn log_name(&self) -> String {
        self.shared.engine.name.clone()
    }

    /// The JWT secret.
    pub fn secret(&self) -> [u8; 32] {
        self.shared.secret
    }

    /// The JWT secret as hex, as a secret file holds it.
    pub fn secret_hex(&self) -> String {
        secret_hex(&self.shared.secret)
    }

    /// The calls served so far.
    pub fn log(&self) -> &RequestLog {
        &self.shared.log
    }

    /// The fault controls.
    pub fn faults(&self) -> &Faults {
        &self.shared.engine.faults
    }

    /// The chain spec.
    pub fn spec(&self) -> &ChainSpec {
        &self.shared.engine.spec
    }

    /// The canonical head.
    pub fn head(&self) -> Arc<Block> {
        self.shared.engine.head()
    }

    /// A stored block by hash.
    pub fn block(&self, hash: &B256) -> Option<Arc<Block>> {
        self.shared.engine.block(hash)
    }

    /// Transactions waiting in the mempool.
    pub fn mempool_len(&self) -> usize {
        self.shared.engine.mempool_len()
    }

    /// Answers one call in-process, skipping HTTP and JWT: the raw JSON result, or the
    /// JSON-RPC error `(code, message)`. For measuring the simulator's own work.
    ///
    /// # Errors
    ///
    /// The call's JSON-RPC error.
    pub fn call(&self, method: &str, params: &[u8]) -> Result<Vec<u8>, (i32, String)> {
        self.shared
            .engine
            .handle(method, params)
            .map_err(|e| (e.code, e.message))
    }

    /// Forgets a stored block, so that the next newPayload of it is validated again.
    pub fn forget_block(&self, hash: &B256) {
        self.shared.engine.forget(hash);
    }
}

impl Drop for EngineSim {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}
