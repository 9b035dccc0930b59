#!/usr/bin/env bash
# Real-world check: generates stubs and messages for real service-bearing .proto files through
# both of our paths, then checks that all of it compiles, in throwaway crates under
# target/realworld that use the workspace's target directory.
#
# Per-file sets (each service-bearing file generated on its own, with its imports):
#   - Debian's grpc-proto (/usr/share/grpc-proto, or $GRPC_PROTO_DIR),
#   - PyPI's googleapis-common-protos and grpc-google-iam-v1 (their wheels ship the .proto files),
# through protoc + protoc-gen-rs + protoc-gen-rust-grpc (or our plugin's messages=true where
# two imported files share a basename, which protoc-gen-rs cannot generate), and through
# grpc-build's pure-Rust parser.
#
# Tree sets (registry packages that ship .proto trees; the files of a tree are generated in ONE
# compilation, so that files sharing a basename meet, as in a real build):
#   - googleapis: npm's google-proto-files (all of googleapis; a tree per API directory),
#   - envoy: the envoy, xds, udpa and googleapis protos that npm's @grpc/grpc-js-xds ships, with
#     validate.proto from PyPI's protoc-gen-validate (the copy in @grpc/grpc-js-xds is older
#     than what its envoy protos use); pgv_tests: the two services of that protoc-gen-validate copy,
#   - etcd: crates.io's etcd-client (etcd's API protos: rpc.proto, v3election, v3lock),
#   - containerd: crates.io's containerd-client (containerd's API services), and
#     containerd_shim: crates.io's containerd-shim-protos (the shim's task, sandbox and events),
# through protoc + protoc-gen-rust-grpc alone (messages=true,mod_rs=true: the plugin writes the
# messages and the module file), and through grpc-build's pure-Rust parser.
#
# By default only a part of the tree sets runs (what CI can afford, about a minute: Cloud Speech
# v1, Monitoring v3's metric_service.proto, Service Control v1, nine envoy v3 services, and all
# of pgv_tests, etcd, containerd and containerd_shim); REALWORLD_FULL=1 runs every
# service-bearing file of every set. A file whose package does not ship everything it imports
# (envoy's v2 services, say) is left out and counted as such.
#
# A proto that rust-protobuf cannot handle must make our tools fail with a clear message; such
# files are listed at the end as known upstream limits (they do not fail the script), as are
# files whose rust-protobuf messages do not compile (rust-protobuf bugs that only rustc
# reports). Anything else failing (a crash, an error of our own, stubs that do not compile)
# fails the script.
#
#   testdata/realworld.sh                    (needs protoc: $PROTOC or on PATH; pip, npm, cargo)
#   REALWORLD_FULL=1 testdata/realworld.sh   (every file; type-checks the trees, see below;
#                                             about 20 minutes, and 8 GB of disk on the way)
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

for tool in npm python3; do
  if ! command -v "$tool" >/dev/null; then
    echo "realworld.sh: $tool not found (npm fetches the tree sets' packages: apt-get install npm)" >&2
    exit 1
  fi
done

rm -rf "$work"
mkdir -p "$work/protoc" "$work/crate/src"

echo "== fetching googleapis-common-protos and grpc-google-iam-v1 from PyPI"
python3 -m pip install --quiet --disable-pip-version-check --no-deps --target "$work/pypi" \
  googleapis-common-protos grpc-google-iam-v1 2>&1 | grep -v "WARNING: Running pip as" || true

includes=("$grpc_proto" "$work/pypi")

# The registry packages of the tree sets, at fixed versions (the counts depend on them).
full=${REALWORLD_FULL:-0}
echo "== fetching the tree sets: npm google-proto-files and @grpc/grpc-js-xds, PyPI protoc-gen-validate, crates.io etcd-client, containerd-client, containerd-shim-protos"
mkdir -p "$work/npm"
for pkg in google-proto-files@6.0.1 @grpc/grpc-js-xds@1.14.1; do
  tgz=$(cd "$work/npm" && npm pack --silent "$pkg" | tail -1)
  mkdir -p "$work/npm/${tgz%.tgz}" && tar xzf "$work/npm/$tgz" -C "$work/npm/${tgz%.tgz}"
done
gapis=$work/npm/google-proto-files-6.0.1/package
# google-proto-files also ships protobuf's own google/protobuf/*.proto, newer than the protobuf
# crate (its descriptor.proto has options on extension ranges, which protobuf-parse 3.7.2 cannot
# parse: "label required"). A build uses protoc's or protobuf-parse's own copies, which match
# the protobuf crate's types: that directory is moved out of the include path.
mv "$gapis/google/protobuf" "$work/npm/google-proto-files-protobuf"
xds=$work/npm/grpc-grpc-js-xds-1.14.1/package/deps
# The wheel installs validate.proto as data/validate.proto; imports name it validate/validate.proto.
python3 -m pip install --quiet --disable-pip-version-check --no-deps --target "$work/pgv-wheel" \
  protoc-gen-validate==1.3.3 2>&1 | grep -v "WARNING: Running pip as" || true
mkdir -p "$work/pgv/validate" && cp "$work/pgv-wheel/data/validate.proto" "$work/pgv/validate/"
# crates.io: cargo downloads and unpacks the crates for a manifest that depends on them; their
# sources (with the .proto files) are where cargo metadata says.
mkdir -p "$work/crates/src" && : > "$work/crates/src/lib.rs"
cat > "$work/crates/Cargo.toml" <<EOF
[package]
name = "realworld-protos"
version = "0.0.0"
edition = "2021"
publish = false

[dependencies]
etcd-client = "=0.21.1"
containerd-client = "=0.9.0"
containerd-shim-protos = "=0.12.0"

[workspace]
EOF
crate_dir() {
  (cd "$work/crates" && cargo metadata --quiet --format-version 1 \
    --filter-platform "$(rustc -vV | sed -n 's/^host: //p')") |
    python3 -c 'import json, os, sys
print(next(os.path.dirname(p["manifest_path"]) for p in json.load(sys.stdin)["packages"] if p["name"] == sys.argv[1]))' "$1"
}
etcd=$(crate_dir etcd-client)/proto
containerd=$(crate_dir containerd-client)/vendor
shim=$(crate_dir containerd-shim-protos)/vendor

# The tree sets: name | include directories (imports are looked for in this order) | where to
# look for service-bearing files (under the first include, their names relative to it) | dir: a tree per
# directory, whole: one tree | the default mode's files (a regular expression; empty: all).
tree_sets="\
googleapis|$gapis|.|dir|^google/(cloud/speech/v1/|monitoring/v3/metric_service\.proto$|api/servicecontrol/v1/)
envoy|$xds/envoy-api:$xds/xds:$xds/googleapis:$work/pgv|envoy|whole|^envoy/service/(discovery/v3/ads|cluster/v3/cds|listener/v3/lds|route/v3/rds|endpoint/v3/eds|health/v3/hds|load_stats/v3/lrs|auth/v3/external_auth|ratelimit/v3/rls)\.proto$
pgv_tests|$xds/protoc-gen-validate/java/pgv-java-grpc/src/test/proto:$work/pgv|.|whole|
etcd|$etcd|.|whole|
containerd|$containerd|github.com/containerd/containerd/api|whole|
containerd_shim|$shim/github.com/containerd/containerd/api:$shim|.|whole|"

echo "== building the plugins"
nice -n 10 cargo build --quiet -p protoc-gen-rust-grpc -p protoc-gen-rs
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
retried=()
while IFS='|' read -r inc f set_name; do
  out=$work/protoc/$set_name
  mkdir -p "$out"
  # rust-protobuf's protoc-gen-rs names modules after basenames: a file importing two files of
  # one basename cannot be generated that way, and our plugin says so, pointing at
  # messages=true, with which it writes the messages itself (module names after paths); such a
  # file is generated again that way.
  # shellcheck disable=SC2046
  if err=$("$protoc" \
      --plugin=protoc-gen-rust-grpc="$bin/protoc-gen-rust-grpc" \
      --plugin=protoc-gen-rs="$bin/protoc-gen-rs" \
      "${includes[@]/#/-I}" \
      --rust-grpc_out="$out" --rs_out="$out" --rs_opt=gen_mod_rs=false \
      $(closure "$f") 2>&1) ||
    { [[ $err == *"messages=true"* ]] && rm -rf "$out" && mkdir -p "$out" && retried+=("$f") &&
      err=$("$protoc" \
        --plugin=protoc-gen-rust-grpc="$bin/protoc-gen-rust-grpc" \
        "${includes[@]/#/-I}" \
        --rust-grpc_out="$out" --rust-grpc_opt=messages=true \
        $(closure "$f") 2>&1); }; then
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
echo "   ${#protoc_ok[@]} generated (${#retried[@]} of them with messages=true: ${retried[*]:-none})"

echo "== tree sets: $([[ $full == 1 ]] && echo "REALWORLD_FULL=1: every service-bearing file" || echo "default mode (REALWORLD_FULL=1 for every file)")"
trees_py=$root/testdata/realworld/trees.py
echo "$tree_sets" | python3 "$trees_py" plan "$([[ $full == 1 ]] && echo full || echo default)" "$work/trees.txt"
echo "   $(wc -l < "$work/trees.txt") trees"

# Results of both paths, one line per file: path|tree|unit|status|file|message, where unit is
# the directory (and module) its code went to: `all` when its tree generated in one go, `fN`
# when the tree failed and the file was retried alone; status ok, limit (rust-protobuf cannot
# handle it: a known upstream limit) or fail (anything else: fails the script).
results=$work/tree-results.txt
: > "$results"

echo "== tree sets through protoc + protoc-gen-rust-grpc (messages=true,mod_rs=true)"
# protoc with our plugin alone on FILES..., into OUT; prints protoc's errors on failure.
plugin_run() {
  local out=$1 dirs; shift
  IFS=: read -ra dirs <<< "$1"; shift
  mkdir -p "$out"
  "$protoc" --plugin=protoc-gen-rust-grpc="$bin/protoc-gen-rust-grpc" "${dirs[@]/#/-I}" \
    --rust-grpc_out="$out" --rust-grpc_opt=messages=true,mod_rs=true "$@" 2>&1
}
# A failure rust-protobuf caused (our plugin reports its errors and panics as "cannot generate
# the messages: ...") is an upstream limit; any other is ours.
classify() { [[ $1 == *"cannot generate the messages"* ]] && echo limit || echo fail; }
# Each file of TREE alone (with its imports), into units f1, f2...: appends their results and
# returns how many generated.
plugin_alone() {
  local tree=$1 incs=$2 files=$3 f err i=0 ok=0
  for f in $files; do
    i=$((i + 1))
    # shellcheck disable=SC2046
    if err=$(plugin_run "$work/plugin/$tree/f$i" "$incs" $(python3 "$trees_py" closure "$incs" "$f")); then
      echo "plugin|$tree|f$i|ok|$f|" >> "$results"
      ok=$((ok + 1))
    else
      err=$(echo "$err" | tr '\n' ' ')
      echo "plugin|$tree|f$i|$(classify "$err")|$f|$err" >> "$results"
    fi
  done
  echo "$ok"
}
while IFS='|' read -r tree set incs files whole; do
  # The whole tree at once: the files, and everything they import.
  # shellcheck disable=SC2086
  if err=$(plugin_run "$work/plugin/$tree/all" "$incs" $whole); then
    for f in $files; do echo "plugin|$tree|all|ok|$f|" >> "$results"; done
    continue
  fi
  # The tree failed: each file alone, to tell which one rust-protobuf cannot handle. If every
  # file works alone, the failure is the tree's own: ours.
  if (($(plugin_alone "$tree" "$incs" "$files") == $(wc -w <<< "$files"))); then
    echo "plugin|$tree|all|fail|(the tree)|every file generates alone, but not the tree: $(echo "$err" | tr '\n' ' ')" >> "$results"
  fi
done < "$work/trees.txt"
echo "   $(grep -c '^plugin|.*|ok|' "$results" || true) files generated"

echo "== tree sets through grpc-build (pure parser)"
# A small program runs grpc-build on each tree, as a build script would (one compile() per
# tree), with the same retry of each file alone when a tree fails. Its failures are sorted by
# grpc-build's error: the parser (protobuf-parse) or rust-protobuf's generator failing is an
# upstream limit; anything else (our stubs, a panic) is ours.
mkdir -p "$work/gen/src"
cat > "$work/gen/Cargo.toml" <<EOF
[package]
name = "realworld-gen"
version = "0.0.0"
edition = "2024"
publish = false

[dependencies]
grpc-build = { path = "$root/build-support" }

[workspace]
EOF
cp "$root/Cargo.lock" "$work/gen/Cargo.lock"
cat > "$work/gen/src/main.rs" <<'EOF'
//! Generated by testdata/realworld.sh: grpc-build on each tree of trees.txt.
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (trees, out_root) = (&args[1], Path::new(&args[2]));
    // `alone`: each file alone from the start (a tree whose messages do not compile).
    let alone = args.get(3).is_some_and(|a| a == "alone");
    let mut results = String::new();
    for line in std::fs::read_to_string(trees).unwrap().lines() {
        let fields: Vec<&str> = line.split('|').collect();
        let (tree, includes, files) = (fields[0], fields[2], fields[3]);
        let includes: Vec<&str> = includes.split(':').collect();
        let files: Vec<&str> = files.split(' ').collect();
        let compile = |unit: &str, files: &[&str]| {
            let paths: Vec<PathBuf> = files
                .iter()
                .map(|f| {
                    let found = includes.iter().map(|i| Path::new(i).join(f)).find(|p| p.is_file());
                    found.expect("trees.py found it")
                })
                .collect();
            grpc_build::configure()
                .emit_rerun_if_changed(false)
                .out_dir(out_root.join(tree).join(unit))
                .compile(&paths, &includes)
        };
        let status = |e: &grpc_build::Error| match e {
            grpc_build::Error::Parse(_) | grpc_build::Error::Codegen(_) => "limit",
            _ => "fail",
        };
        let one_line = |e: &grpc_build::Error| e.to_string().replace('\n', " ");
        // The whole tree at once (its error, if any, kept), unless told to go file by file.
        let whole = if alone { Err(None) } else { compile("all", &files).map_err(Some) };
        match whole {
            Ok(()) => {
                for f in &files {
                    writeln!(results, "pure|{tree}|all|ok|{f}|").unwrap();
                }
            }
            Err(tree_err) => {
                let mut alone_ok = 0;
                for (i, f) in files.iter().enumerate() {
                    let unit = format!("f{}", i + 1);
                    match compile(&unit, &[f]) {
                        Ok(()) => {
                            alone_ok += 1;
                            writeln!(results, "pure|{tree}|{unit}|ok|{f}|").unwrap();
                        }
                        Err(e) => {
                            let (s, m) = (status(&e), one_line(&e));
                            writeln!(results, "pure|{tree}|{unit}|{s}|{f}|{m}").unwrap();
                        }
                    }
                }
                if let (true, Some(tree_err)) = (alone_ok == files.len(), tree_err) {
                    let m = one_line(&tree_err);
                    writeln!(
                        results,
                        "pure|{tree}|all|fail|(the tree)|every file generates alone, but not the tree: {m}"
                    )
                    .unwrap();
                }
            }
        }
    }
    print!("{results}");
}
EOF
(cd "$work/gen" && CARGO_TARGET_DIR=$target_dir nice -n 10 cargo build --quiet)
gen=$target_dir/debug/realworld-gen
"$gen" "$work/trees.txt" "$work/pure" >> "$results"
echo "   $(grep -c '^pure|.*|ok|' "$results" || true) files generated"

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
if ! (cd "$work/crate" && CARGO_TARGET_DIR=$target_dir nice -n 10 cargo build --quiet 2>"$log"); then
  grep -E '^(error|warning: unused)' -A6 "$log" | head -80
  echo "realworld.sh: FAILED: the generated code does not compile (full log: $log)" >&2
  exit 1
fi
warnings=$(grep -c '^warning' "$log" || true)

# Proto comments become rustdoc: none of them may turn into a failing doctest.
if ! (cd "$work/crate" && CARGO_TARGET_DIR=$target_dir nice -n 10 cargo test --quiet --doc >"$work/doctest.log" 2>&1); then
  grep -E 'FAILED|^----' "$work/doctest.log" | head -40
  echo "realworld.sh: FAILED: proto comments produced failing doctests (log: $work/doctest.log)" >&2
  exit 1
fi

while IFS= read -r l; do [[ -n $l ]] && limits+=("$l"); done < "$work/pure-failures.txt"
pure_ok=$(( $(wc -l < "$work/sets.txt") - $(grep -c . "$work/pure-failures.txt" || true) ))
echo "== per-file sets: OK: compiled ${#protoc_ok[@]} sets through protoc and $pure_ok through grpc-build ($warnings compiler warnings, see $log)"

echo "== tree sets: a throwaway workspace with a crate per tree, both paths' output side by side"
# Each tree's output stays in a module of its own (a tree's modules only refer to each other:
# super::<module>), one per unit (`all`, or `fN` for a file generated alone) and per path. A
# crate per tree keeps rustc's memory bounded and lets cargo use both cores.
trees_ws=$work/trees
mkdir -p "$trees_ws"
cat > "$trees_ws/Cargo.toml" <<EOF
[workspace]
members = ["t/*"]
resolver = "2"

[workspace.dependencies]
grpc-runtime = { path = "$root/runtime" }
protobuf = { version = "=3.7.2", features = ["bytes"] }
EOF
cp "$root/Cargo.lock" "$trees_ws/Cargo.lock"
# The units of TREE that PATH generated.
units() { awk -F'|' -v p="$1" -v t="$2" '$1 == p && $2 == t && $4 == "ok" { print $3 }' "$results" | sort -u; }
# (Re)writes the crate of TREE (of SET) from the results; none if neither path has a unit left.
write_crate() {
  local tree=$1 set=$2 crate=$trees_ws/t/$1 u
  rm -rf "$crate"
  [[ -z $(units plugin "$tree")$(units pure "$tree") ]] && return 0
  mkdir -p "$crate/src"
  cat > "$crate/Cargo.toml" <<EOF
[package]
name = "rw_$tree"
version = "0.0.0"
edition = "2024"
publish = false

[dependencies]
grpc-runtime.workspace = true
protobuf.workspace = true
EOF
  {
    echo "//! Generated by testdata/realworld.sh: tree \`$tree\` of the $set set."
    echo "#![allow(non_snake_case)]"
    echo "/// Through protoc and protoc-gen-rust-grpc (messages=true,mod_rs=true)."
    echo "pub mod plugin_path {"
    for u in $(units plugin "$tree"); do
      echo "    #[path = \"$work/plugin/$tree/$u/mod.rs\"]"
      echo "    pub mod $u;"
    done
    echo "}"
    echo "/// Through grpc-build's pure-Rust parser."
    echo "pub mod pure_path {"
    for u in $(units pure "$tree"); do
      echo "    pub mod $u { include!(\"$work/pure/$tree/$u/_protos.rs\"); }"
    done
    echo "}"
  } > "$crate/src/lib.rs"
}
while IFS='|' read -r tree set _; do write_crate "$tree" "$set"; done < "$work/trees.txt"

# The default mode builds the trees and runs their doctests, like the per-file sets. The full
# mode type-checks them (cargo check): all of googleapis is some 18 million lines of Rust per
# path, which a debug build would take hours over on two cores; check finds every error of
# the generated code but those of code generation proper, which these stubs do not reach.
#
# rust-protobuf also generates messages that do not compile (names its generated items clash
# with: a oneof field `new` and the constructor, say), which no tool reports before rustc does.
# Such a unit is an upstream limit too: a tree's unit is split into its files, each generated
# alone (so the tree's other files still get compiled), and a file's own unit failing so is
# listed as a limit. An error in our stubs, or anywhere else, fails the script.
trees_log=$work/trees-build.log
export CARGO_INCREMENTAL=0
if [[ $full == 1 ]]; then build=(check --workspace); else build=(build --workspace); fi
started=$SECONDS
for round in 1 2 3 4; do
  if (cd "$trees_ws" && CARGO_TARGET_DIR=$target_dir nice -n 10 cargo "${build[@]}" --keep-going \
      --quiet --message-format=short 2>"$trees_log"); then
    break
  fi
  if ((round == 4)) || ! python3 "$trees_py" errors "$work" "$trees_log" > "$work/trees-errors.txt"; then
    echo "realworld.sh: FAILED: the generated code of the trees does not compile (full log: $trees_log)" >&2
    exit 1
  fi
  while IFS='|' read -r path tree unit error; do
    set_name=$(awk -F'|' -v t="$tree" '$1 == t { print $2 }' "$work/trees.txt")
    files=$(awk -F'|' -v t="$tree" '$1 == t { print $4 }' "$work/trees.txt")
    if [[ $unit == all && $(wc -w <<< "$files") -gt 1 ]]; then
      echo "   $path/$tree: rust-protobuf's messages do not compile ($error): each file alone"
      grep -v "^$path|$tree|" "$results" > "$results.new" && mv "$results.new" "$results"
      if [[ $path == plugin ]]; then
        incs=$(awk -F'|' -v t="$tree" '$1 == t { print $3 }' "$work/trees.txt")
        plugin_alone "$tree" "$incs" "$files" > /dev/null
      else
        grep "^$tree|" "$work/trees.txt" > "$work/tree-alone.txt"
        "$gen" "$work/tree-alone.txt" "$work/pure" alone >> "$results"
      fi
    else
      # This unit is one file: its messages do not compile, an upstream limit.
      awk -F'|' -v OFS='|' -v p="$path" -v t="$tree" -v u="$unit" \
        -v m="rust-protobuf's messages do not compile: $error" \
        '$1 == p && $2 == t && $3 == u && $4 == "ok" { $4 = "limit"; $6 = m } { print }' \
        "$results" > "$results.new" && mv "$results.new" "$results"
    fi
    write_crate "$tree" "$set_name"
  done < "$work/trees-errors.txt"
done
tree_warnings=$(grep -c ': warning' "$trees_log" || true)
if [[ $full != 1 ]] &&
  ! (cd "$trees_ws" && CARGO_TARGET_DIR=$target_dir nice -n 10 cargo test --quiet --doc --workspace >"$work/trees-doctest.log" 2>&1); then
  grep -E 'FAILED|^----' "$work/trees-doctest.log" | head -40
  echo "realworld.sh: FAILED: proto comments produced failing doctests (log: $work/trees-doctest.log)" >&2
  exit 1
fi
echo "   cargo ${build[0]}$([[ $full != 1 ]] && echo " and doctests"): $((SECONDS - started)) s ($tree_warnings compiler warnings, see $trees_log)"
if [[ $full == 1 ]]; then
  # The full mode's checked crates take some 4 GB in the target directory, of no further use.
  rm -rf "$target_dir"/debug/deps/{librw_,rw_}* "$target_dir"/debug/.fingerprint/rw_*
fi

echo
if ((${#limits[@]})); then
  echo "== per-file sets: known upstream limits (rust-protobuf cannot handle these; our tools said so):"
  printf '   - %s\n' "${limits[@]}"
fi
# Per set: files, what each path generated (all of it compiled, above), the upstream limits;
# fails (with the reason) if either path failed on a file for a reason of ours.
python3 "$trees_py" report "$work/trees.txt.counts" "$results" "$work/trees.txt.excluded"
