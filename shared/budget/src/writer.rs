//! The store writer: settlements from every actor, committed as one batch per flush window.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tollgate_store::{Batch, Settled, Store};

pub(crate) enum Command {
    Settled(Settled),
    /// Commit what has arrived so far, then answer.
    Flush(oneshot::Sender<()>),
    /// Commit, release the store and stop, then answer.
    Stop(oneshot::Sender<()>),
}

/// Runs until every sender is gone, committing at most `window` after a settlement arrived.
/// A failed commit keeps its batch and is retried with the next one, so nothing is dropped
/// while the store is briefly unavailable.
pub(crate) async fn run(
    store: Arc<dyn Store>,
    mut commands: mpsc::UnboundedReceiver<Command>,
    window: Duration,
) {
    let mut pending = Batch::default();
    loop {
        let first = if pending.is_empty() {
            match commands.recv().await {
                Some(command) => Some(command),
                None => break,
            }
        } else {
            None
        };
        let mut waiters = Vec::new();
        let mut stopped = None;
        let mut closed = false;
        let deadline = tokio::time::Instant::now() + window;
        let mut next = first;
        loop {
            match next.take() {
                Some(Command::Settled(s)) => pending.settled.push(s),
                Some(Command::Flush(done)) => {
                    waiters.push(done);
                    break;
                }
                Some(Command::Stop(done)) => {
                    stopped = Some(done);
                    break;
                }
                None => {}
            }
            match tokio::time::timeout_at(deadline, commands.recv()).await {
                Ok(Some(command)) => next = Some(command),
                Ok(None) => {
                    closed = true;
                    break;
                }
                Err(_) => break,
            }
        }
        commit(&*store, &mut pending).await;
        for done in waiters {
            let _ = done.send(());
        }
        if let Some(done) = stopped {
            // Drop the store before answering, so whoever waits may reopen it.
            drop(store);
            let _ = done.send(());
            return;
        }
        if closed {
            break;
        }
    }
    commit(&*store, &mut pending).await;
}

async fn commit(store: &dyn Store, pending: &mut Batch) {
    if pending.is_empty() {
        return;
    }
    let batch = std::mem::take(pending);
    let count = batch.settled.len();
    if let Err(e) = store.commit(batch.clone()).await {
        tracing::error!(error = %e, settlements = count, "spend commit failed; retrying with the next batch");
        pending.settled.splice(0..0, batch.settled);
    }
}
