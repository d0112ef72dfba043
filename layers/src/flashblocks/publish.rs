//! The outbound stream: accepted flashblocks fanned out to subscribers over WebSocket.
//!
//! Each subscriber has its own bounded queue and its own task writing to its socket. Publishing
//! only puts one shared frame in each queue (never waits on a socket), so one slow or dead
//! subscriber delays no one: when its queue is full it is disconnected (`slow`). A subscriber
//! that connects mid-block first gets the block's flashblocks so far, then the live stream.
//! Subscribers that connect with `?encoding=brotli` get binary frames of brotli-compressed JSON
//! (compressed once per flashblock, by the first such subscriber's task); the others get the
//! builder's JSON as text frames, byte for byte.

use std::sync::{Arc, Mutex, OnceLock};

use alloy_rpc_types_engine::PayloadId;
use bytes::Bytes;
use hyper_util::rt::TokioIo;
use tokio::{
    net::TcpListener,
    sync::{mpsc, oneshot},
    time::Instant,
};

use super::metrics;

/// One flashblock as published: the builder's JSON, and its brotli form once asked for.
#[derive(Debug)]
pub struct Frame {
    json: Bytes,
    brotli: OnceLock<Bytes>,
}

impl Frame {
    /// A frame of `json`.
    pub fn new(json: Bytes) -> Arc<Self> {
        Arc::new(Self {
            json,
            brotli: OnceLock::new(),
        })
    }

    /// The frame's opcode and payload: brotli-compressed JSON in a binary frame, or the JSON as
    /// received in a text frame (it parsed, so it is UTF-8).
    fn payload(&self, brotli: bool) -> (u8, Bytes) {
        if brotli {
            let compressed = self
                .brotli
                .get_or_init(|| super::message::compress(&self.json));
            (OPCODE_BINARY, compressed.clone())
        } else {
            (OPCODE_TEXT, self.json.clone())
        }
    }
}

/// Limits of the outbound stream.
#[derive(Clone, Copy, Debug)]
pub struct PublishConfig {
    /// Frames a subscriber may be behind before it is disconnected.
    pub queue: usize,
    /// Subscribers at once; more are refused (HTTP 503).
    pub max_subscribers: usize,
}

impl Default for PublishConfig {
    fn default() -> Self {
        Self {
            queue: 512,
            max_subscribers: 4096,
        }
    }
}

struct Subscriber {
    frames: mpsc::Sender<Arc<Frame>>,
    kick: Option<oneshot::Sender<()>>,
}

#[derive(Default)]
struct State {
    /// The block being published (op-geth's payload id) and its frames so far.
    block: Option<PayloadId>,
    frames: Vec<Arc<Frame>>,
    subscribers: Vec<Subscriber>,
}

/// The fan-out to subscribers. Each has its own bounded queue and its own task writing to its
/// socket; publishing only puts one shared frame in each queue and never waits on a socket, so
/// a subscriber whose queue is full is disconnected (`slow`) and delays no one. A subscriber that
/// connects mid-block first gets the block's frames so far. See the [module docs](super).
pub struct Publisher {
    state: Mutex<State>,
    config: PublishConfig,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher")
            .field("subscribers", &self.subscribers())
            .field("config", &self.config)
            .finish()
    }
}

impl Publisher {
    /// A publisher with no subscribers.
    pub fn new(config: PublishConfig) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(State::default()),
            config,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Subscribers connected.
    pub fn subscribers(&self) -> usize {
        self.lock().subscribers.len()
    }

    /// Puts `frame` of `block` in every subscriber's queue; a subscriber whose queue is full is
    /// disconnected. Never waits.
    pub fn publish(&self, block: PayloadId, frame: Arc<Frame>, received: Instant) {
        let mut state = self.lock();
        if state.block != Some(block) {
            state.block = Some(block);
            state.frames.clear();
        }
        state.frames.push(frame.clone());
        let before = state.subscribers.len();
        state.subscribers.retain_mut(|subscriber| {
            match subscriber.frames.try_send(frame.clone()) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    if let Some(kick) = subscriber.kick.take() {
                        let _ = kick.send(());
                    }
                    metrics::subscriber_disconnect("slow");
                    false
                }
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            }
        });
        if state.subscribers.len() != before {
            metrics::subscribers(state.subscribers.len());
        }
        drop(state);
        metrics::published(received.elapsed());
    }

    /// Registers a subscriber: its queue starts with the current block's frames.
    fn subscribe(&self) -> Option<(mpsc::Receiver<Arc<Frame>>, oneshot::Receiver<()>)> {
        let mut state = self.lock();
        if state.subscribers.len() >= self.config.max_subscribers {
            return None;
        }
        let (frames, queue) = mpsc::channel(self.config.queue.max(1));
        for frame in state.frames.iter().take(self.config.queue) {
            let _ = frames.try_send(frame.clone());
        }
        let (kick, kicked) = oneshot::channel();
        state.subscribers.push(Subscriber {
            frames,
            kick: Some(kick),
        });
        metrics::subscribers(state.subscribers.len());
        Some((queue, kicked))
    }

    fn forget_closed(&self) {
        let mut state = self.lock();
        state.subscribers.retain(|s| !s.frames.is_closed());
        metrics::subscribers(state.subscribers.len());
    }
}

/// Serves subscribers on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    publisher: Arc<Publisher>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, _)) => {
                let _ = stream.set_nodelay(true);
                let publisher = publisher.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |request| {
                        let publisher = publisher.clone();
                        async move { Ok::<_, std::convert::Infallible>(upgrade(request, publisher)) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .with_upgrades()
                        .await;
                });
            }
            Err(error) => {
                tracing::debug!(target: "switchyard::flashblocks", %error, "accept failed");
            }
        }
    }
}

/// Answers a WebSocket handshake (RFC 6455 §4.2) and hands the upgraded connection to a
/// subscriber task; anything else is refused.
fn upgrade(
    mut request: http::Request<hyper::body::Incoming>,
    publisher: Arc<Publisher>,
) -> http::Response<http_body_util::Empty<Bytes>> {
    use http::{StatusCode, header};
    let refuse = |status: StatusCode| {
        let mut response = http::Response::new(http_body_util::Empty::new());
        *response.status_mut() = status;
        response
    };
    let has = |name: header::HeaderName, token: &str| {
        request.headers().get_all(name).iter().any(|value| {
            value.to_str().is_ok_and(|v| {
                v.split(',')
                    .any(|part| part.trim().eq_ignore_ascii_case(token))
            })
        })
    };
    let key = request.headers().get(header::SEC_WEBSOCKET_KEY).cloned();
    let websocket = request.method() == http::Method::GET
        && has(header::UPGRADE, "websocket")
        && has(header::CONNECTION, "upgrade")
        && has(header::SEC_WEBSOCKET_VERSION, "13");
    let Some(key) = key.filter(|_| websocket) else {
        return refuse(StatusCode::BAD_REQUEST);
    };
    let brotli = request
        .uri()
        .query()
        .is_some_and(|q| q.split('&').any(|pair| pair == "encoding=brotli"));
    let Some((queue, kicked)) = publisher.subscribe() else {
        metrics::subscriber_disconnect("refused");
        return refuse(StatusCode::SERVICE_UNAVAILABLE);
    };
    let on_upgrade = hyper::upgrade::on(&mut request);
    tokio::spawn(async move {
        let reason = match on_upgrade.await {
            Ok(upgraded) => subscriber(TokioIo::new(upgraded), queue, kicked, brotli).await,
            Err(_) => Some("error"),
        };
        if let Some(reason) = reason {
            metrics::subscriber_disconnect(reason);
        }
        publisher.forget_closed();
    });
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
    let mut response = refuse(StatusCode::SWITCHING_PROTOCOLS);
    let headers = response.headers_mut();
    headers.insert(header::UPGRADE, http::HeaderValue::from_static("websocket"));
    headers.insert(
        header::CONNECTION,
        http::HeaderValue::from_static("Upgrade"),
    );
    if let Ok(accept) = http::HeaderValue::from_str(&accept) {
        headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    }
    response
}

/// The largest message a subscriber may send: subscribers only listen.
const SUBSCRIBER_MESSAGE_LIMIT: u64 = 4 * 1024;

/// One subscriber's connection, after the handshake: frames from its queue written out, its
/// control frames answered, until it leaves, errs or is kicked (`None`: kicked or shut down).
///
/// Ours rather than tungstenite's stream: each frame is written from the one buffer shared by
/// every subscriber (a header of up to 10 bytes, then the payload), where tungstenite copies it
/// into a frame-sized write buffer per connection (measured: ~230 KiB resident per subscriber).
async fn subscriber<Io>(
    io: Io,
    mut queue: mpsc::Receiver<Arc<Frame>>,
    mut kicked: oneshot::Receiver<()>,
    brotli: bool,
) -> Option<&'static str>
where
    Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use tokio::io::AsyncWriteExt;
    let (reader, mut writer) = tokio::io::split(io);
    let (pongs, mut pong_queue) = mpsc::channel::<Bytes>(4);
    let reading = read_control(reader, pongs);
    tokio::pin!(reading);
    loop {
        let (opcode, payload) = tokio::select! {
            biased;
            _ = &mut kicked => return None,
            ended = &mut reading => {
                // A close is answered with a close (best effort), then the connection ends.
                let _ = write_frame(&mut writer, OPCODE_CLOSE, &[]).await;
                return Some(ended);
            }
            pong = pong_queue.recv() => match pong {
                Some(data) => (OPCODE_PONG, data),
                None => continue,
            },
            frame = queue.recv() => match frame {
                Some(frame) => frame.payload(brotli),
                None => return None,
            },
        };
        let written = tokio::select! {
            biased;
            _ = &mut kicked => return None,
            written = write_frame(&mut writer, opcode, &payload) => written,
        };
        if written.is_err() {
            return Some("error");
        }
        let _ = writer.flush().await;
    }
}

const OPCODE_TEXT: u8 = 0x1;
const OPCODE_BINARY: u8 = 0x2;
const OPCODE_CLOSE: u8 = 0x8;
const OPCODE_PING: u8 = 0x9;
const OPCODE_PONG: u8 = 0xA;

/// Writes one unmasked, final frame (a server's, RFC 6455 §5.2).
async fn write_frame<W>(writer: &mut W, opcode: u8, payload: &[u8]) -> std::io::Result<()>
where
    W: tokio::io::AsyncWrite + Unpin,
{
    use tokio::io::AsyncWriteExt;
    let mut header = [0u8; 10];
    header[0] = 0x80 | opcode;
    let len = payload.len();
    let used = if len < 126 {
        header[1] = len as u8;
        2
    } else if let Ok(short) = u16::try_from(len) {
        header[1] = 126;
        header[2..4].copy_from_slice(&short.to_be_bytes());
        4
    } else {
        header[1] = 127;
        header[2..10].copy_from_slice(&(len as u64).to_be_bytes());
        10
    };
    writer.write_all(&header[..used]).await?;
    writer.write_all(payload).await
}

/// Reads a subscriber's frames (masked, as a client's must be): pings are answered through
/// `pongs`, other data is ignored, and the connection's end is returned: `closed` (a close frame
/// or EOF) or `error` (a protocol error, a message over the limit, a read error).
async fn read_control<R>(mut reader: R, pongs: mpsc::Sender<Bytes>) -> &'static str
where
    R: tokio::io::AsyncRead + Unpin,
{
    use tokio::io::AsyncReadExt;
    loop {
        let mut head = [0u8; 2];
        match reader.read_exact(&mut head).await {
            Ok(_) => {}
            Err(error) if error.kind() == std::io::ErrorKind::UnexpectedEof => return "closed",
            Err(_) => return "error",
        }
        let opcode = head[0] & 0x0f;
        let masked = head[1] & 0x80 != 0;
        let len = match head[1] & 0x7f {
            126 => {
                let mut ext = [0u8; 2];
                if reader.read_exact(&mut ext).await.is_err() {
                    return "error";
                }
                u64::from(u16::from_be_bytes(ext))
            }
            127 => {
                let mut ext = [0u8; 8];
                if reader.read_exact(&mut ext).await.is_err() {
                    return "error";
                }
                u64::from_be_bytes(ext)
            }
            n => u64::from(n),
        };
        if !masked || len > SUBSCRIBER_MESSAGE_LIMIT {
            return "error";
        }
        let mut mask = [0u8; 4];
        if reader.read_exact(&mut mask).await.is_err() {
            return "error";
        }
        // At most the limit: checked above.
        let mut payload = vec![0u8; len as usize];
        if reader.read_exact(&mut payload).await.is_err() {
            return "error";
        }
        for (i, byte) in payload.iter_mut().enumerate() {
            *byte ^= mask[i % 4];
        }
        match opcode {
            OPCODE_CLOSE => return "closed",
            OPCODE_PING => {
                let _ = pongs.try_send(Bytes::from(payload));
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(n: u8) -> Arc<Frame> {
        Frame::new(Bytes::from(format!("{{\"index\":{n}}}")))
    }

    fn json(frame: &Frame) -> &[u8] {
        &frame.json
    }

    #[test]
    fn a_subscriber_that_falls_behind_is_kicked_and_the_others_are_not() {
        let publisher = Publisher::new(PublishConfig {
            queue: 2,
            max_subscribers: 8,
        });
        let (mut reader, _reader_kick) = publisher.subscribe().expect("room");
        let (_stalled, mut stalled_kick) = publisher.subscribe().expect("room");
        let block = PayloadId::new([1; 8]);
        for n in 0..3 {
            publisher.publish(block, frame(n), Instant::now());
            // The reader keeps up.
            let got = reader.try_recv().expect("a frame");
            assert_eq!(json(&got), format!("{{\"index\":{n}}}").as_bytes());
        }
        assert_eq!(publisher.subscribers(), 1, "the stalled one is gone");
        assert!(stalled_kick.try_recv().is_ok(), "and was told to hang up");
    }

    #[test]
    fn a_late_subscriber_gets_the_block_so_far_and_a_new_block_starts_afresh() {
        let publisher = Publisher::new(PublishConfig::default());
        let first = PayloadId::new([1; 8]);
        publisher.publish(first, frame(0), Instant::now());
        publisher.publish(first, frame(1), Instant::now());
        let (mut late, _kick) = publisher.subscribe().expect("room");
        assert_eq!(json(&late.try_recv().expect("0")), b"{\"index\":0}");
        assert_eq!(json(&late.try_recv().expect("1")), b"{\"index\":1}");
        assert!(late.try_recv().is_err());

        publisher.publish(PayloadId::new([2; 8]), frame(0), Instant::now());
        let (mut later, _kick) = publisher.subscribe().expect("room");
        assert_eq!(json(&later.try_recv().expect("0")), b"{\"index\":0}");
        assert!(later.try_recv().is_err(), "only the new block's");
    }

    #[test]
    fn subscribers_past_the_cap_are_refused() {
        let publisher = Publisher::new(PublishConfig {
            queue: 4,
            max_subscribers: 1,
        });
        let _one = publisher.subscribe().expect("room");
        assert!(publisher.subscribe().is_none());
    }

    #[test]
    fn brotli_frames_are_compressed_once_and_read_back_the_same() {
        let frame = frame(7);
        let (opcode, first) = frame.payload(true);
        let (_, again) = frame.payload(true);
        assert_eq!(opcode, OPCODE_BINARY);
        assert_eq!(first.as_ptr(), again.as_ptr(), "compressed once");
        let back = super::super::decompress(&first, 1024).expect("brotli");
        assert_eq!(&back[..], b"{\"index\":7}");
        assert_eq!(frame.payload(false), (OPCODE_TEXT, frame.json.clone()));
    }

    #[tokio::test]
    async fn frames_are_written_as_rfc_6455_says_for_every_length() {
        for len in [0usize, 125, 126, 65_535, 65_536, 200_000] {
            let payload = vec![b'x'; len];
            let mut out = Vec::new();
            write_frame(&mut out, OPCODE_TEXT, &payload)
                .await
                .expect("written");
            assert_eq!(out[0], 0x81, "final text frame");
            let (len_read, at) = match out[1] {
                126 => (usize::from(u16::from_be_bytes([out[2], out[3]])), 4),
                127 => (
                    usize::try_from(u64::from_be_bytes(out[2..10].try_into().expect("8 bytes")))
                        .expect("fits"),
                    10,
                ),
                n => (usize::from(n), 2),
            };
            assert_eq!(out[1] & 0x80, 0, "a server's frames are not masked");
            assert_eq!(len_read, len);
            assert_eq!(&out[at..], &payload[..]);
        }
    }

    #[tokio::test]
    async fn a_subscribers_ping_is_answered_and_its_close_ends_the_reading() {
        // A client's ping "hi", masked, then a close.
        let mask = [1u8, 2, 3, 4];
        let mut input = vec![0x80 | OPCODE_PING, 0x80 | 2, 1, 2, 3, 4];
        input.extend(b"hi".iter().zip(mask.iter().cycle()).map(|(b, m)| b ^ m));
        input.extend([0x80 | OPCODE_CLOSE, 0x80, 9, 9, 9, 9]);
        let (pongs, mut answered) = mpsc::channel(4);
        assert_eq!(read_control(&input[..], pongs).await, "closed");
        assert_eq!(answered.recv().await.expect("a pong").as_ref(), b"hi");

        // Unmasked, or over the limit: a protocol error.
        let (pongs, _answered) = mpsc::channel(4);
        assert_eq!(
            read_control(&[0x81u8, 0x01, b'x'][..], pongs).await,
            "error"
        );
        let (pongs, _answered) = mpsc::channel(4);
        let big = [0x82u8, 0x80 | 127, 0, 0, 0, 0, 0, 1, 0, 0, 1, 2, 3, 4];
        assert_eq!(read_control(&big[..], pongs).await, "error");
    }
}
