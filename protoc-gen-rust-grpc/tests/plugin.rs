//! Runs the plugin binary: through protoc on testdata/protos (together with rust-protobuf's
//! protoc-gen-rs when it is built), and with hand-built requests on stdin.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use protobuf::Message;
use protobuf::descriptor::{
    DescriptorProto, FileDescriptorProto, MethodDescriptorProto, ServiceDescriptorProto,
};
use protobuf::plugin::{CodeGeneratorRequest, CodeGeneratorResponse, code_generator_response};

const PLUGIN: &str = env!("CARGO_BIN_EXE_protoc-gen-rust-grpc");

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/protos")
}

/// `$PROTOC`, else `protoc` on PATH, else the one the protoc-bin-vendored crate ships (so a
/// machine with only the Rust toolchain runs these tests too).
fn protoc() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("PROTOC") {
        return Some(PathBuf::from(p));
    }
    let on_path = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|d| d.join("protoc"))
            .find(|p| p.is_file())
    });
    on_path.or_else(|| protoc_bin_vendored::protoc_bin_path().ok())
}

fn protos(dir: &Path, root: &Path, out: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            protos(&path, root, out);
        } else if path.extension().is_some_and(|e| e == "proto") {
            out.push(
                path.strip_prefix(root)
                    .unwrap()
                    .to_str()
                    .unwrap()
                    .to_owned(),
            );
        }
    }
    out.sort();
}

/// Files of one basename, through the plugin alone (`messages=true`): modules after their
/// paths, the messages' and the stubs' paths agreeing, and reported without it.
#[test]
fn the_plugin_writes_messages_for_trees_with_one_basename_twice() {
    let Some(protoc) = protoc() else {
        eprintln!("SKIPPED: no protoc found (set PROTOC or put protoc on PATH)");
        return;
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/collide");
    let mut files = Vec::new();
    protos(&root, &root, &mut files);
    let out = tempfile::tempdir().unwrap();
    let status = Command::new(&protoc)
        .current_dir(&root)
        .arg(format!("--plugin=protoc-gen-rust-grpc={PLUGIN}"))
        .arg(format!("--rust-grpc_out={}", out.path().display()))
        .arg("--rust-grpc_opt=messages=true,mod_rs=true")
        .arg("-I.")
        .args(&files)
        .status()
        .unwrap();
    assert!(status.success());
    let speech = std::fs::read_to_string(out.path().join("speech.rs")).unwrap();
    assert!(
        speech.contains("super::cloud_speech_v1_resource::PhraseSet"),
        "{speech}"
    );
    assert!(speech.contains("super::xds_annotations_v3_status::StatusAnnotation"));
    let stubs = std::fs::read_to_string(out.path().join("speech_grpc.rs")).unwrap();
    assert!(
        stubs.contains("super::cloud_speech_v1_resource::CustomClass"),
        "{stubs}"
    );
    // Without messages=true, the stubs must match protoc-gen-rs's basename modules: an error
    // that names the way out.
    let output = Command::new(&protoc)
        .current_dir(&root)
        .arg(format!("--plugin=protoc-gen-rust-grpc={PLUGIN}"))
        .arg(format!("--rust-grpc_out={}", out.path().display()))
        .arg("-I.")
        .args(&files)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("both map to the Rust module `resource`")
            && stderr.contains("messages=true"),
        "{stderr}"
    );
}

#[test]
fn protoc_with_both_plugins() {
    let Some(protoc) = protoc() else {
        eprintln!(
            "SKIPPED protoc_with_both_plugins: no protoc found (set PROTOC or put protoc on PATH)"
        );
        return;
    };
    // protoc-gen-rs is the workspace's tools/protoc-gen-rs, built next to this plugin.
    let rs_plugin = Path::new(PLUGIN).with_file_name("protoc-gen-rs");
    let with_rs = rs_plugin.is_file();
    if !with_rs {
        eprintln!(
            "note: {} not built (cargo build -p protoc-gen-rs); running only protoc-gen-rust-grpc",
            rs_plugin.display()
        );
    }
    let out = tempfile::tempdir().unwrap();
    let root = testdata();
    let mut files = Vec::new();
    protos(&root, &root, &mut files);
    let mut cmd = Command::new(&protoc);
    cmd.current_dir(&root)
        .arg(format!("--plugin=protoc-gen-rust-grpc={PLUGIN}"))
        .arg(format!("--rust-grpc_out={}", out.path().display()))
        .arg("--rust-grpc_opt=mod_rs=true")
        .arg("-I.");
    if with_rs {
        cmd.arg(format!("--plugin=protoc-gen-rs={}", rs_plugin.display()))
            .arg(format!("--rs_out={}", out.path().display()))
            .arg("--rs_opt=gen_mod_rs=false");
    }
    let status = cmd.args(&files).status().unwrap();
    assert!(status.success(), "protoc failed: {status}");
    for stubs in [
        "helloworld_grpc.rs",
        "cross_grpc.rs",
        "multi_grpc.rs",
        "wkt_grpc.rs",
        "type__grpc.rs",
        "self__grpc.rs",
        "proto2_grpc.rs",
    ] {
        let content = std::fs::read_to_string(out.path().join(stubs))
            .unwrap_or_else(|e| panic!("{stubs}: {e}"));
        assert!(content.starts_with("// @generated by protoc-gen-rust-grpc"));
    }
    // No stubs for a file without services.
    assert!(!out.path().join("common_grpc.rs").exists());
    // protoc supplies comments, which become docs.
    let hello = std::fs::read_to_string(out.path().join("helloworld_grpc.rs")).unwrap();
    assert!(hello.contains("    /// Sends a greeting.\n"));
    if with_rs {
        for messages in [
            "helloworld.rs",
            "common.rs",
            "type_.rs",
            "self_.rs",
            "wkt.rs",
        ] {
            assert!(out.path().join(messages).is_file(), "{messages}");
        }
    }
    // mod_rs=true: one module file for both plugins' output, each file declared once.
    let mod_rs = std::fs::read_to_string(out.path().join("mod.rs")).unwrap();
    let mut declared: Vec<&str> = mod_rs
        .lines()
        .filter_map(|l| l.strip_prefix("pub mod ")?.strip_suffix(';'))
        .collect();
    declared.sort_unstable();
    let mut written: Vec<String> = std::fs::read_dir(out.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n != "mod.rs")
        .map(|n| n.trim_end_matches(".rs").to_owned())
        .collect();
    if !with_rs {
        // The messages' modules are declared for protoc-gen-rs to write.
        written.extend(
            [
                "common",
                "cross",
                "helloworld",
                "multi",
                "proto2",
                "self_",
                "type_",
                "wkt",
            ]
            .map(String::from),
        );
    }
    written.sort_unstable();
    assert_eq!(declared, written, "{mod_rs}");
    assert!(mod_rs.contains("#[allow(non_snake_case)]\npub mod type__grpc;"));

    // An unknown parameter: protoc reports the plugin's error and fails.
    let output = Command::new(&protoc)
        .current_dir(&root)
        .arg(format!("--plugin=protoc-gen-rust-grpc={PLUGIN}"))
        .arg(format!("--rust-grpc_out=bogus=1:{}", out.path().display()))
        .arg("-I.")
        .arg("helloworld.proto")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("unknown parameter `bogus`"), "{stderr}");
}

fn run_plugin(input: &[u8]) -> CodeGeneratorResponse {
    let mut child = Command::new(PLUGIN)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "the plugin must exit 0");
    CodeGeneratorResponse::parse_from_bytes(&output.stdout).unwrap()
}

fn request(output_type: &str, parameter: &str) -> CodeGeneratorRequest {
    let mut file = FileDescriptorProto::new();
    file.set_name("svc.proto".into());
    file.set_package("p".into());
    let mut m = DescriptorProto::new();
    m.set_name("M".into());
    file.message_type.push(m);
    let mut method = MethodDescriptorProto::new();
    method.set_name("Do".into());
    method.set_input_type(".p.M".into());
    method.set_output_type(output_type.into());
    let mut service = ServiceDescriptorProto::new();
    service.set_name("S".into());
    service.method.push(method);
    file.service.push(service);
    let mut req = CodeGeneratorRequest::new();
    req.file_to_generate.push("svc.proto".into());
    req.proto_file.push(file);
    req.set_parameter(parameter.into());
    req
}

#[test]
fn hand_built_requests() {
    let ok = run_plugin(&request(".p.M", "server=false").write_to_bytes().unwrap());
    assert_eq!(ok.error, None);
    assert_eq!(
        ok.supported_features(),
        code_generator_response::Feature::FEATURE_PROTO3_OPTIONAL as u64
    );
    assert_eq!(ok.file.len(), 1);
    assert_eq!(ok.file[0].name(), "svc_grpc.rs");
    assert!(ok.file[0].content().contains("pub struct SClient"));
    assert!(!ok.file[0].content().contains("pub trait S"));

    let unresolved = run_plugin(&request(".p.Missing", "").write_to_bytes().unwrap());
    assert!(unresolved.file.is_empty());
    assert_eq!(
        unresolved.error(),
        "svc.proto: cannot resolve type `.p.Missing` of method `p.S.Do`: no message of that \
         name in the file or its imports"
    );

    let bad_param = run_plugin(&request(".p.M", "client=maybe").write_to_bytes().unwrap());
    assert!(
        bad_param.error().contains("`true` or `false`"),
        "{}",
        bad_param.error()
    );

    let garbage = run_plugin(b"\xff\xff\xff");
    assert!(
        garbage.error().contains("cannot decode"),
        "{}",
        garbage.error()
    );
}
