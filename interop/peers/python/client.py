#!/usr/bin/env python3
"""The interop test client on grpcio, the peer client.

    client.py --server_host=H --server_port=P --test_case=NAME|a,b,c|all [--soak_iterations=N]
              [--use_tls=true [--ca_file=F | --use_test_ca=true] [--server_host_override=NAME]]

Over TLS the client trusts --ca_file if given; else, with --use_test_ca, the CA file named
by $GRPC_TEST_CA_FILE (we ship no test CA: interop/make-certs.sh makes one); else the
system's roots. --server_host_override is the name the server's certificate is checked
against (grpcio's grpc.ssl_target_name_override channel option).

Prints one line per case (`PASS name`, `FAIL name: reason` or `SKIP name: why`), then
`N passed, M failed`; exits non-zero on any failure.

Limitations of grpcio's client API (recorded as SKIP, after running whatever part of the
case it can, so a broken call still FAILs):
- it cannot see the compressed flag of a received message: server_compressed_unary and
  server_compressed_streaming check the payloads but not the flag;
- compression is per call, not per message: client_compressed_streaming (one compressed
  and one uncompressed message on one stream) cannot be sent.
"""

import os
import queue
import sys
import threading
import time

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

import protos

empty_pb2, messages_pb2, test_pb2, test_pb2_grpc = protos.load()

RPC_TIMEOUT = 30.0  # seconds; no case waits longer than this on one RPC
ECHO_INITIAL = "x-grpc-test-echo-initial"
ECHO_TRAILING = "x-grpc-test-echo-trailing-bin"
INITIAL_VALUE = "test_initial_metadata_value"
TRAILING_VALUE = b"\xab\xab\xab"
SPECIAL_MESSAGE = "\t\ntest with whitespace\r\nand Unicode BMP \u263a and non-BMP \U0001f608\t\n"


class Fail(Exception):
    pass


class Skip(Exception):
    pass


def expect(cond, why):
    if not cond:
        raise Fail(why)


def zeros(n):
    return messages_pb2.Payload(body=bytes(n))


def check_body(payload, size, what="response"):
    expect(len(payload.body) == size,
           "%s payload is %d bytes, want %d" % (what, len(payload.body), size))
    expect(payload.body == bytes(size), "%s payload is not all zeros" % what)


class Requests:
    """A request iterator fed from the test's thread, for bidi and client streaming."""

    _END = object()

    def __init__(self):
        self._q = queue.Queue()

    def send(self, msg):
        self._q.put(msg)

    def close(self):
        self._q.put(self._END)

    def __iter__(self):
        return self

    def __next__(self):
        item = self._q.get()
        if item is self._END:
            raise StopIteration
        return item


def rpc_error(fn):
    """Runs fn, which must raise grpc.RpcError; returns it."""
    try:
        fn()
    except grpc.RpcError as err:
        return err
    raise Fail("call succeeded, want an error")


class Client:
    def __init__(self, target, soak_iterations, credentials=None, options=()):
        self.target = target
        self.soak_iterations = soak_iterations
        self.credentials = credentials
        self.options = list(options)
        self.channel = self.new_channel()
        self.stub = test_pb2_grpc.TestServiceStub(self.channel)

    def new_channel(self):
        """A new channel to the server, plaintext or TLS as the flags said."""
        if self.credentials is None:
            return grpc.insecure_channel(self.target, options=self.options)
        return grpc.secure_channel(self.target, self.credentials, options=self.options)

    # -- the cases ---------------------------------------------------------------

    def empty_unary(self):
        resp = self.stub.EmptyCall(empty_pb2.Empty(), timeout=RPC_TIMEOUT)
        expect(isinstance(resp, empty_pb2.Empty), "response is not an Empty")

    def _large_unary(self, stub, request_size, response_size, **kw):
        req = messages_pb2.SimpleRequest(response_size=response_size, payload=zeros(request_size))
        resp = stub.UnaryCall(req, timeout=RPC_TIMEOUT, **kw)
        check_body(resp.payload, response_size)

    def large_unary(self):
        self._large_unary(self.stub, 271828, 314159)

    def very_large_request(self):
        self._large_unary(self.stub, 4000000, 10)

    def very_large_response(self):
        self._large_unary(self.stub, 10, 4000000)

    def client_compressed_unary(self):
        def req(expect_compressed):
            return messages_pb2.SimpleRequest(
                response_size=314159, payload=zeros(271828),
                expect_compressed=messages_pb2.BoolValue(value=expect_compressed))

        err = rpc_error(lambda: self.stub.UnaryCall(req(True), timeout=RPC_TIMEOUT))
        expect(err.code() == grpc.StatusCode.INVALID_ARGUMENT,
               "probe: got %s, want INVALID_ARGUMENT" % err.code())
        resp = self.stub.UnaryCall(req(True), timeout=RPC_TIMEOUT,
                                   compression=grpc.Compression.Gzip)
        check_body(resp.payload, 314159)
        resp = self.stub.UnaryCall(req(False), timeout=RPC_TIMEOUT)
        check_body(resp.payload, 314159)

    def server_compressed_unary(self):
        for compressed in (True, False):
            req = messages_pb2.SimpleRequest(
                response_size=314159, payload=zeros(271828),
                response_compressed=messages_pb2.BoolValue(value=compressed))
            resp = self.stub.UnaryCall(req, timeout=RPC_TIMEOUT)
            check_body(resp.payload, 314159)
        raise Skip("calls succeeded, but grpcio cannot see the compressed flag")

    def client_streaming(self):
        sizes = [27182, 8, 1828, 45904]
        reqs = [messages_pb2.StreamingInputCallRequest(payload=zeros(n)) for n in sizes]
        resp = self.stub.StreamingInputCall(iter(reqs), timeout=RPC_TIMEOUT)
        expect(resp.aggregated_payload_size == 74922,
               "aggregated_payload_size %d, want 74922" % resp.aggregated_payload_size)

    def client_compressed_streaming(self):
        probe = messages_pb2.StreamingInputCallRequest(
            payload=zeros(27182), expect_compressed=messages_pb2.BoolValue(value=True))
        err = rpc_error(lambda: self.stub.StreamingInputCall(iter([probe]), timeout=RPC_TIMEOUT))
        expect(err.code() == grpc.StatusCode.INVALID_ARGUMENT,
               "probe: got %s, want INVALID_ARGUMENT" % err.code())
        raise Skip("grpcio compresses per call, not per message")

    def server_streaming(self):
        sizes = [31415, 9, 2653, 58979]
        req = messages_pb2.StreamingOutputCallRequest(
            response_parameters=[messages_pb2.ResponseParameters(size=n) for n in sizes])
        got = list(self.stub.StreamingOutputCall(req, timeout=RPC_TIMEOUT))
        expect(len(got) == 4, "%d responses, want 4" % len(got))
        for resp, n in zip(got, sizes):
            check_body(resp.payload, n)

    def server_compressed_streaming(self):
        req = messages_pb2.StreamingOutputCallRequest(response_parameters=[
            messages_pb2.ResponseParameters(size=31415,
                                            compressed=messages_pb2.BoolValue(value=True)),
            messages_pb2.ResponseParameters(size=92653,
                                            compressed=messages_pb2.BoolValue(value=False)),
        ])
        got = list(self.stub.StreamingOutputCall(req, timeout=RPC_TIMEOUT))
        expect(len(got) == 2, "%d responses, want 2" % len(got))
        check_body(got[0].payload, 31415)
        check_body(got[1].payload, 92653)
        raise Skip("calls succeeded, but grpcio cannot see the compressed flag")

    def ping_pong(self):
        sizes = [(31415, 27182), (9, 8), (2653, 1828), (58979, 45904)]
        reqs = Requests()
        call = self.stub.FullDuplexCall(reqs, timeout=RPC_TIMEOUT)
        try:
            for resp_size, req_size in sizes:
                reqs.send(messages_pb2.StreamingOutputCallRequest(
                    response_parameters=[messages_pb2.ResponseParameters(size=resp_size)],
                    payload=zeros(req_size)))
                resp = next(call, None)
                expect(resp is not None, "stream ended early")
                check_body(resp.payload, resp_size)
        finally:
            reqs.close()
        expect(next(call, None) is None, "more than four responses")
        expect(call.code() == grpc.StatusCode.OK, "status %s" % call.code())

    def empty_stream(self):
        got = list(self.stub.FullDuplexCall(iter([]), timeout=RPC_TIMEOUT))
        expect(len(got) == 0, "%d responses, want 0" % len(got))

    def timeout_on_sleeping_server(self):
        reqs = Requests()
        reqs.send(messages_pb2.StreamingOutputCallRequest(payload=zeros(27182)))
        call = self.stub.FullDuplexCall(reqs, timeout=0.001)
        try:
            err = rpc_error(lambda: list(call))
        finally:
            reqs.close()
        expect(err.code() == grpc.StatusCode.DEADLINE_EXCEEDED,
               "got %s, want DEADLINE_EXCEEDED" % err.code())

    def cancel_after_begin(self):
        reqs = Requests()
        future = self.stub.StreamingInputCall.future(reqs, timeout=RPC_TIMEOUT)
        future.cancel()
        reqs.close()
        expect(future.cancelled(), "future not cancelled")
        expect(future.code() == grpc.StatusCode.CANCELLED,
               "got %s, want CANCELLED" % future.code())

    def cancel_after_first_response(self):
        reqs = Requests()
        call = self.stub.FullDuplexCall(reqs, timeout=RPC_TIMEOUT)
        reqs.send(messages_pb2.StreamingOutputCallRequest(
            response_parameters=[messages_pb2.ResponseParameters(size=31415)],
            payload=zeros(27182)))
        try:
            resp = next(call, None)
            expect(resp is not None, "no response")
            check_body(resp.payload, 31415)
            call.cancel()
        finally:
            reqs.close()
        err = rpc_error(lambda: list(call))
        expect(err.code() == grpc.StatusCode.CANCELLED, "got %s, want CANCELLED" % err.code())

    def _status_case(self, message, duplex):
        status = messages_pb2.EchoStatus(code=2, message=message)
        err = rpc_error(lambda: self.stub.UnaryCall(
            messages_pb2.SimpleRequest(response_status=status), timeout=RPC_TIMEOUT))
        expect(err.code() == grpc.StatusCode.UNKNOWN, "unary: code %s, want UNKNOWN" % err.code())
        expect(err.details() == message,
               "unary: message %r, want %r" % (err.details(), message))
        if duplex:
            req = messages_pb2.StreamingOutputCallRequest(response_status=status)
            err = rpc_error(lambda: list(self.stub.FullDuplexCall(iter([req]),
                                                                  timeout=RPC_TIMEOUT)))
            expect(err.code() == grpc.StatusCode.UNKNOWN,
                   "duplex: code %s, want UNKNOWN" % err.code())
            expect(err.details() == message,
                   "duplex: message %r, want %r" % (err.details(), message))

    def status_code_and_message(self):
        self._status_case("test status message", True)

    def special_status_message(self):
        self._status_case(SPECIAL_MESSAGE, False)

    def unimplemented_method(self):
        err = rpc_error(lambda: self.stub.UnimplementedCall(empty_pb2.Empty(),
                                                            timeout=RPC_TIMEOUT))
        expect(err.code() == grpc.StatusCode.UNIMPLEMENTED,
               "got %s, want UNIMPLEMENTED" % err.code())

    def unimplemented_service(self):
        stub = test_pb2_grpc.UnimplementedServiceStub(self.channel)
        err = rpc_error(lambda: stub.UnimplementedCall(empty_pb2.Empty(), timeout=RPC_TIMEOUT))
        expect(err.code() == grpc.StatusCode.UNIMPLEMENTED,
               "got %s, want UNIMPLEMENTED" % err.code())

    def error_details(self):
        """Our own case (interop/src/details.rs): the server fails a UnaryCall carrying
        x-fail-with-details with a google.rpc.Status holding BadRequest, ErrorInfo and
        RetryInfo; grpcio-status reads it from grpc-status-details-bin."""
        err = rpc_error(lambda: self.stub.UnaryCall(
            messages_pb2.SimpleRequest(), metadata=(("x-fail-with-details", "1"),),
            timeout=RPC_TIMEOUT))
        expect(err.code() == grpc.StatusCode.INVALID_ARGUMENT,
               "code %s, want INVALID_ARGUMENT" % err.code())
        expect(err.details() == DETAILS_MESSAGE,
               "message %r, want %r" % (err.details(), DETAILS_MESSAGE))
        # from_call checks that the google.rpc.Status's code and message match the call's.
        status = rpc_status.from_call(err)
        expect(status is not None, "no grpc-status-details-bin trailer")
        # One of each, in any order (ErrorDetails sends its kinds in an order of its own).
        bad, info, retry = (error_details_pb2.BadRequest(), error_details_pb2.ErrorInfo(),
                            error_details_pb2.RetryInfo())
        by_url = {"type.googleapis.com/" + m.DESCRIPTOR.full_name: m for m in (bad, info, retry)}
        urls = sorted(d.type_url for d in status.details)
        expect(urls == sorted(by_url), "detail type URLs %s, want %s" % (urls, sorted(by_url)))
        for detail in status.details:
            expect(detail.Unpack(by_url[detail.type_url]), "cannot unpack %s" % detail.type_url)
        violations = [(v.field, v.description) for v in bad.field_violations]
        expect(violations == [("payload.body", "must not be empty"),
                              ("response_size", "must be positive")],
               "BadRequest violations %s" % violations)
        expect((info.reason, info.domain, dict(info.metadata)) ==
               ("INTEROP_DETAILS", "interop.grpc.test", {"case": "error_details"}),
               "ErrorInfo %s" % str(info).replace("\n", " "))
        delay = (retry.retry_delay.seconds, retry.retry_delay.nanos)
        expect(delay == (1, 500_000_000), "RetryInfo delay %s, want 1.5 s" % (delay,))

    def custom_metadata(self):
        md = [(ECHO_INITIAL, INITIAL_VALUE), (ECHO_TRAILING, TRAILING_VALUE)]

        def check(what, initial, trailing):
            initial, trailing = dict(initial or ()), dict(trailing or ())
            expect(initial.get(ECHO_INITIAL) == INITIAL_VALUE,
                   "%s: initial metadata %r" % (what, initial.get(ECHO_INITIAL)))
            expect(trailing.get(ECHO_TRAILING) == TRAILING_VALUE,
                   "%s: trailing metadata %r" % (what, trailing.get(ECHO_TRAILING)))

        req = messages_pb2.SimpleRequest(response_size=314159, payload=zeros(271828))
        resp, call = self.stub.UnaryCall.with_call(req, metadata=md, timeout=RPC_TIMEOUT)
        check_body(resp.payload, 314159)
        check("unary", call.initial_metadata(), call.trailing_metadata())

        req = messages_pb2.StreamingOutputCallRequest(
            response_parameters=[messages_pb2.ResponseParameters(size=314159)],
            payload=zeros(271828))
        call = self.stub.FullDuplexCall(iter([req]), metadata=md, timeout=RPC_TIMEOUT)
        got = list(call)
        expect(len(got) == 1, "duplex: %d responses, want 1" % len(got))
        check_body(got[0].payload, 314159)
        check("duplex", call.initial_metadata(), call.trailing_metadata())

    def rpc_soak(self):
        for i in range(self.soak_iterations):
            try:
                self._large_unary(self.stub, 271828, 314159)
            except (Fail, grpc.RpcError) as err:
                raise Fail("iteration %d: %s" % (i, describe(err)))

    def channel_soak(self):
        for i in range(self.soak_iterations):
            with self.new_channel() as channel:
                try:
                    self._large_unary(test_pb2_grpc.TestServiceStub(channel), 271828, 314159)
                except (Fail, grpc.RpcError) as err:
                    raise Fail("iteration %d: %s" % (i, describe(err)))


CASES = [
    "empty_unary", "large_unary", "client_streaming", "server_streaming", "ping_pong",
    "empty_stream", "timeout_on_sleeping_server", "cancel_after_begin",
    "cancel_after_first_response", "status_code_and_message", "special_status_message",
    "unimplemented_method", "unimplemented_service", "custom_metadata",
    "client_compressed_unary", "server_compressed_unary", "client_compressed_streaming",
    "server_compressed_streaming", "very_large_request", "very_large_response", "rpc_soak",
    "channel_soak",
]


# Cases of our own, beside the interop spec's; run only when named.
OWN_CASES = ["error_details"]
DETAILS_MESSAGE = "invalid request (details attached)"


def describe(err):
    if isinstance(err, grpc.RpcError) and hasattr(err, "code"):
        return "%s: %s" % (err.code(), err.details())
    return str(err) or type(err).__name__


def parse_args(argv):
    opts = {"server_host": "localhost", "server_port": None, "test_case": "large_unary",
            "soak_iterations": "10", "use_tls": "false", "use_test_ca": "false",
            "ca_file": "", "server_host_override": ""}
    i = 0
    while i < len(argv):
        arg = argv[i]
        if not arg.startswith("--"):
            sys.exit("unexpected argument: " + arg)
        name, eq, value = arg[2:].partition("=")
        if not eq:
            if i + 1 >= len(argv):
                sys.exit("missing value for --" + name)
            i += 1
            value = argv[i]
        if name not in opts:
            sys.exit("unknown flag --" + name)
        opts[name] = value
        i += 1
    if opts["server_port"] is None:
        sys.exit("--server_port is required")
    for flag in ("use_tls", "use_test_ca"):
        if opts[flag].lower() not in ("true", "false"):
            sys.exit("--%s must be true or false" % flag)
    return opts


def credentials(opts):
    """The channel credentials and options the TLS flags ask for ((None, []) for plaintext)."""
    if opts["use_tls"].lower() != "true":
        return None, []
    ca_file = opts["ca_file"]
    if not ca_file and opts["use_test_ca"].lower() == "true":
        ca_file = os.environ.get("GRPC_TEST_CA_FILE", "")
        if not ca_file:
            sys.exit("--use_test_ca needs --ca_file or $GRPC_TEST_CA_FILE")
    roots = None
    if ca_file:
        with open(ca_file, "rb") as f:
            roots = f.read()
    options = []
    if opts["server_host_override"]:
        options.append(("grpc.ssl_target_name_override", opts["server_host_override"]))
    return grpc.ssl_channel_credentials(root_certificates=roots), options


def main():
    opts = parse_args(sys.argv[1:])
    names = CASES if opts["test_case"] == "all" else opts["test_case"].split(",")
    for name in names:
        if name not in CASES and name not in OWN_CASES:
            sys.exit("unknown test case: " + name)
    creds, options = credentials(opts)
    client = Client("%s:%s" % (opts["server_host"], opts["server_port"]),
                    int(opts["soak_iterations"]), creds, options)
    passed = failed = 0
    for name in names:
        try:
            getattr(client, name)()
            print("PASS " + name, flush=True)
            passed += 1
        except Skip as why:
            print("SKIP %s: %s" % (name, why), flush=True)
        except Exception as err:  # noqa: BLE001 - every failure is reported, not raised
            print("FAIL %s: %s" % (name, describe(err).replace("\n", "\\n")), flush=True)
            failed += 1
    print("%d passed, %d failed" % (passed, failed), flush=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
