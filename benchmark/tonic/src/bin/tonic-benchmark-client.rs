//! `tonic-benchmark-client`: the closed-loop load generator on tonic, with the same options
//! and report as `benchmark-client` (the same harness file).

use std::time::Instant;

use benchmark_tonic::harness::{
    LoadConfig, Phases, RequestFeed, Rpc, TLS_SERVER_NAME, Worker, check_size, feed_tally, report,
    runtime, sample_cpu,
};
use benchmark_tonic::proto::benchmark_service_client::BenchmarkServiceClient;
use benchmark_tonic::proto::{Payload, SimpleRequest, SimpleResponse};
use tokio::sync::mpsc;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

type Client = BenchmarkServiceClient<Channel>;

fn request(cfg: &LoadConfig) -> SimpleRequest {
    SimpleRequest {
        response_size: i32::try_from(cfg.resp_size).expect("response size fits an i32"),
        payload: Some(Payload {
            r#type: 0,
            body: vec![0; cfg.req_size],
        }),
        ..Default::default()
    }
}

fn payload_len(resp: &SimpleResponse) -> usize {
    resp.payload.as_ref().map_or(0, |p| p.body.len())
}

fn status_text(s: &tonic::Status) -> String {
    format!("{:?}: {}", s.code(), s.message())
}

async fn unary_worker(
    mut client: Client,
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
    mut client: Client,
    req: SimpleRequest,
    want: usize,
    phases: Phases,
) -> Worker {
    let mut w = Worker::new();
    let (tx, mut rx) = mpsc::channel::<SimpleRequest>(1);
    let requests = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx));
    // The first request is queued before the call opens: a server may hold its response
    // headers until the first message, and tonic's client waits for them.
    let mut started = Instant::now();
    let _ = tx.send(req.clone()).await;
    let mut responses = match client.streaming_call(requests).await {
        Ok(r) => r.into_inner(),
        Err(s) => {
            w.fail(format!("opening the stream: {}", status_text(&s)));
            return w;
        }
    };
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
    mut client: Client,
    req: SimpleRequest,
    want: usize,
    phases: Phases,
) -> Worker {
    let mut w = Worker::new();
    let mut started = Instant::now();
    let mut responses = match client.streaming_from_server(req).await {
        Ok(r) => r.into_inner(),
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
    mut client: Client,
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

/// `http://target`, or `https://target` with TLS trusting `--tls-ca`. tonic's TLS client
/// offers ALPN h2 and, without `assume_http2`, fails unless the server chooses it.
fn endpoint(cfg: &LoadConfig) -> Result<Endpoint, String> {
    let scheme = if cfg.tls_ca.is_some() {
        "https"
    } else {
        "http"
    };
    let endpoint = Endpoint::from_shared(format!("{scheme}://{}", cfg.target))
        .map_err(|e| format!("bad target {}: {e}", cfg.target))?
        .initial_stream_window_size(cfg.stream_window)
        .initial_connection_window_size(cfg.conn_window);
    let Some(ca) = &cfg.tls_ca else {
        return Ok(endpoint);
    };
    let pem = std::fs::read(ca).map_err(|e| format!("failed to read {ca}: {e}"))?;
    endpoint
        .tls_config(
            ClientTlsConfig::new()
                .ca_certificate(Certificate::from_pem(pem))
                .domain_name(TLS_SERVER_NAME),
        )
        .map_err(|e| format!("tonic TLS configuration: {e}"))
}

async fn run(cfg: LoadConfig) -> i32 {
    let req = request(&cfg);
    let mut clients = Vec::new();
    for _ in 0..cfg.connections {
        let endpoint = match endpoint(&cfg) {
            Ok(e) => e,
            Err(e) => {
                eprintln!("error: {e}");
                return 1;
            }
        };
        match endpoint.connect().await {
            Ok(channel) => clients.push(BenchmarkServiceClient::new(channel)),
            Err(e) => {
                eprintln!("error: connecting to {}: {e}", cfg.target);
                return 1;
            }
        }
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
    report(&cfg, "tonic", &total, cpu)
}

fn main() {
    let cfg = LoadConfig::from_args();
    if cfg.write_request.is_some() {
        eprintln!("error: --write-request is benchmark-client's");
        std::process::exit(2);
    }
    let code = runtime(cfg.threads).block_on(run(cfg));
    std::process::exit(code);
}
