// Command go-interop-client runs the interop test cases on grpc-go, the peer client.
//
//	go-interop-client --server_host=H --server_port=P --test_case=NAME|a,b,c|all [--soak_iterations=N]
//	                  [--use_tls=true [--ca_file=F | --use_test_ca=true] [--server_host_override=NAME]]
//
// Over TLS the client trusts --ca_file if given; else, with --use_test_ca, the CA file
// named by $GRPC_TEST_CA_FILE (we ship no test CA: interop/make-certs.sh makes one); else
// the system's roots. --server_host_override is the name the server's certificate is
// checked against.
//
// Prints one line per case (PASS name, FAIL name: reason, SKIP name: why), then
// "N passed, M failed"; exits non-zero on any failure.
//
// The compressed flag of each received message is seen through a stats.Handler (wire
// length against uncompressed length, which differ exactly when a zero-filled payload
// was compressed).
//
// Limitation: grpc-go 1.33 compresses every message of a call or none, so
// client_compressed_streaming (a compressed then an uncompressed message on one stream)
// runs its probe and then reports SKIP.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/encoding/gzip"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/stats"
	"google.golang.org/grpc/status"

	"google.golang.org/genproto/googleapis/rpc/errdetails"

	pb "interop.local/testpb"
)

const (
	rpcTimeout      = 30 * time.Second
	echoInitialKey  = "x-grpc-test-echo-initial"
	echoTrailingKey = "x-grpc-test-echo-trailing-bin"
	initialValue    = "test_initial_metadata_value"
	specialMessage  = "\t\ntest with whitespace\r\nand Unicode BMP \u263a and non-BMP \U0001f608\t\n"
)

var trailingValue = "\xab\xab\xab"

var cases = []string{
	"empty_unary", "large_unary", "client_streaming", "server_streaming", "ping_pong",
	"empty_stream", "timeout_on_sleeping_server", "cancel_after_begin",
	"cancel_after_first_response", "status_code_and_message", "special_status_message",
	"unimplemented_method", "unimplemented_service", "custom_metadata",
	"client_compressed_unary", "server_compressed_unary", "client_compressed_streaming",
	"server_compressed_streaming", "very_large_request", "very_large_response", "rpc_soak",
	"channel_soak",
}

// ownCases are ours, beside the interop spec's; run only when named.
var ownCases = []string{"error_details"}

type skipError struct{ why string }

func (s skipError) Error() string { return s.why }

func fail(format string, args ...interface{}) error { return fmt.Errorf(format, args...) }

// recvLog records whether each message received on a call was compressed.
type recvLog struct {
	mu         sync.Mutex
	compressed []bool
}

type recvLogKey struct{}

func (l *recvLog) flags() []bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]bool(nil), l.compressed...)
}

type flagRecorder struct{}

func (flagRecorder) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context { return ctx }
func (flagRecorder) HandleRPC(ctx context.Context, s stats.RPCStats) {
	in, ok := s.(*stats.InPayload)
	if !ok {
		return
	}
	if l, ok := ctx.Value(recvLogKey{}).(*recvLog); ok {
		l.mu.Lock()
		l.compressed = append(l.compressed, in.WireLength-5 != in.Length)
		l.mu.Unlock()
	}
}
func (flagRecorder) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context { return ctx }
func (flagRecorder) HandleConn(context.Context, stats.ConnStats)                       {}

type client struct {
	target string
	soak   int
	conn   *grpc.ClientConn
	stub   pb.TestServiceClient
}

// security is the dial option for plaintext or TLS, as the flags said; set once in main.
var security = grpc.WithInsecure()

func dial(target string) (*grpc.ClientConn, error) {
	return grpc.Dial(target, security, grpc.WithStatsHandler(flagRecorder{}))
}

// tlsOption is the dial option for TLS: trust caFile if given, else $GRPC_TEST_CA_FILE with
// useTestCA, else the system's roots; check the server's certificate against override if given.
func tlsOption(caFile string, useTestCA bool, override string) (grpc.DialOption, error) {
	if caFile == "" && useTestCA {
		caFile = os.Getenv("GRPC_TEST_CA_FILE")
		if caFile == "" {
			return nil, errors.New("--use_test_ca needs --ca_file or $GRPC_TEST_CA_FILE")
		}
	}
	if caFile == "" {
		return grpc.WithTransportCredentials(credentials.NewClientTLSFromCert(nil, override)), nil
	}
	creds, err := credentials.NewClientTLSFromFile(caFile, override)
	if err != nil {
		return nil, err
	}
	return grpc.WithTransportCredentials(creds), nil
}

func callCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), rpcTimeout)
}

func zeros(n int) *pb.Payload { return &pb.Payload{Body: make([]byte, n)} }

func checkBody(p *pb.Payload, size int) error {
	if len(p.GetBody()) != size {
		return fail("payload is %d bytes, want %d", len(p.GetBody()), size)
	}
	if !bytes.Equal(p.GetBody(), make([]byte, size)) {
		return fail("payload is not all zeros")
	}
	return nil
}

func wantCode(err error, want codes.Code) error {
	if err == nil {
		return fail("call succeeded, want %v", want)
	}
	if got := status.Code(err); got != want {
		return fail("got %v (%v), want %v", got, err, want)
	}
	return nil
}

func (c *client) largeUnary(stub pb.TestServiceClient, reqSize, respSize int) error {
	ctx, cancel := callCtx()
	defer cancel()
	resp, err := stub.UnaryCall(ctx, &pb.SimpleRequest{ResponseSize: int32(respSize), Payload: zeros(reqSize)})
	if err != nil {
		return err
	}
	return checkBody(resp.GetPayload(), respSize)
}

func (c *client) run(name string) error {
	switch name {
	case "empty_unary":
		ctx, cancel := callCtx()
		defer cancel()
		resp, err := c.stub.EmptyCall(ctx, &pb.Empty{})
		if err != nil {
			return err
		}
		if resp == nil {
			return fail("nil response")
		}
		return nil
	case "large_unary":
		return c.largeUnary(c.stub, 271828, 314159)
	case "very_large_request":
		return c.largeUnary(c.stub, 4000000, 10)
	case "very_large_response":
		return c.largeUnary(c.stub, 10, 4000000)
	case "client_compressed_unary":
		return c.clientCompressedUnary()
	case "server_compressed_unary":
		return c.serverCompressedUnary()
	case "client_streaming":
		ctx, cancel := callCtx()
		defer cancel()
		s, err := c.stub.StreamingInputCall(ctx)
		if err != nil {
			return err
		}
		for _, n := range []int{27182, 8, 1828, 45904} {
			if err := s.Send(&pb.StreamingInputCallRequest{Payload: zeros(n)}); err != nil {
				return err
			}
		}
		resp, err := s.CloseAndRecv()
		if err != nil {
			return err
		}
		if resp.GetAggregatedPayloadSize() != 74922 {
			return fail("aggregated_payload_size %d, want 74922", resp.GetAggregatedPayloadSize())
		}
		return nil
	case "client_compressed_streaming":
		ctx, cancel := callCtx()
		defer cancel()
		s, err := c.stub.StreamingInputCall(ctx)
		if err != nil {
			return err
		}
		if err := s.Send(&pb.StreamingInputCallRequest{
			Payload: zeros(27182), ExpectCompressed: &pb.BoolValue{Value: true}}); err != nil && err != io.EOF {
			return err
		}
		_, err = s.CloseAndRecv()
		if err := wantCode(err, codes.InvalidArgument); err != nil {
			return fail("probe: %v", err)
		}
		return skipError{"grpc-go compresses every message of a call or none"}
	case "server_streaming":
		return c.serverStreaming(nil, []int{31415, 9, 2653, 58979})
	case "server_compressed_streaming":
		return c.serverStreaming([]bool{true, false}, []int{31415, 92653})
	case "ping_pong":
		return c.pingPong()
	case "empty_stream":
		ctx, cancel := callCtx()
		defer cancel()
		s, err := c.stub.FullDuplexCall(ctx)
		if err != nil {
			return err
		}
		if err := s.CloseSend(); err != nil {
			return err
		}
		if _, err := s.Recv(); err != io.EOF {
			return fail("want end of stream, got %v", err)
		}
		return nil
	case "timeout_on_sleeping_server":
		ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
		defer cancel()
		s, err := c.stub.FullDuplexCall(ctx)
		if err != nil {
			return wantCode(err, codes.DeadlineExceeded)
		}
		if err := s.Send(&pb.StreamingOutputCallRequest{Payload: zeros(27182)}); err != nil && err != io.EOF {
			return wantCode(err, codes.DeadlineExceeded)
		}
		_, err = s.Recv()
		return wantCode(err, codes.DeadlineExceeded)
	case "cancel_after_begin":
		ctx, cancel := context.WithCancel(context.Background())
		s, err := c.stub.StreamingInputCall(ctx)
		if err != nil {
			cancel()
			return err
		}
		cancel()
		_, err = s.CloseAndRecv()
		return wantCode(err, codes.Canceled)
	case "cancel_after_first_response":
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		s, err := c.stub.FullDuplexCall(ctx)
		if err != nil {
			return err
		}
		if err := s.Send(&pb.StreamingOutputCallRequest{
			ResponseParameters: []*pb.ResponseParameters{{Size: 31415}},
			Payload:            zeros(27182)}); err != nil {
			return err
		}
		resp, err := s.Recv()
		if err != nil {
			return err
		}
		if err := checkBody(resp.GetPayload(), 31415); err != nil {
			return err
		}
		cancel()
		_, err = s.Recv()
		return wantCode(err, codes.Canceled)
	case "status_code_and_message":
		return c.statusCase("test status message", true)
	case "special_status_message":
		return c.statusCase(specialMessage, false)
	case "unimplemented_method":
		ctx, cancel := callCtx()
		defer cancel()
		_, err := c.stub.UnimplementedCall(ctx, &pb.Empty{})
		return wantCode(err, codes.Unimplemented)
	case "unimplemented_service":
		ctx, cancel := callCtx()
		defer cancel()
		_, err := pb.NewUnimplementedServiceClient(c.conn).UnimplementedCall(ctx, &pb.Empty{})
		return wantCode(err, codes.Unimplemented)
	case "custom_metadata":
		return c.customMetadata()
	case "error_details":
		return c.errorDetails()
	case "rpc_soak":
		for i := 0; i < c.soak; i++ {
			if err := c.largeUnary(c.stub, 271828, 314159); err != nil {
				return fail("iteration %d: %v", i, err)
			}
		}
		return nil
	case "channel_soak":
		for i := 0; i < c.soak; i++ {
			conn, err := dial(c.target)
			if err != nil {
				return fail("iteration %d: %v", i, err)
			}
			err = c.largeUnary(pb.NewTestServiceClient(conn), 271828, 314159)
			conn.Close()
			if err != nil {
				return fail("iteration %d: %v", i, err)
			}
		}
		return nil
	}
	return fail("unknown test case")
}

func (c *client) clientCompressedUnary() error {
	req := func(expect bool) *pb.SimpleRequest {
		return &pb.SimpleRequest{ResponseSize: 314159, Payload: zeros(271828),
			ExpectCompressed: &pb.BoolValue{Value: expect}}
	}
	ctx, cancel := callCtx()
	defer cancel()
	_, err := c.stub.UnaryCall(ctx, req(true))
	if err := wantCode(err, codes.InvalidArgument); err != nil {
		return fail("probe: %v", err)
	}
	resp, err := c.stub.UnaryCall(ctx, req(true), grpc.UseCompressor(gzip.Name))
	if err != nil {
		return fail("compressed: %v", err)
	}
	if err := checkBody(resp.GetPayload(), 314159); err != nil {
		return fail("compressed: %v", err)
	}
	resp, err = c.stub.UnaryCall(ctx, req(false))
	if err != nil {
		return fail("uncompressed: %v", err)
	}
	return checkBody(resp.GetPayload(), 314159)
}

func (c *client) serverCompressedUnary() error {
	for _, compressed := range []bool{true, false} {
		log := &recvLog{}
		ctx, cancel := callCtx()
		ctx = context.WithValue(ctx, recvLogKey{}, log)
		// grpc-go 1.33 advertises grpc-accept-encoding only on calls that compress their
		// request, so these do: otherwise no server may compress its response.
		resp, err := c.stub.UnaryCall(ctx, &pb.SimpleRequest{ResponseSize: 314159, Payload: zeros(271828),
			ResponseCompressed: &pb.BoolValue{Value: compressed}}, grpc.UseCompressor(gzip.Name))
		cancel()
		if err != nil {
			return fail("response_compressed=%v: %v", compressed, err)
		}
		if err := checkBody(resp.GetPayload(), 314159); err != nil {
			return err
		}
		if f := log.flags(); len(f) != 1 || f[0] != compressed {
			return fail("response_compressed=%v: received compressed flags %v", compressed, f)
		}
	}
	return nil
}

func (c *client) serverStreaming(compressed []bool, sizes []int) error {
	req := &pb.StreamingOutputCallRequest{}
	for i, n := range sizes {
		p := &pb.ResponseParameters{Size: int32(n)}
		if compressed != nil {
			p.Compressed = &pb.BoolValue{Value: compressed[i]}
		}
		req.ResponseParameters = append(req.ResponseParameters, p)
	}
	log := &recvLog{}
	ctx, cancel := callCtx()
	defer cancel()
	var opts []grpc.CallOption
	if compressed != nil {
		// As in serverCompressedUnary: a compressed request makes grpc-go 1.33 advertise gzip.
		opts = append(opts, grpc.UseCompressor(gzip.Name))
	}
	s, err := c.stub.StreamingOutputCall(context.WithValue(ctx, recvLogKey{}, log), req, opts...)
	if err != nil {
		return err
	}
	var got []*pb.StreamingOutputCallResponse
	for {
		resp, err := s.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		got = append(got, resp)
	}
	if len(got) != len(sizes) {
		return fail("%d responses, want %d", len(got), len(sizes))
	}
	for i, resp := range got {
		if err := checkBody(resp.GetPayload(), sizes[i]); err != nil {
			return fail("response %d: %v", i, err)
		}
	}
	if compressed != nil {
		if f := log.flags(); fmt.Sprint(f) != fmt.Sprint(compressed) {
			return fail("received compressed flags %v, want %v", f, compressed)
		}
	}
	return nil
}

func (c *client) pingPong() error {
	ctx, cancel := callCtx()
	defer cancel()
	s, err := c.stub.FullDuplexCall(ctx)
	if err != nil {
		return err
	}
	for _, sz := range [][2]int{{31415, 27182}, {9, 8}, {2653, 1828}, {58979, 45904}} {
		if err := s.Send(&pb.StreamingOutputCallRequest{
			ResponseParameters: []*pb.ResponseParameters{{Size: int32(sz[0])}},
			Payload:            zeros(sz[1])}); err != nil {
			return err
		}
		resp, err := s.Recv()
		if err != nil {
			return err
		}
		if err := checkBody(resp.GetPayload(), sz[0]); err != nil {
			return err
		}
	}
	if err := s.CloseSend(); err != nil {
		return err
	}
	if _, err := s.Recv(); err != io.EOF {
		return fail("want end of stream after four responses, got %v", err)
	}
	return nil
}

func checkStatus(what string, err error, message string) error {
	st, _ := status.FromError(err)
	if err == nil || st.Code() != codes.Unknown {
		return fail("%s: got %v, want UNKNOWN", what, err)
	}
	if st.Message() != message {
		return fail("%s: message %q, want %q", what, st.Message(), message)
	}
	return nil
}

func (c *client) statusCase(message string, duplex bool) error {
	es := &pb.EchoStatus{Code: 2, Message: message}
	ctx, cancel := callCtx()
	defer cancel()
	_, err := c.stub.UnaryCall(ctx, &pb.SimpleRequest{ResponseStatus: es})
	if err := checkStatus("unary", err, message); err != nil || !duplex {
		return err
	}
	s, err := c.stub.FullDuplexCall(ctx)
	if err != nil {
		return err
	}
	if err := s.Send(&pb.StreamingOutputCallRequest{ResponseStatus: es}); err != nil && err != io.EOF {
		return err
	}
	s.CloseSend()
	_, err = s.Recv()
	return checkStatus("duplex", err, message)
}

func (c *client) customMetadata() error {
	md := metadata.Pairs(echoInitialKey, initialValue, echoTrailingKey, trailingValue)
	check := func(what string, header, trailer metadata.MD) error {
		if v := header.Get(echoInitialKey); len(v) != 1 || v[0] != initialValue {
			return fail("%s: initial metadata %q", what, v)
		}
		if v := trailer.Get(echoTrailingKey); len(v) != 1 || v[0] != trailingValue {
			return fail("%s: trailing metadata %q", what, v)
		}
		return nil
	}
	ctx, cancel := callCtx()
	defer cancel()
	ctx = metadata.NewOutgoingContext(ctx, md)
	var header, trailer metadata.MD
	resp, err := c.stub.UnaryCall(ctx, &pb.SimpleRequest{ResponseSize: 314159, Payload: zeros(271828)},
		grpc.Header(&header), grpc.Trailer(&trailer))
	if err != nil {
		return fail("unary: %v", err)
	}
	if err := checkBody(resp.GetPayload(), 314159); err != nil {
		return err
	}
	if err := check("unary", header, trailer); err != nil {
		return err
	}
	s, err := c.stub.FullDuplexCall(ctx)
	if err != nil {
		return err
	}
	if err := s.Send(&pb.StreamingOutputCallRequest{
		ResponseParameters: []*pb.ResponseParameters{{Size: 314159}},
		Payload:            zeros(271828)}); err != nil {
		return err
	}
	s.CloseSend()
	r, err := s.Recv()
	if err != nil {
		return fail("duplex: %v", err)
	}
	if err := checkBody(r.GetPayload(), 314159); err != nil {
		return err
	}
	if _, err := s.Recv(); err != io.EOF {
		return fail("duplex: want end of stream, got %v", err)
	}
	header, err = s.Header()
	if err != nil {
		return err
	}
	return check("duplex", header, s.Trailer())
}

// errorDetails is our own case (interop/src/details.rs): the server fails a UnaryCall
// carrying x-fail-with-details with a google.rpc.Status holding a BadRequest, an ErrorInfo
// and a RetryInfo, which grpc-go's status.Details decodes.
func (c *client) errorDetails() error {
	ctx, cancel := callCtx()
	defer cancel()
	ctx = metadata.AppendToOutgoingContext(ctx, "x-fail-with-details", "1")
	_, err := c.stub.UnaryCall(ctx, &pb.SimpleRequest{})
	if err == nil {
		return fail("UnaryCall succeeded, want it to fail with details")
	}
	st := status.Convert(err)
	const message = "invalid request (details attached)"
	if st.Code() != codes.InvalidArgument || st.Message() != message {
		return fail("status %v: %q, want InvalidArgument: %q", st.Code(), st.Message(), message)
	}
	var bad *errdetails.BadRequest
	var info *errdetails.ErrorInfo
	var retry *errdetails.RetryInfo
	for _, d := range st.Details() {
		switch d := d.(type) {
		case *errdetails.BadRequest:
			bad = d
		case *errdetails.ErrorInfo:
			info = d
		case *errdetails.RetryInfo:
			retry = d
		default:
			return fail("unexpected detail %T: %v", d, d)
		}
	}
	if len(st.Details()) != 3 || bad == nil || info == nil || retry == nil {
		return fail("details %v, want one BadRequest, ErrorInfo and RetryInfo", st.Details())
	}
	v := bad.GetFieldViolations()
	if len(v) != 2 || v[0].GetField() != "payload.body" || v[0].GetDescription() != "must not be empty" ||
		v[1].GetField() != "response_size" || v[1].GetDescription() != "must be positive" {
		return fail("BadRequest violations %v", v)
	}
	if info.GetReason() != "INTEROP_DETAILS" || info.GetDomain() != "interop.grpc.test" ||
		len(info.GetMetadata()) != 1 || info.GetMetadata()["case"] != "error_details" {
		return fail("ErrorInfo %v", info)
	}
	if d := retry.GetRetryDelay(); d.GetSeconds() != 1 || d.GetNanos() != 500000000 {
		return fail("RetryInfo delay %v, want 1.5s", d)
	}
	return nil
}

func main() {
	host := flag.String("server_host", "localhost", "server host")
	port := flag.Int("server_port", 0, "server port")
	testCase := flag.String("test_case", "large_unary", "case name, comma list or all")
	soak := flag.Int("soak_iterations", 10, "iterations of rpc_soak and channel_soak")
	useTLS := flag.Bool("use_tls", false, "connect over TLS")
	useTestCA := flag.Bool("use_test_ca", false, "over TLS, trust $GRPC_TEST_CA_FILE (if no --ca_file)")
	caFile := flag.String("ca_file", "", "over TLS, the CA certificates to trust (PEM)")
	override := flag.String("server_host_override", "", "over TLS, the name to check the server's certificate against")
	flag.Parse()
	if *port == 0 || flag.NArg() != 0 {
		fmt.Fprintln(os.Stderr, "usage: go-interop-client --server_host=H --server_port=P --test_case=NAME")
		os.Exit(2)
	}
	if *useTLS {
		opt, err := tlsOption(*caFile, *useTestCA, *override)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		security = opt
	}
	names := cases
	if *testCase != "all" {
		names = strings.Split(*testCase, ",")
	}
	known := map[string]bool{}
	for _, n := range append(cases, ownCases...) {
		known[n] = true
	}
	for _, n := range names {
		if !known[n] {
			fmt.Fprintf(os.Stderr, "unknown test case: %s\n", n)
			os.Exit(2)
		}
	}
	target := fmt.Sprintf("%s:%d", *host, *port)
	conn, err := dial(target)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	c := &client{target: target, soak: *soak, conn: conn, stub: pb.NewTestServiceClient(conn)}
	passed, failed := 0, 0
	for _, name := range names {
		err := c.run(name)
		var skip skipError
		switch {
		case err == nil:
			fmt.Printf("PASS %s\n", name)
			passed++
		case errors.As(err, &skip):
			fmt.Printf("SKIP %s: %s\n", name, skip.why)
		default:
			fmt.Printf("FAIL %s: %s\n", name, strings.ReplaceAll(err.Error(), "\n", `\n`))
			failed++
		}
	}
	fmt.Printf("%d passed, %d failed\n", passed, failed)
	if failed > 0 {
		os.Exit(1)
	}
}
