//! `switchyard devnet` runs the whole system for a bounded number of blocks and sums it up.

use std::process::Command;

use serde_json::Value;

#[test]
fn devnet_runs_bounded_blocks_and_reports_a_summary() {
    let output = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args([
            "devnet",
            "--blocks",
            "40",
            "--block-time",
            "0ms",
            "--builders",
            "2",
            "--fault-rate",
            "0.4",
            "--seed",
            "11",
            "--json",
        ])
        .output()
        .expect("run the devnet");
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let summary: Value =
        serde_json::from_str(stdout.lines().last().unwrap_or_default()).expect("a JSON summary");
    assert_eq!(summary["blocks"], 40);
    assert_eq!(summary["failed_blocks"], 0);
    assert_eq!(summary["seed"], 11);
    let wins: u64 = summary["builder_wins"]
        .as_object()
        .expect("wins")
        .values()
        .filter_map(Value::as_u64)
        .sum();
    let local = summary["local_blocks"].as_u64().expect("local");
    assert_eq!(wins + local, 40, "exactly one payload per block: {summary}");
    assert!(wins > 0, "builders built blocks: {summary}");
    let injected = summary["faults_injected"].as_u64().expect("faults");
    assert!(injected > 0, "seed 11 at rate 0.4 injects faults");
    let reasons = summary["lost_reasons"].as_object().expect("reasons");
    assert!(
        reasons.keys().any(|r| r != "policy"),
        "faults show up as reasons: {summary}"
    );
}

#[test]
fn devnet_with_flashblocks_misses_no_slot_and_sums_up_the_preconfirmations() {
    let output = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args([
            "devnet",
            "--flashblocks",
            "--blocks",
            "200",
            "--block-time",
            "40ms",
            "--builders",
            "2",
            "--fault-rate",
            "0.2",
            "--seed",
            "19",
        ])
        .output()
        .expect("run the devnet");
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("200 blocks in") && stdout.contains("(0 failed)"),
        "{stdout}"
    );
    let line = stdout
        .lines()
        .find(|l| l.starts_with("flashblocks published: "))
        .expect("the preconfirmation summary");
    let number = |after: &str| -> u64 {
        line.split(after)
            .nth(1)
            .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    assert!(number("flashblocks published: ") > 200, "{line}");
    assert!(number("preconfirmations kept: ") > 100, "{line}");
    // Flashblock faults were drawn: some blocks name one.
    assert!(stdout.contains("injected flashblocks "), "{stdout}");
    // Every kept or broken block says so on its line.
    assert!(stdout.lines().any(|l| l.contains(" flashblocks kept")));
}

/// `--sequencers 3`: the cluster under the conductor stand-in, with parts of nodes broken at
/// random; one chain, failovers summed up.
#[test]
fn devnet_with_three_sequencers_fails_over_and_keeps_one_chain() {
    let output = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args([
            "devnet",
            "--sequencers",
            "3",
            "--blocks",
            "120",
            "--block-time",
            "25ms",
            "--fault-rate",
            "0.15",
            "--seed",
            "7",
        ])
        .output()
        .expect("run the devnet");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{output:?}");
    assert!(stdout.contains("one chain: yes"), "{stdout}");
    assert!(stdout.contains("failovers: "), "{stdout}");
    let slot_lines = stdout.lines().filter(|l| l.starts_with("slot ")).count();
    assert_eq!(slot_lines, 120, "a line per slot: {stdout}");
    // Seed 7 at rate 0.15 breaks leaders: leadership moves at least once.
    assert!(
        stdout.lines().any(|l| l.contains("failover node")),
        "{stdout}"
    );
}
