//! [`ConnectivityState`]: the state of a channel or of one of its subchannels (gRPC-Go's
//! `connectivity` package, gRPC's connectivity-semantics spec).

use std::fmt;

/// Where a channel or a subchannel stands.
///
/// A subchannel (one connection to one address) moves IDLE → CONNECTING → READY, and on a
/// failure to TRANSIENT_FAILURE, where it waits out its backoff before going back to IDLE;
/// a READY connection that closes goes to IDLE. A channel's state is its balancer's summary
/// of its subchannels' (any READY: READY; else any CONNECTING: CONNECTING; ...).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ConnectivityState {
    /// No connection and none being made; a call (or `connect()`) starts one.
    Idle,
    /// Connecting.
    Connecting,
    /// Connected: calls go out.
    Ready,
    /// The last attempt failed; fail-fast calls fail, wait-for-ready calls wait.
    TransientFailure,
    /// Closed for good.
    Shutdown,
}

impl fmt::Display for ConnectivityState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ConnectivityState::Idle => "IDLE",
            ConnectivityState::Connecting => "CONNECTING",
            ConnectivityState::Ready => "READY",
            ConnectivityState::TransientFailure => "TRANSIENT_FAILURE",
            ConnectivityState::Shutdown => "SHUTDOWN",
        })
    }
}
