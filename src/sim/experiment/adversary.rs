//! `[[adversary]]` entries: a server of the topology turned Byzantine for a window of time,
//! running one attack of DESIGN.md's threat table with its parameters.
//!
//! ```toml
//! [[adversary]]
//! server = "evil.test"
//! attack = "forge-ban"
//! from = "2m"                 # default 0s
//! until = "5m"                # default: when the final phase begins
//! params = { per_second = 0.5 }
//! ```
//!
//! Each attack declares its parameters ([`Attack::parameters`]) with a kind and a default, so
//! a misspelt or mistyped parameter is an error naming the ones that exist. Invariant: a
//! validated [`AttackParams`] holds a value of the declared kind for every declared parameter
//! that has a default or was given, and nothing else.

use super::duration::SimDuration;
use super::numbers::{Probability, Rate};
use super::problem::{KeyPath, list_names};
use super::topology::{ServerId, Topology};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One attack from the threat table. The adversary is an honest server plus interceptors and
/// a builder of crafted events (DESIGN.md, "Two network fabrics, one server").
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Attack {
    /// Resource exhaustion: PDUs above the 65,536-byte limit. Defence: size limits (400s).
    OversizedPdus,
    /// Resource exhaustion: transactions with more than 50 PDUs or 100 EDUs. Defence: count
    /// limits.
    OverfullTransactions,
    /// Resource exhaustion: valid transactions at a very high rate. Defence: per-origin rate
    /// limits and bounded queues.
    TransactionFlood,
    /// Resource exhaustion: events whose auth chains are very deep, so checking them is costly.
    /// Defence: bounded fetches and auth-chain limits.
    DeepAuthChain,
    /// Unrecoverable consistency: different events with the same position sent to different
    /// servers. Defence: state resolution converges anyway.
    Equivocation,
    /// Bad history: events citing auth events that do not authorise them. Defence: auth rules
    /// reject them.
    InvalidAuthEvents,
    /// Bad history: events whose auth events the attacker refuses to serve. Defence: the event
    /// is rejected or soft-failed, never accepted unchecked.
    WithheldAuthEvents,
    /// Bad history: events whose prev events nobody has. Defence: missing-event fetches fail,
    /// and the event is not accepted on trust.
    UnknownPrevEvents,
    /// High volume of messages: valid spam at a high rate. Defence: rate limits, server ACLs.
    Spam,
    /// High volume of messages past the rate limit: each transaction carries one message
    /// citing a long chain of messages never sent, which the attacker serves (all of it,
    /// whatever the limit asked) when a victim fills the gap. Defence: answers cut to the
    /// limit asked and a per-origin budget of events taken by gap filling.
    GapFillSpam,
    /// Banning without authorisation: a ban by a user without the power to ban. Defence: auth
    /// rules.
    ForgeBan,
    /// Banning without authorisation: a ban citing power levels that were revoked on the other
    /// side of a partition. Defence: auth rules and state resolution after the heal.
    StalePowerBan,
    /// Altering message contents: rewrites the content of other servers' events it relays
    /// (missing-event and state responses). Defence: content hashes and signatures (redact on a
    /// hash mismatch).
    TamperInTransit,
    /// Altering message contents: rewrites other servers' events in backfill responses.
    /// Defence: content hashes and signatures.
    TamperInBackfill,
    /// Fake origin: events claiming another server's user, signed with the attacker's key.
    /// Defence: signature checks against the origin's keys.
    FakeOrigin,
    /// Unsolicited messages: events from users that are not members. Defence: membership auth.
    NonMemberEvents,
    /// Abusive messages, then an honest admin denies the attacker with `m.room.server_acl`.
    /// Defence: ACL enforcement (nothing accepted after the ACL).
    AbuseThenAcl,
    /// Disclosure outside the room: a server with no joined member asks for /event,
    /// /backfill, /state_ids and /get_missing_events. Defence: server-in-room and history
    /// visibility checks.
    PeekOutsideRoom,
}

/// What kind of value a parameter takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParamKind {
    /// A whole number >= 0.
    Count,
    /// Events per second, >= 0.
    Rate,
    /// A number from 0 to 1.
    Probability,
    /// A duration string.
    Duration,
    /// The name of a server of the topology.
    Server,
}

impl ParamKind {
    fn expected(self) -> &'static str {
        match self {
            Self::Count => "a whole number, at least 0",
            Self::Rate => "a number of events per second, at least 0",
            Self::Probability => "a number from 0 to 1",
            Self::Duration => "a duration string such as \"30s\"",
            Self::Server => "the name of a server of the topology",
        }
    }
}

/// One declared parameter of an attack.
#[derive(Clone, Copy, Debug)]
pub struct ParamSpec {
    pub name: &'static str,
    pub kind: ParamKind,
    /// The default as it would be written in a file; `None` leaves the parameter unset.
    pub default: Option<&'static str>,
    pub doc: &'static str,
}

const fn param(
    name: &'static str,
    kind: ParamKind,
    default: Option<&'static str>,
    doc: &'static str,
) -> ParamSpec {
    ParamSpec {
        name,
        kind,
        default,
        doc,
    }
}

const TARGET: ParamSpec = param(
    "target",
    ParamKind::Server,
    None,
    "the one honest server attacked; all honest servers when unset",
);
const PER_SECOND_SLOW: ParamSpec = param(
    "per_second",
    ParamKind::Rate,
    Some("0.5"),
    "crafted events per second",
);

impl Attack {
    /// Every attack, in the order of the threat table.
    pub const ALL: [Attack; 18] = [
        Self::OversizedPdus,
        Self::OverfullTransactions,
        Self::TransactionFlood,
        Self::DeepAuthChain,
        Self::Equivocation,
        Self::InvalidAuthEvents,
        Self::WithheldAuthEvents,
        Self::UnknownPrevEvents,
        Self::Spam,
        Self::GapFillSpam,
        Self::ForgeBan,
        Self::StalePowerBan,
        Self::TamperInTransit,
        Self::TamperInBackfill,
        Self::FakeOrigin,
        Self::NonMemberEvents,
        Self::AbuseThenAcl,
        Self::PeekOutsideRoom,
    ];

    /// The name files use.
    pub fn name(self) -> &'static str {
        match self {
            Self::OversizedPdus => "oversized-pdus",
            Self::OverfullTransactions => "overfull-transactions",
            Self::TransactionFlood => "transaction-flood",
            Self::DeepAuthChain => "deep-auth-chain",
            Self::Equivocation => "equivocation",
            Self::InvalidAuthEvents => "invalid-auth-events",
            Self::WithheldAuthEvents => "withheld-auth-events",
            Self::UnknownPrevEvents => "unknown-prev-events",
            Self::Spam => "spam",
            Self::GapFillSpam => "gap-fill-spam",
            Self::ForgeBan => "forge-ban",
            Self::StalePowerBan => "stale-power-ban",
            Self::TamperInTransit => "tamper-in-transit",
            Self::TamperInBackfill => "tamper-in-backfill",
            Self::FakeOrigin => "fake-origin",
            Self::NonMemberEvents => "non-member-events",
            Self::AbuseThenAcl => "abuse-then-acl",
            Self::PeekOutsideRoom => "peek-outside-room",
        }
    }

    /// Whether the attacker's server joins the room; attacks from outside the room keep it
    /// out so the defences that depend on membership are the ones tested.
    pub fn joins_room(self) -> bool {
        !matches!(self, Self::NonMemberEvents | Self::PeekOutsideRoom)
    }

    /// The parameters this attack takes.
    pub fn parameters(self) -> &'static [ParamSpec] {
        match self {
            Self::OversizedPdus => OVERSIZED_PDUS,
            Self::OverfullTransactions => OVERFULL_TRANSACTIONS,
            Self::TransactionFlood => TRANSACTION_FLOOD,
            Self::DeepAuthChain => DEEP_AUTH_CHAIN,
            Self::Equivocation => EQUIVOCATION,
            Self::InvalidAuthEvents
            | Self::WithheldAuthEvents
            | Self::UnknownPrevEvents
            | Self::NonMemberEvents => CRAFTED_EVENTS,
            Self::Spam => SPAM,
            Self::GapFillSpam => GAP_FILL_SPAM,
            Self::ForgeBan => FORGE_BAN,
            Self::StalePowerBan => STALE_POWER_BAN,
            Self::TamperInTransit | Self::TamperInBackfill => TAMPER,
            Self::FakeOrigin => FAKE_ORIGIN,
            Self::AbuseThenAcl => ABUSE_THEN_ACL,
            Self::PeekOutsideRoom => PEEK_OUTSIDE_ROOM,
        }
    }
}

const VICTIM_BANNED: ParamSpec = param(
    "victim",
    ParamKind::Server,
    None,
    "server whose users are banned; any honest server when unset",
);
const OVERSIZED_PDUS: &[ParamSpec] = &[
    param("bytes", ParamKind::Count, Some("70000"), "size of each PDU"),
    PER_SECOND_SLOW,
    TARGET,
];
const OVERFULL_TRANSACTIONS: &[ParamSpec] = &[
    param(
        "pdus_per_transaction",
        ParamKind::Count,
        Some("200"),
        "PDUs in each transaction",
    ),
    param(
        "edus_per_transaction",
        ParamKind::Count,
        Some("0"),
        "EDUs in each transaction",
    ),
    PER_SECOND_SLOW,
    TARGET,
];
const TRANSACTION_FLOOD: &[ParamSpec] = &[
    param(
        "transactions_per_second",
        ParamKind::Rate,
        Some("200"),
        "transactions per second",
    ),
    TARGET,
];
const DEEP_AUTH_CHAIN: &[ParamSpec] = &[
    param(
        "depth",
        ParamKind::Count,
        Some("5000"),
        "length of the crafted auth chain",
    ),
    TARGET,
];
const EQUIVOCATION: &[ParamSpec] = &[
    param(
        "forks",
        ParamKind::Count,
        Some("2"),
        "different versions of each event",
    ),
    PER_SECOND_SLOW,
];
const CRAFTED_EVENTS: &[ParamSpec] = &[PER_SECOND_SLOW, TARGET];
const SPAM: &[ParamSpec] = &[param(
    "messages_per_second",
    ParamKind::Rate,
    Some("50"),
    "spam messages per second",
)];
const GAP_FILL_SPAM: &[ParamSpec] = &[
    param(
        "chain",
        ParamKind::Count,
        Some("1000"),
        "unsent messages each sent one cites, through its prev events",
    ),
    param(
        "per_second",
        ParamKind::Rate,
        Some("1"),
        "transactions per second, each with one message",
    ),
    TARGET,
];
const FORGE_BAN: &[ParamSpec] = &[VICTIM_BANNED, PER_SECOND_SLOW];
const STALE_POWER_BAN: &[ParamSpec] = &[VICTIM_BANNED];
const TAMPER: &[ParamSpec] = &[param(
    "fraction",
    ParamKind::Probability,
    Some("1"),
    "share of relayed events that are rewritten",
)];
const FAKE_ORIGIN: &[ParamSpec] = &[
    param(
        "victim",
        ParamKind::Server,
        None,
        "server whose user is impersonated; the room creator's when unset",
    ),
    PER_SECOND_SLOW,
];
const ABUSE_THEN_ACL: &[ParamSpec] = &[
    param(
        "messages_per_second",
        ParamKind::Rate,
        Some("5"),
        "abusive messages per second",
    ),
    param(
        "acl_after",
        ParamKind::Duration,
        Some("30s"),
        "delay after `from` at which the creator denies the attacker by ACL",
    ),
];
const PEEK_OUTSIDE_ROOM: &[ParamSpec] = &[
    param(
        "requests_per_second",
        ParamKind::Rate,
        Some("2"),
        "requests per second",
    ),
    TARGET,
];

/// A checked parameter value.
#[derive(Clone, Debug, PartialEq)]
pub enum ParamValue {
    Count(u64),
    Rate(Rate),
    Probability(Probability),
    Duration(SimDuration),
    Server(ServerId),
}

/// The parameters of one adversary, defaults filled in.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AttackParams {
    pub values: BTreeMap<&'static str, ParamValue>,
}

impl AttackParams {
    pub fn count(&self, name: &str) -> Option<u64> {
        match self.values.get(name)? {
            ParamValue::Count(value) => Some(*value),
            _ => None,
        }
    }

    pub fn rate(&self, name: &str) -> Option<Rate> {
        match self.values.get(name)? {
            ParamValue::Rate(value) => Some(*value),
            _ => None,
        }
    }

    pub fn probability(&self, name: &str) -> Option<Probability> {
        match self.values.get(name)? {
            ParamValue::Probability(value) => Some(*value),
            _ => None,
        }
    }

    pub fn duration(&self, name: &str) -> Option<SimDuration> {
        match self.values.get(name)? {
            ParamValue::Duration(value) => Some(*value),
            _ => None,
        }
    }

    pub fn server(&self, name: &str) -> Option<ServerId> {
        match self.values.get(name)? {
            ParamValue::Server(value) => Some(*value),
            _ => None,
        }
    }
}

/// One `[[adversary]]` entry as written.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdversaryFile {
    pub server: String,
    pub attack: Attack,
    #[serde(default)]
    pub from: SimDuration,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<SimDuration>,
    #[serde(default, skip_serializing_if = "toml::Table::is_empty")]
    pub params: toml::Table,
}

/// Checks `params` against the attack's declarations. Errors carry the key path under `path`.
pub fn check_params(
    attack: Attack,
    params: &toml::Table,
    topology: &Topology,
    path: &KeyPath,
) -> Result<AttackParams, Vec<(KeyPath, String)>> {
    let declared = attack.parameters();
    let mut errors = Vec::new();
    for name in params.keys() {
        if !declared.iter().any(|spec| spec.name == name) {
            let known = list_names(declared.iter().map(|spec| spec.name));
            errors.push((
                path.key("params").key(name),
                format!(
                    "attack {:?} has no parameter {name:?}; expected one of {known}",
                    attack.name()
                ),
            ));
        }
    }
    let mut values = BTreeMap::new();
    for spec in declared {
        let key = path.key("params").key(spec.name);
        let parsed = match (params.get(spec.name), spec.default) {
            (Some(value), _) => param_value(spec.kind, value, topology),
            (None, Some(default)) => param_from_text(spec.kind, default, topology),
            (None, None) => continue,
        };
        match parsed {
            Ok(value) => {
                values.insert(spec.name, value);
            }
            Err(message) => errors.push((key, message)),
        }
    }
    if errors.is_empty() {
        Ok(AttackParams { values })
    } else {
        Err(errors)
    }
}

fn param_value(
    kind: ParamKind,
    value: &toml::Value,
    topology: &Topology,
) -> Result<ParamValue, String> {
    let wrong = || format!("{value} is not {}", kind.expected());
    match (kind, value) {
        (ParamKind::Count, toml::Value::Integer(count)) => u64::try_from(*count)
            .map(ParamValue::Count)
            .map_err(|_| wrong()),
        (ParamKind::Rate, toml::Value::Integer(number)) => number_param(kind, *number as f64),
        (ParamKind::Rate | ParamKind::Probability, toml::Value::Float(number)) => {
            number_param(kind, *number)
        }
        (ParamKind::Probability, toml::Value::Integer(number)) => {
            number_param(kind, *number as f64)
        }
        (ParamKind::Duration | ParamKind::Server, toml::Value::String(text)) => {
            param_from_text(kind, text, topology)
        }
        _ => Err(wrong()),
    }
}

fn number_param(kind: ParamKind, number: f64) -> Result<ParamValue, String> {
    let wrong = || format!("{number} is not {}", kind.expected());
    match kind {
        ParamKind::Rate => Rate::new(number).map(ParamValue::Rate).ok_or_else(wrong),
        _ => Probability::new(number)
            .map(ParamValue::Probability)
            .ok_or_else(wrong),
    }
}

fn param_from_text(kind: ParamKind, text: &str, topology: &Topology) -> Result<ParamValue, String> {
    match kind {
        ParamKind::Count => text
            .parse()
            .map(ParamValue::Count)
            .map_err(|_| format!("{text:?} is not {}", kind.expected())),
        ParamKind::Rate | ParamKind::Probability => text
            .parse::<f64>()
            .map_err(|_| format!("{text:?} is not {}", kind.expected()))
            .and_then(|number| number_param(kind, number)),
        ParamKind::Duration => SimDuration::parse(text)
            .map(ParamValue::Duration)
            .map_err(|error| error.to_string()),
        ParamKind::Server => topology
            .server_id(text)
            .map(ParamValue::Server)
            .ok_or_else(|| {
                format!(
                    "{text:?} is not a server of the topology; expected one of {}",
                    list_names(topology.server_names())
                )
            }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::experiment::topology::{TopologyFile, build_topology};
    use std::path::Path;

    fn topology() -> Topology {
        let spec: TopologyFile =
            toml::from_str("[group.a]\ncount = 2\n[group.evil]\nservers = [\"evil.test\"]\n")
                .unwrap();
        build_topology(Path::new("t.toml"), &KeyPath::root(), &spec).unwrap()
    }

    #[test]
    fn names_round_trip_through_serde() {
        for attack in Attack::ALL {
            let text = format!("attack = \"{}\"", attack.name());
            #[derive(Deserialize)]
            struct Holder {
                attack: Attack,
            }
            let holder: Holder = toml::from_str(&text).unwrap();
            assert_eq!(holder.attack, attack);
            let names: Vec<&str> = attack.parameters().iter().map(|spec| spec.name).collect();
            let mut unique = names.clone();
            unique.sort_unstable();
            unique.dedup();
            assert_eq!(unique.len(), names.len(), "{attack:?} repeats a parameter");
        }
    }

    #[test]
    fn every_default_is_valid_for_its_kind() {
        let topology = topology();
        for attack in Attack::ALL {
            let params = check_params(attack, &toml::Table::new(), &topology, &KeyPath::root())
                .unwrap_or_else(|errors| panic!("{attack:?}: {errors:?}"));
            for spec in attack.parameters() {
                assert_eq!(
                    params.values.contains_key(spec.name),
                    spec.default.is_some()
                );
            }
        }
    }

    #[test]
    fn params_are_checked_and_typed() {
        let topology = topology();
        let table: toml::Table =
            toml::from_str("bytes = 100000\ntarget = \"a2.test\"\nper_second = 3").unwrap();
        let params =
            check_params(Attack::OversizedPdus, &table, &topology, &KeyPath::root()).unwrap();
        assert_eq!(params.count("bytes"), Some(100_000));
        assert_eq!(params.server("target"), Some(ServerId(1)));
        assert_eq!(params.rate("per_second"), Rate::new(3.0));
        let table: toml::Table =
            toml::from_str("byte = 1\ntarget = \"nope.test\"\nper_second = -1").unwrap();
        let errors =
            check_params(Attack::OversizedPdus, &table, &topology, &KeyPath::root()).unwrap_err();
        let text: Vec<String> = errors
            .iter()
            .map(|(path, message)| format!("{path}: {message}"))
            .collect();
        assert_eq!(text.len(), 3, "{text:?}");
        assert!(text[0].starts_with("params.byte: attack \"oversized-pdus\" has no parameter \"byte\"; expected one of bytes, per_second, target"));
        assert!(
            text.iter()
                .any(|line| line.contains("\"nope.test\" is not a server"))
        );
        assert!(
            text.iter()
                .any(|line| line.contains("-1 is not a number of events per second"))
        );
    }
}
