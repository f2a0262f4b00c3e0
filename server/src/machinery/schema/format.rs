//! The string `format`s a CRD schema checks values against. kube-apiserver knows more (isbn,
//! mac, email...); the ones here are those CRDs commonly use. An unknown format accepts
//! everything, as upstream does.

/// Whether `s` is a valid `format`.
pub fn check_format(format: &str, s: &str) -> bool {
    match format {
        "byte" => is_base64(s),
        "date" => is_date(s),
        "date-time" | "datetime" => is_date_time(s),
        "uuid" => is_uuid(s),
        "ipv4" => s.parse::<std::net::Ipv4Addr>().is_ok(),
        "ipv6" => s.parse::<std::net::Ipv6Addr>().is_ok(),
        "cidr" => is_cidr(s),
        "hostname" => is_hostname(s),
        _ => true,
    }
}

fn is_base64(s: &str) -> bool {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.decode(s).is_ok()
}

fn digits(s: &str, n: usize) -> Option<u32> {
    (s.len() == n && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}

fn is_date(s: &str) -> bool {
    let mut parts = s.split('-');
    let (Some(y), Some(m), Some(d), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    matches!(
        (digits(y, 4), digits(m, 2), digits(d, 2)),
        (Some(_), Some(1..=12), Some(1..=31))
    )
}

/// RFC 3339: `2006-01-02T15:04:05Z`, optional fraction, `Z` or `±hh:mm`.
fn is_date_time(s: &str) -> bool {
    let Some((date, time)) = s.split_once(['T', 't', ' ']) else {
        return false;
    };
    if !is_date(date) {
        return false;
    }
    // `get` rather than slicing: a multi-byte character may straddle byte 8.
    let (Some(clock), Some(rest)) = (time.get(..8), time.get(8..)) else {
        return false;
    };
    let mut hms = clock.split(':');
    let ok_clock = matches!(
        (
            hms.next().and_then(|h| digits(h, 2)),
            hms.next().and_then(|m| digits(m, 2)),
            hms.next().and_then(|x| digits(x, 2))
        ),
        (Some(0..=23), Some(0..=59), Some(0..=60))
    );
    if !ok_clock {
        return false;
    }
    let rest = match rest.strip_prefix('.') {
        Some(frac) => {
            let n = frac.bytes().take_while(u8::is_ascii_digit).count();
            if n == 0 {
                return false;
            }
            &frac[n..]
        }
        None => rest,
    };
    if rest.eq_ignore_ascii_case("z") {
        return true;
    }
    let Some(offset) = rest.strip_prefix(['+', '-']) else {
        return false;
    };
    let mut hm = offset.split(':');
    matches!(
        (
            hm.next().and_then(|h| digits(h, 2)),
            hm.next().and_then(|m| digits(m, 2)),
            hm.next()
        ),
        (Some(0..=23), Some(0..=59), None)
    )
}

fn is_uuid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn is_cidr(s: &str) -> bool {
    let Some((ip, bits)) = s.split_once('/') else {
        return false;
    };
    let Ok(bits) = bits.parse::<u8>() else {
        return false;
    };
    match ip.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(_)) => bits <= 32,
        Ok(std::net::IpAddr::V6(_)) => bits <= 128,
        Err(_) => false,
    }
}

fn is_hostname(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 255
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

#[cfg(test)]
mod tests {
    use super::check_format;

    #[test]
    fn formats() {
        assert!(check_format("date-time", "2024-02-03T04:05:06.123+01:00"));
        assert!(!check_format("date-time", "2024-02-03 nope"));
        assert!(!check_format("date-time", "2024-02-03T12:34:5\u{e9}Z"));
        assert!(check_format("date", "2024-02-03"));
        assert!(!check_format("date", "2024-13-03"));
        assert!(check_format("uuid", "123e4567-e89b-12d3-a456-426614174000"));
        assert!(!check_format("uuid", "123e4567"));
        // Number formats say nothing about strings.
        assert!(check_format("int32", "99999999999"));
        assert!(check_format("byte", "aGVsbG8=") && !check_format("byte", "!!"));
        assert!(check_format("cidr", "10.0.0.0/8") && !check_format("cidr", "10.0.0.0/33"));
        assert!(check_format("hostname", "a.example.com") && !check_format("hostname", "-a.com"));
        assert!(check_format("something-else", "anything"));
    }
}
