"""Generates the grpc.testing Python modules from ../../../proto at run time.

The generated modules are written to a fresh temporary directory (nothing generated is
committed). Their package path `grpc.testing` would collide with grpcio's own `grpc`
package, so the generated `grpc/` directory is appended to `grpc.__path__`: the
generated imports (`from grpc.testing import empty_pb2`) then resolve.
"""

import atexit
import os
import shutil
import sys
import tempfile

import grpc
from grpc_tools import protoc

PROTO_ROOT = os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", "..", "..", "proto"))
FILES = ["grpc/testing/empty.proto", "grpc/testing/messages.proto", "grpc/testing/test.proto"]


def load():
    """Returns (empty_pb2, messages_pb2, test_pb2, test_pb2_grpc)."""
    out = tempfile.mkdtemp(prefix="interop-py-")
    atexit.register(shutil.rmtree, out, True)
    include = os.path.join(os.path.dirname(protoc.__file__), "_proto")
    args = ["protoc", "-I" + PROTO_ROOT, "-I" + include,
            "--python_out=" + out, "--grpc_python_out=" + out] + FILES
    if protoc.main(args) != 0:
        sys.exit("grpc_tools.protoc failed on " + PROTO_ROOT)
    grpc.__path__.append(os.path.join(out, "grpc"))
    from grpc.testing import empty_pb2, messages_pb2, test_pb2, test_pb2_grpc  # noqa: E402
    return empty_pb2, messages_pb2, test_pb2, test_pb2_grpc
