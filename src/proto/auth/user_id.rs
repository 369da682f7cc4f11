//! The user id and server name grammars of the spec's appendix, as the authorization rules
//! need them: for the keys of `users` in `m.room.power_levels` and, in room v12, for
//! `additional_creators`.
//!
//! Localparts follow the historical grammar that servers must still accept over federation:
//! any characters but `:` and NUL, even none. The server name must match the grammar exactly,
//! and the whole id must fit in 255 bytes.

/// The longest user id the spec allows, in bytes, sigil and server name included.
const USER_ID_BYTES_MAX: usize = 255;

/// Whether `text` is a user id: `@localpart:server_name`.
///
/// Every key of `users` in every power levels event a resolution checks comes through here, so
/// the grammar is checked in byte loops, without allocating (the tests hold these functions to
/// a plain transcription of the grammar).
pub fn is_valid_user_id(text: &str) -> bool {
    if text.len() > USER_ID_BYTES_MAX {
        return false;
    }
    let Some(rest) = text.strip_prefix('@') else {
        return false;
    };
    let Some(colon) = rest.bytes().position(|b| b == b':') else {
        return false;
    };
    let (localpart, server_name) = (&rest[..colon], &rest[colon + 1..]);
    !localpart.bytes().any(|b| b == 0) && is_valid_server_name(server_name)
}

/// Whether `text` is a server name: `hostname [":" port]`, the hostname an IPv4 literal, a
/// bracketed IPv6 literal or a DNS name.
pub fn is_valid_server_name(text: &str) -> bool {
    if is_plain_dns_name(text) {
        return true;
    }
    let (host, port) = split_port(text);
    let port_ok = port.is_none_or(|port| {
        (1..=5).contains(&port.len()) && port.bytes().all(|b| b.is_ascii_digit())
    });
    port_ok && is_valid_host(host)
}

/// The common case in one pass: a DNS name without a port, which has some byte that is not a
/// digit or a dot (else it would be read as an IPv4 literal). `false` means "not this case",
/// not "invalid".
fn is_plain_dns_name(text: &str) -> bool {
    let mut has_letter_or_hyphen = false;
    for byte in text.bytes() {
        match byte {
            b'a'..=b'z' | b'A'..=b'Z' | b'-' => has_letter_or_hyphen = true,
            b'0'..=b'9' | b'.' => {}
            _ => return false,
        }
    }
    has_letter_or_hyphen && text.len() <= 255
}

/// Splits off `:port`; the colons inside an IPv6 literal's brackets are not a port's.
fn split_port(text: &str) -> (&str, Option<&str>) {
    if text.starts_with('[') {
        return match text.find(']') {
            Some(end) => match &text[end + 1..] {
                "" => (text, None),
                after => match after.strip_prefix(':') {
                    Some(port) => (&text[..=end], Some(port)),
                    // `]` followed by anything but a port: keep it whole so the host check fails.
                    None => (text, None),
                },
            },
            None => (text, None),
        };
    }
    match text.bytes().position(|b| b == b':') {
        Some(colon) => (&text[..colon], Some(&text[colon + 1..])),
        None => (text, None),
    }
}

fn is_valid_host(host: &str) -> bool {
    if let Some(inner) = host.strip_prefix('[') {
        let Some(address) = inner.strip_suffix(']') else {
            return false;
        };
        return (2..=45).contains(&address.len())
            && address
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.');
    }
    if let Some(octets_valid) = ipv4_octets_valid(host) {
        return octets_valid;
    }
    (1..=255).contains(&host.len())
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

/// `None` unless `host` looks like an IPv4 literal (four dot-separated groups of digits); then
/// whether it is one: every group at most 255.
fn ipv4_octets_valid(host: &str) -> Option<bool> {
    let mut groups = 1;
    let mut group_digits = 0;
    // Saturates at 256: all that matters is whether it exceeds 255.
    let mut group_value: u32 = 0;
    let mut octets_valid = true;
    for byte in host.bytes() {
        match byte {
            b'0'..=b'9' => {
                group_digits += 1;
                group_value = (group_value * 10 + u32::from(byte - b'0')).min(256);
            }
            b'.' if group_digits > 0 => {
                octets_valid &= group_value <= 255;
                groups += 1;
                group_digits = 0;
                group_value = 0;
            }
            _ => return None,
        }
    }
    (groups == 4 && group_digits > 0).then_some(octets_valid && group_value <= 255)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The grammar transcribed plainly, with splits and parses: what the byte loops above must
    /// agree with.
    fn user_id_by_grammar(text: &str) -> bool {
        let Some((localpart, server_name)) =
            text.strip_prefix('@').and_then(|rest| rest.split_once(':'))
        else {
            return false;
        };
        text.len() <= USER_ID_BYTES_MAX
            && !localpart.contains('\0')
            && server_name_by_grammar(server_name)
    }

    fn server_name_by_grammar(text: &str) -> bool {
        let (host, port) = if text.starts_with('[') {
            split_port(text)
        } else {
            match text.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (text, None),
            }
        };
        let port_ok = port.is_none_or(|port| {
            (1..=5).contains(&port.len()) && port.chars().all(|c| c.is_ascii_digit())
        });
        let groups: Vec<&str> = host.split('.').collect();
        let looks_like_ipv4 = groups.len() == 4
            && groups
                .iter()
                .all(|group| !group.is_empty() && group.chars().all(|c| c.is_ascii_digit()));
        let host_ok = if host.starts_with('[') {
            is_valid_host(host)
        } else if looks_like_ipv4 {
            groups.iter().all(|group| group.parse::<u8>().is_ok())
        } else {
            (1..=255).contains(&host.len())
                && host
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
        };
        port_ok && host_ok
    }

    proptest! {
        #[test]
        fn byte_loops_follow_the_grammar(text in "@?[a-c0-9.:\\[\\]\0é-]{0,24}") {
            prop_assert_eq!(is_valid_user_id(&text), user_id_by_grammar(&text), "{:?}", text);
            prop_assert_eq!(
                is_valid_server_name(&text),
                server_name_by_grammar(&text),
                "{:?}",
                text
            );
        }

        #[test]
        fn ipv4_literals_follow_the_grammar(
            octets in prop::collection::vec("[0-9]{0,4}", 1..6),
            port in prop::option::of("[0-9]{0,6}"),
        ) {
            let mut text = octets.join(".");
            if let Some(port) = port {
                text = format!("{text}:{port}");
            }
            prop_assert_eq!(
                is_valid_server_name(&text),
                server_name_by_grammar(&text),
                "{:?}",
                text
            );
        }
    }

    #[test]
    fn server_names() {
        let valid = [
            "matrix.org",
            "matrix.org:8888",
            "1.2.3.4",
            "1.2.3.4:1234",
            "[1234:5678::abcd]",
            "[1234:5678::abcd]:5678",
            "localhost",
            "a-b.example",
        ];
        let invalid = [
            "",
            "matrix.org:",
            "matrix.org:123456",
            "matrix.org:80a",
            "bad host",
            "under_score.org",
            "[1234::abcd",
            "[1234::abcd]x",
            "[zz::1]",
            "256.1.1.1",
            "émoji.org",
        ];
        for name in valid {
            assert!(is_valid_server_name(name), "{name} should be valid");
        }
        for name in invalid {
            assert!(!is_valid_server_name(name), "{name} should be invalid");
        }
    }

    #[test]
    fn user_ids() {
        let valid = [
            "@alice:example.org",
            "@Alice Historical!:example.org",
            "@:example.org",
            "@a:[::1]:8448",
        ];
        let invalid = [
            "alice:example.org",
            "@alice",
            "@alice:",
            "@alice:bad host",
            "@nul\0:example.org",
            "#alias:example.org",
        ];
        for id in valid {
            assert!(is_valid_user_id(id), "{id:?} should be valid");
        }
        for id in invalid {
            assert!(!is_valid_user_id(id), "{id:?} should be invalid");
        }
        let long = format!("@{}:example.org", "a".repeat(250));
        assert!(!is_valid_user_id(&long));
    }
}
