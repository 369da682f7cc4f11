//! The network model both fabrics obey: per-link latency and loss, and which directed links are
//! cut. The nemesis changes it; a fabric consults it for every message.
//!
//! Invariants: every random draw comes from the RNG handed in by the caller (one per run,
//! split per component), or, for a message to or from an isolated server, from that server's
//! own stream, so the same seed gives the same latencies and an isolated server's traffic
//! never shifts the draws of the others; the model iterates only ordered maps (the hashed index
//! of names is only looked up), so its answers never depend on hashing.

use crate::server::name_key::NameMap;
use rand::RngExt as _;
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// Latency and loss of one directed link.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LinkProfile {
    pub latency_ms_min: u64,
    pub latency_ms_max: u64,
    /// Probability that a message on this link is lost, in [0, 1].
    pub loss: f64,
}

impl Default for LinkProfile {
    fn default() -> Self {
        Self {
            latency_ms_min: 5,
            latency_ms_max: 50,
            loss: 0.0,
        }
    }
}

/// What happens to one message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fate {
    /// Arrives after this delay.
    Deliver(Duration),
    /// Never arrives: the link is cut.
    DropCut,
    /// Never arrives: lost at random.
    DropLoss,
}

/// Counters of what the network did, per directed link.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LinkCounters {
    pub delivered: u64,
    pub dropped_cut: u64,
    pub dropped_loss: u64,
}

/// A server as the model knows it: a small number given on first sight.
type Node = u32;

/// The state of the simulated network.
///
/// Memory: a run of a thousand servers has a million directed links, so links are not held one
/// by one. A link's profile comes from the groups of its two ends ([`NetworkModel::set_groups`])
/// unless a fault set its own; servers are numbered once, and cuts, overrides and counters are
/// keyed by those numbers.
#[derive(Debug, Default)]
pub struct NetworkModel {
    default_link: LinkProfile,
    /// Servers by name, numbered in the order first seen. Read twice per message and never
    /// iterated: hashed, as names share long prefixes an ordered map compares byte by byte.
    nodes: NameMap<Node>,
    /// The group of each numbered server that has one, by number.
    group_of: Vec<Option<usize>>,
    /// The profile between two groups, row-major over `groups`; both directions alike.
    group_links: Vec<LinkProfile>,
    groups: usize,
    /// Links whose profile was set one by one, over the groups' profile.
    links: BTreeMap<(Node, Node), LinkProfile>,
    cut: BTreeSet<(Node, Node)>,
    /// Extra delay per server, for a "slow server" fault: added to every message it receives.
    slow: BTreeMap<String, Duration>,
    counters: BTreeMap<(Node, Node), LinkCounters>,
    totals: LinkCounters,
    /// Servers whose messages draw from their own stream (see [`NetworkModel::isolate`]).
    isolated: BTreeMap<String, ChaCha8Rng>,
}

impl NetworkModel {
    pub fn new(default_link: LinkProfile) -> Self {
        Self {
            default_link,
            ..Self::default()
        }
    }

    /// The number of `server`, given now if it has none.
    fn node(&mut self, server: &str) -> Node {
        if let Some(node) = self.nodes.get(server) {
            return *node;
        }
        let node = Node::try_from(self.nodes.len()).expect("fewer than 2^32 servers");
        self.nodes.insert(server, node);
        self.group_of.push(None);
        node
    }

    fn known(&self, server: &str) -> Option<Node> {
        self.nodes.get(server).copied()
    }

    /// Sets the profile of every link between two different servers from their groups:
    /// `members` gives each server's group, `between(a, b)` the profile between groups `a` and
    /// `b` (asked for `a <= b`; both directions get it). Links set one by one still win.
    pub fn set_groups(
        &mut self,
        members: impl IntoIterator<Item = (String, usize)>,
        groups: usize,
        between: impl Fn(usize, usize) -> LinkProfile,
    ) {
        for (server, group) in members {
            assert!(group < groups, "group {group} of {server} out of {groups}");
            let node = self.node(&server);
            self.group_of[node as usize] = Some(group);
        }
        self.groups = groups;
        self.group_links = vec![self.default_link; groups * groups];
        for a in 0..groups {
            for b in a..groups {
                let profile = between(a, b);
                self.group_links[a * groups + b] = profile;
                self.group_links[b * groups + a] = profile;
            }
        }
    }

    /// Sets the profile of both directions of a link.
    pub fn set_link(&mut self, a: &str, b: &str, profile: LinkProfile) {
        self.set_link_one_way(a, b, profile);
        self.set_link_one_way(b, a, profile);
    }

    pub fn link(&self, from: &str, to: &str) -> LinkProfile {
        let (Some(from), Some(to)) = (self.known(from), self.known(to)) else {
            return self.default_link;
        };
        self.link_between(from, to)
    }

    fn link_between(&self, from: Node, to: Node) -> LinkProfile {
        if let Some(profile) = self.links.get(&(from, to)) {
            return *profile;
        }
        let groups = (self.group_of[from as usize], self.group_of[to as usize]);
        match groups {
            (Some(a), Some(b)) if from != to => self.group_links[a * self.groups + b],
            _ => self.default_link,
        }
    }

    /// Cuts both directions between every server of `side_a` and every server of `side_b`.
    pub fn partition(&mut self, side_a: &[String], side_b: &[String]) {
        for a in side_a {
            for b in side_b {
                self.cut_one_way(a, b);
                self.cut_one_way(b, a);
            }
        }
    }

    /// Cuts one direction only.
    pub fn cut_one_way(&mut self, from: &str, to: &str) {
        let link = (self.node(from), self.node(to));
        self.cut.insert(link);
    }

    /// Restores one direction.
    pub fn restore_one_way(&mut self, from: &str, to: &str) {
        if let (Some(from), Some(to)) = (self.known(from), self.known(to)) {
            self.cut.remove(&(from, to));
        }
    }

    /// Sets the profile of one direction of a link.
    pub fn set_link_one_way(&mut self, from: &str, to: &str, profile: LinkProfile) {
        let link = (self.node(from), self.node(to));
        self.links.insert(link, profile);
    }

    /// Restores every cut link.
    pub fn heal(&mut self) {
        self.cut.clear();
    }

    pub fn is_cut(&self, from: &str, to: &str) -> bool {
        match (self.known(from), self.known(to)) {
            (Some(from), Some(to)) => self.cut.contains(&(from, to)),
            _ => false,
        }
    }

    pub fn cut_links(&self) -> usize {
        self.cut.len()
    }

    pub fn set_slow(&mut self, server: &str, extra: Duration) {
        if extra.is_zero() {
            self.slow.remove(server);
        } else {
            self.slow.insert(server.to_owned(), extra);
        }
    }

    /// Gives `server` its own random stream: every message it sends or receives draws from
    /// `rng` instead of the caller's, so the run of the other servers draws the same values
    /// whatever this one sends, or whether it exists (an attacker and the same run without it).
    pub fn isolate(&mut self, server: &str, rng: ChaCha8Rng) {
        self.isolated.insert(server.to_owned(), rng);
    }

    /// Decides the fate of one message from `from` to `to`, and counts it.
    pub fn decide(&mut self, from: &str, to: &str, rng: &mut ChaCha8Rng) -> Fate {
        let own = [from, to]
            .into_iter()
            .find(|server| self.isolated.contains_key(*server));
        let Some(own) = own else {
            return self.decide_with(from, to, rng);
        };
        let (own, mut stream) = self
            .isolated
            .remove_entry(own)
            .expect("the isolated server was just found");
        let fate = self.decide_with(from, to, &mut stream);
        self.isolated.insert(own, stream);
        fate
    }

    fn decide_with(&mut self, from: &str, to: &str, rng: &mut ChaCha8Rng) -> Fate {
        let link = (self.node(from), self.node(to));
        let fate = if self.cut.contains(&link) {
            Fate::DropCut
        } else {
            let profile = self.link_between(link.0, link.1);
            if profile.loss > 0.0 && rng.random_bool(profile.loss.clamp(0.0, 1.0)) {
                Fate::DropLoss
            } else {
                let latency_ms = rng.random_range(profile.latency_ms_min..=profile.latency_ms_max);
                let slow = self.slow.get(to).copied().unwrap_or_default();
                Fate::Deliver(Duration::from_millis(latency_ms) + slow)
            }
        };
        let counters = self.counters.entry(link).or_default();
        for counters in [counters, &mut self.totals] {
            match fate {
                Fate::Deliver(_) => counters.delivered += 1,
                Fate::DropCut => counters.dropped_cut += 1,
                Fate::DropLoss => counters.dropped_loss += 1,
            }
        }
        fate
    }

    /// Totals over every link.
    pub fn totals(&self) -> LinkCounters {
        self.totals
    }

    /// What the network did to messages from `from` to `to` so far.
    pub fn link_counters(&self, from: &str, to: &str) -> LinkCounters {
        match (self.known(from), self.known(to)) {
            (Some(from), Some(to)) => self.counters.get(&(from, to)).copied(),
            _ => None,
        }
        .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng as _;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|name| (*name).to_owned()).collect()
    }

    #[test]
    fn partitions_cut_both_ways_and_heal_restores() {
        let mut model = NetworkModel::new(LinkProfile::default());
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        model.partition(&names(&["a"]), &names(&["b", "c"]));
        assert_eq!(model.decide("a", "b", &mut rng), Fate::DropCut);
        assert_eq!(model.decide("c", "a", &mut rng), Fate::DropCut);
        assert!(matches!(model.decide("b", "c", &mut rng), Fate::Deliver(_)));
        model.heal();
        assert!(matches!(model.decide("a", "b", &mut rng), Fate::Deliver(_)));
        assert_eq!(
            model.totals(),
            LinkCounters {
                delivered: 2,
                dropped_cut: 2,
                dropped_loss: 0
            }
        );
    }

    #[test]
    fn latency_stays_in_range_and_is_reproducible() {
        let profile = LinkProfile {
            latency_ms_min: 10,
            latency_ms_max: 20,
            loss: 0.25,
        };
        let draw = |seed| {
            let mut model = NetworkModel::new(profile);
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            (0..200)
                .map(|_| model.decide("a", "b", &mut rng))
                .collect::<Vec<_>>()
        };
        let fates = draw(3);
        assert_eq!(fates, draw(3));
        assert_ne!(fates, draw(4));
        let lost = fates.iter().filter(|fate| **fate == Fate::DropLoss).count();
        assert!((20..80).contains(&lost), "{lost} of 200 lost at p=0.25");
        for fate in fates {
            if let Fate::Deliver(delay) = fate {
                assert!((10..=20).contains(&(delay.as_millis() as u64)));
            }
        }
    }

    #[test]
    fn an_isolated_server_does_not_shift_the_draws_of_the_others() {
        let profile = LinkProfile {
            latency_ms_min: 1,
            latency_ms_max: 1_000,
            loss: 0.1,
        };
        // The fates of a -> b messages, with or without evil's traffic in between.
        let run = |with_evil: bool| {
            let mut model = NetworkModel::new(profile);
            model.isolate("evil", ChaCha8Rng::seed_from_u64(9));
            let mut rng = ChaCha8Rng::seed_from_u64(1);
            let mut fates = Vec::new();
            for _ in 0..100 {
                if with_evil {
                    model.decide("evil", "a", &mut rng);
                    model.decide("b", "evil", &mut rng);
                }
                fates.push(model.decide("a", "b", &mut rng));
            }
            fates
        };
        assert_eq!(run(true), run(false));
        // Without isolation the same traffic shifts them.
        let mut model = NetworkModel::new(profile);
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let shifted: Vec<Fate> = (0..100)
            .map(|_| {
                model.decide("evil", "a", &mut rng);
                model.decide("a", "b", &mut rng)
            })
            .collect();
        assert_ne!(shifted, run(false));
    }
}
