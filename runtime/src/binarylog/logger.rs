//! The [`Logger`]: a stats handler turning each logged call's events into records.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use protobuf::MessageField;
use protobuf::well_known_types::duration::Duration as DurationProto;
use protobuf::well_known_types::timestamp::Timestamp;

use super::config::{Config, Limits};
use super::proto::grpc_log_entry::{EventType, Logger as Side};
use super::proto::{
    Address, ClientHeader, GrpcLogEntry, Message, Metadata, MetadataEntry, ServerHeader, Trailer,
    address,
};
use super::sink::Sink;
use crate::stats::{Handler, Payload, RpcEvent, RpcInfo};
use crate::status::{Code, Status};

/// Call ids, process-wide (as gRPC-Go's): the first logged call is 1.
static NEXT_CALL_ID: AtomicU64 = AtomicU64::new(1);

/// A binary logger (gRFC A16): a [stats handler](crate::stats::Handler) that writes a
/// `grpc.binarylog.v1.GrpcLogEntry` for each event of each call its [`Config`] selects, to
/// a [`Sink`]. Install a clone on each channel and server whose calls it should log; clones
/// share the configuration and the sink.
///
/// Each logged call gets a process-wide call id (from 1) and numbers its records from 1.
/// On a client each *attempt* is a call of its own (retries and hedges, as the stats seam
/// sees them). The records of a call:
///
/// | event | client logs | server logs |
/// | --- | --- | --- |
/// | request headers | `CLIENT_HEADER` (sent) | `CLIENT_HEADER` (received, with the peer's address) |
/// | response headers | `SERVER_HEADER` (received) | `SERVER_HEADER` (sent) |
/// | each request message | `CLIENT_MESSAGE` | `CLIENT_MESSAGE` |
/// | each response message | `SERVER_MESSAGE` | `SERVER_MESSAGE` |
/// | the status | `SERVER_TRAILER` (received) | `SERVER_TRAILER` (sent) |
/// | an end without trailers | `CANCEL` if `CANCELLED` or `DEADLINE_EXCEEDED`, else `SERVER_TRAILER` with the local status | the same |
///
/// Metadata leaves out what gRPC itself sends (`grpc-*` but `grpc-trace-bin`, `te`,
/// `content-type`, `content-encoding`, `user-agent`, `lb-token`) and `host` (the
/// authority); `-bin` values are logged decoded. Messages are logged serialized and
/// uncompressed, with their full length.
///
/// # Examples
///
/// ```no_run
/// use grpc_runtime::binarylog::{Config, FileSink, Logger};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let logger = Logger::new(Config::parse("*{h;m:4096}")?, FileSink::create("binary.log")?);
/// let channel = grpc_runtime::client::Channel::builder("http://127.0.0.1:50051")
///     .stats_handler(logger.clone())
///     .build()?;
/// let server = grpc_runtime::server::Server::builder().stats_handler(logger.clone());
/// // ... at shutdown:
/// logger.flush();
/// # let _ = (channel, server);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Logger {
    inner: Arc<Inner>,
}

struct Inner {
    config: Config,
    sink: Box<dyn Sink>,
}

impl fmt::Debug for Logger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Logger")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl Logger {
    /// A logger of the calls `config` selects, writing to `sink`.
    pub fn new(config: Config, sink: impl Sink) -> Logger {
        Logger {
            inner: Arc::new(Inner {
                config,
                sink: Box::new(sink),
            }),
        }
    }

    /// The filter this logger follows.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// Flushes the sink ([`Sink::flush`]): a [`FileSink`](super::FileSink) writes out what it
    /// holds buffered.
    pub fn flush(&self) {
        self.inner.sink.flush();
    }

    fn write(&self, call: &Logged, kind: EventType, fill: impl FnOnce(&mut GrpcLogEntry)) {
        let mut entry = GrpcLogEntry::new();
        entry.timestamp = MessageField::some(now());
        entry.call_id = call.call_id;
        entry.sequence_id_within_call = call.next_seq.fetch_add(1, Ordering::Relaxed);
        entry.type_ = kind.into();
        entry.logger = if call.client {
            Side::LOGGER_CLIENT
        } else {
            Side::LOGGER_SERVER
        }
        .into();
        fill(&mut entry);
        self.inner.sink.write(&entry);
    }

    fn client_header(&self, call: &Logged, headers: &http::HeaderMap) {
        self.write(call, EventType::EVENT_TYPE_CLIENT_HEADER, |entry| {
            let mut header = ClientHeader::new();
            let (metadata, truncated) = truncate_metadata(metadata(headers), call.limits);
            header.metadata = MessageField::some(metadata);
            header.method_name = call.method.to_string();
            if let Some(host) = call.authority.as_deref().or_else(|| {
                headers
                    .get(http::header::HOST)
                    .and_then(|v| v.to_str().ok())
            }) {
                header.authority = host.to_owned();
            }
            if let Some(timeout) = headers
                .get("grpc-timeout")
                .and_then(|v| crate::timeout::decode(v.as_bytes()))
                .filter(|t| !t.is_zero())
            {
                header.timeout = MessageField::some(duration(timeout));
            }
            entry.set_client_header(header);
            entry.payload_truncated = truncated;
            if !call.client {
                entry.peer = MessageField::from_option(call.peer.get().cloned());
            }
        });
    }

    fn server_header(&self, call: &Logged, headers: &http::HeaderMap) {
        self.write(call, EventType::EVENT_TYPE_SERVER_HEADER, |entry| {
            let mut header = ServerHeader::new();
            let (metadata, truncated) = truncate_metadata(metadata(headers), call.limits);
            header.metadata = MessageField::some(metadata);
            entry.set_server_header(header);
            entry.payload_truncated = truncated;
            if call.client {
                entry.peer = MessageField::from_option(call.peer.get().cloned());
            }
        });
    }

    fn message(&self, call: &Logged, kind: EventType, payload: &Payload<'_>) {
        let bytes = match payload.message() {
            Ok(bytes) => bytes,
            Err(status) => {
                tracing::warn!(%status, call_id = call.call_id, "binary log: a message was not logged");
                return;
            }
        };
        self.write(call, kind, |entry| {
            let mut message = Message::new();
            message.length = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
            let keep = usize::try_from(call.limits.message).unwrap_or(usize::MAX);
            entry.payload_truncated = bytes.len() > keep;
            message.data = bytes[..bytes.len().min(keep)].to_vec();
            entry.set_message(message);
        });
    }

    /// `SERVER_TRAILER` from `status` and the trailers' metadata.
    fn trailer<'a>(
        &self,
        call: &Logged,
        status: &Status,
        metadata_entries: impl Iterator<Item = (&'a str, &'a [u8])>,
    ) {
        self.write(call, EventType::EVENT_TYPE_SERVER_TRAILER, |entry| {
            let mut trailer = Trailer::new();
            // Trailers are not cut to the header limit (as gRPC-Go logs them).
            trailer.metadata = MessageField::some(metadata_from(metadata_entries));
            trailer.status_code = status.code() as u32;
            trailer.status_message = status.message().to_owned();
            trailer.status_details = status.details().to_vec();
            entry.set_trailer(trailer);
            if call.client {
                entry.peer = MessageField::from_option(call.peer.get().cloned());
            }
        });
    }

    fn trailers(&self, call: &Logged, trailers: &http::HeaderMap) {
        // Without a grpc-status the call's end says how it ended; log the trailer then.
        let Some(status) = Status::from_trailers(trailers) else {
            return;
        };
        if !call.trailer_logged.swap(true, Ordering::AcqRel) {
            self.trailer(call, &status, header_entries(trailers));
        }
    }

    fn end(&self, call: &Logged, status: &Status) {
        if call.trailer_logged.swap(true, Ordering::AcqRel) {
            return;
        }
        match status.code() {
            Code::Cancelled | Code::DeadlineExceeded => {
                self.write(call, EventType::EVENT_TYPE_CANCEL, |_| {});
            }
            _ => self.trailer(call, status, status.metadata().iter()),
        }
    }
}

/// What a [`Logger`] keeps for one call: nothing for a call it does not log.
pub struct CallLog(Option<Box<Logged>>);

impl fmt::Debug for CallLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            None => f.write_str("CallLog(not logged)"),
            Some(call) => f
                .debug_struct("CallLog")
                .field("call_id", &call.call_id)
                .field("method", &call.method)
                .finish_non_exhaustive(),
        }
    }
}

struct Logged {
    call_id: u64,
    /// The next record's sequence number (from 1). Records of one call may be made by two
    /// tasks (one sending, one receiving), so it is shared.
    next_seq: AtomicU64,
    limits: Limits,
    client: bool,
    method: Box<str>,
    /// The other side (a server's client, from the start; a client's server, once its
    /// headers go out on a connection).
    peer: std::sync::OnceLock<Address>,
    /// The request's `:authority`.
    authority: Option<Box<str>>,
    /// The call's status is logged (trailers, or the end without them).
    trailer_logged: AtomicBool,
}

impl Handler for Logger {
    type Call = CallLog;

    fn tag_rpc(&self, info: &RpcInfo<'_>) -> CallLog {
        let Some(limits) = self.inner.config.lookup(info.method()) else {
            return CallLog(None);
        };
        let peer = std::sync::OnceLock::new();
        if let Some(addr) = info.peer().and_then(|peer| peer.remote_addr()) {
            let _ = peer.set(address_of(addr));
        }
        CallLog(Some(Box::new(Logged {
            call_id: NEXT_CALL_ID.fetch_add(1, Ordering::Relaxed),
            next_seq: AtomicU64::new(1),
            limits,
            client: info.is_client(),
            method: info.method().into(),
            peer,
            authority: info.authority().map(Into::into),
            trailer_logged: AtomicBool::new(false),
        })))
    }

    fn handle_rpc(&self, call: &CallLog, event: &RpcEvent<'_>) {
        let Some(call) = &call.0 else {
            return;
        };
        let client = call.client;
        match event {
            RpcEvent::OutHeader { headers, peer, .. } if client => {
                if let Some(addr) = peer.and_then(|peer| peer.remote_addr()) {
                    let _ = call.peer.set(address_of(addr));
                }
                self.client_header(call, headers);
            }
            RpcEvent::HalfClose { .. } => {
                self.write(call, EventType::EVENT_TYPE_CLIENT_HALF_CLOSE, |_| {});
            }
            RpcEvent::OutHeader { headers, .. } => self.server_header(call, headers),
            RpcEvent::InHeader { headers, .. } if client => self.server_header(call, headers),
            RpcEvent::InHeader { headers, .. } => self.client_header(call, headers),
            RpcEvent::OutPayload(payload) if client => {
                self.message(call, EventType::EVENT_TYPE_CLIENT_MESSAGE, payload);
            }
            RpcEvent::OutPayload(payload) => {
                self.message(call, EventType::EVENT_TYPE_SERVER_MESSAGE, payload);
            }
            RpcEvent::InPayload(payload) if client => {
                self.message(call, EventType::EVENT_TYPE_SERVER_MESSAGE, payload);
            }
            RpcEvent::InPayload(payload) => {
                self.message(call, EventType::EVENT_TYPE_CLIENT_MESSAGE, payload);
            }
            RpcEvent::OutTrailer { trailers, .. } | RpcEvent::InTrailer { trailers, .. } => {
                self.trailers(call, trailers);
            }
            RpcEvent::End { status, .. } => self.end(call, status),
            _ => {}
        }
    }
}

fn now() -> Timestamp {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let mut timestamp = Timestamp::new();
    timestamp.seconds = i64::try_from(since_epoch.as_secs()).unwrap_or(i64::MAX);
    timestamp.nanos = since_epoch.subsec_nanos() as i32;
    timestamp
}

fn duration(d: std::time::Duration) -> DurationProto {
    let mut proto = DurationProto::new();
    proto.seconds = i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
    proto.nanos = d.subsec_nanos() as i32;
    proto
}

fn address_of(addr: SocketAddr) -> Address {
    let mut proto = Address::new();
    let (kind, ip) = match addr {
        SocketAddr::V4(v4) => (address::Type::TYPE_IPV4, v4.ip().to_string()),
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => (address::Type::TYPE_IPV4, v4.to_string()),
            None => (address::Type::TYPE_IPV6, v6.ip().to_string()),
        },
    };
    proto.type_ = kind.into();
    proto.address = ip;
    proto.ip_port = u32::from(addr.port());
    proto
}

/// Whether a key is left out of logged metadata: HTTP/2 pseudo-headers and what gRPC sends
/// of its own (gRPC-Go's list), but `grpc-trace-bin`, which applications see; and `host`,
/// logged as the authority.
fn omitted(key: &str) -> bool {
    match key {
        "grpc-trace-bin" => false,
        "lb-token" | "content-encoding" | "content-type" | "user-agent" | "te" | "host" => true,
        _ => key.starts_with(':') || key.starts_with("grpc-"),
    }
}

fn header_entries(headers: &http::HeaderMap) -> impl Iterator<Item = (&str, &[u8])> {
    headers.iter().map(|(k, v)| (k.as_str(), v.as_bytes()))
}

fn metadata(headers: &http::HeaderMap) -> Metadata {
    metadata_from(header_entries(headers))
}

/// Metadata as logged, from keys and wire values in order: `-bin` values decoded (each of
/// a comma-separated list its own entry; one that does not decode is logged as sent).
fn metadata_from<'a>(entries: impl Iterator<Item = (&'a str, &'a [u8])>) -> Metadata {
    let mut metadata = Metadata::new();
    let mut push = |key: &str, value: Vec<u8>| {
        let mut entry = MetadataEntry::new();
        entry.key = key.to_owned();
        entry.value = value;
        metadata.entry.push(entry);
    };
    for (key, value) in entries {
        if omitted(key) {
            continue;
        }
        if key.ends_with("-bin") {
            for part in value.split(|&b| b == b',') {
                push(
                    key,
                    crate::metadata::decode_bin(part).unwrap_or_else(|_| part.to_vec()),
                );
            }
        } else {
            push(key, value.to_vec());
        }
    }
    metadata
}

/// Keeps the entries that fit the header limit whole, in order, stopping at the first that
/// does not (`grpc-trace-bin` is kept and not counted): gRPC-Go's rule. Returns whether
/// any entry was left out.
fn truncate_metadata(mut metadata: Metadata, limits: Limits) -> (Metadata, bool) {
    if limits.header().is_none() {
        return (metadata, false);
    }
    let mut left = limits.header;
    let kept = metadata
        .entry
        .iter()
        .position(|entry| {
            if entry.key == "grpc-trace-bin" {
                return false;
            }
            let size = (entry.key.len() + entry.value.len()) as u64;
            if size > left {
                return true;
            }
            left -= size;
            false
        })
        .unwrap_or(metadata.entry.len());
    let truncated = kept < metadata.entry.len();
    metadata.entry.truncate(kept);
    (metadata, truncated)
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::time::Duration;

    use http::{HeaderMap, HeaderValue};

    use super::*;
    use crate::Peer;
    use crate::compression::CompressionEncoding;
    use crate::stats::{CallStats, HandlerList, Handlers};

    /// Keeps the records in memory.
    #[derive(Default)]
    struct Memory(Mutex<Vec<GrpcLogEntry>>);

    impl Sink for Memory {
        fn write(&self, entry: &GrpcLogEntry) {
            self.0.lock().unwrap().push(entry.clone());
        }
    }

    impl Memory {
        fn take(&self) -> Vec<GrpcLogEntry> {
            std::mem::take(&mut *self.0.lock().unwrap())
        }
    }

    fn handlers(filter: &str) -> (Handlers, Arc<Memory>) {
        let memory = Arc::new(Memory::default());
        let logger = Logger::new(Config::parse(filter).unwrap(), Arc::clone(&memory));
        let mut list = HandlerList::default();
        list.push(logger);
        (list.build(), memory)
    }

    fn client_info(method: &str) -> RpcInfo<'_> {
        RpcInfo {
            method,
            client: true,
            registered: true,
            target: Some("http://127.0.0.1:1"),
            attempt: None,
            peer: None,
            authority: Some("example.com:443"),
        }
    }

    fn server_info<'a>(method: &'a str, peer: &'a Peer) -> RpcInfo<'a> {
        RpcInfo {
            method,
            client: false,
            registered: true,
            target: None,
            attempt: None,
            peer: Some(peer),
            authority: Some("example.com:443"),
        }
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(*k, HeaderValue::from_str(v).unwrap());
        }
        map
    }

    fn kinds(entries: &[GrpcLogEntry]) -> Vec<EventType> {
        entries
            .iter()
            .map(|e| e.type_.enum_value().unwrap())
            .collect()
    }

    fn md(entry: &Metadata) -> Vec<(String, Vec<u8>)> {
        entry
            .entry
            .iter()
            .map(|e| (e.key.clone(), e.value.clone()))
            .collect()
    }

    fn pairs(list: &[(&str, &[u8])]) -> Vec<(String, Vec<u8>)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_vec()))
            .collect()
    }

    fn out_header(stats: &CallStats, h: &HeaderMap) {
        stats.emit(&RpcEvent::OutHeader {
            headers: h,
            peer: None,
        });
    }

    fn in_header(stats: &CallStats, h: &HeaderMap) {
        stats.emit(&RpcEvent::InHeader { headers: h });
    }

    use EventType::*;

    #[test]
    fn unary_client_call_records() {
        let (handlers, memory) = handlers("*");
        let stats = handlers.begin(&client_info("/pkg.S/M")).unwrap();
        out_header(
            &stats,
            &headers(&[
                ("te", "trailers"),
                ("content-type", "application/grpc"),
                ("user-agent", "grpc-rust"),
                ("grpc-timeout", "1500m"),
                ("grpc-accept-encoding", "gzip"),
                ("x-user", "alice"),
                ("x-user", "bob"),
                ("x-token-bin", "AAEC"),
                ("grpc-trace-bin", "AQI"),
            ]),
        );
        stats.out_frame(&[0, 0, 0, 0, 3, 1, 2, 3], None);
        in_header(
            &stats,
            &headers(&[("content-type", "application/grpc"), ("x-srv", "1")]),
        );
        stats.in_message(b"reply", 5);
        stats.emit(&RpcEvent::InTrailer {
            trailers: &headers(&[
                ("grpc-status", "0"),
                ("grpc-message", "all%20good"),
                ("x-trail", "t"),
            ]),
        });
        stats.end(&Status::ok(""));

        let entries = memory.take();
        assert_eq!(
            kinds(&entries),
            vec![
                EVENT_TYPE_CLIENT_HEADER,
                EVENT_TYPE_CLIENT_MESSAGE,
                EVENT_TYPE_SERVER_HEADER,
                EVENT_TYPE_SERVER_MESSAGE,
                EVENT_TYPE_SERVER_TRAILER,
            ]
        );
        let call_id = entries[0].call_id;
        assert!(call_id >= 1);
        for (i, entry) in entries.iter().enumerate() {
            assert_eq!(entry.call_id, call_id);
            assert_eq!(entry.sequence_id_within_call, i as u64 + 1);
            assert_eq!(entry.logger.enum_value(), Ok(Side::LOGGER_CLIENT));
            assert!(!entry.payload_truncated);
            assert!(entry.timestamp.seconds > 1_600_000_000);
            assert!(entry.peer.is_none());
        }
        let header = entries[0].client_header();
        assert_eq!(header.method_name, "/pkg.S/M");
        assert_eq!(header.timeout.seconds, 1);
        assert_eq!(header.timeout.nanos, 500_000_000);
        assert_eq!(
            md(&header.metadata),
            pairs(&[
                ("x-user", b"alice"),
                ("x-user", b"bob"),
                ("x-token-bin", &[0, 1, 2]),
                ("grpc-trace-bin", &[1, 2]),
            ])
        );
        assert_eq!(entries[1].message().length, 3);
        assert_eq!(entries[1].message().data, vec![1, 2, 3]);
        assert_eq!(
            md(&entries[2].server_header().metadata),
            pairs(&[("x-srv", b"1")])
        );
        assert_eq!(entries[3].message().data, b"reply");
        let trailer = entries[4].trailer();
        assert_eq!(trailer.status_code, 0);
        assert_eq!(trailer.status_message, "all good");
        assert!(trailer.status_details.is_empty());
        assert_eq!(md(&trailer.metadata), pairs(&[("x-trail", b"t")]));
    }

    #[test]
    fn server_call_records_with_peer() {
        let (handlers, memory) = handlers("pkg.S/*");
        let peer = Peer::new(Some("10.1.2.3:4567".parse().unwrap()), None);
        let stats = handlers.begin(&server_info("/pkg.S/M", &peer)).unwrap();
        in_header(
            &stats,
            &headers(&[
                ("content-type", "application/grpc"),
                ("host", "example.com:443"),
                ("grpc-timeout", "2S"),
                ("x-a", "1"),
            ]),
        );
        stats.in_message(b"req1", 4);
        stats.in_message(b"req2", 4);
        out_header(
            &stats,
            &headers(&[
                ("content-type", "application/grpc"),
                ("grpc-encoding", "identity"),
            ]),
        );
        stats.out_frame(&[0, 0, 0, 0, 2, 9, 9], None);
        let details = crate::metadata::encode_bin(b"\x08\x05");
        stats.emit(&RpcEvent::OutTrailer {
            trailers: &headers(&[
                ("grpc-status", "5"),
                ("grpc-message", "no such thing"),
                ("grpc-status-details-bin", &details),
            ]),
        });
        stats.end(&Status::not_found("no such thing"));

        let entries = memory.take();
        assert_eq!(
            kinds(&entries),
            vec![
                EVENT_TYPE_CLIENT_HEADER,
                EVENT_TYPE_CLIENT_MESSAGE,
                EVENT_TYPE_CLIENT_MESSAGE,
                EVENT_TYPE_SERVER_HEADER,
                EVENT_TYPE_SERVER_MESSAGE,
                EVENT_TYPE_SERVER_TRAILER,
            ]
        );
        assert!(
            entries
                .iter()
                .all(|e| e.logger.enum_value() == Ok(Side::LOGGER_SERVER))
        );
        let seqs: Vec<u64> = entries.iter().map(|e| e.sequence_id_within_call).collect();
        assert_eq!(seqs, vec![1, 2, 3, 4, 5, 6]);
        let header = &entries[0];
        assert_eq!(header.peer.type_.enum_value(), Ok(address::Type::TYPE_IPV4));
        assert_eq!(header.peer.address, "10.1.2.3");
        assert_eq!(header.peer.ip_port, 4567);
        assert_eq!(header.client_header().authority, "example.com:443");
        assert_eq!(header.client_header().timeout.seconds, 2);
        assert_eq!(
            md(&header.client_header().metadata),
            pairs(&[("x-a", b"1")])
        );
        // Only the client header carries the peer on a server.
        assert!(entries[1..].iter().all(|e| e.peer.is_none()));
        assert_eq!(entries[2].message().data, b"req2");
        assert!(entries[3].server_header().metadata.entry.is_empty());
        assert_eq!(entries[4].message().data, vec![9, 9]);
        let trailer = entries[5].trailer();
        assert_eq!(trailer.status_code, 5);
        assert_eq!(trailer.status_message, "no such thing");
        assert_eq!(trailer.status_details, b"\x08\x05");
        assert!(trailer.metadata.entry.is_empty());
    }

    #[test]
    fn calls_get_increasing_ids_and_their_own_sequences() {
        let (handlers, memory) = handlers("*");
        let a = handlers.begin(&client_info("/pkg.S/A")).unwrap();
        let b = handlers.begin(&client_info("/pkg.S/B")).unwrap();
        a.in_message(b"1", 1);
        b.in_message(b"2", 1);
        a.in_message(b"3", 1);
        let entries = memory.take();
        let ids: Vec<(u64, u64)> = entries
            .iter()
            .map(|e| (e.call_id, e.sequence_id_within_call))
            .collect();
        let (ida, idb) = (entries[0].call_id, entries[1].call_id);
        assert!(idb > ida);
        assert_eq!(ids, vec![(ida, 1), (idb, 1), (ida, 2)]);
    }

    #[test]
    fn unlogged_methods_make_no_records() {
        let (handlers, memory) = handlers("pkg.S/*,-pkg.S/Secret");
        for method in ["/pkg.S/Secret", "/pkg.T/M", "not-a-path"] {
            let stats = handlers.begin(&client_info(method)).unwrap();
            out_header(&stats, &headers(&[("x", "y")]));
            stats.in_message(b"m", 1);
            stats.end(&Status::cancelled("gone"));
        }
        assert!(memory.take().is_empty());
    }

    #[test]
    fn messages_are_cut_to_the_limit_with_their_full_length() {
        let (handlers, memory) = handlers("*{m:4}");
        let stats = handlers.begin(&client_info("/pkg.S/M")).unwrap();
        stats.in_message(b"0123456789", 10);
        stats.in_message(b"0123", 4);
        stats.in_message(b"", 0);
        let entries = memory.take();
        let got: Vec<(u32, &[u8], bool)> = entries
            .iter()
            .map(|e| {
                (
                    e.message().length,
                    e.message().data.as_slice(),
                    e.payload_truncated,
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                (10, &b"0123"[..], true),
                (4, &b"0123"[..], false),
                (0, &b""[..], false),
            ]
        );
    }

    #[test]
    fn header_only_config_logs_messages_empty() {
        let (handlers, memory) = handlers("*{h}");
        let stats = handlers.begin(&client_info("/pkg.S/M")).unwrap();
        stats.out_frame(&[0, 0, 0, 0, 2, 7, 7], None);
        out_header(&stats, &headers(&[("x-long", "abcdefghij")]));
        let entries = memory.take();
        assert_eq!(entries[0].message().length, 2);
        assert!(entries[0].message().data.is_empty());
        assert!(entries[0].payload_truncated);
        assert_eq!(entries[1].client_header().metadata.entry.len(), 1);
        assert!(!entries[1].payload_truncated);
    }

    #[test]
    fn metadata_is_cut_at_the_first_entry_over_the_limit() {
        // "a" + "12" = 3, "bb" + "3" = 3, "c" + "4567" = 5: a limit of 7 keeps two.
        let (handlers, memory) = handlers("*{h:7}");
        let stats = handlers.begin(&client_info("/pkg.S/M")).unwrap();
        let sent = headers(&[
            ("a", "12"),
            ("grpc-trace-bin", "AQIDBAUGBwgJ"),
            ("bb", "3"),
            ("c", "4567"),
            ("d", ""),
        ]);
        out_header(&stats, &sent);
        in_header(&stats, &headers(&[("a", "12"), ("bb", "3")]));
        stats.out_frame(&[0, 0, 0, 0, 1, 1], None);
        let entries = memory.take();
        assert_eq!(
            md(&entries[0].client_header().metadata),
            pairs(&[
                ("a", b"12"),
                ("grpc-trace-bin", &[1, 2, 3, 4, 5, 6, 7, 8, 9]),
                ("bb", b"3"),
            ])
        );
        assert!(entries[0].payload_truncated);
        // Exactly at the limit: nothing cut.
        assert_eq!(entries[1].server_header().metadata.entry.len(), 2);
        assert!(!entries[1].payload_truncated);
        // {h:N} alone logs no message bytes.
        assert!(entries[2].message().data.is_empty());
        assert!(entries[2].payload_truncated);
    }

    #[test]
    fn zero_header_limit_keeps_only_trace() {
        let (handlers, memory) = handlers("*{m}");
        let stats = handlers.begin(&client_info("/pkg.S/M")).unwrap();
        out_header(&stats, &headers(&[("grpc-trace-bin", "AQ"), ("x", "")]));
        out_header(&stats, &headers(&[("grpc-trace-bin", "AQ")]));
        let entries = memory.take();
        assert_eq!(
            md(&entries[0].client_header().metadata),
            pairs(&[("grpc-trace-bin", &[1])])
        );
        assert!(entries[0].payload_truncated);
        assert!(!entries[1].payload_truncated);
    }

    #[test]
    fn cancelled_client_call_logs_cancel() {
        let (handlers, memory) = handlers("*");
        let stats = handlers.begin(&client_info("/pkg.S/M")).unwrap();
        out_header(&stats, &headers(&[]));
        stats.end(&Status::cancelled("client went away"));
        let entries = memory.take();
        assert_eq!(
            kinds(&entries),
            vec![EVENT_TYPE_CLIENT_HEADER, EVENT_TYPE_CANCEL]
        );
        assert!(entries[1].payload.is_none());
        assert_eq!(entries[1].sequence_id_within_call, 2);
    }

    #[test]
    fn dropped_call_logs_cancel_and_deadline_too() {
        let (handlers, memory) = handlers("*");
        let stats = handlers.begin(&client_info("/pkg.S/M")).unwrap();
        drop(stats); // CallStats ends a dropped call CANCELLED.
        let stats = handlers.begin(&client_info("/pkg.S/M")).unwrap();
        stats.end(&Status::deadline_exceeded("too slow"));
        assert_eq!(
            kinds(&memory.take()),
            vec![EVENT_TYPE_CANCEL, EVENT_TYPE_CANCEL]
        );
    }

    #[test]
    fn local_failure_logs_a_trailer_with_the_status() {
        let (handlers, memory) = handlers("*");
        let stats = handlers.begin(&client_info("/pkg.S/M")).unwrap();
        let mut status = Status::unavailable("connection refused (127.0.0.1:1)");
        status.metadata_mut().insert("x-why", "refused").unwrap();
        stats.end(&status);
        let entries = memory.take();
        assert_eq!(kinds(&entries), vec![EVENT_TYPE_SERVER_TRAILER]);
        let trailer = entries[0].trailer();
        assert_eq!(trailer.status_code, 14);
        assert_eq!(trailer.status_message, "connection refused (127.0.0.1:1)");
        assert_eq!(md(&trailer.metadata), pairs(&[("x-why", b"refused")]));
    }

    #[test]
    fn trailers_then_end_log_one_trailer() {
        let (handlers, memory) = handlers("*");
        let stats = handlers.begin(&client_info("/pkg.S/M")).unwrap();
        // A trailers-only answer.
        stats.emit(&RpcEvent::InTrailer {
            trailers: &headers(&[("grpc-status", "1"), ("grpc-message", "stop")]),
        });
        stats.end(&Status::cancelled("stop"));
        let entries = memory.take();
        assert_eq!(kinds(&entries), vec![EVENT_TYPE_SERVER_TRAILER]);
        assert_eq!(entries[0].trailer().status_code, 1);
    }

    #[test]
    fn trailers_without_status_are_logged_at_the_end() {
        let (handlers, memory) = handlers("*");
        let stats = handlers.begin(&client_info("/pkg.S/M")).unwrap();
        stats.emit(&RpcEvent::InTrailer {
            trailers: &headers(&[("x", "y")]),
        });
        stats.end(&Status::internal(
            "server closed the stream without a status",
        ));
        let entries = memory.take();
        assert_eq!(kinds(&entries), vec![EVENT_TYPE_SERVER_TRAILER]);
        assert_eq!(entries[0].trailer().status_code, 13);
    }

    #[test]
    fn compressed_sent_messages_are_logged_uncompressed() {
        let (handlers, memory) = handlers("*");
        let stats = handlers.begin(&client_info("/pkg.S/M")).unwrap();
        let plain = b"hello hello hello hello hello".to_vec();
        let mut compressed = bytes::BytesMut::new();
        crate::compression::compress(CompressionEncoding::Gzip, &plain, &mut compressed)
            .expect("gzip");
        let mut frame = vec![1];
        frame.extend_from_slice(&(compressed.len() as u32).to_be_bytes());
        frame.extend_from_slice(&compressed);
        stats.out_frame(&frame, Some(CompressionEncoding::Gzip));
        let entries = memory.take();
        assert_eq!(entries[0].message().data, plain);
        assert_eq!(entries[0].message().length as usize, plain.len());
    }

    #[test]
    fn ipv6_and_mapped_peers() {
        let v6 = address_of("[2001:db8::1]:443".parse().unwrap());
        assert_eq!(v6.type_.enum_value(), Ok(address::Type::TYPE_IPV6));
        assert_eq!((v6.address.as_str(), v6.ip_port), ("2001:db8::1", 443));
        let mapped = address_of("[::ffff:10.0.0.1]:80".parse().unwrap());
        assert_eq!(mapped.type_.enum_value(), Ok(address::Type::TYPE_IPV4));
        assert_eq!(mapped.address, "10.0.0.1");
    }

    #[test]
    fn reserved_keys_are_omitted() {
        for key in [
            ":path",
            ":authority",
            "te",
            "content-type",
            "content-encoding",
            "user-agent",
            "lb-token",
            "grpc-status",
            "grpc-encoding",
            "grpc-timeout",
            "grpc-tags-bin",
            "host",
        ] {
            assert!(omitted(key), "{key}");
        }
        for key in ["grpc-trace-bin", "x-grpc-foo", "authorization", "host2"] {
            assert!(!omitted(key), "{key}");
        }
    }

    #[test]
    fn bin_values_split_on_commas() {
        let md = metadata(&headers(&[("x-bin", "AQ,AgM"), ("x-bad-bin", "!!")]));
        assert_eq!(
            md.entry
                .iter()
                .map(|e| (e.key.as_str(), e.value.clone()))
                .collect::<Vec<_>>(),
            vec![
                ("x-bin", vec![1]),
                ("x-bin", vec![2, 3]),
                ("x-bad-bin", b"!!".to_vec())
            ]
        );
    }

    #[test]
    fn zero_timeout_is_not_logged() {
        let (handlers, memory) = handlers("*");
        let stats = handlers.begin(&client_info("/pkg.S/M")).unwrap();
        out_header(&stats, &headers(&[("grpc-timeout", "0n")]));
        assert!(memory.take()[0].client_header().timeout.is_none());
        let _ = Duration::ZERO;
    }
}
