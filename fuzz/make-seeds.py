#!/usr/bin/env python3
"""Writes the seed corpora in fuzz/corpus/<target>/ (the layouts of runtime/src/fuzzing.rs).

The seeds are the cases of the runtime's tests: valid, compressed and bad frames, timeouts,
percent-escaped messages, trailers with error details, metadata, and every service config
JSON in runtime/tests, runtime/src/service_config.rs and docs/service-config.md.
Run from anywhere: python3 fuzz/make-seeds.py (it rewrites the seed files it owns).
"""

import gzip as _gzip
import json
import re
import struct
import zlib
from base64 import b64encode
from pathlib import Path

class gzip:  # noqa: N801 - gzip.compress with a fixed mtime, so the seeds are reproducible
    @staticmethod
    def compress(data):
        return _gzip.compress(data, mtime=0)


FUZZ = Path(__file__).resolve().parent
ROOT = FUZZ.parent
CORPUS = FUZZ / "corpus"


def write(target, name, data):
    if isinstance(data, str):
        data = data.encode()
    path = CORPUS / target / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


# --- protobuf, by hand (enough for google.rpc.Status and its details) ----------------------


def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def field(number, value):
    if isinstance(value, int):
        return varint(number << 3) + varint(value)
    if isinstance(value, str):
        value = value.encode()
    return varint(number << 3 | 2) + varint(len(value)) + value


def any_(name, value, prefix="type.googleapis.com/"):
    return field(1, prefix + name) + field(2, value)


def rpc_status(code, message, details):
    out = field(1, code) + field(2, message)
    for d in details:
        out += field(3, d)
    return out


RETRY_INFO = field(1, field(1, 1) + field(2, 500_000_000))  # retry_delay 1.5s
BAD_REQUEST = field(1, field(1, "name") + field(2, "must not be empty"))
ERROR_INFO = field(1, "PAGE_TOO_LARGE") + field(2, "example.com") + field(
    3, field(1, "max") + field(2, "100")
)
HELP = field(1, field(1, "paging") + field(2, "https://example.com/docs/paging"))
DETAILS = rpc_status(
    3,
    "bad name",
    [
        any_("google.rpc.BadRequest", BAD_REQUEST),
        any_("google.rpc.ErrorInfo", ERROR_INFO),
        any_("google.rpc.RetryInfo", RETRY_INFO),
        any_("google.rpc.Help", HELP),
        any_("google.rpc.RetryInfo", field(1, field(1, 7)), prefix="example.com/"),
        any_("example.Custom", b"\x08\x01"),
    ],
)

# --- frame_decoder: [mode, max_hi, max_lo, split, stream...] -------------------------------


def frame(body, compressed=False):
    return bytes([1 if compressed else 0]) + struct.pack(">I", len(body)) + body


def string_value(text):
    return field(1, text) if text else b""


def fd(mode, limit, split, stream):
    return bytes([mode]) + struct.pack(">H", limit) + bytes([split]) + stream


texts = [b"a", b"", b"ccc", b"d" * 300]
several = b"".join(frame(string_value(t.decode())) for t in texts)
big = string_value("abc" * 1000)
write("frame_decoder", "hi", fd(0, 1024, 0, frame(b"\x0a\x02hi")))
write("frame_decoder", "empty", fd(0, 1024, 0, frame(b"")))
write("frame_decoder", "several-whole", fd(0, 1024, 0, several))
write("frame_decoder", "several-bytewise", fd(4, 1024, 1, several))
write("frame_decoder", "several-split", fd(0, 1024, 7, several))
write("frame_decoder", "gzip", fd(1, 10_000, 0, frame(gzip.compress(big), True)))
write("frame_decoder", "gzip-split", fd(1, 10_000, 13, frame(gzip.compress(big), True) * 2))
write("frame_decoder", "deflate", fd(2, 10_000, 0, frame(zlib.compress(big), True)))
write("frame_decoder", "gzip-unlimited", fd(1, 0xFFFF, 0, frame(gzip.compress(big), True)))
write("frame_decoder", "gzip-bomb", fd(1, 100, 0, frame(gzip.compress(b"\0" * 100_000), True)))
write("frame_decoder", "mixed", fd(2, 5000, 3, frame(b"x") + frame(zlib.compress(b"y" * 99), True)))
write("frame_decoder", "over-limit", fd(0, 10, 0, b"\x00\x00\x00\x00\x0b"))
write("frame_decoder", "huge-length", fd(0, 0xFFFE, 0, b"\x00\xff\xff\xff\xff"))
write("frame_decoder", "bad-flag", fd(0, 10, 0, b"\x02\x00\x00\x00\x00"))
write("frame_decoder", "compressed-no-encoding", fd(0, 10_000, 0, frame(gzip.compress(big), True)))
write("frame_decoder", "unsupported", fd(3, 10_000, 0, frame(b"zz", True)))
write("frame_decoder", "partial", fd(0, 1024, 2, frame(b"\x0a\x05hello")[:-2]))

# --- compression: [selector, limit_hi, limit_lo, bytes...] ---------------------------------

text = b"hello hello hello hello hello" * 100
write("compression", "gzip", b"\x00" + struct.pack(">H", len(text)) + gzip.compress(text))
write("compression", "deflate", b"\x01" + struct.pack(">H", len(text)) + zlib.compress(text))
write("compression", "over-limit", b"\x00\x00\x10" + gzip.compress(text))
write("compression", "unlimited", b"\x01\xff\xff" + zlib.compress(text))
write("compression", "garbage", b"\x00\x00\x64not gzip")
for name in ["gzip", "deflate", "identity", "br", "identity,gzip,deflate", "identity, deflate"]:
    write("compression", "header-" + name.replace(",", "_").replace(" ", ""), b"\x00\x00\x00" + name.encode())

# --- grpc_timeout ---------------------------------------------------------------------------

for i, t in enumerate(
    ["1H", "2M", "3S", "4m", "5u", "99999999n", "0n", "1S", "99999999H", "100000u",
     "", "S", "1", "1x", "123456789S", "-1S", "1.5S", " 1S"]
):
    write("grpc_timeout", f"text-{i:02}", t)
for i, (secs, nanos) in enumerate(
    [(0, 1), (0, 50_000_000), (1, 1), (100_000, 1), (200_000, 0), (100_000_000, 0),
     (2**64 - 1, 999_999_999), (359_999_996_400, 0)]
):
    write("grpc_timeout", f"duration-{i}", struct.pack("<QI", secs, nanos))

# --- grpc_message ---------------------------------------------------------------------------

for i, m in enumerate(
    ["plain text", "100%25", "a%0Ab%0D%09", "%F0%9F%98%80 %C3%A9", "%", "%zz ok", "%FF",
     "a%20b", "bad %E2%98%BA", "%09%0Atest with whitespace%0D%0Aand Unicode BMP %E2%98%BA"]
):
    write("grpc_message", f"message-{i}", m)
write("grpc_message", "raw-utf8", "bad ☺ 100%")

# --- trailers and metadata: name:value lines ------------------------------------------------

details_b64 = b64encode(DETAILS).decode().rstrip("=")
write("trailers", "ok", "grpc-status: 0\n")
write("trailers", "ok-with-metadata", "grpc-status: 0\nx-extra: 1\ntrace-bin: AQID\n")
write(
    "trailers",
    "failed-precondition",
    "grpc-status: 9\ngrpc-message: bad %E2%98%BA\ngrpc-status-details-bin: AAH/\nx-extra: 1\n",
)
write(
    "trailers",
    "error-details",
    f"grpc-status: 3\ngrpc-message: bad name\ngrpc-status-details-bin: {details_b64}\n",
)
write(
    "trailers",
    "details-code-mismatch",
    f"grpc-status: 5\ngrpc-status-details-bin: {details_b64}\n",
)
write("trailers", "repeated-status", "grpc-status: 0\ngrpc-status: 14\ngrpc-message: later\n")
write("trailers", "pushback", "grpc-status: 14\ngrpc-retry-pushback-ms: 700\n")
write("trailers", "pushback-huge", "grpc-status: 14\ngrpc-retry-pushback-ms: 18446744073709551615\n")
write("trailers", "pushback-negative", "grpc-status: 14\ngrpc-retry-pushback-ms: -1\n")
write("trailers", "unknown-code", "grpc-status: 17\ngrpc-message: %zz\n")
write(
    "trailers",
    "trailers-only",
    ":status: 200\ncontent-type: application/grpc+proto\ngrpc-status: 14\n"
    "grpc-message: unavailable\ngrpc-retry-pushback-ms: 10\n",
)
write("trailers", "bad-bin", "grpc-status: 2\nx-bad-bin: @@@\ngrpc-status-details-bin: A\n")

write("metadata", "request", (
    "content-type: application/grpc\nte: trailers\ngrpc-timeout: 1S\ngrpc-encoding: gzip\n"
    "grpc-accept-encoding: identity,gzip,deflate\nuser-agent: grpc-rust/0.1\n"
    "x-request-id: 42\nx-a: 1\nx-a: 2\nk-bin: AQID\n"
))
write("metadata", "bin-values", "a-bin: AQ==\nb-bin: AQI=\nc-bin: AQID, AQ\nd-bin: +/+/\ne-bin:\n")
write("metadata", "bad-bin", "x-ok-bin: AQID\nx-text: not base64!\nx-bad-bin: AQ=\n")
write("metadata", "application-grpc-keys", (
    "grpc-trace-bin: AQ\ngrpc-tags-bin: Ag\ngrpc-retry-pushback-ms: 10\n"
    "grpc-previous-rpc-attempts: 2\ngrpc-status: 0\n"
))
write("metadata", "many-reserved", "".join(f"grpc-x{i}: v\n" for i in range(20)) + "x-kept: k\n")
# The fuzzer's find: call headers after more than eight reserved keys were not read.
write("metadata", "call-headers-after-many-reserved", "".join(f"grpc-x{i}: v\n" for i in range(9))
      + "grpc-timeout: 1S\ngrpc-encoding: gzip\nhost: a\nhost: b\n")
write("metadata", "hosts", "host: a\nhost: b\nx-upper: V\nX-Mixed-Case: v\n")
write("metadata", "api-keys", "X-Upper: v\nx y: v\nk: a b\nk:  v \ngrpc-custom: x\n")

# --- service_config: every JSON config in the tests and docs ---------------------------------

configs = []
for path in sorted(
    list((ROOT / "runtime" / "tests").glob("*.rs"))
    + [ROOT / "runtime" / "src" / "service_config.rs", ROOT / "docs" / "service-config.md"]
):
    for raw in re.findall(r'r#"(.*?)"#', path.read_text(), re.S):
        try:
            if isinstance(json.loads(raw), dict) and raw not in configs:
                configs.append(raw)
        except ValueError:
            pass
configs += [
    "{",
    '{"loadBalancingConfig":[{"nope":{}}]}',
    '{"loadBalancingPolicy":"ROUND_ROBIN"}',
    '{"retryThrottling": {"maxTokens": 10, "tokenRatio": 0.1234}}',
    # The fuzzer's find: a ratio this large overflowed the throttle's token count.
    '{"retryThrottling": {"maxTokens": 2, "tokenRatio": 4444444444444444444441}}',
    '{"healthCheckConfig": {"serviceName": null}}',
    '{"methodConfig": [{"name": [{}], "maxRequestMessageBytes": "18446744073709551615"}]}',
]
for i, c in enumerate(configs):
    write("service_config", f"config-{i:02}", c)

# --- error_details: [code, google.rpc.Status...] --------------------------------------------

write("error_details", "bad-request-and-more", bytes([3]) + DETAILS)
write("error_details", "code-mismatch", bytes([5]) + DETAILS)
write("error_details", "no-details", b"\x02")
write("error_details", "malformed-status", b"\x03\xff\xff")
write("error_details", "malformed-detail", bytes([3]) + rpc_status(3, "", [any_("google.rpc.RetryInfo", b"\xff")]))
write("error_details", "negative-delay", bytes([14]) + rpc_status(14, "", [any_("google.rpc.RetryInfo", field(1, field(1, 2**64 - 1)))]))

# --- paced: [split, bytes after the client preface...] -------------------------------------


def frame(kind, flags, payload, stream=0):
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload


def setting(ident, value):
    return struct.pack(">HI", ident, value)


SETTINGS_LIMIT = frame(4, 0, setting(4, 65535) + setting(6, 1024))
write("paced", "settings", bytes([7]) + SETTINGS_LIMIT)
write("paced", "empty-settings-then-ack", bytes([0]) + frame(4, 0, b"") + frame(4, 1, b""))
write("paced", "limit-twice", bytes([3]) + frame(4, 0, setting(6, 1 << 20)) + frame(4, 0, setting(6, 100)))
write("paced", "ack-is-not-settings", bytes([5]) + frame(4, 1, setting(6, 7)))
write("paced", "partial-entry", bytes([2]) + frame(4, 0, setting(6, 9) + b"\x00\x06\x00"))
write("paced", "truncated", bytes([1]) + SETTINGS_LIMIT[:-3])
write("paced", "pings-and-headers", bytes([16]) + frame(4, 0, b"") + frame(6, 0, bytes(8)) * 4
      + frame(1, 5, b"\x82\x86\x84", 1) + frame(0, 1, b"\x00\x00\x00\x00\x00", 1))
write("paced", "large-data", bytes([255]) + frame(4, 0, b"") + frame(0, 0, bytes(20000), 1) + frame(4, 0, setting(6, 5)))

for target in sorted(p.name for p in CORPUS.iterdir()):
    print(f"{target}: {len(list((CORPUS / target).iterdir()))} seeds")
