use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll, ready},
};

use alloy_primitives::B256;
use alloy_rpc_types_engine::{ForkchoiceUpdated, PayloadStatusEnum};
use bytes::Bytes;
use http::{Request, Response};
use op_alloy_rpc_types_engine::OpPayloadAttributes;
use pin_project_lite::pin_project;
use tokio::sync::watch;
use tower::Service;

use super::{BuilderFcu, BuilderJob, FcuMuxLayer, PayloadJob, PayloadJobs, jobs::payload_id};
use crate::{
    body::{self, RpcBody},
    builder::{Builder, BuilderError, ExecutionMode, LaneError, Reply},
    engine::{self, EngineMethod},
    jsonrpc::RpcCall,
};

/// Service that sends forkchoice updates with attributes to op-geth and builders alike.
/// See the [module docs](super).
#[derive(Clone, Debug)]
pub struct FcuMux<S> {
    pub(super) inner: S,
    pub(super) layer: FcuMuxLayer,
}

impl<S> FcuMux<S> {
    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

/// What to file once op-geth has answered with its payload id.
struct Pending {
    jobs: Arc<PayloadJobs>,
    fcu_version: u8,
    parent: alloy_primitives::B256,
    timestamp: u64,
    attributes: Option<OpPayloadAttributes>,
    builders: Vec<BuilderJob>,
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pending")
            .field("builders", &self.builders.len())
            .finish_non_exhaustive()
    }
}

fn builder_answer(result: Result<Bytes, BuilderError>) -> BuilderFcu {
    let body = match result {
        Ok(body) => body,
        Err(error) => return BuilderFcu::Failed(error.label()),
    };
    match serde_json::from_slice::<ForkchoiceUpdated>(&body) {
        Ok(ForkchoiceUpdated {
            payload_status,
            payload_id: Some(id),
        }) if payload_status.status == PayloadStatusEnum::Valid => BuilderFcu::Building(id),
        Ok(updated) => BuilderFcu::Failed(match updated.payload_status.status {
            PayloadStatusEnum::Syncing | PayloadStatusEnum::Accepted => "fcu_syncing",
            PayloadStatusEnum::Invalid { .. } => "fcu_invalid",
            PayloadStatusEnum::Valid => "fcu_no_payload_id",
        }),
        Err(_) => BuilderFcu::Failed("malformed"),
    }
}

impl FcuMuxLayer {
    /// A forkchoice update with attributes, while not disabled: its method version, its state
    /// and its raw attributes; `None` when the call is not ours.
    fn ours<'a>(&self, call: &'a RpcCall) -> Option<(u8, B256, &'a [u8])> {
        let version = match EngineMethod::parse(call.method()) {
            Some(EngineMethod::ForkchoiceUpdated(version)) => version,
            _ => return None,
        };
        if self.mode.get() == ExecutionMode::Disabled {
            return None;
        }
        let (head, raw_attributes) = engine::call_forkchoice_head(call).ok()?;
        Some((version, head, raw_attributes?))
    }

    /// Queues the call on every synced builder; `None` when this call is not ours to fan out.
    fn fan_out(&self, call: &RpcCall) -> Option<Pending> {
        let (version, head, raw_attributes) = self.ours(call)?;
        // Attributes op-geth will refuse anyway are not worth a builder's time; nor is a block
        // without mempool transactions (`noTxPool`), to which a builder has nothing to add.
        let attributes: OpPayloadAttributes = serde_json::from_slice(raw_attributes).ok()?;
        if attributes.no_tx_pool == Some(true) {
            return None;
        }
        let builders = self
            .builders
            .iter()
            .map(|builder| {
                if let Some(reason) = builder.build_skip_reason() {
                    return self.skip(builder, reason);
                }
                let (answer, fcu) = watch::channel(BuilderFcu::Pending);
                let reply = Reply::Callback(Box::new(move |result| {
                    let _ = answer.send(builder_answer(result));
                }));
                // A forkchoice update the builder still holds was for a block that has passed:
                // it must not hold this one (nor the blocks queued ahead of it) too.
                builder.supersede_forkchoice();
                match builder.send_engine(call, reply) {
                    Ok(()) => BuilderJob {
                        builder: builder.clone(),
                        fcu,
                    },
                    // The lane counted this drop itself.
                    Err(LaneError::Full) => {
                        BuilderJob::skipped(builder.clone(), Builder::QUEUE_FULL)
                    }
                    Err(LaneError::Closed) => BuilderJob::skipped(builder.clone(), "queue_closed"),
                }
            })
            .collect();
        Some(Pending {
            jobs: self.jobs.clone(),
            fcu_version: version,
            parent: head,
            timestamp: attributes.payload_attributes.timestamp,
            attributes: Some(attributes),
            builders,
        })
    }

    /// Why each builder would not take a forkchoice update with attributes now; `None` as soon as
    /// one would.
    fn skip_reasons(&self) -> Option<Vec<&'static str>> {
        self.builders
            .iter()
            .map(|builder| builder.build_skip_reason())
            .collect()
    }

    /// The job of a call no builder takes: what getPayload will report (each builder's reason),
    /// without decoding the attributes or queuing anything. `None` when the call is not ours.
    fn skip_all(&self, call: &RpcCall, reasons: Vec<&'static str>) -> Option<Pending> {
        let (version, head, raw_attributes) = self.ours(call)?;
        let (timestamp, no_tx_pool) = engine::attributes_timestamp(raw_attributes)?;
        if no_tx_pool {
            return None;
        }
        let builders = self
            .builders
            .iter()
            .zip(reasons)
            .map(|(builder, reason)| self.skip(builder, reason))
            .collect();
        Some(Pending {
            jobs: self.jobs.clone(),
            fcu_version: version,
            parent: head,
            timestamp,
            attributes: None,
            builders,
        })
    }

    fn skip(&self, builder: &Arc<Builder>, reason: &'static str) -> BuilderJob {
        if reason == Builder::QUEUE_FULL {
            builder.note_engine_drop();
        }
        BuilderJob::skipped(builder.clone(), reason)
    }
}

impl<S> Service<Request<RpcBody>> for FcuMux<S>
where
    S: Service<Request<RpcBody>, Response = Response<RpcBody>>,
{
    type Response = Response<RpcBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<RpcBody>) -> Self::Future {
        // Only noted here: the decoding and the builders' copies wait until op-geth's request
        // has been written (see `ResponseFuture::poll`), so that they never delay it.
        let candidate = req
            .extensions()
            .get::<RpcCall>()
            .filter(|call| {
                !self.layer.builders.is_empty()
                    && matches!(
                        EngineMethod::parse(call.method()),
                        Some(EngineMethod::ForkchoiceUpdated(_))
                    )
            })
            .map(|call| (call.clone(), self.layer.clone()));
        ResponseFuture {
            future: self.inner.call(req),
            candidate,
            deferred: false,
            pending: None,
        }
    }
}

pin_project! {
    /// Response future of [`FcuMux`]: op-geth's answer, unchanged, filing the job on the way.
    pub struct ResponseFuture<F> {
        #[pin]
        future: F,
        candidate: Option<(RpcCall, FcuMuxLayer)>,
        // Whether the fan-out was put off by one poll already.
        deferred: bool,
        pending: Option<Pending>,
    }
}

impl<F> std::fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("pending", &self.pending)
            .finish_non_exhaustive()
    }
}

impl<F, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<RpcBody>, E>>,
{
    type Output = Result<Response<RpcBody>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let polled = this.future.poll(cx);
        if let Some((call, layer)) = this.candidate.take() {
            if polled.is_pending() && !*this.deferred {
                // op-geth's request has only been handed to its connection's task, which
                // writes it once this task yields: yield once, so that it leaves before the
                // scan and the decode, which then overlap op-geth's work.
                *this.deferred = true;
                *this.candidate = Some((call, layer));
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            *this.pending = match layer.skip_reasons() {
                // No builder takes it: its job only records why; nothing to decode or queue.
                Some(reasons) => layer.skip_all(&call, reasons),
                None => layer.fan_out(&call),
            };
        }
        let response = ready!(polled)?;
        let Some(pending) = this.pending.take() else {
            return Poll::Ready(Ok(response));
        };
        let (parts, bytes) = body::into_bytes(response);
        let job = PayloadJob {
            fcu_version: pending.fcu_version,
            parent: pending.parent,
            timestamp: pending.timestamp,
            attributes: pending.attributes,
            builders: pending.builders,
            trace: crate::trace::TraceLink::current(),
        };
        let span = tracing::Span::current();
        if span.is_disabled() {
            // op-node waits on this answer, and on nothing else here: the job is filed after.
            pending.jobs.insert_answered(bytes.clone(), job);
        } else if let Some(id) = payload_id(&bytes) {
            // Traced: the id goes on this call's span, so it is read now.
            span.record("switchyard.payload_id", tracing::field::display(id));
            pending.jobs.insert(id, job);
        }
        Poll::Ready(Ok(Response::from_parts(parts, RpcBody::new(bytes))))
    }
}

#[cfg(test)]
mod tests {
    use std::{
        convert::Infallible,
        sync::{Arc, Mutex},
    };

    use tower::{Layer, ServiceExt};

    use super::*;
    use crate::{
        builder::{BuilderClient, HealthState, LaneConfig, ModeSwitch},
        fcu_mux::PayloadJobs,
    };
    use alloy_rpc_types_engine::PayloadId;

    #[tokio::test]
    async fn a_call_no_builder_takes_files_a_job_of_reasons_and_reaches_no_builder() {
        let reached = Arc::new(Mutex::new(0usize));
        let count = reached.clone();
        let upstream = tower::service_fn(move |_: Request<RpcBody>| {
            *count.lock().expect("count") += 1;
            async { Ok::<_, Infallible>(Response::new(RpcBody::new(Bytes::new()))) }
        });
        let builder = Builder::new(
            BuilderClient::from_service("builder", upstream),
            LaneConfig::default(),
        );
        builder.health().set(HealthState::Unreachable);
        let jobs = PayloadJobs::new(8);
        let answer = br#"{"jsonrpc":"2.0","id":1,"result":{"payloadStatus":{"status":"VALID","latestValidHash":null,"validationError":null},"payloadId":"0x0000000000000007"}}"#;
        let op_geth = tower::service_fn(|_: Request<RpcBody>| async {
            Ok::<_, Infallible>(Response::new(RpcBody::new(Bytes::from_static(answer))))
        });
        let mux =
            FcuMuxLayer::new(vec![builder], jobs.clone(), ModeSwitch::default()).layer(op_geth);
        let head = format!("0x{}", "11".repeat(32));
        let params = format!(
            r#"[{{"headBlockHash":"{head}","safeBlockHash":"{head}","finalizedBlockHash":"{head}"}},{{"timestamp":"0x64","prevRandao":"{head}","suggestedFeeRecipient":"0x{}","withdrawals":[],"parentBeaconBlockRoot":"{head}","transactions":["0x7e01"],"noTxPool":false,"gasLimit":"0x1c9c380"}}]"#,
            "22".repeat(20)
        );
        let mut request = Request::new(RpcBody::new(Bytes::new()));
        request.extensions_mut().insert(RpcCall::new(
            "engine_forkchoiceUpdatedV3",
            b"1",
            params.as_bytes(),
        ));
        let mut filed = jobs.watch();
        let response = mux.oneshot(request).await.expect("answered");
        assert_eq!(body::into_bytes(response).1.as_ref(), answer.as_slice());
        // Filed by a task of its own once this one yields, with no read of the jobs to prompt it.
        filed.changed().await.expect("a job filed");
        assert_eq!(
            filed.borrow().as_ref().map(|(id, _)| *id),
            Some(PayloadId::new([0, 0, 0, 0, 0, 0, 0, 7]))
        );

        let job = jobs
            .get(&PayloadId::new([0, 0, 0, 0, 0, 0, 0, 7]))
            .expect("a job filed under op-geth's payload id");
        assert_eq!(job.timestamp, 100);
        assert_eq!(job.parent, alloy_primitives::B256::repeat_byte(0x11));
        assert!(
            job.attributes.is_none(),
            "not decoded: nobody will build them"
        );
        assert_eq!(
            *job.builders[0].fcu.borrow(),
            BuilderFcu::Failed("skipped_unreachable")
        );
        assert_eq!(
            *reached.lock().expect("count"),
            0,
            "the builder got nothing"
        );
    }
}
