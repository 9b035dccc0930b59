//! `fanout`: one message sent to many server streams, encoded for each stream
//! (`ResponseSender::send`) or once for all (`PreparedMessage` and `send_prepared`, gRPC-Go's
//! `PreparedMsg`). Server and clients share one current-thread runtime over 127.0.0.1, so
//! wall time is the CPU time of both sides; rounds alternate between the two ways and the
//! medians are printed. `make bench-fanout`.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use benchmark::harness::{Args, runtime};
use benchmark::proto::benchmark_service_grpc::{
    BenchmarkService, BenchmarkServiceClient, BenchmarkServiceServer,
};
use benchmark::proto::messages::{Payload, SimpleRequest, SimpleResponse};
use grpc_runtime::client::Channel;
use grpc_runtime::codec::{Codec, PreparedMessage, ProtobufCodec};
use grpc_runtime::server::Server;
use grpc_runtime::{Request, ResponseSender, Status};
use tokio::sync::{mpsc, oneshot};

const USAGE: &str = "\
fanout: one message to many server streams, encoded per stream or once (PreparedMessage);
server and clients on one current-thread runtime over 127.0.0.1.

Options:
  --streams N    server streams subscribed [100]
  --size N       payload bytes per message [65536]
  --messages N   messages per round, each to every stream [50]
  --rounds N     rounds per way, alternating (the median is reported) [5]";

/// A subscriber: its stream's sender, and how to let its handler return.
type Subscriber = (ResponseSender<SimpleResponse>, oneshot::Sender<()>);

/// Hands each StreamingFromServer call's sender to the broadcaster and waits until told.
struct Fan(mpsc::UnboundedSender<Subscriber>);

impl BenchmarkService for Fan {
    async fn streaming_from_server(
        &self,
        _request: Request<SimpleRequest>,
        mut responses: ResponseSender<SimpleResponse>,
    ) -> Result<(), Status> {
        // A client's server-streaming call returns once the response headers are in.
        responses.send_headers().await?;
        let (done, finished) = oneshot::channel();
        self.0
            .send((responses, done))
            .map_err(|_| Status::unavailable("the broadcaster is gone"))?;
        let _ = finished.await;
        Ok(())
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    benchmark::process::init_logging("warn");
    let mut args = Args::parse(USAGE);
    let streams: usize = args.get("streams", 100);
    let size: usize = args.get("size", 65536);
    let messages: usize = args.get("messages", 50);
    let rounds: usize = args.get("rounds", 5);
    args.finish();

    runtime(1).block_on(async move {
        let (subscribe, mut subscribed) = mpsc::unbounded_channel();
        let server = Server::builder()
            .add_service(BenchmarkServiceServer::new(Fan(subscribe)))
            .max_concurrent_streams(u32::try_from(streams).expect("streams fit u32"))
            .build();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(server.clone().serve_tcp(listener));
        let client = BenchmarkServiceClient::new(
            Channel::new(&format!("http://{addr}")).expect("channel"),
        );

        let mut payload = Payload::new();
        payload.body = vec![7u8; size].into();
        let mut message = SimpleResponse::new();
        message.payload = protobuf::MessageField::some(payload);

        let mut times: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
        // Round 0 of each way is a warm-up.
        for round in 0..=rounds {
            for (way, prepared) in [false, true].into_iter().enumerate() {
                // Subscribe every stream, and a reader for each.
                let received = Arc::new(Mutex::new(0usize));
                let mut readers = Vec::new();
                for _ in 0..streams {
                    let mut stream = client
                        .streaming_from_server(SimpleRequest::new())
                        .await
                        .expect("subscribe");
                    let received = Arc::clone(&received);
                    readers.push(tokio::spawn(async move {
                        while let Some(m) = stream.message().await.expect("read") {
                            *received.lock().expect("count") += m.payload.body.len();
                        }
                    }));
                }
                let mut subscribers = Vec::with_capacity(streams);
                for _ in 0..streams {
                    subscribers.push(subscribed.recv().await.expect("subscriber"));
                }
                let started = Instant::now();
                for _ in 0..messages {
                    if prepared {
                        let mut codec = ProtobufCodec::<SimpleResponse, SimpleRequest>::new();
                        let once = PreparedMessage::encode(&mut codec.encoder(), &message)
                            .expect("encode");
                        for (tx, _) in &mut subscribers {
                            tx.send_prepared(&once).await.expect("send");
                        }
                    } else {
                        for (tx, _) in &mut subscribers {
                            tx.send(message.clone()).await.expect("send");
                        }
                    }
                }
                for (_, done) in subscribers {
                    let _ = done.send(());
                }
                for reader in readers {
                    reader.await.expect("reader");
                }
                let elapsed = started.elapsed().as_secs_f64();
                assert_eq!(*received.lock().expect("count"), streams * messages * size);
                if round > 0 {
                    times[way].push(elapsed);
                }
            }
        }
        let delivered = (streams * messages) as f64;
        let [per_stream, once] = times.map(median);
        println!(
            "fanout: {messages} messages of {size} B to each of {streams} streams, medians of {rounds} rounds"
        );
        println!("| way | messages delivered/s | us per delivered message |");
        println!("| --- | --- | --- |");
        for (name, t) in [("encoded per stream (send)", per_stream), ("encoded once (send_prepared)", once)] {
            println!(
                "| {name} | {:.0} | {:.2} |",
                delivered / t,
                t / delivered * 1e6
            );
        }
        println!("encode once: {:.2}x the messages per second", per_stream / once);
    });
}
