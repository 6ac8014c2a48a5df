//! The signals that stop the service and the load generator: SIGTERM and SIGINT, each time
//! they arrive, or signals sent by a test.

use anyhow::Context;
use tokio::sync::mpsc;

/// The signals that stop the server: the operating system's, or a test's.
#[derive(Debug)]
pub struct Signals(mpsc::Receiver<&'static str>);

impl Signals {
    /// SIGTERM and SIGINT (Ctrl-C), each time they arrive.
    pub fn os() -> anyhow::Result<Self> {
        Self::os_with(false)
    }

    /// SIGTERM, SIGINT and SIGHUP (the terminal closed, the SSH session lost): for a command
    /// that must clean up before it goes, such as a game day that has broken the service.
    pub fn os_and_hangup() -> anyhow::Result<Self> {
        Self::os_with(true)
    }

    fn os_with(hangup: bool) -> anyhow::Result<Self> {
        let (tx, rx) = mpsc::channel(4);
        #[cfg(unix)]
        if hangup {
            use tokio::signal::unix::{SignalKind, signal};
            let mut hup = signal(SignalKind::hangup()).context("cannot handle SIGHUP")?;
            let tx = tx.clone();
            tokio::spawn(async move {
                while hup.recv().await.is_some() {
                    if tx.send("SIGHUP").await.is_err() {
                        break;
                    }
                }
            });
        }
        #[cfg(not(unix))]
        let _ = hangup;
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let mut term = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
            let mut int = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
            tokio::spawn(async move {
                loop {
                    let name = tokio::select! {
                        _ = term.recv() => "SIGTERM",
                        _ = int.recv() => "SIGINT",
                    };
                    if tx.send(name).await.is_err() {
                        break;
                    }
                }
            });
        }
        #[cfg(not(unix))]
        tokio::spawn(async move {
            while tokio::signal::ctrl_c().await.is_ok() {
                if tx.send("Ctrl-C").await.is_err() {
                    break;
                }
            }
        });
        Ok(Self(rx))
    }

    /// Signals sent by hand through the returned sender.
    pub fn channel() -> (mpsc::Sender<&'static str>, Self) {
        let (tx, rx) = mpsc::channel(4);
        (tx, Self(rx))
    }

    /// A signal that has arrived already, if any: without waiting.
    pub(crate) fn try_next(&mut self) -> Option<&'static str> {
        self.0.try_recv().ok()
    }

    /// The next signal; never returns if the senders are gone.
    pub(crate) async fn next(&mut self) -> &'static str {
        match self.0.recv().await {
            Some(name) => name,
            None => std::future::pending().await,
        }
    }
}
