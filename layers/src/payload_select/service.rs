use std::{
    sync::{Arc, LazyLock},
    task::{Context, Poll},
};

use alloy_primitives::U256;
use alloy_rpc_types_engine::{PayloadId, PayloadStatus, PayloadStatusEnum};
use bytes::Bytes;
use futures_util::{
    FutureExt, StreamExt,
    future::{BoxFuture, Either},
    stream::FuturesUnordered,
};
use http::{HeaderValue, Request, Response, StatusCode, header};
use memchr::memmem::Finder;
use tokio::time::Instant;
use tower::{Service, ServiceExt};
use tracing::{Instrument, field::Empty};

use super::{
    BuilderOutcome, Decision, Preconfirmations, Source, Stages, Summary,
    check::{check_attributes, check_block_hash},
    layer::{Ctx, Streamed},
    policy::{Choice, PayloadPolicy, SelectionPolicy},
};
use crate::{
    body::{self, RpcBody},
    builder::{ExecutionMode, metrics as builder_metrics},
    engine::{self, AnswerError, EngineMethod, Envelope, Written},
    fcu_mux::{BuilderFcu, BuilderJob, PayloadJob},
    forward,
    jsonrpc::{self, RpcCall, RpcResponse},
};

/// Service that answers getPayload with the best valid payload. See the [module docs](super).
#[derive(Clone)]
pub struct PayloadSelect<S> {
    pub(super) inner: S,
    pub(super) ctx: Arc<Ctx>,
}

impl<S> std::fmt::Debug for PayloadSelect<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PayloadSelect")
            .field("builders", &self.ctx.builders.len())
            .finish_non_exhaustive()
    }
}

type BoxedResponse<E> = BoxFuture<'static, Result<Response<RpcBody>, E>>;

impl<S> Service<Request<RpcBody>> for PayloadSelect<S>
where
    S: Service<Request<RpcBody>, Response = Response<RpcBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = Response<RpcBody>;
    type Error = S::Error;
    type Future = Either<BoxedResponse<S::Error>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<RpcBody>) -> Self::Future {
        let target = req.extensions().get::<RpcCall>().and_then(|call| {
            match EngineMethod::parse(call.method()) {
                Some(EngineMethod::GetPayload(version)) => {
                    let id = engine::get_payload_id(call.params().unwrap_or_default()).ok()?;
                    Some((call.clone(), version, id))
                }
                _ => None,
            }
        });
        let Some((call, version, id)) = target else {
            return Either::Right(self.inner.call(req));
        };
        // Read once: a switch mid-request must not give this request half of each mode.
        let mode = self.ctx.mode.get();
        if self.ctx.builders.is_empty() || mode == ExecutionMode::Disabled {
            return Either::Right(self.inner.call(req));
        }
        // The ready service answers op-node's call; clones validate builder payloads.
        let clone = self.inner.clone();
        let local = std::mem::replace(&mut self.inner, clone);
        let validator = self.inner.clone();
        let target = Target {
            call,
            version,
            id,
            mode,
        };
        Either::Left(Box::pin(select(
            local,
            validator,
            req,
            target,
            self.ctx.clone(),
        )))
    }
}

/// A builder's streamed block at getPayload: its envelope (checked) and flashblocks in it.
type StreamedBlock = (Arc<Envelope>, usize);

/// The transactions of the flashblocks published for a block, in order.
type PublishedTransactions = Arc<[alloy_primitives::Bytes]>;

/// A builder payload that passed every check and op-geth's validation.
struct Candidate {
    // The decoded payload is dropped once checked: only its written bytes are served.
    block_number: u64,
    written: Written,
    summary: Summary,
    /// It holds every published flashblock of the block, in order (true when none were).
    kept: bool,
    /// Assembled from this many flashblocks (`None`: the builder's getPayload answer).
    flashblocks: Option<usize>,
    /// op-geth's rebuild of the builder's block (external state root).
    external_root: bool,
}

/// The end of one builder's path.
struct Chain {
    stages: Stages,
    result: Result<Candidate, &'static str>,
    gas_used: Option<u64>,
    block_value: Option<U256>,
    /// Why the block its flashblocks assembled lost, when it streamed one and that lost.
    streamed_lost: Option<&'static str>,
}

impl Chain {
    fn lost(stages: Stages, reason: &'static str) -> Self {
        Self {
            stages,
            result: Err(reason),
            gas_used: None,
            block_value: None,
            streamed_lost: None,
        }
    }
}

/// One getPayload to serve: op-node's call, its version and payload id, and the mode it is
/// served in.
struct Target {
    call: RpcCall,
    version: u8,
    id: PayloadId,
    mode: ExecutionMode,
}

/// What came back by the deadline: op-geth's answer (always: it is waited for) and each
/// builder's path, in builder order (`None`: not finished by the deadline).
struct Gathered<E> {
    local_result: Result<Response<RpcBody>, E>,
    local_latency: Option<std::time::Duration>,
    chains: Vec<Option<Chain>>,
}

/// Serves one getPayload: [`gather`] the answers, then [`decide`].
async fn select<S>(
    local: S,
    validator: S,
    req: Request<RpcBody>,
    target: Target,
    ctx: Arc<Ctx>,
) -> Result<Response<RpcBody>, S::Error>
where
    S: Service<Request<RpcBody>, Response = Response<RpcBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    let started = Instant::now();
    // Sealed first: nothing is published for this block from here on, so what was published
    // is what the answer is held to.
    let streamed = ctx
        .streamed
        .as_ref()
        .map(|seal| seal(&target.id))
        .unwrap_or_default();
    let job = ctx.jobs.get(&target.id);
    let span = tracing::Span::current();
    if !span.is_disabled() {
        span.record("switchyard.payload_id", tracing::field::display(target.id));
        if let Some(job) = &job {
            job.trace.link(&span);
        }
    }
    let builder_jobs: Vec<BuilderJob> =
        job.as_ref().map(|j| j.builders.clone()).unwrap_or_default();
    let gathered = gather(
        local,
        validator,
        req,
        &target,
        job,
        &builder_jobs,
        &streamed,
        &ctx,
        started,
    )
    .await;
    decide(gathered, &builder_jobs, &streamed, target, &ctx, started)
}

/// Asks op-geth for its payload and runs every builder's path at once, until op-geth has
/// answered and every path has ended or the deadline has passed.
#[allow(clippy::too_many_arguments)]
async fn gather<S>(
    mut local: S,
    validator: S,
    req: Request<RpcBody>,
    target: &Target,
    job: Option<Arc<PayloadJob>>,
    builder_jobs: &[BuilderJob],
    streamed: &Streamed,
    ctx: &Arc<Ctx>,
    started: Instant,
) -> Gathered<S::Error>
where
    S: Service<Request<RpcBody>, Response = Response<RpcBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    let local_answer = local.call(req);
    tokio::pin!(local_answer);
    let deadline = tokio::time::sleep(ctx.deadline);
    tokio::pin!(deadline);

    let mut running: FuturesUnordered<_> = builder_jobs
        .iter()
        .enumerate()
        .filter_map(|(i, builder_job)| {
            let job = job.clone()?;
            // Boxed where it is made: a chain's state is kilobytes, and the set below would
            // otherwise take it by a copy at each wrapping.
            let chain = Box::pin(run_chain(
                builder_job.clone(),
                Bytes::copy_from_slice(target.call.id()),
                target.version,
                (target.id, job),
                (
                    streamed.blocks.get(i).cloned().flatten(),
                    streamed.published.as_ref().map(|(_, _, txs)| txs.clone()),
                ),
                validator.clone(),
                ctx.clone(),
            ));
            // A bug that panics on one builder's payload costs that candidate, never op-node's
            // answer: the other candidates and op-geth's payload are still there.
            let builder = builder_job.builder.name().clone();
            let id = target.id;
            let chain = std::panic::AssertUnwindSafe(chain).catch_unwind();
            let span = tracing::debug_span!(
                target: crate::trace::TARGET,
                "builder_payload",
                otel.name = %format_args!("{builder} payload"),
                builder = %builder,
                outcome = Empty,
            );
            Some(
                async move {
                    let chain = chain.await.unwrap_or_else(|panic| {
                        builder_panicked(&builder, id, crate::panic::message(&*panic));
                        Chain::lost(Stages::default(), "panic")
                    });
                    let outcome = chain
                        .result
                        .as_ref()
                        .map_or_else(|reason| *reason, |_| "valid");
                    tracing::Span::current().record("outcome", outcome);
                    (i, chain)
                }
                .instrument(span),
            )
        })
        .collect();
    let mut chains: Vec<Option<Chain>> = builder_jobs.iter().map(|_| None).collect();
    let mut local_result = None;
    let mut local_latency = None;
    let mut expired = false;
    loop {
        if local_result.is_some() && (running.is_empty() || expired) {
            break;
        }
        tokio::select! {
            // Builder results are polled first: on a tie with the deadline, they count.
            biased;
            Some((i, chain)) = running.next(), if !expired && !running.is_empty() => chains[i] = Some(chain),
            answer = &mut local_answer, if local_result.is_none() => {
                local_latency = Some(started.elapsed());
                local_result = Some(answer);
            }
            () = &mut deadline, if !expired => expired = true,
        }
    }
    match local_result {
        Some(local_result) => Gathered {
            local_result,
            local_latency,
            chains,
        },
        None => unreachable!("the loop ends only once op-geth has answered"),
    }
}

/// Chooses the answer from what was gathered: the policy among validated candidates true to
/// op-geth's block number, liveness first (a validated payload beats op-geth's error), op-geth's
/// payload in dry-run; then records and tells the decision.
fn decide<E>(
    gathered: Gathered<E>,
    builder_jobs: &[BuilderJob],
    streamed: &Streamed,
    target: Target,
    ctx: &Ctx,
    started: Instant,
) -> Result<Response<RpcBody>, E> {
    let Target {
        call,
        version,
        id,
        mode,
    } = target;
    let Gathered {
        local_result,
        local_latency,
        chains: chain_results,
    } = gathered;
    let local_failed = match &local_result {
        Ok(response) => answer_failed(response),
        Err(_) => true,
    };

    let mut outcomes: Vec<BuilderOutcome> = Vec::with_capacity(builder_jobs.len());
    let mut candidates: Vec<(usize, Candidate)> = Vec::new();
    let mut streamed_lost: Vec<Option<&'static str>> = Vec::with_capacity(builder_jobs.len());
    for (i, (builder_job, chain)) in builder_jobs.iter().zip(chain_results).enumerate() {
        let chain = chain.unwrap_or_else(|| Chain::lost(Stages::default(), "deadline"));
        let mut lost = None;
        let flashblocks = chain.result.as_ref().ok().and_then(|c| c.flashblocks);
        let external_root = chain.result.as_ref().is_ok_and(|c| c.external_root);
        streamed_lost.push(chain.streamed_lost);
        match chain.result {
            Ok(candidate) if builder_job.builder.breaker().is_open() => {
                lost = Some("circuit_open");
                drop(candidate);
            }
            Ok(candidate) => candidates.push((i, candidate)),
            Err(reason) => lost = Some(reason),
        }
        outcomes.push(BuilderOutcome {
            builder: builder_job.builder.name().clone(),
            lost,
            stages: chain.stages,
            gas_used: chain.gas_used,
            block_value: chain.block_value,
            flashblocks,
            external_root,
        });
    }

    // op-geth's payload, summarised by field lookup (microseconds): its number for the decision
    // and the number check, its gas and value for the policy.
    let local_summary = match &local_result {
        Ok(response) if !local_failed => LocalSummary::read(response),
        _ => None,
    };
    if let Some(local) = &local_summary {
        candidates.retain(|(i, candidate)| {
            let same_number = candidate.block_number == local.number;
            if !same_number {
                outcomes[*i].lost = Some("number");
            }
            same_number
        });
    }

    let summaries: Vec<Summary> = candidates.iter().map(|(_, c)| c.summary.clone()).collect();
    let policy_choice = if summaries.is_empty() {
        Choice::Local
    } else {
        ctx.policy
            .choose(local_summary.as_ref().map(|l| &l.summary), &summaries)
    };
    // A promise made to users outranks the policy: the publisher's own assembled block first,
    // then any block that holds every published flashblock.
    let keeping = streamed.published.as_ref().and_then(|(publisher, _, _)| {
        candidates
            .iter()
            .position(|(i, c)| *i == *publisher && c.kept && c.flashblocks.is_some())
            .or_else(|| candidates.iter().position(|(_, c)| c.kept))
    });
    let choice = match (policy_choice, mode, local_failed) {
        (_, ExecutionMode::DryRun, false) => Choice::Local,
        _ if keeping.is_some() => keeping.map_or(Choice::Local, Choice::Builder),
        // Liveness first: an error costs op-node a block; a validated payload does not.
        (_, _, true) if !summaries.is_empty() => match policy_choice {
            Choice::Builder(i) => Choice::Builder(i),
            Choice::Local => SelectionPolicy::MostGas.choose(None, &summaries),
        },
        (_, ExecutionMode::DryRun, _) => Choice::Local,
        (choice, _, _) => choice,
    };
    let preconfirmations = streamed.published.as_ref().map(|(publisher, count, _)| {
        let broken = match choice {
            Choice::Builder(position) if candidates[position].1.kept => None,
            Choice::Builder(_) => Some("not_contained"),
            Choice::Local if mode == ExecutionMode::DryRun && !local_failed => Some("dry_run"),
            Choice::Local => Some(
                streamed_lost[*publisher]
                    .or(outcomes[*publisher].lost)
                    .unwrap_or("not_contained"),
            ),
        };
        Preconfirmations {
            builder: builder_jobs[*publisher].builder.name().clone(),
            flashblocks: *count,
            broken,
        }
    });
    for (position, (i, _)) in candidates.iter().enumerate() {
        if choice != Choice::Builder(position) {
            let reason =
                if mode == ExecutionMode::DryRun && policy_choice == Choice::Builder(position) {
                    "dry_run"
                } else {
                    "policy"
                };
            outcomes[*i].lost = Some(reason);
        }
    }

    let block_number = local_summary
        .as_ref()
        .map(|l| l.number)
        .or_else(|| candidates.first().map(|(_, c)| c.block_number));
    let (source, local_lost, response) = match choice {
        Choice::Builder(position) => {
            let (_, candidate) = candidates.swap_remove(position);
            let source = Source::Builder(candidate.summary.source.clone());
            let lost = if local_failed { "error" } else { "policy" };
            (
                source,
                Some(lost),
                Ok(builder_response(&call, &candidate.written)),
            )
        }
        Choice::Local => {
            let source = if local_failed {
                Source::None
            } else {
                Source::Local
            };
            (source, local_failed.then_some("error"), local_result)
        }
    };
    let total = started.elapsed();
    let decision = Decision {
        payload_id: id,
        version,
        block_number,
        mode,
        source,
        local_lost,
        local_latency: if local_failed { None } else { local_latency },
        builders: outcomes,
        total,
        headroom: ctx.deadline.saturating_sub(total),
        preconfirmations,
    };
    tell(ctx, &decision);
    response
}

/// Whether op-geth's getPayload answer is a failure rather than a payload.
fn answer_failed(response: &Response<RpcBody>) -> bool {
    use http_body::Body;
    // Error answers are small; a payload is large. Only small answers need a look at the body.
    let small = response
        .body()
        .size_hint()
        .exact()
        .is_some_and(|n| n < 64 * 1024);
    if small {
        return !forward::accepted(response);
    }
    forward::forward_error(response).is_some() || response.status() != StatusCode::OK
}

/// What the policy needs of op-geth's payload, read without decoding its transactions.
struct LocalSummary {
    number: u64,
    summary: Summary,
}

impl LocalSummary {
    /// Reads op-geth's answer by looking its few fields up. They are top-level keys of the
    /// payload, and nothing else in it can look like them (transactions are hex strings), so
    /// this is exact, and costs microseconds where decoding the payload costs a millisecond.
    /// The transactions (nearly all of the bytes) are passed over once.
    fn read(response: &Response<RpcBody>) -> Option<Self> {
        // Searchers built once: building one costs more than a search through a small payload.
        static BLOCK_NUMBER: LazyLock<Finder<'static>> =
            LazyLock::new(|| Finder::new(b"\"blockNumber\":"));
        static GAS_USED: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\"gasUsed\":"));
        static TRANSACTIONS: LazyLock<Finder<'static>> =
            LazyLock::new(|| Finder::new(b"\"transactions\":["));
        static BLOCK_VALUE: LazyLock<Finder<'static>> =
            LazyLock::new(|| Finder::new(b"\"blockValue\":"));
        let bytes = body::peek(response.body());
        let number = quantity(field(&bytes, &BLOCK_NUMBER)?)?;
        let gas_used = quantity(field(&bytes, &GAS_USED)?)?;
        let (transactions, after) = match TRANSACTIONS.find(&bytes) {
            Some(at) => {
                // Hex strings hold no `]`: the first one closes the list. Then two quotes per
                // transaction, counted many at a time (a stop at each would be ten thousand).
                let list = at + TRANSACTIONS.needle().len();
                let end = memchr::memchr(b']', &bytes[list..]).map_or(bytes.len(), |i| list + i);
                let quotes = memchr::memchr_iter(b'"', &bytes[list..end]).count();
                (quotes / 2, end)
            }
            None => (0, 0),
        };
        // op-geth writes the value after the payload; other clients may write it before.
        let block_value = field(&bytes[after..], &BLOCK_VALUE)
            .or_else(|| field(&bytes[..after], &BLOCK_VALUE))
            .and_then(|v| v.parse::<U256>().ok())
            .unwrap_or_default();
        Some(Self {
            number,
            summary: Summary {
                source: Arc::from("l2"),
                gas_used,
                block_value,
                transactions,
            },
        })
    }
}

/// The string value of the first `key` (which includes its quotes and colon) in `json`.
fn field<'a>(json: &'a [u8], key: &Finder<'_>) -> Option<&'a str> {
    let at = key.find(json)? + key.needle().len();
    let rest = json.get(at..)?.trim_ascii_start().strip_prefix(b"\"")?;
    let end = memchr::memchr(b'"', rest)?;
    std::str::from_utf8(&rest[..end]).ok()
}

fn quantity(text: &str) -> Option<u64> {
    u64::from_str_radix(text.strip_prefix("0x")?, 16).ok()
}

fn builder_response(call: &RpcCall, written: &Written) -> Response<RpcBody> {
    // Written inside op-node's answer already, unless it was written for another call.
    let body = match written.answer() {
        Some(answer) => answer.clone(),
        None => jsonrpc::result_response(call.id(), written.envelope()),
    };
    let mut response = Response::new(RpcBody::new(body));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// Builder answers up to this size are checked and hashed on the event loop: tens of
/// microseconds, less than a hand-off to a blocking thread and back.
const INLINE_CHECK_BYTES: usize = 64 * 1024;

/// One builder's path: its payload id, its payload, the checks, op-geth's validation.
async fn run_chain<S>(
    builder_job: BuilderJob,
    answer_id: Bytes,
    version: u8,
    (payload_id, job): (PayloadId, Arc<PayloadJob>),
    (streamed, published): (Option<StreamedBlock>, Option<PublishedTransactions>),
    validator: S,
    ctx: Arc<Ctx>,
) -> Chain
where
    S: Service<Request<RpcBody>, Response = Response<RpcBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    let builder = builder_job.builder.clone();
    let mut stages = Stages::default();
    let started = Instant::now();
    let mut fcu = builder_job.fcu.clone();
    let answer = fcu
        .wait_for(|state| *state != BuilderFcu::Pending)
        .await
        .map(|state| state.clone());
    stages.fcu_wait = Some(started.elapsed());
    let builder_id = match answer {
        Ok(BuilderFcu::Building(id)) => id,
        Ok(BuilderFcu::Failed(reason)) => return Chain::lost(stages, reason),
        Ok(BuilderFcu::Pending) | Err(_) => return Chain::lost(stages, "fcu_lost"),
    };

    let step = Instant::now();
    let params = serde_json::to_vec(&[builder_id]).unwrap_or_default();
    let method = EngineMethod::GetPayload(version).name();
    let mut permit = None;
    let mut streamed_lost = None;
    let answer = if let Some((envelope, flashblocks)) = streamed {
        // The builder's getPayload goes out at once all the same: it ends the builder's job
        // (its last flashblock), and it is the fallback if the streamed block loses.
        let fetching = builder.clone();
        // Its own span under the candidate's: it may outlive this getPayload's answer.
        let fetch_span =
            tracing::debug_span!(target: crate::trace::TARGET, parent: None, "builder_get_payload");
        crate::trace::TraceLink::current().adopt(&fetch_span);
        let fetch = tokio::spawn(
            async move {
                fetching
                    .client()
                    .call_answer(&method, &params)
                    .await
                    .map_err(|error| error.label())
            }
            .instrument(fetch_span),
        );
        // Boxed, as the rebuild below: a path not every chain takes keeps its state out of
        // every chain's future, which is moved whole into place on each getPayload.
        let served = Box::pin(serve_streamed(
            (envelope, flashblocks),
            version,
            &answer_id,
            builder.name(),
            published.as_deref(),
            validator.clone(),
            &ctx,
        ))
        .instrument(tracing::debug_span!(target: crate::trace::TARGET, "flashblocks_block"))
        .await;
        match served {
            Ok(candidate) => {
                stages.new_payload = Some(step.elapsed());
                builder.breaker().record_valid();
                return Chain {
                    stages,
                    gas_used: Some(candidate.summary.gas_used),
                    block_value: Some(candidate.summary.block_value),
                    result: Ok(candidate),
                    streamed_lost: None,
                };
            }
            Err(reason) => {
                if reason == "invalid" {
                    invalid(&builder, reason);
                }
                streamed_lost = Some(reason);
            }
        }
        let answer = fetch.await.unwrap_or(Err("panic"));
        stages.get_payload = Some(step.elapsed());
        answer
    } else {
        // A builder whose last payload was big is asked for this one once a check slot is free:
        // however many getPayloads are in flight, switchyard then holds no more big payloads
        // than it checks at once (a payload waiting for a slot would be megabytes held for
        // nothing). Held from here until op-geth has validated it: its answer, decoded and then
        // written, is megabytes all along.
        if builder.last_payload_size() > INLINE_CHECK_BYTES {
            permit = check_slot(&ctx).await;
        }
        let answer = builder
            .client()
            .call_answer(&method, &params)
            .await
            .map_err(|error| error.label());
        stages.get_payload = Some(step.elapsed());
        answer
    };
    let lost = |stages, reason| Chain {
        streamed_lost,
        ..Chain::lost(stages, reason)
    };
    let answer = match answer {
        Ok(answer) => answer,
        Err(reason) => return lost(stages, reason),
    };
    builder.note_payload_size(answer.len());

    let step = Instant::now();
    // Milliseconds of CPU for a big payload (the block hash alone is keccak over every
    // transaction): off the event loop, so that op-node's other calls are not held up. A small
    // one takes microseconds, less than the hand-off to a blocking thread.
    let max_size = ctx.max_payload_size;
    let checking_job = job.clone();
    let small = answer.len() <= INLINE_CHECK_BYTES;
    let own_checks = ctx.payload_checks.clone();
    let checked_builder = builder.name().clone();
    let rebuilt_answer_id = answer_id.clone();
    let checks = tracing::debug_span!(target: crate::trace::TARGET, "checks", failed = Empty);
    let prepare = move || {
        let _checks = checks.enter();
        let failed = |reason: &'static str| {
            checks.record("failed", reason);
            reason
        };
        let (envelope, listed) =
            check(&answer, version, &checking_job, max_size).map_err(failed)?;
        if !own_checks
            .iter()
            .all(|check| check(&checked_builder, &envelope))
        {
            return Err(failed("custom_check"));
        }
        let kept = published
            .as_deref()
            .is_none_or(|txs| envelope.payload().transactions.starts_with(txs));
        // Written inside op-node's answer: if it wins, that is sent as it is.
        let written = match &listed {
            Some(listed) => envelope.write_answer_with_transactions(&answer_id, listed),
            None => envelope.write_answer(&answer_id),
        };
        Ok::<_, &'static str>((envelope, written, kept))
    };
    let prepared = if small {
        prepare()
    } else {
        if permit.is_none() {
            permit = check_slot(&ctx).await;
        }
        tokio::task::spawn_blocking(prepare)
            .await
            .unwrap_or_else(|error| Err(join_failure(&builder, payload_id, error)))
    };
    stages.checks = Some(step.elapsed());
    let (envelope, written, kept) = match prepared {
        Ok(prepared) => prepared,
        Err(reason) => {
            invalid(&builder, reason);
            return lost(stages, reason);
        }
    };
    let summary = Summary {
        source: builder.name().clone(),
        gas_used: envelope.payload().gas_used,
        block_value: envelope.block_value(),
        transactions: envelope.payload().transactions.len(),
    };
    let block_number = envelope.payload().block_number;

    if ctx.external_state_root {
        let step = Instant::now();
        let rebuilt = Box::pin(rebuild(
            validator,
            &job,
            envelope,
            version,
            &rebuilt_answer_id,
        ))
        .instrument(tracing::debug_span!(target: crate::trace::TARGET, "external_state_root"))
        .await;
        drop(permit);
        stages.new_payload = Some(step.elapsed());
        return match rebuilt {
            Ok((rebuilt, written)) => {
                builder.breaker().record_valid();
                let payload = rebuilt.payload();
                let summary = Summary {
                    gas_used: payload.gas_used,
                    block_value: rebuilt.block_value(),
                    ..summary
                };
                Chain {
                    stages,
                    gas_used: Some(summary.gas_used),
                    block_value: Some(summary.block_value),
                    result: Ok(Candidate {
                        block_number: payload.block_number,
                        written,
                        summary,
                        kept,
                        flashblocks: None,
                        external_root: true,
                    }),
                    streamed_lost,
                }
            }
            Err(reason) => {
                if reason == "block_hash" {
                    invalid(&builder, reason);
                }
                lost(stages, reason)
            }
        };
    }

    // op-geth validates while we recompute the hash: both must pass, neither waits for the other.
    // The decoded payload goes with the hash, and is freed when it is done.
    let step = Instant::now();
    let hashing = async move {
        if small {
            // The validation request is only queued on its connection: let it be written first.
            tokio::task::yield_now().await;
            Ok(check_block_hash(envelope))
        } else {
            tokio::task::spawn_blocking(move || check_block_hash(envelope)).await
        }
    };
    // Validation first: its request is queued before an inline hash takes the thread.
    let validation_span = tracing::debug_span!(target: crate::trace::TARGET, "validate");
    let (validation, hashed) = tokio::join!(
        validate(validator, &written).instrument(validation_span),
        hashing
    );
    drop(permit);
    stages.new_payload = Some(step.elapsed());
    let validation = match hashed {
        Ok(Ok(())) => validation,
        Ok(Err(failure)) => Err(failure.label()),
        Err(error) => Err(join_failure(&builder, payload_id, error)),
    };
    if validation == Err("block_hash") {
        invalid(&builder, "block_hash");
        return lost(stages, "block_hash");
    }
    let (gas_used, block_value) = (Some(summary.gas_used), Some(summary.block_value));
    let result = match validation {
        Ok(()) => {
            builder.breaker().record_valid();
            Ok(Candidate {
                block_number,
                written,
                summary,
                kept,
                flashblocks: None,
                external_root: false,
            })
        }
        Err(reason) => {
            if reason == "invalid" {
                invalid(&builder, reason);
            }
            Err(reason)
        }
    };
    Chain {
        stages,
        result,
        gas_used,
        block_value,
        streamed_lost,
    }
}

/// The builder's block as op-geth builds it from the builder's transactions (see
/// [`PayloadSelectLayer::with_external_state_root`](super::PayloadSelectLayer::with_external_state_root)):
/// the builder's advertised hash checked first (what it sent must be what it says), then a
/// forkchoice update on op-node's head with op-node's attributes, the builder's transactions and
/// `noTxPool`, then getPayload of that job; the block must hold exactly the builder's
/// transactions and pass every attribute check.
async fn rebuild<S>(
    op_geth: S,
    job: &PayloadJob,
    builder_block: Envelope,
    version: u8,
    answer_id: &Bytes,
) -> Result<(Envelope, Written), &'static str>
where
    S: Service<Request<RpcBody>, Response = Response<RpcBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    let transactions = builder_block.payload().transactions.clone();
    let hashed = if builder_block.transactions_size() <= INLINE_CHECK_BYTES {
        check_block_hash(builder_block)
    } else {
        tokio::task::spawn_blocking(move || check_block_hash(builder_block))
            .await
            .map_err(|_| "check_failed")?
    };
    hashed.map_err(|failure| failure.label())?;
    let mut attributes = job.attributes.clone().ok_or("not_asked")?;
    attributes.transactions = Some(transactions.clone());
    attributes.no_tx_pool = Some(true);
    let state = alloy_rpc_types_engine::ForkchoiceState {
        head_block_hash: job.parent,
        safe_block_hash: alloy_primitives::B256::ZERO,
        finalized_block_hash: alloy_primitives::B256::ZERO,
    };
    let params = serde_json::to_vec(&(state, attributes)).map_err(|_| "external_root_error")?;
    let method = EngineMethod::ForkchoiceUpdated(job.fcu_version).name();
    let answer = own_call(op_geth.clone(), &method, &params).await?;
    let id = RpcResponse::from_slice(&answer)
        .ok()
        .and_then(|answer| answer.result)
        .and_then(|result| {
            serde_json::from_slice::<alloy_rpc_types_engine::ForkchoiceUpdated>(result).ok()
        })
        .filter(|updated| updated.is_valid())
        .and_then(|updated| updated.payload_id)
        .ok_or("external_root_fcu")?;
    let params = serde_json::to_vec(&[id]).map_err(|_| "external_root_error")?;
    let answer = own_call(op_geth, &EngineMethod::GetPayload(version).name(), &params).await?;
    let rebuilt = Envelope::parse_answer(version, &answer).map_err(|_| "external_root_payload")?;
    if rebuilt.payload().transactions != transactions {
        return Err("external_root_transactions");
    }
    check_attributes(&rebuilt, job).map_err(|failure| failure.label())?;
    let written = rebuilt.write_answer(answer_id);
    Ok((rebuilt, written))
}

/// One call of switchyard's own to op-geth, through the layers below: the whole answer, if
/// op-geth gave one.
async fn own_call<S>(op_geth: S, method: &str, params: &[u8]) -> Result<Bytes, &'static str>
where
    S: Service<Request<RpcBody>, Response = Response<RpcBody>>,
{
    let call = RpcCall::new(method, b"\"switchyard\"", params);
    let mut request = Request::new(RpcBody::new(call.bytes().clone()));
    *request.method_mut() = http::Method::POST;
    request.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    request.extensions_mut().insert(call);
    let response = op_geth
        .oneshot(request)
        .await
        .map_err(|_| "external_root_error")?;
    if forward::forward_error(&response).is_some() || response.status() != StatusCode::OK {
        return Err("external_root_error");
    }
    Ok(body::into_bytes(response).1)
}

/// A builder's streamed block as a candidate: checked against the job as each flashblock was
/// accepted (attributes, forced transactions, block hash), so only the version asked for, the
/// operator's own checks, the size cap and op-geth's validation remain.
async fn serve_streamed<S>(
    (envelope, flashblocks): (Arc<Envelope>, usize),
    version: u8,
    answer_id: &Bytes,
    builder: &Arc<str>,
    published: Option<&[alloy_primitives::Bytes]>,
    validator: S,
    ctx: &Ctx,
) -> Result<Candidate, &'static str>
where
    S: Service<Request<RpcBody>, Response = Response<RpcBody>>,
{
    let fits = matches!(
        (&*envelope, version),
        (Envelope::V3(_), 3) | (Envelope::V4(_), 4 | 5)
    );
    if !fits {
        return Err("version");
    }
    if !ctx
        .payload_checks
        .iter()
        .all(|check| check(builder, &envelope))
    {
        return Err("custom_check");
    }
    let kept = published.is_none_or(|txs| envelope.payload().transactions.starts_with(txs));
    let written = if envelope.transactions_size() <= INLINE_CHECK_BYTES {
        envelope.write_answer(answer_id)
    } else {
        let (envelope, id) = (envelope.clone(), answer_id.clone());
        tokio::task::spawn_blocking(move || envelope.write_answer(&id))
            .await
            .map_err(|_| "check_failed")?
    };
    if written.envelope().len() > ctx.max_payload_size {
        return Err("too_large");
    }
    validate(validator, &written).await?;
    let payload = envelope.payload();
    Ok(Candidate {
        block_number: payload.block_number,
        summary: Summary {
            source: builder.clone(),
            gas_used: payload.gas_used,
            block_value: envelope.block_value(),
            transactions: payload.transactions.len(),
        },
        written,
        kept,
        flashblocks: Some(flashblocks),
        external_root: false,
    })
}

/// A panic in one builder's part of a getPayload: counted and logged once, with the builder and
/// the payload id; that candidate loses with reason `panic`.
fn builder_panicked(builder: &str, payload_id: PayloadId, message: &str) {
    crate::panic::count("builder_payload");
    tracing::error!(target: "switchyard::payload", builder, payload_id = %payload_id, message, "a builder's payload path panicked; that candidate loses");
}

/// A blocking check that did not finish: a panic (counted, reason `panic`), or a runtime shutting
/// down (`check_failed`: it could not run, which is never a pass).
fn join_failure(
    builder: &crate::builder::Builder,
    payload_id: PayloadId,
    error: tokio::task::JoinError,
) -> &'static str {
    match error.try_into_panic() {
        Ok(panic) => {
            builder_panicked(builder.name(), payload_id, crate::panic::message(&*panic));
            "panic"
        }
        Err(_) => "check_failed",
    }
}

/// One of the slots big payloads are fetched, decoded and hashed in.
async fn check_slot(ctx: &Ctx) -> Option<tokio::sync::OwnedSemaphorePermit> {
    ctx.heavy_checks.clone().acquire_owned().await.ok()
}

/// The builder's answer read and checked against the job; with its transactions as received
/// when the scan read them (written back as they are).
fn check(
    answer: &Bytes,
    version: u8,
    job: &PayloadJob,
    max_size: usize,
) -> Result<(Envelope, Option<Bytes>), &'static str> {
    if answer.len() > max_size {
        return Err("too_large");
    }
    let read = Envelope::parse_answer_with_transactions(version, answer);
    let (envelope, listed) = read.map_err(|error| match error {
        AnswerError::Rpc(e) if e.code == crate::jsonrpc::code::UNKNOWN_PAYLOAD => "unknown_payload",
        AnswerError::Rpc(_) => "rpc_error",
        AnswerError::Malformed(_) => "malformed",
    })?;
    check_attributes(&envelope, job).map_err(|failure| failure.label())?;
    Ok((envelope, listed))
}

fn invalid(builder: &crate::builder::Builder, reason: &'static str) {
    if builder.breaker().record_invalid() {
        builder_metrics::circuit(builder.name(), true);
        tracing::warn!(target: "switchyard::payload", builder = %builder.name(), reason, "circuit breaker opened: the builder runs dry");
    }
}

/// `engine_newPayload` of the re-encoded payload on op-geth; `Ok` only for `VALID`.
async fn validate<S>(validator: S, written: &Written) -> Result<(), &'static str>
where
    S: Service<Request<RpcBody>, Response = Response<RpcBody>>,
{
    let (call, body) = written.new_payload_request(b"\"switchyard\"");
    let mut request = Request::new(body);
    *request.method_mut() = http::Method::POST;
    request.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    request.extensions_mut().insert(call);
    let Ok(response) = validator.oneshot(request).await else {
        return Err("validation_error");
    };
    if forward::forward_error(&response).is_some() || response.status() != StatusCode::OK {
        return Err("validation_error");
    }
    let (_, bytes) = body::into_bytes(response);
    let status = RpcResponse::from_slice(&bytes)
        .ok()
        .and_then(|answer| answer.result)
        .and_then(|result| serde_json::from_slice::<PayloadStatus>(result).ok());
    match status.map(|s| s.status) {
        Some(PayloadStatusEnum::Valid) => Ok(()),
        Some(PayloadStatusEnum::Invalid { .. }) => Err("invalid"),
        Some(PayloadStatusEnum::Syncing) => Err("syncing"),
        Some(PayloadStatusEnum::Accepted) => Err("accepted"),
        None => Err("validation_error"),
    }
}

/// Losses that say nothing of the builder's payload itself (`skipped_*` ones neither: the
/// builder's health already tells).
const NEUTRAL: [&str; 3] = ["policy", "dry_run", "circuit_open"];

fn tell(ctx: &Ctx, decision: &Decision) {
    record_on_span(decision);
    for builder in ctx.builders.iter() {
        if builder.breaker().tick() {
            builder_metrics::circuit(builder.name(), false);
            tracing::info!(target: "switchyard::payload", builder = %builder.name(), "circuit breaker closed");
        }
        if let Some(outcome) = decision
            .builders
            .iter()
            .find(|o| o.builder == *builder.name())
        {
            match outcome.lost {
                None => builder.health().record_payload(true),
                Some(reason) if NEUTRAL.contains(&reason) || reason.starts_with("skipped_") => {}
                Some(_) => builder.health().record_payload(false),
            }
        }
    }
    tracing::info!(
        target: "switchyard::payload",
        block = decision.block_number,
        source = decision.source.label(),
        builder = decision.winner().unwrap_or("-"),
        mode = decision.mode.as_str(),
        outcomes = %decision.outcomes(),
        total_ms = decision.total.as_secs_f64() * 1e3,
        headroom_ms = decision.headroom.as_secs_f64() * 1e3,
        local_ms = decision.local_latency.map(|d| d.as_secs_f64() * 1e3),
        flashblocks = decision.preconfirmations.as_ref().map(|p| p.flashblocks),
        preconfirmations = decision.preconfirmations.as_ref().map(|p| p.broken.unwrap_or("kept")),
        "payload chosen"
    );
    ctx.metrics.record(decision);
    for sink in &ctx.sinks {
        sink(decision);
    }
}

/// The decision on the caller's span (see [`RpcSpan`](crate::trace::RpcSpan)).
fn record_on_span(decision: &Decision) {
    let span = tracing::Span::current();
    if span.is_disabled() {
        return;
    }
    span.record("switchyard.source", decision.source.label());
    if let Some(builder) = decision.winner() {
        span.record("switchyard.builder", builder);
    }
    span.record(
        "switchyard.outcomes",
        tracing::field::display(decision.outcomes()),
    );
    span.record(
        "switchyard.external_root",
        decision
            .builders
            .iter()
            .any(|o| o.lost.is_none() && o.external_root),
    );
    if let Some(preconfirmations) = &decision.preconfirmations {
        span.record(
            "switchyard.preconfirmations",
            preconfirmations.broken.unwrap_or("kept"),
        );
    }
    if let Some(number) = decision.block_number {
        // Signed: OpenTelemetry has no unsigned integer (a u64 would be sent as text).
        span.record(
            "switchyard.block_number",
            i64::try_from(number).unwrap_or(i64::MAX),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary_of(json: &str) -> Option<LocalSummary> {
        LocalSummary::read(&Response::new(RpcBody::new(Bytes::from(json.to_owned()))))
    }

    #[test]
    fn op_geth_payload_summarised_by_lookup() {
        // op-geth's order: the value after the payload.
        let after = r#"{"jsonrpc":"2.0","id":1,"result":{"executionPayload":{"blockNumber":"0x2a","gasUsed":"0x5208","transactions":["0x01","0x02","0x03"],"withdrawals":[]},"blockValue":"0x10"}}"#;
        let summary = summary_of(after).expect("a summary");
        assert_eq!(summary.number, 42);
        assert_eq!(summary.summary.gas_used, 21_000);
        assert_eq!(summary.summary.transactions, 3);
        assert_eq!(summary.summary.block_value, U256::from(16));

        let before = r#"{"jsonrpc":"2.0","id":1,"result":{"blockValue":"0x11","executionPayload":{"blockNumber":"0x1","gasUsed":"0x0","transactions":[]}}}"#;
        let summary = summary_of(before).expect("a summary");
        assert_eq!(summary.summary.transactions, 0);
        assert_eq!(summary.summary.block_value, U256::from(17));

        assert!(summary_of(r#"{"jsonrpc":"2.0","id":1,"result":{}}"#).is_none());
    }
}
