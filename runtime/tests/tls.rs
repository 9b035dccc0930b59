//! TLS over real sockets: server and mutual authentication, what the server learns of its
//! peer, the failures a client sees (unknown CA, wrong name, expired, no certificate, no
//! ALPN), reloading certificates, TLS over the dialer and incoming-stream seams, and call
//! credentials. Certificates are made per test with rcgen.

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use grpc_runtime::client::{CallOptions, Channel, Client};
use grpc_runtime::credentials::tls::{
    Certificate, ClientAuth, ClientTlsConfig, Identity, ServerTlsConfig, TlsInfo,
};
use grpc_runtime::credentials::{
    BearerToken, CallCredentials, ChannelCredentials, ServerCredentials, call_credentials_fn,
};
use grpc_runtime::interceptor::from_fn;
use grpc_runtime::server::{Server, ServerBuilder};
use grpc_runtime::{Code, MetadataMap, Request, Status};
use protobuf::well_known_types::wrappers::StringValue;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};

/// A CA that signs leaf certificates.
struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Ca { cert, key }
    }

    fn certificate(&self) -> Certificate {
        Certificate::from_pem(self.cert.pem()).unwrap()
    }

    /// A leaf for `names`, valid now (or expired, if asked).
    fn leaf(&self, cn: &str, names: &[&str], expired: bool) -> Identity {
        let (cert, key) = self.leaf_parts(cn, names, expired);
        Identity::from_pem(cert.pem(), key.serialize_pem()).unwrap()
    }

    fn leaf_parts(&self, cn: &str, names: &[&str], expired: bool) -> (rcgen::Certificate, KeyPair) {
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let mut params = CertificateParams::new(names).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        if expired {
            params.not_before = rcgen::date_time_ymd(2020, 1, 1);
            params.not_after = rcgen::date_time_ymd(2021, 1, 1);
        }
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        (cert, key)
    }

    fn server_identity(&self) -> Identity {
        self.leaf("server", &["server.test", "localhost", "127.0.0.1"], false)
    }
}

/// What the server saw of one call: the peer's TLS state and the `authorization` header.
type Sighting = (Option<TlsInfo>, Option<String>);

/// What the server saw of each call.
#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<Sighting>>>);

impl Seen {
    fn last(&self) -> Sighting {
        self.0
            .lock()
            .unwrap()
            .last()
            .cloned()
            .expect("a call was seen")
    }
}

async fn tls_server(config: ServerTlsConfig) -> (Running, Seen, ServerCredentials) {
    let credentials = ServerCredentials::tls(config).unwrap();
    let seen = Seen::default();
    let (c, s) = (credentials.clone(), seen.clone());
    let running = start_with(move |b: ServerBuilder| {
        b.credentials(c).interceptor(from_fn(move |call| {
            let tls = call.peer().and_then(|p| p.tls()).cloned();
            let auth = call.metadata().get("authorization").map(str::to_owned);
            s.0.lock().unwrap().push((tls, auth));
            Ok(())
        }))
    })
    .await;
    (running, seen, credentials)
}

fn client_tls(ca: &Ca) -> ClientTlsConfig {
    ClientTlsConfig::new()
        .ca_certificate(ca.certificate())
        .server_name("server.test")
}

fn tls_channel(addr: SocketAddr, config: ClientTlsConfig) -> Channel {
    Channel::builder(&addr.to_string())
        .credentials(ChannelCredentials::tls(config).unwrap())
        .connect_timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

async fn say(channel: &Channel, text: &str) -> Result<String, Status> {
    let reply: grpc_runtime::Response<StringValue> = Client::new(channel.clone())
        .unary(UNARY, Request::new(s(text)), pb())
        .await?;
    Ok(reply.into_inner().value)
}

#[tokio::test]
async fn server_tls_all_four_kinds_and_what_the_server_sees() {
    let ca = Ca::new("test CA");
    let (srv, seen, _) = tls_server(ServerTlsConfig::new(ca.server_identity())).await;
    let channel = tls_channel(srv.addr, client_tls(&ca));
    let client = Client::new(channel.clone());

    assert_eq!(say(&channel, "over tls").await.unwrap(), "over tls");
    let mut count = client
        .server_streaming(COUNT, Request::new(n(3)), pb::<_, StringValue>())
        .await
        .unwrap();
    let mut got = Vec::new();
    while let Some(m) = count.message().await.unwrap() {
        got.push(m.value);
    }
    assert_eq!(got.len(), 3);
    let mut chat = chat(
        &client,
        Request::new(futures_util::stream::iter(vec![s("a"), s("b")])),
    )
    .await
    .unwrap();
    assert_eq!(chat.message().await.unwrap().unwrap().value, "a");

    let (tls, _) = seen.last();
    let tls = tls.expect("the server sees TLS state");
    assert_eq!(
        tls.server_name(),
        Some("server.test"),
        "SNI is the override"
    );
    assert_eq!(tls.alpn_protocol(), "h2");
    assert_eq!(tls.protocol_version(), "TLSv1_3");
    assert!(
        tls.cipher_suite().starts_with("TLS13_"),
        "{}",
        tls.cipher_suite()
    );
    assert!(
        tls.peer_certificates().is_empty(),
        "no client certificate was sent"
    );
}

#[tokio::test]
async fn https_and_dns_targets_with_tls_credentials() {
    let ca = Ca::new("test CA");
    let (srv, seen, _) = tls_server(ServerTlsConfig::new(ca.server_identity())).await;
    let port = srv.addr.port();
    let credentials =
        ChannelCredentials::tls(ClientTlsConfig::new().ca_certificate(ca.certificate())).unwrap();
    for target in [
        format!("https://localhost:{port}"),
        format!("dns:///localhost:{port}"),
    ] {
        let channel = Channel::builder(&target)
            .credentials(credentials.clone())
            .build()
            .unwrap();
        assert_eq!(say(&channel, "hi").await.unwrap(), "hi", "{target}");
        // SNI is the target's host name; none is sent for an IP address.
        assert_eq!(seen.last().0.unwrap().server_name(), Some("localhost"));
    }
    let channel = Channel::builder(&format!("127.0.0.1:{port}"))
        .credentials(credentials)
        .build()
        .unwrap();
    assert_eq!(say(&channel, "by address").await.unwrap(), "by address");
    assert_eq!(seen.last().0.unwrap().server_name(), None);
}

#[tokio::test]
async fn mutual_tls_required_lets_in_only_clients_with_a_trusted_certificate() {
    let ca = Ca::new("test CA");
    let client_ca = Ca::new("client CA");
    let config = ServerTlsConfig::new(ca.server_identity())
        .client_auth(ClientAuth::Required(client_ca.certificate()));
    let (srv, seen, _) = tls_server(config).await;

    let alice = client_ca.leaf("alice", &["alice.client.test"], false);
    let alice_der = alice.certificates()[0].clone();
    let channel = tls_channel(srv.addr, client_tls(&ca).identity(alice));
    assert_eq!(say(&channel, "mtls").await.unwrap(), "mtls");
    let tls = seen.last().0.unwrap();
    assert_eq!(tls.peer_certificates().len(), 1);
    assert_eq!(
        tls.peer_certificates()[0],
        alice_der,
        "the verified client leaf"
    );

    // No certificate: refused, and the client is told why.
    let err = say(&tls_channel(srv.addr, client_tls(&ca)), "x")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err}");
    assert!(err.message().contains("CertificateRequired"), "{err}");

    // A certificate from a CA the server does not trust: refused.
    let mallory = ca.leaf("mallory", &["mallory.client.test"], false);
    let err = say(
        &tls_channel(srv.addr, client_tls(&ca).identity(mallory)),
        "x",
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err}");
    assert!(err.message().to_lowercase().contains("unknown"), "{err}");

    // The server kept serving the good client throughout.
    assert_eq!(say(&channel, "still here").await.unwrap(), "still here");
}

#[tokio::test]
async fn mutual_tls_optional_lets_both_in_and_tells_them_apart() {
    let ca = Ca::new("test CA");
    let config = ServerTlsConfig::new(ca.server_identity())
        .client_auth(ClientAuth::Optional(ca.certificate()));
    let (srv, seen, _) = tls_server(config).await;
    let with = tls_channel(
        srv.addr,
        client_tls(&ca).identity(ca.leaf("bob", &["bob.test"], false)),
    );
    say(&with, "x").await.unwrap();
    assert_eq!(seen.last().0.unwrap().peer_certificates().len(), 1);
    say(&tls_channel(srv.addr, client_tls(&ca)), "x")
        .await
        .unwrap();
    assert!(seen.last().0.unwrap().peer_certificates().is_empty());
}

/// An example of authorization by client certificate: an interceptor that lets in only one
/// client, by its certificate.
#[tokio::test]
async fn an_interceptor_authorizes_by_client_certificate() {
    let ca = Ca::new("test CA");
    let alice = ca.leaf("alice", &["alice.test"], false);
    let allowed = alice.certificates()[0].clone();
    let credentials = ServerCredentials::tls(
        ServerTlsConfig::new(ca.server_identity())
            .client_auth(ClientAuth::Optional(ca.certificate())),
    )
    .unwrap();
    let srv = start_with(move |b| {
        b.credentials(credentials).interceptor(from_fn(move |call| {
            let leaf = call
                .peer()
                .and_then(|p| p.tls())
                .and_then(|tls| tls.peer_certificates().first());
            match leaf {
                Some(leaf) if *leaf == allowed => Ok(()),
                Some(_) => Err(Status::permission_denied("this client may not call")),
                None => Err(Status::unauthenticated("a client certificate is required")),
            }
        }))
    })
    .await;
    let ok = tls_channel(srv.addr, client_tls(&ca).identity(alice));
    assert_eq!(say(&ok, "hi").await.unwrap(), "hi");
    let bob = tls_channel(
        srv.addr,
        client_tls(&ca).identity(ca.leaf("bob", &["bob.test"], false)),
    );
    assert_eq!(
        say(&bob, "hi").await.unwrap_err().code(),
        Code::PermissionDenied
    );
    let anonymous = tls_channel(srv.addr, client_tls(&ca));
    assert_eq!(
        say(&anonymous, "hi").await.unwrap_err().code(),
        Code::Unauthenticated
    );
}

#[tokio::test]
async fn tls_failures_are_unavailable_with_the_reason() {
    let ca = Ca::new("test CA");
    let (srv, _, _) = tls_server(ServerTlsConfig::new(ca.server_identity())).await;

    let cases: Vec<(&str, ClientTlsConfig, &str)> = vec![
        (
            "unknown CA",
            ClientTlsConfig::new()
                .ca_certificate(Ca::new("other CA").certificate())
                .server_name("server.test"),
            "UnknownIssuer",
        ),
        (
            "wrong name",
            ClientTlsConfig::new()
                .ca_certificate(ca.certificate())
                .server_name("other.test"),
            "not valid for name \"other.test\"",
        ),
    ];
    for (what, config, reason) in cases {
        let err = say(&tls_channel(srv.addr, config), "x").await.unwrap_err();
        assert_eq!(err.code(), Code::Unavailable, "{what}: {err}");
        assert!(
            err.message().contains("TLS handshake failed"),
            "{what}: {err}"
        );
        assert!(err.message().contains(reason), "{what}: {err}");
    }

    // A plaintext client of a TLS server: the handshake never completes.
    let plain = Channel::builder(&format!("http://{}", srv.addr))
        .connect_timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    assert_eq!(
        say(&plain, "x").await.unwrap_err().code(),
        Code::Unavailable
    );

    // A TLS client of a plaintext server.
    let plain_srv = start().await;
    let err = say(&tls_channel(plain_srv.addr, client_tls(&ca)), "x")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err}");
    assert!(err.message().contains("TLS handshake failed"), "{err}");

    // The TLS server still serves good clients.
    assert_eq!(
        say(&tls_channel(srv.addr, client_tls(&ca)), "ok")
            .await
            .unwrap(),
        "ok"
    );
}

#[tokio::test]
async fn an_expired_server_certificate_is_refused() {
    let ca = Ca::new("test CA");
    let expired = ca.leaf("server", &["server.test"], true);
    let (srv, _, _) = tls_server(ServerTlsConfig::new(expired)).await;
    let err = say(&tls_channel(srv.addr, client_tls(&ca)), "x")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err}");
    assert!(err.message().contains("certificate expired"), "{err}");
}

/// A raw TLS peer, to see ALPN enforced both ways.
mod raw {
    use std::sync::Arc;

    use rustls::pki_types::ServerName;

    pub(super) fn provider() -> Arc<rustls::crypto::CryptoProvider> {
        Arc::new(rustls::crypto::ring::default_provider())
    }

    pub(super) fn client(ca: &super::Ca, alpn: Vec<Vec<u8>>) -> tokio_rustls::TlsConnector {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca.cert.der().clone()).unwrap();
        let mut config = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = alpn;
        tokio_rustls::TlsConnector::from(Arc::new(config))
    }

    pub(super) fn name() -> ServerName<'static> {
        ServerName::try_from("server.test").unwrap()
    }
}

#[tokio::test]
async fn alpn_h2_is_required_both_ways() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let ca = Ca::new("test CA");
    let (srv, _, _) = tls_server(ServerTlsConfig::new(ca.server_identity())).await;

    // A client offering no ALPN completes TLS, then the server closes without a word.
    let tcp = tokio::net::TcpStream::connect(srv.addr).await.unwrap();
    let mut tls = raw::client(&ca, Vec::new())
        .connect(raw::name(), tcp)
        .await
        .unwrap();
    let _ = tls.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").await;
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(5), tls.read(&mut buf))
        .await
        .expect("the server closes");
    assert!(matches!(read, Ok(0) | Err(_)), "no HTTP/2 for it: {read:?}");

    // A client offering only http/1.1: refused in the handshake.
    let tcp = tokio::net::TcpStream::connect(srv.addr).await.unwrap();
    let refused = raw::client(&ca, vec![b"http/1.1".to_vec()])
        .connect(raw::name(), tcp)
        .await;
    assert!(refused.is_err(), "no common protocol");

    // A TLS server that does not negotiate h2: our client refuses it.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (cert, key) = ca.leaf_parts("server", &["server.test"], false);
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into());
    let config = rustls::ServerConfig::builder_with_provider(raw::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.der().clone()], key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok(mut tls) = acceptor.accept(tcp).await {
                    let mut buf = [0u8; 1024];
                    while matches!(tls.read(&mut buf).await, Ok(n) if n > 0) {}
                }
            });
        }
    });
    let err = say(&tls_channel(addr, client_tls(&ca)), "x")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err}");
    assert!(err.message().contains("ALPN"), "{err}");
}

#[tokio::test]
async fn server_certificates_reload_without_a_restart() {
    let old_ca = Ca::new("old CA");
    let new_ca = Ca::new("new CA");
    let (srv, _, credentials) = tls_server(ServerTlsConfig::new(old_ca.server_identity())).await;
    let before = tls_channel(srv.addr, client_tls(&old_ca));
    assert_eq!(say(&before, "old").await.unwrap(), "old");

    credentials
        .reload_tls(ServerTlsConfig::new(new_ca.server_identity()))
        .unwrap();
    // New connections get the new certificate...
    assert_eq!(
        say(&tls_channel(srv.addr, client_tls(&new_ca)), "new")
            .await
            .unwrap(),
        "new"
    );
    let err = say(&tls_channel(srv.addr, client_tls(&old_ca)), "x")
        .await
        .unwrap_err();
    assert!(err.message().contains("UnknownIssuer"), "{err}");
    // ...and the connection made before keeps working.
    assert_eq!(say(&before, "still").await.unwrap(), "still");

    // An invalid configuration is refused and the current one stays.
    let bad = Identity::from_pem(
        old_ca.cert.pem(),
        KeyPair::generate().unwrap().serialize_pem(),
    )
    .unwrap();
    assert!(credentials.reload_tls(ServerTlsConfig::new(bad)).is_err());
    assert_eq!(
        say(&tls_channel(srv.addr, client_tls(&new_ca)), "kept")
            .await
            .unwrap(),
        "kept"
    );
}

#[tokio::test]
async fn channel_credentials_reload_without_rebuilding_the_channel() {
    let old_ca = Ca::new("old CA");
    let new_ca = Ca::new("new CA");
    let (srv, _, _) = tls_server(ServerTlsConfig::new(new_ca.server_identity())).await;
    let credentials = ChannelCredentials::tls(client_tls(&old_ca)).unwrap();
    let channel = Channel::builder(&srv.addr.to_string())
        .credentials(credentials.clone())
        .build()
        .unwrap();
    let err = say(&channel, "x").await.unwrap_err();
    assert!(err.message().contains("UnknownIssuer"), "{err}");
    credentials.reload_tls(client_tls(&new_ca)).unwrap();
    // The channel is backing off after the failure: a wait-for-ready call waits for the
    // next attempt, which uses the new configuration.
    let mut request = Request::new(s("rotated"));
    request.set_wait_for_ready(true);
    request.set_timeout(Duration::from_secs(10));
    let reply: grpc_runtime::Response<StringValue> = Client::new(channel)
        .unary(UNARY, request, pb())
        .await
        .unwrap();
    assert_eq!(reply.into_inner().value, "rotated");
}

#[tokio::test]
async fn tls_over_the_dialer_and_incoming_seams() {
    let ca = Ca::new("test CA");
    let credentials = ServerCredentials::tls(ServerTlsConfig::new(ca.server_identity())).unwrap();
    let server = Server::builder()
        .credentials(credentials)
        .add_service(Echo::default())
        .build();

    // serve_incoming: the server's TLS runs on each stream the caller accepts.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let incoming = futures_util::stream::unfold(listener, |l| async move {
        let accepted = l.accept().await.map(|(stream, _)| stream);
        Some((accepted, l))
    });
    tokio::spawn(server.serve_incoming(Box::pin(incoming)));

    // A dialer: the channel's TLS runs on the stream it makes.
    let channel = Channel::builder("server.test:443")
        .credentials(
            ChannelCredentials::tls(ClientTlsConfig::new().ca_certificate(ca.certificate()))
                .unwrap(),
        )
        .dialer(move || tokio::net::TcpStream::connect(addr))
        .build()
        .unwrap();
    assert_eq!(say(&channel, "seams").await.unwrap(), "seams");

    // serve_connection: one connection the caller accepted itself.
    let (client_io, server_io) = tokio::io::duplex(64 * 1024);
    tokio::spawn(server.serve_connection(server_io, grpc_runtime::Peer::default()));
    let slot = Arc::new(Mutex::new(Some(client_io)));
    let channel = Channel::builder("server.test:443")
        .credentials(
            ChannelCredentials::tls(ClientTlsConfig::new().ca_certificate(ca.certificate()))
                .unwrap(),
        )
        .dialer(move || {
            let io = slot.lock().unwrap().take();
            async move { io.ok_or_else(|| std::io::Error::other("used")) }
        })
        .build()
        .unwrap();
    assert_eq!(
        say(&channel, "one connection").await.unwrap(),
        "one connection"
    );
    server.stop().await;
}

#[test]
fn security_must_be_said_and_must_agree_with_the_target() {
    let err = Channel::new("localhost:50051").unwrap_err();
    assert!(err.is_invalid_config());
    assert!(err.to_string().contains("no transport security"), "{err}");
    let err = Channel::builder("https://localhost:1")
        .credentials(ChannelCredentials::insecure())
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("asks for TLS"), "{err}");
    let ca = Ca::new("x");
    let tls =
        ChannelCredentials::tls(ClientTlsConfig::new().ca_certificate(ca.certificate())).unwrap();
    let err = Channel::builder("http://localhost:1")
        .credentials(tls.clone())
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("asks for plaintext"), "{err}");
    // Secure-only call credentials on a plaintext channel: refused at build, as gRPC-Go does.
    let err = Channel::builder("http://localhost:1")
        .call_credentials(BearerToken::new("t").unwrap())
        .build()
        .unwrap_err();
    assert!(
        err.to_string().contains("require transport security"),
        "{err}"
    );
    Channel::builder("http://localhost:1")
        .call_credentials(BearerToken::new("t").unwrap().allow_insecure())
        .build()
        .unwrap();
    assert!(
        ChannelCredentials::insecure()
            .reload_tls(ClientTlsConfig::new())
            .is_err()
    );
    assert!(!ChannelCredentials::insecure().is_secure() && tls.is_secure());
}

#[tokio::test]
async fn call_credentials_add_metadata_over_tls() {
    let ca = Ca::new("test CA");
    let (srv, seen, _) = tls_server(ServerTlsConfig::new(ca.server_identity())).await;
    let infos = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&infos);
    let channel = Channel::builder(&srv.addr.to_string())
        .credentials(ChannelCredentials::tls(client_tls(&ca)).unwrap())
        .call_credentials(call_credentials_fn(move |info| {
            log.lock().unwrap().push(info.clone());
            async move {
                let mut md = MetadataMap::new();
                md.insert("authorization", "Bearer channel-token")?;
                Ok::<_, grpc_runtime::credentials::BoxError>(md)
            }
        }))
        .build()
        .unwrap();
    say(&channel, "x").await.unwrap();
    assert_eq!(seen.last().1.as_deref(), Some("Bearer channel-token"));
    let info = infos.lock().unwrap().last().cloned().unwrap();
    assert_eq!(info.service_url(), "https://server.test/test.Echo");
    assert_eq!(info.method(), "/test.Echo/Unary");
    assert!(info.is_secure());

    // Per call, after the channel's: both are sent.
    let client = Client::new(channel.clone())
        .with_options(CallOptions::new().call_credentials(BearerToken::new("call").unwrap()));
    let _: grpc_runtime::Response<StringValue> = client
        .unary(UNARY, Request::new(s("x")), pb())
        .await
        .unwrap();
    // The interceptor sees the first value; both were sent.
    assert_eq!(seen.last().1.as_deref(), Some("Bearer channel-token"));
    let mut request = Request::new(s("x"));
    request.set_call_credentials(BearerToken::new("per-request").unwrap());
    let _: grpc_runtime::Response<StringValue> = Client::new(channel.clone())
        .unary(UNARY, request, pb())
        .await
        .unwrap();
}

struct Failing(fn() -> grpc_runtime::credentials::BoxError);

impl CallCredentials for Failing {
    fn request_metadata<'a>(
        &'a self,
        _: &'a grpc_runtime::credentials::CallCredentialsInfo,
    ) -> grpc_runtime::credentials::CallCredentialsFuture<'a> {
        let e = (self.0)();
        Box::pin(async move { Err(e) })
    }

    fn requires_transport_security(&self) -> bool {
        false
    }
}

async fn call_with(srv: &Running, credentials: impl CallCredentials) -> Result<String, Status> {
    let mut request = Request::new(s("x"));
    request.set_call_credentials(credentials);
    let reply: grpc_runtime::Response<StringValue> =
        srv.client().unary(UNARY, request, pb()).await?;
    Ok(reply.into_inner().value)
}

#[tokio::test]
async fn call_credentials_failures_and_plaintext() {
    let srv = start().await;
    // Secure-only credentials on a plaintext connection: the call fails, nothing is sent.
    let err = call_with(&srv, BearerToken::new("t").unwrap())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated, "{err}");
    assert!(err.message().contains("plaintext"), "{err}");
    // Opted in: sent.
    call_with(&srv, BearerToken::new("t").unwrap().allow_insecure())
        .await
        .unwrap();
    // A failing source: UNAVAILABLE with its error...
    let err = call_with(&srv, Failing(|| "token endpoint unreachable".into()))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err}");
    assert!(
        err.message().contains("token endpoint unreachable"),
        "{err}"
    );
    // ...or its status...
    let err = call_with(
        &srv,
        Failing(|| Box::new(Status::permission_denied("revoked"))),
    )
    .await
    .unwrap_err();
    assert_eq!(
        (err.code(), err.message()),
        (Code::PermissionDenied, "revoked")
    );
    // ...except codes only a server may send (gRFC A54).
    let err = call_with(
        &srv,
        Failing(|| Box::new(Status::not_found("no such token"))),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), Code::Internal, "{err}");
    assert!(err.message().contains("no such token"), "{err}");
}
