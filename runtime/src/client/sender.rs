//! [`RequestSender`]: the request half of a bidi call.

use std::fmt;
use std::future::poll_fn;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::{Bytes, BytesMut};
use h2::SendStream;
use tokio::sync::mpsc;

use crate::codec::framing;
use crate::codec::{Encoder, Outbound};
use crate::compression::CompressionEncoding;
use crate::status::Status;
use crate::streaming::Streaming;
use crate::transport;

/// Sends the requests of a bidi call, each [`send`](RequestSender::send) waiting for HTTP/2
/// flow control. Dropping it (or [`close`](RequestSender::close)) ends the request stream;
/// the server's answer goes on.
///
/// Each message goes to HTTP/2 as it is sent, in a DATA frame of its own: the sender cannot
/// tell whether another message follows, and a ping-pong's must not wait. Many small
/// messages sent back to back travel better through a client-streaming call's `Stream`,
/// whose ready messages share frames.
///
/// # Examples
///
/// ```no_run
/// # use grpc_runtime::{RequestSender, Status, Streaming};
/// # use protobuf::well_known_types::wrappers::StringValue;
/// async fn chat(
///     mut tx: RequestSender<StringValue>,
///     mut rx: Streaming<StringValue>,
/// ) -> Result<(), Status> {
///     tx.send(StringValue::new()).await?;
///     tx.close();
///     while let Some(reply) = rx.message().await? {
///         println!("{}", reply.value);
///     }
///     Ok(())
/// }
/// ```
pub struct RequestSender<T> {
    inner: Inner<T>,
}

enum Inner<T> {
    H2(Box<H2Sender<T>>),
    /// Under a retry or hedging policy: the frames go to the task that sends them to each
    /// attempt and keeps them for replay (`client::retry`).
    Frames(Box<FrameSender<T>>),
    Channel(mpsc::Sender<T>),
    Closed,
}

/// A bidi call's send stream, shared with its response: dropping the response stream
/// before the call ends resets the call even while the sender lives.
pub(crate) type SharedSend = Arc<Mutex<SendStream<Bytes>>>;

pub(crate) fn lock(send: &SharedSend) -> MutexGuard<'_, SendStream<Bytes>> {
    send.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

pub(crate) struct H2Sender<T> {
    pub(crate) stream: SharedSend,
    pub(crate) encoding: Encoding<T>,
    /// The call's stats handlers (`None`: no handler).
    pub(crate) stats: crate::stats::Stats,
    /// The attempt's subchannel and connection in channelz.
    pub(crate) channelz: super::call::Counted,
}

impl<T> H2Sender<T> {
    /// Ends the request stream (END_STREAM).
    fn half_close(&self) {
        if let Some(stats) = &self.stats {
            stats.half_close();
        }
        let _ = lock(&self.stream).send_data(Bytes::new(), true);
    }
}

pub(crate) struct FrameSender<T> {
    pub(crate) frames: mpsc::Sender<Result<Bytes, Status>>,
    pub(crate) encoding: Encoding<T>,
}

/// How a bidi call's requests become frames.
pub(crate) struct Encoding<T> {
    pub(crate) encoder: Box<dyn Encoder<Item = T>>,
    pub(crate) compression: Option<CompressionEncoding>,
    pub(crate) max_send: usize,
    pub(crate) scratch: BytesMut,
}

impl<T: 'static> Encoding<T> {
    fn encode(&mut self, message: Outbound<T>) -> Result<Bytes, Status> {
        framing::encode_request(
            &mut *self.encoder,
            message,
            self.compression,
            self.max_send,
            &mut self.scratch,
        )
    }
}

impl<T> fmt::Debug for RequestSender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestSender")
            .field("closed", &matches!(self.inner, Inner::Closed))
            .finish_non_exhaustive()
    }
}

impl<T: Send + 'static> RequestSender<T> {
    pub(crate) fn h2(sender: H2Sender<T>) -> RequestSender<T> {
        RequestSender {
            inner: Inner::H2(Box::new(sender)),
        }
    }

    pub(crate) fn frames(sender: FrameSender<T>) -> RequestSender<T> {
        RequestSender {
            inner: Inner::Frames(Box::new(sender)),
        }
    }

    /// A sender whose messages come out of the returned stream, in order, up to `buffer`
    /// of them waiting: for test doubles and [`CallInvoker`](super::CallInvoker)s that answer
    /// without HTTP/2. The stream ends when the sender is closed or dropped.
    ///
    /// # Examples
    ///
    /// ```
    /// use grpc_runtime::RequestSender;
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let (mut tx, mut requests) = RequestSender::channel(4);
    /// tx.send("hi").await.unwrap();
    /// drop(tx);
    /// assert_eq!(requests.message().await.unwrap(), Some("hi"));
    /// assert_eq!(requests.message().await.unwrap(), None);
    /// # });
    /// ```
    pub fn channel(buffer: usize) -> (RequestSender<T>, Streaming<T>) {
        let (tx, mut rx) = mpsc::channel(buffer.max(1));
        let stream = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx).map(|m| m.map(Ok)));
        (
            RequestSender {
                inner: Inner::Channel(tx),
            },
            Streaming::from_stream(stream),
        )
    }

    /// Sends one request (an [`Outbound`] to choose per message whether it is compressed).
    ///
    /// # Errors
    ///
    /// `RESOURCE_EXHAUSTED` if the message is over the send limit (the call is then
    /// cancelled), or the reason the stream can no longer send (the server ended or reset
    /// the call: the response stream has its status), or `INTERNAL` after
    /// [`close`](RequestSender::close).
    ///
    /// # Cancel safety
    ///
    /// If the future is dropped, the message may have been partly written; the call is then
    /// unusable and should be dropped.
    pub async fn send(&mut self, message: impl Into<Outbound<T>>) -> Result<(), Status> {
        let message = message.into();
        match &mut self.inner {
            Inner::H2(sender) => {
                let mut frame = match sender.encoding.encode(message) {
                    Ok(frame) => frame,
                    Err(status) => {
                        lock(&sender.stream).send_reset(h2::Reason::CANCEL);
                        self.inner = Inner::Closed;
                        return Err(status);
                    }
                };
                if let Some(stats) = &sender.stats {
                    stats.out_frame(&frame, sender.encoding.compression);
                }
                super::call::count_sent(&sender.channelz);
                let stream = &sender.stream;
                poll_fn(|cx| transport::poll_send(&mut lock(stream), &mut frame, false, cx))
                    .await
                    .map_err(|e| transport::status_from_h2(&e))
            }
            Inner::Frames(sender) => {
                match sender.encoding.encode(message) {
                    Ok(frame) => sender.frames.send(Ok(frame)).await.map_err(|_| {
                        Status::cancelled("the call has ended; its response says how")
                    }),
                    Err(status) => {
                        // The sending task resets the attempts' streams and the call ends with
                        // this status.
                        let _ = sender.frames.send(Err(status.clone())).await;
                        self.inner = Inner::Closed;
                        Err(status)
                    }
                }
            }
            Inner::Channel(tx) => tx
                .send(message.into_inner())
                .await
                .map_err(|_| Status::cancelled("the call's receiver is gone")),
            Inner::Closed => Err(Status::internal("the request stream is closed")),
        }
    }

    /// Ends the request stream (gRPC-Go's `CloseSend`); later sends fail.
    pub fn close(&mut self) {
        if let Inner::H2(sender) = std::mem::replace(&mut self.inner, Inner::Closed) {
            sender.half_close();
        }
    }
}

impl<T> Drop for RequestSender<T> {
    fn drop(&mut self) {
        if let Inner::H2(sender) = &mut self.inner {
            sender.half_close();
        }
    }
}
