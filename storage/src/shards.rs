//! Several Postgres databases open at once as named shards.
//!
//! Each shard is an independent [`Store`] with its own revision sequence; which workspace lives
//! on which shard is decided above this crate (the workspace index lives in the root shard).

use std::collections::BTreeMap;

use crate::error::Result;
use crate::store::{Store, StoreOptions};

/// Where a shard's data lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ShardSpec {
    Postgres { url: String },
    Sqlite { path: std::path::PathBuf },
}

impl ShardSpec {
    /// `postgres://…` / `postgresql://…` URLs name Postgres; anything else is a SQLite file path.
    pub fn parse(location: &str) -> ShardSpec {
        if location.starts_with("postgres://") || location.starts_with("postgresql://") {
            ShardSpec::Postgres {
                url: location.to_string(),
            }
        } else {
            ShardSpec::Sqlite {
                path: location.into(),
            }
        }
    }
}

/// Named shards. Cheap to clone.
#[derive(Clone, Default)]
pub struct Shards {
    stores: BTreeMap<String, Store>,
}

impl Shards {
    /// Opens every shard (concurrently); fails if any cannot be opened.
    pub async fn open(
        specs: impl IntoIterator<Item = (String, ShardSpec)>,
        options: StoreOptions,
    ) -> Result<Shards> {
        let opening = specs.into_iter().map(|(name, spec)| {
            let options = options.clone();
            async move {
                let store = match &spec {
                    ShardSpec::Postgres { url } => Store::open_postgres(url, options).await?,
                    ShardSpec::Sqlite { path } => Store::open_sqlite(path, options).await?,
                };
                Ok::<_, crate::StorageError>((name, store))
            }
        });
        let stores = futures::future::try_join_all(opening).await?;
        Ok(Shards {
            stores: stores.into_iter().collect(),
        })
    }

    pub fn get(&self, name: &str) -> Option<&Store> {
        self.stores.get(name)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.stores.keys().map(String::as_str)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &Store)> {
        self.stores.iter().map(|(n, s)| (n.as_str(), s))
    }

    pub fn len(&self) -> usize {
        self.stores.len()
    }

    pub fn is_empty(&self) -> bool {
        self.stores.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_postgres_and_paths_name_sqlite() {
        assert!(matches!(
            ShardSpec::parse("postgres://u@127.0.0.1/db"),
            ShardSpec::Postgres { .. }
        ));
        assert!(matches!(
            ShardSpec::parse("./.trellis/root.db"),
            ShardSpec::Sqlite { .. }
        ));
    }
}
