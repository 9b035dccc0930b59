//! `benchmark-client`: the closed-loop load generator on our runtime. Works against any
//! grpc.testing.BenchmarkService server. See `harness::CLIENT_USAGE` for the options.

use std::time::Instant;

use benchmark::harness::{
    LoadConfig, Phases, RequestFeed, Rpc, TLS_SERVER_NAME, Worker, check_size, feed_tally,
    grpc_frame, report, runtime, sample_cpu,
};
use benchmark::proto::benchmark_service_grpc::BenchmarkServiceClient;
use benchmark::proto::messages::{Payload, SimpleRequest, SimpleResponse};
use grpc_runtime::Status;
use grpc_runtime::client::Channel;
use grpc_runtime::credentials::ChannelCredentials;
use grpc_runtime::credentials::tls::{Certificate, ClientTlsConfig};
use protobuf::Message;

fn request(cfg: &LoadConfig) -> SimpleRequest {
    let mut payload = Payload::new();
    payload.body = vec![0; cfg.req_size].into();
    let mut req = SimpleRequest::new();
    req.response_size = i32::try_from(cfg.resp_size).expect("response size fits an i32");
    req.payload = protobuf::MessageField::some(payload);
    req
}

fn payload_len(resp: &SimpleResponse) -> usize {
    resp.payload.as_ref().map_or(0, |p| p.body.len())
}

fn status_text(s: &Status) -> String {
    format!("{:?}: {}", s.code(), s.message())
}

async fn unary_worker(
    client: BenchmarkServiceClient,
    req: SimpleRequest,
    want: usize,
    phases: Phases,
) -> Worker {
    let mut w = Worker::new();
    // One clock read per call: its end is the next one's start.
    let mut started = Instant::now();
    while phases.running_at(started) {
        let result = match client.unary_call(req.clone()).await {
            Ok(resp) => check_size(payload_len(resp.get_ref()), want),
            Err(s) => Err(status_text(&s)),
        };
        let ended = Instant::now();
        if !w.record(&phases, started, ended, result) {
            break;
        }
        started = ended;
    }
    w
}

async fn streaming_worker(
    client: BenchmarkServiceClient,
    req: SimpleRequest,
    want: usize,
    phases: Phases,
) -> Worker {
    let mut w = Worker::new();
    let mut started = Instant::now();
    // Requests are written by this task through the sender: no task in between.
    let (mut tx, mut responses) = match client.streaming_call(()).await {
        Ok(call) => call,
        Err(s) => {
            w.fail(format!("opening the stream: {}", status_text(&s)));
            return w;
        }
    };
    if let Err(s) = tx.send(req.clone()).await {
        w.fail(format!("first request: {}", status_text(&s)));
        return w;
    }
    loop {
        let result = match responses.message().await {
            Ok(Some(resp)) => check_size(payload_len(&resp), want),
            Ok(None) => Err("stream ended early".to_owned()),
            Err(s) => Err(status_text(&s)),
        };
        let ended = Instant::now();
        if !w.record(&phases, started, ended, result) {
            return w;
        }
        if !phases.running_at(ended) {
            break;
        }
        started = ended;
        if tx.send(req.clone()).await.is_err() {
            w.fail("request stream closed".to_owned());
            return w;
        }
    }
    drop(tx);
    // The server ends the stream with OK once it sees ours end.
    match responses.message().await {
        Ok(None) => {}
        Ok(Some(_)) => w.fail("response without a request".to_owned()),
        Err(s) => w.fail(format!("closing the stream: {}", status_text(&s))),
    }
    w
}

/// One StreamingFromServer call, read until the end of the measured time: every response is
/// a call, timed from the previous one (the first from the call's start). Dropping the call
/// at the end cancels it; that is not an error.
async fn server_streaming_worker(
    client: BenchmarkServiceClient,
    req: SimpleRequest,
    want: usize,
    phases: Phases,
) -> Worker {
    let mut w = Worker::new();
    let mut started = Instant::now();
    let mut responses = match client.streaming_from_server(req).await {
        Ok(responses) => responses,
        Err(s) => {
            w.fail(format!("opening the stream: {}", status_text(&s)));
            return w;
        }
    };
    while phases.running_at(started) {
        let result = match responses.message().await {
            Ok(Some(resp)) => check_size(payload_len(&resp), want),
            Ok(None) => Err("stream ended early".to_owned()),
            Err(s) => Err(status_text(&s)),
        };
        let ended = Instant::now();
        if !w.record(&phases, started, ended, result) {
            break;
        }
        started = ended;
    }
    drop(responses);
    w
}

/// One StreamingFromClient call whose requests go out back-to-back until the end of the
/// measured time (a feed always ready, so several in a row: see `RequestFeed`): every request
/// is a call, timed from the previous one (the first from the call's start). Then the request
/// stream ends and the one response must come back, of the asked size.
async fn client_streaming_worker(
    client: BenchmarkServiceClient,
    req: SimpleRequest,
    want: usize,
    phases: Phases,
) -> Worker {
    let (feed, tally) = RequestFeed::new(req, phases);
    let result = match client.streaming_from_client(feed).await {
        Ok(resp) => check_size(payload_len(resp.get_ref()), want),
        Err(s) => Err(status_text(&s)),
    };
    feed_tally(tally, result).await
}

/// Plaintext, said explicitly (the harness passes host:port), or TLS trusting `--tls-ca`.
fn credentials(cfg: &LoadConfig) -> Result<ChannelCredentials, grpc_runtime::Error> {
    match &cfg.tls_ca {
        None => Ok(ChannelCredentials::insecure()),
        Some(ca) => ChannelCredentials::tls(
            ClientTlsConfig::new()
                .ca_certificate(Certificate::from_pem_file(ca)?)
                .server_name(TLS_SERVER_NAME),
        ),
    }
}

async fn run(cfg: LoadConfig) -> i32 {
    let req = request(&cfg);
    let credentials = match credentials(&cfg) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return 1;
        }
    };
    let mut clients = Vec::new();
    for _ in 0..cfg.connections {
        // One channel per connection; connect before the clock starts.
        let mut builder = Channel::builder(&cfg.target).credentials(credentials.clone());
        if let Some(json) = &cfg.service_config {
            builder = builder.default_service_config(json.clone());
        }
        if let Some(size) = cfg.stream_window {
            builder = builder.initial_stream_window_size(size);
        }
        if let Some(size) = cfg.conn_window {
            builder = builder.initial_connection_window_size(size);
        }
        let channel = match builder.build() {
            Ok(c) => c,
            Err(e) => {
                eprintln!("error: {e}");
                return 1;
            }
        };
        if let Err(s) = channel.connect().await {
            eprintln!("error: connecting to {}: {}", cfg.target, status_text(&s));
            return 1;
        }
        clients.push(BenchmarkServiceClient::new(channel));
    }
    let phases = Phases::start(&cfg);
    let cpu = tokio::spawn(sample_cpu(cfg.server_pid, phases));
    let mut workers = tokio::task::JoinSet::new();
    for client in &clients {
        for _ in 0..cfg.concurrency {
            let (client, req) = (client.clone(), req.clone());
            match cfg.rpc {
                Rpc::Unary => workers.spawn(unary_worker(client, req, cfg.resp_size, phases)),
                Rpc::Streaming => {
                    workers.spawn(streaming_worker(client, req, cfg.resp_size, phases))
                }
                Rpc::ServerStreaming => {
                    workers.spawn(server_streaming_worker(client, req, cfg.resp_size, phases))
                }
                Rpc::ClientStreaming => {
                    workers.spawn(client_streaming_worker(client, req, cfg.resp_size, phases))
                }
            };
        }
    }
    let mut total = Worker::new();
    while let Some(w) = workers.join_next().await {
        total.merge(w.expect("worker panicked"));
    }
    let cpu = cpu.await.unwrap_or_default();
    report(&cfg, "grpc-runtime", &total, cpu)
}

fn main() {
    benchmark::process::init_logging("warn");
    let cfg = LoadConfig::from_args();
    if let Some(path) = &cfg.write_request {
        let bytes = request(&cfg).write_to_bytes().expect("encode request");
        std::fs::write(path, grpc_frame(&bytes))
            .unwrap_or_else(|e| panic!("failed to write {path}: {e}"));
        return;
    }
    let code = runtime(cfg.threads).block_on(run(cfg));
    std::process::exit(code);
}
