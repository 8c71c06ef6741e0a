#!/usr/bin/env python3
"""Derive apiserver/registry/data/definitions.json from upstream's OpenAPI v2 document.

Keeps only the `definitions` section (the schemas of every type, with the
x-kubernetes-* merge and list extensions that patching and server-side apply
need). Paths are not copied: rkube builds its own from its resource table.

Usage: tools/gen-definitions.py [../shared/reference/kubernetes-1.33-openapi-v2.json]
"""
import json
import os
import sys

here = os.path.dirname(os.path.abspath(__file__))
src = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "..", "..", "shared", "reference", "kubernetes-1.33-openapi-v2.json")
out = os.path.join(here, "..", "apiserver", "registry", "data", "definitions.json")

with open(src) as f:
    spec = json.load(f)
defs = spec["definitions"]
with open(out, "w") as f:
    json.dump(defs, f, separators=(",", ":"), sort_keys=True)
    f.write("\n")
print(f"wrote {len(defs)} definitions to {os.path.relpath(out)}")
