//! `fedlab proto resolve` as a user runs it: JSON on stdin, canonical JSON on stdout, exit code 2
//! and a message naming the event at fault on bad input, never a panic.

use serde_json::{Value, json};
use std::io::Write as _;
use std::process::{Command, Stdio};

struct Outcome {
    code: i32,
    stdout: String,
    stderr: String,
}

fn resolve(args: &[&str], stdin: &str) -> Outcome {
    let mut child = Command::new(env!("CARGO_BIN_EXE_fedlab"))
        .args(["proto", "resolve"])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the fedlab binary runs");
    let written = child.stdin.take().unwrap().write_all(stdin.as_bytes());
    // A command that fails on its arguments exits without reading stdin.
    if let Err(error) = written {
        assert_eq!(error.kind(), std::io::ErrorKind::BrokenPipe, "{error}");
    }
    let output = child.wait_with_output().unwrap();
    Outcome {
        code: output.status.code().expect("exited, not killed"),
        stdout: String::from_utf8(output.stdout).unwrap(),
        stderr: String::from_utf8(output.stderr).unwrap(),
    }
}

fn event(
    id: &str,
    event_type: &str,
    state_key: Option<&str>,
    prev: &[&str],
    content: Value,
) -> Value {
    let mut event = json!({"event_id": id, "type": event_type, "sender": "@alice:a.example",
                           "content": content, "prev_events": prev, "origin_server_ts": 1});
    if let Some(state_key) = state_key {
        event["state_key"] = json!(state_key);
    }
    event
}

/// Alice creates a room and joins; then two topics on two forks.
fn two_topics() -> Vec<Value> {
    vec![
        event(
            "$create",
            "m.room.create",
            Some(""),
            &[],
            json!({"creator": "@alice:a.example"}),
        ),
        event(
            "$join",
            "m.room.member",
            Some("@alice:a.example"),
            &["$create"],
            json!({"membership": "join"}),
        ),
        event(
            "$t1",
            "m.room.topic",
            Some(""),
            &["$join"],
            json!({"topic": "one"}),
        ),
        event(
            "$t2",
            "m.room.topic",
            Some(""),
            &["$join"],
            json!({"topic": "two"}),
        ),
    ]
}

fn assert_bad_input(outcome: &Outcome, message: &str) {
    assert_eq!(outcome.code, 2, "stderr: {}", outcome.stderr);
    assert!(outcome.stdout.is_empty());
    assert!(
        outcome.stderr.contains(message),
        "expected {message:?} in {:?}",
        outcome.stderr
    );
    assert!(!outcome.stderr.contains("panicked"));
}

#[test]
fn resolves_state_sets_and_prints_canonical_json() {
    let input = json!({"room_version": "11", "events": two_topics(),
                       "state_sets": [["$create", "$join", "$t1"], ["$create", "$join", "$t2"]]});
    let outcome = resolve(&[], &input.to_string());
    assert_eq!(outcome.code, 0, "stderr: {}", outcome.stderr);
    // Same timestamp and mainline position: the larger event id is applied last and wins.
    assert_eq!(
        outcome.stdout,
        "{\"rejected\":[],\"state\":[[\"m.room.create\",\"\",\"$create\"],\
         [\"m.room.member\",\"@alice:a.example\",\"$join\"],[\"m.room.topic\",\"\",\"$t2\"]]}\n"
    );
}

#[test]
fn computes_the_state_after_an_event() {
    let mut events = two_topics();
    events.push(event(
        "$merge",
        "m.room.message",
        None,
        &["$t1", "$t2"],
        json!({}),
    ));
    let input = json!({"room_version": "11", "events": events, "at": "$merge"});
    let outcome = resolve(&[], &input.to_string());
    assert_eq!(outcome.code, 0, "stderr: {}", outcome.stderr);
    let output: Value = serde_json::from_str(&outcome.stdout).unwrap();
    assert_eq!(output["state"][2], json!(["m.room.topic", "", "$t2"]));
}

#[test]
fn room_version_and_algorithm_flags_override_the_input() {
    let input = json!({"room_version": "11", "events": two_topics(),
                       "state_sets": [["$create", "$join", "$t1"], ["$create", "$join", "$t2"]]});
    // v1 keeps the topic with the lowest SHA-1 at equal depth: sha1("$t1") = 94ac...,
    // sha1("$t2") = 2907..., so $t2 again, and the rules of room v1 accept these events too.
    for args in [
        &["--algorithm", "v1"][..],
        &["--room-version", "1"],
        &["--algorithm", "v2.1"],
    ] {
        let outcome = resolve(args, &input.to_string());
        assert_eq!(outcome.code, 0, "{args:?}: {}", outcome.stderr);
        assert!(
            outcome.stdout.contains("[\"m.room.topic\",\"\",\"$t2\"]"),
            "{args:?}"
        );
    }
    // The rules of room v12 reject a creator listed in the power levels; those of v11 do not.
    let mut events = two_topics();
    events.push(event(
        "$pl",
        "m.room.power_levels",
        Some(""),
        &["$t1"],
        json!({"users": {"@alice:a.example": 100}}),
    ));
    let input = json!({"room_version": "11", "events": events, "at": "$pl"});
    let outcome = resolve(&[], &input.to_string());
    assert!(
        outcome.stdout.starts_with("{\"rejected\":[],"),
        "{}",
        outcome.stdout
    );
    let outcome = resolve(&["--room-version", "12"], &input.to_string());
    assert!(
        outcome.stdout.starts_with("{\"rejected\":[\"$pl\"],"),
        "{}",
        outcome.stdout
    );
}

#[test]
fn bad_input_exits_2_and_names_the_event() {
    let with = |events: Vec<Value>, query: Value| {
        let mut input = json!({"room_version": "11", "events": events});
        for (key, value) in query.as_object().unwrap() {
            input[key] = value.clone();
        }
        input.to_string()
    };
    let mut bad_prev = two_topics();
    bad_prev[3]["prev_events"] = json!([3]);
    let mut unknown_prev = two_topics();
    unknown_prev[3]["prev_events"] = json!(["$nowhere"]);
    let mut unknown_auth = two_topics();
    unknown_auth[3]["auth_events"] = json!(["$create", "$ghost"]);
    unknown_auth[3]["depth"] = json!(3);
    let mut cycle = two_topics();
    cycle[1]["prev_events"] = json!(["$t1"]);
    let no_create = two_topics()[1..].to_vec();
    let mut duplicate = two_topics();
    duplicate[3]["event_id"] = json!("$t1");
    let cases = [
        (
            with(bad_prev, json!({"at": "$t1"})),
            "event #3 ($t2): `prev_events` must be an array of event ids",
        ),
        (
            with(unknown_prev, json!({"at": "$t1"})),
            "event #3 ($t2): unknown prev event $nowhere",
        ),
        (
            with(unknown_auth, json!({"at": "$t1"})),
            "event $ghost is missing (needed by the auth_events of $t2)",
        ),
        (
            with(cycle, json!({"at": "$t1"})),
            "events form a cycle through their auth_events or prev_events: $join, $t1, $t2",
        ),
        (
            with(no_create, json!({"at": "$t1"})),
            "event #0 ($join): unknown prev event $create",
        ),
        (
            with(duplicate, json!({"at": "$t1"})),
            "event #3 ($t1): duplicate event id, already used by event #2",
        ),
        (
            with(two_topics(), json!({"state_sets": [["$create", "$t9"]]})),
            "state set #0: unknown event $t9",
        ),
        (
            "{\"room_version\": \"11\", \"events\": [".to_owned(),
            "input is not valid JSON",
        ),
        (
            with(two_topics(), json!({"at": "$t1", "room_version": "99"})),
            "unknown room version \"99\"",
        ),
    ];
    for (input, message) in cases {
        assert_bad_input(&resolve(&[], &input), message);
    }
    let valid = with(two_topics(), json!({"at": "$t1"}));
    assert_bad_input(
        &resolve(&["--room-version", "0"], &valid),
        "--room-version: unknown room version \"0\"",
    );
    assert_bad_input(&resolve(&["--algorithm", "v3"], &valid), "v3");
}

#[test]
fn missing_create_event_is_reported() {
    let mut events = two_topics()[1..].to_vec();
    events[0]["prev_events"] = json!([]);
    events[0]["depth"] = json!(2);
    let input = json!({"room_version": "11", "events": events, "at": "$t1"});
    assert_bad_input(
        &resolve(&[], &input.to_string()),
        "no m.room.create event for room !room:example.org",
    );
}
