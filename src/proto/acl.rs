//! Server access control lists: may a server take part in a room whose state holds an
//! `m.room.server_acl` event?
//!
//! The spec's order (client-server API, `m.room.server_acl`): no ACL event allows; an IP
//! literal is denied when `allow_ip_literals` is `false`; a match in `deny` denies; a match in
//! `allow` allows; anything else is denied. Patterns are case-insensitive globs (`*` is zero or
//! more characters, `?` exactly one, per the appendix "Glob-style matching") compared with the
//! server name without its port.
//!
//! Lenient reading of content a room member wrote, as the spec asks where it says anything:
//! `allow_ip_literals` that is missing or not a boolean counts as `true`; `allow` or `deny`
//! that is missing or not an array counts as empty (so a redacted ACL, whose content is empty,
//! denies every server); entries that are not strings match nothing. A server name that is not
//! valid by the spec's grammar is denied whenever an ACL exists: it cannot be a real server.
//!
//! Invariants: pure; matching costs at most (pattern length × name length) steps whatever the
//! patterns, so a hostile ACL cannot stall a server.

use crate::proto::ids::{self, Host};
use serde_json::{Map, Value};

/// The state event type of a room's server ACL (state key `""`).
pub const SERVER_ACL_EVENT_TYPE: &str = "m.room.server_acl";

/// What an ACL says about one server, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AclDecision {
    /// The room has no ACL: every server may take part.
    NoAcl,
    /// The server's name matched this `allow` pattern and no `deny` pattern.
    Allowed { pattern: String },
    /// The server's name is an IP literal and the ACL sets `allow_ip_literals` to `false`.
    DeniedIpLiteral,
    /// The server's name matched this `deny` pattern.
    DeniedBy { pattern: String },
    /// The server's name matched no `allow` pattern.
    NotAllowed,
    /// The server name is not valid by the spec's grammar.
    InvalidServerName,
}

impl AclDecision {
    pub fn is_allowed(&self) -> bool {
        matches!(self, Self::NoAcl | Self::Allowed { .. })
    }
}

impl std::fmt::Display for AclDecision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NoAcl => f.write_str("the room has no server ACL"),
            Self::Allowed { pattern } => write!(f, "allowed by the server ACL pattern {pattern:?}"),
            Self::DeniedIpLiteral => f.write_str("an IP literal, which the server ACL denies"),
            Self::DeniedBy { pattern } => write!(f, "denied by the server ACL pattern {pattern:?}"),
            Self::NotAllowed => f.write_str("matched by no `allow` pattern of the server ACL"),
            Self::InvalidServerName => f.write_str("not a valid server name"),
        }
    }
}

/// Applies the content of the room's `m.room.server_acl` event (`None` when the room state has
/// none) to `server_name`, which may carry a port.
pub fn check_server_acl(
    acl_content: Option<&Map<String, Value>>,
    server_name: &str,
) -> AclDecision {
    let Some(content) = acl_content else {
        return AclDecision::NoAcl;
    };
    let Some((host, is_ip_literal)) = host_without_port(server_name) else {
        return AclDecision::InvalidServerName;
    };
    let allow_ip_literals = content
        .get("allow_ip_literals")
        .and_then(Value::as_bool)
        .unwrap_or(true);
    if is_ip_literal && !allow_ip_literals {
        return AclDecision::DeniedIpLiteral;
    }
    if let Some(pattern) = patterns(content, "deny").find(|p| glob_matches(p, host)) {
        return AclDecision::DeniedBy {
            pattern: pattern.to_owned(),
        };
    }
    match patterns(content, "allow").find(|p| glob_matches(p, host)) {
        Some(pattern) => AclDecision::Allowed {
            pattern: pattern.to_owned(),
        },
        None => AclDecision::NotAllowed,
    }
}

/// The string entries of the list `key` of an ACL's content.
fn patterns<'a>(content: &'a Map<String, Value>, key: &str) -> impl Iterator<Item = &'a str> {
    content
        .get(key)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
}

/// The server name without `:port` (an IPv6 literal keeps its brackets), and whether it is an
/// IP literal; `None` if the name is not valid.
fn host_without_port(server_name: &str) -> Option<(&str, bool)> {
    let parsed = ids::parse_server_name(server_name).ok()?;
    let host = match parsed.port {
        // The port is whatever follows the last colon: an IPv6 literal's colons sit inside
        // its brackets, before it.
        Some(_) => &server_name[..server_name.rfind(':')?],
        None => server_name,
    };
    let is_ip_literal = matches!(parsed.host, Host::Ipv4(_) | Host::Ipv6(..));
    Some((host, is_ip_literal))
}

/// Whether `text` matches the glob `pattern`, ignoring case: `*` matches zero or more
/// characters, `?` exactly one, every other character itself.
///
/// The classic greedy matcher that, on a mismatch, lets the most recent `*` swallow one more
/// character: linear memory and at most `pattern.len() * text.len()` steps.
pub fn glob_matches(pattern: &str, text: &str) -> bool {
    let (mut p, mut t) = (0, 0);
    // Where to resume after the last `*`: the pattern just after it, and the text position
    // up to which that `*` has matched.
    let mut last_star: Option<(usize, usize)> = None;
    while let Some(tc) = text[t..].chars().next() {
        match pattern[p..].chars().next() {
            Some('*') => {
                p += 1;
                last_star = Some((p, t));
                continue;
            }
            Some(pc) if pc == '?' || same_ignoring_case(pc, tc) => {
                p += pc.len_utf8();
                t += tc.len_utf8();
                continue;
            }
            _ => {}
        }
        let Some((after_star, star_end)) = last_star else {
            return false;
        };
        let swallowed = text[star_end..].chars().next().expect("t is past star_end");
        let star_end = star_end + swallowed.len_utf8();
        last_star = Some((after_star, star_end));
        p = after_star;
        t = star_end;
    }
    pattern[p..].chars().all(|c| c == '*')
}

fn same_ignoring_case(a: char, b: char) -> bool {
    a == b || a.to_lowercase().eq(b.to_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn content(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    fn allowed(acl: &Value, server: &str) -> bool {
        check_server_acl(Some(&content(acl.clone())), server).is_allowed()
    }

    #[test]
    fn no_acl_allows_everyone_and_an_empty_one_no_one() {
        assert_eq!(check_server_acl(None, "evil.com"), AclDecision::NoAcl);
        assert!(check_server_acl(None, "1.2.3.4").is_allowed());
        // The spec's warning: without an allow rule, every server is shut out, the sender's
        // included. A redacted ACL is such an ACL.
        let empty = json!({});
        assert_eq!(
            check_server_acl(Some(&content(empty.clone())), "good.org"),
            AclDecision::NotAllowed
        );
        assert!(!allowed(&json!({"deny": ["evil.com"]}), "good.org"));
    }

    #[test]
    fn deny_wins_over_allow() {
        let acl = json!({"allow": ["*"], "deny": ["evil.com", "*.evil.com"]});
        assert!(allowed(&acl, "good.org"));
        assert!(!allowed(&acl, "evil.com"));
        assert_eq!(
            check_server_acl(Some(&content(acl.clone())), "hs.evil.com"),
            AclDecision::DeniedBy {
                pattern: "*.evil.com".into()
            }
        );
        // `*.evil.com` needs the dot: `notevil.com` is neither denied pattern.
        assert!(allowed(&acl, "notevil.com"));
    }

    #[test]
    fn a_server_matching_no_allow_is_denied() {
        let acl = json!({"allow": ["*.trusted.org", "friend.net"], "deny": []});
        assert!(allowed(&acl, "a.trusted.org"));
        assert!(allowed(&acl, "friend.net"));
        assert!(!allowed(&acl, "trusted.org"));
        assert!(!allowed(&acl, "friend.network"));
    }

    #[test]
    fn the_port_is_ignored() {
        // The spec's example: `evil.com`, `evil.com:8448` and `evil.com:1234` all match rules
        // for `evil.com`.
        let acl = json!({"allow": ["*"], "deny": ["evil.com"]});
        for server in ["evil.com", "evil.com:8448", "evil.com:1234"] {
            assert!(!allowed(&acl, server), "{server}");
        }
        // A pattern with a port matches no host, since hosts are compared without ports.
        let with_port = json!({"allow": ["good.org:8448"]});
        assert!(!allowed(&with_port, "good.org:8448"));
        let v6 = json!({"allow": ["[::1]"]});
        assert!(allowed(&v6, "[::1]:8448"));
    }

    #[test]
    fn ip_literals_follow_allow_ip_literals() {
        let denied = json!({"allow": ["*"], "allow_ip_literals": false});
        for server in ["1.2.3.4", "1.2.3.4:8448", "[1234:5678::abcd]", "[::1]:80"] {
            assert_eq!(
                check_server_acl(Some(&content(denied.clone())), server),
                AclDecision::DeniedIpLiteral,
                "{server}"
            );
        }
        assert!(allowed(&denied, "example.org"));
        // Only a boolean `false` denies; missing or other values mean `true`.
        for permissive in [json!(true), json!("false"), json!(0), Value::Null] {
            let acl = json!({"allow": ["*"], "allow_ip_literals": permissive});
            assert!(allowed(&acl, "1.2.3.4"), "{permissive}");
        }
        assert!(allowed(&json!({"allow": ["*"]}), "[::1]"));
        // Allowing IP literals does not allow them past `deny` or without an allow match.
        let listed = json!({"allow": ["10.*"], "deny": ["10.0.0.1"]});
        assert!(allowed(&listed, "10.0.0.2"));
        assert!(!allowed(&listed, "10.0.0.1"));
        assert!(!allowed(&listed, "192.168.0.1"));
        // A DNS name made of digits is not an IP literal by the grammar.
        assert!(allowed(&denied, "999.1.1.1"));
    }

    #[test]
    fn patterns_ignore_case() {
        let acl = json!({"allow": ["*"], "deny": ["EVIL.com", "*.Bad.ORG"]});
        assert!(!allowed(&acl, "evil.COM"));
        assert!(!allowed(&acl, "x.bad.org"));
        assert!(glob_matches("HS?.TEST", "hs1.test"));
    }

    #[test]
    fn malformed_lists_and_entries_are_read_leniently() {
        let acl = json!({"allow": ["*"], "deny": [5, null, {"x": 1}, "evil.com"]});
        assert!(allowed(&acl, "good.org"));
        assert!(!allowed(&acl, "evil.com"));
        assert!(!allowed(&json!({"allow": "*"}), "good.org"));
        assert!(allowed(
            &json!({"allow": ["*"], "deny": "good.org"}),
            "good.org"
        ));
    }

    #[test]
    fn invalid_server_names_are_denied() {
        let acl = json!({"allow": ["*"]});
        for server in ["", "bad_name.org", "a.org:port", "[::1", "a.org:99999"] {
            assert_eq!(
                check_server_acl(Some(&content(acl.clone())), server),
                AclDecision::InvalidServerName,
                "{server:?}"
            );
        }
        assert!(check_server_acl(None, "bad_name.org").is_allowed());
    }

    #[test]
    fn glob_wildcards() {
        assert!(glob_matches("*", ""));
        assert!(glob_matches("", ""));
        assert!(!glob_matches("", "a"));
        assert!(!glob_matches("?", ""));
        assert!(glob_matches("?", "é"));
        assert!(glob_matches("a*b*c", "abc"));
        assert!(glob_matches("a*b*c", "aXXbYYc"));
        assert!(!glob_matches("a*b*c", "aXXbYY"));
        assert!(glob_matches("*.example.org", ".example.org"));
        assert!(glob_matches("hs??.test", "hs12.test"));
        assert!(!glob_matches("hs??.test", "hs1.test"));
        assert!(glob_matches("**a**", "bab"));
    }

    /// A matcher that tried every split of the text at every `*` would take exponential time
    /// on this; the greedy one takes quadratic.
    #[test]
    fn hostile_patterns_stay_cheap() {
        let pattern = format!("{}b", "*a".repeat(40));
        let text = "a".repeat(255);
        assert!(!glob_matches(&pattern, &text));
        assert!(glob_matches(&pattern, &format!("{text}b")));
    }

    /// The definition, written as plainly as possible: exponential, for short inputs only.
    fn reference_match(pattern: &[char], text: &[char]) -> bool {
        match pattern.split_first() {
            None => text.is_empty(),
            Some(('*', rest)) => (0..=text.len()).any(|skip| reference_match(rest, &text[skip..])),
            Some((p, rest)) => text.split_first().is_some_and(|(t, text_rest)| {
                (*p == '?' || same_ignoring_case(*p, *t)) && reference_match(rest, text_rest)
            }),
        }
    }

    proptest! {
        #[test]
        fn glob_agrees_with_the_definition(pattern in "[ab*?.]{0,8}", text in "[abAB.]{0,8}") {
            let p: Vec<char> = pattern.chars().collect();
            let t: Vec<char> = text.chars().collect();
            prop_assert_eq!(glob_matches(&pattern, &text), reference_match(&p, &t));
        }

        #[test]
        fn a_name_matches_itself_and_its_masked_forms(
            name in "[a-z0-9]{1,10}(\\.[a-z0-9]{1,10}){0,3}",
            mask in prop::collection::vec(0u8..3, 0..40),
        ) {
            prop_assert!(glob_matches(&name, &name.to_uppercase()));
            let masked: String = name
                .chars()
                .zip(mask.iter().chain(std::iter::repeat(&0)))
                .map(|(c, m)| match m { 1 => "?".to_owned(), 2 => "*".to_owned(), _ => c.to_string() })
                .collect();
            prop_assert!(glob_matches(&masked, &name), "{} vs {}", masked, name);
        }
    }
}
