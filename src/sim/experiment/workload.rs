//! The `[workload]` table: how many users, how they join, and the rates at which they send
//! messages, change room state, type and send read receipts.
//!
//! Rates are for the whole room; the runner spreads them over the users allowed to act.
//! Honest users only do what their power allows: with `state_changes_by = "admins"` only
//! admins change state; with `"anyone-allowed"` any user whose power level suffices for the
//! change does. The workload stops when the final phase begins, so convergence is checked on a
//! quiet room.

use super::defaults;
use super::duration::SimDuration;
use super::numbers::Rate;
use serde::{Deserialize, Serialize};

/// When users join the room.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum JoinMode {
    /// Everyone joins at time 0 (in server order).
    #[default]
    AtStart,
    /// Joins are spread evenly over `join_over`, in an order that interleaves servers.
    Staggered,
}

/// Who changes room state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StateChangers {
    /// The room creator and the `admins_per_server` admins of each server.
    #[default]
    Admins,
    /// Any user whose power level allows the change.
    AnyoneAllowed,
}

/// A kind of state change the workload may make.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StateChangeKind {
    /// `m.room.topic`.
    Topic,
    /// `m.room.name`.
    Name,
    /// `m.room.power_levels`: raise or lower a user, change a required level.
    PowerLevels,
    /// `m.room.join_rules`: public or invite.
    JoinRules,
    /// `m.room.member` ban of a non-admin user (and unban later).
    Ban,
    /// `m.room.member` leave and rejoin by the user themselves.
    Membership,
}

/// The `[workload]` table as written.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Workload {
    /// Gives every server this many users, overriding the topology.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub users_per_server: Option<u32>,
    #[serde(default = "defaults::messages_per_second")]
    pub messages_per_second: Rate,
    #[serde(default)]
    pub state_changes_per_second: Rate,
    #[serde(default)]
    pub join: JoinMode,
    /// The window of a staggered join.
    #[serde(default = "defaults::join_over")]
    pub join_over: SimDuration,
    #[serde(default)]
    pub typing_per_second: Rate,
    #[serde(default)]
    pub receipts_per_second: Rate,
    #[serde(default)]
    pub state_changes_by: StateChangers,
    #[serde(default = "defaults::state_change_kinds")]
    pub state_change_kinds: Vec<StateChangeKind>,
    /// Users per server promoted to admin (power 100) by the creator right after joining; 0
    /// leaves the creator as the only admin.
    #[serde(default)]
    pub admins_per_server: u32,
    /// The server whose first user creates the room; defaults to the first honest server with
    /// a user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creator: Option<String>,
    /// Users per server that send messages; all of them when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub senders_per_server: Option<u32>,
}

impl Default for Workload {
    fn default() -> Self {
        Self {
            users_per_server: None,
            messages_per_second: defaults::messages_per_second(),
            state_changes_per_second: Rate::ZERO,
            join: JoinMode::AtStart,
            join_over: defaults::join_over(),
            typing_per_second: Rate::ZERO,
            receipts_per_second: Rate::ZERO,
            state_changes_by: StateChangers::Admins,
            state_change_kinds: defaults::state_change_kinds(),
            admins_per_server: 0,
            creator: None,
            senders_per_server: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_table_is_the_default() {
        let workload: Workload = toml::from_str("").unwrap();
        assert_eq!(workload, Workload::default());
    }

    #[test]
    fn names_are_kebab_case() {
        let workload: Workload = toml::from_str(
            "join = \"staggered\"\nstate_changes_by = \"anyone-allowed\"\nstate_change_kinds = [\"power-levels\", \"join-rules\", \"ban\"]\n",
        )
        .unwrap();
        assert_eq!(workload.join, JoinMode::Staggered);
        assert_eq!(workload.state_changes_by, StateChangers::AnyoneAllowed);
        assert_eq!(workload.state_change_kinds.len(), 3);
        let error = toml::from_str::<Workload>("join = \"later\"").unwrap_err();
        assert!(
            error
                .message()
                .contains("expected `at-start` or `staggered`"),
            "{error}"
        );
    }
}
