//! Serving: listeners (TCP, Unix, any stream of connections) and the accept loop.

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_core::Stream;
use futures_util::StreamExt;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::connection::serve_connection;
use super::{Control, Mode, Server, Shared};
use crate::error::Error;
use crate::peer::Peer;
use crate::transport;

/// A source of connections: a TCP or a Unix listener, or a stream of them.
trait Listener: Send + 'static {
    type Io: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    /// The next connection and who is at its other end; `None` when there are no more.
    fn accept(&mut self) -> impl Future<Output = Option<std::io::Result<(Self::Io, Peer)>>> + Send;
    /// The address it listens on, for channelz (`None`: a stream of connections).
    fn local(&self) -> Option<crate::channelz::SocketAddress> {
        None
    }
}

impl Listener for tokio::net::TcpListener {
    type Io = tokio::net::TcpStream;
    async fn accept(&mut self) -> Option<std::io::Result<(Self::Io, Peer)>> {
        Some(
            tokio::net::TcpListener::accept(self)
                .await
                .map(|(stream, addr)| {
                    transport::set_nodelay(&stream);
                    let local = stream.local_addr().ok();
                    (stream, Peer::new(Some(addr), local))
                }),
        )
    }

    fn local(&self) -> Option<crate::channelz::SocketAddress> {
        self.local_addr()
            .ok()
            .map(crate::channelz::SocketAddress::Tcp)
    }
}

#[cfg(unix)]
impl Listener for tokio::net::UnixListener {
    type Io = tokio::net::UnixStream;
    async fn accept(&mut self) -> Option<std::io::Result<(Self::Io, Peer)>> {
        Some(
            tokio::net::UnixListener::accept(self)
                .await
                .map(|(stream, _)| (stream, Peer::default())),
        )
    }

    fn local(&self) -> Option<crate::channelz::SocketAddress> {
        let addr = self.local_addr().ok()?;
        let name = match addr.as_pathname() {
            Some(path) => path.display().to_string(),
            None => format!("{addr:?}"),
        };
        Some(crate::channelz::SocketAddress::Unix(name))
    }
}

/// Connections from a stream of them.
struct Incoming<S>(S);

impl<S, IO> Listener for Incoming<S>
where
    S: Stream<Item = std::io::Result<IO>> + Send + Unpin + 'static,
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Io = IO;
    async fn accept(&mut self) -> Option<std::io::Result<(IO, Peer)>> {
        self.0
            .next()
            .await
            .map(|io| io.map(|io| (io, Peer::default())))
    }
}

impl Server {
    /// Binds `addr` and serves until stopped. The future borrows nothing from `self`, so it
    /// can be spawned: `tokio::spawn(server.serve("[::]:50051"))`.
    ///
    /// # Errors
    ///
    /// If the address cannot be bound.
    pub fn serve<A>(&self, addr: A) -> impl Future<Output = Result<(), Error>> + Send + 'static
    where
        A: tokio::net::ToSocketAddrs + Send + 'static,
    {
        let server = self.clone();
        async move {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| Error::io("failed to bind".to_owned(), e))?;
            server.run(listener).await
        }
    }

    /// Serves connections from a bound TCP listener until stopped.
    ///
    /// # Errors
    ///
    /// Never at present; the `Result` leaves room for listener failures.
    pub fn serve_tcp(
        &self,
        listener: tokio::net::TcpListener,
    ) -> impl Future<Output = Result<(), Error>> + Send + 'static {
        let server = self.clone();
        async move { server.run(listener).await }
    }

    /// Serves connections from a Unix domain socket listener until stopped.
    ///
    /// # Errors
    ///
    /// As [`serve_tcp`](Server::serve_tcp).
    #[cfg(unix)]
    pub fn serve_unix(
        &self,
        listener: tokio::net::UnixListener,
    ) -> impl Future<Output = Result<(), Error>> + Send + 'static {
        let server = self.clone();
        async move { server.run(listener).await }
    }

    /// Serves every connection `incoming` yields (any byte stream: TLS, memory, a socket
    /// made elsewhere) until it ends or the server stops; then waits for the connections
    /// as [`graceful_stop`](Server::graceful_stop) would.
    ///
    /// # Errors
    ///
    /// As [`serve_tcp`](Server::serve_tcp).
    pub fn serve_incoming<S, IO>(
        &self,
        incoming: S,
    ) -> impl Future<Output = Result<(), Error>> + Send + 'static
    where
        S: Stream<Item = std::io::Result<IO>> + Send + 'static,
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let server = self.clone();
        async move { server.run(Incoming(Box::pin(incoming))).await }
    }

    async fn run<L: Listener>(&self, mut listener: L) -> Result<(), Error> {
        let mut mode = self.control.mode.subscribe();
        if *mode.borrow_and_update() != Mode::Serving {
            return Ok(());
        }
        self.control.serving.send_modify(|n| *n += 1);
        let _serving = ServingGuard(&self.control);
        // Listed in channelz while the accept loop runs.
        let _listen_socket = listener
            .local()
            .map(|local| self.shared.channelz.register_listen_socket(local));
        let mut connections = JoinSet::new();
        let mut backoff = AcceptBackoff::default();
        // After a failed accept, the next one waits until then; connections already served
        // finish and a stop is heard meanwhile.
        let mut resume_at: Option<Instant> = None;
        // At `max_connections`: warned once until a connection is taken again.
        let mut full = false;
        loop {
            let resume = resume_at;
            let accept = async {
                if let Some(at) = resume {
                    tokio::time::sleep_until(at).await;
                }
                listener.accept().await
            };
            tokio::select! {
                accepted = accept => match accepted {
                    Some(Ok((io, peer))) => {
                        backoff.succeeded();
                        resume_at = None;
                        let Some(slot) = Slot::take(&self.shared) else {
                            if !full {
                                tracing::warn!(
                                    "at max_connections ({}): closing new connections",
                                    self.shared.config.max_connections.unwrap_or_default()
                                );
                            }
                            full = true;
                            tracing::debug!(remote_addr = ?peer.remote_addr(), "over max_connections; closed");
                            drop(io);
                            continue;
                        };
                        full = false;
                        let shared = Arc::clone(&self.shared);
                        let mode = self.control.mode.subscribe();
                        connections.spawn(async move {
                            serve_connection(io, peer, shared, mode).await;
                            drop(slot);
                        });
                    }
                    Some(Err(e)) if is_connection_error(&e) => {
                        // That one connection went away before it was accepted; the next
                        // may be fine.
                        tracing::debug!("accept: connection lost before it was accepted: {e}");
                        resume_at = None;
                    }
                    Some(Err(e)) => {
                        // Out of file descriptors or memory: every accept would fail alike,
                        // so wait rather than spin, longer each time.
                        let pause = backoff.failed();
                        tracing::warn!("accept failed: {e}; retrying in {pause:?}");
                        resume_at = Some(Instant::now() + pause);
                    }
                    None => break,
                },
                Some(_) = connections.join_next() => {}
                _ = mode.changed() => break,
            }
        }
        drop(listener);
        loop {
            if *mode.borrow_and_update() == Mode::Stopped {
                connections.abort_all();
                while connections.join_next().await.is_some() {}
                break;
            }
            tokio::select! {
                next = connections.join_next() => if next.is_none() { break },
                _ = mode.changed() => {}
            }
        }
        Ok(())
    }
}

/// A connection's place among the server's `max_connections`, given back when dropped.
struct Slot(Arc<Shared>);

impl Slot {
    /// A place for one more connection, if the limit allows.
    fn take(shared: &Arc<Shared>) -> Option<Slot> {
        let open = shared.connections.fetch_add(1, Ordering::AcqRel);
        let slot = Slot(Arc::clone(shared));
        // Over the limit: dropping the slot gives the count back.
        (shared.config.max_connections.is_none_or(|max| open < max)).then_some(slot)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.connections.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Whether a failed accept concerns only the connection being accepted (its peer reset or
/// aborted it first), not the listener: then the next accept goes ahead at once.
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
            | io::ErrorKind::Interrupted
    )
}

/// Pauses between failed accepts (EMFILE, ENFILE, ENOMEM...): 5 ms, doubling on each failure
/// in a row up to 1 s, back to the start after an accept succeeds. Go's `net/http` does the
/// same.
#[derive(Debug, Default)]
struct AcceptBackoff {
    last: Option<Duration>,
}

impl AcceptBackoff {
    const FIRST: Duration = Duration::from_millis(5);
    const MAX: Duration = Duration::from_secs(1);

    /// The pause after one more failure.
    fn failed(&mut self) -> Duration {
        let pause = match self.last {
            None => Self::FIRST,
            Some(last) => (last * 2).min(Self::MAX),
        };
        self.last = Some(pause);
        pause
    }

    fn succeeded(&mut self) {
        self.last = None;
    }
}

struct ServingGuard<'a>(&'a Control);

impl Drop for ServingGuard<'_> {
    fn drop(&mut self) {
        self.0.serving.send_modify(|n| *n -= 1);
    }
}

impl Server {
    /// Serves one connection in a task of its own (an in-process pipe's server end).
    pub(crate) fn spawn_connection<IO>(&self, io: IO)
    where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let shared = Arc::clone(&self.shared);
        let mode = self.control.mode.subscribe();
        tokio::spawn(serve_connection(io, Peer::default(), shared, mode));
    }

    /// Serves one connection, made or accepted by the caller, until it closes or the server
    /// stops: the server's credentials apply (TLS runs first if it has TLS), and `peer` is
    /// what its calls see as their [`Peer`]. The seam under
    /// [`serve_incoming`](Server::serve_incoming), for a caller running its own accept loop.
    ///
    /// A [`graceful_stop`](Server::graceful_stop) sends this connection GOAWAY too, but
    /// does not wait for it: the caller owns the future.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use grpc_runtime::{Peer, server::Server};
    ///
    /// # async fn f(server: Server) -> std::io::Result<()> {
    /// let listener = tokio::net::TcpListener::bind("127.0.0.1:50051").await?;
    /// loop {
    ///     let (stream, remote) = listener.accept().await?;
    ///     let peer = Peer::new(Some(remote), stream.local_addr().ok());
    ///     tokio::spawn(server.serve_connection(stream, peer));
    /// }
    /// # }
    /// ```
    pub fn serve_connection<IO>(
        &self,
        io: IO,
        peer: Peer,
    ) -> impl Future<Output = ()> + Send + 'static
    where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let shared = Arc::clone(&self.shared);
        let mode = self.control.mode.subscribe();
        serve_connection(io, peer, shared, mode)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_backoff_doubles_to_a_second_and_resets() {
        let mut backoff = AcceptBackoff::default();
        let pauses: Vec<u128> = (0..10).map(|_| backoff.failed().as_millis()).collect();
        assert_eq!(pauses, [5, 10, 20, 40, 80, 160, 320, 640, 1000, 1000]);
        backoff.succeeded();
        assert_eq!(backoff.failed(), Duration::from_millis(5));
    }

    #[test]
    fn connection_errors_are_told_apart() {
        for kind in [
            io::ErrorKind::ConnectionAborted,
            io::ErrorKind::ConnectionReset,
        ] {
            assert!(is_connection_error(&io::Error::from(kind)));
        }
        assert!(!is_connection_error(&io::Error::other(
            "too many open files"
        )));
        #[cfg(target_os = "linux")]
        {
            // EMFILE, ENFILE, ENOMEM, ENOBUFS: the listener's trouble; ECONNABORTED: the peer's.
            for errno in [24, 23, 12, 105] {
                assert!(!is_connection_error(&io::Error::from_raw_os_error(errno)));
            }
            assert!(is_connection_error(&io::Error::from_raw_os_error(103)));
        }
    }
}
