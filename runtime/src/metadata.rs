//! Metadata: the custom headers and trailers of a call.
//!
//! Keys are lowercase ASCII. Keys ending in `-bin` carry binary values, base64-encoded on the
//! wire (sent unpadded, accepted padded or not); other keys carry printable ASCII. Keys that
//! gRPC or HTTP/2 reserve (`grpc-*`, `content-type`, `te`, connection headers, pseudo-headers)
//! are refused.

use std::fmt;

use base64::Engine;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use http::header::{HeaderMap, HeaderName, HeaderValue};

const BIN_ENCODE: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_encode_padding(false),
);
const BIN_DECODE: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

pub(crate) fn encode_bin(value: &[u8]) -> String {
    BIN_ENCODE.encode(value)
}

pub(crate) fn decode_bin(value: &[u8]) -> Result<Vec<u8>, base64::DecodeError> {
    BIN_DECODE.decode(value)
}

/// Checks that every `-bin` value of received `headers` is base64 (padded or not; a value
/// may hold several, comma-separated). gRPC-Go fails a call whose binary metadata does not
/// decode rather than drop it silently, and so do we: `INTERNAL`, naming the key.
pub(crate) fn check_bin(headers: &HeaderMap) -> Result<(), crate::Status> {
    for (key, value) in headers {
        if key.as_str().ends_with("-bin") && !is_bin_value(value.as_bytes()) {
            return Err(bad_bin(key.as_str()));
        }
    }
    Ok(())
}

/// Whether a received `-bin` value (one or several, comma-separated) is base64.
fn is_bin_value(value: &[u8]) -> bool {
    value
        .split(|b| *b == b',')
        .all(|part| is_base64(part.trim_ascii()))
}

fn bad_bin(key: &str) -> crate::Status {
    crate::Status::internal(format!("malformed binary metadata: {key} is not base64"))
}

/// Whether `value` is standard base64, with or without padding (no allocation).
fn is_base64(value: &[u8]) -> bool {
    let data = value
        .strip_suffix(b"==")
        .or_else(|| value.strip_suffix(b"="))
        .unwrap_or(value);
    let padded = data.len() != value.len();
    let alphabet = data
        .iter()
        .all(|b| b.is_ascii_alphanumeric() || *b == b'+' || *b == b'/');
    let length = if padded {
        value.len().is_multiple_of(4)
    } else {
        data.len() % 4 != 1
    };
    alphabet && length
}

/// `grpc-` keys that applications read and write as metadata, as gRPC-Go lets them: the
/// tracing and stats contexts (`grpc-trace-bin`, `grpc-tags-bin`), a server's retry
/// pushback (`grpc-retry-pushback-ms`) and, on a retried call, the attempts before it
/// (`grpc-previous-rpc-attempts`).
const APPLICATION_GRPC_KEYS: [&str; 4] = [
    "grpc-trace-bin",
    "grpc-tags-bin",
    "grpc-retry-pushback-ms",
    "grpc-previous-rpc-attempts",
];

/// Headers no user metadata may set, and that received metadata leaves out; they belong to
/// gRPC or HTTP/2.
pub(crate) fn is_reserved(key: &str) -> bool {
    (key.starts_with("grpc-") && !APPLICATION_GRPC_KEYS.contains(&key))
        || key.starts_with(':')
        || matches!(
            key,
            "content-type"
                | "te"
                | "connection"
                | "host"
                | "keep-alive"
                | "proxy-connection"
                | "transfer-encoding"
                | "upgrade"
        )
}

/// The call-definition headers of a request that the server reads (the first value of each).
#[derive(Debug, Default)]
pub(crate) struct CallHeaders {
    pub(crate) timeout: Option<HeaderValue>,
    pub(crate) encoding: Option<HeaderValue>,
    pub(crate) accept_encoding: Option<HeaderValue>,
    /// How many `host` headers the request has (RFC 9113 8.3.1 allows one).
    pub(crate) hosts: u8,
}

impl CallHeaders {
    fn take(&mut self, name: &str, value: &HeaderValue) {
        let slot = match name {
            "grpc-timeout" => &mut self.timeout,
            "grpc-encoding" => &mut self.encoding,
            "grpc-accept-encoding" => &mut self.accept_encoding,
            "host" => {
                self.hosts = self.hosts.saturating_add(1);
                return;
            }
            _ => return,
        };
        if slot.is_none() {
            *slot = Some(value.clone());
        }
    }
}

/// A metadata key or value was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidMetadata {
    reason: String,
}

impl fmt::Display for InvalidMetadata {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid metadata: {}", self.reason)
    }
}

impl std::error::Error for InvalidMetadata {}

fn invalid(reason: String) -> InvalidMetadata {
    InvalidMetadata { reason }
}

/// The metadata of a call: request headers, response headers or trailers.
///
/// # Examples
///
/// ```
/// use grpc_runtime::MetadataMap;
///
/// let mut md = MetadataMap::new();
/// md.insert("x-request-id", "42")?;
/// md.insert_bin("trace-bin", &[0, 1, 2])?;
/// assert_eq!(md.get("x-request-id"), Some("42"));
/// assert_eq!(md.get_bin("trace-bin"), Some(vec![0, 1, 2]));
/// assert!(md.insert("grpc-timeout", "1S").is_err());
/// # Ok::<(), grpc_runtime::metadata::InvalidMetadata>(())
/// ```
#[derive(Clone, Default, PartialEq)]
pub struct MetadataMap {
    headers: HeaderMap,
}

impl MetadataMap {
    /// An empty map.
    pub fn new() -> MetadataMap {
        MetadataMap::default()
    }

    /// Builds a map from received headers, leaving out reserved ones. Removes them in place
    /// (a handful of keys: `content-type`, `te`, `grpc-*`) rather than rebuilding the map.
    pub(crate) fn from_headers(headers: HeaderMap) -> MetadataMap {
        Self::scan(headers, false, None).unwrap_or_else(|_| unreachable!("not checked"))
    }

    /// As [`from_headers`](MetadataMap::from_headers), checking in the same pass that every
    /// `-bin` value is base64 (see [`check_bin`]).
    pub(crate) fn from_headers_checked(headers: HeaderMap) -> Result<MetadataMap, crate::Status> {
        Self::scan(headers, true, None)
    }

    /// A server's request headers: the metadata (checked), and the call-definition headers
    /// the runtime reads, picked up in the same pass instead of one lookup each.
    pub(crate) fn from_request(
        headers: HeaderMap,
    ) -> (Result<MetadataMap, crate::Status>, CallHeaders) {
        let mut call = CallHeaders::default();
        let metadata = Self::scan(headers, true, Some(&mut call));
        (metadata, call)
    }

    fn scan(
        mut headers: HeaderMap,
        check: bool,
        mut call: Option<&mut CallHeaders>,
    ) -> Result<MetadataMap, crate::Status> {
        let mut reserved: [Option<HeaderName>; 8] = Default::default();
        let mut found = 0;
        for (key, value) in &headers {
            let name = key.as_str();
            if is_reserved(name) {
                if let Some(call) = call.as_deref_mut() {
                    call.take(name, value);
                }
                if found >= reserved.len() {
                    // Unusually many: they are removed in a second pass below. The scan goes
                    // on, for the call headers and the `-bin` checks after them.
                    found = reserved.len() + 1;
                    continue;
                }
                if reserved[..found].iter().flatten().all(|k| k != key) {
                    reserved[found] = Some(key.clone());
                    found += 1;
                }
            } else if check && name.ends_with("-bin") && !is_bin_value(value.as_bytes()) {
                return Err(bad_bin(name));
            }
        }
        for key in reserved.iter().flatten() {
            headers.remove(key);
        }
        if found > reserved.len() {
            let rest: Vec<HeaderName> = headers
                .keys()
                .filter(|k| is_reserved(k.as_str()))
                .cloned()
                .collect();
            for key in rest {
                headers.remove(&key);
            }
        }
        Ok(MetadataMap { headers })
    }

    /// The underlying header map, for sending.
    pub(crate) fn into_headers(self) -> HeaderMap {
        self.headers
    }

    /// Appends every entry to outgoing `headers`.
    pub(crate) fn write_to(&self, headers: &mut HeaderMap) {
        for (key, value) in &self.headers {
            headers.append(key.clone(), value.clone());
        }
    }

    /// Sets a header the runtime owns (reserved for users), such as `grpc-accept-encoding`.
    pub(crate) fn insert_raw(&mut self, key: &'static str, value: HeaderValue) {
        self.headers.insert(HeaderName::from_static(key), value);
    }

    /// Number of values.
    pub fn len(&self) -> usize {
        self.headers.len()
    }

    /// Whether the map holds no value.
    pub fn is_empty(&self) -> bool {
        self.headers.is_empty()
    }

    fn key(key: &str, binary: bool) -> Result<HeaderName, InvalidMetadata> {
        // gRPC's grammar: keys are lowercased (as gRPC-Go's metadata does) and then made of
        // 0-9 a-z _ - . only; HTTP allows more, gRPC-Go refuses them.
        let lower = key.to_ascii_lowercase();
        let allowed = |b: u8| b.is_ascii_digit() || b.is_ascii_lowercase() || b"_-.".contains(&b);
        if lower.is_empty() || !lower.bytes().all(allowed) {
            return Err(invalid(format!(
                "{key:?} is not a valid key (allowed: 0-9 a-z _ - .)"
            )));
        }
        let name = HeaderName::from_bytes(lower.as_bytes())
            .map_err(|_| invalid(format!("{key:?} is not a valid key")))?;
        if is_reserved(name.as_str()) {
            return Err(invalid(format!("{key:?} is reserved")));
        }
        if name.as_str().ends_with("-bin") != binary {
            return Err(invalid(if binary {
                format!("binary key {key:?} must end in \"-bin\"")
            } else {
                format!("ASCII key {key:?} must not end in \"-bin\" (use insert_bin)")
            }));
        }
        Ok(name)
    }

    fn ascii_value(value: &str) -> Result<HeaderValue, InvalidMetadata> {
        if !value.bytes().all(|b| (0x20..=0x7e).contains(&b)) {
            return Err(invalid(format!(
                "value {value:?} is not printable ASCII (use a -bin key)"
            )));
        }
        // RFC 9113 8.2.1: a field value must not start or end with whitespace.
        if value.starts_with(' ') || value.ends_with(' ') {
            return Err(invalid(format!(
                "value {value:?} starts or ends with whitespace"
            )));
        }
        HeaderValue::from_str(value).map_err(|_| invalid(format!("bad value {value:?}")))
    }

    fn bin_value(value: &[u8]) -> HeaderValue {
        HeaderValue::try_from(encode_bin(value)).expect("base64 is a valid header value")
    }

    /// Sets an ASCII value, replacing any value under `key`.
    ///
    /// # Errors
    ///
    /// If the key is reserved, ends in `-bin` or is not a valid header name, or the value is
    /// not printable ASCII.
    pub fn insert(&mut self, key: &str, value: &str) -> Result<(), InvalidMetadata> {
        let name = Self::key(key, false)?;
        self.headers.insert(name, Self::ascii_value(value)?);
        Ok(())
    }

    /// Adds an ASCII value under `key`, keeping the values already there.
    ///
    /// # Errors
    ///
    /// As [`insert`](MetadataMap::insert).
    pub fn append(&mut self, key: &str, value: &str) -> Result<(), InvalidMetadata> {
        let name = Self::key(key, false)?;
        self.headers.append(name, Self::ascii_value(value)?);
        Ok(())
    }

    /// Sets a binary value under a `-bin` key, replacing any value there.
    ///
    /// # Errors
    ///
    /// If the key is reserved, invalid or does not end in `-bin`.
    pub fn insert_bin(&mut self, key: &str, value: &[u8]) -> Result<(), InvalidMetadata> {
        let name = Self::key(key, true)?;
        self.headers.insert(name, Self::bin_value(value));
        Ok(())
    }

    /// Adds a binary value under a `-bin` key, keeping the values already there.
    ///
    /// # Errors
    ///
    /// As [`insert_bin`](MetadataMap::insert_bin).
    pub fn append_bin(&mut self, key: &str, value: &[u8]) -> Result<(), InvalidMetadata> {
        let name = Self::key(key, true)?;
        self.headers.append(name, Self::bin_value(value));
        Ok(())
    }

    /// The first ASCII value under `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.headers.get(key)?.to_str().ok()
    }

    /// All ASCII values under `key`, in order.
    pub fn get_all<'a>(&'a self, key: &str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .get_all(key)
            .into_iter()
            .filter_map(|v| v.to_str().ok())
    }

    /// The first binary value under a `-bin` key, decoded. `None` if absent or not base64.
    pub fn get_bin(&self, key: &str) -> Option<Vec<u8>> {
        self.get_all_bin(key).next()
    }

    /// All binary values under a `-bin` key, decoded. A received header may carry several,
    /// comma-separated (as HTTP joins repeated fields): each is a value of its own.
    pub fn get_all_bin<'a>(&'a self, key: &str) -> impl Iterator<Item = Vec<u8>> + 'a {
        self.headers
            .get_all(key)
            .into_iter()
            .flat_map(|v| v.as_bytes().split(|b| *b == b','))
            .filter_map(|part| decode_bin(part.trim_ascii()).ok())
    }

    /// Whether `key` has a value.
    pub fn contains_key(&self, key: &str) -> bool {
        self.headers.contains_key(key)
    }

    /// Removes every value under `key`; returns whether there was one.
    pub fn remove(&mut self, key: &str) -> bool {
        match HeaderName::from_bytes(key.as_bytes()) {
            Ok(name) => {
                let had = self.headers.contains_key(&name);
                while self.headers.remove(&name).is_some() {}
                had
            }
            Err(_) => false,
        }
    }

    /// Every key and its raw wire value (`-bin` values as base64 text), in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[u8])> + '_ {
        self.headers.iter().map(|(k, v)| (k.as_str(), v.as_bytes()))
    }

    /// Moves every entry of `other` into `self`, after the values already there.
    pub fn merge(&mut self, other: MetadataMap) {
        let mut last: Option<HeaderName> = None;
        for (key, value) in other.headers {
            if let Some(key) = key {
                last = Some(key);
            }
            if let Some(key) = &last {
                self.headers.append(key.clone(), value);
            }
        }
    }
}

impl fmt::Debug for MetadataMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.headers.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Item 8 of the wire-conformance issue: keys outside gRPC's `[0-9a-z_.-]` and values
    /// with surrounding whitespace are refused (gRPC-Go, RFC 9113); the `grpc-` keys that
    /// gRPC-Go leaves to applications are allowed and kept on receipt.
    #[test]
    fn keys_values_and_application_grpc_keys() {
        let mut md = MetadataMap::new();
        for bad in ["x!y", "x y", "x#", "x$", "x%", "x&", "x~", "", "x:y"] {
            assert!(md.insert(bad, "v").is_err(), "{bad:?}");
        }
        for good in ["x-y", "x_y", "x.y", "x0", "X-Upper"] {
            assert!(md.insert(good, "v").is_ok(), "{good:?}");
        }
        assert_eq!(md.get("x-upper"), Some("v"));
        for bad in [" v", "v ", " "] {
            assert!(md.insert("k", bad).is_err(), "{bad:?}");
        }
        assert!(md.insert("k", "a b").is_ok());
        assert!(md.insert_bin("grpc-trace-bin", b"\x01").is_ok());
        assert!(md.insert_bin("grpc-tags-bin", b"\x02").is_ok());
        assert!(md.insert("grpc-retry-pushback-ms", "10").is_ok());
        assert!(md.insert("grpc-status", "0").is_err());
        assert!(md.insert("grpc-custom", "x").is_err());
        let mut headers = HeaderMap::new();
        headers.insert("grpc-trace-bin", HeaderValue::from_static("AQ"));
        headers.insert("grpc-status", HeaderValue::from_static("0"));
        headers.insert("grpc-timeout", HeaderValue::from_static("1S"));
        let received = MetadataMap::from_headers(headers);
        assert_eq!(received.get_bin("grpc-trace-bin"), Some(vec![1]));
        assert!(!received.contains_key("grpc-status"));
        assert!(!received.contains_key("grpc-timeout"));
    }

    #[test]
    fn binary_values_are_checked() {
        for good in ["", "AQID", "AQI", "AQ", "AQ==", "AQI=", "AQID, AQ", "+/+/"] {
            assert!(check_bin_value(good), "{good:?}");
        }
        for bad in ["A", "AQ=", "A===", "!!!!", "AQ==AQ", "AQIDA", "AQ,A"] {
            assert!(!check_bin_value(bad), "{bad:?}");
        }
        let mut headers = HeaderMap::new();
        headers.insert("x-ok-bin", HeaderValue::from_static("AQID"));
        headers.insert("x-text", HeaderValue::from_static("not base64!"));
        assert!(check_bin(&headers).is_ok());
        headers.insert("x-bad-bin", HeaderValue::from_static("@@@"));
        let err = check_bin(&headers).unwrap_err();
        assert_eq!(err.code(), crate::Code::Internal);
        assert!(err.message().contains("x-bad-bin"), "{err}");
    }

    fn check_bin_value(value: &str) -> bool {
        let mut headers = HeaderMap::new();
        headers.insert("k-bin", HeaderValue::from_str(value).unwrap());
        check_bin(&headers).is_ok()
    }

    #[test]
    fn ascii_and_binary() {
        let mut md = MetadataMap::new();
        md.insert("X-Key", "v1").unwrap();
        md.append("x-key", "v2").unwrap();
        assert_eq!(md.get_all("x-key").collect::<Vec<_>>(), ["v1", "v2"]);
        md.insert_bin("k-bin", b"\xff\x00\x01").unwrap();
        assert_eq!(md.iter().find(|(k, _)| *k == "k-bin").unwrap().1, b"/wAB");
        assert_eq!(md.get_bin("k-bin").unwrap(), b"\xff\x00\x01");
        assert!(md.remove("x-key"));
        assert!(md.get("x-key").is_none());
    }

    #[test]
    fn refuses_bad_keys_and_values() {
        let mut md = MetadataMap::new();
        for key in [
            "grpc-status",
            "content-type",
            "te",
            ":path",
            "connection",
            "bad key",
        ] {
            assert!(md.insert(key, "x").is_err(), "{key}");
        }
        assert!(md.insert("a-bin", "x").is_err());
        assert!(md.insert_bin("a", b"x").is_err());
        assert!(md.insert("a", "new\nline").is_err());
        assert!(md.insert("a", "é").is_err());
        assert!(md.is_empty());
    }

    #[test]
    fn decodes_padded_and_unpadded() {
        assert_eq!(decode_bin(b"AAE=").unwrap(), [0, 1]);
        assert_eq!(decode_bin(b"AAE").unwrap(), [0, 1]);
        assert_eq!(encode_bin(&[0, 1]), "AAE");
        assert!(decode_bin(b"!!").is_err());
    }

    #[test]
    fn from_headers_drops_many_reserved() {
        let mut headers = HeaderMap::new();
        for i in 0..20 {
            headers.insert(
                HeaderName::try_from(format!("grpc-x{i}")).unwrap(),
                HeaderValue::from_static("v"),
            );
        }
        headers.insert("x-kept", HeaderValue::from_static("k"));
        let md = MetadataMap::from_headers(headers);
        assert_eq!(md.len(), 1);
        assert_eq!(md.get("x-kept"), Some("k"));
    }

    /// Regression (fuzz target `metadata`): past eight reserved keys the scan stopped, so
    /// a request with many `grpc-*` headers before `grpc-timeout` lost its deadline (and its
    /// `grpc-encoding`, and the count of `host` headers).
    #[test]
    fn call_headers_after_many_reserved() {
        let mut headers = HeaderMap::new();
        for i in 0..20 {
            headers.insert(
                HeaderName::try_from(format!("grpc-x{i}")).unwrap(),
                HeaderValue::from_static("v"),
            );
        }
        headers.insert("grpc-timeout", HeaderValue::from_static("1S"));
        headers.insert("grpc-encoding", HeaderValue::from_static("gzip"));
        headers.append("host", HeaderValue::from_static("a"));
        headers.append("host", HeaderValue::from_static("b"));
        headers.insert("x-kept-bin", HeaderValue::from_static("AQ"));
        let (md, call) = MetadataMap::from_request(headers.clone());
        assert_eq!(call.timeout.unwrap(), "1S");
        assert_eq!(call.encoding.unwrap(), "gzip");
        assert_eq!(call.hosts, 2);
        assert_eq!(md.unwrap().len(), 1);
        headers.insert("x-bad-bin", HeaderValue::from_static("@@@"));
        assert!(MetadataMap::from_request(headers).0.is_err());
    }

    #[test]
    fn from_headers_drops_reserved() {
        let mut headers = HeaderMap::new();
        headers.insert("grpc-timeout", HeaderValue::from_static("1S"));
        headers.insert("content-type", HeaderValue::from_static("application/grpc"));
        headers.append("x-a", HeaderValue::from_static("1"));
        headers.append("x-a", HeaderValue::from_static("2"));
        headers.insert("user-agent", HeaderValue::from_static("ua"));
        let md = MetadataMap::from_headers(headers);
        assert_eq!(md.len(), 3);
        assert_eq!(md.get_all("x-a").collect::<Vec<_>>(), ["1", "2"]);
        assert_eq!(md.get("user-agent"), Some("ua"));
    }
}
