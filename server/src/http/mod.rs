//! HTTP plumbing: the TLS listener, the single entry point that turns a request into a
//! [`crate::request_info::RequestInfo`] and dispatches it, and response helpers.

pub mod context;
pub mod dispatch;
pub mod limits;
pub mod query;
pub mod response;
pub mod serve;
