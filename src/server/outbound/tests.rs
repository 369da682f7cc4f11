use super::*;
use crate::proto::pdu::{NewEvent, build_pdu};
use crate::proto::room_version;
use crate::proto::signing::SigningKey;
use serde_json::json;

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
        NextStep::Send(transaction) => transaction,
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
    let mut delays = Vec::new();
    for _ in 0..7 {
        queue.on_failure(now);
        let NextStep::WaitUntil { at_ms } = queue.next_step(now) else {
            panic!("not waiting")
        };
        delays.push(at_ms - now);
        now = at_ms;
        assert_eq!(sent(queue.next_step(now)), first);
    }
    assert_eq!(delays, [1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 60_000]);
}

#[test]
fn hearing_from_the_destination_resets_backoff() {
    let mut queue = queue();
    queue.push_pdu(message("a", 1));
    sent(queue.next_step(0));
    queue.on_failure(0);
    queue.on_failure(0);
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
        queue.on_failure(0);
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
    queue.on_failure(0);
    assert_eq!(sent(queue.next_step(60_000)), in_flight);
    queue.on_success();
}
