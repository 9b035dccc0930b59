//! [`Peer`]: who is at the other end of a call's connection.

use std::net::SocketAddr;

/// The other end of a call's connection, as a server handler or an interceptor sees it.
///
/// Built by the runtime for each connection and shared by its calls (no per-call copy).
/// Grows with the transport: the TLS identity joins it when TLS lands.
///
/// # Examples
///
/// ```
/// # fn f(request: &grpc_runtime::Request<()>) {
/// if let Some(peer) = request.peer() {
///     println!("call from {:?}", peer.remote_addr());
/// }
/// # }
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Peer {
    remote_addr: Option<SocketAddr>,
    local_addr: Option<SocketAddr>,
}

impl Peer {
    /// A peer with these addresses (either may be unknown: Unix sockets and in-process
    /// connections have none).
    pub fn new(remote_addr: Option<SocketAddr>, local_addr: Option<SocketAddr>) -> Peer {
        Peer {
            remote_addr,
            local_addr,
        }
    }

    /// The address of the other end, for TCP connections.
    pub fn remote_addr(&self) -> Option<SocketAddr> {
        self.remote_addr
    }

    /// Our own address on the connection, for TCP connections.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.local_addr
    }
}
