//! A mixed-load soak against a `grpc.testing.TestService` server:
//! `interop-soak --server_port=N [--server_host=H] [--seconds=S] [--workers=W] [--server_pid=P]`.
//!
//! Workers run, for `seconds`, a mix of well-formed calls whose answers are checked (unary,
//! server streaming, client streaming, bidi ping-pong), calls cancelled midway, calls that
//! pass their deadline, and broken clients (raw connections that send garbage or only the
//! preface and vanish). Every 10 s it prints the server's RSS (from `/proc/P/status` with
//! `--server_pid`). At the end it prints one `SOAK` line; it exits non-zero if a well-formed
//! call failed or a deadline or cancellation did not end its call as it should.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use grpc_runtime::client::Channel;
use grpc_runtime::{Code, Request};
use interop::flags::Flags;
use interop::proto::messages::{
    ResponseParameters, SimpleRequest, StreamingInputCallRequest, StreamingOutputCallRequest,
};
use interop::proto::test_grpc::TestServiceClient;
use interop::zeros;
use tokio::io::AsyncWriteExt;

#[derive(Default)]
struct Counts {
    ok: AtomicU64,
    failed: AtomicU64,
    cancelled: AtomicU64,
    deadlines: AtomicU64,
    broken: AtomicU64,
}

fn params(sizes: &[i32], interval_us: i32) -> Vec<ResponseParameters> {
    sizes
        .iter()
        .map(|&size| {
            let mut p = ResponseParameters::new();
            p.size = size;
            p.interval_us = interval_us;
            p
        })
        .collect()
}

/// One well-formed call of kind `i % 4`, its answer checked.
async fn well_formed(client: &TestServiceClient, i: u64) -> Result<(), String> {
    match i % 4 {
        0 => {
            let mut request = SimpleRequest::new();
            request.response_size = 1000 + (i % 7) as i32 * 10_000;
            request.payload = zeros(100);
            let reply = client
                .unary_call(request.clone())
                .await
                .map_err(|s| s.to_string())?;
            let got = reply.get_ref().payload.body.len() as i32;
            (got == request.response_size).then_some(()).ok_or(format!(
                "unary: {got} bytes, expected {}",
                request.response_size
            ))
        }
        1 => {
            let mut request = StreamingOutputCallRequest::new();
            request.response_parameters = params(&[10, 2000, 30_000, 1], 0);
            let mut stream = client
                .streaming_output_call(request)
                .await
                .map_err(|s| s.to_string())?;
            let mut sizes = Vec::new();
            while let Some(m) = stream.message().await.map_err(|s| s.to_string())? {
                sizes.push(m.payload.body.len());
            }
            (sizes == [10, 2000, 30_000, 1])
                .then_some(())
                .ok_or(format!("server streaming: {sizes:?}"))
        }
        2 => {
            let sizes = [27_182, 8, 1828, 45_904];
            let requests = futures_util::stream::iter(sizes.map(|size| {
                let mut r = StreamingInputCallRequest::new();
                r.payload = zeros(size);
                r
            }));
            let reply = client
                .streaming_input_call(requests)
                .await
                .map_err(|s| s.to_string())?;
            let total = reply.get_ref().aggregated_payload_size;
            (total == sizes.iter().sum::<i32>())
                .then_some(())
                .ok_or(format!("client streaming: aggregated {total}"))
        }
        _ => {
            let (mut tx, mut rx) = client
                .full_duplex_call(())
                .await
                .map_err(|s| s.to_string())?;
            for size in [31_415, 9, 2653, 58_979] {
                let mut request = StreamingOutputCallRequest::new();
                request.response_parameters = params(&[size], 0);
                request.payload = zeros(size / 2);
                tx.send(request).await.map_err(|s| s.to_string())?;
                let m = rx
                    .message()
                    .await
                    .map_err(|s| s.to_string())?
                    .ok_or("bidi: the stream ended early")?;
                if m.payload.body.len() != size as usize {
                    return Err(format!(
                        "bidi: {} bytes, expected {size}",
                        m.payload.body.len()
                    ));
                }
            }
            tx.close();
            match rx.message().await.map_err(|s| s.to_string())? {
                None => Ok(()),
                Some(_) => Err("bidi: a response after the last".to_owned()),
            }
        }
    }
}

/// A server stream cancelled after its first message (the rest come every 100 ms).
async fn cancelled(client: &TestServiceClient) -> Result<(), String> {
    let mut request = StreamingOutputCallRequest::new();
    request.response_parameters = params(&[100; 20], 100_000);
    let mut stream = client
        .streaming_output_call(request)
        .await
        .map_err(|s| s.to_string())?;
    stream.message().await.map_err(|s| s.to_string())?;
    drop(stream);
    Ok(())
}

/// A server stream whose deadline passes midway: DEADLINE_EXCEEDED.
async fn deadline(client: &TestServiceClient) -> Result<(), String> {
    let mut request = Request::new(StreamingOutputCallRequest::new());
    request.get_mut().response_parameters = params(&[100; 10], 50_000);
    request.set_timeout(Duration::from_millis(120));
    let result = async {
        let mut stream = client.streaming_output_call(request).await?;
        while stream.message().await?.is_some() {}
        Ok::<(), grpc_runtime::Status>(())
    }
    .await;
    match result {
        Err(status) if status.code() == Code::DeadlineExceeded => Ok(()),
        other => Err(format!(
            "deadline: expected DEADLINE_EXCEEDED, got {other:?}"
        )),
    }
}

/// A broken client: garbage after the preface, or the preface alone, then gone.
async fn broken(host: &str, port: u16, i: u64) {
    let Ok(mut tcp) = tokio::net::TcpStream::connect((host, port)).await else {
        return;
    };
    let _ = tcp.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").await;
    if i.is_multiple_of(2) {
        let _ = tcp.write_all(&[0xff; 64]).await;
    }
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[tokio::main]
async fn main() {
    let known = [
        "server_host",
        "server_port",
        "seconds",
        "workers",
        "server_pid",
    ];
    let flags = Flags::parse(std::env::args().skip(1), &known).unwrap_or_else(|e| {
        eprintln!("interop-soak: {e}");
        std::process::exit(2)
    });
    let host = flags.get("server_host", "127.0.0.1").to_owned();
    let port: u16 = flags.number("server_port", 10000).unwrap_or(10000);
    let seconds: u64 = flags.number("seconds", 600).unwrap_or(600);
    let workers: u64 = flags.number("workers", 16).unwrap_or(16);
    let pid: u32 = flags.number("server_pid", 0).unwrap_or(0);
    let channel = Channel::new(&format!("http://{host}:{port}")).unwrap_or_else(|e| {
        eprintln!("interop-soak: {e}");
        std::process::exit(2)
    });
    let counts = Arc::new(Counts::default());
    let until = tokio::time::Instant::now() + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for w in 0..workers {
        let client = TestServiceClient::new(channel.clone());
        let counts = Arc::clone(&counts);
        let host = host.clone();
        tasks.push(tokio::spawn(async move {
            let mut i = w;
            while tokio::time::Instant::now() < until {
                i += workers;
                let outcome = match i % 20 {
                    0 => cancelled(&client).await.map(|()| &counts.cancelled),
                    1 => deadline(&client).await.map(|()| &counts.deadlines),
                    2 => {
                        broken(&host, port, i).await;
                        Ok(&counts.broken)
                    }
                    _ => well_formed(&client, i).await.map(|()| &counts.ok),
                };
                match outcome {
                    Ok(counter) => {
                        counter.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(why) => {
                        counts.failed.fetch_add(1, Ordering::Relaxed);
                        eprintln!("interop-soak: FAILED call: {why}");
                    }
                }
            }
        }));
    }
    let mut samples = Vec::new();
    let sampler = async {
        let mut tick = tokio::time::interval(Duration::from_secs(10));
        while tokio::time::Instant::now() < until {
            tick.tick().await;
            if let Some(rss) = rss_kib(pid) {
                samples.push(rss);
                println!(
                    "t={:>4}s rss_mib={:.1} ok={} failed={}",
                    samples.len() as u64 * 10 - 10,
                    rss as f64 / 1024.0,
                    counts.ok.load(Ordering::Relaxed),
                    counts.failed.load(Ordering::Relaxed)
                );
            }
        }
    };
    let joined = futures_util::stream::iter(tasks).for_each(|t| async {
        let _ = t.await;
    });
    tokio::join!(sampler, joined);
    let failed = counts.failed.load(Ordering::Relaxed);
    let (first, max, last) = match (
        samples.get(1).or(samples.first()),
        samples.iter().max(),
        samples.last(),
    ) {
        (Some(f), Some(m), Some(l)) => (*f, *m, *l),
        _ => (0, 0, 0),
    };
    println!(
        "SOAK seconds={seconds} workers={workers} ok={} cancelled={} deadlines={} broken={} failed={failed} rss_mib_after_10s={:.1} rss_mib_max={:.1} rss_mib_last={:.1}",
        counts.ok.load(Ordering::Relaxed),
        counts.cancelled.load(Ordering::Relaxed),
        counts.deadlines.load(Ordering::Relaxed),
        counts.broken.load(Ordering::Relaxed),
        first as f64 / 1024.0,
        max as f64 / 1024.0,
        last as f64 / 1024.0,
    );
    if failed > 0 {
        std::process::exit(1);
    }
}
