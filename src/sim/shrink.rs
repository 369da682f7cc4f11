//! Shrinking a failing experiment: a greedy search for a smaller experiment that still fails
//! the same expectation at the same seed (fewer faults, servers and users, shorter windows and
//! runs, lower rates).
//!
//! [`candidates`] lists the simplifications of one experiment file, cheapest-to-run first
//! (shorter runs make every later attempt faster); [`shrink`] tries them in order, takes the
//! first that still fails and starts over from it, and stops when no candidate fails, or at
//! its time or attempt limit. A candidate the loader rejects costs nothing: the test (a
//! closure) says [`Trial::Invalid`] and the search moves on.
//!
//! Invariants: every candidate is strictly simpler than its parent in one measure (a count,
//! a duration in ms or a rate) and no larger in any other, so the search ends even without
//! limits; the result is always a file the test saw fail (the start, if nothing smaller did);
//! the same start, seed and code give the same result when no limit is hit.

use super::experiment::duration::SimDuration;
use super::experiment::fault::{FaultFile, FaultKind};
use super::experiment::numbers::Rate;
use super::experiment::topology::{TopologyFile, UsersPerServer};
use super::experiment::{ExperimentFile, TopologyRef};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// Rates are halved down to this, then set to zero: below it a halving changes little.
const RATE_PER_SECOND_MIN: f64 = 0.1;
/// Windows and runs are not halved below this many milliseconds.
const SPAN_MS_MIN: u64 = 1_000;

/// What the test found for one candidate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Trial {
    /// The loader rejects it: not run, not counted.
    Invalid,
    /// It ran and failed the target expectation.
    StillFails,
    /// It ran and passed the target expectation (or could not be run, or panicked).
    Other,
}

/// When the search stops early.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub time: Duration,
    pub attempts_max: usize,
}

/// Why the search ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    /// No candidate of the result fails: a local minimum.
    Minimal,
    TimeLimit,
    AttemptLimit,
}

/// The search's result.
#[derive(Clone, Debug)]
pub struct Shrunk {
    pub file: ExperimentFile,
    /// The simplifications taken, in order.
    pub steps: Vec<String>,
    /// Candidates run (invalid ones are not counted).
    pub attempts: usize,
    pub stop: Stop,
}

/// What the search reports as it goes.
#[derive(Clone, Debug)]
pub enum Event<'a> {
    /// About to run a candidate.
    Trying { what: &'a str, attempts: usize },
    /// A candidate still fails and is the new current experiment.
    Accepted {
        what: &'a str,
        file: &'a ExperimentFile,
    },
}

/// Shrinks `start` (which must fail the test) while `test` says a candidate still fails.
pub fn shrink(
    start: ExperimentFile,
    limits: Limits,
    mut test: impl FnMut(&ExperimentFile) -> Trial,
    mut report: impl FnMut(Event<'_>),
) -> Shrunk {
    let began = Instant::now();
    let mut current = start;
    let mut steps = Vec::new();
    let mut attempts = 0;
    let mut tried: BTreeSet<String> = BTreeSet::new();
    'search: loop {
        for (what, candidate) in candidates(&current) {
            // Two paths can reach the same file; the text is its identity.
            let Ok(text) = toml::to_string(&candidate) else {
                continue;
            };
            if !tried.insert(text) {
                continue;
            }
            if began.elapsed() >= limits.time {
                return Shrunk::end(current, steps, attempts, Stop::TimeLimit);
            }
            if attempts >= limits.attempts_max {
                return Shrunk::end(current, steps, attempts, Stop::AttemptLimit);
            }
            report(Event::Trying {
                what: &what,
                attempts,
            });
            match test(&candidate) {
                Trial::Invalid => continue,
                Trial::Other => attempts += 1,
                Trial::StillFails => {
                    attempts += 1;
                    report(Event::Accepted {
                        what: &what,
                        file: &candidate,
                    });
                    current = candidate;
                    steps.push(what);
                    continue 'search;
                }
            }
        }
        return Shrunk::end(current, steps, attempts, Stop::Minimal);
    }
}

impl Shrunk {
    fn end(file: ExperimentFile, steps: Vec<String>, attempts: usize, stop: Stop) -> Self {
        Self {
            file,
            steps,
            attempts,
            stop,
        }
    }
}

/// Sizes that say how big an experiment is, for progress and the result's header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Size {
    pub faults: usize,
    /// Servers and users of an inline topology; `None` for a named one.
    pub servers: Option<u64>,
    pub users: Option<u64>,
    pub duration: SimDuration,
}

impl Size {
    pub fn of(file: &ExperimentFile) -> Self {
        let counts = match &file.topology {
            TopologyRef::Inline(topology) => Some(topology_counts(topology, file)),
            TopologyRef::Named(_) => None,
        };
        Self {
            faults: file.faults.len(),
            servers: counts.map(|(servers, _)| servers),
            users: counts.map(|(_, users)| users),
            duration: file.duration,
        }
    }
}

impl std::fmt::Display for Size {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let unknown = |value: Option<u64>| value.map_or("?".to_owned(), |v| v.to_string());
        write!(
            f,
            "{} servers, {} users, {} faults, {}",
            unknown(self.servers),
            unknown(self.users),
            self.faults,
            self.duration
        )
    }
}

/// Servers and users of an inline topology under `file`'s workload.
fn topology_counts(topology: &TopologyFile, file: &ExperimentFile) -> (u64, u64) {
    let mut servers = 0u64;
    let mut users = 0u64;
    for group in topology.group.values() {
        let names = group.servers.as_ref();
        let count = names.map_or(u64::from(group.count.unwrap_or(0)), |n| n.len() as u64);
        let per_server = group
            .users_per_server
            .as_ref()
            .unwrap_or(&topology.users_per_server);
        for position in 0..count as usize {
            let named = names.and_then(|names| names.get(position));
            let users_here = file.workload.users_per_server.unwrap_or_else(|| {
                named
                    .and_then(|name| group.users.get(name).copied())
                    .unwrap_or_else(|| per_server.for_position(position))
            });
            users += u64::from(users_here);
        }
        servers += count;
    }
    (servers, users)
}

/// Every simplification of `file`, each with a line saying what it does, cheapest-to-run
/// first.
pub fn candidates(file: &ExperimentFile) -> Vec<(String, ExperimentFile)> {
    let mut out = Vec::new();
    shorter_runs(file, &mut out);
    fewer_faults(file, &mut out);
    smaller_topology(file, &mut out);
    fewer_users(file, &mut out);
    lower_rates(file, &mut out);
    shorter_windows(file, &mut out);
    out
}

type Out = Vec<(String, ExperimentFile)>;

fn ms(value: u64) -> SimDuration {
    SimDuration::from_ms(value).expect("a shrunk duration is no longer than the original")
}

/// A shortened time, rounded down so shrunk files read well: whole seconds from 10 s,
/// tenths of a second from 1 s.
fn rounded(value_ms: u64) -> SimDuration {
    let step = match value_ms {
        10_000.. => 1_000,
        1_000.. => 100,
        _ => 1,
    };
    ms(value_ms / step * step)
}

/// The last moment any fault needs before the final phase.
fn faults_end_ms(file: &ExperimentFile) -> u64 {
    file.faults
        .iter()
        .map(|fault| {
            let at = fault.at.as_ms();
            let until = fault.until.map_or(at, SimDuration::as_ms);
            let for_end = fault.for_.map_or(at, |span| at + span.as_ms());
            at.max(until).max(for_end)
        })
        .max()
        .unwrap_or(0)
}

fn shorter_runs(file: &ExperimentFile, out: &mut Out) {
    let settle = file.settle.as_ms();
    let active = file.duration.as_ms().saturating_sub(settle);
    // The workload phase: halve it, but keep every fault (and its end) inside it.
    let needed = faults_end_ms(file) + SPAN_MS_MIN;
    let halved = rounded(active / 2).as_ms().max(needed);
    if halved < active {
        let mut next = file.clone();
        next.duration = ms(halved + settle);
        out.push((
            format!(
                "run the workload for {} instead of {}",
                ms(halved),
                ms(active)
            ),
            next,
        ));
    }
    // Everything twice as early: faults, their windows and the workload phase.
    if active >= 2 * SPAN_MS_MIN && !file.faults.is_empty() {
        let mut next = file.clone();
        for fault in &mut next.faults {
            fault.at = rounded(fault.at.as_ms() / 2);
            fault.until = fault.until.map(|until| rounded(until.as_ms() / 2));
            fault.for_ = fault.for_.map(|span| rounded(span.as_ms() / 2));
        }
        next.duration = ms(rounded(active / 2).as_ms() + settle);
        out.push(("halve every time before the final phase".to_owned(), next));
    }
    if settle >= 2 * SPAN_MS_MIN {
        let mut next = file.clone();
        next.settle = rounded(settle / 2);
        next.duration = ms(active + next.settle.as_ms());
        out.push((
            format!("settle for {} instead of {}", next.settle, file.settle),
            next,
        ));
    }
}

/// Removes faults: halves of the list, then quarters, down to single faults (as delta
/// debugging does), and each fault together with the heal or restart that ends it.
fn fewer_faults(file: &ExperimentFile, out: &mut Out) {
    let count = file.faults.len();
    let mut chunk = count.div_ceil(2).max(1);
    loop {
        if chunk < count || chunk == 1 {
            for start in (0..count).step_by(chunk) {
                let end = (start + chunk).min(count);
                let mut next = file.clone();
                next.faults.drain(start..end);
                let what = if end - start == 1 {
                    format!("drop fault[{start}] ({})", describe(&file.faults[start]))
                } else {
                    format!("drop faults {start}..{end}")
                };
                out.push((what, next));
            }
        }
        if chunk == 1 {
            break;
        }
        chunk = chunk.div_ceil(2);
    }
    for (index, fault) in file.faults.iter().enumerate() {
        if let Some(undo) = undo_of(file, index) {
            let mut next = file.clone();
            next.faults.remove(undo);
            next.faults.remove(index);
            out.push((
                format!(
                    "drop fault[{index}] ({}) and the {} at {} that ends it",
                    describe(fault),
                    file.faults[undo].kind.name(),
                    file.faults[undo].at
                ),
                next,
            ));
        }
    }
}

fn describe(fault: &FaultFile) -> String {
    format!("{} at {}", fault.kind.name(), fault.at)
}

/// The index of the first heal (or restart of the same server) after fault `index`.
fn undo_of(file: &ExperimentFile, index: usize) -> Option<usize> {
    let fault = &file.faults[index];
    let ends = |other: &FaultFile| match fault.kind {
        kind if kind.healed_by_heal() => other.kind == FaultKind::Heal,
        FaultKind::Crash => other.kind == FaultKind::Restart && other.server == fault.server,
        _ => false,
    };
    file.faults
        .iter()
        .enumerate()
        .filter(|(other, candidate)| *other != index && candidate.at > fault.at && ends(candidate))
        .min_by_key(|(_, candidate)| candidate.at)
        .map(|(other, _)| other)
}

fn shorter_windows(file: &ExperimentFile, out: &mut Out) {
    for (index, fault) in file.faults.iter().enumerate() {
        let at = fault.at.as_ms();
        if let Some(until) = fault.until {
            let span = until.as_ms().saturating_sub(at);
            if span >= 2 * SPAN_MS_MIN {
                let mut next = file.clone();
                next.faults[index].until = Some(ms(at + span / 2));
                out.push((
                    format!("fault[{index}] ends at {}", ms(at + span / 2)),
                    next,
                ));
            }
        }
        if let Some(span) = fault.for_
            && span.as_ms() >= 2 * SPAN_MS_MIN
        {
            let mut next = file.clone();
            next.faults[index].for_ = Some(ms(span.as_ms() / 2));
            out.push((
                format!("fault[{index}] lasts {}", ms(span.as_ms() / 2)),
                next,
            ));
        }
        // A heal or restart moves halfway towards the latest fault before it.
        if matches!(fault.kind, FaultKind::Heal | FaultKind::Restart) {
            let before = file
                .faults
                .iter()
                .map(|other| other.at.as_ms())
                .filter(|&other| other < at)
                .max();
            if let Some(before) = before
                && at - before >= 2 * SPAN_MS_MIN
            {
                let moved = before + (at - before) / 2;
                let mut next = file.clone();
                next.faults[index].at = ms(moved);
                out.push((
                    format!(
                        "fault[{index}] ({}) moves to {}",
                        fault.kind.name(),
                        ms(moved)
                    ),
                    next,
                ));
            }
        }
        // A fault starts later, halfway towards the end of its window: a shorter window.
        if let Some(undo) = undo_of(file, index) {
            let end = file.faults[undo].at.as_ms();
            if end - at >= 2 * SPAN_MS_MIN {
                let moved = at + (end - at) / 2;
                let mut next = file.clone();
                next.faults[index].at = ms(moved);
                out.push((
                    format!(
                        "fault[{index}] ({}) starts at {}",
                        fault.kind.name(),
                        ms(moved)
                    ),
                    next,
                ));
            }
        }
    }
}

fn smaller_topology(file: &ExperimentFile, out: &mut Out) {
    let TopologyRef::Inline(topology) = &file.topology else {
        return;
    };
    let with = |change: &dyn Fn(&mut TopologyFile)| {
        let mut next = file.clone();
        if let TopologyRef::Inline(topology) = &mut next.topology {
            change(topology);
        }
        next
    };
    for (name, group) in &topology.group {
        if topology.group.len() > 1 {
            let next = with(&|topology| {
                topology.group.remove(name);
                topology
                    .links
                    .between
                    .retain(|link| !link.groups.contains(name));
            });
            out.push((format!("remove group {name}"), next));
        }
        if let Some(count) = group.count.filter(|&count| count > 1) {
            let mut options = vec![count / 2, count - 1];
            options.dedup();
            for fewer in options.into_iter().filter(|&fewer| fewer > 0) {
                let next = with(&|topology| {
                    if let Some(group) = topology.group.get_mut(name) {
                        group.count = Some(fewer);
                    }
                });
                out.push((
                    format!("group {name} has {fewer} servers, not {count}"),
                    next,
                ));
            }
        }
        if let Some(servers) = group.servers.as_ref().filter(|servers| servers.len() > 1) {
            for (position, server) in servers.iter().enumerate().rev() {
                let next = with(&|topology| {
                    if let Some(group) = topology.group.get_mut(name) {
                        if let Some(names) = &mut group.servers {
                            names.remove(position);
                        }
                        group.users.remove(server);
                    }
                });
                out.push((format!("remove server {server}"), next));
            }
        }
    }
}

fn fewer_users(file: &ExperimentFile, out: &mut Out) {
    let workload_users = file.workload.users_per_server;
    match workload_users {
        Some(users) if users > 1 => {
            let mut options = vec![1, users / 2, users - 1];
            options.dedup();
            for fewer in options {
                if fewer >= 1 && fewer < users {
                    let mut next = file.clone();
                    next.workload.users_per_server = Some(fewer);
                    out.push((format!("{fewer} users per server, not {users}"), next));
                }
            }
        }
        Some(_) => {}
        None => {
            let TopologyRef::Inline(topology) = &file.topology else {
                return;
            };
            let most = topology
                .group
                .values()
                .flat_map(|group| {
                    let listed = group.users_per_server.as_ref().map(|u| u.0.clone());
                    let named = group.users.values().copied().collect::<Vec<_>>();
                    listed.unwrap_or_default().into_iter().chain(named)
                })
                .chain(topology.users_per_server.0.iter().copied())
                .max()
                .unwrap_or(1);
            if most > 1 {
                let mut next = file.clone();
                next.workload.users_per_server = Some(1);
                out.push((
                    "1 user per server (the topology gives some servers more)".to_owned(),
                    next,
                ));
                if most > 2 {
                    let mut next = file.clone();
                    if let TopologyRef::Inline(topology) = &mut next.topology {
                        halve_users(topology);
                    }
                    out.push(("halve every server's users".to_owned(), next));
                }
            }
        }
    }
    if file.workload.admins_per_server > 0 {
        let mut next = file.clone();
        next.workload.admins_per_server = 0;
        out.push(("no admins besides the creator".to_owned(), next));
    }
}

fn halve_users(topology: &mut TopologyFile) {
    let halve = |users: &mut UsersPerServer| {
        for count in &mut users.0 {
            *count = (*count / 2).max(1);
        }
    };
    halve(&mut topology.users_per_server);
    for group in topology.group.values_mut() {
        if let Some(users) = &mut group.users_per_server {
            halve(users);
        }
        for count in group.users.values_mut() {
            *count = (*count / 2).max(1);
        }
    }
}

/// A lower rate: half, or zero once it is small.
fn lower(rate: Rate) -> Option<Rate> {
    let value = rate.per_second();
    if value == 0.0 {
        None
    } else if value / 2.0 < RATE_PER_SECOND_MIN {
        Some(Rate::ZERO)
    } else {
        Rate::new(value / 2.0)
    }
}

fn lower_rates(file: &ExperimentFile, out: &mut Out) {
    type Field = fn(&mut ExperimentFile) -> &mut Rate;
    let fields: [(&str, Field); 4] = [
        ("messages_per_second", |f| {
            &mut f.workload.messages_per_second
        }),
        ("state_changes_per_second", |f| {
            &mut f.workload.state_changes_per_second
        }),
        ("typing_per_second", |f| &mut f.workload.typing_per_second),
        ("receipts_per_second", |f| {
            &mut f.workload.receipts_per_second
        }),
    ];
    for (name, field) in fields {
        let mut next = file.clone();
        let rate = field(&mut next);
        let before = *rate;
        if !before.is_zero() && name != "messages_per_second" {
            let mut zero = file.clone();
            *field(&mut zero) = Rate::ZERO;
            out.push((format!("workload.{name} = 0"), zero));
        }
        if let Some(lowered) = lower(before).filter(|lowered| !lowered.is_zero()) {
            *rate = lowered;
            out.push((
                format!(
                    "workload.{name} = {} instead of {}",
                    lowered.per_second(),
                    before.per_second()
                ),
                next,
            ));
        }
    }
    for (index, fault) in file.faults.iter().enumerate() {
        if let Some(lowered) = fault.messages_per_second.and_then(lower)
            && !lowered.is_zero()
        {
            let mut next = file.clone();
            next.faults[index].messages_per_second = Some(lowered);
            out.push((
                format!("fault[{index}] floods {}/s", lowered.per_second()),
                next,
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::experiment::load::parse_experiment;
    use std::path::Path;

    const FILE: &str = r#"
name = "x"
description = "t"
duration = "4m"
settle = "1m"
[workload]
messages_per_second = 2
state_changes_per_second = 0.2
[[fault]]
at = "30s"
kind = "partition"
sides = [["a"], ["b"]]
[[fault]]
at = "90s"
kind = "heal"
[[fault]]
at = "100s"
kind = "crash"
server = "a1.test"
for = "20s"
[topology]
users_per_server = 3
[topology.group.a]
count = 3
[topology.group.b]
count = 2
"#;

    fn file() -> ExperimentFile {
        parse_experiment(Path::new("x.toml"), FILE).unwrap().file
    }

    /// A fake test: "fails" while the experiment keeps the crash and at least `servers`.
    fn fails_with_crash(servers: u64) -> impl FnMut(&ExperimentFile) -> Trial {
        move |candidate| {
            let text = toml::to_string(candidate).unwrap();
            if parse_experiment(Path::new("x.toml"), &text).is_err() {
                return Trial::Invalid;
            }
            let crash = candidate.faults.iter().any(|f| f.kind == FaultKind::Crash);
            if crash && Size::of(candidate).servers.unwrap() >= servers {
                Trial::StillFails
            } else {
                Trial::Other
            }
        }
    }

    fn limits() -> Limits {
        Limits {
            time: Duration::from_secs(60),
            attempts_max: 10_000,
        }
    }

    #[test]
    fn every_candidate_is_smaller_and_the_search_keeps_what_fails() {
        let start = file();
        let shrunk = shrink(start.clone(), limits(), fails_with_crash(2), |_| {});
        assert_eq!(shrunk.stop, Stop::Minimal);
        let size = Size::of(&shrunk.file);
        assert_eq!(size.faults, 1, "{:?}", shrunk.steps);
        assert_eq!(shrunk.file.faults[0].kind, FaultKind::Crash);
        assert_eq!(size.servers, Some(2));
        assert_eq!(size.users, Some(2));
        assert!(shrunk.file.duration < start.duration);
        assert!(shrunk.file.workload.state_changes_per_second.is_zero());
        // The result is a valid file and no candidate of it still fails.
        let text = toml::to_string(&shrunk.file).unwrap();
        parse_experiment(Path::new("x.toml"), &text).unwrap();
        let mut test = fails_with_crash(2);
        for (what, candidate) in candidates(&shrunk.file) {
            assert_ne!(test(&candidate), Trial::StillFails, "{what}");
        }
    }

    #[test]
    fn limits_stop_the_search_with_a_failing_file() {
        let start = file();
        let one = Limits {
            time: Duration::from_secs(60),
            attempts_max: 1,
        };
        let shrunk = shrink(start.clone(), one, fails_with_crash(2), |_| {});
        assert_eq!(shrunk.stop, Stop::AttemptLimit);
        assert_eq!(shrunk.attempts, 1);
        let none = Limits {
            time: Duration::ZERO,
            attempts_max: 100,
        };
        let shrunk = shrink(start.clone(), none, fails_with_crash(2), |_| {});
        assert_eq!(shrunk.stop, Stop::TimeLimit);
        assert_eq!(shrunk.file, start);
    }

    #[test]
    fn the_search_is_deterministic() {
        let a = shrink(file(), limits(), fails_with_crash(3), |_| {});
        let b = shrink(file(), limits(), fails_with_crash(3), |_| {});
        assert_eq!(a.file, b.file);
        assert_eq!(a.steps, b.steps);
    }

    #[test]
    fn fault_pairs_and_rates() {
        let start = file();
        let all = candidates(&start);
        let names: Vec<&str> = all.iter().map(|(what, _)| what.as_str()).collect();
        assert!(
            names.contains(&"drop fault[0] (partition at 30s) and the heal at 1m30s that ends it"),
            "{names:#?}"
        );
        assert!(names.contains(&"workload.state_changes_per_second = 0"));
        assert!(names.contains(&"group a has 1 servers, not 3"));
        assert_eq!(lower(Rate::new(0.15).unwrap()), Some(Rate::ZERO));
    }
}
