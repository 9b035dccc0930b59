//! A `tracing` span per call, on both sides: a user's subscriber shows gRPC calls (and nests
//! the handler's own logs under them) with no code of theirs.
//!
//! Spans are at DEBUG under the target `grpc_runtime::call`, as all per-call detail is: a
//! subscriber shows them with `RUST_LOG=info,grpc_runtime::call=debug` (or a filter of its
//! own on a `tracing-opentelemetry` layer); at the usual INFO they cost nothing. Their fields follow OpenTelemetry's RPC conventions, so
//! `tracing-opentelemetry` exports them as RPC spans: `otel.name` (`service/method`),
//! `otel.kind`, `rpc.system`, `rpc.service`, `rpc.method`, `rpc.grpc.status_code` (recorded
//! when the call ends) and, on a server, `net.peer` (the client's address). With no
//! subscriber interested, making one costs a cached check and the span is disabled.

use tracing::Span;

use crate::peer::Peer;
use crate::status::Code;

/// The target calls' spans are logged under.
pub(crate) const TARGET: &str = "grpc_runtime::call";

/// `("helloworld.Greeter", "SayHello")` from `"/helloworld.Greeter/SayHello"`.
fn split(path: &str) -> (&str, &str) {
    let path = path.strip_prefix('/').unwrap_or(path);
    path.rsplit_once('/').unwrap_or((path, ""))
}

/// The span of a client call to `path` on the channel to `target`.
pub(crate) fn client(path: &str, target: &str) -> Span {
    let (service, method) = split(path);
    tracing::debug_span!(
        target: TARGET,
        "grpc.client",
        otel.name = path.strip_prefix('/').unwrap_or(path),
        otel.kind = "client",
        rpc.system = "grpc",
        rpc.service = service,
        rpc.method = method,
        grpc.target = target,
        rpc.grpc.status_code = tracing::field::Empty,
    )
}

/// The span of a server call to `path` from `peer`.
pub(crate) fn server(path: &str, peer: &Peer) -> Span {
    let (service, method) = split(path);
    let span = tracing::debug_span!(
        target: TARGET,
        "grpc.server",
        otel.name = path.strip_prefix('/').unwrap_or(path),
        otel.kind = "server",
        rpc.system = "grpc",
        rpc.service = service,
        rpc.method = method,
        net.peer = tracing::field::Empty,
        rpc.grpc.status_code = tracing::field::Empty,
    );
    if !span.is_disabled()
        && let Some(addr) = peer.remote_addr()
    {
        span.record("net.peer", tracing::field::display(addr));
    }
    span
}

/// Records how the call ended.
pub(crate) fn record(span: &Span, code: Code) {
    if !span.is_disabled() {
        span.record("rpc.grpc.status_code", code as i32);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn paths_split_into_service_and_method() {
        assert_eq!(
            super::split("/helloworld.Greeter/SayHello"),
            ("helloworld.Greeter", "SayHello")
        );
        assert_eq!(super::split("/odd"), ("odd", ""));
    }
}
