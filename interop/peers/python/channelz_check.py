#!/usr/bin/env python3
"""Checks a server's channelz service (grpc.channelz.v1) with grpcio-channelz's own stubs.

    channelz_check.py --server_host=H --server_port=P [--wired=true|false]
                      [--check=NAME|a,b,c|all]

The stubs are grpcio-channelz's generated ones (grpc_channelz.v1.channelz_pb2 /
channelz_pb2_grpc.ChannelzStub), so the messages are parsed as the official proto declares
them. Checks (each prints `PASS name` or `FAIL name: why`, then `N passed, M failed`; the
exit status is non-zero on any failure):

- channelz_servers: GetServers pages (max_results=1, following start ids) end, by
  ascending ids, each server answered by GetServer too; a listed server has listen sockets
  that GetSocket answers. With --wired=true: a server listens on --server_port (a listen
  socket whose TcpIpAddress port is it, and no remote address), and after 3 EmptyCalls
  its calls_started and calls_succeeded are at least 3, and GetServerSockets lists a
  connection that saw at least 3 streams and 3 messages received.
- channelz_top_channels: GetTopChannels answers pages that end, by ascending ids, each
  channel's data holding a connectivity state; GetChannel answers each listed id.
- channelz_not_found: GetChannel, GetSubchannel, GetSocket, GetServer and
  GetServerSockets of an id nothing has fail with NOT_FOUND.

--wired says the runtime registers its own servers, channels and sockets (the transport
reports to the registry): until then the server's own entries may be missing and its
counters zero, and the checks assert only what the service answers.
"""

import sys
import time

import grpc
from grpc_channelz.v1 import channelz_pb2, channelz_pb2_grpc

RPC_TIMEOUT = 10.0  # seconds per RPC
MAX_PAGES = 1000  # paging that goes on longer than this does not end
UNUSED_ID = 2 ** 62  # an id no entity has
CALLS = 3  # EmptyCalls made before looking at the counters (--wired)
EMPTY_CALL = "/grpc.testing.TestService/EmptyCall"


class Fail(Exception):
    pass


def expect(cond, why):
    if not cond:
        raise Fail(why)


def pages(fetch, items_of, id_of):
    """Every item of a paged list, following start ids with pages of one; checks that the
    pages end, hold at most one item, and go by ascending id."""
    start, seen = 0, []
    for _ in range(MAX_PAGES):
        resp = fetch(start, 1)
        items = list(items_of(resp))
        expect(len(items) <= 1, "a page of max_results=1 held %d items" % len(items))
        expect(resp.end or items, "a page without items did not set end")
        for item in items:
            expect(id_of(item) >= start, "id %d in a page from %d" % (id_of(item), start))
            if seen:
                expect(id_of(item) > id_of(seen[-1]),
                       "ids not ascending: %d after %d" % (id_of(item), id_of(seen[-1])))
            seen.append(item)
        if resp.end:
            return seen
        start = id_of(items[-1]) + 1
    raise Fail("paging did not end within %d pages" % MAX_PAGES)


def tcp_port(address):
    if address.WhichOneof("address") != "tcpip_address":
        return None
    return address.tcpip_address.port


def empty_calls(channel, n):
    call = channel.unary_unary(EMPTY_CALL, request_serializer=lambda _: b"",
                               response_deserializer=lambda b: b)
    for _ in range(n):
        call(b"", timeout=RPC_TIMEOUT)


def eventually(fn, why, seconds=5.0):
    """fn() until it is true (counters are bumped as calls end, just after the response)."""
    deadline = time.monotonic() + seconds
    while True:
        result = fn()
        if result:
            return result
        if time.monotonic() > deadline:
            raise Fail(why())
        time.sleep(0.05)


def channelz_servers(channel, flags):
    stub = channelz_pb2_grpc.ChannelzStub(channel)
    port = int(flags["server_port"])

    def servers():
        return pages(lambda start, n: stub.GetServers(
            channelz_pb2.GetServersRequest(start_server_id=start, max_results=n),
            timeout=RPC_TIMEOUT), lambda r: r.server, lambda s: s.ref.server_id)

    ours = None
    for server in servers():
        one = stub.GetServer(channelz_pb2.GetServerRequest(server_id=server.ref.server_id),
                             timeout=RPC_TIMEOUT).server
        expect(one.ref.server_id == server.ref.server_id,
               "GetServer(%d) answered server %d" % (server.ref.server_id, one.ref.server_id))
        for ref in server.listen_socket:
            socket = stub.GetSocket(channelz_pb2.GetSocketRequest(socket_id=ref.socket_id),
                                    timeout=RPC_TIMEOUT).socket
            expect(socket.ref.socket_id == ref.socket_id,
                   "GetSocket(%d) answered socket %d" % (ref.socket_id, socket.ref.socket_id))
            if tcp_port(socket.local) == port:
                expect(not socket.HasField("remote"),
                       "listen socket %d has a remote address %s" % (ref.socket_id, socket.remote))
                ours = server
    if flags["wired"] != "true":
        return
    expect(ours is not None, "no server has a listen socket on port %d" % port)
    server_id = ours.ref.server_id
    before = ours.data.calls_started
    empty_calls(channel, CALLS)

    def counted():
        data = stub.GetServer(channelz_pb2.GetServerRequest(server_id=server_id),
                              timeout=RPC_TIMEOUT).server.data
        return data if (data.calls_started >= before + CALLS
                        and data.calls_succeeded >= CALLS) else None

    data = eventually(counted, lambda: "server %d counted fewer than %d calls: %s"
                      % (server_id, CALLS, stub.GetServer(
                          channelz_pb2.GetServerRequest(server_id=server_id),
                          timeout=RPC_TIMEOUT).server.data))
    expect(data.HasField("last_call_started_timestamp"), "no last_call_started_timestamp")
    refs = pages(lambda start, n: stub.GetServerSockets(
        channelz_pb2.GetServerSocketsRequest(server_id=server_id, start_socket_id=start,
                                             max_results=n), timeout=RPC_TIMEOUT),
        lambda r: r.socket_ref, lambda r: r.socket_id)
    expect(refs, "server %d lists no connection" % server_id)

    def busy():
        for ref in refs:
            d = stub.GetSocket(channelz_pb2.GetSocketRequest(socket_id=ref.socket_id),
                               timeout=RPC_TIMEOUT).socket.data
            if d.streams_started >= CALLS and d.messages_received >= CALLS:
                return d
        return None

    eventually(busy, lambda: "no connection of server %d saw %d streams and messages"
               % (server_id, CALLS))


def channelz_top_channels(channel, flags):
    stub = channelz_pb2_grpc.ChannelzStub(channel)
    channels = pages(lambda start, n: stub.GetTopChannels(
        channelz_pb2.GetTopChannelsRequest(start_channel_id=start, max_results=n),
        timeout=RPC_TIMEOUT), lambda r: r.channel, lambda c: c.ref.channel_id)
    for c in channels:
        expect(c.data.HasField("state"), "channel %d has no state" % c.ref.channel_id)
        one = stub.GetChannel(channelz_pb2.GetChannelRequest(channel_id=c.ref.channel_id),
                              timeout=RPC_TIMEOUT).channel
        expect(one.ref.channel_id == c.ref.channel_id,
               "GetChannel(%d) answered %d" % (c.ref.channel_id, one.ref.channel_id))
    # Also one page of the server's own size (max_results 0).
    resp = stub.GetTopChannels(channelz_pb2.GetTopChannelsRequest(), timeout=RPC_TIMEOUT)
    expect(resp.end or resp.channel, "a page without channels did not set end")


def channelz_not_found(channel, flags):
    stub = channelz_pb2_grpc.ChannelzStub(channel)
    asks = [
        ("GetChannel", stub.GetChannel, channelz_pb2.GetChannelRequest(channel_id=UNUSED_ID)),
        ("GetSubchannel", stub.GetSubchannel,
         channelz_pb2.GetSubchannelRequest(subchannel_id=UNUSED_ID)),
        ("GetSocket", stub.GetSocket, channelz_pb2.GetSocketRequest(socket_id=UNUSED_ID)),
        ("GetServer", stub.GetServer, channelz_pb2.GetServerRequest(server_id=UNUSED_ID)),
        ("GetServerSockets", stub.GetServerSockets,
         channelz_pb2.GetServerSocketsRequest(server_id=UNUSED_ID)),
    ]
    for name, rpc, request in asks:
        try:
            rpc(request, timeout=RPC_TIMEOUT)
            raise Fail("%s(%d) answered, want NOT_FOUND" % (name, UNUSED_ID))
        except grpc.RpcError as e:
            expect(e.code() == grpc.StatusCode.NOT_FOUND, "%s(%d) failed with %s (%s), want "
                   "NOT_FOUND" % (name, UNUSED_ID, e.code(), e.details()))


CHECKS = {
    "channelz_servers": channelz_servers,
    "channelz_top_channels": channelz_top_channels,
    "channelz_not_found": channelz_not_found,
}


def main(argv):
    flags = {"server_host": "127.0.0.1", "server_port": None, "check": "all", "wired": "false"}
    for arg in argv:
        if not arg.startswith("--") or "=" not in arg or arg[2:].split("=", 1)[0] not in flags:
            sys.exit("usage: channelz_check.py --server_host=H --server_port=P "
                     "[--wired=true|false] [--check=%s|all]" % "|".join(CHECKS))
        key, value = arg[2:].split("=", 1)
        flags[key] = value
    if flags["server_port"] is None:
        sys.exit("--server_port is required")
    if flags["wired"] not in ("true", "false"):
        sys.exit("--wired takes true or false")
    names = list(CHECKS) if flags["check"] == "all" else flags["check"].split(",")
    for n in names:
        if n not in CHECKS:
            sys.exit("unknown check %s (have %s)" % (n, ", ".join(CHECKS)))
    target = "%s:%s" % (flags["server_host"], flags["server_port"])
    passed = failed = 0
    with grpc.insecure_channel(target) as channel:
        for n in names:
            try:
                CHECKS[n](channel, flags)
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
