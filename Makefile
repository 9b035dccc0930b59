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
	@# The generated stubs (not rust-protobuf's messages) are clean under clippy::pedantic.
	@touch testdata/compile-test/src/lib.rs; \
	out=$$($(CARGO) clippy -q -p compile-test --no-deps --all-targets -- -W clippy::pedantic 2>&1); \
	if echo "$$out" | grep -E -- '--> .*_grpc\.rs'; then \
		echo "lint: the generated stubs above are not clean under clippy::pedantic"; exit 1; fi

# Golden files are up to date (needs Debian's protoc 3.21, which the golden headers record).
check-generated:
	./regenerate.sh --check

# Stubs for real-world protos, through grpc-build and the plugin: Debian grpc-proto,
# googleapis-common-protos and grpc-google-iam-v1 (PyPI), googleapis (npm google-proto-files:
# five APIs by default, all with REALWORLD_FULL=1), envoy (npm @grpc/grpc-js-xds), etcd and
# containerd (crates.io crates that ship their protos).
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
.PHONY: bench bench-compare bench-smoke bench-otel bench-alloc bench-fanout

bench:
	bash benchmark/run.sh bench

bench-compare:
	bash benchmark/run.sh compare

bench-smoke:
	bash benchmark/run.sh smoke

# The OpenTelemetry metrics recorder's cost per unary call (client and server in one
# thread): no stats, a no-op stats handler, the recorder without and with an SDK reader.
bench-otel:
	$(CARGO) run --release -p benchmark --features otel --bin otel-cost

# Heap allocations and bytes per unary call, server and client apart (1 B and 1 MiB).
bench-alloc:
	$(CARGO) run --release -p benchmark --bin alloc-count

# One 64 KiB message to 100 server streams: encoded per stream, or once (PreparedMessage).
bench-fanout:
	$(CARGO) run --release -p benchmark --bin fanout

# Fuzz targets for the parsers of network bytes (fuzz/README.md): each target in turn for
# FUZZ_SECONDS, with nightly and cargo-fuzz (`cargo install cargo-fuzz`), niced. Not part of
# test or ci. A run grows fuzz/work/<target>; the committed seeds in fuzz/corpus stay as
# they are; a crash lands in fuzz/artifacts/<target>/ and stops the run.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?= frame_decoder trailers metadata grpc_timeout service_config grpc_message compression error_details paced
.PHONY: fuzz

fuzz:
	cd fuzz && for t in $(FUZZ_TARGETS); do \
		mkdir -p work/$$t && \
		dict=$$(test -f dicts/$$t.dict && echo -dict=dicts/$$t.dict); \
		nice -n 19 $(CARGO) +nightly fuzz run $$t work/$$t corpus/$$t -- \
			-max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 $$dict || exit 1; \
	done
