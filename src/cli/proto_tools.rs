//! `fedlab proto ...`: the protocol core as command-line tools, JSON on stdin, JSON on stdout.
//!
//! Every tool reads one JSON value from stdin and prints canonical JSON on stdout. Bad input
//! (unparsable JSON, a bad key, an unknown room version, an event the algorithm cannot be
//! applied to) exits with 2 and a message naming what is wrong; a check that does not hold
//! (`verify-json`, `verify-event`, `content-hash --check`) prints its verdict and exits with 1.

use super::Failure;
use crate::proto::canonical_json::{self, Numbers};
use crate::proto::ids;
use crate::proto::pdu::{self, Pdu, Verification};
use crate::proto::room_version::{self, RoomVersion};
use crate::proto::signing::{self, SigningKey, VerifyingKey};
use clap::{ArgAction, Subcommand};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::io::{Read as _, Write as _};

#[derive(Debug, Subcommand)]
pub enum ProtoCommand {
    /// Prints the canonical JSON form of the JSON on stdin.
    CanonicalJson {
        /// Accept floats and integers outside [-(2^53)+1, (2^53)-1] (room versions 1-5).
        #[arg(long)]
        lenient: bool,
    },
    /// Signs the JSON object on stdin (the spec's "Signing JSON").
    ///
    /// Prints the object with the signature added under `signatures.<server>.<key id>`; other
    /// signatures are kept.
    SignJson {
        /// The signing server's name.
        #[arg(long)]
        server: String,
        /// The key id, `ed25519:<version>`.
        #[arg(long)]
        key_id: String,
        /// The 32-byte ed25519 seed in unpadded base64.
        #[arg(long)]
        seed: String,
        /// Accept floats and integers outside the canonical JSON range (room versions 1-5).
        #[arg(long)]
        lenient: bool,
    },
    /// Checks one signature on the JSON object on stdin; exits 1 if it does not hold.
    ///
    /// Checks the signature of `--server` with `--key-id`. Prints `{"key_id", "server",
    /// "valid"}`; exits 0 if it verifies, 1 if it is missing or wrong.
    VerifyJson {
        #[arg(long)]
        server: String,
        #[arg(long)]
        key_id: String,
        /// The ed25519 public key in unpadded base64.
        #[arg(long)]
        public_key: String,
        /// Accept floats and integers outside the canonical JSON range (room versions 1-5).
        #[arg(long)]
        lenient: bool,
    },
    /// Prints the event id and reference hash of the event on stdin.
    ///
    /// Prints `{"event_id", "reference_hash"}`: the reference hash in the version's alphabet, and
    /// the event id it gives (rooms v1/v2 read the event's own `event_id`). For an
    /// `m.room.create` event of room version 12, also the `room_id` it makes. The event needs a
    /// string `type`; no other format check is made.
    EventId {
        /// The room version, 1 to 12.
        #[arg(long, value_parser = parse_room_version)]
        room_version: &'static RoomVersion,
    },
    /// Sets (or with --check, checks) the content hash of the event on stdin.
    ///
    /// The content hash is the sha256 of the event's canonical JSON without `unsigned`,
    /// `signatures` and `hashes`. Prints the event with `hashes.sha256` set to it (other hash
    /// algorithms kept), ready to be signed. With `--check`, prints `{"content_hash", "matches"}`
    /// instead and exits 1 if the event's own `hashes.sha256` differs.
    ContentHash {
        /// The room version picks the canonical JSON number rules (strict from v6); without
        /// it, numbers are strict.
        #[arg(long, value_parser = parse_room_version)]
        room_version: Option<&'static RoomVersion>,
        /// Compare with the event's `hashes.sha256` instead of setting it.
        #[arg(long)]
        check: bool,
    },
    /// Prints the event on stdin redacted by the room version's redaction algorithm.
    Redact {
        /// The room version, 1 to 12.
        #[arg(long, value_parser = parse_room_version)]
        room_version: &'static RoomVersion,
    },
    /// Hashes and signs the event on stdin as an outgoing event.
    ///
    /// Sets `hashes.sha256`, signs the redacted form and adds the signature to the full event,
    /// which it prints. Pipe the result into `event-id` for its id.
    SignEvent {
        /// The room version, 1 to 12.
        #[arg(long, value_parser = parse_room_version)]
        room_version: &'static RoomVersion,
        #[arg(long)]
        server: String,
        /// The key id, `ed25519:<version>`.
        #[arg(long)]
        key_id: String,
        /// The 32-byte ed25519 seed in unpadded base64.
        #[arg(long)]
        seed: String,
    },
    /// Checks a received PDU: format, signatures, content hash; exits 1 if any fails.
    ///
    /// As a server does on receipt: the event format of the room version, then the signatures
    /// the spec requires (the sender's server; in rooms v1/v2 also the event id's server), then
    /// the content hash. Prints `{"event_id", "outcome", ...}` with outcome `valid` (exit 0),
    /// `hash_mismatch` with the `redacted` event to keep instead, `bad_signature` (to drop) or
    /// `invalid_format` (to drop), each with a `reason` (exit 1).
    VerifyEvent {
        /// The room version, 1 to 12.
        #[arg(long, value_parser = parse_room_version)]
        room_version: &'static RoomVersion,
        /// A known public key: server name, key id, unpadded base64 key. Repeat for more.
        #[arg(long = "key", num_args = 3, value_names = ["SERVER", "KEY_ID", "PUBLIC_KEY"], action = ArgAction::Append)]
        keys: Vec<String>,
    },
    /// Resolves state sets, or computes the state after an event, from the JSON on stdin.
    #[command(long_about = super::proto_resolve::LONG_ABOUT)]
    Resolve(super::proto_resolve::ResolveArgs),
}

pub fn run(command: ProtoCommand) -> Result<(), Failure> {
    match command {
        ProtoCommand::Resolve(args) => super::proto_resolve::run(args),
        ProtoCommand::CanonicalJson { lenient } => {
            let text = read_stdin()?;
            let canonical = canonical_json::canonicalize_str(&text, numbers(lenient))
                .map_err(|e| Failure::bad_input(format!("stdin: {e}")))?;
            print_line(&canonical)
        }
        ProtoCommand::SignJson {
            server,
            key_id,
            seed,
            lenient,
        } => sign_json(&server, &key_id, &seed, numbers(lenient)),
        ProtoCommand::VerifyJson {
            server,
            key_id,
            public_key,
            lenient,
        } => verify_json(&server, &key_id, &public_key, numbers(lenient)),
        ProtoCommand::EventId { room_version } => event_id(room_version),
        ProtoCommand::ContentHash {
            room_version,
            check,
        } => content_hash(room_version, check),
        ProtoCommand::Redact { room_version } => {
            let event = read_json_object()?;
            let redacted = pdu::redact(&event, room_version).map_err(stdin_error)?;
            print_json(&Value::Object(redacted))
        }
        ProtoCommand::SignEvent {
            room_version,
            server,
            key_id,
            seed,
        } => sign_event(room_version, &server, &key_id, &seed),
        ProtoCommand::VerifyEvent { room_version, keys } => verify_event(room_version, &keys),
    }
}

fn numbers(lenient: bool) -> Numbers {
    if lenient {
        Numbers::Lenient
    } else {
        Numbers::Strict
    }
}

fn parse_room_version(id: &str) -> Result<&'static RoomVersion, String> {
    room_version::room_version(id).map_err(|e| e.to_string())
}

fn signing_key(key_id: &str, seed: &str) -> Result<SigningKey, Failure> {
    SigningKey::from_seed_base64(key_id, seed)
        .map_err(|e| Failure::bad_input(format!("--key-id/--seed: {e}")))
}

fn check_server_name(server: &str) -> Result<(), Failure> {
    ids::parse_server_name(server)
        .map(|_| ())
        .map_err(|e| Failure::bad_input(format!("--server: {e}")))
}

fn stdin_error(error: impl std::fmt::Display) -> Failure {
    Failure::bad_input(format!("stdin: {error}"))
}

fn sign_json(server: &str, key_id: &str, seed: &str, numbers: Numbers) -> Result<(), Failure> {
    check_server_name(server)?;
    let key = signing_key(key_id, seed)?;
    let mut object = read_json_object()?;
    signing::sign_json(&mut object, server, &key, numbers).map_err(stdin_error)?;
    print_json(&Value::Object(object))
}

fn verify_json(
    server: &str,
    key_id: &str,
    public_key: &str,
    numbers: Numbers,
) -> Result<(), Failure> {
    signing::check_key_id(key_id).map_err(|e| Failure::bad_input(format!("--key-id: {e}")))?;
    let key = VerifyingKey::from_base64(public_key)
        .map_err(|e| Failure::bad_input(format!("--public-key: {e}")))?;
    let object = read_json_object()?;
    let result = signing::verify_json(&object, server, key_id, &key, numbers);
    let verdict = |valid: bool| json!({"server": server, "key_id": key_id, "valid": valid});
    match result {
        Ok(()) => print_json(&verdict(true)),
        Err(
            error @ (signing::SigningError::MissingSignature { .. }
            | signing::SigningError::InvalidSignature { .. }),
        ) => {
            print_json(&verdict(false))?;
            Err(Failure::failed(error.to_string()))
        }
        Err(error) => Err(stdin_error(error)),
    }
}

fn event_id(room_version: &'static RoomVersion) -> Result<(), Failure> {
    let event = read_json_object()?;
    let event_id = pdu::event_id(&event, room_version).map_err(stdin_error)?;
    let reference_hash = pdu::reference_hash_base64(&event, room_version).map_err(stdin_error)?;
    let mut output = json!({"event_id": event_id, "reference_hash": reference_hash});
    let is_create = event.get("type").and_then(Value::as_str) == Some("m.room.create");
    if room_version.room_id_from_create_event && is_create {
        output["room_id"] = json!(ids::room_id_from_create_event_id(&event_id));
    }
    print_json(&output)
}

fn content_hash(room_version: Option<&'static RoomVersion>, check: bool) -> Result<(), Failure> {
    let numbers = room_version.map_or(Numbers::Strict, RoomVersion::numbers);
    let mut event = read_json_object()?;
    if !check {
        pdu::add_content_hash(&mut event, numbers).map_err(stdin_error)?;
        return print_json(&Value::Object(event));
    }
    let hash = pdu::content_hash(&event, numbers).map_err(stdin_error)?;
    let matches = pdu::content_hash_matches(&event, numbers).map_err(stdin_error)?;
    let hash = crate::proto::base64::encode_standard(&hash);
    print_json(&json!({"content_hash": hash, "matches": matches}))?;
    if matches {
        Ok(())
    } else {
        Err(Failure::failed(format!(
            "content hash mismatch: the event's hashes.sha256 is not {hash}"
        )))
    }
}

fn sign_event(
    room_version: &'static RoomVersion,
    server: &str,
    key_id: &str,
    seed: &str,
) -> Result<(), Failure> {
    check_server_name(server)?;
    let key = signing_key(key_id, seed)?;
    let mut event = read_json_object()?;
    pdu::hash_and_sign_event(&mut event, room_version, server, &key).map_err(stdin_error)?;
    print_json(&Value::Object(event))
}

type KeyMap = BTreeMap<String, BTreeMap<String, VerifyingKey>>;

fn key_map(triples: &[String]) -> Result<KeyMap, Failure> {
    let mut keys = KeyMap::new();
    for triple in triples.chunks(3) {
        let [server, key_id, public_key] = triple else {
            return Err(Failure::bad_input("--key needs SERVER KEY_ID PUBLIC_KEY"));
        };
        check_server_name(server)
            .map_err(|f| Failure::bad_input(format!("--key {}", f.message)))?;
        signing::check_key_id(key_id).map_err(|e| Failure::bad_input(format!("--key: {e}")))?;
        let key = VerifyingKey::from_base64(public_key)
            .map_err(|e| Failure::bad_input(format!("--key {server} {key_id}: {e}")))?;
        keys.entry(server.clone())
            .or_default()
            .insert(key_id.clone(), key);
    }
    Ok(keys)
}

fn verify_event(room_version: &'static RoomVersion, key_triples: &[String]) -> Result<(), Failure> {
    let keys = key_map(key_triples)?;
    let event = read_json_object()?;
    let pdu = match Pdu::from_json(event, room_version) {
        Ok(pdu) => pdu,
        Err(error) => {
            print_json(
                &json!({"event_id": error.event_id, "outcome": "invalid_format", "reason": error.problem.to_string()}),
            )?;
            return Err(Failure::failed(format!("invalid PDU: {error}")));
        }
    };
    let event_id = pdu.event_id().to_owned();
    match pdu::verify_pdu(&pdu, &keys) {
        Verification::Valid => print_json(&json!({"event_id": event_id, "outcome": "valid"})),
        Verification::HashMismatch { redacted } => {
            let reason = "content hash mismatch: keep the redacted event";
            print_json(
                &json!({"event_id": event_id, "outcome": "hash_mismatch", "reason": reason, "redacted": redacted.json()}),
            )?;
            Err(Failure::failed(format!("event {event_id}: {reason}")))
        }
        Verification::BadSignature(failure) => {
            print_json(
                &json!({"event_id": event_id, "outcome": "bad_signature", "reason": failure.to_string()}),
            )?;
            Err(Failure::failed(format!(
                "event {event_id}: {failure}; drop it"
            )))
        }
    }
}

/// Reads all of stdin as UTF-8.
pub fn read_stdin() -> Result<String, Failure> {
    let mut text = String::new();
    std::io::stdin()
        .read_to_string(&mut text)
        .map_err(|e| Failure::bad_input(format!("stdin: cannot read UTF-8 text: {e}")))?;
    Ok(text)
}

/// Reads one JSON object from stdin.
fn read_json_object() -> Result<Map<String, Value>, Failure> {
    let text = read_stdin()?;
    let value: Value = serde_json::from_str(&text)
        .map_err(|e| Failure::bad_input(format!("stdin: not valid JSON: {e}")))?;
    match value {
        Value::Object(object) => Ok(object),
        other => Err(Failure::bad_input(format!(
            "stdin: expected a JSON object, got {}",
            json_type(&other)
        ))),
    }
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Prints canonical JSON and a newline. Lenient numbers: the input was checked already.
fn print_json(value: &Value) -> Result<(), Failure> {
    let text = canonical_json::to_canonical_string(value, Numbers::Lenient)
        .map_err(|e| Failure::bad_input(format!("output: {e}")))?;
    print_line(&text)
}

/// Writes a line to stdout; a closed stdout is reported, not a panic.
fn print_line(text: &str) -> Result<(), Failure> {
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{text}")
        .and_then(|()| stdout.flush())
        .map_err(|e| Failure::bad_input(format!("stdout: cannot write: {e}")))
}
