//! `cargo run -p examples --bin metrics`: gRPC's OpenTelemetry metrics (gRFC A66). A greeter
//! server and a channel to it over 127.0.0.1, both with a `MetricsRecorder` installed, make a
//! few calls (OK, NOT_FOUND, and one to a method the server does not host); then the metrics
//! are exported once and printed, one line per series.
//!
//! A real program gives the recorder its own `SdkMeterProvider`, with an OTLP or Prometheus
//! exporter; the compact printing exporter here only shows what is recorded.

use std::fmt::Write as _;
use std::time::Duration;

use examples::proto::helloworld::{HelloReply, HelloRequest};
use examples::proto::helloworld_grpc::{Greeter, GreeterClient, GreeterServer};
use grpc_runtime::client::{Channel, Client};
use grpc_runtime::codec::ProtobufCodec;
use grpc_runtime::server::Server;
use grpc_runtime::service::MethodRef;
use grpc_runtime::stats::opentelemetry::MetricsRecorder;
use grpc_runtime::{Request, Response, Status};
use opentelemetry::KeyValue;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::metrics::data::{
    AggregatedMetrics, HistogramDataPoint, MetricData, ResourceMetrics,
};
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider, Temporality};

/// Greets everyone but "nobody".
struct Picky;

impl Greeter for Picky {
    async fn say_hello(
        &self,
        request: Request<HelloRequest>,
    ) -> Result<Response<HelloReply>, Status> {
        let name = &request.get_ref().name;
        if name == "nobody" {
            return Err(Status::not_found("nobody is not here"));
        }
        let mut reply = HelloReply::new();
        reply.message = format!("Hello {name}");
        Ok(Response::new(reply))
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    examples::process::init_logging("warn");
    // Exports when flushed (below) and every minute otherwise.
    let provider = SdkMeterProvider::builder()
        .with_reader(PeriodicReader::builder(PrintExporter).build())
        .build();
    let metrics = MetricsRecorder::new(&provider);

    let server = metrics
        .install_server(Server::builder())
        .add_service(GreeterServer::new(Picky))
        .build();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(server.clone().serve_tcp(listener));

    // Installed first, so the call duration includes any interceptor added after it.
    let channel = metrics
        .install_channel(Channel::builder(&format!("http://{addr}")))
        .build()?;
    let greeter = GreeterClient::new(channel.clone());
    for name in ["Ada", "Grace", "nobody"] {
        let mut request = HelloRequest::new();
        request.name = name.to_owned();
        match greeter.say_hello(request).await {
            Ok(reply) => println!("say_hello({name:?}): {}", reply.get_ref().message),
            Err(status) => println!("say_hello({name:?}): {status}"),
        }
    }
    // A method called by path, which the server does not host either: "other" on both sides.
    let generic = Client::new(channel);
    let method = MethodRef::from_path("/helloworld.Greeter/SayGoodbye").ok_or("bad path")?;
    let answer = generic
        .unary(
            method,
            Request::new(HelloRequest::new()),
            ProtobufCodec::<HelloRequest, HelloReply>::new(),
        )
        .await;
    println!(
        "SayGoodbye: {}",
        answer.err().map_or("OK".into(), |s| s.to_string())
    );

    // Every server call has ended (and been recorded) once the server has stopped.
    server.graceful_stop().await;
    println!();
    // Shutting the provider down exports what it has, once.
    provider.shutdown()?;
    Ok(())
}

/// Prints each series on one line: counters' values; histograms' count, sum and the buckets
/// that have anything in them.
#[derive(Debug)]
struct PrintExporter;

impl PushMetricExporter for PrintExporter {
    async fn export(&self, metrics: &ResourceMetrics) -> OTelSdkResult {
        for scope in metrics.scope_metrics() {
            let version = scope.scope().version().unwrap_or("?");
            println!("meter {} {version}", scope.scope().name());
            for metric in scope.metrics() {
                println!("{} ({})", metric.name(), metric.unit());
                let mut lines: Vec<String> = match metric.data() {
                    AggregatedMetrics::U64(MetricData::Sum(sum)) => sum
                        .data_points()
                        .map(|point| {
                            format!("{}  value={}", labels(point.attributes()), point.value())
                        })
                        .collect(),
                    AggregatedMetrics::U64(MetricData::Histogram(histogram)) => histogram
                        .data_points()
                        .map(|point| histogram_line(point, point.sum() as f64))
                        .collect(),
                    AggregatedMetrics::F64(MetricData::Histogram(histogram)) => histogram
                        .data_points()
                        .map(|point| histogram_line(point, point.sum()))
                        .collect(),
                    other => vec![format!("{other:?}")],
                };
                // The SDK keeps series in no particular order.
                lines.sort();
                for line in lines {
                    println!("  {line}");
                }
            }
        }
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

fn labels<'a>(attributes: impl Iterator<Item = &'a KeyValue>) -> String {
    let mut attributes: Vec<_> = attributes
        .map(|kv| format!("{}={}", kv.key, kv.value))
        .collect();
    attributes.sort();
    attributes.join(" ")
}

/// `attributes  count=N sum=S  buckets: (lo, hi]=n ...` for the non-empty buckets.
fn histogram_line<T>(point: &HistogramDataPoint<T>, sum: f64) -> String {
    let mut line = format!(
        "{}  count={} sum={sum}  buckets:",
        labels(point.attributes()),
        point.count()
    );
    let bounds: Vec<f64> = point.bounds().collect();
    for (i, count) in point.bucket_counts().enumerate() {
        if count == 0 {
            continue;
        }
        let low = if i == 0 {
            f64::NEG_INFINITY
        } else {
            bounds[i - 1]
        };
        let _ = match bounds.get(i) {
            Some(high) => write!(line, " ({low}, {high}]={count}"),
            None => write!(line, " ({low}, +inf)={count}"),
        };
    }
    line
}
