fn main() {
    // Pure-Rust parsing: no protoc needed.
    grpc_build::compile_protos(
        &["proto/helloworld.proto", "proto/route_guide.proto"],
        &["proto"],
    )
    .unwrap_or_else(|e| panic!("failed to generate code: {e}"));
}
