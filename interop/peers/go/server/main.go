// Command go-interop-server serves grpc.testing.TestService on grpc-go, the interop peer
// server.
//
//	go-interop-server --port=N     serves plaintext on 0.0.0.0:N until killed
//	go-interop-server --port=N --use_tls=true --cert_file=F --key_file=F
//	                               serves TLS with that certificate chain and key (PEM)
//
// expect_compressed is checked against the received message's compressed flag, which
// grpc-go does not hand to handlers: a stats.Handler sees every received message's wire
// length and uncompressed length (they differ exactly when the message was compressed, for
// the zero-filled payloads of the interop cases) and records that per call.
//
// Limitation: grpc-go 1.33 (Debian's) compresses responses only when the request was
// compressed, for the whole call; it cannot compress one response and not the next, so
// response_compressed / ResponseParameters.compressed are not honoured. The cases
// server_compressed_unary and server_compressed_streaming are covered against another
// peer (see PEER_LIMITATIONS in ../../../run-matrix.sh).
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	_ "google.golang.org/grpc/encoding/gzip" // registers the gzip decompressor
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/stats"
	"google.golang.org/grpc/status"

	"github.com/golang/protobuf/ptypes/duration"
	"google.golang.org/genproto/googleapis/rpc/errdetails"

	pb "interop.local/testpb"
)

const (
	echoInitialKey  = "x-grpc-test-echo-initial"
	echoTrailingKey = "x-grpc-test-echo-trailing-bin"
)

// recvLog records, per call, whether each received message was compressed.
type recvLog struct {
	mu         sync.Mutex
	compressed []bool
}

type recvLogKey struct{}

func (l *recvLog) next() (bool, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.compressed) == 0 {
		return false, false
	}
	c := l.compressed[0]
	l.compressed = l.compressed[1:]
	return c, true
}

// flagRecorder is the stats.Handler that fills each call's recvLog.
type flagRecorder struct{}

func (flagRecorder) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context {
	return context.WithValue(ctx, recvLogKey{}, &recvLog{})
}

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

// checkCompressed fails with INVALID_ARGUMENT when the message just received was not
// compressed as expect says.
func checkCompressed(ctx context.Context, expect *pb.BoolValue) error {
	if expect == nil {
		return nil
	}
	l, ok := ctx.Value(recvLogKey{}).(*recvLog)
	if !ok {
		return status.Error(codes.Internal, "no record of received messages")
	}
	got, ok := l.next()
	if !ok {
		return status.Error(codes.Internal, "no record of the received message")
	}
	if got != expect.GetValue() {
		return status.Errorf(codes.InvalidArgument, "expected compressed=%v, message compressed=%v",
			expect.GetValue(), got)
	}
	return nil
}

// dropRecord forgets the record of a message whose request did not ask for a check.
func dropRecord(ctx context.Context) {
	if l, ok := ctx.Value(recvLogKey{}).(*recvLog); ok {
		l.next()
	}
}

// echoMetadata sends the echo-initial key as initial metadata now and the
// echo-trailing-bin key as trailing metadata at the end of the call.
func echoMetadata(ctx context.Context, setHeader, setTrailer func(metadata.MD) error) error {
	md, _ := metadata.FromIncomingContext(ctx)
	if v := md.Get(echoInitialKey); len(v) > 0 {
		if err := setHeader(metadata.MD{echoInitialKey: v}); err != nil {
			return err
		}
	}
	if v := md.Get(echoTrailingKey); len(v) > 0 {
		if err := setTrailer(metadata.MD{echoTrailingKey: v}); err != nil {
			return err
		}
	}
	return nil
}

func echoStatus(s *pb.EchoStatus) error {
	if s == nil || s.GetCode() == 0 {
		return nil
	}
	return status.Error(codes.Code(s.GetCode()), s.GetMessage())
}

func payload(t pb.PayloadType, size int32) (*pb.Payload, error) {
	if t != pb.PayloadType_COMPRESSABLE {
		return nil, status.Error(codes.InvalidArgument, "unsupported response_type")
	}
	if size < 0 {
		return nil, status.Error(codes.InvalidArgument, "negative response size")
	}
	return &pb.Payload{Type: t, Body: make([]byte, size)}, nil
}

type testServer struct {
	pb.UnimplementedTestServiceServer
}

// failWithDetails applies our error-details convention (interop/src/details.rs): a call
// carrying x-fail-with-details fails with INVALID_ARGUMENT and a google.rpc.Status holding a
// BadRequest, an ErrorInfo and a RetryInfo (status.WithDetails, sent as
// grpc-status-details-bin).
func failWithDetails(ctx context.Context) error {
	md, _ := metadata.FromIncomingContext(ctx)
	if len(md.Get("x-fail-with-details")) == 0 {
		return nil
	}
	st, err := status.New(codes.InvalidArgument, "invalid request (details attached)").WithDetails(
		&errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{
			{Field: "payload.body", Description: "must not be empty"},
			{Field: "response_size", Description: "must be positive"},
		}},
		&errdetails.ErrorInfo{Reason: "INTEROP_DETAILS", Domain: "interop.grpc.test",
			Metadata: map[string]string{"case": "error_details"}},
		&errdetails.RetryInfo{RetryDelay: &duration.Duration{Seconds: 1, Nanos: 500000000}},
	)
	if err != nil {
		return status.Errorf(codes.Internal, "cannot attach the details: %v", err)
	}
	return st.Err()
}

func unaryEcho(ctx context.Context) error {
	return echoMetadata(ctx,
		func(md metadata.MD) error { return grpc.SendHeader(ctx, md) },
		func(md metadata.MD) error { return grpc.SetTrailer(ctx, md) })
}

func (testServer) EmptyCall(ctx context.Context, _ *pb.Empty) (*pb.Empty, error) {
	if err := unaryEcho(ctx); err != nil {
		return nil, err
	}
	return &pb.Empty{}, nil
}

func (testServer) UnaryCall(ctx context.Context, req *pb.SimpleRequest) (*pb.SimpleResponse, error) {
	if err := failWithDetails(ctx); err != nil {
		return nil, err
	}
	if err := unaryEcho(ctx); err != nil {
		return nil, err
	}
	if err := checkCompressed(ctx, req.GetExpectCompressed()); err != nil {
		return nil, err
	}
	if err := echoStatus(req.GetResponseStatus()); err != nil {
		return nil, err
	}
	p, err := payload(req.GetResponseType(), req.GetResponseSize())
	if err != nil {
		return nil, err
	}
	return &pb.SimpleResponse{Payload: p}, nil
}

func (testServer) CacheableUnaryCall(ctx context.Context, _ *pb.SimpleRequest) (*pb.SimpleResponse, error) {
	if err := unaryEcho(ctx); err != nil {
		return nil, err
	}
	now := fmt.Sprint(time.Now().UnixNano())
	return &pb.SimpleResponse{Payload: &pb.Payload{Body: []byte(now)}}, nil
}

type sender interface {
	Send(*pb.StreamingOutputCallResponse) error
	Context() context.Context
}

func respond(s sender, req *pb.StreamingOutputCallRequest) error {
	for _, p := range req.GetResponseParameters() {
		if us := p.GetIntervalUs(); us > 0 {
			select {
			case <-time.After(time.Duration(us) * time.Microsecond):
			case <-s.Context().Done():
				return status.FromContextError(s.Context().Err()).Err()
			}
		}
		body, err := payload(req.GetResponseType(), p.GetSize())
		if err != nil {
			return err
		}
		if err := s.Send(&pb.StreamingOutputCallResponse{Payload: body}); err != nil {
			return err
		}
	}
	return nil
}

func streamEcho(s grpc.ServerStream) error {
	return echoMetadata(s.Context(), s.SendHeader, func(md metadata.MD) error {
		s.SetTrailer(md)
		return nil
	})
}

func (testServer) StreamingOutputCall(req *pb.StreamingOutputCallRequest, s pb.TestService_StreamingOutputCallServer) error {
	if err := streamEcho(s); err != nil {
		return err
	}
	if err := echoStatus(req.GetResponseStatus()); err != nil {
		return err
	}
	return respond(s, req)
}

func (testServer) StreamingInputCall(s pb.TestService_StreamingInputCallServer) error {
	if err := streamEcho(s); err != nil {
		return err
	}
	var total int32
	for {
		req, err := s.Recv()
		if err == io.EOF {
			return s.SendAndClose(&pb.StreamingInputCallResponse{AggregatedPayloadSize: total})
		}
		if err != nil {
			return err
		}
		if req.GetExpectCompressed() != nil {
			if err := checkCompressed(s.Context(), req.GetExpectCompressed()); err != nil {
				return err
			}
		} else {
			dropRecord(s.Context())
		}
		total += int32(len(req.GetPayload().GetBody()))
	}
}

func (testServer) FullDuplexCall(s pb.TestService_FullDuplexCallServer) error {
	if err := streamEcho(s); err != nil {
		return err
	}
	for {
		req, err := s.Recv()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if err := echoStatus(req.GetResponseStatus()); err != nil {
			return err
		}
		if err := respond(s, req); err != nil {
			return err
		}
	}
}

func (testServer) HalfDuplexCall(s pb.TestService_HalfDuplexCallServer) error {
	if err := streamEcho(s); err != nil {
		return err
	}
	var reqs []*pb.StreamingOutputCallRequest
	for {
		req, err := s.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		reqs = append(reqs, req)
	}
	for _, req := range reqs {
		if err := echoStatus(req.GetResponseStatus()); err != nil {
			return err
		}
		if err := respond(s, req); err != nil {
			return err
		}
	}
	return nil
}

func main() {
	port := flag.Int("port", 0, "port to listen on (0.0.0.0)")
	useTLS := flag.Bool("use_tls", false, "serve TLS")
	certFile := flag.String("cert_file", "", "with --use_tls, the certificate chain (PEM)")
	keyFile := flag.String("key_file", "", "with --use_tls, the private key (PEM)")
	flag.Parse()
	if *port == 0 || flag.NArg() != 0 {
		log.Fatal("usage: go-interop-server --port=N [--use_tls=true --cert_file=F --key_file=F]")
	}
	opts := []grpc.ServerOption{grpc.StatsHandler(flagRecorder{})}
	if *useTLS {
		if *certFile == "" || *keyFile == "" {
			log.Fatal("--use_tls=true needs --cert_file and --key_file")
		}
		creds, err := credentials.NewServerTLSFromFile(*certFile, *keyFile)
		if err != nil {
			log.Fatal(err)
		}
		opts = append(opts, grpc.Creds(creds))
	}
	lis, err := net.Listen("tcp", fmt.Sprintf("0.0.0.0:%d", *port))
	if err != nil {
		log.Fatal(err)
	}
	s := grpc.NewServer(opts...)
	pb.RegisterTestServiceServer(s, testServer{})
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-sig
		s.Stop()
	}()
	transport := "plaintext"
	if *useTLS {
		transport = "tls"
	}
	fmt.Fprintf(os.Stderr, "go interop server listening on %d (%s)\n", *port, transport)
	if err := s.Serve(lis); err != nil {
		log.Fatal(err)
	}
}
