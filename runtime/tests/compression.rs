//! gzip and deflate per call and per server, and what happens when the peers disagree.

mod common;

use common::*;
use grpc_runtime::client::CallOptions;
use grpc_runtime::{Code, CompressionEncoding, Request, Response, Streaming};
use protobuf::well_known_types::wrappers::{StringValue, UInt32Value};

#[tokio::test]
async fn compressed_requests_per_call_and_per_client() {
    let srv = start().await;
    let big = "compressible ".repeat(10_000);
    for enc in CompressionEncoding::ALL {
        let mut request = Request::new(s(&big));
        request.set_send_compressed(enc);
        let reply: Response<StringValue> = srv.client().unary(UNARY, request, pb()).await.unwrap();
        assert_eq!(reply.get_ref().value, big);

        let client = srv
            .client()
            .with_options(CallOptions::new().send_compressed(enc));
        let requests = futures_util::stream::iter(["a", "b"].map(s));
        let reply: Response<StringValue> = client
            .client_streaming(CONCAT, Request::new(requests), pb())
            .await
            .unwrap();
        assert_eq!(reply.get_ref().value, "a,b");
    }
}

#[tokio::test]
async fn server_compresses_responses_when_the_client_accepts() {
    let srv = start_with(|b| b.send_compressed(CompressionEncoding::Gzip)).await;
    let reply: Response<StringValue> = srv
        .client()
        .unary(UNARY, Request::new(s("big:100000")), pb())
        .await
        .unwrap();
    assert_eq!(reply.get_ref().value.len(), 100_000);
    let reply: Streaming<UInt32Value> = srv
        .client()
        .server_streaming(COUNT, Request::new(n(3)), pb())
        .await
        .unwrap();
    let mut stream = reply;
    let mut got = Vec::new();
    while let Some(m) = stream.message().await.unwrap() {
        got.push(m.value);
    }
    assert_eq!(got, [0, 1, 2]);
}

#[tokio::test]
async fn server_refusing_an_encoding_answers_unimplemented() {
    let srv = start_with(|b| b.accept_compressed(&[CompressionEncoding::Deflate])).await;
    let mut request = Request::new(s("x"));
    request.set_send_compressed(CompressionEncoding::Gzip);
    let err = srv
        .client()
        .unary(UNARY, request, pb::<_, StringValue>())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unimplemented);
    assert!(err.message().contains("gzip"), "{err}");
    // The one it accepts works.
    let mut request = Request::new(s("x"));
    request.set_send_compressed(CompressionEncoding::Deflate);
    let reply: Response<StringValue> = srv.client().unary(UNARY, request, pb()).await.unwrap();
    assert_eq!(reply.get_ref().value, "x");
}

#[tokio::test]
async fn compressed_size_limit_is_on_the_decompressed_size() {
    // 1 MiB of zeros compresses to about 1 KiB; the 64 KiB limit must still catch it.
    let srv = start_with(|b| b.max_recv_message_size(64 * 1024)).await;
    let mut request = Request::new(s(&"\0".repeat(1 << 20)));
    request.set_send_compressed(CompressionEncoding::Gzip);
    let err = srv
        .client()
        .unary(UNARY, request, pb::<_, StringValue>())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted);
}

/// Sends one raw unary request and returns the response headers and body bytes.
async fn raw_unary(
    addr: std::net::SocketAddr,
    headers: &[(&str, &str)],
    frame: Vec<u8>,
) -> (http::HeaderMap, Vec<u8>) {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut h2, conn) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(conn);
    let mut request = http::Request::builder()
        .method("POST")
        .uri(format!("http://{addr}{UNARY}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers");
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let (response, mut send) = h2.send_request(request.body(()).unwrap(), false).unwrap();
    send.send_data(frame.into(), true).unwrap();
    let response = response.await.unwrap();
    let headers = response.headers().clone();
    let mut body = response.into_body();
    let mut bytes = Vec::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.unwrap();
        body.flow_control().release_capacity(chunk.len()).unwrap();
        bytes.extend_from_slice(&chunk);
    }
    (headers, bytes)
}

fn frame(text: &str) -> Vec<u8> {
    let body = protobuf::Message::write_to_bytes(&s(text)).unwrap();
    let mut frame = vec![0];
    frame.extend_from_slice(&(body.len() as u32).to_be_bytes());
    frame.extend_from_slice(&body);
    frame
}

#[tokio::test]
async fn responses_are_compressed_on_the_wire_only_when_accepted() {
    let srv = start_with(|b| b.send_compressed(CompressionEncoding::Gzip)).await;
    let (headers, body) = raw_unary(
        srv.addr,
        &[("grpc-accept-encoding", "identity,gzip")],
        frame("big:10000"),
    )
    .await;
    assert_eq!(headers["grpc-encoding"], "gzip");
    assert_eq!(body[0], 1, "compressed flag");
    let len = u32::from_be_bytes(body[1..5].try_into().unwrap()) as usize;
    assert!(
        len < 1000,
        "10000 x's should compress well, got {len} bytes"
    );
    // A client that does not accept gzip gets plain messages.
    let (headers, body) = raw_unary(srv.addr, &[], frame("big:10000")).await;
    assert!(headers.get("grpc-encoding").is_none());
    assert_eq!(body[0], 0);
}

#[tokio::test]
async fn each_side_sees_which_messages_were_compressed() {
    use grpc_runtime::codec::{MessageCompressed, Outbound};
    let srv = start().await;
    let client = srv.client();
    // Server side, unary: the handler sees whether the request was compressed.
    for (compress, expect) in [(true, "compressed"), (false, "plain")] {
        let mut request = Request::new(s("x"));
        request
            .metadata_mut()
            .insert("x-report-compression", "1")
            .unwrap();
        if compress {
            request.set_send_compressed(CompressionEncoding::Gzip);
        }
        let reply: Response<StringValue> = client.unary(UNARY, request, pb()).await.unwrap();
        assert_eq!(reply.get_ref().value, expect);
        // The server did not compress its answer.
        assert!(reply.extensions().get::<MessageCompressed>().is_none());
    }
    // Server side, streams: per message; the client chooses per message.
    let messages = vec![
        Outbound::new(s("a")),
        Outbound::uncompressed(s("b")),
        Outbound::new(s("c")),
    ];
    let mut request = Request::new(futures_util::stream::iter(messages));
    request
        .metadata_mut()
        .insert("x-report-compression", "1")
        .unwrap();
    request.set_send_compressed(CompressionEncoding::Gzip);
    let reply: Response<StringValue> = client
        .client_streaming(CONCAT, request, pb::<StringValue, StringValue>())
        .await
        .unwrap();
    assert_eq!(reply.get_ref().value, "a:z,b:p,c:z");
    // Client side, unary: a handler compresses its one response.
    let mut request = Request::new(s("x"));
    request
        .metadata_mut()
        .insert("x-compress-response", "1")
        .unwrap();
    let reply: Response<StringValue> = client.unary(UNARY, request, pb()).await.unwrap();
    assert!(reply.extensions().get::<MessageCompressed>().is_some());
    // Client side, streams: the handler compresses all but every other message.
    let mut request = Request::new(n(4));
    request
        .metadata_mut()
        .insert("x-compress-response", "1")
        .unwrap();
    request.metadata_mut().insert("x-alternate", "1").unwrap();
    let reply: Streaming<UInt32Value> =
        client.server_streaming(COUNT, request, pb()).await.unwrap();
    let mut stream = reply;
    let mut flags = Vec::new();
    while let Some(m) = stream.message().await.unwrap() {
        flags.push((m.value, stream.last_message_compressed()));
    }
    assert_eq!(flags, [(0, true), (1, false), (2, true), (3, false)]);
}

#[tokio::test]
async fn a_client_that_compressed_its_request_gets_that_encoding_back() {
    // No grpc-accept-encoding (as older grpc-go clients send it only sometimes), but the
    // request itself is gzip: the client can evidently decode gzip.
    let srv = start_with(|b| b.send_compressed(CompressionEncoding::Gzip)).await;
    let mut frame = vec![1, 0, 0, 0, 0];
    let body = protobuf::Message::write_to_bytes(&s("big:10000")).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, &body).unwrap();
    let gz = gz.finish().unwrap();
    frame[1..5].copy_from_slice(&(gz.len() as u32).to_be_bytes());
    frame.extend_from_slice(&gz);
    let (headers, body) = raw_unary(srv.addr, &[("grpc-encoding", "gzip")], frame).await;
    assert_eq!(headers["grpc-encoding"], "gzip");
    assert_eq!(body[0], 1);
}
