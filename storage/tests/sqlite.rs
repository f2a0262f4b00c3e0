//! The conformance suite on the embedded SQLite store.

mod conformance;

use conformance::{key, list_all, test_options, value, Backing, CM};
use trellis_storage::restore::{backup_sqlite, restore_sqlite};
use trellis_storage::{ListScope, StorageError, Store, SCHEMA_VERSION};

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

/// `backup_sqlite` copies a store while a writer goes on (one consistent snapshot, at the
/// revision it reports); `restore_sqlite` puts the copy back over the store, which went on
/// meanwhile: every object of the backup is back with its resourceVersion, later ones are gone,
/// and a watch from any earlier revision is Expired.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn online_backup_and_restore() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data/store.db");
    let store = Store::open_sqlite(&path, test_options()).await.unwrap();
    for i in 0..50u64 {
        store
            .create(
                key("c1", "default", &format!("before-{i:02}")),
                "u",
                value(i),
            )
            .await
            .unwrap();
    }
    let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
    let writer = {
        let store = store.clone();
        tokio::spawn(async move {
            let mut i = 0u64;
            while stopped.try_recv().is_err() {
                store
                    .create(
                        key("c1", "default", &format!("during-{i:04}")),
                        "u",
                        value(i),
                    )
                    .await
                    .unwrap();
                i += 1;
            }
            i
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let backup = dir.path().join("backup.db");
    let backup_revision = backup_sqlite(&path, &backup).await.unwrap();
    stop.send(()).unwrap();
    let during = writer.await.unwrap();
    assert!(during > 0, "the writer wrote during the backup");
    let after = store
        .create(key("c1", "default", "after"), "u", value(7))
        .await
        .unwrap();
    assert!(after.revision > backup_revision);
    let everything = list_all(&store, ListScope::cluster("c1", CM)).await;
    drop(store);

    // Only creations happened: the snapshot at the backup's revision is what was created by then.
    let expected: Vec<_> = everything
        .iter()
        .filter(|o| o.revision <= backup_revision)
        .cloned()
        .collect();
    assert!(expected.len() >= 50 && expected.len() < everything.len());

    assert!(matches!(
        backup_sqlite(&path, &backup).await,
        Err(StorageError::InvalidValue(_))
    ));

    let restored = restore_sqlite(&backup, &path).await.unwrap();
    assert_eq!(restored.backup_revision, backup_revision);
    let store = Store::open_sqlite(&path, test_options()).await.unwrap();
    assert_eq!(
        list_all(&store, ListScope::cluster("c1", CM)).await,
        expected
    );
    assert_eq!(store.current_revision().await.unwrap(), restored.revision);
    assert!(store
        .get(&key("c1", "default", "after"))
        .await
        .unwrap_err()
        .is_not_found());
    for old in [backup_revision, after.revision] {
        assert!(matches!(
            store.watch(ListScope::cluster("c1", CM), Some(old)).await,
            Err(StorageError::Expired { .. })
        ));
    }
    // A backup restores into a fresh place too (a new machine's data directory).
    drop(store);
    let elsewhere = dir.path().join("new-machine/store.db");
    restore_sqlite(&backup, &elsewhere).await.unwrap();
    let store = Store::open_sqlite(&elsewhere, test_options())
        .await
        .unwrap();
    assert_eq!(
        list_all(&store, ListScope::cluster("c1", CM)).await,
        expected
    );
}

/// A restore refuses, before overwriting anything, a file that is no store backup and a backup
/// written by a newer binary.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_refuses_what_it_cannot_read() {
    let b = Backing::sqlite().await;
    let store = b.open().await;
    let kept = store
        .create(key("c1", "default", "kept"), "u", value(1))
        .await
        .unwrap();
    drop(store);
    let dir = tempfile::tempdir().unwrap();
    let path = std::path::PathBuf::from(b.location());

    let not_a_store = dir.path().join("notes.txt");
    std::fs::write(&not_a_store, "hello").unwrap();
    assert!(restore_sqlite(&not_a_store, &path).await.is_err());
    let missing = dir.path().join("missing.db");
    assert!(matches!(
        restore_sqlite(&missing, &path).await,
        Err(StorageError::InvalidValue(_))
    ));

    let newer = dir.path().join("newer.db");
    backup_sqlite(&path, &newer).await.unwrap();
    rusqlite::Connection::open(&newer)
        .unwrap()
        .execute(
            "INSERT INTO trellis_schema_migrations (version) VALUES (?1)",
            [SCHEMA_VERSION + 1],
        )
        .unwrap();
    assert!(matches!(
        restore_sqlite(&newer, &path).await,
        Err(StorageError::SchemaTooNew { .. })
    ));

    let store = b.open().await;
    assert_eq!(
        store.get(&key("c1", "default", "kept")).await.unwrap(),
        kept
    );
    assert_eq!(store.current_revision().await.unwrap(), kept.revision);
}
