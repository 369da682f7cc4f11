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
    /// Bound on the most inbound transactions any honest server was processing at once (its
    /// inbound queue), whatever an attacker sends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub victim_queue_max: Option<u64>,
    /// Bound on `honest_latency_p99_ratio`: the p99 delivery latency of honest events sent
    /// during the attacks over the same figure in the same run without the attackers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub honest_latency_p99_ratio_max: Option<f64>,
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
            victim_queue_max: None,
            honest_latency_p99_ratio_max: None,
        }
    }
}

/// What one expectation requires of its metric.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Bound {
    /// The metric is exactly this (`converged`).
    Is(bool),
    /// The metric is at least this (`delivery_ratio_min`).
    AtLeast(f64),
    /// The count is at most this (`*_max` counts).
    AtMost(u64),
    /// The ratio is at most this (`honest_latency_p99_ratio_max`).
    AtMostRatio(f64),
    /// The duration is at most this many milliseconds (`convergence_within`,
    /// `latency_p99_max`).
    WithinMs(u64),
}

impl std::fmt::Display for Bound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Is(value) => write!(f, "{value}"),
            Self::AtLeast(value) => write!(f, ">= {value}"),
            Self::AtMost(value) => write!(f, "<= {value}"),
            Self::AtMostRatio(value) => write!(f, "<= {value}"),
            Self::WithinMs(ms) => write!(f, "<= {}", SimDuration::from_ms(*ms).unwrap_or_default()),
        }
    }
}

impl Expect {
    /// Every expectation this table sets, by its file key, in a fixed order: what a runner
    /// checks and reports.
    pub fn checks(&self) -> Vec<(&'static str, Bound)> {
        let within = |value: Option<SimDuration>| value.map(|d| Bound::WithinMs(d.as_ms()));
        let at_most = |value: Option<u64>| value.map(Bound::AtMost);
        let all = [
            ("converged", self.converged.map(Bound::Is)),
            ("convergence_within", within(self.convergence_within)),
            (
                "delivery_ratio_min",
                self.delivery_ratio_min
                    .map(|ratio| Bound::AtLeast(ratio.value())),
            ),
            ("latency_p99_max", within(self.latency_p99_max)),
            ("state_resets_max", at_most(self.state_resets_max)),
            (
                "unauthorized_accepted_max",
                at_most(self.unauthorized_accepted_max),
            ),
            ("tampered_accepted_max", at_most(self.tampered_accepted_max)),
            (
                "accepted_after_acl_max",
                at_most(self.accepted_after_acl_max),
            ),
            ("acked_lost_max", at_most(self.acked_lost_max)),
            ("leaked_events_max", at_most(self.leaked_events_max)),
            (
                "forward_extremities_max",
                at_most(self.forward_extremities_max),
            ),
            ("victim_queue_max", at_most(self.victim_queue_max)),
            (
                "honest_latency_p99_ratio_max",
                self.honest_latency_p99_ratio_max.map(Bound::AtMostRatio),
            ),
        ];
        all.into_iter()
            .filter_map(|(key, bound)| bound.map(|bound| (key, bound)))
            .collect()
    }

    /// How many checks this table asks for.
    pub fn count(&self) -> usize {
        self.checks().len()
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
    fn checks_list_every_key_that_is_set() {
        let expect: Expect = toml::from_str(
            "converged = false\nconvergence_within = \"90s\"\ndelivery_ratio_min = 0.5\nstate_resets_max = 0\nlatency_p99_max = \"1500ms\"",
        )
        .unwrap();
        let checks: Vec<String> = expect
            .checks()
            .iter()
            .map(|(key, bound)| format!("{key} {bound}"))
            .collect();
        assert_eq!(
            checks,
            [
                "converged false",
                "convergence_within <= 1m30s",
                "delivery_ratio_min >= 0.5",
                "latency_p99_max <= 1s500ms",
                "state_resets_max <= 0",
            ]
        );
        // Every field of the table is reachable through `checks` (keys equal field names).
        let all: Expect = toml::from_str(
            "convergence_within = \"1s\"\ndelivery_ratio_min = 1\nlatency_p99_max = \"1s\"\nstate_resets_max = 0\nunauthorized_accepted_max = 0\ntampered_accepted_max = 0\naccepted_after_acl_max = 0\nacked_lost_max = 0\nleaked_events_max = 0\nforward_extremities_max = 0\nvictim_queue_max = 0\nhonest_latency_p99_ratio_max = 2.5",
        )
        .unwrap();
        assert_eq!(all.count(), 13);
        for (key, bound) in all.checks() {
            let value = match bound {
                Bound::Is(_) => "true",
                Bound::WithinMs(_) => "\"1s\"",
                Bound::AtLeast(_) | Bound::AtMost(_) | Bound::AtMostRatio(_) => "1",
            };
            let parsed = toml::from_str::<Expect>(&format!("{key} = {value}"));
            assert!(parsed.is_ok(), "{key} is not a key of [expect]");
        }
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
