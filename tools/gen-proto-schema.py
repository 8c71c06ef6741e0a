#!/usr/bin/env python3
"""Derive apiserver/registry/data/proto-schema.json: the protobuf wire schema of the kinds rkube serves.

Kubernetes clients (client-go typed clients, hence kubectl) may send request bodies as
`application/vnd.kubernetes.protobuf`. rkube decodes them into the JSON the same object would
have had (apiserver/registry/src/proto/). That decoder needs, per message:

  * from each group's `generated.proto`: field number -> (type, repeated, map key/value types);
  * from the Go types the messages are generated from (`types.go` struct tags): the JSON name,
    `omitempty`, whether the Go field is a pointer, whether it is embedded inline, or skipped.

Both are read here from source trees of k8s.io/api and k8s.io/apimachinery at the release
rkube targets (1.33: tag v0.33.x), and written as one compact table:

  {"groups":   {"apps/v1": "k8s.io.api.apps.v1", "v1": "k8s.io.api.core.v1", ...},
   "messages": {"k8s.io.api.apps.v1.Deployment":
                   {"w": 1 if the message only wraps a Go slice (`+protobuf.nullable=true`), else absent,
                    "k": 1 if the Go struct embeds TypeMeta (a kind a body may carry), else absent,
                    "f": [[number, jsonName, type, flags, mapKeyType?], ...]}}}   (Go declaration order)

`type` is a protobuf scalar name (`string`, `int64`, `bytes`, ...) or a fully qualified message
name (without the leading dot). `flags` is a string of letters: r = repeated, m = map (type is
the value type, element 5 the key type), o = omitempty, p = Go pointer, i = embedded inline,
x = not in JSON (`json:"-"`).

Usage: tools/gen-proto-schema.py <k8s.io/api tree> <k8s.io/apimachinery tree>
  e.g. git -C <mirror of kubernetes/api> archive v0.33.9 | tar -x -C /tmp/api
"""
import glob
import json
import os
import re
import sys

here = os.path.dirname(os.path.abspath(__file__))
out = os.path.join(here, "..", "apiserver", "registry", "data", "proto-schema.json")

# group/version directories of k8s.io/api that rkube serves
API_DIRS = [
    "core/v1", "apps/v1", "batch/v1", "autoscaling/v1", "autoscaling/v2", "policy/v1",
    "networking/v1", "discovery/v1", "coordination/v1", "rbac/v1", "storage/v1", "scheduling/v1",
    "events/v1", "node/v1", "certificates/v1", "admissionregistration/v1", "authentication/v1",
    "authorization/v1", "flowcontrol/v1",
]
# packages of k8s.io/apimachinery the above import
MACHINERY_DIRS = [
    ("pkg/apis/meta/v1", "meta.k8s.io/v1"),
    ("pkg/api/resource", None),
    ("pkg/util/intstr", None),
    ("pkg/runtime", None),
    ("pkg/runtime/schema", None),
]

SCALARS = {
    "string", "bytes", "bool", "int32", "int64", "uint32", "uint64", "sint32", "sint64",
    "fixed32", "fixed64", "sfixed32", "sfixed64", "double", "float",
}

FIELD_RE = re.compile(r"^\s*(optional|repeated|required)\s+([\w.]+)\s+(\w+)\s*=\s*(\d+)\s*;")
MAP_RE = re.compile(r"^\s*map\s*<\s*([\w.]+)\s*,\s*([\w.]+)\s*>\s+(\w+)\s*=\s*(\d+)\s*;")
MSG_RE = re.compile(r"^message\s+(\w+)\s*\{")
PKG_RE = re.compile(r"^package\s+([\w.]+)\s*;")


def resolve(pkg, t):
    if t in SCALARS:
        return t
    if t.startswith("."):
        return t[1:]
    return pkg + "." + t


def parse_proto(path):
    """Messages of one generated.proto: {full name: {"wrapper": bool, "fields": {num: field}}}."""
    msgs = {}
    pkg = None
    cur = None
    comments = []
    with open(path) as f:
        for line in f:
            s = line.strip()
            m = PKG_RE.match(s)
            if m:
                pkg = m.group(1)
                continue
            if s.startswith("//"):
                comments.append(s)
                continue
            m = MSG_RE.match(s)
            if m:
                cur = {"name": m.group(1), "wrapper": any("+protobuf.nullable=true" in c for c in comments),
                       "fields": {}}
                msgs[pkg + "." + m.group(1)] = cur
                comments = []
                continue
            comments = []
            if cur is None:
                continue
            if s == "}":
                cur = None
                continue
            m = MAP_RE.match(s)
            if m:
                key, val, name, num = m.groups()
                cur["fields"][int(num)] = {"name": name, "type": resolve(pkg, val), "key": resolve(pkg, key),
                                           "label": "map"}
                continue
            m = FIELD_RE.match(s)
            if m:
                label, typ, name, num = m.groups()
                cur["fields"][int(num)] = {"name": name, "type": resolve(pkg, typ), "label": label}
                continue
            if s and not s.startswith(("option", "import", "syntax", "reserved")):
                sys.exit(f"{path}: unparsed line: {s}")
    return pkg, msgs


GO_STRUCT_RE = re.compile(r"^type\s+(\w+)\s+struct\s*\{")
GO_FIELD_RE = re.compile(r"^\s*(?:(\w+)\s+)?(\S+)\s+`([^`]*)`")
TAG_RE = re.compile(r'(\w+):"([^"]*)"')


def parse_go_dir(d):
    """Go structs of a package: ({struct: [{json, omitempty, pointer, inline, skip, num, go_type}]} in
    declaration order, {names of structs embedding TypeMeta, i.e. kinds})."""
    structs = {}
    kinds = set()
    for path in sorted(glob.glob(os.path.join(d, "*.go"))):
        base = os.path.basename(path)
        if base.endswith("_test.go") or base.startswith("zz_generated") or base.endswith(".pb.go") \
                or "swagger_doc" in base:
            continue
        cur = None
        depth = 0
        with open(path) as f:
            for line in f:
                if cur is None:
                    m = GO_STRUCT_RE.match(line)
                    if m:
                        depth = line.count("{") - line.count("}")
                        struct_name = m.group(1)
                        cur = structs.setdefault(struct_name, []) if depth > 0 else None
                        if cur is None:
                            structs.setdefault(m.group(1), [])
                    continue
                code = line.split("//", 1)[0] if "`" not in line else line
                if code.strip().startswith("//"):
                    continue
                depth += code.count("{") - code.count("}")
                if depth <= 0:
                    cur = None
                    continue
                if depth > 1:
                    continue
                m = GO_FIELD_RE.match(line)
                if not m:
                    continue
                name, gotype, tags = m.groups()
                tagmap = dict(TAG_RE.findall(tags))
                if name is None and gotype.split(".")[-1] == "TypeMeta":
                    kinds.add(struct_name)
                pb = tagmap.get("protobuf")
                if not pb or pb == "-":
                    continue
                parts = pb.split(",")
                num = int(parts[1])
                js = tagmap.get("json", "")
                jparts = js.split(",")
                jname = jparts[0]
                embedded = name is None
                cur.append({
                    "num": num,
                    # encoding/json: no tag name → the Go field name (embedded structs are flattened)
                    "json": jname or ("" if embedded else name),
                    "omitempty": "omitempty" in jparts[1:],
                    "pointer": gotype.startswith("*"),
                    "inline": embedded and jname == "",
                    "skip": jname == "-",
                    "go_type": gotype,
                })
    return structs, kinds


def group_of(d):
    for fname in ("register.go", "doc.go"):
        p = os.path.join(d, fname)
        if not os.path.exists(p):
            continue
        text = open(p).read()
        m = re.search(r'GroupName\s*=\s*"([^"]*)"', text) or re.search(r"\+groupName=(\S*)", text)
        if m:
            return m.group(1)
    sys.exit(f"{d}: no group name")


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    api, machinery = sys.argv[1], sys.argv[2]
    dirs = []
    groups = {}
    for gv in API_DIRS:
        d = os.path.join(api, gv)
        group = group_of(d)
        version = gv.split("/")[1]
        dirs.append((d, f"{group}/{version}" if group else version))
    for sub, gv in MACHINERY_DIRS:
        dirs.append((os.path.join(machinery, sub), gv))

    messages = {}
    problems = []
    for d, gv in dirs:
        pkg, msgs = parse_proto(os.path.join(d, "generated.proto"))
        if gv:
            groups[gv] = pkg
        structs, kinds = parse_go_dir(d)
        for full, msg in msgs.items():
            gofields = structs.get(msg["name"])
            entries = []
            seen = set()
            for gf in gofields or []:
                pf = msg["fields"].get(gf["num"])
                if pf is None:
                    problems.append(f"{full}: Go field #{gf['num']} ({gf['json']}) not in proto")
                    continue
                seen.add(gf["num"])
                flags = ""
                if pf["label"] == "repeated":
                    flags += "r"
                if pf["label"] == "map":
                    flags += "m"
                flags += "o" if gf["omitempty"] else ""
                flags += "p" if gf["pointer"] else ""
                flags += "i" if gf["inline"] else ""
                flags += "x" if gf["skip"] else ""
                e = [gf["num"], gf["json"], pf["type"], flags]
                if pf["label"] == "map":
                    e.append(pf["key"])
                entries.append(e)
            for num, pf in sorted(msg["fields"].items()):
                if num in seen:
                    continue
                if gofields is not None:
                    problems.append(f"{full}: proto field {pf['name']} = {num} has no Go field")
                # No Go struct (a special type with its own marshalling, or a wrapper): keep proto names.
                flags = {"repeated": "r", "map": "m"}.get(pf["label"], "")
                e = [num, pf["name"], pf["type"], flags]
                if pf["label"] == "map":
                    e.append(pf["key"])
                entries.append(e)
            m = {"f": entries}
            if msg["wrapper"]:
                m["w"] = 1
            if msg["name"] in kinds:
                m["k"] = 1
            messages[full] = m

    # every referenced message must be known
    for full, m in messages.items():
        for e in m["f"]:
            if e[2] not in SCALARS and e[2] not in messages:
                problems.append(f"{full}.{e[1]}: unknown type {e[2]}")
    for p in problems:
        print("warning:", p, file=sys.stderr)

    with open(out, "w") as f:
        json.dump({"groups": groups, "messages": messages}, f, separators=(",", ":"), sort_keys=True)
        f.write("\n")
    print(f"wrote {len(messages)} messages of {len(groups)} group versions to {os.path.relpath(out)}")


if __name__ == "__main__":
    main()
