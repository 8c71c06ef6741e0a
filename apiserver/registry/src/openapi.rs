//! OpenAPI: upstream's type schemas (derived by tools/gen-definitions.py) and the
//! v2 / v3 documents rkube serves, with paths built from our resource table.
//!
//! `v2` is one swagger 2.0 document for everything; `v3_group_version` is an
//! OpenAPI 3.0 document per group/version (its paths plus every schema they
//! reach, under `components.schemas`); `v3_index` lists those documents with a
//! content hash, as `/openapi/v3` does upstream. kubectl relies on the PATCH
//! operations carrying `fieldValidation` (strict validation) and on schemas
//! carrying `x-kubernetes-group-version-kind` (`kubectl explain`).

use crate::resources::{ResourceInfo, SubresourceInfo, groups_of};
use serde_json::{Map, Value, json};
use std::collections::{BTreeSet, HashMap};
use std::sync::OnceLock;

static DEFINITIONS_JSON: &str = include_str!("../data/definitions.json");

/// The Kubernetes version reported in `info.version`.
pub const KUBERNETES_VERSION: &str = "v1.33.0";

/// Every type schema of Kubernetes 1.33, keyed by definition name
/// (`io.k8s.api.apps.v1.Deployment`), parsed once.
pub fn definitions() -> &'static Map<String, Value> {
    static DEFS: OnceLock<Map<String, Value>> = OnceLock::new();
    DEFS.get_or_init(|| serde_json::from_str(DEFINITIONS_JSON).expect("embedded definitions.json is valid JSON"))
}

const META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1";

/// Definition name of a group/version/kind, from the schemas'
/// `x-kubernetes-group-version-kind`. Built-in kinds only.
pub fn definition_name(group: &str, version: &str, kind: &str) -> Option<&'static str> {
    static INDEX: OnceLock<HashMap<(String, String, String), &'static str>> = OnceLock::new();
    let index = INDEX.get_or_init(|| {
        let mut m = HashMap::new();
        for (name, schema) in definitions() {
            let Some(gvks) = schema.get("x-kubernetes-group-version-kind").and_then(Value::as_array) else {
                continue;
            };
            for gvk in gvks {
                let s = |k: &str| gvk.get(k).and_then(Value::as_str).unwrap_or("").to_string();
                // Meta types (DeleteOptions, Status, ...) are listed under every group:
                // keep the first (their own) name, which is the only one there is.
                m.entry((s("group"), s("version"), s("kind"))).or_insert(name.as_str());
            }
        }
        m
    });
    index.get(&(group.to_string(), version.to_string(), kind.to_string())).copied()
}

fn schema_ref(group: &str, version: &str, kind: &str) -> Value {
    match definition_name(group, version, kind) {
        Some(name) => json!({"$ref": format!("#/definitions/{name}")}),
        // Kinds without a built-in schema (custom resources) are plain objects.
        None => json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true}),
    }
}

fn meta_ref(kind: &str) -> Value {
    json!({"$ref": format!("#/definitions/{META}.{kind}")})
}

// ---------------------------------------------------------------------------
// Parameters (swagger 2.0 form)

fn query(name: &str, ty: &str, description: &str) -> Value {
    json!({"name": name, "in": "query", "type": ty, "uniqueItems": true, "description": description})
}

fn path_param(name: &str, description: &str) -> Value {
    json!({"name": name, "in": "path", "required": true, "type": "string", "uniqueItems": true, "description": description})
}

fn body(schema: Value, required: bool) -> Value {
    let mut b = json!({"name": "body", "in": "body", "schema": schema});
    if required {
        b["required"] = json!(true);
    }
    b
}

fn p_pretty() -> Value {
    query("pretty", "string", "If 'true', the output is pretty printed.")
}
fn p_dry_run() -> Value {
    query("dryRun", "string", "When present, the request is processed without persisting anything. Valid value: All.")
}
fn p_field_manager() -> Value {
    query("fieldManager", "string", "Name of the actor making the change, recorded in managedFields.")
}
fn p_field_validation() -> Value {
    query(
        "fieldValidation",
        "string",
        "How the server treats unknown or duplicate fields in the request body: Ignore, Warn (default) or Strict.",
    )
}
fn p_force() -> Value {
    query("force", "boolean", "Force an apply request, taking over fields owned by other managers. Apply patches only.")
}

fn list_params() -> Vec<Value> {
    vec![
        query("allowWatchBookmarks", "boolean", "Ask for BOOKMARK events on watches."),
        query("continue", "string", "Continue token from a previous paginated list."),
        query("fieldSelector", "string", "Restrict the results by their fields."),
        query("labelSelector", "string", "Restrict the results by their labels."),
        query("limit", "integer", "Maximum number of results to return in one page."),
        query("resourceVersion", "string", "Resource version constraint for the list or watch start."),
        query("resourceVersionMatch", "string", "How resourceVersion is applied to a list: Exact or NotOlderThan."),
        query("sendInitialEvents", "boolean", "Start a watch with synthetic ADDED events for the current state."),
        query("timeoutSeconds", "integer", "Timeout of the list or watch call."),
        query("watch", "boolean", "Watch for changes instead of listing."),
    ]
}

fn delete_params() -> Vec<Value> {
    vec![
        body(meta_ref("DeleteOptions"), false),
        p_dry_run(),
        query("gracePeriodSeconds", "integer", "Seconds before the object is deleted; 0 deletes immediately."),
        query(
            "ignoreStoreReadErrorWithClusterBreakingPotential",
            "boolean",
            "Delete objects that cannot be read from storage (unsafe).",
        ),
        query("orphanDependents", "boolean", "Deprecated: use propagationPolicy."),
        query("propagationPolicy", "string", "Garbage collection policy: Orphan, Background or Foreground."),
    ]
}

fn delete_collection_params() -> Vec<Value> {
    let mut ps = delete_params();
    ps.extend([
        query("continue", "string", "Continue token from a previous paginated list."),
        query("fieldSelector", "string", "Restrict the deleted objects by their fields."),
        query("labelSelector", "string", "Restrict the deleted objects by their labels."),
        query("limit", "integer", "Maximum number of objects to list per page."),
        query("resourceVersion", "string", "Resource version constraint for the list."),
        query("resourceVersionMatch", "string", "How resourceVersion is applied: Exact or NotOlderThan."),
        query("sendInitialEvents", "boolean", "Start a watch with synthetic ADDED events for the current state."),
        query("timeoutSeconds", "integer", "Timeout of the list call."),
    ]);
    ps.sort_by(|a, b| param_name(a).cmp(param_name(b)));
    ps
}

fn param_name(p: &Value) -> &str {
    p.get("name").and_then(Value::as_str).unwrap_or("")
}

fn write_params(schema: Value) -> Vec<Value> {
    vec![body(schema, true), p_dry_run(), p_field_manager(), p_field_validation()]
}

fn patch_params() -> Vec<Value> {
    vec![body(meta_ref("Patch"), true), p_dry_run(), p_field_manager(), p_field_validation(), p_force()]
}

/// Extra query parameters of streaming/connect subresources.
fn subresource_query_params(sub: &str) -> Vec<Value> {
    let stdio = || {
        vec![
            query("container", "string", "Container to attach to; defaults to the only container."),
            query("stderr", "boolean", "Redirect the container's standard error."),
            query("stdin", "boolean", "Redirect the container's standard input."),
            query("stdout", "boolean", "Redirect the container's standard output."),
            query("tty", "boolean", "Allocate a TTY."),
        ]
    };
    match sub {
        "exec" => {
            let mut ps = vec![query("command", "string", "Command to run, one argument per parameter.")];
            ps.extend(stdio());
            ps
        }
        "attach" => stdio(),
        "portforward" => vec![query("ports", "integer", "Ports to forward.")],
        "proxy" => vec![query("path", "string", "Path to forward to.")],
        "log" => vec![
            query("container", "string", "Container whose log to return."),
            query("follow", "boolean", "Stream the log as it grows."),
            query("insecureSkipTLSVerifyBackend", "boolean", "Skip verifying the kubelet's serving certificate."),
            query("limitBytes", "integer", "Stop after this many bytes."),
            query("previous", "boolean", "Return the log of the previous, terminated container."),
            query("sinceSeconds", "integer", "Only lines newer than this many seconds."),
            query("stream", "string", "Which stream to return: All, Stdout or Stderr."),
            query("tailLines", "integer", "Only the last lines of the log."),
            query("timestamps", "boolean", "Prefix every line with its timestamp."),
        ],
        _ => Vec::new(),
    }
}

// ---------------------------------------------------------------------------
// Operations and paths (swagger 2.0 form)

const PRODUCES: [&str; 4] =
    ["application/json", "application/yaml", "application/vnd.kubernetes.protobuf", "application/cbor"];
const WATCH_PRODUCES: [&str; 3] =
    ["application/json;stream=watch", "application/vnd.kubernetes.protobuf;stream=watch", "application/cbor-seq"];
const PATCH_CONSUMES: [&str; 5] = [
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
    "application/apply-patch+yaml",
    "application/apply-patch+cbor",
];

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

/// `Core`, `Apps`, `RbacAuthorization`, `Networking`, ... as in upstream's operation ids.
fn group_camel(group: &str) -> String {
    if group.is_empty() {
        return "Core".into();
    }
    let g = group.strip_suffix(".k8s.io").unwrap_or(group);
    g.split(['.', '-']).map(capitalize).collect()
}

/// `core_v1`, `apps_v1`, `rbacAuthorization_v1`: upstream's operation tags.
fn tag(group: &str, version: &str) -> String {
    let camel = group_camel(group);
    let mut c = camel.chars();
    let lower = match c.next() {
        Some(f) => f.to_lowercase().collect::<String>() + c.as_str(),
        None => String::new(),
    };
    format!("{lower}_{version}")
}

struct OpSpec {
    method: &'static str,
    action: &'static str,
    id: String,
    description: String,
    gvk: (String, String, String),
    params: Vec<Value>,
    consumes: Vec<&'static str>,
    produces: Vec<&'static str>,
    responses: Vec<(&'static str, &'static str, Option<Value>)>,
}

/// The responses of a write (create, replace, patch): 200 and 201 with the object, and 202
/// too when `accepted` (creates).
fn write_responses(schema: Value, accepted: bool) -> Vec<(&'static str, &'static str, Option<Value>)> {
    let mut out = vec![("200", "OK", Some(schema.clone())), ("201", "Created", Some(schema.clone()))];
    if accepted {
        out.push(("202", "Accepted", Some(schema)));
    }
    out
}

impl OpSpec {
    /// An operation without parameters that consumes anything and produces the usual media types.
    fn new(
        method: &'static str,
        action: &'static str,
        id: String,
        description: String,
        gvk: (String, String, String),
        responses: Vec<(&'static str, &'static str, Option<Value>)>,
    ) -> Self {
        OpSpec {
            method,
            action,
            id,
            description,
            gvk,
            params: Vec::new(),
            consumes: vec!["*/*"],
            produces: PRODUCES.to_vec(),
            responses,
        }
    }

    /// `create` (`post`) or `replace` (`put`): the body is the object itself.
    fn write(
        method: &'static str,
        id: String,
        description: String,
        gvk: (String, String, String),
        schema: Value,
        responses: Vec<(&'static str, &'static str, Option<Value>)>,
    ) -> Self {
        OpSpec { params: write_params(schema), ..OpSpec::new(method, method, id, description, gvk, responses) }
    }

    /// `patch`: the patch media types and parameters.
    fn patch(
        id: String,
        description: String,
        gvk: (String, String, String),
        responses: Vec<(&'static str, &'static str, Option<Value>)>,
    ) -> Self {
        // Strategic merge patch needs a built-in type's patch strategies: custom
        // resources do not accept it (kubectl then falls back to a merge patch).
        let builtin = definition_name(&gvk.0, &gvk.1, &gvk.2).is_some();
        let consumes = PATCH_CONSUMES
            .iter()
            .copied()
            .filter(|c| builtin || *c != "application/strategic-merge-patch+json")
            .collect();
        OpSpec { params: patch_params(), consumes, ..OpSpec::new("patch", "patch", id, description, gvk, responses) }
    }
}

fn operation(op: OpSpec, group: &str, version: &str) -> Value {
    let mut responses = Map::new();
    for (code, desc, schema) in op.responses {
        let mut r = json!({"description": desc});
        if let Some(s) = schema {
            r["schema"] = s;
        }
        responses.insert(code.into(), r);
    }
    responses.insert("401".into(), json!({"description": "Unauthorized"}));
    let mut m = json!({
        "description": op.description,
        "operationId": op.id,
        "consumes": op.consumes,
        "produces": op.produces,
        "schemes": ["https"],
        "tags": [tag(group, version)],
        "responses": responses,
        "x-kubernetes-action": op.action,
        "x-kubernetes-group-version-kind": {"group": op.gvk.0, "version": op.gvk.1, "kind": op.gvk.2},
    });
    if !op.params.is_empty() {
        m["parameters"] = Value::Array(op.params);
    }
    m
}

fn base_path(group: &str, version: &str) -> String {
    if group.is_empty() { format!("/api/{version}") } else { format!("/apis/{group}/{version}") }
}

/// The swagger 2.0 path items of one resource (collection, item, all-namespaces
/// list and subresources), keyed by path.
fn resource_paths(r: &ResourceInfo) -> Vec<(String, Value)> {
    let (g, v) = (r.group, r.version);
    let gv = format!("{}{}", group_camel(g), capitalize(v));
    let scope = if r.namespaced { "Namespaced" } else { "" };
    let gvk = || (g.to_string(), v.to_string(), r.kind.to_string());
    let kind_schema = || schema_ref(g, v, r.kind);
    let deleted = || {
        if r.delete_returns_object() { kind_schema() } else { meta_ref("Status") }
    };
    let list_op = |id: String| OpSpec {
        params: list_params(),
        produces: PRODUCES.iter().chain(WATCH_PRODUCES.iter()).copied().collect(),
        ..OpSpec::new(
            "get",
            "list",
            id,
            format!("list or watch objects of kind {}", r.kind),
            gvk(),
            vec![("200", "OK", Some(schema_ref(g, v, &format!("{}List", r.kind))))],
        )
    };
    let base = base_path(g, v);
    let collection = if r.namespaced {
        format!("{base}/namespaces/{{namespace}}/{}", r.resource)
    } else {
        format!("{base}/{}", r.resource)
    };
    let item = format!("{collection}/{{name}}");
    let ns_param = || path_param("namespace", "object name and auth scope, such as for teams and projects");
    let name_param = |kind: &str| path_param("name", &format!("name of the {kind}"));
    let mut out = Vec::new();
    let mut push = |path: String, path_params: Vec<Value>, ops: Vec<OpSpec>| {
        if ops.is_empty() {
            return;
        }
        let mut item = Map::new();
        for op in ops {
            let method = op.method;
            item.insert(method.into(), operation(op, g, v));
        }
        item.insert("parameters".into(), Value::Array(path_params));
        out.push((path, Value::Object(item)));
    };

    // Collection: list, create, deletecollection.
    let mut ops = Vec::new();
    if r.has_verb("list") {
        ops.push(list_op(format!("list{gv}{scope}{}", r.kind)));
    }
    if r.has_verb("create") {
        ops.push(OpSpec::write(
            "post",
            format!("create{gv}{scope}{}", r.kind),
            format!("create a {}", r.kind),
            gvk(),
            kind_schema(),
            write_responses(kind_schema(), true),
        ));
    }
    if r.has_verb("deletecollection") {
        ops.push(OpSpec {
            params: delete_collection_params(),
            ..OpSpec::new(
                "delete",
                "deletecollection",
                format!("delete{gv}Collection{scope}{}", r.kind),
                format!("delete collection of {}", r.kind),
                gvk(),
                vec![("200", "OK", Some(meta_ref("Status")))],
            )
        });
    }
    let mut coll_params = Vec::new();
    if r.namespaced {
        coll_params.push(ns_param());
    }
    coll_params.push(p_pretty());
    push(collection.clone(), coll_params.clone(), ops);

    // Item: get, replace, patch, delete.
    let mut ops = Vec::new();
    if r.has_verb("get") {
        ops.push(OpSpec::new(
            "get",
            "get",
            format!("read{gv}{scope}{}", r.kind),
            format!("read the specified {}", r.kind),
            gvk(),
            vec![("200", "OK", Some(kind_schema()))],
        ));
    }
    if r.has_verb("update") {
        ops.push(OpSpec::write(
            "put",
            format!("replace{gv}{scope}{}", r.kind),
            format!("replace the specified {}", r.kind),
            gvk(),
            kind_schema(),
            write_responses(kind_schema(), false),
        ));
    }
    if r.has_verb("patch") {
        ops.push(OpSpec::patch(
            format!("patch{gv}{scope}{}", r.kind),
            format!("partially update the specified {}", r.kind),
            gvk(),
            write_responses(kind_schema(), false),
        ));
    }
    if r.has_verb("delete") {
        ops.push(OpSpec {
            params: delete_params(),
            ..OpSpec::new(
                "delete",
                "delete",
                format!("delete{gv}{scope}{}", r.kind),
                format!("delete a {}", r.kind),
                gvk(),
                vec![("200", "OK", Some(deleted())), ("202", "Accepted", Some(deleted()))],
            )
        });
    }
    let mut item_params = vec![name_param(r.kind)];
    if r.namespaced {
        item_params.push(ns_param());
    }
    item_params.push(p_pretty());
    push(item.clone(), item_params.clone(), ops);

    // All-namespaces list.
    if r.namespaced && r.has_verb("list") {
        let op = list_op(format!("list{gv}{}ForAllNamespaces", r.kind));
        push(format!("{base}/{}", r.resource), vec![p_pretty()], vec![op]);
    }

    for s in r.subresources {
        for (path, params, ops) in subresource_paths(r, s, &gv, scope, &item, &item_params) {
            push(path, params, ops);
        }
    }
    out
}

/// Connect subresources (exec, attach, portforward, proxy) take an options kind
/// and stream raw bytes.
fn is_connect(s: &SubresourceInfo) -> bool {
    s.kind.ends_with("Options")
}

fn subresource_paths(
    r: &ResourceInfo,
    s: &SubresourceInfo,
    gv: &str,
    scope: &str,
    item: &str,
    item_params: &[Value],
) -> Vec<(String, Vec<Value>, Vec<OpSpec>)> {
    let sub_camel = capitalize(s.name);
    let gvk = || (s.group.to_string(), s.version.to_string(), s.kind.to_string());
    let path = format!("{item}/{}", s.name);
    let mut path_params: Vec<Value> = item_params.iter().filter(|p| param_name(p) != "pretty").cloned().collect();
    if let Some(n) = path_params.iter_mut().find(|p| param_name(p) == "name") {
        *n = path_param("name", &format!("name of the {}", s.kind));
    }
    if is_connect(s) {
        let mut out = Vec::new();
        for with_path in [false, true] {
            if with_path && s.name != "proxy" {
                continue;
            }
            let suffix = if with_path { "WithPath" } else { "" };
            let mut ops = Vec::new();
            for (verb, method, m_camel) in [
                ("delete", "delete", "Delete"),
                ("get", "get", "Get"),
                ("patch", "patch", "Patch"),
                ("create", "post", "Post"),
                ("update", "put", "Put"),
            ] {
                if !s.verbs.contains(&verb) {
                    continue;
                }
                ops.push(OpSpec {
                    produces: vec!["*/*"],
                    ..OpSpec::new(
                        method,
                        "connect",
                        format!("connect{gv}{m_camel}{scope}{}{sub_camel}{suffix}", r.kind),
                        format!("connect {method} requests to {} of {}", s.name, r.kind),
                        gvk(),
                        vec![("200", "OK", Some(json!({"type": "string"})))],
                    )
                });
            }
            let mut params = path_params.clone();
            if with_path {
                params.push(path_param("path", "path to the resource"));
            }
            params.extend(subresource_query_params(s.name));
            out.push((if with_path { format!("{path}/{{path}}") } else { path.clone() }, params, ops));
        }
        return out;
    }
    let schema = schema_ref(s.group, s.version, s.kind);
    let mut ops = Vec::new();
    let mut params = path_params;
    params.push(p_pretty());
    if s.name == "log" {
        params.extend(subresource_query_params("log"));
        ops.push(OpSpec {
            produces: std::iter::once("text/plain").chain(PRODUCES.iter().copied()).collect(),
            ..OpSpec::new(
                "get",
                "get",
                format!("read{gv}{scope}{}Log", r.kind),
                format!("read log of the specified {}", r.kind),
                gvk(),
                vec![("200", "OK", Some(json!({"type": "string"})))],
            )
        });
        return vec![(path, params, ops)];
    }
    if s.verbs.contains(&"get") {
        ops.push(OpSpec::new(
            "get",
            "get",
            format!("read{gv}{scope}{}{sub_camel}", r.kind),
            format!("read {} of the specified {}", s.name, r.kind),
            gvk(),
            vec![("200", "OK", Some(schema.clone()))],
        ));
    }
    if s.verbs.contains(&"create") {
        ops.push(OpSpec::write(
            "post",
            format!("create{gv}{scope}{}{sub_camel}", r.kind),
            format!("create {} of a {}", s.name, r.kind),
            gvk(),
            schema.clone(),
            write_responses(schema.clone(), true),
        ));
    }
    if s.verbs.contains(&"update") {
        ops.push(OpSpec::write(
            "put",
            format!("replace{gv}{scope}{}{sub_camel}", r.kind),
            format!("replace {} of the specified {}", s.name, r.kind),
            gvk(),
            schema.clone(),
            write_responses(schema.clone(), false),
        ));
    }
    if s.verbs.contains(&"patch") {
        ops.push(OpSpec::patch(
            format!("patch{gv}{scope}{}{sub_camel}", r.kind),
            format!("partially update {} of the specified {}", s.name, r.kind),
            gvk(),
            write_responses(schema, false),
        ));
    }
    vec![(path, params, ops)]
}

fn paths_for<'a>(resources: impl Iterator<Item = &'a &'a ResourceInfo>) -> Map<String, Value> {
    let mut paths = Map::new();
    for r in resources {
        for (path, item) in resource_paths(r) {
            paths.insert(path, item);
        }
    }
    paths
}

/// `/openapi/v2`: swagger 2.0 with every path of `resources` and every definition.
pub fn v2(resources: &[&ResourceInfo]) -> Value {
    json!({
        "swagger": "2.0",
        "info": {"title": "Kubernetes", "version": KUBERNETES_VERSION},
        "paths": paths_for(resources.iter()),
        "definitions": definitions(),
        "security": [{"BearerToken": []}],
        "securityDefinitions": {
            "BearerToken": {"type": "apiKey", "name": "authorization", "in": "header", "description": "Bearer Token authentication"}
        },
    })
}

// ---------------------------------------------------------------------------
// OpenAPI v3

/// The `/openapi/v3` path of a group/version document: `api/v1`, `apis/apps/v1`.
pub fn v3_path(group: &str, version: &str) -> String {
    if group.is_empty() { format!("api/{version}") } else { format!("apis/{group}/{version}") }
}

/// `/openapi/v3`: every group/version document with a content hash (upper-case
/// hex SHA-256 of the document's JSON), so clients can cache by URL.
pub fn v3_index(resources: &[&ResourceInfo]) -> Value {
    let mut paths = Map::new();
    for (g, versions) in groups_of(resources) {
        for v in versions {
            let Some(doc) = v3_group_version(resources, g, v) else {
                continue;
            };
            let bytes = serde_json::to_vec(&doc).unwrap_or_default();
            let hash: String = crate::discovery::sha256(&bytes).iter().map(|b| format!("{b:02X}")).collect();
            let p = v3_path(g, v);
            paths.insert(p.clone(), json!({"serverRelativeURL": format!("/openapi/v3/{p}?hash={hash}")}));
        }
    }
    json!({"paths": paths})
}

/// `/openapi/v3/api/v1`, `/openapi/v3/apis/<group>/<version>`: the paths of that
/// group/version and every schema they reach. `None` if nothing is served there.
pub fn v3_group_version(resources: &[&ResourceInfo], group: &str, version: &str) -> Option<Value> {
    let selected: Vec<&&ResourceInfo> = resources.iter().filter(|r| r.group == group && r.version == version).collect();
    if selected.is_empty() {
        return None;
    }
    let v2_paths = paths_for(selected.into_iter());
    let mut refs = BTreeSet::new();
    let mut paths = Map::new();
    for (p, item) in &v2_paths {
        let converted = convert_path_item(item);
        collect_refs(&converted, &mut refs);
        paths.insert(p.clone(), converted);
    }
    // Transitive closure over the definitions.
    let defs = definitions();
    let mut schemas = Map::new();
    let mut pending: Vec<String> = refs.iter().cloned().collect();
    while let Some(name) = pending.pop() {
        if schemas.contains_key(&name) {
            continue;
        }
        let Some(def) = defs.get(&name) else { continue };
        let converted = convert_schema(def);
        let mut inner = BTreeSet::new();
        collect_refs(&converted, &mut inner);
        schemas.insert(name, converted);
        pending.extend(inner.into_iter().filter(|n| !schemas.contains_key(n)));
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": KUBERNETES_VERSION},
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "BearerToken": {"type": "apiKey", "name": "authorization", "in": "header", "description": "Bearer Token authentication"}
            },
        },
    }))
}

const V2_PREFIX: &str = "#/definitions/";
const V3_PREFIX: &str = "#/components/schemas/";

/// Rewrite a swagger 2.0 schema for OpenAPI 3: `$ref`s point into
/// `components.schemas`, and a `$ref` with sibling keywords (a description) is
/// wrapped in `allOf`, as upstream's v3 documents do.
fn convert_schema(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut out = Map::new();
            for (k, val) in m {
                if let (true, Some(s)) = (k == "$ref", val.as_str()) {
                    let target =
                        s.strip_prefix(V2_PREFIX).map(|n| format!("{V3_PREFIX}{n}")).unwrap_or_else(|| s.into());
                    out.insert(k.clone(), Value::String(target));
                    continue;
                }
                out.insert(k.clone(), convert_schema(val));
            }
            if out.len() > 1
                && let Some(r) = out.remove("$ref")
            {
                out.insert("allOf".into(), json!([{"$ref": r}]));
            }
            Value::Object(out)
        }
        Value::Array(a) => Value::Array(a.iter().map(convert_schema).collect()),
        other => other.clone(),
    }
}

fn collect_refs(v: &Value, out: &mut BTreeSet<String>) {
    match v {
        Value::Object(m) => {
            for (k, val) in m {
                if k == "$ref" {
                    if let Some(n) = val.as_str().and_then(|s| s.strip_prefix(V3_PREFIX)) {
                        out.insert(n.to_string());
                    }
                } else {
                    collect_refs(val, out);
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| collect_refs(x, out)),
        _ => {}
    }
}

/// A swagger 2.0 non-body parameter as an OpenAPI 3 parameter.
fn convert_param(p: &Value) -> Value {
    let mut out = Map::new();
    let mut schema = Map::new();
    if let Some(m) = p.as_object() {
        for (k, v) in m {
            match k.as_str() {
                "name" | "in" | "description" | "required" => {
                    out.insert(k.clone(), v.clone());
                }
                _ => {
                    schema.insert(k.clone(), v.clone());
                }
            }
        }
    }
    out.insert("schema".into(), Value::Object(schema));
    Value::Object(out)
}

fn str_list(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|x| x.as_str().map(String::from)).collect())
        .unwrap_or_default()
}

fn convert_operation(op: &Value) -> Value {
    let Some(m) = op.as_object() else { return op.clone() };
    let consumes = str_list(m.get("consumes"));
    let produces = str_list(m.get("produces"));
    let mut out = Map::new();
    for (k, v) in m {
        match k.as_str() {
            "consumes" | "produces" | "schemes" => {}
            "parameters" => {
                let mut params = Vec::new();
                for p in v.as_array().into_iter().flatten() {
                    if p.get("in").and_then(Value::as_str) == Some("body") {
                        let schema = convert_schema(p.get("schema").unwrap_or(&Value::Null));
                        let content: Map<String, Value> =
                            consumes.iter().map(|c| (c.clone(), json!({"schema": schema}))).collect();
                        let mut rb = json!({"content": content});
                        if p.get("required").and_then(Value::as_bool) == Some(true) {
                            rb["required"] = json!(true);
                        }
                        out.insert("requestBody".into(), rb);
                    } else {
                        params.push(convert_param(p));
                    }
                }
                if !params.is_empty() {
                    out.insert("parameters".into(), Value::Array(params));
                }
            }
            "responses" => {
                let mut rs = Map::new();
                for (code, r) in v.as_object().into_iter().flatten() {
                    let mut nr = Map::new();
                    if let Some(d) = r.get("description") {
                        nr.insert("description".into(), d.clone());
                    }
                    if let Some(s) = r.get("schema") {
                        let schema = convert_schema(s);
                        let content: Map<String, Value> =
                            produces.iter().map(|c| (c.clone(), json!({"schema": schema}))).collect();
                        nr.insert("content".into(), Value::Object(content));
                    }
                    rs.insert(code.clone(), Value::Object(nr));
                }
                out.insert("responses".into(), Value::Object(rs));
            }
            _ => {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    Value::Object(out)
}

fn convert_path_item(item: &Value) -> Value {
    let Some(m) = item.as_object() else { return item.clone() };
    let mut out = Map::new();
    for (k, v) in m {
        if k == "parameters" {
            let ps: Vec<Value> = v.as_array().into_iter().flatten().map(convert_param).collect();
            out.insert(k.clone(), Value::Array(ps));
        } else {
            out.insert(k.clone(), convert_operation(v));
        }
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::all;

    fn table() -> Vec<&'static ResourceInfo> {
        all().iter().collect()
    }

    fn all_refs(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                for (k, val) in m {
                    if k == "$ref" {
                        out.push(val.as_str().unwrap_or("<non-string>").to_string());
                    } else {
                        all_refs(val, out);
                    }
                }
            }
            Value::Array(a) => a.iter().for_each(|x| all_refs(x, out)),
            _ => {}
        }
    }

    #[test]
    fn definition_names() {
        assert_eq!(definition_name("apps", "v1", "Deployment"), Some("io.k8s.api.apps.v1.Deployment"));
        assert_eq!(definition_name("autoscaling", "v1", "Scale"), Some("io.k8s.api.autoscaling.v1.Scale"));
        assert_eq!(definition_name("", "v1", "PodList"), Some("io.k8s.api.core.v1.PodList"));
        assert_eq!(definition_name("example.com", "v1", "Widget"), None);
    }

    #[test]
    fn v3_apps_v1_patch_has_field_validation_and_refs_resolve() {
        let doc = v3_group_version(&table(), "apps", "v1").unwrap_or(Value::Null);
        assert_eq!(doc["openapi"], "3.0.0");
        let paths = doc["paths"].as_object().cloned().unwrap_or_default();
        assert!(paths.keys().all(|p| p.starts_with("/apis/apps/v1/")), "only apps/v1 paths");
        let item = &paths["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"];
        let patch = &item["patch"];
        assert_eq!(patch["x-kubernetes-action"], "patch");
        assert_eq!(
            patch["x-kubernetes-group-version-kind"],
            json!({"group": "apps", "version": "v1", "kind": "Deployment"})
        );
        let names: Vec<&str> =
            patch["parameters"].as_array().into_iter().flatten().filter_map(|p| p["name"].as_str()).collect();
        for n in ["fieldValidation", "dryRun", "fieldManager", "force"] {
            assert!(names.contains(&n), "{n} missing from {names:?}");
        }
        assert!(patch["requestBody"]["content"]["application/apply-patch+yaml"]["schema"].is_object());
        assert!(patch["requestBody"]["content"]["application/strategic-merge-patch+json"].is_object());
        // Every PATCH op carrying Deployment's GVK must have fieldValidation (kubectl
        // checks the first it finds, in map order).
        for (p, item) in &paths {
            if let Some(op) = item.get("patch") {
                let has = op["parameters"].as_array().into_iter().flatten().any(|x| x["name"] == "fieldValidation");
                assert!(has, "{p}");
            }
        }
        // Every $ref points into components.schemas and resolves.
        let schemas = doc["components"]["schemas"].as_object().cloned().unwrap_or_default();
        let mut refs = Vec::new();
        all_refs(&doc, &mut refs);
        assert!(!refs.is_empty());
        for r in &refs {
            let name = r.strip_prefix("#/components/schemas/").unwrap_or_else(|| panic!("bad ref {r}"));
            assert!(schemas.contains_key(name), "unresolved {r}");
        }
        // kubectl explain finds the kind's schema by its GVK extension.
        let dep = &schemas["io.k8s.api.apps.v1.Deployment"];
        assert_eq!(dep["x-kubernetes-group-version-kind"][0]["kind"], "Deployment");
        assert!(schemas.contains_key("io.k8s.api.apps.v1.DeploymentStrategy"));
        assert!(schemas.contains_key("io.k8s.api.autoscaling.v1.Scale"));
        // A $ref with a description sibling becomes allOf.
        let spec = &dep["properties"]["spec"];
        assert_eq!(spec["allOf"][0]["$ref"], "#/components/schemas/io.k8s.api.apps.v1.DeploymentSpec");
        assert!(spec["description"].is_string());
        // Schemas not reachable from apps/v1 are left out.
        assert!(!schemas.contains_key("io.k8s.api.batch.v1.Job"));
    }

    #[test]
    fn v3_list_and_scale_operations() {
        let doc = v3_group_version(&table(), "apps", "v1").unwrap_or(Value::Null);
        let list = &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments"]["get"];
        assert_eq!(list["x-kubernetes-action"], "list");
        let names: Vec<&str> =
            list["parameters"].as_array().into_iter().flatten().filter_map(|p| p["name"].as_str()).collect();
        for n in
            ["labelSelector", "fieldSelector", "limit", "continue", "watch", "resourceVersion", "sendInitialEvents"]
        {
            assert!(names.contains(&n), "{n}");
        }
        let ok = &list["responses"]["200"]["content"]["application/json"]["schema"]["$ref"];
        assert_eq!(ok, "#/components/schemas/io.k8s.api.apps.v1.DeploymentList");
        let scale = &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale"]["put"];
        assert_eq!(scale["x-kubernetes-group-version-kind"]["kind"], "Scale");
        assert!(doc["paths"]["/apis/apps/v1/deployments"]["get"].is_object());
        assert!(v3_group_version(&table(), "apps", "v1beta1").is_none());
    }

    #[test]
    fn v2_document() {
        let doc = v2(&table());
        assert_eq!(doc["swagger"], "2.0");
        assert_eq!(doc["info"]["title"], "Kubernetes");
        let paths = doc["paths"].as_object().cloned().unwrap_or_default();
        let pod = &paths["/api/v1/namespaces/{namespace}/pods/{name}"];
        assert_eq!(pod["delete"]["x-kubernetes-action"], "delete");
        let del: Vec<&str> =
            pod["delete"]["parameters"].as_array().into_iter().flatten().filter_map(|p| p["name"].as_str()).collect();
        for n in ["gracePeriodSeconds", "propagationPolicy", "orphanDependents", "dryRun"] {
            assert!(del.contains(&n), "{n}");
        }
        assert_eq!(pod["get"]["responses"]["200"]["schema"]["$ref"], "#/definitions/io.k8s.api.core.v1.Pod");
        let exec = &paths["/api/v1/namespaces/{namespace}/pods/{name}/exec"];
        assert_eq!(exec["post"]["x-kubernetes-action"], "connect");
        assert!(exec["get"].is_object());
        assert!(paths.contains_key("/api/v1/namespaces/{namespace}/pods/{name}/proxy/{path}"));
        assert!(paths["/api/v1/namespaces/{namespace}/pods/{name}/log"]["get"].is_object());
        let review = &paths["/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"];
        assert!(review["post"].is_object());
        assert!(review.get("get").is_none());
        assert!(!paths.contains_key("/apis/authorization.k8s.io/v1/selfsubjectaccessreviews/{name}"));
        assert_eq!(
            paths["/api/v1/namespaces/{namespace}/pods/{name}/eviction"]["post"]["x-kubernetes-group-version-kind"]["group"],
            "policy"
        );
        assert!(paths.contains_key("/api/v1/namespaces/{name}/finalize"));
        assert!(paths["/api/v1/nodes/{name}"]["get"].is_object());
        assert_eq!(paths["/api/v1/nodes/{name}"]["get"]["operationId"], "readCoreV1Node");
        assert_eq!(
            paths["/apis/rbac.authorization.k8s.io/v1/namespaces/{namespace}/roles"]["get"]["tags"][0],
            "rbacAuthorization_v1"
        );
        // Every v2 ref resolves in definitions.
        let defs = definitions();
        let mut refs = Vec::new();
        all_refs(&doc["paths"], &mut refs);
        for r in refs {
            let name = r.strip_prefix("#/definitions/").unwrap_or("");
            assert!(defs.contains_key(name), "unresolved {r}");
        }
    }

    #[test]
    fn v3_index_is_stable_and_complete() {
        let t = table();
        let a = v3_index(&t);
        let b = v3_index(&t);
        assert_eq!(a, b);
        let paths = a["paths"].as_object().cloned().unwrap_or_default();
        assert!(paths.contains_key("api/v1"));
        assert!(paths.contains_key("apis/apps/v1"));
        assert!(paths.contains_key("apis/autoscaling/v1"));
        assert!(paths.contains_key("apis/autoscaling/v2"));
        let url = paths["apis/apps/v1"]["serverRelativeURL"].as_str().unwrap_or("");
        let hash = url.strip_prefix("/openapi/v3/apis/apps/v1?hash=").unwrap_or("");
        assert_eq!(hash.len(), 64);
        assert!(hash.chars().all(|c| c.is_ascii_digit() || c.is_ascii_uppercase()));
        let core = paths["api/v1"]["serverRelativeURL"].as_str().unwrap_or("");
        assert_ne!(core.rsplit('=').next(), Some(hash));
    }
}
