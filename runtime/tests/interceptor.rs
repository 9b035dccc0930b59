//! Client and server interceptors: order, metadata changes, rejection, outcomes.

mod common;

use std::sync::{Arc, Mutex};

use common::*;
use grpc_runtime::client::{Channel, Client};
use grpc_runtime::interceptor::{CallInfo, InterceptFuture, Interceptor, from_fn};
use grpc_runtime::service::MethodKind;
use grpc_runtime::{Code, Request, Response, Status, Streaming};
use protobuf::well_known_types::wrappers::{StringValue, UInt32Value};

type Log = Arc<Mutex<Vec<String>>>;

/// Records its calls and outcomes; adds `x-echo: <name>` (so the server echoes the last one
/// to run); rejects calls whose metadata has `x-reject: <name>`.
struct Recorder {
    name: &'static str,
    log: Log,
}

impl Interceptor for Recorder {
    fn on_call<'a>(&'a self, call: &'a mut CallInfo) -> InterceptFuture<'a> {
        Box::pin(async move {
            // Async work inside an interceptor.
            tokio::task::yield_now().await;
            let kind = match call.kind() {
                MethodKind::Unary => "unary",
                MethodKind::ServerStreaming => "server-streaming",
                MethodKind::ClientStreaming => "client-streaming",
                MethodKind::BidiStreaming => "bidi",
            };
            self.log
                .lock()
                .unwrap()
                .push(format!("{} start {} {kind}", self.name, call.path()));
            if call.metadata().get("x-reject") == Some(self.name) {
                return Err(Status::permission_denied(format!(
                    "rejected by {}",
                    self.name
                )));
            }
            call.metadata_mut().insert("x-echo", self.name).unwrap();
            Ok(())
        })
    }

    fn on_end(&self, call: &CallInfo, status: &Status) {
        self.log.lock().unwrap().push(format!(
            "{} end {} {:?}",
            self.name,
            call.path(),
            status.code()
        ));
    }
}

fn take(log: &Log) -> Vec<String> {
    std::mem::take(&mut *log.lock().unwrap())
}

#[tokio::test]
async fn client_interceptors_run_in_order_and_see_outcomes() {
    let srv = start().await;
    let log = Log::default();
    let channel = Channel::builder(&format!("http://{}", srv.addr))
        .interceptor(Recorder {
            name: "a",
            log: log.clone(),
        })
        .interceptor(Recorder {
            name: "b",
            log: log.clone(),
        })
        .build()
        .unwrap();
    let client = Client::new(channel);

    let reply: Response<StringValue> = client
        .unary(UNARY, Request::new(s("x")), pb())
        .await
        .unwrap();
    // "b" ran last, so its value is what went out.
    assert_eq!(reply.metadata().get("x-echo"), Some("b"));
    assert_eq!(
        take(&log),
        [
            "a start /test.Echo/Unary unary",
            "b start /test.Echo/Unary unary",
            "b end /test.Echo/Unary Ok",
            "a end /test.Echo/Unary Ok",
        ]
    );

    let err = client
        .unary(
            UNARY,
            Request::new(s("fail:5:gone")),
            pb::<_, StringValue>(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    assert_eq!(
        take(&log)[2..],
        [
            "b end /test.Echo/Unary NotFound",
            "a end /test.Echo/Unary NotFound"
        ]
    );

    // Rejected by "b": the call never goes out; "a" sees the outcome.
    let mut request = Request::new(s("x"));
    request.metadata_mut().insert("x-reject", "b").unwrap();
    let err = client
        .unary(UNARY, request, pb::<_, StringValue>())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    assert_eq!(err.message(), "rejected by b");
    assert_eq!(
        take(&log),
        [
            "a start /test.Echo/Unary unary",
            "b start /test.Echo/Unary unary",
            "a end /test.Echo/Unary PermissionDenied",
        ]
    );
    assert_eq!(
        srv.echo
            .observed
            .started
            .load(std::sync::atomic::Ordering::SeqCst),
        2
    );

    // Streaming: the outcome is reported when the stream ends.
    let reply: Streaming<UInt32Value> = client
        .server_streaming(COUNT, Request::new(n(2)), pb())
        .await
        .unwrap();
    let mut stream = reply;
    assert_eq!(take(&log).len(), 2, "no end before the stream ends");
    while stream.message().await.unwrap().is_some() {}
    assert_eq!(
        take(&log),
        ["b end /test.Echo/Count Ok", "a end /test.Echo/Count Ok"]
    );

    // A dropped stream reports CANCELLED.
    let reply: Streaming<UInt32Value> = client
        .server_streaming(COUNT, Request::new(n(2)), pb())
        .await
        .unwrap();
    drop(reply);
    let log_now = take(&log);
    assert_eq!(
        log_now[2..],
        [
            "b end /test.Echo/Count Cancelled",
            "a end /test.Echo/Count Cancelled"
        ]
    );
}

#[tokio::test]
async fn server_interceptors_change_metadata_and_reject() {
    let log = Log::default();
    let l = log.clone();
    let srv = start_with(move |b| {
        b.interceptor(Recorder {
            name: "outer",
            log: l.clone(),
        })
        .interceptor(Recorder {
            name: "inner",
            log: l,
        })
    })
    .await;
    let client = srv.client();
    // The handler sees the metadata the interceptors set.
    let reply: Response<StringValue> = client
        .unary(UNARY, Request::new(s("x")), pb())
        .await
        .unwrap();
    assert_eq!(reply.metadata().get("x-echo"), Some("inner"));
    assert_eq!(
        take(&log),
        [
            "outer start /test.Echo/Unary unary",
            "inner start /test.Echo/Unary unary",
            "inner end /test.Echo/Unary Ok",
            "outer end /test.Echo/Unary Ok",
        ]
    );
    let mut request = Request::new(n(3));
    request.metadata_mut().insert("x-reject", "outer").unwrap();
    let err = client
        .server_streaming(COUNT, request, pb::<_, UInt32Value>())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    assert_eq!(
        take(&log),
        ["outer start /test.Echo/Count server-streaming"]
    );
    assert_eq!(
        srv.echo
            .observed
            .started
            .load(std::sync::atomic::Ordering::SeqCst),
        1
    );
}

#[tokio::test]
async fn sync_closure_interceptor() {
    let srv = start().await;
    let channel = Channel::builder(&format!("http://{}", srv.addr))
        .interceptor(from_fn(|call| {
            call.metadata_mut()
                .insert("x-echo", "from closure")
                .map_err(|e| Status::internal(e.to_string()))
        }))
        .build()
        .unwrap();
    let reply: Response<StringValue> = Client::new(channel)
        .unary(UNARY, Request::new(s("x")), pb())
        .await
        .unwrap();
    assert_eq!(reply.metadata().get("x-echo"), Some("from closure"));
}
