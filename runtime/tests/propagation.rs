//! What a handler sees of its call and passes on: deadline propagation to outgoing calls,
//! the call's cancellation token, the peer.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use grpc_runtime::client::{Channel, Client};
use grpc_runtime::server::{Server, ServerCall, Service};
use grpc_runtime::service::{MethodDescriptor, MethodKind, ServiceDescriptor};
use grpc_runtime::{Code, Peer, Request, Response};
use protobuf::well_known_types::wrappers::StringValue;

const M_RELAY: MethodDescriptor =
    MethodDescriptor::new("Relay", "/test.Front/Relay", MethodKind::Unary);
const M_WATCH: MethodDescriptor =
    MethodDescriptor::new("Watch", "/test.Front/Watch", MethodKind::Unary);
static FRONT: ServiceDescriptor = ServiceDescriptor::new("test.Front", &[M_RELAY, M_WATCH]);

/// `Relay` calls the echo backend with the incoming request, propagated; `Watch` spawns a
/// task that waits for the call's cancellation token, then sleeps or returns.
#[derive(Clone)]
struct Front {
    backend: Client,
    /// Set by the spawned task when the token fires.
    token_fired: Arc<AtomicBool>,
    peers: Arc<Mutex<Vec<Peer>>>,
}

impl Service for Front {
    fn descriptor(&self) -> &'static ServiceDescriptor {
        &FRONT
    }

    fn call(&self, method: &str, call: ServerCall) {
        let this = self.clone();
        match method {
            "Relay" => call.unary(
                &FRONT.methods[0],
                pb::<StringValue, StringValue>(),
                move |r: Request<StringValue>| async move {
                    let outgoing = Request::new(r.get_ref().clone()).propagate(&r);
                    this.backend.unary(UNARY, outgoing, pb()).await
                },
            ),
            "Watch" => call.unary(
                &FRONT.methods[1],
                pb(),
                move |r: Request<StringValue>| async move {
                    this.peers.lock().unwrap().push(r.peer().unwrap().clone());
                    let token = r
                        .cancellation()
                        .expect("server requests have a token")
                        .clone();
                    let fired = this.token_fired.clone();
                    tokio::spawn(async move {
                        token.cancelled().await;
                        fired.store(true, Ordering::SeqCst);
                    });
                    if r.get_ref().value == "hang" {
                        std::future::pending::<()>().await;
                    }
                    Ok(Response::new(s("done")))
                },
            ),
            _ => call.unimplemented(),
        }
    }
}

async fn start_front() -> (Running, Front, std::net::SocketAddr) {
    let backend = start().await;
    let front = Front {
        backend: Client::new(backend.channel()),
        token_fired: Arc::default(),
        peers: Arc::default(),
    };
    let server = Server::builder().add_service(front.clone()).build();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(server.serve_tcp(listener));
    (backend, front, addr)
}

#[tokio::test]
async fn a_handler_passes_its_deadline_on() {
    let (backend, _front, addr) = start_front().await;
    let client = Client::new(Channel::new(&format!("http://{addr}")).unwrap());
    let mut request = Request::new(s("sleep:2000"));
    request.set_timeout(Duration::from_millis(200));
    let started = tokio::time::Instant::now();
    let err = client
        .unary(&FRONT.methods[0], request, pb::<_, StringValue>())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::DeadlineExceeded, "{err}");
    assert!(started.elapsed() < Duration::from_millis(1500));
    // The backend got the deadline too: its handler was dropped, not left sleeping 2 s.
    let observed = backend.echo.observed.clone();
    eventually("backend handler dropped", || {
        observed.dropped.load(Ordering::SeqCst) == 1
    })
    .await;
}

#[tokio::test]
async fn propagation_without_a_deadline_keeps_the_call_unbounded() {
    let (_backend, _front, addr) = start_front().await;
    let client = Client::new(Channel::new(&format!("http://{addr}")).unwrap());
    let reply = client
        .unary(
            &FRONT.methods[0],
            Request::new(s("sleep:20")),
            pb::<_, StringValue>(),
        )
        .await
        .unwrap();
    assert_eq!(reply.get_ref().value, "sleep:20");
}

#[tokio::test]
async fn the_cancellation_token_fires_when_the_client_cancels() {
    let (_backend, front, addr) = start_front().await;
    let client = Client::new(Channel::new(&format!("http://{addr}")).unwrap());
    let call = client.unary(
        &FRONT.methods[1],
        Request::new(s("hang")),
        pb::<_, StringValue>(),
    );
    // The client gives up (drops the call): the stream is reset, the handler dropped, and
    // work the handler spawned sees the token fire.
    assert!(
        tokio::time::timeout(Duration::from_millis(100), call)
            .await
            .is_err()
    );
    let fired = front.token_fired.clone();
    eventually("token fired", || fired.load(Ordering::SeqCst)).await;
}

#[tokio::test]
async fn the_cancellation_token_fires_when_the_call_ends() {
    let (_backend, front, addr) = start_front().await;
    let client = Client::new(Channel::new(&format!("http://{addr}")).unwrap());
    let reply = client
        .unary(
            &FRONT.methods[1],
            Request::new(s("quick")),
            pb::<_, StringValue>(),
        )
        .await
        .unwrap();
    assert_eq!(reply.get_ref().value, "done");
    let fired = front.token_fired.clone();
    eventually("token fired", || fired.load(Ordering::SeqCst)).await;
}

#[tokio::test]
async fn handlers_see_the_peer() {
    let (_backend, front, addr) = start_front().await;
    let client = Client::new(Channel::new(&format!("http://{addr}")).unwrap());
    client
        .unary(
            &FRONT.methods[1],
            Request::new(s("quick")),
            pb::<_, StringValue>(),
        )
        .await
        .unwrap();
    let peers = front.peers.lock().unwrap().clone();
    assert_eq!(peers.len(), 1);
    assert_eq!(peers[0].local_addr(), Some(addr));
    let remote = peers[0].remote_addr().unwrap();
    assert!(remote.ip().is_loopback());
    assert_ne!(remote.port(), addr.port());
}

/// A call with a cancellation token ends when the token is cancelled (as a propagated call
/// ends with its parent).
#[tokio::test]
async fn a_call_ends_when_its_token_is_cancelled() {
    let srv = start().await;
    let client = Client::new(srv.channel());
    let parent = grpc_runtime::CancellationToken::new();
    let mut outgoing = Request::new(s("sleep:5000"));
    outgoing.set_cancellation(parent.clone());
    let call =
        tokio::spawn(async move { client.unary(UNARY, outgoing, pb::<_, StringValue>()).await });
    tokio::time::sleep(Duration::from_millis(50)).await;
    parent.cancel();
    let err = call.await.unwrap().unwrap_err();
    assert_eq!(err.code(), Code::Cancelled, "{err}");
    let observed = srv.echo.observed.clone();
    eventually("handler dropped", || {
        observed.dropped.load(Ordering::SeqCst) == 1
    })
    .await;
}
