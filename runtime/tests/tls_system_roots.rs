//! `https://` targets trust the system's roots. rustls-native-certs reads `SSL_CERT_FILE`
//! first, so pointing it at a test CA makes "the system's roots" ours: alone in this test
//! binary, because the roots are read once per process.

mod common;

use common::*;
use grpc_runtime::client::{Channel, Client};
use grpc_runtime::credentials::ServerCredentials;
use grpc_runtime::credentials::tls::{Identity, ServerTlsConfig};
use grpc_runtime::{Code, Request, Response};
use protobuf::well_known_types::wrappers::StringValue;
use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};

#[tokio::test]
async fn https_target_uses_the_system_roots() {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_key = KeyPair::generate().unwrap();
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .signed_by(&key, &ca, &ca_key)
        .unwrap();

    let dir = std::env::temp_dir().join(format!("grpc-rust-roots-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca_file = dir.join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();
    // SAFETY: set before any thread of this process reads the environment (the test runtime
    // is single-threaded and this is the binary's only test).
    unsafe { std::env::set_var("SSL_CERT_FILE", &ca_file) };

    let identity = Identity::from_pem(leaf.pem(), key.serialize_pem()).unwrap();
    let credentials = ServerCredentials::tls(ServerTlsConfig::new(identity)).unwrap();
    let srv = start_with(|b| b.credentials(credentials)).await;
    let channel = Channel::new(&format!("https://localhost:{}", srv.addr.port())).unwrap();
    let reply: Response<StringValue> = Client::new(channel)
        .unary(UNARY, Request::new(s("roots")), pb())
        .await
        .unwrap();
    assert_eq!(reply.get_ref().value, "roots");

    // The same server by a name its certificate does not carry: refused.
    let channel = Channel::new(&format!("https://127.0.0.1:{}", srv.addr.port())).unwrap();
    let err = Client::new(channel)
        .unary(
            UNARY,
            Request::new(s("x")),
            pb::<StringValue, StringValue>(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
