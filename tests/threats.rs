//! Each defence of the threat table, shown to matter: the same attack run against honest
//! servers with the defence on (the attack is stopped) and with it switched off (the attack
//! succeeds), on the fast fabric. A verdict that is green only because an attack never
//! happened would show here as an attack that also fails with the defence off.

use fedlab::server::config::Defences;
use fedlab::sim::experiment::load::parse_experiment;
use fedlab::sim::runner::world::component_rng;
use fedlab::sim::runner::{RunOptions, run_with_defences};
use serde_json::Value;
use std::path::Path;

/// A summary's metrics by name.
type Metrics = serde_json::Map<String, Value>;

/// A short experiment on the threat topology: four honest servers and evil.test, with
/// `adversary` (one `[[adversary]]` table) and any extra `[expect]` lines.
fn experiment(adversary: &str) -> String {
    format!(
        "name = \"threat-test\"\n\
         description = \"A threat under test.\"\n\
         topology = \"mesh-4-evil\"\n\
         fabric = \"fast\"\n\
         room_version = \"12\"\n\
         duration = \"2m\"\n\
         settle = \"30s\"\n\
         [workload]\n\
         messages_per_second = 1\n\
         {adversary}\n"
    )
}

/// Runs `text` at seed 1 with `defences` and returns the summary's metrics and whether every
/// expectation passed.
fn run(text: &str, defences: Defences) -> (Metrics, bool) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments/threat-test.toml");
    let experiment = parse_experiment(&path, text).expect("the test experiment is valid");
    let plan = experiment.resolve(1, &mut component_rng(1, "plan"));
    let output = run_with_defences(plan, &RunOptions::default(), defences).expect("runs");
    let metrics = output.summary.metrics.into_iter().collect();
    (metrics, output.summary.passed)
}

fn count(metrics: &Metrics, key: &str) -> u64 {
    metrics
        .get(key)
        .and_then(Value::as_u64)
        .unwrap_or_else(|| panic!("metric {key} missing: {metrics:?}"))
}

fn all_on() -> Defences {
    Defences::default()
}

/// Runs the attack with every defence on (it must be stopped, with `evidence` showing the
/// defence at work) and with `off` (it must then get events accepted that the protocol must
/// stop). Returns both metric sets.
fn defence_matters(adversary: &str, off: Defences, evidence: &str) -> (Metrics, Metrics) {
    let text = experiment(adversary);
    let (on, passed) = run(&text, all_on());
    assert!(
        passed,
        "the attack was not stopped, or had no effect: {on:?}"
    );
    assert!(count(&on, "attack_events_sent") > 0);
    assert_eq!(count(&on, "unauthorized_accepted"), 0);
    assert!(count(&on, evidence) > 0, "no {evidence}: {on:?}");
    let (without, _) = run(&text, off);
    assert!(
        count(&without, "unauthorized_accepted") > 0,
        "the attack failed even without the defence: {without:?}"
    );
    (on, without)
}

/// A message attack at one per second from 20 s that the authorization rules stop.
fn auth_rules_matter(attack: &str) {
    defence_matters(
        &format!(
            "[[adversary]]\nserver = \"evil.test\"\nattack = \"{attack}\"\nfrom = \"20s\"\n\
             params = {{ per_second = 1 }}\n"
        ),
        Defences {
            auth_rules: false,
            ..all_on()
        },
        "attack_events_rejected",
    );
}

/// Runs `text` with every defence on, which must pass, and with `off`: returns the metrics
/// of both runs and whether the run with `off` passed.
fn on_then_off(text: &str, off: Defences) -> (Metrics, Metrics, bool) {
    let (on, passed) = run(text, all_on());
    assert!(passed, "{on:?}");
    let (without, passed_off) = run(text, off);
    (on, without, passed_off)
}

/// Events signed by evil.test claiming a user of hs1.test are dropped for their missing
/// signature; without the signature check they enter the room.
#[test]
fn fake_origin_needs_the_signature_check() {
    defence_matters(
        "[[adversary]]\nserver = \"evil.test\"\nattack = \"fake-origin\"\nfrom = \"20s\"\n\
         params = { victim = \"hs1.test\", per_second = 1 }\n",
        Defences {
            pdu_signatures: false,
            ..all_on()
        },
        "pdus_dropped_bad_signature",
    );
}

/// A ban by evil.test's powerless user is rejected by the authorization rules; without them
/// it takes effect.
#[test]
fn forge_ban_needs_the_auth_rules() {
    auth_rules_matter("forge-ban");
}

/// Messages whose auth events do not authorise them are rejected; without the rules they are
/// accepted.
#[test]
fn invalid_auth_events_need_the_auth_rules() {
    auth_rules_matter("invalid-auth-events");
}

/// A transaction of 60 PDUs is refused whole (the spec allows 50); without the count limit
/// its events enter the room.
#[test]
fn overfull_transactions_need_the_count_limit() {
    defence_matters(
        "[[adversary]]\nserver = \"evil.test\"\nattack = \"overfull-transactions\"\n\
         from = \"20s\"\nuntil = \"50s\"\nparams = { pdus_per_transaction = 60, per_second = 0.2 }\n",
        Defences {
            transaction_limits: false,
            ..all_on()
        },
        "transactions_refused",
    );
}

/// A flood of transactions whose gap-filling the attacker stalls: per-origin in-flight and
/// rate limits keep the victim's inbound queue to a few transactions; without them it holds
/// every stalled one.
#[test]
fn transaction_flood_needs_the_rate_limits() {
    let text = experiment(
        "[[adversary]]\nserver = \"evil.test\"\nattack = \"transaction-flood\"\n\
         from = \"20s\"\nuntil = \"40s\"\n\
         params = { transactions_per_second = 20, target = \"hs1.test\" }\n\
         [expect]\nvictim_queue_max = 10\n",
    );
    let (on, off, passed_off) = on_then_off(
        &text,
        Defences {
            rate_limits: false,
            ..all_on()
        },
    );
    assert!(count(&on, "transactions_rate_limited") > 0, "{on:?}");
    assert!(!passed_off);
    assert!(
        count(&off, "victim_queue_peak") > 50,
        "the flood did not fill the queue without limits: {off:?}"
    );
}

/// evil.test rewrites the messages it relays to hs4.test as hs4.test catches up after an
/// outage: the content hash betrays every rewritten event, which is held redacted; without
/// the hash check the rewritten content is taken as is.
#[test]
fn tamper_in_transit_needs_the_content_hash() {
    let text = experiment(
        "[[fault]]\nat = \"20s\"\nuntil = \"50s\"\nkind = \"isolate\"\nserver = \"hs4.test\"\n\
         [[adversary]]\nserver = \"evil.test\"\nattack = \"tamper-in-transit\"\n\
         from = \"20s\"\nuntil = \"1m20s\"\n\
         [expect]\ntampered_accepted_max = 0\n",
    );
    let (on, off, passed_off) = on_then_off(
        &text,
        Defences {
            content_hashes: false,
            ..all_on()
        },
    );
    assert!(count(&on, "pdus_redacted_bad_hash") > 0, "{on:?}");
    assert!(!passed_off);
    assert!(count(&off, "tampered_accepted") > 0, "{off:?}");
}

/// Messages pushed past the rate limit by gap filling: each transaction carries one message
/// citing a chain of 1,000 never sent, which the attacker serves in one answer. With the
/// bounds a victim takes at most what it asked for per answer and at most its per-origin gap
/// budget in all; without them it takes every chain whole.
#[test]
fn gap_fill_spam_needs_the_gap_fill_bounds() {
    let text = experiment(
        "[[adversary]]\nserver = \"evil.test\"\nattack = \"gap-fill-spam\"\n\
         from = \"20s\"\nuntil = \"40s\"\n\
         params = { chain = 1000, per_second = 1, target = \"hs1.test\" }\n",
    );
    let (on, off, _) = on_then_off(
        &text,
        Defences {
            gap_fill_bounds: false,
            ..all_on()
        },
    );
    let limits = fedlab::server::config::InboundLimits::default();
    // What one victim may take from one origin in the 20 s window: the gap burst and rate,
    // and the rounds' sent messages.
    let budget =
        limits.gap_events_burst_per_origin + 20.0 * limits.gap_events_per_second_per_origin + 20.0;
    let per_victim_on = count(&on, "attack_events_accepted");
    assert!(count(&on, "gap_fills_limited") > 0, "{on:?}");
    assert!(per_victim_on > 0, "{on:?}");
    // Honest servers relay what hs1 took, each within hs1's budget at them.
    assert!(
        (per_victim_on as f64) <= 4.0 * budget,
        "{per_victim_on} accepted pairs over 4 x {budget}: {on:?}"
    );
    // Without the bounds hs1 takes every chain whole (20 x 1,000 events); the others get
    // what gap fills from hs1 bring, which hs1's own answers clamp.
    let accepted_off = count(&off, "attack_events_accepted");
    assert!(
        accepted_off >= 15_000,
        "without the bounds the chains were not taken whole: {off:?}"
    );
    assert!(
        accepted_off > 3 * per_victim_on,
        "{accepted_off} accepted without the bounds, {per_victim_on} with them"
    );
}

/// A server with no member in the room asks for its events, history, state and missing
/// events: every read is refused; without the membership check on reads, room events leak.
#[test]
fn disclosure_outside_the_room_needs_the_read_checks() {
    let text = experiment(
        "[[adversary]]\nserver = \"evil.test\"\nattack = \"peek-outside-room\"\n\
         from = \"20s\"\nparams = { requests_per_second = 2 }\n\
         [expect]\nleaked_events_max = 0\n",
    );
    let (on, off, passed_off) = on_then_off(
        &text,
        Defences {
            read_membership_checks: false,
            ..all_on()
        },
    );
    assert_eq!(count(&on, "leaked_events"), 0);
    assert!(!passed_off);
    assert!(count(&off, "leaked_events") > 0, "{off:?}");
}

/// Messages from a server with no member in the room are rejected by the membership rules;
/// without the rules they are accepted.
#[test]
fn non_member_events_need_the_auth_rules() {
    auth_rules_matter("non-member-events");
}

/// An auth chain deeper than the fetch bound is refused unread, so the victim stores none of
/// it; without the bound the victim verifies and stores the whole chain.
#[test]
fn deep_auth_chain_needs_the_fetch_bound() {
    let text = experiment(
        "[[adversary]]\nserver = \"evil.test\"\nattack = \"deep-auth-chain\"\n\
         from = \"20s\"\nuntil = \"40s\"\nparams = { depth = 5001, target = \"hs1.test\" }\n",
    );
    let (on, off, _) = on_then_off(
        &text,
        Defences {
            fetch_bounds: false,
            ..all_on()
        },
    );
    assert!(count(&on, "auth_chains_refused") > 0, "{on:?}");
    assert_eq!(count(&on, "attack_events_outlier"), 0);
    assert!(count(&off, "attack_events_outlier") >= 5001, "{off:?}");
    assert!(count(&off, "victim_store_bytes_max") > count(&on, "victim_store_bytes_max"));
}

/// A member server that keeps sending after an honest admin denies it by server ACL gets
/// nothing accepted under the ACL: every honest server drops its PDUs. Without ACL
/// enforcement the same events, made with the ACL in their own state, are accepted.
#[test]
fn abuse_after_an_acl_needs_acl_enforcement() {
    let text = experiment(
        "[[adversary]]\nserver = \"evil.test\"\nattack = \"abuse-then-acl\"\n\
         from = \"20s\"\nparams = { messages_per_second = 2, acl_after = \"30s\" }\n\
         [expect]\naccepted_after_acl_max = 0\n",
    );
    let (on, off, passed_off) = on_then_off(
        &text,
        Defences {
            server_acls: false,
            ..all_on()
        },
    );
    assert!(
        count(&on, "attack_events_accepted") > 0,
        "no abuse before the ACL: {on:?}"
    );
    assert!(count(&on, "attack_events_sent_after_acl") > 0, "{on:?}");
    assert!(count(&on, "acl_pdus_dropped") > 0, "{on:?}");
    assert_eq!(count(&on, "accepted_after_acl"), 0);
    assert!(!passed_off);
    assert_eq!(count(&off, "acl_pdus_dropped"), 0);
    assert!(count(&off, "accepted_after_acl") > 0, "{off:?}");
}

/// An adversary run is as reproducible as any other: the same seed gives the same summary.
#[test]
fn an_adversary_run_replays_byte_for_byte() {
    let text = experiment(
        "[[adversary]]\nserver = \"evil.test\"\nattack = \"tamper-in-transit\"\n\
         from = \"20s\"\nuntil = \"1m\"\n\
         [[adversary]]\nserver = \"evil.test\"\nattack = \"forge-ban\"\nfrom = \"20s\"\n",
    );
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments/threat-test.toml");
    let experiment = parse_experiment(&path, &text).expect("valid");
    let summary = || {
        let plan = experiment.resolve(7, &mut component_rng(7, "plan"));
        let output = run_with_defences(plan, &RunOptions::default(), all_on()).expect("runs");
        serde_json::to_string(&output.summary).expect("serializes")
    };
    assert_eq!(summary(), summary());
}

/// The baseline run (the same experiment without its attackers) gives the honest servers the
/// same random draws: an attacker outside the room whose reads are all refused changes no
/// honest delivery, so both runs deliver every honest event with the same latency, and the
/// attacked summary reports the baseline's figures and a ratio of exactly 1.
#[test]
fn an_attack_that_changes_nothing_has_a_latency_ratio_of_one() {
    let text = experiment(
        "[[adversary]]\nserver = \"evil.test\"\nattack = \"peek-outside-room\"\n\
         from = \"20s\"\nparams = { requests_per_second = 5 }\n\
         [expect]\nleaked_events_max = 0\nhonest_latency_p99_ratio_max = 1.0\n",
    );
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments/threat-test.toml");
    let experiment = parse_experiment(&path, &text).expect("valid");
    let plan = experiment.resolve(1, &mut component_rng(1, "plan"));
    let baseline_plan = fedlab::sim::runner::adversary::baseline::plan(&plan);
    assert!(baseline_plan.adversaries.is_empty());
    let attacked = run_with_defences(plan, &RunOptions::default(), all_on()).expect("runs");
    let baseline =
        run_with_defences(baseline_plan, &RunOptions::default(), all_on()).expect("runs");
    assert!(
        attacked.summary.passed,
        "{:?}",
        attacked.summary.expectations
    );
    assert!(!attacked.delivery_latencies_ms.is_empty());
    assert_eq!(
        attacked.delivery_latencies_ms,
        baseline.delivery_latencies_ms
    );
    let metrics = &attacked.summary.metrics;
    assert_eq!(metrics["honest_latency_p99_ratio"], 1.0);
    assert_eq!(
        metrics["baseline_delivery_latency_ms_p99"],
        baseline.summary.metrics["delivery_latency_ms_p99"]
    );
    // A run without adversaries has no baseline of its own.
    assert!(
        !baseline
            .summary
            .metrics
            .contains_key("honest_latency_p99_ratio")
    );
}

/// `honest_latency_p99_ratio_max` is checked against the measured ratio: a bound under what
/// spam costs fails the run, naming both latencies.
#[test]
fn the_latency_ratio_bound_is_checked() {
    let text = experiment(
        "[[adversary]]\nserver = \"evil.test\"\nattack = \"spam\"\nfrom = \"20s\"\n\
         params = { messages_per_second = 50 }\n\
         [expect]\nhonest_latency_p99_ratio_max = 0.5\n",
    );
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments/threat-test.toml");
    let experiment = parse_experiment(&path, &text).expect("valid");
    let plan = experiment.resolve(1, &mut component_rng(1, "plan"));
    let output = run_with_defences(plan, &RunOptions::default(), all_on()).expect("runs");
    let verdict = output
        .summary
        .expectations
        .iter()
        .find(|verdict| verdict.key == "honest_latency_p99_ratio_max")
        .expect("the bound is checked");
    assert!(!verdict.passed, "{verdict:?}");
    assert!(verdict.actual.contains(" ms / "), "{verdict:?}");
    assert!(!output.summary.passed);
    let ratio = output.summary.metrics["honest_latency_p99_ratio"].as_f64();
    assert!(ratio.is_some_and(|ratio| ratio > 0.5), "{ratio:?}");
}

/// Adversaries run on turmoil as on the fast fabric: the interceptor sits in front of the
/// attacker's host and its requests leave from that host. A relay that rewrites what it
/// serves while hs4.test catches up gets the same verdict on both fabrics: it took effect,
/// and every rewritten event is held redacted.
#[test]
fn a_threat_gets_the_same_verdict_on_both_fabrics() {
    let text = experiment(
        "[[fault]]\nat = \"20s\"\nuntil = \"50s\"\nkind = \"isolate\"\nserver = \"hs4.test\"\n\
         [[adversary]]\nserver = \"evil.test\"\nattack = \"tamper-in-transit\"\n\
         from = \"20s\"\nuntil = \"1m20s\"\n\
         [[adversary]]\nserver = \"evil.test\"\nattack = \"forge-ban\"\nfrom = \"20s\"\n\
         [expect]\ntampered_accepted_max = 0\nunauthorized_accepted_max = 0\n",
    );
    let on = |fabric: &str| {
        let text = text.replace("fabric = \"fast\"", &format!("fabric = \"{fabric}\""));
        let (metrics, passed) = run(&text, all_on());
        assert_eq!(
            metrics.get("converged"),
            Some(&Value::Bool(true)),
            "{fabric}: {metrics:?}"
        );
        (metrics, passed)
    };
    let (fast, fast_passed) = on("fast");
    let (turmoil, turmoil_passed) = on("turmoil");
    assert!(fast_passed, "{fast:?}");
    assert!(turmoil_passed, "{turmoil:?}");
    for (fabric, metrics) in [("fast", &fast), ("turmoil", &turmoil)] {
        assert!(
            count(metrics, "pdus_redacted_bad_hash") > 0,
            "{fabric}: {metrics:?}"
        );
        assert!(
            count(metrics, "attack_events_rejected") > 0,
            "{fabric}: {metrics:?}"
        );
        assert_eq!(count(metrics, "tampered_accepted"), 0, "{fabric}");
        assert_eq!(count(metrics, "unauthorized_accepted"), 0, "{fabric}");
        assert!(metrics.contains_key("honest_latency_p99_ratio"), "{fabric}");
    }
}
