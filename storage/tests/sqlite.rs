//! The conformance suite on the embedded SQLite store.

mod conformance;

use conformance::{key, test_options, value, Backing};
use trellis_storage::Store;

conformance_suite!(Backing::sqlite());

/// Data and revisions survive closing and reopening the file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reopening_keeps_data_and_revisions() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/dir/store.db");
    let written = {
        let store = Store::open_sqlite(&path, test_options()).await.unwrap();
        store
            .create(key("c1", "default", "a"), "u", value(1))
            .await
            .unwrap()
    };
    let store = Store::open_sqlite(&path, test_options()).await.unwrap();
    assert_eq!(
        store.get(&key("c1", "default", "a")).await.unwrap(),
        written
    );
    assert_eq!(store.current_revision().await.unwrap(), written.revision);
    let next = store
        .create(key("c1", "default", "b"), "u", value(2))
        .await
        .unwrap();
    assert_eq!(next.revision, written.revision + 1);
}
