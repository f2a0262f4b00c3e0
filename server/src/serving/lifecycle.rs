//! A server's life after it started: serving, then, on shutdown, draining and closing.
//!
//! - *Draining* begins first: `/readyz` fails its `shutdown` check, so load balancers and
//!   clients move to another replica, while requests are still served as usual (for the
//!   shutdown delay, if any).
//! - *Closing* follows: the listeners stop accepting, open watches end cleanly (the chunked
//!   response is finished, so clients re-watch elsewhere instead of seeing a reset), and each
//!   connection closes once its requests in flight are answered.

use tokio_util::sync::CancellationToken;

#[derive(Default)]
pub struct Lifecycle {
    draining: CancellationToken,
    closing: CancellationToken,
}

impl Lifecycle {
    /// Whether the server is shutting down (`/readyz` fails).
    pub fn is_draining(&self) -> bool {
        self.draining.is_cancelled()
    }

    pub fn start_draining(&self) {
        self.draining.cancel();
    }

    /// Stops accepting and ends watches (draining, if it had not begun).
    pub fn close(&self) {
        self.draining.cancel();
        self.closing.cancel();
    }

    /// Cancelled when the server closes: listeners, connections and watches end on it.
    pub fn closing(&self) -> CancellationToken {
        self.closing.clone()
    }
}
