//! The generator's options for real trees: extern paths (types generated in another crate)
//! and attributes on clients and servers.

use protobuf::descriptor::{
    DescriptorProto, FileDescriptorProto, MethodDescriptorProto, ServiceDescriptorProto,
};
use protoc_gen_rust_grpc::{Error, Options, generate};

fn file(name: &str, package: &str, messages: &[&str]) -> FileDescriptorProto {
    let mut f = FileDescriptorProto::new();
    f.set_name(name.into());
    f.set_package(package.into());
    for m in messages {
        let mut message = DescriptorProto::new();
        message.set_name((*m).into());
        f.message_type.push(message);
    }
    f
}

fn service(name: &str, input: &str, output: &str) -> ServiceDescriptorProto {
    let mut method = MethodDescriptorProto::new();
    method.set_name("Get".into());
    method.set_input_type(input.into());
    method.set_output_type(output.into());
    let mut s = ServiceDescriptorProto::new();
    s.set_name(name.into());
    s.method.push(method);
    s
}

/// A tree: `google/api/resource.proto` (extern), a local `resource.proto` of another
/// package, and the service using both.
fn tree() -> Vec<FileDescriptorProto> {
    let api = file(
        "google/api/resource.proto",
        "google.api",
        &["ResourceDescriptor"],
    );
    let sub = file("google/api/sub/x.proto", "google.api.sub", &["X"]);
    let local = file("speech/resource.proto", "speech", &["Phrase"]);
    let mut svc = file("speech/svc.proto", "speech", &[]);
    svc.dependency = vec![
        "google/api/resource.proto".into(),
        "google/api/sub/x.proto".into(),
        "speech/resource.proto".into(),
    ];
    svc.service.push(service(
        "Speech",
        ".google.api.ResourceDescriptor",
        ".speech.Phrase",
    ));
    svc.service
        .push(service("Other", ".google.api.sub.X", ".google.api.sub.X"));
    vec![api, sub, local, svc]
}

#[test]
fn extern_paths_point_at_another_crate() {
    let mut options = Options::default();
    options
        .extern_paths
        .push((".google.api".into(), "::googleapis::pb".into()));
    options
        .extern_paths
        .push((".google.api.sub".into(), "crate::sub".into()));
    // Without the extern path the two `resource.proto` would be one module: with it, the
    // extern one is another crate's and does not collide.
    let out = generate(&tree(), &["speech/svc.proto"], &options).unwrap();
    let code = &out[0].content;
    assert!(
        code.contains("::googleapis::pb::resource::ResourceDescriptor"),
        "{code}"
    );
    assert!(code.contains("super::resource::Phrase"), "{code}");
    // The longest prefix wins.
    assert!(code.contains("crate::sub::x::X"), "{code}");
    // `.google.ap` is not a prefix of `google.api` on segment boundaries.
    let mut options = Options::default();
    options
        .extern_paths
        .push((".google.ap".into(), "::nope".into()));
    let err = generate(&tree(), &["speech/svc.proto"], &options).unwrap_err();
    assert!(matches!(err, Error::DuplicateModule { .. }), "{err}");
    // A Rust side that is not a path.
    let mut options = Options::default();
    options
        .extern_paths
        .push((".google.api".into(), "not a path".into()));
    let err = generate(&tree(), &["speech/svc.proto"], &options).unwrap_err();
    assert_eq!(
        err.to_string(),
        "extern path `not a path` is not a Rust path"
    );
}

#[test]
fn attributes_go_on_the_matching_services_items() {
    let mut options = Options::default();
    options
        .extern_paths
        .push((".google.api".into(), "::googleapis::pb".into()));
    options.client_attributes.push((
        ".speech.Speech".into(),
        "#[cfg(feature = \"client\")]".into(),
    ));
    options.server_attributes.push((
        ".speech".into(),
        "#[allow(clippy::pedantic)] #[doc(hidden)]".into(),
    ));
    let out = generate(&tree(), &["speech/svc.proto"], &options).unwrap();
    let code = &out[0].content;
    // The client of Speech: its struct and its impl, not Other's.
    assert_eq!(
        code.matches("#[cfg(feature = \"client\")]").count(),
        2,
        "{code}"
    );
    let speech_client = code.find("pub struct SpeechClient").unwrap();
    let cfg = code.find("#[cfg(feature = \"client\")]").unwrap();
    assert!(cfg < speech_client);
    // Both services' server sides: trait, struct and its four impls, each.
    assert_eq!(code.matches("#[doc(hidden)]").count(), 2 * 6, "{code}");
    // Not an attribute.
    let mut options = Options::default();
    options
        .extern_paths
        .push((".google.api".into(), "::googleapis::pb".into()));
    options
        .client_attributes
        .push((".".into(), "derive(Debug)".into()));
    let err = generate(&tree(), &["speech/svc.proto"], &options).unwrap_err();
    assert_eq!(
        err.to_string(),
        "`derive(Debug)` is not an attribute (`#[...]`)"
    );
}
