//! Server reflection (`grpc.reflection.v1` and `v1alpha`, grpc/grpc
//! `doc/server-reflection.md`): lets grpcurl, grpc_cli, Postman and other clients list a
//! server's services and fetch the `.proto` descriptors of their methods' types at run time.
//!
//! [`register`] adds both versions to a server builder, answering from the file descriptors
//! that the generated code of every service added so far carries (and their transitive
//! dependencies):
//! - `list_services`: the services of the server (reflection's own included);
//! - `file_by_filename`, `file_containing_symbol` (a service, method, message, enum or
//!   extension by its full name), `file_containing_extension`: the file, and the files it
//!   depends on that were not sent before on the same stream (as gRPC-Go does);
//! - `all_extension_numbers_of_type`.
//!
//! A name it does not know gets an error response with `NOT_FOUND`, on a stream that goes
//! on. Services without a file descriptor (hand-written
//! [`Service`](crate::server::Service)s) are listed, but have
//! no files to fetch.
//!
//! # Examples
//!
//! ```
//! use grpc_runtime::health::HealthReporter;
//! use grpc_runtime::{reflection, server::Server};
//!
//! let health = HealthReporter::new();
//! let server = reflection::register(Server::builder().add_service(health.service())).build();
//! # let _ = server;
//! ```

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use protobuf::Message;
use protobuf::descriptor::{DescriptorProto, FileDescriptorProto};
use protobuf::reflect::FileDescriptor;

use crate::request::Request;
use crate::server::{ResponseSender, ServerBuilder};
use crate::service::ServiceDescriptor;
use crate::status::{Code, Status};
use crate::streaming::Streaming;

/// The `grpc.reflection.v1` messages and stubs (generated).
pub mod v1 {
    pub use crate::generated::reflection_v1::reflection::*;
    pub use crate::generated::reflection_v1::reflection_grpc::*;
}

/// The `grpc.reflection.v1alpha` messages and stubs (generated): the version most deployed
/// clients still speak.
pub mod v1alpha {
    pub use crate::generated::reflection_v1alpha::reflection::*;
    pub use crate::generated::reflection_v1alpha::reflection_grpc::*;
}

/// Adds reflection, v1 and v1alpha, describing every service added to `builder` so far and
/// the reflection services themselves. Add it last.
pub fn register(builder: ServerBuilder) -> ServerBuilder {
    let mut services: Vec<&'static ServiceDescriptor> = builder.descriptors().collect();
    services.push(&v1::server_reflection::DESCRIPTOR);
    services.push(&v1alpha::server_reflection::DESCRIPTOR);
    let index = Arc::new(Index::new(&services));
    builder
        .add_service(v1::ServerReflectionServer::new(V1(Arc::clone(&index))))
        .add_service(v1alpha::ServerReflectionServer::new(V1Alpha(index)))
}

/// What reflection knows: every file reachable from the services' files, by name, and where
/// each symbol and extension is declared.
struct Index {
    services: Vec<&'static str>,
    /// File name → its serialized `FileDescriptorProto` and the names of its dependencies.
    files: HashMap<String, (Bytes, Vec<String>)>,
    /// Fully-qualified symbol → the file declaring it.
    symbols: HashMap<String, String>,
    /// Extended message → extension number → the file declaring the extension.
    extensions: HashMap<String, BTreeMap<i32, String>>,
    /// Every message type (for `all_extension_numbers_of_type` on a type without any).
    messages: BTreeSet<String>,
}

impl fmt::Debug for Index {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Index")
            .field("services", &self.services)
            .field("files", &self.files.len())
            .finish_non_exhaustive()
    }
}

impl Index {
    fn new(services: &[&'static ServiceDescriptor]) -> Index {
        let mut index = Index {
            services: services.iter().map(|s| s.name).collect(),
            files: HashMap::new(),
            symbols: HashMap::new(),
            extensions: HashMap::new(),
            messages: BTreeSet::new(),
        };
        index.services.sort_unstable();
        index.services.dedup();
        let mut pending: Vec<FileDescriptor> = services
            .iter()
            .filter_map(|s| s.file_descriptor)
            .map(|file| file().clone())
            .collect();
        while let Some(file) = pending.pop() {
            let name = file.proto().name().to_owned();
            if index.files.contains_key(&name) {
                continue;
            }
            index.add_file(file.proto());
            pending.extend(file.deps().iter().cloned());
        }
        index
    }

    fn add_file(&mut self, proto: &FileDescriptorProto) {
        let file = proto.name().to_owned();
        let package = proto.package();
        let prefix = if package.is_empty() {
            String::new()
        } else {
            format!("{package}.")
        };
        for message in &proto.message_type {
            self.add_message(&prefix, message, &file);
        }
        for e in &proto.enum_type {
            self.symbols
                .insert(format!("{prefix}{}", e.name()), file.clone());
        }
        for service in &proto.service {
            let name = format!("{prefix}{}", service.name());
            for method in &service.method {
                self.symbols
                    .insert(format!("{name}.{}", method.name()), file.clone());
            }
            self.symbols.insert(name, file.clone());
        }
        for extension in &proto.extension {
            self.add_extension(&prefix, extension, &file);
        }
        let bytes = Bytes::from(proto.write_to_bytes().unwrap_or_default());
        self.files.insert(file, (bytes, proto.dependency.clone()));
    }

    fn add_message(&mut self, prefix: &str, message: &DescriptorProto, file: &str) {
        let name = format!("{prefix}{}", message.name());
        let nested = format!("{name}.");
        for inner in &message.nested_type {
            self.add_message(&nested, inner, file);
        }
        for e in &message.enum_type {
            self.symbols
                .insert(format!("{nested}{}", e.name()), file.to_owned());
        }
        for extension in &message.extension {
            self.add_extension(&nested, extension, file);
        }
        self.messages.insert(name.clone());
        self.symbols.insert(name, file.to_owned());
    }

    fn add_extension(
        &mut self,
        prefix: &str,
        extension: &protobuf::descriptor::FieldDescriptorProto,
        file: &str,
    ) {
        self.symbols
            .insert(format!("{prefix}{}", extension.name()), file.to_owned());
        let extendee = extension.extendee().trim_start_matches('.').to_owned();
        self.extensions
            .entry(extendee)
            .or_default()
            .insert(extension.number(), file.to_owned());
    }

    /// `file` and, after it, the files it depends on (transitively) that `sent` does not
    /// hold; each one added to `sent`.
    fn with_dependencies(&self, file: &str, sent: &mut BTreeSet<String>) -> Vec<Bytes> {
        let mut out = Vec::new();
        let mut pending = vec![file.to_owned()];
        let mut first = true;
        while let Some(name) = pending.pop() {
            // The file asked for always goes; a dependency only once per stream.
            if !first && sent.contains(&name) {
                continue;
            }
            first = false;
            let Some((bytes, deps)) = self.files.get(&name) else {
                continue;
            };
            sent.insert(name);
            out.push(bytes.clone());
            pending.extend(deps.iter().rev().cloned());
        }
        out
    }

    /// Answers one request: the version-neutral form of both versions' messages.
    fn answer(&self, request: Asked, sent: &mut BTreeSet<String>) -> Answer {
        let not_found = |what: String| Answer::Error(Code::NotFound, what);
        match request {
            Asked::ListServices => {
                Answer::Services(self.services.iter().map(|s| (*s).to_owned()).collect())
            }
            Asked::File(name) => match self.files.contains_key(&name) {
                true => Answer::Files(self.with_dependencies(&name, sent)),
                false => not_found(format!("file {name:?} not found")),
            },
            Asked::Symbol(symbol) => match self.symbols.get(&symbol) {
                Some(file) => Answer::Files(self.with_dependencies(file, sent)),
                None => not_found(format!("symbol {symbol:?} not found")),
            },
            Asked::Extension(extended, number) => {
                match self.extensions.get(&extended).and_then(|e| e.get(&number)) {
                    Some(file) => Answer::Files(self.with_dependencies(file, sent)),
                    None => not_found(format!("extension {number} of {extended:?} not found")),
                }
            }
            Asked::ExtensionNumbers(extended) => {
                if !self.messages.contains(&extended) {
                    return not_found(format!("type {extended:?} not found"));
                }
                let numbers = self
                    .extensions
                    .get(&extended)
                    .map(|e| e.keys().copied().collect())
                    .unwrap_or_default();
                Answer::ExtensionNumbers(extended, numbers)
            }
            Asked::Nothing => Answer::Error(
                Code::InvalidArgument,
                "the request asks for nothing".to_owned(),
            ),
        }
    }
}

/// A reflection request of either version.
enum Asked {
    ListServices,
    File(String),
    Symbol(String),
    Extension(String, i32),
    ExtensionNumbers(String),
    Nothing,
}

/// A reflection answer of either version.
enum Answer {
    Services(Vec<String>),
    Files(Vec<Bytes>),
    ExtensionNumbers(String, Vec<i32>),
    Error(Code, String),
}

/// Writes the two versions' handlers from one definition: their messages are the same
/// but for the package.
macro_rules! reflection_version {
    ($name:ident, $pb:ident) => {
        /// The reflection service of this version, answering from the shared index.
        struct $name(Arc<Index>);

        impl $pb::ServerReflection for $name {
            async fn server_reflection_info(
                &self,
                request: Request<Streaming<$pb::ServerReflectionRequest>>,
                mut responses: ResponseSender<$pb::ServerReflectionResponse>,
            ) -> Result<(), Status> {
                use $pb::server_reflection_request::Message_request as Req;
                use $pb::server_reflection_response::Message_response as Resp;

                let mut requests = request.into_inner();
                let mut sent = BTreeSet::new();
                while let Some(request) = requests.message().await? {
                    let asked = match &request.message_request {
                        Some(Req::ListServices(_)) => Asked::ListServices,
                        Some(Req::FileByFilename(name)) => Asked::File(name.clone()),
                        Some(Req::FileContainingSymbol(symbol)) => Asked::Symbol(symbol.clone()),
                        Some(Req::FileContainingExtension(e)) => {
                            Asked::Extension(e.containing_type.clone(), e.extension_number)
                        }
                        Some(Req::AllExtensionNumbersOfType(name)) => {
                            Asked::ExtensionNumbers(name.clone())
                        }
                        None => Asked::Nothing,
                        #[allow(unreachable_patterns)]
                        Some(_) => Asked::Nothing,
                    };
                    let mut response = $pb::ServerReflectionResponse::new();
                    response.message_response = Some(match self.0.answer(asked, &mut sent) {
                        Answer::Services(names) => {
                            let mut list = $pb::ListServiceResponse::new();
                            list.service = names
                                .into_iter()
                                .map(|name| {
                                    let mut service = $pb::ServiceResponse::new();
                                    service.name = name;
                                    service
                                })
                                .collect();
                            Resp::ListServicesResponse(list)
                        }
                        Answer::Files(files) => {
                            let mut found = $pb::FileDescriptorResponse::new();
                            found.file_descriptor_proto =
                                files.into_iter().map(|b| b.to_vec()).collect();
                            Resp::FileDescriptorResponse(found)
                        }
                        Answer::ExtensionNumbers(base, numbers) => {
                            let mut found = $pb::ExtensionNumberResponse::new();
                            found.base_type_name = base;
                            found.extension_number = numbers;
                            Resp::AllExtensionNumbersResponse(found)
                        }
                        Answer::Error(code, message) => {
                            let mut error = $pb::ErrorResponse::new();
                            error.error_code = code as i32;
                            error.error_message = message;
                            Resp::ErrorResponse(error)
                        }
                    });
                    response.valid_host = request.host.clone();
                    response.original_request = protobuf::MessageField::some(request);
                    responses.send(response).await?;
                }
                Ok(())
            }
        }
    };
}

reflection_version!(V1, v1);
reflection_version!(V1Alpha, v1alpha);
