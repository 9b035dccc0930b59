//! HTTP/2 glue shared by client and server: flow-controlled writes, connection settings,
//! socket setup.

use std::future::poll_fn;

use std::task::{Context, Poll, ready};

use bytes::Bytes;
use h2::SendStream;

use crate::status::{Code, Status};

pub(crate) mod bdp;
mod paced;
mod side;

pub(crate) use paced::{ConnectionShared, Paced};
pub(crate) use side::SideWaker;

/// A connection's byte stream, whatever carries it (TCP, a Unix socket, memory, a dialer's).
pub(crate) trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}

impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Io for T {}

/// A connection's byte stream, boxed once per connection.
pub(crate) type BoxedIo = Box<dyn Io>;

/// HTTP/2 settings both sides apply. Larger windows than HTTP/2's 64 KiB default let one
/// stream fill a fast local link from the start; [`bdp`] grows them for links with more
/// latency, as gRPC-Go's BDP estimator does.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Http2Settings {
    pub(crate) initial_stream_window_size: u32,
    pub(crate) initial_connection_window_size: u32,
    pub(crate) max_frame_size: u32,
    pub(crate) max_send_buffer_size: usize,
    pub(crate) max_header_list_size: u32,
    /// Whether the windows grow by BDP estimation ([`bdp`]): unless the application set them.
    pub(crate) dynamic_window: bool,
}

impl Default for Http2Settings {
    fn default() -> Self {
        Http2Settings {
            // A 1 MiB message fits in one stream window, and four of them in the connection's,
            // so large messages are not held up waiting for WINDOW_UPDATEs.
            initial_stream_window_size: 2 * 1024 * 1024,
            initial_connection_window_size: 8 * 1024 * 1024,
            // The largest DATA frame a peer may send us. h2 writes each DATA frame with a
            // system call of its own, so a 1 MiB message took 64 `writev`s (each a loopback
            // or NIC round of its own) at HTTP/2's 16 KiB; at 64 KiB, 16. Measured on our
            // client and server, unary 1 MiB: 12-15% less CPU per call on both sides. Peers
            // that announce 16 KiB (gRPC-Go, grpc-js, h2load) still get 16 KiB frames from
            // us; Go's own HTTP/2 server announces 1 MiB.
            max_frame_size: 64 * 1024,
            // How far a stream's sender may run ahead of the socket: data handed to h2 and
            // not yet written. 2 MiB kept the batches of a fast server-streaming handler out
            // of cache (and 2 MiB per stream held for a peer with open windows that reads
            // slowly). At 400 KiB (hyper's default; gRPC-Go queues 64 KiB a stream),
            // server-streaming 1 KiB to our client, 8 alternating pairs: server CPU per
            // message 0.83 -> 0.77 us, peak RSS 8.2 -> 6.0 MiB; 1 MiB messages through a 10
            // and 40 ms round trip unchanged (the socket's buffer carries what is in flight).
            // At 64 KiB the same row cost 0.94 us: too many hand-offs.
            max_send_buffer_size: 400 * 1024,
            // gRPC-Go's default max header list size is 16 MiB.
            max_header_list_size: 16 * 1024 * 1024,
            dynamic_window: true,
        }
    }
}

impl Http2Settings {
    /// A BDP estimator for a connection with these settings, and the counter its reader
    /// feeds; none when the windows are fixed.
    pub(crate) fn estimator(&self) -> Option<(bdp::Estimator, std::sync::Arc<bdp::Received>)> {
        self.dynamic_window.then(|| {
            bdp::Estimator::new(
                self.initial_stream_window_size,
                self.initial_connection_window_size,
            )
        })
    }

    /// An h2 client builder with these settings (the one place they are applied).
    pub(crate) fn client_builder(&self) -> h2::client::Builder {
        let mut builder = h2::client::Builder::new();
        builder
            .initial_window_size(self.initial_stream_window_size)
            .initial_connection_window_size(self.initial_connection_window_size)
            .max_frame_size(self.max_frame_size)
            .max_send_buffer_size(self.max_send_buffer_size)
            .max_header_list_size(self.max_header_list_size)
            .enable_push(false);
        builder
    }

    /// An h2 server builder with these settings.
    pub(crate) fn server_builder(&self) -> h2::server::Builder {
        let mut builder = h2::server::Builder::new();
        builder
            .initial_window_size(self.initial_stream_window_size)
            .initial_connection_window_size(self.initial_connection_window_size)
            .max_frame_size(self.max_frame_size)
            .max_send_buffer_size(self.max_send_buffer_size)
            .max_header_list_size(self.max_header_list_size);
        builder
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

/// Hands a call's only request message (unary, server-streaming) to h2 whole, ending the
/// stream. h2 keeps what the window does not yet cover and sends it as the window opens; the
/// caller holds the whole message already, so this buffers nothing new.
///
/// What it buys: h2 gives a new stream no send window until its HEADERS are written, so
/// [`send_data`] would wait for the connection task to write the HEADERS first and then
/// write the DATA on its own: two `writev`s per unary call. Handed over at once, the DATA
/// queues behind the HEADERS and both leave in one write (strace of the benchmark client,
/// unary 1 B c=1: 2 `writev`s per call before, 1 after).
pub(crate) async fn send_whole(
    stream: &mut SendStream<Bytes>,
    data: Bytes,
) -> Result<(), h2::Error> {
    // h2 refuses a DATA payload over the largest window in one call; such a message goes
    // through the flow-controlled path.
    if data.len() > MAX_WHOLE {
        return send_data(stream, data, true).await;
    }
    stream.send_data(data, true)
}

/// The largest payload [`send_whole`] hands to h2 at once: HTTP/2's largest window.
const MAX_WHOLE: usize = (1 << 31) - 1;

pub(crate) fn set_nodelay(stream: &tokio::net::TcpStream) {
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!("failed to set TCP_NODELAY: {e}");
    }
}

/// Marks a status whose stream the server never processed (gRFC A6: safe to send again).
#[derive(Debug)]
struct Unprocessed;

impl std::fmt::Display for Unprocessed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the server did not process the stream")
    }
}

impl std::error::Error for Unprocessed {}

/// Whether `status` ended a stream the server never processed.
pub(crate) fn never_processed(status: &Status) -> bool {
    std::error::Error::source(status).is_some_and(|s| s.is::<Unprocessed>())
}

/// Maps an h2 error (a stream reset, a GOAWAY, an I/O failure) to a status.
pub(crate) fn status_from_h2(err: &h2::Error) -> Status {
    if let Some(reason) = err.reason() {
        let code = match reason {
            h2::Reason::NO_ERROR
            | h2::Reason::PROTOCOL_ERROR
            | h2::Reason::INTERNAL_ERROR
            | h2::Reason::FLOW_CONTROL_ERROR
            | h2::Reason::SETTINGS_TIMEOUT
            | h2::Reason::FRAME_SIZE_ERROR
            | h2::Reason::COMPRESSION_ERROR
            | h2::Reason::CONNECT_ERROR => Code::Internal,
            h2::Reason::REFUSED_STREAM => Code::Unavailable,
            h2::Reason::CANCEL => Code::Cancelled,
            h2::Reason::ENHANCE_YOUR_CALM => Code::ResourceExhausted,
            h2::Reason::INADEQUATE_SECURITY => Code::PermissionDenied,
            h2::Reason::HTTP_1_1_REQUIRED => Code::Internal,
            _ => Code::Unknown,
        };
        // A stream ended by the peer's GOAWAY was not processed by it, whatever the reason
        // code says: retrying elsewhere is safe, as UNAVAILABLE tells (gRPC-Go does the
        // same). A GOAWAY our own side sent (a protocol error it detected, after the peer may
        // have run the call) keeps the code of its reason: INTERNAL, not to be retried.
        let code = if err.is_go_away() && err.is_remote() {
            Code::Unavailable
        } else {
            code
        };
        let what = if err.is_go_away() && !err.is_remote() {
            "connection closed by our GOAWAY after a protocol error"
        } else if err.is_go_away() {
            "connection closed by GOAWAY"
        } else if err.is_remote() {
            "stream reset by peer"
        } else {
            "stream reset"
        };
        let status = Status::new(code, format!("{what}: {reason:?}"));
        // Not processed by the server: REFUSED_STREAM, or ended by the peer's GOAWAY.
        let unprocessed =
            reason == h2::Reason::REFUSED_STREAM || (err.is_go_away() && err.is_remote());
        return if unprocessed {
            status.with_source(Unprocessed)
        } else {
            status
        };
    }
    if err.is_io() {
        return Status::unavailable(format!("connection error: {err}"));
    }
    Status::internal(format!("HTTP/2 error: {err}"))
}

/// The status of a server call whose request stream failed: a client reset is the client
/// cancelling.
pub(crate) fn request_status(err: &h2::Error) -> Status {
    if err.reason() == Some(h2::Reason::CANCEL) {
        Status::cancelled("call cancelled by the client")
    } else {
        status_from_h2(err)
    }
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::pin::Pin;
    use std::sync::{Arc, Mutex};
    use std::task::{Context, Poll};

    use bytes::Bytes;
    use tokio::io::{AsyncRead, AsyncWrite, DuplexStream, ReadBuf};

    /// A client-side socket that keeps every write it is given, one entry per write call.
    struct Recorded {
        inner: DuplexStream,
        writes: Arc<Mutex<Vec<Vec<u8>>>>,
    }

    impl AsyncRead for Recorded {
        fn poll_read(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            Pin::new(&mut self.inner).poll_read(cx, buf)
        }
    }

    impl AsyncWrite for Recorded {
        fn poll_write(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            self.poll_write_vectored(cx, &[io::IoSlice::new(buf)])
        }

        fn poll_write_vectored(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            bufs: &[io::IoSlice<'_>],
        ) -> Poll<io::Result<usize>> {
            // The duplex pipe is large enough for every write here: take it all, as one.
            let write: Vec<u8> = bufs.iter().flat_map(|b| b.iter().copied()).collect();
            let n = std::task::ready!(Pin::new(&mut self.inner).poll_write(cx, &write))?;
            assert_eq!(n, write.len(), "the pipe took a write in parts");
            self.writes.lock().unwrap().push(write);
            Poll::Ready(Ok(n))
        }

        fn is_write_vectored(&self) -> bool {
            true
        }

        fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Pin::new(&mut self.inner).poll_flush(cx)
        }

        fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Pin::new(&mut self.inner).poll_shutdown(cx)
        }
    }

    /// The frames (type, flags, stream id) that start in `write`, in order.
    fn frames(write: &[u8]) -> Vec<(u8, u8, u32)> {
        let mut out = Vec::new();
        let mut at = 0;
        while at + 9 <= write.len() {
            let len = u32::from_be_bytes([0, write[at], write[at + 1], write[at + 2]]) as usize;
            let id = u32::from_be_bytes(write[at + 5..at + 9].try_into().unwrap()) & 0x7fff_ffff;
            out.push((write[at + 3], write[at + 4], id));
            at += 9 + len;
        }
        out
    }

    #[tokio::test]
    async fn a_whole_request_leaves_in_the_write_of_its_headers() {
        let (client_io, server_io) = tokio::io::duplex(1 << 20);
        let writes = Arc::new(Mutex::new(Vec::new()));
        let io = Recorded {
            inner: client_io,
            writes: Arc::clone(&writes),
        };
        let server = tokio::spawn(async move {
            let mut conn = h2::server::handshake(server_io).await.unwrap();
            let (request, _respond) = conn.accept().await.unwrap().unwrap();
            tokio::spawn(async move { while conn.accept().await.is_some() {} });
            let mut body = request.into_body();
            let mut got = Vec::new();
            while let Some(chunk) = body.data().await {
                got.extend_from_slice(&chunk.unwrap());
            }
            got
        });
        let (client, conn) = h2::client::handshake(io).await.unwrap();
        tokio::spawn(conn);
        let mut client = client.ready().await.unwrap();
        let request = http::Request::post("http://test/pkg.Service/Method")
            .body(())
            .unwrap();
        let (_response, mut send) = client.send_request(request, false).unwrap();
        let message = Bytes::from_static(b"\0\0\0\0\x03abc");
        super::send_whole(&mut send, message.clone()).await.unwrap();

        assert_eq!(server.await.unwrap(), message);
        let writes = writes.lock().unwrap();
        let with_headers = writes
            .iter()
            .map(|w| frames(w))
            .find(|f| f.iter().any(|&(kind, _, id)| kind == 0x1 && id == 1))
            .expect("a write with the HEADERS");
        // HEADERS (0x1) then DATA (0x0) with END_STREAM (0x1), both on stream 1, one write.
        let on_stream: Vec<_> = with_headers.iter().filter(|f| f.2 == 1).collect();
        assert_eq!(
            on_stream.len(),
            2,
            "frames on stream 1 in that write: {with_headers:?}"
        );
        assert_eq!(on_stream[0].0, 0x1);
        assert_eq!((on_stream[1].0, on_stream[1].1 & 0x1), (0x0, 0x1));
    }
}
