//! Routing: a request to its service, its unknown-service handler, or an error answer.

use std::collections::HashMap;
use std::sync::Arc;
use std::task::Waker;

use bytes::Bytes;

use super::{ServerCall, Service, Shared};
use crate::peer::Peer;
use crate::status::Status;

/// The hosted services, sorted by name: a request's service is found by a binary search,
/// a few string comparisons. What it buys: the `HashMap` it replaced hashed every request's
/// service name with SipHash, about 350 instructions a 1-byte unary call (callgrind,
/// h2load c64), against a few dozen now. The set is fixed once the server is built.
pub(crate) struct Services(Box<[(&'static str, Arc<dyn Service>)]>);

impl Services {
    pub(crate) fn new(services: HashMap<&'static str, Arc<dyn Service>>) -> Services {
        let mut sorted: Vec<_> = services.into_iter().collect();
        sorted.sort_unstable_by_key(|(name, _)| *name);
        Services(sorted.into_boxed_slice())
    }

    /// The service named `name`.
    pub(crate) fn get(&self, name: &str) -> Option<&Arc<dyn Service>> {
        let found = self.0.binary_search_by(|(key, _)| (*key).cmp(name));
        found.ok().map(|i| &self.0[i].1)
    }

    /// The names, in order.
    pub(crate) fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.0.iter().map(|(name, _)| *name)
    }

    /// The services, in the order of their names.
    pub(crate) fn values(&self) -> impl Iterator<Item = &Arc<dyn Service>> {
        self.0.iter().map(|(_, service)| service)
    }
}

/// Routes one request to its service, which starts the call's task.
pub(super) fn dispatch(
    request: http::Request<h2::RecvStream>,
    mut respond: h2::server::SendResponse<Bytes>,
    shared: &Arc<Shared>,
    peer: &Arc<Peer>,
    socket: &crate::channelz::internal::SocketEntry,
    peer_max_header_list: u32,
    inline: Option<Waker>,
) {
    let (head, body) = request.into_parts();
    if head.method != http::Method::POST {
        plain_response(&mut respond, http::StatusCode::METHOD_NOT_ALLOWED);
        return;
    }
    let content_type = head.headers.get(http::header::CONTENT_TYPE);
    if !content_type.is_some_and(|ct| crate::status::is_grpc_content_type(ct.as_bytes())) {
        // gRPC-Go: HTTP 415 with a gRPC status saying what was wrong.
        let shown = content_type.map(|ct| String::from_utf8_lossy(ct.as_bytes()).into_owned());
        let status = Status::invalid_argument(format!(
            "invalid gRPC request content-type {:?}",
            shown.unwrap_or_default()
        ));
        super::responder::early_abort(
            &mut respond,
            http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
            &status,
        );
        return;
    }
    let subtype = content_type
        .filter(|ct| ct.as_bytes().starts_with(b"application/grpc+"))
        .cloned();
    // A clone of the URI shares its bytes: the names below borrow from it, not from `head`,
    // which moves into the call.
    let uri = head.uri.clone();
    let path = uri.path();
    let call = ServerCall {
        head,
        body,
        respond,
        shared: Arc::clone(shared),
        peer: Arc::clone(peer),
        socket: socket.clone(),
        peer_max_header_list,
        inline,
        subtype,
    };
    let Some((service_name, method)) = path
        .strip_prefix('/')
        .and_then(|p| p.rsplit_once('/'))
        .filter(|(service, method)| !service.is_empty() && !method.is_empty())
    else {
        call.reject(Status::unimplemented(format!(
            "malformed method name {path:?}"
        )));
        return;
    };
    match (shared.services.get(service_name), &shared.unknown) {
        (Some(service), _) => service.call(method, call),
        (None, Some(handler)) => {
            let handler = Arc::clone(handler);
            let path = path.to_owned();
            call.raw(move |requests, responses| handler(path, requests, responses));
        }
        (None, None) => {
            call.reject(Status::unimplemented(format!(
                "unknown service {service_name}"
            )));
        }
    }
}

/// A non-gRPC HTTP answer, for requests that are not gRPC at all.
fn plain_response(respond: &mut h2::server::SendResponse<Bytes>, status: http::StatusCode) {
    let mut response = http::Response::new(());
    *response.status_mut() = status;
    if let Err(e) = respond.send_response(response, true) {
        tracing::debug!("failed to send HTTP {status}: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::ServiceDescriptor;

    struct Named(&'static ServiceDescriptor);

    impl Service for Named {
        fn descriptor(&self) -> &'static ServiceDescriptor {
            self.0
        }

        fn call(&self, _method: &str, call: ServerCall) {
            call.unimplemented();
        }
    }

    static A: ServiceDescriptor = ServiceDescriptor::new("pkg.Echo", &[]);
    static B: ServiceDescriptor = ServiceDescriptor::new("pkg.EchoMore", &[]);
    static C: ServiceDescriptor = ServiceDescriptor::new("grpc.health.v1.Health", &[]);

    #[test]
    fn finds_exactly_the_named_service() {
        let mut map: HashMap<&'static str, Arc<dyn Service>> = HashMap::new();
        for d in [&A, &B, &C] {
            map.insert(d.name, Arc::new(Named(d)));
        }
        let services = Services::new(map);
        assert_eq!(
            services.names().collect::<Vec<_>>(),
            ["grpc.health.v1.Health", "pkg.Echo", "pkg.EchoMore"]
        );
        for d in [&A, &B, &C] {
            let found = services.get(d.name).expect("hosted");
            assert_eq!(found.descriptor().name, d.name);
        }
        for absent in [
            "",
            "pkg",
            "pkg.Ech",
            "pkg.EchoMor",
            "pkg.echo",
            "pkg.EchoMoreX",
            "zzz",
        ] {
            assert!(services.get(absent).is_none(), "{absent:?}");
        }
        assert_eq!(services.values().count(), 3);
    }
}
