fn main() {
    // Our declaration of grpc.testing.BenchmarkService, shared with the interop crate.
    grpc_build::compile_protos(
        &["../proto/grpc/testing/benchmark_service.proto"],
        &["../proto"],
    )
    .unwrap_or_else(|e| panic!("failed to generate code: {e}"));
}
