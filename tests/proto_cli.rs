//! Runs the built `fedlab proto ...` tools on good and bad input: outputs, exit codes (0 ok,
//! 1 a check failed, 2 bad input) and that nothing panics.

use serde_json::{Value, json};
use std::io::Write as _;
use std::process::{Command, Stdio};

const SPEC_SEED: &str = "YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1";
/// The public key of the spec's test seed.
const SPEC_PUBLIC_KEY: &str = "XGX0JRS2Af3be3knz2fBiRbApjm2Dh61gXDJA8kcJNI";

struct Output {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Output {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {:?}", self.stdout))
    }
}

fn proto(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_fedlab"))
        .arg("proto")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the fedlab binary runs");
    // A tool that rejects its arguments exits without reading stdin: a broken pipe is fine.
    let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
    let output = child.wait_with_output().unwrap();
    let result = Output {
        code: output
            .status
            .code()
            .expect("exited, not killed by a signal"),
        stdout: String::from_utf8(output.stdout).unwrap(),
        stderr: String::from_utf8(output.stderr).unwrap(),
    };
    assert!(
        !result.stderr.contains("panicked"),
        "fedlab proto {args:?} panicked: {}",
        result.stderr
    );
    result
}

fn sign_event_args(version: &str) -> Vec<&str> {
    vec![
        "sign-event",
        "--room-version",
        version,
        "--server",
        "domain",
        "--key-id",
        "ed25519:1",
        "--seed",
        SPEC_SEED,
    ]
}

const SPEC_MINIMAL_EVENT: &str = r#"{"room_id": "!x:domain", "sender": "@a:domain", "origin": "domain",
    "origin_server_ts": 1000000, "signatures": {}, "hashes": {}, "type": "X", "content": {},
    "prev_events": [], "auth_events": [], "depth": 3, "unsigned": {"age_ts": 1000000}}"#;

fn signed_minimal_event() -> String {
    let output = proto(&sign_event_args("6"), SPEC_MINIMAL_EVENT);
    assert_eq!(output.code, 0, "{}", output.stderr);
    output.stdout
}

#[test]
fn sign_json_reproduces_the_spec_vectors() {
    let args = [
        "sign-json",
        "--server",
        "domain",
        "--key-id",
        "ed25519:1",
        "--seed",
        SPEC_SEED,
    ];
    let blank = proto(&args, "{}");
    assert_eq!(blank.code, 0, "{}", blank.stderr);
    assert_eq!(
        blank.stdout.trim(),
        r#"{"signatures":{"domain":{"ed25519:1":"K8280/U9SSy9IVtjBuVeLr+HpOB4BQFWbg+UZaADMtTdGYI7Geitb76LTrr5QV/7Xg4ahLwYGYZzuHGZKM5ZAQ"}}}"#
    );
    let data = proto(&args, r#"{"one": 1, "two": "Two"}"#);
    assert_eq!(
        data.stdout.trim(),
        r#"{"one":1,"signatures":{"domain":{"ed25519:1":"KqmLSbO39/Bzb0QIYE82zqLwsA+PDzYIpIRA2sRQ4sL53+sN6/fpNSoqE7BP7vBZhG6kYdD13EIMJpvhJI+6Bw"}},"two":"Two"}"#
    );
}

#[test]
fn verify_json_exits_0_or_1() {
    let args = [
        "verify-json",
        "--server",
        "domain",
        "--key-id",
        "ed25519:1",
        "--public-key",
        SPEC_PUBLIC_KEY,
    ];
    let signed = r#"{"one":1,"signatures":{"domain":{"ed25519:1":"KqmLSbO39/Bzb0QIYE82zqLwsA+PDzYIpIRA2sRQ4sL53+sN6/fpNSoqE7BP7vBZhG6kYdD13EIMJpvhJI+6Bw"}},"two":"Two"}"#;
    let good = proto(&args, signed);
    assert_eq!(good.code, 0, "{}", good.stderr);
    assert_eq!(good.json()["valid"], json!(true));
    let tampered = proto(&args, &signed.replace("\"one\":1", "\"one\":2"));
    assert_eq!(tampered.code, 1);
    assert_eq!(tampered.json()["valid"], json!(false));
    assert!(
        tampered.stderr.contains("does not verify"),
        "{}",
        tampered.stderr
    );
    let unsigned = proto(&args, r#"{"one": 1}"#);
    assert_eq!(unsigned.code, 1);
    assert!(
        unsigned.stderr.contains("no signature from domain"),
        "{}",
        unsigned.stderr
    );
}

#[test]
fn sign_event_reproduces_the_spec_vectors() {
    let expected: Value = serde_json::from_str(
        r#"{"auth_events": [], "content": {}, "depth": 3,
            "hashes": {"sha256": "5jM4wQpv6lnBo7CLIghJuHdW+s2CMBJPUOGOC89ncos"},
            "origin": "domain", "origin_server_ts": 1000000, "prev_events": [],
            "room_id": "!x:domain", "sender": "@a:domain",
            "signatures": {"domain": {"ed25519:1": "KxwGjPSDEtvnFgU00fwFz+l6d2pJM6XBIaMEn81SXPTRl16AqLAYqfIReFGZlHi5KLjAWbOoMszkwsQma+lYAg"}},
            "type": "X", "unsigned": {"age_ts": 1000000}}"#,
    )
    .unwrap();
    let signed: Value = serde_json::from_str(&signed_minimal_event()).unwrap();
    assert_eq!(signed, expected);

    let redactable = r#"{"content": {"body": "Here is the message content"}, "event_id": "$0:domain",
        "origin": "domain", "origin_server_ts": 1000000, "type": "m.room.message",
        "room_id": "!r:domain", "sender": "@u:domain", "signatures": {},
        "unsigned": {"age_ts": 1000000}}"#;
    let output = proto(&sign_event_args("1"), redactable);
    assert_eq!(output.code, 0, "{}", output.stderr);
    let signed = output.json();
    assert_eq!(
        signed["hashes"]["sha256"],
        json!("onLKD1bGljeBWQhWZ1kaP9SorVmRQNdN5aM2JYU2n/g")
    );
    assert_eq!(
        signed["signatures"]["domain"]["ed25519:1"],
        json!(
            "Wm+VzmOUOz08Ds+0NTWb1d4CZrVsJSikkeRxh6aCcUwu6pNC78FunoD7KNWzqFn241eYHYMGCA5McEiVPdhzBA"
        )
    );
}

#[test]
fn event_id_per_room_version() {
    let signed = signed_minimal_event();
    let v3 = proto(&["event-id", "--room-version", "3"], &signed).json();
    let v4 = proto(&["event-id", "--room-version", "4"], &signed).json();
    let hash = v3["reference_hash"].as_str().unwrap();
    assert_eq!(v3["event_id"], json!(format!("${hash}")));
    let url_safe = hash.replace('+', "-").replace('/', "_");
    assert_eq!(v4["event_id"], json!(format!("${url_safe}")));
    assert!(v4.get("room_id").is_none());

    let v1 = proto(&["event-id", "--room-version", "1"], &signed);
    assert_eq!(v1.code, 2);
    assert!(v1.stderr.contains("`event_id` is missing"), "{}", v1.stderr);

    let create = r#"{"type": "m.room.create", "state_key": "", "sender": "@a:x.org",
        "content": {"room_version": "12"}, "origin_server_ts": 1, "depth": 1,
        "prev_events": [], "auth_events": [], "hashes": {"sha256": "x"}, "signatures": {}}"#;
    let v12 = proto(&["event-id", "--room-version", "12"], create).json();
    let event_id = v12["event_id"].as_str().unwrap();
    assert_eq!(v12["room_id"], json!(format!("!{}", &event_id[1..])));

    let untyped = proto(&["event-id", "--room-version", "11"], r#"{"content": {}}"#);
    assert_eq!(untyped.code, 2);
    assert!(
        untyped.stderr.contains("`type` is missing"),
        "{}",
        untyped.stderr
    );
}

#[test]
fn content_hash_fills_and_checks() {
    let filled = proto(&["content-hash"], SPEC_MINIMAL_EVENT);
    assert_eq!(filled.code, 0, "{}", filled.stderr);
    assert_eq!(
        filled.json()["hashes"],
        json!({"sha256": "5jM4wQpv6lnBo7CLIghJuHdW+s2CMBJPUOGOC89ncos"})
    );
    let check = proto(&["content-hash", "--check"], &filled.stdout);
    assert_eq!(check.code, 0);
    assert_eq!(check.json()["matches"], json!(true));
    let changed = filled.stdout.replace("\"depth\":3", "\"depth\":4");
    let mismatch = proto(&["content-hash", "--check"], &changed);
    assert_eq!(mismatch.code, 1);
    assert_eq!(mismatch.json()["matches"], json!(false));
    // Floats: only room versions 1-5 accept them.
    let float = r#"{"type": "m", "content": {"w": 1.5}}"#;
    assert_eq!(
        proto(&["content-hash", "--room-version", "5"], float).code,
        0
    );
    let strict = proto(&["content-hash", "--room-version", "6"], float);
    assert_eq!(strict.code, 2);
    assert!(strict.stderr.contains("content.w"), "{}", strict.stderr);
}

#[test]
fn redact_per_room_version() {
    let create = r#"{"type": "m.room.create", "content": {"creator": "@a:x", "m.federate": false},
        "origin": "x", "sender": "@a:x"}"#;
    let v10 = proto(&["redact", "--room-version", "10"], create).json();
    assert_eq!(
        v10,
        json!({"type": "m.room.create", "content": {"creator": "@a:x"}, "origin": "x", "sender": "@a:x"})
    );
    let v11 = proto(&["redact", "--room-version", "11"], create).json();
    assert_eq!(
        v11,
        json!({"type": "m.room.create", "content": {"creator": "@a:x", "m.federate": false}, "sender": "@a:x"})
    );
    let bad = proto(
        &["redact", "--room-version", "11"],
        r#"{"type": "m", "content": 5}"#,
    );
    assert_eq!(bad.code, 2);
    assert!(
        bad.stderr.contains("`content` must be an object"),
        "{}",
        bad.stderr
    );
}

#[test]
fn verify_event_outcomes() {
    let key = ["--key", "domain", "ed25519:1", SPEC_PUBLIC_KEY];
    let args = |version| {
        let mut args = vec!["verify-event", "--room-version", version];
        args.extend(key);
        args
    };
    let signed = signed_minimal_event();
    let valid = proto(&args("6"), &signed);
    assert_eq!(valid.code, 0, "{}", valid.stderr);
    assert_eq!(valid.json()["outcome"], json!("valid"));

    let tampered = signed.replace("\"content\":{}", "\"content\":{\"body\":\"added\"}");
    let mismatch = proto(&args("6"), &tampered);
    assert_eq!(mismatch.code, 1);
    assert_eq!(mismatch.json()["outcome"], json!("hash_mismatch"));
    assert_eq!(mismatch.json()["redacted"]["content"], json!({}));
    assert_eq!(mismatch.json()["event_id"], valid.json()["event_id"]);

    let forged = signed.replace("\"depth\":3", "\"depth\":4");
    let bad_signature = proto(&args("6"), &forged);
    assert_eq!(bad_signature.code, 1);
    assert_eq!(bad_signature.json()["outcome"], json!("bad_signature"));

    // Room v1 needs an `event_id`: the same JSON is not a valid v1 PDU.
    let invalid = proto(&args("1"), &signed);
    assert_eq!(invalid.code, 1);
    assert_eq!(invalid.json()["outcome"], json!("invalid_format"));
    assert!(
        invalid.json()["reason"]
            .as_str()
            .unwrap()
            .contains("event_id")
    );
}

#[test]
fn bad_input_exits_2_with_a_message() {
    let cases: &[(&[&str], &str, &str)] = &[
        (&["canonical-json"], "{", "stdin"),
        (
            &["redact", "--room-version", "11"],
            "[1, 2]",
            "expected a JSON object",
        ),
        (
            &["redact", "--room-version", "0"],
            "{}",
            "unknown room version",
        ),
        (
            &["event-id", "--room-version", "4"],
            "not json",
            "not valid JSON",
        ),
        (
            &["content-hash"],
            r#"{"hashes": 1}"#,
            "`hashes` must be an object",
        ),
        (
            &[
                "sign-json",
                "--server",
                "domain",
                "--key-id",
                "ed25519:1",
                "--seed",
                "AAAA",
            ],
            "{}",
            "seed must be 32 bytes",
        ),
        (
            &[
                "sign-json",
                "--server",
                "domain",
                "--key-id",
                "rsa:1",
                "--seed",
                SPEC_SEED,
            ],
            "{}",
            "key id",
        ),
        (
            &[
                "sign-json",
                "--server",
                "bad server",
                "--key-id",
                "ed25519:1",
                "--seed",
                SPEC_SEED,
            ],
            "{}",
            "--server",
        ),
        (
            &[
                "sign-json",
                "--server",
                "domain",
                "--key-id",
                "ed25519:1",
                "--seed",
                SPEC_SEED,
            ],
            r#"{"signatures": []}"#,
            "signatures",
        ),
        (
            &[
                "verify-json",
                "--server",
                "domain",
                "--key-id",
                "ed25519:1",
                "--public-key",
                "%%",
            ],
            "{}",
            "--public-key",
        ),
        (
            &[
                "verify-event",
                "--room-version",
                "6",
                "--key",
                "domain",
                "ed25519:1",
                "AAAA",
            ],
            "{}",
            "--key domain ed25519:1",
        ),
        (
            &["verify-event", "--room-version", "6"],
            "3",
            "expected a JSON object",
        ),
        (
            &[
                "sign-event",
                "--room-version",
                "11",
                "--server",
                "domain",
                "--key-id",
                "ed25519:1",
                "--seed",
                SPEC_SEED,
            ],
            r#"{"content": {}}"#,
            "`type` is missing",
        ),
    ];
    for (args, stdin, expected) in cases {
        let output = proto(args, stdin);
        assert_eq!(output.code, 2, "{args:?}: {}", output.stderr);
        assert!(
            output.stderr.contains(expected),
            "{args:?}: stderr {:?} does not mention {expected:?}",
            output.stderr
        );
    }
}
