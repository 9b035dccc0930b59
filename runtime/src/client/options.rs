//! [`CallOptions`]: per-client defaults for calls.

use std::sync::Arc;
use std::time::Duration;

use crate::compression::CompressionEncoding;
use crate::credentials::CallCredentials;
use crate::request::Request;

/// Default options for the calls of one client. Per-call settings on the [`Request`] win.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use grpc_runtime::client::CallOptions;
/// use grpc_runtime::CompressionEncoding;
///
/// let options = CallOptions::new()
///     .timeout(Duration::from_secs(2))
///     .send_compressed(CompressionEncoding::Gzip)
///     .max_recv_message_size(16 << 20);
/// # let _ = options;
/// ```
#[derive(Clone, Debug, Default)]
#[must_use]
#[non_exhaustive]
pub struct CallOptions {
    timeout: Option<Duration>,
    send_compressed: Option<CompressionEncoding>,
    max_recv_message_size: Option<usize>,
    max_send_message_size: Option<usize>,
    call_credentials: Option<Arc<dyn CallCredentials>>,
    wait_for_ready: Option<bool>,
}

impl CallOptions {
    /// No defaults beyond the channel's.
    pub fn new() -> CallOptions {
        CallOptions::default()
    }

    /// Timeout of each call. Default: none.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Compresses request messages with `encoding`. Default: no compression.
    pub fn send_compressed(mut self, encoding: CompressionEncoding) -> Self {
        self.send_compressed = Some(encoding);
        self
    }

    /// Largest response message accepted. Default: the channel's (4 MiB).
    pub fn max_recv_message_size(mut self, limit: usize) -> Self {
        self.max_recv_message_size = Some(limit);
        self
    }

    /// Largest request message sent. Default: the channel's.
    pub fn max_send_message_size(mut self, limit: usize) -> Self {
        self.max_send_message_size = Some(limit);
        self
    }

    /// Adds `credentials` to each call, after the channel's.
    pub fn call_credentials(mut self, credentials: impl CallCredentials) -> Self {
        self.call_credentials = Some(Arc::new(credentials));
        self
    }

    /// Whether calls wait for a READY connection instead of failing fast. Default: the
    /// channel's.
    pub fn wait_for_ready(mut self, wait: bool) -> Self {
        self.wait_for_ready = Some(wait);
        self
    }

    /// Fills the settings `request` leaves unset.
    pub(crate) fn apply<T>(&self, request: &mut Request<T>) {
        request.timeout = request.timeout.or(self.timeout);
        request.compression = request.compression.or(self.send_compressed);
        request.max_recv_message_size =
            request.max_recv_message_size.or(self.max_recv_message_size);
        request.max_send_message_size =
            request.max_send_message_size.or(self.max_send_message_size);
        request.wait_for_ready = request.wait_for_ready.or(self.wait_for_ready);
        if request.call_credentials.is_none() {
            request.call_credentials.clone_from(&self.call_credentials);
        }
    }
}
