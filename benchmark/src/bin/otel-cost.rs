//! `otel-cost`: what the OpenTelemetry metrics recorder (gRFC A66, the runtime's
//! `opentelemetry` feature) costs per unary call. Runs UnaryCall over 127.0.0.1 in one
//! process, server and client on one current-thread runtime (so wall time is the CPU time of
//! both sides), three ways in alternating rounds: without stats, with a stats handler that
//! does nothing (what the stats seam itself costs), and with a `MetricsRecorder` installed on
//! both sides; prints the median calls/s of each and the differences per call.
//!
//! The recorder's meter provider is the SDK's with a periodic reader whose exporter discards
//! everything and whose period outlasts the run: every record is aggregated as it would be in
//! production, and nothing is exported while calls are measured.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use benchmark::harness::{Args, runtime};
use benchmark::proto::benchmark_service_grpc::{BenchmarkServiceClient, BenchmarkServiceServer};
use benchmark::proto::messages::{Payload, SimpleRequest};
use benchmark::service::Bench;
use grpc_runtime::client::Channel;
use grpc_runtime::credentials::ChannelCredentials;
use grpc_runtime::server::Server;
use grpc_runtime::stats::opentelemetry::MetricsRecorder;
use grpc_runtime::stats::{Handler, RpcEvent, RpcInfo};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider, Temporality};

const USAGE: &str = "\
otel-cost: unary calls over 127.0.0.1 without stats, with a no-op stats handler, and with
the OpenTelemetry metrics recorder (client and server in one process, one current-thread
runtime); prints calls/s and the cost per call.

Options:
  --calls N        calls per round [20000]
  --rounds N       rounds per mode, alternating (the median is reported) [5]
  --concurrency N  outstanding calls on the one connection [16]
  --req-size N     request payload bytes [1]
  --resp-size N    response payload bytes [1]";

/// What is installed on both sides.
#[derive(Clone, Copy)]
enum Mode<'a> {
    Plain,
    /// A stats handler that does nothing.
    Seam,
    Recorder(&'a MetricsRecorder),
}

/// A stats handler with no state that ignores every event.
struct Nothing;

impl Handler for Nothing {
    type Call = ();

    fn tag_rpc(&self, _info: &RpcInfo<'_>) {}

    fn handle_rpc(&self, _call: &(), _event: &RpcEvent<'_>) {}
}

/// A server on an ephemeral loopback port and a client connected to it, set up as `mode`
/// says on both sides.
async fn pair(mode: Mode<'_>) -> (BenchmarkServiceClient, Server) {
    let mut builder = Server::builder();
    match mode {
        Mode::Plain => {}
        Mode::Seam => builder = builder.stats_handler(Nothing),
        Mode::Recorder(metrics) => builder = metrics.install_server(builder),
    }
    let server = builder
        .add_service(BenchmarkServiceServer::new(Bench))
        .build();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("local address");
    tokio::spawn(server.clone().serve_tcp(listener));
    let mut channel =
        Channel::builder(&addr.to_string()).credentials(ChannelCredentials::insecure());
    match mode {
        Mode::Plain => {}
        Mode::Seam => channel = channel.stats_handler(Nothing),
        Mode::Recorder(metrics) => channel = metrics.install_channel(channel),
    }
    let client = BenchmarkServiceClient::new(channel.build().expect("channel"));
    (client, server)
}

/// Makes `calls` unary calls, `concurrency` at a time; how long they took.
async fn round(
    client: &BenchmarkServiceClient,
    request: &SimpleRequest,
    calls: usize,
    concurrency: usize,
) -> Duration {
    let next = AtomicUsize::new(0);
    let started = Instant::now();
    let workers = (0..concurrency).map(|_| async {
        while next.fetch_add(1, Ordering::Relaxed) < calls {
            client
                .unary_call(request.clone())
                .await
                .unwrap_or_else(|status| panic!("UnaryCall failed: {status}"));
        }
    });
    futures_util::future::join_all(workers).await;
    started.elapsed()
}

/// An exporter that drops what it is given.
#[derive(Debug)]
struct Discard;

impl PushMetricExporter for Discard {
    async fn export(&self, _metrics: &ResourceMetrics) -> OTelSdkResult {
        Ok(())
    }

    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        Ok(())
    }

    fn temporality(&self) -> Temporality {
        Temporality::Cumulative
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() {
    let mut args = Args::parse(USAGE);
    let calls: usize = args.get("calls", 20_000);
    let rounds: usize = args.get("rounds", 5);
    let concurrency: usize = args.get("concurrency", 16);
    let req_size: usize = args.get("req-size", 1);
    let resp_size: i32 = args.get("resp-size", 1);
    args.finish();
    assert!(calls > 0 && rounds > 0 && concurrency > 0, "{USAGE}");

    let mut payload = Payload::new();
    payload.body = vec![0; req_size].into();
    let mut request = SimpleRequest::new();
    request.response_size = resp_size;
    request.payload = protobuf::MessageField::some(payload);

    let provider = SdkMeterProvider::builder()
        .with_reader(
            PeriodicReader::builder(Discard)
                .with_interval(Duration::from_secs(3600))
                .build(),
        )
        .build();
    let metrics = MetricsRecorder::new(&provider);
    // A provider without readers hands out instruments that drop every measurement: what
    // the recorder's own code costs, without the SDK's aggregation.
    let unread = SdkMeterProvider::builder().build();
    let unread_metrics = MetricsRecorder::new(&unread);

    runtime(1).block_on(async {
        let modes = [
            Mode::Plain,
            Mode::Seam,
            Mode::Recorder(&unread_metrics),
            Mode::Recorder(&metrics),
        ];
        let mut pairs = Vec::new();
        for mode in modes {
            pairs.push(pair(mode).await);
        }
        // Warm-up: connections, allocator, the SDK's series for this method.
        for (client, _) in &pairs {
            round(client, &request, calls / 10 + 1, concurrency).await;
        }
        let mut rates: Vec<Vec<f64>> = vec![Vec::new(); pairs.len()];
        for _ in 0..rounds {
            for ((client, _), rates) in pairs.iter().zip(&mut rates) {
                let elapsed = round(client, &request, calls, concurrency).await;
                rates.push(calls as f64 / elapsed.as_secs_f64());
            }
        }
        for (_, server) in &pairs {
            server.stop().await;
        }

        let [plain, seam, unread, recorder] =
            [0, 1, 2, 3].map(|i| median(std::mem::take(&mut rates[i])));
        let us = |rate: f64| 1e6 / rate;
        println!(
            "otel-cost: {rounds} x {calls} unary calls per mode, concurrency {concurrency}, \
             {req_size} B / {resp_size} B, client and server on one thread"
        );
        for (name, rate) in [
            ("no stats", plain),
            ("no-op stats handler", seam),
            ("recorder, no reader", unread),
            ("recorder, SDK", recorder),
        ] {
            println!("{name:<20} {rate:>9.0} calls/s  {:>7.2} us/call", us(rate));
        }
        println!(
            "recorder cost (client and server together): {:+.2} us/call over no stats \
             ({:+.1}%); over the no-op handler {:+.2} us/call, of which the recorder's own code \
             {:+.2} and the SDK's aggregation {:+.2}",
            us(recorder) - us(plain),
            (us(recorder) / us(plain) - 1.0) * 100.0,
            us(recorder) - us(seam),
            us(unread) - us(seam),
            us(recorder) - us(unread),
        );
    });
}
