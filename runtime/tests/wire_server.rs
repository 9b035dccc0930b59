//! A raw HTTP/2 client, written with `h2` directly, against our server (`common::start`):
//! bad encodings, oversized and truncated messages, malformed headers, non-gRPC requests,
//! resets, garbage instead of HTTP/2; and the shape of every response.

mod common;

use std::io::Write;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use common::{
    CHAT, CONCAT, COUNT, MISSING, Running, UNARY, eventually, n, pb, s, start, start_with,
};
use grpc_runtime::CompressionEncoding;
use h2::client::{ResponseFuture, SendRequest};
use h2::{Reason, SendStream};
use http::{HeaderMap, StatusCode};
use protobuf::Message;
use protobuf::well_known_types::wrappers::{StringValue, UInt32Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Upper bound on every wait in these tests.
const LIMIT: Duration = Duration::from_secs(10);

async fn within<T>(fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(LIMIT, fut)
        .await
        .expect("test step timed out")
}

/// A raw HTTP/2 connection to `addr`.
async fn connect(addr: SocketAddr) -> SendRequest<Bytes> {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (send, connection) = within(h2::client::handshake(tcp)).await.unwrap();
    tokio::spawn(async move {
        let _ = connection.await;
    });
    send
}

/// A gRPC request for `path` with the usual headers, plus `extra` (a `None` value removes
/// a usual header).
fn request(addr: SocketAddr, path: &str, extra: &[(&str, Option<&str>)]) -> http::Request<()> {
    let mut request = http::Request::builder()
        .method("POST")
        .uri(format!("http://{addr}{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())
        .unwrap();
    for (name, value) in extra {
        let name = http::HeaderName::from_bytes(name.as_bytes()).unwrap();
        match value {
            Some(value) => {
                request.headers_mut().insert(name, value.parse().unwrap());
            }
            None => {
                request.headers_mut().remove(name);
            }
        }
    }
    request
}

fn frame(flag: u8, payload: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(5 + payload.len());
    out.put_u8(flag);
    out.put_u32(payload.len() as u32);
    out.put_slice(payload);
    out.freeze()
}

fn msg_frame(message: &impl Message) -> Bytes {
    frame(0, &message.write_to_bytes().unwrap())
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

/// Opens a stream, sends `body` in one DATA frame per item, ending the stream if `end`.
async fn open(
    send: &SendRequest<Bytes>,
    request: http::Request<()>,
    body: &[Bytes],
    end: bool,
) -> (ResponseFuture, SendStream<Bytes>) {
    let mut send = within(send.clone().ready()).await.unwrap();
    let (response, mut stream) = send.send_request(request, body.is_empty() && end).unwrap();
    for (i, chunk) in body.iter().enumerate() {
        stream
            .send_data(chunk.clone(), end && i + 1 == body.len())
            .unwrap();
    }
    (response, stream)
}

/// A response as seen on the wire.
#[derive(Debug)]
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    /// The response ended with its HEADERS frame.
    trailers_only: bool,
    body: Vec<u8>,
    trailers: Option<HeaderMap>,
}

impl Answer {
    /// Where the gRPC status is: the trailers, or the headers of a trailers-only response.
    fn status_block(&self) -> &HeaderMap {
        if self.trailers_only {
            &self.headers
        } else {
            self.trailers.as_ref().expect("trailers")
        }
    }

    fn grpc_status(&self) -> &str {
        self.status_block()
            .get("grpc-status")
            .unwrap_or_else(|| panic!("no grpc-status in {self:?}"))
            .to_str()
            .unwrap()
    }

    fn grpc_message(&self) -> &str {
        self.status_block()
            .get("grpc-message")
            .map(|v| v.to_str().unwrap())
            .unwrap_or("")
    }

    /// The length-prefixed messages of the body.
    fn messages(&self) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut rest = &self.body[..];
        while !rest.is_empty() {
            assert!(rest.len() >= 5, "partial prefix in {self:?}");
            assert_eq!(rest[0], 0, "compressed response");
            let len = u32::from_be_bytes(rest[1..5].try_into().unwrap()) as usize;
            out.push(rest[5..5 + len].to_vec());
            rest = &rest[5 + len..];
        }
        out
    }
}

async fn answer(response: ResponseFuture) -> Answer {
    within(async {
        let response = response.await.expect("response headers");
        let (parts, mut body) = response.into_parts();
        let trailers_only = body.is_end_stream();
        let mut data = Vec::new();
        while let Some(chunk) = body.data().await {
            let chunk = chunk.expect("response body");
            let _ = body.flow_control().release_capacity(chunk.len());
            data.extend_from_slice(&chunk);
        }
        let trailers = body.trailers().await.expect("response trailers");
        Answer {
            status: parts.status,
            headers: parts.headers,
            trailers_only,
            body: data,
            trailers,
        }
    })
    .await
}

/// A complete call: sends `body` and ends the stream, returns the answer.
async fn call(send: &SendRequest<Bytes>, request: http::Request<()>, body: &[Bytes]) -> Answer {
    let (response, _stream) = open(send, request, body, true).await;
    answer(response).await
}

/// A normal unary call on `send` works (the server is still fine).
async fn still_serving(srv: &Running, send: &SendRequest<Bytes>) {
    let got = call(
        send,
        request(srv.addr, UNARY.path, &[]),
        &[msg_frame(&s("still here"))],
    )
    .await;
    assert_eq!(got.grpc_status(), "0", "{got:?}");
    let messages = got.messages();
    assert_eq!(
        StringValue::parse_from_bytes(&messages[0]).unwrap().value,
        "still here"
    );
}

// ---------------------------------------------------------------------------------------------
// Compression

#[tokio::test]
async fn unknown_grpc_encoding_is_trailers_only_unimplemented_listing_gzip() {
    let srv = start().await;
    let send = connect(srv.addr).await;
    let got = call(
        &send,
        request(srv.addr, UNARY.path, &[("grpc-encoding", Some("br"))]),
        &[frame(1, b"whatever brotli makes")],
    )
    .await;
    assert_eq!(got.status, StatusCode::OK);
    assert!(got.trailers_only, "{got:?}");
    assert_eq!(got.grpc_status(), "12", "{got:?}");
    assert!(got.grpc_message().contains("br"), "{got:?}");
    let accept = got.headers["grpc-accept-encoding"].to_str().unwrap();
    assert!(accept.split(',').any(|e| e.trim() == "gzip"), "{accept}");
    assert_eq!(got.headers["content-type"], "application/grpc");
    assert_eq!(srv.echo.observed.started.load(Ordering::SeqCst), 0);

    // An encoding we know but this server does not accept: the same, listing what it does.
    let srv = start_with(|b| b.accept_compressed(&[CompressionEncoding::Deflate])).await;
    let send = connect(srv.addr).await;
    let got = call(
        &send,
        request(srv.addr, UNARY.path, &[("grpc-encoding", Some("gzip"))]),
        &[frame(1, &gzip(&s("x").write_to_bytes().unwrap()))],
    )
    .await;
    assert!(got.trailers_only, "{got:?}");
    assert_eq!(got.grpc_status(), "12", "{got:?}");
    let accept = got.headers["grpc-accept-encoding"].to_str().unwrap();
    let listed: Vec<_> = accept.split(',').map(str::trim).collect();
    assert!(
        listed.contains(&"deflate") && !listed.contains(&"gzip"),
        "{accept}"
    );
    still_serving(&srv, &send).await;
}

#[tokio::test]
async fn compressed_flag_errors_are_internal() {
    let srv = start().await;
    let send = connect(srv.addr).await;
    let proto = s("hello").write_to_bytes().unwrap();
    let cases: [(&str, Option<&str>, Bytes); 4] = [
        ("flag without grpc-encoding", None, frame(1, &gzip(&proto))),
        (
            "flag with identity",
            Some("identity"),
            frame(1, &gzip(&proto)),
        ),
        ("flag 2", None, frame(2, &proto)),
        ("corrupt gzip", Some("gzip"), frame(1, b"not gzip")),
    ];
    for (what, encoding, body) in cases {
        let got = call(
            &send,
            request(srv.addr, UNARY.path, &[("grpc-encoding", encoding)]),
            &[body],
        )
        .await;
        assert!(got.trailers_only, "{what}: {got:?}");
        assert_eq!(got.grpc_status(), "13", "{what}: {got:?}");
    }
    assert_eq!(srv.echo.observed.started.load(Ordering::SeqCst), 0);
    // Control: gzip, announced, decodes; so does an uncompressed message with gzip announced.
    for body in [frame(1, &gzip(&proto)), frame(0, &proto)] {
        let got = call(
            &send,
            request(srv.addr, UNARY.path, &[("grpc-encoding", Some("gzip"))]),
            &[body],
        )
        .await;
        assert_eq!(got.grpc_status(), "0", "{got:?}");
        let reply = StringValue::parse_from_bytes(&got.messages()[0]).unwrap();
        assert_eq!(reply.value, "hello");
    }
}

// ---------------------------------------------------------------------------------------------
// Message limits and framing

#[tokio::test]
async fn announced_oversized_message_is_resource_exhausted_before_the_body() {
    let srv = start_with(|b| b.max_recv_message_size(1024)).await;
    let send = connect(srv.addr).await;
    for path in [UNARY, CONCAT, CHAT] {
        // Only the prefix, and the stream stays open: the answer cannot wait for the body.
        let mut prefix = BytesMut::new();
        prefix.put_u8(0);
        prefix.put_u32(1025);
        let started = Instant::now();
        let (response, _stream) = open(
            &send,
            request(srv.addr, path.path, &[]),
            &[prefix.freeze()],
            false,
        )
        .await;
        let got = answer(response).await;
        assert!(started.elapsed() < Duration::from_secs(5));
        assert_eq!(got.grpc_status(), "8", "{path}: {got:?}");
        assert!(got.grpc_message().contains("1025"), "{path}: {got:?}");
    }
    still_serving(&srv, &send).await;

    // The default limit (4 MiB), and a length near u32::MAX.
    let srv = start().await;
    let send = connect(srv.addr).await;
    for len in [4 * 1024 * 1024 + 1, u32::MAX] {
        let mut prefix = BytesMut::new();
        prefix.put_u8(0);
        prefix.put_u32(len);
        let (response, _stream) = open(
            &send,
            request(srv.addr, UNARY.path, &[]),
            &[prefix.freeze()],
            false,
        )
        .await;
        let got = answer(response).await;
        assert_eq!(got.grpc_status(), "8", "{len}: {got:?}");
    }
    // A small gzip message that inflates past the limit.
    let bomb = gzip(&s(&"a".repeat(5 * 1024 * 1024)).write_to_bytes().unwrap());
    assert!(bomb.len() < 64 * 1024);
    let got = call(
        &send,
        request(srv.addr, UNARY.path, &[("grpc-encoding", Some("gzip"))]),
        &[frame(1, &bomb)],
    )
    .await;
    assert_eq!(got.grpc_status(), "8", "{got:?}");
    assert_eq!(srv.echo.observed.started.load(Ordering::SeqCst), 0);
    still_serving(&srv, &send).await;
}

#[tokio::test]
async fn truncated_request_message_is_internal() {
    let srv = start().await;
    let send = connect(srv.addr).await;
    let whole = msg_frame(&s("hello world"));
    let cases = [
        ("partial prefix", whole.slice(..3)),
        ("partial body", whole.slice(..whole.len() - 1)),
    ];
    for (what, partial) in cases {
        let got = call(
            &send,
            request(srv.addr, UNARY.path, &[]),
            std::slice::from_ref(&partial),
        )
        .await;
        assert_eq!(got.grpc_status(), "13", "unary {what}: {got:?}");
        // Client streaming: a whole message, then the partial one.
        let got = call(
            &send,
            request(srv.addr, CONCAT.path, &[]),
            &[msg_frame(&s("a")), partial],
        )
        .await;
        assert_eq!(got.grpc_status(), "13", "client streaming {what}: {got:?}");
    }
    assert_eq!(srv.echo.observed.finished.load(Ordering::SeqCst), 0);
    still_serving(&srv, &send).await;
}

#[tokio::test]
async fn wrong_number_of_messages_to_a_single_request_method_is_an_error() {
    let srv = start().await;
    let send = connect(srv.addr).await;
    let two = [msg_frame(&s("one")), msg_frame(&s("two"))];
    let got = call(&send, request(srv.addr, UNARY.path, &[]), &two).await;
    assert_eq!(got.grpc_status(), "13", "{got:?}");
    assert!(got.messages().is_empty(), "{got:?}");
    // Both in one DATA frame.
    let joined: Bytes = two.concat().into();
    let got = call(&send, request(srv.addr, UNARY.path, &[]), &[joined]).await;
    assert_eq!(got.grpc_status(), "13", "{got:?}");
    // Two to a server-streaming method.
    let got = call(
        &send,
        request(srv.addr, COUNT.path, &[]),
        &[msg_frame(&n(1)), msg_frame(&n(2))],
    )
    .await;
    assert_eq!(got.grpc_status(), "13", "{got:?}");
    // None at all.
    let got = call(&send, request(srv.addr, UNARY.path, &[]), &[]).await;
    assert_eq!(got.grpc_status(), "13", "{got:?}");
    assert!(got.trailers_only, "{got:?}");
    assert_eq!(srv.echo.observed.started.load(Ordering::SeqCst), 0);
    still_serving(&srv, &send).await;
}

// ---------------------------------------------------------------------------------------------
// Headers

#[tokio::test]
async fn malformed_grpc_timeout_is_an_error_status() {
    let srv = start().await;
    let send = connect(srv.addr).await;
    for bad in [
        "",
        "abc",
        "S",
        "1",
        "1x",
        "-1S",
        "1.5S",
        " 1S",
        "123456789S",
        "1s",
    ] {
        let got = call(
            &send,
            request(srv.addr, UNARY.path, &[("grpc-timeout", Some(bad))]),
            &[msg_frame(&s("x"))],
        )
        .await;
        assert_eq!(got.status, StatusCode::OK, "{bad:?}");
        assert!(got.trailers_only, "{bad:?}: {got:?}");
        assert_eq!(got.grpc_status(), "13", "{bad:?}: {got:?}");
        assert!(
            got.grpc_message().contains("grpc-timeout"),
            "{bad:?}: {got:?}"
        );
    }
    assert_eq!(srv.echo.observed.started.load(Ordering::SeqCst), 0);
    // The largest valid timeouts do not overflow anything.
    for huge in ["99999999H", "99999999M", "99999999S"] {
        let got = call(
            &send,
            request(srv.addr, UNARY.path, &[("grpc-timeout", Some(huge))]),
            &[msg_frame(&s("x"))],
        )
        .await;
        assert_eq!(got.grpc_status(), "0", "{huge}: {got:?}");
    }
    // Tiny ones expire: already passed on arrival, DEADLINE_EXCEEDED without running the
    // handler; passing during the call, DEADLINE_EXCEEDED too.
    for tiny in ["0n", "1n"] {
        let got = call(
            &send,
            request(srv.addr, UNARY.path, &[("grpc-timeout", Some(tiny))]),
            &[msg_frame(&s("sleep:2000"))],
        )
        .await;
        assert_eq!(got.grpc_status(), "4", "{tiny}: {got:?}");
        assert!(got.trailers_only, "{tiny}: {got:?}");
    }
    let (response, _stream) = open(
        &send,
        request(srv.addr, UNARY.path, &[("grpc-timeout", Some("20m"))]),
        &[msg_frame(&s("sleep:2000"))],
        true,
    )
    .await;
    let got = answer(response).await;
    assert_eq!(got.grpc_status(), "4", "{got:?}");
    still_serving(&srv, &send).await;
}

#[tokio::test]
async fn non_post_is_405_and_non_grpc_content_type_is_415() {
    let srv = start().await;
    let send = connect(srv.addr).await;
    for method in ["GET", "PUT", "DELETE"] {
        let mut req = request(srv.addr, UNARY.path, &[]);
        *req.method_mut() = method.parse().unwrap();
        let end = method != "PUT";
        let body: &[Bytes] = if end {
            &[]
        } else {
            &[Bytes::from_static(b"x")]
        };
        let (response, _stream) = open(&send, req, body, true).await;
        let got = answer(response).await;
        assert_eq!(got.status, StatusCode::METHOD_NOT_ALLOWED, "{method}");
    }
    for ct in [
        Some("application/json"),
        Some("text/plain"),
        Some("application/grp"),
        None,
    ] {
        let got = call(
            &send,
            request(srv.addr, UNARY.path, &[("content-type", ct)]),
            &[msg_frame(&s("x"))],
        )
        .await;
        assert_eq!(got.status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{ct:?}");
    }
    assert_eq!(srv.echo.observed.started.load(Ordering::SeqCst), 0);
    // Content-subtypes are fine.
    for ct in ["application/grpc+proto", "application/grpc;charset=utf-8"] {
        let got = call(
            &send,
            request(srv.addr, UNARY.path, &[("content-type", Some(ct))]),
            &[msg_frame(&s("x"))],
        )
        .await;
        assert_eq!(got.grpc_status(), "0", "{ct}: {got:?}");
    }
    still_serving(&srv, &send).await;
}

#[tokio::test]
async fn grpc_web_content_type_is_415() {
    let srv = start().await;
    let send = connect(srv.addr).await;
    for ct in [
        "application/grpc-web",
        "application/grpc-web-text",
        "application/grpcx",
    ] {
        let got = call(
            &send,
            request(srv.addr, UNARY.path, &[("content-type", Some(ct))]),
            &[msg_frame(&s("x"))],
        )
        .await;
        assert_eq!(
            got.status,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "{ct}: {got:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Cancellation and broken connections

/// A server-streaming handler's small messages leave together (a few DATA frames, not one
/// each), and leave as soon as the handler stops to wait for something else: this handler
/// never returns after its messages.
#[tokio::test]
async fn small_streamed_messages_share_frames_and_leave_when_the_handler_waits() {
    let srv = start().await;
    let send = connect(srv.addr).await;
    let (response, mut stream) = open(
        &send,
        request(srv.addr, COUNT.path, &[("x-hang", Some("1"))]),
        &[msg_frame(&n(1000))],
        true,
    )
    .await;
    let (frames, messages) = within(async {
        let mut body = response.await.expect("response headers").into_body();
        let (mut frames, mut data) = (0, Vec::new());
        let mut messages = Vec::new();
        while messages.len() < 1000 {
            let chunk = body.data().await.expect("a DATA frame").unwrap();
            let _ = body.flow_control().release_capacity(chunk.len());
            frames += 1;
            data.extend_from_slice(&chunk);
            while data.len() >= 5 {
                let len = u32::from_be_bytes(data[1..5].try_into().unwrap()) as usize;
                if data.len() < 5 + len {
                    break;
                }
                messages.push(
                    UInt32Value::parse_from_bytes(&data[5..5 + len])
                        .unwrap()
                        .value,
                );
                data.drain(..5 + len);
            }
        }
        (frames, messages)
    })
    .await;
    assert_eq!(messages, (0..1000).collect::<Vec<u32>>());
    // 1000 messages of at most 8 bytes each: 8 KB, one batch (a frame per message before).
    assert!(frames <= 4, "{frames} DATA frames for 1000 small messages");
    stream.send_reset(Reason::CANCEL);
    still_serving(&srv, &send).await;
}

#[tokio::test]
async fn client_reset_drops_the_handler_promptly() {
    let srv = start().await;
    let send = connect(srv.addr).await;
    let observed = &srv.echo.observed;
    let (_response, mut stream) = open(
        &send,
        request(srv.addr, UNARY.path, &[]),
        &[msg_frame(&s("sleep:5000"))],
        true,
    )
    .await;
    eventually("the handler to start", || {
        observed.started.load(Ordering::SeqCst) == 1
    })
    .await;
    let reset_at = Instant::now();
    stream.send_reset(Reason::CANCEL);
    eventually("the handler to be dropped", || {
        observed.dropped.load(Ordering::SeqCst) == 1
    })
    .await;
    assert!(
        reset_at.elapsed() < Duration::from_secs(1),
        "{:?}",
        reset_at.elapsed()
    );
    assert_eq!(observed.finished.load(Ordering::SeqCst), 0);

    // A bidi handler mid-sleep, after a first response: dropped the same way.
    let (response, mut stream) = open(
        &send,
        request(srv.addr, CHAT.path, &[]),
        &[msg_frame(&s("first"))],
        false,
    )
    .await;
    let response = within(response).await.unwrap();
    let mut body = response.into_body();
    let first = within(body.data()).await.unwrap().unwrap();
    assert_eq!(&first[..], &msg_frame(&s("first"))[..]);
    stream
        .send_data(msg_frame(&s("sleep:5000")), false)
        .unwrap();
    eventually("the bidi handler to start", || {
        observed.started.load(Ordering::SeqCst) == 2
    })
    .await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    stream.send_reset(Reason::CANCEL);
    eventually("the bidi handler to be dropped", || {
        observed.dropped.load(Ordering::SeqCst) == 2
    })
    .await;

    // A reset before any message: nothing runs, nothing breaks.
    let (_response, mut stream) = open(&send, request(srv.addr, UNARY.path, &[]), &[], false).await;
    stream.send_reset(Reason::CANCEL);
    still_serving(&srv, &send).await;
    assert_eq!(observed.dropped.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn garbage_instead_of_a_preface_closes_only_that_connection() {
    let srv = start().await;
    // A connection that is already serving, to check it survives.
    let send = connect(srv.addr).await;
    still_serving(&srv, &send).await;
    for garbage in [
        &b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"[..],
        b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n",
        &[0xff; 64],
    ] {
        let mut tcp = tokio::net::TcpStream::connect(srv.addr).await.unwrap();
        tcp.write_all(garbage).await.unwrap();
        // The server closes it (after a GOAWAY, perhaps): read to the end.
        let mut sink = Vec::new();
        let closed = tokio::time::timeout(LIMIT, tcp.read_to_end(&mut sink)).await;
        assert!(closed.is_ok(), "connection left open after {garbage:?}");
    }
    // Fresh connections and the old one still work.
    still_serving(&srv, &connect(srv.addr).await).await;
    still_serving(&srv, &send).await;
    let reply: grpc_runtime::Response<StringValue> = within(srv.client().unary(
        UNARY,
        grpc_runtime::Request::new(s("ok")),
        pb(),
    ))
    .await
    .unwrap();
    assert_eq!(reply.get_ref().value, "ok");
}

// ---------------------------------------------------------------------------------------------
// The shape of responses

#[tokio::test]
async fn every_response_carries_grpc_status_and_errors_without_messages_are_trailers_only() {
    let srv = start().await;
    let send = connect(srv.addr).await;

    // OK: headers (no status), one message, trailers with grpc-status 0.
    let got = call(
        &send,
        request(srv.addr, UNARY.path, &[("x-echo-trailer", Some("t"))]),
        &[msg_frame(&s("hi"))],
    )
    .await;
    assert_eq!(got.status, StatusCode::OK);
    assert!(!got.trailers_only);
    assert_eq!(got.headers["content-type"], "application/grpc");
    assert!(got.headers.get("grpc-status").is_none(), "{got:?}");
    assert_eq!(got.body, &msg_frame(&s("hi"))[..]);
    let trailers = got.trailers.as_ref().unwrap();
    assert_eq!(trailers["grpc-status"], "0");
    assert_eq!(trailers["x-echo-trailer"], "t");

    // A handler error: trailers-only, with a percent-encoded message.
    let got = call(
        &send,
        request(srv.addr, UNARY.path, &[]),
        &[msg_frame(&s("fail:3:100% é\nnext"))],
    )
    .await;
    assert_eq!(got.status, StatusCode::OK);
    assert!(got.trailers_only, "{got:?}");
    assert!(got.body.is_empty());
    assert_eq!(got.headers["content-type"], "application/grpc");
    assert_eq!(got.grpc_status(), "3");
    assert_eq!(got.grpc_message(), "100%25 %C3%A9%0Anext");

    // Messages, then an error: the status is in the trailers.
    let got = call(
        &send,
        request(srv.addr, COUNT.path, &[("x-fail-after", Some("1"))]),
        &[msg_frame(&n(2))],
    )
    .await;
    assert!(!got.trailers_only);
    let values: Vec<u32> = got
        .messages()
        .iter()
        .map(|m| UInt32Value::parse_from_bytes(m).unwrap().value)
        .collect();
    assert_eq!(values, [0, 1]);
    assert_eq!(got.grpc_status(), "10");
    assert!(got.headers.get("grpc-status").is_none());

    // Zero messages, OK: a status either way.
    let got = call(
        &send,
        request(srv.addr, COUNT.path, &[]),
        &[msg_frame(&n(0))],
    )
    .await;
    assert_eq!(got.grpc_status(), "0", "{got:?}");
    assert!(got.messages().is_empty());

    // Unknown method, unknown service, malformed path: trailers-only UNIMPLEMENTED.
    for path in [MISSING.path, "/nope.Nope/Call", "/nopath", "/"] {
        let got = call(&send, request(srv.addr, path, &[]), &[msg_frame(&s("x"))]).await;
        assert!(got.trailers_only, "{path}: {got:?}");
        assert_eq!(got.grpc_status(), "12", "{path}: {got:?}");
        assert_eq!(got.headers["content-type"], "application/grpc", "{path}");
    }

    // A deadline passing in the handler: DEADLINE_EXCEEDED, handler dropped. (Handlers that
    // failed above count as dropped too.)
    let observed = &srv.echo.observed;
    let dropped = observed.dropped.load(Ordering::SeqCst);
    let (response, _stream) = open(
        &send,
        request(srv.addr, UNARY.path, &[("grpc-timeout", Some("100m"))]),
        &[msg_frame(&s("sleep:5000"))],
        true,
    )
    .await;
    let got = answer(response).await;
    assert_eq!(got.grpc_status(), "4", "{got:?}");
    eventually("the handler to be dropped", || {
        observed.dropped.load(Ordering::SeqCst) == dropped + 1
    })
    .await;
}

/// Regression: a `-bin` request header that is not base64 was silently dropped (the handler
/// saw no value); gRPC-Go fails the call with INTERNAL, and so do we, without running it.
#[tokio::test]
async fn malformed_binary_metadata_is_internal() {
    let srv = start().await;
    let send = connect(srv.addr).await;
    let body = [msg_frame(&s("x"))];
    let (response, _stream) = open(
        &send,
        request(
            srv.addr,
            UNARY.path,
            &[("x-trace-bin", Some("@@not base64@@"))],
        ),
        &body,
        true,
    )
    .await;
    let got = answer(response).await;
    assert_eq!(got.grpc_status(), "13", "{got:?}");
    assert!(got.grpc_message().contains("x-trace-bin"), "{got:?}");
    assert_eq!(
        srv.echo
            .observed
            .started
            .load(std::sync::atomic::Ordering::SeqCst),
        0
    );
    // Valid base64, padded or not, is accepted.
    for value in ["AQID", "AQI", "AQ=="] {
        let (response, _stream) = open(
            &send,
            request(srv.addr, UNARY.path, &[("x-trace-bin", Some(value))]),
            &body,
            true,
        )
        .await;
        assert_eq!(answer(response).await.grpc_status(), "0", "{value}");
    }
}

// ---------------------------------------------------------------------------------------------
// Conformance with PROTOCOL-HTTP2 and gRPC-Go (the wire-conformance issue)

async fn reset_of(stream: &mut SendStream<Bytes>) -> Reason {
    within(std::future::poll_fn(|cx| stream.poll_reset(cx)))
        .await
        .expect("a reset")
}

/// Item 4: a call whose deadline has already passed is answered DEADLINE_EXCEEDED without
/// running the handler (gRPC-Go); a client still sending then gets RST_STREAM(NO_ERROR)
/// after the status, as gRPC-Go's `writeStatus` sends it.
#[tokio::test]
async fn expired_deadline_is_answered_without_running_the_handler() {
    let srv = start().await;
    let send = connect(srv.addr).await;
    for timeout in ["0n", "1n", "0S"] {
        let (response, mut stream) = open(
            &send,
            request(srv.addr, UNARY.path, &[("grpc-timeout", Some(timeout))]),
            &[msg_frame(&s("x"))],
            false,
        )
        .await;
        let got = answer(response).await;
        assert_eq!(got.grpc_status(), "4", "{timeout}: {got:?}");
        assert_eq!(reset_of(&mut stream).await, Reason::NO_ERROR, "{timeout}");
    }
    assert_eq!(
        srv.echo
            .observed
            .started
            .load(std::sync::atomic::Ordering::SeqCst),
        0
    );
    still_serving(&srv, &send).await;
}

/// Item 5: when the deadline passes during the call, the server ends it with
/// DEADLINE_EXCEEDED in trailers, then (a request still open) h2's RST_STREAM(NO_ERROR). A
/// bare RST_STREAM(CANCEL), tried before, reached grpcio and grpc-js clients as CANCELLED
/// whenever it beat their own 1 ms timer in the interop matrix.
#[tokio::test]
async fn deadline_during_the_call_ends_with_deadline_exceeded() {
    let srv = start().await;
    let send = connect(srv.addr).await;
    for end in [true, false] {
        let (response, mut stream) = open(
            &send,
            request(srv.addr, UNARY.path, &[("grpc-timeout", Some("100m"))]),
            &[msg_frame(&s("sleep:5000"))],
            end,
        )
        .await;
        let started = Instant::now();
        let got = answer(response).await;
        assert_eq!(got.grpc_status(), "4", "end={end}: {got:?}");
        assert!(started.elapsed() < Duration::from_secs(2));
        if !end {
            assert_eq!(reset_of(&mut stream).await, Reason::NO_ERROR);
        }
    }
    still_serving(&srv, &send).await;
}

/// Item 9: trailers put the status first, then custom metadata.
#[tokio::test]
async fn trailers_put_the_status_first() {
    let srv = start().await;
    let send = connect(srv.addr).await;
    let got = call(
        &send,
        request(srv.addr, UNARY.path, &[("x-echo-trailer", Some("t"))]),
        &[msg_frame(&s("x"))],
    )
    .await;
    let names: Vec<&str> = got
        .trailers
        .as_ref()
        .unwrap()
        .keys()
        .map(|k| k.as_str())
        .collect();
    assert_eq!(names, ["grpc-status", "x-echo-trailer"], "{got:?}");
}

/// Item 10: the request's `application/grpc+<subtype>` is echoed; a bad content-type is a
/// 415 that carries a gRPC status; two `host` headers are a 400 that carries one.
#[tokio::test]
async fn content_type_and_host_answers() {
    let srv = start().await;
    let send = connect(srv.addr).await;
    let got = call(
        &send,
        request(
            srv.addr,
            UNARY.path,
            &[("content-type", Some("application/grpc+proto"))],
        ),
        &[msg_frame(&s("x"))],
    )
    .await;
    assert_eq!(
        got.headers.get("content-type").unwrap(),
        "application/grpc+proto"
    );
    assert_eq!(got.grpc_status(), "0");

    let got = call(
        &send,
        request(
            srv.addr,
            UNARY.path,
            &[("content-type", Some("text/plain"))],
        ),
        &[msg_frame(&s("x"))],
    )
    .await;
    assert_eq!(got.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(got.grpc_status(), "3", "{got:?}");
    assert!(got.grpc_message().contains("text/plain"), "{got:?}");

    let mut twice = request(srv.addr, UNARY.path, &[]);
    twice
        .headers_mut()
        .append("host", "a.example".parse().unwrap());
    twice
        .headers_mut()
        .append("host", "b.example".parse().unwrap());
    let got = call(&send, twice, &[msg_frame(&s("x"))]).await;
    assert_eq!(got.status, StatusCode::BAD_REQUEST);
    assert_eq!(got.grpc_status(), "13", "{got:?}");
    still_serving(&srv, &send).await;
}
