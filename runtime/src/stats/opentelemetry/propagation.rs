//! The OpenTelemetry context through request metadata: W3C trace context (`traceparent`,
//! `tracestate`), or whatever propagator the application set globally.

use opentelemetry::propagation::{Extractor, Injector};
use opentelemetry::{Context, global};

use crate::client::ChannelBuilder;
use crate::interceptor::{Around, AroundFuture, CallInfo, InterceptFuture, Interceptor, Next};
use crate::metadata::MetadataMap;
use crate::server::ServerBuilder;

/// Carries the OpenTelemetry [`Context`] of a client's call to the server's handler, through
/// the request metadata, with the propagator set by
/// [`opentelemetry::global::set_text_map_propagator`] (W3C trace context with the SDK's
/// `TraceContextPropagator`). With none set, OpenTelemetry's default propagator sends
/// nothing, and this costs one call per call.
///
/// On a client, the context current where the call is made
/// ([`Context::current`], e.g. inside a span the application entered, or a future run
/// `.with_context(..)`) is injected into the request's metadata. On a server, the context
/// extracted from the request is current while the handler runs: spans the handler starts
/// are children of the client's. (With `tracing-opentelemetry`, a handler links its
/// `tracing` span with `set_parent(Context::current())`.)
///
/// # Examples
///
/// ```
/// use grpc_runtime::stats::opentelemetry::TracePropagation;
///
/// let channel = TracePropagation
///     .install_channel(grpc_runtime::client::Channel::builder("http://127.0.0.1:50051"))
///     .build();
/// let server = TracePropagation
///     .install_server(grpc_runtime::server::Server::builder())
///     .build();
/// # let _ = (channel, server);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct TracePropagation;

impl TracePropagation {
    /// Injects the caller's context into each call's request metadata.
    pub fn install_channel(self, builder: ChannelBuilder) -> ChannelBuilder {
        builder.interceptor(Inject)
    }

    /// Makes the context a request carries current while its handler runs.
    pub fn install_server(self, builder: ServerBuilder) -> ServerBuilder {
        builder.around(Extract)
    }
}

/// The client's interceptor.
struct Inject;

impl Interceptor for Inject {
    fn on_call<'a>(&'a self, call: &'a mut CallInfo) -> InterceptFuture<'a> {
        let context = Context::current();
        global::get_text_map_propagator(|propagator| {
            propagator.inject_context(&context, &mut MetadataInjector(call.metadata_mut()));
        });
        Box::pin(std::future::ready(Ok(())))
    }
}

/// The server's wrapper around handlers.
struct Extract;

impl Around for Extract {
    fn around<'a>(&'a self, call: &'a CallInfo, mut next: Next<'a>) -> AroundFuture<'a> {
        let context = global::get_text_map_propagator(|propagator| {
            propagator.extract(&MetadataExtractor(call.metadata()))
        });
        Box::pin(async move {
            use opentelemetry::context::FutureExt as _;
            next.run().with_context(context).await
        })
    }
}

struct MetadataInjector<'a>(&'a mut MetadataMap);

impl Injector for MetadataInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        // A propagator's keys are lowercase ASCII; a value that is not a valid header
        // (which W3C's never are) is left out rather than failing the call.
        if let Err(e) = self.0.insert(key, &value) {
            tracing::debug!("trace context header {key} not sent: {e}");
        }
    }
}

struct MetadataExtractor<'a>(&'a MetadataMap);

impl Extractor for MetadataExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key)
    }

    fn keys(&self) -> Vec<&str> {
        self.0.iter().map(|(key, _)| key).collect()
    }
}
