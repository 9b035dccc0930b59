//! Retries per the service config (gRFC A6): attempts and their `grpc-previous-rpc-attempts`,
//! retryable codes, the commit point, server pushback, throttling, and the deadline over all
//! attempts.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use grpc_runtime::client::{Channel, Client};
use grpc_runtime::interceptor::from_fn;
use grpc_runtime::server::Server;
use grpc_runtime::{Code, Request, Response, Status};
use protobuf::well_known_types::wrappers::{StringValue, UInt32Value};
use tokio::time::Instant;

/// What the server saw of each call id: the `grpc-previous-rpc-attempts` of each attempt.
type Seen = Arc<Mutex<HashMap<String, Vec<Option<String>>>>>;

/// A server whose interceptor fails the first `x-fail-first` attempts of each call (by its
/// `x-id`) with `x-fail-code`, adding `x-pushback` as `grpc-retry-pushback-ms`.
fn flaky_server(seen: Seen) -> Server {
    Server::builder()
        .add_service(Echo::default())
        .interceptor(from_fn(move |call| {
            let md = call.metadata();
            let id = md.get("x-id").unwrap_or_default().to_owned();
            let previous = md.get("grpc-previous-rpc-attempts").map(str::to_owned);
            let mut seen = seen.lock().unwrap();
            let attempts = seen.entry(id).or_default();
            attempts.push(previous);
            let fail_first: usize = md.get("x-fail-first").map_or(0, |n| n.parse().unwrap());
            if attempts.len() <= fail_first {
                let code: i32 = md.get("x-fail-code").map_or(14, |c| c.parse().unwrap());
                let mut status = Status::new(Code::from_i32(code), "flaky");
                if let Some(ms) = md.get("x-pushback") {
                    status
                        .metadata_mut()
                        .insert("grpc-retry-pushback-ms", ms)
                        .unwrap();
                }
                return Err(status);
            }
            Ok(())
        }))
        .build()
}

const RETRY: &str = r#"{"methodConfig": [{"name": [{"service": "test.Echo"}],
    "retryPolicy": {"maxAttempts": 4, "initialBackoff": "0.01s", "maxBackoff": "0.05s",
                    "backoffMultiplier": 2, "retryableStatusCodes": ["UNAVAILABLE", "ABORTED"]}}]}"#;

async fn call(channel: &Channel, id: &str, headers: &[(&str, &str)]) -> Result<String, Status> {
    let mut request = Request::new(s(id));
    request.metadata_mut().insert("x-id", id).unwrap();
    for (k, v) in headers {
        request.metadata_mut().insert(k, v).unwrap();
    }
    let reply: Response<StringValue> = Client::new(channel.clone())
        .unary(UNARY, request, pb())
        .await?;
    Ok(reply.into_inner().value)
}

fn attempts(seen: &Seen, id: &str) -> Vec<Option<String>> {
    seen.lock().unwrap().get(id).cloned().unwrap_or_default()
}

#[tokio::test(start_paused = true)]
async fn retried_until_success_with_previous_attempts_counted() {
    let seen = Seen::default();
    let server = flaky_server(seen.clone());
    let channel = memory_channel(&server, |b| b.default_service_config(RETRY));
    assert_eq!(
        call(&channel, "a", &[("x-fail-first", "3")]).await.unwrap(),
        "a"
    );
    assert_eq!(
        attempts(&seen, "a"),
        [None, Some("1".into()), Some("2".into()), Some("3".into())]
    );
    // One more failure than attempts allowed: the last status comes back.
    let err = call(&channel, "b", &[("x-fail-first", "4")])
        .await
        .unwrap_err();
    assert_eq!((err.code(), err.message()), (Code::Unavailable, "flaky"));
    assert_eq!(attempts(&seen, "b").len(), 4);
    // Without a policy: one attempt.
    let plain = channel_without_policy(&server);
    assert!(call(&plain, "c", &[("x-fail-first", "1")]).await.is_err());
    assert_eq!(attempts(&seen, "c").len(), 1);
}

fn channel_without_policy(server: &Server) -> Channel {
    memory_channel(server, |b| b)
}

#[tokio::test(start_paused = true)]
async fn only_the_policys_codes_are_retried() {
    let seen = Seen::default();
    let server = flaky_server(seen.clone());
    let channel = memory_channel(&server, |b| b.default_service_config(RETRY));
    // ABORTED is in the list; INTERNAL (13) is not.
    call(
        &channel,
        "aborted",
        &[("x-fail-first", "1"), ("x-fail-code", "10")],
    )
    .await
    .unwrap();
    assert_eq!(attempts(&seen, "aborted").len(), 2);
    let err = call(
        &channel,
        "internal",
        &[("x-fail-first", "1"), ("x-fail-code", "13")],
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), Code::Internal);
    assert_eq!(attempts(&seen, "internal").len(), 1);
}

#[tokio::test(start_paused = true)]
async fn server_pushback_delays_or_stops_retries() {
    let seen = Seen::default();
    let server = flaky_server(seen.clone());
    let channel = memory_channel(&server, |b| b.default_service_config(RETRY));
    let started = Instant::now();
    call(
        &channel,
        "p",
        &[("x-fail-first", "1"), ("x-pushback", "700")],
    )
    .await
    .unwrap();
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(700) && took < Duration::from_millis(750),
        "the retry waited the pushback: {took:?}"
    );
    assert_eq!(attempts(&seen, "p").len(), 2);
    // A negative pushback: no retry.
    let err = call(
        &channel,
        "n",
        &[("x-fail-first", "1"), ("x-pushback", "-1")],
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable);
    assert_eq!(attempts(&seen, "n").len(), 1);
    // A pushback too long to mean anything but "stop" (here, one no clock can add): no
    // retry, and no overflow.
    let err = call(
        &channel,
        "huge",
        &[
            ("x-fail-first", "1"),
            ("x-pushback", "18446744073709551615"),
        ],
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable);
    assert_eq!(attempts(&seen, "huge").len(), 1);
}

#[tokio::test(start_paused = true)]
async fn throttling_stops_retries_and_successes_bring_them_back() {
    let seen = Seen::default();
    let server = flaky_server(seen.clone());
    let config = RETRY.trim_end_matches('}').to_owned()
        + r#", "retryThrottling": {"maxTokens": 10, "tokenRatio": 1}}"#;
    let channel = memory_channel(&server, |b| b.default_service_config(config));
    let mut counts = Vec::new();
    for i in 0..4 {
        let id = format!("t{i}");
        assert!(call(&channel, &id, &[("x-fail-first", "9")]).await.is_err());
        counts.push(attempts(&seen, &id).len());
    }
    // 10 tokens; each failure takes one, and a retry goes out only while more than 5 are
    // left: 4 attempts (10 -> 6), then none (5, 4, 3).
    assert_eq!(counts, [4, 1, 1, 1]);
    // Each success gives one back: at 7, a failure (-> 6) may be retried again.
    for i in 0..4 {
        call(&channel, &format!("ok{i}"), &[]).await.unwrap();
    }
    call(&channel, "again", &[("x-fail-first", "1")])
        .await
        .unwrap();
    assert_eq!(attempts(&seen, "again").len(), 2);
}

#[tokio::test(start_paused = true)]
async fn the_deadline_covers_every_attempt() {
    let seen = Seen::default();
    let server = flaky_server(seen.clone());
    let config = r#"{"methodConfig": [{"name": [{}], "timeout": "0.5s",
        "retryPolicy": {"maxAttempts": 5, "initialBackoff": "1s", "maxBackoff": "1s",
                        "backoffMultiplier": 1, "retryableStatusCodes": ["UNAVAILABLE"]}}]}"#;
    let channel = memory_channel(&server, |b| b.default_service_config(config));
    let started = Instant::now();
    let err = call(
        &channel,
        "d",
        &[("x-fail-first", "9"), ("x-pushback", "400")],
    )
    .await
    .unwrap_err();
    // The config's 0.5 s timeout: two attempts 400 ms apart, then the deadline.
    assert_eq!(err.code(), Code::DeadlineExceeded, "{err}");
    assert!(started.elapsed() < Duration::from_millis(550));
    assert_eq!(attempts(&seen, "d").len(), 2);
}

#[tokio::test]
async fn a_committed_call_is_not_retried() {
    // A server that sends response headers, then fails: the call is committed.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let streams = Arc::new(Mutex::new(0));
    let count = Arc::clone(&streams);
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let count = Arc::clone(&count);
            tokio::spawn(async move {
                let mut conn = h2::server::handshake(tcp).await.unwrap();
                while let Some(Ok((_, mut respond))) = conn.accept().await {
                    *count.lock().unwrap() += 1;
                    let mut response = http::Response::new(());
                    response
                        .headers_mut()
                        .insert("content-type", "application/grpc".parse().unwrap());
                    let mut send = respond.send_response(response, false).unwrap();
                    let mut trailers = http::HeaderMap::new();
                    trailers.insert("grpc-status", "14".parse().unwrap());
                    send.send_trailers(trailers).unwrap();
                }
            });
        }
    });
    let channel = Channel::builder(&format!("http://{addr}"))
        .default_service_config(RETRY)
        .build()
        .unwrap();
    let err = call(&channel, "x", &[]).await.unwrap_err();
    assert_eq!(err.code(), Code::Unavailable);
    assert_eq!(*streams.lock().unwrap(), 1, "committed: no second attempt");
}

#[tokio::test]
async fn service_config_settings_apply_per_method() {
    let srv = start().await;
    let config = r#"{"methodConfig": [
        {"name": [{"service": "test.Echo", "method": "Unary"}], "timeout": "0.2s",
         "maxResponseMessageBytes": 100}]}"#;
    let channel = Channel::builder(&format!("http://{}", srv.addr))
        .default_service_config(config)
        .build()
        .unwrap();
    // The method's timeout applies with none on the call.
    let err = Client::new(channel.clone())
        .unary(UNARY, Request::new(s("sleep:5000")), pb::<_, StringValue>())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::DeadlineExceeded);
    // So does its response limit.
    let err = Client::new(channel.clone())
        .unary(UNARY, Request::new(s("big:1000")), pb::<_, StringValue>())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err}");
    // A call's own smaller timeout wins.
    let mut request = Request::new(s("sleep:150"));
    request.set_timeout(Duration::from_millis(50));
    let started = std::time::Instant::now();
    let err = Client::new(channel)
        .unary(UNARY, request, pb::<_, StringValue>())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::DeadlineExceeded);
    assert!(started.elapsed() < Duration::from_millis(140));
}

#[tokio::test(start_paused = true)]
async fn server_streaming_calls_are_retried_before_they_commit() {
    let seen = Seen::default();
    let server = flaky_server(seen.clone());
    let channel = memory_channel(&server, |b| b.default_service_config(RETRY));
    let mut request = Request::new(n(3));
    request.metadata_mut().insert("x-id", "stream").unwrap();
    request.metadata_mut().insert("x-fail-first", "2").unwrap();
    let mut stream = Client::new(channel)
        .server_streaming(COUNT, request, pb::<_, StringValue>())
        .await
        .unwrap();
    let mut got = 0;
    while stream.message().await.unwrap().is_some() {
        got += 1;
    }
    assert_eq!(got, 3);
    assert_eq!(
        attempts(&seen, "stream"),
        [None, Some("1".into()), Some("2".into())]
    );
}

/// Stalls the first attempt of each call for 10 s, noting if the client cancels it
/// meanwhile; records each attempt's `grpc-previous-rpc-attempts`.
#[derive(Clone, Default)]
struct StallFirst {
    attempts: Arc<Mutex<HashMap<String, usize>>>,
    previous: Arc<Mutex<Vec<Option<String>>>>,
    cancelled: Arc<Mutex<usize>>,
}

/// Counts a stalled attempt as cancelled if dropped before its stall ends.
struct Stalled(Arc<Mutex<usize>>, bool);

impl Drop for Stalled {
    fn drop(&mut self) {
        if !self.1 {
            *self.0.lock().unwrap() += 1;
        }
    }
}

impl grpc_runtime::interceptor::Interceptor for StallFirst {
    fn on_call<'a>(
        &'a self,
        call: &'a mut grpc_runtime::interceptor::CallInfo,
    ) -> grpc_runtime::interceptor::InterceptFuture<'a> {
        let id = call.metadata().get("x-id").unwrap_or_default().to_owned();
        let previous = call
            .metadata()
            .get("grpc-previous-rpc-attempts")
            .map(str::to_owned);
        self.previous.lock().unwrap().push(previous);
        let first = {
            let mut attempts = self.attempts.lock().unwrap();
            let n = attempts.entry(id).or_default();
            *n += 1;
            *n == 1
        };
        let cancelled = Arc::clone(&self.cancelled);
        Box::pin(async move {
            if first {
                let mut stalled = Stalled(cancelled, false);
                tokio::time::sleep(Duration::from_secs(10)).await;
                stalled.1 = true;
            }
            Ok(())
        })
    }
}

#[tokio::test(start_paused = true)]
async fn hedging_answers_with_the_second_attempt_and_cancels_the_first() {
    let stall = StallFirst::default();
    let server = Server::builder()
        .add_service(Echo::default())
        .interceptor(stall.clone())
        .build();
    let config = r#"{"methodConfig": [{"name": [{"service": "test.Echo"}],
        "hedgingPolicy": {"maxAttempts": 3, "hedgingDelay": "0.5s",
                          "nonFatalStatusCodes": ["UNAVAILABLE"]}}]}"#;
    let channel = memory_channel(&server, |b| b.default_service_config(config));
    let started = Instant::now();
    assert_eq!(call(&channel, "h", &[]).await.unwrap(), "h");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(500) && took < Duration::from_millis(600),
        "answered by the hedge sent after hedgingDelay: {took:?}"
    );
    assert_eq!(
        *stall.previous.lock().unwrap(),
        [None, Some("1".to_owned())],
        "two attempts: the first, and the hedge"
    );
    // The first attempt is cancelled on the server (RST_STREAM(CANCEL) drops its call).
    for _ in 0..100 {
        if *stall.cancelled.lock().unwrap() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        *stall.cancelled.lock().unwrap(),
        1,
        "the stalled attempt was cancelled"
    );
}

#[tokio::test(start_paused = true)]
async fn client_streaming_calls_replay_their_messages_on_retry() {
    let seen = Seen::default();
    let server = flaky_server(seen.clone());
    let channel = memory_channel(&server, |b| b.default_service_config(RETRY));
    let mut request = Request::new(futures_util::stream::iter(vec![s("a"), s("b"), s("c")]));
    request.metadata_mut().insert("x-id", "cs").unwrap();
    request.metadata_mut().insert("x-fail-first", "2").unwrap();
    let reply: Response<StringValue> = Client::new(channel.clone())
        .client_streaming(CONCAT, request, pb())
        .await
        .unwrap();
    assert_eq!(reply.into_inner().value, "a,b,c", "every message, replayed");
    assert_eq!(
        attempts(&seen, "cs"),
        [None, Some("1".into()), Some("2".into())]
    );

    // Past the replay buffer (256 KiB) the call commits: a failure after it is final.
    let big = "x".repeat(100 * 1024);
    let messages = vec![s(&big), s(&big), s(&big), s("fail:14:late")];
    let mut request = Request::new(futures_util::stream::iter(messages));
    request.metadata_mut().insert("x-id", "big").unwrap();
    let err = Client::new(channel)
        .client_streaming(CONCAT, request, pb::<_, StringValue>())
        .await
        .unwrap_err();
    assert_eq!((err.code(), err.message()), (Code::Unavailable, "late"));
    assert_eq!(attempts(&seen, "big").len(), 1, "committed: no retry");
}

#[tokio::test(start_paused = true)]
async fn the_channel_wide_replay_buffer_limit_commits_calls_too() {
    let seen = Seen::default();
    let server = flaky_server(seen.clone());
    // 1 MiB per call, but 150 KiB for the whole channel.
    let channel = memory_channel(&server, |b| {
        b.default_service_config(RETRY)
            .retry_buffer_limits(1024 * 1024, 150 * 1024)
    });
    let big = "x".repeat(100 * 1024);
    let messages = vec![s(&big), s(&big), s("fail:14:late")];
    let mut request = Request::new(futures_util::stream::iter(messages));
    request.metadata_mut().insert("x-id", "wide").unwrap();
    let err = Client::new(channel.clone())
        .client_streaming(CONCAT, request, pb::<_, StringValue>())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable);
    assert_eq!(
        attempts(&seen, "wide").len(),
        1,
        "past the channel's limit: committed"
    );
    // The call gave its share back: a small call is retried again.
    let mut request = Request::new(futures_util::stream::iter(vec![s("small")]));
    request.metadata_mut().insert("x-id", "small").unwrap();
    request.metadata_mut().insert("x-fail-first", "1").unwrap();
    let reply: Response<StringValue> = Client::new(channel)
        .client_streaming(CONCAT, request, pb())
        .await
        .unwrap();
    assert_eq!(reply.into_inner().value, "small");
    assert_eq!(attempts(&seen, "small").len(), 2);
}

/// Sends `messages` on a bidi call, reading one reply after each; returns the replies, or the
/// first error.
async fn chat(
    channel: &Channel,
    request: Request<()>,
    messages: &[&str],
) -> Result<Vec<String>, Status> {
    let (mut tx, mut rx) = Client::new(channel.clone())
        .bidi_streaming(CHAT, request, pb::<StringValue, StringValue>())
        .await?;
    let mut replies = Vec::new();
    for message in messages {
        tx.send(s(message)).await?;
        match rx.message().await? {
            Some(reply) => replies.push(reply.value),
            None => return Err(Status::internal("the stream ended early")),
        }
    }
    tx.close();
    assert!(rx.message().await?.is_none());
    Ok(replies)
}

fn tagged(id: &str, headers: &[(&str, &str)]) -> Request<()> {
    let mut request = Request::new(());
    request.metadata_mut().insert("x-id", id).unwrap();
    for (k, v) in headers {
        request.metadata_mut().insert(k, v).unwrap();
    }
    request
}

#[tokio::test(start_paused = true)]
async fn bidi_calls_are_retried_before_they_commit() {
    let seen = Seen::default();
    let server = flaky_server(seen.clone());
    let channel = memory_channel(&server, |b| b.default_service_config(RETRY));

    // Two messages go out before anything is read: both are replayed on each attempt.
    let (mut tx, mut rx) = Client::new(channel.clone())
        .bidi_streaming(
            CHAT,
            tagged("bidi", &[("x-fail-first", "2")]),
            pb::<StringValue, StringValue>(),
        )
        .await
        .unwrap();
    tx.send(s("a")).await.unwrap();
    tx.send(s("b")).await.unwrap();
    assert_eq!(rx.message().await.unwrap().unwrap().value, "a");
    assert_eq!(rx.message().await.unwrap().unwrap().value, "b");
    tx.send(s("c")).await.unwrap();
    assert_eq!(rx.message().await.unwrap().unwrap().value, "c");
    tx.close();
    assert!(rx.message().await.unwrap().is_none());
    assert_eq!(
        attempts(&seen, "bidi"),
        [None, Some("1".into()), Some("2".into())]
    );

    // Once a reply has come the call is committed: a failure after it is final.
    let err = chat(&channel, tagged("late", &[]), &["a", "fail:14:late"])
        .await
        .unwrap_err();
    assert_eq!((err.code(), err.message()), (Code::Unavailable, "late"));
    assert_eq!(attempts(&seen, "late").len(), 1, "committed: no retry");

    // A code outside the policy is not retried.
    let err = chat(
        &channel,
        tagged("internal", &[("x-fail-first", "1"), ("x-fail-code", "13")]),
        &["a"],
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), Code::Internal);
    assert_eq!(attempts(&seen, "internal").len(), 1);
}

/// Serves `server` on a loopback TCP port.
async fn serve_tcp(server: Server) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, peer)) = listener.accept().await {
            let peer = grpc_runtime::Peer::new(Some(peer), None);
            tokio::spawn(server.clone().serve_connection(tcp, peer));
        }
    });
    addr
}

#[tokio::test]
async fn bidi_retries_over_tcp() {
    let seen = Seen::default();
    let addr = serve_tcp(flaky_server(seen.clone())).await;
    let channel = Channel::builder(&format!("http://{addr}"))
        .default_service_config(RETRY)
        .build()
        .unwrap();
    let replies = chat(
        &channel,
        tagged("tcp", &[("x-fail-first", "3")]),
        &["one", "two"],
    )
    .await
    .unwrap();
    assert_eq!(replies, ["one", "two"]);
    assert_eq!(
        attempts(&seen, "tcp"),
        [None, Some("1".into()), Some("2".into()), Some("3".into())]
    );
}

const HEDGE: &str = r#"{"methodConfig": [{"name": [{"service": "test.Echo"}],
    "hedgingPolicy": {"maxAttempts": 3, "hedgingDelay": "0.5s",
                      "nonFatalStatusCodes": ["UNAVAILABLE"]}}]}"#;

fn stalling_server(stall: &StallFirst) -> Server {
    Server::builder()
        .add_service(Echo::default())
        .interceptor(stall.clone())
        .build()
}

async fn assert_hedged(stall: &StallFirst, started: Instant) {
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(500) && took < Duration::from_millis(600),
        "answered by the hedge sent after hedgingDelay: {took:?}"
    );
    assert_eq!(
        *stall.previous.lock().unwrap(),
        [None, Some("1".to_owned())],
        "two attempts: the first, and the hedge"
    );
    eventually("the stalled attempt is cancelled on the server", || {
        *stall.cancelled.lock().unwrap() == 1
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn streaming_calls_are_hedged_too() {
    // Server streaming.
    let stall = StallFirst::default();
    let channel = memory_channel(&stalling_server(&stall), |b| {
        b.default_service_config(HEDGE)
    });
    let started = Instant::now();
    let mut request = Request::new(n(3));
    request.metadata_mut().insert("x-id", "ss").unwrap();
    let mut stream = Client::new(channel)
        .server_streaming(COUNT, request, pb::<_, UInt32Value>())
        .await
        .unwrap();
    assert_hedged(&stall, started).await;
    let mut got = Vec::new();
    while let Some(m) = stream.message().await.unwrap() {
        got.push(m.value);
    }
    assert_eq!(got, [0, 1, 2]);

    // Client streaming: every message reaches the hedge.
    let stall = StallFirst::default();
    let channel = memory_channel(&stalling_server(&stall), |b| {
        b.default_service_config(HEDGE)
    });
    let started = Instant::now();
    let mut request = Request::new(futures_util::stream::iter(vec![s("a"), s("b"), s("c")]));
    request.metadata_mut().insert("x-id", "cs").unwrap();
    let reply: Response<StringValue> = Client::new(channel)
        .client_streaming(CONCAT, request, pb())
        .await
        .unwrap();
    assert_eq!(reply.into_inner().value, "a,b,c");
    assert_hedged(&stall, started).await;

    // Bidi: what was sent before the hedge is replayed on it.
    let stall = StallFirst::default();
    let channel = memory_channel(&stalling_server(&stall), |b| {
        b.default_service_config(HEDGE)
    });
    let started = Instant::now();
    let (mut tx, mut rx) = Client::new(channel)
        .bidi_streaming(CHAT, tagged("bidi", &[]), pb::<StringValue, StringValue>())
        .await
        .unwrap();
    tx.send(s("early")).await.unwrap();
    assert_eq!(rx.message().await.unwrap().unwrap().value, "early");
    assert_hedged(&stall, started).await;
    tx.send(s("late")).await.unwrap();
    assert_eq!(rx.message().await.unwrap().unwrap().value, "late");
    tx.close();
    assert!(rx.message().await.unwrap().is_none());
}

/// Records what `on_attempt` is told: (number, transparent, hedge).
#[derive(Clone, Default)]
struct AttemptLog(Arc<Mutex<Vec<(u32, bool, bool)>>>);

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
        self.0.lock().unwrap().push((
            attempt.number(),
            attempt.is_transparent(),
            attempt.is_hedge(),
        ));
    }
}

#[tokio::test(start_paused = true)]
async fn interceptors_see_each_attempt() {
    let seen = Seen::default();
    let server = flaky_server(seen.clone());
    let log = AttemptLog::default();
    let channel = memory_channel(&server, |b| {
        b.default_service_config(RETRY).interceptor(log.clone())
    });
    call(&channel, "u", &[("x-fail-first", "2")]).await.unwrap();
    assert_eq!(
        std::mem::take(&mut *log.0.lock().unwrap()),
        [(1, false, false), (2, false, false), (3, false, false)]
    );
    chat(&channel, tagged("b", &[("x-fail-first", "1")]), &["x"])
        .await
        .unwrap();
    assert_eq!(
        std::mem::take(&mut *log.0.lock().unwrap()),
        [(1, false, false), (2, false, false)]
    );

    let stall = StallFirst::default();
    let log = AttemptLog::default();
    let channel = memory_channel(&stalling_server(&stall), |b| {
        b.default_service_config(HEDGE).interceptor(log.clone())
    });
    call(&channel, "h", &[]).await.unwrap();
    assert_eq!(
        *log.0.lock().unwrap(),
        [(1, false, false), (2, false, true)]
    );
}

#[tokio::test]
async fn the_resolvers_config_replaces_the_default_unless_lookups_are_disabled() {
    use grpc_runtime::resolver::manual::ManualResolver;
    use grpc_runtime::resolver::{Address, ResolverState};

    let seen = Seen::default();
    let server = flaky_server(seen.clone());
    let addr = serve_tcp(server.clone()).await;
    // Pushed by the resolver: a retry policy. The default has none.
    let no_retry = r#"{"methodConfig": [{"name": [{}], "timeout": "30s"}]}"#;
    let channel_with = |disable: bool| {
        let resolver = ManualResolver::new("manual");
        resolver
            .update_state(ResolverState::new(vec![Address::Tcp(addr)]).with_service_config(RETRY));
        let builder = Channel::builder("manual:///flaky")
            .credentials(grpc_runtime::credentials::ChannelCredentials::insecure())
            .resolver(resolver)
            .default_service_config(no_retry);
        let builder = if disable {
            builder.disable_service_config_lookup()
        } else {
            builder
        };
        builder.build().unwrap()
    };
    // The first call waits for the resolver, so it has the resolver's config.
    let channel = channel_with(false);
    call(&channel, "pushed", &[("x-fail-first", "1")])
        .await
        .unwrap();
    assert_eq!(attempts(&seen, "pushed").len(), 2, "the resolver's policy");

    let channel = channel_with(true);
    let err = call(&channel, "ignored", &[("x-fail-first", "1")])
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable);
    assert_eq!(
        attempts(&seen, "ignored").len(),
        1,
        "the default: no policy"
    );

    // disable_retry: the policy is there, and not applied.
    let channel = memory_channel(&server, |b| b.default_service_config(RETRY).disable_retry());
    assert!(
        call(&channel, "off", &[("x-fail-first", "1")])
            .await
            .is_err()
    );
    assert_eq!(attempts(&seen, "off").len(), 1);
}
