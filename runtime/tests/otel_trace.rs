//! The OpenTelemetry context travels from a client's call to the server's handler as W3C
//! trace context, over real sockets.
#![cfg(feature = "opentelemetry")]

mod common;

use std::sync::{Arc, Mutex};

use common::pb;
use grpc_runtime::client::{Channel, Client};
use grpc_runtime::server::{Server, ServerCall, Service};
use grpc_runtime::service::{MethodDescriptor, MethodKind, ServiceDescriptor};
use grpc_runtime::stats::opentelemetry::TracePropagation;
use grpc_runtime::{Request, Response, Status};
use opentelemetry::context::FutureExt as _;
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use opentelemetry::{Context, global};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use protobuf::well_known_types::wrappers::StringValue;

const M_LOOK: MethodDescriptor =
    MethodDescriptor::new("Look", "/trace.Probe/Look", MethodKind::Unary);
static PROBE: ServiceDescriptor = ServiceDescriptor::new("trace.Probe", &[M_LOOK]);

/// Answers with the trace id current in the handler, and keeps the `traceparent` it got.
#[derive(Clone, Default)]
struct Probe(Arc<Mutex<Option<String>>>);

impl Service for Probe {
    fn descriptor(&self) -> &'static ServiceDescriptor {
        &PROBE
    }

    fn call(&self, _: &str, call: ServerCall) {
        let seen = self.0.clone();
        call.unary(
            &PROBE.methods[0],
            pb(),
            move |request: Request<StringValue>| async move {
                *seen.lock().unwrap() = request.metadata().get("traceparent").map(str::to_owned);
                tokio::task::yield_now().await;
                let current = Context::current();
                let mut reply = StringValue::new();
                reply.value = current.span().span_context().trace_id().to_string();
                Ok::<_, Status>(Response::new(reply))
            },
        );
    }
}

#[tokio::test]
async fn the_callers_trace_reaches_the_handler() {
    global::set_text_map_propagator(TraceContextPropagator::new());
    let probe = Probe::default();
    let server = TracePropagation
        .install_server(Server::builder().add_service(probe.clone()))
        .build();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(server.clone().serve_tcp(listener));
    let channel = TracePropagation
        .install_channel(Channel::builder(&format!("http://{addr}")))
        .build()
        .unwrap();
    let client = Client::new(channel);

    let trace_id = TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap();
    let span_id = SpanId::from_hex("00f067aa0ba902b7").unwrap();
    let parent = Context::new().with_remote_span_context(SpanContext::new(
        trace_id,
        span_id,
        TraceFlags::SAMPLED,
        true,
        TraceState::default(),
    ));
    let call = async {
        client
            .unary(&PROBE.methods[0], Request::new(StringValue::new()), pb())
            .await
    };
    let reply: Response<StringValue> = call.with_context(parent).await.unwrap();
    assert_eq!(reply.get_ref().value, trace_id.to_string());
    assert_eq!(
        probe.0.lock().unwrap().as_deref(),
        Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
    );

    // Outside any trace: nothing is sent, and the handler sees no trace.
    let reply: Response<StringValue> = client
        .unary(&PROBE.methods[0], Request::new(StringValue::new()), pb())
        .await
        .unwrap();
    assert_eq!(reply.get_ref().value, TraceId::INVALID.to_string());
    assert_eq!(*probe.0.lock().unwrap(), None);
}
