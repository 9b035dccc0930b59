//! Compiles every proto of testdata/protos with grpc-build's pure-Rust parser, and the tree
//! of testdata/collide (files of one basename) into `$OUT_DIR/collide`.

use std::path::{Path, PathBuf};

fn protos(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .expect("read testdata/protos")
        .map(|e| e.expect("dir entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            protos(&path, out);
        } else if path.extension().is_some_and(|e| e == "proto") {
            out.push(path);
        }
    }
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../protos");
    let mut inputs = Vec::new();
    protos(&root, &mut inputs);
    if let Err(e) = grpc_build::compile_protos(&inputs, &[&root]) {
        panic!("grpc-build failed: {e}");
    }
    // services/cross.proto again, with test.common's types taken from the crate root (an
    // extern path) and attributes on a message, an enum, the client and the server.
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR")).join("extern");
    if let Err(e) = grpc_build::configure()
        .out_dir(out)
        .extern_path(".test.common", "crate")
        .type_attribute(".test.services.Summary", "#[must_use = \"a summary\"]")
        .type_attribute(".test.services", "#[doc(alias = \"tagged\")]")
        .client_attribute(".test.services", "#[cfg(all())]")
        .server_attribute(".", "#[allow(clippy::pedantic)]")
        .compile(&[root.join("services/cross.proto")], &[&root])
    {
        panic!("grpc-build failed with an extern path: {e}");
    }
    let collide = Path::new(env!("CARGO_MANIFEST_DIR")).join("../collide");
    let mut inputs = Vec::new();
    protos(&collide, &mut inputs);
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR")).join("collide");
    if let Err(e) = grpc_build::configure()
        .out_dir(out)
        .compile(&inputs, &[&collide])
    {
        panic!("grpc-build failed on testdata/collide: {e}");
    }
}
