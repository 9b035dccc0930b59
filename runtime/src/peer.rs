//! [`Peer`]: who is at the other end of a call's connection.

use std::net::SocketAddr;

use crate::credentials::tls::TlsInfo;

/// The other end of a call's connection, as a server handler or an interceptor sees it.
///
/// Built by the runtime for each connection and shared by its calls (no per-call copy): the
/// addresses, and on a TLS connection what the handshake established ([`TlsInfo`]: the
/// client's verified certificates, SNI, the protocol), so an interceptor can authorize by
/// client certificate.
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
    tls: Option<TlsInfo>,
}

impl Peer {
    /// A peer with these addresses (either may be unknown: Unix sockets and in-process
    /// connections have none).
    pub fn new(remote_addr: Option<SocketAddr>, local_addr: Option<SocketAddr>) -> Peer {
        Peer {
            remote_addr,
            local_addr,
            tls: None,
        }
    }

    /// This peer, on a connection secured by TLS.
    pub(crate) fn with_tls(mut self, tls: TlsInfo) -> Peer {
        self.tls = Some(tls);
        self
    }

    /// What TLS established, if the connection is secured by it.
    pub fn tls(&self) -> Option<&TlsInfo> {
        self.tls.as_ref()
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
