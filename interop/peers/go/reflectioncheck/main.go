// Command go-reflection-check checks a server's reflection and health services with
// grpc-go's own clients for them (grpc-go 1.33 from Debian):
//
//	go-reflection-check --server_host=H --server_port=P [--check=NAME|a,b,c|all]
//
// Checks, each printed as `PASS name` or `FAIL name: why`, then `N passed, M failed` (exit
// status non-zero on any failure):
//
//   - reflection_v1alpha: on one ServerReflectionInfo stream of the
//     reflection/grpc_reflection_v1alpha client stubs: list_services (must include
//     grpc.testing.TestService, grpc.health.v1.Health and both reflection services);
//     file_containing_symbol for grpc.testing.TestService, one of its methods, and each
//     other listed service; file_by_filename for the service's file (the same bytes again)
//     and for every dependency not sent yet; an unknown symbol answers NOT_FOUND and the
//     stream goes on. The FileDescriptorProtos received are decoded (descriptorpb) and built
//     into a protoregistry.Files by protodesc.NewFiles, which resolves every import and
//     every field's and method's type: every method of grpc.testing.TestService, Health and
//     the reflection services is then checked for its request and response types and
//     streaming.
//   - health: grpc-go's health/grpc_health_v1 client: Check("") and
//     Check("grpc.testing.TestService") SERVING, Check("no.such.Service") NOT_FOUND,
//     Watch first sends SERVING for grpc.testing.TestService and SERVICE_UNKNOWN for
//     no.such.Service.
//
// grpc-go 1.33 has no grpc.reflection.v1 stubs (they came in 1.57): v1 is checked by the
// grpcio peer (interop/peers/python/health_reflection_check.py).
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	protov1 "github.com/golang/protobuf/proto"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	rpb "google.golang.org/grpc/reflection/grpc_reflection_v1alpha"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
)

const (
	rpcTimeout        = 10 * time.Second
	testService       = "grpc.testing.TestService"
	healthService     = "grpc.health.v1.Health"
	reflectionV1      = "grpc.reflection.v1.ServerReflection"
	reflectionV1alpha = "grpc.reflection.v1alpha.ServerReflection"
	unknownService    = "no.such.Service"
)

type method struct {
	in, out          string
	cStream, sStream bool
}

// expected methods, from proto/grpc/testing/test.proto and the standard health and
// reflection protos; optional ones are checked when the server declares them.
var expected = map[string]map[string]method{
	testService: {
		"EmptyCall":           {"grpc.testing.Empty", "grpc.testing.Empty", false, false},
		"UnaryCall":           {"grpc.testing.SimpleRequest", "grpc.testing.SimpleResponse", false, false},
		"CacheableUnaryCall":  {"grpc.testing.SimpleRequest", "grpc.testing.SimpleResponse", false, false},
		"StreamingOutputCall": {"grpc.testing.StreamingOutputCallRequest", "grpc.testing.StreamingOutputCallResponse", false, true},
		"StreamingInputCall":  {"grpc.testing.StreamingInputCallRequest", "grpc.testing.StreamingInputCallResponse", true, false},
		"FullDuplexCall":      {"grpc.testing.StreamingOutputCallRequest", "grpc.testing.StreamingOutputCallResponse", true, true},
		"HalfDuplexCall":      {"grpc.testing.StreamingOutputCallRequest", "grpc.testing.StreamingOutputCallResponse", true, true},
		"UnimplementedCall":   {"grpc.testing.Empty", "grpc.testing.Empty", false, false},
	},
	healthService: {
		"Check": {"grpc.health.v1.HealthCheckRequest", "grpc.health.v1.HealthCheckResponse", false, false},
		"Watch": {"grpc.health.v1.HealthCheckRequest", "grpc.health.v1.HealthCheckResponse", false, true},
	},
	reflectionV1alpha: {
		"ServerReflectionInfo": {"grpc.reflection.v1alpha.ServerReflectionRequest", "grpc.reflection.v1alpha.ServerReflectionResponse", true, true},
	},
	reflectionV1: {
		"ServerReflectionInfo": {"grpc.reflection.v1.ServerReflectionRequest", "grpc.reflection.v1.ServerReflectionResponse", true, true},
	},
}

var optional = map[string]map[string]method{
	healthService: {
		"List": {"grpc.health.v1.HealthListRequest", "grpc.health.v1.HealthListResponse", false, false},
	},
}

var requiredServices = []string{testService, healthService, reflectionV1, reflectionV1alpha}

// Fields whose types must resolve to these (the dependencies are all there).
var expectedFields = map[string]string{
	"grpc.testing.SimpleRequest.response_type":                    "grpc.testing.PayloadType",
	"grpc.testing.SimpleRequest.payload":                          "grpc.testing.Payload",
	"grpc.testing.SimpleRequest.response_status":                  "grpc.testing.EchoStatus",
	"grpc.testing.SimpleResponse.payload":                         "grpc.testing.Payload",
	"grpc.testing.StreamingOutputCallRequest.response_parameters": "grpc.testing.ResponseParameters",
}

// reflector asks questions on one ServerReflectionInfo stream and keeps every file sent.
type reflector struct {
	stream rpb.ServerReflection_ServerReflectionInfoClient
	files  map[string][]byte // file name -> the serialized FileDescriptorProto sent
	protos map[string]*descriptorpb.FileDescriptorProto
	order  []string
}

func (r *reflector) ask(req *rpb.ServerReflectionRequest) (*rpb.ServerReflectionResponse, error) {
	if err := r.stream.Send(req); err != nil {
		if err == io.EOF { // the stream ended: its status says why
			_, err = r.stream.Recv()
		}
		return nil, fmt.Errorf("send %v: %v", req, err)
	}
	resp, err := r.stream.Recv()
	if err != nil {
		return nil, fmt.Errorf("answer to %v: %v", req, err)
	}
	// grpc-go 1.33's reflection stubs are golang/protobuf APIv1 messages.
	if !protov1.Equal(resp.GetOriginalRequest(), req) {
		return nil, fmt.Errorf("original_request is %v, want %v", resp.GetOriginalRequest(), req)
	}
	return resp, nil
}

// files asks req and records the FileDescriptorProtos of the answer; returns their names.
func (r *reflector) askFiles(req *rpb.ServerReflectionRequest) ([]string, error) {
	resp, err := r.ask(req)
	if err != nil {
		return nil, err
	}
	if e := resp.GetErrorResponse(); e != nil {
		return nil, fmt.Errorf("%v answered error %v: %s", req.GetMessageRequest(), codes.Code(e.ErrorCode), e.ErrorMessage)
	}
	fdr := resp.GetFileDescriptorResponse()
	if fdr == nil || len(fdr.FileDescriptorProto) == 0 {
		return nil, fmt.Errorf("%v answered no file: %v", req.GetMessageRequest(), resp.GetMessageResponse())
	}
	var names []string
	for _, raw := range fdr.FileDescriptorProto {
		fd := &descriptorpb.FileDescriptorProto{}
		if err := proto.Unmarshal(raw, fd); err != nil {
			return nil, fmt.Errorf("%v: a FileDescriptorProto does not decode: %v", req.GetMessageRequest(), err)
		}
		name := fd.GetName()
		if name == "" {
			return nil, fmt.Errorf("%v: a FileDescriptorProto without a name", req.GetMessageRequest())
		}
		if old, ok := r.files[name]; ok && string(old) != string(raw) {
			return nil, fmt.Errorf("%s was sent twice, differently", name)
		}
		if _, ok := r.files[name]; !ok {
			r.order = append(r.order, name)
		}
		r.files[name] = raw
		r.protos[name] = fd
		names = append(names, name)
	}
	return names, nil
}

func symbolReq(s string) *rpb.ServerReflectionRequest {
	return &rpb.ServerReflectionRequest{MessageRequest: &rpb.ServerReflectionRequest_FileContainingSymbol{FileContainingSymbol: s}}
}

func fileReq(name string) *rpb.ServerReflectionRequest {
	return &rpb.ServerReflectionRequest{MessageRequest: &rpb.ServerReflectionRequest_FileByFilename{FileByFilename: name}}
}

func declares(fd *descriptorpb.FileDescriptorProto, service string) bool {
	for _, s := range fd.GetService() {
		full := s.GetName()
		if fd.GetPackage() != "" {
			full = fd.GetPackage() + "." + full
		}
		if full == service {
			return true
		}
	}
	return false
}

func reflectionV1alphaCheck(conn *grpc.ClientConn) error {
	ctx, cancel := context.WithTimeout(context.Background(), 3*rpcTimeout)
	defer cancel()
	stream, err := rpb.NewServerReflectionClient(conn).ServerReflectionInfo(ctx)
	if err != nil {
		return fmt.Errorf("ServerReflectionInfo: %v", err)
	}
	r := &reflector{stream: stream, files: map[string][]byte{}, protos: map[string]*descriptorpb.FileDescriptorProto{}}

	// The services.
	resp, err := r.ask(&rpb.ServerReflectionRequest{MessageRequest: &rpb.ServerReflectionRequest_ListServices{ListServices: "*"}})
	if err != nil {
		return err
	}
	ls := resp.GetListServicesResponse()
	if ls == nil {
		return fmt.Errorf("list_services answered %v", resp.GetMessageResponse())
	}
	listed := map[string]bool{}
	var names []string
	for _, s := range ls.Service {
		listed[s.Name] = true
		names = append(names, s.Name)
	}
	sort.Strings(names)
	for _, s := range requiredServices {
		if !listed[s] {
			return fmt.Errorf("list_services lacks %s (got %v)", s, names)
		}
	}

	// The file declaring TestService, with its dependencies.
	got, err := r.askFiles(symbolReq(testService))
	if err != nil {
		return err
	}
	if !declares(r.protos[got[0]], testService) {
		return fmt.Errorf("the first file answering file_containing_symbol(%s), %s, does not declare it", testService, got[0])
	}
	serviceFile := got[0]
	// A method's symbol: the same file (maybe without the dependencies already sent).
	got, err = r.askFiles(symbolReq(testService + ".UnaryCall"))
	if err != nil {
		return err
	}
	if got[0] != serviceFile {
		return fmt.Errorf("file_containing_symbol(%s.UnaryCall) is %s, want %s", testService, got[0], serviceFile)
	}
	// The file by its name: the same bytes.
	before := r.files[serviceFile]
	if got, err = r.askFiles(fileReq(serviceFile)); err != nil {
		return err
	}
	if got[0] != serviceFile {
		return fmt.Errorf("file_by_filename(%s) answered %s first", serviceFile, got[0])
	}
	if string(before) != string(r.files[serviceFile]) {
		return fmt.Errorf("file_by_filename(%s) differs from file_containing_symbol's", serviceFile)
	}
	// An unknown symbol: NOT_FOUND, and the stream goes on.
	resp, err = r.ask(symbolReq("no.such.Symbol"))
	if err != nil {
		return err
	}
	if e := resp.GetErrorResponse(); e == nil || codes.Code(e.ErrorCode) != codes.NotFound {
		return fmt.Errorf("file_containing_symbol(no.such.Symbol) answered %v, want error NOT_FOUND", resp.GetMessageResponse())
	}
	// The other services' files.
	for _, s := range requiredServices[1:] {
		got, err := r.askFiles(symbolReq(s))
		if err != nil {
			return err
		}
		if !declares(r.protos[got[0]], s) {
			return fmt.Errorf("the first file answering file_containing_symbol(%s), %s, does not declare it", s, got[0])
		}
	}
	// Every dependency: sent already, or asked for by name (a server may leave out what
	// it sent before on the stream, but then it was recorded here).
	for i := 0; i < len(r.order); i++ {
		for _, dep := range r.protos[r.order[i]].GetDependency() {
			if _, ok := r.files[dep]; !ok {
				if _, err := r.askFiles(fileReq(dep)); err != nil {
					return fmt.Errorf("dependency %s of %s: %v", dep, r.order[i], err)
				}
			}
		}
	}
	if err := stream.CloseSend(); err != nil {
		return fmt.Errorf("CloseSend: %v", err)
	}
	if _, err := stream.Recv(); err != io.EOF {
		return fmt.Errorf("after CloseSend the stream ended with %v, want a clean end", err)
	}

	// Everything received, built into one registry: every import and type must resolve.
	set := &descriptorpb.FileDescriptorSet{}
	for _, name := range r.order {
		set.File = append(set.File, r.protos[name])
	}
	files, err := protodesc.NewFiles(set)
	if err != nil {
		return fmt.Errorf("protodesc.NewFiles over the %d files received (%s): %v", len(r.order), strings.Join(r.order, ", "), err)
	}
	fmt.Fprintf(os.Stderr, "reflection_v1alpha: %d services listed, %d files received: %s\n", len(names), len(r.order), strings.Join(r.order, ", "))
	for service, methods := range expected {
		if err := checkService(files, service, methods); err != nil {
			return err
		}
	}
	for field, want := range expectedFields {
		d, err := files.FindDescriptorByName(protoreflect.FullName(field))
		if err != nil {
			return fmt.Errorf("%s: %v", field, err)
		}
		fd, ok := d.(protoreflect.FieldDescriptor)
		if !ok {
			return fmt.Errorf("%s is not a field", field)
		}
		var got protoreflect.FullName
		if fd.Message() != nil {
			got = fd.Message().FullName()
		} else if fd.Enum() != nil {
			got = fd.Enum().FullName()
		}
		if string(got) != want {
			return fmt.Errorf("%s has type %q, want %s", field, got, want)
		}
	}
	return nil
}

func checkService(files *protoregistry.Files, service string, methods map[string]method) error {
	d, err := files.FindDescriptorByName(protoreflect.FullName(service))
	if err != nil {
		return fmt.Errorf("service %s is not in the registry: %v", service, err)
	}
	sd, ok := d.(protoreflect.ServiceDescriptor)
	if !ok {
		return fmt.Errorf("%s is not a service", service)
	}
	want := map[string]method{}
	for k, v := range methods {
		want[k] = v
	}
	ms := sd.Methods()
	var have []string
	for i := 0; i < ms.Len(); i++ {
		name := string(ms.Get(i).Name())
		have = append(have, name)
		if m, ok := optional[service][name]; ok {
			want[name] = m
		}
	}
	sort.Strings(have)
	if len(have) != len(want) {
		return fmt.Errorf("%s has methods %v, want %d of them", service, have, len(want))
	}
	for name, m := range want {
		md := ms.ByName(protoreflect.Name(name))
		if md == nil {
			return fmt.Errorf("%s has no method %s (has %v)", service, name, have)
		}
		g := method{string(md.Input().FullName()), string(md.Output().FullName()), md.IsStreamingClient(), md.IsStreamingServer()}
		if g != m {
			return fmt.Errorf("%s.%s is %+v, want %+v", service, name, g, m)
		}
	}
	return nil
}

func healthCheck(conn *grpc.ClientConn) error {
	stub := healthpb.NewHealthClient(conn)
	for _, s := range []string{"", testService} {
		ctx, cancel := context.WithTimeout(context.Background(), rpcTimeout)
		resp, err := stub.Check(ctx, &healthpb.HealthCheckRequest{Service: s})
		cancel()
		if err != nil {
			return fmt.Errorf("Check(%q): %v", s, err)
		}
		if resp.Status != healthpb.HealthCheckResponse_SERVING {
			return fmt.Errorf("Check(%q) answered %v, want SERVING", s, resp.Status)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), rpcTimeout)
	resp, err := stub.Check(ctx, &healthpb.HealthCheckRequest{Service: unknownService})
	cancel()
	if status.Code(err) != codes.NotFound {
		return fmt.Errorf("Check(%q) answered %v, %v; want NOT_FOUND", unknownService, resp, err)
	}
	for s, want := range map[string]healthpb.HealthCheckResponse_ServingStatus{
		testService:    healthpb.HealthCheckResponse_SERVING,
		unknownService: healthpb.HealthCheckResponse_SERVICE_UNKNOWN,
	} {
		ctx, cancel := context.WithTimeout(context.Background(), rpcTimeout)
		stream, err := stub.Watch(ctx, &healthpb.HealthCheckRequest{Service: s})
		if err != nil {
			cancel()
			return fmt.Errorf("Watch(%q): %v", s, err)
		}
		resp, err := stream.Recv()
		cancel()
		if err != nil {
			return fmt.Errorf("Watch(%q) sent no message: %v", s, err)
		}
		if resp.Status != want {
			return fmt.Errorf("Watch(%q) first sent %v, want %v", s, resp.Status, want)
		}
	}
	return nil
}

var checks = []struct {
	name string
	run  func(*grpc.ClientConn) error
}{
	{"reflection_v1alpha", reflectionV1alphaCheck},
	{"health", healthCheck},
}

func main() {
	host := flag.String("server_host", "127.0.0.1", "server host")
	port := flag.Int("server_port", 0, "server port")
	which := flag.String("check", "all", "checks to run, comma-separated, or all")
	flag.Parse()
	if *port == 0 {
		fmt.Fprintln(os.Stderr, "--server_port is required")
		os.Exit(2)
	}
	want := map[string]bool{}
	if *which != "all" {
		for _, n := range strings.Split(*which, ",") {
			found := false
			for _, c := range checks {
				found = found || c.name == n
			}
			if !found {
				fmt.Fprintf(os.Stderr, "unknown check %s\n", n)
				os.Exit(2)
			}
			want[n] = true
		}
	}
	conn, err := grpc.Dial(fmt.Sprintf("%s:%d", *host, *port), grpc.WithInsecure())
	if err != nil {
		fmt.Fprintln(os.Stderr, "dial:", err)
		os.Exit(1)
	}
	defer conn.Close()
	passed, failed := 0, 0
	for _, c := range checks {
		if *which != "all" && !want[c.name] {
			continue
		}
		if err := c.run(conn); err != nil {
			fmt.Printf("FAIL %s: %s\n", c.name, strings.ReplaceAll(err.Error(), "\n", " "))
			failed++
		} else {
			fmt.Printf("PASS %s\n", c.name)
			passed++
		}
	}
	fmt.Printf("%d passed, %d failed\n", passed, failed)
	if failed > 0 {
		os.Exit(1)
	}
}
