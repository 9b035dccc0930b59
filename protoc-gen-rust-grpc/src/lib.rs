//! Generates gRPC client and server stubs for rust-protobuf 3.x messages.
//!
//! This crate is both a library (descriptors in, Rust source out, used by `grpc-build`) and
//! the `protoc-gen-rust-grpc` protoc plugin. For each `.proto` file with services it writes
//! `<module>_grpc.rs`, a sibling module of the `<module>.rs` that rust-protobuf generates for
//! the messages; the stubs reach the runtime only through `<runtime_crate>::codegen`.
//!
//! ```
//! use protobuf::descriptor::FileDescriptorProto;
//! use protoc_gen_rust_grpc::{generate, Options};
//!
//! // Normally the descriptors come from protoc or protobuf-parse.
//! let mut file = FileDescriptorProto::new();
//! file.set_name("hello.proto".into());
//! file.set_package("hello".into());
//! let mut message = protobuf::descriptor::DescriptorProto::new();
//! message.set_name("Ping".into());
//! file.message_type.push(message);
//! let mut method = protobuf::descriptor::MethodDescriptorProto::new();
//! method.set_name("Ping".into());
//! method.set_input_type(".hello.Ping".into());
//! method.set_output_type(".hello.Ping".into());
//! let mut service = protobuf::descriptor::ServiceDescriptorProto::new();
//! service.set_name("Pinger".into());
//! service.method.push(method);
//! file.service.push(service);
//!
//! let out = generate(&[file], &["hello.proto"], &Options::default()).unwrap();
//! assert_eq!(out[0].name, "hello_grpc.rs");
//! assert!(out[0].content.contains("pub struct PingerClient"));
//! ```

#![deny(missing_docs)]

mod docs;
mod generate;
pub mod messages;
pub mod modules;
pub mod naming;
mod resolve;

use std::collections::BTreeMap;
use std::fmt;

use protobuf::descriptor::FileDescriptorProto;

pub use resolve::{MessagePath, ResolveError, TypeIndex};

/// What to generate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Generate `FooClient` (default `true`).
    pub build_client: bool,
    /// Generate the `Foo` trait and `FooServer` (default `true`).
    pub build_server: bool,
    /// Path of the runtime crate; the stubs use `<runtime_crate>::codegen::*`
    /// (default `::grpc_runtime`).
    pub runtime_crate: String,
    /// Proto packages whose files were generated elsewhere (tonic's `extern_path`):
    /// `(".google.api", "::googleapis::pb")` makes the messages of every file of package
    /// `google.api` (and its sub-packages) `::googleapis::pb::<file module>::<Type>`, their
    /// file modules named by basename, as a crate compiling them would name them.
    pub extern_paths: Vec<(String, String)>,
    /// Attributes for the client of each service they match (tonic's `client_attribute`):
    /// `(".pkg.Service", "#[cfg(feature = \"client\")]")`; `"."` matches every service,
    /// `".pkg"` those of a package. They go on the client's struct and on each of its impl
    /// blocks, so they must suit both (`cfg`, `allow`, `doc(hidden)`...).
    pub client_attributes: Vec<(String, String)>,
    /// Attributes for the server side (the trait, `FooServer` and its impls) of each service
    /// they match, as [`client_attributes`](Self::client_attributes).
    pub server_attributes: Vec<(String, String)>,
}

impl Options {
    /// The Rust path of the crate module holding the files of `package`, if it is extern
    /// (the longest matching prefix wins).
    pub fn extern_path(&self, package: &str) -> Option<&str> {
        extern_path(&self.extern_paths, package)
    }
}

/// Whether the proto path `prefix` (`.pkg.Service`, `.pkg`, `.`) covers the fully-qualified
/// `name` (`pkg.Service`): whole dot-separated segments only.
pub fn proto_path_matches(prefix: &str, name: &str) -> bool {
    let prefix = prefix.trim_start_matches('.');
    prefix.is_empty()
        || name == prefix
        || name
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('.'))
}

/// The Rust path `extern_paths` gives the files of `package` (the longest matching proto
/// prefix wins; `.a.b` matches packages `a.b` and `a.b.c`, not `a.bc`).
pub fn extern_path<'a>(extern_paths: &'a [(String, String)], package: &str) -> Option<&'a str> {
    extern_paths
        .iter()
        .filter(|(prefix, _)| proto_path_matches(prefix, package))
        .max_by_key(|(prefix, _)| prefix.len())
        .map(|(_, path)| path.as_str())
}

impl Default for Options {
    fn default() -> Self {
        Options {
            build_client: true,
            build_server: true,
            runtime_crate: "::grpc_runtime".to_owned(),
            extern_paths: Vec::new(),
            client_attributes: Vec::new(),
            server_attributes: Vec::new(),
        }
    }
}

/// One generated file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratedFile {
    /// File name, `<module>_grpc.rs` (no directory).
    pub name: String,
    /// Rust source.
    pub content: String,
}

/// Why stubs could not be generated.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// A method's input or output type cannot be resolved to a rust-protobuf message.
    UnresolvedType {
        /// Proto file of the method.
        file: String,
        /// `package.Service.Method`.
        method: String,
        /// The type name as written in the descriptor.
        type_name: String,
        /// Why it does not resolve.
        reason: String,
    },
    /// Two generated items of one file would have the same name.
    NameCollision {
        /// Proto file.
        file: String,
        /// Kind of item (`item`, `method`, `constant`).
        what: &'static str,
        /// The colliding Rust name.
        name: String,
        /// What produced it first.
        first: String,
        /// What produced it again.
        second: String,
    },
    /// Two files map to the same Rust module (rust-protobuf names modules after the file's
    /// basename only, so `a/foo.proto` and `b/foo.proto` are both `foo`).
    DuplicateModule {
        /// The module name.
        module: String,
        /// First file.
        first: String,
        /// Second file.
        second: String,
    },
    /// A file to generate is not among the descriptors.
    FileNotFound(String),
    /// A service or method name has no letters or digits to make a Rust name of.
    InvalidName {
        /// Proto file.
        file: String,
        /// The name.
        name: String,
    },
    /// `runtime_crate` is not a Rust path.
    InvalidRuntimeCrate(String),
    /// rust-protobuf could not generate the messages (`messages=true`).
    Messages(String),
    /// An extern path's Rust side is not a Rust path.
    InvalidExternPath(String),
    /// A client or server attribute does not parse as outer attributes (`#[...]`).
    InvalidAttribute(String),
    /// A bug: the generator produced code it cannot format.
    Internal {
        /// Proto file.
        file: String,
        /// What went wrong.
        message: String,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::UnresolvedType {
                file,
                method,
                type_name,
                reason,
            } => write!(
                f,
                "{file}: cannot resolve type `{type_name}` of method `{method}`: {reason}"
            ),
            Error::NameCollision {
                file,
                what,
                name,
                first,
                second,
            } => write!(
                f,
                "{file}: {first} and {second} would both generate the {what} `{name}`; \
                 rename one of them"
            ),
            Error::DuplicateModule {
                module,
                first,
                second,
            } => write!(
                f,
                "`{first}` and `{second}` both map to the Rust module `{module}` \
                 (rust-protobuf names a module after the file's basename only); rename one"
            ),
            Error::FileNotFound(name) => {
                write!(f, "file to generate `{name}` is not among the descriptors")
            }
            Error::InvalidName { file, name } => {
                write!(f, "{file}: cannot make a Rust name of `{name}`")
            }
            Error::InvalidRuntimeCrate(path) => {
                write!(f, "runtime crate `{path}` is not a Rust path")
            }
            Error::Messages(e) => write!(f, "cannot generate the messages: {e}"),
            Error::InvalidExternPath(path) => {
                write!(f, "extern path `{path}` is not a Rust path")
            }
            Error::InvalidAttribute(attr) => {
                write!(f, "`{attr}` is not an attribute (`#[...]`)")
            }
            Error::Internal { file, message } => {
                write!(f, "{file}: internal error: {message}")
            }
        }
    }
}

impl std::error::Error for Error {}

/// Name of the stubs file for `proto_path`: `<module>_grpc.rs`.
pub fn stubs_file_name(proto_path: &str) -> String {
    format!("{}.rs", stubs_module_name(proto_path))
}

/// Name of the stubs module for `proto_path`: `<module>_grpc` (`type.proto` -> `type__grpc`).
pub fn stubs_module_name(proto_path: &str) -> String {
    format!("{}_grpc", naming::file_module_name(proto_path))
}

/// Checks that no two files of `files` (or their stubs) map to the same Rust module.
///
/// Files compiled into the `protobuf` crate (well-known types, `descriptor.proto`) are not
/// modules of their own and are ignored.
pub fn check_module_names<'a>(
    files: impl IntoIterator<Item = &'a FileDescriptorProto>,
) -> Result<(), Error> {
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    let mut claim = |module: String, owner: String| match seen.get(&module) {
        Some(first) if *first != owner => Err(Error::DuplicateModule {
            module,
            first: first.clone(),
            second: owner,
        }),
        _ => {
            seen.insert(module, owner);
            Ok(())
        }
    };
    for file in files {
        if naming::is_provided_by_protobuf_crate(file.name()) {
            continue;
        }
        claim(
            naming::file_module_name(file.name()),
            file.name().to_owned(),
        )?;
        if !file.service.is_empty() {
            claim(
                stubs_module_name(file.name()),
                format!("{} (its stubs)", file.name()),
            )?;
        }
    }
    Ok(())
}

/// Generates the stubs of each of `files_to_generate` that has services.
///
/// `files` holds the descriptors of the files to generate and of all their dependencies (as
/// in a `CodeGeneratorRequest`, or from `protobuf_parse::Parser::parse_and_typecheck`); the
/// dependencies are needed to resolve message types. The output is in the order of
/// `files_to_generate` and byte-identical for identical input.
pub fn generate(
    files: &[FileDescriptorProto],
    files_to_generate: &[impl AsRef<str>],
    options: &Options,
) -> Result<Vec<GeneratedFile>, Error> {
    let runtime: syn::Path = syn::parse_str(&options.runtime_crate)
        .map_err(|_| Error::InvalidRuntimeCrate(options.runtime_crate.clone()))?;
    for (_, path) in &options.extern_paths {
        syn::parse_str::<syn::Path>(path).map_err(|_| Error::InvalidExternPath(path.clone()))?;
    }
    // Extern files are other crates' modules: they cannot collide with this tree's.
    check_module_names(
        files
            .iter()
            .filter(|f| options.extern_path(f.package()).is_none()),
    )?;
    let index = TypeIndex::new(files).with_extern_paths(&options.extern_paths);
    let mut out = Vec::new();
    for name in files_to_generate {
        let name = name.as_ref();
        let file = files
            .iter()
            .find(|f| f.name() == name)
            .ok_or_else(|| Error::FileNotFound(name.to_owned()))?;
        if let Some(content) = generate::generate_file(file, &index, options, &runtime)? {
            out.push(GeneratedFile {
                name: stubs_file_name(name),
                content,
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
