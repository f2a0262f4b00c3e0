//! Times between the API's form (`metav1.Time`, RFC 3339 strings in annotations) and the
//! placement engine's (seconds since the Unix epoch, Kubernetes' own resolution). The
//! controller reads the clock once per pass and hands `now` down; nothing here reads it.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

/// Seconds since the Unix epoch.
pub fn seconds(time: &Time) -> i64 {
    time.0.as_second()
}

/// Seconds since the Unix epoch of an RFC 3339 string such as `2025-06-01T10:04:00Z`.
pub fn parse_rfc3339(text: &str) -> Option<i64> {
    text.parse::<Timestamp>().ok().map(Timestamp::as_second)
}

/// The API time of `seconds` since the epoch, clamped to what the API can represent.
pub fn time_at(seconds: i64) -> Time {
    Time(Timestamp::from_second(seconds).unwrap_or(if seconds < 0 {
        Timestamp::MIN
    } else {
        Timestamp::MAX
    }))
}

/// `seconds` since the epoch as RFC 3339, e.g. `2025-06-15T15:06:40Z`.
pub fn rfc3339(seconds: i64) -> String {
    time_at(seconds).0.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_convert_both_ways() {
        assert_eq!(parse_rfc3339("2025-06-01T10:04:00Z"), Some(1_748_772_240));
        assert_eq!(
            parse_rfc3339("2025-06-01T12:04:00+02:00"),
            Some(1_748_772_240)
        );
        assert_eq!(rfc3339(1_748_772_240), "2025-06-01T10:04:00Z");
        assert_eq!(seconds(&time_at(1_748_772_240)), 1_748_772_240);
        assert_eq!(parse_rfc3339("yesterday"), None);
        // Out of range clamps instead of failing.
        assert!(seconds(&time_at(i64::MAX)) > 0);
    }
}
