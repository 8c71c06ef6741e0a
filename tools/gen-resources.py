#!/usr/bin/env python3
"""Derive rkube's built-in resource table from upstream's OpenAPI v2 document.

Reads the `paths` of the reference document (x-kubernetes-action and
x-kubernetes-group-version-kind on every operation) and writes
apiserver/registry/src/resources/generated.rs: one `ResourceInfo` per served
group/version/resource with its kind, scope, discovery verbs and subresources.
What OpenAPI does not carry (short names, categories, storage location) comes
from the tables below, written from upstream 1.33's behaviour.

Usage: tools/gen-resources.py [../shared/reference/kubernetes-1.33-openapi-v2.json]
"""
import json
import os
import sys

here = os.path.dirname(os.path.abspath(__file__))
src = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
    here, "..", "..", "shared", "reference", "kubernetes-1.33-openapi-v2.json")
out = os.path.join(here, "..", "apiserver", "registry", "src", "resources", "generated.rs")

# Served group/versions in discovery order (upstream's APIService priorities:
# group priority descending, then name), preferred version first.
SERVED = [
    ("", ["v1"]),
    ("apps", ["v1"]),
    ("events.k8s.io", ["v1"]),
    ("authentication.k8s.io", ["v1"]),
    ("authorization.k8s.io", ["v1"]),
    ("autoscaling", ["v2", "v1"]),
    ("batch", ["v1"]),
    ("certificates.k8s.io", ["v1"]),
    ("networking.k8s.io", ["v1"]),
    ("policy", ["v1"]),
    ("rbac.authorization.k8s.io", ["v1"]),
    ("storage.k8s.io", ["v1"]),
    ("admissionregistration.k8s.io", ["v1"]),
    ("apiextensions.k8s.io", ["v1"]),
    ("scheduling.k8s.io", ["v1"]),
    ("coordination.k8s.io", ["v1"]),
    ("node.k8s.io", ["v1"]),
    ("discovery.k8s.io", ["v1"]),
]

# Short names upstream registers per (group, resource).
SHORT_NAMES = {
    ("", "componentstatuses"): ["cs"],
    ("", "configmaps"): ["cm"],
    ("", "endpoints"): ["ep"],
    ("", "events"): ["ev"],
    ("", "limitranges"): ["limits"],
    ("", "namespaces"): ["ns"],
    ("", "nodes"): ["no"],
    ("", "persistentvolumeclaims"): ["pvc"],
    ("", "persistentvolumes"): ["pv"],
    ("", "pods"): ["po"],
    ("", "replicationcontrollers"): ["rc"],
    ("", "resourcequotas"): ["quota"],
    ("", "serviceaccounts"): ["sa"],
    ("", "services"): ["svc"],
    ("apiextensions.k8s.io", "customresourcedefinitions"): ["crd", "crds"],
    ("apps", "daemonsets"): ["ds"],
    ("apps", "deployments"): ["deploy"],
    ("apps", "replicasets"): ["rs"],
    ("apps", "statefulsets"): ["sts"],
    ("autoscaling", "horizontalpodautoscalers"): ["hpa"],
    ("batch", "cronjobs"): ["cj"],
    ("certificates.k8s.io", "certificatesigningrequests"): ["csr"],
    ("events.k8s.io", "events"): ["ev"],
    ("networking.k8s.io", "ingresses"): ["ing"],
    ("networking.k8s.io", "networkpolicies"): ["netpol"],
    ("networking.k8s.io", "ipaddresses"): ["ip"],
    ("policy", "poddisruptionbudgets"): ["pdb"],
    ("scheduling.k8s.io", "priorityclasses"): ["pc"],
    ("storage.k8s.io", "storageclasses"): ["sc"],
}

# Categories upstream registers per (group, resource).
CATEGORIES = {
    ("", "pods"): ["all"],
    ("", "replicationcontrollers"): ["all"],
    ("", "services"): ["all"],
    ("apps", "daemonsets"): ["all"],
    ("apps", "deployments"): ["all"],
    ("apps", "replicasets"): ["all"],
    ("apps", "statefulsets"): ["all"],
    ("autoscaling", "horizontalpodautoscalers"): ["all"],
    ("batch", "cronjobs"): ["all"],
    ("batch", "jobs"): ["all"],
    ("apiextensions.k8s.io", "customresourcedefinitions"): ["api-extensions"],
    ("admissionregistration.k8s.io", "mutatingwebhookconfigurations"): ["api-extensions"],
    ("admissionregistration.k8s.io", "validatingwebhookconfigurations"): ["api-extensions"],
    ("admissionregistration.k8s.io", "validatingadmissionpolicies"): ["api-extensions"],
    ("admissionregistration.k8s.io", "validatingadmissionpolicybindings"): ["api-extensions"],
}

# Resources served in several groups/versions that share one storage:
# (group, resource) -> (storage group, storage resource, storage version).
SHARED_STORAGE = {
    ("events.k8s.io", "events"): ("", "events", "v1"),
    ("", "events"): ("", "events", "v1"),
    ("autoscaling", "horizontalpodautoscalers"): ("autoscaling", "horizontalpodautoscalers", "v2"),
}

# Resources with no storage of their own (virtual, create-only or computed).
NOT_STORED = {
    ("", "bindings"),
    ("", "componentstatuses"),
    ("authentication.k8s.io", "tokenreviews"),
    ("authentication.k8s.io", "selfsubjectreviews"),
    ("authorization.k8s.io", "subjectaccessreviews"),
    ("authorization.k8s.io", "selfsubjectaccessreviews"),
    ("authorization.k8s.io", "localsubjectaccessreviews"),
    ("authorization.k8s.io", "selfsubjectrulesreviews"),
}

# x-kubernetes-action -> discovery verb. `connect` maps by HTTP method.
ACTION_VERB = {
    "get": "get", "list": "list", "post": "create", "put": "update", "patch": "patch",
    "delete": "delete", "deletecollection": "deletecollection", "watch": "watch", "watchlist": "watch",
}
CONNECT_VERB = {"get": "get", "post": "create", "put": "update", "patch": "patch", "delete": "delete"}


def main():
    with open(src) as f:
        spec = json.load(f)
    served = {(g, v) for g, vs in SERVED for v in vs}
    # (g, v, resource) -> {"namespaced", "kind", "verbs", "subs": {name: {kind gvk, verbs}}}
    table = {}
    for path, item in spec["paths"].items():
        if path.startswith("/api/v1/"):
            g, v, rest = "", "v1", path[len("/api/v1/"):]
        elif path.startswith("/apis/"):
            parts = path[len("/apis/"):].split("/", 2)
            if len(parts) < 3:
                continue
            g, v, rest = parts
        else:
            continue
        if (g, v) not in served or not rest:
            continue
        segs = rest.split("/")
        if segs[0] == "watch":
            segs = segs[1:]
        namespaced = False
        if len(segs) >= 3 and segs[0] == "namespaces" and segs[1] == "{namespace}":
            namespaced = True
            segs = segs[2:]
        if segs[-1] == "{path}":
            segs = segs[:-1]
        resource = segs[0]
        sub = segs[2] if len(segs) >= 3 else None
        entry = table.setdefault(
            (g, v, resource), {"namespaced": False, "kind": None, "verbs": set(), "subs": {}, "delete_returns_object": False})
        entry["namespaced"] |= namespaced
        for method, op in item.items():
            if method == "parameters":
                continue
            action = op.get("x-kubernetes-action")
            gvk = op.get("x-kubernetes-group-version-kind")
            if not action or not gvk:
                continue
            if action == "connect":
                verb = CONNECT_VERB.get(method)
            else:
                verb = ACTION_VERB[action]
            gvk_t = (gvk["group"], gvk["version"], gvk["kind"])
            if action == "delete" and sub is None:
                ok = op.get("responses", {}).get("200", {}).get("schema", {}).get("$ref", "")
                entry["delete_returns_object"] = not ok.endswith(".meta.v1.Status")
            if sub is None:
                entry["kind"] = gvk_t
                if verb:
                    entry["verbs"].add(verb)
            else:
                s = entry["subs"].setdefault(sub, {"gvk": gvk_t, "verbs": set()})
                if verb:
                    s["verbs"].add(verb)

    lines = [
        "// @generated by tools/gen-resources.py from upstream Kubernetes 1.33's OpenAPI document. Do not edit.",
        "",
        "use super::{ResourceInfo, SubresourceInfo};",
        "",
        "pub(super) static TABLE: &[ResourceInfo] = &[",
    ]

    def strs(xs):
        return "&[" + ", ".join(json.dumps(x) for x in xs) + "]"

    count = 0
    for g, vs in SERVED:
        for v in vs:
            for (tg, tv, resource) in sorted(k for k in table if k[0] == g and k[1] == v):
                e = table[(tg, tv, resource)]
                if e["kind"] is None:
                    sys.exit(f"no kind for {g}/{v}/{resource}")
                kind = e["kind"][2]
                if (g, resource) in NOT_STORED:
                    sg, sr, sv = "", "", ""
                else:
                    sg, sr, sv = SHARED_STORAGE.get((g, resource), (g, resource, v))
                subs = []
                for name in sorted(e["subs"]):
                    s = e["subs"][name]
                    sgr, svr, skind = s["gvk"]
                    subs.append(
                        f"SubresourceInfo {{ name: {json.dumps(name)}, group: {json.dumps(sgr)}, "
                        f"version: {json.dumps(svr)}, kind: {json.dumps(skind)}, verbs: {strs(sorted(s['verbs']))} }}")
                lines.append("    ResourceInfo {")
                lines.append(f"        group: {json.dumps(g)},")
                lines.append(f"        version: {json.dumps(v)},")
                lines.append(f"        resource: {json.dumps(resource)},")
                lines.append(f"        kind: {json.dumps(kind)},")
                lines.append(f"        singular: {json.dumps(kind.lower())},")
                lines.append(f"        namespaced: {'true' if e['namespaced'] else 'false'},")
                lines.append(f"        short_names: {strs(SHORT_NAMES.get((g, resource), []))},")
                lines.append(f"        categories: {strs(CATEGORIES.get((g, resource), []))},")
                lines.append(f"        verbs: {strs(sorted(e['verbs']))},")
                if subs:
                    lines.append("        subresources: &[")
                    for s in subs:
                        lines.append(f"            {s},")
                    lines.append("        ],")
                else:
                    lines.append("        subresources: &[],")
                lines.append(f"        storage_group: {json.dumps(sg)},")
                lines.append(f"        storage_resource: {json.dumps(sr)},")
                lines.append(f"        storage_version: {json.dumps(sv)},")
                lines.append("    },")
                count += 1
    lines.append("];")
    lines.append("")
    lines.append("/// (group, version, resource) whose DELETE answers with the deleted object instead of a Status.")
    lines.append("pub(super) static DELETE_RETURNS_OBJECT: &[(&str, &str, &str)] = &[")
    for g, vs in SERVED:
        for v in vs:
            for key in sorted(k for k in table if k[0] == g and k[1] == v and table[k]["delete_returns_object"]):
                lines.append(f"    ({json.dumps(key[0])}, {json.dumps(key[1])}, {json.dumps(key[2])}),")
    lines.append("];")
    with open(out, "w") as f:
        f.write("\n".join(lines) + "\n")
    print(f"wrote {count} resources to {os.path.relpath(out)}")


if __name__ == "__main__":
    main()
