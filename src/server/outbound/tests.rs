use super::*;
use crate::proto::canonical_json::{Numbers, to_canonical_string};
use crate::proto::pdu::{NewEvent, build_pdu};
use crate::proto::room_version;
use crate::proto::signing::SigningKey;
use serde_json::json;
use std::collections::BTreeSet;

fn message(room: &str, depth: u64) -> Arc<Pdu> {
    let key = SigningKey::from_seed("ed25519:a", &[7; 32]).unwrap();
    let version = room_version::room_version("11").unwrap();
    let new = NewEvent {
        room_id: Some(format!("!{room}:hs1")),
        sender: "@u:hs1".into(),
        event_type: "m.room.message".into(),
        state_key: None,
        content: json!({"body": depth.to_string()})
            .as_object()
            .unwrap()
            .clone(),
        prev_events: vec![format!("${}", "A".repeat(43)).into()],
        auth_events: vec![format!("${}A", "B".repeat(42)).into()],
        depth,
        origin_server_ts: depth,
        redacts: None,
        event_id_opaque: None,
    };
    Arc::new(build_pdu(new, version, "hs1", &key).unwrap())
}

fn edu(n: u64) -> RawEdu {
    RawEdu {
        edu_type: "m.typing".into(),
        content: json!({"n": n}),
    }
}

fn queue() -> DestinationQueue {
    DestinationQueue::new(QueueLimits::default(), "t".into())
}

fn sent(step: NextStep) -> OutgoingTransaction {
    match step {
        NextStep::Send(transaction) => OutgoingTransaction::clone(&transaction),
        other => panic!("expected a transaction, got {other:?}"),
    }
}

#[test]
fn batches_respect_spec_limits_and_keep_order() {
    let mut queue = queue();
    for depth in 1..=120 {
        queue.push_pdu(message("a", depth));
    }
    for _ in 0..150 {
        queue.push_edu(edu(0));
    }
    let first = sent(queue.next_step(0));
    assert_eq!((first.pdus.len(), first.edus.len()), (50, 100));
    assert_eq!(first.pdus[0].event().depth, 1);
    // One transaction in flight at a time: the same one comes back until it is answered.
    assert_eq!(sent(queue.next_step(0)), first);
    queue.on_success();
    let second = sent(queue.next_step(0));
    assert_eq!((second.pdus.len(), second.edus.len()), (50, 50));
    assert_ne!(second.txn_id, first.txn_id);
    queue.on_success();
    assert_eq!(sent(queue.next_step(0)).pdus.len(), 20);
    queue.on_success();
    assert_eq!(queue.next_step(0), NextStep::Idle);
}

#[test]
fn failures_back_off_exponentially_up_to_the_cap_and_retry_the_same_transaction() {
    let mut queue = queue();
    queue.push_pdu(message("a", 1));
    let first = sent(queue.next_step(0));
    let mut now = 0;
    let mut nominal = Vec::new();
    for _ in 0..7 {
        queue.on_failure(now, "t");
        let NextStep::WaitUntil { at_ms } = queue.next_step(now) else {
            panic!("not waiting")
        };
        let delay = at_ms - now;
        let expected = queue.nominal_backoff_ms();
        assert!(
            expected / 2 <= delay && delay <= expected,
            "delay {delay} outside the jitter range of {expected}"
        );
        nominal.push(expected);
        now = at_ms;
        assert_eq!(sent(queue.next_step(now)), first);
    }
    assert_eq!(
        nominal,
        [1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 60_000]
    );
}

/// The delays of a queue keyed `key` after `failures` failures at time 0.
fn delays(key: &str, failures: u32) -> Vec<u64> {
    let mut queue = DestinationQueue::new(QueueLimits::default(), "t".into());
    queue.push_pdu(message("a", 1));
    sent(queue.next_step(0));
    (0..failures)
        .map(|_| {
            queue.on_failure(0, key);
            queue.backoff_ms(key)
        })
        .collect()
}

#[test]
fn queues_that_failed_together_retry_at_different_moments() {
    // Six servers lose the same peer at the same instant (a partition): their retries must
    // spread out, or after the heal nobody speaks first until the common timer fires.
    let at_cap: BTreeSet<u64> = (1..=6)
        .map(|n| *delays(&format!("hs{n}>peer"), 10).last().unwrap())
        .collect();
    assert_eq!(at_cap.len(), 6, "retries in lock-step: {at_cap:?}");
    assert!(at_cap.iter().all(|d| (30_000..=60_000).contains(d)));
    assert!(at_cap.first().unwrap() + 5_000 < *at_cap.last().unwrap());
    // The jitter is a function of the key and the attempt: a replay waits the same.
    assert_eq!(delays("hs1>peer", 10), delays("hs1>peer", 10));
}

#[test]
fn an_outage_of_minutes_keeps_the_queued_pdus_and_sends_them_all_in_order() {
    let mut queue = queue();
    let mut now = 0;
    for depth in 1..=120 {
        queue.push_pdu(message("a", depth));
    }
    sent(queue.next_step(now));
    // Five minutes of failures with 10 s request timeouts, pushing as the room goes on.
    let mut depth = 120;
    while now < 300_000 {
        now += 10_000;
        queue.on_failure(now, "t");
        depth += 1;
        queue.push_pdu(message("a", depth));
        let NextStep::WaitUntil { at_ms } = queue.next_step(now) else {
            panic!("not waiting")
        };
        now = at_ms;
        sent(queue.next_step(now));
    }
    assert!(!queue.is_catching_up());
    // The transaction in flight all along (depths 1-50) finally gets through.
    queue.on_success();
    let mut received: Vec<u64> = Vec::new();
    while let NextStep::Send(transaction) = queue.next_step(now) {
        received.extend(transaction.pdus.iter().map(|pdu| pdu.event().depth));
        queue.on_success();
    }
    let expected: Vec<u64> = (51..=depth).collect();
    assert_eq!(received, expected);
}

#[test]
fn hearing_from_the_destination_resets_backoff() {
    let mut queue = queue();
    queue.push_pdu(message("a", 1));
    sent(queue.next_step(0));
    queue.on_failure(0, "t");
    queue.on_failure(0, "t");
    assert!(matches!(queue.next_step(10), NextStep::WaitUntil { .. }));
    queue.heard_from();
    assert!(matches!(queue.next_step(10), NextStep::Send(_)));
}

#[test]
fn long_failure_switches_to_catch_up_with_newest_event_per_room() {
    let mut queue = queue();
    for depth in 1..=5 {
        queue.push_pdu(message("a", depth));
        queue.push_pdu(message("b", depth * 10));
    }
    sent(queue.next_step(0));
    for _ in 0..QueueLimits::default().failures_before_catch_up {
        queue.on_failure(0, "t");
    }
    assert!(queue.is_catching_up());
    queue.push_pdu(message("a", 6));
    queue.heard_from();
    let catch_up = sent(queue.next_step(0));
    let depths: Vec<u64> = catch_up.pdus.iter().map(|pdu| pdu.event().depth).collect();
    assert_eq!(depths, [6, 50]);
    queue.on_success();
    assert!(!queue.is_catching_up());
    assert_eq!(queue.counters().catch_ups, 1);
}

#[test]
fn overflowing_the_pdu_bound_starts_catch_up_and_edus_drop_oldest() {
    let limits = QueueLimits {
        pdus_queued_max: 3,
        edus_queued_max: 2,
        ..QueueLimits::default()
    };
    let mut queue = DestinationQueue::new(limits, "t".into());
    for depth in 1..=4 {
        queue.push_pdu(message("a", depth));
    }
    assert!(queue.is_catching_up());
    assert_eq!(queue.queued_pdus(), 1);
    for n in 0..3 {
        queue.push_edu(edu(n));
    }
    assert_eq!(queue.counters().edus_dropped, 1);
    let transaction = sent(queue.next_step(0));
    assert_eq!(transaction.edus, vec![edu(1), edu(2)]);
}

/// Regression: overflowing the PDU bound while a transaction was in flight took that
/// transaction away, and its answer then panicked the sender ("nothing in flight"); a spam
/// attack whose victims rate-limited the spammer found it.
#[test]
fn overflowing_while_a_transaction_is_in_flight_keeps_it_until_answered() {
    let limits = QueueLimits {
        pdus_queued_max: 3,
        ..QueueLimits::default()
    };
    let mut queue = DestinationQueue::new(limits, "t".into());
    queue.push_pdu(message("a", 1));
    let in_flight = sent(queue.next_step(0));
    for depth in 2..=5 {
        queue.push_pdu(message("a", depth));
    }
    assert!(queue.is_catching_up());
    queue.on_failure(0, "t");
    assert_eq!(sent(queue.next_step(60_000)), in_flight);
    queue.on_success();
}

#[test]
fn a_transaction_body_is_what_the_transaction_serializes_to() {
    use crate::proto::wire::Transaction;
    use crate::server::outbound::sender::transaction_body;
    for edus in [vec![], vec![edu(1), edu(2)]] {
        let outgoing = OutgoingTransaction {
            txn_id: "t.1".into(),
            pdus: vec![message("r", 1), message("r", 2)],
            edus: edus.clone(),
        };
        let expected = Transaction {
            origin: "hs1".into(),
            origin_server_ts: 1_700_000_000_123,
            pdus: outgoing.pdus.iter().map(|pdu| pdu.json().clone()).collect(),
            edus,
        };
        let body = transaction_body("hs1", 1_700_000_000_123, &outgoing);
        // The sender signs and sends this text (as it did `to_value` of the transaction).
        let value = serde_json::to_value(&expected).unwrap();
        assert_eq!(body.text, value.to_string());
        assert!(body.canonical);
        let canonical = to_canonical_string(&value, Numbers::Lenient).unwrap();
        assert_eq!(body.text, canonical);
    }
}

#[test]
fn a_transaction_body_with_a_float_is_not_canonical() {
    use crate::server::outbound::sender::transaction_body;
    let mut edu_with_float = edu(1);
    edu_with_float.content = serde_json::json!({"w": 1.5, "v": 2.0});
    let outgoing = OutgoingTransaction {
        txn_id: "t.1".into(),
        pdus: vec![message("r", 1)],
        edus: vec![edu_with_float],
    };
    let body = transaction_body("hs1", 5, &outgoing);
    assert!(!body.canonical);
    let value: serde_json::Value = serde_json::from_str(&body.text).unwrap();
    assert_ne!(
        body.text,
        to_canonical_string(&value, Numbers::Lenient).unwrap()
    );
}

/// The part of a queue only troubles need is freed once they are over: a thousand idle queues
/// per server must not each keep it after the failures, EDUs or catch-up that made it.
#[test]
fn a_queue_frees_its_troubles_once_they_are_over() {
    let mut queue = queue();
    queue.push_pdu(message("a", 1));
    sent(queue.next_step(0));
    assert!(queue.troubles.is_none(), "a plain send needs no troubles");
    queue.on_failure(0, "t");
    assert!(queue.troubles.is_some());
    let NextStep::WaitUntil { at_ms } = queue.next_step(0) else {
        panic!("not waiting")
    };
    sent(queue.next_step(at_ms));
    queue.on_success();
    assert!(queue.troubles.is_none(), "kept after the retry succeeded");
    queue.push_edu(RawEdu {
        edu_type: "m.typing".into(),
        content: serde_json::json!({}),
    });
    assert!(queue.troubles.is_some());
    sent(queue.next_step(at_ms));
    assert!(queue.troubles.is_none(), "kept after its EDUs left");
}
