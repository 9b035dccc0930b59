//! `h2-baseline-server`: the ceiling for a gRPC server on h2. The h2 crate directly, no gRPC
//! layer: for every complete gRPC frame a request stream carries (counted by its 5-byte
//! prefix, never decoded) it answers one pre-encoded SimpleResponse, then ends the stream with
//! `grpc-status: 0` trailers. Serves UnaryCall and StreamingCall ping-pong alike (any path
//! but two). StreamingFromServer: once the request's frame is in, the pre-encoded response
//! again and again, as fast as flow control lets, until the client resets the stream.
//! StreamingFromClient: the request body read and dropped until its end, then the
//! pre-encoded response once and the trailers.

use std::future::poll_fn;
use std::sync::Arc;

use bytes::Bytes;
use h2::server::SendResponse;
use h2::{RecvStream, SendStream};
use http::{HeaderMap, HeaderValue};

use benchmark::harness::{Args, grpc_frame, runtime};
use benchmark::proto::messages::SimpleRequest;
use benchmark::service::response_for;
use benchmark::{STREAMING_FROM_CLIENT_PATH, STREAMING_FROM_SERVER_PATH};
use protobuf::Message;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

const USAGE: &str = "\
h2-baseline-server: pre-encoded gRPC answers straight on h2, the ceiling for a gRPC server.

Options:
  --port N           port on 127.0.0.1 (0 picks one) [50051]
  --threads N        runtime threads (1: current-thread runtime) [1]
  --resp-size BYTES  payload size of the pre-encoded response [1]
  --stream-window N  HTTP/2 initial stream window [1048576]
  --conn-window N    HTTP/2 connection window [2097152]
  --max-frame N      HTTP/2 max frame size [16384]
  --tls-cert F       TLS (tokio-rustls + ring, ALPN h2) with this certificate chain (PEM);
                     needs --tls-key [plaintext]
  --tls-key F        the certificate's private key (PEM)";

#[derive(Clone, Copy)]
struct Settings {
    stream_window: u32,
    conn_window: u32,
    max_frame: u32,
}

fn main() {
    benchmark::process::init_logging("info");
    let mut args = Args::parse(USAGE);
    let port: u16 = args.get("port", 50051);
    let threads: usize = args.get("threads", 1);
    let resp_size: i32 = args.get("resp-size", 1);
    let settings = Settings {
        stream_window: args.get("stream-window", 1 << 20),
        conn_window: args.get("conn-window", 2 << 20),
        max_frame: args.get("max-frame", 16 << 10),
    };
    let cert: Option<String> = args.opt("tls-cert");
    let key: Option<String> = args.opt("tls-key");
    args.finish();
    let tls = match (cert, key) {
        (None, None) => None,
        (Some(cert), Some(key)) => Some(tls_acceptor(&cert, &key)),
        _ => panic!("--tls-cert and --tls-key go together"),
    };
    let mut req = SimpleRequest::new();
    req.response_size = resp_size;
    let message = response_for(&req)
        .expect("non-negative size")
        .write_to_bytes()
        .expect("encode response");
    let response = Bytes::from(grpc_frame(&message));
    runtime(threads).block_on(async move {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap_or_else(|e| panic!("failed to bind port {port}: {e}"));
        let addr = listener.local_addr().expect("local address");
        let secured = if tls.is_some() { ", TLS" } else { "" };
        println!("h2-baseline-server listening on {addr} ({resp_size} B responses){secured}");
        loop {
            let Ok((socket, _)) = listener.accept().await else {
                continue;
            };
            let _ = socket.set_nodelay(true);
            let response = response.clone();
            match &tls {
                None => tokio::spawn(connection(socket, response, settings)),
                Some(tls) => {
                    let accept = tls.accept(socket);
                    tokio::spawn(async move {
                        if let Ok(socket) = accept.await {
                            connection(socket, response, settings).await;
                        }
                    })
                }
            };
        }
    });
}

/// TLS as plain as it comes: rustls's defaults with the ring provider, ALPN h2 offered (not
/// enforced: the benchmark's clients all ask for it).
fn tls_acceptor(cert: &str, key: &str) -> tokio_rustls::TlsAcceptor {
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .unwrap_or_else(|e| panic!("certificates from {cert}: {e}"));
    let key = PrivateKeyDer::from_pem_file(key).unwrap_or_else(|e| panic!("key from {key}: {e}"));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_no_client_auth().with_single_cert(chain, key))
        .unwrap_or_else(|e| panic!("TLS configuration: {e}"));
    config.alpn_protocols = vec![b"h2".to_vec()];
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
}

async fn connection<IO>(socket: IO, response: Bytes, s: Settings)
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let handshake = h2::server::Builder::new()
        .initial_window_size(s.stream_window)
        .initial_connection_window_size(s.conn_window)
        .max_frame_size(s.max_frame)
        .handshake::<_, Bytes>(socket)
        .await;
    let Ok(mut conn) = handshake else {
        return;
    };
    while let Some(Ok((request, respond))) = conn.accept().await {
        let (head, body) = request.into_parts();
        match head.uri.path() {
            STREAMING_FROM_SERVER_PATH => {
                tokio::spawn(server_stream(body, respond, response.clone()))
            }
            STREAMING_FROM_CLIENT_PATH => {
                tokio::spawn(client_stream(body, respond, response.clone()))
            }
            _ => tokio::spawn(stream(body, respond, response.clone())),
        };
    }
}

/// Counts the bytes of gRPC frames as they arrive, without buffering them.
#[derive(Default)]
struct FrameCounter {
    prefix: [u8; 5],
    prefix_len: usize,
    body_left: usize,
}

impl FrameCounter {
    /// Consumes `chunk`; returns how many frames it completed.
    fn push(&mut self, mut chunk: &[u8]) -> usize {
        let mut done = 0;
        while !chunk.is_empty() {
            if self.prefix_len < 5 {
                let n = (5 - self.prefix_len).min(chunk.len());
                self.prefix[self.prefix_len..self.prefix_len + n].copy_from_slice(&chunk[..n]);
                self.prefix_len += n;
                chunk = &chunk[n..];
                if self.prefix_len < 5 {
                    break;
                }
                let p = self.prefix;
                self.body_left = u32::from_be_bytes([p[1], p[2], p[3], p[4]]) as usize;
            }
            let n = self.body_left.min(chunk.len());
            self.body_left -= n;
            chunk = &chunk[n..];
            if self.body_left == 0 {
                done += 1;
                self.prefix_len = 0;
            }
        }
        done
    }
}

/// Response headers: `:status 200`, `content-type: application/grpc`.
fn response_head() -> http::Response<()> {
    let mut head = http::Response::new(());
    head.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    head
}

async fn stream(mut body: RecvStream, mut respond: SendResponse<Bytes>, response: Bytes) {
    let mut frames = FrameCounter::default();
    let mut send = None;
    while let Some(chunk) = body.data().await {
        let Ok(chunk) = chunk else {
            return;
        };
        let _ = body.flow_control().release_capacity(chunk.len());
        for _ in 0..frames.push(&chunk) {
            if send.is_none() {
                match respond.send_response(response_head(), false) {
                    Ok(s) => send = Some(s),
                    Err(_) => return,
                }
            }
            let s = send.as_mut().expect("headers sent");
            // Buffered by h2 beyond the peer's window: fine for a ceiling that never has
            // more than one response in flight per stream.
            if s.send_data(response.clone(), false).is_err() {
                return;
            }
        }
    }
    let trailers = ok_trailers();
    match send {
        Some(mut s) => {
            let _ = s.send_trailers(trailers);
        }
        None => {
            // No request message at all: answer trailers-only.
            let mut head = response_head();
            head.headers_mut().extend(trailers);
            let _ = respond.send_response(head, true);
        }
    }
}

/// `grpc-status: 0`.
fn ok_trailers() -> HeaderMap {
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", HeaderValue::from_static("0"));
    trailers
}

/// StreamingFromClient: reads the request body and drops it, giving its flow-control capacity
/// back as each chunk arrives, until the client ends the stream; then `response` once and
/// the trailers. The requests are neither counted nor decoded.
async fn client_stream(mut body: RecvStream, mut respond: SendResponse<Bytes>, response: Bytes) {
    while let Some(chunk) = body.data().await {
        let Ok(chunk) = chunk else {
            return;
        };
        let _ = body.flow_control().release_capacity(chunk.len());
    }
    let Ok(mut send) = respond.send_response(response_head(), false) else {
        return;
    };
    if send.send_data(response, false).is_ok() {
        let _ = send.send_trailers(ok_trailers());
    }
}

/// StreamingFromServer: waits for the request's one frame, then sends `response` over and over
/// within the peer's flow-control windows (a frame larger than the window goes in pieces)
/// until the stream is reset (the client cancelling) or the connection goes.
async fn server_stream(mut body: RecvStream, mut respond: SendResponse<Bytes>, response: Bytes) {
    let mut frames = FrameCounter::default();
    loop {
        match body.data().await {
            Some(Ok(chunk)) => {
                let _ = body.flow_control().release_capacity(chunk.len());
                if frames.push(&chunk) > 0 {
                    break;
                }
            }
            // Ended or failed before a whole request message: nothing to answer.
            Some(Err(_)) | None => return,
        }
    }
    let Ok(mut send) = respond.send_response(response_head(), false) else {
        return;
    };
    // The ceiling batches as the gRPC servers do: small responses go to h2 ~32 KiB at a
    // time (h2 writes each DATA frame over 256 bytes with a system call of its own).
    let copies = (32 * 1024 / response.len().max(1)).max(1);
    let batch = Bytes::from(response.repeat(copies));
    loop {
        let mut left = batch.clone();
        while !left.is_empty() {
            let Some(window) = send_capacity(&mut send, left.len()).await else {
                return;
            };
            let piece = left.split_to(window.min(left.len()));
            if send.send_data(piece, false).is_err() {
                return;
            }
        }
    }
}

/// Asks h2 for `want` bytes of send capacity and waits until some is assigned; `None` once the
/// stream is reset or closed.
async fn send_capacity(send: &mut SendStream<Bytes>, want: usize) -> Option<usize> {
    send.reserve_capacity(want);
    loop {
        let assigned = send.capacity();
        if assigned > 0 {
            return Some(assigned);
        }
        match poll_fn(|cx| send.poll_capacity(cx)).await {
            Some(Ok(_)) => {}
            Some(Err(_)) | None => return None,
        }
    }
}
