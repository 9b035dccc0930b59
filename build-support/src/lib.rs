//! `build.rs` support: generates rust-protobuf messages and gRPC stubs from `.proto` files.
//!
//! By default `.proto` files are parsed by protobuf-parse's pure-Rust parser, so no `protoc`
//! is needed. For each compiled file (and each file it imports, except the well-known types
//! that the `protobuf` crate already provides) `OUT_DIR` gets `<module>.rs` with the messages;
//! each file with services also gets `<module>_grpc.rs` with the stubs; `_protos.rs` declares
//! them all as sibling modules, which is what `grpc_runtime::include_protos!()` includes.
//!
//! ```no_run
//! // build.rs
//! fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     grpc_build::compile_protos(&["protos/helloworld.proto"], &["protos"])?;
//!     Ok(())
//! }
//! ```
//!
//! ```ignore
//! // src/lib.rs
//! grpc_runtime::include_protos!(pub mod pb);
//! // now `pb::helloworld::HelloRequest`, `pb::helloworld_grpc::GreeterClient`, ...
//! ```
//!
//! Module names follow rust-protobuf: a file's module is its basename (`a/b/foo.proto` ->
//! `foo`, `type.proto` -> `type_`), whatever its directory or package. Files that share a
//! basename (googleapis' `google/api/resource.proto` and
//! `google/cloud/speech/v1/resource.proto`) each get a module named after their whole path
//! instead (`google_api_resource`, `google_cloud_speech_v1_resource`), and the generated
//! cross-file paths follow; files with a basename of their own keep their module. See
//! `protoc_gen_rust_grpc::modules`.

#![deny(missing_docs)]

use std::collections::BTreeSet;
use std::fmt;
use std::fs;
use std::io;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use protobuf::descriptor::FileDescriptorProto;
pub use protobuf_codegen::Customize;
use protobuf_codegen::CustomizeCallback;
use protoc_gen_rust_grpc::naming;

mod diagnose;

/// Name of the module file written into the output directory.
pub const MODULE_FILE: &str = "_protos.rs";

/// Starts a configuration with the defaults: client and server stubs, the pure-Rust parser,
/// output into `OUT_DIR`, runtime crate `::grpc_runtime`.
///
/// ```no_run
/// grpc_build::configure()
///     .build_client(false)
///     .include("third_party/googleapis")
///     .compile(&["protos/service.proto"], &["protos"])
///     .unwrap();
/// ```
pub fn configure() -> Builder {
    Builder::default()
}

/// Compiles `protos` (paths of `.proto` files) with include directories `includes` and the
/// default configuration. Same as `configure().compile(protos, includes)`.
///
/// ```no_run
/// grpc_build::compile_protos(&["protos/helloworld.proto"], &["protos"]).unwrap();
/// ```
pub fn compile_protos(
    protos: &[impl AsRef<Path>],
    includes: &[impl AsRef<Path>],
) -> Result<(), Error> {
    configure().compile(protos, includes)
}

/// Configuration of a compilation; made by [`configure`].
#[derive(Debug, Clone)]
pub struct Builder {
    includes: Vec<PathBuf>,
    build_client: bool,
    build_server: bool,
    out_dir: Option<PathBuf>,
    use_protoc: bool,
    protoc_path: Option<PathBuf>,
    runtime_crate: String,
    customize: Customize,
    emit_rerun_if_changed: bool,
    /// Proto package -> Rust path of the module holding its files, generated elsewhere.
    extern_paths: Vec<(String, String)>,
    /// Proto path -> attribute, for messages and enums, clients, servers.
    type_attributes: Vec<(String, String)>,
    client_attributes: Vec<(String, String)>,
    server_attributes: Vec<(String, String)>,
}

impl Default for Builder {
    fn default() -> Self {
        Builder {
            includes: Vec::new(),
            build_client: true,
            build_server: true,
            out_dir: None,
            use_protoc: false,
            protoc_path: None,
            runtime_crate: "::grpc_runtime".to_owned(),
            customize: Customize::default(),
            emit_rerun_if_changed: true,
            extern_paths: Vec::new(),
            type_attributes: Vec::new(),
            client_attributes: Vec::new(),
            server_attributes: Vec::new(),
        }
    }
}

impl Builder {
    /// Adds an include directory (an import root, like protoc's `-I`).
    pub fn include(mut self, dir: impl AsRef<Path>) -> Self {
        self.includes.push(dir.as_ref().to_owned());
        self
    }

    /// Whether to generate clients (default `true`).
    pub fn build_client(mut self, enable: bool) -> Self {
        self.build_client = enable;
        self
    }

    /// Whether to generate server traits and `FooServer` types (default `true`).
    pub fn build_server(mut self, enable: bool) -> Self {
        self.build_server = enable;
        self
    }

    /// Output directory (default: the `OUT_DIR` environment variable that cargo sets for
    /// build scripts). Created if missing.
    pub fn out_dir(mut self, dir: impl AsRef<Path>) -> Self {
        self.out_dir = Some(dir.as_ref().to_owned());
        self
    }

    /// Parses with `protoc` instead of the pure-Rust parser. `protoc` is
    /// [`protoc_path`](Self::protoc_path) if set, else `$PROTOC`, else `protoc` on `PATH`.
    pub fn use_protoc(mut self) -> Self {
        self.use_protoc = true;
        self
    }

    /// Path of `protoc` (implies nothing by itself: see [`use_protoc`](Self::use_protoc)).
    pub fn protoc_path(mut self, path: impl AsRef<Path>) -> Self {
        self.protoc_path = Some(path.as_ref().to_owned());
        self
    }

    /// Path of the runtime crate as seen from the generated code (default `::grpc_runtime`),
    /// e.g. `crate::rt` when the runtime is re-exported.
    pub fn runtime_crate(mut self, path: impl Into<String>) -> Self {
        self.runtime_crate = path.into();
        self
    }

    /// rust-protobuf options for the messages (passed to protobuf-codegen; re-exported here
    /// as [`Customize`]). Its `mod.rs` is never generated: [`MODULE_FILE`] replaces it.
    pub fn customize(mut self, customize: Customize) -> Self {
        self.customize.update_with(&customize);
        self
    }

    /// `bytes` fields as `bytes::Bytes` instead of `Vec<u8>` (rust-protobuf's
    /// `tokio_bytes`; default off). The runtime decodes messages from the buffer they
    /// arrived in, so a received `bytes` field is a slice of it rather than a copy, and a
    /// field set from a `Vec` becomes `Bytes` without copying: for large payloads, one
    /// allocation and one copy fewer per message. The crate needs `protobuf`'s `bytes`
    /// feature, which `grpc-runtime` already turns on.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// grpc_build::configure()
    ///     .bytes_as_bytes(true)
    ///     .compile(&["proto/blobs.proto"], &["proto"])
    ///     .unwrap();
    /// ```
    pub fn bytes_as_bytes(mut self, enable: bool) -> Self {
        self.customize
            .update_with(&Customize::default().tokio_bytes(enable));
        self
    }

    /// Whether to print `cargo:rerun-if-changed` lines for the inputs and include
    /// directories (default `true`).
    pub fn emit_rerun_if_changed(mut self, enable: bool) -> Self {
        self.emit_rerun_if_changed = enable;
        self
    }

    /// Uses types generated in another crate for the files of proto package `proto_path`
    /// (and its sub-packages) instead of generating them (tonic's `extern_path`): messages
    /// and stubs refer to `<rust_path>::<file module>::<Type>`. `rust_path` is the module
    /// where that crate included its generated modules, named by their basenames.
    ///
    /// ```no_run
    /// // Another crate compiled googleapis' google/api and google/rpc into `googleapis::pb`.
    /// grpc_build::configure()
    ///     .extern_path(".google.api", "::googleapis::pb")
    ///     .extern_path(".google.rpc", "::googleapis::pb")
    ///     .compile(&["protos/speech.proto"], &["protos", "third_party/googleapis"])
    ///     .unwrap();
    /// ```
    pub fn extern_path(
        mut self,
        proto_path: impl Into<String>,
        rust_path: impl Into<String>,
    ) -> Self {
        self.extern_paths
            .push((proto_path.into(), rust_path.into()));
        self
    }

    /// Adds `attribute` (Rust source, `#[...]`) before every message and enum whose
    /// fully-qualified name `proto_path` covers (`.` for all, `.pkg`, `.pkg.Message`), as
    /// tonic's `type_attribute` (through rust-protobuf's per-element customization).
    pub fn type_attribute(
        mut self,
        proto_path: impl Into<String>,
        attribute: impl Into<String>,
    ) -> Self {
        self.type_attributes
            .push((proto_path.into(), attribute.into()));
        self
    }

    /// Adds `attribute` (`#[...]`) to the client of every service `proto_path` covers: on
    /// its struct and each of its impl blocks, so it must suit both (`#[cfg(...)]`,
    /// `#[allow(...)]`).
    pub fn client_attribute(
        mut self,
        proto_path: impl Into<String>,
        attribute: impl Into<String>,
    ) -> Self {
        self.client_attributes
            .push((proto_path.into(), attribute.into()));
        self
    }

    /// Adds `attribute` (`#[...]`) to the server side (trait, `FooServer` and its impls)
    /// of every service `proto_path` covers, as [`client_attribute`](Self::client_attribute).
    pub fn server_attribute(
        mut self,
        proto_path: impl Into<String>,
        attribute: impl Into<String>,
    ) -> Self {
        self.server_attributes
            .push((proto_path.into(), attribute.into()));
        self
    }

    /// Compiles `protos` (paths of `.proto` files, each inside one of the include
    /// directories) with include directories `includes` in addition to those given with
    /// [`include`](Self::include). With no include directory at all, the directory of each
    /// input is used.
    ///
    /// Messages are generated for the inputs and every file they import (except files the
    /// `protobuf` crate provides: the well-known types and `descriptor.proto`), stubs for the
    /// inputs that have services.
    pub fn compile(
        &self,
        protos: &[impl AsRef<Path>],
        includes: &[impl AsRef<Path>],
    ) -> Result<(), Error> {
        let out_dir = match &self.out_dir {
            Some(d) => d.clone(),
            None => std::env::var_os("OUT_DIR")
                .map(PathBuf::from)
                .ok_or(Error::OutDirNotSet)?,
        };
        fs::create_dir_all(&out_dir).map_err(|e| Error::io(&out_dir, e))?;
        let out_dir = canonical(&out_dir)?;

        let mut include_dirs = Vec::new();
        for dir in self
            .includes
            .iter()
            .map(PathBuf::as_path)
            .chain(includes.iter().map(AsRef::as_ref))
        {
            if !dir.is_dir() {
                return Err(Error::IncludeNotFound(dir.to_owned()));
            }
            include_dirs.push((dir.to_owned(), canonical(dir)?));
        }
        let mut inputs = Vec::new();
        for proto in protos.iter().map(AsRef::as_ref) {
            if !proto.is_file() {
                return Err(Error::ProtoNotFound(proto.to_owned()));
            }
            inputs.push((proto.to_owned(), canonical(proto)?));
        }
        if include_dirs.is_empty() {
            for (_, input) in &inputs {
                let parent = input.parent().unwrap_or(Path::new("/")).to_owned();
                if !include_dirs.iter().any(|(_, d)| *d == parent) {
                    include_dirs.push((parent.clone(), parent));
                }
            }
        }
        for (given, input) in &inputs {
            if !include_dirs.iter().any(|(_, d)| input.starts_with(d)) {
                return Err(Error::NotInIncludePath {
                    proto: given.clone(),
                    includes: include_dirs.iter().map(|(g, _)| g.clone()).collect(),
                });
            }
        }

        // Missing imports and editions, worded and located like protoc's messages, all at
        // once: the pure parser stops at the first with a poor message.
        let files = if self.use_protoc {
            diagnose::ProtoFiles::unchecked(&include_dirs)
        } else {
            diagnose::check(&inputs, &include_dirs)?
        };
        let mut parser = protobuf_parse::Parser::new();
        if self.use_protoc {
            parser.protoc();
            parser.protoc_path(&self.find_protoc()?);
            parser.capture_stderr();
        } else {
            parser.pure();
        }
        for (_, dir) in &include_dirs {
            parser.include(dir);
        }
        for (_, input) in &inputs {
            parser.input(input);
        }
        let parsed = catch_panics(|| parser.parse_and_typecheck())
            .map_err(|panic| format!("cannot parse the proto files: {panic}"))
            .and_then(|r| r.map_err(|e| files.describe(&*e)))
            .map_err(Error::Parse)?;

        // Files of one basename get modules of their own, named after their paths; the
        // descriptors are renamed for generation, and the originals embedded again after.
        let mut descriptors = parsed.file_descriptors.clone();
        let is_extern = |f: &FileDescriptorProto| {
            protoc_gen_rust_grpc::extern_path(&self.extern_paths, f.package()).is_some()
        };
        let renames =
            protoc_gen_rust_grpc::modules::disambiguate_except(&mut descriptors, is_extern)
                .map_err(Error::Stubs)?;
        // Files whose messages we generate: all but those the protobuf crate provides and
        // those of extern packages.
        let to_generate: Vec<&FileDescriptorProto> = descriptors
            .iter()
            .filter(|f| !naming::is_provided_by_protobuf_crate(f.name()) && !is_extern(f))
            .collect();
        for f in &to_generate {
            let module = naming::file_module_name(f.name());
            if format!("{module}.rs") == MODULE_FILE {
                return Err(Error::ReservedName(f.name().to_owned()));
            }
        }

        let names: Vec<&str> = to_generate.iter().map(|f| f.name()).collect();
        let messages = protoc_gen_rust_grpc::messages::generate_messages(
            &descriptors,
            &names,
            &renames,
            protoc_gen_rust_grpc::messages::MessageOptions {
                customize: &self.customize,
                callback: &TypeAttributes(self.type_attributes.clone()),
                parser: &parsed.parser,
                extern_paths: &self.extern_paths,
            },
        )
        .map_err(|e| match e {
            protoc_gen_rust_grpc::Error::Messages(e) => Error::Codegen(e),
            e => Error::Stubs(e),
        })?;

        // The parsers keep no source info: the services' and methods' comments, for the stubs'
        // rustdoc (on a copy: the descriptors embedded with the messages stay as parsed).
        let mut with_comments = descriptors.clone();
        comments::attach_leading_comments(
            &mut with_comments,
            include_dirs.iter().map(|(_, dir)| dir.as_path()),
            |name| renames.original_name(name).to_owned(),
        );
        let options = protoc_gen_rust_grpc::Options {
            build_client: self.build_client,
            build_server: self.build_server,
            runtime_crate: self.runtime_crate.clone(),
            extern_paths: self.extern_paths.clone(),
            client_attributes: self.client_attributes.clone(),
            server_attributes: self.server_attributes.clone(),
        };
        let stubs = protoc_gen_rust_grpc::generate(
            &with_comments,
            &parsed
                .relative_paths
                .iter()
                .map(|p| renames.new_name(p.to_str()).to_owned())
                .collect::<Vec<_>>(),
            &options,
        )
        .map_err(Error::Stubs)?;

        let mut modules = BTreeSet::new();
        // Written only if changed: unchanged output keeps its mtime, and cargo its cache.
        for file in messages.iter().chain(&stubs) {
            let path = out_dir.join(&file.name);
            write_if_changed(&path, file.content.as_bytes())?;
            let module = file.name.trim_end_matches(".rs").to_owned();
            modules.insert((module, path));
        }
        let mut module_file = String::from(
            "// @generated by grpc-build. Do not edit.\n\
             // Included by `grpc_runtime::include_protos!()`.\n",
        );
        for (module, path) in &modules {
            let path = path
                .to_str()
                .ok_or_else(|| Error::NonUtf8Path(path.clone()))?;
            let ident = naming::rust_ident(module).as_source();
            // `type.proto`'s stubs are `type__grpc`: not snake case for rustc.
            let allow = if module.contains("__") {
                "#[allow(non_snake_case)]\n"
            } else {
                ""
            };
            module_file.push_str(&format!("#[path = {path:?}]\n{allow}pub mod {ident};\n"));
        }
        write_if_changed(&out_dir.join(MODULE_FILE), module_file.as_bytes())?;

        if self.emit_rerun_if_changed {
            for (given, _) in &inputs {
                println!("cargo:rerun-if-changed={}", given.display());
            }
            for (given, _) in &include_dirs {
                println!("cargo:rerun-if-changed={}", given.display());
            }
        }
        Ok(())
    }

    fn find_protoc(&self) -> Result<PathBuf, Error> {
        if let Some(p) = &self.protoc_path {
            return Ok(p.clone());
        }
        if let Some(p) = std::env::var_os("PROTOC") {
            return Ok(PathBuf::from(p));
        }
        let path = std::env::var_os("PATH").unwrap_or_default();
        std::env::split_paths(&path)
            .map(|dir| dir.join(format!("protoc{}", std::env::consts::EXE_SUFFIX)))
            .find(|p| p.is_file())
            .ok_or(Error::ProtocNotFound)
    }
}

fn canonical(path: &Path) -> Result<PathBuf, Error> {
    fs::canonicalize(path).map_err(|e| Error::io(path, e))
}

/// Writes `contents` unless the file already holds exactly that (keeps mtimes stable).
fn write_if_changed(path: &Path, contents: &[u8]) -> Result<(), Error> {
    if fs::read(path).is_ok_and(|old| old == contents) {
        return Ok(());
    }
    fs::write(path, contents).map_err(|e| Error::io(path, e))
}

/// rust-protobuf's per-element customization: the configured attributes before the messages
/// and enums they match.
struct TypeAttributes(Vec<(String, String)>);

impl TypeAttributes {
    fn before(&self, full_name: &str) -> Customize {
        let attributes: Vec<&str> = self
            .0
            .iter()
            .filter(|(path, _)| protoc_gen_rust_grpc::proto_path_matches(path, full_name))
            .map(|(_, attribute)| attribute.as_str())
            .collect();
        if attributes.is_empty() {
            Customize::default()
        } else {
            Customize::default().before(&attributes.join("\n"))
        }
    }
}

impl CustomizeCallback for TypeAttributes {
    fn message(&self, message: &protobuf::reflect::MessageDescriptor) -> Customize {
        self.before(message.full_name())
    }

    fn enumeration(&self, enum_type: &protobuf::reflect::EnumDescriptor) -> Customize {
        self.before(enum_type.full_name())
    }
}

/// Runs `f`, turning a panic of rust-protobuf into an error message.
fn catch_panics<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    panic::catch_unwind(AssertUnwindSafe(f)).map_err(|payload| {
        let msg = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("unknown panic");
        format!("rust-protobuf failed (panicked): {msg}")
    })
}

/// Why a compilation failed.
/// `Debug` shows the same text as `Display`: build scripts end with `?` or `unwrap()`, which
/// print `Debug`, and the messages are meant to be read as written (several lines each).
#[non_exhaustive]
pub enum Error {
    /// No output directory: not running as a build script and no [`Builder::out_dir`].
    OutDirNotSet,
    /// An include directory does not exist.
    IncludeNotFound(PathBuf),
    /// An input `.proto` file does not exist.
    ProtoNotFound(PathBuf),
    /// An input is not inside any include directory.
    NotInIncludePath {
        /// The input.
        proto: PathBuf,
        /// The include directories.
        includes: Vec<PathBuf>,
    },
    /// `use_protoc()` without a `protoc` to run.
    ProtocNotFound,
    /// The `.proto` files do not parse or typecheck. The message says what protoc would: one
    /// `file:line:col: problem` line per problem when the location is known, `file` being
    /// the path relative to its include directory; all missing imports are listed.
    Parse(String),
    /// protobuf-codegen failed to generate the messages.
    Codegen(String),
    /// The stubs cannot be generated (unresolvable types, colliding names, two files with
    /// the same module name).
    Stubs(protoc_gen_rust_grpc::Error),
    /// A file's module would overwrite the module file [`MODULE_FILE`].
    ReservedName(String),
    /// A path that cannot be written into `#[path = "..."]`.
    NonUtf8Path(PathBuf),
    /// Reading or writing a file failed.
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
}

impl Error {
    fn io(path: &Path, source: io::Error) -> Error {
        Error::Io {
            path: path.to_owned(),
            source,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::OutDirNotSet => f.write_str(
                "no output directory: OUT_DIR is not set (not in a build script?) and \
                 out_dir() was not called",
            ),
            Error::IncludeNotFound(p) => {
                write!(f, "include directory `{}` does not exist", p.display())
            }
            Error::ProtoNotFound(p) => write!(f, "proto file `{}` does not exist", p.display()),
            Error::NotInIncludePath { proto, includes } => write!(
                f,
                "proto file `{}` is not inside any include directory ({})",
                proto.display(),
                includes
                    .iter()
                    .map(|p| format!("`{}`", p.display()))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Error::ProtocNotFound => f.write_str(
                "use_protoc(): protoc not found (set protoc_path(), $PROTOC, or put protoc on PATH)",
            ),
            Error::Parse(e) => f.write_str(e),
            Error::Codegen(e) => write!(f, "cannot generate the messages: {e}"),
            Error::Stubs(e @ protoc_gen_rust_grpc::Error::DuplicateModule { .. }) => {
                write!(f, "{e}")
            }
            Error::Stubs(e) => write!(f, "cannot generate the gRPC stubs: {e}"),
            Error::ReservedName(name) => write!(
                f,
                "`{name}` maps to the module file name `{MODULE_FILE}` used by grpc-build; rename it"
            ),
            Error::NonUtf8Path(p) => write!(f, "path `{}` is not UTF-8", p.display()),
            Error::Io { path, source } => write!(f, "{}: {source}", path.display()),
        }
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Stubs(e) => Some(e),
            Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

mod comments;

#[cfg(test)]
mod tests;
