//! The TLS demo's three clients get what the demo promises.

use grpc_runtime::Code;

#[tokio::test]
async fn mutual_tls_demo() {
    let outcome = examples::tls::run().await.unwrap();
    let reply = outcome.allowed.unwrap();
    assert_eq!(reply, "Hello Ada (over TLS, SNI localhost)");
    let refused = outcome.other_client.unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused}");
    let refused = outcome.no_certificate.unwrap_err();
    assert_eq!(refused.code(), Code::Unavailable, "{refused}");
    assert!(
        refused.message().contains("CertificateRequired"),
        "{refused}"
    );
}
