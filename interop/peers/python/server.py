#!/usr/bin/env python3
"""grpc.testing.TestService on grpcio, the interop peer server.

    server.py --port=N      serves plaintext on 0.0.0.0:N until killed
    server.py --port=N --use_tls=true --cert_file=F --key_file=F
                            serves TLS with that certificate chain and key (PEM)

Limitation: grpcio's server API does not say whether a received message had the
compressed flag set, so `expect_compressed` cannot be checked here (the cases
client_compressed_unary / client_compressed_streaming are covered against another peer;
see PEER_LIMITATIONS in ../../run-matrix.sh). Everything else follows the interop spec.
"""

import signal
import sys
import threading
import time
from concurrent import futures

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

import protos

empty_pb2, messages_pb2, test_pb2, test_pb2_grpc = protos.load()

ECHO_INITIAL = "x-grpc-test-echo-initial"
ECHO_TRAILING = "x-grpc-test-echo-trailing-bin"
CODES = {c.value[0]: c for c in grpc.StatusCode}


# Retries against a real peer (our own test convention, not the interop spec's): a call
# carrying x-retry-id is counted by that id. With x-fail-first=N it fails its first N attempts
# with UNAVAILABLE; with x-stall-first-ms=MS its first attempt waits that long (or until the
# client cancels it) before going on. The attempt that succeeds reports how many attempts the
# server saw, and the grpc-previous-rpc-attempts it got, in trailing metadata x-attempts /
# x-previous-attempts.
_attempts = {}
_attempts_lock = threading.Lock()


def fail_first(context):
    """Applies the retry convention to this attempt (aborting it if it says so)."""
    md = dict(context.invocation_metadata())
    if "x-retry-id" not in md:
        return
    with _attempts_lock:
        n = _attempts.get(md["x-retry-id"], 0) + 1
        _attempts[md["x-retry-id"]] = n
    stall = md.get("x-stall-first-ms")
    if stall is not None and n == 1:
        until = time.monotonic() + int(stall) / 1000
        while time.monotonic() < until and context.is_active():
            time.sleep(0.01)
    if n <= int(md.get("x-fail-first", "0")):
        context.abort(grpc.StatusCode.UNAVAILABLE, "attempt %d fails" % n)
    context.set_trailing_metadata((
        ("x-attempts", str(n)),
        ("x-previous-attempts", md.get("grpc-previous-rpc-attempts", "none")),
    ))


# Error details (our own convention, interop/src/details.rs): a UnaryCall carrying
# x-fail-with-details fails with INVALID_ARGUMENT and a google.rpc.Status holding a
# BadRequest, an ErrorInfo and a RetryInfo (in any order; grpcio-status's to_status puts it
# in grpc-status-details-bin).
FAIL_WITH_DETAILS = "x-fail-with-details"
DETAILS_MESSAGE = "invalid request (details attached)"


def fail_with_details(context):
    """Applies the error-details convention to this call (aborting it if it asks)."""
    if FAIL_WITH_DETAILS not in dict(context.invocation_metadata()):
        return
    bad_request = error_details_pb2.BadRequest(field_violations=[
        error_details_pb2.BadRequest.FieldViolation(
            field="payload.body", description="must not be empty"),
        error_details_pb2.BadRequest.FieldViolation(
            field="response_size", description="must be positive"),
    ])
    error_info = error_details_pb2.ErrorInfo(
        reason="INTEROP_DETAILS", domain="interop.grpc.test", metadata={"case": "error_details"})
    retry_info = error_details_pb2.RetryInfo(
        retry_delay=duration_pb2.Duration(seconds=1, nanos=500_000_000))
    details = []
    for message in (bad_request, error_info, retry_info):
        detail = any_pb2.Any()
        detail.Pack(message)
        details.append(detail)
    status = status_pb2.Status(code=grpc.StatusCode.INVALID_ARGUMENT.value[0],
                               message=DETAILS_MESSAGE, details=details)
    context.abort_with_status(rpc_status.to_status(status))


def parse_args(argv):
    """--port=N [--use_tls=true --cert_file=F --key_file=F] (also `--flag value`)."""
    opts = {"port": None, "use_tls": "false", "cert_file": "", "key_file": ""}
    i = 0
    while i < len(argv):
        arg = argv[i]
        if not arg.startswith("--"):
            sys.exit("unexpected argument: " + arg)
        name, eq, value = arg[2:].partition("=")
        if name not in opts:
            sys.exit("unknown flag --" + name)
        if not eq:
            if name == "use_tls":
                value = "true"
            elif i + 1 < len(argv):
                i += 1
                value = argv[i]
            else:
                sys.exit("missing value for --" + name)
        opts[name] = value
        i += 1
    if opts["port"] is None:
        sys.exit("usage: server.py --port=N [--use_tls=true --cert_file=F --key_file=F]")
    if opts["use_tls"].lower() not in ("true", "false"):
        sys.exit("--use_tls must be true or false")
    return opts


def server_credentials(opts):
    """The TLS credentials the flags ask for, or None for plaintext."""
    if opts["use_tls"].lower() != "true":
        return None
    if not opts["cert_file"] or not opts["key_file"]:
        sys.exit("--use_tls=true needs --cert_file and --key_file")
    with open(opts["cert_file"], "rb") as f:
        chain = f.read()
    with open(opts["key_file"], "rb") as f:
        key = f.read()
    return grpc.ssl_server_credentials([(key, chain)])


def echo_metadata(context):
    """Echoes the test keys: the initial one now, the trailing one into the trailers."""
    initial, trailing = [], []
    for key, value in context.invocation_metadata():
        if key == ECHO_INITIAL:
            initial.append((key, value))
        elif key == ECHO_TRAILING:
            trailing.append((key, value))
    if initial:
        context.send_initial_metadata(initial)
    if trailing:
        context.set_trailing_metadata(trailing)


def check_status(status, context):
    """Ends the call with the requested status, if one was requested."""
    if status is not None and status.code != 0:
        code = CODES.get(status.code, grpc.StatusCode.UNKNOWN)
        context.abort(code, status.message)


def payload(size, context):
    if size < 0:
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, "negative size")
    return messages_pb2.Payload(type=messages_pb2.COMPRESSABLE, body=bytes(size))


def check_type(response_type, context):
    if response_type != messages_pb2.COMPRESSABLE:
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, "unsupported response_type")


class TestService(test_pb2_grpc.TestServiceServicer):
    def EmptyCall(self, request, context):
        echo_metadata(context)
        return empty_pb2.Empty()

    def UnaryCall(self, request, context):
        fail_first(context)
        fail_with_details(context)
        echo_metadata(context)
        check_status(request.response_status if request.HasField("response_status") else None,
                     context)
        check_type(request.response_type, context)
        if request.HasField("response_compressed") and request.response_compressed.value:
            context.set_compression(grpc.Compression.Gzip)
        else:
            context.set_compression(grpc.Compression.NoCompression)
        return messages_pb2.SimpleResponse(payload=payload(request.response_size, context))

    def CacheableUnaryCall(self, request, context):
        echo_metadata(context)
        now = str(time.time_ns()).encode()
        return messages_pb2.SimpleResponse(payload=messages_pb2.Payload(body=now))

    def _respond(self, request, context, compression_set):
        """Yields the responses one StreamingOutputCallRequest asks for."""
        check_type(request.response_type, context)
        for params in request.response_parameters:
            if params.interval_us > 0:
                time.sleep(params.interval_us / 1e6)
            compressed = params.HasField("compressed") and params.compressed.value
            if compressed and not compression_set[0]:
                context.set_compression(grpc.Compression.Gzip)
                compression_set[0] = True
            if compression_set[0] and not compressed:
                context.disable_next_message_compression()
            yield messages_pb2.StreamingOutputCallResponse(
                payload=payload(params.size, context))

    def StreamingOutputCall(self, request, context):
        echo_metadata(context)
        check_status(request.response_status if request.HasField("response_status") else None,
                     context)
        yield from self._respond(request, context, [False])

    def StreamingInputCall(self, request_iterator, context):
        echo_metadata(context)
        total = 0
        for request in request_iterator:
            total += len(request.payload.body)
        return messages_pb2.StreamingInputCallResponse(aggregated_payload_size=total)

    def FullDuplexCall(self, request_iterator, context):
        fail_first(context)
        echo_metadata(context)
        compression_set = [False]
        for request in request_iterator:
            check_status(
                request.response_status if request.HasField("response_status") else None,
                context)
            yield from self._respond(request, context, compression_set)

    def HalfDuplexCall(self, request_iterator, context):
        echo_metadata(context)
        requests = list(request_iterator)
        compression_set = [False]
        for request in requests:
            check_status(
                request.response_status if request.HasField("response_status") else None,
                context)
            yield from self._respond(request, context, compression_set)


def main():
    opts = parse_args(sys.argv[1:])
    port = int(opts["port"])
    credentials = server_credentials(opts)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=32),
                         options=[("grpc.so_reuseport", 0)])
    test_pb2_grpc.add_TestServiceServicer_to_server(TestService(), server)
    address = "0.0.0.0:%d" % port
    if credentials is None:
        bound = server.add_insecure_port(address)
    else:
        bound = server.add_secure_port(address, credentials)
    if bound == 0:
        sys.exit("cannot listen on port %d" % port)
    server.start()
    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    print("python interop server listening on %d (%s)" % (port, "tls" if credentials else "plaintext"),
          file=sys.stderr, flush=True)
    # A timed wait: the signal may land on one of grpcio's threads, and Python runs its
    # handler only when the main thread wakes up (an untimed wait would then never return).
    while not done.wait(0.2):
        pass
    server.stop(0)


if __name__ == "__main__":
    main()
