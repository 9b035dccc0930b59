fn main() {
    // Our declaration of grpc.testing.BenchmarkService, shared with the interop crate.
    // `bytes` fields as `bytes::Bytes`: a received payload is a slice of the buffer its
    // message was assembled in, not a copy, and a payload made as a `Vec` becomes `Bytes`
    // without copying (one 1 MiB allocation and copy fewer per large request).
    grpc_build::configure()
        .bytes_as_bytes(true)
        .compile(
            &["../proto/grpc/testing/benchmark_service.proto"],
            &["../proto"],
        )
        .unwrap_or_else(|e| panic!("failed to generate code: {e}"));
}
