//! The `continue` token of a paged list: the snapshot revision and the last key returned.
//!
//! Opaque to clients (base64url of a small JSON document) and checked on decode, so a token from
//! another resource or a mangled one is a clear error rather than a wrong page.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::error::StorageError;
use crate::key::ListPosition;

/// Decoded contents of a continue token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContinueToken {
    /// The revision every page of the list is read at.
    pub revision: u64,
    pub resource: String,
    /// The last key already returned; the next page starts after it.
    pub after: ListPosition,
}

#[derive(Serialize, Deserialize)]
struct Wire {
    v: u8,
    rev: u64,
    res: String,
    c: String,
    ns: String,
    n: String,
}

const VERSION: u8 = 1;

impl ContinueToken {
    pub fn encode(&self) -> String {
        let wire = Wire {
            v: VERSION,
            rev: self.revision,
            res: self.resource.clone(),
            c: self.after.cluster.clone(),
            ns: self.after.namespace.clone(),
            n: self.after.name.clone(),
        };
        // Serializing plain strings and integers cannot fail.
        let json = serde_json::to_vec(&wire).unwrap_or_default();
        URL_SAFE_NO_PAD.encode(json)
    }

    pub fn decode(token: &str) -> Result<Self, StorageError> {
        let bad = |why: &str| StorageError::InvalidContinue(why.to_string());
        let json = URL_SAFE_NO_PAD
            .decode(token.trim_end_matches('='))
            .map_err(|_| bad("not base64url"))?;
        let wire: Wire = serde_json::from_slice(&json).map_err(|_| bad("malformed"))?;
        if wire.v != VERSION {
            return Err(bad("unknown version"));
        }
        if wire.rev == 0 {
            return Err(bad("revision must be positive"));
        }
        Ok(ContinueToken {
            revision: wire.rev,
            resource: wire.res,
            after: ListPosition {
                cluster: wire.c,
                namespace: wire.ns,
                name: wire.n,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let token = ContinueToken {
            revision: 42,
            resource: "core/configmaps".into(),
            after: ListPosition {
                cluster: "2cynbfy2m0wtjqcs".into(),
                namespace: "default".into(),
                name: "a/b?c".into(),
            },
        };
        let encoded = token.encode();
        assert!(encoded
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
        assert_eq!(ContinueToken::decode(&encoded).unwrap(), token);
    }

    #[test]
    fn garbage_is_rejected() {
        for bad in ["", "!!!", "eyJ2IjoyfQ", "bm90IGpzb24"] {
            assert!(
                matches!(
                    ContinueToken::decode(bad),
                    Err(StorageError::InvalidContinue(_))
                ),
                "{bad}"
            );
        }
    }
}
