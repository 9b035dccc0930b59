//! Channel behaviour: lazy connection, clear connection errors, reconnection, Unix sockets.

mod common;

use std::time::Duration;

use common::*;
use grpc_runtime::client::{Channel, Client};
use grpc_runtime::credentials::ChannelCredentials;
use grpc_runtime::server::Server;
use grpc_runtime::{Code, Request, Response};
use protobuf::well_known_types::wrappers::StringValue;

#[tokio::test]
async fn connection_refused_is_unavailable_with_the_cause() {
    // Bind then drop, so the port is (almost certainly) closed.
    let addr = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let channel = Channel::new(&format!("http://{addr}")).unwrap();
    let err = Client::new(channel)
        .unary(UNARY, Request::new(s("x")), pb::<_, StringValue>())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable);
    assert!(err.message().contains(&addr.to_string()), "{err}");
    assert!(err.message().to_lowercase().contains("refused"), "{err}");
}

/// A DNS target without a port uses gRPC-Go's default, 443, and the failure names the port
/// it tried; invalid or missing ports are setup errors (regression: `127.0.0.1:99999` dialed
/// port 443).
#[tokio::test]
async fn default_and_invalid_ports() {
    let err = Channel::new("127.0.0.1:99999").unwrap_err();
    assert!(err.is_invalid_target());
    assert!(err.to_string().contains("invalid port \"99999\""), "{err}");
    let err = Channel::new("localhost").unwrap_err();
    assert!(err.to_string().contains("missing port"), "{err}");
    let err = Channel::new("https://127.0.0.1:99999").unwrap_err();
    assert!(err.to_string().contains("invalid port \"99999\""), "{err}");
    let channel = Channel::builder("dns:///127.0.0.1")
        .credentials(ChannelCredentials::insecure())
        .connect_timeout(std::time::Duration::from_secs(2))
        .build()
        .unwrap();
    let err = channel.connect().await.unwrap_err();
    assert_eq!(err.code(), Code::Unavailable);
    assert!(err.message().contains("127.0.0.1:443"), "{err}");
}

#[tokio::test]
async fn channel_is_lazy_and_reconnects_after_the_server_restarts() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    // Made before any server exists: no connection yet, no error.
    let client = Client::new(Channel::new(&format!("http://{addr}")).unwrap());

    let serve = |listener: tokio::net::TcpListener| {
        let server = Server::builder().add_service(Echo::default()).build();
        let s2 = server.clone();
        tokio::spawn(async move { s2.serve_tcp(listener).await.unwrap() });
        server
    };
    let first = serve(tokio::net::TcpListener::bind(addr).await.unwrap());
    let reply: Response<StringValue> = client
        .unary(UNARY, Request::new(s("one")), pb())
        .await
        .unwrap();
    assert_eq!(reply.get_ref().value, "one");

    first.stop().await;
    let err = client
        .unary(UNARY, Request::new(s("down")), pb::<_, StringValue>())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err}");

    // The channel is in TRANSIENT_FAILURE, backing off: a fail-fast call fails at once
    // with the last connection error; a wait-for-ready call waits for the reconnection.
    let _second = serve(tokio::net::TcpListener::bind(addr).await.unwrap());
    let mut request = Request::new(s("two"));
    request.set_wait_for_ready(true);
    request.set_timeout(Duration::from_secs(10));
    let reply: Response<StringValue> = client.unary(UNARY, request, pb()).await.unwrap();
    assert_eq!(reply.get_ref().value, "two");
}

#[tokio::test]
async fn connect_timeout() {
    // A listener that never completes the HTTP/2 handshake.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let _hold = tokio::spawn(async move {
        let mut held = Vec::new();
        loop {
            let (socket, _) = listener.accept().await.unwrap();
            held.push(socket);
        }
    });
    let channel = Channel::builder(&format!("http://{addr}"))
        .connect_timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let mut request = Request::new(s("x"));
    request.set_timeout(Duration::from_secs(5));
    let started = std::time::Instant::now();
    let err = Client::new(channel)
        .unary(UNARY, request, pb::<_, StringValue>())
        .await
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(
        matches!(err.code(), Code::Unavailable | Code::DeadlineExceeded),
        "{err}"
    );
}

#[cfg(unix)]
#[tokio::test]
async fn unix_domain_sockets() {
    let dir = std::env::temp_dir().join(format!("grpc-rust-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("echo.sock");
    let _ = std::fs::remove_file(&path);
    let listener = tokio::net::UnixListener::bind(&path).unwrap();
    let server = Server::builder().add_service(Echo::default()).build();
    let s2 = server.clone();
    tokio::spawn(async move { s2.serve_unix(listener).await.unwrap() });

    for target in [
        format!("unix:{}", path.display()),
        format!("unix://{}", path.display()),
    ] {
        let client = Client::new(Channel::new(&target).unwrap());
        let reply: Response<StringValue> = client
            .unary(UNARY, Request::new(s("over uds")), pb())
            .await
            .unwrap();
        assert_eq!(reply.get_ref().value, "over uds");
    }
    server.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_targets_are_setup_errors() {
    for target in ["", "https://", "unix:", "a b:1"] {
        let err = Channel::new(target).unwrap_err();
        assert!(err.is_invalid_target(), "{target}: {err}");
        assert!(err.to_string().contains("invalid target"), "{err}");
    }
}
