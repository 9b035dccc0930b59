#!/usr/bin/env bash
# Real-world check: generates stubs and messages for every service-bearing .proto of
#   - Debian's grpc-proto (/usr/share/grpc-proto, or $GRPC_PROTO_DIR),
#   - PyPI's googleapis-common-protos and grpc-google-iam-v1 (their wheels ship the .proto files),
# twice: through protoc + protoc-gen-rs + protoc-gen-rust-grpc, and through grpc-build's pure-Rust
# parser; then checks that all of it compiles, in a throwaway crate under target/realworld that
# uses the workspace's target directory.
#
# A proto that rust-protobuf cannot handle must make our tools fail with a clear message; such
# files are listed at the end as known upstream limits (they do not fail the script). Anything
# else failing (a crash, generated code that does not compile) fails the script.
#
#   testdata/realworld.sh            (needs protoc: $PROTOC or on PATH; pip for the PyPI packages)
set -euo pipefail

cd "$(dirname "$0")/.."
root=$PWD
work=$root/target/realworld
grpc_proto=${GRPC_PROTO_DIR:-/usr/share/grpc-proto}

protoc=${PROTOC:-$(command -v protoc || true)}
if [[ -z "$protoc" || ! -x "$protoc" ]]; then
  echo "realworld.sh: protoc not found: set PROTOC or put protoc on PATH" >&2
  exit 1
fi

rm -rf "$work"
mkdir -p "$work/protoc" "$work/crate/src"

echo "== fetching googleapis-common-protos and grpc-google-iam-v1 from PyPI"
python3 -m pip install --quiet --disable-pip-version-check --no-deps --target "$work/pypi" \
  googleapis-common-protos grpc-google-iam-v1 2>&1 | grep -v "WARNING: Running pip as" || true

includes=("$grpc_proto" "$work/pypi")

echo "== building the plugins"
cargo build --quiet -p protoc-gen-rust-grpc -p protoc-gen-rs
target_dir=$(cargo metadata --format-version 1 --no-deps |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
bin=$target_dir/debug

# "<include dir>|<proto path relative to it>|<set name>" for every file with a service.
sets=$(
  for inc in "${includes[@]}"; do
    (cd "$inc" && grep -rlE '^\s*service\s' --include='*.proto' . | sed 's|^\./||' | LC_ALL=C sort |
      while read -r f; do
        set_name=$(echo "${f%.proto}" | tr -c 'a-zA-Z0-9\n' '_')
        echo "$inc|$f|$set_name"
      done)
  done
)
echo "$sets" > "$work/sets.txt"
echo "   $(wc -l < "$work/sets.txt") service-bearing files"

# The file and everything it imports (transitively), except what the protobuf crate provides:
# protoc-gen-rs only generates the files it is asked for.
closure() {
  python3 - "$1" "${includes[@]}" <<'EOF'
import re, sys, os
start, incs = sys.argv[1], sys.argv[2:]
bundled = {"google/protobuf/" + n for n in ["any.proto", "api.proto", "duration.proto",
    "empty.proto", "field_mask.proto", "source_context.proto", "struct.proto",
    "timestamp.proto", "type.proto", "wrappers.proto", "descriptor.proto"]}
seen, todo = [], [start]
while todo:
    f = todo.pop()
    if f in seen or f in bundled:
        continue
    seen.append(f)
    for inc in incs:
        p = os.path.join(inc, f)
        if os.path.isfile(p):
            todo += re.findall(r'^\s*import\s+(?:public\s+|weak\s+)?"([^"]+)"\s*;', open(p).read(), re.M)
            break
print(" ".join(sorted(seen)))
EOF
}

limits=()
echo "== protoc + protoc-gen-rs + protoc-gen-rust-grpc"
protoc_ok=()
while IFS='|' read -r inc f set_name; do
  out=$work/protoc/$set_name
  mkdir -p "$out"
  # shellcheck disable=SC2046
  if err=$("$protoc" \
      --plugin=protoc-gen-rust-grpc="$bin/protoc-gen-rust-grpc" \
      --plugin=protoc-gen-rs="$bin/protoc-gen-rs" \
      "${includes[@]/#/-I}" \
      --rust-grpc_out="$out" --rs_out="$out" --rs_opt=gen_mod_rs=false \
      $(closure "$f") 2>&1); then
    {
      for rs in $(cd "$out" && ls -- *.rs | LC_ALL=C sort); do
        m=${rs%.rs}
        [[ $m == *__* ]] && echo "#[allow(non_snake_case)]"
        echo "#[path = \"$out/$rs\"] pub mod $m;"
      done
    } > "$work/protoc/$set_name.mods.rs"
    protoc_ok+=("$set_name")
  else
    limits+=("protoc path: $f: $(echo "$err" | tr '\n' ' ')")
  fi
done < "$work/sets.txt"
echo "   ${#protoc_ok[@]} generated"

echo "== throwaway crate: grpc-build (pure parser) in build.rs, everything compiled together"
cat > "$work/crate/Cargo.toml" <<EOF
[package]
name = "realworld-check"
version = "0.0.0"
edition = "2024"
publish = false

[dependencies]
grpc-runtime = { path = "$root/runtime" }
protobuf = { version = "=3.7.2", features = ["bytes"] }

[build-dependencies]
grpc-build = { path = "$root/build-support" }

[workspace]
EOF
cp "$root/Cargo.lock" "$work/crate/Cargo.lock"
cat > "$work/crate/build.rs" <<EOF
use std::fmt::Write;

fn main() {
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR").unwrap());
    let includes = ["$grpc_proto", "$work/pypi"];
    let mut sets = String::new();
    let mut failures = String::new();
    for line in include_str!("$work/sets.txt").lines() {
        let mut parts = line.split('|');
        let (inc, file, name) = (parts.next().unwrap(), parts.next().unwrap(), parts.next().unwrap());
        let dir = out.join(name);
        let result = grpc_build::configure()
            .emit_rerun_if_changed(false)
            .out_dir(&dir)
            .compile(&[format!("{inc}/{file}")], &includes);
        match result {
            Ok(()) => writeln!(
                sets,
                "pub mod {name} {{ include!({:?}); }}",
                dir.join("_protos.rs").to_str().unwrap()
            )
            .unwrap(),
            Err(e) => writeln!(failures, "grpc-build path: {file}: {e}").unwrap(),
        }
    }
    std::fs::write(out.join("sets.rs"), sets).unwrap();
    std::fs::write("$work/pure-failures.txt", failures).unwrap();
}
EOF
{
  echo "//! Generated by testdata/realworld.sh."
  echo "#![allow(non_snake_case)]"
  echo "/// Through protoc and the plugins."
  echo "pub mod protoc_path {"
  for s in "${protoc_ok[@]}"; do
    echo "    pub mod $s { include!(\"$work/protoc/$s.mods.rs\"); }"
  done
  echo "}"
  echo "/// Through grpc-build's pure-Rust parser."
  echo "pub mod pure_path { include!(concat!(env!(\"OUT_DIR\"), \"/sets.rs\")); }"
} > "$work/crate/src/lib.rs"

log=$work/cargo-build.log
if ! (cd "$work/crate" && CARGO_TARGET_DIR=$target_dir cargo build --quiet 2>"$log"); then
  grep -E '^(error|warning: unused)' -A6 "$log" | head -80
  echo "realworld.sh: FAILED: the generated code does not compile (full log: $log)" >&2
  exit 1
fi
warnings=$(grep -c '^warning' "$log" || true)

# Proto comments become rustdoc: none of them may turn into a failing doctest.
if ! (cd "$work/crate" && CARGO_TARGET_DIR=$target_dir cargo test --quiet --doc >"$work/doctest.log" 2>&1); then
  grep -E 'FAILED|^----' "$work/doctest.log" | head -40
  echo "realworld.sh: FAILED: proto comments produced failing doctests (log: $work/doctest.log)" >&2
  exit 1
fi

while IFS= read -r l; do [[ -n $l ]] && limits+=("$l"); done < "$work/pure-failures.txt"
pure_ok=$(( $(wc -l < "$work/sets.txt") - $(grep -c . "$work/pure-failures.txt" || true) ))

echo
echo "== result: OK: compiled ${#protoc_ok[@]} sets through protoc and $pure_ok through grpc-build ($warnings compiler warnings, see $log)"
if ((${#limits[@]})); then
  echo "== known upstream limits (rust-protobuf cannot handle these; our tools said so):"
  printf '   - %s\n' "${limits[@]}"
fi
