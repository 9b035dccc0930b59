//! [`BytesCodec`]: messages as raw bytes, not decoded.

use bytes::{BufMut, Bytes};

use super::{Codec, Decoder, EncodeBuf, Encoder};
use crate::status::Status;

/// Messages as raw bytes: sent as given, received as they arrived (after decompression).
///
/// For proxies and gateways that forward messages without knowing their types, with
/// [`ServerBuilder::unknown_service_handler`](crate::server::ServerBuilder::unknown_service_handler)
/// on the server side.
///
/// # Examples
///
/// ```
/// use bytes::Bytes;
/// use grpc_runtime::codec::{BytesCodec, Codec, Decoder};
///
/// let mut codec = BytesCodec;
/// let raw = codec.decoder().decode(Bytes::from_static(b"\x0a\x02hi")).unwrap();
/// assert_eq!(&raw[..], b"\x0a\x02hi");
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct BytesCodec;

impl Encoder for BytesCodec {
    type Item = Bytes;

    fn encode(&mut self, item: &Bytes, buf: &mut EncodeBuf<'_>) -> Result<(), Status> {
        buf.put_slice(item);
        Ok(())
    }
}

impl Decoder for BytesCodec {
    type Item = Bytes;

    fn decode(&mut self, buf: Bytes) -> Result<Bytes, Status> {
        Ok(buf)
    }
}

impl Codec for BytesCodec {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = BytesCodec;
    type Decoder = BytesCodec;

    fn encoder(&mut self) -> BytesCodec {
        BytesCodec
    }

    fn decoder(&mut self) -> BytesCodec {
        BytesCodec
    }
}
