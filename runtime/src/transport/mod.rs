//! HTTP/2 glue shared by client and server: flow-controlled writes, connection settings,
//! socket setup.

use std::future::poll_fn;
use std::io;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use h2::SendStream;

mod paced;

pub(crate) use paced::Paced;

/// HTTP/2 settings both sides apply. Larger windows than HTTP/2's 64 KiB default let one
/// stream fill a fast link, as gRPC-Go's BDP estimator ends up doing.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Http2Settings {
    pub(crate) initial_stream_window_size: u32,
    pub(crate) initial_connection_window_size: u32,
    pub(crate) max_frame_size: u32,
    pub(crate) max_send_buffer_size: usize,
    pub(crate) max_header_list_size: u32,
}

impl Default for Http2Settings {
    fn default() -> Self {
        Http2Settings {
            // A 1 MiB message fits in one stream window, and four of them in the connection's,
            // so large messages are not held up waiting for WINDOW_UPDATEs.
            initial_stream_window_size: 2 * 1024 * 1024,
            initial_connection_window_size: 8 * 1024 * 1024,
            max_frame_size: 16 * 1024,
            max_send_buffer_size: 2 * 1024 * 1024,
            // gRPC-Go's default max header list size is 16 MiB.
            max_header_list_size: 16 * 1024 * 1024,
        }
    }
}

/// Writes `data` on `stream` as flow control allows, leaving in `data` what is not yet
/// handed to h2. Ready once all of it is, so a slow reader holds the writer back instead of
/// growing a buffer without bound.
pub(crate) fn poll_send(
    stream: &mut SendStream<Bytes>,
    data: &mut Bytes,
    end_of_stream: bool,
    cx: &mut Context<'_>,
) -> Poll<Result<(), h2::Error>> {
    if data.is_empty() {
        if end_of_stream {
            stream.send_data(Bytes::new(), true)?;
        }
        return Poll::Ready(Ok(()));
    }
    loop {
        stream.reserve_capacity(data.len());
        let available = stream.capacity();
        if available > 0 {
            let chunk = data.split_to(available.min(data.len()));
            stream.send_data(chunk, end_of_stream && data.is_empty())?;
            if data.is_empty() {
                return Poll::Ready(Ok(()));
            }
            continue;
        }
        match ready!(stream.poll_capacity(cx)) {
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Poll::Ready(Err(e)),
            None => {
                // The stream can no longer send: report why (usually a reset).
                return Poll::Ready(Err(match stream.poll_reset(cx) {
                    Poll::Ready(Ok(reason)) => h2::Error::from(reason),
                    Poll::Ready(Err(e)) => e,
                    Poll::Pending => h2::Error::from(h2::Reason::CANCEL),
                }));
            }
        }
    }
}

/// Sends `data` on `stream`, waiting for flow-control window as needed.
pub(crate) async fn send_data(
    stream: &mut SendStream<Bytes>,
    mut data: Bytes,
    end_of_stream: bool,
) -> Result<(), h2::Error> {
    poll_fn(|cx| poll_send(stream, &mut data, end_of_stream, cx)).await
}

pub(crate) fn set_nodelay(stream: &tokio::net::TcpStream) {
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!("failed to set TCP_NODELAY: {e}");
    }
}

/// Connects with a timeout, naming the target in the error.
pub(crate) async fn with_connect_timeout<T>(
    timeout: Duration,
    what: &str,
    fut: impl Future<Output = io::Result<T>>,
) -> io::Result<T> {
    match tokio::time::timeout(timeout, fut).await {
        Ok(result) => result,
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("timed out after {timeout:?} connecting to {what}"),
        )),
    }
}
