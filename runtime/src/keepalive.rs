//! Keepalive: HTTP/2 PINGs that find a dead connection (gRPC-Go's `keepalive` package and
//! gRPC's keepalive spec, doc/keepalive.md).

use std::time::Duration;

/// The shortest keepalive time a client may use: gRPC-Go raises anything shorter to this,
/// as servers by default answer pings more often than every 5 minutes with GOAWAY
/// `too_many_pings`.
pub(crate) const MIN_CLIENT_TIME: Duration = Duration::from_secs(10);

/// A client's keepalive (gRPC-Go's `keepalive.ClientParameters`): after `time` without a
/// ping answered, the channel pings each connection and closes it if no answer comes within
/// `timeout`, failing its calls with `UNAVAILABLE`. A server's GOAWAY `too_many_pings`
/// doubles `time` for the channel, as gRPC-Go does.
///
/// Off by default. `time` below 10 s is raised to 10 s.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use grpc_runtime::keepalive::ClientParameters;
///
/// let keepalive = ClientParameters::new(Duration::from_secs(30))
///     .timeout(Duration::from_secs(5))
///     .permit_without_stream(true);
/// # let _ = keepalive;
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
#[non_exhaustive]
pub struct ClientParameters {
    /// How often to ping. Default here: none; set with [`new`](Self::new).
    pub time: Duration,
    /// How long to wait for the answer. Default: 20 s.
    pub timeout: Duration,
    /// Whether to ping connections with no call in flight. Default: `false`.
    pub permit_without_stream: bool,
}

impl ClientParameters {
    /// Pings every `time` (at least 10 s), with gRPC-Go's other defaults.
    pub fn new(time: Duration) -> ClientParameters {
        ClientParameters {
            time,
            timeout: Duration::from_secs(20),
            permit_without_stream: false,
        }
    }

    /// How long to wait for a ping's answer before closing the connection.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Pings connections that have no call in flight too.
    pub fn permit_without_stream(mut self, permit: bool) -> Self {
        self.permit_without_stream = permit;
        self
    }

    /// `time`, raised to the floor.
    pub(crate) fn effective_time(&self) -> Duration {
        self.time.max(MIN_CLIENT_TIME)
    }
}

/// A server's keepalive and connection management (gRPC-Go's `keepalive.ServerParameters`),
/// with gRPC-Go's defaults:
/// - `max_connection_idle`: a connection without calls for this long is sent GOAWAY (its
///   client reconnects when it needs to). Default: never.
/// - `max_connection_age`: a connection this old (±10% jitter, so a fleet's clients do not
///   reconnect at once) is sent GOAWAY, e.g. to rebalance clients behind a load balancer.
///   Default: never.
/// - `max_connection_age_grace`: after that GOAWAY, how long calls in flight have before the
///   connection is closed. Default: for ever.
/// - `time`, `timeout`: the server pings each connection every `time` and closes it if no
///   answer comes within `timeout`. Defaults: 2 hours, 20 s.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use grpc_runtime::keepalive::ServerParameters;
/// use grpc_runtime::server::Server;
///
/// let server = Server::builder()
///     .keepalive(
///         ServerParameters::new()
///             .max_connection_idle(Duration::from_secs(15 * 60))
///             .max_connection_age(Duration::from_secs(30 * 60))
///             .max_connection_age_grace(Duration::from_secs(30)),
///     )
///     .build();
/// # let _ = server;
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
#[non_exhaustive]
pub struct ServerParameters {
    /// GOAWAY after this long without calls. Default: `None` (never).
    pub max_connection_idle: Option<Duration>,
    /// GOAWAY once the connection is this old (±10%). Default: `None` (never).
    pub max_connection_age: Option<Duration>,
    /// Close this long after the age GOAWAY. Default: `None` (wait for the calls).
    pub max_connection_age_grace: Option<Duration>,
    /// How often to ping. Default: 2 hours.
    pub time: Duration,
    /// How long to wait for the answer. Default: 20 s.
    pub timeout: Duration,
}

impl Default for ServerParameters {
    fn default() -> Self {
        ServerParameters {
            max_connection_idle: None,
            max_connection_age: None,
            max_connection_age_grace: None,
            time: Duration::from_secs(2 * 60 * 60),
            timeout: Duration::from_secs(20),
        }
    }
}

impl ServerParameters {
    /// gRPC-Go's defaults.
    pub fn new() -> ServerParameters {
        ServerParameters::default()
    }

    /// Sends GOAWAY to connections without calls for `idle`.
    pub fn max_connection_idle(mut self, idle: Duration) -> Self {
        self.max_connection_idle = Some(idle);
        self
    }

    /// Sends GOAWAY to connections once they are `age` old (±10%).
    pub fn max_connection_age(mut self, age: Duration) -> Self {
        self.max_connection_age = Some(age);
        self
    }

    /// Closes a connection `grace` after its age GOAWAY, calls in flight or not.
    pub fn max_connection_age_grace(mut self, grace: Duration) -> Self {
        self.max_connection_age_grace = Some(grace);
        self
    }

    /// Pings each connection every `time` (at least 1 s).
    pub fn time(mut self, time: Duration) -> Self {
        self.time = time.max(Duration::from_secs(1));
        self
    }

    /// Closes a connection whose ping is not answered within `timeout`.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
}

/// How often a server lets its clients ping (gRPC-Go's `keepalive.EnforcementPolicy`): a
/// ping sooner than `min_time` after the previous one, or (unless `permit_without_stream`) a
/// ping while the connection has no calls, is a strike; strikes are forgiven whenever the
/// server sends headers or data; past two strikes the server sends GOAWAY
/// `ENHANCE_YOUR_CALM` with debug data `too_many_pings`, as gRPC-Go does (its clients, and
/// ours, then ping half as often), and closes the connection.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use grpc_runtime::keepalive::EnforcementPolicy;
/// use grpc_runtime::server::Server;
///
/// // Clients may ping every 30 s, with or without calls in flight.
/// let server = Server::builder()
///     .keepalive_enforcement_policy(
///         EnforcementPolicy::new()
///             .min_time(Duration::from_secs(30))
///             .permit_without_stream(true),
///     )
///     .build();
/// # let _ = server;
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
#[non_exhaustive]
pub struct EnforcementPolicy {
    /// The shortest time between a client's pings. Default: 5 minutes.
    pub min_time: Duration,
    /// Whether pings are welcome while the connection has no calls. Default: `false` (such
    /// pings may come every 2 hours, as in gRPC-Go).
    pub permit_without_stream: bool,
}

impl Default for EnforcementPolicy {
    fn default() -> Self {
        EnforcementPolicy {
            min_time: Duration::from_secs(5 * 60),
            permit_without_stream: false,
        }
    }
}

impl EnforcementPolicy {
    /// gRPC-Go's defaults.
    pub fn new() -> EnforcementPolicy {
        EnforcementPolicy::default()
    }

    /// The shortest time between a client's pings.
    pub fn min_time(mut self, min_time: Duration) -> Self {
        self.min_time = min_time;
        self
    }

    /// Welcomes pings on connections without calls.
    pub fn permit_without_stream(mut self, permit: bool) -> Self {
        self.permit_without_stream = permit;
        self
    }
}
