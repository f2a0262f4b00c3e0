//! Query parameters, decoded once.

#[derive(Clone, Debug, Default)]
pub struct Query {
    pairs: Vec<(String, String)>,
}

impl Query {
    pub fn parse(raw: Option<&str>) -> Query {
        let pairs = raw
            .map(|q| {
                url::form_urlencoded::parse(q.as_bytes())
                    .into_owned()
                    .collect()
            })
            .unwrap_or_default();
        Query { pairs }
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Replaces `key`'s value (or adds it).
    pub fn set(&mut self, key: &str, value: &str) {
        self.pairs.retain(|(k, _)| k != key);
        self.pairs.push((key.to_string(), value.to_string()));
    }

    /// `true`/`1` as kube-apiserver reads boolean parameters.
    pub fn flag(&self, key: &str) -> bool {
        matches!(self.get(key), Some("true" | "1"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_pairs_and_flags() {
        let q = Query::parse(Some("watch=1&labelSelector=a%3Db%2Cc&limit=500"));
        assert!(q.flag("watch"));
        assert_eq!(q.get("labelSelector"), Some("a=b,c"));
        assert_eq!(q.get("limit"), Some("500"));
        assert!(!q.flag("allowWatchBookmarks"));
    }
}
