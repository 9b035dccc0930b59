//! Malformed header fields, byte by byte (h2 refuses to send them, so these peers write raw
//! HTTP/2 frames): what each side does, and what the other calls see.
//!
//! Decision (docs/wire.md): h2 treats a field it cannot decode (an upper-case name, a DEL
//! byte in a value) as an HPACK decoding failure, a connection error, where RFC 9113 8.2.1
//! makes it a stream error. We keep h2's behaviour: only the offending peer's connection is
//! closed (GOAWAY PROTOCOL_ERROR); other connections are untouched; and a client reports
//! the failure as INTERNAL (its own side detected it), never as a retryable UNAVAILABLE.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{UNARY, pb, s, start};
use grpc_runtime::client::{Channel, Client};
use grpc_runtime::{Code, Request};
use protobuf::well_known_types::wrappers::StringValue;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const HEADERS: u8 = 0x1;
const SETTINGS: u8 = 0x4;
const PING: u8 = 0x6;
const GOAWAY: u8 = 0x7;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const ACK: u8 = 0x1;

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut out = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// An HPACK literal field without indexing, with a new name (no Huffman).
fn literal(name: &[u8], value: &[u8]) -> Vec<u8> {
    let mut out = vec![0x00, name.len() as u8];
    out.extend_from_slice(name);
    out.push(value.len() as u8);
    out.extend_from_slice(value);
    out
}

/// `content-type: application/grpc` (static name index 31).
fn content_type() -> Vec<u8> {
    let mut out = vec![0x0f, 0x10, 16];
    out.extend_from_slice(b"application/grpc");
    out
}

async fn read_frame(io: &mut TcpStream) -> Option<(u8, u8, u32, Vec<u8>)> {
    let mut head = [0u8; 9];
    io.read_exact(&mut head).await.ok()?;
    let len = (usize::from(head[0]) << 16) | (usize::from(head[1]) << 8) | usize::from(head[2]);
    let stream = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
    let mut payload = vec![0; len];
    io.read_exact(&mut payload).await.ok()?;
    Some((head[3], head[4], stream, payload))
}

/// A server that answers every request with a response header whose name is upper-case.
async fn bad_header_server() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut io, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut preface = [0u8; 24];
                if io.read_exact(&mut preface).await.is_err() {
                    return;
                }
                let _ = io.write_all(&frame(SETTINGS, 0, 0, &[])).await;
                while let Some((kind, flags, stream, payload)) = read_frame(&mut io).await {
                    let reply = match kind {
                        SETTINGS if flags & ACK == 0 => frame(SETTINGS, ACK, 0, &[]),
                        PING if flags & ACK == 0 => frame(PING, ACK, 0, &payload),
                        HEADERS => {
                            let mut block = vec![0x88]; // :status 200
                            block.extend(content_type());
                            block.extend(literal(b"X-Bad", b"v"));
                            frame(HEADERS, END_HEADERS, stream, &block)
                        }
                        _ => continue,
                    };
                    if io.write_all(&reply).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

/// Item 2 of the wire-conformance issue: a protocol error our own side detects is INTERNAL
/// (it was UNAVAILABLE, which a retry policy would retry after the server may have run the
/// call).
#[tokio::test]
async fn a_malformed_response_header_is_internal_on_the_client() {
    let addr = bad_header_server().await;
    let client = Client::new(Channel::new(&format!("http://{addr}")).unwrap());
    let err = tokio::time::timeout(
        Duration::from_secs(10),
        client.unary(UNARY, Request::new(s("x")), pb::<_, StringValue>()),
    )
    .await
    .expect("the call ends")
    .unwrap_err();
    assert_eq!(err.code(), Code::Internal, "{err}");
    assert!(err.message().contains("protocol error"), "{err}");
}

/// Item 1, as decided: a request header h2 cannot decode closes that client's connection
/// (GOAWAY PROTOCOL_ERROR); a call on another connection runs to its end.
#[tokio::test]
async fn a_malformed_request_header_closes_only_that_connection() {
    let srv = start().await;
    let other = Client::new(srv.channel());
    let slow = tokio::spawn(async move {
        other
            .unary(UNARY, Request::new(s("sleep:300")), pb::<_, StringValue>())
            .await
    });
    tokio::time::sleep(Duration::from_millis(50)).await;

    let mut io = TcpStream::connect(srv.addr).await.unwrap();
    io.write_all(PREFACE).await.unwrap();
    io.write_all(&frame(SETTINGS, 0, 0, &[])).await.unwrap();
    let mut block = vec![0x83, 0x86]; // :method POST, :scheme http
    block.push(0x04); // :path, indexed name, literal value
    block.push(UNARY.path.len() as u8);
    block.extend_from_slice(UNARY.path.as_bytes());
    block.extend(content_type());
    block.extend(literal(b"te", b"trailers"));
    block.extend(literal(b"X-Upper", b"v"));
    io.write_all(&frame(HEADERS, END_HEADERS | END_STREAM, 1, &block))
        .await
        .unwrap();
    let mut goaway = None;
    while let Ok(Some((kind, _, _, payload))) =
        tokio::time::timeout(Duration::from_secs(5), read_frame(&mut io)).await
    {
        if kind == GOAWAY {
            goaway = Some(u32::from_be_bytes([
                payload[4], payload[5], payload[6], payload[7],
            ]));
            break;
        }
    }
    assert_eq!(goaway, Some(0x1), "GOAWAY(PROTOCOL_ERROR)");

    let reply = slow.await.unwrap().unwrap();
    assert_eq!(reply.get_ref().value, "sleep:300");
}
