//! The real binary, started from the command line as an operator would.

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
};

use switchyard_sim::{EngineClient, Fault, Fork, random_secret, secret_hex};

use crate::harness::{call, json, op_geth, spec};

pub struct Daemon {
    pub child: Child,
    pub addr: String,
    /// The metrics endpoint, when it serves one.
    pub metrics: Option<String>,
}

/// The rest of a daemon's log, line by line.
type LogLines = std::io::Lines<BufReader<std::process::ChildStdout>>;

impl Daemon {
    /// Starts the binary and reads the address it listens on from its JSON log, then keeps
    /// draining the log so the child never blocks on a full pipe.
    pub fn start(args: &[String]) -> Self {
        let (daemon, lines) = Self::spawn(args);
        std::thread::spawn(move || for _ in lines {});
        daemon
    }

    /// Starts the binary and reads the address it listens on from its JSON log; the rest of the
    /// log is the caller's to read, or to leave unread.
    fn spawn(args: &[String]) -> (Self, LogLines) {
        Self::spawn_with(args, |_| {})
    }

    /// Like [`Daemon::spawn`], with the command adjusted first (working directory, environment).
    pub fn spawn_with(args: &[String], adjust: impl FnOnce(&mut Command)) -> (Self, LogLines) {
        let mut command = Command::new(env!("CARGO_BIN_EXE_switchyard"));
        adjust(&mut command);
        let mut child = command
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn switchyard");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let (addr, metrics) = loop {
            let line = lines
                .next()
                .expect("switchyard exited before listening")
                .expect("read");
            let Ok(event) = serde_json::from_str::<serde_json::Value>(&line) else {
                continue;
            };
            if event["message"] == "listening" {
                break (
                    event["addr"].as_str().expect("addr").to_owned(),
                    event["metrics"].as_str().map(str::to_owned),
                );
            }
        };
        (
            Self {
                child,
                addr,
                metrics,
            },
            lines,
        )
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status();
        assert!(status.is_ok_and(|s| s.success()), "kill -{name}");
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A simulated op-geth and builder on one network.
pub async fn op_geth_and_builder(
    spec: &switchyard_sim::ChainSpec,
) -> (switchyard_sim::EngineSim, switchyard_sim::EngineSim) {
    let network = switchyard_sim::Network::new();
    let l2 = switchyard_sim::EngineSim::spawn(
        switchyard_sim::SimConfig::op_geth(spec.clone()).with_network(network.clone()),
    )
    .await
    .expect("op-geth");
    let builder = switchyard_sim::EngineSim::spawn(
        switchyard_sim::SimConfig::builder(spec.clone()).with_network(network),
    )
    .await
    .expect("builder");
    (l2, builder)
}

pub fn write_secret(dir: &std::path::Path, name: &str, secret: &[u8; 32]) -> String {
    let path = dir.join(name);
    std::fs::write(&path, format!("0x{}\n", secret_hex(secret))).expect("write secret");
    path.display().to_string()
}

#[tokio::test]
async fn binary_serves_from_cli_flags_and_drains_on_sigterm() {
    let l2 = op_geth(spec(Fork::Isthmus)).await;
    let dir = std::env::temp_dir().join(format!("switchyard-bin-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let l2_jwt = write_secret(&dir, "l2.hex", &l2.secret());
    let op_node_secret = random_secret();
    let rpc_jwt = write_secret(&dir, "op-node.hex", &op_node_secret);
    let args: Vec<String> = [
        "--l2-url",
        &l2.url(),
        "--l2-jwt-path",
        &l2_jwt,
        "--l2-timeout",
        "5s",
        "--rpc-jwt-path",
        &rpc_jwt,
        "--rpc-host",
        "127.0.0.1",
        "--rpc-port",
        "0",
        "--metrics-port",
        "0",
        "--log-format",
        "json",
        "--log-level",
        "info",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut daemon = Daemon::start(&args);
    let client =
        EngineClient::new(&format!("http://{}", daemon.addr), op_node_secret).expect("client");
    let (status, answer) = client
        .post_signed(call(1, "eth_chainId", serde_json::json!([])))
        .await
        .expect("call");
    assert_eq!(status, http::StatusCode::OK);
    assert_eq!(json(&answer)["result"], "0x385");

    // SIGTERM with a request in flight: it completes, then the process exits cleanly.
    l2.faults().add(Fault::Hang.on("net_version"));
    let in_flight = {
        let client = client.clone();
        tokio::spawn(async move {
            client
                .post_signed(call(2, "net_version", serde_json::json!([])))
                .await
        })
    };
    l2.log().wait_for_count("net_version", 1).await;
    daemon.signal("TERM");
    l2.faults().clear();
    l2.faults().release_hangs();
    let (status, answer) = in_flight.await.expect("join").expect("completed");
    assert_eq!(status, http::StatusCode::OK);
    assert_eq!(json(&answer)["result"], "901");
    let exit = tokio::task::spawn_blocking(move || daemon.child.wait())
        .await
        .expect("join")
        .expect("wait");
    assert!(exit.success(), "{exit:?}");
}

#[test]
fn bad_flags_fail_fast_with_one_line_naming_the_flag() {
    for (args, flag) in [
        (vec!["--l2-jwt-token", "0x1234"], "--l2-jwt-token"),
        (
            vec!["--l2-jwt-path", "/nonexistent/jwt.hex"],
            "--l2-jwt-path",
        ),
        (
            vec!["--l2-timeout", "soon", "--l2-jwt-token", &"ab".repeat(32)],
            "--l2-timeout",
        ),
        (
            vec![
                "--l2-url",
                "ws://localhost:8551",
                "--l2-jwt-token",
                &"ab".repeat(32),
            ],
            "--l2-url",
        ),
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_switchyard"))
            .args(&args)
            .output()
            .expect("run");
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains(flag), "{stderr}");
    }
}

#[tokio::test]
async fn no_secret_or_token_is_ever_logged_even_at_trace_level() {
    let spec = crate::harness::spec(Fork::Isthmus);
    let (l2, builder) = op_geth_and_builder(&spec).await;
    let dir = std::env::temp_dir().join(format!("switchyard-secrets-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let op_node = random_secret();
    let admin = random_secret();
    let secrets = [l2.secret(), builder.secret(), op_node, admin];
    let args: Vec<String> = [
        "--l2-url",
        &l2.url(),
        "--l2-jwt-path",
        &write_secret(&dir, "l2.hex", &l2.secret()),
        "--rpc-jwt-path",
        &write_secret(&dir, "op-node.hex", &op_node),
        "--builder-url",
        &builder.url(),
        "--builder-jwt-token",
        &format!("0x{}", secret_hex(&builder.secret())),
        "--admin-jwt-token",
        &secret_hex(&admin),
        "--debug-server-port",
        "0",
        "--rpc-port",
        "0",
        "--metrics-port",
        "0",
        "--log-format",
        "json",
        "--log-level",
        "trace",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();

    let mut child = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(&args)
        .env("RUST_LOG", "trace")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let stdout = child.stdout.take().expect("stdout");
    let stderr = child.stderr.take().expect("stderr");
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let out_reader = std::thread::spawn(move || {
        let mut all = Vec::new();
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Ok(event) = serde_json::from_str::<serde_json::Value>(&line)
                && event["message"] == "listening"
            {
                let _ = addr_tx.send(event["addr"].as_str().unwrap_or_default().to_owned());
            }
            all.push(line);
        }
        all
    });
    let err_reader = std::thread::spawn(move || {
        BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
            .collect::<Vec<_>>()
    });
    let addr = tokio::task::spawn_blocking(move || addr_rx.recv().expect("listening"))
        .await
        .expect("join");

    let url = format!("http://{addr}");
    let mut seq = switchyard_sim::Sequencer::connect(
        &url,
        op_node,
        switchyard_sim::SequencerConfig::new(spec),
    )
    .await
    .expect("op-node");
    for _ in 0..5 {
        seq.step().await.expect("block");
    }
    let client = EngineClient::new(&url, op_node).expect("client");
    let _ = client
        .post(
            call(1, "eth_chainId", serde_json::json!([])),
            Some("Bearer not-a-token"),
        )
        .await;
    let forged = format!("Bearer {}", switchyard_sim::token(&l2.secret(), 0));
    let _ = client
        .post(call(2, "eth_chainId", serde_json::json!([])), Some(&forged))
        .await;

    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = tokio::task::spawn_blocking(move || child.wait()).await;
    let lines: Vec<String> = out_reader
        .join()
        .expect("stdout")
        .into_iter()
        .chain(err_reader.join().expect("stderr"))
        .collect();
    assert!(
        lines.len() > 100,
        "trace logging was on ({} lines)",
        lines.len()
    );
    let text = lines.join("\n").to_lowercase();
    for secret in secrets {
        let hex = secret_hex(&secret);
        assert!(!text.contains(&hex), "a secret appears in the logs");
        assert!(
            !text.contains(&hex[..16]),
            "part of a secret appears in the logs"
        );
    }
    // Every JWT starts with the base64 of `{"`: none may appear, nor any bearer header.
    assert!(!text.contains("eyj"), "a JWT appears in the logs");
    assert!(
        !text.contains("bearer "),
        "an Authorization header appears in the logs"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_log_reader_that_stops_reading_never_stalls_the_daemon() {
    let spec = crate::harness::spec(Fork::Isthmus);
    let (l2, builder) = op_geth_and_builder(&spec).await;
    let op_node = random_secret();
    let args: Vec<String> = [
        "--l2-url",
        &l2.url(),
        "--l2-jwt-token",
        &secret_hex(&l2.secret()),
        "--rpc-jwt-token",
        &secret_hex(&op_node),
        "--builder-url",
        &builder.url(),
        "--builder-jwt-token",
        &secret_hex(&builder.secret()),
        "--rpc-port",
        "0",
        "--metrics-port",
        "0",
        "--log-format",
        "json",
        "--log-level",
        "info",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    // Killed on drop, pass or fail: a daemon stuck on its pipe must not outlive the test.
    let (daemon, lines) = Daemon::spawn(&args);
    // From here the pipe stays open and nobody reads it: a stalled log consumer. Each block logs
    // its getPayload decision (a line of ~300 bytes), so the pipe's 64 KiB fill within ~220
    // blocks; a daemon that wrote its log on the event loop would stop answering there.
    let mut seq = switchyard_sim::Sequencer::connect(
        &format!("http://{}", daemon.addr),
        op_node,
        switchyard_sim::SequencerConfig::new(spec),
    )
    .await
    .expect("op-node");
    let blocks = 600;
    let driven = tokio::time::timeout(std::time::Duration::from_secs(120), seq.drive(blocks))
        .await
        .expect("the daemon stalled behind its unread log");
    assert_eq!(driven.expect("blocks").len(), blocks);
    assert_eq!(l2.head().header.number, blocks as u64);
    drop(daemon);
    drop(lines);
}
