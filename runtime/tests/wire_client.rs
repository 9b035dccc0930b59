//! Our client against a raw HTTP/2 server, written with `h2` directly, that misbehaves in the
//! ways DESIGN.md section 5 lists: non-gRPC HTTP answers, trailers-only responses, resets,
//! GOAWAY, oversized and broken messages, silence. Also checks the exact request headers and
//! bytes the client puts on the wire.

mod common;

use std::future::{Future, poll_fn};
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use common::{COUNT, UNARY, n, pb, s};
use grpc_runtime::client::{CallOptions, Channel, Client};
use grpc_runtime::{Code, CompressionEncoding, Request, Response, Status, Streaming};
use h2::server::SendResponse;
use h2::{Reason, RecvStream, SendStream};
use http::{HeaderMap, HeaderValue, StatusCode};
use protobuf::Message;
use protobuf::well_known_types::wrappers::{StringValue, UInt32Value};
use tokio::sync::mpsc;

/// Upper bound on every wait in these tests.
const LIMIT: Duration = Duration::from_secs(10);

async fn within<T>(fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(LIMIT, fut)
        .await
        .expect("test step timed out")
}

type Incoming = http::Request<RecvStream>;

/// Starts a raw HTTP/2 server on loopback; `handler` runs in its own task for every request.
async fn raw_server<F, Fut>(handler: F) -> SocketAddr
where
    F: Fn(Incoming, SendResponse<Bytes>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let handler = handler.clone();
            tokio::spawn(async move {
                let Ok(mut conn) = h2::server::handshake(tcp).await else {
                    return;
                };
                while let Some(Ok((request, respond))) = conn.accept().await {
                    tokio::spawn(handler(request, respond));
                }
            });
        }
    });
    addr
}

fn client(addr: SocketAddr) -> Client {
    Client::new(Channel::new(&format!("http://{addr}")).unwrap())
}

/// A request carrying `x-case: <case>` for the raw server to switch on.
fn case<T>(case: &str, message: T) -> Request<T> {
    let mut request = Request::new(message);
    request.metadata_mut().insert("x-case", case).unwrap();
    request
}

fn header<'a>(request: &'a Incoming, name: &str) -> &'a str {
    request
        .headers()
        .get(name)
        .map(|v| v.to_str().unwrap())
        .unwrap_or("")
}

fn grpc_response() -> http::Response<()> {
    let mut response = http::Response::new(());
    response
        .headers_mut()
        .insert("content-type", HeaderValue::from_static("application/grpc"));
    response
}

/// One length-prefixed frame with the given compressed flag.
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

fn status_trailers(code: u32) -> HeaderMap {
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", HeaderValue::from(code));
    trailers
}

/// Reads a request body to its end (or a reset), releasing flow-control capacity.
async fn read_body(body: &mut RecvStream) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(Ok(chunk)) = body.data().await {
        let _ = body.flow_control().release_capacity(chunk.len());
        out.extend_from_slice(&chunk);
    }
    out
}

/// Gives h2 time to put buffered frames on the wire: a reset discards what is still queued.
async fn let_flush() {
    tokio::time::sleep(Duration::from_millis(100)).await;
}

async fn reset_reason(stream: &mut SendStream<Bytes>) -> Reason {
    within(poll_fn(|cx| stream.poll_reset(cx)))
        .await
        .expect("poll_reset")
}

/// Answers a unary call with `message` and OK.
async fn answer_ok(stream: &mut SendResponse<Bytes>, message: &impl Message) {
    let mut body = stream.send_response(grpc_response(), false).unwrap();
    body.send_data(msg_frame(message), false).unwrap();
    body.send_trailers(status_trailers(0)).unwrap();
}

async fn unary(client: &Client, request: Request<StringValue>) -> Result<StringValue, Status> {
    within(client.unary(UNARY, request, pb::<_, StringValue>()))
        .await
        .map(Response::into_inner)
}

/// Runs a server-streaming call to its end: the messages received and the final result.
async fn streaming(
    client: &Client,
    request: Request<UInt32Value>,
) -> (Vec<u32>, Result<(), Status>) {
    within(async {
        let reply: Streaming<UInt32Value> =
            match client.server_streaming(COUNT, request, pb()).await {
                Ok(reply) => reply,
                Err(status) => return (Vec::new(), Err(status)),
            };
        let mut stream = reply;
        let mut got = Vec::new();
        loop {
            match stream.message().await {
                Ok(Some(m)) => got.push(m.value),
                Ok(None) => return (got, Ok(())),
                Err(status) => return (got, Err(status)),
            }
        }
    })
    .await
}

// ---------------------------------------------------------------------------------------------
// HTTP status and content-type

async fn http_status_handler(request: Incoming, mut respond: SendResponse<Bytes>) {
    let (code, with_body) = header(&request, "x-case").split_once(',').unwrap();
    let mut response = http::Response::new(());
    *response.status_mut() = StatusCode::from_u16(code.parse().unwrap()).unwrap();
    response
        .headers_mut()
        .insert("content-type", HeaderValue::from_static("text/html"));
    if with_body == "body" {
        let mut body = respond.send_response(response, false).unwrap();
        body.send_data(Bytes::from_static(b"<html>bad gateway</html>"), true)
            .unwrap();
    } else {
        respond.send_response(response, true).unwrap();
    }
}

#[tokio::test]
async fn http_status_without_grpc_status_is_mapped() {
    let client = client(raw_server(http_status_handler).await);
    let cases = [
        (400, Code::Internal),
        (401, Code::Unauthenticated),
        (403, Code::PermissionDenied),
        (404, Code::Unimplemented),
        (429, Code::Unavailable),
        (502, Code::Unavailable),
        (503, Code::Unavailable),
        (504, Code::Unavailable),
        (500, Code::Unknown),
        (418, Code::Unknown),
    ];
    for (http_code, code) in cases {
        for shape in ["body", "headers-only"] {
            let what = format!("{http_code},{shape}");
            let err = unary(&client, case(&what, s("x"))).await.unwrap_err();
            assert_eq!(err.code(), code, "{what}: {err}");
            assert!(
                err.message().contains(&http_code.to_string()),
                "{what}: {err}"
            );
            let (got, end) = streaming(&client, case(&what, n(1))).await;
            assert!(got.is_empty());
            assert_eq!(end.unwrap_err().code(), code, "{what} (streaming)");
        }
    }
}

async fn http_error_with_grpc_status_handler(request: Incoming, mut respond: SendResponse<Bytes>) {
    let mut response = grpc_response();
    *response.status_mut() =
        StatusCode::from_u16(header(&request, "x-case").parse().unwrap()).unwrap();
    response.headers_mut().extend(status_trailers(8));
    response
        .headers_mut()
        .insert("grpc-message", HeaderValue::from_static("slow%20down"));
    respond.send_response(response, true).unwrap();
}

#[tokio::test]
async fn grpc_status_wins_over_http_status() {
    // The HTTP mapping is only for responses without grpc-status.
    let client = client(raw_server(http_error_with_grpc_status_handler).await);
    for http_code in ["503", "429", "500"] {
        let err = unary(&client, case(http_code, s("x"))).await.unwrap_err();
        assert_eq!(err.code(), Code::ResourceExhausted, "{http_code}: {err}");
        assert_eq!(err.message(), "slow down");
    }
}

async fn content_type_handler(request: Incoming, mut respond: SendResponse<Bytes>) {
    let mut response = http::Response::new(());
    match header(&request, "x-case") {
        "none" => {}
        ct => {
            response
                .headers_mut()
                .insert("content-type", HeaderValue::from_str(ct).unwrap());
        }
    }
    let mut body = respond.send_response(response, false).unwrap();
    body.send_data(msg_frame(&s("hello")), false).unwrap();
    body.send_trailers(status_trailers(0)).unwrap();
}

#[tokio::test]
async fn ok_with_wrong_or_missing_content_type_is_an_error() {
    let client = client(raw_server(content_type_handler).await);
    for ct in [
        "text/html",
        "application/json",
        "application/octet-stream",
        "none",
    ] {
        let err = unary(&client, case(ct, s("x"))).await.unwrap_err();
        // HTTP 200 is not in the HTTP-to-gRPC table: UNKNOWN, as gRPC-Go.
        assert_eq!(err.code(), Code::Unknown, "{ct}: {err}");
        assert!(err.message().contains("content-type"), "{ct}: {err}");
        if ct != "none" {
            assert!(err.message().contains(ct), "{ct}: {err}");
        }
        let (got, end) = streaming(&client, case(ct, n(1))).await;
        assert!(got.is_empty());
        assert_eq!(end.unwrap_err().code(), Code::Unknown, "{ct} (streaming)");
    }
    // The content-subtypes gRPC allows are accepted.
    for ct in [
        "application/grpc",
        "application/grpc+proto",
        "application/grpc;charset=utf-8",
    ] {
        let reply = unary(&client, case(ct, s("x"))).await.unwrap();
        assert_eq!(reply.value, "hello", "{ct}");
    }
}

#[tokio::test]
async fn ok_with_grpc_web_content_type_is_an_error() {
    let client = client(raw_server(content_type_handler).await);
    for ct in [
        "application/grpc-web",
        "application/grpc-web-text",
        "application/grpcx",
    ] {
        let err = unary(&client, case(ct, s("x"))).await.unwrap_err();
        assert_eq!(err.code(), Code::Unknown, "{ct}: {err}");
    }
}

// ---------------------------------------------------------------------------------------------
// Trailers-only responses and status encoding

async fn trailers_only_handler(request: Incoming, mut respond: SendResponse<Bytes>) {
    let mut response = grpc_response();
    let headers = response.headers_mut();
    let spec = header(&request, "x-case").to_owned();
    // `code|grpc-message as sent|details-bin as sent`
    let mut parts = spec.split('|');
    headers.insert(
        "grpc-status",
        HeaderValue::from_str(parts.next().unwrap()).unwrap(),
    );
    if let Some(message) = parts.next().filter(|m| !m.is_empty()) {
        headers.insert("grpc-message", HeaderValue::from_str(message).unwrap());
    }
    if let Some(details) = parts.next().filter(|d| !d.is_empty()) {
        headers.insert(
            "grpc-status-details-bin",
            HeaderValue::from_str(details).unwrap(),
        );
    }
    headers.insert("x-extra", HeaderValue::from_static("yes"));
    respond.send_response(response, true).unwrap();
}

#[tokio::test]
async fn trailers_only_ok_without_message() {
    let client = client(raw_server(trailers_only_handler).await);
    // A unary call needs exactly one response message.
    let err = unary(&client, case("0", s("x"))).await.unwrap_err();
    assert_eq!(err.code(), Code::Internal, "{err}");
    // A server-streaming call may end with none; the status' metadata are the trailers.
    let reply: Streaming<UInt32Value> =
        within(client.server_streaming(COUNT, case("0", n(3)), pb()))
            .await
            .unwrap();
    let mut stream = reply;
    assert!(within(stream.message()).await.unwrap().is_none());
    assert_eq!(stream.trailers().unwrap().get("x-extra"), Some("yes"));
}

#[tokio::test]
async fn trailers_only_error_with_encoded_message_and_details() {
    let client = client(raw_server(trailers_only_handler).await);
    let cases: [(&str, Code, &str, &[u8]); 6] = [
        // Unicode (BMP and not), `%` and newlines, percent-encoded; padded details.
        (
            "9|h%C3%A9llo %E2%98%BA %F0%9F%98%88 100%25 done%0Aline two%0D%0A|AAE=",
            Code::FailedPrecondition,
            "héllo ☺ 😈 100% done\nline two\r\n",
            b"\x00\x01",
        ),
        // The same details unpadded.
        ("3|bad|AAE", Code::InvalidArgument, "bad", b"\x00\x01"),
        ("16|who%3F|+g==", Code::Unauthenticated, "who?", b"\xfa"),
        ("16|who%3F|+g", Code::Unauthenticated, "who?", b"\xfa"),
        // Malformed escapes are passed through, never an error of their own.
        ("5|100% sure %zz|", Code::NotFound, "100% sure %zz", b""),
        // An unknown code is UNKNOWN.
        ("42|odd|", Code::Unknown, "odd", b""),
    ];
    for (spec, code, message, details) in cases {
        let err = unary(&client, case(spec, s("x"))).await.unwrap_err();
        assert_eq!(err.code(), code, "{spec}: {err}");
        assert_eq!(err.message(), message, "{spec}");
        assert_eq!(&err.details()[..], details, "{spec}");
        assert_eq!(err.metadata().get("x-extra"), Some("yes"), "{spec}");
        let (got, end) = streaming(&client, case(spec, n(1))).await;
        assert!(got.is_empty());
        let err = end.unwrap_err();
        assert_eq!(
            (err.code(), err.message()),
            (code, message),
            "{spec} (streaming)"
        );
        assert_eq!(&err.details()[..], details, "{spec} (streaming)");
    }
}

async fn error_after_messages_handler(_request: Incoming, mut respond: SendResponse<Bytes>) {
    let mut body = respond.send_response(grpc_response(), false).unwrap();
    body.send_data(msg_frame(&n(7)), false).unwrap();
    let mut trailers = status_trailers(10);
    trailers.insert(
        "grpc-message",
        HeaderValue::from_static("retry%0Alater %E2%9C%93"),
    );
    trailers.insert("grpc-status-details-bin", HeaderValue::from_static("AQID"));
    trailers.insert("x-trailer", HeaderValue::from_static("t"));
    body.send_trailers(trailers).unwrap();
}

#[tokio::test]
async fn error_status_in_trailers_after_messages() {
    let client = client(raw_server(error_after_messages_handler).await);
    let (got, end) = streaming(&client, Request::new(n(1))).await;
    assert_eq!(got, [7]);
    let err = end.unwrap_err();
    assert_eq!(err.code(), Code::Aborted);
    assert_eq!(err.message(), "retry\nlater ✓");
    assert_eq!(&err.details()[..], b"\x01\x02\x03");
    assert_eq!(err.metadata().get("x-trailer"), Some("t"));
}

async fn trailer_shapes_handler(request: Incoming, mut respond: SendResponse<Bytes>) {
    let mut body = respond.send_response(grpc_response(), false).unwrap();
    match header(&request, "x-case") {
        "no-grpc-status" => {
            body.send_data(msg_frame(&s("a")), false).unwrap();
            let mut trailers = HeaderMap::new();
            trailers.insert("x-other", HeaderValue::from_static("1"));
            body.send_trailers(trailers).unwrap();
        }
        "no-trailers" => body.send_data(msg_frame(&s("a")), true).unwrap(),
        "two-messages" => {
            body.send_data(msg_frame(&s("a")), false).unwrap();
            body.send_data(msg_frame(&s("b")), false).unwrap();
            body.send_trailers(status_trailers(0)).unwrap();
        }
        "no-message" => body.send_trailers(status_trailers(0)).unwrap(),
        "bad-protobuf" => {
            body.send_data(frame(0, b"\x0a\x05ab"), false).unwrap();
            body.send_trailers(status_trailers(0)).unwrap();
        }
        other => panic!("unknown case {other}"),
    }
}

#[tokio::test]
async fn malformed_response_shapes_are_errors() {
    let client = client(raw_server(trailer_shapes_handler).await);
    for what in [
        "no-grpc-status",
        "no-trailers",
        "two-messages",
        "no-message",
        "bad-protobuf",
    ] {
        let err = unary(&client, case(what, s("x"))).await.unwrap_err();
        // gRPC-Go says UNKNOWN for a missing grpc-status; INTERNAL is as defensible.
        assert!(
            matches!(err.code(), Code::Internal | Code::Unknown),
            "{what}: {err}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// RST_STREAM

async fn rst_handler(request: Incoming, mut respond: SendResponse<Bytes>) {
    let (phase, reason) = header(&request, "x-case").split_once(',').unwrap();
    let reason = Reason::from(reason.parse::<u32>().unwrap());
    let message = if request.uri().path() == UNARY.path {
        msg_frame(&s("done"))
    } else {
        [msg_frame(&n(0)), msg_frame(&n(1))].concat().into()
    };
    match phase {
        "before_headers" => respond.send_reset(reason),
        "after_headers" => {
            let mut body = respond.send_response(grpc_response(), false).unwrap();
            let_flush().await;
            body.send_reset(reason);
        }
        "after_data" => {
            let mut body = respond.send_response(grpc_response(), false).unwrap();
            body.send_data(message, false).unwrap();
            let_flush().await;
            body.send_reset(reason);
        }
        "during_data" => {
            let mut body = respond.send_response(grpc_response(), false).unwrap();
            body.send_data(message.slice(..message.len() - 2), false)
                .unwrap();
            let_flush().await;
            body.send_reset(reason);
        }
        other => panic!("unknown phase {other}"),
    }
}

#[tokio::test]
async fn rst_stream_codes_are_mapped_in_every_phase() {
    let client = client(raw_server(rst_handler).await);
    let reasons = [
        (Reason::CANCEL, Code::Cancelled),
        (Reason::REFUSED_STREAM, Code::Unavailable),
        (Reason::ENHANCE_YOUR_CALM, Code::ResourceExhausted),
        (Reason::PROTOCOL_ERROR, Code::Internal),
        (Reason::INTERNAL_ERROR, Code::Internal),
    ];
    for phase in [
        "before_headers",
        "after_headers",
        "after_data",
        "during_data",
    ] {
        for (reason, code) in reasons {
            let what = format!("{phase},{}", u32::from(reason));
            let err = unary(&client, case(&what, s("x"))).await.unwrap_err();
            assert_eq!(err.code(), code, "unary {phase} {reason:?}: {err}");
            let (got, end) = streaming(&client, case(&what, n(2))).await;
            let err = end.unwrap_err();
            assert_eq!(err.code(), code, "streaming {phase} {reason:?}: {err}");
            // Messages that arrived whole before the reset are delivered.
            let expect: &[u32] = match phase {
                "after_data" => &[0, 1],
                "during_data" => &[0],
                _ => &[],
            };
            assert_eq!(got, expect, "streaming {phase} {reason:?}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// GOAWAY

/// When the hand-written first connection of [`goaway_then_serve`] sends its GOAWAY.
#[derive(Clone, Copy, Debug, PartialEq)]
enum GoawayOn {
    /// Right after the server preface: the client's connection attempt fails.
    Preface,
    /// When the client's first HEADERS arrive (after answering its PING): the stream is
    /// refused, never processed.
    Headers,
}

/// A server whose first connection is hand-written frames: the server preface, PING
/// answers, and GOAWAY (last stream 0, `code`) at `on`; it then stays open, reading and
/// ignoring, as a draining server would. Later connections are served by `h2`, answering
/// every call with OK. Counts connections.
async fn goaway_then_serve(
    on: GoawayOn,
    code: Reason,
    connections: Arc<AtomicUsize>,
) -> SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            if connections.fetch_add(1, Ordering::SeqCst) > 0 {
                tokio::spawn(async move {
                    let Ok(mut conn) = h2::server::handshake(tcp).await else {
                        return;
                    };
                    while let Some(Ok((_, mut respond))) = conn.accept().await {
                        answer_ok(&mut respond, &s("second")).await;
                    }
                });
                continue;
            }
            tokio::spawn(async move {
                let mut goaway = vec![0, 0, 8, 7, 0, 0, 0, 0, 0];
                goaway.extend_from_slice(&0u32.to_be_bytes());
                goaway.extend_from_slice(&u32::from(code).to_be_bytes());
                let mut preface = [0u8; 24];
                tcp.read_exact(&mut preface).await.unwrap();
                assert_eq!(&preface, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
                // SETTINGS (empty).
                tcp.write_all(&[0, 0, 0, 4, 0, 0, 0, 0, 0]).await.unwrap();
                if on == GoawayOn::Preface {
                    tcp.write_all(&goaway).await.unwrap();
                }
                let _ = tokio::time::timeout(LIMIT, async {
                    loop {
                        let mut head = [0u8; 9];
                        tcp.read_exact(&mut head).await?;
                        let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
                        let mut payload = vec![0u8; len];
                        tcp.read_exact(&mut payload).await?;
                        match (head[3], head[4]) {
                            // SETTINGS: acknowledge.
                            (4, 0) => tcp.write_all(&[0, 0, 0, 4, 1, 0, 0, 0, 0]).await?,
                            // PING: answer.
                            (6, 0) => {
                                tcp.write_all(&[0, 0, 8, 6, 1, 0, 0, 0, 0]).await?;
                                tcp.write_all(&payload).await?;
                            }
                            // HEADERS: too late, the server is going away.
                            (1, _) if on == GoawayOn::Headers => tcp.write_all(&goaway).await?,
                            _ => {}
                        }
                    }
                    #[allow(unreachable_code)]
                    std::io::Result::Ok(())
                })
                .await;
            });
        }
    });
    addr
}

/// One call against [`goaway_then_serve`]: UNAVAILABLE (or OK if retried transparently),
/// then the next call succeeds on a new connection.
async fn check_goaway(on: GoawayOn, code: Reason) {
    let connections = Arc::new(AtomicUsize::new(0));
    let client = client(goaway_then_serve(on, code, Arc::clone(&connections)).await);
    // The call never reached a handler: UNAVAILABLE (or, retried transparently on a new
    // connection, OK) whatever the GOAWAY's error code.
    match unary(&client, Request::new(s("x"))).await {
        Ok(reply) => assert_eq!(reply.value, "second"),
        Err(err) => assert_eq!(err.code(), Code::Unavailable, "{on:?} {code:?}: {err}"),
    }
    // The draining connection is not reused.
    let reply = unary(&client, Request::new(s("x"))).await.unwrap();
    assert_eq!(reply.value, "second", "{on:?} {code:?}");
    assert_eq!(connections.load(Ordering::SeqCst), 2, "{on:?} {code:?}");
}

#[tokio::test]
async fn goaway_is_unavailable_and_the_next_call_reconnects() {
    check_goaway(GoawayOn::Headers, Reason::NO_ERROR).await;
    for code in [
        Reason::NO_ERROR,
        Reason::ENHANCE_YOUR_CALM,
        Reason::PROTOCOL_ERROR,
    ] {
        check_goaway(GoawayOn::Preface, code).await;
    }
}

#[tokio::test]
async fn goaway_with_an_error_code_refusing_the_stream_is_unavailable() {
    for code in [
        Reason::ENHANCE_YOUR_CALM,
        Reason::PROTOCOL_ERROR,
        Reason::INTERNAL_ERROR,
    ] {
        check_goaway(GoawayOn::Headers, code).await;
    }
}

/// A server whose connection sends a graceful GOAWAY while the first call is in flight, then
/// answers it; the connection then closes. `abrupt` instead sends GOAWAY with that error code
/// and drops the call.
async fn goaway_during_call_server(
    abrupt: Option<Reason>,
    connections: Arc<AtomicUsize>,
) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            connections.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let Ok(mut conn) = h2::server::handshake(tcp).await else {
                    return;
                };
                let Some(Ok((mut request, mut respond))) = conn.accept().await else {
                    return;
                };
                match abrupt {
                    None => conn.graceful_shutdown(),
                    Some(reason) => conn.abrupt_shutdown(reason),
                }
                tokio::spawn(async move {
                    let body = read_body(request.body_mut()).await;
                    let message = StringValue::parse_from_bytes(&body[5..]).unwrap();
                    let_flush().await;
                    answer_ok(&mut respond, &message).await;
                });
                while let Some(Ok(_)) = conn.accept().await {}
            });
        }
    });
    addr
}

#[tokio::test]
async fn graceful_goaway_lets_the_call_finish_and_the_next_call_reconnects() {
    let connections = Arc::new(AtomicUsize::new(0));
    let client = client(goaway_during_call_server(None, Arc::clone(&connections)).await);
    for i in 0..3 {
        let text = format!("call {i}");
        let reply = unary(&client, Request::new(s(&text))).await.unwrap();
        assert_eq!(reply.value, text);
    }
    // Each connection served one call.
    assert_eq!(connections.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn abrupt_goaway_during_call_is_unavailable() {
    for reason in [
        Reason::PROTOCOL_ERROR,
        Reason::ENHANCE_YOUR_CALM,
        Reason::INTERNAL_ERROR,
    ] {
        let connections = Arc::new(AtomicUsize::new(0));
        let client =
            client(goaway_during_call_server(Some(reason), Arc::clone(&connections)).await);
        let err = unary(&client, Request::new(s("x"))).await.unwrap_err();
        assert_eq!(err.code(), Code::Unavailable, "{reason:?}: {err}");
    }
}

// ---------------------------------------------------------------------------------------------
// Message limits and framing errors

/// Announces a message of the `x-case` length (sends the prefix and 10 bytes), then waits
/// for the client's reset and reports it.
fn huge_message_server(
    resets: mpsc::UnboundedSender<Reason>,
) -> impl Fn(Incoming, SendResponse<Bytes>) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send>>
+ Clone
+ Send
+ Sync
+ 'static {
    move |request, mut respond| {
        let resets = resets.clone();
        Box::pin(async move {
            let len: u32 = header(&request, "x-case").parse().unwrap();
            let mut body = respond.send_response(grpc_response(), false).unwrap();
            let mut start = BytesMut::new();
            start.put_u8(0);
            start.put_u32(len);
            start.put_bytes(b'x', 10);
            body.send_data(start.freeze(), false).unwrap();
            let _ = resets.send(reset_reason(&mut body).await);
        })
    }
}

#[tokio::test]
async fn oversized_response_is_resource_exhausted_without_waiting_for_it() {
    let (tx, mut resets) = mpsc::unbounded_channel();
    let addr = raw_server(huge_message_server(tx)).await;
    let small = Client::new(
        Channel::builder(&format!("http://{addr}"))
            .max_recv_message_size(1024)
            .build()
            .unwrap(),
    );
    // The server never sends the body: only the prefix can have failed the call.
    let started = Instant::now();
    let err = unary(&small, case("1025", s("x"))).await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err}");
    assert!(err.message().contains("1025"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(within(resets.recv()).await, Some(Reason::CANCEL));
    // The default limit (4 MiB) and a length near u32::MAX.
    let default = client(addr);
    for len in [4 * 1024 * 1024 + 1, u32::MAX] {
        let err = unary(&default, case(&len.to_string(), s("x")))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::ResourceExhausted, "{len}: {err}");
        assert_eq!(within(resets.recv()).await, Some(Reason::CANCEL));
        let (got, end) = streaming(&default, case(&len.to_string(), n(1))).await;
        assert!(got.is_empty());
        assert_eq!(end.unwrap_err().code(), Code::ResourceExhausted);
        assert_eq!(within(resets.recv()).await, Some(Reason::CANCEL));
    }
    // A per-call limit overrides the channel's.
    let per_call = client(addr).with_options(CallOptions::new().max_recv_message_size(100));
    let err = unary(&per_call, case("101", s("x"))).await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err}");
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

fn gunzip(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(data)
        .read_to_end(&mut out)
        .unwrap();
    out
}

async fn compression_handler(request: Incoming, mut respond: SendResponse<Bytes>) {
    let big = s(&"a".repeat(1024 * 1024)).write_to_bytes().unwrap();
    let mut response = grpc_response();
    let (encoding, body) = match header(&request, "x-case") {
        "flag-without-encoding" => (None, frame(1, &gzip(b"\x0a\x01a"))),
        "identity-with-flag" => (Some("identity"), frame(1, &gzip(b"\x0a\x01a"))),
        "flag-2" => (None, frame(2, b"\x0a\x01a")),
        "unknown-encoding" => (Some("br"), frame(1, b"\x0a\x01a")),
        "corrupt-gzip" => (Some("gzip"), frame(1, b"not gzip at all")),
        "gzip-bomb" | "gzip-ok" => (Some("gzip"), frame(1, &gzip(&big))),
        other => panic!("unknown case {other}"),
    };
    if let Some(encoding) = encoding {
        response
            .headers_mut()
            .insert("grpc-encoding", HeaderValue::from_static(encoding));
    }
    let mut stream = respond.send_response(response, false).unwrap();
    stream.send_data(body, false).unwrap();
    stream.send_trailers(status_trailers(0)).unwrap();
}

#[tokio::test]
async fn compression_errors_in_responses() {
    let addr = raw_server(compression_handler).await;
    let client = client(addr);
    let cases = [
        ("flag-without-encoding", Code::Internal),
        ("identity-with-flag", Code::Internal),
        ("flag-2", Code::Internal),
        ("unknown-encoding", Code::Internal),
        ("corrupt-gzip", Code::Internal),
    ];
    for (what, code) in cases {
        let err = unary(&client, case(what, s("x"))).await.unwrap_err();
        assert_eq!(err.code(), code, "{what}: {err}");
    }
    // A small compressed message that inflates past the limit: caught while inflating.
    let limited = client
        .clone()
        .with_options(CallOptions::new().max_recv_message_size(64 * 1024));
    let err = unary(&limited, case("gzip-bomb", s("x")))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err}");
    // Control: the same message under the default limit decodes.
    let reply = unary(&client, case("gzip-ok", s("x"))).await.unwrap();
    assert_eq!(reply.value.len(), 1024 * 1024);
}

async fn truncated_handler(request: Incoming, mut respond: SendResponse<Bytes>) {
    let whole = if request.uri().path() == UNARY.path {
        msg_frame(&s("hello world"))
    } else {
        [msg_frame(&n(1)), msg_frame(&n(300))].concat().into()
    };
    let mut body = respond.send_response(grpc_response(), false).unwrap();
    match header(&request, "x-case") {
        "end-stream-mid-body" => body
            .send_data(whole.slice(..whole.len() - 1), true)
            .unwrap(),
        "trailers-mid-body" => {
            body.send_data(whole.slice(..whole.len() - 1), false)
                .unwrap();
            body.send_trailers(status_trailers(0)).unwrap();
        }
        "trailers-mid-prefix" => {
            // Only part of a 5-byte prefix (of the only, or the second, message).
            let first = if request.uri().path() == UNARY.path {
                0
            } else {
                msg_frame(&n(1)).len()
            };
            body.send_data(whole.slice(..first + 3), false).unwrap();
            body.send_trailers(status_trailers(0)).unwrap();
        }
        other => panic!("unknown case {other}"),
    }
}

#[tokio::test]
async fn stream_ending_mid_message_is_internal() {
    let client = client(raw_server(truncated_handler).await);
    for what in [
        "end-stream-mid-body",
        "trailers-mid-body",
        "trailers-mid-prefix",
    ] {
        let err = unary(&client, case(what, s("x"))).await.unwrap_err();
        assert_eq!(err.code(), Code::Internal, "unary {what}: {err}");
        let (got, end) = streaming(&client, case(what, n(2))).await;
        let err = end.unwrap_err();
        assert_eq!(err.code(), Code::Internal, "streaming {what}: {err}");
        assert!(got.len() <= 1, "streaming {what}: {got:?}");
    }
}

async fn split_frames_handler(request: Incoming, mut respond: SendResponse<Bytes>) {
    let mut response = grpc_response();
    response
        .headers_mut()
        .insert("x-header", HeaderValue::from_static("h"));
    let mut body = respond.send_response(response, false).unwrap();
    if request.uri().path() == UNARY.path {
        // One message, one byte per DATA frame.
        let whole = msg_frame(&s("split into pieces"));
        for i in 0..whole.len() {
            body.send_data(whole.slice(i..=i), false).unwrap();
        }
    } else {
        // Five messages in one DATA frame, then one split across two.
        let five: Vec<u8> = (0..5).flat_map(|i| msg_frame(&n(i)).to_vec()).collect();
        body.send_data(five.into(), false).unwrap();
        let last = msg_frame(&n(5));
        body.send_data(last.slice(..3), false).unwrap();
        let_flush().await;
        body.send_data(last.slice(3..), false).unwrap();
    }
    let mut trailers = status_trailers(0);
    trailers.insert("x-trailer", HeaderValue::from_static("t"));
    body.send_trailers(trailers).unwrap();
}

#[tokio::test]
async fn messages_are_reassembled_across_and_split_within_data_frames() {
    let client = client(raw_server(split_frames_handler).await);
    let reply = within(client.unary(UNARY, Request::new(s("x")), pb::<_, StringValue>()))
        .await
        .unwrap();
    assert_eq!(reply.get_ref().value, "split into pieces");
    assert_eq!(reply.metadata().get("x-header"), Some("h"));
    assert_eq!(reply.trailers().get("x-trailer"), Some("t"));
    let (got, end) = streaming(&client, Request::new(n(6))).await;
    end.unwrap();
    assert_eq!(got, [0, 1, 2, 3, 4, 5]);
}

// ---------------------------------------------------------------------------------------------
// Deadlines and cancellation

/// Reads the request and never answers (`x-case: headers` sends the response headers
/// first); reports the grpc-timeout it saw and the reset that ends the stream.
fn silent_server(
    events: mpsc::UnboundedSender<(String, Reason)>,
) -> impl Fn(Incoming, SendResponse<Bytes>) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send>>
+ Clone
+ Send
+ Sync
+ 'static {
    move |mut request, mut respond| {
        let events = events.clone();
        Box::pin(async move {
            let timeout = header(&request, "grpc-timeout").to_owned();
            let send_headers = header(&request, "x-case") == "headers";
            read_body(request.body_mut()).await;
            let reason = if send_headers {
                let mut body = respond.send_response(grpc_response(), false).unwrap();
                reset_reason(&mut body).await
            } else {
                within(poll_fn(|cx| respond.poll_reset(cx))).await.unwrap()
            };
            let _ = events.send((timeout, reason));
        })
    }
}

#[tokio::test]
async fn unanswered_call_times_out_and_resets_with_cancel() {
    let (tx, mut events) = mpsc::unbounded_channel();
    let client = client(raw_server(silent_server(tx)).await);
    for what in ["nothing", "headers"] {
        let mut request = case(what, s("x"));
        request.set_timeout(Duration::from_millis(200));
        let started = Instant::now();
        let err = unary(&client, request).await.unwrap_err();
        assert_eq!(err.code(), Code::DeadlineExceeded, "{what}: {err}");
        let elapsed = started.elapsed();
        assert!(
            elapsed >= Duration::from_millis(190) && elapsed < Duration::from_secs(3),
            "{elapsed:?}"
        );
        let (timeout, reason) = within(events.recv()).await.unwrap();
        assert_eq!(reason, Reason::CANCEL, "{what}");
        assert!(!timeout.is_empty(), "{what}: no grpc-timeout sent");

        let mut request = case(what, n(1));
        request.set_timeout(Duration::from_millis(200));
        let (got, end) = streaming(&client, request).await;
        assert!(got.is_empty());
        assert_eq!(end.unwrap_err().code(), Code::DeadlineExceeded, "{what}");
        let (_, reason) = within(events.recv()).await.unwrap();
        assert_eq!(reason, Reason::CANCEL, "{what} (streaming)");
    }
}

async fn endless_stream_handler(
    _request: Incoming,
    mut respond: SendResponse<Bytes>,
    resets: mpsc::UnboundedSender<Reason>,
) {
    let mut body = respond.send_response(grpc_response(), false).unwrap();
    body.send_data(msg_frame(&n(0)), false).unwrap();
    let _ = resets.send(reset_reason(&mut body).await);
}

#[tokio::test]
async fn dropping_a_stream_resets_it_with_cancel() {
    let (tx, mut resets) = mpsc::unbounded_channel();
    let addr =
        raw_server(move |request, respond| endless_stream_handler(request, respond, tx.clone()))
            .await;
    let client = client(addr);
    let reply: Streaming<UInt32Value> =
        within(client.server_streaming(COUNT, Request::new(n(1)), pb()))
            .await
            .unwrap();
    let mut stream = reply;
    assert_eq!(within(stream.message()).await.unwrap().unwrap().value, 0);
    drop(stream);
    assert_eq!(within(resets.recv()).await, Some(Reason::CANCEL));
}

// ---------------------------------------------------------------------------------------------
// What the client sends

struct Seen {
    parts: http::request::Parts,
    body: Vec<u8>,
}

fn recording_server(
    seen: mpsc::UnboundedSender<Seen>,
) -> impl Fn(Incoming, SendResponse<Bytes>) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send>>
+ Clone
+ Send
+ Sync
+ 'static {
    move |request, mut respond| {
        let seen = seen.clone();
        Box::pin(async move {
            let (parts, mut body) = request.into_parts();
            let body = read_body(&mut body).await;
            let _ = seen.send(Seen { parts, body });
            answer_ok(&mut respond, &s("ok")).await;
        })
    }
}

fn parse_timeout(value: &str) -> Duration {
    let (digits, unit) = value.split_at(value.len() - 1);
    assert!(
        (1..=8).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()),
        "grpc-timeout {value:?}"
    );
    let n: u64 = digits.parse().unwrap();
    match unit {
        "H" => Duration::from_secs(n * 3600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => panic!("grpc-timeout unit in {value:?}"),
    }
}

#[tokio::test]
async fn request_headers_and_bytes_are_exact() {
    let (tx, mut seen) = mpsc::unbounded_channel();
    let addr = raw_server(recording_server(tx)).await;
    let client = client(addr);

    let mut request = Request::new(s("hello"));
    request.metadata_mut().insert("x-custom", "v").unwrap();
    request.set_timeout(Duration::from_millis(1500));
    unary(&client, request).await.unwrap();
    let Seen { parts, body } = within(seen.recv()).await.unwrap();
    assert_eq!(parts.method, http::Method::POST);
    assert_eq!(parts.uri.scheme_str(), Some("http"));
    assert_eq!(parts.uri.path(), UNARY.path);
    assert_eq!(parts.uri.authority().unwrap().as_str(), addr.to_string());
    let h = &parts.headers;
    assert_eq!(h["content-type"], "application/grpc");
    assert_eq!(h["te"], "trailers");
    assert!(
        h["user-agent"].to_str().unwrap().starts_with("grpc-rust/"),
        "{:?}",
        h["user-agent"]
    );
    assert_eq!(h["x-custom"], "v");
    let accept = h["grpc-accept-encoding"].to_str().unwrap();
    assert!(accept.split(',').any(|e| e.trim() == "gzip"), "{accept}");
    assert!(h.get("grpc-encoding").is_none(), "{h:?}");
    let timeout = parse_timeout(h["grpc-timeout"].to_str().unwrap());
    assert!(
        timeout > Duration::from_millis(1000) && timeout <= Duration::from_millis(1500),
        "{timeout:?}"
    );
    // Exactly the 5-byte prefix and the protobuf bytes, nothing after.
    let proto = s("hello").write_to_bytes().unwrap();
    assert_eq!(
        body,
        [&[0, 0, 0, 0, proto.len() as u8][..], &proto].concat()
    );

    // No timeout: no header. A huge one: still at most 8 digits.
    unary(&client, Request::new(s(""))).await.unwrap();
    let Seen { parts, body } = within(seen.recv()).await.unwrap();
    assert!(parts.headers.get("grpc-timeout").is_none());
    assert_eq!(body, [0, 0, 0, 0, 0], "an empty message is a bare prefix");
    for timeout in [
        Duration::from_secs(40 * 24 * 3600),
        Duration::from_secs(99_999_999 * 3600),
    ] {
        let mut request = Request::new(s("x"));
        request.set_timeout(timeout);
        unary(&client, request).await.unwrap();
        let Seen { parts, .. } = within(seen.recv()).await.unwrap();
        let sent = parse_timeout(parts.headers["grpc-timeout"].to_str().unwrap());
        assert!(
            sent <= timeout && sent > timeout.mul_f64(0.99),
            "{timeout:?} -> {sent:?}"
        );
    }

    // Compressed: grpc-encoding, the flag, a gzip body that inflates to the protobuf bytes.
    let text = "compress me ".repeat(100);
    let mut request = Request::new(s(&text));
    request.set_send_compressed(CompressionEncoding::Gzip);
    unary(&client, request).await.unwrap();
    let Seen { parts, body } = within(seen.recv()).await.unwrap();
    assert_eq!(parts.headers["grpc-encoding"], "gzip");
    assert_eq!(body[0], 1);
    let len = u32::from_be_bytes(body[1..5].try_into().unwrap()) as usize;
    assert_eq!(len, body.len() - 5);
    assert_eq!(gunzip(&body[5..]), s(&text).write_to_bytes().unwrap());
    assert!(len < text.len() / 4, "compressed to {len}");

    // Streaming calls carry the same headers.
    let _ = streaming(&client, Request::new(n(3))).await;
    let Seen { parts, body } = within(seen.recv()).await.unwrap();
    assert_eq!(parts.uri.path(), COUNT.path);
    assert_eq!(parts.headers["content-type"], "application/grpc");
    assert_eq!(parts.headers["te"], "trailers");
    assert_eq!(body, [0, 0, 0, 0, 2, 0x08, 3]);
}

#[tokio::test]
async fn closed_port_is_unavailable_with_the_cause() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let client = client(addr);
    let err = unary(&client, Request::new(s("x"))).await.unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err}");
    assert!(err.message().contains(&addr.to_string()), "{err}");
    assert!(
        err.message().to_lowercase().contains("connection refused"),
        "{err}"
    );
    assert_ne!(err.message(), "transport error");
    // Channel::connect says the same.
    let err = within(Channel::new(&format!("http://{addr}")).unwrap().connect())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable);
    assert!(err.message().contains(&addr.to_string()), "{err}");
}

async fn bad_bin_handler(request: Incoming, mut respond: SendResponse<Bytes>) {
    let mut response = grpc_response();
    let mut trailers = status_trailers(0);
    match header(&request, "x-case") {
        "header" => {
            response
                .headers_mut()
                .insert("x-bad-bin", HeaderValue::from_static("***"));
        }
        _ => {
            trailers.insert("x-bad-bin", HeaderValue::from_static("***"));
        }
    }
    let mut body = respond.send_response(response, false).unwrap();
    body.send_data(msg_frame(&s("x")), false).unwrap();
    body.send_trailers(trailers).unwrap();
}

/// Regression: a response `-bin` header or trailer that is not base64 was dropped; the call
/// fails with INTERNAL, as in gRPC-Go.
#[tokio::test]
async fn malformed_binary_metadata_in_the_response_is_internal() {
    let addr = raw_server(bad_bin_handler).await;
    let client = client(addr);
    for place in ["header", "trailer"] {
        let err = unary(&client, case(place, s("x"))).await.unwrap_err();
        assert_eq!(err.code(), Code::Internal, "{place}: {err}");
        assert!(err.message().contains("x-bad-bin"), "{place}: {err}");
    }
}

// ---------------------------------------------------------------------------------------------
// Conformance with PROTOCOL-HTTP2 and gRPC-Go (the wire-conformance issue)

async fn conformance_handler(mut request: Incoming, mut respond: SendResponse<Bytes>) {
    let case = header(&request, "x-case").to_owned();
    let body = read_body(request.body_mut()).await;
    let _ = body;
    match case.as_str() {
        // grpc-status in headers that a body and real trailers follow.
        "status-in-headers" => {
            let mut response = grpc_response();
            response
                .headers_mut()
                .insert("grpc-status", HeaderValue::from_static("13"));
            let mut stream = respond.send_response(response, false).unwrap();
            stream.send_data(msg_frame(&s("body")), false).unwrap();
            stream.send_trailers(status_trailers(0)).unwrap();
        }
        // An encoding we do not support, on an uncompressed message / a compressed one.
        "unsupported-encoding-plain" | "unsupported-encoding-compressed" => {
            let mut response = grpc_response();
            response
                .headers_mut()
                .insert("grpc-encoding", HeaderValue::from_static("br"));
            let mut stream = respond.send_response(response, false).unwrap();
            let flag = u8::from(case.ends_with("compressed"));
            stream
                .send_data(frame(flag, &s("plain").write_to_bytes().unwrap()), false)
                .unwrap();
            stream.send_trailers(status_trailers(0)).unwrap();
        }
        // grpc-status twice in the trailers: 13, then 0.
        "two-statuses" => {
            let mut stream = respond.send_response(grpc_response(), false).unwrap();
            stream.send_data(msg_frame(&s("x")), false).unwrap();
            let mut trailers = status_trailers(13);
            trailers.append("grpc-status", HeaderValue::from_static("0"));
            stream.send_trailers(trailers).unwrap();
        }
        // Trailers-only without a content-type.
        "trailers-only-no-content-type" => {
            let mut response = http::Response::new(());
            response
                .headers_mut()
                .insert("grpc-status", HeaderValue::from_static("5"));
            respond.send_response(response, true).unwrap();
        }
        // Metadata gRPC-Go lets applications see, and a comma-joined binary value.
        "visible-metadata" => {
            let mut response = grpc_response();
            response
                .headers_mut()
                .insert("grpc-trace-bin", HeaderValue::from_static("AQID"));
            response
                .headers_mut()
                .insert("x-two-bin", HeaderValue::from_static("AQ, Ag"));
            let mut stream = respond.send_response(response, false).unwrap();
            stream.send_data(msg_frame(&s("x")), false).unwrap();
            let mut trailers = status_trailers(14);
            trailers.insert("grpc-retry-pushback-ms", HeaderValue::from_static("250"));
            stream.send_trailers(trailers).unwrap();
        }
        // Echoes the request's header names, in wire order, and its grpc-timeout.
        _ => {
            let names: Vec<&str> = request.headers().keys().map(|k| k.as_str()).collect();
            let timeout = header(&request, "grpc-timeout").to_owned();
            let reply = s(&format!("{}|{timeout}", names.join(",")));
            answer_ok(&mut respond, &reply).await;
        }
    }
}

/// Item 3: only a HEADERS frame that ends the stream is trailers-only; a `grpc-status` in
/// headers followed by a body is ignored (gRPC-Go reports OK here; we reported INTERNAL).
#[tokio::test]
async fn grpc_status_in_headers_without_end_stream_is_not_the_status() {
    let addr = raw_server(conformance_handler).await;
    let reply = unary(&client(addr), case("status-in-headers", s("x"))).await;
    assert_eq!(reply.unwrap().value, "body");
}

/// Item 7: an unsupported response `grpc-encoding` fails only a compressed message.
#[tokio::test]
async fn unsupported_response_encoding_fails_only_compressed_messages() {
    let addr = raw_server(conformance_handler).await;
    let client = client(addr);
    let reply = unary(&client, case("unsupported-encoding-plain", s("x"))).await;
    assert_eq!(reply.unwrap().value, "plain");
    let err = unary(&client, case("unsupported-encoding-compressed", s("x")))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Internal, "{err}");
}

/// Item 10: the last of two `grpc-status` trailers counts (gRPC-Go); a trailers-only
/// response without a content-type is UNKNOWN (gRPC-Go), whatever status it carries.
#[tokio::test]
async fn duplicate_status_and_missing_content_type() {
    let addr = raw_server(conformance_handler).await;
    let client = client(addr);
    let reply = unary(&client, case("two-statuses", s("x"))).await;
    assert_eq!(reply.unwrap().value, "x");
    let err = unary(&client, case("trailers-only-no-content-type", s("x")))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unknown, "{err}");
}

/// Item 8: `grpc-trace-bin`, `grpc-tags-bin` and `grpc-retry-pushback-ms` reach the
/// application (tracing interop and retry pushback need them); a comma-joined `-bin` value
/// is split into its values.
#[tokio::test]
async fn application_grpc_keys_are_visible_and_bin_values_split() {
    let addr = raw_server(conformance_handler).await;
    let client = client(addr);
    let mut stream = within(client.server_streaming(
        COUNT,
        case("visible-metadata", n(1)),
        pb::<_, StringValue>(),
    ))
    .await
    .unwrap();
    let headers = stream.headers().await.unwrap().clone();
    assert_eq!(headers.get_bin("grpc-trace-bin"), Some(vec![1, 2, 3]));
    let two: Vec<_> = headers.get_all_bin("x-two-bin").collect();
    assert_eq!(two, [vec![1], vec![2]]);
    assert_eq!(stream.message().await.unwrap().unwrap().value, "x");
    let err = stream.message().await.unwrap_err();
    assert_eq!(err.code(), Code::Unavailable);
    assert_eq!(err.metadata().get("grpc-retry-pushback-ms"), Some("250"));
    // And applications may send them.
    let mut request = case("echo", s("x"));
    request
        .metadata_mut()
        .insert_bin("grpc-trace-bin", b"\x01")
        .unwrap();
    let names = unary(&client, request).await.unwrap().value;
    assert!(names.contains("grpc-trace-bin"), "{names}");
}

/// Item 9: the call-definition headers come first, then custom metadata, as the spec's
/// grammar orders them.
#[tokio::test]
async fn request_headers_are_in_the_spec_order() {
    let addr = raw_server(conformance_handler).await;
    let mut request = case("echo", s("x"));
    request.metadata_mut().insert("x-custom", "1").unwrap();
    request.set_timeout(Duration::from_secs(30));
    let names = unary(&client(addr), request).await.unwrap().value;
    let (names, _) = names.split_once('|').unwrap();
    let names: Vec<&str> = names.split(',').collect();
    let position = |name: &str| names.iter().position(|n| *n == name).unwrap();
    for definition in [
        "te",
        "grpc-timeout",
        "content-type",
        "grpc-accept-encoding",
        "user-agent",
    ] {
        assert!(position(definition) < position("x-case"), "{names:?}");
        assert!(position(definition) < position("x-custom"), "{names:?}");
    }
    assert!(
        position("grpc-timeout") < position("content-type"),
        "{names:?}"
    );
}

/// Item 6: `grpc-timeout` carries what is left of the deadline when the request goes out,
/// after connecting (here a dialer that takes 400 ms), not the whole timeout.
#[tokio::test]
async fn grpc_timeout_is_what_is_left_after_connecting() {
    let addr = raw_server(conformance_handler).await;
    let channel = Channel::builder("http://slow.example:1")
        .dialer(move || async move {
            tokio::time::sleep(Duration::from_millis(400)).await;
            tokio::net::TcpStream::connect(addr).await
        })
        .build()
        .unwrap();
    let mut request = case("echo", s("x"));
    request.set_timeout(Duration::from_millis(2000));
    let reply = unary(&Client::new(channel), request).await.unwrap().value;
    let (_, timeout) = reply.split_once('|').unwrap();
    let sent = parse_timeout(timeout);
    assert!(sent <= Duration::from_millis(1650), "sent {timeout}");
    assert!(sent >= Duration::from_millis(500), "sent {timeout}");
}

/// Answers a client-streaming call with the number of DATA frames its requests came in and
/// the values of the `UInt32Value` messages they carried, once the request stream ends.
async fn frame_counting_handler(request: Incoming, mut respond: SendResponse<Bytes>) {
    let mut body = request.into_body();
    let (mut frames, mut data) = (0u32, Vec::new());
    let mut end_stream_alone = false;
    while let Some(Ok(chunk)) = body.data().await {
        let _ = body.flow_control().release_capacity(chunk.len());
        frames += 1;
        end_stream_alone = chunk.is_empty();
        data.extend_from_slice(&chunk);
    }
    let mut values = Vec::new();
    let mut at = 0;
    while at + 5 <= data.len() {
        let len = u32::from_be_bytes(data[at + 1..at + 5].try_into().unwrap()) as usize;
        let message = UInt32Value::parse_from_bytes(&data[at + 5..at + 5 + len]).unwrap();
        values.push(message.value.to_string());
        at += 5 + len;
    }
    let reply = format!("{frames}|{end_stream_alone}|{}", values.join(","));
    answer_ok(&mut respond, &s(&reply)).await;
}

/// Requests a client-streaming call's stream has ready at once share DATA frames (h2 makes a
/// system call per frame over 256 bytes), the last one carrying END_STREAM; a request that
/// waits for its stream goes out without waiting for more.
#[tokio::test]
async fn ready_requests_share_frames_and_the_last_ends_the_stream() {
    let addr = raw_server(frame_counting_handler).await;
    let client = client(addr);
    let ready = futures_util::stream::iter((0..1000).map(n));
    let reply: Response<StringValue> =
        within(client.client_streaming(common::CONCAT, Request::new(ready), common::pb()))
            .await
            .unwrap();
    let reply = reply.into_inner().value;
    let mut parts = reply.splitn(3, '|');
    let frames: u32 = parts.next().unwrap().parse().unwrap();
    assert_eq!(
        parts.next(),
        Some("false"),
        "an empty DATA frame ended the stream"
    );
    let expected: Vec<String> = (0..1000).map(|i| i.to_string()).collect();
    assert_eq!(parts.next(), Some(expected.join(",").as_str()));
    // 1000 messages of at most 8 bytes: one batch (a frame per message before).
    assert!(frames <= 2, "{frames} DATA frames for 1000 ready messages");

    // A request whose successor is not ready yet goes out alone, before it: the server sees
    // the first while the client still holds the second back.
    let (tx, rx) = mpsc::channel::<UInt32Value>(1);
    let rx =
        futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|m| (m, rx)) });
    let call = tokio::spawn({
        let client = client.clone();
        async move {
            let reply: Result<Response<StringValue>, Status> = client
                .client_streaming(common::CONCAT, Request::new(rx), common::pb())
                .await;
            reply
        }
    });
    // One slot: the second send waits until the sender task has taken the first, and that
    // task finds its stream empty before this one runs again.
    tx.send(n(1)).await.unwrap();
    tx.send(n(2)).await.unwrap();
    drop(tx);
    let reply = within(call).await.unwrap().unwrap().into_inner().value;
    assert_eq!(
        reply, "2|false|1,2",
        "one frame per message when each waits"
    );
}
