//! Wake-up hints between processes sharing a shard: NOTIFY after commits, LISTEN for others'.
//!
//! A store announces its newest revision with `pg_notify` right after each commit, outside the
//! write transaction: a NOTIFY inside it would hold the shard's revision lock ~15% longer, and
//! hints only speed things up. Announcements coalesce (only the newest revision is sent) and go
//! out on the notifier's own connection with `synchronous_commit = off`: a notification needs a
//! transaction of its own, which would otherwise wait for a WAL flush of its own after every
//! batch, and a hint lost in a crash costs nothing. Each store ignores its own. The watch hub
//! also polls, and is told to read the log after a reconnect, so nothing is lost when a hint is.

use std::time::Duration;

use futures::StreamExt;
use tokio_postgres::{AsyncMessage, NoTls};

pub(crate) const CHANNEL: &str = "trellis_events";

/// Announcements are at least this far apart. Each one is a transaction of the notifier's and
/// a delivery to every listening session, the store's own included: under load, one per
/// commit cost the database about as much CPU as the commits' own writes, for hints that
/// other processes' watchers get at most this much later.
const ANNOUNCE_EVERY: Duration = Duration::from_millis(5);

use crate::backend::WakeHint as Hint;

/// Sends the newest committed revision as a notification, coalescing bursts.
pub(crate) struct Notifier {
    newest: tokio::sync::watch::Sender<u64>,
}

impl Notifier {
    pub(crate) fn start(config: tokio_postgres::Config, instance: u64) -> Self {
        let (newest, mut rx) = tokio::sync::watch::channel(0u64);
        tokio::spawn(async move {
            let mut connection: Option<(tokio_postgres::Client, tokio_postgres::Statement)> = None;
            // Ends when the store (and with it the sender) is dropped.
            while rx.changed().await.is_ok() {
                let revision = *rx.borrow_and_update();
                if connection.as_ref().is_none_or(|(c, _)| c.is_closed()) {
                    connection = connect(&config).await;
                }
                let Some((client, notify)) = &connection else {
                    continue;
                };
                let sent = client
                    .execute(notify, &[&CHANNEL, &payload(revision, instance)])
                    .await;
                if let Err(err) = sent {
                    tracing::debug!(error = %err, "could not announce a commit; others will poll");
                    connection = None;
                }
                // Commits during the pause are announced together after it.
                tokio::time::sleep(ANNOUNCE_EVERY).await;
            }
        });
        Self { newest }
    }

    pub(crate) fn announce(&self, revision: u64) {
        self.newest.send_if_modified(|newest| {
            let newer = revision > *newest;
            if newer {
                *newest = revision;
            }
            newer
        });
    }
}

/// The notifier's connection, its commits not waiting for the WAL to reach the disk, and its
/// notification prepared once (each is then one round trip).
async fn connect(
    config: &tokio_postgres::Config,
) -> Option<(tokio_postgres::Client, tokio_postgres::Statement)> {
    let connected = async {
        let (client, connection) = config.connect(NoTls).await?;
        tokio::spawn(connection);
        client.batch_execute("SET synchronous_commit = off").await?;
        let notify = client.prepare("SELECT pg_notify($1, $2)").await?;
        Ok::<_, tokio_postgres::Error>((client, notify))
    };
    match connected.await {
        Ok(client) => Some(client),
        Err(err) => {
            tracing::debug!(error = %err, "no connection to announce commits; others will poll");
            None
        }
    }
}

/// The notification payload: `<revision> <instance>`.
pub(crate) fn payload(revision: u64, instance: u64) -> String {
    format!("{revision} {instance}")
}

/// The revision a notification announces, unless it came from `own` instance.
fn announced(payload: &str, own: u64) -> Option<Option<u64>> {
    let mut parts = payload.split(' ');
    let revision = parts.next().and_then(|r| r.parse().ok());
    let from = parts.next().and_then(|i| i.parse::<u64>().ok());
    match from {
        Some(from) if from == own => None,
        _ => Some(revision),
    }
}

/// A random id for one store instance.
pub(crate) fn new_instance_id() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.finish()
}

pub(crate) fn spawn(config: tokio_postgres::Config, instance: u64, hint: Hint) {
    tokio::spawn(async move {
        let mut delay = Duration::from_millis(100);
        loop {
            match listen(&config, instance, &hint).await {
                Ok(()) => return,
                Err(err) => {
                    tracing::debug!(error = %err, "LISTEN connection lost; reconnecting");
                    if !hint(None) {
                        return;
                    }
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        }
    });
}

/// Returns `Ok` when nobody listens any more, `Err` when the connection broke.
async fn listen(config: &tokio_postgres::Config, own: u64, hint: &Hint) -> Result<(), String> {
    let (client, mut connection) = config.connect(NoTls).await.map_err(|e| e.to_string())?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let driver = tokio::spawn(async move {
        let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = messages.next().await {
            match message {
                Ok(AsyncMessage::Notification(n)) => {
                    if let Some(revision) = announced(n.payload(), own) {
                        let _ = tx.send(revision);
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::debug!(error = %e, "LISTEN connection failed");
                    return;
                }
            }
        }
    });
    let subscribed = client
        .batch_execute(&format!("LISTEN {CHANNEL}"))
        .await
        .map_err(|e| e.to_string());
    // Anything committed before LISTEN took effect is found by this read.
    let outcome = match subscribed {
        Err(e) => Err(e),
        Ok(()) if !hint(None) => Ok(()),
        Ok(()) => loop {
            match rx.recv().await {
                Some(revision) if hint(revision) => {}
                Some(_) => break Ok(()),
                None => break Err("LISTEN connection closed".to_string()),
            }
        },
    };
    driver.abort();
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_notifications_are_ignored() {
        assert_eq!(announced(&payload(42, 7), 7), None);
        assert_eq!(announced(&payload(42, 7), 8), Some(Some(42)));
        assert_eq!(announced("garbage", 8), Some(None));
    }
}
