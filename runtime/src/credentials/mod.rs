//! Credentials: transport security for channels and servers ([`ChannelCredentials`],
//! [`ServerCredentials`], TLS in [`tls`]) and per-call credentials ([`CallCredentials`]).
//!
//! This is gRPC-Go's `credentials` package. Transport credentials run on every new
//! connection, on whatever byte stream carries it (TCP, a Unix socket, a
//! [dialer's](crate::client::ChannelBuilder::dialer) or an
//! [incoming stream's](crate::server::Server::serve_incoming)): TLS is layered on those seams,
//! not beside them.
//!
//! # Plaintext is a choice you make in the code
//!
//! A channel's security is either in its target's scheme (`https://` is TLS with the
//! system's roots, `http://` is plaintext) or set with
//! [`ChannelBuilder::credentials`](crate::client::ChannelBuilder::credentials); a `host:port`
//! or `dns:` target with neither does not build, as gRPC-Go refuses a dial without transport
//! credentials. `unix:` targets are plaintext unless told otherwise: the socket is local.
//! Servers are plaintext unless given [`ServerCredentials::tls`], as in gRPC-Go.

mod call;
pub mod tls;

use std::fmt;
use std::sync::Arc;

pub(crate) use call::apply as apply_call_credentials;
pub use call::{
    BearerToken, BoxError, CallCredentials, CallCredentialsFuture, CallCredentialsInfo,
    FnCallCredentials, call_credentials_fn,
};

use crate::error::Error;
use tls::{ClientTlsConfig, ClientTlsState, ServerTlsConfig, ServerTlsState};

/// How a channel secures its connections: gRPC-Go's `TransportCredentials` on the client.
///
/// Cheap to clone; clones share one configuration, so [`reload_tls`](Self::reload_tls) on
/// any of them changes what new connections of every channel built with them use.
///
/// # Examples
///
/// ```no_run
/// use grpc_runtime::client::Channel;
/// use grpc_runtime::credentials::ChannelCredentials;
/// use grpc_runtime::credentials::tls::{Certificate, ClientTlsConfig};
///
/// let ca = Certificate::from_pem_file("ca.pem")?;
/// let credentials = ChannelCredentials::tls(ClientTlsConfig::new().ca_certificate(ca))?;
/// let channel = Channel::builder("dns:///api.example.com:443")
///     .credentials(credentials)
///     .build()?;
/// # Ok::<(), grpc_runtime::Error>(())
/// ```
#[derive(Clone)]
pub struct ChannelCredentials {
    kind: ClientKind,
}

#[derive(Clone)]
enum ClientKind {
    Insecure,
    Tls(Arc<ClientTlsState>),
}

impl fmt::Debug for ChannelCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.kind {
            ClientKind::Insecure => "ChannelCredentials::Insecure",
            ClientKind::Tls(_) => "ChannelCredentials::Tls",
        })
    }
}

impl ChannelCredentials {
    /// No security: HTTP/2 in plaintext (gRPC-Go's `insecure.NewCredentials()`). For local
    /// sockets, tests, and networks secured below gRPC (a service mesh's sidecar).
    pub fn insecure() -> ChannelCredentials {
        ChannelCredentials {
            kind: ClientKind::Insecure,
        }
    }

    /// TLS with `config`, ALPN `h2` offered and required.
    ///
    /// # Errors
    ///
    /// If the configuration is invalid (a bad key, no system roots to trust).
    pub fn tls(config: ClientTlsConfig) -> Result<ChannelCredentials, Error> {
        Ok(ChannelCredentials {
            kind: ClientKind::Tls(Arc::new(ClientTlsState::new(&config)?)),
        })
    }

    /// Replaces the TLS configuration (a rotated client certificate, a new CA bundle) for
    /// connections made from now on; connections already up keep theirs. The server name
    /// override sent as `:authority` stays the one the channel was built with.
    ///
    /// # Errors
    ///
    /// If the new configuration is invalid (the old one stays), or these credentials are
    /// not TLS.
    pub fn reload_tls(&self, config: ClientTlsConfig) -> Result<(), Error> {
        match &self.kind {
            ClientKind::Tls(state) => state.reload(&config),
            ClientKind::Insecure => Err(Error::invalid_config(
                "cannot reload TLS on insecure channel credentials",
            )),
        }
    }

    /// Whether connections are secured (TLS).
    pub fn is_secure(&self) -> bool {
        matches!(self.kind, ClientKind::Tls(_))
    }

    pub(crate) fn tls_state(&self) -> Option<&ClientTlsState> {
        match &self.kind {
            ClientKind::Tls(state) => Some(state),
            ClientKind::Insecure => None,
        }
    }
}

/// How a server secures the connections it accepts: gRPC-Go's `grpc.Creds` server option.
///
/// Cheap to clone; [`reload_tls`](Self::reload_tls) changes what new connections get,
/// without restarting the server (certificate rotation).
///
/// # Examples
///
/// ```no_run
/// use grpc_runtime::credentials::ServerCredentials;
/// use grpc_runtime::credentials::tls::{Identity, ServerTlsConfig};
/// use grpc_runtime::server::Server;
///
/// let identity = Identity::from_pem_files("server.pem", "server.key")?;
/// let credentials = ServerCredentials::tls(ServerTlsConfig::new(identity))?;
/// let server = Server::builder().credentials(credentials.clone()).build();
///
/// // Later, when the files have been renewed:
/// let renewed = Identity::from_pem_files("server.pem", "server.key")?;
/// credentials.reload_tls(ServerTlsConfig::new(renewed))?;
/// # let _ = server;
/// # Ok::<(), grpc_runtime::Error>(())
/// ```
#[derive(Clone)]
pub struct ServerCredentials {
    tls: Option<Arc<ServerTlsState>>,
}

impl fmt::Debug for ServerCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.tls {
            None => "ServerCredentials::Insecure",
            Some(_) => "ServerCredentials::Tls",
        })
    }
}

impl ServerCredentials {
    /// No security: HTTP/2 in plaintext (the default).
    pub fn insecure() -> ServerCredentials {
        ServerCredentials { tls: None }
    }

    /// TLS with `config`; clients must negotiate ALPN `h2`.
    ///
    /// # Errors
    ///
    /// If the configuration is invalid (a key that does not match the certificate).
    pub fn tls(config: ServerTlsConfig) -> Result<ServerCredentials, Error> {
        Ok(ServerCredentials {
            tls: Some(Arc::new(ServerTlsState::new(&config)?)),
        })
    }

    /// Replaces the TLS configuration for connections accepted from now on; connections
    /// already up keep theirs.
    ///
    /// # Errors
    ///
    /// If the new configuration is invalid (the old one stays), or these credentials are
    /// not TLS.
    pub fn reload_tls(&self, config: ServerTlsConfig) -> Result<(), Error> {
        match &self.tls {
            Some(state) => state.reload(&config),
            None => Err(Error::invalid_config(
                "cannot reload TLS on insecure server credentials",
            )),
        }
    }

    /// Whether connections are secured (TLS).
    pub fn is_secure(&self) -> bool {
        self.tls.is_some()
    }

    pub(crate) fn tls_state(&self) -> Option<&ServerTlsState> {
        self.tls.as_deref()
    }
}
