use std::{
    fmt,
    str::FromStr,
    sync::{
        Arc,
        atomic::{AtomicU8, Ordering},
    },
};

use super::metrics;

/// How far builders are trusted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ExecutionMode {
    /// Builders build; a valid builder payload is returned.
    #[default]
    Enabled,
    /// Builders build and their payloads are checked and recorded, but op-geth's is returned.
    DryRun,
    /// Nothing engine-related goes to builders.
    Disabled,
}

impl ExecutionMode {
    /// Every mode.
    pub const ALL: [ExecutionMode; 3] = [Self::Enabled, Self::DryRun, Self::Disabled];

    /// The mode's name: `enabled`, `dry-run` or `disabled`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Enabled => "enabled",
            Self::DryRun => "dry-run",
            Self::Disabled => "disabled",
        }
    }
}

impl fmt::Display for ExecutionMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Not `enabled`, `dry-run` (or rollup-boost's `dry_run`) or `disabled`.
#[derive(Debug, thiserror::Error)]
#[error("unknown execution mode {0:?} (enabled, dry-run or disabled)")]
pub struct UnknownMode(String);

impl FromStr for ExecutionMode {
    type Err = UnknownMode;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "enabled" => Ok(Self::Enabled),
            "dry-run" | "dry_run" => Ok(Self::DryRun),
            "disabled" => Ok(Self::Disabled),
            other => Err(UnknownMode(other.to_owned())),
        }
    }
}

/// The execution mode, shared by every layer and switchable at run time.
#[derive(Clone, Debug)]
pub struct ModeSwitch(Arc<AtomicU8>);

impl ModeSwitch {
    /// Starts in `mode`.
    pub fn new(mode: ExecutionMode) -> Self {
        metrics::mode(mode);
        Self(Arc::new(AtomicU8::new(mode as u8)))
    }

    /// The current mode.
    pub fn get(&self) -> ExecutionMode {
        match self.0.load(Ordering::Relaxed) {
            0 => ExecutionMode::Enabled,
            1 => ExecutionMode::DryRun,
            _ => ExecutionMode::Disabled,
        }
    }

    /// Switches to `mode`; returns the previous one.
    pub fn set(&self, mode: ExecutionMode) -> ExecutionMode {
        let previous = self.get();
        self.0.store(mode as u8, Ordering::Relaxed);
        metrics::mode(mode);
        if previous != mode {
            tracing::info!(target: "switchyard::builder", from = %previous, to = %mode, "execution mode switched");
        }
        previous
    }
}

impl Default for ModeSwitch {
    fn default() -> Self {
        Self::new(ExecutionMode::Enabled)
    }
}
