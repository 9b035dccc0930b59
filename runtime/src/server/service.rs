//! [`Service`]: what a [`Server`](super::Server) hosts.

use super::ServerCall;
use crate::service::ServiceDescriptor;

/// A service a [`Server`](crate::server::Server) can host. Generated `FooServer<T>` types
/// implement it; hand-written implementations can serve methods without generated code.
pub trait Service: Send + Sync + 'static {
    /// The service's descriptor; its `name` routes calls to it.
    fn descriptor(&self) -> &'static ServiceDescriptor;

    /// Starts one call to `method` (the name after the last `/` of the path): hands `call` to
    /// one of [`ServerCall`]'s runners, which runs the handler in a task of its own, or answers
    /// with [`ServerCall::unimplemented`]. Runs on the connection's task, so it must not block.
    fn call(&self, method: &str, call: ServerCall);

    /// Called once when the server hosting the service starts a graceful stop (or a stop),
    /// before its connections drain: the health service turns every status NOT_SERVING
    /// here. Must not block.
    fn stopping(&self) {}
}
