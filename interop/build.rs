fn main() {
    grpc_build::compile_protos(&["../proto/grpc/testing/test.proto"], &["../proto"])
        .unwrap_or_else(|e| panic!("failed to generate the interop code: {e}"));
}
