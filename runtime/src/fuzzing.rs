//! Entry points for the fuzz targets in `fuzz/` (cargo feature `fuzzing`): one function per
//! parser of bytes a peer sends, calling the runtime's own code and checking what is cheap to
//! check (round trips through the matching encoder, limits, agreement between a fast path and
//! a plain one). Each panics on a broken invariant; none is an API for applications.
//!
//! Inputs that describe several values (a header map, a chunked stream) use small layouts a
//! person can write by hand, so seed files stay readable: see each function.

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue};

use crate::codec::BytesCodec;
use crate::codec::framing::{self, FrameDecoder, HEADER_LEN, Kind};
use crate::compression::{self, CompressionEncoding, Received};
use crate::error_details::ErrorDetails;
use crate::metadata::{self, MetadataMap};
use crate::service_config::{ServiceConfig, Throttle};
use crate::status::{self, Code, Status};
use crate::timeout;

/// The received-message decoder (length-prefixed frames, compressed or not), fed in chunks.
///
/// Layout: `[mode, max_hi, max_lo, split, stream...]`. `mode & 3` is the call's
/// `grpc-encoding` (identity, gzip, deflate, unsupported), `mode & 4` the side (request or
/// response); the limit is `max_hi * 256 + max_lo` bytes, `ff ff` standing for `usize::MAX`
/// (no limit, as an application may configure; then inputs with a frame announcing more
/// than 16 MiB are skipped, as the decoder reserves what a frame announces); `split` picks chunk sizes (0: the whole
/// stream in one chunk, else pseudo-random sizes from 1 to `split`).
///
/// Checks: every message is within the limit; after each chunk is drained, less than one
/// frame (prefix plus the largest body the limit allows) stays buffered, and what is
/// allocated stays within a small multiple of that and the chunk (the announced length of a
/// frame over the limit is never reserved); the errors are `RESOURCE_EXHAUSTED` or
/// `INTERNAL`; uncompressed messages framed again give back the bytes consumed;
/// compressed ones come back through the compressor.
pub fn frame_decoder(data: &[u8]) {
    let [mode, max_hi, max_lo, split, stream @ ..] = data else {
        return;
    };
    let max_size = limit(*max_hi, *max_lo);
    let encoding = match mode & 3 {
        0 => Received::Identity,
        1 => Received::Known(CompressionEncoding::Gzip),
        2 => Received::Known(CompressionEncoding::Deflate),
        _ => Received::Unsupported,
    };
    let kind = if mode & 4 == 0 {
        Kind::Request
    } else {
        Kind::Response
    };
    if max_size == usize::MAX && announces_more_than(stream, 16 << 20) {
        // With no limit the decoder reserves what a frame announces (up to 4 GiB) before
        // its body arrives: not a finding to report again on every run.
        return;
    }
    let mut decoder = FrameDecoder::new(max_size, encoding, kind);
    let mut messages = Vec::new();
    let mut any_compressed = false;
    let mut failed = false;
    let mut largest_chunk = 0;
    let mut rng = u32::from(*split) | 0x9e37_0000;
    let mut rest = stream;
    'chunks: while !rest.is_empty() {
        let n = if *split == 0 {
            rest.len()
        } else {
            rng ^= rng << 13;
            rng ^= rng >> 17;
            rng ^= rng << 5;
            (rng % u32::from(*split)) as usize + 1
        }
        .min(rest.len());
        let (chunk, after) = rest.split_at(n);
        rest = after;
        largest_chunk = largest_chunk.max(n);
        decoder.push(Bytes::copy_from_slice(chunk));
        loop {
            match decoder.next_message() {
                Ok(Some(body)) => {
                    assert!(body.len() <= max_size, "message over the limit");
                    any_compressed |= decoder.last_compressed();
                    messages.push((body, decoder.last_compressed()));
                }
                Ok(None) => break,
                Err(status) => {
                    assert!(
                        matches!(status.code(), Code::ResourceExhausted | Code::Internal),
                        "{status:?}"
                    );
                    failed = true;
                    break 'chunks;
                }
            }
        }
        let (len, capacity) = decoder.buffered();
        assert!(
            len < HEADER_LEN.saturating_add(max_size),
            "{len} bytes buffered after draining, limit {max_size}"
        );
        let bound = (HEADER_LEN + largest_chunk)
            .saturating_add(max_size)
            .saturating_mul(4)
            .saturating_add(128 << 10);
        assert!(
            capacity <= bound,
            "{capacity} bytes allocated for a limit of {max_size} (chunks up to {largest_chunk})"
        );
    }
    if failed {
        return;
    }
    let mut scratch = BytesMut::new();
    if !any_compressed {
        // Framing each message again gives back the bytes consumed, prefix for prefix.
        let mut again = Vec::new();
        for (body, _) in &messages {
            let frame =
                framing::encode(&mut BytesCodec, body, None, usize::MAX, kind, &mut scratch)
                    .expect("framing an uncompressed message");
            again.extend_from_slice(&frame);
        }
        let consumed = stream.len() - decoder.buffered().0;
        assert_eq!(&again[..], &stream[..consumed], "frames re-encoded differ");
    }
    if let Received::Known(enc) = encoding {
        for (body, _) in messages.iter().filter(|(_, compressed)| *compressed) {
            // Compressed again, the frame may be longer than the limit: the body alone is
            // decompressed.
            let frame = framing::encode(
                &mut BytesCodec,
                body,
                Some(enc),
                max_size,
                kind,
                &mut scratch,
            )
            .expect("compressing a message within the limit");
            assert_eq!(frame[0], 1);
            let back =
                compression::decompress(enc, &frame[HEADER_LEN..], max_size).expect("decompresses");
            assert_eq!(&back, body, "compression round trip");
        }
    }
}

/// Decompression under a limit, and the `grpc-encoding` and `grpc-accept-encoding` values.
///
/// Layout: `[selector, limit_hi, limit_lo, bytes...]`: `selector & 1` picks gzip or deflate
/// for the compressed `bytes`, the limit is as in [`frame_decoder`]; the same bytes, if a valid header value, are parsed as both
/// headers.
///
/// Checks: the output is within the limit (or `RESOURCE_EXHAUSTED`; garbage is
/// `INTERNAL`) and compresses back to itself; the parsed headers agree with the names.
pub fn compression(data: &[u8]) {
    let [selector, limit_hi, limit_lo, bytes @ ..] = data else {
        return;
    };
    let limit = limit(*limit_hi, *limit_lo);
    let enc = CompressionEncoding::ALL[usize::from(selector & 1)];
    match compression::decompress(enc, bytes, limit) {
        Ok(out) => {
            assert!(out.len() <= limit, "decompressed past the limit");
            let mut again = BytesMut::new();
            compression::compress(enc, &out, &mut again).expect("compressing in memory");
            let back = compression::decompress(enc, &again, limit).expect("round trip");
            assert_eq!(back, out, "compression round trip");
        }
        Err(status) => assert!(
            matches!(status.code(), Code::ResourceExhausted | Code::Internal),
            "{status:?}"
        ),
    }
    let Ok(value) = HeaderValue::from_bytes(bytes) else {
        return;
    };
    let all = &CompressionEncoding::ALL;
    match compression::parse_encoding(Some(&value), all) {
        Ok(Received::Known(enc)) => {
            assert_eq!(
                CompressionEncoding::from_name(value.to_str().unwrap()),
                Some(enc)
            );
        }
        Ok(Received::Identity) => assert_eq!(value, "identity"),
        Ok(Received::Unsupported) => unreachable!("parse_encoding reports an error instead"),
        Err(status) => assert_eq!(status.code(), Code::Unimplemented),
    }
    let set = compression::accept_set(Some(&value));
    for enc in CompressionEncoding::ALL {
        assert_eq!(set.contains(enc), compression::accepts(Some(&value), enc));
    }
}

/// The `grpc-timeout` header, as a server reads it; and its encoder, on a duration made of
/// the first 12 bytes.
///
/// Checks: a decoded timeout fits the header's range and can be added to `Instant::now()`
/// (the server does); encoding it again decodes to no less; an encoded duration is at most
/// 8 digits and a unit, decodes to no less than the duration (up to the header's maximum)
/// and less than one unit more, and uses the finest unit that fits.
pub fn grpc_timeout(data: &[u8]) {
    const MAX: Duration = Duration::from_secs(99_999_999 * 3600);
    if let Some(decoded) = timeout::decode(data) {
        assert!(decoded <= MAX);
        assert!(Instant::now().checked_add(decoded).is_some());
        let again = timeout::decode(timeout::encode(decoded).as_bytes()).expect("re-encoded");
        assert!(again >= decoded, "{again:?} < {decoded:?}");
    }
    let Some((secs, nanos)) = data.get(..8).zip(data.get(8..12)) else {
        return;
    };
    let secs = u64::from_le_bytes(secs.try_into().unwrap());
    let nanos = u32::from_le_bytes(nanos.try_into().unwrap()) % 1_000_000_000;
    let duration = Duration::new(secs, nanos);
    let text = timeout::encode(duration);
    assert!(text.len() <= 9, "{text}");
    assert!(HeaderValue::from_str(&text).is_ok());
    let back = timeout::decode(text.as_bytes()).expect("our own encoding decodes");
    if duration >= MAX {
        assert_eq!(back, MAX);
        return;
    }
    let (digits, unit) = text.split_at(text.len() - 1);
    let value: u128 = digits.parse().unwrap();
    let unit_nanos: u128 = match unit {
        "n" => 1,
        "u" => 1_000,
        "m" => 1_000_000,
        "S" => 1_000_000_000,
        "M" => 60_000_000_000,
        "H" => 3_600_000_000_000,
        other => panic!("unit {other}"),
    };
    assert!(back >= duration, "{text} decodes to less than {duration:?}");
    assert!(
        back.as_nanos() - duration.as_nanos() < unit_nanos,
        "{text} rounds {duration:?} up by a unit or more"
    );
    let finer = [1, 1_000, 1_000_000, 1_000_000_000, 60_000_000_000]
        .into_iter()
        .rfind(|n| *n < unit_nanos);
    if let Some(finer) = finer {
        assert!(
            duration.as_nanos().div_ceil(finer) > 99_999_999,
            "{text}: a finer unit fits"
        );
    }
    assert!(value <= 99_999_999);
}

/// The `grpc-message` percent-decoding.
///
/// Checks: never fails; the decoded text, encoded again, is a valid header value of
/// printable ASCII that decodes to the same text; text without `%` decodes to itself.
pub fn grpc_message(data: &[u8]) {
    let decoded = status::decode_message(data);
    let encoded = status::encode_message(&decoded);
    assert!(
        encoded.bytes().all(|b| (0x20..0x7f).contains(&b)),
        "{encoded:?}"
    );
    assert!(HeaderValue::from_str(&encoded).is_ok());
    assert_eq!(status::decode_message(encoded.as_bytes()), decoded);
    if let Ok(text) = std::str::from_utf8(data) {
        assert_eq!(
            status::decode_message(status::encode_message(text).as_bytes()),
            text
        );
        if !text.contains('%') {
            assert_eq!(decoded, text);
        }
    }
}

/// Received trailers (or trailers-only headers) read into a [`Status`], as a client does:
/// `grpc-status`, `grpc-message`, `grpc-status-details-bin` (base64, then a
/// `google.rpc.Status` with error details) and the trailing metadata.
///
/// Layout: a header map, one `name:value` per line (`\n`); one space after the colon is
/// dropped; lines that are not a valid header are skipped.
///
/// Checks: the quick OK test agrees with the full reading; the metadata holds no reserved
/// key; writing the status as trailers and reading them back gives the same code, message,
/// details and metadata.
pub fn trailers(data: &[u8]) {
    let headers = header_map(data);
    let quick_ok = Status::is_ok_trailers(&headers);
    let _ = metadata::check_bin(&headers);
    if let Some(value) = headers.get(http::header::CONTENT_TYPE) {
        let _ = status::is_grpc_content_type(value.as_bytes());
    }
    let Some(status) = Status::from_trailers(&headers) else {
        assert!(!quick_ok);
        return;
    };
    assert_eq!(quick_ok, status.code() == Code::Ok, "{status:?}");
    for (key, _) in status.metadata().iter() {
        assert!(!metadata::is_reserved(key), "{key} kept as metadata");
    }
    if let Ok(details) = status.error_details() {
        let _ = details.retry_delay();
    }
    // The pushback a retrying client would obey: within the cap, and addable to the clock.
    if let Some(Some(ms)) = crate::client::retry::pushback(&status) {
        assert!(ms <= crate::client::retry::MAX_PUSHBACK_MS);
        let _ = Instant::now() + Duration::from_millis(ms);
    }
    let _ = status.rpc_status();
    let mut written = HeaderMap::new();
    status.write_trailers(&mut written);
    let back = Status::from_trailers(&written).expect("grpc-status written");
    assert_eq!(back.code(), status.code());
    assert_eq!(back.message(), status.message());
    assert_eq!(back.details(), status.details());
    assert_eq!(back.metadata(), status.metadata());
}

/// Received metadata, as a server reads request headers (and a client response headers),
/// and metadata built with the public API, sent and received again.
///
/// Layout: as [`trailers`].
///
/// Checks: the one-pass scan keeps exactly the entries that are not reserved, in order (as a
/// plain filter would), and fails exactly when `check_bin` refuses a kept `-bin` value; what
/// that check accepts decodes as base64; after a whole scan the call headers are the first
/// of each; every key and value the public API accepts reads back as given and is accepted
/// on receipt unchanged.
pub fn metadata(data: &[u8]) {
    let headers = header_map(data);
    let mut expected = HeaderMap::new();
    for (key, value) in &headers {
        if !metadata::is_reserved(key.as_str()) {
            expected.append(key.clone(), value.clone());
        }
    }
    // The check on receipt is stricter than the decoder (`AQ=` decodes, and is refused as
    // gRPC-Go refuses it); what it accepts must decode, or `get_bin` would drop it.
    let accepted = metadata::check_bin(&expected).is_ok();
    let decodes = expected.iter().all(|(key, value)| {
        !key.as_str().ends_with("-bin")
            || value
                .as_bytes()
                .split(|b| *b == b',')
                .all(|part| metadata::decode_bin(part.trim_ascii()).is_ok())
    });
    assert!(
        !accepted || decodes,
        "a -bin value that does not decode was accepted"
    );
    let (result, call) = MetadataMap::from_request(headers.clone());
    match result {
        Ok(md) => {
            assert!(accepted, "the scan accepted what check_bin refuses");
            assert_eq!(md.into_headers(), expected);
        }
        Err(status) => {
            assert!(!accepted, "refused: {status:?}");
            assert_eq!(status.code(), Code::Internal);
        }
    }
    if accepted {
        // The scan stops at a bad `-bin` value (the call fails with it): only a whole scan
        // has read every call header.
        call_headers(&headers, &call);
    }
    assert_eq!(
        MetadataMap::from_headers(headers.clone()).into_headers(),
        expected
    );
    assert_eq!(
        MetadataMap::from_headers_checked(headers).is_ok(),
        accepted,
        "from_headers_checked"
    );
    sent_metadata(data);
}

/// The call headers a whole scan picked up: the first value of each, and the `host` count.
fn call_headers(headers: &HeaderMap, call: &metadata::CallHeaders) {
    assert_eq!(call.timeout.as_ref(), headers.get("grpc-timeout"));
    assert_eq!(call.encoding.as_ref(), headers.get("grpc-encoding"));
    assert_eq!(
        call.accept_encoding.as_ref(),
        headers.get("grpc-accept-encoding")
    );
    let hosts = headers.get_all("host").iter().count();
    assert_eq!(usize::from(call.hosts), hosts.min(255));
}

/// The sending side: what the API takes reads back, and the peer accepts it as sent.
fn sent_metadata(data: &[u8]) {
    let mut md = MetadataMap::new();
    for (name, value) in pairs(data) {
        let Ok(key) = std::str::from_utf8(name) else {
            continue;
        };
        let lower = key.to_ascii_lowercase();
        if let Ok(text) = std::str::from_utf8(value)
            && md.insert(key, text).is_ok()
        {
            assert_eq!(md.get(&lower), Some(text));
        }
        if md.append_bin(key, value).is_ok() {
            assert!(md.get_all_bin(&lower).any(|v| v == value));
        }
    }
    let mut wire = HeaderMap::new();
    md.write_to(&mut wire);
    let back = MetadataMap::from_headers_checked(wire).expect("our own metadata is accepted");
    assert_eq!(back, md);
}

/// The service config JSON parser (gRFC A6), as a channel reads a resolver's config.
///
/// Checks: errors are `INVALID_ARGUMENT`; the policies respect the spec's bounds (attempts
/// from 2 to 5, positive backoffs, a finite positive multiplier, 1 to 1000 tokens); method
/// lookups and the retry throttle built from the config do not panic.
pub fn service_config(data: &[u8]) {
    let Ok(json) = std::str::from_utf8(data) else {
        return;
    };
    let config = match ServiceConfig::parse(json) {
        Ok(config) => config,
        Err(status) => {
            assert_eq!(status.code(), Code::InvalidArgument);
            return;
        }
    };
    let paths = [
        "",
        "/",
        "//",
        "/a",
        "a/b",
        "/a/b",
        "/a/b/c",
        "/pkg.Svc/Get",
        "/test.Echo/Unary",
    ];
    for path in paths {
        let Some(method) = config.method(path) else {
            continue;
        };
        if let Some(retry) = &method.retry {
            assert!((2..=5).contains(&retry.max_attempts));
            assert!(!retry.initial_backoff.is_zero() && !retry.max_backoff.is_zero());
            assert!(retry.multiplier > 0.0 && retry.multiplier.is_finite());
            assert!(!retry.retryable.is_empty());
        }
        if let Some(hedging) = &method.hedging {
            assert!((2..=5).contains(&hedging.max_attempts));
        }
    }
    if let Some(throttling) = config.throttling {
        assert!((1..=1000).contains(&throttling.max_tokens));
        assert!(throttling.token_ratio >= 0.0 && throttling.token_ratio.is_finite());
        let throttle = Throttle::new(throttling);
        assert!(throttle.allows());
        for _ in 0..=throttling.max_tokens {
            throttle.failure();
        }
        assert!(!throttle.allows());
        for _ in 0..3 {
            throttle.success();
        }
        let _ = throttle.allows();
    }
}

/// The error details in a status's `grpc-status-details-bin` (a `google.rpc.Status`), as
/// [`Status::error_details`] reads them.
///
/// Layout: `[code, details...]`: the status's code (modulo 17) and its binary details.
///
/// Checks: no panic; details read once come back the same through
/// [`Status::with_error_details`].
pub fn error_details(data: &[u8]) {
    let [code, details @ ..] = data else {
        return;
    };
    let code = Code::from_i32(i32::from(*code % 17));
    let status = Status::with_details(code, "fuzz", Bytes::copy_from_slice(details));
    let _ = status.rpc_status();
    match status.error_details() {
        Ok(read) => {
            let _ = read.retry_delay();
            let again = Status::with_error_details(code, "fuzz", read.clone());
            assert_eq!(again.error_details().expect("our own details"), read);
        }
        Err(err) => {
            let _ = err.to_string();
            let _ = Status::from(err);
        }
    }
    let _ = ErrorDetails::new();
}

/// Whether a frame of `stream` (walked prefix by prefix) announces more than `max` bytes.
/// A server connection's frame watch (`transport::Paced`): what a client sends after its
/// preface, read in pseudo-random sizes through the pacing, ping policing and settings
/// reading a server applies.
///
/// Layout: `[split, bytes...]`: `bytes` follow the client preface (added here); reads are of
/// 1 to `split + 1` bytes.
///
/// Checks: every byte comes through, unchanged and in order; the client's SETTINGS are seen
/// exactly when a whole non-ACK SETTINGS frame has come, and the header list limit is the
/// last one announced, as a plain parse of the whole input says.
pub fn paced(data: &[u8]) {
    use std::sync::Arc;
    use std::task::{Context, Poll};
    use tokio::io::{AsyncRead, ReadBuf};

    let [split, bytes @ ..] = data else {
        return;
    };
    let mut input = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    input.extend_from_slice(bytes);
    let shared = Arc::new(crate::transport::ConnectionShared::default());
    let mut paced = crate::transport::Paced::server(&input[..]).police_pings(
        crate::keepalive::EnforcementPolicy::default(),
        Arc::clone(&shared),
    );
    let mut out = Vec::with_capacity(input.len());
    let mut cx = Context::from_waker(std::task::Waker::noop());
    let mut rng = u32::from(*split) | 0x9e37_0000;
    let mut buf = vec![0u8; usize::from(*split) + 1];
    loop {
        rng ^= rng << 13;
        rng ^= rng >> 17;
        rng ^= rng << 5;
        let want = (rng % (u32::from(*split) + 1)) as usize + 1;
        let mut read = ReadBuf::new(&mut buf[..want]);
        match std::pin::Pin::new(&mut paced).poll_read(&mut cx, &mut read) {
            // A turn's end: the next poll goes on.
            Poll::Pending => continue,
            Poll::Ready(result) => result.expect("reading from memory"),
        }
        if read.filled().is_empty() {
            break;
        }
        out.extend_from_slice(read.filled());
    }
    assert_eq!(out, input, "bytes lost or changed");
    // The plain parse.
    let (mut seen, mut limit) = (false, u32::MAX);
    let mut rest = bytes;
    while rest.len() >= 9 {
        let len = usize::from(rest[0]) << 16 | usize::from(rest[1]) << 8 | usize::from(rest[2]);
        let (kind, flags) = (rest[3], rest[4]);
        let payload = &rest[9..rest.len().min(9 + len)];
        if kind == 4 && flags & 1 == 0 {
            for entry in payload.chunks_exact(6) {
                if entry[..2] == [0, 6] {
                    limit = u32::from_be_bytes([entry[2], entry[3], entry[4], entry[5]]);
                }
            }
            seen |= payload.len() == len;
        }
        rest = &rest[(9 + len).min(rest.len())..];
    }
    assert_eq!(shared.settings_seen(), seen, "SETTINGS seen");
    assert_eq!(shared.max_header_list_size(), limit, "header list limit");
}

fn announces_more_than(mut stream: &[u8], max: usize) -> bool {
    while let Some(prefix) = stream.get(..HEADER_LEN) {
        let len = u32::from_be_bytes([prefix[1], prefix[2], prefix[3], prefix[4]]) as usize;
        if len > max {
            return true;
        }
        stream = stream.get(HEADER_LEN + len..).unwrap_or_default();
    }
    false
}

/// A message size limit from two bytes: `ff ff` is `usize::MAX`.
fn limit(hi: u8, lo: u8) -> usize {
    match u16::from_be_bytes([hi, lo]) {
        u16::MAX => usize::MAX,
        n => usize::from(n),
    }
}

/// The `name:value` lines of a fuzz input (a space after the colon dropped).
fn pairs(data: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    data.split(|b| *b == b'\n').filter_map(|line| {
        let colon = line.iter().position(|b| *b == b':')?;
        let (name, value) = (&line[..colon], &line[colon + 1..]);
        Some((name, value.strip_prefix(b" ").unwrap_or(value)))
    })
}

/// A header map of the valid `name:value` lines of a fuzz input, appended in order.
fn header_map(data: &[u8]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for (name, value) in pairs(data) {
        if let (Ok(name), Ok(value)) =
            (HeaderName::from_bytes(name), HeaderValue::from_bytes(value))
        {
            headers.append(name, value);
        }
    }
    headers
}
