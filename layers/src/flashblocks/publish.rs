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
use futures_util::{SinkExt, StreamExt};
use tokio::{
    net::{TcpListener, TcpStream},
    sync::{mpsc, oneshot},
    time::Instant,
};
use tokio_tungstenite::tungstenite::{
    Message,
    handshake::server::{ErrorResponse, Request, Response},
    protocol::WebSocketConfig,
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

    fn message(&self, brotli: bool) -> Message {
        if brotli {
            Message::Binary(
                self.brotli
                    .get_or_init(|| super::message::compress(&self.json))
                    .clone(),
            )
        } else {
            // The JSON was read as UTF-8 already (it parsed).
            match tokio_tungstenite::tungstenite::Utf8Bytes::try_from(self.json.clone()) {
                Ok(text) => Message::Text(text),
                Err(_) => Message::Binary(self.json.clone()),
            }
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

/// The fan-out to subscribers. See the [module docs](self).
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
                tokio::spawn(subscriber(stream, publisher.clone()));
            }
            Err(error) => {
                tracing::debug!(target: "switchyard::flashblocks", %error, "accept failed");
            }
        }
    }
}

/// The largest message a subscriber may send: subscribers only listen.
const SUBSCRIBER_MESSAGE_LIMIT: usize = 4 * 1024;

async fn subscriber(stream: TcpStream, publisher: Arc<Publisher>) {
    let mut brotli = false;
    let full = publisher.subscribers() >= publisher.config.max_subscribers;
    // The handshake callback's signature is tungstenite's.
    #[allow(clippy::result_large_err)]
    let callback = |request: &Request, response: Response| -> Result<Response, ErrorResponse> {
        brotli = request
            .uri()
            .query()
            .is_some_and(|q| q.split('&').any(|pair| pair == "encoding=brotli"));
        if full {
            let mut refusal = ErrorResponse::new(Some("too many subscribers".into()));
            *refusal.status_mut() = http::StatusCode::SERVICE_UNAVAILABLE;
            return Err(refusal);
        }
        Ok(response)
    };
    let config = WebSocketConfig::default()
        .max_message_size(Some(SUBSCRIBER_MESSAGE_LIMIT))
        .max_frame_size(Some(SUBSCRIBER_MESSAGE_LIMIT));
    let ws = match tokio_tungstenite::accept_hdr_async_with_config(stream, callback, Some(config))
        .await
    {
        Ok(ws) => ws,
        Err(error) => {
            if full {
                metrics::subscriber_disconnect("refused");
            }
            tracing::debug!(target: "switchyard::flashblocks", %error, "subscriber handshake failed");
            return;
        }
    };
    let Some((mut queue, mut kicked)) = publisher.subscribe() else {
        metrics::subscriber_disconnect("refused");
        return;
    };
    let (mut sink, mut incoming) = ws.split();
    let reason = loop {
        tokio::select! {
            biased;
            _ = &mut kicked => break None,
            message = incoming.next() => match message {
                Some(Ok(Message::Close(_))) | None => break Some("closed"),
                Some(Err(_)) => break Some("error"),
                Some(Ok(_)) => {}
            },
            frame = queue.recv() => {
                let Some(frame) = frame else { break None };
                tokio::select! {
                    biased;
                    _ = &mut kicked => break None,
                    sent = sink.send(frame.message(brotli)) => if sent.is_err() { break Some("error") },
                }
            }
        }
    };
    drop(queue);
    if let Some(reason) = reason {
        metrics::subscriber_disconnect(reason);
    }
    publisher.forget_closed();
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
        let Message::Binary(first) = frame.message(true) else {
            panic!("binary")
        };
        let Message::Binary(again) = frame.message(true) else {
            panic!("binary")
        };
        assert_eq!(first.as_ptr(), again.as_ptr(), "compressed once");
        let back = super::super::decompress(&first, 1024).expect("brotli");
        assert_eq!(&back[..], b"{\"index\":7}");
        assert!(matches!(frame.message(false), Message::Text(_)));
    }
}
