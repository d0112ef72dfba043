//! switchyard's command line: the sidecar's flags, or a subcommand.

use clap::{Parser, Subcommand};

use crate::config::RunArgs;

/// switchyard's command line.
#[derive(Debug, Parser)]
#[command(
    name = "switchyard",
    version,
    about = "OP Stack block-builder sidecar: a transparent Engine API proxy in front of op-geth that lets external builders produce blocks"
)]
pub struct Cli {
    /// What to run; without one, the sidecar.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// The sidecar's settings.
    #[command(flatten)]
    pub run: RunArgs,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the configuration reference (every flag with its environment variable) as Markdown.
    Flags,
    /// Run a simulated op-geth, builders, switchyard and op-node in one process (like `geth --dev`).
    Devnet(crate::devnet::DevnetArgs),
}
