//! The load generator's engine, shared by our client and the tonic one (which includes this
//! file by path, so both measure the same way): argument parsing, a log-linear latency
//! histogram, the closed-loop clock, per-worker results and the report.
//!
//! Nothing here knows about gRPC: a worker times its own calls with `Worker::record`.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::str::FromStr;
use std::time::{Duration, Instant};

/// `--key value` arguments. Every key must be known to the caller (see [`Args::finish`]).
#[derive(Debug)]
pub struct Args {
    values: HashMap<String, String>,
    used: Vec<String>,
    usage: &'static str,
}

impl Args {
    /// Parses the process arguments; `--help` prints `usage` and exits.
    pub fn parse(usage: &'static str) -> Args {
        let mut values = HashMap::new();
        let mut it = std::env::args().skip(1);
        while let Some(arg) = it.next() {
            if arg == "--help" || arg == "-h" {
                println!("{usage}");
                std::process::exit(0);
            }
            let Some(key) = arg.strip_prefix("--") else {
                fail(usage, &format!("unexpected argument {arg:?}"));
            };
            let (key, value) = match key.split_once('=') {
                Some((k, v)) => (k.to_owned(), v.to_owned()),
                None => match it.next() {
                    Some(v) => (key.to_owned(), v),
                    None => fail(usage, &format!("--{key} needs a value")),
                },
            };
            values.insert(key, value);
        }
        Args {
            values,
            used: Vec::new(),
            usage,
        }
    }

    /// The value of `--key`, or `default`.
    pub fn get<T: FromStr>(&mut self, key: &str, default: T) -> T {
        self.used.push(key.to_owned());
        match self.values.get(key) {
            None => default,
            Some(v) => v
                .parse()
                .unwrap_or_else(|_| fail(self.usage, &format!("bad value {v:?} for --{key}"))),
        }
    }

    /// The value of `--key` if given.
    pub fn opt<T: FromStr>(&mut self, key: &str) -> Option<T> {
        self.used.push(key.to_owned());
        let v = self.values.get(key)?;
        Some(
            v.parse()
                .unwrap_or_else(|_| fail(self.usage, &format!("bad value {v:?} for --{key}"))),
        )
    }

    /// Fails on any argument nobody asked for (a typo would otherwise be silently ignored).
    pub fn finish(self) {
        for key in self.values.keys() {
            if !self.used.contains(key) {
                fail(self.usage, &format!("unknown option --{key}"));
            }
        }
    }
}

fn fail(usage: &str, why: &str) -> ! {
    eprintln!("error: {why}\n\n{usage}");
    std::process::exit(2)
}

/// A tokio runtime: current-thread for one thread (no cross-thread wakeups), else
/// multi-thread with that many workers. Servers and load generators use the same rule.
pub fn runtime(threads: usize) -> tokio::runtime::Runtime {
    let mut builder = if threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(threads);
        b
    };
    builder.enable_all().build().expect("tokio runtime")
}

/// Sub-buckets per power of two: 2^7 = 128, so a recorded value is off by less than 1/128
/// (0.8%) of itself. Values below 128 ns are exact.
const SUB_BITS: u32 = 7;
const SUB: usize = 1 << SUB_BITS;
const BUCKETS: usize = SUB + (64 - SUB_BITS as usize) * SUB;

/// A log-linear histogram of nanosecond values (the idea of HdrHistogram at a fixed
/// precision): constant-time recording, fixed memory (about 60 KiB), mergeable.
#[derive(Clone)]
pub struct Histogram {
    counts: Vec<u64>,
    total: u64,
    min: u64,
    max: u64,
    sum: u128,
}

impl std::fmt::Debug for Histogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Histogram")
            .field("total", &self.total)
            .field("min", &self.min)
            .field("max", &self.max)
            .finish_non_exhaustive()
    }
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram::new()
    }
}

impl Histogram {
    /// An empty histogram.
    pub fn new() -> Histogram {
        Histogram {
            counts: vec![0; BUCKETS],
            total: 0,
            min: u64::MAX,
            max: 0,
            sum: 0,
        }
    }

    fn index(v: u64) -> usize {
        if v < SUB as u64 {
            return v as usize;
        }
        let exp = 63 - v.leading_zeros();
        let shift = exp - SUB_BITS;
        let sub = (v >> shift) as usize - SUB;
        SUB + shift as usize * SUB + sub
    }

    /// The largest value that falls in bucket `i`.
    fn upper(i: usize) -> u64 {
        if i < SUB {
            return i as u64;
        }
        let shift = ((i - SUB) / SUB) as u32;
        let sub = ((i - SUB) % SUB) as u64;
        ((((SUB as u64 + sub + 1) as u128) << shift) - 1).min(u64::MAX as u128) as u64
    }

    /// Records one value.
    pub fn record(&mut self, v: u64) {
        self.counts[Self::index(v)] += 1;
        self.total += 1;
        self.min = self.min.min(v);
        self.max = self.max.max(v);
        self.sum += v as u128;
    }

    /// Adds `other`'s values.
    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.total += other.total;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        self.sum += other.sum;
    }

    /// How many values were recorded.
    pub fn count(&self) -> u64 {
        self.total
    }

    /// The mean, 0 when empty.
    pub fn mean(&self) -> u64 {
        if self.total == 0 {
            0
        } else {
            (self.sum / self.total as u128) as u64
        }
    }

    /// The value at quantile `q` (0..=1): the smallest bucket bound with at least
    /// `ceil(q * count)` values at or below it, capped at the largest value seen.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        if q <= 0.0 {
            return self.min;
        }
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Self::upper(i).min(self.max).max(self.min);
            }
        }
        self.max
    }
}

/// What the load generator was asked to do.
#[derive(Clone, Debug)]
pub struct LoadConfig {
    /// `host:port` of the server.
    pub target: String,
    /// `unary`, `streaming`, `server-streaming` or `client-streaming`.
    pub rpc: Rpc,
    /// Outstanding RPCs (or streams) per connection.
    pub concurrency: usize,
    /// HTTP/2 connections.
    pub connections: usize,
    /// Request payload bytes.
    pub req_size: usize,
    /// Response payload bytes asked for (and checked).
    pub resp_size: usize,
    /// Calls before this are not measured.
    pub warmup: Duration,
    /// The measured time.
    pub duration: Duration,
    /// Load generator runtime threads.
    pub threads: usize,
    /// Server process whose CPU time to report, read from `/proc`.
    pub server_pid: Option<u32>,
    /// TLS: the CA (PEM file) to trust; the server is expected to be `localhost` (the
    /// benchmark's certificate). Plaintext when `None`.
    pub tls_ca: Option<String>,
    /// A service config for the channel (ours only: the overhead of a retry policy).
    pub service_config: Option<String>,
    /// The HTTP/2 initial stream window the client announces, if not the library's.
    pub stream_window: Option<u32>,
    /// The HTTP/2 connection window the client announces, if not the library's.
    pub conn_window: Option<u32>,
    /// Write the gRPC-framed request to this file and exit (for h2load).
    pub write_request: Option<String>,
    /// A label for the report.
    pub label: String,
}

/// The name the load generators expect the server's TLS certificate to carry (they dial
/// 127.0.0.1 and check this name instead, as gRPC's server name override does).
pub const TLS_SERVER_NAME: &str = "localhost";

/// The kind of RPC driven.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rpc {
    /// UnaryCall: one call per request.
    Unary,
    /// StreamingCall ping-pong: one request then one response at a time on a stream.
    Streaming,
    /// StreamingFromServer: one request, then responses back-to-back until the client
    /// cancels; every response counts as a call, its latency the gap since the previous one.
    ServerStreaming,
    /// StreamingFromClient: requests back-to-back until the end of the measured time, then
    /// the one response; every request counts as a call, its latency the gap since the
    /// previous one.
    ClientStreaming,
}

impl Rpc {
    /// The name `--rpc` takes and the report prints.
    pub fn name(self) -> &'static str {
        match self {
            Rpc::Unary => "unary",
            Rpc::Streaming => "streaming",
            Rpc::ServerStreaming => "server-streaming",
            Rpc::ClientStreaming => "client-streaming",
        }
    }
}

impl FromStr for Rpc {
    type Err = String;
    fn from_str(s: &str) -> Result<Rpc, String> {
        match s {
            "unary" => Ok(Rpc::Unary),
            "streaming" => Ok(Rpc::Streaming),
            "server-streaming" => Ok(Rpc::ServerStreaming),
            "client-streaming" => Ok(Rpc::ClientStreaming),
            _ => Err(format!("unknown rpc {s}")),
        }
    }
}

/// Usage text of both load generators.
pub const CLIENT_USAGE: &str = "\
Closed-loop load generator for grpc.testing.BenchmarkService.

Options (defaults in brackets):
  --target HOST:PORT     server address [127.0.0.1:50051]
  --rpc KIND             unary: UnaryCall; streaming: StreamingCall ping-pong;
                         server-streaming: StreamingFromServer, responses back-to-back until
                         the end of the measured time, each one counted as a call, its latency
                         the gap since the previous one; client-streaming:
                         StreamingFromClient, requests back-to-back until the end of the
                         measured time (each one a call, timed the same way), then the one
                         response, checked [unary]
  --concurrency N        outstanding RPCs (streams for the streaming kinds) per connection [1]
  --connections N        HTTP/2 connections [1]
  --req-size BYTES       request payload size [1]
  --resp-size BYTES      response payload size asked for, checked on every response [1]
  --warmup SECS          unmeasured warm-up time, fractional allowed [1]
  --duration SECS        measured time, fractional allowed [5]
  --threads N            load generator runtime threads (1: current-thread) [1]
  --server-pid PID       report this process's CPU time over the measured time
  --tls-ca FILE          TLS (ALPN h2) trusting this CA (PEM); the server's certificate must
                         name localhost (benchmark/make-cert.sh) [plaintext]
  --service-config JSON  the channel's service config (ours; tonic has none) [none]
  --stream-window N      HTTP/2 initial stream window the client announces [the library's]
  --conn-window N        HTTP/2 connection window the client announces [the library's]
  --label TEXT           a name for the RESULT line
  --write-request FILE   write the gRPC-framed request to FILE (for h2load) and exit

Prints QPS, latency percentiles and a machine-readable RESULT line; exits 1 on any error.";

impl LoadConfig {
    /// Reads the options of [`CLIENT_USAGE`].
    pub fn from_args() -> LoadConfig {
        let mut a = Args::parse(CLIENT_USAGE);
        let secs = |s: f64| Duration::from_secs_f64(s.max(0.0));
        let cfg = LoadConfig {
            target: a.get("target", "127.0.0.1:50051".to_owned()),
            rpc: a.get("rpc", Rpc::Unary),
            concurrency: a.get("concurrency", 1usize).max(1),
            connections: a.get("connections", 1usize).max(1),
            req_size: a.get("req-size", 1usize),
            resp_size: a.get("resp-size", 1usize),
            warmup: secs(a.get("warmup", 1.0)),
            duration: secs(a.get("duration", 5.0)),
            threads: a.get("threads", 1usize),
            server_pid: a.opt("server-pid"),
            tls_ca: a.opt("tls-ca"),
            service_config: a.opt("service-config"),
            stream_window: a.opt("stream-window"),
            conn_window: a.opt("conn-window"),
            write_request: a.opt("write-request"),
            label: a.get("label", String::new()),
        };
        a.finish();
        cfg
    }
}

/// Server CPU seconds (user + system) from `/proc/PID/stat`.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces; fields after its closing paren.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 after the name.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    // USER_HZ is 100 on every Linux ABI Rust targets.
    Some((utime + stime) as f64 / 100.0)
}

/// The measurement clock every worker shares.
#[derive(Clone, Copy, Debug)]
pub struct Phases {
    /// Calls started from here on are measured.
    pub measure_from: Instant,
    /// No call starts after this.
    pub end: Instant,
}

impl Phases {
    /// Starts the clock now.
    pub fn start(cfg: &LoadConfig) -> Phases {
        let measure_from = Instant::now() + cfg.warmup;
        Phases {
            measure_from,
            end: measure_from + cfg.duration,
        }
    }

    /// Whether a new call may start at `now`, a time the caller read already: workers read
    /// the clock once per call (its end is the next one's start). At a million streamed
    /// messages a second each clock read cost about 4% of a load generator's CPU, and the
    /// workers read it three times per message.
    pub fn running_at(&self, now: Instant) -> bool {
        now < self.end
    }
}

/// CPU seconds (user + system) spent over the measured time.
#[derive(Clone, Copy, Debug, Default)]
pub struct CpuUsed {
    /// By the server, when its pid was given.
    pub server: Option<f64>,
    /// By this load generator, all its threads. With the server saturated, QPS cannot tell
    /// two clients apart; their CPU per call still can.
    pub client: Option<f64>,
}

/// Samples the server's CPU time and the load generator's own at the start and the end of
/// the measured time.
pub async fn sample_cpu(server_pid: Option<u32>, phases: Phases) -> CpuUsed {
    let me = std::process::id();
    tokio::time::sleep_until(phases.measure_from.into()).await;
    let before = (server_pid.and_then(cpu_seconds), cpu_seconds(me));
    tokio::time::sleep_until(phases.end.into()).await;
    let after = (server_pid.and_then(cpu_seconds), cpu_seconds(me));
    let used = |b: Option<f64>, a: Option<f64>| Some(a? - b?);
    CpuUsed {
        server: used(before.0, after.0),
        client: used(before.1, after.1),
    }
}

/// One worker's results.
#[derive(Debug, Default)]
pub struct Worker {
    hist: Histogram,
    all_calls: u64,
    errors: u64,
    first_error: Option<String>,
}

impl Worker {
    /// A worker with nothing recorded.
    pub fn new() -> Worker {
        Worker::default()
    }

    /// Records a call that started at `started` and ended at `ended` with `result`. Returns
    /// whether the worker should go on (it stops at its first error).
    pub fn record(
        &mut self,
        phases: &Phases,
        started: Instant,
        ended: Instant,
        result: Result<(), String>,
    ) -> bool {
        self.all_calls += 1;
        match result {
            Ok(()) => {
                if started >= phases.measure_from {
                    self.hist.record((ended - started).as_nanos() as u64);
                }
                true
            }
            Err(e) => {
                self.fail(e);
                false
            }
        }
    }

    /// Records a failure outside a timed call (connecting, opening a stream).
    pub fn fail(&mut self, e: String) {
        self.errors += 1;
        self.first_error.get_or_insert(e);
    }

    /// Adds another worker's results.
    pub fn merge(&mut self, other: Worker) {
        self.hist.merge(&other.hist);
        self.all_calls += other.all_calls;
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }
}

/// The requests of one client-streaming call: `message` again and again, always ready until
/// the end of the measured time, so the runtime under test can take several in a row and
/// batch them. Each one taken counts as a call, timed from the one before (the first from the
/// feed's creation, i.e. the call's start). The tally goes back through the receiver
/// [`RequestFeed::new`] returns when the feed ends, or when the runtime drops it early.
#[derive(Debug)]
pub struct RequestFeed<T> {
    message: T,
    phases: Phases,
    last: Instant,
    worker: Worker,
    done: Option<tokio::sync::oneshot::Sender<Worker>>,
}

impl<T> RequestFeed<T> {
    /// A feed of `message`, and where its tally arrives (see [`feed_tally`]).
    pub fn new(
        message: T,
        phases: Phases,
    ) -> (RequestFeed<T>, tokio::sync::oneshot::Receiver<Worker>) {
        let (done, tally) = tokio::sync::oneshot::channel();
        let feed = RequestFeed {
            message,
            phases,
            last: Instant::now(),
            worker: Worker::new(),
            done: Some(done),
        };
        (feed, tally)
    }

    fn hand_back(&mut self) {
        if let Some(done) = self.done.take() {
            let _ = done.send(std::mem::take(&mut self.worker));
        }
    }
}

impl<T: Clone + Unpin> futures_util::Stream for RequestFeed<T> {
    type Item = T;

    fn poll_next(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<T>> {
        let this = self.get_mut();
        if this.done.is_none() {
            return std::task::Poll::Ready(None);
        }
        // One clock read per request: the end of the one before and the start of this one.
        let now = Instant::now();
        if !this.phases.running_at(now) {
            // Handed back before the end of the stream goes out, so before the response.
            this.hand_back();
            return std::task::Poll::Ready(None);
        }
        this.worker.record(&this.phases, this.last, now, Ok(()));
        this.last = now;
        std::task::Poll::Ready(Some(this.message.clone()))
    }
}

impl<T> Drop for RequestFeed<T> {
    fn drop(&mut self) {
        self.hand_back();
    }
}

/// The tally of a [`RequestFeed`] once its call has ended with `result` (the response
/// checked, or the error). The feed hands it back when it ends; after a failed call the
/// runtime may drop the feed a little later (a sender task being aborted), hence the wait.
pub async fn feed_tally(
    tally: tokio::sync::oneshot::Receiver<Worker>,
    result: Result<(), String>,
) -> Worker {
    let mut w = match tokio::time::timeout(Duration::from_secs(5), tally).await {
        Ok(Ok(w)) => w,
        _ => {
            let mut w = Worker::new();
            w.fail("the request stream was never ended nor dropped".to_owned());
            w
        }
    };
    if let Err(e) = result {
        w.fail(format!("the response: {e}"));
    }
    w
}

/// Checks a response's payload size.
pub fn check_size(got: usize, want: usize) -> Result<(), String> {
    if got == want {
        Ok(())
    } else {
        Err(format!("response payload of {got} bytes, expected {want}"))
    }
}

/// Prints the report; returns the process exit code (1 if any call failed or none
/// succeeded).
pub fn report(cfg: &LoadConfig, impl_name: &str, total: &Worker, cpu: CpuUsed) -> i32 {
    let h = &total.hist;
    let secs = cfg.duration.as_secs_f64().max(1e-9);
    let qps = h.count() as f64 / secs;
    // A server-streaming call sends its request once: each counted message is a response;
    // a client-streaming call answers once: each counted message is a request.
    let (bytes_per_call, counted, unit) = match cfg.rpc {
        Rpc::ServerStreaming => (cfg.resp_size, "response", "messages"),
        Rpc::ClientStreaming => (cfg.req_size, "request", "messages"),
        Rpc::Unary | Rpc::Streaming => {
            (cfg.req_size + cfg.resp_size, "request + response", "calls")
        }
    };
    let mb_s = qps * bytes_per_call as f64 / 1e6;
    let us = |q: f64| h.quantile(q) as f64 / 1000.0;
    let rpc = cfg.rpc.name();
    println!(
        "{impl_name} client: {rpc}{}, {} connection(s) x {} outstanding, {} B request, {} B response, {:.1}s warm-up, {:.1}s measured",
        if cfg.tls_ca.is_some() {
            " over TLS"
        } else {
            ""
        },
        cfg.connections,
        cfg.concurrency,
        cfg.req_size,
        cfg.resp_size,
        cfg.warmup.as_secs_f64(),
        secs
    );
    println!(
        "  {} {unit} measured ({} in all), {} errors",
        h.count(),
        total.all_calls,
        total.errors
    );
    println!("  QPS {qps:.0}   payload throughput {mb_s:.1} MB/s ({counted})");
    println!(
        "  latency us: p50 {:.1}  p90 {:.1}  p99 {:.1}  p99.9 {:.1}  max {:.1}  mean {:.1}",
        us(0.5),
        us(0.9),
        us(0.99),
        us(0.999),
        h.max as f64 / 1000.0,
        h.mean() as f64 / 1000.0
    );
    let mut line = format!(
        "RESULT impl={impl_name} label={} rpc={rpc} qps={qps:.1} mbps={mb_s:.2} p50_us={:.1} p90_us={:.1} p99_us={:.1} p999_us={:.1} calls={} errors={}",
        if cfg.label.is_empty() {
            "-"
        } else {
            &cfg.label
        },
        us(0.5),
        us(0.9),
        us(0.99),
        us(0.999),
        h.count(),
        total.errors
    );
    let per_1k = |cpu: f64| {
        if h.count() > 0 {
            cpu / h.count() as f64 * 1000.0
        } else {
            0.0
        }
    };
    if let Some(cpu) = cpu.server {
        let per_1k = per_1k(cpu);
        println!("  server CPU: {cpu:.2} s over the measured time, {per_1k:.4} s per 1000 calls");
        let _ = write!(line, " server_cpu_s={cpu:.3} cpu_per_1k={per_1k:.5}");
    }
    if let Some(cpu) = cpu.client {
        let per_1k = per_1k(cpu);
        println!("  client CPU: {cpu:.2} s over the measured time, {per_1k:.4} s per 1000 calls");
        let _ = write!(line, " client_cpu_s={cpu:.3} client_cpu_per_1k={per_1k:.5}");
    }
    println!("{line}");
    if let Some(e) = &total.first_error {
        eprintln!("error: {} call(s) failed; first: {e}", total.errors);
    }
    if total.errors > 0 || h.count() == 0 {
        if h.count() == 0 && total.errors == 0 {
            eprintln!("error: no call completed in the measured time");
        }
        1
    } else {
        0
    }
}

/// The gRPC frame of a protobuf-encoded message: flag 0, big-endian length, bytes.
pub fn grpc_frame(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(5 + message.len());
    out.push(0);
    out.extend_from_slice(&(message.len() as u32).to_be_bytes());
    out.extend_from_slice(message);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_tight() {
        for v in [
            0u64,
            1,
            127,
            128,
            129,
            255,
            256,
            1000,
            123_456,
            10_000_000,
            u64::MAX / 3,
        ] {
            let i = Histogram::index(v);
            assert!(Histogram::upper(i) >= v, "{v}");
            let err = (Histogram::upper(i) - v) as f64 / v.max(1) as f64;
            assert!(err <= 1.0 / 128.0, "{v}: {err}");
            if i > 0 {
                assert!(Histogram::upper(i - 1) < v, "{v}");
            }
        }
        assert_eq!(Histogram::index(u64::MAX), BUCKETS - 1);
        assert_eq!(Histogram::upper(BUCKETS - 1), u64::MAX);
    }

    #[test]
    fn quantiles() {
        let mut h = Histogram::new();
        for v in 1..=10_000u64 {
            h.record(v * 1000);
        }
        let near = |got: u64, want: u64| (got as f64 - want as f64).abs() / want as f64 <= 0.01;
        assert!(near(h.quantile(0.5), 5_000_000), "{}", h.quantile(0.5));
        assert!(near(h.quantile(0.99), 9_900_000));
        assert!(near(h.quantile(0.999), 9_990_000));
        assert_eq!(h.quantile(1.0), 10_000_000);
        assert_eq!(h.quantile(0.0), 1000);
        let mut other = Histogram::new();
        other.record(20_000_000);
        h.merge(&other);
        assert_eq!(h.count(), 10_001);
        assert_eq!(h.quantile(1.0), 20_000_000);
    }

    #[test]
    fn frame_prefix() {
        assert_eq!(grpc_frame(b"ab"), b"\x00\x00\x00\x00\x02ab");
    }

    #[test]
    fn cpu_of_self() {
        assert!(cpu_seconds(std::process::id()).is_some());
    }
}
