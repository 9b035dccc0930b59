//! Service descriptors and the [`Service`] trait that generated servers implement.

use crate::server::ServerCall;

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

/// A method of a service, as generated from its `.proto`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MethodDescriptor {
    /// The method's name (`"SayHello"`).
    pub name: &'static str,
    /// The HTTP/2 path (`"/helloworld.Greeter/SayHello"`).
    pub path: &'static str,
    /// Its streaming kind.
    pub kind: MethodKind,
}

/// A service, as generated from its `.proto`: usable by reflection, interceptors and stats.
///
/// # Examples
///
/// ```
/// use grpc_runtime::service::{MethodDescriptor, MethodKind, ServiceDescriptor};
///
/// static GREETER: ServiceDescriptor = ServiceDescriptor {
///     name: "helloworld.Greeter",
///     methods: &[MethodDescriptor {
///         name: "SayHello",
///         path: "/helloworld.Greeter/SayHello",
///         kind: MethodKind::Unary,
///     }],
/// };
/// assert_eq!(GREETER.method("SayHello").unwrap().kind, MethodKind::Unary);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServiceDescriptor {
    /// The fully-qualified service name (`"helloworld.Greeter"`).
    pub name: &'static str,
    /// Its methods, in `.proto` order.
    pub methods: &'static [MethodDescriptor],
}

impl ServiceDescriptor {
    /// Looks a method up by name.
    pub fn method(&self, name: &str) -> Option<&'static MethodDescriptor> {
        self.methods.iter().find(|m| m.name == name)
    }
}

/// A service a [`Server`](crate::server::Server) can host. Generated `FooServer<T>` types
/// implement it; hand-written implementations can serve methods without generated code.
pub trait Service: Send + Sync + 'static {
    /// The service's descriptor; its `name` routes calls to it.
    fn descriptor(&self) -> &'static ServiceDescriptor;

    /// Starts one call to `method` (the name after the last `/` of the path): hands `call` to
    /// one of [`ServerCall`]'s runners, which runs the handler in a task of its own, or answers
    /// with [`ServerCall::unimplemented`]. Runs on the connection's task, so it must not block.
    fn call(&self, method: &str, call: ServerCall);
}
