//! Network topologies: named groups of servers with users, and the latency and loss of the
//! links within and between groups. Written as `topologies/NAME.toml` or inline as an
//! experiment's `[topology]` table.
//!
//! ```toml
//! description = "Two regions, 3 servers each."
//! users_per_server = 2                 # default for every group; a list is cycled: [1, 2]
//! fabric = "turmoil"                   # optional suggestion
//! [group.eu]
//! count = 3                            # servers eu1.test, eu2.test, eu3.test
//! link = { latency_min = "5ms", latency_max = "15ms" }    # within the group
//! [group.hub]
//! servers = ["hub.test"]               # or explicit names
//! users = { "hub.test" = 200 }         # per named server
//! [links]
//! default = { latency_min = "20ms", latency_max = "60ms", loss = 0.0 }
//! [[links.between]]
//! groups = ["eu", "hub"]
//! latency_min = "80ms"
//! latency_max = "120ms"
//! ```
//!
//! Invariants of a validated [`Topology`]: groups are sorted by name and servers listed group
//! by group (generated names in counting order), so a server's [`ServerId`] is the same on
//! every machine; every server name is a valid Matrix server name and unique; no group shares a
//! name with a server, so a name in a fault or adversary means exactly one thing.

use super::duration::SimDuration;
use super::numbers::Probability;
use super::problem::{KeyPath, Problem, list_names};
use crate::proto::ids::parse_server_name;
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

/// The most servers one topology may have.
pub const SERVERS_MAX: usize = 10_000;
/// The most users one server may have.
pub const USERS_PER_SERVER_MAX: u32 = 100_000;
/// The longest one-way link latency a topology or fault may set.
pub const LINK_LATENCY_MS_MAX: u64 = 60_000;
/// Generated server names are `{group}{n}.{GENERATED_DOMAIN}` (RFC 2606 reserves `.test`).
pub const GENERATED_DOMAIN: &str = "test";

/// Which simulated network carries the requests (see DESIGN.md, "Two network fabrics").
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Fabric {
    /// turmoil's simulated TCP: full fidelity, cost grows about as n^3; for a few dozen servers.
    Turmoil,
    /// In-memory messages on paused tokio time: for hundreds to thousands of servers.
    Fast,
}

impl Fabric {
    pub fn name(self) -> &'static str {
        match self {
            Self::Turmoil => "turmoil",
            Self::Fast => "fast",
        }
    }
}

/// Users per server: one number, or a list cycled over a group's servers (`[1, 2]` gives 1, 2,
/// 1, 2, ...), which spreads sizes without drawing anything at random.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UsersPerServer(pub Vec<u32>);

impl UsersPerServer {
    pub fn one(count: u32) -> Self {
        Self(vec![count])
    }

    /// The count for the `position`-th server of a group (0-based).
    pub fn for_position(&self, position: usize) -> u32 {
        if self.0.is_empty() {
            return 0;
        }
        self.0[position % self.0.len()]
    }
}

impl Default for UsersPerServer {
    fn default() -> Self {
        Self::one(1)
    }
}

impl Serialize for UsersPerServer {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0.as_slice() {
            [single] => serializer.serialize_u32(*single),
            list => list.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for UsersPerServer {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct UsersVisitor;
        impl<'de> Visitor<'de> for UsersVisitor {
            type Value = UsersPerServer;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number of users, or a list of numbers cycled over the servers")
            }
            fn visit_i64<E: de::Error>(self, value: i64) -> Result<UsersPerServer, E> {
                u32::try_from(value).map(UsersPerServer::one).map_err(|_| {
                    E::custom(format!(
                        "{value} is not a number of users; expected 0 or more"
                    ))
                })
            }
            fn visit_u64<E: de::Error>(self, value: u64) -> Result<UsersPerServer, E> {
                i64::try_from(value)
                    .map_err(|_| E::custom("is too large a number of users"))
                    .and_then(|value| self.visit_i64(value))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<UsersPerServer, A::Error> {
                let mut counts = Vec::new();
                while let Some(count) = seq.next_element::<u32>()? {
                    counts.push(count);
                }
                Ok(UsersPerServer(counts))
            }
        }
        deserializer.deserialize_any(UsersVisitor)
    }
}

/// Latency range and loss of a link as a file writes it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkFile {
    pub latency_min: SimDuration,
    /// Defaults to `latency_min` (a fixed latency).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_max: Option<SimDuration>,
    #[serde(default)]
    pub loss: Probability,
}

impl Default for LinkFile {
    fn default() -> Self {
        Self {
            latency_min: SimDuration::from_ms(LinkProfile::DEFAULT.latency_ms_min)
                .unwrap_or_default(),
            latency_max: SimDuration::from_ms(LinkProfile::DEFAULT.latency_ms_max),
            loss: Probability::ZERO,
        }
    }
}

/// One group of servers as a file writes it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupFile {
    /// Generate this many servers named `{group}1.test`, `{group}2.test`, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u32>,
    /// Or name them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub servers: Option<Vec<String>>,
    /// Overrides the topology's `users_per_server` for this group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub users_per_server: Option<UsersPerServer>,
    /// Users of named servers of this group, overriding `users_per_server`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub users: BTreeMap<String, u32>,
    /// Links between two servers of this group; defaults to `links.default`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<LinkFile>,
}

/// The link between two groups as a file writes it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BetweenFile {
    pub groups: [String; 2],
    pub latency_min: SimDuration,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_max: Option<SimDuration>,
    #[serde(default)]
    pub loss: Probability,
}

/// The `[links]` table.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinksFile {
    /// Every link not described elsewhere.
    #[serde(default)]
    pub default: LinkFile,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub between: Vec<BetweenFile>,
}

/// A topology as written, in a file of its own or inline.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopologyFile {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fabric: Option<Fabric>,
    #[serde(default)]
    pub users_per_server: UsersPerServer,
    pub group: BTreeMap<String, GroupFile>,
    #[serde(default)]
    pub links: LinksFile,
}

/// Latency and loss of one directed link, in the units the network model uses.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LinkProfile {
    pub latency_ms_min: u64,
    pub latency_ms_max: u64,
    /// Probability that a message is lost, in [0, 1].
    pub loss: f64,
}

impl LinkProfile {
    /// The link of a topology that says nothing about links: a nearby server.
    pub const DEFAULT: Self = Self {
        latency_ms_min: 5,
        latency_ms_max: 20,
        loss: 0.0,
    };
}

/// Index of a server in [`Topology::servers`] (and in a run plan's server list).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServerId(pub usize);

/// Index of a group in [`Topology::groups`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GroupId(pub usize);

#[derive(Clone, Debug, PartialEq)]
pub struct Server {
    pub name: String,
    pub group: GroupId,
    pub users: u32,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Group {
    pub name: String,
    pub servers: Vec<ServerId>,
}

/// Link profiles by group pair; the profile of any directed server link is looked up here.
#[derive(Clone, Debug, PartialEq)]
pub struct LinkTable {
    pub default: LinkProfile,
    pub within: BTreeMap<GroupId, LinkProfile>,
    /// Keyed by the ordered pair (smaller id first); links are symmetric.
    pub between: BTreeMap<(GroupId, GroupId), LinkProfile>,
}

impl LinkTable {
    pub fn between_groups(&self, a: GroupId, b: GroupId) -> LinkProfile {
        let found = if a == b {
            self.within.get(&a)
        } else {
            self.between.get(&(a.min(b), a.max(b)))
        };
        found.copied().unwrap_or(self.default)
    }
}

/// A validated topology with concrete servers.
#[derive(Clone, Debug, PartialEq)]
pub struct Topology {
    pub description: String,
    pub fabric: Option<Fabric>,
    pub groups: Vec<Group>,
    pub servers: Vec<Server>,
    pub links: LinkTable,
}

/// What a name in a fault or adversary refers to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Named {
    Server(ServerId),
    Group(GroupId),
}

impl Topology {
    pub fn server(&self, id: ServerId) -> &Server {
        &self.servers[id.0]
    }

    pub fn server_id(&self, name: &str) -> Option<ServerId> {
        self.servers
            .iter()
            .position(|server| server.name == name)
            .map(ServerId)
    }

    pub fn group_id(&self, name: &str) -> Option<GroupId> {
        self.groups
            .iter()
            .position(|group| group.name == name)
            .map(GroupId)
    }

    /// Looks a name up as a group first, then as a server (they never clash).
    pub fn lookup(&self, name: &str) -> Option<Named> {
        self.group_id(name)
            .map(Named::Group)
            .or_else(|| self.server_id(name).map(Named::Server))
    }

    /// The servers a name stands for: the group's members or the one server.
    pub fn members(&self, named: Named) -> Vec<ServerId> {
        match named {
            Named::Server(id) => vec![id],
            Named::Group(id) => self.groups[id.0].servers.clone(),
        }
    }

    /// The profile of the directed link `from -> to`.
    pub fn link(&self, from: ServerId, to: ServerId) -> LinkProfile {
        self.links
            .between_groups(self.server(from).group, self.server(to).group)
    }

    pub fn server_names(&self) -> impl Iterator<Item = &str> {
        self.servers.iter().map(|server| server.name.as_str())
    }

    pub fn group_names(&self) -> impl Iterator<Item = &str> {
        self.groups.iter().map(|group| group.name.as_str())
    }

    pub fn users_total(&self) -> u64 {
        self.servers
            .iter()
            .map(|server| u64::from(server.users))
            .sum()
    }

    /// "the topology's groups (eu, us) and servers (eu1.test, ...)", for messages.
    pub fn known_names(&self) -> String {
        format!(
            "a group ({}) or a server ({})",
            list_names(self.group_names()),
            list_names(self.server_names())
        )
    }
}

/// Checks a topology file and builds its servers. Problems name `file` and keys under `prefix`
/// (empty for a topology file, `topology` for an inline table).
pub fn build_topology(
    file: &Path,
    prefix: &KeyPath,
    spec: &TopologyFile,
) -> Result<Topology, Vec<Problem>> {
    let mut builder = Builder {
        file,
        prefix,
        problems: Vec::new(),
    };
    let topology = builder.build(spec);
    if builder.problems.is_empty() {
        Ok(topology)
    } else {
        Err(builder.problems)
    }
}

struct Builder<'a> {
    file: &'a Path,
    prefix: &'a KeyPath,
    problems: Vec<Problem>,
}

impl Builder<'_> {
    fn error(&mut self, key: KeyPath, message: impl Into<String>) {
        self.problems
            .push(Problem::error(self.file, self.prefix.join(&key), message));
    }

    fn build(&mut self, spec: &TopologyFile) -> Topology {
        if spec.group.is_empty() {
            self.error(
                KeyPath::root().key("group"),
                "a topology needs at least one group, as in `[group.eu]` with `count = 3`",
            );
        }
        self.check_users(
            &KeyPath::root().key("users_per_server"),
            &spec.users_per_server,
        );
        let mut groups = Vec::new();
        let mut servers: Vec<Server> = Vec::new();
        for (group_name, group_spec) in &spec.group {
            let group_id = GroupId(groups.len());
            let path = KeyPath::root().key("group").key(group_name);
            self.check_group_name(&path, group_name);
            let names = self.server_names(&path, group_name, group_spec, servers.len());
            let users = group_spec
                .users_per_server
                .as_ref()
                .unwrap_or(&spec.users_per_server);
            if let Some(own) = &group_spec.users_per_server {
                self.check_users(&path.key("users_per_server"), own);
            }
            for (server, count) in &group_spec.users {
                if !names.contains(server) {
                    self.error(
                        path.key("users").key(server),
                        format!(
                            "{server:?} is not a server of group {group_name:?}; expected one of {}",
                            list_names(names.iter().map(String::as_str))
                        ),
                    );
                }
                if *count > USERS_PER_SERVER_MAX {
                    self.error(
                        path.key("users").key(server),
                        format!("{count} users; at most {USERS_PER_SERVER_MAX} are allowed"),
                    );
                }
            }
            let mut members = Vec::new();
            for (position, name) in names.into_iter().enumerate() {
                let users = group_spec
                    .users
                    .get(&name)
                    .copied()
                    .unwrap_or(users.for_position(position));
                members.push(ServerId(servers.len()));
                servers.push(Server {
                    name,
                    group: group_id,
                    users,
                });
            }
            groups.push(Group {
                name: group_name.clone(),
                servers: members,
            });
        }
        self.check_unique_names(spec, &groups, &servers);
        let links = self.links(spec, &groups);
        Topology {
            description: spec.description.clone(),
            fabric: spec.fabric,
            groups,
            servers,
            links,
        }
    }

    fn check_group_name(&mut self, path: &KeyPath, name: &str) {
        let valid = !name.is_empty()
            && name.len() <= 40
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !name.starts_with('-');
        if !valid {
            self.error(
                path.clone(),
                format!(
                    "group name {name:?} is not allowed; expected 1 to 40 of a-z, 0-9 and '-', not starting with '-' (servers are named from it)"
                ),
            );
        }
    }

    fn check_users(&mut self, path: &KeyPath, users: &UsersPerServer) {
        if users.0.is_empty() {
            self.error(
                path.clone(),
                "an empty list; expected a number of users or a non-empty list",
            );
        }
        if let Some(count) = users.0.iter().find(|count| **count > USERS_PER_SERVER_MAX) {
            self.error(
                path.clone(),
                format!("{count} users; at most {USERS_PER_SERVER_MAX} per server are allowed"),
            );
        }
    }

    /// The group's server names; `servers_so_far` keeps a file of many large groups from
    /// generating more than [`SERVERS_MAX`] names before the total is checked.
    fn server_names(
        &mut self,
        path: &KeyPath,
        group: &str,
        spec: &GroupFile,
        servers_so_far: usize,
    ) -> Vec<String> {
        match (spec.count, &spec.servers) {
            (Some(_), Some(_)) => {
                self.error(
                    path.clone(),
                    "has both `count` and `servers`; expected one of them",
                );
                Vec::new()
            }
            (None, None) => {
                self.error(
                    path.clone(),
                    "has neither `count` nor `servers`; expected `count = N` or `servers = [\"name\", ...]`",
                );
                Vec::new()
            }
            (Some(count), None) => {
                if count == 0 || count as usize > SERVERS_MAX.saturating_sub(servers_so_far) {
                    self.error(
                        path.key("count"),
                        format!(
                            "{count} servers; expected 1 to {SERVERS_MAX} in the whole topology"
                        ),
                    );
                    return Vec::new();
                }
                (1..=count)
                    .map(|n| format!("{group}{n}.{GENERATED_DOMAIN}"))
                    .collect()
            }
            (None, Some(names)) => {
                if names.is_empty() {
                    self.error(
                        path.key("servers"),
                        "an empty list; expected at least one server name",
                    );
                }
                for (index, name) in names.iter().enumerate() {
                    if let Err(error) = parse_server_name(name) {
                        self.error(
                            path.key("servers").index(index),
                            format!("{error}; expected a Matrix server name such as \"hub.test\""),
                        );
                    }
                }
                names.clone()
            }
        }
    }

    fn check_unique_names(&mut self, spec: &TopologyFile, groups: &[Group], servers: &[Server]) {
        if servers.len() > SERVERS_MAX {
            self.error(
                KeyPath::root().key("group"),
                format!(
                    "{} servers in all; at most {SERVERS_MAX} are allowed",
                    servers.len()
                ),
            );
        }
        let mut seen: BTreeMap<&str, &str> = BTreeMap::new();
        for server in servers {
            let group = groups[server.group.0].name.as_str();
            if let Some(first) = seen.insert(&server.name, group) {
                self.error(
                    KeyPath::root().key("group").key(group),
                    format!(
                        "server {:?} is also in group {first:?}; server names must be unique",
                        server.name
                    ),
                );
            }
            if spec.group.contains_key(&server.name) {
                self.error(
                    KeyPath::root().key("group").key(group),
                    format!(
                        "server {:?} has the name of a group; names must mean one thing",
                        server.name
                    ),
                );
            }
        }
    }

    fn links(&mut self, spec: &TopologyFile, groups: &[Group]) -> LinkTable {
        let links_path = KeyPath::root().key("links");
        let default = self.profile(&links_path.key("default"), &spec.links.default);
        let mut within = BTreeMap::new();
        for (index, (name, group)) in spec.group.iter().enumerate() {
            if let Some(link) = &group.link {
                let profile =
                    self.profile(&KeyPath::root().key("group").key(name).key("link"), link);
                within.insert(GroupId(index), profile);
            }
        }
        let mut between = BTreeMap::new();
        for (index, entry) in spec.links.between.iter().enumerate() {
            let path = links_path.key("between").index(index);
            let ids: Vec<Option<GroupId>> = entry
                .groups
                .iter()
                .enumerate()
                .map(|(side, name)| {
                    let id = groups.iter().position(|group| &group.name == name);
                    if id.is_none() {
                        self.error(
                            path.key("groups").index(side),
                            format!(
                                "{name:?} is not a group; expected one of {}",
                                list_names(groups.iter().map(|group| group.name.as_str()))
                            ),
                        );
                    }
                    id.map(GroupId)
                })
                .collect();
            let link = LinkFile {
                latency_min: entry.latency_min,
                latency_max: entry.latency_max,
                loss: entry.loss,
            };
            let profile = self.profile(&path, &link);
            let (Some(a), Some(b)) = (ids[0], ids[1]) else {
                continue;
            };
            if a == b {
                self.error(
                    path.key("groups"),
                    format!(
                        "names group {:?} twice; links within a group go in `group.{}.link`",
                        entry.groups[0], entry.groups[0]
                    ),
                );
            } else if between.insert((a.min(b), a.max(b)), profile).is_some() {
                self.error(
                    path.key("groups"),
                    format!(
                        "the link between {:?} and {:?} is described twice",
                        entry.groups[0], entry.groups[1]
                    ),
                );
            }
        }
        LinkTable {
            default,
            within,
            between,
        }
    }

    fn profile(&mut self, path: &KeyPath, link: &LinkFile) -> LinkProfile {
        let profile = link_profile(link);
        if let Err(message) = check_latency(profile.latency_ms_min, profile.latency_ms_max) {
            self.error(path.key("latency_max"), message);
        }
        profile
    }
}

fn link_profile(link: &LinkFile) -> LinkProfile {
    let latency_ms_min = link.latency_min.as_ms();
    LinkProfile {
        latency_ms_min,
        latency_ms_max: link.latency_max.map_or(latency_ms_min, SimDuration::as_ms),
        loss: link.loss.value(),
    }
}

/// Checks a latency range; the error says what was expected.
pub fn check_latency(latency_ms_min: u64, latency_ms_max: u64) -> Result<(), String> {
    if latency_ms_max < latency_ms_min {
        return Err(format!(
            "{latency_ms_max}ms is below latency_min ({latency_ms_min}ms); expected latency_max >= latency_min"
        ));
    }
    if latency_ms_max > LINK_LATENCY_MS_MAX {
        return Err(format!(
            "{latency_ms_max}ms; link latency is at most {LINK_LATENCY_MS_MAX}ms"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(text: &str) -> Result<Topology, Vec<String>> {
        let spec: TopologyFile = toml::from_str(text).map_err(|e| vec![e.to_string()])?;
        build_topology(Path::new("t.toml"), &KeyPath::root(), &spec)
            .map_err(|problems| problems.iter().map(ToString::to_string).collect())
    }

    #[test]
    fn generates_names_in_group_order() {
        let topology = build(
            "users_per_server = [1, 2]\n[group.us]\ncount = 2\n[group.eu]\ncount = 3\n[group.hub]\nservers = [\"hub.test\"]\nusers = { \"hub.test\" = 50 }\n",
        )
        .unwrap();
        let names: Vec<&str> = topology.server_names().collect();
        assert_eq!(
            names,
            [
                "eu1.test", "eu2.test", "eu3.test", "hub.test", "us1.test", "us2.test"
            ]
        );
        let users: Vec<u32> = topology.servers.iter().map(|s| s.users).collect();
        assert_eq!(users, [1, 2, 1, 50, 1, 2]);
        assert_eq!(topology.lookup("eu"), Some(Named::Group(GroupId(0))));
        assert_eq!(
            topology.lookup("hub.test"),
            Some(Named::Server(ServerId(3)))
        );
        assert_eq!(topology.lookup("nope"), None);
    }

    #[test]
    fn links_fall_back_from_pair_to_group_to_default() {
        let topology = build(
            "[group.a]\ncount = 2\nlink = { latency_min = \"1ms\" }\n[group.b]\ncount = 1\n[group.c]\ncount = 1\n[links]\ndefault = { latency_min = \"30ms\", latency_max = \"40ms\" }\n[[links.between]]\ngroups = [\"b\", \"a\"]\nlatency_min = \"80ms\"\nlatency_max = \"120ms\"\nloss = 0.5\n",
        )
        .unwrap();
        let (a1, a2, b1, c1) = (ServerId(0), ServerId(1), ServerId(2), ServerId(3));
        assert_eq!(topology.link(a1, a2).latency_ms_max, 1);
        assert_eq!(topology.link(a1, b1).latency_ms_min, 80);
        assert_eq!(topology.link(b1, a2).loss, 0.5);
        assert_eq!(topology.link(b1, c1).latency_ms_max, 40);
    }

    #[test]
    fn reports_every_problem_with_its_key() {
        let problems = build(
            "[group.Eu]\ncount = 0\n[group.x]\nservers = [\"bad name\", \"ok.test\"]\nusers = { \"other.test\" = 1 }\n[group.y]\ncount = 1\nservers = [\"y.test\"]\n[[links.between]]\ngroups = [\"x\", \"zz\"]\nlatency_min = \"50ms\"\nlatency_max = \"10ms\"\n",
        )
        .unwrap_err();
        let all = problems.join("\n");
        for expected in [
            "`group.Eu`: group name \"Eu\" is not allowed",
            "`group.Eu.count`: 0 servers; expected 1 to 10000 in the whole topology",
            "`group.x.servers[0]`: server name \"bad name\"",
            "`group.x.users.\"other.test\"`: \"other.test\" is not a server of group \"x\"",
            "`group.y`: has both `count` and `servers`",
            "`links.between[0].groups[1]`: \"zz\" is not a group",
            "`links.between[0].latency_max`: 10ms is below latency_min (50ms)",
        ] {
            assert!(all.contains(expected), "missing {expected:?} in\n{all}");
        }
    }

    #[test]
    fn duplicate_and_clashing_names_are_errors() {
        let problems =
            build("[group.a]\nservers = [\"s.test\", \"b\"]\n[group.b]\nservers = [\"s.test\"]\n")
                .unwrap_err();
        let all = problems.join("\n");
        assert!(
            all.contains("server \"s.test\" is also in group \"a\""),
            "{all}"
        );
        assert!(
            all.contains("server \"b\" has the name of a group"),
            "{all}"
        );
    }
}
