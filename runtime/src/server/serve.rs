//! Serving: listeners (TCP, Unix, any stream of connections) and the accept loop.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures_core::Stream;
use futures_util::StreamExt;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::task::JoinSet;

use super::connection::serve_connection;
use super::{Control, Mode, Server};
use crate::error::Error;
use crate::peer::Peer;
use crate::transport;

/// A source of connections: a TCP or a Unix listener, or a stream of them.
trait Listener: Send + 'static {
    type Io: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    /// The next connection and who is at its other end; `None` when there are no more.
    fn accept(&mut self) -> impl Future<Output = Option<std::io::Result<(Self::Io, Peer)>>> + Send;
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
        let mut connections = JoinSet::new();
        loop {
            tokio::select! {
                accepted = listener.accept() => match accepted {
                    Some(Ok((io, peer))) => {
                        let shared = Arc::clone(&self.shared);
                        let mode = self.control.mode.subscribe();
                        connections.spawn(serve_connection(io, peer, shared, mode));
                    }
                    Some(Err(e)) => {
                        // Out of file descriptors and the like: wait rather than spin.
                        tracing::warn!("accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
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
