//! `grpc.testing.BenchmarkService` on our runtime: the server's service, the load
//! generator's engine, and what the bare h2 baseline and the idle-memory probe share.
//!
//! The binaries: `benchmark-server`, `benchmark-client`, `h2-baseline-server` and
//! `benchmark-idle`. `run.sh` drives them (and the tonic pair in `tonic/`); see README.md.

/// Messages and stubs generated from `proto/grpc/testing/benchmark_service.proto`.
#[allow(missing_docs, unreachable_pub, missing_debug_implementations)]
pub mod proto {
    grpc_runtime::include_protos!();
}

/// The load generator's engine (shared with the tonic load generator by path).
#[allow(unreachable_pub)]
pub mod harness;

pub use grpc_process as process;
pub mod service;

/// The path of UnaryCall.
pub const UNARY_PATH: &str = "/grpc.testing.BenchmarkService/UnaryCall";
/// The path of StreamingCall.
pub const STREAMING_PATH: &str = "/grpc.testing.BenchmarkService/StreamingCall";
/// The path of StreamingFromClient.
pub const STREAMING_FROM_CLIENT_PATH: &str = "/grpc.testing.BenchmarkService/StreamingFromClient";
/// The path of StreamingFromServer.
pub const STREAMING_FROM_SERVER_PATH: &str = "/grpc.testing.BenchmarkService/StreamingFromServer";
