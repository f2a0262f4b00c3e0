//! Ages as kubectl prints them (`45s`, `3m20s`, `5h`, `12d`, `2y30d`), for Table cells.

use std::time::{Duration, SystemTime};

use serde_json::Value;

/// Age as kubectl prints it (`45s`, `3m20s`, `5h`, `12d`, `2y30d`).
pub fn human_duration(d: Duration) -> String {
    let s = d.as_secs();
    let (m, h, days) = (s / 60, s / 3600, s / 86_400);
    match () {
        _ if s < 120 => format!("{s}s"),
        _ if m < 10 && !s.is_multiple_of(60) => format!("{m}m{}s", s % 60),
        _ if m < 180 => format!("{m}m"),
        _ if h < 8 && !m.is_multiple_of(60) => format!("{h}h{}m", m % 60),
        _ if h < 48 => format!("{h}h"),
        _ if h < 24 * 8 && !h.is_multiple_of(24) => format!("{days}d{}h", h % 24),
        _ if days < 365 * 2 => format!("{days}d"),
        _ if days < 365 * 8 && !days.is_multiple_of(365) => {
            format!("{}y{}d", days / 365, days % 365)
        }
        _ => format!("{}y", days / 365),
    }
}

/// How long ago an RFC 3339 time was, as kubectl prints ages.
pub fn since(time: Option<&Value>) -> String {
    time.and_then(Value::as_str)
        .and_then(|t| humantime::parse_rfc3339(t).ok())
        .map(|created| {
            human_duration(
                SystemTime::now()
                    .duration_since(created)
                    .unwrap_or_default(),
            )
        })
        .unwrap_or_else(|| "<unknown>".into())
}
