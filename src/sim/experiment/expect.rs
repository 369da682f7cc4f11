//! The `[expect]` table: the verdicts a run must reach. Each key is one check against one
//! metric of DESIGN.md ("Metrics and oracles"); a key left out is not checked, except
//! `converged`, which defaults to true because every run ends with a liveness phase.
//!
//! Invariant: fractions are in [0, 1]; unknown keys are rejected, so a misspelt expectation
//! can never pass silently.

use super::defaults;
use super::duration::SimDuration;
use super::numbers::Probability;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// At the end every honest server has the same state and the same accepted events
    /// (`false` expects a divergence, for experiments built to show one).
    #[serde(
        default = "defaults::expect_converged",
        skip_serializing_if = "Option::is_none"
    )]
    pub converged: Option<bool>,
    /// Convergence holds for good within this long after the last heal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub convergence_within: Option<SimDuration>,
    /// Delivered (event, server) pairs over expected pairs, for honest senders.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery_ratio_min: Option<Probability>,
    /// Bound on the p99 of honest delivery latency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_p99_max: Option<SimDuration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_resets_max: Option<u64>,
    /// Adversary events an honest server accepted although the protocol must stop them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unauthorized_accepted_max: Option<u64>,
    /// Events tampered with in transit or backfill that an honest server accepted unredacted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tampered_accepted_max: Option<u64>,
    /// Events from a server accepted after an `m.room.server_acl` denied it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accepted_after_acl_max: Option<u64>,
    /// Events acknowledged with a 200 and lost in a crash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acked_lost_max: Option<u64>,
    /// Room events served to servers with no joined member.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leaked_events_max: Option<u64>,
    /// Bound on the largest number of forward extremities any honest server held.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forward_extremities_max: Option<u64>,
}

impl Default for Expect {
    fn default() -> Self {
        Self {
            converged: defaults::expect_converged(),
            convergence_within: None,
            delivery_ratio_min: None,
            latency_p99_max: None,
            state_resets_max: None,
            unauthorized_accepted_max: None,
            tampered_accepted_max: None,
            accepted_after_acl_max: None,
            acked_lost_max: None,
            leaked_events_max: None,
            forward_extremities_max: None,
        }
    }
}

impl Expect {
    /// How many checks this table asks for.
    pub fn count(&self) -> usize {
        let durations = [self.convergence_within, self.latency_p99_max];
        let counts = [
            self.state_resets_max,
            self.unauthorized_accepted_max,
            self.tampered_accepted_max,
            self.accepted_after_acl_max,
            self.acked_lost_max,
            self.leaked_events_max,
            self.forward_extremities_max,
        ];
        usize::from(self.converged.is_some())
            + usize::from(self.delivery_ratio_min.is_some())
            + durations.iter().filter(|value| value.is_some()).count()
            + counts.iter().filter(|value| value.is_some()).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converged_defaults_to_true_and_the_rest_to_unchecked() {
        let expect: Expect = toml::from_str("").unwrap();
        assert_eq!(expect, Expect::default());
        assert_eq!(expect.converged, Some(true));
        assert_eq!(expect.count(), 1);
    }

    #[test]
    fn unknown_keys_are_rejected_with_the_known_ones() {
        let error = toml::from_str::<Expect>("delivery_ratio = 1.0").unwrap_err();
        assert!(
            error.message().contains("unknown field `delivery_ratio`"),
            "{error}"
        );
        assert!(error.message().contains("`delivery_ratio_min`"), "{error}");
        let error = toml::from_str::<Expect>("delivery_ratio_min = 2").unwrap_err();
        assert!(error.message().contains("from 0 to 1"), "{error}");
    }
}
