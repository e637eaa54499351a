//! Ending every connection of a pool at once, when its server is found down.
//!
//! A server that freezes (a stopped process, a dropped network) leaves the
//! queries already sent on pooled connections waiting for ever: TCP gets no
//! error from a peer whose kernel still acknowledges, and the driver has no
//! time limit of its own. The dependency actor asks the server itself
//! (within `*_CONNECT_TIMEOUT_MS`) every `HEALTH_CHECK_INTERVAL_MS`; when that
//! check fails it calls [`Severance::sever`], and every connection task
//! created before that moment ends, so the work waiting on those connections
//! fails at once ("connection closed") instead of hanging. Connections made
//! afterwards are not affected.
//!
//! MySQL connections have no task of their own (the application's future
//! reads the socket), so there the switch cuts the work the application runs
//! through [`crate::MysqlConn::run`] instead ([`Severed::until`]).

use std::future::Future;

use tokio::sync::watch;

/// The switch, held by the connector.
#[derive(Clone, Debug)]
pub struct Severance {
    sender: watch::Sender<u64>,
}

/// What each connection task watches.
#[derive(Clone, Debug)]
pub struct Severed {
    receiver: watch::Receiver<u64>,
}

impl Default for Severance {
    fn default() -> Self {
        Severance {
            sender: watch::Sender::new(0),
        }
    }
}

impl Severance {
    /// End every connection task watching [`Severance::watch`] now.
    pub fn sever(&self) {
        self.sender.send_modify(|generation| *generation += 1);
    }

    /// A watcher for the connections about to be made.
    pub fn watch(&self) -> Severed {
        Severed {
            receiver: self.sender.subscribe(),
        }
    }
}

impl Severed {
    /// Runs `connection` until it ends by itself or the pool is severed,
    /// whichever comes first; `Some(output)` when it ended by itself.
    /// Severings before this call do not count.
    pub async fn run<F: Future>(mut self, connection: F) -> Option<F::Output> {
        self.receiver.borrow_and_update();
        self.until(connection).await
    }

    /// Runs `work` until it ends or the pool is severed; `Some(output)` when
    /// it ended by itself. A severing since this watcher was made (or since
    /// the last one it saw) counts: a MySQL connection checked out before a
    /// check failed is cut, even if its work starts afterwards.
    pub async fn until<F: Future>(&mut self, work: F) -> Option<F::Output> {
        let receiver = &mut self.receiver;
        let severed = async move {
            // The sender is gone only when the connector is: the process is
            // stopping, and the pool is being closed anyway.
            if receiver.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        };
        tokio::select! {
            output = work => Some(output),
            () = severed => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(flavor = "current_thread")]
    async fn sever_ends_the_connections_made_before_it_only() {
        let switch = Severance::default();
        let before = tokio::spawn(switch.watch().run(std::future::pending::<()>()));
        tokio::task::yield_now().await;
        switch.sever();
        assert_eq!(before.await.ok(), Some(None));

        // A connection made after the severing lives on, and one that ends
        // by itself reports its output.
        let after = tokio::spawn(switch.watch().run(std::future::pending::<()>()));
        let done = switch.watch().run(async { 7 }).await;
        assert_eq!(done, Some(7));
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!after.is_finished());
        switch.sever();
        assert_eq!(after.await.ok(), Some(None));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn until_counts_a_severing_since_the_watcher_was_made() {
        let switch = Severance::default();
        let mut checked_out = switch.watch();
        switch.sever();
        // Work started after the severing is cut all the same...
        assert_eq!(checked_out.until(std::future::pending::<()>()).await, None);
        // ... and a watcher made afterwards lets work finish.
        assert_eq!(switch.watch().until(async { 7 }).await, Some(7));
    }
}
