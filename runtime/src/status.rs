//! gRPC status codes and the [`Status`] of a finished call.
//!
//! A call ends with a [`Status`]: a [`Code`], a message, optional binary details
//! (`grpc-status-details-bin`, usually an encoded `google.rpc.Status`) and the trailing
//! metadata that came with it. On the wire the status travels in the trailers as
//! `grpc-status`, a percent-encoded `grpc-message` and `grpc-status-details-bin`.

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use http::HeaderValue;
use percent_encoding::{AsciiSet, CONTROLS, percent_decode, percent_encode};

use crate::headers::{GRPC_MESSAGE, GRPC_STATUS, GRPC_STATUS_DETAILS_BIN};
use crate::metadata::MetadataMap;

/// The 17 gRPC status codes.
///
/// # Examples
///
/// ```
/// use grpc_runtime::Code;
///
/// assert_eq!(Code::from_i32(5), Code::NotFound);
/// assert_eq!(Code::NotFound.as_str(), "NOT_FOUND");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(i32)]
pub enum Code {
    /// Not an error; returned on success.
    Ok = 0,
    /// The operation was cancelled, typically by the caller.
    Cancelled = 1,
    /// Unknown error, or an error without enough information.
    Unknown = 2,
    /// The client specified an invalid argument.
    InvalidArgument = 3,
    /// The deadline expired before the operation could complete.
    DeadlineExceeded = 4,
    /// Some requested entity was not found.
    NotFound = 5,
    /// The entity that a client attempted to create already exists.
    AlreadyExists = 6,
    /// The caller does not have permission to execute the operation.
    PermissionDenied = 7,
    /// Some resource has been exhausted (quota, message size, ...).
    ResourceExhausted = 8,
    /// The system is not in a state required for the operation's execution.
    FailedPrecondition = 9,
    /// The operation was aborted, typically due to a concurrency issue.
    Aborted = 10,
    /// The operation was attempted past the valid range.
    OutOfRange = 11,
    /// The operation is not implemented or not supported.
    Unimplemented = 12,
    /// An invariant expected by the underlying system has been broken.
    Internal = 13,
    /// The service is currently unavailable; retrying may help.
    Unavailable = 14,
    /// Unrecoverable data loss or corruption.
    DataLoss = 15,
    /// The request does not have valid authentication credentials.
    Unauthenticated = 16,
}

impl Code {
    /// Maps a numeric code to a [`Code`]; values outside 0..=16 become [`Code::Unknown`].
    pub fn from_i32(value: i32) -> Code {
        match value {
            0 => Code::Ok,
            1 => Code::Cancelled,
            2 => Code::Unknown,
            3 => Code::InvalidArgument,
            4 => Code::DeadlineExceeded,
            5 => Code::NotFound,
            6 => Code::AlreadyExists,
            7 => Code::PermissionDenied,
            8 => Code::ResourceExhausted,
            9 => Code::FailedPrecondition,
            10 => Code::Aborted,
            11 => Code::OutOfRange,
            12 => Code::Unimplemented,
            13 => Code::Internal,
            14 => Code::Unavailable,
            15 => Code::DataLoss,
            16 => Code::Unauthenticated,
            _ => Code::Unknown,
        }
    }

    /// Parses the ASCII decimal value of a `grpc-status` header.
    pub fn from_bytes(bytes: &[u8]) -> Code {
        match bytes {
            [d @ b'0'..=b'9'] => Code::from_i32(i32::from(d - b'0')),
            [b'1', d @ b'0'..=b'6'] => Code::from_i32(10 + i32::from(d - b'0')),
            _ => Code::Unknown,
        }
    }

    /// The code's name as the gRPC spec spells it (`"DEADLINE_EXCEEDED"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Code::Ok => "OK",
            Code::Cancelled => "CANCELLED",
            Code::Unknown => "UNKNOWN",
            Code::InvalidArgument => "INVALID_ARGUMENT",
            Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
            Code::NotFound => "NOT_FOUND",
            Code::AlreadyExists => "ALREADY_EXISTS",
            Code::PermissionDenied => "PERMISSION_DENIED",
            Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
            Code::FailedPrecondition => "FAILED_PRECONDITION",
            Code::Aborted => "ABORTED",
            Code::OutOfRange => "OUT_OF_RANGE",
            Code::Unimplemented => "UNIMPLEMENTED",
            Code::Internal => "INTERNAL",
            Code::Unavailable => "UNAVAILABLE",
            Code::DataLoss => "DATA_LOSS",
            Code::Unauthenticated => "UNAUTHENTICATED",
        }
    }

    /// The value sent in `grpc-status`.
    pub(crate) fn header_value(self) -> HeaderValue {
        const DIGITS: [&str; 17] = [
            "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13", "14", "15",
            "16",
        ];
        HeaderValue::from_static(DIGITS[self as usize])
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The outcome of an RPC: a [`Code`], a message, optional details and trailing metadata.
///
/// Handlers return `Err(Status)` to fail a call; clients receive one when a call fails.
/// `Status` is boxed inside so `Result<T, Status>` stays one pointer wide.
///
/// # Examples
///
/// ```
/// use grpc_runtime::{Code, Status};
///
/// let status = Status::not_found("no feature at (1, 2)");
/// assert_eq!(status.code(), Code::NotFound);
/// assert_eq!(status.message(), "no feature at (1, 2)");
/// ```
#[derive(Clone)]
pub struct Status(Box<Inner>);

#[derive(Clone)]
struct Inner {
    code: Code,
    message: String,
    details: Bytes,
    metadata: MetadataMap,
    /// The error this status was made from, if any (local only: never sent).
    source: Option<Arc<dyn std::error::Error + Send + Sync + 'static>>,
}

macro_rules! constructors {
    ($($(#[$doc:meta])* $name:ident => $code:ident,)*) => {
        $(
            $(#[$doc])*
            pub fn $name(message: impl Into<String>) -> Status {
                Status::new(Code::$code, message)
            }
        )*
    };
}

impl Status {
    /// Creates a status with `code` and `message`.
    pub fn new(code: Code, message: impl Into<String>) -> Status {
        Status(Box::new(Inner {
            code,
            message: message.into(),
            details: Bytes::new(),
            metadata: MetadataMap::new(),
            source: None,
        }))
    }

    /// Attaches the error this status was made from, returned by
    /// [`source`](std::error::Error::source). It stays local: peers see code and message.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::error::Error as _;
    /// use grpc_runtime::Status;
    ///
    /// let io = std::io::Error::other("disk on fire");
    /// let status = Status::internal("cannot read the index").with_source(io);
    /// assert_eq!(status.source().unwrap().to_string(), "disk on fire");
    /// ```
    #[must_use]
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Status {
        self.0.source = Some(Arc::new(source));
        self
    }

    /// Creates a status with binary `details` (sent as `grpc-status-details-bin`).
    pub fn with_details(code: Code, message: impl Into<String>, details: Bytes) -> Status {
        let mut status = Status::new(code, message);
        status.0.details = details;
        status
    }

    constructors! {
        /// A [`Code::Ok`] status.
        ok => Ok,
        /// A [`Code::Cancelled`] status.
        cancelled => Cancelled,
        /// A [`Code::Unknown`] status.
        unknown => Unknown,
        /// A [`Code::InvalidArgument`] status.
        invalid_argument => InvalidArgument,
        /// A [`Code::DeadlineExceeded`] status.
        deadline_exceeded => DeadlineExceeded,
        /// A [`Code::NotFound`] status.
        not_found => NotFound,
        /// A [`Code::AlreadyExists`] status.
        already_exists => AlreadyExists,
        /// A [`Code::PermissionDenied`] status.
        permission_denied => PermissionDenied,
        /// A [`Code::ResourceExhausted`] status.
        resource_exhausted => ResourceExhausted,
        /// A [`Code::FailedPrecondition`] status.
        failed_precondition => FailedPrecondition,
        /// A [`Code::Aborted`] status.
        aborted => Aborted,
        /// A [`Code::OutOfRange`] status.
        out_of_range => OutOfRange,
        /// A [`Code::Unimplemented`] status.
        unimplemented => Unimplemented,
        /// A [`Code::Internal`] status.
        internal => Internal,
        /// A [`Code::Unavailable`] status.
        unavailable => Unavailable,
        /// A [`Code::DataLoss`] status.
        data_loss => DataLoss,
        /// A [`Code::Unauthenticated`] status.
        unauthenticated => Unauthenticated,
    }

    /// The status code.
    pub fn code(&self) -> Code {
        self.0.code
    }

    /// The status message (decoded from `grpc-message`).
    pub fn message(&self) -> &str {
        &self.0.message
    }

    /// The binary details (`grpc-status-details-bin`), empty when absent.
    pub fn details(&self) -> &Bytes {
        &self.0.details
    }

    /// Trailing metadata sent or received with this status.
    pub fn metadata(&self) -> &MetadataMap {
        &self.0.metadata
    }

    /// Mutable trailing metadata: a handler can attach trailers to the error it returns.
    pub fn metadata_mut(&mut self) -> &mut MetadataMap {
        &mut self.0.metadata
    }

    /// Whether trailers carry an OK status (the last `grpc-status` is 0).
    pub(crate) fn is_ok_trailers(headers: &http::HeaderMap) -> bool {
        headers
            .get_all(GRPC_STATUS)
            .iter()
            .next_back()
            .is_some_and(|v| v.as_bytes() == b"0")
    }

    /// Reads a status from trailers (or trailers-only headers). `None` if `grpc-status` is absent.
    pub(crate) fn from_trailers(headers: &http::HeaderMap) -> Option<Status> {
        // A repeated grpc-status: the last one counts, as in gRPC-Go.
        let code = Code::from_bytes(headers.get_all(GRPC_STATUS).iter().next_back()?.as_bytes());
        let message = headers
            .get(GRPC_MESSAGE)
            .map(|v| decode_message(v.as_bytes()))
            .unwrap_or_default();
        let details = headers
            .get(GRPC_STATUS_DETAILS_BIN)
            .and_then(|v| crate::metadata::decode_bin(v.as_bytes()).ok())
            .map(Bytes::from)
            .unwrap_or_default();
        let mut status = Status::with_details(code, message, details);
        status.0.metadata = MetadataMap::from_headers(headers.clone());
        Some(status)
    }

    /// Writes `grpc-status`, `grpc-message`, `grpc-status-details-bin` and the metadata.
    pub(crate) fn write_trailers(&self, headers: &mut http::HeaderMap) {
        headers.insert(GRPC_STATUS, self.0.code.header_value());
        if !self.0.message.is_empty() {
            let encoded = encode_message(&self.0.message);
            if let Ok(value) = HeaderValue::from_str(&encoded) {
                headers.insert(GRPC_MESSAGE, value);
            }
        }
        if !self.0.details.is_empty() {
            let encoded = crate::metadata::encode_bin(&self.0.details);
            if let Ok(value) = HeaderValue::from_str(&encoded) {
                headers.insert(GRPC_STATUS_DETAILS_BIN, value);
            }
        }
        self.0.metadata.write_to(headers);
    }

    /// The status for a response that carried no `grpc-status`, from its HTTP status.
    pub(crate) fn from_http_status(status: http::StatusCode) -> Status {
        let code = match status.as_u16() {
            400 => Code::Internal,
            401 => Code::Unauthenticated,
            403 => Code::PermissionDenied,
            404 => Code::Unimplemented,
            429 | 502 | 503 | 504 => Code::Unavailable,
            _ => Code::Unknown,
        };
        Status::new(
            code,
            format!("unexpected HTTP status {status} with no grpc-status"),
        )
    }
}

/// Whether a `content-type` value is gRPC's: `application/grpc`, optionally followed by
/// `+<subtype>` or `;<params>` (so `application/grpc-web` is not).
pub(crate) fn is_grpc_content_type(value: &[u8]) -> bool {
    match value.strip_prefix(b"application/grpc") {
        Some(rest) => rest.is_empty() || rest[0] == b'+' || rest[0] == b';',
        None => false,
    }
}

impl fmt::Debug for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Status");
        d.field("code", &self.0.code);
        d.field("message", &self.0.message);
        if !self.0.details.is_empty() {
            d.field("details", &self.0.details);
        }
        if !self.0.metadata.is_empty() {
            d.field("metadata", &self.0.metadata);
        }
        d.finish()
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.message.is_empty() {
            write!(f, "{}", self.0.code)
        } else {
            write!(f, "{}: {}", self.0.code, self.0.message)
        }
    }
}

impl std::error::Error for Status {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0
            .source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// Maps an I/O error by its kind, keeping it as the [`source`](std::error::Error::source):
/// `NotFound` is `NOT_FOUND`, `PermissionDenied` is `PERMISSION_DENIED`, `TimedOut` is
/// `DEADLINE_EXCEEDED`, connection failures are `UNAVAILABLE`, running out of space or memory
/// is `RESOURCE_EXHAUSTED`, and anything else `UNKNOWN` (as gRPC-Go reports an error that is
/// not a status). So a retry policy retries a lost connection, not a missing file.
impl From<std::io::Error> for Status {
    fn from(err: std::io::Error) -> Self {
        use std::io::ErrorKind as K;
        let code = match err.kind() {
            K::NotFound => Code::NotFound,
            K::PermissionDenied => Code::PermissionDenied,
            K::AlreadyExists => Code::AlreadyExists,
            K::InvalidInput => Code::InvalidArgument,
            K::InvalidData => Code::Internal,
            K::TimedOut => Code::DeadlineExceeded,
            K::Unsupported => Code::Unimplemented,
            K::ConnectionRefused
            | K::ConnectionReset
            | K::ConnectionAborted
            | K::NotConnected
            | K::BrokenPipe
            | K::AddrNotAvailable
            | K::HostUnreachable
            | K::NetworkUnreachable
            | K::NetworkDown
            | K::UnexpectedEof
            | K::Interrupted
            | K::WouldBlock => Code::Unavailable,
            K::OutOfMemory | K::StorageFull | K::QuotaExceeded | K::FileTooLarge => {
                Code::ResourceExhausted
            }
            _ => Code::Unknown,
        };
        Status::new(code, err.to_string()).with_source(err)
    }
}

/// Bytes left as they are in `grpc-message`: printable ASCII except `%` (the spec's rule).
const MESSAGE_ENCODE_SET: &AsciiSet = &CONTROLS.add(b'%').add(0x7f);

/// Percent-encodes a status message for `grpc-message`.
pub(crate) fn encode_message(message: &str) -> String {
    // `percent_encode` leaves bytes >= 0x80 encoded too (they are not in the ASCII range).
    percent_encode(message.as_bytes(), MESSAGE_ENCODE_SET).to_string()
}

/// Decodes `grpc-message`; never fails (bad escapes stay literal, bad UTF-8 is replaced).
pub(crate) fn decode_message(value: &[u8]) -> String {
    percent_decode(value).decode_utf8_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression: every I/O error was UNAVAILABLE, which a retry policy would retry.
    #[test]
    fn io_errors_map_by_kind() {
        use std::error::Error as _;
        use std::io::{Error, ErrorKind};
        for (kind, code) in [
            (ErrorKind::NotFound, Code::NotFound),
            (ErrorKind::PermissionDenied, Code::PermissionDenied),
            (ErrorKind::TimedOut, Code::DeadlineExceeded),
            (ErrorKind::ConnectionRefused, Code::Unavailable),
            (ErrorKind::ConnectionReset, Code::Unavailable),
            (ErrorKind::InvalidInput, Code::InvalidArgument),
            (ErrorKind::Other, Code::Unknown),
        ] {
            let status = Status::from(Error::new(kind, "why"));
            assert_eq!(status.code(), code, "{kind:?}");
            assert_eq!(status.message(), "why");
            let source = status.source().expect("the io::Error is kept");
            let io = source.downcast_ref::<Error>().unwrap();
            assert_eq!(io.kind(), kind);
        }
    }

    #[test]
    fn codes_round_trip() {
        for i in 0..=16 {
            let code = Code::from_i32(i);
            assert_eq!(code as i32, i);
            assert_eq!(Code::from_bytes(code.header_value().as_bytes()), code);
        }
        assert_eq!(Code::from_i32(17), Code::Unknown);
        assert_eq!(Code::from_i32(-1), Code::Unknown);
        assert_eq!(Code::from_bytes(b"17"), Code::Unknown);
        assert_eq!(Code::from_bytes(b""), Code::Unknown);
        assert_eq!(Code::from_bytes(b"x"), Code::Unknown);
    }

    #[test]
    fn message_encoding() {
        assert_eq!(encode_message("plain text"), "plain text");
        assert_eq!(encode_message("100%"), "100%25");
        assert_eq!(encode_message("a\nb\r\t"), "a%0Ab%0D%09");
        assert_eq!(encode_message("\u{1F600} é"), "%F0%9F%98%80 %C3%A9");
        let weird = "\t\ntest with whitespace\r\nand Unicode BMP ☺ and non-BMP 😈\t\n";
        assert_eq!(decode_message(encode_message(weird).as_bytes()), weird);
    }

    #[test]
    fn message_decoding_never_fails() {
        assert_eq!(decode_message(b"%"), "%");
        assert_eq!(decode_message(b"%zz ok"), "%zz ok");
        assert_eq!(decode_message(b"%FF"), "\u{FFFD}");
        assert_eq!(decode_message(b"a%20b"), "a b");
    }

    #[test]
    fn trailers_round_trip() {
        let mut status = Status::with_details(
            Code::FailedPrecondition,
            "bad ☺",
            Bytes::from_static(b"\x00\x01\xff"),
        );
        status.metadata_mut().insert("x-extra", "1").unwrap();
        let mut headers = http::HeaderMap::new();
        status.write_trailers(&mut headers);
        assert_eq!(headers["grpc-status"], "9");
        assert_eq!(headers["grpc-message"], "bad %E2%98%BA");
        assert_eq!(headers["grpc-status-details-bin"], "AAH/");
        let back = Status::from_trailers(&headers).unwrap();
        assert_eq!(back.code(), Code::FailedPrecondition);
        assert_eq!(back.message(), "bad ☺");
        assert_eq!(&back.details()[..], b"\x00\x01\xff");
        assert_eq!(back.metadata().get("x-extra"), Some("1"));
        assert!(back.metadata().get("grpc-status").is_none());
    }

    #[test]
    fn http_status_mapping() {
        let cases = [
            (400, Code::Internal),
            (401, Code::Unauthenticated),
            (403, Code::PermissionDenied),
            (404, Code::Unimplemented),
            (429, Code::Unavailable),
            (502, Code::Unavailable),
            (503, Code::Unavailable),
            (504, Code::Unavailable),
            (500, Code::Unknown),
            (200, Code::Unknown),
        ];
        for (http, code) in cases {
            let status = Status::from_http_status(http::StatusCode::from_u16(http).unwrap());
            assert_eq!(status.code(), code, "HTTP {http}");
        }
    }

    #[test]
    fn reset_mapping() {
        let cases = [
            (h2::Reason::CANCEL, Code::Cancelled),
            (h2::Reason::REFUSED_STREAM, Code::Unavailable),
            (h2::Reason::ENHANCE_YOUR_CALM, Code::ResourceExhausted),
            (h2::Reason::INADEQUATE_SECURITY, Code::PermissionDenied),
            (h2::Reason::PROTOCOL_ERROR, Code::Internal),
            (h2::Reason::INTERNAL_ERROR, Code::Internal),
            (h2::Reason::FLOW_CONTROL_ERROR, Code::Internal),
        ];
        for (reason, code) in cases {
            assert_eq!(
                crate::transport::status_from_h2(&h2::Error::from(reason)).code(),
                code
            );
        }
    }

    #[test]
    fn grpc_content_types() {
        for ok in [
            &b"application/grpc"[..],
            b"application/grpc+proto",
            b"application/grpc;x=y",
        ] {
            assert!(is_grpc_content_type(ok));
        }
        for bad in [
            &b"application/grpc-web"[..],
            b"application/grpcx",
            b"text/plain",
            b"",
        ] {
            assert!(!is_grpc_content_type(bad));
        }
    }

    #[test]
    fn status_is_small() {
        assert_eq!(std::mem::size_of::<Status>(), std::mem::size_of::<usize>());
    }
}
