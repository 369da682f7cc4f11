//! Room versions 1 to 12 as one table of their differences.
//!
//! Everything else in `proto` asks this table instead of matching on version strings, so a
//! difference between versions is written down exactly once. The flags follow the spec's
//! "Room Versions" pages; each says from which version it holds.

use crate::proto::canonical_json::Numbers;

/// How an event's id is made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventIdFormat {
    /// Rooms v1 and v2: `$opaque:server`, chosen by the sending server and carried in the event.
    ServerMade,
    /// Room v3: `$` + the reference hash in standard unpadded base64.
    ReferenceHashStandard,
    /// Rooms v4 and later: `$` + the reference hash in URL-safe unpadded base64.
    ReferenceHashUrlSafe,
}

/// Which state resolution algorithm a room version uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum StateResAlgorithm {
    V1,
    V2,
    V2_1,
}

impl StateResAlgorithm {
    pub fn name(self) -> &'static str {
        match self {
            Self::V1 => "v1",
            Self::V2 => "v2",
            Self::V2_1 => "v2.1",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "v1" => Some(Self::V1),
            "v2" => Some(Self::V2),
            "v2.1" => Some(Self::V2_1),
            _ => None,
        }
    }
}

/// Which keys the redaction algorithm keeps, by the version that introduced each change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RedactionRules {
    /// v1-v5: `m.room.aliases` keeps `content.aliases`.
    pub keep_aliases: bool,
    /// v8+: `m.room.join_rules` keeps `content.allow`.
    pub keep_join_rules_allow: bool,
    /// v9+: `m.room.member` keeps `content.join_authorised_via_users_server`.
    pub keep_join_authorised_via_users_server: bool,
    /// v11+: the top-level keys `origin`, `membership` and `prev_state` are no longer kept;
    /// `m.room.create` keeps all of its content; `m.room.power_levels` keeps `invite`;
    /// `m.room.redaction` keeps `content.redacts`; `m.room.member` keeps
    /// `content.third_party_invite.signed`.
    pub v11_rules: bool,
}

/// One room version's rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RoomVersion {
    pub id: &'static str,
    pub event_id_format: EventIdFormat,
    pub state_res: StateResAlgorithm,
    pub redaction: RedactionRules,
    /// v6+: integers outside [-(2^53)+1, 2^53-1] and floats make an event invalid.
    pub strict_canonical_json: bool,
    /// v5+: signing keys must be checked against their `valid_until_ts`.
    pub enforce_key_validity: bool,
    /// v1-v5: `m.room.aliases` has its own auth rule (any server may set its own aliases).
    pub special_case_aliases_auth: bool,
    /// v6+: `notifications` in power levels is checked like the other power level keys.
    pub limit_notifications_power_levels: bool,
    /// v7+: the `knock` membership and join rule.
    pub knocking: bool,
    /// v8+: the `restricted` join rule with `join_authorised_via_users_server`.
    pub restricted_join_rule: bool,
    /// v10+: the `knock_restricted` join rule.
    pub knock_restricted_join_rule: bool,
    /// v10+: power level values must be integers (v1-v9 also accept strings of digits).
    pub integer_power_levels: bool,
    /// v11+: the room creator is the create event's `sender` (v1-v10 read `content.creator`).
    pub creator_is_sender: bool,
    /// v11+: `redacts` moved from the top level into `content`.
    pub redacts_in_content: bool,
    /// v12: the room id is `!` + the create event's reference hash, and the create event has no
    /// `room_id` of its own.
    pub room_id_from_create_event: bool,
    /// v12: the creator and `additional_creators` have infinite power and cannot be demoted.
    pub privileged_creators: bool,
    /// v12: the create event is never listed in `auth_events` (it is implied by the room id).
    pub create_event_implied: bool,
}

const REDACTION_V1: RedactionRules = RedactionRules {
    keep_aliases: true,
    keep_join_rules_allow: false,
    keep_join_authorised_via_users_server: false,
    v11_rules: false,
};

const V1: RoomVersion = RoomVersion {
    id: "1",
    event_id_format: EventIdFormat::ServerMade,
    state_res: StateResAlgorithm::V1,
    redaction: REDACTION_V1,
    strict_canonical_json: false,
    enforce_key_validity: false,
    special_case_aliases_auth: true,
    limit_notifications_power_levels: false,
    knocking: false,
    restricted_join_rule: false,
    knock_restricted_join_rule: false,
    integer_power_levels: false,
    creator_is_sender: false,
    redacts_in_content: false,
    room_id_from_create_event: false,
    privileged_creators: false,
    create_event_implied: false,
};
const V2: RoomVersion = RoomVersion {
    id: "2",
    state_res: StateResAlgorithm::V2,
    ..V1
};
const V3: RoomVersion = RoomVersion {
    id: "3",
    event_id_format: EventIdFormat::ReferenceHashStandard,
    ..V2
};
const V4: RoomVersion = RoomVersion {
    id: "4",
    event_id_format: EventIdFormat::ReferenceHashUrlSafe,
    ..V3
};
const V5: RoomVersion = RoomVersion {
    id: "5",
    enforce_key_validity: true,
    ..V4
};
const V6: RoomVersion = RoomVersion {
    id: "6",
    redaction: RedactionRules {
        keep_aliases: false,
        ..REDACTION_V1
    },
    strict_canonical_json: true,
    special_case_aliases_auth: false,
    limit_notifications_power_levels: true,
    ..V5
};
const V7: RoomVersion = RoomVersion {
    id: "7",
    knocking: true,
    ..V6
};
const V8: RoomVersion = RoomVersion {
    id: "8",
    redaction: RedactionRules {
        keep_join_rules_allow: true,
        ..V7.redaction
    },
    restricted_join_rule: true,
    ..V7
};
const V9: RoomVersion = RoomVersion {
    id: "9",
    redaction: RedactionRules {
        keep_join_authorised_via_users_server: true,
        ..V8.redaction
    },
    ..V8
};
const V10: RoomVersion = RoomVersion {
    id: "10",
    knock_restricted_join_rule: true,
    integer_power_levels: true,
    ..V9
};
const V11: RoomVersion = RoomVersion {
    id: "11",
    redaction: RedactionRules {
        v11_rules: true,
        ..V10.redaction
    },
    creator_is_sender: true,
    redacts_in_content: true,
    ..V10
};
const V12: RoomVersion = RoomVersion {
    id: "12",
    state_res: StateResAlgorithm::V2_1,
    room_id_from_create_event: true,
    privileged_creators: true,
    create_event_implied: true,
    ..V11
};

/// Every room version this crate implements, oldest first.
pub const ALL: [RoomVersion; 12] = [V1, V2, V3, V4, V5, V6, V7, V8, V9, V10, V11, V12];

/// The room version new rooms get unless told otherwise.
pub const DEFAULT: RoomVersion = V12;

impl RoomVersion {
    /// Looks up a room version by its id (`"1"` to `"12"`).
    pub fn from_id(id: &str) -> Option<&'static RoomVersion> {
        ALL.iter().find(|version| version.id == id)
    }

    /// How numbers in this version's events are canonicalized.
    pub fn numbers(&self) -> Numbers {
        if self.strict_canonical_json {
            Numbers::Strict
        } else {
            Numbers::Lenient
        }
    }

    /// Whether events carry their own `event_id` and reference others as `[id, hashes]` pairs
    /// (event format v1, rooms v1 and v2).
    pub fn event_ids_in_events(&self) -> bool {
        self.event_id_format == EventIdFormat::ServerMade
    }
}

/// An unknown room version, with the list of known ones.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown room version {0:?}; known versions are 1 to 12")]
pub struct UnknownRoomVersion(pub String);

/// Looks up a room version or says which ones exist.
pub fn room_version(id: &str) -> Result<&'static RoomVersion, UnknownRoomVersion> {
    RoomVersion::from_id(id).ok_or_else(|| UnknownRoomVersion(id.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_ordered_and_unique() {
        for (index, version) in ALL.iter().enumerate() {
            assert_eq!(version.id, (index + 1).to_string());
            assert_eq!(RoomVersion::from_id(version.id), Some(version));
        }
        assert!(room_version("13").is_err());
    }

    #[test]
    fn algorithm_per_version() {
        let algorithm = |id| room_version(id).unwrap().state_res;
        assert_eq!(algorithm("1"), StateResAlgorithm::V1);
        for id in ["2", "6", "11"] {
            assert_eq!(algorithm(id), StateResAlgorithm::V2);
        }
        assert_eq!(algorithm("12"), StateResAlgorithm::V2_1);
    }

    #[test]
    fn features_switch_on_where_the_spec_says() {
        let first = |flag: fn(&RoomVersion) -> bool| ALL.iter().position(flag).map(|i| i + 1);
        assert_eq!(
            first(|v| v.event_id_format == EventIdFormat::ReferenceHashUrlSafe),
            Some(4)
        );
        assert_eq!(first(|v| v.enforce_key_validity), Some(5));
        assert_eq!(first(|v| v.strict_canonical_json), Some(6));
        assert_eq!(first(|v| v.knocking), Some(7));
        assert_eq!(first(|v| v.restricted_join_rule), Some(8));
        assert_eq!(
            first(|v| v.redaction.keep_join_authorised_via_users_server),
            Some(9)
        );
        assert_eq!(first(|v| v.integer_power_levels), Some(10));
        assert_eq!(first(|v| v.creator_is_sender), Some(11));
        assert_eq!(first(|v| v.privileged_creators), Some(12));
        assert!(!ALL[5].special_case_aliases_auth && ALL[4].special_case_aliases_auth);
    }
}
