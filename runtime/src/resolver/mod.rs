//! Name resolution: from a channel's target to the addresses its balancer connects to
//! (gRPC-Go's `resolver` package).
//!
//! A [`ResolverBuilder`] is registered for a URI scheme; a channel parses its target
//! (`scheme://authority/endpoint`, or a bare `host:port`, which means `dns:///host:port`),
//! builds the scheme's [`Resolver`], and hands it a [`ResolverChannel`] through which the
//! resolver pushes [`ResolverState`]s (addresses, optionally a service config) whenever they
//! change. The channel asks for a fresh resolution
//! ([`Resolver::resolve_now`]) when a connection fails.
//!
//! Built in, registered under their schemes:
//!
//! | scheme | example | resolves |
//! | --- | --- | --- |
//! | `dns` (default) | `dns:///api.internal:50051`, `api.internal:50051` | every address of the name, again on failures (at most every 30 s) and on a refresh interval |
//! | `ipv4`, `ipv6` | `ipv4:10.0.0.1:50051,10.0.0.2:50051` | a fixed list |
//! | `unix`, `unix-abstract` | `unix:///run/api.sock` | one socket |
//! | `passthrough` | `passthrough:///api.internal:50051` | nothing: the name goes to the connection as is |
//!
//! and a [`manual`] resolver, whose addresses the program pushes itself (tests, service
//! discovery of your own).

mod dns;
pub mod manual;
mod registry;
mod static_list;

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

pub use dns::DnsResolverBuilder;
pub(crate) use dns::split_host_port;
pub(crate) use registry::lookup;
pub use registry::register;
pub(crate) use static_list::{
    IpListResolverBuilder, PassthroughResolverBuilder, SingleResolverBuilder, UnixResolverBuilder,
};

use crate::status::Status;

/// One address a channel can connect to.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Address {
    /// A resolved IP address and port.
    Tcp(SocketAddr),
    /// A host name and port, resolved by the system when connecting (`passthrough:`, and
    /// what goes to an HTTP CONNECT proxy).
    HostPort(String, u16),
    /// A Unix domain socket path.
    Unix(PathBuf),
    /// A Linux abstract socket name (without the leading NUL).
    UnixAbstract(Vec<u8>),
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Tcp(addr) => write!(f, "{addr}"),
            Address::HostPort(host, port) if host.contains(':') => write!(f, "[{host}]:{port}"),
            Address::HostPort(host, port) => write!(f, "{host}:{port}"),
            Address::Unix(path) => write!(f, "unix:{}", path.display()),
            Address::UnixAbstract(name) => {
                write!(f, "unix-abstract:{}", String::from_utf8_lossy(name))
            }
        }
    }
}

/// What a resolver found: the addresses, and a service config if it carries one.
///
/// # Examples
///
/// ```
/// use grpc_runtime::resolver::{Address, ResolverState};
///
/// let state = ResolverState::new(vec![
///     Address::Tcp("10.0.0.1:50051".parse().unwrap()),
///     Address::Tcp("10.0.0.2:50051".parse().unwrap()),
/// ]);
/// # let _ = state;
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ResolverState {
    /// The addresses, in the resolver's order (pick_first tries them in it).
    pub addresses: Vec<Address>,
    /// A service config in gRPC's JSON form, if the resolver found one.
    pub service_config: Option<String>,
}

impl ResolverState {
    /// A state with these addresses and no service config.
    pub fn new(addresses: Vec<Address>) -> ResolverState {
        ResolverState {
            addresses,
            service_config: None,
        }
    }

    /// With a service config (JSON).
    #[must_use]
    pub fn with_service_config(mut self, json: impl Into<String>) -> ResolverState {
        self.service_config = Some(json.into());
        self
    }
}

/// A parsed channel target: `scheme://authority/endpoint`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    scheme: String,
    authority: String,
    endpoint: String,
}

impl Target {
    pub(crate) fn new(scheme: &str, authority: &str, endpoint: &str) -> Target {
        Target {
            scheme: scheme.to_owned(),
            authority: authority.to_owned(),
            endpoint: endpoint.to_owned(),
        }
    }

    /// The scheme, which names the resolver (`dns`, `ipv4`, `unix`, ...).
    pub fn scheme(&self) -> &str {
        &self.scheme
    }

    /// The URI's authority: for `dns`, the DNS server to ask (we use the system's).
    pub fn authority(&self) -> &str {
        &self.authority
    }

    /// What to resolve: `host:port`, a path, an address list.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}/{}", self.scheme, self.authority, self.endpoint)
    }
}

/// Makes the resolver for one scheme (gRPC-Go's `resolver.Builder`).
///
/// # Examples
///
/// A resolver for `static:` targets that always answers the same two addresses:
///
/// ```
/// use grpc_runtime::resolver::{
///     Address, Resolver, ResolverBuilder, ResolverChannel, ResolverState, Target,
/// };
/// use grpc_runtime::Status;
///
/// struct Fixed;
/// impl Resolver for Fixed {}
///
/// struct FixedBuilder;
/// impl ResolverBuilder for FixedBuilder {
///     fn scheme(&self) -> &str {
///         "static"
///     }
///     fn build(&self, _: &Target, channel: ResolverChannel) -> Result<Box<dyn Resolver>, Status> {
///         channel.update_state(ResolverState::new(vec![
///             Address::Tcp("127.0.0.1:50051".parse().unwrap()),
///             Address::Tcp("127.0.0.1:50052".parse().unwrap()),
///         ]));
///         Ok(Box::new(Fixed))
///     }
/// }
///
/// grpc_runtime::resolver::register(FixedBuilder);
/// ```
pub trait ResolverBuilder: Send + Sync + 'static {
    /// The scheme this builder resolves.
    fn scheme(&self) -> &str;

    /// Starts resolving `target`, reporting through `channel` (now or from a task of its
    /// own). The resolver stops when the returned value is dropped.
    ///
    /// # Errors
    ///
    /// If `target` is not one this resolver understands.
    fn build(&self, target: &Target, channel: ResolverChannel)
    -> Result<Box<dyn Resolver>, Status>;

    /// The `:authority` calls carry by default. Default: the endpoint.
    fn default_authority(&self, target: &Target) -> String {
        target.endpoint().to_owned()
    }
}

/// A running resolution. Dropping it stops it.
pub trait Resolver: Send + 'static {
    /// The channel asks for a new resolution (a connection failed, say). A hint: a resolver
    /// may ignore it or rate-limit it. Default: ignored.
    fn resolve_now(&mut self) {}
}

/// Where a resolver reports what it found (gRPC-Go's `resolver.ClientConn`).
#[derive(Clone)]
pub struct ResolverChannel {
    report: std::sync::Arc<dyn Fn(Result<ResolverState, Status>) + Send + Sync>,
}

impl fmt::Debug for ResolverChannel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ResolverChannel")
    }
}

impl ResolverChannel {
    pub(crate) fn new(
        report: impl Fn(Result<ResolverState, Status>) + Send + Sync + 'static,
    ) -> ResolverChannel {
        ResolverChannel {
            report: std::sync::Arc::new(report),
        }
    }

    /// New addresses (and service config): they replace the previous ones.
    pub fn update_state(&self, state: ResolverState) {
        (self.report)(Ok(state));
    }

    /// Resolution failed; the channel keeps the addresses it has, if any, and fails calls
    /// with this status (`UNAVAILABLE`) if it has none.
    pub fn report_error(&self, error: Status) {
        (self.report)(Err(error));
    }
}
