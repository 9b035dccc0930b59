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
fn same_basename_files_get_modules_named_after_their_paths() {
    let dir = fixture();
    let protos = dir.path().join("protos");
    write(
        &protos,
        "other/types.proto",
        "syntax = \"proto3\";\npackage test.other;\nmessage X {}\n",
    );
    let out = dir.path().join("out");
    quiet()
        .out_dir(&out)
        .compile(
            &[
                protos.join("svc/type.proto"),
                protos.join("other/types.proto"),
            ],
            &[&protos],
        )
        .unwrap();
    let modules = std::fs::read_to_string(out.join(MODULE_FILE)).unwrap();
    for module in ["common_types", "other_types"] {
        assert!(modules.contains(&format!("pub mod {module};")), "{modules}");
        assert!(out.join(format!("{module}.rs")).is_file(), "{module}.rs");
    }
    assert!(!out.join("types.rs").exists());
    // Paths that flatten to one module name are still an error, naming both files.
    write(
        &protos,
        "common_types.proto",
        "syntax = \"proto3\";\npackage test.flat;\nmessage Y {}\n",
    );
    write(
        &protos,
        "more/types.proto",
        "syntax = \"proto3\";\npackage test.more;\nmessage Z {}\n",
    );
    let err = quiet()
        .out_dir(&out)
        .compile(
            &[
                protos.join("svc/type.proto"),
                protos.join("common_types.proto"),
                protos.join("more/types.proto"),
            ],
            &[&protos],
        )
        .unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains("`common/types.proto`")
            && message.contains("`common_types.proto`")
            && message.contains("Rust module `common_types`"),
        "{message}"
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

/// Compiles `input` (relative to `protos`) with `protos` as the only include directory and
/// returns the error message.
fn compile_error(protos: &Path, input: &str) -> String {
    let out = protos.parent().unwrap().join("out");
    let err = quiet()
        .out_dir(out)
        .compile(&[protos.join(input)], &[protos])
        .unwrap_err();
    assert!(matches!(err, Error::Parse(_)), "{err:?}");
    err.to_string()
}

#[test]
fn editions_are_named_plainly() {
    let dir = tempfile::tempdir().unwrap();
    let protos = dir.path().join("protos");
    write(
        &protos,
        "ed/foo.proto",
        "// An editions file.\nedition = \"2023\";\npackage foo;\nmessage M { string a = 1; }\n",
    );
    assert_eq!(
        compile_error(&protos, "ed/foo.proto"),
        "ed/foo.proto:2:1: editions (edition = \"2023\") are not supported by rust-protobuf 3.x; \
         use syntax = \"proto2\" or \"proto3\""
    );
}

#[test]
fn all_missing_imports_are_reported_with_their_lines() {
    let dir = tempfile::tempdir().unwrap();
    let protos = dir.path().join("protos");
    write(
        &protos,
        "svc/two.proto",
        "syntax = \"proto3\";\npackage svc;\n\nimport \"missing/a.proto\";\n\
         import \"google/protobuf/timestamp.proto\";\n  import public \"missing/b.proto\";\n\
         // import \"commented/out.proto\";\nmessage M {}\n",
    );
    assert_eq!(
        compile_error(&protos, "svc/two.proto"),
        format!(
            "svc/two.proto:4:1: Import \"missing/a.proto\" was not found or had errors.\n\
             svc/two.proto:6:3: Import \"missing/b.proto\" was not found or had errors.\n\
             include directories searched: `{}`",
            protos.display()
        )
    );
}

#[test]
fn missing_transitive_import_names_the_importing_file() {
    let dir = tempfile::tempdir().unwrap();
    let protos = dir.path().join("protos");
    write(
        &protos,
        "top.proto",
        "syntax = \"proto3\";\nimport \"mid/mid.proto\";\nmessage Top { mid.Mid m = 1; }\n",
    );
    write(
        &protos,
        "mid/mid.proto",
        "syntax = \"proto3\";\npackage mid;\n/* needs: */ import \"deep/gone.proto\";\n\
         message Mid {}\n",
    );
    assert_eq!(
        compile_error(&protos, "top.proto"),
        format!(
            "mid/mid.proto:3:14: Import \"deep/gone.proto\" was not found or had errors.\n\
             include directories searched: `{}`",
            protos.display()
        )
    );
}

#[test]
fn syntax_errors_are_located_and_said_once() {
    let dir = tempfile::tempdir().unwrap();
    let protos = dir.path().join("protos");
    write(
        &protos,
        "top.proto",
        "syntax = \"proto3\";\nimport \"svc/syn.proto\";\n",
    );
    write(
        &protos,
        "svc/syn.proto",
        "syntax = \"proto3\";\npackage svc;\n\nmessage M {\n  string a = 1\n  int32 b = 2;\n}\n",
    );
    let message = compile_error(&protos, "top.proto");
    assert_eq!(
        message,
        "svc/syn.proto:6:3: While parsing field, expecting char `;`"
    );
    write(
        &protos,
        "svc/syn.proto",
        "syntax = \"proto3\";\nmessage M { Missing a = 1; }\n",
    );
    assert_eq!(
        compile_error(&protos, "top.proto"),
        "svc/syn.proto: object is not found by path `Missing` in scope `.M`"
    );
}

#[test]
fn provided_imports_need_no_include_directory() {
    let dir = tempfile::tempdir().unwrap();
    let protos = dir.path().join("protos");
    let mut src = String::from("syntax = \"proto3\";\n");
    for name in [
        "any",
        "api",
        "descriptor",
        "duration",
        "empty",
        "field_mask",
        "source_context",
        "struct",
        "timestamp",
        "type",
        "wrappers",
    ] {
        src.push_str(&format!("import \"google/protobuf/{name}.proto\";\n"));
    }
    src.push_str("import \"rustproto.proto\";\nmessage M { google.protobuf.Timestamp t = 1; }\n");
    write(&protos, "wkt.proto", &src);
    quiet()
        .out_dir(dir.path().join("out"))
        .compile(&[protos.join("wkt.proto")], &[&protos])
        .unwrap();
}

#[test]
fn bytes_fields_as_bytes_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "blob.proto",
        "syntax = \"proto3\";\nmessage Blob { bytes data = 1; string name = 2; }\n",
    );
    let field = |enable: Option<bool>| {
        let out = dir.path().join(format!("out-{enable:?}"));
        let builder = match enable {
            Some(enable) => quiet().bytes_as_bytes(enable),
            None => quiet(),
        };
        builder
            .out_dir(&out)
            .compile(&[dir.path().join("blob.proto")], &[dir.path()])
            .unwrap();
        let messages = fs::read_to_string(out.join("blob.rs")).unwrap();
        let line = messages
            .lines()
            .find(|l| l.trim_start().starts_with("pub data:"))
            .unwrap()
            .trim()
            .to_owned();
        // Strings stay `String`.
        assert!(messages.contains("pub name: ::std::string::String"));
        line
    };
    assert_eq!(field(None), "pub data: ::std::vec::Vec<u8>,");
    assert_eq!(field(Some(false)), "pub data: ::std::vec::Vec<u8>,");
    assert_eq!(field(Some(true)), "pub data: ::bytes::Bytes,");
}
