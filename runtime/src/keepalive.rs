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
