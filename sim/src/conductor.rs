//! An op-conductor stand-in: op-conductor's leadership rules over each node's sidecar health.
//!
//! op-conductor runs beside each sequencer node; the conductors hold a Raft quorum that elects
//! one leader, whose op-node sequences. Among its health checks it reads the sidecar's `/healthz`:
//! `200` eligible, `503` not eligible (leadership moves away), `206` degraded, eligible or not by
//! the operator's choice. The Raft part is not rebuilt here: a single decision-maker applies those
//! rules to each poll's answers, which is what a sidecar's signals can change.

use std::fmt;

/// A node's sidecar health, as op-conductor reads `/healthz`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SidecarHealth {
    /// `200`.
    Healthy,
    /// `206`: a builder is degraded; op-geth is fine.
    Degraded,
    /// `503`, another status, or no answer at all.
    Unhealthy,
}

impl SidecarHealth {
    /// The verdict for an HTTP status (`None`: no answer).
    pub fn from_status(status: Option<u16>) -> Self {
        match status {
            Some(200) => Self::Healthy,
            Some(206) => Self::Degraded,
            _ => Self::Unhealthy,
        }
    }

    /// `healthy`, `degraded` or `unhealthy`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Healthy => "healthy",
            Self::Degraded => "degraded",
            Self::Unhealthy => "unhealthy",
        }
    }
}

impl fmt::Display for SidecarHealth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A leadership transfer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transfer {
    /// The leader that lost leadership.
    pub from: usize,
    /// The new leader.
    pub to: usize,
    /// What the old leader's sidecar said.
    pub because: SidecarHealth,
}

/// The stand-in: who leads, and op-conductor's rules to change it.
#[derive(Clone, Debug)]
pub struct Conductor {
    leader: usize,
    /// A degraded (206) node is not eligible, and a degraded leader loses leadership.
    strict: bool,
}

impl Conductor {
    /// Node `leader` leads; `strict`: 206 counts as unhealthy for leadership.
    pub fn new(leader: usize, strict: bool) -> Self {
        Self { leader, strict }
    }

    /// The node that sequences.
    pub fn leader(&self) -> usize {
        self.leader
    }

    /// Whether a node in this health may lead.
    pub fn eligible(&self, health: SidecarHealth) -> bool {
        match health {
            SidecarHealth::Healthy => true,
            SidecarHealth::Degraded => !self.strict,
            SidecarHealth::Unhealthy => false,
        }
    }

    /// One poll's verdicts, by node: a leader that is not eligible hands leadership to the first
    /// eligible node after it (in ring order, as a transfer picks any healthy peer); if no node is
    /// eligible, the leader keeps it (there is no one better to sequence).
    pub fn observe(&mut self, health: &[SidecarHealth]) -> Option<Transfer> {
        let from = self.leader;
        let because = *health.get(from)?;
        if self.eligible(because) {
            return None;
        }
        let to = (1..health.len())
            .map(|step| (from + step) % health.len())
            .find(|&node| self.eligible(health[node]))?;
        self.leader = to;
        Some(Transfer { from, to, because })
    }
}

#[cfg(test)]
mod tests {
    use super::{Conductor, SidecarHealth::*, Transfer};

    #[test]
    fn an_unhealthy_leader_hands_over_to_the_next_healthy_node() {
        let mut conductor = Conductor::new(0, false);
        assert_eq!(conductor.observe(&[Healthy, Healthy, Healthy]), None);
        assert_eq!(
            conductor.observe(&[Unhealthy, Unhealthy, Healthy]),
            Some(Transfer {
                from: 0,
                to: 2,
                because: Unhealthy
            })
        );
        assert_eq!(conductor.leader(), 2);
    }

    #[test]
    fn degraded_counts_only_when_strict() {
        let mut lenient = Conductor::new(0, false);
        assert_eq!(lenient.observe(&[Degraded, Healthy, Healthy]), None);
        // A degraded follower is eligible when lenient.
        assert_eq!(
            lenient
                .observe(&[Unhealthy, Degraded, Healthy])
                .map(|t| t.to),
            Some(1)
        );
        let mut strict = Conductor::new(0, true);
        assert_eq!(
            strict.observe(&[Degraded, Degraded, Healthy]).map(|t| t.to),
            Some(2)
        );
    }

    #[test]
    fn with_no_eligible_node_the_leader_stays() {
        let mut conductor = Conductor::new(1, true);
        assert_eq!(conductor.observe(&[Unhealthy, Degraded, Degraded]), None);
        assert_eq!(conductor.leader(), 1);
    }
}
