//! Message compression: `gzip` and `deflate`, negotiated with `grpc-encoding` and
//! `grpc-accept-encoding`.
//!
//! A sender compresses a message only with an encoding the receiver advertised (or, on the
//! client's first call, one it chose to try); a receiver that does not support the encoding
//! of an incoming message answers `UNIMPLEMENTED` and lists what it accepts.

use std::fmt;
use std::io::{Read, Write};

use bytes::{BufMut, Bytes, BytesMut};
use http::HeaderValue;

use crate::status::Status;

/// A compression algorithm for messages.
///
/// # Examples
///
/// ```
/// use grpc_runtime::CompressionEncoding;
///
/// assert_eq!(CompressionEncoding::from_name("gzip"), Some(CompressionEncoding::Gzip));
/// assert_eq!(CompressionEncoding::Gzip.as_str(), "gzip");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CompressionEncoding {
    /// `gzip` (RFC 1952).
    Gzip,
    /// `deflate` (the zlib format, RFC 1950).
    Deflate,
}

impl CompressionEncoding {
    /// Every encoding this crate supports, in order of preference.
    pub const ALL: [CompressionEncoding; 2] =
        [CompressionEncoding::Gzip, CompressionEncoding::Deflate];

    /// The encoding's name in `grpc-encoding`.
    pub fn as_str(self) -> &'static str {
        match self {
            CompressionEncoding::Gzip => "gzip",
            CompressionEncoding::Deflate => "deflate",
        }
    }

    /// Looks an encoding up by its name; `None` for `identity` and unknown names.
    pub fn from_name(name: &str) -> Option<CompressionEncoding> {
        match name.trim() {
            "gzip" => Some(CompressionEncoding::Gzip),
            "deflate" => Some(CompressionEncoding::Deflate),
            _ => None,
        }
    }

    pub(crate) fn header_value(self) -> HeaderValue {
        HeaderValue::from_static(self.as_str())
    }
}

impl fmt::Display for CompressionEncoding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The encoding named by a received `grpc-encoding` header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Received {
    Identity,
    Known(CompressionEncoding),
    /// An encoding this side does not support: an error only if a message is compressed.
    Unsupported,
}

/// Parses `grpc-encoding`. An unknown or not-accepted encoding is `UNIMPLEMENTED`, naming
/// what is accepted.
pub(crate) fn parse_encoding(
    value: Option<&HeaderValue>,
    accepted: &[CompressionEncoding],
) -> Result<Received, Status> {
    let Some(value) = value else {
        return Ok(Received::Identity);
    };
    let name = value.to_str().unwrap_or("<non-ASCII>");
    if name == "identity" {
        return Ok(Received::Identity);
    }
    match CompressionEncoding::from_name(name) {
        Some(enc) if accepted.contains(&enc) => Ok(Received::Known(enc)),
        _ => Err(Status::unimplemented(format!(
            "message compressed with {name:?}, which is not supported (supported: {})",
            accept_list(accepted)
        ))),
    }
}

/// The `grpc-accept-encoding` value for `accepted` (`identity` always first).
pub(crate) fn accept_list(accepted: &[CompressionEncoding]) -> String {
    let mut list = String::from("identity");
    for enc in accepted {
        list.push(',');
        list.push_str(enc.as_str());
    }
    list
}

/// The encodings a peer listed in `grpc-accept-encoding`, as a small set.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct AcceptSet(u8);

impl AcceptSet {
    pub(crate) fn contains(self, enc: CompressionEncoding) -> bool {
        self.0 & (1 << enc as u8) != 0
    }

    pub(crate) fn insert(&mut self, enc: CompressionEncoding) {
        self.0 |= 1 << enc as u8;
    }
}

/// Parses a received `grpc-accept-encoding` value.
pub(crate) fn accept_set(value: Option<&HeaderValue>) -> AcceptSet {
    let mut set = 0;
    for enc in CompressionEncoding::ALL {
        if accepts(value, enc) {
            set |= 1 << enc as u8;
        }
    }
    AcceptSet(set)
}

/// Whether a received `grpc-accept-encoding` value lists `enc`.
pub(crate) fn accepts(value: Option<&HeaderValue>, enc: CompressionEncoding) -> bool {
    value
        .and_then(|v| v.to_str().ok())
        .is_some_and(|list| list.split(',').any(|name| name.trim() == enc.as_str()))
}

/// Appends the compressed form of `src` to `dst`.
pub(crate) fn compress(
    enc: CompressionEncoding,
    src: &[u8],
    dst: &mut BytesMut,
) -> std::io::Result<()> {
    let level = flate2::Compression::new(6);
    let writer = dst.writer();
    match enc {
        CompressionEncoding::Gzip => {
            let mut e = flate2::write::GzEncoder::new(writer, level);
            e.write_all(src)?;
            e.finish()?;
        }
        CompressionEncoding::Deflate => {
            let mut e = flate2::write::ZlibEncoder::new(writer, level);
            e.write_all(src)?;
            e.finish()?;
        }
    }
    Ok(())
}

/// Decompresses `src`, failing with `RESOURCE_EXHAUSTED` as soon as the output would pass
/// `limit` bytes (so a small "zip bomb" cannot allocate more than the limit).
pub(crate) fn decompress(
    enc: CompressionEncoding,
    src: &[u8],
    limit: usize,
) -> Result<Bytes, Status> {
    let mut out = Vec::with_capacity(src.len().saturating_mul(2).min(limit));
    // Read at most limit + 1 bytes: one more than allowed tells that the limit is passed.
    // Saturating: `usize::MAX` is how an application says "no limit".
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    let result = match enc {
        CompressionEncoding::Gzip => flate2::read::GzDecoder::new(src)
            .take(cap)
            .read_to_end(&mut out),
        CompressionEncoding::Deflate => flate2::read::ZlibDecoder::new(src)
            .take(cap)
            .read_to_end(&mut out),
    };
    result.map_err(|e| Status::internal(format!("failed to decompress {enc} message: {e}")))?;
    if out.len() > limit {
        return Err(Status::resource_exhausted(format!(
            "decompressed message larger than max ({limit} bytes)"
        )));
    }
    Ok(Bytes::from(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Code;

    #[test]
    fn round_trip() {
        let data = b"hello hello hello hello hello".repeat(100);
        for enc in CompressionEncoding::ALL {
            let mut buf = BytesMut::new();
            compress(enc, &data, &mut buf).unwrap();
            assert!(buf.len() < data.len() / 10);
            assert_eq!(&decompress(enc, &buf, data.len()).unwrap()[..], &data[..]);
            let err = decompress(enc, &buf, data.len() - 1).unwrap_err();
            assert_eq!(err.code(), Code::ResourceExhausted);
        }
    }

    /// Regression (fuzz target `frame_decoder`): with no limit (`usize::MAX`, which
    /// `max_recv_message_size` accepts) `limit + 1` overflowed: a panic in debug builds and,
    /// in release, a cap of 0 that decompressed every message to nothing.
    #[test]
    fn no_limit() {
        let data = b"hello hello".repeat(100);
        for enc in CompressionEncoding::ALL {
            let mut buf = BytesMut::new();
            compress(enc, &data, &mut buf).unwrap();
            assert_eq!(&decompress(enc, &buf, usize::MAX).unwrap()[..], &data[..]);
        }
    }

    #[test]
    fn garbage_is_internal() {
        let err = decompress(CompressionEncoding::Gzip, b"not gzip", 100).unwrap_err();
        assert_eq!(err.code(), Code::Internal);
    }

    #[test]
    fn negotiation() {
        let all = &CompressionEncoding::ALL;
        assert_eq!(parse_encoding(None, all).unwrap(), Received::Identity);
        let id = HeaderValue::from_static("identity");
        assert_eq!(parse_encoding(Some(&id), all).unwrap(), Received::Identity);
        let gz = HeaderValue::from_static("gzip");
        assert_eq!(
            parse_encoding(Some(&gz), all).unwrap(),
            Received::Known(CompressionEncoding::Gzip)
        );
        let err = parse_encoding(Some(&gz), &[]).unwrap_err();
        assert_eq!(err.code(), Code::Unimplemented);
        let br = HeaderValue::from_static("br");
        let err = parse_encoding(Some(&br), all).unwrap_err();
        assert_eq!(err.code(), Code::Unimplemented);
        assert!(err.message().contains("identity,gzip,deflate"));
        let list = HeaderValue::from_static("identity, deflate");
        assert!(accepts(Some(&list), CompressionEncoding::Deflate));
        assert!(!accepts(Some(&list), CompressionEncoding::Gzip));
        assert!(!accepts(None, CompressionEncoding::Gzip));
    }
}
