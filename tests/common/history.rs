//! A seeded generator of room histories that fork: the input of the state resolution oracle and
//! benches.
//!
//! A history is a room (create event, the creator's join, power levels, join rules, members who
//! join, some invited first), a trunk of random actions, then branches that fork off the trunk
//! (anywhere along it), each a linear chain of random actions by several users: promotions and demotions, bans, kicks and unbans,
//! invites, joins and leaves, join rule changes, topics and names. Some actions are authorised
//! and some are not: each branch keeps its own room state, and an attempted event joins the DAG
//! only if an [`AuthJudge`] accepts it against that state, so the final state of every branch is
//! known exactly.
//!
//! Invariants:
//! - the same [`Shape`] and judge verdicts give the same history, byte for byte: randomness
//!   comes from [`Rng`] seeded by the shape, and ids are hashes of the seed and a label;
//! - every event in [`History::events`] was accepted, its `auth_events` are the auth events
//!   selection applied to the state before it, its only prev event is its branch's previous
//!   event, and its parents come before it in the list;
//! - each action has its own random stream, so removing one action (as proptest does when it
//!   shrinks) leaves the intent of the others unchanged.

use std::collections::BTreeMap;

use fedlab::proto::base64::{Alphabet, encode};
use fedlab::proto::event::{Event, StateKey, StateMap};
use fedlab::proto::room_version::RoomVersion;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

/// A branch's room state, events by state key.
pub type BranchState = BTreeMap<StateKey, Event>;

/// The authorization rules the generator asks: fedlab's, ruma's, or both compared.
pub trait AuthJudge {
    /// The state keys of the auth events selection for `event` (its `auth_events` are ignored).
    fn auth_types(&mut self, event: &Event) -> Vec<StateKey>;
    /// Whether `event` is allowed given the room state before it.
    fn check(&mut self, event: &Event, state: &BranchState) -> Result<(), String>;
    /// Told about every accepted event, in order.
    fn accepted(&mut self, _event: &Event) {}
    /// The state before an event whose prev events end the given states, when the judge can
    /// resolve state; `None` (no merges) otherwise.
    fn resolve(&mut self, _state_sets: &[StateMap]) -> Option<StateMap> {
        None
    }
}

/// SplitMix64: small, fast, and the same everywhere. Test inputs only, never cryptography.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A stream for one purpose, independent of the others drawn from the same seed.
    pub fn derive(seed: u64, label: &str) -> Self {
        let digest = Sha256::new()
            .chain_update(seed.to_le_bytes())
            .chain_update(label.as_bytes())
            .finalize();
        let mut bytes = [0_u8; 8];
        bytes.copy_from_slice(&digest[..8]);
        Self(u64::from_le_bytes(bytes))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..bound`; `bound` must not be 0.
    pub fn below(&mut self, bound: usize) -> usize {
        assert!(bound > 0, "Rng::below(0)");
        (self.next_u64() % bound as u64) as usize
    }

    pub fn percent(&mut self, chance_percent: usize) -> bool {
        self.below(100) < chance_percent
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// Which actions a history favours.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mix {
    /// Any user tries anything: many actions are unauthorised, power struggles are common.
    Adversarial,
    /// Mostly authorised changes by powerful users over many distinct state keys: large
    /// conflicted sets for benchmarks.
    Busy,
}

/// Everything a history is generated from; proptest draws and shrinks these.
#[derive(Clone, Debug)]
pub struct Shape {
    pub seed: u64,
    /// Users besides the creator.
    pub members: usize,
    /// One seed per action on the trunk, before the fork.
    pub trunk: Vec<u64>,
    /// The branches, each forking off the trunk somewhere.
    pub branches: Vec<BranchShape>,
    pub mix: Mix,
    /// The chance that a branch action merges another branch's current tip first (its event
    /// then has two prev events and the resolved state before it), if the judge can resolve.
    pub merge_percent: usize,
}

/// One branch: where it leaves the trunk and what it attempts.
#[derive(Clone, Debug)]
pub struct BranchShape {
    /// How many trunk actions happen before the fork (clamped to the trunk's length).
    pub fork_after: usize,
    /// One seed per attempted action.
    pub actions: Vec<u64>,
}

impl BranchShape {
    /// A branch that leaves the trunk at its end.
    pub fn at_end(actions: Vec<u64>) -> Self {
        Self {
            fork_after: usize::MAX,
            actions,
        }
    }
}

/// A generated room history.
#[derive(Clone, Debug)]
pub struct History {
    pub version: &'static RoomVersion,
    pub room_id: String,
    /// Every accepted event, parents first.
    pub events: Vec<Event>,
    /// The last event of each branch.
    pub tips: Vec<String>,
    /// The room state after each branch's last event.
    pub branch_states: Vec<StateMap>,
    /// Attempted events the judge rejected (they are not in `events`).
    pub rejected_attempts: usize,
    /// Events with two prev events, merging two branches.
    pub merges: usize,
}

impl History {
    pub fn event_map(&self) -> BTreeMap<String, Event> {
        self.events
            .iter()
            .map(|event| (event.event_id.clone(), event.clone()))
            .collect()
    }

    /// The history in the input format of `fedlab proto resolve`, resolving the branch states.
    pub fn resolver_input(&self) -> Value {
        let events: Vec<Value> = self.events.iter().map(event_json).collect();
        let state_sets: Vec<Vec<&String>> = self
            .branch_states
            .iter()
            .map(|state| state.values().collect())
            .collect();
        json!({
            "room_version": self.version.id,
            "events": events,
            "state_sets": state_sets,
        })
    }
}

/// One event as the resolver tool reads it; an empty room id (the v12 create event's) is left
/// out.
pub fn event_json(event: &Event) -> Value {
    let mut object = Map::new();
    object.insert("event_id".into(), json!(event.event_id));
    if !event.room_id.is_empty() {
        object.insert("room_id".into(), json!(event.room_id));
    }
    object.insert("type".into(), json!(event.event_type));
    if let Some(state_key) = &event.state_key {
        object.insert("state_key".into(), json!(state_key));
    }
    object.insert("sender".into(), json!(event.sender));
    object.insert("origin_server_ts".into(), json!(event.origin_server_ts));
    object.insert("content".into(), Value::Object(event.content.clone()));
    object.insert("prev_events".into(), json!(event.prev_events));
    object.insert("auth_events".into(), json!(event.auth_events));
    object.insert("depth".into(), json!(event.depth));
    if let Some(redacts) = &event.redacts {
        object.insert("redacts".into(), json!(redacts));
    }
    Value::Object(object)
}

/// The events of a resolver input (the inverse of [`event_json`]), for hand-written fixtures:
/// panics on malformed input.
pub fn events_from_json(input: &Value) -> Vec<Event> {
    let strings = |value: &Value| -> Vec<String> {
        value
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .map(|item| item.as_str().expect("ids are strings").to_owned())
                    .collect()
            })
            .unwrap_or_default()
    };
    input["events"]
        .as_array()
        .expect("\"events\" is an array")
        .iter()
        .map(|event| Event {
            event_id: event["event_id"].as_str().expect("event_id").to_owned(),
            room_id: event["room_id"].as_str().unwrap_or_default().to_owned(),
            sender: event["sender"].as_str().expect("sender").to_owned(),
            event_type: event["type"].as_str().expect("type").to_owned(),
            state_key: event["state_key"].as_str().map(str::to_owned),
            content: event["content"].as_object().cloned().unwrap_or_default(),
            prev_events: strings(&event["prev_events"]),
            auth_events: strings(&event["auth_events"]),
            depth: event["depth"].as_u64().unwrap_or(0),
            origin_server_ts: event["origin_server_ts"]
                .as_u64()
                .expect("origin_server_ts"),
            redacts: event["redacts"].as_str().map(str::to_owned),
        })
        .collect()
}

/// The state sets of a resolver input, each as a state map built from the listed events.
pub fn state_sets_from_json(input: &Value, events: &[Event]) -> Vec<StateMap> {
    let by_id: BTreeMap<&str, &Event> = events.iter().map(|e| (e.event_id.as_str(), e)).collect();
    input["state_sets"]
        .as_array()
        .expect("\"state_sets\" is an array")
        .iter()
        .map(|set| {
            set.as_array()
                .expect("a state set is an array")
                .iter()
                .map(|id| {
                    let event = by_id[id.as_str().expect("ids are strings")];
                    (
                        event.state_key_pair().expect("state events"),
                        event.event_id.clone(),
                    )
                })
                .collect()
        })
        .collect()
}

const SERVERS: [&str; 3] = ["a.example", "b.example", "c.example"];
const NAMED_USERS: [&str; 7] = ["bob", "carol", "dave", "erin", "frank", "grace", "heidi"];
const POWER_LEVELS: [i64; 6] = [0, 10, 25, 50, 75, 100];
const CREATOR: &str = "@alice:a.example";

/// The user ids of a room with `members` users besides the creator, creator first.
pub fn users(members: usize) -> Vec<String> {
    let mut users = vec![CREATOR.to_owned()];
    for index in 0..members {
        let name = match NAMED_USERS.get(index) {
            Some(name) => (*name).to_owned(),
            None => format!("user{index}"),
        };
        users.push(format!("@{name}:{}", SERVERS[(index + 1) % SERVERS.len()]));
    }
    users
}

/// A history of a room of `version` drawn from `shape`, each event judged by `judge`.
///
/// Panics if the judge rejects one of the set-up events (the creator's own join, power levels,
/// join rules, invites and joins of the members): those are authorised by every reading of the
/// spec, so a rejection is a bug in the judge.
pub fn generate(
    version: &'static RoomVersion,
    shape: &Shape,
    judge: &mut dyn AuthJudge,
) -> History {
    let mut builder = Builder::new(version, shape, judge);
    builder.set_up();
    // The trunk's line after the set-up and after each of its actions: where branches fork.
    let mut trunk_lines = vec![builder.branches[0].clone()];
    for (index, &action_seed) in shape.trunk.iter().enumerate() {
        builder.act(0, &format!("t{index}"), action_seed);
        trunk_lines.push(builder.branches[0].clone());
    }
    builder.branches = shape
        .branches
        .iter()
        .map(|branch| trunk_lines[branch.fork_after.min(shape.trunk.len())].clone())
        .collect();
    if builder.branches.is_empty() {
        builder
            .branches
            .push(trunk_lines[shape.trunk.len()].clone());
    }
    // Branches take turns, so a merge sees the other branch part-way.
    let longest = shape
        .branches
        .iter()
        .map(|branch| branch.actions.len())
        .max()
        .unwrap_or(0);
    for index in 0..longest {
        for (branch, branch_shape) in shape.branches.iter().enumerate() {
            if let Some(&action_seed) = branch_shape.actions.get(index) {
                builder.act(branch, &format!("b{branch}.{index}"), action_seed);
            }
        }
    }
    builder.finish()
}

/// One line of events and the room state at its end.
#[derive(Clone)]
struct Branch {
    state: BranchState,
    /// The prev events of the line's next event: its last event, or the tips it merges.
    prev_events: Vec<String>,
    depth: u64,
    origin_server_ts: u64,
}

struct Builder<'a> {
    version: &'static RoomVersion,
    seed: u64,
    mix: Mix,
    merge_percent: usize,
    users: Vec<String>,
    room_id: String,
    judge: &'a mut dyn AuthJudge,
    events: Vec<Event>,
    /// Position of each event in `events`, by id.
    event_index: BTreeMap<String, usize>,
    branches: Vec<Branch>,
    rejected_attempts: usize,
    merges: usize,
}

impl<'a> Builder<'a> {
    fn new(version: &'static RoomVersion, shape: &Shape, judge: &'a mut dyn AuthJudge) -> Self {
        let room_id = if version.room_id_from_create_event {
            format!("!{}", id_body(shape.seed, "create"))
        } else {
            format!("!{}:a.example", id_body(shape.seed, "room"))
        };
        Self {
            version,
            seed: shape.seed,
            mix: shape.mix,
            merge_percent: shape.merge_percent,
            users: users(shape.members),
            room_id,
            judge,
            events: Vec::new(),
            event_index: BTreeMap::new(),
            branches: vec![Branch {
                state: BranchState::new(),
                prev_events: Vec::new(),
                depth: 0,
                origin_server_ts: 1_000,
            }],
            rejected_attempts: 0,
            merges: 0,
        }
    }

    fn set_up(&mut self) {
        let mut rng = Rng::derive(self.seed, "set-up");
        let creator = CREATOR.to_owned();
        let mut create_content = json!({"room_version": self.version.id});
        if !self.version.creator_is_sender {
            create_content["creator"] = json!(creator);
        }
        if self.version.privileged_creators && self.users.len() > 1 && rng.percent(30) {
            create_content["additional_creators"] = json!([self.users[1]]);
        }
        self.require(
            &creator,
            "m.room.create",
            Some(""),
            create_content,
            "create",
        );
        self.require(
            &creator,
            "m.room.member",
            Some(&creator),
            json!({"membership": "join"}),
            "s.join",
        );

        let creators = self.creators();
        let mut levels = Map::new();
        for user in &self.users {
            if creators.contains(user) && self.version.privileged_creators {
                continue;
            }
            let level = if *user == creator {
                100
            } else {
                *rng.pick(&[0, 0, 0, 50, 75])
            };
            if level > 0 {
                levels.insert(user.clone(), json!(level));
            }
        }
        let power_levels = json!({
            "users": levels,
            "users_default": 0,
            "events_default": 0,
            "state_default": 50,
            "ban": 50,
            "kick": 50,
            "redact": 50,
            "invite": *rng.pick(&[0, 50]),
            "events": {
                "m.room.name": 50,
                "m.room.power_levels": 100,
                "m.room.topic": *rng.pick(&[0, 25, 50]),
            },
        });
        self.require(
            &creator,
            "m.room.power_levels",
            Some(""),
            power_levels,
            "s.power",
        );
        let join_rule = *rng.pick(&["public", "invite"]);
        self.require(
            &creator,
            "m.room.join_rules",
            Some(""),
            json!({"join_rule": join_rule}),
            "s.rules",
        );

        for (index, user) in self.users.clone().iter().enumerate().skip(1) {
            if join_rule == "invite" || rng.percent(30) {
                let label = format!("s.invite{index}");
                self.require(
                    &creator,
                    "m.room.member",
                    Some(user),
                    json!({"membership": "invite"}),
                    &label,
                );
            }
            let label = format!("s.join{index}");
            self.require(
                user,
                "m.room.member",
                Some(user),
                json!({"membership": "join"}),
                &label,
            );
        }
    }

    /// The room creators as the create event names them.
    fn creators(&self) -> Vec<String> {
        let Some(create) = self.branches[0].state.get(&key("m.room.create", "")) else {
            return Vec::new();
        };
        let mut creators = vec![create.sender.clone()];
        if let Some(Value::Array(additional)) = create.content.get("additional_creators") {
            creators.extend(
                additional
                    .iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned),
            );
        }
        creators
    }

    fn require(
        &mut self,
        sender: &str,
        event_type: &str,
        state_key: Option<&str>,
        content: Value,
        label: &str,
    ) {
        let action = Action {
            sender: sender.to_owned(),
            event_type: event_type.to_owned(),
            state_key: state_key.map(str::to_owned),
            content,
        };
        let base = self.branches[0].clone();
        match self.attempt(&base, action, label, 1) {
            Ok(line) => self.branches[0] = line,
            Err(reason) => {
                panic!("set-up event {label} ({event_type} by {sender}) was rejected: {reason}")
            }
        }
    }

    /// Makes the event of `action` on top of `base` and, if the judge accepts it, adds it to the
    /// history and returns the line that ends with it.
    fn attempt(
        &mut self,
        base: &Branch,
        action: Action,
        label: &str,
        ts_step_ms: u64,
    ) -> Result<Branch, String> {
        let Value::Object(content) = action.content else {
            panic!("content of {label} is not an object");
        };
        // From room v12 the create event has no room id: the room id is derived from it.
        let v12_create =
            action.event_type == "m.room.create" && self.version.room_id_from_create_event;
        let (event_id, room_id) = if v12_create {
            (format!("${}", id_body(self.seed, "create")), String::new())
        } else {
            (
                format!("${}", id_body(self.seed, label)),
                self.room_id.clone(),
            )
        };
        let mut event = Event {
            event_id,
            room_id,
            sender: action.sender,
            event_type: action.event_type,
            state_key: action.state_key,
            content,
            prev_events: base.prev_events.clone(),
            auth_events: Vec::new(),
            depth: base.depth + 1,
            origin_server_ts: base.origin_server_ts + ts_step_ms,
            redacts: None,
        };
        let auth_types = self.judge.auth_types(&event);
        event.auth_events = auth_types
            .iter()
            .filter_map(|state_key| base.state.get(state_key))
            .map(|auth_event| auth_event.event_id.clone())
            .collect();
        if let Err(reason) = self.judge.check(&event, &base.state) {
            self.rejected_attempts += 1;
            return Err(reason);
        }
        self.judge.accepted(&event);
        let mut line = base.clone();
        line.prev_events = vec![event.event_id.clone()];
        line.depth = event.depth;
        line.origin_server_ts = event.origin_server_ts;
        if let Some(state_key) = event.state_key_pair() {
            line.state.insert(state_key, event.clone());
        }
        self.event_index
            .insert(event.event_id.clone(), self.events.len());
        self.events.push(event);
        Ok(line)
    }

    /// The line that merges `other`'s tip into `branch`'s: the resolved state of both, if the
    /// judge can resolve it.
    fn merged_line(&mut self, branch: usize, other: usize) -> Option<Branch> {
        let (ours, theirs) = (&self.branches[branch], &self.branches[other]);
        if ours.prev_events == theirs.prev_events {
            return None;
        }
        let state_sets = [state_ids(&ours.state), state_ids(&theirs.state)];
        let mut prev_events = ours.prev_events.clone();
        prev_events.extend(theirs.prev_events.iter().cloned());
        prev_events.sort();
        prev_events.dedup();
        let depth = ours.depth.max(theirs.depth);
        let origin_server_ts = ours.origin_server_ts.max(theirs.origin_server_ts);
        let resolved = self.judge.resolve(&state_sets)?;
        let state = resolved
            .iter()
            .map(|(state_key, event_id)| {
                let index = self.event_index[event_id];
                (state_key.clone(), self.events[index].clone())
            })
            .collect();
        Some(Branch {
            state,
            prev_events,
            depth,
            origin_server_ts,
        })
    }

    /// Attempts one random action on `branch`, drawn from `action_seed` alone.
    fn act(&mut self, branch: usize, label: &str, action_seed: u64) {
        let mut rng = Rng::derive(self.seed ^ action_seed, label);
        // Timestamps increase along a branch, with ties.
        let ts_step_ms = rng.below(3) as u64;
        let branch_count = self.branches.len();
        let merge_with = (branch_count > 1 && rng.percent(self.merge_percent))
            .then(|| (branch + 1 + rng.below(branch_count - 1)) % branch_count);
        let merged = merge_with.and_then(|other| self.merged_line(branch, other));
        let base = merged
            .clone()
            .unwrap_or_else(|| self.branches[branch].clone());
        let action = match self.mix {
            Mix::Adversarial => {
                adversarial_action(&mut rng, &self.users, &base.state, self.version)
            }
            Mix::Busy => busy_action(&mut rng, &self.users, &base.state, self.version, label),
        };
        // A rejected attempt is part of the workload: it simply leaves no event behind (and a
        // merge whose event is rejected does not happen).
        if let Ok(line) = self.attempt(&base, action, label, ts_step_ms) {
            self.merges += usize::from(merged.is_some());
            self.branches[branch] = line;
        }
    }

    fn finish(self) -> History {
        History {
            version: self.version,
            room_id: self.room_id,
            tips: self
                .branches
                .iter()
                .flat_map(|line| line.prev_events.first().cloned())
                .collect(),
            branch_states: self
                .branches
                .iter()
                .map(|line| state_ids(&line.state))
                .collect(),
            events: self.events,
            rejected_attempts: self.rejected_attempts,
            merges: self.merges,
        }
    }
}

/// The body of an id: a short hash of the seed and the label (so ids sort in random order),
/// then the label (so a human can follow a printed history).
fn id_body(seed: u64, label: &str) -> String {
    let digest = Sha256::new()
        .chain_update(seed.to_le_bytes())
        .chain_update(label.as_bytes())
        .finalize();
    format!("{}_{label}", &encode(&digest, Alphabet::UrlSafe)[..6])
}

/// A branch state as ids.
pub fn state_ids(state: &BranchState) -> StateMap {
    state
        .iter()
        .map(|(state_key, event)| (state_key.clone(), event.event_id.clone()))
        .collect()
}

fn key(event_type: &str, state_key: &str) -> StateKey {
    (event_type.to_owned(), state_key.to_owned())
}

struct Action {
    sender: String,
    event_type: String,
    state_key: Option<String>,
    content: Value,
}

fn membership_of(state: &BranchState, user: &str) -> Option<String> {
    state
        .get(&key("m.room.member", user))
        .and_then(|event| event.membership())
        .map(str::to_owned)
}

/// Users whose membership in `state` is `membership`.
fn users_with(state: &BranchState, users: &[String], membership: &str) -> Vec<String> {
    users
        .iter()
        .filter(|user| membership_of(state, user).as_deref() == Some(membership))
        .cloned()
        .collect()
}

fn member(sender: &str, target: &str, membership: &str) -> Action {
    Action {
        sender: sender.to_owned(),
        event_type: "m.room.member".into(),
        state_key: Some(target.to_owned()),
        content: json!({"membership": membership}),
    }
}

/// The current power levels content with one random change.
fn changed_power_levels(rng: &mut Rng, users: &[String], state: &BranchState) -> Value {
    let mut content = state
        .get(&key("m.room.power_levels", ""))
        .map_or_else(|| json!({}), |event| Value::Object(event.content.clone()));
    let level = *rng.pick(&POWER_LEVELS);
    match rng.below(6) {
        0..=2 => {
            let target = rng.pick(users);
            let map = content["users"].as_object_mut();
            match map {
                Some(map) if rng.percent(20) => {
                    map.remove(target);
                }
                Some(map) => {
                    map.insert(target.clone(), json!(level));
                }
                None => content["users"] = json!({target.clone(): level}),
            }
        }
        3 => {
            let field = *rng.pick(&["ban", "kick", "invite", "state_default", "users_default"]);
            content[field] = json!(level);
        }
        _ => {
            let event_type = *rng.pick(&[
                "m.room.topic",
                "m.room.name",
                "m.room.power_levels",
                "m.room.join_rules",
            ]);
            if !content["events"].is_object() {
                content["events"] = json!({});
            }
            content["events"][event_type] = json!(level);
        }
    }
    content
}

fn join_rule_action(rng: &mut Rng, sender: String, version: &RoomVersion) -> Action {
    let mut rules = vec!["public", "invite"];
    if version.knocking {
        rules.push("knock");
    }
    Action {
        sender,
        event_type: "m.room.join_rules".into(),
        state_key: Some(String::new()),
        content: json!({"join_rule": *rng.pick(&rules)}),
    }
}

fn adversarial_action(
    rng: &mut Rng,
    users: &[String],
    state: &BranchState,
    version: &RoomVersion,
) -> Action {
    // Half the senders hold power, so power struggles between branches are common; the others
    // are anyone at all, so many attempts are unauthorised.
    let sender = if rng.percent(50) {
        rng.pick(&powerful_users(state, users, 50)).clone()
    } else {
        rng.pick(users).clone()
    };
    let target = rng.pick(users).clone();
    let banned = users_with(state, users, "ban");
    match rng.below(100) {
        0..=21 => Action {
            content: changed_power_levels(rng, users, state),
            sender,
            event_type: "m.room.power_levels".into(),
            state_key: Some(String::new()),
        },
        22..=35 => member(&sender, &target, "ban"),
        36..=45 => member(&sender, &target, "leave"),
        46..=52 if !banned.is_empty() => {
            let unbanned = rng.pick(&banned).clone();
            member(&sender, &unbanned, "leave")
        }
        46..=60 => member(&sender, &target, "invite"),
        61..=72 => member(&target, &target, "join"),
        73..=78 => member(&target, &target, "leave"),
        79..=86 => join_rule_action(rng, sender, version),
        87..=93 => Action {
            sender,
            event_type: "m.room.topic".into(),
            state_key: Some(String::new()),
            content: json!({"topic": format!("topic {}", rng.below(1000))}),
        },
        _ => Action {
            sender,
            event_type: "m.room.name".into(),
            state_key: Some(String::new()),
            content: json!({"name": format!("name {}", rng.below(1000))}),
        },
    }
}

/// Users with at least `level` in `state` (creators and the creator count as powerful).
fn powerful_users(state: &BranchState, users: &[String], level: i64) -> Vec<String> {
    let power = state.get(&key("m.room.power_levels", ""));
    let joined = users_with(state, users, "join");
    let mut powerful: Vec<String> = joined
        .iter()
        .filter(|user| {
            *user == CREATOR
                || power
                    .and_then(|event| event.content.get("users"))
                    .and_then(|map| map.get(user.as_str()))
                    .and_then(Value::as_i64)
                    .is_some_and(|user_level| user_level >= level)
        })
        .cloned()
        .collect();
    if powerful.is_empty() {
        powerful.push(CREATOR.to_owned());
    }
    powerful
}

fn busy_action(
    rng: &mut Rng,
    users: &[String],
    state: &BranchState,
    version: &RoomVersion,
    label: &str,
) -> Action {
    let powerful = powerful_users(state, users, 50);
    let sender = rng.pick(&powerful).clone();
    let others: Vec<String> = users
        .iter()
        .filter(|user| *user != CREATOR)
        .cloned()
        .collect();
    let target = if others.is_empty() {
        CREATOR.to_owned()
    } else {
        rng.pick(&others).clone()
    };
    match rng.below(100) {
        // Many distinct keys: each is conflicted when only one branch sets it.
        0..=29 => Action {
            sender,
            event_type: "org.fedlab.note".into(),
            state_key: Some(label.to_owned()),
            content: json!({"body": format!("note {}", rng.below(1000))}),
        },
        30..=44 => {
            // Promotions and demotions of members by the creator keep power events flowing and
            // the power levels mainline deep.
            let mut content = changed_power_levels(rng, &others, state);
            if version.privileged_creators {
                if let Some(map) = content["users"].as_object_mut() {
                    map.remove(CREATOR);
                }
            }
            Action {
                sender: CREATOR.to_owned(),
                event_type: "m.room.power_levels".into(),
                state_key: Some(String::new()),
                content,
            }
        }
        45..=69 => match membership_of(state, &target).as_deref() {
            Some("join") => member(&target, &target, "leave"),
            Some("ban") => member(&sender, &target, "leave"),
            _ => member(&target, &target, "join"),
        },
        70..=79 => {
            let membership = if rng.percent(50) { "ban" } else { "leave" };
            member(&sender, &target, membership)
        }
        80..=84 => join_rule_action(rng, sender, version),
        _ => Action {
            sender,
            event_type: "m.room.topic".into(),
            state_key: Some(String::new()),
            content: json!({"topic": format!("topic {}", rng.below(1000))}),
        },
    }
}
