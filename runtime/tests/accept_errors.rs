//! A listener that fails: the accept loop backs off on resource errors (out of file
//! descriptors, memory), goes on at once after a connection's own errors, keeps serving, and
//! still stops when asked. On the paused clock, through `serve_incoming`.

mod common;

use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Echo, UNARY, s};
use grpc_runtime::Request;
use grpc_runtime::client::{Channel, Client};
use grpc_runtime::credentials::ChannelCredentials;
use grpc_runtime::server::Server;
use protobuf::well_known_types::wrappers::StringValue;
use tokio::io::DuplexStream;
use tokio::time::Instant;

/// What the scripted listener hands out, in order; after the script it waits forever.
enum Next {
    Fail(io::Error),
    Connection,
}

/// When (since the start) each accept asked the listener for its next item.
type Pulls = Arc<Mutex<Vec<Duration>>>;

/// A `serve_incoming` stream playing `script`, recording when each item was asked for. Each
/// `Next::Connection` is the server end of a pipe whose client end goes to the returned slot.
fn scripted(
    script: Vec<Next>,
) -> (
    impl futures_core::Stream<Item = io::Result<DuplexStream>> + Send + 'static,
    Pulls,
    Arc<Mutex<Vec<DuplexStream>>>,
) {
    let start = Instant::now();
    let pulls = Pulls::default();
    let clients = Arc::new(Mutex::new(Vec::new()));
    let (p, c) = (pulls.clone(), clients.clone());
    let stream = futures_util::stream::unfold(script.into_iter(), move |mut script| {
        p.lock().unwrap().push(start.elapsed());
        let next = script.next();
        let clients = c.clone();
        async move {
            let item = match next? {
                Next::Fail(e) => Err(e),
                Next::Connection => {
                    let (client, server) = tokio::io::duplex(64 * 1024);
                    clients.lock().unwrap().push(client);
                    Ok(server)
                }
            };
            Some((item, script))
        }
    });
    // After the script: pending forever, as a listener with nothing to accept.
    let stream = futures_util::StreamExt::chain(stream, futures_util::stream::pending());
    (stream, pulls, clients)
}

/// A client over one pipe end the scripted listener handed out.
fn client_over(clients: &Arc<Mutex<Vec<DuplexStream>>>) -> Client {
    let clients = clients.clone();
    let channel = Channel::builder("memory.test:1")
        .credentials(ChannelCredentials::insecure())
        .dialer(move || {
            let io = clients.lock().unwrap().pop();
            async move { io.ok_or_else(|| io::Error::other("no connection accepted")) }
        })
        .build()
        .unwrap();
    Client::new(channel)
}

/// Resource exhaustion as the OS reports it (EMFILE on Linux).
fn emfile() -> io::Error {
    if cfg!(target_os = "linux") {
        io::Error::from_raw_os_error(24)
    } else {
        io::Error::other("too many open files")
    }
}

/// The gaps between consecutive pulls, in whole milliseconds.
fn gaps(pulls: &Pulls) -> Vec<u128> {
    let pulls = pulls.lock().unwrap();
    pulls
        .windows(2)
        .map(|w| (w[1] - w[0]).as_millis())
        .collect()
}

async fn wait_for_pulls(pulls: &Pulls, n: usize) {
    for _ in 0..10_000 {
        if pulls.lock().unwrap().len() >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    panic!(
        "the accept loop asked for {n} items: got {:?}",
        pulls.lock().unwrap()
    );
}

#[tokio::test(start_paused = true)]
async fn resource_errors_back_off_doubling_to_a_second_then_reset_on_success() {
    let mut script: Vec<Next> = (0..11).map(|_| Next::Fail(emfile())).collect();
    script.push(Next::Connection);
    script.extend((0..2).map(|_| Next::Fail(emfile())));
    let (incoming, pulls, clients) = scripted(script);
    let server = Server::builder().add_service(Echo::default()).build();
    let serving = tokio::spawn(server.serve_incoming(incoming));

    // 11 failures, the connection, 2 failures, then the pending pull: 15 pulls.
    wait_for_pulls(&pulls, 15).await;
    assert_eq!(
        gaps(&pulls),
        // Doubling from 5 ms, capped at 1 s; none after the connection; again from 5 ms.
        [5, 10, 20, 40, 80, 160, 320, 640, 1000, 1000, 1000, 0, 5, 10]
    );

    // The loop kept going: the connection it accepted between the failures serves calls.
    let client = client_over(&clients);
    let reply = client
        .unary(
            UNARY,
            Request::new(s("still serving")),
            common::pb::<_, StringValue>(),
        )
        .await
        .unwrap();
    assert_eq!(reply.into_inner().value, "still serving");

    server.stop().await;
    serving.await.unwrap().unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_connection_lost_before_accept_does_not_pause() {
    let mut script: Vec<Next> = Vec::new();
    for i in 0..1000 {
        let kind = if i % 2 == 0 {
            io::ErrorKind::ConnectionAborted
        } else {
            io::ErrorKind::ConnectionReset
        };
        script.push(Next::Fail(io::Error::from(kind)));
    }
    script.push(Next::Connection);
    let (incoming, pulls, clients) = scripted(script);
    let server = Server::builder().add_service(Echo::default()).build();
    let serving = tokio::spawn(server.serve_incoming(incoming));

    wait_for_pulls(&pulls, 1002).await;
    // All on the spot: the clock never moved between them.
    assert!(
        gaps(&pulls).iter().all(|&gap| gap == 0),
        "{:?}",
        gaps(&pulls)
    );
    let reply = client_over(&clients)
        .unary(
            UNARY,
            Request::new(s("accepted")),
            common::pb::<_, StringValue>(),
        )
        .await
        .unwrap();
    assert_eq!(reply.into_inner().value, "accepted");

    server.stop().await;
    serving.await.unwrap().unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_stop_is_heard_during_the_pause() {
    // Failing for good: the loop sits in one-second pauses.
    let script: Vec<Next> = (0..100).map(|_| Next::Fail(emfile())).collect();
    let (incoming, pulls, _clients) = scripted(script);
    let server = Server::builder().add_service(Echo::default()).build();
    let serving = tokio::spawn(server.serve_incoming(incoming));
    wait_for_pulls(&pulls, 12).await;

    let asked = Instant::now();
    server.graceful_stop().await;
    serving.await.unwrap().unwrap();
    assert!(
        asked.elapsed() < Duration::from_millis(100),
        "the stop waited out the pause: {:?}",
        asked.elapsed()
    );
}
