//! A builder's flashblocks stream: a WebSocket client that stays connected.
//!
//! Liveness is a ping every `ping_interval`; a stream silent (no pong, no frame) for
//! `pong_timeout` is dropped and dialled again. Reconnects back off exponentially from
//! `initial_backoff` to `max_backoff`, with jitter (so that the builders of a cluster do not dial
//! in step), and never give up. Frames over `max_frame` bytes (compressed or expanded) end the
//! connection, counted; frames that are not flashblocks are dropped, counted. Parsed flashblocks
//! go to a bounded queue: when it is full (a flood), they are dropped and counted, and the
//! connection is never held up.

use std::{sync::Arc, time::Duration};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::{
    io::{AsyncRead, AsyncWrite},
    net::TcpStream,
    sync::mpsc,
    time::Instant,
};
use tokio_tungstenite::tungstenite::{Message, protocol::WebSocketConfig};

use super::{Flashblock, metrics};

/// How to reach and watch one builder's stream.
#[derive(Clone, Debug)]
pub struct InboundConfig {
    /// `ws://` or `wss://`.
    pub url: http::Uri,
    /// First wait before dialling again.
    pub initial_backoff: Duration,
    /// Longest wait before dialling again.
    pub max_backoff: Duration,
    /// Dial and handshake timeout.
    pub connect_timeout: Duration,
    /// Ping interval.
    pub ping_interval: Duration,
    /// Silence after which the connection is dropped.
    pub pong_timeout: Duration,
    /// Largest frame, in bytes of JSON.
    pub max_frame: usize,
    /// TLS for `wss://`.
    #[cfg(feature = "tls")]
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

impl InboundConfig {
    /// The peer's defaults for `url`: 10 ms to 5 s backoff, 5 s connect timeout, a ping every
    /// 500 ms, 1.5 s of silence tolerated, frames up to 16 MiB.
    pub fn new(url: http::Uri) -> Self {
        Self {
            url,
            initial_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(5_000),
            connect_timeout: Duration::from_millis(5_000),
            ping_interval: Duration::from_millis(500),
            pong_timeout: Duration::from_millis(1_500),
            max_frame: 16 * 1024 * 1024,
            #[cfg(feature = "tls")]
            tls: None,
        }
    }
}

/// Why a connection ended or could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InboundError {
    /// The URL is not `ws://` or `wss://` with a host.
    #[error("not a ws:// or wss:// URL: {0}")]
    Url(String),
    /// `wss://` without TLS support or configuration.
    #[error("wss:// needs TLS (the `tls` feature and a client configuration)")]
    NoTls,
    /// Dialling, TLS or the handshake failed or timed out.
    #[error("connect: {0}")]
    Connect(String),
    /// The stream was silent for too long.
    #[error("no pong or frame for {0:?}")]
    Silent(Duration),
    /// The builder closed the stream.
    #[error("closed by the builder")]
    Closed,
    /// A WebSocket error (an oversized frame among them).
    #[error("websocket: {0}")]
    WebSocket(#[from] tokio_tungstenite::tungstenite::Error),
}

impl InboundError {
    fn label(&self) -> &'static str {
        use tokio_tungstenite::tungstenite::Error as WsError;
        match self {
            Self::Url(_) | Self::NoTls => "config",
            Self::Connect(_) => "connect",
            Self::Silent(_) => "silent",
            Self::Closed => "closed",
            Self::WebSocket(WsError::Capacity(_)) => "too_large",
            Self::WebSocket(_) => "websocket",
        }
    }
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// Keeps `builder`'s stream connected, forever, sending its flashblocks to `out`; `up` tells
/// whether it is connected now.
pub(crate) async fn run(
    config: InboundConfig,
    builder: Arc<str>,
    out: mpsc::Sender<Flashblock>,
    budget: Arc<super::ByteBudget>,
    up: Arc<std::sync::atomic::AtomicBool>,
) {
    let mut backoff = config.initial_backoff;
    let mut connections = 0u64;
    let mut logged = false;
    loop {
        match connect(&config).await {
            Ok(ws) => {
                connections += 1;
                if connections > 1 {
                    metrics::reconnect(&builder);
                }
                tracing::info!(target: "switchyard::flashblocks", builder = %builder, url = %config.url, "flashblocks stream connected");
                logged = false;
                backoff = config.initial_backoff;
                up.store(true, std::sync::atomic::Ordering::Relaxed);
                metrics::stream_up(&builder, true);
                let ended = read(ws, &config, &builder, &out, &budget).await;
                up.store(false, std::sync::atomic::Ordering::Relaxed);
                metrics::stream_up(&builder, false);
                metrics::dropped(&builder, ended.label());
                tracing::warn!(target: "switchyard::flashblocks", builder = %builder, reason = %ended, "flashblocks stream lost; dialling again");
            }
            Err(error) => {
                if !logged {
                    tracing::warn!(target: "switchyard::flashblocks", builder = %builder, %error, "flashblocks stream unreachable; retrying");
                    logged = true;
                }
                if matches!(error, InboundError::Url(_) | InboundError::NoTls) {
                    // A configuration error does not heal by retrying fast.
                    backoff = config.max_backoff;
                }
            }
        }
        if out.is_closed() {
            return;
        }
        // Full jitter over the upper half: never in step, never much sooner than asked.
        let jitter = backoff.mul_f64(fastrand::f64() / 2.0);
        tokio::time::sleep(backoff / 2 + jitter).await;
        backoff = (backoff * 2).min(config.max_backoff);
    }
}

type Ws = tokio_tungstenite::WebSocketStream<Box<dyn Io>>;

async fn connect(config: &InboundConfig) -> Result<Ws, InboundError> {
    let url = &config.url;
    let secure = match url.scheme_str() {
        Some("ws") => false,
        Some("wss") => true,
        _ => return Err(InboundError::Url(url.to_string())),
    };
    let host = url
        .host()
        .ok_or_else(|| InboundError::Url(url.to_string()))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = url.port_u16().unwrap_or(if secure { 443 } else { 80 });
    let ws_config = WebSocketConfig::default()
        .max_message_size(Some(config.max_frame))
        .max_frame_size(Some(config.max_frame));
    let dial = async {
        let tcp = TcpStream::connect((host.as_str(), port))
            .await
            .map_err(|e| InboundError::Connect(e.to_string()))?;
        let _ = tcp.set_nodelay(true);
        let io: Box<dyn Io> = if secure {
            tls(config, &host, tcp).await?
        } else {
            Box::new(tcp)
        };
        let (ws, _) =
            tokio_tungstenite::client_async_with_config(url.to_string(), io, Some(ws_config))
                .await
                .map_err(|e| InboundError::Connect(e.to_string()))?;
        Ok(ws)
    };
    tokio::time::timeout(config.connect_timeout, dial)
        .await
        .unwrap_or_else(|_| Err(InboundError::Connect("timed out".into())))
}

#[cfg(feature = "tls")]
async fn tls(
    config: &InboundConfig,
    host: &str,
    tcp: TcpStream,
) -> Result<Box<dyn Io>, InboundError> {
    let client = config.tls.clone().ok_or(InboundError::NoTls)?;
    let name = rustls_pki_types::ServerName::try_from(host.to_owned())
        .map_err(|e| InboundError::Connect(e.to_string()))?;
    let stream = tokio_rustls::TlsConnector::from(client)
        .connect(name, tcp)
        .await
        .map_err(|e| InboundError::Connect(e.to_string()))?;
    Ok(Box::new(stream))
}

#[cfg(not(feature = "tls"))]
async fn tls(
    _config: &InboundConfig,
    _host: &str,
    _tcp: TcpStream,
) -> Result<Box<dyn Io>, InboundError> {
    Err(InboundError::NoTls)
}

/// Reads one connection until it ends; returns why.
async fn read(
    ws: Ws,
    config: &InboundConfig,
    builder: &Arc<str>,
    out: &mpsc::Sender<Flashblock>,
    budget: &super::ByteBudget,
) -> InboundError {
    let (mut sink, mut frames) = ws.split();
    let mut ping = tokio::time::interval(config.ping_interval);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut heard = Instant::now();
    loop {
        tokio::select! {
            frame = frames.next() => {
                heard = Instant::now();
                let parsed = match frame {
                    Some(Ok(Message::Text(text))) => Flashblock::from_json(Bytes::from(text), config.max_frame),
                    Some(Ok(Message::Binary(binary))) => Flashblock::from_brotli(&binary, config.max_frame),
                    Some(Ok(Message::Close(_))) | None => return InboundError::Closed,
                    Some(Ok(_)) => continue,
                    Some(Err(error)) => return error.into(),
                };
                match parsed {
                    Ok(flashblock) => {
                        metrics::received(builder);
                        // Bounded in count by the queue and in bytes by the budget: a flood of
                        // big frames is dropped here, never held.
                        let size = flashblock.json.len();
                        if !budget.take(size) {
                            metrics::dropped(builder, "flood");
                        } else if out.try_send(flashblock).is_err() {
                            budget.give(size);
                            metrics::dropped(builder, "flood");
                        }
                    }
                    Err(error) => {
                        metrics::dropped(builder, error.label());
                        tracing::debug!(target: "switchyard::flashblocks", builder = %builder, %error, "frame dropped");
                    }
                }
            }
            _ = ping.tick() => {
                if heard.elapsed() > config.pong_timeout {
                    return InboundError::Silent(config.pong_timeout);
                }
                if let Err(error) = sink.send(Message::Ping(Bytes::new())).await {
                    return error.into();
                }
            }
        }
    }
}
