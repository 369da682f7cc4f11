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
pub fn is_valid_user_id(text: &str) -> bool {
    if text.len() > USER_ID_BYTES_MAX {
        return false;
    }
    let Some(rest) = text.strip_prefix('@') else {
        return false;
    };
    let Some((localpart, server_name)) = rest.split_once(':') else {
        return false;
    };
    !localpart.contains('\0') && is_valid_server_name(server_name)
}

/// Whether `text` is a server name: `hostname [":" port]`, the hostname an IPv4 literal, a
/// bracketed IPv6 literal or a DNS name.
pub fn is_valid_server_name(text: &str) -> bool {
    let (host, port) = split_port(text);
    let port_ok = port.is_none_or(|port| {
        (1..=5).contains(&port.len()) && port.bytes().all(|b| b.is_ascii_digit())
    });
    port_ok && is_valid_host(host)
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
    match text.split_once(':') {
        Some((host, port)) => (host, Some(port)),
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
    if looks_like_ipv4(host) {
        return host.split('.').all(|octet| octet.parse::<u8>().is_ok());
    }
    (1..=255).contains(&host.len())
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

/// Four dot-separated groups of digits: then it must be a valid IPv4 literal, octets <= 255.
fn looks_like_ipv4(host: &str) -> bool {
    let groups: Vec<&str> = host.split('.').collect();
    groups.len() == 4
        && groups
            .iter()
            .all(|group| !group.is_empty() && group.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

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
