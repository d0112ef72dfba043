//! Serves one simulated execution client (op-geth or a builder) on a given port.
//!
//! ```text
//! engine-sim --port 8551 --jwt-path jwt.hex [--profile builder] [--fork isthmus]
//! ```
//! The fault controls are at `/_sim/faults` (POST a JSON rule, DELETE all) and `/_sim/release`.

use std::net::SocketAddr;

use anyhow::Context;
use clap::{Parser, ValueEnum};
use switchyard_sim::{ChainSpec, EngineSim, Fork, Forks, PayloadIdScheme, SimConfig};

#[derive(Clone, Copy, Debug, ValueEnum)]
enum ProfileArg {
    OpGeth,
    Builder,
}

#[derive(Debug, Parser)]
#[command(
    version,
    about = "A simulated OP Stack execution client over HTTP and JWT"
)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    host: std::net::IpAddr,
    /// Port to listen on (0 picks a free one).
    #[arg(long, default_value_t = 8551)]
    port: u16,
    /// JWT secret file (hex); created with a random secret if missing.
    #[arg(long, required_unless_present = "jwt_secret")]
    jwt_path: Option<std::path::PathBuf>,
    /// JWT secret as hex, instead of a file.
    #[arg(long)]
    jwt_secret: Option<String>,
    /// op-geth, or a builder that adds transactions of its own.
    #[arg(long, value_enum, default_value = "op-geth")]
    profile: ProfileArg,
    /// Use op-reth's payload ids (first byte 0x04).
    #[arg(long)]
    reth_ids: bool,
    /// Latest fork active from genesis.
    #[arg(long, default_value = "isthmus")]
    fork: String,
    /// Chain id.
    #[arg(long, default_value_t = 901)]
    chain_id: u64,
    /// Genesis timestamp (seconds).
    #[arg(long, default_value_t = 1_700_000_000)]
    genesis_timestamp: u64,
}

fn fork(name: &str) -> anyhow::Result<Fork> {
    serde_json::from_value(serde_json::Value::String(name.to_lowercase()))
        .with_context(|| format!("--fork: unknown fork {name:?}"))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt().with_env_filter("info").init();
    let args = Args::parse();
    let secret = match (&args.jwt_secret, &args.jwt_path) {
        (Some(hex), _) => parse_secret(hex).context("--jwt-secret")?,
        (None, Some(path)) => match std::fs::read_to_string(path) {
            Ok(text) => {
                parse_secret(&text).with_context(|| format!("--jwt-path {}", path.display()))?
            }
            Err(_) => {
                let secret = switchyard_sim::random_secret();
                std::fs::write(path, format!("0x{}\n", switchyard_sim::secret_hex(&secret)))
                    .with_context(|| format!("--jwt-path {}: cannot write", path.display()))?;
                secret
            }
        },
        (None, None) => anyhow::bail!("--jwt-path or --jwt-secret is required"),
    };
    let spec = ChainSpec {
        chain_id: args.chain_id,
        genesis_timestamp: args.genesis_timestamp,
        forks: Forks::through(fork(&args.fork)?),
        ..Default::default()
    };
    let mut config = match args.profile {
        ProfileArg::OpGeth => SimConfig::op_geth(spec),
        ProfileArg::Builder => SimConfig::builder(spec),
    };
    if args.reth_ids {
        config.payload_ids = PayloadIdScheme::OpReth;
    }
    let sim = EngineSim::spawn(
        config
            .with_secret(secret)
            .with_addr(SocketAddr::new(args.host, args.port)),
    )
    .await?;
    tracing::info!(url = %sim.url(), profile = ?args.profile, "engine-sim listening");
    tokio::signal::ctrl_c().await?;
    Ok(())
}

fn parse_secret(text: &str) -> anyhow::Result<[u8; 32]> {
    let hex = text.trim().trim_start_matches("0x");
    anyhow::ensure!(
        hex.len() == 64,
        "expected 64 hex digits, found {}",
        hex.len()
    );
    let mut secret = [0u8; 32];
    for (i, byte) in secret.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).context("not hex")?;
    }
    Ok(secret)
}
