//! `delay-proxy`: a TCP proxy that holds every byte for a fixed time each way, so that a
//! benchmark on loopback sees a link with a round-trip time (this VM's kernel has no `netem`).
//! Bandwidth is not limited: each direction forwards what it read as soon as its time is up.
//! Used to measure flow-control windows against round-trip time (see benchmark/README.md).

use std::collections::VecDeque;
use std::time::Duration;

use benchmark::harness::{Args, runtime};
use benchmark::process::init_logging;
use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::Instant;

const USAGE: &str = "\
delay-proxy: forwards TCP connections, each byte held for half the round-trip time each way.

Options:
  --port N     port on 127.0.0.1 to listen on [50090]
  --target A   address to forward to [127.0.0.1:50051]
  --rtt-ms N   round-trip time added, in milliseconds (half each way) [20]";

/// Reads at most this much at a time: a read is one timed chunk.
const CHUNK: usize = 64 * 1024;

fn main() {
    init_logging("info");
    let mut args = Args::parse(USAGE);
    let port: u16 = args.get("port", 50090);
    let target: String = args.get("target", "127.0.0.1:50051".to_owned());
    let rtt_ms: u64 = args.get("rtt-ms", 20);
    args.finish();
    let one_way = Duration::from_millis(rtt_ms) / 2;
    runtime(1).block_on(async move {
        let listener = TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap_or_else(|e| panic!("failed to bind port {port}: {e}"));
        println!(
            "delay-proxy listening on {}, to {target}, round trip +{rtt_ms} ms",
            listener.local_addr().expect("local address")
        );
        loop {
            let (inbound, _) = match listener.accept().await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!("accept: {e}");
                    continue;
                }
            };
            let target = target.clone();
            tokio::spawn(async move {
                let outbound = match TcpStream::connect(&target).await {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::warn!("connecting to {target}: {e}");
                        return;
                    }
                };
                let _ = inbound.set_nodelay(true);
                let _ = outbound.set_nodelay(true);
                let (in_read, in_write) = inbound.into_split();
                let (out_read, out_write) = outbound.into_split();
                tokio::join!(
                    forward(in_read, out_write, one_way),
                    forward(out_read, in_write, one_way)
                );
            });
        }
    });
}

/// Copies `from` to `to`, each chunk written `delay` after it was read. The reader runs
/// ahead without bound: flow control is the endpoints' (HTTP/2 windows), as on a real link
/// whose buffers hold a round trip of data.
async fn forward(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, delay: Duration) {
    let (tx, mut rx) = mpsc::unbounded_channel::<(Instant, Bytes)>();
    let reader = async move {
        let mut buf = BytesMut::with_capacity(CHUNK);
        loop {
            buf.reserve(CHUNK);
            match from.read_buf(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {
                    if tx
                        .send((Instant::now() + delay, buf.split().freeze()))
                        .is_err()
                    {
                        return;
                    }
                }
            }
        }
    };
    let writer = async move {
        let mut due: VecDeque<(Instant, Bytes)> = VecDeque::new();
        while let Some(chunk) = rx.recv().await {
            due.push_back(chunk);
            // Everything already read goes in order; write each once its time comes.
            while let Ok(chunk) = rx.try_recv() {
                due.push_back(chunk);
            }
            while let Some((at, bytes)) = due.pop_front() {
                tokio::time::sleep_until(at).await;
                if to.write_all(&bytes).await.is_err() {
                    return;
                }
                while let Ok(chunk) = rx.try_recv() {
                    due.push_back(chunk);
                }
            }
        }
        let _ = to.shutdown().await;
    };
    tokio::join!(reader, writer);
}
