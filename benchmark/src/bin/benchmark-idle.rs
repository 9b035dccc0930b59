//! `benchmark-idle`: opens idle HTTP/2 connections, and optionally idle StreamingCall streams
//! on them (request headers sent, no message), then holds them so the server's memory can be
//! read. Raw h2, so it costs the same against every server.

use std::time::Duration;

use benchmark::STREAMING_PATH;
use benchmark::harness::{Args, runtime};
use bytes::Bytes;
use http::HeaderValue;

const USAGE: &str = "\
benchmark-idle: hold idle connections and streams open against a server.

Options:
  --target HOST:PORT  server [127.0.0.1:50051]
  --connections N     HTTP/2 connections [1000]
  --streams N         idle StreamingCall streams per connection [0]
  --hold SECS         how long to hold them before exiting [30]

Prints `READY connections=N streams=M` once everything is open.";

fn main() {
    benchmark::process::init_logging("warn");
    let mut args = Args::parse(USAGE);
    let target: String = args.get("target", "127.0.0.1:50051".to_owned());
    let connections: usize = args.get("connections", 1000);
    let streams: usize = args.get("streams", 0);
    let hold: f64 = args.get("hold", 30.0);
    args.finish();
    let code = runtime(1).block_on(async move {
        let mut held = Vec::new();
        for i in 0..connections {
            match open(&target, streams).await {
                Ok(h) => held.push(h),
                Err(e) => {
                    eprintln!("error: connection {i}: {e}");
                    return 1;
                }
            }
        }
        // Let the last frames reach the server.
        tokio::time::sleep(Duration::from_millis(200)).await;
        println!(
            "READY connections={connections} streams={}",
            connections * streams
        );
        tokio::time::sleep(Duration::from_secs_f64(hold)).await;
        drop(held);
        0
    });
    std::process::exit(code);
}

struct Held {
    _sender: h2::client::SendRequest<Bytes>,
    _streams: Vec<(h2::client::ResponseFuture, h2::SendStream<Bytes>)>,
    _driver: tokio::task::JoinHandle<()>,
}

async fn open(target: &str, streams: usize) -> Result<Held, String> {
    let socket = tokio::net::TcpStream::connect(target)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let _ = socket.set_nodelay(true);
    let (mut sender, conn) = h2::client::handshake(socket)
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    let driver = tokio::spawn(async move {
        let _ = conn.await;
    });
    let mut open = Vec::with_capacity(streams);
    for _ in 0..streams {
        sender = sender
            .ready()
            .await
            .map_err(|e| format!("stream not accepted: {e}"))?;
        let mut request = http::Request::new(());
        *request.method_mut() = http::Method::POST;
        *request.uri_mut() = format!("http://{target}{STREAMING_PATH}")
            .parse()
            .map_err(|e| format!("uri: {e}"))?;
        let h = request.headers_mut();
        h.insert("content-type", HeaderValue::from_static("application/grpc"));
        h.insert("te", HeaderValue::from_static("trailers"));
        open.push(
            sender
                .send_request(request, false)
                .map_err(|e| format!("open stream: {e}"))?,
        );
    }
    Ok(Held {
        _sender: sender,
        _streams: open,
        _driver: driver,
    })
}
