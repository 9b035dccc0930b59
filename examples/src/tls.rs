//! Mutual TLS, authorization by client certificate, and a bearer token: the greeter secured
//! end to end (`cargo run -p examples --bin tls-demo`).
//!
//! The certificates are minted in memory for the demo (a CA, the server's, two clients');
//! a real deployment loads PEM files with `Identity::from_pem_files` and
//! `Certificate::from_pem_file`, and can rotate them with `reload_tls`.

use grpc_runtime::client::Channel;
use grpc_runtime::credentials::tls::{
    Certificate, CertificateDer, ClientAuth, ClientTlsConfig, Identity, ServerTlsConfig,
};
use grpc_runtime::credentials::{BearerToken, ChannelCredentials, ServerCredentials};
use grpc_runtime::interceptor::{CallInfo, from_fn};
use grpc_runtime::server::Server;
use grpc_runtime::{Request, Response, Status};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};

use crate::proto::helloworld::{HelloReply, HelloRequest};
use crate::proto::helloworld_grpc::{Greeter, GreeterClient, GreeterServer};

/// The token the server expects from its clients.
const TOKEN: &str = "demo-token";

/// A throwaway certificate authority, for the demo only.
pub struct DemoCa {
    cert: rcgen::Certificate,
    key: KeyPair,
}

impl DemoCa {
    /// A new CA.
    ///
    /// # Panics
    ///
    /// If rcgen cannot make a key (it always can with its ring backend).
    pub fn new() -> DemoCa {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("no names");
        params
            .distinguished_name
            .push(DnType::CommonName, "demo CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let key = KeyPair::generate().expect("a key");
        let cert = params.self_signed(&key).expect("a CA certificate");
        DemoCa { cert, key }
    }

    /// The CA's certificate, to trust.
    pub fn certificate(&self) -> Certificate {
        Certificate::from_pem(self.cert.pem()).expect("rcgen writes valid PEM")
    }

    /// A certificate and key for `names`, signed by this CA.
    ///
    /// # Panics
    ///
    /// If a name is not a valid DNS name or IP address.
    pub fn issue(&self, common_name: &str, names: &[&str]) -> Identity {
        let names = names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>();
        let mut params = CertificateParams::new(names).expect("valid names");
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        let key = KeyPair::generate().expect("a key");
        let cert = params
            .signed_by(&key, &self.cert, &self.key)
            .expect("a leaf certificate");
        Identity::from_pem(cert.pem(), key.serialize_pem()).expect("rcgen writes valid PEM")
    }
}

impl std::fmt::Debug for DemoCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DemoCa")
    }
}

impl Default for DemoCa {
    fn default() -> Self {
        DemoCa::new()
    }
}

struct SecureGreeter;

impl Greeter for SecureGreeter {
    async fn say_hello(
        &self,
        request: Request<HelloRequest>,
    ) -> Result<Response<HelloReply>, Status> {
        // The handler sees the peer too: here, the name the client asked for (SNI).
        let sni = request
            .peer()
            .and_then(|p| p.tls())
            .and_then(|tls| tls.server_name())
            .unwrap_or("-")
            .to_owned();
        let mut reply = HelloReply::new();
        reply.message = format!("Hello {} (over TLS, SNI {sni})", request.get_ref().name);
        Ok(Response::new(reply))
    }
}

/// Lets a call in only if its connection's client certificate is one of `allowed` and it
/// carries the bearer token. A real service would parse the certificate (x509-parser, say)
/// and check its subject; comparing the DER pins exact certificates.
fn authorize(
    allowed: Vec<CertificateDer<'static>>,
) -> impl Fn(&mut CallInfo) -> Result<(), Status> {
    move |call| {
        let leaf = call
            .peer()
            .and_then(|p| p.tls())
            .and_then(|tls| tls.peer_certificates().first());
        match leaf {
            Some(leaf) if allowed.contains(leaf) => {}
            Some(_) => return Err(Status::permission_denied("client certificate not allowed")),
            None => return Err(Status::unauthenticated("a client certificate is required")),
        }
        if call.metadata().get("authorization") != Some(&*format!("Bearer {TOKEN}")) {
            return Err(Status::unauthenticated("missing or wrong bearer token"));
        }
        Ok(())
    }
}

/// What the demo's three clients got back.
#[derive(Debug)]
pub struct Outcome {
    /// The allowed client's reply.
    pub allowed: Result<String, Status>,
    /// A client with a valid certificate that is not on the allow-list.
    pub other_client: Result<String, Status>,
    /// A client with no certificate at all (refused in the TLS handshake).
    pub no_certificate: Result<String, Status>,
}

/// Runs a mutual-TLS greeter on a loopback port and calls it as three clients.
///
/// # Errors
///
/// If the server cannot be set up.
pub async fn run() -> Result<Outcome, Box<dyn std::error::Error>> {
    let ca = DemoCa::new();
    let alice = ca.issue("alice", &["alice.clients.test"]);
    let mallory = ca.issue("mallory", &["mallory.clients.test"]);

    // Server: its certificate, clients' certificates required and checked against the CA,
    // then the interceptor's allow-list.
    let tls = ServerTlsConfig::new(ca.issue("greeter", &["localhost", "127.0.0.1"]))
        .client_auth(ClientAuth::Required(ca.certificate()));
    let server = Server::builder()
        .credentials(ServerCredentials::tls(tls)?)
        .interceptor(from_fn(authorize(vec![alice.certificates()[0].clone()])))
        .add_service(GreeterServer::new(SecureGreeter))
        .build();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let serving = tokio::spawn(server.serve_tcp(listener));

    let call = |identity: Option<Identity>| {
        let ca = ca.certificate();
        async move {
            let mut config = ClientTlsConfig::new().ca_certificate(ca);
            if let Some(identity) = identity {
                config = config.identity(identity);
            }
            let channel = Channel::builder(&format!("https://localhost:{port}"))
                .credentials(
                    ChannelCredentials::tls(config).map_err(|e| Status::internal(e.to_string()))?,
                )
                .call_credentials(BearerToken::new(TOKEN).expect("a valid header value"))
                .build()
                .map_err(|e| Status::internal(e.to_string()))?;
            let mut request = HelloRequest::new();
            request.name = "Ada".to_owned();
            let reply = GreeterClient::new(channel).say_hello(request).await?;
            Ok::<_, Status>(reply.into_inner().message)
        }
    };
    let outcome = Outcome {
        allowed: call(Some(alice)).await,
        other_client: call(Some(mallory)).await,
        no_certificate: call(None).await,
    };
    server.graceful_stop().await;
    serving.await??;
    Ok(outcome)
}
