//! Matrix identifiers: server names, user ids, room ids and event ids, checked against the
//! grammar of the spec's appendix "Identifier Grammar" and the room version rules.
//!
//! Parsing borrows from the input: each `parse_*` function returns a small view of the parts
//! (`localpart`, `server_name`, ...) or an [`IdError`] that names the kind of id, the id itself
//! and what is wrong with it. Nothing here allocates on the success path.
//!
//! Invariants: every id accepted here is at most [`ID_BYTES_MAX`] bytes long and free of NUL;
//! a server name accepted here matches the spec's `server_name` grammar, with IPv4 octets at
//! most 255 and ports at most 65535; a hash-shaped id (event ids of room v3+, room ids of room
//! v12) is exactly the canonical unpadded base64 of 32 bytes in the alphabet its version uses.

use crate::proto::base64::{self, Alphabet};
use crate::proto::room_version::{EventIdFormat, RoomVersion};
use std::net::{Ipv4Addr, Ipv6Addr};

/// The longest user id, room id or event id, in bytes, sigil and server name included.
pub const ID_BYTES_MAX: usize = 255;

/// The longest DNS name a server name may carry (`dns-name = 1*255dns-char`).
pub const DNS_NAME_BYTES_MAX: usize = 255;

/// The longest IPv6 literal between the brackets (`IPv6address = 2*45IPv6char`).
const IPV6_CHARS_MAX: usize = 45;

/// Length of a sha256 hash in unpadded base64.
const HASH_BASE64_CHARS: usize = 43;

/// How long an id may be when quoted in an error message; longer ones are shortened.
const SHOWN_CHARS_MAX: usize = 80;

/// Which kind of identifier an error is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdKind {
    ServerName,
    UserId,
    RoomId,
    EventId,
}

impl std::fmt::Display for IdKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::ServerName => "server name",
            Self::UserId => "user id",
            Self::RoomId => "room id",
            Self::EventId => "event id",
        })
    }
}

/// What is wrong with an identifier.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum IdProblem {
    #[error("is empty")]
    Empty,
    #[error("must start with {0:?}")]
    MissingSigil(char),
    #[error("is {bytes} bytes long; at most {max} are allowed")]
    TooLong { bytes: usize, max: usize },
    #[error("contains a NUL character")]
    ContainsNul,
    #[error("has no \":\" followed by a server name")]
    MissingServerName,
    #[error("localpart is empty")]
    EmptyLocalpart,
    #[error("localpart contains {0:?}; only a-z, 0-9 and . _ = - / + are allowed")]
    BadLocalpartChar(char),
    #[error("hostname is empty")]
    EmptyHostname,
    #[error("hostname contains {0:?}; only letters, digits, '-' and '.' are allowed")]
    BadHostnameChar(char),
    #[error("hostname is {0} bytes long; at most 255 are allowed")]
    HostnameTooLong(usize),
    #[error("IPv6 literal {0:?} is not a valid IPv6 address")]
    BadIpv6(String),
    #[error("port {0:?} is not a number from 0 to 65535 of at most 5 digits")]
    BadPort(String),
    #[error(
        "is not {sigil:?} followed by the 43-character unpadded {alphabet} base64 of a sha256 hash, as room version {room_version} requires"
    )]
    NotAHash {
        sigil: char,
        alphabet: &'static str,
        room_version: &'static str,
    },
}

/// An identifier that is not valid, with the id (shortened if very long) and the reason.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{kind} {id:?} {problem}")]
pub struct IdError {
    pub kind: IdKind,
    pub id: String,
    pub problem: IdProblem,
}

impl IdError {
    fn new(kind: IdKind, id: &str, problem: IdProblem) -> Self {
        Self {
            kind,
            id: shorten(id),
            problem,
        }
    }
}

fn shorten(id: &str) -> String {
    if id.chars().count() <= SHOWN_CHARS_MAX {
        return id.to_owned();
    }
    let mut shown: String = id.chars().take(SHOWN_CHARS_MAX).collect();
    shown.push('…');
    shown
}

/// The host part of a server name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Host<'a> {
    Ipv4(Ipv4Addr),
    /// An IPv6 literal; the text is what stood between the brackets.
    Ipv6(Ipv6Addr, &'a str),
    Dns(&'a str),
}

/// A server name split into host and optional port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServerName<'a> {
    pub host: Host<'a>,
    pub port: Option<u16>,
}

/// Which localparts a user id may have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UserIdGrammar {
    /// The current grammar: `a-z`, `0-9`, `.`, `_`, `=`, `-`, `/`, `+`, at least one of them.
    /// For ids this server creates.
    Strict,
    /// The historical grammar the spec requires servers to still accept over federation: any
    /// characters except `:` and NUL, the empty localpart included.
    Historical,
}

/// A user id `@localpart:server_name`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UserId<'a> {
    pub localpart: &'a str,
    pub server_name: &'a str,
}

/// A room id: `!opaque:server_name` before room v12, `!<hash>` from v12 on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RoomId<'a> {
    pub opaque: &'a str,
    pub server_name: Option<&'a str>,
}

/// An event id: `$opaque:server_name` in room v1/v2, `$<hash>` from v3 on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EventId<'a> {
    pub opaque: &'a str,
    pub server_name: Option<&'a str>,
}

/// Parses a server name: `hostname [":" port]`, where the hostname is a dotted-quad IPv4
/// literal, a bracketed IPv6 literal or a DNS name of letters, digits, `-` and `.`.
pub fn parse_server_name(text: &str) -> Result<ServerName<'_>, IdError> {
    parse_server_name_as(text, IdKind::ServerName, text)
}

/// Parses `text` as a server name, reporting errors against the id `whole` of kind `kind`.
fn parse_server_name_as<'a>(
    text: &'a str,
    kind: IdKind,
    whole: &str,
) -> Result<ServerName<'a>, IdError> {
    let error = |problem| IdError::new(kind, whole, problem);
    if text.is_empty() {
        return Err(error(IdProblem::EmptyHostname));
    }
    let (host, port_text) = if let Some(rest) = text.strip_prefix('[') {
        let (literal, after) = rest
            .split_once(']')
            .ok_or_else(|| error(IdProblem::BadIpv6(rest.to_owned())))?;
        let host = parse_ipv6(literal).ok_or_else(|| error(IdProblem::BadIpv6(literal.into())))?;
        let port_text = match after {
            "" => None,
            _ => Some(
                after
                    .strip_prefix(':')
                    .ok_or_else(|| error(IdProblem::BadPort(after.to_owned())))?,
            ),
        };
        (host, port_text)
    } else {
        let (hostname, port_text) = match text.split_once(':') {
            Some((hostname, port)) => (hostname, Some(port)),
            None => (text, None),
        };
        (parse_hostname(hostname).map_err(error)?, port_text)
    };
    let port = port_text
        .map(|port| parse_port(port).ok_or_else(|| error(IdProblem::BadPort(port.to_owned()))))
        .transpose()?;
    Ok(ServerName { host, port })
}

fn parse_ipv6(literal: &str) -> Option<Host<'_>> {
    let chars_ok = (2..=IPV6_CHARS_MAX).contains(&literal.len())
        && literal
            .bytes()
            .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.');
    if !chars_ok {
        return None;
    }
    literal
        .parse::<Ipv6Addr>()
        .ok()
        .map(|address| Host::Ipv6(address, literal))
}

fn parse_hostname(hostname: &str) -> Result<Host<'_>, IdProblem> {
    if hostname.is_empty() {
        return Err(IdProblem::EmptyHostname);
    }
    if let Some(bad) = hostname
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '.'))
    {
        return Err(IdProblem::BadHostnameChar(bad));
    }
    if let Some(address) = parse_ipv4(hostname) {
        return Ok(Host::Ipv4(address));
    }
    // Anything else made of these characters is a DNS name by the grammar, even `999.1.1.1`.
    if hostname.len() > DNS_NAME_BYTES_MAX {
        return Err(IdProblem::HostnameTooLong(hostname.len()));
    }
    Ok(Host::Dns(hostname))
}

/// `1*3DIGIT "." 1*3DIGIT "." 1*3DIGIT "." 1*3DIGIT` with every number at most 255. Leading
/// zeros are allowed by the grammar, so `std`'s stricter parser is not used.
fn parse_ipv4(text: &str) -> Option<Ipv4Addr> {
    let mut octets = [0u8; 4];
    let mut parts = text.split('.');
    for octet in &mut octets {
        let part = parts.next()?;
        if part.is_empty() || part.len() > 3 || !part.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        *octet = part.parse::<u16>().ok()?.try_into().ok()?;
    }
    parts.next().is_none().then(|| Ipv4Addr::from(octets))
}

fn parse_port(text: &str) -> Option<u16> {
    let digits_ok = (1..=5).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_digit());
    if !digits_ok {
        return None;
    }
    text.parse::<u16>().ok()
}

/// Checks the parts every sigilled id shares: not empty, the sigil, the byte limit, no NUL.
fn check_common(text: &str, kind: IdKind, sigil: char) -> Result<&str, IdError> {
    let error = |problem| IdError::new(kind, text, problem);
    if text.is_empty() {
        return Err(error(IdProblem::Empty));
    }
    let rest = text
        .strip_prefix(sigil)
        .ok_or_else(|| error(IdProblem::MissingSigil(sigil)))?;
    if text.len() > ID_BYTES_MAX {
        return Err(error(IdProblem::TooLong {
            bytes: text.len(),
            max: ID_BYTES_MAX,
        }));
    }
    if text.contains('\0') {
        return Err(error(IdProblem::ContainsNul));
    }
    Ok(rest)
}

/// Splits `opaque:server_name` at the first colon and checks the server name.
fn split_server_name<'a>(
    rest: &'a str,
    kind: IdKind,
    whole: &str,
) -> Result<(&'a str, &'a str), IdError> {
    let (opaque, server_name) = rest
        .split_once(':')
        .ok_or_else(|| IdError::new(kind, whole, IdProblem::MissingServerName))?;
    parse_server_name_as(server_name, kind, whole)?;
    Ok((opaque, server_name))
}

/// Parses a user id `@localpart:server_name` with the given localpart grammar.
pub fn parse_user_id(text: &str, grammar: UserIdGrammar) -> Result<UserId<'_>, IdError> {
    let kind = IdKind::UserId;
    let rest = check_common(text, kind, '@')?;
    let (localpart, server_name) = split_server_name(rest, kind, text)?;
    if grammar == UserIdGrammar::Strict {
        if localpart.is_empty() {
            return Err(IdError::new(kind, text, IdProblem::EmptyLocalpart));
        }
        if let Some(bad) = localpart.chars().find(|c| !is_user_id_char(*c)) {
            return Err(IdError::new(kind, text, IdProblem::BadLocalpartChar(bad)));
        }
    }
    Ok(UserId {
        localpart,
        server_name,
    })
}

fn is_user_id_char(c: char) -> bool {
    c.is_ascii_digit() || c.is_ascii_lowercase() || matches!(c, '-' | '.' | '=' | '_' | '/' | '+')
}

/// Whether a user id's localpart follows the current (non-historical) grammar.
pub fn is_compliant_localpart(localpart: &str) -> bool {
    !localpart.is_empty() && localpart.chars().all(is_user_id_char)
}

/// Parses a room id in the format `room_version` uses.
pub fn parse_room_id<'a>(text: &'a str, room_version: &RoomVersion) -> Result<RoomId<'a>, IdError> {
    let kind = IdKind::RoomId;
    let rest = check_common(text, kind, '!')?;
    if room_version.room_id_from_create_event {
        check_hash(rest, Alphabet::UrlSafe).ok_or_else(|| {
            IdError::new(kind, text, not_a_hash('!', Alphabet::UrlSafe, room_version))
        })?;
        return Ok(RoomId {
            opaque: rest,
            server_name: None,
        });
    }
    let (opaque, server_name) = split_server_name(rest, kind, text)?;
    Ok(RoomId {
        opaque,
        server_name: Some(server_name),
    })
}

/// Parses an event id in the format `room_version` uses.
pub fn parse_event_id<'a>(
    text: &'a str,
    room_version: &RoomVersion,
) -> Result<EventId<'a>, IdError> {
    let kind = IdKind::EventId;
    let rest = check_common(text, kind, '$')?;
    let alphabet = match room_version.event_id_format {
        EventIdFormat::ServerMade => {
            let (opaque, server_name) = split_server_name(rest, kind, text)?;
            return Ok(EventId {
                opaque,
                server_name: Some(server_name),
            });
        }
        EventIdFormat::ReferenceHashStandard => Alphabet::Standard,
        EventIdFormat::ReferenceHashUrlSafe => Alphabet::UrlSafe,
    };
    check_hash(rest, alphabet)
        .ok_or_else(|| IdError::new(kind, text, not_a_hash('$', alphabet, room_version)))?;
    Ok(EventId {
        opaque: rest,
        server_name: None,
    })
}

fn not_a_hash(sigil: char, alphabet: Alphabet, room_version: &RoomVersion) -> IdProblem {
    IdProblem::NotAHash {
        sigil,
        alphabet: match alphabet {
            Alphabet::Standard => "standard",
            Alphabet::UrlSafe => "URL-safe",
        },
        room_version: room_version.id,
    }
}

/// Whether `text` is exactly the unpadded encoding of a 32-byte hash, in canonical form (no
/// stray trailing bits), so that one hash has exactly one id.
fn check_hash(text: &str, alphabet: Alphabet) -> Option<()> {
    if text.len() != HASH_BASE64_CHARS {
        return None;
    }
    let bytes = base64::decode(text, alphabet).ok()?;
    (bytes.len() == 32 && base64::encode(&bytes, alphabet) == text).then_some(())
}

/// The room id of a room v12 room: the create event's id with the sigil `!` instead of `$`.
pub fn room_id_from_create_event_id(create_event_id: &str) -> String {
    let hash = create_event_id.strip_prefix('$').unwrap_or(create_event_id);
    format!("!{hash}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::room_version::room_version;

    fn version(id: &str) -> &'static RoomVersion {
        room_version(id).unwrap()
    }

    #[test]
    fn spec_server_name_examples_are_accepted() {
        let parse = |text| parse_server_name(text).unwrap();
        assert_eq!(parse("matrix.org").host, Host::Dns("matrix.org"));
        assert_eq!(parse("matrix.org:8888").port, Some(8888));
        assert_eq!(parse("1.2.3.4").host, Host::Ipv4(Ipv4Addr::new(1, 2, 3, 4)));
        assert_eq!(parse("1.2.3.4:1234").port, Some(1234));
        assert!(matches!(
            parse("[1234:5678::abcd]").host,
            Host::Ipv6(_, "1234:5678::abcd")
        ));
        assert_eq!(parse("[1234:5678::abcd]:5678").port, Some(5678));
        assert!(matches!(parse("[::ffff:1.2.3.4]").host, Host::Ipv6(..)));
        assert_eq!(
            parse("001.002.003.004").host,
            Host::Ipv4(Ipv4Addr::new(1, 2, 3, 4))
        );
        // Not an IPv4 literal, but a DNS name by the grammar.
        assert_eq!(parse("999.1.1.1").host, Host::Dns("999.1.1.1"));
        assert_eq!(parse("localhost:0").port, Some(0));
    }

    #[test]
    fn bad_server_names_say_what_is_wrong() {
        let problem = |text| parse_server_name(text).unwrap_err().problem;
        assert_eq!(problem(""), IdProblem::EmptyHostname);
        assert_eq!(problem(":80"), IdProblem::EmptyHostname);
        assert_eq!(problem("exa mple.org"), IdProblem::BadHostnameChar(' '));
        assert_eq!(problem("example.org:"), IdProblem::BadPort(String::new()));
        assert_eq!(
            problem("example.org:65536"),
            IdProblem::BadPort("65536".into())
        );
        assert_eq!(
            problem("example.org:123456"),
            IdProblem::BadPort("123456".into())
        );
        assert_eq!(
            problem("example.org:80:80"),
            IdProblem::BadPort("80:80".into())
        );
        assert_eq!(
            problem("[1234::abcd"),
            IdProblem::BadIpv6("1234::abcd".into())
        );
        assert_eq!(problem("[1:2:3]"), IdProblem::BadIpv6("1:2:3".into()));
        assert_eq!(problem("[::1]x"), IdProblem::BadPort("x".into()));
        assert_eq!(
            problem("[fe80::1%eth0]"),
            IdProblem::BadIpv6("fe80::1%eth0".into())
        );
        assert_eq!(problem(&"a".repeat(256)), IdProblem::HostnameTooLong(256));
        assert!(parse_server_name(&"a".repeat(255)).is_ok());
        let message = parse_server_name("bad_name").unwrap_err().to_string();
        assert_eq!(
            message,
            "server name \"bad_name\" hostname contains '_'; only letters, digits, '-' and '.' are allowed"
        );
    }

    #[test]
    fn user_ids_follow_the_strict_or_historical_grammar() {
        let strict = |text| parse_user_id(text, UserIdGrammar::Strict);
        let historical = |text| parse_user_id(text, UserIdGrammar::Historical);
        assert_eq!(
            strict("@alice.b=c/d+e_f-g:example.org:8448").unwrap(),
            UserId {
                localpart: "alice.b=c/d+e_f-g",
                server_name: "example.org:8448"
            }
        );
        assert_eq!(
            strict("@Alice:example.org").unwrap_err().problem,
            IdProblem::BadLocalpartChar('A')
        );
        assert_eq!(historical("@Alice:example.org").unwrap().localpart, "Alice");
        assert_eq!(
            historical("@日本 !:example.org").unwrap().localpart,
            "日本 !"
        );
        assert_eq!(historical("@:example.org").unwrap().localpart, "");
        assert_eq!(
            strict("@:example.org").unwrap_err().problem,
            IdProblem::EmptyLocalpart
        );
        assert_eq!(
            historical("@a\0:example.org").unwrap_err().problem,
            IdProblem::ContainsNul
        );
        assert_eq!(
            historical("alice:example.org").unwrap_err().problem,
            IdProblem::MissingSigil('@')
        );
        assert_eq!(
            historical("@alice").unwrap_err().problem,
            IdProblem::MissingServerName
        );
        assert_eq!(historical("").unwrap_err().problem, IdProblem::Empty);
        assert_eq!(
            historical("@alice:exa mple").unwrap_err().problem,
            IdProblem::BadHostnameChar(' ')
        );
        assert!(is_compliant_localpart("alice"));
        assert!(!is_compliant_localpart("Alice"));
    }

    #[test]
    fn ids_are_at_most_255_bytes() {
        let at_limit = format!("@{}:example.org", "a".repeat(255 - 13));
        assert_eq!(at_limit.len(), 255);
        assert!(parse_user_id(&at_limit, UserIdGrammar::Strict).is_ok());
        let over = format!("@{}:example.org", "é".repeat(122));
        assert_eq!(over.len(), 257);
        assert_eq!(
            parse_user_id(&over, UserIdGrammar::Historical)
                .unwrap_err()
                .problem,
            IdProblem::TooLong {
                bytes: 257,
                max: 255
            }
        );
        let long_room = format!("!{}:example.org", "x".repeat(250));
        let error = parse_room_id(&long_room, version("11")).unwrap_err();
        assert_eq!(error.kind, IdKind::RoomId);
        assert!(error.id.ends_with('…') && error.id.chars().count() == SHOWN_CHARS_MAX + 1);
    }

    #[test]
    fn room_ids_per_version() {
        let hash = "Nhcu5BS-UMnFX7hBVfVSoXiD7OgH6iRT-xyIuqDnpYQ";
        for v in ["1", "6", "11"] {
            let parsed = parse_room_id("!abc:example.org", version(v)).unwrap();
            assert_eq!(parsed.server_name, Some("example.org"));
            assert_eq!(
                parse_room_id(&format!("!{hash}"), version(v))
                    .unwrap_err()
                    .problem,
                IdProblem::MissingServerName
            );
        }
        let v12 = version("12");
        assert_eq!(
            parse_room_id(&format!("!{hash}"), v12).unwrap().opaque,
            hash
        );
        for bad in [
            "!abc:example.org",
            "!Nhcu5BS+UMnFX7hBVfVSoXiD7OgH6iRT-xyIuqDnpYQ",
            "!short",
        ] {
            assert!(matches!(
                parse_room_id(bad, v12).unwrap_err().problem,
                IdProblem::NotAHash { sigil: '!', .. }
            ));
        }
        // A stray trailing bit gives a different text for the same bytes: not canonical.
        assert!(parse_room_id("!Nhcu5BS-UMnFX7hBVfVSoXiD7OgH6iRT-xyIuqDnpYR", v12).is_err());
        assert_eq!(
            room_id_from_create_event_id(&format!("${hash}")),
            format!("!{hash}")
        );
    }

    #[test]
    fn event_ids_per_version() {
        let standard = "$acR1l0raoZnm60CBwAVgqbZqoO/mYU81xysh1u7XcJk";
        let url_safe = "$Rqnc-F-dvnEYJTyHq_iKxU2bZ1CI92-kuZq3a5lr5Zg";
        for v in ["1", "2"] {
            let parsed =
                parse_event_id("$a4ecee13e2accdadf56c1025:example.com", version(v)).unwrap();
            assert_eq!(parsed.server_name, Some("example.com"));
            assert_eq!(
                parse_event_id(url_safe, version(v)).unwrap_err().problem,
                IdProblem::MissingServerName
            );
        }
        assert!(parse_event_id(standard, version("3")).is_ok());
        assert!(parse_event_id(url_safe, version("3")).is_err());
        for v in ["4", "10", "12"] {
            assert_eq!(
                parse_event_id(url_safe, version(v)).unwrap().server_name,
                None
            );
            let error = parse_event_id(standard, version(v)).unwrap_err();
            assert!(error.to_string().contains("URL-safe"), "{error}");
            assert!(parse_event_id("$abc:example.org", version(v)).is_err());
        }
        assert_eq!(
            parse_event_id("abc", version("4")).unwrap_err().problem,
            IdProblem::MissingSigil('$')
        );
    }
}
