#!/usr/bin/env python3
"""Checks a server's health and reflection services with grpcio's own clients for them.

    health_reflection_check.py --server_host=H --server_port=P [--check=NAME|a,b,c|all]

Checks (each prints `PASS name` or `FAIL name: why`, then `N passed, M failed`; the exit
status is non-zero on any failure):

- health_check: grpcio-health-checking's grpc_health.v1 stubs (health_pb2 /
  health_pb2_grpc): Check("") and Check("grpc.testing.TestService") answer SERVING,
  Check("no.such.Service") fails with NOT_FOUND.
- health_watch: Watch("grpc.testing.TestService") first sends SERVING,
  Watch("no.such.Service") first sends SERVICE_UNKNOWN (the stream stays open: it is
  cancelled after the first message).
- reflection_v1alpha: grpcio-reflection's ProtoReflectionDescriptorDatabase under a
  google.protobuf DescriptorPool: the listed services include grpc.testing.TestService,
  grpc.health.v1.Health and both reflection services; every method of
  grpc.testing.TestService (and of Health and the reflection services) resolves through
  the pool to the expected request and response types, whose fields resolve too.
- reflection_v1: grpcio-reflection 1.85 has no grpc.reflection.v1 client, so the official
  grpc/reflection/v1/reflection.proto (Debian's grpc-proto, /usr/share/grpc-proto, or
  $GRPC_PROTO_DIR) is compiled by grpcio-tools at run time; through its stubs: list
  services, then file_containing_symbol for grpc.testing.TestService, whose
  FileDescriptorProtos (the file and its dependencies) must build a DescriptorPool in
  which every method resolves as above. Also the v1alpha database driven over the v1
  method path (the two protos' messages are field for field the same).
"""

import atexit
import os
import shutil
import sys
import tempfile

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

RPC_TIMEOUT = 10.0  # seconds per RPC

TEST_SERVICE = "grpc.testing.TestService"
HEALTH_SERVICE = "grpc.health.v1.Health"
REFLECTION_V1 = "grpc.reflection.v1.ServerReflection"
REFLECTION_V1ALPHA = "grpc.reflection.v1alpha.ServerReflection"
UNKNOWN_SERVICE = "no.such.Service"

# service -> {method: (input type, output type, client streaming, server streaming)},
# from proto/grpc/testing/test.proto and the standard health and reflection protos.
EXPECTED_METHODS = {
    TEST_SERVICE: {
        "EmptyCall": ("grpc.testing.Empty", "grpc.testing.Empty", False, False),
        "UnaryCall": ("grpc.testing.SimpleRequest", "grpc.testing.SimpleResponse", False, False),
        "CacheableUnaryCall": ("grpc.testing.SimpleRequest", "grpc.testing.SimpleResponse",
                               False, False),
        "StreamingOutputCall": ("grpc.testing.StreamingOutputCallRequest",
                                "grpc.testing.StreamingOutputCallResponse", False, True),
        "StreamingInputCall": ("grpc.testing.StreamingInputCallRequest",
                               "grpc.testing.StreamingInputCallResponse", True, False),
        "FullDuplexCall": ("grpc.testing.StreamingOutputCallRequest",
                           "grpc.testing.StreamingOutputCallResponse", True, True),
        "HalfDuplexCall": ("grpc.testing.StreamingOutputCallRequest",
                           "grpc.testing.StreamingOutputCallResponse", True, True),
        "UnimplementedCall": ("grpc.testing.Empty", "grpc.testing.Empty", False, False),
    },
    HEALTH_SERVICE: {
        "Check": ("grpc.health.v1.HealthCheckRequest", "grpc.health.v1.HealthCheckResponse",
                  False, False),
        "Watch": ("grpc.health.v1.HealthCheckRequest", "grpc.health.v1.HealthCheckResponse",
                  False, True),
    },
    REFLECTION_V1ALPHA: {
        "ServerReflectionInfo": ("grpc.reflection.v1alpha.ServerReflectionRequest",
                                 "grpc.reflection.v1alpha.ServerReflectionResponse", True, True),
    },
    REFLECTION_V1: {
        "ServerReflectionInfo": ("grpc.reflection.v1.ServerReflectionRequest",
                                 "grpc.reflection.v1.ServerReflectionResponse", True, True),
    },
}
# Health's List came after grpc-go 1.33; checked when the server declares it.
OPTIONAL_METHODS = {
    HEALTH_SERVICE: {
        "List": ("grpc.health.v1.HealthListRequest", "grpc.health.v1.HealthListResponse",
                 False, False),
    },
}
REQUIRED_SERVICES = [TEST_SERVICE, HEALTH_SERVICE, REFLECTION_V1, REFLECTION_V1ALPHA]
# A few message fields whose types must resolve too (so the dependencies are all there).
EXPECTED_FIELDS = {
    "grpc.testing.SimpleRequest.response_type": "grpc.testing.PayloadType",
    "grpc.testing.SimpleRequest.payload": "grpc.testing.Payload",
    "grpc.testing.SimpleRequest.response_status": "grpc.testing.EchoStatus",
    "grpc.testing.SimpleResponse.payload": "grpc.testing.Payload",
    "grpc.testing.StreamingOutputCallRequest.response_parameters":
        "grpc.testing.ResponseParameters",
}


class Fail(Exception):
    pass


def expect(cond, why):
    if not cond:
        raise Fail(why)


# ---- health ---------------------------------------------------------------------------

def status_name(status):
    return health_pb2.HealthCheckResponse.ServingStatus.Name(status)


def health_check(channel):
    stub = health_pb2_grpc.HealthStub(channel)
    for service in ["", TEST_SERVICE]:
        resp = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=RPC_TIMEOUT)
        expect(resp.status == health_pb2.HealthCheckResponse.SERVING,
               "Check(%r) answered %s, want SERVING" % (service, status_name(resp.status)))
    try:
        resp = stub.Check(health_pb2.HealthCheckRequest(service=UNKNOWN_SERVICE),
                          timeout=RPC_TIMEOUT)
        raise Fail("Check(%r) answered %s, want NOT_FOUND"
                   % (UNKNOWN_SERVICE, status_name(resp.status)))
    except grpc.RpcError as e:
        expect(e.code() == grpc.StatusCode.NOT_FOUND,
               "Check(%r) failed with %s (%s), want NOT_FOUND"
               % (UNKNOWN_SERVICE, e.code(), e.details()))


def first_watch_status(stub, service):
    call = stub.Watch(health_pb2.HealthCheckRequest(service=service), timeout=RPC_TIMEOUT)
    try:
        return next(call).status
    except StopIteration:
        raise Fail("Watch(%r) ended without a message (%s: %s)"
                   % (service, call.code(), call.details()))
    except grpc.RpcError as e:
        raise Fail("Watch(%r) failed: %s: %s" % (service, e.code(), e.details()))
    finally:
        call.cancel()


def health_watch(channel):
    stub = health_pb2_grpc.HealthStub(channel)
    for service, want in [(TEST_SERVICE, health_pb2.HealthCheckResponse.SERVING),
                          (UNKNOWN_SERVICE, health_pb2.HealthCheckResponse.SERVICE_UNKNOWN)]:
        got = first_watch_status(stub, service)
        expect(got == want, "Watch(%r) first sent %s, want %s"
               % (service, status_name(got), status_name(want)))


# ---- reflection -----------------------------------------------------------------------

def check_services_listed(services):
    for s in REQUIRED_SERVICES:
        expect(s in services, "list_services lacks %s (got %s)" % (s, sorted(services)))


def check_pool(pool, services):
    """Every method of every expected service resolves in pool to the expected types."""
    for service, methods in EXPECTED_METHODS.items():
        if service not in services:
            continue
        try:
            sd = pool.FindServiceByName(service)
        except KeyError as e:
            raise Fail("the pool does not find service %s: %s" % (service, e))
        got = {m.name: m for m in sd.methods}
        want = dict(methods)
        for name, types in OPTIONAL_METHODS.get(service, {}).items():
            if name in got:
                want[name] = types
        expect(set(got) == set(want), "%s has methods %s, want %s"
               % (service, sorted(got), sorted(want)))
        for name, (inp, out, cs, ss) in want.items():
            m = got[name]
            actual = (m.input_type.full_name, m.output_type.full_name,
                      m.client_streaming, m.server_streaming)
            expect(actual == (inp, out, cs, ss), "%s.%s is %s, want %s"
                   % (service, name, actual, (inp, out, cs, ss)))
            # The message types are whole: every field's message/enum type resolved too.
            for msg in (m.input_type, m.output_type):
                for f in msg.fields:
                    t = f.message_type or f.enum_type
                    if f.type in (f.TYPE_MESSAGE, f.TYPE_GROUP, f.TYPE_ENUM):
                        expect(t is not None, "%s has no type in the pool" % f.full_name)
    for field, want in EXPECTED_FIELDS.items():
        msg_name, fname = field.rsplit(".", 1)
        f = pool.FindMessageTypeByName(msg_name).fields_by_name.get(fname)
        expect(f is not None, "%s: no such field" % field)
        t = f.message_type or f.enum_type
        expect(t is not None and t.full_name == want, "%s has type %s, want %s"
               % (field, t.full_name if t else None, want))


def reflection_v1alpha(channel):
    db = ProtoReflectionDescriptorDatabase(channel)
    services = list(db.get_services())
    check_services_listed(services)
    check_pool(descriptor_pool.DescriptorPool(db), services)


class RenamingChannel(grpc.Channel):
    """A channel that sends calls for one method path to another (the v1alpha reflection
    client's calls to the v1 service: same messages, other service name)."""

    def __init__(self, channel, old, new):
        self._channel, self._old, self._new = channel, old, new

    def _path(self, method):
        return self._new if method == self._old else method

    def subscribe(self, callback, try_to_connect=False):
        self._channel.subscribe(callback, try_to_connect)

    def unsubscribe(self, callback):
        self._channel.unsubscribe(callback)

    def unary_unary(self, method, *args, **kwargs):
        return self._channel.unary_unary(self._path(method), *args, **kwargs)

    def unary_stream(self, method, *args, **kwargs):
        return self._channel.unary_stream(self._path(method), *args, **kwargs)

    def stream_unary(self, method, *args, **kwargs):
        return self._channel.stream_unary(self._path(method), *args, **kwargs)

    def stream_stream(self, method, *args, **kwargs):
        return self._channel.stream_stream(self._path(method), *args, **kwargs)

    def close(self):
        self._channel.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def load_v1_stubs():
    """Compiles the official grpc.reflection.v1 proto with grpcio-tools into a temporary
    directory; returns (reflection_pb2, reflection_pb2_grpc)."""
    from grpc_tools import protoc
    roots = [os.environ.get("GRPC_PROTO_DIR", ""), "/usr/share/grpc-proto"]
    root = next((r for r in roots
                 if r and os.path.isfile(os.path.join(r, "grpc/reflection/v1/reflection.proto"))),
                None)
    if root is None:
        raise Fail("no grpc/reflection/v1/reflection.proto under /usr/share/grpc-proto or "
                   "$GRPC_PROTO_DIR (Debian's grpc-proto package; interop/install-peers.sh "
                   "installs it)")
    out = tempfile.mkdtemp(prefix="interop-py-reflection-")
    atexit.register(shutil.rmtree, out, True)
    # grpcio aliases grpc.reflection to grpcio-reflection's package, so the generated code
    # cannot live at grpc/reflection/v1: the proto is compiled as reflection_v1/ (its
    # package, and so the method paths, stay grpc.reflection.v1).
    os.makedirs(os.path.join(out, "reflection_v1"))
    shutil.copy(os.path.join(root, "grpc/reflection/v1/reflection.proto"),
                os.path.join(out, "reflection_v1", "reflection.proto"))
    args = ["protoc", "-I" + out, "--python_out=" + out, "--grpc_python_out=" + out,
            "reflection_v1/reflection.proto"]
    if protoc.main(args) != 0:
        raise Fail("grpc_tools.protoc failed on %s/grpc/reflection/v1/reflection.proto" % root)
    sys.path.insert(0, out)
    from reflection_v1 import reflection_pb2, reflection_pb2_grpc  # noqa: E402
    return reflection_pb2, reflection_pb2_grpc


def reflection_v1(channel):
    pb2, pb2_grpc = load_v1_stubs()
    stub = pb2_grpc.ServerReflectionStub(channel)
    requests = [pb2.ServerReflectionRequest(host="", list_services=""),
                pb2.ServerReflectionRequest(host="", file_containing_symbol=TEST_SERVICE),
                pb2.ServerReflectionRequest(host="", file_containing_symbol="no.such.Symbol")]
    try:
        responses = list(stub.ServerReflectionInfo(iter(requests), timeout=RPC_TIMEOUT))
    except grpc.RpcError as e:
        raise Fail("v1 ServerReflectionInfo failed: %s: %s" % (e.code(), e.details()))
    expect(len(responses) == len(requests), "v1: %d responses to %d requests"
           % (len(responses), len(requests)))
    for req, resp in zip(requests, responses):
        expect(resp.original_request == req, "v1: original_request %s, want %s"
               % (resp.original_request, req))
    listed, files, missing = responses
    expect(listed.WhichOneof("message_response") == "list_services_response",
           "v1 list_services answered %s" % listed.WhichOneof("message_response"))
    services = [s.name for s in listed.list_services_response.service]
    check_services_listed(services)
    expect(files.WhichOneof("message_response") == "file_descriptor_response",
           "v1 file_containing_symbol answered %s: %s"
           % (files.WhichOneof("message_response"), files.error_response))
    protos = {}
    for raw in files.file_descriptor_response.file_descriptor_proto:
        fdp = descriptor_pb2.FileDescriptorProto.FromString(raw)
        protos[fdp.name] = fdp
    expect(missing.WhichOneof("message_response") == "error_response"
           and missing.error_response.error_code == grpc.StatusCode.NOT_FOUND.value[0],
           "v1 file_containing_symbol(no.such.Symbol) answered %s" % missing)
    # The first file declares the service; with the dependencies sent on the same stream,
    # it builds a pool on its own (dependencies first).
    pool = descriptor_pool.DescriptorPool()
    added = set()

    def add(name, chain=()):
        if name in added:
            return
        expect(name in protos, "v1: %s is needed (%s) but was not sent"
               % (name, " <- ".join(chain) or "asked"))
        expect(name not in chain, "v1: import cycle through %s" % name)
        for dep in protos[name].dependency:
            add(dep, chain + (name,))
        pool.Add(protos[name])
        added.add(name)

    for name in protos:
        add(name)
    check_pool(pool, [TEST_SERVICE])
    # Also the whole v1alpha database, driven over the v1 service's method path.
    renamed = RenamingChannel(channel, "/%s/ServerReflectionInfo" % REFLECTION_V1ALPHA,
                              "/%s/ServerReflectionInfo" % REFLECTION_V1)
    db = ProtoReflectionDescriptorDatabase(renamed)
    services = list(db.get_services())
    check_services_listed(services)
    check_pool(descriptor_pool.DescriptorPool(db), services)


CHECKS = {
    "health_check": health_check,
    "health_watch": health_watch,
    "reflection_v1alpha": reflection_v1alpha,
    "reflection_v1": reflection_v1,
}


def main(argv):
    flags = {"server_host": "127.0.0.1", "server_port": None, "check": "all"}
    for arg in argv:
        if not arg.startswith("--") or "=" not in arg or arg[2:].split("=", 1)[0] not in flags:
            sys.exit("usage: health_reflection_check.py --server_host=H --server_port=P "
                     "[--check=%s|all]" % "|".join(CHECKS))
        key, value = arg[2:].split("=", 1)
        flags[key] = value
    if flags["server_port"] is None:
        sys.exit("--server_port is required")
    names = list(CHECKS) if flags["check"] == "all" else flags["check"].split(",")
    for n in names:
        if n not in CHECKS:
            sys.exit("unknown check %s (have %s)" % (n, ", ".join(CHECKS)))
    target = "%s:%s" % (flags["server_host"], flags["server_port"])
    passed = failed = 0
    with grpc.insecure_channel(target) as channel:
        for n in names:
            try:
                CHECKS[n](channel)
                print("PASS %s" % n, flush=True)
                passed += 1
            except Fail as e:
                print("FAIL %s: %s" % (n, str(e).replace("\n", " ")), flush=True)
                failed += 1
            except grpc.RpcError as e:  # an RPC a check does not expect to fail
                print("FAIL %s: RPC failed: %s: %s" % (n, e.code(), e.details()), flush=True)
                failed += 1
            except Exception as e:  # a broken client library or server answer
                why = ("%s: %s" % (type(e).__name__, e)).replace("\n", " ")
                print("FAIL %s: %s" % (n, why), flush=True)
                failed += 1
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
