//! Serving: assembling and starting a server ([`start`]), the TLS listeners and connection
//! limits ([`serve`], [`limits`]), what every request passes on its way in ([`gate`]:
//! authentication, rate limit, body deadline, impersonation, audit), and the single entry point that turns a request into a
//! resolved context and dispatches it ([`dispatch`], [`context`]), with the state every request
//! shares ([`state`]) and response helpers; health probes ([`health`]), request metrics and
//! `/metrics` ([`instrument`]), and graceful shutdown ([`lifecycle`]).

pub mod context;
pub mod dispatch;
pub mod gate;
pub mod gathered_writes;
pub mod health;
pub mod hub;
pub mod instrument;
pub mod lifecycle;
pub mod limits;
pub mod query;
pub mod response;
pub mod serve;
pub mod start;
pub mod state;
