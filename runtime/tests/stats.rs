//! Stats handlers: the events of every call kind on both sides, in order, with their sizes,
//! attempts and connections, over real sockets.

mod common;

use std::sync::{Arc, Mutex};

use common::*;
use grpc_runtime::client::{Channel, Client};
use grpc_runtime::stats::{ConnEvent, Handler, RpcEvent, RpcInfo};
use grpc_runtime::{Code, CompressionEncoding, Request, Response, Streaming};
use protobuf::Message;
use protobuf::well_known_types::wrappers::{StringValue, UInt32Value};

type Log = Arc<Mutex<Vec<String>>>;

/// Writes each event as a line: `<method> <event> [detail]`.
#[derive(Clone, Default)]
struct Recorder {
    log: Log,
    /// The bytes of every message, sent and received, as `message()` gives them.
    messages: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl Handler for Recorder {
    type Call = String;

    fn tag_rpc(&self, info: &RpcInfo<'_>) -> String {
        let method = info.method().rsplit('/').next().unwrap().to_owned();
        let mut what = format!("{method} tag client={}", info.is_client());
        if !info.is_registered_method() {
            what.push_str(" unregistered");
        }
        if let Some(attempt) = info.attempt() {
            what.push_str(&format!(" attempt={}", attempt.number()));
        }
        if let Some(target) = info.target() {
            assert!(target.starts_with("http://127.0.0.1:") || target == "memory.test:1");
        }
        self.log.lock().unwrap().push(what);
        method
    }

    fn handle_rpc(&self, method: &String, event: &RpcEvent<'_>) {
        let what = match event {
            RpcEvent::Begin { .. } => "begin".to_owned(),
            RpcEvent::OutHeader { headers, .. } => format!(
                "out-header x-echo={:?}",
                headers
                    .get("x-echo")
                    .map(|v| v.to_str().unwrap().to_owned())
            ),
            RpcEvent::InHeader { headers, .. } => format!(
                "in-header x-echo={:?}",
                headers
                    .get("x-echo")
                    .map(|v| v.to_str().unwrap().to_owned())
            ),
            RpcEvent::OutPayload(p) | RpcEvent::InPayload(p) => {
                let dir = if matches!(event, RpcEvent::OutPayload(_)) {
                    "out"
                } else {
                    "in"
                };
                let message = p.message().unwrap().into_owned();
                assert_eq!(p.wire_len(), p.compressed_len() + 5);
                assert_eq!(p.uncompressed_len(), message.len());
                if !p.is_compressed() {
                    assert_eq!(p.compressed_len(), message.len());
                }
                let text = format!(
                    "{dir}-payload {} compressed={}",
                    message.len(),
                    p.is_compressed()
                );
                self.messages.lock().unwrap().push(message);
                text
            }
            RpcEvent::OutTrailer { trailers, .. } => format!(
                "out-trailer grpc-status={}",
                trailers["grpc-status"].to_str().unwrap()
            ),
            RpcEvent::InTrailer { trailers, .. } => format!(
                "in-trailer grpc-status={}",
                trailers["grpc-status"].to_str().unwrap()
            ),
            RpcEvent::HalfClose { .. } => "half-close".to_owned(),
            RpcEvent::End { status, .. } => format!("end {:?}", status.code()),
            _ => "other".to_owned(),
        };
        self.log.lock().unwrap().push(format!("{method} {what}"));
    }

    fn handle_conn(&self, event: &ConnEvent<'_>) {
        let what = match event {
            ConnEvent::Begin { client, .. } => format!("conn begin client={client}"),
            ConnEvent::End { client, .. } => format!("conn end client={client}"),
            _ => "conn other".to_owned(),
        };
        self.log.lock().unwrap().push(what);
    }
}

impl Recorder {
    /// The call lines logged so far (connection lines dropped), emptied.
    fn calls(&self) -> Vec<String> {
        std::mem::take(&mut *self.log.lock().unwrap())
            .into_iter()
            .filter(|line| !line.starts_with("conn "))
            .collect()
    }
}

struct Setup {
    client: Client,
    client_stats: Recorder,
    server_stats: Recorder,
    _srv: Running,
}

async fn setup() -> Setup {
    let server_stats = Recorder::default();
    let srv = {
        let stats = server_stats.clone();
        start_with(move |b| b.stats_handler(stats)).await
    };
    let client_stats = Recorder::default();
    let channel = Channel::builder(&format!("http://{}", srv.addr))
        .stats_handler(client_stats.clone())
        .build()
        .unwrap();
    Setup {
        client: Client::new(channel),
        client_stats,
        server_stats,
        _srv: srv,
    }
}

/// Waits until the server's handler has seen the end of `n` calls (its events may trail the
/// client's by a task switch).
async fn server_ends(stats: &Recorder, n: usize) {
    eventually("the server's call ends", || {
        stats
            .log
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(" end "))
            .count()
            >= n
    })
    .await;
}

#[tokio::test]
async fn unary_events_in_order_on_both_sides() {
    let t = setup().await;
    let mut request = Request::new(s("hello"));
    request.metadata_mut().insert("x-echo", "e").unwrap();
    let reply: Response<StringValue> = t.client.unary(UNARY, request, pb()).await.unwrap();
    assert_eq!(reply.get_ref().value, "hello");
    server_ends(&t.server_stats, 1).await;
    // "hello" as a StringValue: tag, length, 5 bytes.
    assert_eq!(
        t.client_stats.calls(),
        [
            "Unary tag client=true attempt=1",
            "Unary begin",
            "Unary out-header x-echo=Some(\"e\")",
            "Unary out-payload 7 compressed=false",
            "Unary half-close",
            "Unary in-header x-echo=Some(\"e\")",
            "Unary in-payload 7 compressed=false",
            "Unary in-trailer grpc-status=0",
            "Unary end Ok",
        ]
    );
    assert_eq!(
        t.server_stats.calls(),
        [
            "Unary tag client=false",
            "Unary begin",
            "Unary in-header x-echo=Some(\"e\")",
            "Unary in-payload 7 compressed=false",
            "Unary half-close",
            "Unary out-header x-echo=Some(\"e\")",
            "Unary out-payload 7 compressed=false",
            "Unary out-trailer grpc-status=0",
            "Unary end Ok",
        ]
    );
    let encoded = s("hello").write_to_bytes().unwrap();
    for messages in [&t.client_stats.messages, &t.server_stats.messages] {
        assert_eq!(
            *messages.lock().unwrap(),
            [encoded.clone(), encoded.clone()]
        );
    }
}

#[tokio::test]
async fn streaming_kinds_report_each_message() {
    let t = setup().await;
    // Server streaming: three responses.
    let mut stream: Streaming<UInt32Value> = t
        .client
        .server_streaming(COUNT, Request::new(n(3)), pb())
        .await
        .unwrap();
    while stream.message().await.unwrap().is_some() {}
    server_ends(&t.server_stats, 1).await;
    let client = t.client_stats.calls();
    let server = t.server_stats.calls();
    let count = |log: &[String], what: &str| log.iter().filter(|l| l.contains(what)).count();
    assert_eq!(count(&client, "out-payload"), 1);
    assert_eq!(count(&client, "in-payload"), 3);
    assert_eq!(count(&server, "in-payload"), 1);
    assert_eq!(count(&server, "out-payload"), 3);
    assert_eq!(client.last().unwrap(), "Count end Ok");
    assert_eq!(server.last().unwrap(), "Count end Ok");

    // Client streaming: three requests, one response.
    let requests = futures_util::stream::iter(["a", "b", "c"].map(s));
    let reply: Response<StringValue> = t
        .client
        .client_streaming(CONCAT, Request::new(requests), pb())
        .await
        .unwrap();
    assert_eq!(reply.get_ref().value, "a,b,c");
    server_ends(&t.server_stats, 1).await;
    let client = t.client_stats.calls();
    let server = t.server_stats.calls();
    assert_eq!(count(&client, "out-payload 3"), 3);
    assert_eq!(count(&client, "in-payload 7"), 1);
    assert_eq!(count(&server, "in-payload 3"), 3);
    assert_eq!(client.last().unwrap(), "Concat end Ok");
    assert_eq!(server.last().unwrap(), "Concat end Ok");

    // Bidi: two each way.
    let (mut tx, mut rx) = t
        .client
        .bidi_streaming(CHAT, Request::new(()), pb::<StringValue, StringValue>())
        .await
        .unwrap();
    tx.send(s("x")).await.unwrap();
    tx.send(s("yy")).await.unwrap();
    tx.close();
    let mut got = Vec::new();
    while let Some(m) = rx.message().await.unwrap() {
        got.push(m.value);
    }
    assert_eq!(got, ["x", "yy"]);
    server_ends(&t.server_stats, 1).await;
    let client = t.client_stats.calls();
    let server = t.server_stats.calls();
    assert_eq!(
        client
            .iter()
            .filter(|l| l.contains("payload"))
            .collect::<Vec<_>>(),
        [
            "Chat out-payload 3 compressed=false",
            "Chat out-payload 4 compressed=false",
            "Chat in-payload 3 compressed=false",
            "Chat in-payload 4 compressed=false",
        ]
    );
    assert_eq!(count(&server, "in-payload"), 2);
    assert_eq!(count(&server, "out-payload"), 2);
    assert_eq!(client.last().unwrap(), "Chat end Ok");
    assert_eq!(server.last().unwrap(), "Chat end Ok");
    // The client's close, sent after its two messages and read after them.
    for log in [&client, &server] {
        assert_eq!(count(log, "half-close"), 1);
    }
}

#[tokio::test]
async fn failures_and_unknown_methods() {
    let t = setup().await;
    let err = t
        .client
        .unary(
            UNARY,
            Request::new(s("fail:5:gone")),
            pb::<_, StringValue>(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    server_ends(&t.server_stats, 1).await;
    // A trailers-only answer: no response headers on either side.
    assert_eq!(
        t.client_stats.calls(),
        [
            "Unary tag client=true attempt=1",
            "Unary begin",
            "Unary out-header x-echo=None",
            "Unary out-payload 13 compressed=false",
            "Unary half-close",
            "Unary in-trailer grpc-status=5",
            "Unary end NotFound",
        ]
    );
    assert_eq!(
        t.server_stats.calls(),
        [
            "Unary tag client=false",
            "Unary begin",
            "Unary in-header x-echo=None",
            "Unary in-payload 13 compressed=false",
            "Unary half-close",
            "Unary out-trailer grpc-status=5",
            "Unary end NotFound",
        ]
    );

    // A method the server does not have: unregistered on the server side.
    let err = t
        .client
        .unary(MISSING, Request::new(s("x")), pb::<_, StringValue>())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unimplemented);
    server_ends(&t.server_stats, 1).await;
    assert_eq!(
        t.server_stats.calls(),
        [
            "Missing tag client=false unregistered",
            "Missing begin",
            "Missing in-header x-echo=None",
            "Missing out-trailer grpc-status=12",
            "Missing end Unimplemented",
        ]
    );
    assert_eq!(
        t.client_stats.calls().last().unwrap(),
        "Missing end Unimplemented"
    );
}

#[tokio::test]
async fn compressed_messages_report_wire_size_and_plain_bytes() {
    let t = setup().await;
    let text = "z".repeat(1000);
    let mut request = Request::new(s(&text));
    request.set_send_compressed(CompressionEncoding::Gzip);
    request
        .metadata_mut()
        .insert("x-compress-response", "1")
        .unwrap();
    let reply: Response<StringValue> = t.client.unary(UNARY, request, pb()).await.unwrap();
    assert_eq!(reply.get_ref().value, text);
    server_ends(&t.server_stats, 1).await;
    let client = t.client_stats.calls();
    // 1,000 bytes of text, 1,003 as a message, far fewer on the wire.
    assert!(client.contains(&"Unary out-payload 1003 compressed=true".to_owned()));
    assert!(client.contains(&"Unary in-payload 1003 compressed=true".to_owned()));
    let encoded = s(&text).write_to_bytes().unwrap();
    assert!(
        t.client_stats
            .messages
            .lock()
            .unwrap()
            .iter()
            .all(|m| *m == encoded)
    );
}

/// Counts the compressed sizes a handler sees, to check them against the wire.
#[derive(Clone, Default)]
struct Sizes(Arc<Mutex<Vec<(bool, usize)>>>);

impl Handler for Sizes {
    type Call = ();

    fn tag_rpc(&self, _: &RpcInfo<'_>) {}

    fn handle_rpc(&self, (): &(), event: &RpcEvent<'_>) {
        match event {
            RpcEvent::OutPayload(p) => self.0.lock().unwrap().push((true, p.compressed_len())),
            RpcEvent::InPayload(p) => self.0.lock().unwrap().push((false, p.compressed_len())),
            _ => {}
        }
    }
}

#[tokio::test]
async fn several_handlers_each_see_every_event() {
    let server_stats = Recorder::default();
    let sizes = Sizes::default();
    let srv = {
        let (stats, sizes) = (server_stats.clone(), sizes.clone());
        start_with(move |b| b.stats_handler(stats).stats_handler(sizes)).await
    };
    let text = "q".repeat(2000);
    let mut request = Request::new(s(&text));
    request.set_send_compressed(CompressionEncoding::Gzip);
    let reply: Response<StringValue> = srv.client().unary(UNARY, request, pb()).await.unwrap();
    assert_eq!(reply.get_ref().value.len(), 2000);
    server_ends(&server_stats, 1).await;
    let sizes = sizes.0.lock().unwrap().clone();
    assert_eq!(sizes.len(), 2);
    // Received compressed (small), sent plain (2,003 bytes).
    assert!(!sizes[0].0 && sizes[0].1 < 100, "{sizes:?}");
    assert_eq!(sizes[1], (true, 2003));
    assert_eq!(
        server_stats
            .calls()
            .iter()
            .filter(|l| l.contains("payload"))
            .count(),
        2
    );
}

#[tokio::test(start_paused = true)]
async fn each_attempt_of_a_retried_call_is_seen() {
    const RETRY: &str = r#"{"methodConfig": [{"name": [{"service": "test.Echo"}],
        "retryPolicy": {"maxAttempts": 3, "initialBackoff": "0.01s", "maxBackoff": "0.05s",
                        "backoffMultiplier": 2, "retryableStatusCodes": ["UNAVAILABLE"]}}]}"#;
    let server = grpc_runtime::server::Server::builder()
        .add_service(Echo::default())
        .build();
    let stats = Recorder::default();
    let channel = memory_channel(&server, |b| {
        b.default_service_config(RETRY).stats_handler(stats.clone())
    });
    let err = Client::new(channel)
        .unary(
            UNARY,
            Request::new(s("fail:14:down")),
            pb::<_, StringValue>(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable);
    let log = stats.calls();
    let tags: Vec<_> = log.iter().filter(|l| l.contains(" tag ")).collect();
    assert_eq!(
        tags,
        [
            "Unary tag client=true attempt=1",
            "Unary tag client=true attempt=2",
            "Unary tag client=true attempt=3",
        ]
    );
    assert_eq!(
        log.iter().filter(|l| *l == "Unary end Unavailable").count(),
        3
    );
    assert_eq!(
        log.iter()
            .filter(|l| l.starts_with("Unary out-payload"))
            .count(),
        3
    );
}

#[tokio::test]
async fn connections_begin_and_end_on_both_sides() {
    let t = setup().await;
    let _: Response<StringValue> = t
        .client
        .unary(UNARY, Request::new(s("x")), pb())
        .await
        .unwrap();
    let conns = |r: &Recorder| {
        r.log
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.starts_with("conn "))
            .cloned()
            .collect::<Vec<_>>()
    };
    assert_eq!(conns(&t.client_stats), ["conn begin client=true"]);
    eventually("the server's connection begins", || {
        conns(&t.server_stats) == ["conn begin client=false"]
    })
    .await;
    let Setup {
        client,
        client_stats,
        server_stats,
        _srv: srv,
    } = t;
    drop(client);
    eventually("the client's connection ends", || {
        conns(&client_stats) == ["conn begin client=true", "conn end client=true"]
    })
    .await;
    srv.server.stop().await;
    eventually("the server's connection ends", || {
        conns(&server_stats) == ["conn begin client=false", "conn end client=false"]
    })
    .await;
}
