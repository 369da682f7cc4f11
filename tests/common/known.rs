//! Known differences between fedlab and ruma, each explained where it is detected, so the
//! oracle can tell them from new ones.
//!
//! - Joins without join rules (authorization rules): when the room state holds no
//!   `m.room.join_rules` event (a state resolution can drop it, when every conflicted join rules
//!   event fails the auth checks), fedlab reads the join rule as `invite`, as Synapse does; ruma
//!   rejects every join. The spec lists the join rules that allow a join and ends with
//!   "otherwise, reject", and says nothing of a room without join rules.
//!
//! Invariant: a detector only names a case when its pattern is present in the input; it never
//! decides that fedlab or ruma is right.

use std::collections::BTreeSet;
use std::fmt;

use fedlab::proto::event::Event;

use super::judges::Disagreement;

/// A known difference, with the events that show it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Known {
    /// `event` is a join whose room state has no join rules.
    JoinWithoutJoinRules { event: String },
}

impl fmt::Display for Known {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::JoinWithoutJoinRules { event } => write!(
                formatter,
                "known divergence: {event} is a join in a room state without join rules"
            ),
        }
    }
}

fn join_rules_key() -> (String, String) {
    ("m.room.join_rules".to_owned(), String::new())
}

fn is_join(event: &Event) -> bool {
    event.membership() == Some("join")
}

/// The known difference an authorization disagreement shows, if any.
pub fn explain_auth(disagreement: &Disagreement) -> Option<Known> {
    let event = disagreement.event.as_ref()?;
    let state = disagreement.state_sets.first()?;
    (is_join(event) && !state.contains_key(&join_rules_key())).then(|| {
        Known::JoinWithoutJoinRules {
            event: event.event_id.clone(),
        }
    })
}

/// The known difference that may explain a resolution disagreement in a room whose accepted
/// events are `events`, if any.
pub fn explain_resolution(events: &[Event]) -> Option<Known> {
    // A join accepted without join rules anywhere in the history may be re-checked by the
    // resolution, where the two rules part ways again. (The creator's first join, right after
    // the create event, needs no join rules.)
    let join_rules_events: BTreeSet<&str> = events
        .iter()
        .filter(|event| event.is("m.room.join_rules", ""))
        .map(|event| event.event_id.as_str())
        .collect();
    let create_event = events.iter().find(|event| event.is("m.room.create", ""));
    let join_without_rules = events.iter().find(|event| {
        is_join(event)
            && !create_event.is_some_and(|create| event.prev_events.contains(&create.event_id))
            && !event
                .auth_events
                .iter()
                .any(|id| join_rules_events.contains(id.as_str()))
    });
    join_without_rules.map(|event| Known::JoinWithoutJoinRules {
        event: event.event_id.clone(),
    })
}

/// Whether known differences fail the tests too: `FEDLAB_ORACLE_STRICT=1`. By default a case
/// that shows one is skipped, so the oracle keeps looking for new differences.
pub fn strict() -> bool {
    std::env::var("FEDLAB_ORACLE_STRICT").is_ok_and(|value| value == "1")
}
