#!/usr/bin/env python3
"""Finds the service-bearing files of testdata/realworld.sh's registry sets and groups them
into trees (one generation each, so that files sharing a basename meet in one compilation).

  trees.py plan MODE OUT < sets      writes the trees of MODE (default or full) to OUT
  trees.py closure INCLUDES FILE...  prints the import closure of FILE... (INCLUDES: a:b:c)
  trees.py errors WORK LOG           sorts the errors of a cargo --message-format=short LOG:
                                     prints `path|tree|unit|error` for the first error of each
                                     unit in rust-protobuf's messages; exits 2 if an error is
                                     anywhere else (our stubs, or no generated file at all)
  trees.py report COUNTS RESULTS EXCLUDED
                                     prints per-set counts of both paths and the upstream limits;
                                     exits 1 if a path failed on a file for a reason of ours

A set line is `name|includes|search|grouping|default`: include directories (':'-separated;
imports are looked for in this order), the directory under the first include where
service-bearing files are looked for (they are named relative to that include), `dir` (a tree per directory) or `whole` (one tree
for the set), and a regular expression choosing the files of the default mode (empty: all).

OUT gets one line per tree, `tree|set|includes|files|closure` (files and closure
space-separated; the closure leaves out the well-known types that the protobuf crate provides),
OUT.counts one line per set (`set|service-bearing|in this mode|complete|colliding`),
and OUT.excluded one line per file left out because its package does not ship everything it
imports (`set|file|missing import`). Standard output gets per-set counts, among them the files
whose import closure holds two files of one basename: those could not be generated before the
per-path module names (either path stopped at the duplicate module).
"""

import os
import re
import sys
from collections import defaultdict

# The files the protobuf crate provides (never generated: the messages refer to its types).
BUNDLED = {
    "google/protobuf/" + n
    for n in [
        "any.proto", "api.proto", "duration.proto", "empty.proto", "field_mask.proto",
        "source_context.proto", "struct.proto", "timestamp.proto", "type.proto",
        "wrappers.proto", "descriptor.proto",
    ]
}
IMPORT = re.compile(r'^\s*import\s+(?:public\s+|weak\s+)?"([^"]+)"\s*;', re.M)
SERVICE = re.compile(r"^\s*service\s", re.M)


def find(includes, name):
    """The path of the file `name` in the first include directory holding it, or None."""
    for inc in includes:
        path = os.path.join(inc, name)
        if os.path.isfile(path):
            return path
    return None


def closure(includes, files):
    """(every file reached from `files` through imports but the bundled ones, missing imports)."""
    seen, missing, todo = set(), set(), list(files)
    while todo:
        name = todo.pop()
        if name in seen or name in BUNDLED:
            continue
        path = find(includes, name)
        if path is None:
            missing.add(name)
            continue
        seen.add(name)
        with open(path, encoding="utf-8") as f:
            todo += IMPORT.findall(f.read())
    return sorted(seen), sorted(missing)


def module(name):
    """rust-protobuf's module for a file: its basename, other characters than [A-Za-z0-9_] as _."""
    base = os.path.basename(name)[: -len(".proto")]
    return re.sub(r"[^A-Za-z0-9_]", "_", base)


def collides(files):
    """Whether two of `files` would get the same module under basename naming."""
    modules = [module(f) for f in files]
    return len(set(modules)) != len(modules)


def ident(text):
    return re.sub(r"[^A-Za-z0-9]", "_", text).strip("_").lower()


def plan(mode, out):
    counts = open(out + ".counts", "w", encoding="utf-8")
    trees = []  # (tree, set, includes, files)
    excluded = []
    for line in sys.stdin:
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, includes, search, grouping, default = line.split("|", 4)
        includes = includes.split(":")
        root = os.path.normpath(os.path.join(includes[0], search))
        services = []
        for dirpath, _, filenames in os.walk(root):
            for fn in filenames:
                path = os.path.join(dirpath, fn)
                if fn.endswith(".proto"):
                    with open(path, encoding="utf-8") as f:
                        if SERVICE.search(f.read()):
                            services.append(os.path.relpath(path, includes[0]))
        services.sort()
        chosen = [f for f in services if mode == "full" or re.search(default, f)]
        complete, collide = [], 0
        for f in chosen:
            files, missing = closure(includes, [f])
            if missing:
                excluded.append(f"{name}|{f}|{missing[0]}")
                continue
            complete.append(f)
            collide += collides(files)
        groups = defaultdict(list)
        for f in complete:
            groups[os.path.dirname(f) if grouping == "dir" else search].append(f)
        for key, files in sorted(groups.items()):
            tree = ident(f"{name}_{key}") if grouping == "dir" else ident(name)
            trees.append((tree, name, includes, files))
        print(
            f"   {name}: {len(services)} service-bearing files; {len(chosen)} in this mode, "
            f"{len(chosen) - len(complete)} of them importing files the package does not ship; "
            f"{len(complete)} in {len(groups)} trees; {collide} with two files of one basename "
            f"in their import closure"
        )
        print(f"{name}|{len(services)}|{len(chosen)}|{len(complete)}|{collide}", file=counts)
    counts.close()
    names = [t[0] for t in trees]
    dupes = {n for n in names if names.count(n) > 1}
    if dupes:
        sys.exit(f"trees.py: two trees named {sorted(dupes)}")
    with open(out, "w", encoding="utf-8") as f:
        for tree, name, includes, files in trees:
            whole, _ = closure(includes, files)
            f.write(f"{tree}|{name}|{':'.join(includes)}|{' '.join(files)}|{' '.join(whole)}\n")
    with open(out + ".excluded", "w", encoding="utf-8") as f:
        f.writelines(line + "\n" for line in excluded)


def errors(work, log):
    generated = re.compile(
        re.escape(work) + r"/(plugin|pure)/([^/]+)/([^/]+)/([^/:]+\.rs):\d+:\d+: error(.*)$"
    )
    units, ours = {}, []
    failed_crates = set()
    for line in open(log, encoding="utf-8", errors="replace"):
        line = line.rstrip("\n")
        crate = re.search(r"could not compile `rw_([a-z0-9_]+)`", line)
        if crate:
            failed_crates.add(crate.group(1))
            continue
        if ": error" not in line and not line.startswith("error"):
            continue
        m = generated.search(line)
        if m and not m.group(4).endswith("_grpc.rs"):
            path, tree, unit, rs, message = m.groups()
            units.setdefault((path, tree, unit), f"{rs}: error{message}")
        elif not line.startswith("error: could not compile") and "previous error" not in line:
            ours.append(line)
    # A crate that failed with no error in its messages failed for a reason of ours.
    for tree in failed_crates - {tree for (_, tree, _) in units}:
        ours.append(f"rw_{tree} failed to compile, and not in rust-protobuf's messages")
    for (path, tree, unit), message in sorted(units.items()):
        print(f"{path}|{tree}|{unit}|{message}")
    if ours:
        print("realworld.sh: FAILED: generated code of ours does not compile:", file=sys.stderr)
        for line in ours[:40]:
            print(f"   {line}", file=sys.stderr)
        sys.exit(2)


def report(counts_file, results_file, excluded_file):
    results = [line.rstrip("\n").split("|", 5) for line in open(results_file, encoding="utf-8")]
    tree_set = {}
    for line in open(counts_file.removesuffix(".counts"), encoding="utf-8"):
        tree, name = line.split("|")[:2]
        tree_set[tree] = name
    excluded = [line.rstrip("\n").split("|") for line in open(excluded_file, encoding="utf-8")]
    print("== tree sets (files: service-bearing in the package / in this mode / left out, their")
    print("   package not shipping an import / tried; generated and compiled through protoc +")
    print("   protoc-gen-rust-grpc and through grpc-build; known upstream limits; files whose import")
    print("   closure holds two files of one basename, which neither path could generate before):")
    limits, fails = [], []
    for line in open(counts_file, encoding="utf-8"):
        name, services, chosen, complete, collide = line.strip().split("|")
        ok = {"plugin": 0, "pure": 0}
        n_limits = {"plugin": 0, "pure": 0}
        for path, tree, _unit, status, f, message in results:
            if tree_set.get(tree) != name:
                continue
            if status == "ok":
                ok[path] += 1
            elif status == "limit":
                n_limits[path] += 1
                # Both ends: what failed, and (last) why.
                short = message if len(message) <= 400 else f"{message[:200]} ... {message[-200:]}"
                limits.append(f"{path}: {name}: {f}: {short}")
            else:
                fails.append(f"{path}: {name}: {tree}: {f}: {message}")
        left_out = sum(1 for e in excluded if e[0] == name)
        print(
            f"   {name}: {services} / {chosen} / {left_out} / {complete}; "
            f"plugin {ok['plugin']}, grpc-build {ok['pure']}; "
            f"limits: plugin {n_limits['plugin']}, grpc-build {n_limits['pure']}; "
            f"colliding {collide}"
        )
    if excluded:
        print("== left out (the package does not ship an import):")
        for name, f, missing in excluded:
            print(f"   - {name}: {f} (imports {missing})")
    if limits:
        print("== tree sets: known upstream limits (rust-protobuf cannot handle these):")
        for line in limits:
            print(f"   - {line}")
    if fails:
        print("realworld.sh: FAILED: our tools failed on these (not an upstream limit):", file=sys.stderr)
        for line in fails:
            print(f"   - {line}", file=sys.stderr)
        sys.exit(1)
    print("== result: OK")


if __name__ == "__main__":
    if sys.argv[1:2] == ["plan"] and len(sys.argv) == 4:
        plan(sys.argv[2], sys.argv[3])
    elif sys.argv[1:2] == ["closure"] and len(sys.argv) >= 4:
        files, missing = closure(sys.argv[2].split(":"), sys.argv[3:])
        print(" ".join(files))
    elif sys.argv[1:2] == ["errors"] and len(sys.argv) == 4:
        errors(*sys.argv[2:])
    elif sys.argv[1:2] == ["report"] and len(sys.argv) == 5:
        report(*sys.argv[2:])
    else:
        sys.exit(__doc__)
