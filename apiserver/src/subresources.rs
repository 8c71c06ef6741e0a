//! Subresources: `status` (every kind that has one), `scale` (deployments,
//! replicasets, statefulsets, replicationcontrollers), `pods/binding` (and the
//! `bindings` resource), `namespaces/finalize`.

use crate::http::{self, Body};
use crate::objects::{self, meta_str};
use crate::request::Verb;
use crate::rest::{Change, Req, WriteOptions, decode_body, parse_patch, respond_object, with_warnings};
use crate::server::{Server, not_found_path};
use ::http::{Response, StatusCode};
use rkube_registry::resources::ResourceInfo;
use rkube_registry::selectors::LabelSelector;
use rkube_registry::status::success_status;
use rkube_registry::{ApiError, FieldError};
use serde_json::{Value, json};
use std::sync::Arc;

pub async fn dispatch(server: Arc<Server>, req: Req) -> Result<Response<Body>, ApiError> {
    let sub = req.path.subresource.clone().unwrap_or_default();
    if !req.info.has_subresource(&sub) {
        return Err(not_found_path());
    }
    let repr = http::negotiate(&req.parts.headers)?;
    match (sub.as_str(), req.verb) {
        ("status", Verb::Get) => {
            let obj = server.get_object(req.info, &req.path, req.ns(), req.name(), &req.query).await?;
            Ok(respond_object(&server, req.info, StatusCode::OK, &obj, repr, &req.query))
        }
        ("status", Verb::Update | Verb::Patch) => {
            let (change, opts) = change_of(&req)?;
            let (obj, _) = server.patch_object(req.info, &req.path, req.ns(), req.name(), change, &opts).await?;
            let resp = respond_object(&server, req.info, StatusCode::OK, &obj, repr, &req.query);
            Ok(with_warnings(resp, opts.warnings()))
        }
        ("scale", Verb::Get) => {
            let obj = server.get_object(req.info, &req.path, req.ns(), req.name(), &req.query).await?;
            Ok(http::json(StatusCode::OK, &to_scale(&scale_paths(&server, req.info), &obj)))
        }
        ("scale", Verb::Update | Verb::Patch) => scale_update(&server, &req).await,
        ("approval", Verb::Update) => {
            // CSR approval: only the Approved/Denied conditions change.
            let body = decode_body(&req)?;
            let mut new = server.get_object(req.info, &req.path, None, req.name(), &req.query).await?;
            new["status"]["conditions"] = body.pointer("/status/conditions").cloned().unwrap_or(json!([]));
            if let Some(rv) = meta_str(&body, "resourceVersion") {
                objects::meta_mut(&mut new).insert("resourceVersion".into(), json!(rv));
            }
            let opts = WriteOptions::from_req(&req, "UpdateOptions")?;
            let status_path = crate::request::ResourcePath { subresource: Some("status".into()), ..req.path.clone() };
            let obj =
                server.update_object(req.info, &status_path, None, req.name(), Change::Replace(new), &opts).await?;
            Ok(respond_object(&server, req.info, StatusCode::OK, &obj, repr, &req.query))
        }
        ("eviction", Verb::Create) => evict(&server, &req).await,
        ("token", Verb::Create) => server.token_request(&req).await,
        ("binding", Verb::Create) => bind(&server, &req, req.name(), req.query.dry_run()?).await,
        ("finalize", Verb::Update) => {
            let body = decode_body(&req)?;
            let finalizers = body.pointer("/spec/finalizers").cloned().unwrap_or(json!([]));
            let cur = server.get_object(req.info, &req.path, None, req.name(), &req.query).await?;
            let mut new = cur.clone();
            new["spec"]["finalizers"] = finalizers;
            if let Some(rv) = meta_str(&body, "resourceVersion") {
                objects::meta_mut(&mut new).insert("resourceVersion".into(), json!(rv));
            }
            let opts = WriteOptions::from_req(&req, "UpdateOptions")?;
            let obj = server.update_object(req.info, &req.path, None, req.name(), Change::Replace(new), &opts).await?;
            Ok(respond_object(&server, req.info, StatusCode::OK, &obj, repr, &req.query))
        }
        _ => Err(ApiError::method_not_allowed("the server does not allow this method on the requested resource")),
    }
}

/// The change a PUT or PATCH of a subresource asks for, and its options.
fn change_of(req: &Req) -> Result<(Change, WriteOptions), ApiError> {
    if req.verb == Verb::Update {
        let opts = WriteOptions::from_req(req, "UpdateOptions")?;
        return Ok((Change::Replace(decode_body(req)?), opts));
    }
    let mut opts = WriteOptions::from_req(req, "PatchOptions")?;
    let change = parse_patch(req, &mut opts)?;
    Ok((change, opts))
}

/// The autoscaling/v1 Scale view of an object.
/// Where a kind keeps its replica counts and selector: `.spec.replicas`,
/// `.status.replicas` and `.spec.selector` for built-in kinds; the CRD's
/// `subresources.scale` paths for custom resources (as JSON pointers).
struct ScalePaths {
    spec: String,
    status: String,
    /// A custom resource's selector path holds a string; None: `.spec.selector` object.
    selector: Option<String>,
}

fn scale_paths(server: &Server, info: &ResourceInfo) -> ScalePaths {
    let pointer = |p: &str| p.replace('.', "/");
    match server.custom(info).and_then(|cr| cr.scale.clone()) {
        Some(scale) => ScalePaths {
            spec: pointer(scale["specReplicasPath"].as_str().unwrap_or(".spec.replicas")),
            status: pointer(scale["statusReplicasPath"].as_str().unwrap_or(".status.replicas")),
            selector: Some(scale["labelSelectorPath"].as_str().map(pointer).unwrap_or_default()),
        },
        None => ScalePaths { spec: "/spec/replicas".into(), status: "/status/replicas".into(), selector: None },
    }
}

/// The autoscaling/v1 Scale view of an object.
fn to_scale(paths: &ScalePaths, obj: &Value) -> Value {
    let mut meta = serde_json::Map::new();
    for f in ["name", "namespace", "uid", "resourceVersion", "creationTimestamp"] {
        if let Some(v) = objects::meta(obj).and_then(|m| m.get(f)) {
            meta.insert(f.into(), v.clone());
        }
    }
    let selector = match &paths.selector {
        Some(p) if !p.is_empty() => obj.pointer(p).and_then(Value::as_str).unwrap_or("").to_string(),
        Some(_) => String::new(),
        None => match obj.pointer("/spec/selector") {
            Some(s) if s.get("matchLabels").is_some() || s.get("matchExpressions").is_some() => {
                LabelSelector::from_label_selector(s).map(|l| l.to_query_string()).unwrap_or_default()
            }
            Some(Value::Object(m)) => LabelSelector::from_map(m).to_query_string(),
            _ => String::new(),
        },
    };
    let mut status = json!({ "replicas": obj.pointer(&paths.status).and_then(Value::as_i64).unwrap_or(0) });
    if !selector.is_empty() {
        status["selector"] = json!(selector);
    }
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": meta,
        "spec": { "replicas": obj.pointer(&paths.spec).and_then(Value::as_i64).unwrap_or(0) },
        "status": status,
    })
}

/// Set a value at a JSON pointer, creating objects on the way.
fn set_pointer(obj: &mut Value, pointer: &str, v: Value) {
    let mut cur = obj;
    let parts: Vec<&str> = pointer.trim_start_matches('/').split('/').collect();
    for (i, part) in parts.iter().enumerate() {
        if !cur.is_object() {
            *cur = json!({});
        }
        let Some(map) = cur.as_object_mut() else { return };
        if i + 1 == parts.len() {
            map.insert(part.to_string(), v);
            return;
        }
        cur = map.entry(part.to_string()).or_insert_with(|| json!({}));
    }
}

async fn scale_update(server: &Server, req: &Req) -> Result<Response<Body>, ApiError> {
    let cur = server.get_object(req.info, &req.path, req.ns(), req.name(), &req.query).await?;
    let paths = scale_paths(server, req.info);
    let scale = to_scale(&paths, &cur);
    let (change, opts) = change_of(req)?;
    let new_scale = match change {
        Change::Replace(v) => v,
        Change::JsonPatch(p) => rkube_registry::patch::json_patch(&scale, &p)?,
        Change::MergePatch(p) | Change::StrategicMergePatch(p) | Change::Apply(p, _) => {
            rkube_registry::patch::merge_patch(&scale, &p)?
        }
    };
    let name = req.name();
    let replicas = match new_scale.pointer("/spec/replicas") {
        None => 0,
        Some(v) => v.as_i64().ok_or_else(|| {
            ApiError::invalid(
                "autoscaling",
                "Scale",
                name,
                &[FieldError::invalid("spec.replicas", v.clone(), "must be an integer")],
            )
        })?,
    };
    if replicas < 0 {
        return Err(ApiError::invalid(
            "autoscaling",
            "Scale",
            name,
            &[FieldError::invalid("spec.replicas", json!(replicas), "must be greater than or equal to 0")],
        ));
    }
    let mut new = cur.clone();
    set_pointer(&mut new, &paths.spec, json!(replicas));
    match meta_str(&new_scale, "resourceVersion").filter(|s| !s.is_empty()) {
        Some(rv) => {
            let rv = rv.to_string();
            objects::meta_mut(&mut new).insert("resourceVersion".into(), json!(rv));
        }
        None => {
            objects::meta_mut(&mut new).remove("resourceVersion");
        }
    }
    let obj = server.update_object(req.info, &req.path, req.ns(), name, Change::Replace(new), &opts).await?;
    Ok(http::json(StatusCode::OK, &to_scale(&paths, &obj)))
}

/// `pods/binding` and `bindings`: assign a pod to a node, once.
pub async fn bind(server: &Server, req: &Req, pod_name: &str, dry: bool) -> Result<Response<Body>, ApiError> {
    let body = decode_body(req)?;
    let name = if pod_name.is_empty() { objects::name(&body).to_string() } else { pod_name.to_string() };
    let node = body.pointer("/target/name").and_then(Value::as_str).unwrap_or("").to_string();
    if node.is_empty() {
        return Err(ApiError::invalid("", "Binding", &name, &[FieldError::required("target.name", "")]));
    }
    let pods = rkube_registry::resources::lookup("", "v1", "pods").ok_or_else(not_found_path)?;
    let cur = server.get_object(pods, &req.path, req.ns(), &name, &req.query).await?;
    if objects::is_deleting(&cur) {
        return Err(ApiError::conflict(
            "",
            "pods/binding",
            &name,
            &format!("pod {name} is being deleted, cannot be assigned to a host"),
        ));
    }
    let assigned = cur.pointer("/spec/nodeName").and_then(Value::as_str).unwrap_or("");
    if !assigned.is_empty() {
        return Err(ApiError::conflict(
            "",
            "pods/binding",
            &name,
            &format!("pod {name} is already assigned to node {assigned:?}"),
        ));
    }
    let mut new = cur.clone();
    new["spec"]["nodeName"] = json!(node);
    if let Some(anns) = body.pointer("/metadata/annotations").and_then(Value::as_object) {
        for (k, v) in anns {
            new["metadata"]["annotations"][k] = v.clone();
        }
    }
    let mut conds: Vec<Value> =
        new.pointer("/status/conditions").and_then(Value::as_array).cloned().unwrap_or_default();
    conds.retain(|c| c.get("type") != Some(&json!("PodScheduled")));
    conds.push(json!({"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": objects::now_rfc3339()}));
    new["status"]["conditions"] = json!(conds);
    // spec.nodeName is otherwise immutable: write it through the status path
    // (which keeps everything but status), then set nodeName directly.
    let status_path = crate::request::ResourcePath { subresource: Some("status".into()), ..req.path.clone() };
    let mut with_rv = new;
    objects::meta_mut(&mut with_rv).insert("resourceVersion".into(), cur["metadata"]["resourceVersion"].clone());
    server.bind_pod(pods, &status_path, req.ns(), &name, with_rv, dry).await?;
    Ok(http::json(StatusCode::CREATED, &success_status(None)))
}

impl Server {
    /// Store a bound pod: nodeName and the PodScheduled condition, with the
    /// read version as precondition (a concurrent binding gets a conflict).
    async fn bind_pod(
        &self,
        pods: &'static ResourceInfo,
        _path: &crate::request::ResourcePath,
        ns: Option<&str>,
        name: &str,
        new: Value,
        dry: bool,
    ) -> Result<(), ApiError> {
        let key = objects::key(pods, ns, name);
        let rv: i64 = meta_str(&new, "resourceVersion").and_then(|s| s.parse().ok()).unwrap_or(0);
        if dry {
            return Ok(());
        }
        let bytes = bytes::Bytes::from(objects::encode_for_storage(&new));
        match self.store.update(&key, bytes, rv).await {
            Ok(_) => Ok(()),
            Err(rkube_storage::StoreError::Conflict { .. }) => Err(ApiError::stale("", "pods", name)),
            Err(rkube_storage::StoreError::NotFound(_)) => Err(ApiError::not_found("", "pods", name)),
            Err(e) => Err(crate::server::store_error(e)),
        }
    }
}

/// `pods/eviction` (policy/v1 Eviction): delete a pod unless that would break
/// its PodDisruptionBudget (429 TooManyRequests, as upstream's EvictionREST);
/// an allowed eviction first records itself in the budget's status.
pub async fn evict(server: &Server, req: &Req) -> Result<Response<Body>, ApiError> {
    use k8s_openapi::api::core::v1::Pod;
    use k8s_openapi::api::policy::v1::PodDisruptionBudget;
    use rkube_controller_disruption::eviction::{self, Eviction, EvictionDenied};

    let body = decode_body(req)?;
    let name = req.name().to_string();
    let ns = req.ns().unwrap_or("").to_string();
    let dry = req.query.dry_run()?
        || body
            .pointer("/deleteOptions/dryRun")
            .and_then(Value::as_array)
            .is_some_and(|d| d.iter().any(|x| x == "All"));
    let mut opts = crate::rest::DeleteOptions { dry_run: dry, ..Default::default() };
    if let Some(o) = body.get("deleteOptions") {
        opts.grace_period = o.get("gracePeriodSeconds").and_then(Value::as_i64);
        opts.propagation = o.get("propagationPolicy").and_then(Value::as_str).map(str::to_string);
        opts.precondition_uid = o.pointer("/preconditions/uid").and_then(Value::as_str).map(str::to_string);
        opts.precondition_rv = o.pointer("/preconditions/resourceVersion").and_then(Value::as_str).map(str::to_string);
    }
    let pods = rkube_registry::resources::lookup("", "v1", "pods").ok_or_else(not_found_path)?;
    let pdbs = rkube_registry::resources::lookup("policy", "v1", "poddisruptionbudgets").ok_or_else(not_found_path)?;
    let created = || {
        http::json(
            StatusCode::CREATED,
            &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
        )
    };
    for _attempt in 0..5 {
        let pod_json = server.get_object(pods, &req.path, Some(&ns), &name, &req.query).await?;
        let pod: Pod = serde_json::from_value(pod_json.clone())
            .map_err(|e| ApiError::internal(format!("stored pod does not decode: {e}")))?;
        let mut delete_opts = opts.clone();
        if !eviction::can_ignore_pdb(&pod) {
            let (items, _) = server
                .cache
                .list(
                    &objects::prefix(pdbs, Some(&ns)),
                    server.store.current_revision().await.map_err(crate::server::store_error)?,
                )
                .await
                .map_err(crate::server::store_error)?;
            let budgets: Vec<PodDisruptionBudget> =
                items.iter().filter_map(|o| serde_json::from_slice(&o.json).ok()).collect();
            let covering = eviction::budgets_for_pod(&pod, &budgets);
            if covering.len() > 1 {
                return Err(ApiError::internal(eviction::MULTIPLE_BUDGETS_MESSAGE));
            }
            if let Some(budget) = covering.first() {
                let now = k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(k8s_openapi::jiff::Timestamp::now());
                match eviction::can_evict(budget, &pod, &now) {
                    Err(denied) => return Err(denied_error(&denied)),
                    Ok(Eviction::WithoutBudget) => {
                        if eviction::should_enforce_resource_version(&pod) {
                            delete_opts.precondition_rv = pod.metadata.resource_version.clone();
                        }
                    }
                    Ok(Eviction::Budget(status)) => {
                        if !dry {
                            let mut b = serde_json::to_value(budget).unwrap_or_default();
                            b["status"] = serde_json::to_value(&status).unwrap_or_default();
                            let bname = budget.metadata.name.clone().unwrap_or_default();
                            let path = crate::request::ResourcePath {
                                subresource: Some("status".into()),
                                ..Default::default()
                            };
                            let w = WriteOptions::internal("kube-apiserver");
                            match server.update_object(pdbs, &path, Some(&ns), &bname, Change::Replace(b), &w).await {
                                Ok(_) => {}
                                Err(e) if e.code == 409 => continue,
                                Err(e) => return Err(e),
                            }
                        }
                    }
                }
            }
        }
        return match server.delete_object(pods, &req.path, Some(&ns), &name, &delete_opts).await {
            Ok(_) => Ok(created()),
            Err(e) if e.code == 409 && delete_opts.precondition_rv.is_some() && opts.precondition_rv.is_none() => {
                Err(denied_error(&EvictionDenied::still_processing(&name)))
            }
            Err(e) => Err(e),
        };
    }
    Err(ApiError::too_many_requests("the eviction could not record itself in the disruption budget; please retry", 1))
}

fn denied_error(denied: &rkube_controller_disruption::eviction::EvictionDenied) -> ApiError {
    use rkube_controller_disruption::eviction::{DISRUPTION_BUDGET_CAUSE, EvictionDenied};
    match denied {
        EvictionDenied::TooManyRequests { retry_after_seconds, cause } => {
            let mut e = ApiError::too_many_requests(denied.message(), *retry_after_seconds);
            e.causes = vec![json!({"reason": DISRUPTION_BUDGET_CAUSE, "message": cause})];
            e
        }
        EvictionDenied::Forbidden { .. } => ApiError::forbidden(denied.message()),
    }
}
