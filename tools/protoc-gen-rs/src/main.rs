//! rust-protobuf's `protoc-gen-rs` plugin, built from the workspace's pinned protobuf-codegen
//! so that the messages next to the golden stubs come from the same version.

fn main() {
    protobuf_codegen::protoc_gen_rs::protoc_gen_rust_main();
}
