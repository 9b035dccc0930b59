//! The gRPC interop test service (`grpc.testing.TestService`) on grpc-runtime: a server
//! implementing it per gRPC's interop test descriptions, and a client running the test cases.

/// Generated messages and stubs for `grpc.testing`.
pub mod proto {
    grpc_runtime::include_protos!();
}

pub mod client;
pub mod details;
pub mod flags;
pub use grpc_process as process;
pub mod server;

use proto::messages::Payload;

/// A payload of `size` zero bytes.
pub fn zeros(size: i32) -> protobuf::MessageField<Payload> {
    let mut payload = Payload::new();
    payload.body = vec![0; usize::try_from(size).unwrap_or(0)];
    protobuf::MessageField::some(payload)
}
