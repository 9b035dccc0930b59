//! Interceptors that wrap calls (`Around`), on both sides, and per-call state carried from
//! `on_call` to `on_end`.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use common::*;
use grpc_runtime::client::{Channel, Client};
use grpc_runtime::interceptor::{
    Around, AroundFuture, CallInfo, InterceptFuture, Interceptor, Next,
};
use grpc_runtime::server::{Server, ServerCall, Service};
use grpc_runtime::service::{MethodDescriptor, MethodKind, ServiceDescriptor};
use grpc_runtime::{Code, Request, Response, Status};
use protobuf::well_known_types::wrappers::{StringValue, UInt32Value};

type Log = Arc<Mutex<Vec<String>>>;

/// Logs before and after the call it wraps, with what the call resolved to.
struct Span {
    name: &'static str,
    log: Log,
}

impl Around for Span {
    fn around<'a>(&'a self, call: &'a CallInfo, mut next: Next<'a>) -> AroundFuture<'a> {
        Box::pin(async move {
            self.log
                .lock()
                .unwrap()
                .push(format!("{} enter {}", self.name, call.path()));
            let result = next.run().await;
            let code = result.as_ref().err().map_or(Code::Ok, Status::code);
            self.log
                .lock()
                .unwrap()
                .push(format!("{} exit {code:?}", self.name));
            result
        })
    }
}

/// Answers without running the call when the request metadata says so.
struct Gate;

impl Around for Gate {
    fn around<'a>(&'a self, call: &'a CallInfo, mut next: Next<'a>) -> AroundFuture<'a> {
        Box::pin(async move {
            if call.metadata().contains_key("x-closed") {
                return Err(Status::unavailable("closed by the gate"));
            }
            next.run().await
        })
    }
}

fn take(log: &Log) -> Vec<String> {
    std::mem::take(&mut *log.lock().unwrap())
}

#[tokio::test]
async fn server_arounds_wrap_every_kind_of_handler_in_order() {
    let log = Log::default();
    let srv = start_with(|b| {
        b.around(Span {
            name: "outer",
            log: log.clone(),
        })
        .around(Span {
            name: "inner",
            log: log.clone(),
        })
        .around(Gate)
    })
    .await;
    let client = srv.client();

    let reply = client.unary(UNARY, Request::new(s("hi")), pb::<_, StringValue>());
    assert_eq!(reply.await.unwrap().get_ref().value, "hi");
    assert_eq!(
        take(&log),
        [
            "outer enter /test.Echo/Unary",
            "inner enter /test.Echo/Unary",
            "inner exit Ok",
            "outer exit Ok"
        ]
    );

    // The wrappers see the handler's error.
    let err = client
        .unary(UNARY, Request::new(s("fail:9:no")), pb::<_, StringValue>())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert_eq!(
        take(&log)[2..],
        [
            "inner exit FailedPrecondition",
            "outer exit FailedPrecondition"
        ]
    );

    // A streaming handler is wrapped whole: the exit comes after every message was sent.
    let stream = client
        .server_streaming(COUNT, Request::new(n(3)), pb::<_, UInt32Value>())
        .await
        .unwrap();
    let got: Vec<_> = futures_util::StreamExt::collect::<Vec<_>>(stream).await;
    assert_eq!(got.len(), 3);
    assert_eq!(take(&log).last().unwrap(), "outer exit Ok");

    // An Around that answers by itself: the handler never starts.
    let started = srv.echo.observed.started.load(Ordering::SeqCst);
    let mut request = Request::new(s("x"));
    request.metadata_mut().insert("x-closed", "1").unwrap();
    let err = client
        .unary(UNARY, request, pb::<_, StringValue>())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable);
    assert_eq!(err.message(), "closed by the gate");
    assert_eq!(srv.echo.observed.started.load(Ordering::SeqCst), started);
    assert_eq!(
        take(&log)[2..],
        ["inner exit Unavailable", "outer exit Unavailable"]
    );
}

/// Retries a unary call on UNAVAILABLE, up to three attempts (what a retry policy will do).
struct Retry {
    attempts: Arc<AtomicUsize>,
}

impl Around for Retry {
    fn around<'a>(&'a self, _call: &'a CallInfo, mut next: Next<'a>) -> AroundFuture<'a> {
        Box::pin(async move {
            let mut result = Err(Status::internal("not run"));
            for _ in 0..3 {
                self.attempts.fetch_add(1, Ordering::SeqCst);
                result = next.run().await;
                match &result {
                    Err(status) if status.code() == Code::Unavailable => continue,
                    _ => break,
                }
            }
            result
        })
    }
}

const M_FLAKY: MethodDescriptor =
    MethodDescriptor::new("Call", "/test.Flaky/Call", MethodKind::Unary);
static FLAKY: ServiceDescriptor = ServiceDescriptor::new("test.Flaky", &[M_FLAKY]);

/// Fails the first two calls with UNAVAILABLE, then echoes, counting what it saw.
#[derive(Clone, Default)]
struct Flaky {
    calls: Arc<AtomicUsize>,
}

impl Service for Flaky {
    fn descriptor(&self) -> &'static ServiceDescriptor {
        &FLAKY
    }

    fn call(&self, _: &str, call: ServerCall) {
        let calls = self.calls.clone();
        call.unary(
            &FLAKY.methods[0],
            pb(),
            move |r: Request<StringValue>| async move {
                if calls.fetch_add(1, Ordering::SeqCst) < 2 {
                    return Err(Status::unavailable("warming up"));
                }
                Ok(Response::new(r.into_inner()))
            },
        );
    }
}

#[tokio::test]
async fn client_around_can_retry_a_unary_call() {
    let flaky = Flaky::default();
    let server = Server::builder().add_service(flaky.clone()).build();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(server.serve_tcp(listener));

    let attempts = Arc::new(AtomicUsize::new(0));
    let log = Log::default();
    let channel = Channel::builder(&format!("http://{addr}"))
        .around(Span {
            name: "client",
            log: log.clone(),
        })
        .around(Retry {
            attempts: attempts.clone(),
        })
        .build()
        .unwrap();
    let reply = Client::new(channel)
        .unary(
            &FLAKY.methods[0],
            Request::new(s("third time")),
            pb::<_, StringValue>(),
        )
        .await
        .unwrap();
    // The request was encoded once and sent three times; the last answer is the call's.
    assert_eq!(reply.get_ref().value, "third time");
    assert_eq!(attempts.load(Ordering::SeqCst), 3);
    assert_eq!(flaky.calls.load(Ordering::SeqCst), 3);
    assert_eq!(
        take(&log),
        ["client enter /test.Flaky/Call", "client exit Ok"]
    );
}

#[tokio::test]
async fn client_around_wraps_the_opening_of_streams() {
    let srv = start().await;
    let log = Log::default();
    let channel = Channel::builder(&format!("http://{}", srv.addr))
        .around(Span {
            name: "open",
            log: log.clone(),
        })
        .build()
        .unwrap();
    let (tx, mut rx) = Client::new(channel)
        .bidi_streaming(CHAT, Request::new(()), pb::<StringValue, StringValue>())
        .await
        .unwrap();
    assert_eq!(take(&log), ["open enter /test.Echo/Chat", "open exit Ok"]);
    drop(tx);
    assert!(rx.message().await.unwrap().is_none());
}

/// Puts a value in the call's extensions in `on_call` and reads it back in `on_end`.
struct Stamp {
    seen: Arc<Mutex<Vec<Option<u64>>>>,
}

#[derive(Clone, Copy)]
struct Started(u64);

impl Interceptor for Stamp {
    fn on_call<'a>(&'a self, call: &'a mut CallInfo) -> InterceptFuture<'a> {
        call.extensions_mut().insert(Started(7));
        Box::pin(std::future::ready(Ok(())))
    }

    fn on_end(&self, call: &CallInfo, _: &Status) {
        let stamp = call.extensions().get::<Started>().map(|s| s.0);
        self.seen.lock().unwrap().push(stamp);
    }
}

/// Regression: on the server, `on_end` saw empty extensions, so per-call state set at the
/// start was lost at the end.
#[tokio::test]
async fn per_call_state_reaches_on_end_on_both_sides() {
    let server_seen = Arc::new(Mutex::new(Vec::new()));
    let srv = start_with(|b| {
        b.interceptor(Stamp {
            seen: server_seen.clone(),
        })
    })
    .await;
    let client_seen = Arc::new(Mutex::new(Vec::new()));
    let channel = Channel::builder(&format!("http://{}", srv.addr))
        .interceptor(Stamp {
            seen: client_seen.clone(),
        })
        .build()
        .unwrap();
    let reply = Client::new(channel)
        .unary(UNARY, Request::new(s("x")), pb::<_, StringValue>())
        .await
        .unwrap();
    assert_eq!(reply.get_ref().value, "x");
    eventually("server on_end", || server_seen.lock().unwrap().len() == 1).await;
    assert_eq!(*server_seen.lock().unwrap(), [Some(7)]);
    assert_eq!(*client_seen.lock().unwrap(), [Some(7)]);
}
