//! OpenTelemetry metrics (gRFC A66), and the trace context through metadata
//! ([`TracePropagation`]), on the `opentelemetry` cargo feature (off by default).
//!
//! A [`MetricsRecorder`] records gRPC's standard per-call instruments on a [`Meter`] of the
//! [`MeterProvider`] it is given; installed on channels and servers, it records:
//!
//! | instrument | kind | unit | attributes |
//! | --- | --- | --- | --- |
//! | `grpc.client.attempt.started` | counter | `{attempt}` | `grpc.method`, `grpc.target` |
//! | `grpc.client.attempt.duration` | histogram | `s` | `grpc.method`, `grpc.target`, `grpc.status` |
//! | `grpc.client.attempt.sent_total_compressed_message_size` | histogram | `By` | `grpc.method`, `grpc.target`, `grpc.status` |
//! | `grpc.client.attempt.rcvd_total_compressed_message_size` | histogram | `By` | `grpc.method`, `grpc.target`, `grpc.status` |
//! | `grpc.client.call.duration` | histogram | `s` | `grpc.method`, `grpc.target`, `grpc.status` |
//! | `grpc.server.call.started` | counter | `{call}` | `grpc.method` |
//! | `grpc.server.call.duration` | histogram | `s` | `grpc.method`, `grpc.status` |
//! | `grpc.server.call.sent_total_compressed_message_size` | histogram | `By` | `grpc.method`, `grpc.status` |
//! | `grpc.server.call.rcvd_total_compressed_message_size` | histogram | `By` | `grpc.method`, `grpc.status` |
//!
//! - `grpc.method` is the method's full name without the leading slash
//!   (`"helloworld.Greeter/SayHello"`). A method that is not *registered*
//!   ([`RpcInfo::is_registered_method`]: on a server, not a method of a service it hosts; on a
//!   client, not called through a method descriptor) is recorded as `"other"`, so a peer
//!   cannot fill the metrics with names of its choosing. On the client,
//!   [`record_all_client_methods`](MetricsRecorderBuilder::record_all_client_methods) records
//!   such methods by name; on the server they are always `"other"`.
//! - `grpc.status` is the code's name (`"OK"`, `"UNAVAILABLE"`).
//! - `grpc.target` is the channel's target as given to
//!   [`Channel::builder`](crate::client::Channel::builder), or `"other"` where a
//!   [`target_filter`](MetricsRecorderBuilder::target_filter) says so.
//! - Sizes are the sum of each message's length on the wire without its 5-byte prefix
//!   (compressed if it was: [`Payload::compressed_len`]), over the attempt or the call.
//! - Durations run from a call's (client: an attempt's) [`RpcEvent::Begin`] to its
//!   [`RpcEvent::End`]; a client call's from its interceptor's `on_call` to its `on_end`.
//!
//! Histograms carry gRFC A66's bucket boundaries (latency: 0 to 100 s in 41 steps; size: 0
//! to 4 GiB in 14), set on the instruments; an SDK view can replace them.
//!
//! The meter is named `"grpc-rust"`, with this crate's version. A recorder records only to
//! the meter provider it is given; it never falls back on OpenTelemetry's global one.
//!
//! # Cost
//!
//! Per message: one relaxed atomic add. Per call (or attempt), on each side: the call state
//! the stats seam boxes (two attributes and two counters), the method name (one `Arc<str>`,
//! for a method recorded by name), and one SDK record per instrument. A client call adds the
//! interceptor's: its `on_call` future (boxed, as every interceptor's is) and the start time
//! in the call's extensions. The channel's target is made into an attribute once per
//! channel.
//!
//! Measured by `benchmark/src/bin/otel-cost.rs` (unary calls over 127.0.0.1, client and
//! server on one thread, the SDK aggregating; a shared 2-vCPU VM): 1.3 to 2.5 µs per call
//! for both sides together over a no-op stats handler (11.5 to 12 µs per call), about half
//! of it the SDK's nine records.
//!
//! [`RpcInfo::is_registered_method`]: crate::stats::RpcInfo::is_registered_method
//! [`Payload::compressed_len`]: crate::stats::Payload::compressed_len
//! [`RpcEvent::Begin`]: crate::stats::RpcEvent::Begin
//! [`RpcEvent::End`]: crate::stats::RpcEvent::End

mod propagation;

pub use propagation::TracePropagation;

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use opentelemetry::metrics::{Counter, Histogram, Meter, MeterProvider};
use opentelemetry::{InstrumentationScope, Key, KeyValue, Value};

use crate::client::ChannelBuilder;
use crate::interceptor::{CallInfo, InterceptFuture, Interceptor};
use crate::server::ServerBuilder;
use crate::stats::{Handler, RpcEvent, RpcInfo};
use crate::status::{Code, Status};

/// The meter's name (gRFC A66: one that names the library).
const METER_NAME: &str = "grpc-rust";

/// gRFC A66's latency buckets, in seconds.
const LATENCY_BUCKETS: [f64; 41] = [
    0.0, 0.00001, 0.00005, 0.0001, 0.0003, 0.0006, 0.0008, 0.001, 0.002, 0.003, 0.004, 0.005,
    0.006, 0.008, 0.01, 0.013, 0.016, 0.02, 0.025, 0.03, 0.04, 0.05, 0.065, 0.08, 0.1, 0.13, 0.16,
    0.2, 0.25, 0.3, 0.4, 0.5, 0.65, 0.8, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0,
];

/// gRFC A66's size buckets, in bytes.
const SIZE_BUCKETS: [f64; 14] = [
    0.0,
    1024.0,
    2048.0,
    4096.0,
    16384.0,
    65536.0,
    262_144.0,
    1_048_576.0,
    4_194_304.0,
    16_777_216.0,
    67_108_864.0,
    268_435_456.0,
    1_073_741_824.0,
    4_294_967_296.0,
];

const METHOD: Key = Key::from_static_str("grpc.method");
const STATUS: Key = Key::from_static_str("grpc.status");
const TARGET: Key = Key::from_static_str("grpc.target");

/// What a method or target not recorded by name is recorded as.
const OTHER: &str = "other";

/// Records gRFC A66's metrics for the channels and servers it is installed on. See the
/// [module docs](self).
///
/// One recorder may serve any number of channels and servers; clones share its instruments.
/// Several recorders (with different meter providers, say) may be installed on the same
/// channel or server.
///
/// # Examples
///
/// ```
/// use grpc_runtime::client::Channel;
/// use grpc_runtime::server::Server;
/// use grpc_runtime::stats::opentelemetry::MetricsRecorder;
/// use opentelemetry_sdk::metrics::SdkMeterProvider;
///
/// // An SDK provider with the reader or exporter of your choice.
/// let provider = SdkMeterProvider::builder().build();
/// let metrics = MetricsRecorder::new(&provider);
///
/// let server = metrics.install_server(Server::builder()).build();
/// let channel = metrics
///     .install_channel(Channel::builder("http://127.0.0.1:50051"))
///     .build()?;
/// # let _ = (server, channel);
/// # Ok::<(), grpc_runtime::Error>(())
/// ```
#[derive(Clone)]
pub struct MetricsRecorder {
    shared: Arc<Shared>,
}

impl fmt::Debug for MetricsRecorder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MetricsRecorder")
            .field(
                "record_all_client_methods",
                &self.shared.record_all_client_methods,
            )
            .field("target_filter", &self.shared.target_filter.is_some())
            .finish_non_exhaustive()
    }
}

impl MetricsRecorder {
    /// A recorder with default options whose instruments come from `provider` (a meter named
    /// `"grpc-rust"`).
    pub fn new(provider: &impl MeterProvider) -> MetricsRecorder {
        MetricsRecorder::builder(provider).build()
    }

    /// A builder for a recorder whose instruments come from `provider`.
    pub fn builder(provider: &impl MeterProvider) -> MetricsRecorderBuilder {
        let scope = InstrumentationScope::builder(METER_NAME)
            .with_version(env!("CARGO_PKG_VERSION"))
            .build();
        MetricsRecorderBuilder::with_meter(provider.meter_with_scope(scope))
    }

    /// Installs the recorder on a channel: a stats handler for the attempt metrics, and an
    /// interceptor for `grpc.client.call.duration`, which runs at the position in the
    /// channel's interceptor chain where this is called. Install it before other
    /// interceptors for the call's duration to include theirs.
    pub fn install_channel(&self, builder: ChannelBuilder) -> ChannelBuilder {
        // The target's attribute is made once, here, for all the channel's calls.
        let channel = Arc::new(ChannelMetrics {
            shared: Arc::clone(&self.shared),
            target: OnceLock::from(self.shared.target(builder.target())),
        });
        builder
            .interceptor(CallDuration(Arc::clone(&channel)))
            .stats_handler(ClientMetrics(channel))
    }

    /// Installs the recorder on a server: a stats handler for the server's metrics.
    pub fn install_server(&self, builder: ServerBuilder) -> ServerBuilder {
        builder.stats_handler(ServerMetrics(Arc::clone(&self.shared)))
    }
}

/// The target filter's type.
type TargetFilter = dyn Fn(&str) -> bool + Send + Sync;

/// Configures a [`MetricsRecorder`]; made by [`MetricsRecorder::builder`].
///
/// # Examples
///
/// ```
/// use grpc_runtime::stats::opentelemetry::MetricsRecorder;
/// use opentelemetry_sdk::metrics::SdkMeterProvider;
///
/// let provider = SdkMeterProvider::builder().build();
/// let metrics = MetricsRecorder::builder(&provider)
///     // Proxies call methods they have no descriptor for: record them by name.
///     .record_all_client_methods(true)
///     // Channels to raw addresses would make one series each: keep the names only.
///     .target_filter(|target| !target.starts_with("http://10."))
///     .build();
/// # let _ = metrics;
/// ```
#[must_use]
pub struct MetricsRecorderBuilder {
    meter: Meter,
    record_all_client_methods: bool,
    target_filter: Option<Box<TargetFilter>>,
}

impl fmt::Debug for MetricsRecorderBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MetricsRecorderBuilder")
            .field("record_all_client_methods", &self.record_all_client_methods)
            .field("target_filter", &self.target_filter.is_some())
            .finish_non_exhaustive()
    }
}

impl MetricsRecorderBuilder {
    /// A builder whose instruments come from `meter` as it is (its name and version are the
    /// caller's choice).
    pub fn with_meter(meter: Meter) -> MetricsRecorderBuilder {
        MetricsRecorderBuilder {
            meter,
            record_all_client_methods: false,
            target_filter: None,
        }
    }

    /// Whether a client records methods called without a method descriptor (by a
    /// [`MethodRef`](crate::service::MethodRef) path: proxies, generic clients) by their
    /// name rather than as `"other"`. Servers always record methods they do not host as
    /// `"other"`. Default: `false`.
    pub fn record_all_client_methods(mut self, record: bool) -> Self {
        self.record_all_client_methods = record;
        self
    }

    /// Decides per channel whether its target is recorded as it is (`true`) or as `"other"`
    /// (`false`), to bound the metrics' cardinality where many channels go to many targets.
    /// Called once per channel. Default: every target recorded as it is.
    pub fn target_filter(mut self, filter: impl Fn(&str) -> bool + Send + Sync + 'static) -> Self {
        self.target_filter = Some(Box::new(filter));
        self
    }

    /// Makes the recorder and its instruments.
    pub fn build(self) -> MetricsRecorder {
        let meter = &self.meter;
        let latency = |name: &'static str, description: &'static str| {
            meter
                .f64_histogram(name)
                .with_unit("s")
                .with_description(description)
                .with_boundaries(LATENCY_BUCKETS.to_vec())
                .build()
        };
        let size = |name: &'static str, description: &'static str| {
            meter
                .u64_histogram(name)
                .with_unit("By")
                .with_description(description)
                .with_boundaries(SIZE_BUCKETS.to_vec())
                .build()
        };
        let instruments = Instruments {
            client_attempt_started: meter
                .u64_counter("grpc.client.attempt.started")
                .with_unit("{attempt}")
                .with_description("Client call attempts started, finished or not.")
                .build(),
            client_attempt_duration: latency(
                "grpc.client.attempt.duration",
                "Time from the start of a client call attempt to its end, subchannel pick \
                 included.",
            ),
            client_attempt_sent: size(
                "grpc.client.attempt.sent_total_compressed_message_size",
                "Bytes of request messages a client call attempt sent (compressed if they \
                 were; no metadata or framing).",
            ),
            client_attempt_rcvd: size(
                "grpc.client.attempt.rcvd_total_compressed_message_size",
                "Bytes of response messages a client call attempt received (compressed if \
                 they were; no metadata or framing).",
            ),
            client_call_duration: latency(
                "grpc.client.call.duration",
                "Time from the application starting a client call to its status being \
                 delivered, every attempt included.",
            ),
            server_call_started: meter
                .u64_counter("grpc.server.call.started")
                .with_unit("{call}")
                .with_description("Server calls started, finished or not.")
                .build(),
            server_call_duration: latency(
                "grpc.server.call.duration",
                "Time from a server receiving a call's headers to the call's end.",
            ),
            server_call_sent: size(
                "grpc.server.call.sent_total_compressed_message_size",
                "Bytes of response messages a server call sent (compressed if they were; no \
                 metadata or framing).",
            ),
            server_call_rcvd: size(
                "grpc.server.call.rcvd_total_compressed_message_size",
                "Bytes of request messages a server call received (compressed if they were; \
                 no metadata or framing).",
            ),
        };
        MetricsRecorder {
            shared: Arc::new(Shared {
                instruments,
                record_all_client_methods: self.record_all_client_methods,
                target_filter: self.target_filter,
            }),
        }
    }
}

/// What every handler and interceptor of one recorder shares.
struct Shared {
    instruments: Instruments,
    record_all_client_methods: bool,
    target_filter: Option<Box<TargetFilter>>,
}

impl Shared {
    /// The `grpc.method` value of a call to `path`: the path without its leading slash when
    /// recorded by name (one allocation: the value outlives the call's borrowed path), else
    /// `"other"` (none).
    fn method(&self, path: &str, by_name: bool) -> KeyValue {
        let value = if by_name {
            Value::from(Arc::<str>::from(path.strip_prefix('/').unwrap_or(path)))
        } else {
            Value::from(OTHER)
        };
        KeyValue::new(METHOD, value)
    }

    /// The `grpc.target` value of a channel to `target` (made once per channel).
    fn target(&self, target: &str) -> Value {
        match &self.target_filter {
            Some(keep) if !keep(target) => Value::from(OTHER),
            _ => Value::from(Arc::<str>::from(target)),
        }
    }
}

/// A status code as the `grpc.status` attribute (no allocation: the names are static).
fn status(code: Code) -> KeyValue {
    KeyValue::new(STATUS, code.as_str())
}

struct Instruments {
    client_attempt_started: Counter<u64>,
    client_attempt_duration: Histogram<f64>,
    client_attempt_sent: Histogram<u64>,
    client_attempt_rcvd: Histogram<u64>,
    client_call_duration: Histogram<f64>,
    server_call_started: Counter<u64>,
    server_call_duration: Histogram<f64>,
    server_call_sent: Histogram<u64>,
    server_call_rcvd: Histogram<u64>,
}

/// One channel's part of a recorder: its target, made into an attribute on the first
/// attempt and shared by every later one and by the call interceptor.
struct ChannelMetrics {
    shared: Arc<Shared>,
    target: OnceLock<Value>,
}

impl ChannelMetrics {
    /// The channel's `grpc.target`: a reference count on the one made at its first use.
    fn target(&self, target: &str) -> KeyValue {
        let value = self.target.get_or_init(|| self.shared.target(target));
        KeyValue::new(TARGET, value.clone())
    }
}

/// The client's stats handler: the attempt metrics.
struct ClientMetrics(Arc<ChannelMetrics>);

/// One attempt's state (the one allocation per attempt the stats seam makes, boxing it).
struct AttemptState {
    /// `grpc.method`, `grpc.target`: made once per attempt; `grpc.status` joins them at the
    /// end.
    attributes: [KeyValue; 2],
    sent: AtomicU64,
    rcvd: AtomicU64,
}

impl Handler for ClientMetrics {
    type Call = AttemptState;

    fn tag_rpc(&self, info: &RpcInfo<'_>) -> AttemptState {
        let channel = &self.0;
        let by_name = info.is_registered_method() || channel.shared.record_all_client_methods;
        AttemptState {
            attributes: [
                channel.shared.method(info.method(), by_name),
                channel.target(info.target().unwrap_or_default()),
            ],
            sent: AtomicU64::new(0),
            rcvd: AtomicU64::new(0),
        }
    }

    fn handle_rpc(&self, call: &AttemptState, event: &RpcEvent<'_>) {
        let instruments = &self.0.shared.instruments;
        match event {
            RpcEvent::Begin => instruments.client_attempt_started.add(1, &call.attributes),
            RpcEvent::OutPayload(payload) => {
                call.sent
                    .fetch_add(payload.compressed_len() as u64, Ordering::Relaxed);
            }
            RpcEvent::InPayload(payload) => {
                call.rcvd
                    .fetch_add(payload.compressed_len() as u64, Ordering::Relaxed);
            }
            RpcEvent::End {
                status: end,
                duration,
            } => {
                // Reference counts, no allocation.
                let [method, target] = &call.attributes;
                let attributes = [method.clone(), target.clone(), status(end.code())];
                instruments
                    .client_attempt_duration
                    .record(duration.as_secs_f64(), &attributes);
                instruments
                    .client_attempt_sent
                    .record(call.sent.load(Ordering::Relaxed), &attributes);
                instruments
                    .client_attempt_rcvd
                    .record(call.rcvd.load(Ordering::Relaxed), &attributes);
            }
            _ => {}
        }
    }
}

/// The client's interceptor: `grpc.client.call.duration`, from `on_call` to `on_end`.
struct CallDuration(Arc<ChannelMetrics>);

/// When a call began, kept in its extensions from `on_call` to `on_end`.
#[derive(Clone, Copy)]
struct CallStart(Instant);

impl Interceptor for CallDuration {
    fn on_call<'a>(&'a self, call: &'a mut CallInfo) -> InterceptFuture<'a> {
        // Allocations: the extensions' map if this is the call's first extension, and the
        // boxed value (http::Extensions boxes each); the boxed future below.
        call.extensions_mut().insert(CallStart(Instant::now()));
        Box::pin(std::future::ready(Ok(())))
    }

    fn on_end(&self, call: &CallInfo, end: &Status) {
        let Some(CallStart(start)) = call.extensions().get::<CallStart>().copied() else {
            return;
        };
        let elapsed = start.elapsed();
        let channel = &self.0;
        let method = match call.method() {
            // A descriptor's path is static: no allocation.
            Some(descriptor) => KeyValue::new(
                METHOD,
                descriptor.path.strip_prefix('/').unwrap_or(descriptor.path),
            ),
            None => channel
                .shared
                .method(call.path(), channel.shared.record_all_client_methods),
        };
        // Set when the recorder was installed on the channel's builder.
        let target = match channel.target.get() {
            Some(target) => target.clone(),
            None => Value::from(OTHER),
        };
        let attributes = [method, KeyValue::new(TARGET, target), status(end.code())];
        channel
            .shared
            .instruments
            .client_call_duration
            .record(elapsed.as_secs_f64(), &attributes);
    }
}

/// The server's stats handler.
struct ServerMetrics(Arc<Shared>);

/// One server call's state (the one allocation per call the stats seam makes, boxing it).
struct ServerCallState {
    /// `grpc.method`, made once per call; `grpc.status` joins it at the end.
    method: KeyValue,
    sent: AtomicU64,
    rcvd: AtomicU64,
}

impl Handler for ServerMetrics {
    type Call = ServerCallState;

    fn tag_rpc(&self, info: &RpcInfo<'_>) -> ServerCallState {
        ServerCallState {
            method: self.0.method(info.method(), info.is_registered_method()),
            sent: AtomicU64::new(0),
            rcvd: AtomicU64::new(0),
        }
    }

    fn handle_rpc(&self, call: &ServerCallState, event: &RpcEvent<'_>) {
        let instruments = &self.0.instruments;
        match event {
            RpcEvent::Begin => instruments
                .server_call_started
                .add(1, std::slice::from_ref(&call.method)),
            RpcEvent::OutPayload(payload) => {
                call.sent
                    .fetch_add(payload.compressed_len() as u64, Ordering::Relaxed);
            }
            RpcEvent::InPayload(payload) => {
                call.rcvd
                    .fetch_add(payload.compressed_len() as u64, Ordering::Relaxed);
            }
            RpcEvent::End {
                status: end,
                duration,
            } => {
                // A reference count (or a static name), no allocation.
                let attributes = [call.method.clone(), status(end.code())];
                instruments
                    .server_call_duration
                    .record(duration.as_secs_f64(), &attributes);
                instruments
                    .server_call_sent
                    .record(call.sent.load(Ordering::Relaxed), &attributes);
                instruments
                    .server_call_rcvd
                    .record(call.rcvd.load(Ordering::Relaxed), &attributes);
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    //! The handlers driven through the stats seam's own call state (no sockets): attributes,
    //! counts, sizes, buckets, as the SDK's in-memory exporter sees them.

    use std::collections::BTreeMap;
    use std::time::Duration;

    use futures_util::FutureExt;
    use opentelemetry::Value;
    use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData};
    use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader, SdkMeterProvider};

    use super::*;
    use crate::interceptor::AttemptInfo;
    use crate::metadata::MetadataMap;
    use crate::service::{MethodDescriptor, MethodKind, MethodRef};
    use crate::stats::HandlerList;

    static SAY_HELLO: MethodDescriptor = MethodDescriptor::new(
        "SayHello",
        "/helloworld.Greeter/SayHello",
        MethodKind::Unary,
    );

    /// One data point as exported: what the tests compare.
    #[derive(Debug, Clone, PartialEq)]
    enum Data {
        Count(u64),
        Histogram {
            count: u64,
            sum: f64,
            bounds: Vec<f64>,
        },
    }

    #[derive(Debug, Clone, PartialEq)]
    struct Point {
        name: String,
        unit: String,
        attributes: BTreeMap<String, String>,
        data: Data,
    }

    struct Exported {
        provider: SdkMeterProvider,
        exporter: InMemoryMetricExporter,
    }

    fn exported() -> Exported {
        let exporter = InMemoryMetricExporter::default();
        let provider = SdkMeterProvider::builder()
            .with_reader(PeriodicReader::builder(exporter.clone()).build())
            .build();
        Exported { provider, exporter }
    }

    fn text(value: &Value) -> String {
        match value {
            Value::String(s) => s.as_str().to_owned(),
            other => panic!("attribute not a string: {other:?}"),
        }
    }

    fn attributes<'a>(kvs: impl Iterator<Item = &'a KeyValue>) -> BTreeMap<String, String> {
        kvs.map(|kv| (kv.key.as_str().to_owned(), text(&kv.value)))
            .collect()
    }

    impl Exported {
        /// Every data point recorded so far, sorted by name then attributes.
        fn points(&self) -> Vec<Point> {
            self.provider.force_flush().unwrap();
            let batches = self.exporter.get_finished_metrics().unwrap();
            let mut points = Vec::new();
            let Some(last) = batches.last() else {
                return points;
            };
            for scope in last.scope_metrics() {
                assert_eq!(scope.scope().name(), "grpc-rust");
                assert_eq!(scope.scope().version(), Some(env!("CARGO_PKG_VERSION")));
                for metric in scope.metrics() {
                    let mut push = |attributes, data| {
                        points.push(Point {
                            name: metric.name().to_owned(),
                            unit: metric.unit().to_owned(),
                            attributes,
                            data,
                        });
                    };
                    match metric.data() {
                        AggregatedMetrics::U64(MetricData::Sum(sum)) => {
                            for p in sum.data_points() {
                                push(attributes(p.attributes()), Data::Count(p.value()));
                            }
                        }
                        AggregatedMetrics::U64(MetricData::Histogram(h)) => {
                            for p in h.data_points() {
                                push(
                                    attributes(p.attributes()),
                                    Data::Histogram {
                                        count: p.count(),
                                        sum: p.sum() as f64,
                                        bounds: p.bounds().collect(),
                                    },
                                );
                            }
                        }
                        AggregatedMetrics::F64(MetricData::Histogram(h)) => {
                            for p in h.data_points() {
                                push(
                                    attributes(p.attributes()),
                                    Data::Histogram {
                                        count: p.count(),
                                        sum: p.sum(),
                                        bounds: p.bounds().collect(),
                                    },
                                );
                            }
                        }
                        other => panic!("{}: unexpected data {other:?}", metric.name()),
                    }
                }
            }
            points.sort_by(|a, b| (&a.name, &a.attributes).cmp(&(&b.name, &b.attributes)));
            points
        }

        /// The one point of `name` with `attributes`.
        fn point(&self, name: &str, attributes: &[(&str, &str)]) -> Point {
            let want: BTreeMap<String, String> = attributes
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect();
            let points = self.points();
            points
                .iter()
                .find(|p| p.name == name && p.attributes == want)
                .cloned()
                .unwrap_or_else(|| panic!("no {name} {want:?} in {points:#?}"))
        }
    }

    fn attrs<'a>(pairs: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
        pairs.to_vec()
    }

    fn histogram(point: &Point) -> (u64, f64, &[f64]) {
        match &point.data {
            Data::Histogram { count, sum, bounds } => (*count, *sum, bounds),
            Data::Count(_) => panic!("{} is a counter", point.name),
        }
    }

    /// A frame as the transport sends it: the prefix, then `body`.
    fn frame(body: &[u8]) -> Vec<u8> {
        let mut frame = vec![0];
        frame.extend_from_slice(&u32::try_from(body.len()).unwrap().to_be_bytes());
        frame.extend_from_slice(body);
        frame
    }

    fn server_info(method: &str, registered: bool) -> RpcInfo<'_> {
        RpcInfo {
            method,
            client: false,
            registered,
            target: None,
            attempt: None,
            peer: None,
            authority: None,
        }
    }

    fn client_info<'a>(method: &'a str, registered: bool, target: &'a str) -> RpcInfo<'a> {
        RpcInfo {
            method,
            client: true,
            registered,
            target: Some(target),
            attempt: Some(AttemptInfo::FIRST),
            peer: None,
            authority: None,
        }
    }

    #[test]
    fn server_call_records_started_duration_and_sizes() {
        let otel = exported();
        let recorder = MetricsRecorder::new(&otel.provider);
        let mut list = HandlerList::default();
        list.push(ServerMetrics(Arc::clone(&recorder.shared)));
        let handlers = list.build();

        let call = handlers
            .begin(&server_info("/helloworld.Greeter/SayHello", true))
            .unwrap();
        // Started is counted at the beginning, with the method only.
        assert_eq!(
            otel.points(),
            vec![Point {
                name: "grpc.server.call.started".into(),
                unit: "{call}".into(),
                attributes: [(
                    "grpc.method".to_owned(),
                    "helloworld.Greeter/SayHello".to_owned()
                )]
                .into(),
                data: Data::Count(1),
            }]
        );
        call.in_message(b"request of 22 bytes...", 22);
        call.in_message(b"decompressed", 5);
        call.out_frame(&frame(b"seven b"), None);
        std::thread::sleep(Duration::from_millis(2));
        call.end(&Status::not_found("no such greeting"));
        // Events after the end change nothing.
        call.out_frame(&frame(b"late"), None);

        let tags = attrs(&[
            ("grpc.method", "helloworld.Greeter/SayHello"),
            ("grpc.status", "NOT_FOUND"),
        ]);
        let duration = otel.point("grpc.server.call.duration", &tags);
        assert_eq!(duration.unit, "s");
        let (count, sum, bounds) = histogram(&duration);
        assert_eq!(count, 1);
        assert!((0.002..1.0).contains(&sum), "duration {sum}");
        assert_eq!(bounds, LATENCY_BUCKETS);

        let sent = otel.point("grpc.server.call.sent_total_compressed_message_size", &tags);
        assert_eq!(sent.unit, "By");
        assert_eq!(histogram(&sent), (1, 7.0, &SIZE_BUCKETS[..]));
        let rcvd = otel.point("grpc.server.call.rcvd_total_compressed_message_size", &tags);
        assert_eq!(rcvd.unit, "By");
        // Compressed lengths: 22 + 5, not the decompressed 12.
        assert_eq!(histogram(&rcvd), (1, 27.0, &SIZE_BUCKETS[..]));
        assert_eq!(otel.points().len(), 4);
    }

    #[test]
    fn server_records_unregistered_methods_as_other_whatever_the_options() {
        let otel = exported();
        let recorder = MetricsRecorder::builder(&otel.provider)
            .record_all_client_methods(true)
            .build();
        let mut list = HandlerList::default();
        list.push(ServerMetrics(Arc::clone(&recorder.shared)));
        let handlers = list.build();
        for path in ["/attacker.Chosen/Name1", "/attacker.Chosen/Name2"] {
            let call = handlers.begin(&server_info(path, false)).unwrap();
            call.end(&Status::unimplemented("unknown"));
        }
        assert_eq!(
            otel.point("grpc.server.call.started", &[("grpc.method", "other")])
                .data,
            Data::Count(2)
        );
        let tags = [("grpc.method", "other"), ("grpc.status", "UNIMPLEMENTED")];
        let (count, _, _) = histogram(&otel.point("grpc.server.call.duration", &tags));
        assert_eq!(count, 2);
        // Nothing names the attacker's methods.
        assert!(
            otel.points()
                .iter()
                .all(|p| !p.attributes.values().any(|v| v.contains("attacker")))
        );
    }

    #[test]
    fn client_attempts_are_recorded_each_with_its_status() {
        let otel = exported();
        let recorder = MetricsRecorder::new(&otel.provider);
        let channel = Arc::new(ChannelMetrics {
            shared: Arc::clone(&recorder.shared),
            target: OnceLock::new(),
        });
        let mut list = HandlerList::default();
        list.push(ClientMetrics(Arc::clone(&channel)));
        let handlers = list.build();
        let target = "dns:///greeter.example:443";

        // A first attempt fails, a retry succeeds.
        let first = handlers
            .begin(&client_info("/helloworld.Greeter/SayHello", true, target))
            .unwrap();
        first.out_frame(&frame(b"hello"), None);
        first.end(&Status::unavailable("connection reset"));
        let second = handlers
            .begin(&client_info("/helloworld.Greeter/SayHello", true, target))
            .unwrap();
        second.out_frame(&frame(b"hello"), None);
        second.in_message(b"hello back", 10);
        second.in_message(b"and more", 3);
        second.end(&Status::ok(""));

        let started = otel.point(
            "grpc.client.attempt.started",
            &[
                ("grpc.method", "helloworld.Greeter/SayHello"),
                ("grpc.target", target),
            ],
        );
        assert_eq!(started.unit, "{attempt}");
        assert_eq!(started.data, Data::Count(2));
        for (code, sent, rcvd) in [("UNAVAILABLE", 5.0, 0.0), ("OK", 5.0, 13.0)] {
            let tags = [
                ("grpc.method", "helloworld.Greeter/SayHello"),
                ("grpc.target", target),
                ("grpc.status", code),
            ];
            let duration = otel.point("grpc.client.attempt.duration", &tags);
            assert_eq!(duration.unit, "s");
            let (count, seconds, bounds) = histogram(&duration);
            assert_eq!((count, bounds), (1, &LATENCY_BUCKETS[..]));
            assert!(seconds > 0.0);
            let point = otel.point(
                "grpc.client.attempt.sent_total_compressed_message_size",
                &tags,
            );
            assert_eq!(
                (point.unit.as_str(), histogram(&point)),
                ("By", (1, sent, &SIZE_BUCKETS[..]))
            );
            let point = otel.point(
                "grpc.client.attempt.rcvd_total_compressed_message_size",
                &tags,
            );
            assert_eq!(
                (point.unit.as_str(), histogram(&point)),
                ("By", (1, rcvd, &SIZE_BUCKETS[..]))
            );
        }
        // 1 counter + 3 histograms x 2 statuses.
        assert_eq!(otel.points().len(), 7);
    }

    #[test]
    fn client_unregistered_methods_are_other_unless_asked() {
        for (record_all, want) in [(false, "other"), (true, "proxied.Service/Method")] {
            let otel = exported();
            let recorder = MetricsRecorder::builder(&otel.provider)
                .record_all_client_methods(record_all)
                .build();
            let channel = Arc::new(ChannelMetrics {
                shared: Arc::clone(&recorder.shared),
                target: OnceLock::new(),
            });
            let mut list = HandlerList::default();
            list.push(ClientMetrics(Arc::clone(&channel)));
            let handlers = list.build();
            let call = handlers
                .begin(&client_info("/proxied.Service/Method", false, "t"))
                .unwrap();
            call.end(&Status::ok(""));
            let point = otel.point(
                "grpc.client.attempt.started",
                &[("grpc.method", want), ("grpc.target", "t")],
            );
            assert_eq!(point.data, Data::Count(1), "record_all {record_all}");
        }
    }

    #[test]
    fn target_filter_replaces_targets_with_other() {
        let otel = exported();
        let recorder = MetricsRecorder::builder(&otel.provider)
            .target_filter(|target| !target.contains("10.0."))
            .build();
        for target in ["http://10.0.0.7:50051", "dns:///kept.example:443"] {
            let channel = Arc::new(ChannelMetrics {
                shared: Arc::clone(&recorder.shared),
                target: OnceLock::new(),
            });
            let mut list = HandlerList::default();
            list.push(ClientMetrics(channel));
            let call = list
                .build()
                .begin(&client_info("/helloworld.Greeter/SayHello", true, target))
                .unwrap();
            call.end(&Status::ok(""));
        }
        let targets: Vec<String> = otel
            .points()
            .into_iter()
            .filter(|p| p.name == "grpc.client.attempt.started")
            .map(|p| p.attributes["grpc.target"].clone())
            .collect();
        assert_eq!(targets, ["dns:///kept.example:443", "other"]);
    }

    fn call_info(method: MethodRef) -> CallInfo {
        CallInfo {
            method,
            kind: MethodKind::Unary,
            metadata: MetadataMap::new(),
            extensions: http::Extensions::new(),
            timeout: None,
            peer: None,
        }
    }

    #[test]
    fn call_duration_runs_from_on_call_to_on_end() {
        let otel = exported();
        let recorder = MetricsRecorder::new(&otel.provider);
        let channel = Arc::new(ChannelMetrics {
            shared: Arc::clone(&recorder.shared),
            target: OnceLock::new(),
        });
        // The first attempt names the channel's target.
        channel.target("http://127.0.0.1:50051");
        let interceptor = CallDuration(Arc::clone(&channel));

        let mut known = call_info(MethodRef::Known(&SAY_HELLO));
        interceptor
            .on_call(&mut known)
            .now_or_never()
            .unwrap()
            .unwrap();
        std::thread::sleep(Duration::from_millis(3));
        interceptor.on_end(&known, &Status::deadline_exceeded("too slow"));

        let mut unknown = call_info(MethodRef::from_path("/proxied.Service/Method").unwrap());
        interceptor
            .on_call(&mut unknown)
            .now_or_never()
            .unwrap()
            .unwrap();
        interceptor.on_end(&unknown, &Status::ok(""));
        // A call the interceptor did not start (an earlier one rejected it) is not recorded.
        interceptor.on_end(&call_info(MethodRef::Known(&SAY_HELLO)), &Status::ok(""));

        let point = otel.point(
            "grpc.client.call.duration",
            &[
                ("grpc.method", "helloworld.Greeter/SayHello"),
                ("grpc.target", "http://127.0.0.1:50051"),
                ("grpc.status", "DEADLINE_EXCEEDED"),
            ],
        );
        assert_eq!(point.unit, "s");
        let (count, seconds, bounds) = histogram(&point);
        assert_eq!((count, bounds), (1, &LATENCY_BUCKETS[..]));
        assert!((0.003..1.0).contains(&seconds), "duration {seconds}");
        let point = otel.point(
            "grpc.client.call.duration",
            &[
                ("grpc.method", "other"),
                ("grpc.target", "http://127.0.0.1:50051"),
                ("grpc.status", "OK"),
            ],
        );
        assert_eq!(histogram(&point).0, 1);
        assert_eq!(otel.points().len(), 2);
    }

    #[test]
    fn buckets_are_a66s_and_increase() {
        assert_eq!(LATENCY_BUCKETS.len(), 41);
        assert_eq!(SIZE_BUCKETS.len(), 14);
        assert!(LATENCY_BUCKETS.windows(2).all(|w| w[0] < w[1]));
        assert!(SIZE_BUCKETS.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(SIZE_BUCKETS[13], 4.0 * 1024.0 * 1024.0 * 1024.0);
        assert_eq!(LATENCY_BUCKETS[40], 100.0);
    }
}
