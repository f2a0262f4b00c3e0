//! Wake-up hints from other processes: LISTEN on the shard's notification channel.
//!
//! Writers `pg_notify` the new revision in the same transaction, so the hint arrives after the
//! commit. Hints only speed things up: the watch hub also polls, and after a reconnect it is
//! told to read the log, so nothing is lost while this connection is down.

use std::time::Duration;

use futures::StreamExt;
use tokio_postgres::{AsyncMessage, NoTls};

pub(crate) const CHANNEL: &str = "trellis_events";

use crate::backend::WakeHint as Hint;

pub(crate) fn spawn(config: tokio_postgres::Config, hint: Hint) {
    tokio::spawn(async move {
        let mut delay = Duration::from_millis(100);
        loop {
            match listen(&config, &hint).await {
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
async fn listen(config: &tokio_postgres::Config, hint: &Hint) -> Result<(), String> {
    let (client, mut connection) = config.connect(NoTls).await.map_err(|e| e.to_string())?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let driver = tokio::spawn(async move {
        let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = messages.next().await {
            match message {
                Ok(AsyncMessage::Notification(n)) => {
                    let _ = tx.send(n.payload().parse::<u64>().ok());
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
