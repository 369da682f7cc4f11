//! What each attack crafts and sends in one round. A round reads the attacker's honest view
//! of the room, builds the attack's events with [`Crafter`], and hands them to honest servers
//! in ordinary signed transactions, exactly as the wire carries honest ones.
//!
//! Invariants: every crafted event is listed in the round's result with how it must be
//! judged, so the run's oracle can look for it on every honest server; nothing here reads
//! the honest servers' stores.

use super::craft::{CraftError, Crafter, RoomView, unknown_event_id};
use crate::proto::pdu::{EventRef, NewEvent, Pdu};
use crate::proto::room_version::RoomVersion;
use crate::proto::wire::RawPdu;
use crate::server::Homeserver;
use serde_json::{Map, Value, json};

/// How the oracle judges a crafted event on an honest server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Judge {
    /// The protocol must stop it: accepted (in the timeline) anywhere is a failure.
    MustNotBeAccepted,
    /// Authorised when made by the power its auth events grant, which the room revoked
    /// elsewhere: accepted where the revocation was not yet known is allowed, but it must not
    /// be in any honest server's current state once the room has merged.
    MustNotStayInState,
    /// Valid traffic (spam, equivocating forks): counted, not judged.
    Valid,
}

/// One crafted event and how to judge it.
#[derive(Clone, Debug)]
pub struct Crafted {
    pub event_id: String,
    pub json: RawPdu,
    pub judge: Judge,
}

/// Who the round is aimed at.
#[derive(Clone, Debug)]
pub struct Scene {
    pub room_id: String,
    /// Honest users joined now (targets of bans, identities to spoof).
    pub victims: Vec<String>,
    /// The user the attacker speaks as.
    pub attacker_user: String,
    pub now_ms: u64,
    /// Counts rounds, for distinct content and ids.
    pub round: u64,
}

fn object(value: Value) -> Map<String, Value> {
    value.as_object().cloned().unwrap_or_default()
}

fn crafted(pdu: Pdu, judge: Judge) -> Crafted {
    Crafted {
        event_id: pdu.event_id().to_owned(),
        json: pdu.json().clone(),
        judge,
    }
}

fn message(round: u64, label: &str) -> Map<String, Value> {
    object(json!({"msgtype": "m.text", "body": format!("{label} {round}")}))
}

/// A message from `sender` drafted at the scene's time, its body naming the round.
fn draft_message(view: &RoomView, sender: &str, scene: &Scene, label: &str) -> NewEvent {
    view.draft(
        sender,
        "m.room.message",
        None,
        message(scene.round, label),
        scene.now_ms,
    )
}

fn pick(victims: &[String], round: u64) -> Option<&str> {
    (!victims.is_empty()).then(|| victims[(round as usize) % victims.len()].as_str())
}

fn no_victim() -> CraftError {
    CraftError("no honest user is joined to aim at".into())
}

/// A ban of an honest user by the attacker's user, who has no power to ban.
pub fn forge_ban(crafter: &Crafter, view: &RoomView, scene: &Scene) -> Result<Crafted, CraftError> {
    let victim = pick(&scene.victims, scene.round).ok_or_else(no_victim)?;
    let content = object(json!({"membership": "ban", "reason": "forged"}));
    let new = view.draft(
        &scene.attacker_user,
        "m.room.member",
        Some(victim),
        content,
        scene.now_ms,
    );
    Ok(crafted(
        crafter.sign(new, view.version)?,
        Judge::MustNotBeAccepted,
    ))
}

/// A ban of an honest user by the attacker's user, citing the power levels the attacker sees,
/// which may be stale (revoked on the other side of a partition).
pub fn stale_ban(crafter: &Crafter, view: &RoomView, scene: &Scene) -> Result<Crafted, CraftError> {
    let banned = forge_ban(crafter, view, scene)?;
    Ok(Crafted {
        judge: Judge::MustNotStayInState,
        ..banned
    })
}

/// A message claiming an honest user as sender, signed only by the attacker's server.
pub fn fake_origin(
    crafter: &Crafter,
    view: &RoomView,
    scene: &Scene,
    impersonated: &str,
) -> Result<Crafted, CraftError> {
    let new = draft_message(view, impersonated, scene, "spoofed");
    Ok(crafted(
        crafter.sign(new, view.version)?,
        Judge::MustNotBeAccepted,
    ))
}

/// A message whose auth events do not authorise it: alternately without the sender's
/// membership, and with another member's membership in its place.
pub fn invalid_auth_events(
    crafter: &Crafter,
    view: &RoomView,
    scene: &Scene,
) -> Result<Crafted, CraftError> {
    let mut new = draft_message(view, &scene.attacker_user, scene, "bad auth");
    let own_member = view
        .state_id("m.room.member", &scene.attacker_user)
        .ok_or_else(|| CraftError("the attacker's user is not in the room".into()))?
        .to_owned();
    new.auth_events
        .retain(|reference| reference.event_id != own_member);
    if scene.round % 2 == 1 {
        let victim = pick(&scene.victims, scene.round).ok_or_else(no_victim)?;
        let other = view
            .state_id("m.room.member", victim)
            .ok_or_else(no_victim)?;
        new.auth_events.push(EventRef::from(other));
    }
    Ok(crafted(
        crafter.sign(new, view.version)?,
        Judge::MustNotBeAccepted,
    ))
}

/// A message whose one prev event no server holds.
pub fn unknown_prev_events(
    crafter: &Crafter,
    view: &RoomView,
    scene: &Scene,
) -> Result<Crafted, CraftError> {
    let mut new = draft_message(view, &scene.attacker_user, scene, "orphan");
    let unknown = unknown_event_id(
        view.version,
        scene.now_ms ^ scene.round,
        &crafter.server_name,
    );
    new.prev_events = vec![EventRef::from(unknown)];
    Ok(crafted(
        crafter.sign(new, view.version)?,
        Judge::MustNotBeAccepted,
    ))
}

/// A valid join of a second attacker user that is never sent (the withheld auth event), and
/// a message of that user citing it. Returns (withheld join, message).
pub fn withheld_auth_events(
    crafter: &Crafter,
    view: &RoomView,
    scene: &Scene,
) -> Result<(Crafted, Crafted), CraftError> {
    let sleeper = format!("@sleeper{}:{}", scene.round, crafter.server_name);
    let join = view.draft(
        &sleeper,
        "m.room.member",
        Some(&sleeper),
        object(json!({"membership": "join"})),
        scene.now_ms,
    );
    let join = crafter.sign(join, view.version)?;
    let mut message_event = draft_message(view, &sleeper, scene, "withheld");
    message_event
        .auth_events
        .push(EventRef::from(join.event_id()));
    message_event.prev_events = vec![join.as_reference()];
    message_event.depth = join.event().depth + 1;
    let message_event = crafter.sign(message_event, view.version)?;
    Ok((
        crafted(join, Judge::MustNotBeAccepted),
        crafted(message_event, Judge::MustNotBeAccepted),
    ))
}

/// A correctly signed message padded to `bytes` bytes of content.
pub fn oversized(
    crafter: &Crafter,
    view: &RoomView,
    scene: &Scene,
    bytes: usize,
) -> Result<Crafted, CraftError> {
    let new = draft_message(view, &scene.attacker_user, scene, "oversized");
    let json = crafter.sign_oversized(new, view.version, bytes)?;
    let event_id =
        crate::proto::pdu::event_id(&json, view.version).map_err(|e| CraftError(e.to_string()))?;
    Ok(Crafted {
        event_id,
        json,
        judge: Judge::MustNotBeAccepted,
    })
}

/// `count` valid messages, each citing the one before: the body of an overfull transaction.
/// Valid one by one, they must still not be taken in a transaction over the limit.
pub fn chained_messages(
    crafter: &Crafter,
    view: &RoomView,
    scene: &Scene,
    count: usize,
    label: &str,
    judge: Judge,
) -> Result<Vec<Crafted>, CraftError> {
    let mut events = Vec::with_capacity(count);
    let mut new = draft_message(view, &scene.attacker_user, scene, label);
    for index in 0..count {
        new.content = message(scene.round * 100_000 + index as u64, label);
        let pdu = crafter.sign(new.clone(), view.version)?;
        new = NewEvent {
            prev_events: vec![pdu.as_reference()],
            depth: pdu.event().depth + 1,
            ..new
        };
        events.push(crafted(pdu, judge));
    }
    Ok(events)
}

/// `forks` versions of the attacker user's membership (different display names) with the
/// same prev events and depth: the same position in the DAG, different events.
pub fn equivocating_forks(
    crafter: &Crafter,
    view: &RoomView,
    scene: &Scene,
    forks: usize,
) -> Result<Vec<Crafted>, CraftError> {
    (0..forks)
        .map(|fork| {
            let content = object(json!({
                "membership": "join",
                "displayname": format!("fork {fork} of round {}", scene.round),
            }));
            let new = view.draft(
                &scene.attacker_user,
                "m.room.member",
                Some(&scene.attacker_user),
                content,
                scene.now_ms,
            );
            Ok(crafted(crafter.sign(new, view.version)?, Judge::Valid))
        })
        .collect()
}

/// A message from a user of a server with no member in the room. The outsider knows only the
/// room id; in room v12 that names the create event, which it cites as prev and auth event.
pub fn non_member_message(
    crafter: &Crafter,
    version: &'static RoomVersion,
    scene: &Scene,
) -> Result<Crafted, CraftError> {
    let create_id = create_event_of(version, &scene.room_id).ok_or_else(|| {
        CraftError(format!(
            "an outsider cannot name the create event of a room version {} room",
            version.id
        ))
    })?;
    let new = NewEvent {
        room_id: Some(scene.room_id.clone()),
        sender: scene.attacker_user.clone(),
        event_type: "m.room.message".into(),
        state_key: None,
        content: message(scene.round, "unsolicited"),
        prev_events: vec![EventRef::from(create_id)],
        auth_events: Vec::new(),
        depth: 2,
        origin_server_ts: scene.now_ms,
        redacts: None,
        event_id_opaque: None,
    };
    Ok(crafted(
        crafter.sign(new, version)?,
        Judge::MustNotBeAccepted,
    ))
}

/// The create event's id where the room id implies it (room v12).
pub fn create_event_of(version: &RoomVersion, room_id: &str) -> Option<String> {
    version
        .create_event_implied
        .then(|| room_id.strip_prefix('!').map(|hash| format!("${hash}")))
        .flatten()
}

/// Sends `pdus` to `destination` as one transaction signed by `attacker`; returns the HTTP
/// status, or `None` when no answer came.
pub async fn send_transaction(
    attacker: &Homeserver,
    destination: &str,
    txn_id: &str,
    pdus: Vec<RawPdu>,
    edus: usize,
    now_ms: u64,
) -> Option<u16> {
    let mut body = json!({
        "origin": attacker.name(),
        "origin_server_ts": now_ms,
        "pdus": pdus,
    });
    if edus > 0 {
        body["edus"] = Value::Array(typing_edus(attacker.name(), edus));
    }
    let uri = crate::proto::wire::paths::send_transaction_path(txn_id);
    attacker
        .raw_request(destination, "PUT", &uri, Some(&body), true)
        .await
        .ok()
        .map(|answer| answer.status)
}

/// `count` typing notifications: the EDUs of an overfull transaction.
fn typing_edus(server: &str, count: usize) -> Vec<Value> {
    (0..count)
        .map(|index| {
            json!({
                "edu_type": "m.typing",
                "content": {"room_id": "!nowhere:invalid", "user_id": format!("@t{index}:{server}"), "typing": true},
            })
        })
        .collect()
}

/// A chain of `depth` changes of the attacker user's own membership (display names), each
/// citing the one before as its membership auth event and prev event, starting from its
/// current membership: an auth chain as deep as the attacker likes, every event valid.
pub fn deep_auth_chain(
    crafter: &Crafter,
    view: &RoomView,
    scene: &Scene,
    depth: usize,
) -> Result<Vec<Pdu>, CraftError> {
    let user = &scene.attacker_user;
    let mut member = view
        .state_id("m.room.member", user)
        .ok_or_else(|| CraftError("the attacker's user is not in the room".into()))?
        .to_owned();
    let mut prev = view.extremities.clone();
    let mut chain = Vec::with_capacity(depth);
    for (link, event_depth) in (0..depth).zip(view.depth..) {
        let content = object(json!({"membership": "join", "displayname": format!("link {link}")}));
        let mut new = view.draft(user, "m.room.member", Some(user), content, scene.now_ms);
        for reference in &mut new.auth_events {
            if reference.event_id == view.state_id("m.room.member", user).unwrap_or_default() {
                *reference = EventRef::from(member.as_str());
            }
        }
        new.prev_events = prev;
        new.depth = event_depth;
        let pdu = crafter.sign(new, view.version)?;
        member = pdu.event_id().to_owned();
        prev = vec![pdu.as_reference()];
        chain.push(pdu);
    }
    Ok(chain)
}

/// A message of the attacker's user whose membership auth event and prev event are the last
/// link of `chain`.
pub fn message_on_chain(
    crafter: &Crafter,
    view: &RoomView,
    scene: &Scene,
    chain: &[Pdu],
) -> Result<Crafted, CraftError> {
    let last = chain
        .last()
        .ok_or_else(|| CraftError("an empty auth chain".into()))?;
    let user = &scene.attacker_user;
    let own_member = view
        .state_id("m.room.member", user)
        .unwrap_or_default()
        .to_owned();
    let mut new = draft_message(view, user, scene, "deep");
    for reference in &mut new.auth_events {
        if reference.event_id == own_member {
            *reference = EventRef::from(last.event_id());
        }
    }
    new.prev_events = vec![last.as_reference()];
    new.depth = last.event().depth + 1;
    Ok(crafted(
        crafter.sign(new, view.version)?,
        Judge::MustNotBeAccepted,
    ))
}
