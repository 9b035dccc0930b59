//! OpenTelemetry metrics (gRFC A66) over real sockets: a server and a channel on 127.0.0.1 with
//! one `MetricsRecorder`, read back through the SDK's in-memory exporter.
#![cfg(feature = "opentelemetry")]

mod common;

use std::collections::BTreeMap;

use common::*;
use grpc_runtime::client::{Channel, Client};
use grpc_runtime::codec::BytesCodec;
use grpc_runtime::server::Server;
use grpc_runtime::service::MethodRef;
use grpc_runtime::stats::opentelemetry::MetricsRecorder;
use grpc_runtime::{Code, CompressionEncoding, Request, Response, Streaming};
use opentelemetry::{KeyValue, Value};
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData};
use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader, SdkMeterProvider};
use protobuf::Message;
use protobuf::well_known_types::wrappers::{StringValue, UInt32Value};

/// One exported data point, as the tests compare it.
#[derive(Debug, Clone, PartialEq)]
enum Data {
    Count(u64),
    Histogram { count: u64, sum: f64 },
}

#[derive(Debug, Clone, PartialEq)]
struct Point {
    name: String,
    unit: String,
    attributes: BTreeMap<String, String>,
    data: Data,
}

/// A meter provider whose metrics the test reads back.
struct Exported {
    provider: SdkMeterProvider,
    exporter: InMemoryMetricExporter,
}

impl Exported {
    fn new() -> Exported {
        let exporter = InMemoryMetricExporter::default();
        let provider = SdkMeterProvider::builder()
            .with_reader(PeriodicReader::builder(exporter.clone()).build())
            .build();
        Exported { provider, exporter }
    }

    /// Every data point so far, sorted by name and attributes.
    fn points(&self) -> Vec<Point> {
        fn attributes<'a>(kvs: impl Iterator<Item = &'a KeyValue>) -> BTreeMap<String, String> {
            kvs.map(|kv| {
                let Value::String(value) = &kv.value else {
                    panic!("{}: not a string", kv.key);
                };
                (kv.key.as_str().to_owned(), value.as_str().to_owned())
            })
            .collect()
        }
        self.provider.force_flush().unwrap();
        let batches = self.exporter.get_finished_metrics().unwrap();
        let mut points = Vec::new();
        for scope in batches.last().into_iter().flat_map(|b| b.scope_metrics()) {
            assert_eq!(scope.scope().name(), "grpc-rust");
            for metric in scope.metrics() {
                let name = metric.name().to_owned();
                let unit = metric.unit().to_owned();
                let mut push = |attributes, data| {
                    points.push(Point {
                        name: name.clone(),
                        unit: unit.clone(),
                        attributes,
                        data,
                    })
                };
                match metric.data() {
                    AggregatedMetrics::U64(MetricData::Sum(sum)) => sum
                        .data_points()
                        .for_each(|p| push(attributes(p.attributes()), Data::Count(p.value()))),
                    AggregatedMetrics::U64(MetricData::Histogram(h)) => {
                        h.data_points().for_each(|p| {
                            push(
                                attributes(p.attributes()),
                                Data::Histogram {
                                    count: p.count(),
                                    sum: p.sum() as f64,
                                },
                            )
                        })
                    }
                    AggregatedMetrics::F64(MetricData::Histogram(h)) => {
                        h.data_points().for_each(|p| {
                            push(
                                attributes(p.attributes()),
                                Data::Histogram {
                                    count: p.count(),
                                    sum: p.sum(),
                                },
                            )
                        })
                    }
                    other => panic!("{name}: unexpected data {other:?}"),
                }
            }
        }
        points.sort_by(|a, b| (&a.name, &a.attributes).cmp(&(&b.name, &b.attributes)));
        points
    }

    /// The data points of `name`, keyed by their attributes (as `k=v` strings, sorted).
    fn series(&self, name: &str) -> BTreeMap<String, Data> {
        self.points()
            .into_iter()
            .filter(|p| p.name == name)
            .map(|p| {
                let key = p
                    .attributes
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(" ");
                (key, p.data)
            })
            .collect()
    }

    /// Waits until the server has recorded `calls` call ends (it records a call's end as
    /// its trailers go out, which may be a moment after the client has them).
    async fn server_calls_ended(&self, calls: u64) {
        eventually("the server's call ends", || {
            self.series("grpc.server.call.duration")
                .values()
                .map(|d| match d {
                    Data::Histogram { count, .. } => *count,
                    Data::Count(_) => 0,
                })
                .sum::<u64>()
                == calls
        })
        .await;
    }
}

/// `(count, sum)` of a histogram point.
fn histogram(data: &Data) -> (u64, f64) {
    match data {
        Data::Histogram { count, sum } => (*count, *sum),
        Data::Count(_) => panic!("a counter, not a histogram"),
    }
}

/// The serialized size of a message: its compressed size when it travels uncompressed.
fn size(message: &impl Message) -> f64 {
    message.write_to_bytes().unwrap().len() as f64
}

/// A server with the recorder installed, and a channel to it with the recorder installed.
async fn setup(metrics: &MetricsRecorder) -> (Running, Channel, String) {
    let srv = start_with(|b| metrics.install_server(b)).await;
    let target = format!("http://{}", srv.addr);
    let channel = metrics
        .install_channel(Channel::builder(&target))
        .build()
        .unwrap();
    (srv, channel, target)
}

#[tokio::test]
async fn ok_failing_and_unregistered_calls_on_both_sides() {
    let otel = Exported::new();
    let metrics = MetricsRecorder::new(&otel.provider);
    let (_srv, channel, target) = setup(&metrics).await;
    let client = Client::new(channel);

    let reply: Response<StringValue> = client
        .unary(UNARY, Request::new(s("hello")), pb())
        .await
        .unwrap();
    assert_eq!(reply.get_ref().value, "hello");
    let err = client
        .unary(
            UNARY,
            Request::new(s("fail:5:none here")),
            pb::<_, StringValue>(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    // A method the server's service does not have, called by path: "other" on both sides.
    let by_path = MethodRef::from_path("/test.Echo/Missing").unwrap();
    let err = client
        .unary(by_path, Request::new(s("?")), pb::<_, StringValue>())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unimplemented);
    // The same through a descriptor: the client declared it, the server did not.
    let err = client
        .unary(MISSING, Request::new(s("?")), pb::<_, StringValue>())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unimplemented);
    otel.server_calls_ended(4).await;

    let t = format!("grpc.target={target}");
    let unary = "grpc.method=test.Echo/Unary";
    let missing = "grpc.method=test.Echo/Missing";
    let other = "grpc.method=other";
    let key = |method: &str, status: &str| format!("{method} grpc.status={status} {t}");

    // Counters: method (and target), no status.
    assert_eq!(
        otel.series("grpc.client.attempt.started"),
        BTreeMap::from([
            (format!("{missing} {t}"), Data::Count(1)),
            (format!("{other} {t}"), Data::Count(1)),
            (format!("{unary} {t}"), Data::Count(2)),
        ])
    );
    assert_eq!(
        otel.series("grpc.server.call.started"),
        BTreeMap::from([
            (other.to_owned(), Data::Count(2)),
            (unary.to_owned(), Data::Count(2)),
        ])
    );

    // Sizes: the serialized messages, summed per call.
    let hello = size(&s("hello"));
    let fail = size(&s("fail:5:none here"));
    let question = size(&s("?"));
    let client_sent: Vec<_> = otel
        .series("grpc.client.attempt.sent_total_compressed_message_size")
        .into_iter()
        .map(|(k, d)| (k, histogram(&d)))
        .collect();
    assert_eq!(
        client_sent,
        [
            (key(other, "UNIMPLEMENTED"), (1, question)),
            (key(missing, "UNIMPLEMENTED"), (1, question)),
            (key(unary, "NOT_FOUND"), (1, fail)),
            (key(unary, "OK"), (1, hello)),
        ]
    );
    let client_rcvd: Vec<_> = otel
        .series("grpc.client.attempt.rcvd_total_compressed_message_size")
        .into_iter()
        .map(|(k, d)| (k, histogram(&d)))
        .collect();
    assert_eq!(
        client_rcvd,
        [
            (key(other, "UNIMPLEMENTED"), (1, 0.0)),
            (key(missing, "UNIMPLEMENTED"), (1, 0.0)),
            (key(unary, "NOT_FOUND"), (1, 0.0)),
            (key(unary, "OK"), (1, hello)),
        ]
    );
    let server_rcvd: Vec<_> = otel
        .series("grpc.server.call.rcvd_total_compressed_message_size")
        .into_iter()
        .map(|(k, d)| (k, histogram(&d)))
        .collect();
    // The server answers an unknown method without reading its request.
    assert_eq!(
        server_rcvd,
        [
            (format!("{other} grpc.status=UNIMPLEMENTED"), (2, 0.0)),
            (format!("{unary} grpc.status=NOT_FOUND"), (1, fail)),
            (format!("{unary} grpc.status=OK"), (1, hello)),
        ]
    );
    let server_sent: Vec<_> = otel
        .series("grpc.server.call.sent_total_compressed_message_size")
        .into_iter()
        .map(|(k, d)| (k, histogram(&d)))
        .collect();
    assert_eq!(
        server_sent,
        [
            (format!("{other} grpc.status=UNIMPLEMENTED"), (2, 0.0)),
            (format!("{unary} grpc.status=NOT_FOUND"), (1, 0.0)),
            (format!("{unary} grpc.status=OK"), (1, hello)),
        ]
    );

    // Durations: one per call, each above zero, in seconds.
    for name in [
        "grpc.client.attempt.duration",
        "grpc.client.call.duration",
        "grpc.server.call.duration",
    ] {
        let series = otel.series(name);
        assert_eq!(series.len(), if name.contains("server") { 3 } else { 4 });
        for (attributes, data) in &series {
            let (count, seconds) = histogram(data);
            assert!(
                count >= 1 && seconds > 0.0 && seconds < 10.0,
                "{name} {attributes}: {data:?}"
            );
        }
    }
    // The call's duration holds its one attempt's.
    let attempts = otel.series("grpc.client.attempt.duration");
    for (attributes, call) in otel.series("grpc.client.call.duration") {
        assert!(
            histogram(&call).1 >= histogram(&attempts[&attributes]).1,
            "{attributes}"
        );
    }

    // Exact names and units, nothing else recorded.
    let units: BTreeMap<String, String> = otel
        .points()
        .into_iter()
        .map(|p| (p.name, p.unit))
        .collect();
    let expected = [
        ("grpc.client.attempt.duration", "s"),
        (
            "grpc.client.attempt.rcvd_total_compressed_message_size",
            "By",
        ),
        (
            "grpc.client.attempt.sent_total_compressed_message_size",
            "By",
        ),
        ("grpc.client.attempt.started", "{attempt}"),
        ("grpc.client.call.duration", "s"),
        ("grpc.server.call.duration", "s"),
        ("grpc.server.call.rcvd_total_compressed_message_size", "By"),
        ("grpc.server.call.sent_total_compressed_message_size", "By"),
        ("grpc.server.call.started", "{call}"),
    ]
    .map(|(n, u)| (n.to_owned(), u.to_owned()));
    assert_eq!(units, BTreeMap::from(expected));
}

#[tokio::test]
async fn streamed_messages_are_summed_per_call() {
    let otel = Exported::new();
    let metrics = MetricsRecorder::new(&otel.provider);
    let (_srv, channel, target) = setup(&metrics).await;
    let client = Client::new(channel);

    let mut stream: Streaming<UInt32Value> = client
        .server_streaming(COUNT, Request::new(n(4)), pb())
        .await
        .unwrap();
    let mut got = Vec::new();
    while let Some(m) = stream.message().await.unwrap() {
        got.push(m.value);
    }
    assert_eq!(got, [0, 1, 2, 3]);
    let requests = futures_util::stream::iter(["ab", "cde", "f"].map(s));
    let reply: Response<StringValue> = client
        .client_streaming(CONCAT, Request::new(requests), pb())
        .await
        .unwrap();
    assert_eq!(reply.get_ref().value, "ab,cde,f");
    otel.server_calls_ended(2).await;

    let counted: f64 = (0..4).map(|i| size(&n(i))).sum();
    let concat_in: f64 = ["ab", "cde", "f"].map(|v| size(&s(v))).iter().sum();
    let concat_out = size(&s("ab,cde,f"));
    let t = format!("grpc.target={target}");
    let sent = otel.series("grpc.client.attempt.sent_total_compressed_message_size");
    let rcvd = otel.series("grpc.client.attempt.rcvd_total_compressed_message_size");
    let count_key = format!("grpc.method=test.Echo/Count grpc.status=OK {t}");
    let concat_key = format!("grpc.method=test.Echo/Concat grpc.status=OK {t}");
    assert_eq!(histogram(&sent[&count_key]), (1, size(&n(4))));
    assert_eq!(histogram(&rcvd[&count_key]), (1, counted));
    assert_eq!(histogram(&sent[&concat_key]), (1, concat_in));
    assert_eq!(histogram(&rcvd[&concat_key]), (1, concat_out));
    let sent = otel.series("grpc.server.call.sent_total_compressed_message_size");
    let rcvd = otel.series("grpc.server.call.rcvd_total_compressed_message_size");
    let count_key = "grpc.method=test.Echo/Count grpc.status=OK";
    let concat_key = "grpc.method=test.Echo/Concat grpc.status=OK";
    assert_eq!(histogram(&sent[count_key]), (1, counted));
    assert_eq!(histogram(&rcvd[count_key]), (1, size(&n(4))));
    assert_eq!(histogram(&sent[concat_key]), (1, concat_out));
    assert_eq!(histogram(&rcvd[concat_key]), (1, concat_in));
}

#[tokio::test]
async fn compressed_messages_count_their_compressed_size() {
    let otel = Exported::new();
    let metrics = MetricsRecorder::new(&otel.provider);
    let (_srv, channel, target) = setup(&metrics).await;
    let big = "compressible ".repeat(1000);
    let mut request = Request::new(s(&big));
    request.set_send_compressed(CompressionEncoding::Gzip);
    request
        .metadata_mut()
        .insert("x-compress-response", "1")
        .unwrap();
    let reply: Response<StringValue> = Client::new(channel)
        .unary(UNARY, request, pb())
        .await
        .unwrap();
    assert_eq!(reply.get_ref().value, big);
    otel.server_calls_ended(1).await;

    let client_key = format!("grpc.method=test.Echo/Unary grpc.status=OK grpc.target={target}");
    let server_key = "grpc.method=test.Echo/Unary grpc.status=OK";
    let (_, client_sent) = histogram(
        &otel.series("grpc.client.attempt.sent_total_compressed_message_size")[&client_key],
    );
    let (_, client_rcvd) = histogram(
        &otel.series("grpc.client.attempt.rcvd_total_compressed_message_size")[&client_key],
    );
    let (_, server_sent) =
        histogram(&otel.series("grpc.server.call.sent_total_compressed_message_size")[server_key]);
    let (_, server_rcvd) =
        histogram(&otel.series("grpc.server.call.rcvd_total_compressed_message_size")[server_key]);
    // Both ways compressed: far below the 13 kB message, and both sides agree on each way.
    let plain = size(&s(&big));
    assert!(
        client_sent > 0.0 && client_sent < plain / 10.0,
        "{client_sent} of {plain}"
    );
    assert!(
        client_rcvd > 0.0 && client_rcvd < plain / 10.0,
        "{client_rcvd} of {plain}"
    );
    assert_eq!(client_sent, server_rcvd);
    assert_eq!(client_rcvd, server_sent);
}

#[tokio::test]
async fn retries_are_attempts_of_one_call() {
    let otel = Exported::new();
    let metrics = MetricsRecorder::new(&otel.provider);
    let srv = start().await;
    let target = format!("http://{}", srv.addr);
    let config = r#"{"methodConfig": [{"name": [{"service": "test.Echo"}],
        "retryPolicy": {"maxAttempts": 3, "initialBackoff": "0.01s", "maxBackoff": "0.01s",
                        "backoffMultiplier": 1, "retryableStatusCodes": ["UNAVAILABLE"]}}]}"#;
    let channel = metrics
        .install_channel(Channel::builder(&target).default_service_config(config))
        .build()
        .unwrap();
    let err = Client::new(channel)
        .unary(
            UNARY,
            Request::new(s("fail:14:down")),
            pb::<_, StringValue>(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable);

    let key = format!("grpc.method=test.Echo/Unary grpc.status=UNAVAILABLE grpc.target={target}");
    assert_eq!(
        otel.series("grpc.client.attempt.started")
            [&format!("grpc.method=test.Echo/Unary grpc.target={target}")],
        Data::Count(3)
    );
    let (attempts, attempt_seconds) = histogram(&otel.series("grpc.client.attempt.duration")[&key]);
    let (calls, call_seconds) = histogram(&otel.series("grpc.client.call.duration")[&key]);
    assert_eq!((attempts, calls), (3, 1));
    // The call spans its attempts and the backoffs between them (at least 2 x 0-10 ms).
    assert!(
        call_seconds >= attempt_seconds,
        "{call_seconds} < {attempt_seconds}"
    );
    let (_, sent) =
        histogram(&otel.series("grpc.client.attempt.sent_total_compressed_message_size")[&key]);
    assert_eq!(sent, 3.0 * size(&s("fail:14:down")));
}

#[tokio::test]
async fn unknown_service_handler_calls_are_other_and_client_can_name_them() {
    let otel = Exported::new();
    let metrics = MetricsRecorder::builder(&otel.provider)
        .record_all_client_methods(true)
        .build();
    // A proxy-like server: whatever it does not host, it echoes as raw bytes.
    let server = metrics
        .install_server(Server::builder())
        .unknown_service_handler(|_path, mut requests, mut responses| async move {
            while let Some(message) = requests.get_mut().message().await? {
                responses.send(message).await?;
            }
            Ok(())
        })
        .build();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(server.clone().serve_tcp(listener));
    let target = format!("http://{addr}");
    let channel = metrics
        .install_channel(Channel::builder(&target))
        .build()
        .unwrap();

    let method = MethodRef::from_path("/proxied.Anything/Echo").unwrap();
    let reply = Client::new(channel)
        .unary(
            method,
            Request::new(bytes::Bytes::from_static(b"raw bytes")),
            BytesCodec,
        )
        .await
        .unwrap();
    assert_eq!(&reply.get_ref()[..], b"raw bytes");
    otel.server_calls_ended(1).await;

    let client_key =
        format!("grpc.method=proxied.Anything/Echo grpc.status=OK grpc.target={target}");
    assert_eq!(
        histogram(
            &otel.series("grpc.client.attempt.sent_total_compressed_message_size")[&client_key]
        ),
        (1, 9.0)
    );
    assert_eq!(
        histogram(&otel.series("grpc.client.call.duration")[&client_key]).0,
        1
    );
    // The server never names a method it does not host, whatever the client-side option.
    let server_key = "grpc.method=other grpc.status=OK";
    assert_eq!(
        histogram(&otel.series("grpc.server.call.rcvd_total_compressed_message_size")[server_key]),
        (1, 9.0)
    );
    assert_eq!(
        histogram(&otel.series("grpc.server.call.sent_total_compressed_message_size")[server_key]),
        (1, 9.0)
    );
    assert_eq!(
        otel.series("grpc.server.call.started")["grpc.method=other"],
        Data::Count(1)
    );
}

#[tokio::test]
async fn unavailable_before_any_connection_is_still_an_attempt() {
    let otel = Exported::new();
    let metrics = MetricsRecorder::new(&otel.provider);
    // A port nothing listens on.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let target = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let channel = metrics
        .install_channel(Channel::builder(&target))
        .build()
        .unwrap();
    let err = Client::new(channel)
        .unary(UNARY, Request::new(s("x")), pb::<_, StringValue>())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err}");

    let key = format!("grpc.method=test.Echo/Unary grpc.status=UNAVAILABLE grpc.target={target}");
    assert_eq!(
        histogram(&otel.series("grpc.client.call.duration")[&key]).0,
        1
    );
    let attempts = otel.series("grpc.client.attempt.duration");
    assert_eq!(histogram(&attempts[&key]).0, 1, "{attempts:?}");
    // Nothing went out.
    assert_eq!(
        histogram(&otel.series("grpc.client.attempt.sent_total_compressed_message_size")[&key]),
        (1, 0.0)
    );
}
