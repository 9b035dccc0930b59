//! Service and method descriptors: what generated code declares about each service, for
//! routing, interceptors, stats and reflection. (The [`Service`](crate::server::Service)
//! trait servers host lives in [`server`](crate::server).)

use std::fmt;

/// The streaming kind of a method.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MethodKind {
    /// One request, one response.
    Unary,
    /// One request, a stream of responses.
    ServerStreaming,
    /// A stream of requests, one response.
    ClientStreaming,
    /// Streams both ways.
    BidiStreaming,
}

impl MethodKind {
    /// Whether the client sends a stream.
    pub fn client_streaming(self) -> bool {
        matches!(
            self,
            MethodKind::ClientStreaming | MethodKind::BidiStreaming
        )
    }

    /// Whether the server sends a stream.
    pub fn server_streaming(self) -> bool {
        matches!(
            self,
            MethodKind::ServerStreaming | MethodKind::BidiStreaming
        )
    }
}

/// A method of a service, as generated from its `.proto`. Calls carry a
/// `&'static MethodDescriptor`, so interceptors, stats and the service config see the
/// method without a per-call allocation.
///
/// # Examples
///
/// ```
/// use grpc_runtime::service::{MethodDescriptor, MethodKind};
///
/// static SAY_HELLO: MethodDescriptor =
///     MethodDescriptor::new("SayHello", "/helloworld.Greeter/SayHello", MethodKind::Unary);
/// assert_eq!(SAY_HELLO.service_name(), "helloworld.Greeter");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct MethodDescriptor {
    /// The method's name (`"SayHello"`).
    pub name: &'static str,
    /// The HTTP/2 path (`"/helloworld.Greeter/SayHello"`).
    pub path: &'static str,
    /// Its streaming kind.
    pub kind: MethodKind,
}

impl MethodDescriptor {
    /// A method `name` at `path` (`"/<package>.<Service>/<Method>"`).
    pub const fn new(name: &'static str, path: &'static str, kind: MethodKind) -> Self {
        MethodDescriptor { name, path, kind }
    }

    /// The fully-qualified name of the method's service, from its path (`""` if the path
    /// is not `/<service>/<method>`).
    pub fn service_name(&self) -> &'static str {
        self.path
            .strip_prefix('/')
            .and_then(|p| p.rsplit_once('/'))
            .map_or("", |(service, _)| service)
    }
}

/// Shows the method's path.
impl fmt::Display for MethodDescriptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.path)
    }
}

/// The method a call is for: a generated method's static descriptor (the usual case, no
/// allocation), or only its path, known at run time (a proxy forwarding calls for services
/// it does not know).
///
/// # Examples
///
/// ```
/// use grpc_runtime::service::{MethodDescriptor, MethodKind, MethodRef};
///
/// static SAY_HELLO: MethodDescriptor =
///     MethodDescriptor::new("SayHello", "/helloworld.Greeter/SayHello", MethodKind::Unary);
/// let known = MethodRef::from(&SAY_HELLO);
/// let forwarded = MethodRef::from_path("/helloworld.Greeter/SayHello").unwrap();
/// assert_eq!(known.path(), forwarded.path());
/// assert!(forwarded.descriptor().is_none());
/// assert!(MethodRef::from_path("no slash").is_none());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum MethodRef {
    /// A method declared in a `.proto` (generated code's).
    Known(&'static MethodDescriptor),
    /// A method known only by its path.
    Path(http::uri::PathAndQuery),
}

impl MethodRef {
    /// A method known only by its path (`/<service>/<method>`); `None` if `path` is not one.
    pub fn from_path(path: &str) -> Option<MethodRef> {
        if !is_method_path(path) {
            return None;
        }
        http::uri::PathAndQuery::try_from(path)
            .ok()
            .filter(|p| p.query().is_none() && p.path() == path)
            .map(MethodRef::Path)
    }

    /// The method's path (`"/helloworld.Greeter/SayHello"`).
    pub fn path(&self) -> &str {
        match self {
            MethodRef::Known(method) => method.path,
            MethodRef::Path(path) => path.path(),
        }
    }

    /// The method's descriptor, when it is a declared one.
    pub fn descriptor(&self) -> Option<&'static MethodDescriptor> {
        match self {
            MethodRef::Known(method) => Some(method),
            MethodRef::Path(_) => None,
        }
    }
}

impl From<&'static MethodDescriptor> for MethodRef {
    fn from(method: &'static MethodDescriptor) -> MethodRef {
        MethodRef::Known(method)
    }
}

/// Whether `path` is `/<service>/<method>` with non-empty names.
pub(crate) fn is_method_path(path: &str) -> bool {
    path.strip_prefix('/')
        .and_then(|p| p.split_once('/'))
        .is_some_and(|(service, method)| {
            !service.is_empty() && !method.is_empty() && !method.contains('/')
        })
}

/// Returns the `FileDescriptor` of the `.proto` file that declares a service (rust-protobuf's
/// generated `file_descriptor()`); it reaches its dependencies too.
pub type FileDescriptorFn = fn() -> &'static protobuf::reflect::FileDescriptor;

/// A service, as generated from its `.proto`: its name, methods, and the descriptor of the
/// file that declares it (what reflection serves).
///
/// # Examples
///
/// ```
/// use grpc_runtime::service::{MethodDescriptor, MethodKind, ServiceDescriptor};
///
/// static GREETER: ServiceDescriptor = ServiceDescriptor::new(
///     "helloworld.Greeter",
///     &[MethodDescriptor::new("SayHello", "/helloworld.Greeter/SayHello", MethodKind::Unary)],
/// );
/// assert_eq!(GREETER.method("SayHello").unwrap().kind, MethodKind::Unary);
/// ```
#[derive(Clone, Copy)]
#[non_exhaustive]
pub struct ServiceDescriptor {
    /// The fully-qualified service name (`"helloworld.Greeter"`).
    pub name: &'static str,
    /// Its methods, in `.proto` order.
    pub methods: &'static [MethodDescriptor],
    /// The descriptor of the `.proto` file declaring the service, when known.
    pub file_descriptor: Option<FileDescriptorFn>,
}

impl ServiceDescriptor {
    /// A service `name` with `methods`.
    pub const fn new(name: &'static str, methods: &'static [MethodDescriptor]) -> Self {
        ServiceDescriptor {
            name,
            methods,
            file_descriptor: None,
        }
    }

    /// Adds the descriptor of the file declaring the service.
    #[must_use]
    pub const fn with_file_descriptor(mut self, file: FileDescriptorFn) -> Self {
        self.file_descriptor = Some(file);
        self
    }

    /// Looks a method up by name.
    pub fn method(&self, name: &str) -> Option<&'static MethodDescriptor> {
        self.methods.iter().find(|m| m.name == name)
    }
}

/// Two descriptors are equal when they describe the same service: name and methods (the
/// file descriptor function is not compared).
impl PartialEq for ServiceDescriptor {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && self.methods == other.methods
    }
}

impl Eq for ServiceDescriptor {}

impl fmt::Debug for ServiceDescriptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceDescriptor")
            .field("name", &self.name)
            .field("methods", &self.methods)
            .field("file_descriptor", &self.file_descriptor.is_some())
            .finish()
    }
}
