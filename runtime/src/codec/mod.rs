//! Messages through a codec: how typed messages become the bytes of gRPC frames and back.
//!
//! A [`Codec`] pairs an [`Encoder`] (messages this side sends) with a [`Decoder`] (messages
//! it receives). The runtime does the rest: the 5-byte length prefix, compression, size
//! limits. Three codecs come with the crate:
//!
//! | codec | messages | feature |
//! | --- | --- | --- |
//! | [`ProtobufCodec`] | rust-protobuf 3.x (`protobuf::Message`); what generated code uses | always |
//! | [`BytesCodec`] | raw [`Bytes`], not decoded: a proxy forwards them as they came | always |
//! | `ProstCodec` | [prost](https://docs.rs/prost) messages | `prost` |
//!
//! Codecs are usually zero-sized: a call's encoder and decoder cost no allocation (the
//! runtime keeps them in place, or boxed when zero-sized, which allocates nothing).
//!
//! # Examples
//!
//! A codec for UTF-8 strings sent as raw bytes:
//!
//! ```
//! use bytes::{BufMut, Bytes};
//! use grpc_runtime::codec::{Codec, Decoder, EncodeBuf, Encoder};
//! use grpc_runtime::Status;
//!
//! #[derive(Clone, Copy, Debug, Default)]
//! struct Utf8;
//!
//! impl Encoder for Utf8 {
//!     type Item = String;
//!     fn encode(&mut self, item: &String, buf: &mut EncodeBuf<'_>) -> Result<(), Status> {
//!         buf.put_slice(item.as_bytes());
//!         Ok(())
//!     }
//! }
//!
//! impl Decoder for Utf8 {
//!     type Item = String;
//!     fn decode(&mut self, buf: Bytes) -> Result<String, Status> {
//!         String::from_utf8(buf.to_vec()).map_err(|e| Status::internal(e.to_string()))
//!     }
//! }
//!
//! impl Codec for Utf8 {
//!     type Encode = String;
//!     type Decode = String;
//!     type Encoder = Utf8;
//!     type Decoder = Utf8;
//!     fn encoder(&mut self) -> Utf8 { Utf8 }
//!     fn decoder(&mut self) -> Utf8 { Utf8 }
//! }
//! ```

mod bytes_codec;
pub(crate) mod framing;
mod prepared;
#[cfg(feature = "prost")]
mod prost_codec;
mod protobuf_codec;

use bytes::Bytes;
use bytes::buf::UninitSlice;

use crate::status::Status;

pub use bytes_codec::BytesCodec;
pub use framing::{DEFAULT_MAX_RECV_MESSAGE_SIZE, DEFAULT_MAX_SEND_MESSAGE_SIZE};
pub use prepared::PreparedMessage;
#[cfg(feature = "prost")]
#[cfg_attr(docsrs, doc(cfg(feature = "prost")))]
pub use prost_codec::ProstCodec;
pub use protobuf_codec::ProtobufCodec;

/// Turns messages of one type into bytes.
pub trait Encoder: Send + 'static {
    /// The messages it encodes.
    type Item;

    /// Appends the encoding of `item` to `buf`.
    ///
    /// # Errors
    ///
    /// A status (usually `INTERNAL`) that fails the call.
    fn encode(&mut self, item: &Self::Item, buf: &mut EncodeBuf<'_>) -> Result<(), Status>;
}

/// Turns the bytes of one message into a message.
pub trait Decoder: Send + 'static {
    /// The messages it decodes.
    type Item;

    /// Decodes one whole message (already decompressed and size-checked).
    ///
    /// # Errors
    ///
    /// A status (usually `INTERNAL`) that fails the call.
    fn decode(&mut self, buf: Bytes) -> Result<Self::Item, Status>;
}

/// A pair of encoder and decoder for one side of a method: on a client, it encodes requests
/// and decodes responses; on a server, the other way round. See the [module docs](self).
pub trait Codec: Send + 'static {
    /// The messages this side sends.
    type Encode: Send + 'static;
    /// The messages this side receives.
    type Decode: Send + 'static;
    /// Its encoder.
    type Encoder: Encoder<Item = Self::Encode>;
    /// Its decoder.
    type Decoder: Decoder<Item = Self::Decode>;

    /// The encoder of one call.
    fn encoder(&mut self) -> Self::Encoder;
    /// The decoder of one call.
    fn decoder(&mut self) -> Self::Decoder;
}

/// The buffer an [`Encoder`] writes one message into ([`bytes::BufMut`]).
///
/// It holds the frame being built; what an encoder appends becomes the message's bytes.
/// An encoder that knows the message's size should [`reserve`](EncodeBuf::reserve) it
/// first: the frame is then allocated once, to the byte.
#[derive(Debug)]
pub struct EncodeBuf<'a> {
    /// The frame goes at the end of what `buf` holds (other frames, in a batch).
    buf: &'a mut Vec<u8>,
    /// Whether the frame prefix's room is in `buf` yet. Written on the first reserve or
    /// write, so that a reserve sizes the one allocation for prefix and message together.
    started: bool,
}

impl<'a> EncodeBuf<'a> {
    /// The frame is appended to what `buf` holds.
    pub(crate) fn new(buf: &'a mut Vec<u8>) -> EncodeBuf<'a> {
        EncodeBuf {
            buf,
            started: false,
        }
    }

    fn start(&mut self, additional: usize) {
        if !self.started {
            self.started = true;
            let len = framing::HEADER_LEN.saturating_add(additional);
            if self.buf.capacity() == 0 {
                // A large frame's buffer comes from the pool (its pages already mapped: no
                // page faults while the encoder fills it) and goes back once h2 has sent it.
                *self.buf = crate::mem::vec_with_capacity(len);
            } else if self.buf.is_empty() {
                self.buf.reserve_exact(len);
            } else {
                // After other frames: grown as a vector grows, not to the byte each time.
                self.buf.reserve(len);
            }
            self.buf.extend_from_slice(&[0; framing::HEADER_LEN]);
        }
    }

    /// Reserves room for at least `additional` more bytes (say, the message's known size).
    pub fn reserve(&mut self, additional: usize) {
        if self.started {
            self.buf.reserve(additional);
        } else {
            self.start(additional);
        }
    }

    /// The underlying vector, for encoders that write into a `Vec<u8>` (rust-protobuf's
    /// `CodedOutputStream::vec`). Append only: the bytes already in it belong to the frame.
    pub(crate) fn vec(&mut self) -> &mut Vec<u8> {
        self.start(0);
        self.buf
    }

    /// Makes sure the prefix's room is there (an empty message writes nothing).
    pub(crate) fn finish(mut self) {
        self.start(0);
    }
}

// SAFETY: every method forwards to `Vec<u8>`'s own `BufMut` implementation, after writing
// the prefix's room (which only appends).
unsafe impl bytes::BufMut for EncodeBuf<'_> {
    fn remaining_mut(&self) -> usize {
        self.buf.remaining_mut()
    }

    unsafe fn advance_mut(&mut self, cnt: usize) {
        self.start(0);
        // SAFETY: the caller's contract is `Vec<u8>`'s, which this forwards to.
        unsafe { self.buf.advance_mut(cnt) }
    }

    fn chunk_mut(&mut self) -> &mut UninitSlice {
        self.start(0);
        self.buf.chunk_mut()
    }

    fn put_slice(&mut self, src: &[u8]) {
        self.start(src.len());
        self.buf.extend_from_slice(src);
    }
}

/// A message with per-message send options: whether to compress it when the call
/// compresses.
///
/// Client-streaming calls take streams of anything that converts into an `Outbound<M>`
/// (`M` itself does), so single messages of a compressed stream can go out uncompressed.
///
/// # Examples
///
/// ```
/// use grpc_runtime::codec::Outbound;
/// use protobuf::well_known_types::empty::Empty;
///
/// // On a call sent with gzip: the first message compressed, the second not.
/// let messages = vec![Outbound::new(Empty::new()), Outbound::uncompressed(Empty::new())];
/// assert!(!messages[1].is_compressed());
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Outbound<M> {
    message: M,
    compress: bool,
}

impl<M> Outbound<M> {
    /// `message`, compressed if the call compresses.
    pub fn new(message: M) -> Outbound<M> {
        Outbound {
            message,
            compress: true,
        }
    }

    /// `message`, never compressed.
    pub fn uncompressed(message: M) -> Outbound<M> {
        Outbound {
            message,
            compress: false,
        }
    }

    /// Whether the message is compressed when the call compresses.
    pub fn is_compressed(&self) -> bool {
        self.compress
    }

    /// The message.
    pub fn get_ref(&self) -> &M {
        &self.message
    }

    /// The message.
    pub fn into_inner(self) -> M {
        self.message
    }
}

impl<M> From<M> for Outbound<M> {
    fn from(message: M) -> Outbound<M> {
        Outbound::new(message)
    }
}

/// Marker in a unary call's [`Request`](crate::Request) (server side) or
/// [`Response`](crate::Response) (client side) extensions: the message arrived compressed.
/// Streams tell it per message with
/// [`Streaming::last_message_compressed`](crate::Streaming::last_message_compressed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MessageCompressed;
