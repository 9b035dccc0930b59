//! Each call has a `tracing` span on both sides, with OpenTelemetry's RPC fields and the
//! status, entered while the call runs.

mod common;

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use common::*;
use grpc_runtime::{Code, Request, Response, Streaming};
use protobuf::well_known_types::wrappers::{StringValue, UInt32Value};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

/// A span as the subscriber saw it: its name, fields, and how often it was entered.
#[derive(Debug, Default, Clone)]
struct Seen {
    name: String,
    fields: HashMap<String, String>,
    entered: usize,
}

/// A subscriber that keeps every span of the runtime's calls.
#[derive(Default, Clone)]
struct Capture {
    spans: Arc<Mutex<HashMap<u64, Seen>>>,
    next: Arc<AtomicU64>,
}

struct Fields<'a>(&'a mut HashMap<String, String>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn Debug) {
        self.0.insert(
            field.name().to_owned(),
            format!("{value:?}").replace('"', ""),
        );
    }
}

impl Subscriber for Capture {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.target().starts_with("grpc_runtime::call")
    }

    fn new_span(&self, span: &Attributes<'_>) -> Id {
        let id = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        let mut seen = Seen {
            name: span.metadata().name().to_owned(),
            ..Seen::default()
        };
        span.record(&mut Fields(&mut seen.fields));
        self.spans.lock().unwrap().insert(id, seen);
        Id::from_u64(id)
    }

    fn record(&self, span: &Id, values: &Record<'_>) {
        if let Some(seen) = self.spans.lock().unwrap().get_mut(&span.into_u64()) {
            values.record(&mut Fields(&mut seen.fields));
        }
    }

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, _: &Event<'_>) {}

    fn enter(&self, span: &Id) {
        if let Some(seen) = self.spans.lock().unwrap().get_mut(&span.into_u64()) {
            seen.entered += 1;
        }
    }

    fn exit(&self, _: &Id) {}
}

impl Capture {
    fn named(&self, name: &str) -> Vec<Seen> {
        let spans = self.spans.lock().unwrap();
        let mut ids: Vec<_> = spans.keys().copied().collect();
        ids.sort_unstable();
        ids.iter()
            .map(|id| spans[id].clone())
            .filter(|s| s.name == name)
            .collect()
    }
}

// Current-thread: the server's tasks run on this thread, under this thread's subscriber.
#[tokio::test]
async fn calls_have_spans_with_rpc_fields_and_status() {
    let capture = Capture::default();
    let _guard = tracing::subscriber::set_default(capture.clone());
    let srv = start().await;
    let client = srv.client();

    let _: Response<StringValue> = client
        .unary(UNARY, Request::new(s("hi")), pb())
        .await
        .unwrap();
    let err = client
        .unary(
            UNARY,
            Request::new(s("fail:5:gone")),
            pb::<_, StringValue>(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let mut stream: Streaming<UInt32Value> = client
        .server_streaming(COUNT, Request::new(n(2)), pb())
        .await
        .unwrap();
    while stream.message().await.unwrap().is_some() {}
    drop(stream);

    eventually("three server spans with a status", || {
        capture
            .named("grpc.server")
            .iter()
            .filter(|s| s.fields.contains_key("rpc.grpc.status_code"))
            .count()
            == 3
    })
    .await;
    let clients = capture.named("grpc.client");
    assert_eq!(clients.len(), 3, "{clients:?}");
    let first = &clients[0].fields;
    assert_eq!(first["otel.name"], "test.Echo/Unary");
    assert_eq!(first["otel.kind"], "client");
    assert_eq!(first["rpc.system"], "grpc");
    assert_eq!(first["rpc.service"], "test.Echo");
    assert_eq!(first["rpc.method"], "Unary");
    assert_eq!(first["grpc.target"], format!("http://{}", srv.addr));
    let codes: Vec<_> = clients
        .iter()
        .map(|s| s.fields["rpc.grpc.status_code"].clone())
        .collect();
    assert_eq!(codes, ["0", "5", "0"]);
    assert!(clients.iter().all(|s| s.entered > 0));

    let servers = capture.named("grpc.server");
    let codes: Vec<_> = servers
        .iter()
        .map(|s| s.fields["rpc.grpc.status_code"].clone())
        .collect();
    assert_eq!(codes, ["0", "5", "0"]);
    assert_eq!(servers[2].fields["rpc.method"], "Count");
    assert_eq!(servers[0].fields["otel.kind"], "server");
    assert!(servers[0].fields["net.peer"].starts_with("127.0.0.1:"));
    // Entered while the handler ran: its logs nest under the call.
    assert!(servers.iter().all(|s| s.entered > 0));
}
