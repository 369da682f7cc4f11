//! Per-origin admission of inbound transactions: a token bucket of PDUs per origin and a bound
//! on the transactions of one origin processed at once. A transaction over either bound is
//! refused whole with 429 (`M_LIMIT_EXCEEDED`), which an honest sender treats as transient and
//! retries after its backoff, so honest traffic is delayed, never lost.
//!
//! Events also arrive without `/send`: a server that fills a gap takes what the peer's
//! `/get_missing_events` answers hold, so a peer could push any number of events by citing
//! ones nobody has. A second bucket per origin bounds the new events a gap fill may take from
//! it ([`InboundGate::gap_allowance`], charged by [`InboundGate::charge_gap`]); a gap fill
//! over budget stops, and the event that opened the gap is placed with the peer's state
//! instead (`/state_ids`), so an honest catch-up still completes, just with less history.
//!
//! [`InboundGate`] is a pure state machine: time comes in as an argument. Invariants: an
//! origin never has more than `transactions_in_flight_per_origin` admitted transactions
//! unfinished; its buckets never hold more than `pdus_burst_per_origin` and
//! `gap_events_burst_per_origin` tokens; the table of origins holds at most
//! [`ORIGINS_TRACKED_MAX`] entries.

use crate::server::config::InboundLimits;
use crate::server::name_key::NameMap;

/// Origins remembered at once; an idle origin with a full bucket is forgotten first, which
/// loses nothing (it would start full again).
pub const ORIGINS_TRACKED_MAX: usize = 10_000;

#[derive(Clone, Debug)]
struct OriginState {
    tokens: f64,
    /// New events a gap fill may still take from this origin.
    gap_tokens: f64,
    refilled_at_ms: u64,
    in_flight: u32,
}

impl OriginState {
    fn new(limits: &InboundLimits, now_ms: u64) -> Self {
        Self {
            tokens: limits.pdus_burst_per_origin,
            gap_tokens: limits.gap_events_burst_per_origin,
            refilled_at_ms: now_ms,
            in_flight: 0,
        }
    }

    /// Refills both buckets for the time since the last refill.
    fn refill(&mut self, limits: &InboundLimits, now_ms: u64) {
        let elapsed_s = now_ms.saturating_sub(self.refilled_at_ms) as f64 / 1000.0;
        self.tokens = (self.tokens + elapsed_s * limits.pdus_per_second_per_origin)
            .min(limits.pdus_burst_per_origin);
        self.gap_tokens = (self.gap_tokens + elapsed_s * limits.gap_events_per_second_per_origin)
            .min(limits.gap_events_burst_per_origin);
        self.refilled_at_ms = self.refilled_at_ms.max(now_ms);
    }
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
    /// Looked up per received transaction; iterated only to pick the origin to forget, whose
    /// choice breaks ties by name, so it never follows the table's order.
    origins: NameMap<OriginState>,
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
        let state = self.origin(limits, origin, now_ms);
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

    /// How many new events a gap fill asking `origin` may take now, at most `wanted`: the
    /// whole of `wanted` with `enforce` off.
    pub fn gap_allowance(
        &mut self,
        limits: &InboundLimits,
        origin: &str,
        wanted: u64,
        now_ms: u64,
        enforce: bool,
    ) -> u64 {
        if !enforce {
            return wanted;
        }
        let state = self.origin(limits, origin, now_ms);
        (state.gap_tokens.floor() as u64).min(wanted)
    }

    /// Charges `taken` new events that a gap fill took from `origin`.
    pub fn charge_gap(&mut self, limits: &InboundLimits, origin: &str, taken: u64, now_ms: u64) {
        let state = self.origin(limits, origin, now_ms);
        state.gap_tokens = (state.gap_tokens - taken as f64).max(0.0);
    }

    /// The state of `origin`, refilled to `now_ms`; a new origin starts with full buckets.
    fn origin(&mut self, limits: &InboundLimits, origin: &str, now_ms: u64) -> &mut OriginState {
        // Asked per received transaction and gap fill: the name is copied only for a new origin.
        // A known origin costs one lookup; only a full table looks twice.
        if self.origins.len() >= ORIGINS_TRACKED_MAX && !self.origins.contains_key(origin) {
            self.forget_idle_if_full();
        }
        let state = self
            .origins
            .get_or_insert_with(origin, || OriginState::new(limits, now_ms));
        state.refill(limits, now_ms);
        state
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
            .max_by(|a, b| {
                let tokens = |state: &OriginState| state.tokens + state.gap_tokens;
                tokens(a.1)
                    .total_cmp(&tokens(b.1))
                    .then_with(|| a.0.cmp(b.0))
            })
            .map(|(origin, _)| origin.clone());
        if let Some(origin) = idle {
            self.origins.remove(origin.as_str());
        }
    }
}

impl crate::server::Inner {
    /// How many new events the next gap-filling request to `origin` may take (see the module
    /// doc); 0 means the gap fill must stop.
    pub(crate) fn gap_fill_allowance(&self, origin: &str, wanted: u64) -> u64 {
        let allowed = self.inbound_gate.borrow_mut().gap_allowance(
            &self.config.inbound_limits,
            origin,
            wanted,
            self.clock.now_ms(),
            self.config.defences.gap_fill_bounds,
        );
        if allowed < wanted {
            self.metrics.borrow_mut().gap_fills_limited += 1;
        }
        allowed
    }

    /// How many events of an answer to a request for `asked` events are read: an answer
    /// holding more than was asked for is cut (unless the `gap_fill_bounds` defence is off).
    pub(crate) fn answer_events_max(&self, asked: u64) -> usize {
        if self.config.defences.gap_fill_bounds {
            usize::try_from(asked).unwrap_or(usize::MAX)
        } else {
            usize::MAX
        }
    }

    /// Charges `taken` new events a gap fill took from `origin` to its budget.
    pub(crate) fn charge_gap_fill(&self, origin: &str, taken: u64) {
        self.inbound_gate.borrow_mut().charge_gap(
            &self.config.inbound_limits,
            origin,
            taken,
            self.clock.now_ms(),
        );
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
            gap_events_per_second_per_origin: 5.0,
            gap_events_burst_per_origin: 100.0,
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

    #[test]
    fn gap_fills_take_at_most_the_budget_of_their_origin() {
        let mut gate = InboundGate::default();
        let limits = limits();
        assert_eq!(gate.gap_allowance(&limits, "a", 60, 0, true), 60);
        gate.charge_gap(&limits, "a", 60, 0);
        // 40 left of the burst: a round asking for 100 gets 40, then nothing.
        assert_eq!(gate.gap_allowance(&limits, "a", 100, 0, true), 40);
        gate.charge_gap(&limits, "a", 40, 0);
        assert_eq!(gate.gap_allowance(&limits, "a", 100, 0, true), 0);
        // Two seconds refill ten; another origin and the /send bucket are not affected.
        assert_eq!(gate.gap_allowance(&limits, "a", 100, 2_000, true), 10);
        assert_eq!(gate.gap_allowance(&limits, "b", 100, 2_000, true), 100);
        gate.admit(&limits, "a", 50, 2_000, true).unwrap();
        // Off, a gap fill takes what it asks for.
        assert_eq!(gate.gap_allowance(&limits, "a", 1_000, 2_000, false), 1_000);
    }

    #[test]
    fn a_full_table_forgets_the_idle_origin_with_most_tokens_then_the_greatest_name() {
        let mut gate = InboundGate::default();
        let limits = limits();
        for n in 0..ORIGINS_TRACKED_MAX {
            let origin = format!("s{n:05}");
            gate.admit(&limits, &origin, 1, 0, true).unwrap();
            gate.finish(&origin);
        }
        // Busy origins are kept whatever their tokens.
        gate.admit(&limits, "s09999", 1, 0, true).unwrap();
        // Two idle origins share the most tokens: the greater name goes, in any table order.
        gate.origins.get_mut("s00003").unwrap().tokens += 1.0;
        gate.origins.get_mut("s00007").unwrap().tokens += 1.0;
        gate.admit(&limits, "new", 1, 0, true).unwrap();
        assert_eq!(gate.origins.len(), ORIGINS_TRACKED_MAX);
        assert!(gate.origins.contains_key("s00003"));
        assert!(!gate.origins.contains_key("s00007"));
        assert!(gate.origins.contains_key("s09999"));
        gate.admit(&limits, "newer", 1, 0, true).unwrap();
        assert!(!gate.origins.contains_key("s00003"));
        gate.admit(&limits, "newest", 1, 0, true).unwrap();
        assert!(
            !gate.origins.contains_key("s09998"),
            "equal tokens: the greatest idle name"
        );
        assert!(gate.origins.contains_key("s09999"));
    }
}
