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
fn run(text: &str, defences: Defences) -> (serde_json::Map<String, Value>, bool) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments/threat-test.toml");
    let experiment = parse_experiment(&path, text).expect("the test experiment is valid");
    let plan = experiment.resolve(1, &mut component_rng(1, "plan"));
    let output = run_with_defences(plan, &RunOptions::default(), defences).expect("runs");
    let metrics = output.summary.metrics.into_iter().collect();
    (metrics, output.summary.passed)
}

fn count(metrics: &serde_json::Map<String, Value>, key: &str) -> u64 {
    metrics
        .get(key)
        .and_then(Value::as_u64)
        .unwrap_or_else(|| panic!("metric {key} missing: {metrics:?}"))
}

fn all_on() -> Defences {
    Defences::default()
}

/// Events signed by evil.test claiming a user of hs1.test are dropped for their missing
/// signature; without the signature check they enter the room.
#[test]
fn fake_origin_needs_the_signature_check() {
    let text = experiment(
        "[[adversary]]\nserver = \"evil.test\"\nattack = \"fake-origin\"\nfrom = \"20s\"\n\
         params = { victim = \"hs1.test\", per_second = 1 }\n",
    );
    let (on, passed) = run(&text, all_on());
    assert!(passed, "{on:?}");
    assert!(count(&on, "attack_events_sent") > 0);
    assert_eq!(count(&on, "unauthorized_accepted"), 0);
    assert!(count(&on, "pdus_dropped_bad_signature") > 0);
    let off = Defences {
        pdu_signatures: false,
        ..all_on()
    };
    let (off, _) = run(&text, off);
    assert!(count(&off, "unauthorized_accepted") > 0, "{off:?}");
}

/// A ban by evil.test's powerless user is rejected by the authorization rules; without them
/// it takes effect.
#[test]
fn forge_ban_needs_the_auth_rules() {
    let text = experiment(
        "[[adversary]]\nserver = \"evil.test\"\nattack = \"forge-ban\"\nfrom = \"20s\"\n\
         params = { per_second = 1 }\n",
    );
    let (on, passed) = run(&text, all_on());
    assert!(passed, "{on:?}");
    assert!(count(&on, "attack_events_sent") > 0);
    assert!(count(&on, "attack_events_rejected") > 0, "{on:?}");
    assert_eq!(count(&on, "unauthorized_accepted"), 0);
    let off = Defences {
        auth_rules: false,
        ..all_on()
    };
    let (off, _) = run(&text, off);
    assert!(count(&off, "unauthorized_accepted") > 0, "{off:?}");
}
