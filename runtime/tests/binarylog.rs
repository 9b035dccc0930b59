//! Binary logging over real sockets: a server and a client, each with a `Logger` writing a
//! file, read back as gRPC's length-prefixed `GrpcLogEntry` records.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::*;
use grpc_runtime::binarylog::proto::address::Type as AddressType;
use grpc_runtime::binarylog::proto::grpc_log_entry::{EventType, Logger as Side};
use grpc_runtime::binarylog::proto::{GrpcLogEntry, Metadata};
use grpc_runtime::binarylog::{Config, FileSink, Logger};
use grpc_runtime::client::{Channel, Client};
use grpc_runtime::{Code, Request, Response, Streaming};
use protobuf::Message;
use protobuf::well_known_types::wrappers::{StringValue, UInt32Value};

use EventType::*;

/// A log file in the temporary directory, removed when dropped.
struct LogFile(PathBuf);

impl LogFile {
    fn new(side: &str) -> LogFile {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        LogFile(std::env::temp_dir().join(format!(
            "grpc-runtime-binarylog-{}-{nanos}-{side}.log",
            std::process::id()
        )))
    }

    /// Every record in the file, in file order.
    fn read(&self) -> Vec<GrpcLogEntry> {
        let bytes = std::fs::read(&self.0).unwrap();
        let mut rest = &bytes[..];
        let mut entries = Vec::new();
        while !rest.is_empty() {
            let (len, tail) = rest.split_first_chunk::<4>().expect("a 4-byte length");
            let len = u32::from_be_bytes(*len) as usize;
            assert!(tail.len() >= len, "a torn record");
            entries.push(GrpcLogEntry::parse_from_bytes(&tail[..len]).unwrap());
            rest = &tail[len..];
        }
        entries
    }
}

impl Drop for LogFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// One side's logger and its file.
struct LogSide {
    logger: Logger,
    file: LogFile,
}

impl LogSide {
    fn new(side: &str, filter: &str) -> LogSide {
        let file = LogFile::new(side);
        // Written out only when the test flushes, so what is in the file is what it asked.
        let sink = FileSink::create(&file.0)
            .unwrap()
            .flush_interval(Duration::from_secs(3600));
        LogSide {
            logger: Logger::new(Config::parse(filter).unwrap(), sink),
            file,
        }
    }

    /// The calls logged so far by call id, each call's records in sequence order.
    fn calls(&self) -> BTreeMap<u64, Vec<GrpcLogEntry>> {
        self.logger.flush();
        let mut calls: BTreeMap<u64, Vec<GrpcLogEntry>> = BTreeMap::new();
        for entry in self.file.read() {
            calls.entry(entry.call_id).or_default().push(entry);
        }
        for records in calls.values_mut() {
            records.sort_by_key(|e| e.sequence_id_within_call);
        }
        calls
    }
}

struct Setup {
    client: Client,
    client_log: LogSide,
    server_log: LogSide,
    _srv: Running,
}

async fn setup(client_filter: &str, server_filter: &str) -> Setup {
    let server_log = LogSide::new("server", server_filter);
    let srv = {
        let logger = server_log.logger.clone();
        start_with(move |b| b.stats_handler(logger)).await
    };
    let client_log = LogSide::new("client", client_filter);
    let channel = Channel::builder(&format!("http://{}", srv.addr))
        .stats_handler(client_log.logger.clone())
        .build()
        .unwrap();
    Setup {
        client: Client::new(channel),
        client_log,
        server_log,
        _srv: srv,
    }
}

/// Waits until `side` has logged `n` calls that ended (a trailer or a cancel): the server's
/// records may trail the client's by a task switch.
async fn ended(side: &LogSide, n: usize) -> BTreeMap<u64, Vec<GrpcLogEntry>> {
    let is_end = |e: &GrpcLogEntry| {
        matches!(
            e.type_.enum_value(),
            Ok(EVENT_TYPE_SERVER_TRAILER | EVENT_TYPE_CANCEL)
        )
    };
    eventually("the calls' ends are logged", || {
        side.calls()
            .values()
            .filter(|records| records.iter().any(is_end))
            .count()
            >= n
    })
    .await;
    side.calls()
}

fn kinds(records: &[GrpcLogEntry]) -> Vec<EventType> {
    records
        .iter()
        .map(|e| e.type_.enum_value().unwrap())
        .collect()
}

fn keys(metadata: &Metadata) -> Vec<(&str, &[u8])> {
    metadata
        .entry
        .iter()
        .map(|e| (e.key.as_str(), e.value.as_slice()))
        .collect()
}

fn messages(records: &[GrpcLogEntry], kind: EventType) -> Vec<(u32, Vec<u8>, bool)> {
    records
        .iter()
        .filter(|e| e.type_.enum_value() == Ok(kind))
        .map(|e| {
            (
                e.message().length,
                e.message().data.clone(),
                e.payload_truncated,
            )
        })
        .collect()
}

fn encoded(text: &str) -> Vec<u8> {
    s(text).write_to_bytes().unwrap()
}

/// Checks what every record of a call shares: the call id, sequence numbers from 1, the
/// side; returns the method.
fn check_call(call_id: u64, records: &[GrpcLogEntry], side: Side) -> String {
    for (i, entry) in records.iter().enumerate() {
        assert_eq!(entry.call_id, call_id);
        assert_eq!(entry.sequence_id_within_call, i as u64 + 1, "{records:?}");
        assert_eq!(entry.logger.enum_value(), Ok(side));
        assert!(entry.timestamp.seconds > 1_600_000_000);
    }
    assert_eq!(records[0].type_.enum_value(), Ok(EVENT_TYPE_CLIENT_HEADER));
    records[0].client_header().method_name.clone()
}

#[tokio::test]
async fn unary_and_streaming_calls_are_logged_on_both_sides() {
    // The client logs Chat's messages cut to 2 bytes, and not Count at all.
    let t = setup("*,test.Echo/Chat{h;m:2},-test.Echo/Count", "test.Echo/*").await;

    // Unary, with metadata echoed back as a header and a trailer, and a deadline.
    let mut request = Request::new(s("hello"));
    request.metadata_mut().insert("x-echo", "e").unwrap();
    request
        .metadata_mut()
        .insert("x-echo-trailer", "t")
        .unwrap();
    request.set_timeout(Duration::from_secs(30));
    let reply: Response<StringValue> = t.client.unary(UNARY, request, pb()).await.unwrap();
    assert_eq!(reply.get_ref().value, "hello");

    // Bidi: two messages each way.
    let (mut tx, mut rx) = t
        .client
        .bidi_streaming(CHAT, Request::new(()), pb::<StringValue, StringValue>())
        .await
        .unwrap();
    tx.send(s("x")).await.unwrap();
    tx.send(s("yy")).await.unwrap();
    tx.close();
    let mut got = Vec::new();
    while let Some(m) = rx.message().await.unwrap() {
        got.push(m.value);
    }
    assert_eq!(got, ["x", "yy"]);

    // Server streaming, which only the server logs.
    let mut stream: Streaming<UInt32Value> = t
        .client
        .server_streaming(COUNT, Request::new(n(2)), pb())
        .await
        .unwrap();
    while stream.message().await.unwrap().is_some() {}

    // A failure answered trailers-only.
    let err = t
        .client
        .unary(
            UNARY,
            Request::new(s("fail:5:gone")),
            pb::<_, StringValue>(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);

    let client = ended(&t.client_log, 3).await;
    let server = ended(&t.server_log, 4).await;
    assert_eq!(client.len(), 3, "{client:?}");
    assert_eq!(server.len(), 4, "{server:?}");
    // Call ids are process-wide: no two calls share one, on either side.
    let mut ids: Vec<u64> = client.keys().chain(server.keys()).copied().collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 7);
    assert!(ids[0] >= 1);

    let by_method = |calls: &BTreeMap<u64, Vec<GrpcLogEntry>>, side| {
        let mut methods: BTreeMap<String, Vec<Vec<GrpcLogEntry>>> = BTreeMap::new();
        for (id, records) in calls {
            let method = check_call(*id, records, side);
            methods.entry(method).or_default().push(records.clone());
        }
        methods
    };
    let client = by_method(&client, Side::LOGGER_CLIENT);
    let server = by_method(&server, Side::LOGGER_SERVER);
    assert_eq!(
        client.keys().collect::<Vec<_>>(),
        ["/test.Echo/Chat", "/test.Echo/Unary"]
    );
    assert_eq!(
        server.keys().collect::<Vec<_>>(),
        ["/test.Echo/Chat", "/test.Echo/Count", "/test.Echo/Unary"]
    );

    // Unary: the same six records on both sides (the ok call was made first).
    let unary_kinds = [
        EVENT_TYPE_CLIENT_HEADER,
        EVENT_TYPE_CLIENT_MESSAGE,
        EVENT_TYPE_CLIENT_HALF_CLOSE,
        EVENT_TYPE_SERVER_HEADER,
        EVENT_TYPE_SERVER_MESSAGE,
        EVENT_TYPE_SERVER_TRAILER,
    ];
    for (side, unary) in [
        ("client", &client["/test.Echo/Unary"]),
        ("server", &server["/test.Echo/Unary"]),
    ] {
        assert_eq!(unary.len(), 2, "{side}");
        let ok = &unary[0];
        assert_eq!(kinds(ok), unary_kinds, "{side}");
        let header = ok[0].client_header();
        assert_eq!(
            keys(&header.metadata),
            [("x-echo", &b"e"[..]), ("x-echo-trailer", b"t")],
            "{side}"
        );
        let timeout = Duration::new(header.timeout.seconds as u64, header.timeout.nanos as u32);
        assert!(
            timeout > Duration::from_secs(25) && timeout <= Duration::from_secs(30),
            "{side}: {timeout:?}"
        );
        assert_eq!(
            messages(ok, EVENT_TYPE_CLIENT_MESSAGE),
            [(7, encoded("hello"), false)],
            "{side}"
        );
        assert_eq!(
            messages(ok, EVENT_TYPE_SERVER_MESSAGE),
            [(7, encoded("hello"), false)],
            "{side}"
        );
        assert_eq!(
            keys(&ok[3].server_header().metadata),
            [("x-echo", &b"e"[..])],
            "{side}"
        );
        let trailer = ok[5].trailer();
        assert_eq!(
            (trailer.status_code, trailer.status_message.as_str()),
            (0, ""),
            "{side}"
        );
        assert_eq!(
            keys(&trailer.metadata),
            [("x-echo-trailer", &b"t"[..])],
            "{side}"
        );

        // The failure: no response headers, no response message.
        let failed = &unary[1];
        assert_eq!(
            kinds(failed),
            [
                EVENT_TYPE_CLIENT_HEADER,
                EVENT_TYPE_CLIENT_MESSAGE,
                EVENT_TYPE_CLIENT_HALF_CLOSE,
                EVENT_TYPE_SERVER_TRAILER
            ],
            "{side}"
        );
        assert_eq!(
            messages(failed, EVENT_TYPE_CLIENT_MESSAGE),
            [(13, encoded("fail:5:gone"), false)]
        );
        let trailer = failed[3].trailer();
        assert_eq!(
            (trailer.status_code, trailer.status_message.as_str()),
            (5, "gone"),
            "{side}"
        );
        assert!(failed[0].client_header().timeout.is_none());
    }

    // The server knows its client's address (on the client's header); the client its
    // server's (on the server's header and trailer).
    for records in server.values().flatten() {
        let peer = &records[0].peer;
        assert_eq!(peer.type_.enum_value(), Ok(AddressType::TYPE_IPV4));
        assert_eq!(peer.address, "127.0.0.1");
        assert_ne!(peer.ip_port, 0);
        assert!(records[1..].iter().all(|e| e.peer.is_none()));
    }
    for records in client.values().flatten() {
        for entry in records {
            let kind = entry.type_.enum_value().unwrap();
            if kind == EVENT_TYPE_SERVER_HEADER || kind == EVENT_TYPE_SERVER_TRAILER {
                assert_eq!(entry.peer.address, "127.0.0.1");
                assert_ne!(entry.peer.ip_port, 0);
            } else {
                assert!(entry.peer.is_none(), "{kind:?}");
            }
        }
        // The authority the client addressed.
        assert!(
            records[0]
                .client_header()
                .authority
                .starts_with("127.0.0.1:")
        );
    }

    // Chat: the messages each way in order; the client's cut to 2 bytes.
    let chat = &client["/test.Echo/Chat"][0];
    assert_eq!(
        chat.last().unwrap().type_.enum_value(),
        Ok(EVENT_TYPE_SERVER_TRAILER)
    );
    assert_eq!(chat.last().unwrap().trailer().status_code, 0);
    let cut = |text: &str| {
        (
            encoded(text).len() as u32,
            encoded(text)[..2].to_vec(),
            true,
        )
    };
    assert_eq!(
        messages(chat, EVENT_TYPE_CLIENT_MESSAGE),
        [cut("x"), cut("yy")]
    );
    assert_eq!(
        messages(chat, EVENT_TYPE_SERVER_MESSAGE),
        [cut("x"), cut("yy")]
    );
    let chat = &server["/test.Echo/Chat"][0];
    let whole = |text: &str| (encoded(text).len() as u32, encoded(text), false);
    assert_eq!(
        messages(chat, EVENT_TYPE_CLIENT_MESSAGE),
        [whole("x"), whole("yy")]
    );
    assert_eq!(
        messages(chat, EVENT_TYPE_SERVER_MESSAGE),
        [whole("x"), whole("yy")]
    );
    for chat in [&client["/test.Echo/Chat"][0], &server["/test.Echo/Chat"][0]] {
        let kinds = kinds(chat);
        assert_eq!(kinds.len(), 8, "{kinds:?}");
        assert!(kinds.contains(&EVENT_TYPE_CLIENT_HALF_CLOSE), "{kinds:?}");
        assert_eq!(kinds.last(), Some(&EVENT_TYPE_SERVER_TRAILER));
        // Response headers before the first response message.
        let header = kinds
            .iter()
            .position(|k| *k == EVENT_TYPE_SERVER_HEADER)
            .unwrap();
        let first = kinds
            .iter()
            .position(|k| *k == EVENT_TYPE_SERVER_MESSAGE)
            .unwrap();
        assert!(header < first, "{kinds:?}");
    }

    // Count, on the server: one request, two responses.
    let count = &server["/test.Echo/Count"][0];
    assert_eq!(
        kinds(count),
        [
            EVENT_TYPE_CLIENT_HEADER,
            EVENT_TYPE_CLIENT_MESSAGE,
            EVENT_TYPE_CLIENT_HALF_CLOSE,
            EVENT_TYPE_SERVER_HEADER,
            EVENT_TYPE_SERVER_MESSAGE,
            EVENT_TYPE_SERVER_MESSAGE,
            EVENT_TYPE_SERVER_TRAILER,
        ]
    );
    let values: Vec<Vec<u8>> = messages(count, EVENT_TYPE_SERVER_MESSAGE)
        .into_iter()
        .map(|m| m.1)
        .collect();
    assert_eq!(
        values,
        [
            n(0).write_to_bytes().unwrap(),
            n(1).write_to_bytes().unwrap()
        ]
    );
}

#[tokio::test]
async fn a_call_the_client_abandons_is_a_cancel_on_both_sides() {
    let t = setup("*", "*").await;
    let mut request = Request::new(n(2));
    request.metadata_mut().insert("x-hang", "1").unwrap();
    let mut stream: Streaming<UInt32Value> = t
        .client
        .server_streaming(COUNT, request, pb())
        .await
        .unwrap();
    assert_eq!(stream.message().await.unwrap().unwrap().value, 0);
    assert_eq!(stream.message().await.unwrap().unwrap().value, 1);
    drop(stream);

    for (side, log) in [("client", &t.client_log), ("server", &t.server_log)] {
        let calls = ended(log, 1).await;
        assert_eq!(calls.len(), 1, "{side}");
        let (id, records) = calls.iter().next().unwrap();
        let side_enum = if side == "client" {
            Side::LOGGER_CLIENT
        } else {
            Side::LOGGER_SERVER
        };
        assert_eq!(check_call(*id, records, side_enum), "/test.Echo/Count");
        assert_eq!(
            kinds(records),
            [
                EVENT_TYPE_CLIENT_HEADER,
                EVENT_TYPE_CLIENT_MESSAGE,
                EVENT_TYPE_CLIENT_HALF_CLOSE,
                EVENT_TYPE_SERVER_HEADER,
                EVENT_TYPE_SERVER_MESSAGE,
                EVENT_TYPE_SERVER_MESSAGE,
                EVENT_TYPE_CANCEL,
            ],
            "{side}"
        );
        assert!(records.last().unwrap().payload.is_none());
    }
}
