//! The real binary under rollup-boost's own command line and `.env`, as an operator swapping the
//! binaries would start it: each setting must be read with rollup-boost's meaning and unit.

use std::process::{Command, Stdio};

use http::StatusCode;
use switchyard_sim::{Fork, secret_hex};

use crate::{
    binary::{Daemon, op_geth_and_builder},
    harness::{healthz_becomes, healthz_until, spec},
};

/// rollup-boost v0.7's `.env.example`, as shipped.
const ENV_EXAMPLE: &str = "\
# RPC Client Args
BUILDER_URL=http://localhost:8552
BUILDER_JWT_TOKEN=688f5d737bad920bdfb2fc2f488d6b6209eebda1dae949a8de91398d932c517a
# Optional
# BUILDER_JWT_PATH=
BUILDER_TIMEOUT=1000

L2_URL=http://localhost:8551
L2_JWT_TOKEN=688f5d737bad920bdfb2fc2f488d6b6209eebda1dae949a8de91398d932c517a
# Optional
# L2_JWT_PATH=
L2_TIMEOUT=1000

# RPC Server Args
RPC_HOST=0.0.0.0
RPC_PORT=8081

# Debug Server Args
DEBUG_HOST=127.0.0.1
DEBUG_SERVER_PORT=5555

# Flashblocks Args
FLASHBLOCKS=false
FLASHBLOCKS_BUILDER_URL=ws://localhost:1111
FLASHBLOCKS_HOST=127.0.0.1
FLASHBLOCKS_PORT=1112

# Extra Args
TRACING=false
LOG_LEVEL=info
METRICS=false
LOG_FORMAT=text
";

fn scratch_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("switchyard-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    dir
}

/// `switchyard ARGS --print-config` run in `dir` with only `env` in its environment.
fn run_print_config(
    dir: &std::path::Path,
    env: &[(&str, &str)],
    args: &[&str],
) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .current_dir(dir)
        .env_clear()
        .envs(env.iter().copied())
        .args(args)
        .arg("--print-config")
        .stderr(Stdio::piped())
        .output()
        .expect("run switchyard")
}

/// The configuration `switchyard --print-config` reads in `dir` with only `env`.
fn print_config(dir: &std::path::Path, env: &[(&str, &str)], args: &[&str]) -> serde_json::Value {
    let output = run_print_config(dir, env, args);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("config JSON")
}

#[test]
fn rollup_boost_command_line_and_env_file_are_read_with_its_meanings_and_units() {
    let dir = scratch_dir("dotenv");
    std::fs::write(dir.join(".env"), ENV_EXAMPLE).expect(".env");
    // The production page's command line, plus the flags whose units differ between flags.
    let config = print_config(
        &dir,
        // The real environment wins over the file.
        &[("L2_TIMEOUT", "750")],
        &[
            "--l2-jwt-token",
            "688f5d737bad920bdfb2fc2f488d6b6209eebda1dae949a8de91398d932c517a",
            "--l2-url",
            "localhost:8545",
            "--builder-jwt-token",
            "688f5d737bad920bdfb2fc2f488d6b6209eebda1dae949a8de91398d932c517a",
            "--builder-url",
            "http://localhost:8546",
            "--health-check-interval",
            "60",
            "--max-unsafe-interval",
            "10",
            "--block-selection-policy",
            "gas-used",
        ],
    );
    assert_eq!(config["l2"]["url"], "http://localhost:8545/");
    assert_eq!(config["l2"]["timeout_ms"], 750);
    assert_eq!(config["builders"][0]["url"], "http://localhost:8546/");
    assert_eq!(config["builders"][0]["timeout_ms"], 1000);
    assert_eq!(config["health_check_interval_ms"], 60_000);
    assert_eq!(config["max_unsafe_interval_ms"], 10_000);
    assert_eq!(config["selection_policy"], "gas-used");
    assert_eq!(config["rpc_addr"], "0.0.0.0:8081");
    assert_eq!(config["metrics_addr"], serde_json::Value::Null);
    assert_eq!(config["log_level"], "INFO");
    assert_eq!(config["log_format"], "text");
    assert_eq!(config["tracing"], serde_json::Value::Null);

    // The same settings from the file alone, with rollup-boost's variable names.
    std::fs::write(
        dir.join(".env"),
        format!(
            "{ENV_EXAMPLE}HEALTH_CHECK_INTERVAL=60\nMAX_UNSAFE_INTERVAL=10\n\
             BLOCK_SELECTION_POLICY=gas-used\nL2_URL=127.0.0.1:8551\n\
             TRACING=true\nOTLP_ENDPOINT=otel-collector:4317\nOTEL_SERVICE_NAME=rollup-boost-sepolia\n"
        ),
    )
    .expect(".env");
    let config = print_config(&dir, &[], &[]);
    assert_eq!(config["health_check_interval_ms"], 60_000);
    assert_eq!(config["max_unsafe_interval_ms"], 10_000);
    assert_eq!(config["selection_policy"], "gas-used");
    // dotenvy keeps the first value a file gives a variable, as rollup-boost reads it.
    assert_eq!(config["l2"]["url"], "http://localhost:8551/");
    assert_eq!(config["builders"][0]["timeout_ms"], 1000);
    // dotenvy keeps the file's first TRACING (false); the real environment turns it on.
    let config = print_config(&dir, &[("TRACING", "true")], &[]);
    assert_eq!(
        config["tracing"]["otlp_endpoint"],
        "http://otel-collector:4317/"
    );
    assert_eq!(config["tracing"]["otlp_protocol"], "grpc");
    assert_eq!(config["tracing"]["service_name"], "rollup-boost-sepolia");
    // Over HTTP, a bare collector address gets the traces path, as OTEL_EXPORTER_OTLP_ENDPOINT.
    let config = print_config(
        &dir,
        &[("TRACING", "true")],
        &[
            "--otlp-protocol",
            "http/protobuf",
            "--otlp-endpoint",
            "https://collector:4318",
        ],
    );
    assert_eq!(
        config["tracing"]["otlp_endpoint"],
        "https://collector:4318/v1/traces"
    );
    assert_eq!(config["tracing"]["otlp_protocol"], "http/protobuf");
}

#[test]
fn a_malformed_env_file_stops_start_up_naming_it() {
    let dir = scratch_dir("bad-dotenv");
    std::fs::write(dir.join(".env"), "L2_URL='unterminated\n").expect(".env");
    let output = run_print_config(&dir, &[], &[]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.starts_with("switchyard: .env:"), "{stderr}");
}

#[test]
fn rollup_boost_features_not_in_switchyard_stop_start_up_naming_the_flag() {
    let dir = scratch_dir("refuse");
    for (flag, env) in [("--flashblocks-p2p", "FLASHBLOCKS_P2P")] {
        let token = "688f5d737bad920bdfb2fc2f488d6b6209eebda1dae949a8de91398d932c517a";
        for (args, vars) in [
            (vec!["--l2-jwt-token", token, flag], vec![]),
            (vec!["--l2-jwt-token", token], vec![(env, "true")]),
        ] {
            let output = run_print_config(&dir, &vars, &args);
            assert_eq!(output.status.code(), Some(2), "{flag}");
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert!(
                stderr.starts_with(&format!("switchyard: {flag}:")),
                "{stderr}"
            );
        }
    }
}

/// A head a second old is fresh under rollup-boost's `--max-unsafe-interval 10` (seconds): read
/// as 10 ms, as switchyard once did, `/healthz` answered 503 forever and op-conductor would have
/// taken leadership from a healthy sequencer.
#[tokio::test]
async fn rollup_boost_units_keep_a_healthy_sequencer_healthy() {
    // Two seconds old: stale under 10 ms, fresh under 10 s.
    let spec = switchyard_sim::ChainSpec {
        genesis_timestamp: switchyard_sim::unix_now() as u64 - 2,
        ..spec(Fork::Isthmus)
    };
    let (l2, builder) = op_geth_and_builder(&spec).await;
    let dir = scratch_dir("units");
    let l2_url = l2.url();
    let builder_url = builder.url();
    let builder_token = secret_hex(&builder.secret());
    let args = daemon_args(
        l2_url.trim_start_matches("http://"),
        &l2,
        &[
            "--builder-url",
            builder_url.trim_start_matches("http://"),
            "--builder-jwt-token",
            &builder_token,
            "--max-unsafe-interval",
            "10",
            "--health-check-interval",
            "60",
            "--log-format",
            "json",
        ],
    );
    let (daemon, lines) = Daemon::spawn_with(&args, |command| {
        command.current_dir(&dir);
    });
    std::thread::spawn(move || for _ in lines {});
    let addr = daemon.addr.parse().expect("addr");
    let body = healthz_becomes(addr, StatusCode::OK).await;
    assert_eq!(body["detail"]["l2"]["status"], "up", "{body}");
    assert!(
        body["detail"]["l2"]["head_age_seconds"].as_u64() >= Some(2),
        "{body}"
    );
}

/// A daemon serving on 127.0.0.1:0 with metrics off, for op-geth `l2` at `l2_url`, plus `extra`.
fn daemon_args(l2_url: &str, l2: &switchyard_sim::EngineSim, extra: &[&str]) -> Vec<String> {
    let token = secret_hex(&l2.secret());
    let base = [
        "--l2-url",
        l2_url,
        "--l2-jwt-token",
        &token,
        "--rpc-host",
        "127.0.0.1",
        "--rpc-port",
        "0",
        "--metrics",
        "false",
    ];
    base.iter().chain(extra).map(|s| s.to_string()).collect()
}

/// [`daemon_args`] with logs in `format` also to `log_file`.
fn log_file_args(
    l2: &switchyard_sim::EngineSim,
    log_file: &std::path::Path,
    format: &str,
) -> Vec<String> {
    let file = log_file.display().to_string();
    daemon_args(
        &l2.url(),
        l2,
        &["--log-format", format, "--log-file", &file],
    )
}

/// logrotate's way: move the file, send SIGHUP; the next lines go to a new file at the path.
#[tokio::test]
async fn log_file_gets_every_line_and_is_reopened_on_sighup() {
    let l2 = crate::harness::op_geth(spec(Fork::Isthmus)).await;
    let dir = scratch_dir("log-file");
    let path = dir.join("switchyard.log");
    let (daemon, mut lines) = Daemon::spawn_with(&log_file_args(&l2, &path, "json"), |_| {});
    let rotated = dir.join("switchyard.log.1");
    std::fs::rename(&path, &rotated).expect("rotate");
    let status = Command::new("kill")
        .args(["-HUP", &daemon.child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    // The file is written before stdout: once stdout has the line, so has the file.
    let reopened = lines
        .by_ref()
        .map_while(Result::ok)
        .find(|line| line.contains("log file reopened"));
    assert!(reopened.is_some(), "the daemon logs its reopen");
    let old = std::fs::read_to_string(&rotated).expect("old file");
    assert!(old.contains(r#""message":"listening""#), "{old}");
    assert!(!old.contains("log file reopened"), "{old}");
    let new = std::fs::read_to_string(&path).expect("new file");
    assert!(new.contains("log file reopened"), "{new}");
    drop(daemon);
}

/// Colour is for terminals: a file or a pipe gets no escape codes.
#[tokio::test]
async fn text_logs_to_a_file_or_pipe_carry_no_escape_codes() {
    use std::io::BufRead;
    let l2 = crate::harness::op_geth(spec(Fork::Isthmus)).await;
    let dir = scratch_dir("log-ansi");
    let path = dir.join("switchyard.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(log_file_args(&l2, &path, "text"))
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn");
    let stdout = child.stdout.take().expect("stdout");
    let listening = std::io::BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .find(|line| line.contains("listening"));
    let _ = child.kill();
    let _ = child.wait();
    let listening = listening.expect("a listening line");
    assert!(!listening.contains('\u{1b}'), "{listening:?}");
    let file = std::fs::read_to_string(&path).expect("file");
    assert!(file.contains("listening"), "{file}");
    assert!(!file.contains('\u{1b}'), "{file:?}");
}

/// Builder engine calls made while the builder is not synced, over three blocks, with or without
/// `--ignore-unhealthy-builders`. Returns the calls and the network, the builder still unsynced.
async fn engine_calls_while_unsynced(ignore_unhealthy: bool) -> (usize, crate::harness::Net) {
    use switchyard_sim::Fault;
    let mut net = crate::harness::Net::start(spec(Fork::Isthmus), &["builder"], |config| {
        config.builder_policy.health_interval = std::time::Duration::from_millis(20);
        config.builder_policy.ignore_unhealthy = ignore_unhealthy;
    })
    .await;
    let report = net.step().await;
    assert!(net.built_by(report.number, "builder"));
    net.builders[0].faults().add(Fault::Syncing.everywhere());
    // Its answers say SYNCING: once its health says so, the gate applies.
    let mut unsynced = false;
    for _ in 0..10 {
        net.step().await;
        if net.last().builders[0].lost == Some("skipped_syncing") {
            unsynced = true;
            break;
        }
    }
    assert!(unsynced, "the builder is seen unsynced: {:?}", net.last());
    let engine_calls = |net: &crate::harness::Net| net.builders[0].log().count("engine_");
    let before = engine_calls(&net);
    for _ in 0..3 {
        let report = net.step().await;
        assert!(net.built_locally(report.number));
    }
    (engine_calls(&net) - before, net)
}

/// rollup-boost's `--ignore-unhealthy-builders`: an unsynced builder gets no engine traffic at all
/// (without the flag, boost sync keeps feeding it the chain) and must catch up by its own
/// consensus client; once the head check sees it synced, it builds again.
#[tokio::test]
async fn ignore_unhealthy_builders_sends_an_unsynced_builder_nothing_until_it_catches_up() {
    let (relayed, _) = engine_calls_while_unsynced(false).await;
    assert!(relayed >= 6, "boost sync relays while unsynced: {relayed}");
    let (relayed, mut net) = engine_calls_while_unsynced(true).await;
    assert_eq!(relayed, 0, "nothing reaches an unsynced builder");

    // Its own consensus client brings it to op-geth's head.
    net.builders[0].faults().clear();
    let mut own_cl = switchyard_sim::Sequencer::connect(
        &net.builders[0].url(),
        net.builders[0].secret(),
        switchyard_sim::SequencerConfig::new(net.spec.clone()),
    )
    .await
    .expect("the builder's own consensus client");
    let mut won = false;
    for _ in 0..5 {
        // Its consensus client follows the chain, as a builder's must with this flag.
        let builder_head = net.builders[0].head().header.number;
        for number in builder_head + 1..=net.geth.head().header.number {
            own_cl
                .follow(&net.geth_block(number))
                .await
                .expect("the builder imports the chain");
        }
        // The head check sees it synced (the chain's genesis is old: op-geth itself is stale).
        healthz_until(net.proxy.addr, StatusCode::SERVICE_UNAVAILABLE, |body| {
            body["detail"]["builders"][0]["health"] == "synced"
        })
        .await;
        let report = net.step().await;
        if net.built_by(report.number, "builder") {
            won = true;
            break;
        }
    }
    assert!(won, "synced again, it builds: {:?}", net.last());
}
