//! Loopback load benchmark: what switchyard adds to each call, next to what a bare forwarding
//! proxy adds, behind the same simulator, all on this machine.
//!
//! `cargo bench --bench load` (add `-- --quick` for a short run)
//!
//! Three configurations (and, for block cycles, the floor below), each behind its own instance
//! of the simulated op-geth (so that their chains do not interfere): *direct* (the client talks
//! to the simulator), *bare* (a minimal hyper proxy with pooled keep-alive connections that
//! parses nothing, written for this bench) and *switchyard* (the real binary, with a simulated
//! builder). Workloads:
//!
//! - `eth_blockNumber` at concurrency 1 and 16;
//! - forkchoice updates with attributes while the builder hangs, with a fourth configuration,
//!   *no-builder* (the same switchyard binary started with no builder): what a hung builder costs
//!   op-node is switchyard's added latency over that one's;
//! - whole block cycles (FCU+attributes → getPayload → newPayload → FCU) of one sequencer, with
//!   small and ~1 MiB payloads (5,000 transactions); 1 MiB ones also at concurrency 16.
//!
//! Configurations are interleaved (direct, bare, switchyard, switchyard, bare, direct, ...: every
//! other round in reverse) over several rounds, and medians taken, since the machine is shared and noisy. The simulators and proxies run as child
//! processes (this binary re-executed, and switchyard's), so that each proxy's peak resident memory
//! can be read from `/proc`. The report gives each figure, the latency each proxy adds to direct,
//! and switchyard's added latency as a ratio of the bare forwarder's; for block cycles, also each
//! step's (FCU+attributes, getPayload, newPayload, FCU), to show where the addition goes.
//!
//! Block cycles also run a fourth configuration, *floor*: direct, with the load generator itself
//! making the exchanges switchyard makes on the builder path (the builder's forkchoice updates and
//! payload, op-geth's validation of it, boost sync; `switchyard_sim::BuilderPath`) against its own
//! op-geth and builder simulators. It is what those exchanges cost on this machine with no proxy
//! at all, the simulators' work on them included: a proxy adds its own hop on top, so switchyard's
//! added latency beyond the floor's is what it adds as a proxy, to be set against the bare
//! forwarder's. Each configuration's simulators' CPU per operation is reported next to the proxy's.
//!
//! Block cycles of one sequencer (without transaction traffic) also run *sidecar*: the least a
//! builder sidecar does, on one thread (`--bare-sidecar`, `load/bare_sidecar.rs`): it reads each
//! call's method, copies chain updates to the builders, and picks a validated builder payload,
//! checking nothing else. switchyard's added latency beyond the floor is also given as a ratio of
//! this sidecar's: what switchyard adds that a sidecar need not. And *checked*: the same sidecar
//! doing what the design asks (each call's JWT checked, each upstream call bounded, the
//! getPayload deadline, attributes and block hash checked), with switchyard's own check functions
//! (`--checks`): the least a sidecar true to the design adds. For 1 MiB cycles of one sequencer,
//! a thread of the bench hashes a 1 MiB block's transactions every 250 ms while the row runs
//! (the keccak floor of the block-hash check, read on the same loaded cores), and the report gives
//! switchyard's CPU per cycle beyond the bare sidecar's and that floor.
//!
//! `LOAD_CANDIDATE=<binary>` adds a fourth configuration: another build of switchyard (with its
//! own simulated op-geth and builder) in the same interleaved rounds, for a change's before and
//! after measured in one run. `LOAD_ONLY=eth|eth-16|fcu|cycle|cycle-16|cycle-4-builders|cycle-1mib|cycle-1mib-16` runs
//! one workload alone, longer (for profiling). `LOAD_CALLGRIND=<dir>` runs the proxies under
//! callgrind and adds the instructions each executes per operation, and their ratio to the bare
//! forwarder's: figures the machine's noise does not move.
//!
//! `LOAD_SWITCHYARD=<binary>` measures that switchyard in place of the one cargo built beside this
//! bench (`scripts/bench-load` passes the operator's `cargo build --release`). Each proxy's binary
//! is dropped from the page cache before it starts, so that its file-backed pages are mapped as
//! after a restart; the RSS column splits what is resident at the end into anonymous memory
//! (the proxy's own) and file-backed pages (its binary's code and data, shared with the page cache).
//!
//! `<this binary> --gateway-forwarder <upstream addr> <secret hex>` is the least gateway built from
//! `switchyard-layers` (JWT checked, call parsed, op-geth's JWT signed, `Forward`), on one thread;
//! `GW_MEASURE`, `GW_GUARDS` (trace span, panic catch, sensitive headers) and `GW_SERVER`
//! (switchyard's server: connection cap, header read timeout, graceful drain) each add one of
//! switchyard's outer parts. `LOAD_CANDIDATE=benches/gateway-candidate.sh` runs it in the
//! candidate's slot: what each part costs (BENCHMARKS.md, eth_* passthrough).
//!
//! After the block cycles at c=1 (small and 1 MiB) comes boost sync's lag: from op-node's
//! `engine_newPayload` reaching op-geth to the same call reaching the builder (both simulators
//! stamp arrivals on the wall clock; `/_sim/log`), for switchyard and for the floor.
//!
//! Block cycles also run while 16 clients send 1,000 transactions a second through the same
//! proxy (the cycle's p50 and p99 against the quiet row's), and with four builders behind
//! switchyard (the floor then relays to four builders itself). With four builders at 1-second
//! blocks come the peer's transaction rates (200 tx/s sustained, 1,000 tx/s bursts), counted at
//! op-geth and at every builder, then rising rates until the first mirrored transaction drops.
//! Then switchyard's resident memory over 100,000 block cycles, read every 10,000
//! (`LOAD_ONLY=flat` alone). `LOAD_ONLY=engine` runs everything but the flashblocks rows.
//!
//! `LOAD_ONLY=tracing` runs eth_* and block cycles with a fifth configuration, *traced*: the same
//! binary with `--tracing`, exporting over OTLP/HTTP to a collector that takes every span, for the
//! cost of tracing as the ratio of what each adds to direct.
//!
//! Last come the flashblocks rows (`LOAD_ONLY=flashblocks` alone): a builder streaming ~100 KiB
//! flashblocks five times a second, switchyard publishing them to 1, 100 and 1,000 loopback
//! subscribers, against the same subscribers reading the builder's stream directly; a stalled
//! subscriber beside 100 readers; and getPayload served from flashblocks against the builder's
//! getPayload (see `load/flashblocks.rs`).

#![allow(
    missing_docs,
    clippy::print_stdout,
    clippy::print_stderr,
    clippy::unwrap_used
)]

use std::{
    collections::BTreeMap,
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    sync::Arc,
};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::{TokioExecutor, TokioIo},
};
use serde_json::json;
use switchyard_sim::{
    BlockReport, BuilderPath, ChainSpec, EngineClient, EngineSim, Fault, Fork, Forks, Sequencer,
    SequencerConfig, SimConfig, secret_hex,
};
use tokio::time::Instant;

#[path = "load/bare_sidecar.rs"]
mod bare_sidecar;
#[path = "load/flashblocks.rs"]
mod flashblocks;

// === child processes ===

/// `--serve-sim <op-geth|builder> <filler count> <filler bytes>`: serve a simulator, print
/// `ADDR <addr> SECRET <hex>`, run until killed.
async fn serve_sim(args: &[String]) {
    let spec = chain_spec();
    let mut config = match args[0].as_str() {
        "builder" => SimConfig::builder(spec),
        _ => SimConfig::op_geth(spec),
    };
    let count: usize = args[1].parse().unwrap();
    let bytes: usize = args[2].parse().unwrap();
    if count > 0 {
        config.filler = Some((count, bytes));
    }
    // Small blocks: room for a whole workload's calls, for the boost-sync lag (from both sides'
    // logs). Big ones: the last fifty blocks' calls (each entry holds its params).
    config.log_capacity = if count == 0 { 16_384 } else { 256 };
    config.retain_blocks = 256;
    // Sixteen sequencers at once: each must find its payload however the others interleave.
    config.payloads_kept = 256;
    let sim = EngineSim::spawn(config).await.unwrap();
    println!("ADDR {} SECRET {}", sim.addr(), sim.secret_hex());
    std::future::pending::<()>().await;
}

/// `--bare-forwarder <upstream addr>`: the floor. Streams each request to the upstream and the
/// answer back, headers and all, through a pooled keep-alive client; parses nothing.
async fn bare_forwarder(upstream: &str) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    println!("ADDR {}", listener.local_addr().unwrap());
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client: Client<HttpConnector, Incoming> =
        Client::builder(TokioExecutor::new()).build(connector);
    let upstream: Arc<str> = Arc::from(format!("http://{upstream}"));
    loop {
        let (stream, _) = listener.accept().await.unwrap();
        let _ = stream.set_nodelay(true);
        let client = client.clone();
        let upstream = upstream.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
                let client = client.clone();
                *req.uri_mut() = upstream.parse().unwrap();
                async move { client.request(req).await }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// `--gateway-forwarder <upstream addr> <secret hex>`: the least a JWT-checking JSON-RPC gateway
/// built from `switchyard-layers` adds: the caller's JWT checked, the envelope parsed once, op-geth's
/// JWT signed, forwarded with `Forward`; on one thread, as switchyard runs. Prints switchyard's
/// `listening` line, so that it can stand in as `LOAD_CANDIDATE` (through a script).
fn gateway_forwarder(upstream: &str, secret: &str) {
    use switchyard_layers::{
        Forward, JwtSecret, MeasureLayer, RequireJwtLayer, RpcMethodLayer, SignJwtLayer,
    };
    let on = |name: &str| std::env::var_os(name).is_some();
    let (measure, guards, server) = (on("GW_MEASURE"), on("GW_GUARDS"), on("GW_SERVER"));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        if measure {
            switchyard::metrics::install().unwrap();
        }
        let secret = JwtSecret::from_hex(secret).unwrap();
        let forward = Forward::new("l2", format!("http://{upstream}").parse().unwrap());
        let service = tower::ServiceBuilder::new()
            .layer(RequireJwtLayer::new(secret.clone()))
            .layer(RpcMethodLayer::new())
            .option_layer(measure.then(MeasureLayer::inbound))
            .layer(SignJwtLayer::new(secret))
            .option_layer(measure.then(|| MeasureLayer::upstream("l2")))
            .service(forward);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        println!(
            "{}",
            json!({"message": "listening", "addr": listener.local_addr().unwrap().to_string()})
        );
        if !guards {
            return gateway_serve(listener, service, server).await;
        }
        let service = tower::ServiceBuilder::new()
            .layer(
                tower_http::trace::TraceLayer::new_for_http()
                    .make_span_with(switchyard_layers::trace::RpcSpan)
                    .on_request(())
                    .on_response(switchyard_layers::trace::RecordStatus)
                    .on_body_chunk(())
                    .on_eos(())
                    .on_failure(()),
            )
            .layer(switchyard_layers::panic::catch_panic_layer())
            .layer(
                tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer::new([
                    http::header::AUTHORIZATION,
                ]),
            )
            .service(service);
        gateway_serve(listener, service, server).await;
    });
}

async fn gateway_serve<S, B>(listener: tokio::net::TcpListener, service: S, server: bool)
where
    S: tower::Service<
            hyper::Request<Incoming>,
            Response = hyper::Response<B>,
            Error = std::convert::Infallible,
        > + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    if server {
        let limits = switchyard::config::ServerLimits::default();
        switchyard::server::serve(listener, service, &limits, std::future::pending()).await;
        return;
    }
    loop {
        let (stream, _) = listener.accept().await.unwrap();
        let _ = stream.set_nodelay(true);
        let service = hyper_util::service::TowerToHyperService::new(service.clone());
        tokio::spawn(async move {
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

struct Process {
    child: Child,
    addr: String,
    secret: Option<[u8; 32]>,
    /// Where callgrind writes this process's counts (`LOAD_CALLGRIND`), if it runs under it.
    callgrind: Option<std::path::PathBuf>,
    /// switchyard's metrics address.
    metrics: Option<String>,
    /// This binary itself, which exits cleanly on SIGTERM.
    graceful: bool,
}

impl Process {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Peak resident memory since the last reset, in KiB.
    fn peak_rss_kib(&self) -> Option<u64> {
        self.status_kib("VmHWM:")
    }

    /// Resident memory now, in KiB.
    fn rss_kib(&self) -> Option<u64> {
        self.status_kib("VmRSS:")
    }

    /// Resident memory now, anonymous and file-backed, in KiB.
    fn resident_split_kib(&self) -> Option<(u64, u64)> {
        Some((self.status_kib("RssAnon:")?, self.status_kib("RssFile:")?))
    }

    /// A `/proc/<pid>/status` figure in KiB.
    fn status_kib(&self, field: &str) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).ok()?;
        status
            .lines()
            .find(|l| l.starts_with(field))?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    }

    /// CPU time used so far, user and system, all threads, in seconds (clock ticks of 10 ms:
    /// read over a whole workload, not per call).
    fn cpu_seconds(&self) -> Option<f64> {
        stat_cpu_seconds(&format!("/proc/{}/stat", self.pid()))
    }

    fn reset_peak_rss(&self) {
        let _ = std::fs::write(format!("/proc/{}/clear_refs", self.pid()), "5");
    }

    /// The sum of switchyard's metric `name` over the series whose labels contain each of
    /// `labels` (0 if none).
    async fn metric_sum(&self, name: &str, labels: &[&str]) -> f64 {
        let Some(metrics) = &self.metrics else {
            return 0.0;
        };
        let page = http_get_text(&format!("http://{metrics}/metrics")).await;
        page.lines()
            .filter_map(|line| {
                let (series, value) = line.rsplit_once(' ')?;
                let rest = series.strip_prefix(name)?;
                (rest.starts_with('{') || rest.is_empty()).then_some(())?;
                labels
                    .iter()
                    .all(|label| rest.contains(label))
                    .then(|| value.parse::<f64>().ok())?
            })
            .sum()
    }

    /// switchyard's getPayload decisions so far, from its metrics
    /// (`switchyard_payload_decisions_total`, by `source`).
    async fn decisions(&self) -> Option<Decisions> {
        let url = format!("http://{}/metrics", self.metrics.as_ref()?);
        let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
        let response = client.get(url.parse().ok()?).await.ok()?;
        let page = response.into_body().collect().await.ok()?.to_bytes();
        let mut decisions = Decisions::default();
        for line in String::from_utf8_lossy(&page).lines() {
            let Some(labels) = line.strip_prefix("switchyard_payload_decisions_total{") else {
                continue;
            };
            let count = line
                .rsplit(' ')
                .next()
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0) as u64;
            decisions.all += count;
            if labels.contains("source=\"builder\"") {
                decisions.builder += count;
            }
        }
        Some(decisions)
    }

    /// Under callgrind: zeroes its instruction count, so that what follows is counted alone.
    fn zero_instructions(&self) {
        if self.callgrind.is_some() {
            callgrind_control("-z", self.pid());
        }
    }

    /// Under callgrind: the instructions executed since [`Process::zero_instructions`] (a dump
    /// is taken, and read back).
    fn instructions(&self) -> Option<u64> {
        let base = self.callgrind.as_ref()?;
        callgrind_control("-d", self.pid());
        let prefix = format!("{}.", base.file_name()?.to_str()?);
        let newest = std::fs::read_dir(base.parent()?)
            .ok()?
            .filter_map(Result::ok)
            .filter_map(|entry| {
                let name = entry.file_name().into_string().ok()?;
                let n: u32 = name.strip_prefix(&prefix)?.parse().ok()?;
                Some((n, entry.path()))
            })
            .max()?;
        let dump = std::fs::read_to_string(newest.1).ok()?;
        dump.lines()
            .find_map(|l| {
                l.strip_prefix("totals:")
                    .or_else(|| l.strip_prefix("summary:"))
            })?
            .trim()
            .parse()
            .ok()
    }
}

/// `LOAD_CALLGRIND=<dir>`: the proxies (bare, switchyard, candidate) run under `valgrind
/// --tool=callgrind`, their counts in `<dir>`, and each workload reports the instructions they
/// executed per operation: a figure the machine's noise does not move.
fn callgrind_dir() -> Option<std::path::PathBuf> {
    std::env::var_os("LOAD_CALLGRIND")
        .filter(|dir| !dir.is_empty())
        .map(std::path::PathBuf::from)
}

/// `program`, or `program` under callgrind writing to `<LOAD_CALLGRIND>/<name>.out`.
fn proxy_command(program: &std::path::Path, name: &str) -> (Command, Option<std::path::PathBuf>) {
    match callgrind_dir() {
        Some(dir) => {
            let base = dir.join(format!("{name}.out"));
            let mut command = Command::new("valgrind");
            command
                .arg("-q")
                .arg("--tool=callgrind")
                // Through a wrapper script's exec too (`LOAD_CANDIDATE=<script>`).
                .arg("--trace-children=yes")
                .arg(format!("--callgrind-out-file={}", base.display()))
                .arg(program);
            (command, Some(base))
        }
        None => (Command::new(program), None),
    }
}

fn callgrind_control(action: &str, pid: u32) {
    let _ = Command::new("callgrind_control")
        .args([action, &pid.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

impl Drop for Process {
    fn drop(&mut self) {
        // This binary's own children exit on SIGTERM, running at-exit handlers: a build
        // instrumented for profile-guided optimisation writes its counts then (see
        // `exit_on_sigterm`). Others (switchyard, valgrind) are killed outright, as before.
        if !self.graceful || !terminate(&self.child) {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// Asks `child` to stop (SIGTERM, through kill(1): this crate has no unsafe code).
fn terminate(child: &Child) -> bool {
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .is_ok_and(|status| status.success())
}

/// In this binary's children: SIGTERM ends the process through `exit`, so that at-exit handlers
/// run (an instrumented build writes its profile then; a killed process writes none). Returns
/// once the handler is in place, before the child announces its address: no SIGTERM can come
/// sooner.
fn exit_on_sigterm() {
    let (ready, registered) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .unwrap();
        runtime.block_on(async {
            let mut terminate =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).unwrap();
            let _ = ready.send(());
            terminate.recv().await;
        });
        std::process::exit(0);
    });
    let _ = registered.recv();
}

fn spawn_self(args: &[&str]) -> Process {
    spawn(Command::new(std::env::current_exe().unwrap()), None, args)
}

/// This binary as a proxy (`--bare-forwarder`): under callgrind with `LOAD_CALLGRIND`.
fn spawn_self_proxy(name: &str, args: &[&str]) -> Process {
    let program = std::env::current_exe().unwrap();
    evict_from_page_cache(&program);
    let (command, callgrind) = proxy_command(&program, name);
    spawn(command, callgrind, args)
}

/// Drops `binary`'s pages from the page cache (all but those a running process maps), so that
/// each proxy maps its binary as read back from disk, as after a restart, and not as the linker
/// or a copy left it: the same bytes read 9.0 MiB RSS idle when read back and 10.2 when freshly
/// copied, a difference that moved peak RSS by more than any change did. GNU dd's
/// `iflag=nocache count=0` asks the kernel (`posix_fadvise(DONTNEED)`) for the whole file.
pub(crate) fn evict_from_page_cache(binary: &std::path::Path) {
    let _ = Command::new("dd")
        .arg(format!("if={}", binary.display()))
        .args(["iflag=nocache", "count=0", "status=none"])
        .status();
}

fn spawn(mut command: Command, callgrind: Option<std::path::PathBuf>, args: &[&str]) -> Process {
    let graceful = std::env::current_exe().is_ok_and(|me| command.get_program() == me);
    let mut child = command
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = lines.next().unwrap().unwrap();
    let words: Vec<&str> = line.split_whitespace().collect();
    let secret = words
        .iter()
        .position(|w| *w == "SECRET")
        .map(|i| parse_secret(words[i + 1]));
    Process {
        child,
        addr: words[1].to_owned(),
        secret,
        callgrind,
        metrics: None,
        graceful,
    }
}

fn parse_secret(hex: &str) -> [u8; 32] {
    let mut secret = [0u8; 32];
    for (i, byte) in secret.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap();
    }
    secret
}

fn spawn_switchyard(
    binary: &str,
    name: &str,
    l2: &Process,
    builders: &[Process],
    extra: &[&str],
) -> Process {
    evict_from_page_cache(std::path::Path::new(binary));
    let (mut command, callgrind) = proxy_command(std::path::Path::new(binary), name);
    let builder_urls: Vec<String> = builders
        .iter()
        .map(|b| format!("http://{}", b.addr))
        .collect();
    let builder_secrets: Vec<String> = builders
        .iter()
        .map(|b| secret_hex(&b.secret.unwrap()))
        .collect();
    if !builders.is_empty() {
        command.args([
            "--builder-url",
            &builder_urls.join(","),
            "--builder-jwt-token",
            &builder_secrets.join(","),
        ]);
    }
    let mut child = command
        .args([
            "--l2-url",
            &format!("http://{}", l2.addr),
            "--l2-jwt-token",
            &secret_hex(&l2.secret.unwrap()),
            "--rpc-port",
            "0",
            // As deployed: metrics on (on a port of its own, unscraped).
            "--metrics-port",
            "0",
            "--log-format",
            "json",
            "--payload-deadline",
            "2s",
        ])
        .args(extra)
        .env(
            "RUST_LOG",
            if std::env::var_os("LOAD_LOG").is_some() {
                "warn,switchyard=info,switchyard::builder=warn"
            } else {
                "warn,switchyard=info,switchyard::payload=warn,switchyard::builder=warn"
            },
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let (addr, metrics) = loop {
        let line = lines.next().unwrap().unwrap();
        let Ok(event) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        if event["message"] == "listening" {
            let metrics = event["metrics"].as_str().map(str::to_owned);
            break (event["addr"].as_str().unwrap().to_owned(), metrics);
        }
    };
    // LOAD_LOG=<file> keeps switchyard's log (its decision lines carry each stage's latency).
    let mut keep = std::env::var("LOAD_LOG")
        .ok()
        .and_then(|path| std::fs::File::create(path).ok());
    std::thread::spawn(move || {
        use std::io::Write;
        for line in lines.map_while(Result::ok) {
            if let Some(file) = &mut keep {
                let _ = writeln!(file, "{line}");
            }
        }
    });
    Process {
        child,
        addr,
        secret: None,
        callgrind,
        metrics,
        graceful: false,
    }
}

// === load ===

fn chain_spec() -> ChainSpec {
    // Genesis now, a generous gas limit so 1 MiB blocks fit.
    ChainSpec {
        genesis_timestamp: switchyard_sim::unix_now() as u64,
        gas_limit: 200_000_000,
        forks: Forks::through(Fork::Isthmus),
        ..Default::default()
    }
}

#[derive(Default)]
struct Samples {
    latencies: Vec<f64>,
    seconds: f64,
    /// A block cycle's steps (FCU+attributes, getPayload, newPayload, FCU), each its own latencies.
    steps: [Vec<f64>; 4],
    /// Each merged round's own p50, in run order: how far rounds of one run drift apart.
    round_p50s: Vec<f64>,
    /// The floor's getPayloads, and those answered with the builder's payload.
    decisions: Option<Decisions>,
}

impl Samples {
    fn merge(&mut self, other: Samples) {
        self.round_p50s.push(other.percentile(0.5));
        self.latencies.extend(other.latencies);
        self.seconds += other.seconds;
        for (mine, theirs) in self.steps.iter_mut().zip(other.steps) {
            mine.extend(theirs);
        }
        Decisions::add(&mut self.decisions, other.decisions);
    }

    fn percentile(&self, q: f64) -> f64 {
        percentile(&self.latencies, q)
    }

    fn throughput(&self) -> f64 {
        self.latencies.len() as f64 / self.seconds
    }
}

fn percentile(latencies: &[f64], q: f64) -> f64 {
    let mut sorted = latencies.to_vec();
    sorted.sort_by(f64::total_cmp);
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

async fn eth_calls(url: &str, secret: [u8; 32], concurrency: usize, per_task: usize) -> Samples {
    let client = EngineClient::new(url, secret).unwrap();
    let body =
        Bytes::from_static(br#"{"jsonrpc":"2.0","id":1,"method":"eth_blockNumber","params":[]}"#);
    let started = Instant::now();
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let client = client.clone();
            let body = body.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(per_task);
                for _ in 0..per_task {
                    let t = Instant::now();
                    let (status, _) = client.post_signed(body.clone()).await.unwrap();
                    assert!(status.is_success());
                    latencies.push(t.elapsed().as_secs_f64() * 1e6);
                }
                latencies
            })
        })
        .collect();
    gather(tasks, started).await
}

/// Every task's latencies, and the time since `started`.
async fn gather<T>(tasks: Vec<tokio::task::JoinHandle<Vec<T>>>, started: Instant) -> Samples
where
    T: Into<Sample>,
{
    let mut per_task = Vec::with_capacity(tasks.len());
    for task in tasks {
        per_task.push(task.await.unwrap());
    }
    gather_done(per_task, started)
}

/// [`gather`], of tasks already done.
fn gather_done<T>(per_task: Vec<Vec<T>>, started: Instant) -> Samples
where
    T: Into<Sample>,
{
    let mut samples = Samples::default();
    for task in per_task {
        for sample in task {
            let sample: Sample = sample.into();
            samples.latencies.push(sample.total);
            for (steps, step) in samples
                .steps
                .iter_mut()
                .zip(sample.steps.into_iter().flatten())
            {
                steps.push(step);
            }
        }
    }
    samples.seconds = started.elapsed().as_secs_f64();
    samples
}

/// One operation's latency (µs), and a block cycle's steps.
struct Sample {
    total: f64,
    steps: Option<[f64; 4]>,
}

impl From<f64> for Sample {
    fn from(total: f64) -> Self {
        Self { total, steps: None }
    }
}

impl From<&BlockReport> for Sample {
    fn from(report: &BlockReport) -> Self {
        let steps = [
            report.fcu,
            report.get_payload,
            report.new_payload,
            report.fcu_head,
        ]
        .map(|d| d.as_secs_f64() * 1e6);
        Self {
            total: steps.iter().sum(),
            steps: Some(steps),
        }
    }
}

/// Forkchoice updates with attributes on the current head, each with a fresh prevRandao.
async fn fcus(url: &str, secret: [u8; 32], n: usize) -> Samples {
    let seq = Sequencer::connect(url, secret, SequencerConfig::new(chain_spec()))
        .await
        .unwrap();
    let client = seq.client().clone();
    let head = seq.head();
    let state = json!({"headBlockHash": head, "safeBlockHash": head, "finalizedBlockHash": head});
    let mut samples = Samples::default();
    let started = Instant::now();
    for i in 0..n {
        let mut attributes = seq.next_attributes();
        attributes.payload_attributes.prev_randao = alloy_primitives::B256::with_last_byte(i as u8)
            ^ alloy_primitives::B256::from(alloy_primitives::U256::from(fastrand::u64(..)));
        let t = Instant::now();
        let _: serde_json::Value = client
            .call("engine_forkchoiceUpdatedV3", json!([state, attributes]))
            .await
            .unwrap();
        samples.latencies.push(t.elapsed().as_secs_f64() * 1e6);
    }
    samples.seconds = started.elapsed().as_secs_f64();
    samples
}

/// Whole block cycles; `concurrency` sequencers on sibling forks (distinct fee recipients). With
/// the target's builder (the floor), each makes the builder path's exchanges itself.
async fn cycles(target: &Target, concurrency: usize, per_task: usize) -> Samples {
    let started = Instant::now();
    let tasks: Vec<_> = (0..concurrency)
        .map(|i| {
            let target = target.clone();
            tokio::spawn(async move {
                let mut config = SequencerConfig::new(chain_spec());
                config.fee_recipient = alloy_primitives::Address::with_last_byte(i as u8 + 1);
                let mut seq = Sequencer::connect(&target.url, target.secret, config)
                    .await
                    .unwrap();
                let mut path = (!target.builders.is_empty()).then(|| {
                    BuilderPath::to_each(
                        target
                            .builders
                            .iter()
                            .map(|(url, secret)| EngineClient::new(url, *secret).unwrap())
                            .collect(),
                    )
                });
                let mut latencies = Vec::with_capacity(per_task);
                for _ in 0..per_task {
                    let report = match &mut path {
                        Some(path) => seq.step_with_builder(path).await,
                        None => seq.step().await,
                    };
                    latencies.push(Sample::from(&report.unwrap()));
                }
                if let Some(path) = &mut path {
                    path.settle().await;
                }
                let decisions = path.map(|path| Decisions {
                    all: path.payloads.0,
                    builder: path.payloads.1,
                });
                (latencies, decisions)
            })
        })
        .collect();
    let mut decisions = None;
    let mut per_task = Vec::with_capacity(tasks.len());
    for task in tasks {
        let (latencies, task_decisions) = task.await.unwrap();
        Decisions::add(&mut decisions, task_decisions);
        per_task.push(latencies);
    }
    let mut samples = gather_done(per_task, started);
    samples.decisions = decisions;
    samples
}

// === transactions ===

/// Senders not yet used: every transaction of a run is new to every simulator.
static NEXT_SENDER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// What a spell of transaction traffic did.
#[derive(Clone, Copy, Default)]
struct Sent {
    sent: u64,
    answered: u64,
    seconds: f64,
}

/// `clients` tasks sending `rate` transactions a second in all (each paced, never catching up in
/// bursts) to `target`, and for the floor to each of its builders too (the load generator
/// mirroring them itself), until `stop` is set.
fn transaction_traffic(
    target: &Target,
    clients: usize,
    rate: f64,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> tokio::task::JoinHandle<Sent> {
    use std::sync::atomic::Ordering;
    let chain_id = chain_spec().chain_id;
    let period = std::time::Duration::from_secs_f64(clients as f64 / rate);
    let each: Vec<EngineClient> = std::iter::once((target.url.clone(), target.secret))
        .chain(target.builders.iter().cloned())
        .map(|(url, secret)| EngineClient::new(&url, secret).unwrap())
        .collect();
    tokio::spawn(async move {
        let started = Instant::now();
        let tasks: Vec<_> = (0..clients)
            .map(|_| {
                let (each, stop) = (each.clone(), stop.clone());
                let sender = NEXT_SENDER.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(async move {
                    let mut pace = tokio::time::interval(period);
                    pace.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                    let mut sent = Sent::default();
                    for nonce in 0.. {
                        pace.tick().await;
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        let params =
                            json!([switchyard_sim::tx::transfer(chain_id, sender, nonce, 100)]);
                        let calls = each
                            .iter()
                            .map(|client| client.call_raw("eth_sendRawTransaction", &params));
                        let answers = futures_util::future::join_all(calls).await;
                        sent.sent += 1;
                        sent.answered += u64::from(answers[0].is_ok());
                    }
                    sent
                })
            })
            .collect();
        let mut all = Sent::default();
        for task in tasks {
            let one = task.await.unwrap();
            all.sent += one.sent;
            all.answered += one.answered;
        }
        all.seconds = started.elapsed().as_secs_f64();
        all
    })
}

/// `transaction_traffic` for `seconds`.
async fn send_transactions(target: &Target, clients: usize, rate: f64, seconds: f64) -> Sent {
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let traffic = transaction_traffic(target, clients, rate, stop.clone());
    tokio::time::sleep(std::time::Duration::from_secs_f64(seconds)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    traffic.await.unwrap()
}

/// Block cycles while 16 clients send 1,000 transactions a second through the same proxy.
async fn cycles_with_traffic(target: Target, per_task: usize) -> Samples {
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let traffic = transaction_traffic(&target, 16, 1_000.0, stop.clone());
    let samples = cycles(&target, 1, per_task).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    traffic.await.unwrap();
    samples
}

/// The block cycle's p50 and p99 with transaction traffic ÷ without, each configuration.
fn print_traffic_cost(rows: &[Row], quiet: &str, busy: &str) {
    let (Some(quiet), Some(busy)) = (
        rows.iter().find(|row| row.workload == quiet),
        rows.iter().find(|row| row.workload == busy),
    ) else {
        return;
    };
    println!(
        "\n| {} ÷ without | p50 | p99 | throughput | p50, ÷ direct's | p99, ÷ direct's |",
        busy.workload
    );
    println!("|---|---:|---:|---:|---:|---:|");
    let ratios = |config: &str| {
        let (b, q) = (
            &busy.results.get(config)?.samples,
            &quiet.results.get(config)?.samples,
        );
        Some([
            b.percentile(0.5) / q.percentile(0.5),
            b.percentile(0.99) / q.percentile(0.99),
            b.throughput() / q.throughput(),
        ])
    };
    // The traffic's own cost on these cores, with no proxy: the floor of the first two columns.
    let Some(direct) = ratios("direct") else {
        return;
    };
    for config in busy.configs() {
        let Some([p50, p99, throughput]) = ratios(config) else {
            continue;
        };
        println!(
            "| {config} | {p50:.2} | {p99:.2} | {throughput:.2} | {:.2} | {:.2} |",
            p50 / direct[0],
            p99 / direct[1],
        );
    }
}

/// Memory over a long run: `blocks` small block cycles through switchyard (with its builder) at
/// c=1, its resident set read after every tenth of them. Flat means the last reading within a
/// few percent of the first (taken after the first tenth, once every pool and map is warm).
async fn flat_memory(setup: &Setup, blocks: usize) {
    let target = setup.target("switchyard");
    let switchyard = &setup.switchyard;
    let chunk = blocks / 10;
    let started = Instant::now();
    let mut readings = Vec::new();
    for done in 1..=10 {
        let samples = cycles(&target, 1, chunk).await;
        let rss = switchyard.rss_kib().unwrap_or_default();
        readings.push((done * chunk, rss, samples.percentile(0.5)));
    }
    println!(
        "\n### Memory over {blocks} block cycles (switchyard, 1 builder, c=1; {:.0} s)\n",
        started.elapsed().as_secs_f64()
    );
    println!("| blocks | switchyard RSS | cycle p50 over the last tenth |");
    println!("|---:|---:|---:|");
    for (blocks, rss, p50) in &readings {
        println!(
            "| {blocks} | {:.1} MiB | {:.0} µs |",
            *rss as f64 / 1024.0,
            p50
        );
    }
    let first = readings[0].1 as f64;
    let (low, high) = readings
        .iter()
        .fold((f64::MAX, 0f64), |(low, high), (_, rss, _)| {
            (low.min(*rss as f64), high.max(*rss as f64))
        });
    println!(
        "\nRSS at the end ÷ after the first tenth: {:.3}; highest ÷ lowest reading: {:.3}",
        readings[9].1 as f64 / first,
        high / low
    );
}

/// The peer's acceptance rates through switchyard at 1-second blocks: 200 tx/s sustained and
/// 1,000 tx/s bursts, each transaction counted at op-geth and at every builder (their logs);
/// then rising rates until switchyard drops the first mirrored transaction.
async fn transaction_rates(setup: &Setup, quick: bool) {
    use std::sync::atomic::{AtomicBool, Ordering};
    let target = setup.target("switchyard");
    let l2 = &setup.sims[2];
    let switchyard = &setup.switchyard;
    // A sequencer making a block a second through switchyard the while.
    let stop = Arc::new(AtomicBool::new(false));
    let sequencer = {
        let (target, stop) = (target.clone(), stop.clone());
        tokio::spawn(async move {
            let mut config = SequencerConfig::new(chain_spec());
            config.block_time = std::time::Duration::from_secs(1);
            config.fee_recipient = alloy_primitives::Address::with_last_byte(0x77);
            let mut seq = Sequencer::connect(&target.url, target.secret, config)
                .await
                .unwrap();
            let mut blocks = 0u64;
            while !stop.load(Ordering::Relaxed) {
                seq.step().await.unwrap();
                blocks += 1;
            }
            blocks
        })
    };
    let dropped = || async {
        switchyard
            .metric_sum(
                "switchyard_builder_queue_dropped_total",
                &["lane=\"transactions\""],
            )
            .await
            + switchyard
                .metric_sum("switchyard_builder_transactions_held_dropped_total", &[])
                .await
    };
    let mirrored = || async {
        switchyard
            .metric_sum(
                "switchyard_builder_lane_calls_total",
                &["kind=\"transaction\""],
            )
            .await
    };
    // Until every builder's transaction lane is empty (or ten seconds).
    let drained = || async {
        for _ in 0..1_000 {
            let depth = switchyard
                .metric_sum("switchyard_builder_queue_depth", &["lane=\"transactions\""])
                .await;
            if depth == 0.0 {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    };
    let arrivals = |addr: String| async move {
        let log = sim_control(
            &addr,
            hyper::Method::GET,
            "/_sim/log?prefix=eth_sendRawTransaction",
        )
        .await;
        log.as_array().map_or(0, Vec::len) as u64
    };
    let clear_logs = || async {
        for sim in std::iter::once(l2).chain(&setup.builders) {
            sim_control(&sim.addr, hyper::Method::DELETE, "/_sim/log").await;
        }
    };
    println!(
        "\n| transactions through switchyard, 1 s blocks, {} builders | offered (tx/s) | sent | answered | at op-geth | at each builder: fewest / most | mirrored dropped |",
        setup.builders.len()
    );
    println!("|---|---:|---:|---:|---:|---|---:|");
    let spells: Vec<(&str, f64, f64, usize)> = if quick {
        vec![
            ("200 tx/s sustained", 200.0, 3.0, 1),
            ("1,000 tx/s bursts", 1_000.0, 1.0, 2),
        ]
    } else {
        vec![
            ("200 tx/s sustained", 200.0, 20.0, 1),
            ("1,000 tx/s bursts", 1_000.0, 1.0, 5),
        ]
    };
    for (name, rate, seconds, bursts) in spells {
        clear_logs().await;
        let dropped_before = dropped().await;
        let mut sent = Sent::default();
        for burst in 0..bursts {
            if burst > 0 {
                // A second's pause between bursts.
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
            let one = send_transactions(&target, 16, rate, seconds).await;
            sent.sent += one.sent;
            sent.answered += one.answered;
        }
        drained().await;
        let mut at_builders = Vec::new();
        for builder in &setup.builders {
            at_builders.push(arrivals(builder.addr.clone()).await);
        }
        println!(
            "| {name} | {rate:.0} | {} | {} | {} | {} / {} | {} |",
            sent.sent,
            sent.answered,
            arrivals(l2.addr.clone()).await,
            at_builders.iter().min().unwrap_or(&0),
            at_builders.iter().max().unwrap_or(&0),
            dropped().await - dropped_before,
        );
    }
    // Rising offered rates, 64 clients, two seconds each, until a mirrored transaction drops.
    println!(
        "\n| offered (tx/s), 64 clients | answered (tx/s) | mirrored to builders (calls/s) | mirrored dropped |"
    );
    println!("|---:|---:|---:|---:|");
    for rate in [2_000.0, 4_000.0, 8_000.0, 16_000.0, 32_000.0] {
        let (dropped_before, mirrored_before) = (dropped().await, mirrored().await);
        let sent = send_transactions(&target, 64, rate, if quick { 1.0 } else { 2.0 }).await;
        drained().await;
        let lost = dropped().await - dropped_before;
        println!(
            "| {rate:.0} | {:.0} | {:.0} | {lost} |",
            sent.answered as f64 / sent.seconds,
            (mirrored().await - mirrored_before) / sent.seconds,
        );
        if lost > 0.0 {
            break;
        }
    }
    stop.store(true, Ordering::Relaxed);
    let blocks = sequencer.await.unwrap();
    let decisions = switchyard.decisions().await.unwrap_or_default();
    println!(
        "({blocks} one-second blocks made meanwhile; switchyard's getPayloads so far: {}, {} with a builder's payload)",
        decisions.all, decisions.builder
    );
}

// === orchestration ===

/// The configurations, in the order each round runs them; `candidate` only with `LOAD_CANDIDATE`,
/// `no-builder` only for forkchoice updates with attributes.
const CONFIGS: [&str; 9] = [
    "direct",
    "floor",
    "bare",
    "sidecar",
    "checked",
    "switchyard",
    "no-builder",
    "traced",
    "candidate",
];

/// `LOAD_CANDIDATE=<switchyard binary>`: another build of switchyard, run as a fourth
/// configuration (its own op-geth and builder simulators) so that a change is measured against
/// the current build in the same run, interleaved.
/// `LOAD_ONLY=tracing`: the rows with a traced switchyard beside the plain one.
fn traced_wanted() -> bool {
    std::env::var("LOAD_ONLY").is_ok_and(|only| only == "tracing")
}

/// The switchyard binary measured: `LOAD_SWITCHYARD=<binary>`, else the one cargo built beside
/// this bench. That one carries the dev-dependencies' features (criterion's and proptest's regex
/// with its Unicode tables): a larger text than an operator's `cargo build --release`, and so a
/// larger RSS. `scripts/bench-load` measures the operator's build.
pub(crate) fn switchyard_binary() -> String {
    std::env::var("LOAD_SWITCHYARD")
        .ok()
        .filter(|path| !path.is_empty())
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_switchyard").to_owned())
}

fn candidate_binary() -> Option<String> {
    std::env::var("LOAD_CANDIDATE")
        .ok()
        .filter(|path| !path.is_empty())
}

struct Setup {
    sims: Vec<Process>,
    /// switchyard's builders.
    builders: Vec<Process>,
    /// The floor's op-geth and builders.
    floor: (Process, Vec<Process>),
    bare: Process,
    /// The bare sidecar (`--bare-sidecar`), its op-geth and builders.
    sidecar: (Process, Vec<Process>, Process),
    /// The same with the design's checks (`--bare-sidecar … --checks <op-node's secret>`).
    checked: (Process, Vec<Process>, Process),
    switchyard: Process,
    /// The candidate's op-geth, builders and switchyard.
    candidate: Option<(Process, Vec<Process>, Process)>,
    /// The same switchyard binary with no builder at all, and its op-geth
    /// ([`Setup::with_no_builder`]): the yardstick of what a hung builder costs op-node.
    no_builder: Option<(Process, Process)>,
    /// `LOAD_ONLY=tracing`: the same switchyard with `--tracing`, its own op-geth and builder,
    /// and the OTLP collector it exports to.
    traced: Option<(Process, Vec<Process>, Process, Process)>,
}

impl Setup {
    /// Simulators filling each block with `filler` (count, bytes) transactions; `builders`
    /// builders behind switchyard (and the candidate, and the floor).
    fn new(filler: (usize, usize), builders: usize) -> Self {
        let filler = [filler.0.to_string(), filler.1.to_string()];
        let sim = |profile: &str| spawn_self(&["--serve-sim", profile, &filler[0], &filler[1]]);
        let some_builders = || (0..builders).map(|_| sim("builder")).collect::<Vec<_>>();
        let sims = vec![sim("op-geth"), sim("op-geth"), sim("op-geth")];
        let switchyard_builders = some_builders();
        let floor = (sim("op-geth"), some_builders());
        let bare = spawn_self_proxy("bare", &["--bare-forwarder", &sims[1].addr]);
        let sidecar = |name: &str, checks: bool| {
            let (l2, builders) = (sim("op-geth"), some_builders());
            // Callers sign with op-geth's secret, which the checking sidecar checks them against.
            let inbound = secret_hex(&l2.secret.unwrap());
            let addrs: Vec<&str> = builders.iter().map(|b| b.addr.as_str()).collect();
            let secrets: Vec<String> = builders
                .iter()
                .map(|b| secret_hex(&b.secret.unwrap()))
                .collect();
            let (addrs, secrets) = (addrs.join(","), secrets.join(","));
            let mut args = vec!["--bare-sidecar", &l2.addr, &addrs, &secrets];
            if checks {
                args.extend_from_slice(&["--checks", &inbound]);
            }
            let proxy = spawn_self_proxy(name, &args);
            (l2, builders, proxy)
        };
        let checked = sidecar("checked", true);
        let sidecar = sidecar("sidecar", false);
        let switchyard = spawn_switchyard(
            &switchyard_binary(),
            "switchyard",
            &sims[2],
            &switchyard_builders,
            &[],
        );
        let candidate = candidate_binary().map(|binary| {
            let (l2, builders) = (sim("op-geth"), some_builders());
            let switchyard = spawn_switchyard(&binary, "candidate", &l2, &builders, &[]);
            (l2, builders, switchyard)
        });
        let traced = traced_wanted().then(|| {
            let (l2, builders) = (sim("op-geth"), some_builders());
            let collector = spawn_self(&["--serve-otlp-sink"]);
            let endpoint = format!("http://{}", collector.addr);
            let switchyard = spawn_switchyard(
                &switchyard_binary(),
                "traced",
                &l2,
                &builders,
                &[
                    "--tracing",
                    "--otlp-protocol",
                    "http/protobuf",
                    "--otlp-endpoint",
                    &endpoint,
                ],
            );
            (l2, builders, switchyard, collector)
        });
        Self {
            sims,
            builders: switchyard_builders,
            floor,
            bare,
            sidecar,
            checked,
            switchyard,
            candidate,
            no_builder: None,
            traced,
        }
    }

    /// Adds the `no-builder` configuration, which forkchoice-update rows run.
    fn with_no_builder(mut self) -> Self {
        let l2 = spawn_self(&["--serve-sim", "op-geth", "0", "0"]);
        let switchyard = spawn_switchyard(&switchyard_binary(), "no-builder", &l2, &[], &[]);
        self.no_builder = Some((l2, switchyard));
        self
    }

    /// The configurations this setup runs; the floor only for block cycles (for other calls it
    /// is direct), the bare sidecar only for one sequencer's, without traffic (it keeps one job
    /// and mirrors no transactions); switchyard without a builder only for forkchoice updates.
    fn configs(
        &self,
        cycles: bool,
        one_sequencer: bool,
        fcus: bool,
    ) -> impl Iterator<Item = &'static str> + use<> {
        let with_candidate = self.candidate.is_some();
        let with_traced = self.traced.is_some();
        let with_no_builder = fcus && self.no_builder.is_some();
        CONFIGS.into_iter().filter(move |config| match *config {
            "candidate" => with_candidate,
            "traced" => with_traced,
            "no-builder" => with_no_builder,
            "floor" => cycles,
            "sidecar" | "checked" => cycles && one_sequencer,
            _ => true,
        })
    }

    /// Every builder simulator behind a switchyard.
    fn builders(&self) -> impl Iterator<Item = &Process> {
        self.builders
            .iter()
            .chain(self.candidate.iter().flat_map(|(_, builders, _)| builders))
            .chain(self.traced.iter().flat_map(|(_, builders, _, _)| builders))
    }

    fn target(&self, config: &str) -> Target {
        let at = |process: &Process, l2: &Process| Target {
            url: format!("http://{}", process.addr),
            secret: l2.secret.unwrap(),
            builders: Vec::new(),
        };
        match config {
            "direct" => at(&self.sims[0], &self.sims[0]),
            "floor" => {
                let (l2, builders) = &self.floor;
                Target {
                    builders: builders
                        .iter()
                        .map(|b| (format!("http://{}", b.addr), b.secret.unwrap()))
                        .collect(),
                    ..at(l2, l2)
                }
            }
            "bare" => at(&self.bare, &self.sims[1]),
            "sidecar" => at(&self.sidecar.2, &self.sidecar.0),
            "checked" => at(&self.checked.2, &self.checked.0),
            "candidate" => {
                let (l2, _, switchyard) = self.candidate.as_ref().unwrap();
                at(switchyard, l2)
            }
            "no-builder" => {
                let (l2, switchyard) = self.no_builder.as_ref().unwrap();
                at(switchyard, l2)
            }
            "traced" => {
                let (l2, _, switchyard, _) = self.traced.as_ref().unwrap();
                at(switchyard, l2)
            }
            _ => at(&self.switchyard, &self.sims[2]),
        }
    }

    /// The simulators a configuration's calls reach.
    fn upstreams(&self, config: &str) -> Vec<&Process> {
        fn with<'a>(l2: &'a Process, builders: &'a [Process]) -> Vec<&'a Process> {
            std::iter::once(l2).chain(builders).collect()
        }
        match config {
            "direct" => vec![&self.sims[0]],
            "floor" => with(&self.floor.0, &self.floor.1),
            "bare" => vec![&self.sims[1]],
            "sidecar" => with(&self.sidecar.0, &self.sidecar.1),
            "checked" => with(&self.checked.0, &self.checked.1),
            "candidate" => {
                let (l2, builders, _) = self.candidate.as_ref().unwrap();
                with(l2, builders)
            }
            "no-builder" => vec![&self.no_builder.as_ref().unwrap().0],
            "traced" => {
                let (l2, builders, _, collector) = self.traced.as_ref().unwrap();
                let mut all = with(l2, builders);
                all.push(collector);
                all
            }
            _ => with(&self.sims[2], &self.builders),
        }
    }

    fn proxy(&self, config: &str) -> Option<&Process> {
        match config {
            "bare" => Some(&self.bare),
            "sidecar" => Some(&self.sidecar.2),
            "checked" => Some(&self.checked.2),
            "switchyard" => Some(&self.switchyard),
            "candidate" => self.candidate.as_ref().map(|(_, _, switchyard)| switchyard),
            "no-builder" => self.no_builder.as_ref().map(|(_, switchyard)| switchyard),
            "traced" => self.traced.as_ref().map(|(_, _, switchyard, _)| switchyard),
            _ => None,
        }
    }
}

/// Where a configuration's calls go: the URL (a proxy's or op-geth's) and op-geth's JWT secret;
/// for the floor, the builders the load generator itself makes the builder path's exchanges with
/// (and mirrors transactions to).
#[derive(Clone)]
struct Target {
    url: String,
    secret: [u8; 32],
    builders: Vec<(String, [u8; 32])>,
}

/// A configuration's samples, and what its proxy did over the workload: peak RSS, CPU seconds,
/// instructions executed (under callgrind), getPayload decisions (switchyard's, or the floor's);
/// and the CPU seconds of the simulators it reaches.
#[derive(Default)]
struct Measured {
    samples: Samples,
    peak_rss_kib: Option<u64>,
    /// Resident at the workload's end: anonymous (switchyard's own memory) and file-backed (its
    /// binary's pages the kernel mapped, shared with the page cache), in KiB.
    resident_split_kib: Option<(u64, u64)>,
    cpu_seconds: Option<f64>,
    simulators_cpu_seconds: f64,
    instructions: Option<u64>,
    /// getPayloads answered over the workload, and how many with the builder's payload.
    decisions: Option<Decisions>,
}

#[derive(Clone, Copy, Debug, Default)]
struct Decisions {
    all: u64,
    builder: u64,
}

impl Decisions {
    /// Adds `more` (if any) to `sum` (none yet: `more` itself).
    fn add(sum: &mut Option<Decisions>, more: Option<Decisions>) {
        if let Some(more) = more {
            let sum = sum.get_or_insert_default();
            sum.all += more.all;
            sum.builder += more.builder;
        }
    }
}

struct Row {
    workload: String,
    results: BTreeMap<&'static str, Measured>,
    unit: &'static str,
    /// 1 MiB block cycles: the keccak floor read beside the row (see [`KeccakFloor`]), in ms.
    keccak_floor_ms: Option<f64>,
}

impl Row {
    /// The configurations measured, in run order.
    fn configs(&self) -> impl Iterator<Item = &'static str> + '_ {
        CONFIGS
            .into_iter()
            .filter(|config| self.results.contains_key(config))
    }
}

async fn run_workload<F, Fut>(
    setup: &Setup,
    workload: &str,
    unit: &'static str,
    rounds: usize,
    run: F,
) -> Row
where
    F: Fn(Target) -> Fut,
    Fut: std::future::Future<Output = Samples>,
{
    eprint!("{workload}: ");
    // Block cycles (counted in blocks) also run the floor; those of one sequencer without
    // traffic (the names of the others say "c=16", "-16" or traffic) the bare sidecar too.
    let cycles = unit == "block";
    let one_sequencer =
        !workload.contains("c=16") && !workload.ends_with("-16") && workload != TRAFFIC_ROW;
    let fcus = workload == FCU_ROW;
    let mut results: BTreeMap<&'static str, Measured> = BTreeMap::new();
    let mut decisions_before = BTreeMap::new();
    for config in setup.configs(cycles, one_sequencer, fcus) {
        if let Some(p) = setup.proxy(config) {
            // Read before the count is zeroed: the metrics page is not the workload's.
            if let Some(decisions) = p.decisions().await {
                decisions_before.insert(config, decisions);
            }
            p.reset_peak_rss();
            p.zero_instructions();
        }
    }
    let simulators_cpu = |config: &str| -> f64 {
        setup
            .upstreams(config)
            .into_iter()
            .filter_map(Process::cpu_seconds)
            .sum()
    };
    for round in 0..rounds {
        // Every other round runs in reverse, so that no configuration always follows the same
        // one: with a fixed order, an A/A run (the same build in two slots) read 1.025 on FCUs.
        let mut order: Vec<_> = setup.configs(cycles, one_sequencer, fcus).collect();
        if round % 2 == 1 {
            order.reverse();
        }
        for config in order {
            let proxy = setup.proxy(config);
            let cpu_before = proxy.and_then(Process::cpu_seconds);
            let simulators_before = simulators_cpu(config);
            let samples = run(setup.target(config)).await;
            let cpu = cpu_before.zip(proxy.and_then(Process::cpu_seconds));
            let entry = results.entry(config).or_default();
            entry.simulators_cpu_seconds += simulators_cpu(config) - simulators_before;
            entry.samples.merge(samples);
            if let Some((before, after)) = cpu {
                *entry.cpu_seconds.get_or_insert(0.0) += after - before;
            }
            eprint!(".");
        }
    }
    for config in setup.configs(cycles, one_sequencer, fcus) {
        let peak = setup.proxy(config).and_then(Process::peak_rss_kib);
        let split = setup.proxy(config).and_then(Process::resident_split_kib);
        let instructions = setup.proxy(config).and_then(Process::instructions);
        let decisions = match (setup.proxy(config), decisions_before.get(config)) {
            (Some(p), Some(before)) => p.decisions().await.map(|after| Decisions {
                all: after.all - before.all,
                builder: after.builder - before.builder,
            }),
            _ => None,
        };
        if let Some(entry) = results.get_mut(config) {
            entry.peak_rss_kib = peak;
            entry.resident_split_kib = split;
            entry.instructions = instructions;
            entry.decisions = decisions.or(entry.samples.decisions);
        }
    }
    eprintln!();
    Row {
        workload: workload.to_owned(),
        results,
        unit,
        keccak_floor_ms: None,
    }
}

/// For block cycles: how many getPayloads switchyard answered with the builder's payload (the
/// figures above measure the builder path only when it is all of them).
fn print_decisions(rows: &[Row]) {
    let measured = |row: &Row, config: &str| {
        row.results
            .get(config)
            .and_then(|m| m.decisions)
            .filter(|d| d.all > 0)
    };
    if !rows
        .iter()
        .any(|row| row.configs().any(|c| measured(row, c).is_some()))
    {
        return;
    }
    println!("\n| workload | config | getPayloads | with the builder's payload |");
    println!("|---|---|---:|---:|");
    for row in rows {
        for config in row.configs() {
            if let Some(d) = measured(row, config) {
                println!(
                    "| {} | {config} | {} | {} |",
                    row.workload, d.all, d.builder
                );
            }
        }
    }
}

/// Under `LOAD_CALLGRIND`: each proxy's instructions per operation, and their ratio to the bare
/// forwarder's for the same workload.
fn print_instructions(rows: &[Row]) {
    let per_op = |row: &Row, config: &str| {
        let measured = row.results.get(config)?;
        Some(measured.instructions? as f64 / measured.samples.latencies.len().max(1) as f64)
    };
    if !rows.iter().any(|row| per_op(row, "bare").is_some()) {
        return;
    }
    println!("\n| workload | proxy | instructions per op | ÷ bare |");
    println!("|---|---|---:|---:|");
    for row in rows {
        let bare = per_op(row, "bare");
        for config in row.configs() {
            let Some(ours) = per_op(row, config) else {
                continue;
            };
            let ratio = bare.map_or("-".to_owned(), |bare| format!("{:.2}", ours / bare));
            println!("| {} | {config} | {ours:.0} | {ratio} |", row.workload);
        }
    }
}

fn print(rows: &[Row]) {
    println!(
        "\n| workload | config | p50 (µs) | p99 (µs) | throughput (op/s) | added p50 vs direct (µs) | added p99 vs direct (µs) | peak RSS (MiB; at the end, anonymous + file-backed) | proxy CPU per op (µs) | simulators' CPU per op (µs) |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for row in rows {
        let direct = &row.results["direct"].samples;
        for config in row.configs() {
            let Measured {
                samples,
                peak_rss_kib: rss,
                resident_split_kib: split,
                cpu_seconds: cpu,
                simulators_cpu_seconds: simulators,
                ..
            } = &row.results[config];
            let per_op = |seconds: f64| seconds * 1e6 / samples.latencies.len().max(1) as f64;
            println!(
                "| {} | {config} | {:.0} | {:.0} | {:.0} {} | {:+.0} | {:+.0} | {} | {} | {:.0} |",
                row.workload,
                samples.percentile(0.5),
                samples.percentile(0.99),
                samples.throughput(),
                row.unit,
                samples.percentile(0.5) - direct.percentile(0.5),
                samples.percentile(0.99) - direct.percentile(0.99),
                match (rss, split) {
                    (Some(peak), Some((anon, file))) => format!(
                        "{:.1} ({:.1} + {:.1})",
                        *peak as f64 / 1024.0,
                        *anon as f64 / 1024.0,
                        *file as f64 / 1024.0
                    ),
                    (Some(peak), None) => format!("{:.1}", *peak as f64 / 1024.0),
                    _ => "-".to_owned(),
                },
                cpu.map_or("-".to_owned(), |s| format!("{:.0}", per_op(s))),
                per_op(*simulators),
            );
        }
    }
    print_steps(rows);
    print_decisions(rows);
    print_instructions(rows);
    println!(
        "\n| workload | config | added ÷ bare added, p50 | p99 | throughput ÷ bare | p50 ÷ bare, each round: min / median / max | added beyond the floor's ÷ bare added, p50 (each round: min / median / max) | added beyond the floor's ÷ the bare sidecar's, p50 (each round: min / median / max) | ÷ the checking sidecar's |"
    );
    println!("|---|---|---:|---:|---:|---|---:|---:|---:|");
    for row in rows {
        let direct = &row.results["direct"].samples;
        let bare = &row.results["bare"].samples;
        let floor = row.results.get("floor").map(|m| &m.samples);
        let sidecar = row.results.get("sidecar").map(|m| &m.samples);
        let checked = row.results.get("checked").map(|m| &m.samples);
        let added = |s: &Samples, q: f64| s.percentile(q) - direct.percentile(q);
        for config in row.configs().filter(|c| !["direct", "bare"].contains(c)) {
            let ours = &row.results[config].samples;
            // The same ratio within each round (all configurations ran back to back in it).
            let mut per_round: Vec<f64> = ours
                .round_p50s
                .iter()
                .zip(&bare.round_p50s)
                .zip(&direct.round_p50s)
                .map(|((ours, bare), direct)| (ours - direct) / (bare - direct))
                .collect();
            per_round.sort_by(f64::total_cmp);
            // What a proxy adds on top of the builder path's own exchanges (block cycles): over
            // all samples, and each round's own (min / median / max).
            let beyond_floor = floor
                .filter(|_| config != "floor")
                .map_or("-".to_owned(), |floor| beyond(ours, floor, bare, direct));
            // Against the least any sidecar adds there, on one thread; and the least one that
            // makes the design's payload checks adds.
            let against = |yardstick: Option<&Samples>, skip: &[&str]| {
                floor
                    .zip(yardstick)
                    .filter(|_| !skip.contains(&config))
                    .map_or("-".to_owned(), |(floor, sidecar)| {
                        beyond(ours, floor, sidecar, floor)
                    })
            };
            let beyond_checked = against(checked, &["floor", "sidecar", "checked"]);
            let beyond_sidecar = against(sidecar, &["floor", "sidecar"]);
            println!(
                "| {} | {config} | {:.2} | {:.2} | {:.2} | {:.2} / {:.2} / {:.2} | {beyond_floor} | {beyond_sidecar} | {beyond_checked} |",
                row.workload,
                added(ours, 0.5) / added(bare, 0.5),
                added(ours, 0.99) / added(bare, 0.99),
                ours.throughput() / bare.throughput(),
                per_round.first().copied().unwrap_or(f64::NAN),
                percentile(&per_round, 0.5),
                per_round.last().copied().unwrap_or(f64::NAN),
            );
        }
    }
    print_hung_builder_cost(rows);
    print_cpu_beyond_keccak(rows);
}

/// User and system CPU time from a `/proc/.../stat` file, in seconds (clock ticks of 10 ms).
fn stat_cpu_seconds(path: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(path).ok()?;
    // Fields after the command name (which may hold spaces): state is field 3, utime 14.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / 100.0)
}

/// A 1 MiB block's filler: how many transactions the simulators add, and their calldata bytes.
const BIG_BLOCK: (usize, usize) = (5_000, 100);

/// 1 MiB block cycles, one sequencer: switchyard's CPU per cycle beyond the bare sidecar's (the
/// same exchanges, no checks) and beyond the keccak floor of its block-hash check, read in this
/// run (the issue's target: at most 2 ms).
fn print_cpu_beyond_keccak(rows: &[Row]) {
    let Some(row) = rows
        .iter()
        .find(|row| ["cycle-1mib", "block cycle 1MiB c=1"].contains(&row.workload.as_str()))
    else {
        return;
    };
    let per_cycle_ms = |config: &str| {
        let measured = row.results.get(config)?;
        let cycles = measured.samples.latencies.len().max(1) as f64;
        Some(measured.cpu_seconds? * 1e3 / cycles)
    };
    let (Some(sidecar), Some(keccak)) = (per_cycle_ms("sidecar"), row.keccak_floor_ms) else {
        return;
    };
    println!(
        "\n| {}: CPU per cycle (ms) | this configuration | the bare sidecar | keccak floor, read beside the row | beyond both |",
        row.workload
    );
    println!("|---|---:|---:|---:|---:|");
    for config in ["switchyard", "candidate"] {
        if let Some(ours) = per_cycle_ms(config) {
            println!(
                "| {config} | {ours:.2} | {sidecar:.2} | {keccak:.2} | {:.2} |",
                ours - sidecar - keccak
            );
        }
    }
}

/// The floor of the 1 MiB block-hash check, read while the row runs: keccak over each of the
/// block's transactions once (the transactions trie hashes each inside its leaf, then the
/// branches above them), the transactions made as the simulators make them, in a thread of the
/// bench's own. A pass every 250 ms (2–3 % of a core), on the cores the row loads: this
/// host's speed drifts by half within minutes, and keccak runs slower beside the load than
/// alone, so a floor read elsewhere or at another time does not hold switchyard's to account.
struct KeccakFloor {
    stop: Arc<std::sync::atomic::AtomicBool>,
    sampler: std::thread::JoinHandle<Option<f64>>,
}

impl KeccakFloor {
    fn start() -> Self {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopping = stop.clone();
        let sampler = std::thread::spawn(move || {
            let chain_id = ChainSpec::default().chain_id;
            let (count, data_len) = BIG_BLOCK;
            let transactions: Vec<_> = (0..count as u64)
                .map(|i| switchyard_sim::tx::transfer(chain_id, 0xf111_0000 + i, 1, data_len))
                .collect();
            // CPU time, as switchyard's is read: preemption does not count.
            let cpu = || stat_cpu_seconds("/proc/thread-self/stat");
            let started = cpu()?;
            let mut passes = 0u32;
            while !stopping.load(std::sync::atomic::Ordering::Relaxed) {
                for transaction in &transactions {
                    std::hint::black_box(alloy_primitives::keccak256(transaction));
                }
                passes += 1;
                // Pacing a sampler, not waiting for anything.
                std::thread::sleep(std::time::Duration::from_millis(250));
            }
            Some((cpu()? - started) * 1e3 / f64::from(passes.max(1)))
        });
        Self { stop, sampler }
    }

    /// CPU per pass, in ms.
    fn finish(self) -> Option<f64> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.sampler.join().ok().flatten()
    }
}

/// Forkchoice updates with attributes: what a hung builder costs op-node, as switchyard's added
/// latency over the same binary's with no builder, and that one's over the bare forwarder's (the
/// issue's two targets); over all samples, and each round's own (min / median / max).
fn print_hung_builder_cost(rows: &[Row]) {
    let Some(row) = rows
        .iter()
        .find(|row| row.results.contains_key("no-builder"))
    else {
        return;
    };
    let direct = &row.results["direct"].samples;
    println!(
        "\n| {} | added p50 ratio (each round: min / median / max) |",
        row.workload
    );
    println!("|---|---:|");
    for (what, ours, yardstick) in [
        ("hung builder ÷ no builder", "switchyard", "no-builder"),
        ("no builder ÷ bare", "no-builder", "bare"),
    ] {
        let ours = &row.results[ours].samples;
        let yardstick = &row.results[yardstick].samples;
        println!("| {what} | {} |", beyond(ours, direct, yardstick, direct));
    }
}

/// `ours`'s p50 beyond `floor`'s, as a ratio of `yardstick`'s beyond `base`'s: over all samples,
/// and each round's own (min / median / max; all configurations ran back to back in a round).
fn beyond(ours: &Samples, floor: &Samples, yardstick: &Samples, base: &Samples) -> String {
    let mut per_round: Vec<f64> = ours
        .round_p50s
        .iter()
        .zip(&floor.round_p50s)
        .zip(yardstick.round_p50s.iter().zip(&base.round_p50s))
        .map(|((ours, floor), (yardstick, base))| (ours - floor) / (yardstick - base))
        .collect();
    per_round.sort_by(f64::total_cmp);
    format!(
        "{:.2} ({:.2} / {:.2} / {:.2})",
        (ours.percentile(0.5) - floor.percentile(0.5))
            / (yardstick.percentile(0.5) - base.percentile(0.5)),
        per_round.first().copied().unwrap_or(f64::NAN),
        percentile(&per_round, 0.5),
        per_round.last().copied().unwrap_or(f64::NAN),
    )
}

/// `--tracing` against the same binary without it: the latency each adds to direct, as a ratio,
/// over all rounds and within each round.
fn print_tracing_cost(rows: &[Row]) {
    println!(
        "\n| workload | traced added ÷ untraced added, p50 | p99 | throughput ratio | p50 ratio each round: min / median / max | proxy CPU per op ratio |"
    );
    println!("|---|---:|---:|---:|---|---:|");
    for row in rows {
        let (Some(traced), Some(plain)) =
            (row.results.get("traced"), row.results.get("switchyard"))
        else {
            continue;
        };
        let direct = &row.results["direct"].samples;
        let added = |s: &Samples, q: f64| s.percentile(q) - direct.percentile(q);
        let mut per_round: Vec<f64> = traced
            .samples
            .round_p50s
            .iter()
            .zip(&plain.samples.round_p50s)
            .zip(&direct.round_p50s)
            .map(|((t, p), d)| (t - d) / (p - d))
            .collect();
        per_round.sort_by(f64::total_cmp);
        let cpu = traced
            .cpu_seconds
            .zip(plain.cpu_seconds)
            .map_or("-".to_owned(), |(t, p)| format!("{:.2}", t / p));
        println!(
            "| {} | {:.2} | {:.2} | {:.2} | {:.2} / {:.2} / {:.2} | {cpu} |",
            row.workload,
            added(&traced.samples, 0.5) / added(&plain.samples, 0.5),
            added(&traced.samples, 0.99) / added(&plain.samples, 0.99),
            traced.samples.throughput() / plain.samples.throughput(),
            per_round.first().copied().unwrap_or(f64::NAN),
            percentile(&per_round, 0.5),
            per_round.last().copied().unwrap_or(f64::NAN),
        );
    }
}

/// Boost sync's lag: from op-node's `engine_newPayload` reaching op-geth to the same call reaching
/// the builder, from both simulators' logs (wall-clock arrival stamps, one machine), for
/// switchyard and for the floor (the load generator relaying it itself, no proxy).
struct BoostSyncLag {
    workload: &'static str,
    pairs: Vec<(&'static str, String, String)>,
}

impl BoostSyncLag {
    /// Forgets what the simulators logged so far.
    async fn start(setup: &Setup, workload: &'static str) -> Self {
        let pairs = vec![
            (
                "switchyard",
                setup.sims[2].addr.clone(),
                setup.builders[0].addr.clone(),
            ),
            (
                "floor",
                setup.floor.0.addr.clone(),
                setup.floor.1[0].addr.clone(),
            ),
        ];
        for (_, l2, builder) in &pairs {
            for addr in [l2, builder] {
                sim_control(addr, hyper::Method::DELETE, "/_sim/log").await;
            }
        }
        Self { workload, pairs }
    }

    async fn print(&self) {
        println!(
            "\n| boost sync lag, {} (builder's arrival − op-geth's, op-node's newPayload) | p50 (ms) | p99 (ms) | blocks |",
            self.workload
        );
        println!("|---|---:|---:|---:|");
        for (config, l2, builder) in &self.pairs {
            let path = "/_sim/log?prefix=engine_newPayload";
            let l2 = sim_control(l2, hyper::Method::GET, path).await;
            let builder = sim_control(builder, hyper::Method::GET, path).await;
            // op-geth sees a block twice when a builder built it (switchyard's validation, then
            // op-node's newPayload): the last arrival is op-node's.
            let mut at_l2 = std::collections::HashMap::new();
            for call in l2.as_array().into_iter().flatten() {
                at_l2.insert(call["params_hash"].as_u64(), call["unix_nanos"].as_u64());
            }
            let mut lags: Vec<f64> = builder
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|call| {
                    let at_builder = call["unix_nanos"].as_u64()?;
                    let at_l2 = (*at_l2.get(&call["params_hash"].as_u64())?)?;
                    Some((at_builder as f64 - at_l2 as f64) / 1e6)
                })
                .collect();
            lags.sort_by(f64::total_cmp);
            println!(
                "| {config} | {:.3} | {:.3} | {} |",
                percentile(&lags, 0.5),
                percentile(&lags, 0.99),
                lags.len()
            );
        }
    }
}

/// The body of a GET, as text.
async fn http_get_text(url: &str) -> String {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let response = client.get(url.parse().unwrap()).await.unwrap();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8_lossy(&body).into_owned()
}

/// A simulator's control endpoint: the JSON it answers (`Null` if none).
async fn sim_control(addr: &str, method: hyper::Method, path: &str) -> serde_json::Value {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let request = hyper::Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let response = client.request(request).await.unwrap();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    serde_json::from_slice(&body).unwrap_or_default()
}

/// `--serve-otlp-sink`: an OTLP/HTTP collector that takes every export and answers 200; prints
/// `ADDR <addr>`.
async fn otlp_sink() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    println!("ADDR {}", listener.local_addr().unwrap());
    loop {
        let (stream, _) = listener.accept().await.unwrap();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(|req: hyper::Request<Incoming>| async move {
                let _ = req.into_body().collect().await;
                Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(Bytes::new())))
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// Where a block cycle's added latency goes: each step's p50, and its addition to direct's.
fn print_steps(rows: &[Row]) {
    let rows: Vec<&Row> = rows
        .iter()
        .filter(|row| !row.results["direct"].samples.steps[0].is_empty())
        .collect();
    if rows.is_empty() {
        return;
    }
    println!(
        "\n| workload | config | FCU+attrs p50 (µs) | getPayload | newPayload | FCU | added vs direct, each step |"
    );
    println!("|---|---|---:|---:|---:|---:|---|");
    for row in rows {
        let direct = &row.results["direct"].samples.steps;
        for config in row.configs() {
            let steps = &row.results[config].samples.steps;
            let p50: Vec<f64> = steps.iter().map(|s| percentile(s, 0.5)).collect();
            let added: Vec<String> = p50
                .iter()
                .zip(direct)
                .map(|(p, d)| format!("{:+.0}", p - percentile(d, 0.5)))
                .collect();
            println!(
                "| {} | {config} | {:.0} | {:.0} | {:.0} | {:.0} | {} |",
                row.workload,
                p50[0],
                p50[1],
                p50[2],
                p50[3],
                added.join(" / ")
            );
        }
    }
}

/// Every builder simulator hangs every forkchoice update from here on.
async fn hang_builders_on_fcu(setup: &Setup) {
    for builder in setup.builders() {
        post(
            &format!("http://{}/_sim/faults", builder.addr),
            serde_json::to_vec(&Fault::Hang.on("engine_forkchoiceUpdatedV3")).unwrap(),
        )
        .await;
    }
}

async fn orchestrate(quick: bool) {
    let (rounds, calls, blocks) = if quick { (3, 300, 20) } else { (9, 3_000, 160) };
    // LOAD_ONLY=cycle (or cycle-1mib, or cycle-1mib-16 for 16 sequencers at once) runs block
    // cycles alone, long, for profiling.
    let only = std::env::var("LOAD_ONLY").unwrap_or_default();
    if only.starts_with("cycle") {
        let big = only.starts_with("cycle-1mib");
        let concurrency = if only.ends_with("-16") { 16 } else { 1 };
        // `cycle-4-builders`: small blocks, four builders behind each configuration.
        let builders = if only == "cycle-4-builders" { 4 } else { 1 };
        let setup = Setup::new(if big { BIG_BLOCK } else { (0, 0) }, builders);
        eprintln!("switchyard pid {}", setup.switchyard.pid());
        let lag = BoostSyncLag::start(&setup, "block cycle").await;
        let rows = vec![{
            let floor = (big && concurrency == 1).then(KeccakFloor::start);
            let mut row = run_workload(&setup, &only, "block", 10, |t| {
                cycles_owned(
                    t,
                    concurrency,
                    if big { 20 / concurrency.min(10) } else { 200 },
                )
            })
            .await;
            row.keccak_floor_ms = floor.and_then(KeccakFloor::finish);
            row
        }];
        print(&rows);
        lag.print().await;
        return;
    }
    // LOAD_ONLY=fcu runs forkchoice updates with attributes (the builder hanging) alone.
    if only == "fcu" {
        let setup = Setup::new((0, 0), 1).with_no_builder();
        eprintln!("switchyard pid {}", setup.switchyard.pid());
        hang_builders_on_fcu(&setup).await;
        let rows = vec![run_workload(&setup, FCU_ROW, "req", 10, |t| fcus_owned(t, 1_000)).await];
        print(&rows);
        return;
    }
    // LOAD_ONLY=tracing: what --tracing costs, the same binary with and without it.
    if only == "tracing" {
        let setup = Setup::new((0, 0), 1);
        let rows = vec![
            run_workload(&setup, "eth_blockNumber c=1", "req", rounds, |t| {
                eth_calls_owned(t, 1, calls)
            })
            .await,
            run_workload(&setup, "block cycle small c=1", "block", rounds, |t| {
                cycles_owned(t, 1, blocks)
            })
            .await,
        ];
        print(&rows);
        print_tracing_cost(&rows);
        // The traced switchyard did export: its spans, by outcome.
        if let Some((_, _, traced, _)) = &setup.traced {
            let url = format!("http://{}/metrics", traced.metrics.as_ref().unwrap());
            let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
            let response = client.get(url.parse().unwrap()).await.unwrap();
            let page = response.into_body().collect().await.unwrap().to_bytes();
            for line in String::from_utf8_lossy(&page).lines() {
                if line.starts_with("switchyard_otlp_spans_total") {
                    println!("{line}");
                }
            }
        }
        return;
    }
    // LOAD_ONLY=flat: memory over 100,000 block cycles alone.
    if only == "flat" {
        let setup = Setup::new((0, 0), 1);
        flat_memory(&setup, if quick { 10_000 } else { 100_000 }).await;
        return;
    }
    // LOAD_ONLY=flashblocks runs the flashblocks fan-out rows alone.
    if only == "flashblocks" {
        flashblocks::run(quick).await;
        return;
    }
    // LOAD_ONLY=eth (or eth-16: 16 clients at once) runs the eth_* workload alone, long, for
    // profiling a proxy.
    if only == "eth" || only == "eth-16" {
        let setup = Setup::new((0, 0), 1);
        eprintln!(
            "switchyard pid {} bare pid {}",
            setup.switchyard.pid(),
            setup.bare.pid()
        );
        let row = if only == "eth" {
            run_workload(&setup, "eth_blockNumber c=1", "req", 20, |t| {
                eth_calls_owned(t, 1, 2_000)
            })
            .await
        } else {
            run_workload(&setup, "eth_blockNumber c=16", "req", 20, |t| {
                eth_calls_owned(t, 16, 500)
            })
            .await
        };
        print(&[row]);
        return;
    }
    let mut rows = Vec::new();
    {
        let setup = Setup::new((0, 0), 1).with_no_builder();
        rows.push(
            run_workload(&setup, "eth_blockNumber c=1", "req", rounds, |t| {
                eth_calls_owned(t, 1, calls)
            })
            .await,
        );
        rows.push(
            run_workload(&setup, "eth_blockNumber c=16", "req", rounds, |t| {
                eth_calls_owned(t, 16, calls / 4)
            })
            .await,
        );
        let lag = BoostSyncLag::start(&setup, "block cycle small c=1").await;
        rows.push(
            run_workload(&setup, "block cycle small c=1", "block", rounds, |t| {
                cycles_owned(t, 1, blocks)
            })
            .await,
        );
        lag.print().await;
        // One sequencer (the deployment's shape) while 16 clients send it transactions.
        rows.push(
            run_workload(&setup, TRAFFIC_ROW, "block", rounds, |t| {
                cycles_with_traffic(t, blocks)
            })
            .await,
        );
        hang_builders_on_fcu(&setup).await;
        rows.push(run_workload(&setup, FCU_ROW, "req", rounds, |t| fcus_owned(t, calls / 4)).await);
    }
    {
        let setup = Setup::new((0, 0), 4);
        rows.push(
            run_workload(
                &setup,
                "block cycle small c=1, 4 builders",
                "block",
                rounds,
                |t| cycles_owned(t, 1, blocks),
            )
            .await,
        );
        transaction_rates(&setup, quick).await;
    }
    {
        let setup = Setup::new(BIG_BLOCK, 1);
        let lag = BoostSyncLag::start(&setup, "block cycle 1MiB c=1").await;
        let floor = KeccakFloor::start();
        let mut row = run_workload(&setup, "block cycle 1MiB c=1", "block", rounds, |t| {
            cycles_owned(t, 1, blocks / 4)
        })
        .await;
        row.keccak_floor_ms = floor.finish();
        rows.push(row);
        lag.print().await;
        // Sixteen sequencers at once: not a deployment, a memory test.
        rows.push(
            run_workload(
                &setup,
                "block cycle 1MiB c=16",
                "block",
                rounds.min(3),
                |t| cycles_owned(t, 16, 1),
            )
            .await,
        );
    }
    print(&rows);
    print_traffic_cost(&rows, "block cycle small c=1", TRAFFIC_ROW);
    {
        let setup = Setup::new((0, 0), 1);
        flat_memory(&setup, if quick { 10_000 } else { 100_000 }).await;
    }
    // LOAD_ONLY=engine: everything but the flashblocks rows.
    if only != "engine" {
        flashblocks::run(quick).await;
    }
}

/// The row of forkchoice updates with attributes, every builder hanging.
const FCU_ROW: &str = "FCU+attrs, builder hangs";

/// The block-cycle row with transaction traffic.
const TRAFFIC_ROW: &str = "block cycle small c=1 + 1,000 tx/s from 16 clients";

async fn eth_calls_owned(target: Target, concurrency: usize, per_task: usize) -> Samples {
    eth_calls(&target.url, target.secret, concurrency, per_task).await
}

async fn cycles_owned(target: Target, concurrency: usize, per_task: usize) -> Samples {
    cycles(&target, concurrency, per_task).await
}

async fn fcus_owned(target: Target, n: usize) -> Samples {
    fcus(&target.url, target.secret, n).await
}

async fn post(url: &str, body: Vec<u8>) {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let request = hyper::Request::post(url)
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    let response = client.request(request).await.unwrap();
    let _ = response.into_body().collect().await;
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    const CHILDREN: [&str; 5] = [
        "--gateway-forwarder",
        "--bare-sidecar",
        "--serve-sim",
        "--bare-forwarder",
        "--serve-otlp-sink",
    ];
    if args
        .first()
        .is_some_and(|mode| CHILDREN.contains(&mode.as_str()))
    {
        exit_on_sigterm();
    }
    if args.first().map(String::as_str) == Some("--gateway-forwarder") {
        gateway_forwarder(&args[1], &args[2]);
        return;
    }
    if args.first().map(String::as_str) == Some("--bare-sidecar") {
        let checks = args
            .get(4)
            .filter(|flag| *flag == "--checks")
            .and(args.get(5))
            .map(String::as_str);
        bare_sidecar::run(&args[1], &args[2], &args[3], checks);
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    match args.first().map(String::as_str) {
        Some("--serve-sim") => runtime.block_on(serve_sim(&args[1..])),
        Some("--bare-forwarder") => runtime.block_on(bare_forwarder(&args[1])),
        Some("--serve-otlp-sink") => runtime.block_on(otlp_sink()),
        _ => runtime.block_on(orchestrate(args.iter().any(|a| a == "--quick"))),
    }
}
