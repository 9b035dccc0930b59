//! What every example, interop and benchmark binary does as a process: a log subscriber
//! honouring `RUST_LOG`, and stopping a server on SIGINT/SIGTERM. The runtime library
//! installs no subscriber; its binaries do (each crate re-exports this one as `process`).

use std::time::Duration;

use grpc_runtime::server::Server;

/// Installs a `tracing` subscriber writing to stderr (stdout stays the program's output) with
/// the filter in `RUST_LOG`, or `default` (`"info"`, `"warn"`, ...) when it is unset or
/// invalid. Call once, first thing in `main`.
pub fn init_logging(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

/// Stops `server` on signals, in a task of its own: the first SIGINT or SIGTERM stops it
/// gracefully (GOAWAY, in-flight calls get up to `grace`, then whatever is left is closed);
/// a second one stops it at once. Both are logged. Needs a tokio runtime with signals.
pub fn stop_on_signals(server: Server, grace: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut signals = match Signals::new() {
            Ok(signals) => signals,
            Err(e) => {
                tracing::warn!("cannot listen for signals: {e}; the server stops only when killed");
                return;
            }
        };
        let first = signals.next().await;
        tracing::info!(
            "{first}: stopping gracefully, in-flight calls have {grace:?} (again to stop at once)"
        );
        tokio::select! {
            finished = server.graceful_stop_timeout(grace) => {
                if finished {
                    tracing::info!("stopped: every call finished");
                } else {
                    tracing::warn!("grace period of {grace:?} over: closed the calls still running");
                }
            }
            second = signals.next() => {
                tracing::warn!("{second} again: stopping at once, in-flight calls are dropped");
                server.stop().await;
            }
        }
    })
}

/// SIGINT and SIGTERM, whichever comes.
struct Signals {
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
}

impl Signals {
    #[cfg(unix)]
    fn new() -> std::io::Result<Signals> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Signals {
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
        })
    }

    #[cfg(not(unix))]
    fn new() -> std::io::Result<Signals> {
        Ok(Signals {})
    }

    /// The name of the next signal.
    #[cfg(unix)]
    async fn next(&mut self) -> &'static str {
        tokio::select! {
            _ = self.interrupt.recv() => "SIGINT",
            _ = self.terminate.recv() => "SIGTERM",
        }
    }

    #[cfg(not(unix))]
    async fn next(&mut self) -> &'static str {
        let _ = tokio::signal::ctrl_c().await;
        "Ctrl-C"
    }
}
