//! Time as the syncer's pure functions take it: seconds since the epoch, passed in, never
//! read inside; and conversions to and from the API's `Time`.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

/// Now, in seconds since the epoch.
pub fn now() -> i64 {
    Timestamp::now().as_second()
}

/// `seconds` as an API time (the epoch if out of range).
pub fn time_at(seconds: i64) -> Time {
    Time(Timestamp::from_second(seconds).unwrap_or(Timestamp::UNIX_EPOCH))
}

/// An API time in seconds since the epoch.
pub fn seconds(time: &Time) -> i64 {
    time.0.as_second()
}
