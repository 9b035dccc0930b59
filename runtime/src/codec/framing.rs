//! gRPC's length-prefixed framing.
//!
//! Each message travels as a 5-byte prefix (a compressed flag byte and a big-endian `u32`
//! length) followed by the (possibly compressed) message bytes. Encoding writes the message
//! straight into the outgoing frame after the prefix; decoding checks the announced length
//! against the receive limit before buffering anything, and hands out message bodies as
//! slices of the received chunks without copying.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::{EncodeBuf, Encoder, Outbound};
use crate::compression::{self, CompressionEncoding, Received};
use crate::status::Status;

/// Default limit on a received message: 4 MiB (gRPC-Go's `defaultServerMaxReceiveMessageSize`).
pub const DEFAULT_MAX_RECV_MESSAGE_SIZE: usize = 4 * 1024 * 1024;
/// Default limit on a sent message: `i32::MAX` bytes, as in gRPC-Go.
pub const DEFAULT_MAX_SEND_MESSAGE_SIZE: usize = i32::MAX as usize;

pub(crate) const HEADER_LEN: usize = 5;

/// Which messages a frame carries, for error messages that say which side's limit a message
/// broke.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Request,
    Response,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Request => "request",
            Kind::Response => "response",
        }
    }
}

/// Encodes one streamed request message as a frame, compressed if the call compresses and
/// the message allows it. It takes the message, so a sender never holds it across an await
/// (it need not be `Send`).
pub(crate) fn encode_request<E: Encoder + ?Sized>(
    encoder: &mut E,
    message: Outbound<E::Item>,
    compression: Option<CompressionEncoding>,
    max_size: usize,
    scratch: &mut BytesMut,
) -> Result<Bytes, Status> {
    encode(
        encoder,
        message.get_ref(),
        compression.filter(|_| message.is_compressed()),
        max_size,
        Kind::Request,
        scratch,
    )
}

/// Encodes `item` as one frame (prefix and body), compressing it with `compression` if set.
///
/// The encoder writes the message once, straight after the prefix. `scratch` serves
/// compression only (the plain bytes are compressed from the frame into it).
pub(crate) fn encode<E: Encoder + ?Sized>(
    encoder: &mut E,
    item: &E::Item,
    compression: Option<CompressionEncoding>,
    max_size: usize,
    kind: Kind,
    scratch: &mut BytesMut,
) -> Result<Bytes, Status> {
    let mut frame = Vec::new();
    encode_plain_into(encoder, item, max_size, kind, &mut frame)?;
    let Some(enc) = compression else {
        return Ok(crate::mem::freeze(frame));
    };
    let compressed = compress_frame(enc, &frame, scratch);
    crate::mem::recycle(frame);
    compressed?;
    Ok(scratch.split().freeze())
}

/// Appends `item`'s frame to `out` (after the frames it holds: a batch), compressed with
/// `compression` if set. On error `out` is left as it was.
pub(crate) fn encode_into<E: Encoder + ?Sized>(
    encoder: &mut E,
    item: &E::Item,
    compression: Option<CompressionEncoding>,
    max_size: usize,
    kind: Kind,
    scratch: &mut BytesMut,
    out: &mut Vec<u8>,
) -> Result<(), Status> {
    let base = encode_plain_into(encoder, item, max_size, kind, out)?;
    let Some(enc) = compression else {
        return Ok(());
    };
    let compressed = compress_frame(enc, &out[base..], scratch);
    out.truncate(base);
    compressed?;
    out.extend_from_slice(scratch);
    Ok(())
}

/// Messages of one stream encoded back to back, to go to h2 together as one DATA frame.
///
/// What it buys: h2 writes every DATA frame over 256 bytes with a system call of its own, so
/// a stream of 1 KiB messages sent one frame each made a server-streaming handler 7x slower
/// than tonic (which gathers what its message stream yields at once). The sender decides
/// when a batch goes: once [`is_full`](Batch::is_full), or when its source has nothing more
/// ready (the server's handler task yields; the client's request stream is pending).
#[derive(Debug, Default)]
pub(crate) struct Batch {
    /// Exact-size for a lone message (a ping-pong's: made and freed as `Bytes::from(Vec)`
    /// does, no pool round trip); a pooled [`BATCH_CAPACITY`] buffer once a second joins.
    buf: Vec<u8>,
    /// The size of the last frame pushed: the guess for the next one's.
    last: usize,
}

/// A batch goes to h2 once it holds this much (tonic's yield threshold and gRPC-Go's write
/// buffer are 32 KiB too).
pub(crate) const BATCH_BYTES: usize = 32 * 1024;

/// A batch's buffer: room for a full batch and a message of up to 16 KiB more without
/// growing (a pooled size class of 64 KiB).
const BATCH_CAPACITY: usize = BATCH_BYTES + 16 * 1024;

impl Batch {
    pub(crate) fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Whether the batch should go to h2 now: when another message the size of the last
    /// one would take it over [`BATCH_BYTES`]. Stopping short of the mark, not past it,
    /// keeps a batch of small messages within two 16 KiB DATA frames (h2 writes each frame
    /// with a system call of its own): 32 frames of 1 KiB went out as 16 + 16 + 0.2 KiB,
    /// 31 go as 16 + 15.9 KiB.
    pub(crate) fn is_full(&self) -> bool {
        self.buf.len() + self.last > BATCH_BYTES
    }

    /// Encodes `item` at the end of the batch, then hands its frame to `count` (stats,
    /// budgets); if either fails, the batch is left as it was.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn push<E: Encoder + ?Sized>(
        &mut self,
        encoder: &mut E,
        item: &E::Item,
        compression: Option<CompressionEncoding>,
        max_size: usize,
        kind: Kind,
        scratch: &mut BytesMut,
        count: impl FnOnce(&[u8]) -> Result<(), Status>,
    ) -> Result<(), Status> {
        if !self.buf.is_empty() && self.buf.capacity() < BATCH_CAPACITY {
            let mut pooled = crate::mem::vec_with_capacity(BATCH_CAPACITY);
            pooled.extend_from_slice(&self.buf);
            crate::mem::recycle(std::mem::replace(&mut self.buf, pooled));
        }
        let base = self.buf.len();
        let pushed = encode_into(
            encoder,
            item,
            compression,
            max_size,
            kind,
            scratch,
            &mut self.buf,
        )
        .and_then(|()| count(&self.buf[base..]));
        match pushed {
            Ok(()) => self.last = self.buf.len() - base,
            Err(_) => self.buf.truncate(base),
        }
        pushed
    }

    /// The batch's bytes, leaving it empty.
    pub(crate) fn take(&mut self) -> Bytes {
        crate::mem::freeze(std::mem::take(&mut self.buf))
    }

    /// Drops what the batch holds.
    pub(crate) fn clear(&mut self) {
        self.buf = Vec::new();
    }
}

/// Appends `item`'s uncompressed frame to `out`; returns where it starts. On error `out` is
/// left as it was.
fn encode_plain_into<E: Encoder + ?Sized>(
    encoder: &mut E,
    item: &E::Item,
    max_size: usize,
    kind: Kind,
    out: &mut Vec<u8>,
) -> Result<usize, Status> {
    let base = out.len();
    let mut buf = EncodeBuf::new(out);
    let encoded = encoder.encode(item, &mut buf);
    buf.finish();
    let size = match (encoded, out.len().checked_sub(base + HEADER_LEN)) {
        (Ok(()), Some(size)) if size <= max_size => size,
        (result, size) => {
            out.truncate(base);
            result?;
            let Some(size) = size else {
                return Err(Status::internal("encoder removed the frame prefix"));
            };
            return Err(Status::resource_exhausted(format!(
                "trying to send {} message larger than max ({size} vs. {max_size})",
                kind.as_str()
            )));
        }
    };
    out[base + 1..base + HEADER_LEN].copy_from_slice(&(size as u32).to_be_bytes());
    Ok(base)
}

/// Compresses the plain `frame` (prefix and message) into `scratch`, as a compressed frame.
fn compress_frame(
    enc: CompressionEncoding,
    frame: &[u8],
    scratch: &mut BytesMut,
) -> Result<(), Status> {
    scratch.clear();
    scratch.put_bytes(0, HEADER_LEN);
    compression::compress(enc, &frame[HEADER_LEN..], scratch)
        .map_err(|e| Status::internal(format!("failed to compress message with {enc}: {e}")))?;
    let len = scratch.len() - HEADER_LEN;
    scratch[0] = 1;
    scratch[1..HEADER_LEN].copy_from_slice(&(len as u32).to_be_bytes());
    Ok(())
}

/// The most a decoder allocates for a message before its bytes arrive, unless the server's
/// budget accounts for the message.
const UPFRONT_MAX: usize = 1024 * 1024;

/// Splits a stream of byte chunks into message bodies.
///
/// A message that lies whole inside one received chunk (the usual case) is sliced out of it
/// without copying; only messages split across chunks are assembled in a buffer: a pooled
/// one for large messages ([`crate::mem`]), which returns to the pool once the message and
/// every slice of it are dropped.
#[derive(Debug)]
pub(crate) struct FrameDecoder {
    /// Bytes of a partial message, assembled across chunks. Never non-empty together with
    /// `chunk`: `chunk` comes after it.
    buf: BytesMut,
    /// A partial frame of at least [`crate::mem::MIN_POOLED`] bytes, prefix first, in a
    /// pooled buffer: used instead of `buf` (never both non-empty), and like it never
    /// non-empty together with `chunk`.
    large: Vec<u8>,
    /// The unread rest of the last chunk.
    chunk: Bytes,
    max_size: usize,
    encoding: Received,
    kind: Kind,
    last_compressed: bool,
    /// The last message's length on the wire after its prefix (for stats).
    last_len: usize,
    /// The server's budget, if large messages reserve from one; and the reservation of the
    /// message being assembled.
    quota: Option<std::sync::Arc<crate::quota::MemoryQuota>>,
    reserved: Option<crate::quota::Reservation>,
}

impl FrameDecoder {
    pub(crate) fn new(max_size: usize, encoding: Received, kind: Kind) -> FrameDecoder {
        FrameDecoder {
            buf: BytesMut::new(),
            large: Vec::new(),
            chunk: Bytes::new(),
            max_size,
            encoding,
            kind,
            last_compressed: false,
            last_len: 0,
            quota: None,
            reserved: None,
        }
    }

    /// Makes messages over [`RESERVE_ABOVE`](crate::quota::RESERVE_ABOVE) reserve their size
    /// from `quota` before they are buffered.
    pub(crate) fn with_quota(mut self, quota: std::sync::Arc<crate::quota::MemoryQuota>) -> Self {
        self.quota = Some(quota);
        self
    }

    /// How much of a frame of `want` bytes to allocate before its bytes arrive: all of it
    /// when the server's budget accounts for it, else at most [`UPFRONT_MAX`] (the buffer
    /// grows as the rest arrives). A peer announcing a large message and sending little of
    /// it costs what it sent, not what it announced (found by the `frame_decoder` fuzz
    /// target with a large limit); a whole allocation saves the copies of growing for the
    /// messages that are accounted.
    fn upfront(&self, want: usize) -> usize {
        if self.reserved.is_some() {
            want
        } else {
            want.min(UPFRONT_MAX)
        }
    }

    /// Reserves room for a partial message of `len` body bytes, if it needs a reservation
    /// and has none yet.
    fn reserve_for(&mut self, len: usize) -> Result<(), Status> {
        if let Some(quota) = &self.quota
            && self.reserved.is_none()
            && len > crate::quota::RESERVE_ABOVE
        {
            self.reserved = Some(crate::quota::Reservation::take(quota, HEADER_LEN + len)?);
        }
        Ok(())
    }

    /// Whether the last message returned by `next_message` was compressed.
    /// The last message's length on the wire, without its prefix (compressed, if it was).
    pub(crate) fn last_len(&self) -> usize {
        self.last_len
    }

    pub(crate) fn last_compressed(&self) -> bool {
        self.last_compressed
    }

    /// Adds received bytes.
    pub(crate) fn push(&mut self, chunk: Bytes) {
        if self.buf.is_empty() && self.large.is_empty() && self.chunk.is_empty() {
            self.chunk = chunk;
        } else {
            self.spill();
            self.append(&chunk);
        }
    }

    /// Appends to the partial frame's buffer.
    fn append(&mut self, bytes: &[u8]) {
        if self.large.is_empty() {
            self.buf.extend_from_slice(bytes);
        } else {
            self.large.extend_from_slice(bytes);
        }
    }

    /// Moves the unread chunk into the assembly buffer.
    fn spill(&mut self) {
        if !self.chunk.is_empty() {
            let chunk = std::mem::take(&mut self.chunk);
            self.append(&chunk);
        }
    }

    /// Makes room for the rest of a partial frame of `len` body bytes, whose start is in
    /// `buf` or `chunk` (the other one empty), and moves that start into the buffer it
    /// assembles in.
    fn start_partial(&mut self, len: usize) -> Result<(), Status> {
        self.reserve_for(len)?;
        let want = self.upfront(HEADER_LEN + len);
        if HEADER_LEN + len >= crate::mem::MIN_POOLED {
            self.large = crate::mem::vec_with_capacity(want);
            self.large.extend_from_slice(&self.buf);
            self.buf.clear();
        } else {
            self.buf.reserve(want.saturating_sub(self.buf.len()));
        }
        self.spill();
        Ok(())
    }

    /// Whether a partial frame is buffered (an error if the stream ends here).
    pub(crate) fn has_partial(&self) -> bool {
        !self.buf.is_empty() || !self.large.is_empty() || !self.chunk.is_empty()
    }

    /// The bytes held (`len`) and allocated (`capacity`) for partial frames, for the fuzz
    /// targets' check that the decoder never buffers past its limit.
    #[cfg(feature = "fuzzing")]
    pub(crate) fn buffered(&self) -> (usize, usize) {
        (
            self.buf.len() + self.large.len() + self.chunk.len(),
            self.buf.capacity() + self.large.capacity() + self.chunk.len(),
        )
    }

    /// Reads and checks a frame prefix: `(compressed, body length)`.
    fn header(&self, bytes: &[u8]) -> Result<Option<(bool, usize)>, Status> {
        if bytes.len() < HEADER_LEN {
            return Ok(None);
        }
        let flag = bytes[0];
        let len = u32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]) as usize;
        if flag > 1 {
            return Err(Status::internal(format!(
                "invalid message compressed-flag {flag} (must be 0 or 1)"
            )));
        }
        if len > self.max_size {
            return Err(Status::resource_exhausted(format!(
                "received {} message larger than max ({len} vs. {})",
                self.kind.as_str(),
                self.max_size
            )));
        }
        Ok(Some((flag == 1, len)))
    }

    /// The next complete message body (decompressed), if one is buffered.
    ///
    /// # Errors
    ///
    /// `RESOURCE_EXHAUSTED` for a message over the limit (checked on the prefix, before the
    /// body is buffered), `INTERNAL` for a bad flag, a compressed message without
    /// `grpc-encoding`, or a body that does not decompress.
    pub(crate) fn next_message(&mut self) -> Result<Option<Bytes>, Status> {
        let (compressed, body) = if !self.large.is_empty() {
            match self.header(&self.large)? {
                Some((compressed, len)) if self.large.len() >= HEADER_LEN + len => {
                    self.reserved = None;
                    // The message and any bytes after it stay slices of the pooled buffer.
                    let whole = crate::mem::freeze(std::mem::take(&mut self.large));
                    self.chunk = whole.slice(HEADER_LEN + len..);
                    (compressed, whole.slice(HEADER_LEN..HEADER_LEN + len))
                }
                _ => return Ok(None),
            }
        } else if self.buf.is_empty() {
            // Fast path: slice a whole message out of the chunk.
            match self.header(&self.chunk)? {
                Some((compressed, len)) if self.chunk.len() >= HEADER_LEN + len => {
                    let mut frame = self.chunk.split_to(HEADER_LEN + len);
                    frame.advance(HEADER_LEN);
                    (compressed, frame)
                }
                Some((_, len)) => {
                    self.start_partial(len)?;
                    return Ok(None);
                }
                None => {
                    self.spill();
                    return Ok(None);
                }
            }
        } else {
            match self.header(&self.buf)? {
                Some((compressed, len)) if self.buf.len() >= HEADER_LEN + len => {
                    self.buf.advance(HEADER_LEN);
                    // Complete: handed on, no longer ours to count.
                    self.reserved = None;
                    (compressed, self.buf.split_to(len).freeze())
                }
                Some((_, len)) => {
                    self.start_partial(len)?;
                    return Ok(None);
                }
                None => return Ok(None),
            }
        };
        self.last_compressed = compressed;
        self.last_len = body.len();
        if !compressed {
            return Ok(Some(body));
        }
        match self.encoding {
            Received::Identity => Err(Status::internal(
                "compressed flag set on a message but no grpc-encoding was sent",
            )),
            Received::Known(enc) => compression::decompress(enc, &body, self.max_size).map(Some),
            Received::Unsupported => Err(Status::internal(
                "message compressed with a grpc-encoding this side does not support",
            )),
        }
    }
}

impl Drop for FrameDecoder {
    fn drop(&mut self) {
        // A call that ended mid-message gives its pooled buffer back.
        if self.large.capacity() > 0 {
            crate::mem::recycle(std::mem::take(&mut self.large));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Code;
    use crate::codec::{Codec, Decoder, ProtobufCodec};
    use protobuf::well_known_types::wrappers::StringValue;

    fn encode(
        m: &StringValue,
        c: Option<CompressionEncoding>,
        max: usize,
        scratch: &mut BytesMut,
    ) -> Result<Bytes, Status> {
        let mut encoder = ProtobufCodec::<StringValue, StringValue>::new().encoder();
        super::encode(&mut encoder, m, c, max, Kind::Request, scratch)
    }

    fn decode<T: protobuf::Message>(body: Bytes) -> Result<T, Status> {
        ProtobufCodec::<T, T>::new().decoder().decode(body)
    }

    fn msg(s: &str) -> StringValue {
        let mut m = StringValue::new();
        m.value = s.to_owned();
        m
    }

    #[test]
    fn frame_layout() {
        let mut scratch = BytesMut::new();
        let frame = encode(&msg("hi"), None, usize::MAX, &mut scratch).unwrap();
        assert_eq!(&frame[..], b"\x00\x00\x00\x00\x04\x0a\x02hi");
        let empty = encode(&StringValue::new(), None, usize::MAX, &mut scratch).unwrap();
        assert_eq!(&empty[..], b"\x00\x00\x00\x00\x00");
    }

    #[test]
    fn a_batch_of_small_messages_stops_short_of_its_mark() {
        // 1 KiB messages: 1,024 value bytes, 3 of protobuf, 5 of prefix.
        let m = msg(&"x".repeat(1024));
        let mut encoder = ProtobufCodec::<StringValue, StringValue>::new().encoder();
        let mut scratch = BytesMut::new();
        let mut batch = Batch::default();
        let mut pushed = 0;
        while !batch.is_full() {
            batch
                .push(
                    &mut encoder,
                    &m,
                    None,
                    usize::MAX,
                    Kind::Response,
                    &mut scratch,
                    |frame| {
                        assert_eq!(frame.len(), 1032);
                        Ok(())
                    },
                )
                .unwrap();
            pushed += 1;
        }
        // 31 frames (31,992 bytes) fit in 32 KiB; a 32nd would not.
        assert_eq!(pushed, 31);
        let bytes = batch.take();
        assert_eq!(bytes.len(), 31 * 1032);
        assert!(batch.is_empty());
        let (first, rest) = bytes.split_at(1032);
        assert_eq!(&first[..5], b"\x00\x00\x00\x04\x03");
        assert_eq!(rest.len(), 30 * 1032);

        // One message over the mark fills a batch by itself.
        let big = msg(&"y".repeat(40 * 1024));
        let mut batch = Batch::default();
        batch
            .push(
                &mut encoder,
                &big,
                None,
                usize::MAX,
                Kind::Response,
                &mut scratch,
                |_| Ok(()),
            )
            .unwrap();
        assert!(batch.is_full());
    }

    #[test]
    fn split_across_chunks_and_joined() {
        let mut scratch = BytesMut::new();
        let a = encode(&msg("first"), None, usize::MAX, &mut scratch).unwrap();
        let b = encode(&msg("second"), None, usize::MAX, &mut scratch).unwrap();
        let all = [a, b].concat();
        for split in 0..all.len() {
            let mut dec = FrameDecoder::new(1024, Received::Identity, Kind::Request);
            let mut out = Vec::new();
            for chunk in [&all[..split], &all[split..]] {
                dec.push(Bytes::copy_from_slice(chunk));
                while let Some(body) = dec.next_message().unwrap() {
                    out.push(decode::<StringValue>(body).unwrap().value);
                }
            }
            assert_eq!(out, ["first", "second"]);
            assert!(!dec.has_partial());
        }
    }

    #[test]
    fn large_messages_assemble_in_a_pooled_buffer() {
        let mut scratch = BytesMut::new();
        let big = "x".repeat(100_000);
        let frames = [
            encode(&msg(&big), None, usize::MAX, &mut scratch).unwrap(),
            encode(&msg("after"), None, usize::MAX, &mut scratch).unwrap(),
            encode(&msg(&big[..50_000]), None, usize::MAX, &mut scratch).unwrap(),
        ];
        let all = frames.concat();
        for chunk_len in [1000, 16 * 1024, 99_000, all.len()] {
            let mut dec = FrameDecoder::new(1 << 20, Received::Identity, Kind::Response);
            let mut out = Vec::new();
            for chunk in all.chunks(chunk_len) {
                dec.push(Bytes::copy_from_slice(chunk));
                while let Some(body) = dec.next_message().unwrap() {
                    assert_eq!(dec.last_len(), body.len());
                    out.push(decode::<StringValue>(body).unwrap().value);
                }
            }
            assert_eq!(out.len(), 3, "chunks of {chunk_len}");
            assert_eq!(out[0], big);
            assert_eq!(out[1], "after");
            assert_eq!(out[2], big[..50_000]);
            assert!(!dec.has_partial());
        }
        // A message cut short keeps its partial bytes, which count as buffered.
        let mut dec = FrameDecoder::new(1 << 20, Received::Identity, Kind::Response);
        dec.push(frames[0].slice(..70_000));
        assert!(dec.next_message().unwrap().is_none());
        assert!(dec.has_partial());
    }

    #[test]
    fn byte_by_byte_and_all_at_once() {
        let mut scratch = BytesMut::new();
        let texts = ["a", "", "ccc", &"d".repeat(300)];
        let all: Vec<u8> = texts
            .iter()
            .flat_map(|t| {
                encode(&msg(t), None, usize::MAX, &mut scratch)
                    .unwrap()
                    .to_vec()
            })
            .collect();
        let decode_all = |chunks: Vec<Bytes>| {
            let mut dec = FrameDecoder::new(1024, Received::Identity, Kind::Request);
            let mut out = Vec::new();
            for chunk in chunks {
                dec.push(chunk);
                while let Some(body) = dec.next_message().unwrap() {
                    out.push(decode::<StringValue>(body).unwrap().value);
                }
            }
            assert!(!dec.has_partial());
            out
        };
        let one_by_one = all.iter().map(|b| Bytes::copy_from_slice(&[*b])).collect();
        assert_eq!(decode_all(one_by_one), texts);
        // One chunk holding every message: sliced out, no copy.
        let whole = Bytes::from(all.clone());
        let mut dec = FrameDecoder::new(1024, Received::Identity, Kind::Request);
        dec.push(whole.clone());
        let first = dec.next_message().unwrap().unwrap();
        assert_eq!(first.as_ptr(), whole[5..].as_ptr(), "sliced from the chunk");
        assert_eq!(decode_all(vec![whole]), texts);
    }

    #[test]
    fn compressed_round_trip() {
        let mut scratch = BytesMut::new();
        let text = "abc".repeat(1000);
        let frame = encode(
            &msg(&text),
            Some(CompressionEncoding::Gzip),
            usize::MAX,
            &mut scratch,
        )
        .unwrap();
        assert_eq!(frame[0], 1);
        assert!(frame.len() < 200);
        let mut dec = FrameDecoder::new(
            10_000,
            Received::Known(CompressionEncoding::Gzip),
            Kind::Request,
        );
        dec.push(frame.clone());
        let body = dec.next_message().unwrap().unwrap();
        assert_eq!(decode::<StringValue>(body).unwrap().value, text);
        // Same frame without grpc-encoding: INTERNAL.
        let mut dec = FrameDecoder::new(10_000, Received::Identity, Kind::Request);
        dec.push(frame.clone());
        assert_eq!(dec.next_message().unwrap_err().code(), Code::Internal);
    }

    #[test]
    fn an_announced_length_is_not_allocated_before_it_arrives() {
        let mut dec = FrameDecoder::new(100 << 20, Received::Identity, Kind::Response);
        let mut frame = vec![0u8];
        frame.extend_from_slice(&(50u32 << 20).to_be_bytes());
        frame.extend_from_slice(&[7; 10]);
        dec.push(Bytes::from(frame));
        assert!(dec.next_message().unwrap().is_none());
        // (Large frames assemble in a pooled buffer, of a size class up to 64 bytes over.)
        let allocated = dec.buf.capacity() + dec.large.capacity();
        assert!(
            allocated <= UPFRONT_MAX + 64 + HEADER_LEN + 10,
            "{allocated} bytes allocated for 15 received",
        );
        // Accounted by a budget, the whole message is allocated at once.
        let quota = crate::quota::MemoryQuota::new(64 << 20);
        let mut dec =
            FrameDecoder::new(100 << 20, Received::Identity, Kind::Request).with_quota(quota);
        let mut frame = vec![0u8];
        frame.extend_from_slice(&(50u32 << 20).to_be_bytes());
        dec.push(Bytes::from(frame));
        assert!(dec.next_message().unwrap().is_none());
        assert!(dec.large.capacity() >= 50 << 20);
    }

    #[test]
    fn limits_checked_on_prefix() {
        let mut dec = FrameDecoder::new(10, Received::Identity, Kind::Request);
        dec.push(Bytes::from_static(b"\x00\x00\x00\x00\x0b"));
        assert_eq!(
            dec.next_message().unwrap_err().code(),
            Code::ResourceExhausted
        );
        // A huge announced length does not allocate: the limit fails first.
        let mut dec = FrameDecoder::new(4 << 20, Received::Identity, Kind::Request);
        dec.push(Bytes::from_static(b"\x00\xff\xff\xff\xff"));
        assert_eq!(
            dec.next_message().unwrap_err().code(),
            Code::ResourceExhausted
        );
        let mut dec = FrameDecoder::new(10, Received::Identity, Kind::Request);
        dec.push(Bytes::from_static(b"\x02\x00\x00\x00\x00"));
        assert_eq!(dec.next_message().unwrap_err().code(), Code::Internal);
        let mut scratch = BytesMut::new();
        let err = encode(&msg("too long"), None, 3, &mut scratch).unwrap_err();
        assert_eq!(err.code(), Code::ResourceExhausted);
    }

    #[test]
    fn bad_protobuf_is_internal() {
        let err = decode::<StringValue>(Bytes::from_static(b"\x0a\x05ab")).unwrap_err();
        assert_eq!(err.code(), Code::Internal);
    }
}
