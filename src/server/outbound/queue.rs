//! The outbound queue of one destination: what to send next, when, and what to forget.
//!
//! A pure state machine (no clock, no I/O): the async sender asks it for the next transaction,
//! reports how that went, and sleeps until it says to retry. Following the spec and Synapse's
//! practice, at most one transaction is in flight per destination; a failed transaction is
//! retried with the same id and contents (the receiver deduplicates by origin and id) after an
//! exponential backoff with a cap. Each delay is jittered (a fixed pseudo-random fraction per
//! destination and attempt, between half and all of the nominal delay, as Synapse randomises
//! its retry intervals): without it every queue that lost the same peer at the same moment
//! retries in lock-step, and after a partition heals nobody speaks first until the common
//! timer fires.
//!
//! Queued PDUs survive backoff (as Dendrite and Conduit keep their per-destination queues), so
//! a destination that comes back after an outage of minutes gets every event in order. Only
//! after long failure, or when the queue outgrows its bound, does it fall back to catch-up: it
//! forgets the queued PDUs and, when the destination answers again, sends only the newest PDU
//! of each room, leaving the destination to fetch the gap with /get_missing_events. Falling
//! back early is costly: a gap longer than the receiver's missing-events walk is bridged with
//! /state_ids and the events in it are never fetched.
//!
//! Invariants: the queues never exceed their bounds; a transaction holds at most
//! `TRANSACTION_PDUS_MAX` PDUs and `TRANSACTION_EDUS_MAX` EDUs; an in-flight transaction
//! is never changed before it is answered or abandoned.

use crate::proto::pdu::Pdu;
use crate::proto::wire::{RawEdu, TRANSACTION_EDUS_MAX, TRANSACTION_PDUS_MAX};
use sha2::{Digest as _, Sha256};
use std::collections::{BTreeMap, VecDeque};
use std::rc::Rc;
use std::sync::Arc;

/// The tunable bounds of a destination queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueLimits {
    /// PDUs waiting beyond this switch the queue to catch-up.
    pub pdus_queued_max: usize,
    /// EDUs waiting beyond this drop the oldest (EDUs are ephemeral).
    pub edus_queued_max: usize,
    /// The nominal delay after the first failure; it doubles with each further one.
    pub backoff_ms_min: u64,
    /// The cap on the nominal delay.
    pub backoff_ms_max: u64,
    /// Consecutive failures after which queued PDUs are forgotten in favour of catch-up (at
    /// the cap, each failure costs the backoff plus the request timeout: 40 is about half an
    /// hour, long past any outage the queue should bridge by resending).
    pub failures_before_catch_up: u32,
}

impl Default for QueueLimits {
    fn default() -> Self {
        Self {
            pdus_queued_max: 5_000,
            edus_queued_max: 1_000,
            backoff_ms_min: 1_000,
            backoff_ms_max: 60_000,
            failures_before_catch_up: 40,
        }
    }
}

/// One transaction to send.
#[derive(Clone, Debug, PartialEq)]
pub struct OutgoingTransaction {
    pub txn_id: String,
    pub pdus: Vec<Arc<Pdu>>,
    pub edus: Vec<RawEdu>,
}

/// What the sender should do now.
#[derive(Clone, Debug, PartialEq)]
pub enum NextStep {
    /// Send this transaction (a retry carries the same id and contents). Shared with the
    /// queue, which keeps it until it is answered: no copy per send.
    Send(Rc<OutgoingTransaction>),
    /// Nothing can be sent before this time (backoff).
    WaitUntil { at_ms: u64 },
    /// Nothing to send.
    Idle,
}

/// Counters the observers read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueueCounters {
    pub transactions_sent: u64,
    pub transactions_failed: u64,
    pub pdus_forgotten_for_catch_up: u64,
    pub edus_dropped: u64,
    pub catch_ups: u64,
    pub queued_pdus_peak: usize,
}

/// The queue of one destination. A server of a thousand-server room holds a thousand of them,
/// mostly idle: what only a queue with EDUs, failures or a catch-up needs is boxed apart
/// ([`Troubles`]), the limits are shared by the server's queues, and the backoff's jitter
/// key is handed in when a failure needs it.
#[derive(Debug)]
pub struct DestinationQueue {
    limits: Rc<QueueLimits>,
    pdus: VecDeque<Arc<Pdu>>,
    /// Boxed: most destinations of a large room have nothing in flight most of the time.
    in_flight: Option<Rc<OutgoingTransaction>>,
    next_txn_number: u64,
    /// Distinguishes this queue's transaction ids from an earlier incarnation's after a restart.
    txn_prefix: Box<str>,
    counters: QueueCounters,
    /// `None` while every field of it would be its default.
    troubles: Option<Box<Troubles>>,
}

/// The part of a queue that is not at its default only while it holds EDUs, has failed, or
/// catches up.
#[derive(Debug, Default, PartialEq)]
struct Troubles {
    edus: VecDeque<RawEdu>,
    failures: u32,
    retry_at_ms: u64,
    /// Newest PDU per room while catching up; empty when not catching up.
    catch_up: BTreeMap<String, Arc<Pdu>>,
    catching_up: bool,
}

/// What [`DestinationQueue::troubles`] reads for a queue without troubles.
static NO_TROUBLES: Troubles = Troubles {
    edus: VecDeque::new(),
    failures: 0,
    retry_at_ms: 0,
    catch_up: BTreeMap::new(),
    catching_up: false,
};

impl DestinationQueue {
    pub fn new(limits: impl Into<Rc<QueueLimits>>, txn_prefix: String) -> Self {
        let limits = limits.into();
        assert!(limits.backoff_ms_min > 0 && limits.backoff_ms_min <= limits.backoff_ms_max);
        Self {
            limits,
            pdus: VecDeque::new(),
            in_flight: None,
            next_txn_number: 0,
            txn_prefix: txn_prefix.into_boxed_str(),
            counters: QueueCounters::default(),
            troubles: None,
        }
    }

    fn troubles(&self) -> &Troubles {
        self.troubles.as_deref().unwrap_or(&NO_TROUBLES)
    }

    fn troubles_mut(&mut self) -> &mut Troubles {
        self.troubles.get_or_insert_with(Box::default)
    }

    /// Frees the troubles once they are all over.
    fn forget_troubles_if_over(&mut self) {
        if self.troubles.as_deref() == Some(&NO_TROUBLES) {
            self.troubles = None;
        }
    }

    pub fn counters(&self) -> QueueCounters {
        self.counters
    }

    pub fn queued_pdus(&self) -> usize {
        self.pdus.len() + self.troubles().catch_up.len()
    }

    pub fn is_catching_up(&self) -> bool {
        self.troubles().catching_up
    }

    pub fn push_pdu(&mut self, pdu: Arc<Pdu>) {
        if self.is_catching_up() {
            self.remember_for_catch_up(pdu);
            return;
        }
        self.pdus.push_back(pdu);
        self.counters.queued_pdus_peak = self.counters.queued_pdus_peak.max(self.pdus.len());
        if self.pdus.len() > self.limits.pdus_queued_max {
            // The sender still waits for the in-flight transaction's answer: it stays.
            self.start_catch_up(false);
        }
        debug_assert!(self.pdus.len() <= self.limits.pdus_queued_max);
    }

    pub fn push_edu(&mut self, edu: RawEdu) {
        let edus_queued_max = self.limits.edus_queued_max;
        let edus = &mut self.troubles_mut().edus;
        edus.push_back(edu);
        let mut dropped = 0;
        while edus.len() > edus_queued_max {
            edus.pop_front();
            dropped += 1;
        }
        self.counters.edus_dropped += dropped;
    }

    /// What to do at `now_ms`.
    pub fn next_step(&mut self, now_ms: u64) -> NextStep {
        let retry_at_ms = self.troubles().retry_at_ms;
        if let Some(in_flight) = &self.in_flight {
            if now_ms < retry_at_ms {
                return NextStep::WaitUntil { at_ms: retry_at_ms };
            }
            return NextStep::Send(in_flight.clone());
        }
        let troubles = self.troubles();
        if self.pdus.is_empty() && troubles.edus.is_empty() && troubles.catch_up.is_empty() {
            return NextStep::Idle;
        }
        if now_ms < retry_at_ms {
            return NextStep::WaitUntil { at_ms: retry_at_ms };
        }
        let transaction = Rc::new(self.take_batch());
        self.in_flight = Some(transaction.clone());
        NextStep::Send(transaction)
    }

    fn take_batch(&mut self) -> OutgoingTransaction {
        let mut pdus: Vec<Arc<Pdu>> = Vec::new();
        if self.is_catching_up() {
            // Newest event per room, in room id order; the rest waits for the next round.
            let catch_up = &mut self.troubles_mut().catch_up;
            while pdus.len() < TRANSACTION_PDUS_MAX {
                let Some((_, pdu)) = catch_up.pop_first() else {
                    break;
                };
                pdus.push(pdu);
            }
        } else {
            let count = self.pdus.len().min(TRANSACTION_PDUS_MAX);
            pdus.extend(self.pdus.drain(..count));
        }
        let mut edus: Vec<RawEdu> = Vec::new();
        if let Some(troubles) = self.troubles.as_deref_mut() {
            let edu_count = troubles.edus.len().min(TRANSACTION_EDUS_MAX);
            edus.extend(troubles.edus.drain(..edu_count));
            if troubles.edus.is_empty() {
                troubles.edus = VecDeque::new();
            }
        }
        // A drained queue gives its buffers back: a server of a thousand-server room holds a
        // thousand queues, each of which grew in the join storm and then idles.
        if self.pdus.is_empty() {
            self.pdus = VecDeque::new();
        }
        self.forget_troubles_if_over();
        self.next_txn_number += 1;
        let txn_id = format!("{}.{}", self.txn_prefix, self.next_txn_number);
        OutgoingTransaction { txn_id, pdus, edus }
    }

    /// The destination answered the in-flight transaction with 200.
    pub fn on_success(&mut self) {
        assert!(
            self.in_flight.take().is_some(),
            "success reported with nothing in flight"
        );
        self.counters.transactions_sent += 1;
        if let Some(troubles) = self.troubles.as_deref_mut() {
            troubles.failures = 0;
            troubles.retry_at_ms = 0;
            if troubles.catching_up && troubles.catch_up.is_empty() {
                troubles.catching_up = false;
            }
        }
        self.forget_troubles_if_over();
    }

    /// The in-flight transaction failed at `now_ms` (no answer, or an error status).
    /// `jitter_key` (say "origin>destination") seeds the backoff's jitter, so that queues of
    /// different servers and destinations retry at different moments.
    pub fn on_failure(&mut self, now_ms: u64, jitter_key: &str) {
        assert!(
            self.in_flight.is_some(),
            "failure reported with nothing in flight"
        );
        self.counters.transactions_failed += 1;
        let troubles = self.troubles_mut();
        troubles.failures = troubles.failures.saturating_add(1);
        let retry_at_ms = now_ms + self.backoff_ms(jitter_key);
        self.troubles_mut().retry_at_ms = retry_at_ms;
        if self.troubles().failures >= self.limits.failures_before_catch_up
            && !self.is_catching_up()
        {
            self.start_catch_up(true);
        }
    }

    /// The destination refused the transaction for good (a 4xx other than 429): drop it.
    pub fn on_refused(&mut self) {
        assert!(
            self.in_flight.take().is_some(),
            "refusal reported with nothing in flight"
        );
        self.counters.transactions_failed += 1;
    }

    /// We heard from the destination (it sent us a request): retry now.
    pub fn heard_from(&mut self) {
        if let Some(troubles) = self.troubles.as_deref_mut() {
            troubles.failures = 0;
            troubles.retry_at_ms = 0;
        }
        self.forget_troubles_if_over();
    }

    /// The nominal delay after the current number of consecutive failures, before jitter.
    pub fn nominal_backoff_ms(&self) -> u64 {
        let exponent = self.troubles().failures.saturating_sub(1).min(32);
        self.limits
            .backoff_ms_min
            .saturating_mul(1u64 << exponent)
            .min(self.limits.backoff_ms_max)
    }

    /// The delay after the current number of consecutive failures: between half and all of
    /// the nominal delay, by a fraction fixed by `jitter_key` and the failure count.
    pub fn backoff_ms(&self, jitter_key: &str) -> u64 {
        let nominal = self.nominal_backoff_ms();
        let failures = self.troubles().failures;
        let digest = Sha256::digest(format!("{jitter_key}/{failures}").as_bytes());
        let draw = u64::from_be_bytes(digest[..8].try_into().expect("a digest has 8 bytes"));
        let fraction = (draw >> 11) as f64 / (1u64 << 53) as f64;
        let jittered = nominal as f64 * (0.5 + 0.5 * fraction);
        (jittered as u64).clamp(1, nominal)
    }

    /// Forgets the queued PDUs in favour of catch-up; with `take_in_flight`, also the
    /// in-flight transaction (only once it failed: while it is being sent, its answer is
    /// still to be reported).
    fn start_catch_up(&mut self, take_in_flight: bool) {
        self.troubles_mut().catching_up = true;
        self.counters.catch_ups += 1;
        let forgotten: Vec<Arc<Pdu>> = self.pdus.drain(..).collect();
        if take_in_flight && let Some(in_flight) = self.in_flight.take() {
            self.counters.pdus_forgotten_for_catch_up += in_flight.pdus.len() as u64;
            for pdu in in_flight.pdus.iter().cloned() {
                self.remember_for_catch_up(pdu);
            }
            // The in-flight EDUs are ephemeral and stale by now.
            self.counters.edus_dropped += in_flight.edus.len() as u64;
        }
        self.counters.pdus_forgotten_for_catch_up += forgotten.len() as u64;
        for pdu in forgotten {
            self.remember_for_catch_up(pdu);
        }
    }

    fn remember_for_catch_up(&mut self, pdu: Arc<Pdu>) {
        let room_id = pdu.event().room_id.clone();
        let catch_up = &mut self.troubles_mut().catch_up;
        match catch_up.get(&room_id) {
            Some(held) if newer_or_equal(held, &pdu) => {}
            _ => {
                catch_up.insert(room_id, pdu);
            }
        }
    }
}

/// Whether `held` is at least as new as `candidate` (by depth, then arrival order).
fn newer_or_equal(held: &Pdu, candidate: &Pdu) -> bool {
    held.event().depth > candidate.event().depth
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
