use std::{
    collections::VecDeque,
    sync::{Arc, Mutex},
};

use alloy_primitives::B256;
use alloy_rpc_types_engine::PayloadId;
use bytes::Bytes;
use op_alloy_rpc_types_engine::OpPayloadAttributes;
use tokio::sync::watch;

use crate::{builder::Builder, jsonrpc::RpcResponse, scan};

/// One builder's answer to a forkchoice update with attributes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BuilderFcu {
    /// Not answered yet.
    Pending,
    /// Building, under this (the builder's own) payload id.
    Building(PayloadId),
    /// Not building, and why (a fixed label such as `unsynced`, `fcu_syncing`, `timeout`).
    Failed(&'static str),
}

/// A builder's part in a payload job.
#[derive(Clone, Debug)]
pub struct BuilderJob {
    /// The builder.
    pub builder: Arc<Builder>,
    /// Its forkchoice answer, as it arrives.
    pub fcu: watch::Receiver<BuilderFcu>,
}

impl BuilderJob {
    /// A builder that was not asked, and why.
    pub fn skipped(builder: Arc<Builder>, reason: &'static str) -> Self {
        Self {
            builder,
            fcu: skipped_answer(reason),
        }
    }
}

/// The answer of a builder skipped for `reason`: known at once, never changing, so one closed
/// channel per reason serves every job (a channel each cost an allocation per builder per block).
fn skipped_answer(reason: &'static str) -> watch::Receiver<BuilderFcu> {
    static ANSWERS: Mutex<Vec<(&str, watch::Receiver<BuilderFcu>)>> = Mutex::new(Vec::new());
    let mut answers = ANSWERS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some((_, answer)) = answers.iter().find(|(known, _)| *known == reason) {
        return answer.clone();
    }
    let answer = watch::channel(BuilderFcu::Failed(reason)).1;
    answers.push((reason, answer.clone()));
    answer
}

/// What op-node asked to be built, under op-geth's payload id.
#[derive(Debug)]
pub struct PayloadJob {
    /// The forkchoice method version op-node used.
    pub fcu_version: u8,
    /// The parent: the forkchoice head.
    pub parent: B256,
    /// The timestamp asked for.
    pub timestamp: u64,
    /// The attributes, decoded when some builder was asked to build them; `None` when every
    /// builder was skipped (nothing will be checked against them).
    pub attributes: Option<OpPayloadAttributes>,
    /// Each builder's part, in configuration order.
    pub builders: Vec<BuilderJob>,
    /// The forkchoice update's span, for the getPayload's to link to.
    pub trace: crate::trace::TraceLink,
}

/// Payload jobs by op-geth's payload id, bounded. See the [module docs](super).
#[derive(Debug)]
pub struct PayloadJobs {
    jobs: Mutex<VecDeque<Filed>>,
    /// Jobs whose payload id is still to be read from op-geth's answer (see
    /// [`PayloadJobs::insert_answered`]); filed before any read of `jobs`.
    answered: Mutex<Vec<(Bytes, PayloadJob)>>,
    capacity: usize,
    latest: watch::Sender<Option<(PayloadId, Arc<PayloadJob>)>>,
}

/// A filed job, its id and timestamp kept beside it: eviction reads no job.
#[derive(Debug)]
struct Filed {
    id: PayloadId,
    timestamp: u64,
    job: Arc<PayloadJob>,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The payload id in op-geth's answer to a forkchoice update: `result.payloadId`, found in one
/// pass over the answer; any answer that pass does not settle (an `error` member, an escaped key,
/// a result that is not an object) is read as any upstream answer is and decoded.
pub(super) fn payload_id(answer: &[u8]) -> Option<PayloadId> {
    // `id` and `result` are asked for too so that a duplicate of either is refused, as the long
    // way refuses it.
    let keys = [b"error".as_slice(), b"id", b"result"];
    match scan::members_loosely_nested(answer, keys, b"result", [b"payloadId"]) {
        Ok(([None, _, Some(_)], Some([id]))) => id.and_then(|id| read_payload_id(&answer[id])),
        _ => payload_id_decoded(answer),
    }
}

fn read_payload_id(raw: &[u8]) -> Option<PayloadId> {
    scan::hex_literal(raw)
        .map(PayloadId::new)
        .or_else(|| serde_json::from_slice(raw).ok())
}

/// [`payload_id`] the long way: the answer read as any upstream answer is, then the result's
/// members scanned for it (decoded when the scan cannot read them).
fn payload_id_decoded(answer: &[u8]) -> Option<PayloadId> {
    #[derive(serde::Deserialize)]
    struct Updated {
        #[serde(rename = "payloadId")]
        payload_id: Option<PayloadId>,
    }
    let result = RpcResponse::from_slice(answer).ok()?.result?;
    match scan::members_loosely(result, [b"payloadId"]) {
        Ok([id]) => read_payload_id(&result[id?]),
        Err(_) => serde_json::from_slice::<Updated>(result).ok()?.payload_id,
    }
}

/// Jobs whose timestamp is this far behind the newest are gone: op-node never asks for them.
const HORIZON_SECS: u64 = 60;

impl PayloadJobs {
    /// Keeps at most `capacity` jobs.
    pub fn new(capacity: usize) -> Arc<Self> {
        Arc::new(Self {
            jobs: Mutex::new(VecDeque::new()),
            answered: Mutex::new(Vec::new()),
            capacity: capacity.max(1),
            latest: watch::channel(None).0,
        })
    }

    /// The filed jobs, the answered ones among them.
    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Filed>> {
        self.file_answered();
        lock(&self.jobs)
    }

    /// Files a job (replacing one under the same id) and evicts old ones.
    pub fn insert(&self, id: PayloadId, job: PayloadJob) {
        self.file_answered();
        self.file(id, job);
    }

    /// Files a job under the payload id in `answer`, op-geth's answer to the forkchoice update
    /// (nothing if it has none), after op-node has that answer: the answer is read and the job
    /// filed by a task of its own, which runs once the current one yields (at once outside a
    /// runtime). Any read of the jobs before then files it first, so that a getPayload always
    /// finds it.
    pub fn insert_answered(self: &Arc<Self>, answer: Bytes, job: PayloadJob) {
        lock(&self.answered).push((answer, job));
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                let jobs = Arc::clone(self);
                drop(runtime.spawn(async move { jobs.file_answered() }));
            }
            Err(_) => self.file_answered(),
        }
    }

    fn file_answered(&self) {
        let mut answered = lock(&self.answered);
        for (answer, job) in answered.drain(..) {
            if let Some(id) = payload_id(&answer) {
                self.file(id, job);
            }
        }
    }

    fn file(&self, id: PayloadId, job: PayloadJob) {
        let newest = job.timestamp;
        let job = Arc::new(job);
        let latest = Some((id, job.clone()));
        if self.latest.receiver_count() == 0 {
            // Kept for whoever subscribes next, without waking anyone: no one is watching.
            self.latest.send_if_modified(|kept| {
                *kept = latest;
                false
            });
        } else {
            self.latest.send_replace(latest);
        }
        let mut jobs = lock(&self.jobs);
        let stale = |filed: &Filed| filed.id == id || filed.timestamp + HORIZON_SECS < newest;
        // Usually nothing is: a read-only pass is cheaper than a retain over every job.
        if jobs.iter().any(stale) {
            jobs.retain(|filed| !stale(filed));
        }
        while jobs.len() >= self.capacity {
            jobs.pop_front();
        }
        jobs.push_back(Filed {
            id,
            timestamp: newest,
            job,
        });
    }

    /// The job filed under op-geth's `id`.
    pub fn get(&self, id: &PayloadId) -> Option<Arc<PayloadJob>> {
        self.lock()
            .iter()
            .rev()
            .find(|filed| filed.id == *id)
            .map(|filed| filed.job.clone())
    }

    /// The job filed last and its id, as each is filed (what streams of partial blocks follow).
    pub fn watch(&self) -> watch::Receiver<Option<(PayloadId, Arc<PayloadJob>)>> {
        self.file_answered();
        self.latest.subscribe()
    }

    /// How many jobs are filed.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no job is filed.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(timestamp: u64) -> PayloadJob {
        PayloadJob {
            fcu_version: 3,
            parent: B256::ZERO,
            timestamp,
            attributes: None,
            builders: Vec::new(),
            trace: Default::default(),
        }
    }

    #[test]
    fn bounded_and_evicted_as_the_chain_moves_on() {
        let jobs = PayloadJobs::new(3);
        for i in 0..5u8 {
            jobs.insert(PayloadId::new([i; 8]), job(1_000 + u64::from(i)));
        }
        assert_eq!(jobs.len(), 3);
        assert!(jobs.get(&PayloadId::new([0; 8])).is_none());
        assert!(jobs.get(&PayloadId::new([4; 8])).is_some());
        jobs.insert(PayloadId::new([9; 8]), job(1_000 + HORIZON_SECS + 10));
        assert_eq!(jobs.len(), 1, "a minute later the old ones are gone");
    }

    #[test]
    fn the_same_id_replaces_its_job() {
        let jobs = PayloadJobs::new(8);
        jobs.insert(PayloadId::new([1; 8]), job(5));
        jobs.insert(PayloadId::new([1; 8]), job(6));
        assert_eq!(jobs.len(), 1);
        assert_eq!(
            jobs.get(&PayloadId::new([1; 8])).map(|j| j.timestamp),
            Some(6)
        );
    }

    #[test]
    fn the_latest_job_reaches_watchers_and_waits_for_late_ones() {
        let jobs = PayloadJobs::new(8);
        jobs.insert(PayloadId::new([1; 8]), job(5));
        let mut late = jobs.watch();
        assert_eq!(
            late.borrow().as_ref().map(|(id, _)| *id),
            Some(PayloadId::new([1; 8])),
            "filed while no one watched, still there for the next watcher"
        );
        assert!(!late.has_changed().expect("open"));
        jobs.insert(PayloadId::new([2; 8]), job(6));
        assert!(late.has_changed().expect("open"), "a watcher is told");
        assert_eq!(
            late.borrow_and_update().as_ref().map(|(id, _)| *id),
            Some(PayloadId::new([2; 8]))
        );
    }

    const ANSWER: &[u8] = br#"{"jsonrpc":"2.0","id":1,"result":{"payloadStatus":{"status":"VALID","latestValidHash":null,"validationError":null},"payloadId":"0x0000000000000007"}}"#;

    #[tokio::test]
    async fn an_answered_job_is_found_before_its_task_has_run() {
        let jobs = PayloadJobs::new(8);
        jobs.insert_answered(Bytes::from_static(ANSWER), job(5));
        // No yield since: the filing task has not run, the read files the job itself.
        let found = jobs.get(&PayloadId::new([0, 0, 0, 0, 0, 0, 0, 7]));
        assert_eq!(found.map(|j| j.timestamp), Some(5));
        tokio::task::yield_now().await;
        assert_eq!(jobs.len(), 1, "filed once");
        let no_id = br#"{"jsonrpc":"2.0","id":1,"result":{"payloadStatus":{"status":"SYNCING"},"payloadId":null}}"#;
        jobs.insert_answered(Bytes::from_static(no_id), job(6));
        assert_eq!(
            jobs.len(),
            1,
            "an answer without a payload id files nothing"
        );
    }

    #[test]
    fn an_answered_job_outside_a_runtime_is_filed_at_once() {
        let jobs = PayloadJobs::new(8);
        jobs.insert_answered(Bytes::from_static(ANSWER), job(5));
        assert_eq!(lock(&jobs.jobs).len(), 1);
    }

    #[test]
    fn an_expired_job_goes_wherever_it_sits() {
        let jobs = PayloadJobs::new(8);
        jobs.insert(PayloadId::new([1; 8]), job(1_000));
        // A reorg files an older timestamp behind a newer one.
        jobs.insert(PayloadId::new([2; 8]), job(900));
        jobs.insert(PayloadId::new([3; 8]), job(1_000 + 1));
        assert_eq!(jobs.len(), 2, "900 is more than a minute behind 1001");
        assert!(jobs.get(&PayloadId::new([2; 8])).is_none());
    }

    #[test]
    fn the_one_pass_reads_what_the_long_way_reads() {
        let id = r#""0x0102030405060708""#;
        for answer in [
            format!(
                r#"{{"jsonrpc":"2.0","id":1,"result":{{"payloadStatus":{{"status":"VALID"}},"payloadId":{id}}}}}"#
            ),
            format!(r#"{{"result":{{"payloadId":{id}}},"result":{{"payloadId":{id}}}}}"#),
            format!(r#"{{"result":{{"payloadId":{id}}},"error":null}}"#),
            format!(r#"{{"result":{{"payloadId":{id}}},"error":{{"code":-1,"message":"x"}}}}"#),
            format!(r#"{{"result":{{"payloadId":{id}}},"error":{{"code":"x"}}}}"#),
            format!(r#"{{"result":{{"payloadId":{id}}},"i\u0064":1}}"#),
            r#"{"result":{"payloadId":"0x01020304050607080"}}"#.to_owned(),
            r#"{"result":{"payloadId":"0x01020304050607\u0030\u0038"}}"#.to_owned(),
            format!(r#"{{"result":[{{"payloadId":{id}}}]}}"#),
            format!(r#"{{"result":{{"payloadId":{id}}}}} trailing"#),
        ] {
            assert_eq!(
                payload_id(answer.as_bytes()),
                payload_id_decoded(answer.as_bytes()),
                "{answer}"
            );
        }
    }

    #[test]
    fn payload_id_is_read_from_op_geths_answer_only_where_it_is() {
        let answer = br#"{"jsonrpc":"2.0","id":7,"result":{"payloadStatus":{"status":"VALID","latestValidHash":"0x01","validationError":null},"payloadId":"0x0102030405060708"}}"#;
        assert_eq!(
            payload_id(answer),
            Some(PayloadId::new([1, 2, 3, 4, 5, 6, 7, 8]))
        );
        let no_id = br#"{"jsonrpc":"2.0","id":7,"result":{"payloadStatus":{"status":"SYNCING"},"payloadId":null}}"#;
        assert_eq!(payload_id(no_id), None);
        let error = br#"{"jsonrpc":"2.0","id":7,"error":{"code":-38003,"message":"Invalid payload attributes"}}"#;
        assert_eq!(payload_id(error), None);
        assert_eq!(payload_id(br#"{"result":{"payloadId":"0x01"}}"#), None);
        assert_eq!(payload_id(b"{\"result\":"), None);
        // Only the result's own member counts, as the decode reads it; escapes go to the decode.
        let nested = br#"{"payloadId":"0x0102030405060708","result":{"payloadStatus":{"payloadId":"0x0102030405060708"}}}"#;
        assert_eq!(payload_id(nested), None);
        let escaped = br#"{"result":{"payload\u0049d":"0x0102030405060708"}}"#;
        assert_eq!(
            payload_id(escaped),
            Some(PayloadId::new([1, 2, 3, 4, 5, 6, 7, 8]))
        );
    }
}
