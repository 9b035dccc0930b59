//! `alloc-count`: heap allocations per unary call, on each side. The server and the client
//! run on current-thread runtimes of their own threads, talking over 127.0.0.1; a counting
//! global allocator charges each allocation to the side whose thread made it. Calls go one
//! at a time, after a warm-up, so the counts per call are exact averages, not samples.
//!
//! `cargo run --release -p benchmark --bin alloc-count` (or `make bench-alloc`).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

use benchmark::harness::Args;
use benchmark::proto::benchmark_service_grpc::{BenchmarkServiceClient, BenchmarkServiceServer};
use benchmark::proto::messages::{Payload, SimpleRequest};
use benchmark::service::Bench;
use grpc_runtime::client::Channel;
use grpc_runtime::server::Server;

const USAGE: &str = "\
alloc-count: heap allocations and bytes allocated per unary call, server and client apart
(each side on a thread of its own, over 127.0.0.1, one call at a time).

Options:
  --calls N   calls measured per size, after as many warm-up calls [2000]
  --sizes L   comma-separated request and response payload sizes [1,1048576]";

// Which side a thread's allocations count for: 0 neither, 1 server, 2 client.
thread_local! {
    static SIDE: Cell<usize> = const { Cell::new(0) };
}

static ALLOCS: [AtomicU64; 3] = [AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)];
static BYTES: [AtomicU64; 3] = [AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)];

/// The system allocator, counting allocations (and reallocations, which may move) per side.
struct Counting;

fn count(size: usize) {
    // `try_with`: a thread being torn down has no thread-locals left.
    let side = SIDE.try_with(Cell::get).unwrap_or(0);
    ALLOCS[side].fetch_add(1, Ordering::Relaxed);
    BYTES[side].fetch_add(size as u64, Ordering::Relaxed);
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        // SAFETY: forwarded as is.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        // SAFETY: forwarded as is.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded as is.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size);
        // SAFETY: forwarded as is.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn snapshot() -> [(u64, u64); 3] {
    std::array::from_fn(|i| {
        (
            ALLOCS[i].load(Ordering::Relaxed),
            BYTES[i].load(Ordering::Relaxed),
        )
    })
}

fn main() {
    benchmark::process::init_logging("warn");
    let mut args = Args::parse(USAGE);
    let calls: u64 = args.get("calls", 2000);
    let sizes: String = args.get("sizes", "1,1048576".to_owned());
    args.finish();
    let sizes: Vec<usize> = sizes
        .split(',')
        .map(|s| s.trim().parse().expect("--sizes: numbers"))
        .collect();

    // The server, on a thread of its own.
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        SIDE.with(|side| side.set(1));
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let server = Server::builder()
                .add_service(BenchmarkServiceServer::new(Bench))
                .max_send_message_size(64 * 1024 * 1024)
                .max_recv_message_size(64 * 1024 * 1024)
                .build();
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            addr_tx
                .send(listener.local_addr().expect("addr"))
                .expect("send");
            server.serve_tcp(listener).await.expect("serve");
        });
    });
    let addr = addr_rx.recv().expect("the server's address");

    SIDE.with(|side| side.set(2));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let channel = Channel::builder(&format!("http://{addr}"))
            .max_recv_message_size(64 * 1024 * 1024)
            .build()
            .expect("channel");
        let client = BenchmarkServiceClient::new(channel);
        println!("alloc-count: {calls} unary calls per size, one at a time, after {calls} warm-up calls");
        println!("| payload (each way) | server allocs/call | server KiB/call | client allocs/call | client KiB/call |");
        println!("| --- | --- | --- | --- | --- |");
        for size in sizes {
            let mut payload = Payload::new();
            payload.body = vec![0; size].into();
            let mut request = SimpleRequest::new();
            request.response_size = i32::try_from(size).expect("size fits i32");
            request.payload = protobuf::MessageField::some(payload);
            for _ in 0..calls {
                client.unary_call(request.clone()).await.expect("warm-up call");
            }
            let before = snapshot();
            for _ in 0..calls {
                let reply = client.unary_call(request.clone()).await.expect("call");
                assert_eq!(reply.get_ref().payload.body.len(), size);
            }
            let after = snapshot();
            let per = |side: usize| {
                let allocs = (after[side].0 - before[side].0) as f64 / calls as f64;
                let kib = (after[side].1 - before[side].1) as f64 / calls as f64 / 1024.0;
                (allocs, kib)
            };
            let (server, client_side) = (per(1), per(2));
            println!(
                "| {size} B | {:.1} | {:.1} | {:.1} | {:.1} |",
                server.0, server.1, client_side.0, client_side.1
            );
        }
        // What a caller holds (and moves) per call in flight: the call's future, unpolled.
        let call = client.unary_call(SimpleRequest::new());
        println!(
            "client: a unary call's future is {} bytes",
            std::mem::size_of_val(&call)
        );
    });
}
