//! Per-origin admission of inbound transactions: a token bucket of PDUs per origin and a bound
//! on the transactions of one origin processed at once. A transaction over either bound is
//! refused whole with 429 (`M_LIMIT_EXCEEDED`), which an honest sender treats as transient and
//! retries after its backoff, so honest traffic is delayed, never lost.
//!
//! A pure state machine: time comes in as an argument. Invariants: an origin never has more
//! than `transactions_in_flight_per_origin` admitted transactions unfinished; its bucket never
//! holds more than `pdus_burst_per_origin` tokens; the table of origins holds at most
//! [`ORIGINS_TRACKED_MAX`] entries.

use crate::server::config::InboundLimits;
use std::collections::BTreeMap;

/// Origins remembered at once; an idle origin with a full bucket is forgotten first, which
/// loses nothing (it would start full again).
pub const ORIGINS_TRACKED_MAX: usize = 10_000;

#[derive(Clone, Debug)]
struct OriginState {
    tokens: f64,
    refilled_at_ms: u64,
    in_flight: u32,
}

/// Why a transaction was not admitted.
#[derive(Clone, Debug, PartialEq)]
pub enum Refusal {
    /// The origin's bucket holds fewer tokens than the transaction has PDUs.
    Rate { pdus: usize, tokens: f64 },
    /// The origin already has this many transactions being processed.
    InFlight { in_flight: u32 },
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Rate { pdus, tokens } => write!(
                f,
                "{pdus} PDUs exceed this origin's rate limit ({tokens:.0} allowed now)"
            ),
            Self::InFlight { in_flight } => write!(
                f,
                "{in_flight} transactions of this origin are still being processed"
            ),
        }
    }
}

/// The admission state of every origin.
#[derive(Debug, Default)]
pub struct InboundGate {
    origins: BTreeMap<String, OriginState>,
    in_flight_total: u64,
}

impl InboundGate {
    /// Admits a transaction of `pdus` PDUs from `origin` at `now_ms`, or says why not. With
    /// `enforce` off, everything is admitted (and still counted in flight).
    pub fn admit(
        &mut self,
        limits: &InboundLimits,
        origin: &str,
        pdus: usize,
        now_ms: u64,
        enforce: bool,
    ) -> Result<(), Refusal> {
        if !self.origins.contains_key(origin) {
            self.forget_idle_if_full();
        }
        let state = self
            .origins
            .entry(origin.to_owned())
            .or_insert(OriginState {
                tokens: limits.pdus_burst_per_origin,
                refilled_at_ms: now_ms,
                in_flight: 0,
            });
        let elapsed_s = now_ms.saturating_sub(state.refilled_at_ms) as f64 / 1000.0;
        state.tokens = (state.tokens + elapsed_s * limits.pdus_per_second_per_origin)
            .min(limits.pdus_burst_per_origin);
        state.refilled_at_ms = now_ms;
        if enforce {
            if state.in_flight >= limits.transactions_in_flight_per_origin {
                return Err(Refusal::InFlight {
                    in_flight: state.in_flight,
                });
            }
            if (pdus as f64) > state.tokens {
                return Err(Refusal::Rate {
                    pdus,
                    tokens: state.tokens,
                });
            }
        }
        state.tokens = (state.tokens - pdus as f64).max(0.0);
        state.in_flight += 1;
        self.in_flight_total += 1;
        Ok(())
    }

    /// A transaction admitted for `origin` is finished.
    pub fn finish(&mut self, origin: &str) {
        if let Some(state) = self.origins.get_mut(origin) {
            assert!(state.in_flight > 0, "finished more than admitted");
            state.in_flight -= 1;
            self.in_flight_total -= 1;
        }
    }

    /// Transactions being processed now, all origins together.
    pub fn in_flight_total(&self) -> u64 {
        self.in_flight_total
    }

    fn forget_idle_if_full(&mut self) {
        if self.origins.len() < ORIGINS_TRACKED_MAX {
            return;
        }
        let idle = self
            .origins
            .iter()
            .filter(|(_, state)| state.in_flight == 0)
            .max_by(|a, b| a.1.tokens.total_cmp(&b.1.tokens))
            .map(|(origin, _)| origin.clone());
        if let Some(origin) = idle {
            self.origins.remove(&origin);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> InboundLimits {
        InboundLimits {
            pdus_per_second_per_origin: 10.0,
            pdus_burst_per_origin: 50.0,
            transactions_in_flight_per_origin: 1,
        }
    }

    #[test]
    fn a_burst_then_the_sustained_rate() {
        let mut gate = InboundGate::default();
        let limits = limits();
        gate.admit(&limits, "a", 50, 0, true).unwrap();
        gate.finish("a");
        assert!(matches!(
            gate.admit(&limits, "a", 1, 0, true),
            Err(Refusal::Rate { .. })
        ));
        // One second refills ten tokens; another origin is not affected.
        gate.admit(&limits, "a", 10, 1_000, true).unwrap();
        gate.finish("a");
        gate.admit(&limits, "b", 50, 1_000, true).unwrap();
        gate.finish("b");
        assert_eq!(gate.in_flight_total(), 0);
    }

    #[test]
    fn one_transaction_in_flight_per_origin_unless_off() {
        let mut gate = InboundGate::default();
        let limits = limits();
        gate.admit(&limits, "a", 1, 0, true).unwrap();
        assert_eq!(
            gate.admit(&limits, "a", 1, 0, true),
            Err(Refusal::InFlight { in_flight: 1 })
        );
        gate.admit(&limits, "a", 1, 0, false).unwrap();
        assert_eq!(gate.in_flight_total(), 2);
        gate.finish("a");
        gate.finish("a");
        gate.admit(&limits, "a", 1, 0, true).unwrap();
    }
}
