# Entry points. `make demo` runs a server and a client talking; `make test` runs every test.
# Both need only the Rust toolchain: protoc for the plugin tests comes from the
# protoc-bin-vendored crate unless PROTOC or a protoc on PATH says otherwise.

CARGO ?= cargo

.PHONY: demo test lint check-generated realworld ci interop

demo:
	$(CARGO) run -q -p examples --bin demo

test:
	$(CARGO) test --workspace --all-targets
	$(CARGO) test --workspace --doc

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --workspace --no-deps -q

# Golden files are up to date (needs Debian's protoc 3.21, which the golden headers record).
check-generated:
	./regenerate.sh --check

# Stubs for real-world protos (Debian grpc-proto, googleapis-common-protos, grpc-google-iam-v1).
realworld:
	bash testdata/realworld.sh

ci: lint test check-generated realworld

# The interop matrix against grpcio, grpc-go and grpc-js (installs them: Debian packages, PyPI, npm).
interop:
	bash interop/install-peers.sh
	bash interop/run-matrix.sh

# Benchmarks (benchmark/README.md). bench: our server alone; bench-compare: ours vs tonic vs a
# bare h2 server, side by side (about 30 minutes; needs h2load from Debian's nghttp2-client
# for the h2load rows, and protoc for the tonic crate); bench-smoke: a few seconds, for CI.
.PHONY: bench bench-compare bench-smoke

bench:
	bash benchmark/run.sh bench

bench-compare:
	bash benchmark/run.sh compare

bench-smoke:
	bash benchmark/run.sh smoke
