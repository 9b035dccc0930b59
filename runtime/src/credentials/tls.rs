//! TLS on rustls: certificates, identities, the client's and the server's configuration, and
//! the handshakes [`ChannelCredentials`](super::ChannelCredentials) and
//! [`ServerCredentials`](super::ServerCredentials) run on every new connection.
//!
//! The crypto provider is rustls's `ring`: portable C and assembly that builds with the C
//! compiler every Rust toolchain already needs, where `aws-lc-rs` (rustls's default) also
//! wants cmake (and, on some targets, Go or NASM). It is passed to each configuration
//! explicitly, so nothing is installed process-wide and an application may use another
//! provider for its own TLS.

use std::fmt;
use std::io;
use std::path::Path;
use std::sync::{Arc, OnceLock, RwLock};

use rustls::RootCertStore;
use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
pub use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{PrivateKeyDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::error::Error;

/// The one application protocol gRPC runs on: HTTP/2, negotiated by ALPN.
const ALPN_H2: &[u8] = b"h2";

fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    Arc::clone(PROVIDER.get_or_init(|| Arc::new(rustls::crypto::ring::default_provider())))
}

/// One or more X.509 certificates: the CAs a side trusts.
///
/// # Examples
///
/// ```no_run
/// use grpc_runtime::credentials::tls::Certificate;
///
/// let ca = Certificate::from_pem_file("certs/ca.pem")?;
/// # Ok::<(), grpc_runtime::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Certificate {
    certs: Vec<CertificateDer<'static>>,
}

impl fmt::Debug for Certificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Certificate")
            .field("count", &self.certs.len())
            .finish()
    }
}

impl Certificate {
    /// Every certificate in PEM text (`-----BEGIN CERTIFICATE-----` blocks).
    ///
    /// # Errors
    ///
    /// If the text holds no certificate or a malformed one.
    pub fn from_pem(pem: impl AsRef<[u8]>) -> Result<Certificate, Error> {
        let certs = CertificateDer::pem_slice_iter(pem.as_ref())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| Error::invalid_config(&format!("invalid PEM certificate: {e}")))?;
        if certs.is_empty() {
            return Err(Error::invalid_config(
                "no certificate found in the PEM text",
            ));
        }
        Ok(Certificate { certs })
    }

    /// As [`from_pem`](Certificate::from_pem), reading the file at `path`.
    ///
    /// # Errors
    ///
    /// If the file cannot be read or holds no valid certificate.
    pub fn from_pem_file(path: impl AsRef<Path>) -> Result<Certificate, Error> {
        let path = path.as_ref();
        let pem = read(path)?;
        Certificate::from_pem(pem)
            .map_err(|e| Error::invalid_config(&format!("{}: {e}", path.display())))
    }

    /// One certificate in DER form.
    pub fn from_der(der: impl Into<Vec<u8>>) -> Certificate {
        Certificate {
            certs: vec![CertificateDer::from(der.into())],
        }
    }

    /// The certificates, in DER form.
    pub fn certificates(&self) -> &[CertificateDer<'static>] {
        &self.certs
    }

    fn roots(&self) -> Result<RootCertStore, Error> {
        let mut roots = RootCertStore::empty();
        for cert in &self.certs {
            roots
                .add(cert.clone())
                .map_err(|e| Error::invalid_config(&format!("invalid CA certificate: {e}")))?;
        }
        Ok(roots)
    }
}

/// A certificate chain (leaf first) and its private key: who a side says it is.
///
/// # Examples
///
/// ```no_run
/// use grpc_runtime::credentials::tls::Identity;
///
/// let identity = Identity::from_pem_files("certs/server.pem", "certs/server.key")?;
/// # Ok::<(), grpc_runtime::Error>(())
/// ```
pub struct Identity {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

impl Clone for Identity {
    fn clone(&self) -> Self {
        Identity {
            chain: self.chain.clone(),
            key: self.key.clone_key(),
        }
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the key.
        f.debug_struct("Identity")
            .field("chain", &self.chain.len())
            .finish_non_exhaustive()
    }
}

impl Identity {
    /// A chain and a key in PEM text (the key as PKCS#8, PKCS#1 or SEC1).
    ///
    /// # Errors
    ///
    /// If either is missing or malformed.
    pub fn from_pem(
        cert_chain: impl AsRef<[u8]>,
        key: impl AsRef<[u8]>,
    ) -> Result<Identity, Error> {
        let chain = Certificate::from_pem(cert_chain)?.certs;
        let key = PrivateKeyDer::from_pem_slice(key.as_ref())
            .map_err(|e| Error::invalid_config(&format!("invalid PEM private key: {e}")))?;
        Ok(Identity { chain, key })
    }

    /// As [`from_pem`](Identity::from_pem), reading two files.
    ///
    /// # Errors
    ///
    /// If a file cannot be read or is not valid.
    pub fn from_pem_files(
        cert_chain: impl AsRef<Path>,
        key: impl AsRef<Path>,
    ) -> Result<Identity, Error> {
        let (cert_path, key_path) = (cert_chain.as_ref(), key.as_ref());
        Identity::from_pem(read(cert_path)?, read(key_path)?).map_err(|e| {
            Error::invalid_config(&format!(
                "{} / {}: {e}",
                cert_path.display(),
                key_path.display()
            ))
        })
    }

    /// The certificate chain, leaf first.
    pub fn certificates(&self) -> &[CertificateDer<'static>] {
        &self.chain
    }
}

fn read(path: &Path) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|e| Error::io(format!("failed to read {}", path.display()), e))
}

/// How a client authenticates to a server. The client's side of TLS: whom it trusts, who it
/// is, and which name it expects.
///
/// By default the client trusts the system's roots (read once per process) and checks the
/// target's host name.
///
/// # Examples
///
/// ```no_run
/// use grpc_runtime::credentials::tls::{Certificate, ClientTlsConfig, Identity};
///
/// let config = ClientTlsConfig::new()
///     .ca_certificate(Certificate::from_pem_file("certs/ca.pem")?)
///     .identity(Identity::from_pem_files("certs/client.pem", "certs/client.key")?)
///     .server_name("server.test");
/// # Ok::<(), grpc_runtime::Error>(())
/// ```
#[derive(Clone, Debug, Default)]
#[must_use]
pub struct ClientTlsConfig {
    roots: Option<Certificate>,
    identity: Option<Identity>,
    server_name: Option<String>,
}

impl ClientTlsConfig {
    /// The system's roots, no client certificate, the target's host name.
    pub fn new() -> ClientTlsConfig {
        ClientTlsConfig::default()
    }

    /// Trusts these CAs instead of the system's roots (added to any set before).
    pub fn ca_certificate(mut self, ca: Certificate) -> Self {
        match &mut self.roots {
            Some(roots) => roots.certs.extend(ca.certs),
            None => self.roots = Some(ca),
        }
        self
    }

    /// Presents this certificate when the server asks for one (mutual TLS).
    pub fn identity(mut self, identity: Identity) -> Self {
        self.identity = Some(identity);
        self
    }

    /// Expects the server's certificate to be for `name` instead of the target's host, and
    /// sends it as SNI and `:authority` (gRPC-Go's server name override; for tests and for
    /// servers reached by address).
    pub fn server_name(mut self, name: impl Into<String>) -> Self {
        self.server_name = Some(name.into());
        self
    }

    fn build(&self) -> Result<ClientTls, Error> {
        let roots = match &self.roots {
            Some(ca) => ca.roots()?,
            None => system_roots()?,
        };
        let builder = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(tls_config_error)?
            .with_root_certificates(roots);
        let mut config = match &self.identity {
            Some(id) => builder
                .with_client_auth_cert(id.chain.clone(), id.key.clone_key())
                .map_err(tls_config_error)?,
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = vec![ALPN_H2.to_vec()];
        let server_name = match &self.server_name {
            Some(name) => Some(ServerName::try_from(name.clone()).map_err(|_| {
                Error::invalid_config(&format!("invalid TLS server name {name:?}"))
            })?),
            None => None,
        };
        Ok(ClientTls {
            config: Arc::new(config),
            server_name,
        })
    }
}

/// The system's trusted roots, read once per process.
fn system_roots() -> Result<RootCertStore, Error> {
    static ROOTS: OnceLock<Result<RootCertStore, String>> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let found = rustls_native_certs::load_native_certs();
            for e in &found.errors {
                tracing::debug!("reading the system's roots: {e}");
            }
            let mut roots = RootCertStore::empty();
            let (added, _ignored) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                return Err(format!(
                    "no trusted roots found on this system ({} errors); set a CA with \
                     ClientTlsConfig::ca_certificate",
                    found.errors.len()
                ));
            }
            Ok(roots)
        })
        .clone()
        .map_err(|e| Error::invalid_config(&e))
}

fn tls_config_error(e: rustls::Error) -> Error {
    Error::invalid_config(&format!("invalid TLS configuration: {e}"))
}

/// Whether and how a server asks clients for certificates.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub enum ClientAuth {
    /// Asks for none (the default).
    #[default]
    None,
    /// Asks for one and checks it against these CAs if given; clients without one are let
    /// in (a handler tells them apart by [`Peer::tls`](crate::Peer::tls)).
    Optional(Certificate),
    /// Requires one, checked against these CAs: gRPC-Go's `RequireAndVerifyClientCert`.
    Required(Certificate),
}

/// A server's side of TLS: its identity and whether it checks clients' certificates.
///
/// # Examples
///
/// ```no_run
/// use grpc_runtime::credentials::tls::{Certificate, ClientAuth, Identity, ServerTlsConfig};
///
/// let config = ServerTlsConfig::new(Identity::from_pem_files("server.pem", "server.key")?)
///     .client_auth(ClientAuth::Required(Certificate::from_pem_file("ca.pem")?));
/// # Ok::<(), grpc_runtime::Error>(())
/// ```
#[derive(Clone, Debug)]
#[must_use]
pub struct ServerTlsConfig {
    identity: Identity,
    client_auth: ClientAuth,
}

impl ServerTlsConfig {
    /// Presents `identity`; asks clients for no certificate.
    pub fn new(identity: Identity) -> ServerTlsConfig {
        ServerTlsConfig {
            identity,
            client_auth: ClientAuth::None,
        }
    }

    /// Whether clients must present a certificate, and the CAs it is checked against.
    pub fn client_auth(mut self, client_auth: ClientAuth) -> Self {
        self.client_auth = client_auth;
        self
    }

    fn build(&self) -> Result<Arc<rustls::ServerConfig>, Error> {
        let builder = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(tls_config_error)?;
        let builder = match &self.client_auth {
            ClientAuth::None => builder.with_no_client_auth(),
            ClientAuth::Optional(ca) | ClientAuth::Required(ca) => {
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(ca.roots()?), provider());
                let verifier = if matches!(self.client_auth, ClientAuth::Optional(_)) {
                    verifier.allow_unauthenticated()
                } else {
                    verifier
                };
                let verifier = verifier.build().map_err(|e| {
                    Error::invalid_config(&format!("invalid client CA configuration: {e}"))
                })?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let mut config = builder
            .with_single_cert(self.identity.chain.clone(), self.identity.key.clone_key())
            .map_err(tls_config_error)?;
        config.alpn_protocols = vec![ALPN_H2.to_vec()];
        Ok(Arc::new(config))
    }
}

/// A client's TLS state, swapped whole on reload.
#[derive(Debug)]
struct ClientTls {
    config: Arc<rustls::ClientConfig>,
    server_name: Option<ServerName<'static>>,
}

/// A client configuration that can be replaced while connections use the old one.
#[derive(Debug)]
pub(crate) struct ClientTlsState {
    current: RwLock<Arc<ClientTls>>,
    /// The override given at first build: it names the channel's `:authority`, which a
    /// reload cannot change.
    authority_override: Option<String>,
}

impl ClientTlsState {
    pub(crate) fn new(config: &ClientTlsConfig) -> Result<ClientTlsState, Error> {
        Ok(ClientTlsState {
            current: RwLock::new(Arc::new(config.build()?)),
            authority_override: config.server_name.clone(),
        })
    }

    pub(crate) fn reload(&self, config: &ClientTlsConfig) -> Result<(), Error> {
        let built = Arc::new(config.build()?);
        *self.current.write().expect("TLS config lock") = built;
        Ok(())
    }

    pub(crate) fn authority_override(&self) -> Option<&str> {
        self.authority_override.as_deref()
    }

    /// The client's TLS handshake on `io` to `host` (or the configured override), checking
    /// that the server chose HTTP/2.
    pub(crate) async fn connect<IO>(
        &self,
        host: &str,
        io: IO,
    ) -> io::Result<tokio_rustls::client::TlsStream<IO>>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        let tls = Arc::clone(&self.current.read().expect("TLS config lock"));
        let name = match &tls.server_name {
            Some(name) => name.clone(),
            None => {
                let host = host
                    .strip_prefix('[')
                    .and_then(|h| h.strip_suffix(']'))
                    .unwrap_or(host);
                ServerName::try_from(host.to_owned()).map_err(|_| {
                    io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!("{host:?} is not a valid TLS server name"),
                    )
                })?
            }
        };
        let connector = tokio_rustls::TlsConnector::from(Arc::clone(&tls.config));
        let stream = connector
            .connect(name, io)
            .await
            .map_err(|e| io::Error::new(e.kind(), format!("TLS handshake failed: {e}")))?;
        let alpn = stream.get_ref().1.alpn_protocol();
        if alpn != Some(ALPN_H2) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "TLS handshake failed: the server did not negotiate ALPN \"h2\" (it chose {})",
                    alpn.map_or("none".to_owned(), |p| format!(
                        "{:?}",
                        String::from_utf8_lossy(p)
                    ))
                ),
            ));
        }
        Ok(stream)
    }
}

/// A server configuration that can be replaced while connections use the old one.
#[derive(Debug)]
pub(crate) struct ServerTlsState {
    current: RwLock<Arc<rustls::ServerConfig>>,
}

impl ServerTlsState {
    pub(crate) fn new(config: &ServerTlsConfig) -> Result<ServerTlsState, Error> {
        Ok(ServerTlsState {
            current: RwLock::new(config.build()?),
        })
    }

    pub(crate) fn reload(&self, config: &ServerTlsConfig) -> Result<(), Error> {
        let built = config.build()?;
        *self.current.write().expect("TLS config lock") = built;
        Ok(())
    }

    /// The server's TLS handshake on `io`; what the client proved, for [`Peer`](crate::Peer).
    pub(crate) async fn accept<IO>(
        &self,
        io: IO,
    ) -> io::Result<(tokio_rustls::server::TlsStream<IO>, TlsInfo)>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        let config = Arc::clone(&self.current.read().expect("TLS config lock"));
        let stream = tokio_rustls::TlsAcceptor::from(config).accept(io).await?;
        let connection = stream.get_ref().1;
        // gRPC-Go's server likewise refuses clients that do not negotiate HTTP/2 by ALPN.
        if connection.alpn_protocol() != Some(ALPN_H2) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "the client did not negotiate ALPN \"h2\"",
            ));
        }
        let info = TlsInfo {
            peer_certificates: connection
                .peer_certificates()
                .map(<[_]>::to_vec)
                .unwrap_or_default(),
            server_name: connection.server_name().map(str::to_owned),
            protocol_version: connection
                .protocol_version()
                .and_then(|v| v.as_str())
                .unwrap_or("unknown"),
            cipher_suite: connection
                .negotiated_cipher_suite()
                .and_then(|s| s.suite().as_str())
                .unwrap_or("unknown"),
        };
        Ok((stream, info))
    }
}

/// What a TLS handshake established about a connection, as the server sees it: the client's
/// verified certificate chain, the name it asked for, and what was negotiated. The
/// application protocol is always `h2` (others are refused).
///
/// # Examples
///
/// ```
/// use grpc_runtime::{Request, Status};
///
/// // Lets in only clients that presented a (verified) certificate.
/// fn authorize(request: &Request<()>) -> Result<(), Status> {
///     let tls = request.peer().and_then(|p| p.tls());
///     match tls.and_then(|tls| tls.peer_certificates().first()) {
///         Some(_leaf) => Ok(()), // parse the DER to check the subject
///         None => Err(Status::unauthenticated("a client certificate is required")),
///     }
/// }
/// # let _ = authorize;
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct TlsInfo {
    peer_certificates: Vec<CertificateDer<'static>>,
    server_name: Option<String>,
    protocol_version: &'static str,
    cipher_suite: &'static str,
}

impl TlsInfo {
    /// The peer's certificate chain, leaf first, verified against the configured CAs; empty
    /// when it presented none.
    pub fn peer_certificates(&self) -> &[CertificateDer<'static>] {
        &self.peer_certificates
    }

    /// The server name the client asked for (SNI), if it sent one.
    pub fn server_name(&self) -> Option<&str> {
        self.server_name.as_deref()
    }

    /// The negotiated application protocol: always `h2`.
    pub fn alpn_protocol(&self) -> &str {
        "h2"
    }

    /// The TLS version, such as `"TLSv1_3"`.
    pub fn protocol_version(&self) -> &str {
        self.protocol_version
    }

    /// The cipher suite, such as `"TLS13_AES_128_GCM_SHA256"`.
    pub fn cipher_suite(&self) -> &str {
        self.cipher_suite
    }
}
