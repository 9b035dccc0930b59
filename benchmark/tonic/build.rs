fn main() -> Result<(), Box<dyn std::error::Error>> {
    // prost-build runs protoc (from PROTOC or PATH; Debian's protobuf-compiler here and in CI)
    // on the same declaration our crate uses.
    tonic_prost_build::configure().compile_protos(
        &["../../proto/grpc/testing/benchmark_service.proto"],
        &["../../proto"],
    )?;
    Ok(())
}
