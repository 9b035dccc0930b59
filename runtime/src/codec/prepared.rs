//! [`PreparedMessage`]: a message encoded once, sent on many streams (gRPC-Go's
//! `PreparedMsg`).

use bytes::{Bytes, BytesMut};

use super::Encoder;
use super::framing::{self, HEADER_LEN, Kind};
use crate::compression::CompressionEncoding;
use crate::status::Status;

/// A response message encoded (and, if asked, compressed) once, to send on any number of
/// server streams with [`ResponseSender::send_prepared`](crate::ResponseSender::send_prepared):
/// a fan-out of one message to many subscribers costs one encode, and every stream hands
/// HTTP/2 a reference to the same bytes (gRPC-Go's `PreparedMsg`). Cheap to clone.
///
/// A stream whose call compresses with the encoding the message was
/// [compressed](PreparedMessage::compressed) with sends the compressed form; any other
/// stream sends it uncompressed, which every client accepts.
///
/// # Examples
///
/// ```no_run
/// use grpc_runtime::codec::{PreparedMessage, ProtobufCodec, Codec};
/// use grpc_runtime::{ResponseSender, Status};
/// use protobuf::well_known_types::wrappers::StringValue;
///
/// async fn broadcast(
///     subscribers: &mut [ResponseSender<StringValue>],
///     news: &StringValue,
/// ) -> Result<(), Status> {
///     let mut codec = ProtobufCodec::<StringValue, StringValue>::new();
///     let prepared = PreparedMessage::encode(&mut codec.encoder(), news)?;
///     for tx in subscribers {
///         tx.send_prepared(&prepared).await?;
///     }
///     Ok(())
/// }
/// ```
#[derive(Clone, Debug)]
pub struct PreparedMessage {
    /// The frame (prefix and message), uncompressed.
    plain: Bytes,
    /// The frame compressed, and with what.
    compressed: Option<(CompressionEncoding, Bytes)>,
}

impl PreparedMessage {
    /// Encodes `message` with `encoder` (a codec's, as [`Codec::encoder`](super::Codec::encoder)
    /// gives).
    ///
    /// # Errors
    ///
    /// The encoder's error, or `RESOURCE_EXHAUSTED` for a message over 4 GiB.
    pub fn encode<E: Encoder + ?Sized>(
        encoder: &mut E,
        message: &E::Item,
    ) -> Result<PreparedMessage, Status> {
        let plain = framing::encode(
            encoder,
            message,
            None,
            u32::MAX as usize,
            Kind::Response,
            &mut BytesMut::new(),
        )?;
        Ok(PreparedMessage {
            plain,
            compressed: None,
        })
    }

    /// Also prepares the message compressed with `encoding`, for streams whose calls
    /// compress with it.
    ///
    /// # Errors
    ///
    /// `INTERNAL` if compression fails.
    pub fn compressed(mut self, encoding: CompressionEncoding) -> Result<PreparedMessage, Status> {
        let mut frame = BytesMut::new();
        frame.extend_from_slice(&[1, 0, 0, 0, 0]);
        crate::compression::compress(encoding, self.message(), &mut frame).map_err(|e| {
            Status::internal(format!("failed to compress message with {encoding}: {e}"))
        })?;
        let len = u32::try_from(frame.len() - HEADER_LEN)
            .map_err(|_| Status::resource_exhausted("compressed message over 4 GiB"))?;
        frame[1..HEADER_LEN].copy_from_slice(&len.to_be_bytes());
        self.compressed = Some((encoding, frame.freeze()));
        Ok(self)
    }

    /// The encoded message, uncompressed (without the frame's prefix).
    pub fn message(&self) -> &[u8] {
        &self.plain[HEADER_LEN..]
    }

    /// The frame to send on a call that compresses with `compression`: the compressed one
    /// if it was prepared with that encoding, else the plain one.
    pub(crate) fn frame_for(&self, compression: Option<CompressionEncoding>) -> &Bytes {
        match (&self.compressed, compression) {
            (Some((prepared, frame)), Some(call)) if *prepared == call => frame,
            _ => &self.plain,
        }
    }
}
