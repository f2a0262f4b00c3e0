//! Security: who is asking (authentication, impersonation), what they may do where
//! (per-workspace RBAC, the default roles, reviews), the audit log, and the PKI and TLS.

pub mod audit;
pub mod authn;
pub mod authz;
pub mod tls;
