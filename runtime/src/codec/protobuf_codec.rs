//! [`ProtobufCodec`]: rust-protobuf 3.x messages, the default.

use std::fmt;
use std::marker::PhantomData;

use bytes::Bytes;
use protobuf::{CodedOutputStream, Message};

use super::{Codec, Decoder, EncodeBuf, Encoder};
use crate::status::Status;

/// The codec of rust-protobuf 3.x messages: encodes `E`, decodes `D`. Generated code uses it.
///
/// Zero-sized. Encoding computes the message's size first and writes it once, straight into
/// the frame; decoding parses from the received [`Bytes`] (`bytes` fields share them rather
/// than copy, with rust-protobuf's `tokio_bytes` option).
///
/// # Examples
///
/// ```
/// use grpc_runtime::codec::ProtobufCodec;
/// use protobuf::well_known_types::wrappers::{StringValue, UInt32Value};
///
/// // A client of a method taking a StringValue and answering a UInt32Value.
/// let codec = ProtobufCodec::<StringValue, UInt32Value>::new();
/// # let _ = codec;
/// ```
pub struct ProtobufCodec<E, D> {
    _marker: PhantomData<fn(E) -> D>,
}

impl<E, D> ProtobufCodec<E, D> {
    /// The codec (it has no state).
    pub const fn new() -> Self {
        ProtobufCodec {
            _marker: PhantomData,
        }
    }
}

impl<E, D> Default for ProtobufCodec<E, D> {
    fn default() -> Self {
        ProtobufCodec::new()
    }
}

impl<E, D> Clone for ProtobufCodec<E, D> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<E, D> Copy for ProtobufCodec<E, D> {}

impl<E, D> fmt::Debug for ProtobufCodec<E, D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ProtobufCodec")
    }
}

impl<E: Message, D: Message> Codec for ProtobufCodec<E, D> {
    type Encode = E;
    type Decode = D;
    type Encoder = ProtobufEncoder<E>;
    type Decoder = ProtobufDecoder<D>;

    fn encoder(&mut self) -> ProtobufEncoder<E> {
        ProtobufEncoder(PhantomData)
    }

    fn decoder(&mut self) -> ProtobufDecoder<D> {
        ProtobufDecoder(PhantomData)
    }
}

/// [`ProtobufCodec`]'s encoder.
pub struct ProtobufEncoder<T>(PhantomData<fn(T)>);

impl<T> fmt::Debug for ProtobufEncoder<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ProtobufEncoder")
    }
}

impl<T: Message> Encoder for ProtobufEncoder<T> {
    type Item = T;

    fn encode(&mut self, item: &T, buf: &mut EncodeBuf<'_>) -> Result<(), Status> {
        // Sizes first (cached in the message), so the bytes are written once, into room
        // reserved to the byte.
        let size = item.compute_size();
        let size = usize::try_from(size)
            .map_err(|_| Status::resource_exhausted("message too large to encode"))?;
        buf.reserve(size);
        let mut stream = CodedOutputStream::vec(buf.vec());
        item.write_to_with_cached_sizes(&mut stream)
            .and_then(|()| stream.flush())
            .map_err(|e| Status::internal(format!("failed to encode message: {e}")))
    }
}

/// [`ProtobufCodec`]'s decoder.
pub struct ProtobufDecoder<T>(PhantomData<fn() -> T>);

impl<T> fmt::Debug for ProtobufDecoder<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ProtobufDecoder")
    }
}

impl<T: Message> Decoder for ProtobufDecoder<T> {
    type Item = T;

    fn decode(&mut self, buf: Bytes) -> Result<T, Status> {
        T::parse_from_tokio_bytes(&buf)
            .map_err(|e| Status::internal(format!("failed to decode message: {e}")))
    }
}
