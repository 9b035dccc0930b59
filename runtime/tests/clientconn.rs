//! The client's layers over real sockets: resolvers, balancers, subchannels, connectivity
//! state, backoff, fail-fast and wait-for-ready, idleness, keepalive, proxies and
//! transparent retry.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use grpc_runtime::backoff::BackoffConfig;
use grpc_runtime::balancer::ConnectivityState;
use grpc_runtime::client::{Channel, ChannelBuilder, Client, Proxy};
use grpc_runtime::credentials::ChannelCredentials;
use grpc_runtime::keepalive::ClientParameters;
use grpc_runtime::resolver::manual::ManualResolver;
use grpc_runtime::resolver::{Address, ResolverState};
use grpc_runtime::server::Server;
use grpc_runtime::{Code, Request, Response, Status};
use protobuf::well_known_types::wrappers::StringValue;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

fn plaintext(target: &str) -> ChannelBuilder {
    Channel::builder(target)
        .credentials(ChannelCredentials::insecure())
        .backoff(BackoffConfig::default().base_delay(Duration::from_millis(50)))
}

async fn hello(channel: &Channel) -> Result<String, Status> {
    let reply: Response<StringValue> = Client::new(channel.clone())
        .unary(UNARY, Request::new(s("hi")), pb())
        .await?;
    Ok(reply.into_inner().value)
}

fn started(srv: &Running) -> usize {
    srv.echo.observed.started.load(Ordering::SeqCst)
}

fn ipv4(servers: &[&Running]) -> String {
    let list: Vec<String> = servers.iter().map(|s| s.addr.to_string()).collect();
    format!("ipv4:{}", list.join(","))
}

/// Serves `server` again on `addr` (after a stop).
async fn restart(addr: SocketAddr) -> Running {
    let echo = Echo::default();
    let server = Server::builder().add_service(echo.clone()).build();
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let s = server.clone();
    let task = tokio::spawn(async move { s.serve_tcp(listener).await.unwrap() });
    Running {
        addr,
        server,
        echo,
        task,
    }
}

#[tokio::test]
async fn round_robin_spreads_calls_survives_a_server_loss_and_takes_it_back() {
    let a = start().await;
    let mut b = start().await;
    let c = start().await;
    let channel = plaintext(&ipv4(&[&a, &b, &c]))
        .load_balancing_policy("round_robin")
        .build()
        .unwrap();
    assert_eq!(channel.state(), ConnectivityState::Idle);
    channel.connect().await.unwrap();
    assert_eq!(channel.state(), ConnectivityState::Ready);
    // Until every server has a READY connection, some get more.
    let all = [&a, &b, &c];
    for _ in 0..300 {
        hello(&channel).await.unwrap();
        if all.iter().all(|s| started(s) > 0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let before: Vec<usize> = all.iter().map(|s| started(s)).collect();
    for _ in 0..30 {
        hello(&channel).await.unwrap();
    }
    let spread: Vec<usize> = all
        .iter()
        .zip(&before)
        .map(|(s, b)| started(s) - b)
        .collect();
    assert_eq!(spread, [10, 10, 10], "round robin over three READY servers");

    // One goes away: a call already on its way to it may fail, none after that; the rest
    // succeed on the other two.
    let b_addr = b.addr;
    b.server.stop().await;
    let mut failed = 0;
    for _ in 0..40 {
        if hello(&channel).await.is_err() {
            failed += 1;
        }
    }
    assert!(failed <= 1, "{failed} calls failed after the loss");
    let (a0, c0) = (started(&a), started(&c));
    for _ in 0..20 {
        hello(&channel).await.unwrap();
    }
    assert_eq!((started(&a) - a0, started(&c) - c0), (10, 10));

    // It comes back on the same address: it rejoins after its backoff.
    b = restart(b_addr).await;
    for _ in 0..400 {
        hello(&channel).await.unwrap();
        if started(&b) > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(started(&b) > 0, "the restarted server gets calls again");
}

#[tokio::test]
async fn pick_first_fails_over_in_address_order() {
    let dead = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead_addr = dead.local_addr().unwrap();
    drop(dead);
    let a = start().await;
    let b = start().await;
    let target = format!("ipv4:{dead_addr},{},{}", a.addr, b.addr);
    let channel = plaintext(&target).build().unwrap();
    for _ in 0..5 {
        hello(&channel).await.unwrap();
    }
    assert_eq!((started(&a), started(&b)), (5, 0), "the first that answers");
    a.server.stop().await;
    // The connection closes; once the channel has seen it, the addresses are tried again
    // in order and b answers.
    let went = tokio::time::timeout(
        Duration::from_secs(5),
        channel.wait_for_state_change(ConnectivityState::Ready),
    )
    .await
    .unwrap();
    assert_ne!(went, ConnectivityState::Ready);
    let mut request = Request::new(s("after"));
    request.set_wait_for_ready(true);
    request.set_timeout(Duration::from_secs(10));
    let reply: Response<StringValue> = Client::new(channel.clone())
        .unary(UNARY, request, pb())
        .await
        .unwrap();
    assert_eq!(reply.into_inner().value, "after");
    for _ in 0..5 {
        hello(&channel).await.unwrap();
    }
    assert_eq!(started(&b), 6);
}

#[tokio::test]
async fn a_manual_resolver_update_moves_calls() {
    let a = start().await;
    let b = start().await;
    let resolver = ManualResolver::new("manual");
    resolver.update_state(ResolverState::new(vec![Address::Tcp(a.addr)]));
    let channel = plaintext("manual:///my-service")
        .resolver(resolver.clone())
        .build()
        .unwrap();
    hello(&channel).await.unwrap();
    assert_eq!((started(&a), started(&b)), (1, 0));
    resolver.update_state(ResolverState::new(vec![Address::Tcp(b.addr)]));
    let mut moved = false;
    for _ in 0..200 {
        hello(&channel).await.unwrap();
        if started(&b) > 0 {
            moved = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(moved, "calls follow the resolver's new address");
    let a_then = started(&a);
    for _ in 0..5 {
        hello(&channel).await.unwrap();
    }
    assert_eq!(started(&a), a_then, "and stay there");
}

#[tokio::test]
async fn dns_names_with_several_addresses() {
    // `localhost` resolves to 127.0.0.1 and, where IPv6 is up, ::1; the server listens on
    // 127.0.0.1 only, so pick_first gets past ::1 if it comes first.
    let srv = start().await;
    let channel = plaintext(&format!("dns:///localhost:{}", srv.addr.port()))
        .build()
        .unwrap();
    assert_eq!(hello(&channel).await.unwrap(), "hi");
    let channel = plaintext(&format!("localhost:{}", srv.addr.port()))
        .load_balancing_policy("round_robin")
        .build()
        .unwrap();
    assert_eq!(hello(&channel).await.unwrap(), "hi");
}

/// A listener that accepts and then says nothing: connection attempts time out.
async fn silent_listener() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    addr
}

#[tokio::test]
async fn concurrent_fail_fast_calls_share_one_connection_attempt() {
    let addr = silent_listener().await;
    let channel = plaintext(&addr.to_string())
        .connect_timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    let started = Instant::now();
    let calls: Vec<_> = (0..100)
        .map(|_| {
            let channel = channel.clone();
            tokio::spawn(async move { hello(&channel).await })
        })
        .collect();
    for call in calls {
        let err = call.await.unwrap().unwrap_err();
        assert_eq!(err.code(), Code::Unavailable, "{err}");
        assert!(err.message().contains("timed out"), "{err}");
    }
    // One attempt (500 ms) for all of them, not one each after another.
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(channel.state(), ConnectivityState::TransientFailure);
}

#[tokio::test]
async fn wait_for_ready_calls_succeed_when_the_server_appears() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let channel = plaintext(&addr.to_string()).build().unwrap();
    // Fail fast: refused at once.
    let err = hello(&channel).await.unwrap_err();
    assert_eq!(err.code(), Code::Unavailable);
    assert!(err.message().contains("refused"), "{err}");
    let calls: Vec<_> = (0..10)
        .map(|i| {
            let channel = channel.clone();
            tokio::spawn(async move {
                let mut request = Request::new(s(&format!("w{i}")));
                request.set_wait_for_ready(true);
                request.set_timeout(Duration::from_secs(20));
                let reply: Response<StringValue> =
                    Client::new(channel).unary(UNARY, request, pb()).await?;
                Ok::<_, Status>(reply.into_inner().value)
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let srv = restart(addr).await;
    for (i, call) in calls.into_iter().enumerate() {
        assert_eq!(call.await.unwrap().unwrap(), format!("w{i}"));
    }
    assert_eq!(started(&srv), 10);
}

/// Backoff per gRPC's connection-backoff spec, on the paused clock: attempts against a
/// dialer that always fails are spaced 1 s, 1.6 s, 2.56 s, ... each within ±20%.
#[tokio::test(start_paused = true)]
async fn reconnect_backoff_follows_the_spec() {
    let attempts = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&attempts);
    let channel = Channel::builder("backoff.test:1")
        .credentials(ChannelCredentials::insecure())
        .dialer(move || {
            log.lock().unwrap().push(Instant::now());
            async {
                Err::<tokio::io::DuplexStream, _>(std::io::Error::new(
                    std::io::ErrorKind::ConnectionRefused,
                    "refused",
                ))
            }
        })
        .build()
        .unwrap();
    assert!(channel.connect().await.is_err());
    // Let the channel keep retrying on its own for a while.
    tokio::time::sleep(Duration::from_secs(60)).await;
    let attempts = attempts.lock().unwrap().clone();
    assert!(attempts.len() >= 6, "{}", attempts.len());
    let mut expected = 1.0f64;
    for pair in attempts.windows(2).take(6) {
        let gap = (pair[1] - pair[0]).as_secs_f64();
        assert!(
            gap >= expected * 0.8 - 0.01 && gap <= expected * 1.2 + 0.01,
            "gap {gap} s, expected {expected} s ± 20%"
        );
        expected *= 1.6;
    }
}

/// A peer that completes the HTTP/2 handshake (answering the first PING) and then never
/// answers again, as a blackholed host would.
async fn blackholed_peer(mut io: tokio::io::DuplexStream) {
    let mut preface = [0u8; 24];
    if io.read_exact(&mut preface).await.is_err() {
        return;
    }
    // SETTINGS, then the ACK of the client's.
    let _ = io.write_all(&[0, 0, 0, 4, 0, 0, 0, 0, 0]).await;
    let _ = io.write_all(&[0, 0, 0, 4, 1, 0, 0, 0, 0]).await;
    let mut answered_ping = false;
    loop {
        let mut head = [0u8; 9];
        if io.read_exact(&mut head).await.is_err() {
            return;
        }
        let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
        let mut payload = vec![0u8; len];
        if io.read_exact(&mut payload).await.is_err() {
            return;
        }
        if head[3] == 6 && head[4] == 0 && !answered_ping {
            answered_ping = true;
            let _ = io.write_all(&[0, 0, 8, 6, 1, 0, 0, 0, 0]).await;
            let _ = io.write_all(&payload).await;
        }
        // Everything after is swallowed.
    }
}

#[tokio::test(start_paused = true)]
async fn keepalive_finds_a_blackholed_connection() {
    let channel = Channel::builder("blackhole.test:1")
        .credentials(ChannelCredentials::insecure())
        .keepalive(ClientParameters::new(Duration::from_secs(10)).timeout(Duration::from_secs(2)))
        .dialer(|| async {
            let (client, server) = tokio::io::duplex(64 * 1024);
            tokio::spawn(blackholed_peer(server));
            Ok(client)
        })
        .build()
        .unwrap();
    let started = Instant::now();
    // No deadline: only keepalive can end this call.
    let err = hello(&channel).await.unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err}");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(12) && took < Duration::from_secs(13),
        "found within time + timeout: {took:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn an_idle_channel_closes_its_connections_and_the_next_call_reconnects() {
    let echo = Echo::default();
    let server = Server::builder().add_service(echo.clone()).build();
    let channel = memory_channel(&server, |b| b.idle_timeout(Some(Duration::from_secs(60))));
    assert_eq!(hello(&channel).await.unwrap(), "hi");
    assert_eq!(channel.state(), ConnectivityState::Ready);
    // A call in flight keeps it busy past the timeout.
    let mut request = Request::new(s("sleep:90000"));
    request.set_timeout(Duration::from_secs(100));
    let long: Response<StringValue> = Client::new(channel.clone())
        .unary(UNARY, request, pb())
        .await
        .unwrap();
    assert_eq!(long.into_inner().value, "sleep:90000");
    assert_eq!(channel.state(), ConnectivityState::Ready);
    let went = tokio::time::timeout(
        Duration::from_secs(120),
        channel.wait_for_state_change(ConnectivityState::Ready),
    )
    .await
    .expect("idle within the timeout");
    assert_eq!(went, ConnectivityState::Idle);
    assert_eq!(hello(&channel).await.unwrap(), "hi");
    assert_eq!(channel.state(), ConnectivityState::Ready);
}

/// A CONNECT proxy for the tests: records each request head, answers `status`, and (on 200)
/// relays bytes both ways.
async fn connect_proxy(status: &'static str) -> (SocketAddr, Arc<Mutex<Vec<String>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let heads = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&heads);
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let seen = Arc::clone(&seen);
            tokio::spawn(async move {
                let mut head = Vec::new();
                while !head.ends_with(b"\r\n\r\n") {
                    let mut byte = [0u8; 1];
                    if client.read_exact(&mut byte).await.is_err() {
                        return;
                    }
                    head.push(byte[0]);
                }
                let head = String::from_utf8(head).unwrap();
                let target = head.split_whitespace().nth(1).unwrap().to_owned();
                seen.lock().unwrap().push(head);
                let _ = client
                    .write_all(format!("HTTP/1.1 {status}\r\n\r\n").as_bytes())
                    .await;
                if !status.starts_with("200") {
                    return;
                }
                let Ok(mut upstream) = tokio::net::TcpStream::connect(target).await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
            });
        }
    });
    (addr, heads)
}

#[tokio::test]
async fn calls_go_through_an_http_connect_proxy() {
    let srv = start().await;
    let (proxy, heads) = connect_proxy("200 Connection established").await;
    let channel = plaintext(&format!("dns:///localhost:{}", srv.addr.port()))
        .proxy(Proxy::http(&format!("http://alice:s3cret@{proxy}")).unwrap())
        .build()
        .unwrap();
    assert_eq!(hello(&channel).await.unwrap(), "hi");
    let heads = heads.lock().unwrap().clone();
    assert_eq!(heads.len(), 1);
    let target = format!("localhost:{}", srv.addr.port());
    // The proxy resolves the name (gRFC A1), and gets the credentials from the URL.
    assert!(
        heads[0].starts_with(&format!("CONNECT {target} HTTP/1.1\r\n")),
        "{}",
        heads[0]
    );
    assert!(heads[0].contains(&format!("Host: {target}\r\n")));
    // base64("alice:s3cret")
    assert!(heads[0].contains("Proxy-Authorization: Basic YWxpY2U6czNjcmV0\r\n"));

    let (refusing, _) = connect_proxy("407 Proxy Authentication Required").await;
    let channel = plaintext(&format!("dns:///localhost:{}", srv.addr.port()))
        .proxy(Proxy::http(&format!("http://{refusing}")).unwrap())
        .build()
        .unwrap();
    let err = hello(&channel).await.unwrap_err();
    assert_eq!(err.code(), Code::Unavailable);
    assert!(err.message().contains("refused CONNECT"), "{err}");
    assert!(err.message().contains("407"), "{err}");
}

/// Records each attempt's number and whether it was a transparent retry.
struct AttemptLog(Arc<std::sync::Mutex<Vec<(u32, bool)>>>);

impl grpc_runtime::interceptor::Interceptor for AttemptLog {
    fn on_call<'a>(
        &'a self,
        _: &'a mut grpc_runtime::interceptor::CallInfo,
    ) -> grpc_runtime::interceptor::InterceptFuture<'a> {
        Box::pin(std::future::ready(Ok(())))
    }

    fn on_attempt(
        &self,
        _: &grpc_runtime::interceptor::CallInfo,
        attempt: &grpc_runtime::interceptor::AttemptInfo,
    ) {
        let seen = (attempt.number(), attempt.is_transparent());
        self.0.lock().unwrap().push(seen);
    }
}

#[tokio::test]
async fn a_refused_stream_is_retried_transparently_once() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let streams = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&streams);
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let seen = Arc::clone(&seen);
            tokio::spawn(async move {
                let mut conn = h2::server::handshake(tcp).await.unwrap();
                while let Some(Ok((_, mut respond))) = conn.accept().await {
                    if seen.fetch_add(1, Ordering::SeqCst) == 0 {
                        // Refused before any processing: safe to send again.
                        respond.send_reset(h2::Reason::REFUSED_STREAM);
                        continue;
                    }
                    let mut response = http::Response::new(());
                    response
                        .headers_mut()
                        .insert("content-type", "application/grpc".parse().unwrap());
                    let mut send = respond.send_response(response, false).unwrap();
                    let body = protobuf::Message::write_to_bytes(&s("retried")).unwrap();
                    let mut frame = vec![0, 0, 0, 0, body.len() as u8];
                    frame.extend_from_slice(&body);
                    send.send_data(frame.into(), false).unwrap();
                    let mut trailers = http::HeaderMap::new();
                    trailers.insert("grpc-status", "0".parse().unwrap());
                    send.send_trailers(trailers).unwrap();
                }
            });
        }
    });
    // Interceptors are told of the second attempt as a transparent one.
    let attempts = Arc::new(std::sync::Mutex::new(Vec::new()));
    let channel = plaintext(&addr.to_string())
        .interceptor(AttemptLog(Arc::clone(&attempts)))
        .build()
        .unwrap();
    assert_eq!(hello(&channel).await.unwrap(), "retried");
    assert_eq!(streams.load(Ordering::SeqCst), 2);
    assert_eq!(
        *attempts.lock().unwrap(),
        [(1, false), (1, true)],
        "the same attempt, sent again transparently"
    );
}

#[tokio::test]
async fn a_failed_connection_asks_the_resolver_again() {
    let dead = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead_addr = dead.local_addr().unwrap();
    drop(dead);
    let resolver = ManualResolver::new("manual");
    resolver.update_state(ResolverState::new(vec![Address::Tcp(dead_addr)]));
    let channel = plaintext("manual:///svc")
        .resolver(resolver.clone())
        .build()
        .unwrap();
    assert_eq!(resolver.resolve_now_count(), 0);
    assert!(hello(&channel).await.is_err());
    assert!(
        resolver.resolve_now_count() >= 1,
        "pick_first asks for fresh addresses"
    );
    // Fresh addresses: the next call works.
    let srv = start().await;
    resolver.update_state(ResolverState::new(vec![Address::Tcp(srv.addr)]));
    let mut request = Request::new(s("fresh"));
    request.set_wait_for_ready(true);
    request.set_timeout(Duration::from_secs(10));
    let reply: Response<StringValue> = Client::new(channel.clone())
        .unary(UNARY, request, pb())
        .await
        .unwrap();
    assert_eq!(reply.into_inner().value, "fresh");
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn unix_abstract_sockets() {
    use std::os::linux::net::SocketAddrExt;
    let name = format!("grpc-rust-test-{}", std::process::id());
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    let listener = std::os::unix::net::UnixListener::bind_addr(&addr).unwrap();
    listener.set_nonblocking(true).unwrap();
    let listener = tokio::net::UnixListener::from_std(listener).unwrap();
    let server = Server::builder().add_service(Echo::default()).build();
    tokio::spawn(server.serve_unix(listener));
    let channel = Channel::new(&format!("unix-abstract:{name}")).unwrap();
    assert_eq!(hello(&channel).await.unwrap(), "hi");
}

#[tokio::test]
async fn a_bad_target_or_policy_is_a_setup_error() {
    // An unknown scheme is read as a DNS name (gRPC's rule), which this is not.
    let err = plaintext("nosuchscheme:///x").build().unwrap_err();
    assert!(err.is_invalid_target(), "{err}");
    let err = plaintext("127.0.0.1:1")
        .load_balancing_policy("no_such_policy")
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("no_such_policy"), "{err}");
    let err = plaintext("127.0.0.1:1")
        .default_service_config("{not json")
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("service config"), "{err}");
    // An address list is read when the resolver starts (as in gRPC-Go): calls fail with
    // its error.
    let channel = plaintext("ipv4:not-an-ip:1").build().unwrap();
    let status = hello(&channel).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status}");
    assert!(
        status.message().contains("invalid ipv4 address"),
        "{status}"
    );
}

/// A peer that answers the handshake PING, then answers the first keepalive PING with
/// GOAWAY(ENHANCE_YOUR_CALM, "too_many_pings"); it records when each keepalive PING came,
/// from the start of its connection.
async fn strict_peer(mut io: tokio::io::DuplexStream, pings: Arc<Mutex<Vec<Duration>>>) {
    let started = Instant::now();
    let mut preface = [0u8; 24];
    if io.read_exact(&mut preface).await.is_err() {
        return;
    }
    let _ = io.write_all(&[0, 0, 0, 4, 0, 0, 0, 0, 0]).await;
    let _ = io.write_all(&[0, 0, 0, 4, 1, 0, 0, 0, 0]).await;
    let mut handshake_ping = true;
    loop {
        let mut head = [0u8; 9];
        if io.read_exact(&mut head).await.is_err() {
            return;
        }
        let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
        let mut payload = vec![0u8; len];
        if io.read_exact(&mut payload).await.is_err() {
            return;
        }
        if head[3] != 6 || head[4] != 0 {
            continue;
        }
        if handshake_ping {
            handshake_ping = false;
            let _ = io.write_all(&[0, 0, 8, 6, 1, 0, 0, 0, 0]).await;
            let _ = io.write_all(&payload).await;
            continue;
        }
        pings.lock().unwrap().push(started.elapsed());
        let debug = b"too_many_pings";
        let mut goaway = vec![0, 0, (8 + debug.len()) as u8, 7, 0, 0, 0, 0, 0];
        goaway.extend_from_slice(&0u32.to_be_bytes());
        goaway.extend_from_slice(&u32::from(h2::Reason::ENHANCE_YOUR_CALM).to_be_bytes());
        goaway.extend_from_slice(debug);
        let _ = io.write_all(&goaway).await;
        return;
    }
}

#[tokio::test(start_paused = true)]
async fn too_many_pings_doubles_the_keepalive_time() {
    let pings = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&pings);
    let channel = Channel::builder("strict.test:1")
        .credentials(ChannelCredentials::insecure())
        .keepalive(
            ClientParameters::new(Duration::from_secs(10))
                .timeout(Duration::from_secs(5))
                .permit_without_stream(true),
        )
        .dialer(move || {
            let seen = Arc::clone(&seen);
            async move {
                let (client, server) = tokio::io::duplex(64 * 1024);
                tokio::spawn(strict_peer(server, seen));
                Ok(client)
            }
        })
        .build()
        .unwrap();
    // Three connections, each closed by the peer's GOAWAY after its first keepalive ping;
    // pick_first goes IDLE after each, and connecting again makes the next.
    for _ in 0..3 {
        channel.connect().await.unwrap();
        let state = channel
            .wait_for_state_change(ConnectivityState::Ready)
            .await;
        assert_eq!(state, ConnectivityState::Idle);
    }
    let pings = pings.lock().unwrap().clone();
    assert!(pings.len() >= 3, "{pings:?}");
    let secs: Vec<u64> = pings.iter().take(3).map(|d| d.as_secs()).collect();
    assert_eq!(
        secs,
        [10, 20, 40],
        "each GOAWAY too_many_pings doubles the time"
    );
}

#[tokio::test]
async fn the_resolver_can_switch_the_policy_with_a_service_config() {
    let a = start().await;
    let b = start().await;
    let addresses = vec![Address::Tcp(a.addr), Address::Tcp(b.addr)];
    let resolver = ManualResolver::new("manual");
    resolver.update_state(ResolverState::new(addresses.clone()));
    let channel = plaintext("manual:///svc")
        .resolver(resolver.clone())
        .build()
        .unwrap();
    for _ in 0..6 {
        hello(&channel).await.unwrap();
    }
    assert_eq!(
        (started(&a), started(&b)),
        (6, 0),
        "pick_first: the first address"
    );
    // An invalid config is ignored: still pick_first.
    resolver.update_state(ResolverState::new(addresses.clone()).with_service_config("{oops"));
    hello(&channel).await.unwrap();
    assert_eq!(started(&b), 0);
    resolver.update_state(
        ResolverState::new(addresses)
            .with_service_config(r#"{"loadBalancingConfig":[{"round_robin":{}}]}"#),
    );
    for _ in 0..200 {
        hello(&channel).await.unwrap();
        if started(&b) > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let (a0, b0) = (started(&a), started(&b));
    for _ in 0..10 {
        hello(&channel).await.unwrap();
    }
    assert_eq!(
        (started(&a) - a0, started(&b) - b0),
        (5, 5),
        "round_robin now"
    );
}
