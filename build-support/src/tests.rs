use std::fs;
use std::path::Path;

use super::*;

fn write(dir: &Path, name: &str, contents: &str) {
    let path = dir.join(name);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, contents).unwrap();
}

fn fixture() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let protos = dir.path().join("protos");
    write(
        &protos,
        "common/types.proto",
        "syntax = \"proto3\";\npackage test.common;\n\
         message HTTPRequest { message Header { string name = 1; } repeated Header headers = 1; }\n",
    );
    write(
        &protos,
        "svc/type.proto",
        "syntax = \"proto3\";\npackage test.svc;\n\
         import \"common/types.proto\";\nimport \"google/protobuf/empty.proto\";\n\
         service Type {\n\
           rpc Get(test.common.HTTPRequest) returns (test.common.HTTPRequest.Header);\n\
           rpc Ping(google.protobuf.Empty) returns (stream google.protobuf.Empty);\n\
         }\n",
    );
    dir
}

fn quiet() -> Builder {
    configure().emit_rerun_if_changed(false)
}

#[test]
fn compiles_inputs_and_imports() {
    let dir = fixture();
    let out = dir.path().join("out");
    let protos = dir.path().join("protos");
    quiet()
        .out_dir(&out)
        .compile(&[protos.join("svc/type.proto")], &[&protos])
        .unwrap();
    let mut names: Vec<String> = fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["_protos.rs", "type_.rs", "type__grpc.rs", "types.rs"]
    );
    let module_file = fs::read_to_string(out.join(MODULE_FILE)).unwrap();
    let out = fs::canonicalize(&out).unwrap();
    for module in ["type_", "type__grpc", "types"] {
        let path = format!(
            "#[path = {:?}]\n",
            out.join(format!("{module}.rs")).to_str().unwrap()
        );
        assert!(module_file.contains(&path), "{path} not in {module_file}");
        assert!(module_file.contains(&format!("\npub mod {module};\n")));
    }
    assert!(module_file.contains("#[allow(non_snake_case)]\npub mod type__grpc;\n"));
    let stubs = fs::read_to_string(out.join("type__grpc.rs")).unwrap();
    assert!(stubs.contains("super::types::httprequest::Header"));
    assert!(stubs.contains("::protobuf::well_known_types::empty::Empty"));
    assert!(stubs.contains("pub trait Type:"));
}

#[test]
fn default_include_is_the_input_directory() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "solo.proto",
        "syntax = \"proto3\";\nmessage M {}\nservice S { rpc Do(M) returns (M); }\n",
    );
    let out = dir.path().join("out");
    quiet()
        .build_server(false)
        .out_dir(&out)
        .compile(&[dir.path().join("solo.proto")], &[] as &[&Path])
        .unwrap();
    let stubs = fs::read_to_string(out.join("solo_grpc.rs")).unwrap();
    assert!(stubs.contains("pub struct SClient"));
    assert!(!stubs.contains("pub trait S"));
}

#[test]
fn same_basename_is_an_error_naming_both_files() {
    let dir = fixture();
    let protos = dir.path().join("protos");
    write(
        &protos,
        "other/types.proto",
        "syntax = \"proto3\";\npackage test.other;\nmessage X {}\n",
    );
    let err = quiet()
        .out_dir(dir.path().join("out"))
        .compile(
            &[
                protos.join("svc/type.proto"),
                protos.join("other/types.proto"),
            ],
            &[&protos],
        )
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "`common/types.proto` and `other/types.proto` both map \
         to the Rust module `types` (rust-protobuf names a module after the file's basename \
         only); rename one"
    );
}

#[test]
fn input_errors() {
    let dir = fixture();
    let protos = dir.path().join("protos");
    let b = || quiet().out_dir(dir.path().join("out"));
    let err = b()
        .compile(&[protos.join("nope.proto")], &[&protos])
        .unwrap_err();
    assert!(matches!(err, Error::ProtoNotFound(_)), "{err}");
    let err = b()
        .compile(&[protos.join("svc/type.proto")], &[dir.path().join("nope")])
        .unwrap_err();
    assert!(matches!(err, Error::IncludeNotFound(_)), "{err}");
    let err = b()
        .compile(&[protos.join("svc/type.proto")], &[protos.join("common")])
        .unwrap_err();
    assert!(matches!(err, Error::NotInIncludePath { .. }), "{err}");
    write(
        &protos,
        "bad.proto",
        "syntax = \"proto3\";\nservice S { rpc Do(Missing) returns (Missing); }\n",
    );
    let err = b()
        .compile(&[protos.join("bad.proto")], &[&protos])
        .unwrap_err();
    assert!(matches!(err, Error::Parse(_)), "{err}");
    assert!(err.to_string().contains("Missing"), "{err}");
    let err = configure()
        .compile(&[protos.join("svc/type.proto")], &[&protos])
        .unwrap_err();
    assert!(matches!(err, Error::OutDirNotSet) || std::env::var_os("OUT_DIR").is_some());
}

#[test]
fn with_protoc() {
    let protoc = std::env::var_os("PROTOC")
        .map(std::path::PathBuf::from)
        .or_else(|| Some("/usr/bin/protoc".into()).filter(|p: &std::path::PathBuf| p.exists()));
    let Some(protoc) = protoc else {
        eprintln!("skipping with_protoc: no protoc (set PROTOC)");
        return;
    };
    let dir = fixture();
    let protos = dir.path().join("protos");
    let out = dir.path().join("out");
    quiet()
        .use_protoc()
        .protoc_path(protoc)
        .out_dir(&out)
        .compile(&[protos.join("svc/type.proto")], &[&protos])
        .unwrap();
    assert!(out.join("type__grpc.rs").is_file());
    assert!(out.join("types.rs").is_file());
}
