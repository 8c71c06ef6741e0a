//! The audit log: upstream's `audit.k8s.io/v1` Policy (`--audit-policy-file`),
//! Event documents, and the log backend (`--audit-log-path`, rotation by
//! `--audit-log-maxsize` / `--audit-log-maxbackup` / `--audit-log-maxage`).
//!
//! - [`Policy`] decides, per request, the [`Level`] (first matching rule wins;
//!   no match is `None`) and which [`Stage`]s are omitted.
//! - [`event`] builds one Event: `Metadata` carries who/what/when and the
//!   response status, `Request` adds the request body, `RequestResponse` the
//!   response body too.
//! - [`AuditLog`] writes events as JSON lines from a dedicated writer thread fed
//!   by a bounded channel, so a request only pays for a channel send. A file
//!   rotates like upstream's lumberjack: when a write would pass the size limit
//!   the file is renamed to `<name>-<UTC time 2006-01-02T15-04-05.000><ext>` and
//!   a new one started; old backups beyond the count or age limit are removed.

use chrono::{DateTime, NaiveDateTime, SecondsFormat, Utc};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;

/// How much of a request is recorded. Ordered: `None < Metadata < Request < RequestResponse`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
pub enum Level {
    None,
    Metadata,
    Request,
    RequestResponse,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::None => "None",
            Level::Metadata => "Metadata",
            Level::Request => "Request",
            Level::RequestResponse => "RequestResponse",
        }
    }
}

/// When in a request's life an event is emitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize)]
pub enum Stage {
    RequestReceived,
    /// Long-running requests (watch): headers sent, body not finished.
    ResponseStarted,
    ResponseComplete,
    Panic,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::RequestReceived => "RequestReceived",
            Stage::ResponseStarted => "ResponseStarted",
            Stage::ResponseComplete => "ResponseComplete",
            Stage::Panic => "Panic",
        }
    }
}

/// The authenticated user, as the Event's `user` (authentication.k8s.io UserInfo).
pub use rkube_registry::admission::UserInfo;

/// Everything about a request the policy and the event need.
#[derive(Clone, Debug, Default)]
pub struct RequestAttrs {
    /// The `Audit-ID` (from the request header, or a fresh UUID).
    pub audit_id: String,
    /// Path and query, as received.
    pub request_uri: String,
    /// Kubernetes verb for resource requests (`get`, `list`, `watch`, `create`,
    /// `update`, `patch`, `delete`, `deletecollection`); the lowercase HTTP
    /// method for non-resource requests.
    pub verb: String,
    pub user: UserInfo,
    pub source_ips: Vec<String>,
    pub user_agent: String,
    /// True for `/api/...` and `/apis/<group>/<version>/...` object paths.
    pub resource_request: bool,
    /// "" for the core group.
    pub api_group: String,
    pub api_version: String,
    pub resource: String,
    pub subresource: String,
    pub namespace: String,
    pub name: String,
    pub received: DateTime<Utc>,
    /// Annotations to carry (e.g. `authorization.k8s.io/decision`).
    pub annotations: BTreeMap<String, String>,
}

impl RequestAttrs {
    /// The request path without the query.
    pub fn path(&self) -> &str {
        self.request_uri.split('?').next().unwrap_or("")
    }
}

// ---- policy ----

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PolicyFile {
    #[serde(default)]
    api_version: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    rules: Vec<RuleFile>,
    #[serde(default)]
    omit_stages: Vec<Stage>,
    #[serde(default)]
    omit_managed_fields: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RuleFile {
    level: Option<Level>,
    #[serde(default)]
    users: Vec<String>,
    #[serde(default)]
    user_groups: Vec<String>,
    #[serde(default)]
    verbs: Vec<String>,
    #[serde(default)]
    resources: Vec<GroupResources>,
    #[serde(default)]
    namespaces: Vec<String>,
    #[serde(default, rename = "nonResourceURLs")]
    non_resource_urls: Vec<String>,
    #[serde(default)]
    omit_stages: Vec<Stage>,
    omit_managed_fields: Option<bool>,
}

/// One `resources` entry of a rule.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct GroupResources {
    #[serde(default)]
    group: String,
    #[serde(default)]
    resources: Vec<String>,
    #[serde(default)]
    resource_names: Vec<String>,
}

#[derive(Clone, Debug)]
struct Rule {
    level: Level,
    users: Vec<String>,
    user_groups: Vec<String>,
    verbs: Vec<String>,
    resources: Vec<GroupResources>,
    namespaces: Vec<String>,
    non_resource_urls: Vec<String>,
    omit_stages: Vec<Stage>,
    omit_managed_fields: Option<bool>,
}

/// What the policy decided for one request.
#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    pub level: Level,
    /// The policy's and the matching rule's `omitStages`.
    pub omit_stages: Vec<Stage>,
    /// Drop `metadata.managedFields` from logged objects.
    pub omit_managed_fields: bool,
}

impl Decision {
    /// Whether an event at this stage is written at all.
    pub fn records(&self, stage: Stage) -> bool {
        self.level > Level::None && !self.omit_stages.contains(&stage)
    }
}

/// An audit policy (`audit.k8s.io/v1` `Policy`).
#[derive(Clone, Debug)]
pub struct Policy {
    rules: Vec<Rule>,
    omit_stages: Vec<Stage>,
    omit_managed_fields: bool,
}

impl Policy {
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
        Self::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Parse and validate a Policy document (YAML or JSON).
    pub fn parse(text: &str) -> Result<Self, String> {
        let f: PolicyFile = serde_yaml::from_str(text).map_err(|e| format!("invalid audit Policy: {e}"))?;
        if f.kind != "Policy" {
            return Err(format!("kind must be Policy, got {:?}", f.kind));
        }
        if !matches!(f.api_version.as_str(), "audit.k8s.io/v1" | "audit.k8s.io/v1beta1" | "audit.k8s.io/v1alpha1") {
            return Err(format!("apiVersion must be audit.k8s.io/v1, got {:?}", f.api_version));
        }
        let mut rules = Vec::new();
        for (i, r) in f.rules.into_iter().enumerate() {
            let level = r.level.ok_or_else(|| format!("rules[{i}].level: Required value"))?;
            if !r.non_resource_urls.is_empty() && (!r.resources.is_empty() || !r.namespaces.is_empty()) {
                return Err(format!("rules[{i}]: rules cannot apply to both regular resources and non-resource URLs"));
            }
            for u in &r.non_resource_urls {
                if u.is_empty() || (u != "*" && !u.starts_with('/')) || u[..u.len() - 1].contains('*') {
                    return Err(format!("rules[{i}].nonResourceURLs: invalid {u:?}"));
                }
            }
            for (j, g) in r.resources.iter().enumerate() {
                if !g.resource_names.is_empty() && g.resources.is_empty() {
                    return Err(format!("rules[{i}].resources[{j}].resourceNames: requires resources"));
                }
                for res in &g.resources {
                    let bad_wildcard =
                        res.contains('*') && !(res == "*" || res.starts_with("*/") || res.ends_with("/*"));
                    if res.is_empty() || bad_wildcard {
                        return Err(format!("rules[{i}].resources[{j}].resources: invalid {res:?}"));
                    }
                }
            }
            rules.push(Rule {
                level,
                users: r.users,
                user_groups: r.user_groups,
                verbs: r.verbs,
                resources: r.resources,
                namespaces: r.namespaces,
                non_resource_urls: r.non_resource_urls,
                omit_stages: r.omit_stages,
                omit_managed_fields: r.omit_managed_fields,
            });
        }
        Ok(Policy { rules, omit_stages: f.omit_stages, omit_managed_fields: f.omit_managed_fields })
    }

    /// The level for a request: the first matching rule's, `None` when no rule matches.
    pub fn level(&self, attrs: &RequestAttrs) -> Level {
        self.evaluate(attrs).level
    }

    /// The full decision: level, omitted stages, managed-fields omission.
    pub fn evaluate(&self, attrs: &RequestAttrs) -> Decision {
        match self.rules.iter().find(|r| r.matches(attrs)) {
            Some(r) => {
                let mut omit = self.omit_stages.clone();
                omit.extend(r.omit_stages.iter().copied().filter(|s| !self.omit_stages.contains(s)));
                Decision {
                    level: r.level,
                    omit_stages: omit,
                    omit_managed_fields: r.omit_managed_fields.unwrap_or(self.omit_managed_fields),
                }
            }
            None => Decision {
                level: Level::None,
                omit_stages: self.omit_stages.clone(),
                omit_managed_fields: self.omit_managed_fields,
            },
        }
    }
}

impl Rule {
    fn matches(&self, a: &RequestAttrs) -> bool {
        if !self.users.is_empty() && !self.users.contains(&a.user.username) {
            return false;
        }
        if !self.user_groups.is_empty() && !a.user.groups.iter().any(|g| self.user_groups.contains(g)) {
            return false;
        }
        if !self.verbs.is_empty() && !self.verbs.contains(&a.verb) {
            return false;
        }
        if !self.namespaces.is_empty() || !self.resources.is_empty() {
            return self.matches_resource(a);
        }
        if !self.non_resource_urls.is_empty() {
            return self.matches_non_resource(a);
        }
        true
    }

    fn matches_resource(&self, a: &RequestAttrs) -> bool {
        if !a.resource_request {
            return false;
        }
        // Cluster-scoped requests have namespace "", which `""` in the list matches.
        if !self.namespaces.is_empty() && !self.namespaces.contains(&a.namespace) {
            return false;
        }
        if self.resources.is_empty() {
            return true;
        }
        let combined =
            if a.subresource.is_empty() { a.resource.clone() } else { format!("{}/{}", a.resource, a.subresource) };
        self.resources.iter().any(|gr| {
            if gr.group != a.api_group {
                return false;
            }
            if gr.resources.is_empty() {
                return true;
            }
            if !gr.resource_names.is_empty() && !gr.resource_names.contains(&a.name) {
                return false;
            }
            gr.resources.iter().any(|res| {
                res == &combined
                    || res == "*"
                    || (!a.subresource.is_empty() && res.strip_prefix("*/") == Some(a.subresource.as_str()))
                    || res.strip_suffix("/*") == Some(a.resource.as_str())
            })
        })
    }

    fn matches_non_resource(&self, a: &RequestAttrs) -> bool {
        if a.resource_request {
            return false;
        }
        let path = a.path();
        self.non_resource_urls.iter().any(|u| u == path || u.strip_suffix('*').is_some_and(|p| path.starts_with(p)))
    }
}

// ---- events ----

/// Upstream's MicroTime: RFC 3339 with microseconds, UTC.
fn micro_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// A copy of `obj` without `metadata.managedFields` (also inside list items).
pub fn omit_managed_fields(obj: &Value) -> Value {
    let mut v = obj.clone();
    if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove("managedFields");
    }
    if let Some(items) = v.get_mut("items").and_then(Value::as_array_mut) {
        for it in items {
            if let Some(m) = it.get_mut("metadata").and_then(Value::as_object_mut) {
                m.remove("managedFields");
            }
        }
    }
    v
}

/// Build one audit Event. `requestObject` is kept from level `Request`,
/// `responseObject` at `RequestResponse`; a `Status` response fills
/// `responseStatus` (status, message, reason, details) at every level.
/// `RequestReceived` events carry no response. The caller skips level `None`.
pub fn event(
    level: Level,
    stage: Stage,
    attrs: &RequestAttrs,
    response_code: u16,
    request_obj: Option<&Value>,
    response_obj: Option<&Value>,
) -> Value {
    let mut ev = Map::new();
    ev.insert("kind".into(), json!("Event"));
    ev.insert("apiVersion".into(), json!("audit.k8s.io/v1"));
    ev.insert("level".into(), json!(level.as_str()));
    ev.insert("auditID".into(), json!(attrs.audit_id));
    ev.insert("stage".into(), json!(stage.as_str()));
    ev.insert("requestURI".into(), json!(attrs.request_uri));
    ev.insert("verb".into(), json!(attrs.verb));
    ev.insert("user".into(), attrs.user.to_value());
    if !attrs.source_ips.is_empty() {
        ev.insert("sourceIPs".into(), json!(attrs.source_ips));
    }
    if !attrs.user_agent.is_empty() {
        ev.insert("userAgent".into(), json!(attrs.user_agent));
    }
    if attrs.resource_request {
        let mut r = Map::new();
        for (k, v) in [
            ("resource", &attrs.resource),
            ("namespace", &attrs.namespace),
            ("name", &attrs.name),
            ("apiGroup", &attrs.api_group),
            ("apiVersion", &attrs.api_version),
            ("subresource", &attrs.subresource),
        ] {
            if !v.is_empty() {
                r.insert(k.into(), json!(v));
            }
        }
        ev.insert("objectRef".into(), Value::Object(r));
    }
    if stage != Stage::RequestReceived {
        let mut st = Map::new();
        st.insert("metadata".into(), json!({}));
        if let Some(s) = response_obj.filter(|o| o.get("kind").and_then(Value::as_str) == Some("Status")) {
            for k in ["status", "message", "reason", "details"] {
                if let Some(v) = s.get(k).filter(|v| !v.is_null() && v.as_str() != Some("")) {
                    st.insert(k.into(), v.clone());
                }
            }
        }
        st.insert("code".into(), json!(response_code));
        ev.insert("responseStatus".into(), Value::Object(st));
    }
    if level >= Level::Request
        && let Some(o) = request_obj
    {
        ev.insert("requestObject".into(), o.clone());
    }
    if level >= Level::RequestResponse
        && stage != Stage::RequestReceived
        && let Some(o) = response_obj
    {
        ev.insert("responseObject".into(), o.clone());
    }
    ev.insert("requestReceivedTimestamp".into(), json!(micro_time(attrs.received)));
    ev.insert("stageTimestamp".into(), json!(micro_time(Utc::now())));
    if !attrs.annotations.is_empty() {
        ev.insert("annotations".into(), json!(attrs.annotations));
    }
    Value::Object(ev)
}

// ---- the log backend ----

/// Events waiting for the writer; beyond this, events are dropped (counted)
/// rather than stall requests, as upstream's buffered backend does.
const QUEUE: usize = 10_000;
/// lumberjack's size limit when none is given.
const DEFAULT_MAX_MB: u64 = 100;

enum Msg {
    Event(Value),
    Flush(mpsc::Sender<()>),
}

/// The audit log backend. Cheap to clone; the writer thread ends when the last
/// clone is dropped, after writing what was queued.
#[derive(Clone)]
pub struct AuditLog {
    tx: mpsc::SyncSender<Msg>,
    dropped: Arc<AtomicU64>,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog").field("dropped", &self.dropped()).finish()
    }
}

impl AuditLog {
    /// Open `--audit-log-path` (`-` is stdout). `max_size_mb` 0 means
    /// lumberjack's default of 100 MB; `max_backups` / `max_age_days` 0 keep
    /// every backup.
    pub fn open(path: &str, max_size_mb: u64, max_backups: usize, max_age_days: u64) -> Result<Self, String> {
        let max_bytes = if max_size_mb == 0 { DEFAULT_MAX_MB } else { max_size_mb }.saturating_mul(1024 * 1024);
        Self::open_with_limit(path, max_bytes, max_backups, max_age_days)
    }

    /// As [`AuditLog::open`] with the size limit in bytes.
    pub fn open_with_limit(path: &str, max_bytes: u64, max_backups: usize, max_age_days: u64) -> Result<Self, String> {
        let sink = if path == "-" {
            Sink::Stdout
        } else {
            Sink::File(Rotating::open(PathBuf::from(path), max_bytes.max(1), max_backups, max_age_days)?)
        };
        let (tx, rx) = mpsc::sync_channel(QUEUE);
        std::thread::Builder::new()
            .name("audit-log".into())
            .spawn(move || writer(rx, sink))
            .map_err(|e| format!("starting the audit log writer: {e}"))?;
        Ok(AuditLog { tx, dropped: Arc::new(AtomicU64::new(0)) })
    }

    /// Queue one event; never blocks (a full queue drops the event).
    pub fn log(&self, event: Value) {
        if self.tx.try_send(Msg::Event(event)).is_err() {
            let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if n.is_power_of_two() {
                tracing::warn!(dropped = n, "audit log queue full: events dropped");
            }
        }
    }

    /// Wait until everything queued so far is written (blocking; tests and shutdown).
    pub fn flush(&self) {
        let (tx, rx) = mpsc::channel();
        if self.tx.send(Msg::Flush(tx)).is_ok() {
            let _ = rx.recv();
        }
    }

    /// Events dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

enum Sink {
    Stdout,
    File(Rotating),
}

impl Sink {
    fn write(&mut self, line: &[u8]) -> std::io::Result<()> {
        match self {
            Sink::Stdout => std::io::stdout().lock().write_all(line),
            Sink::File(f) => f.write(line),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Sink::Stdout => std::io::stdout().lock().flush(),
            Sink::File(f) => f.out.flush(),
        }
    }
}

fn writer(rx: mpsc::Receiver<Msg>, mut sink: Sink) {
    let handle = |msg: Msg, sink: &mut Sink| match msg {
        Msg::Event(v) => {
            let mut line = serde_json::to_vec(&v).unwrap_or_default();
            line.push(b'\n');
            if let Err(e) = sink.write(&line) {
                tracing::warn!(error = %e, "writing the audit log");
            }
        }
        Msg::Flush(done) => {
            let _ = sink.flush();
            let _ = done.send(());
        }
    };
    while let Ok(msg) = rx.recv() {
        handle(msg, &mut sink);
        // Drain what else is queued before paying for a flush.
        while let Ok(msg) = rx.try_recv() {
            handle(msg, &mut sink);
        }
        if let Err(e) = sink.flush() {
            tracing::warn!(error = %e, "flushing the audit log");
        }
    }
}

/// A file that rotates like lumberjack.
struct Rotating {
    path: PathBuf,
    out: BufWriter<File>,
    size: u64,
    max_bytes: u64,
    max_backups: usize,
    max_age_days: u64,
}

const BACKUP_TIME_FORMAT: &str = "%Y-%m-%dT%H-%M-%S%.3f";

fn open_append(path: &Path) -> Result<File, String> {
    let mut o = OpenOptions::new();
    o.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    o.open(path).map_err(|e| format!("opening audit log {}: {e}", path.display()))
}

impl Rotating {
    fn open(path: PathBuf, max_bytes: u64, max_backups: usize, max_age_days: u64) -> Result<Self, String> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        }
        let file = open_append(&path)?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        let r = Rotating { path, out: BufWriter::new(file), size, max_bytes, max_backups, max_age_days };
        r.mill();
        Ok(r)
    }

    /// `(dir, "audit", ".log")` for `dir/audit.log`.
    fn parts(&self) -> (PathBuf, String, String) {
        let dir = self.path.parent().map(Path::to_path_buf).unwrap_or_default();
        let stem = self.path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        let ext = self.path.extension().map(|e| format!(".{}", e.to_string_lossy())).unwrap_or_default();
        (dir, stem, ext)
    }

    fn write(&mut self, line: &[u8]) -> std::io::Result<()> {
        let len = line.len() as u64;
        if self.size > 0 && self.size + len > self.max_bytes {
            self.rotate()?;
        }
        self.out.write_all(line)?;
        self.size += len;
        Ok(())
    }

    fn rotate(&mut self) -> std::io::Result<()> {
        self.out.flush()?;
        let (dir, stem, ext) = self.parts();
        let mut t = Utc::now();
        let backup = loop {
            let name = format!("{stem}-{}{ext}", t.format(BACKUP_TIME_FORMAT));
            let p = dir.join(name);
            if !p.exists() {
                break p;
            }
            t += chrono::Duration::milliseconds(1);
        };
        std::fs::rename(&self.path, &backup)?;
        let file = open_append(&self.path).map_err(std::io::Error::other)?;
        self.out = BufWriter::new(file);
        self.size = 0;
        self.mill();
        Ok(())
    }

    /// Remove backups beyond `max_backups` (newest kept) and older than `max_age_days`.
    fn mill(&self) {
        if self.max_backups == 0 && self.max_age_days == 0 {
            return;
        }
        let (dir, stem, ext) = self.parts();
        let read_dir = if dir.as_os_str().is_empty() { Path::new(".") } else { dir.as_path() };
        let Ok(entries) = std::fs::read_dir(read_dir) else { return };
        let prefix = format!("{stem}-");
        let mut backups: Vec<(NaiveDateTime, PathBuf)> = entries
            .filter_map(Result::ok)
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                let ts = name.strip_prefix(&prefix)?.strip_suffix(ext.as_str())?;
                let t = NaiveDateTime::parse_from_str(ts, BACKUP_TIME_FORMAT).ok()?;
                Some((t, e.path()))
            })
            .collect();
        backups.sort_by_key(|b| std::cmp::Reverse(b.0));
        let cutoff = (self.max_age_days > 0)
            .then(|| Utc::now().naive_utc() - chrono::Duration::days(self.max_age_days.min(100_000) as i64));
        for (i, (t, p)) in backups.iter().enumerate() {
            let too_many = self.max_backups > 0 && i >= self.max_backups;
            let too_old = cutoff.is_some_and(|c| *t < c);
            if too_many || too_old {
                let _ = std::fs::remove_file(p);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs(user: &str, groups: &[&str], verb: &str) -> RequestAttrs {
        RequestAttrs {
            audit_id: "2b8c5f2a-0000-4000-8000-000000000001".into(),
            request_uri: "/api/v1/namespaces/default/pods/web?timeout=30s".into(),
            verb: verb.into(),
            user: UserInfo {
                username: user.into(),
                groups: groups.iter().map(|g| g.to_string()).collect(),
                ..Default::default()
            },
            source_ips: vec!["10.0.0.7".into()],
            user_agent: "kubectl/v1.33.0".into(),
            resource_request: true,
            api_version: "v1".into(),
            resource: "pods".into(),
            namespace: "default".into(),
            name: "web".into(),
            received: Utc::now(),
            ..Default::default()
        }
    }

    fn nonresource(path: &str) -> RequestAttrs {
        RequestAttrs { request_uri: path.into(), verb: "get".into(), received: Utc::now(), ..Default::default() }
    }

    const POLICY: &str = r#"
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: None
  users: ["system:kube-proxy"]
  verbs: [watch]
  resources:
  - group: ""
    resources: [endpoints, services]
- level: None
  userGroups: ["system:nodes"]
  verbs: [get]
- level: None
  nonResourceURLs: ["/healthz*", /version]
- level: RequestResponse
  resources:
  - group: ""
    resources: [pods/log, "*/status"]
- level: Request
  resources:
  - group: ""
    resources: [configmaps]
    resourceNames: [controller-leader]
  namespaces: [kube-system]
- level: Metadata
  resources:
  - group: ""
    resources: [secrets, configmaps]
  omitStages: [ResponseStarted]
- level: Request
  resources:
  - group: apps
    resources: ["deployments/*"]
- level: RequestResponse
  namespaces: [""]
- level: Metadata
  omitManagedFields: true
"#;

    #[test]
    fn first_matching_rule_wins() {
        let p = Policy::parse(POLICY).unwrap();
        // users + verbs + resources all must match.
        let mut a = attrs("system:kube-proxy", &[], "watch");
        a.resource = "endpoints".into();
        assert_eq!(p.level(&a), Level::None);
        a.verb = "list".into();
        assert_eq!(p.level(&a), Level::Metadata); // falls to the catch-all
        // userGroups: any group.
        let a = attrs("system:node:n1", &["system:authenticated", "system:nodes"], "get");
        assert_eq!(p.level(&a), Level::None);
        // nonResourceURLs with a trailing wildcard and exact.
        assert_eq!(p.level(&nonresource("/healthz/etcd")), Level::None);
        assert_eq!(p.level(&nonresource("/version?x=1")), Level::None);
        assert_eq!(p.level(&nonresource("/versionz")), Level::Metadata);
        // Subresources: exact "pods/log", "*/status"; plain "pods" does not match them.
        let mut a = attrs("alice", &[], "get");
        assert_eq!(p.level(&a), Level::Metadata);
        a.subresource = "log".into();
        assert_eq!(p.level(&a), Level::RequestResponse);
        a.subresource = "status".into();
        a.resource = "nodes".into();
        assert_eq!(p.level(&a), Level::RequestResponse);
        // resourceNames + namespaces.
        let mut a = attrs("alice", &[], "update");
        a.resource = "configmaps".into();
        a.namespace = "kube-system".into();
        a.name = "controller-leader".into();
        assert_eq!(p.level(&a), Level::Request);
        a.name = "other".into();
        assert_eq!(p.level(&a), Level::Metadata);
        // "resource/*" covers the resource and its subresources, only in its group.
        let mut a = attrs("alice", &[], "create");
        a.api_group = "apps".into();
        a.resource = "deployments".into();
        assert_eq!(p.level(&a), Level::Request);
        a.subresource = "scale".into();
        assert_eq!(p.level(&a), Level::Request);
        a.api_group = "extensions".into();
        assert_eq!(p.level(&a), Level::Metadata);
        // namespaces [""] = cluster-scoped resource requests only.
        let mut a = attrs("alice", &[], "get");
        a.namespace.clear();
        a.resource = "namespaces".into();
        assert_eq!(p.level(&a), Level::RequestResponse);
        // No rule: None.
        let empty = Policy::parse("apiVersion: audit.k8s.io/v1\nkind: Policy\nrules: []").unwrap();
        assert_eq!(empty.level(&attrs("alice", &[], "get")), Level::None);
    }

    #[test]
    fn stages_and_managed_fields() {
        let p = Policy::parse(POLICY).unwrap();
        let mut a = attrs("alice", &[], "get");
        a.resource = "secrets".into();
        let d = p.evaluate(&a);
        assert_eq!(d.level, Level::Metadata);
        assert!(!d.records(Stage::RequestReceived));
        assert!(!d.records(Stage::ResponseStarted));
        assert!(d.records(Stage::ResponseComplete));
        assert!(!d.omit_managed_fields);
        let d = p.evaluate(&attrs("alice", &[], "get"));
        assert!(d.omit_managed_fields);
        assert!(d.records(Stage::ResponseStarted));
        let none = p.evaluate(&nonresource("/healthz"));
        assert!(!none.records(Stage::ResponseComplete));
        let obj = json!({"metadata": {"name": "x", "managedFields": [{"manager": "m"}]}, "items": [{"metadata": {"managedFields": []}}]});
        let stripped = omit_managed_fields(&obj);
        assert!(stripped.pointer("/metadata/managedFields").is_none());
        assert!(stripped.pointer("/items/0/metadata/managedFields").is_none());
        assert_eq!(stripped.pointer("/metadata/name"), Some(&json!("x")));
    }

    #[test]
    fn invalid_policies() {
        for bad in [
            "apiVersion: audit.k8s.io/v1\nkind: Nope\nrules: []",
            "apiVersion: v1\nkind: Policy\nrules: []",
            "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- users: [a]",
            "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: Verbose",
            "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: None\n  nonResourceURLs: [/x]\n  namespaces: [a]",
            "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: None\n  nonResourceURLs: [\"/a*b\"]",
            "apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages: [Later]\nrules: []",
            "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: None\n  resources: [{group: '', resourceNames: [x]}]",
            "]]",
        ] {
            assert!(Policy::parse(bad).is_err(), "accepted: {bad}");
        }
    }

    #[test]
    fn levels_include_and_omit_objects() {
        let mut a = attrs("alice", &["system:authenticated"], "create");
        a.annotations.insert("authorization.k8s.io/decision".into(), "allow".into());
        let req = json!({"kind": "Pod", "metadata": {"name": "web"}});
        let resp = json!({"kind": "Pod", "metadata": {"name": "web", "uid": "u1"}});
        let m = event(Level::Metadata, Stage::ResponseComplete, &a, 201, Some(&req), Some(&resp));
        assert!(m.get("requestObject").is_none() && m.get("responseObject").is_none());
        let r = event(Level::Request, Stage::ResponseComplete, &a, 201, Some(&req), Some(&resp));
        assert_eq!(r["requestObject"], req);
        assert!(r.get("responseObject").is_none());
        let rr = event(Level::RequestResponse, Stage::ResponseComplete, &a, 201, Some(&req), Some(&resp));
        assert_eq!(rr["requestObject"], req);
        assert_eq!(rr["responseObject"], resp);
        // RequestReceived: no response at all.
        let rec = event(Level::RequestResponse, Stage::RequestReceived, &a, 0, Some(&req), Some(&resp));
        assert!(rec.get("responseStatus").is_none() && rec.get("responseObject").is_none());
        // A Status response fills responseStatus even at Metadata.
        let status = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": "pods \"web\" already exists", "reason": "AlreadyExists", "code": 409,
            "details": {"name": "web", "kind": "pods"}});
        let e = event(Level::Metadata, Stage::ResponseComplete, &a, 409, Some(&req), Some(&status));
        assert_eq!(
            e["responseStatus"],
            json!({"metadata": {}, "status": "Failure", "message": "pods \"web\" already exists",
                "reason": "AlreadyExists", "details": {"name": "web", "kind": "pods"}, "code": 409})
        );
        assert!(e.get("responseObject").is_none());
    }

    #[test]
    fn event_shape() {
        let mut a = attrs("alice", &["devs", "system:authenticated"], "get");
        a.user.uid = "uid-1".into();
        a.annotations.insert("authorization.k8s.io/decision".into(), "allow".into());
        let e = event(Level::Metadata, Stage::ResponseComplete, &a, 200, None, None);
        assert_eq!(e["kind"], "Event");
        assert_eq!(e["apiVersion"], "audit.k8s.io/v1");
        assert_eq!(e["level"], "Metadata");
        assert_eq!(e["auditID"], a.audit_id);
        assert_eq!(e["stage"], "ResponseComplete");
        assert_eq!(e["requestURI"], "/api/v1/namespaces/default/pods/web?timeout=30s");
        assert_eq!(e["verb"], "get");
        assert_eq!(e["user"], json!({"username": "alice", "uid": "uid-1", "groups": ["devs", "system:authenticated"]}));
        assert_eq!(e["sourceIPs"], json!(["10.0.0.7"]));
        assert_eq!(e["userAgent"], "kubectl/v1.33.0");
        // Core group: no apiGroup; empty subresource omitted.
        assert_eq!(
            e["objectRef"],
            json!({"resource": "pods", "namespace": "default", "name": "web", "apiVersion": "v1"})
        );
        assert_eq!(e["responseStatus"], json!({"metadata": {}, "code": 200}));
        assert_eq!(e["annotations"], json!({"authorization.k8s.io/decision": "allow"}));
        for k in ["requestReceivedTimestamp", "stageTimestamp"] {
            let s = e[k].as_str().unwrap();
            // 2024-05-01T12:34:56.123456Z
            assert_eq!(s.len(), 27, "{s}");
            assert!(s.ends_with('Z') && s.as_bytes()[19] == b'.', "{s}");
            assert!(DateTime::parse_from_rfc3339(s).is_ok());
        }
        let t0 = DateTime::parse_from_rfc3339(e["requestReceivedTimestamp"].as_str().unwrap()).unwrap();
        let t1 = DateTime::parse_from_rfc3339(e["stageTimestamp"].as_str().unwrap()).unwrap();
        assert!(t1 >= t0);
        // Non-resource requests have no objectRef.
        let n = event(Level::Metadata, Stage::ResponseComplete, &nonresource("/healthz"), 200, None, None);
        assert!(n.get("objectRef").is_none());
        assert!(n.get("annotations").is_none());
    }

    fn read_lines(p: &Path) -> Vec<Value> {
        std::fs::read_to_string(p)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}")))
            .collect()
    }

    #[test]
    fn writes_json_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/audit.log");
        let log = AuditLog::open(path.to_str().unwrap(), 0, 0, 0).unwrap();
        let a = attrs("alice", &[], "get");
        for code in [200u16, 404, 201] {
            log.log(event(Level::Metadata, Stage::ResponseComplete, &a, code, None, None));
        }
        log.flush();
        let lines = read_lines(&path);
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[1]["responseStatus"]["code"], 404);
        assert!(lines.iter().all(|l| l["kind"] == "Event"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        // Reopening appends.
        drop(log);
        let log = AuditLog::open(path.to_str().unwrap(), 0, 0, 0).unwrap();
        log.log(event(Level::Metadata, Stage::ResponseComplete, &a, 200, None, None));
        log.flush();
        assert_eq!(read_lines(&path).len(), 4);
        assert_eq!(log.dropped(), 0);
    }

    fn backups(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n != "audit.log")
            .collect();
        v.sort();
        v
    }

    #[test]
    fn rotation_by_size_and_backup_count() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let a = attrs("alice", &[], "get");
        let line_len = serde_json::to_vec(&event(Level::Metadata, Stage::ResponseComplete, &a, 200, None, None))
            .unwrap()
            .len() as u64
            + 1;
        // Room for two events per file; keep two backups.
        let log = AuditLog::open_with_limit(path.to_str().unwrap(), line_len * 2 + 5, 2, 0).unwrap();
        for _ in 0..9 {
            log.log(event(Level::Metadata, Stage::ResponseComplete, &a, 200, None, None));
            log.flush();
        }
        let b = backups(dir.path());
        assert_eq!(b.len(), 2, "{b:?}");
        for name in &b {
            let ts = name.strip_prefix("audit-").and_then(|n| n.strip_suffix(".log")).unwrap();
            assert!(NaiveDateTime::parse_from_str(ts, BACKUP_TIME_FORMAT).is_ok(), "{name}");
            assert_eq!(read_lines(&dir.path().join(name)).len(), 2);
        }
        // 9 events = 4 full files rotated out (2 kept) + 1 in the current file.
        assert_eq!(read_lines(&path).len(), 1);
        assert!(std::fs::metadata(&path).unwrap().len() <= line_len * 2 + 5);
    }

    #[test]
    fn rotation_removes_old_backups_by_age() {
        let dir = tempfile::tempdir().unwrap();
        let old = dir.path().join("audit-2001-02-03T04-05-06.789.log");
        let recent_name = format!("audit-{}.log", Utc::now().format(BACKUP_TIME_FORMAT));
        let recent = dir.path().join(&recent_name);
        let unrelated = dir.path().join("other-2001-02-03T04-05-06.789.log");
        for p in [&old, &recent, &unrelated] {
            std::fs::write(p, "{}\n").unwrap();
        }
        let path = dir.path().join("audit.log");
        let log = AuditLog::open_with_limit(path.to_str().unwrap(), 1024, 0, 7).unwrap();
        log.flush();
        assert!(!old.exists(), "backup older than max age kept");
        assert!(recent.exists());
        assert!(unrelated.exists());
    }

    #[test]
    fn zero_size_means_lumberjack_default() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let log = AuditLog::open(path.to_str().unwrap(), 0, 1, 0).unwrap();
        let a = attrs("alice", &[], "get");
        for _ in 0..50 {
            log.log(event(Level::Metadata, Stage::ResponseComplete, &a, 200, None, None));
        }
        log.flush();
        assert!(backups(dir.path()).is_empty());
        assert_eq!(read_lines(&path).len(), 50);
        assert!(AuditLog::open(dir.path().to_str().unwrap(), 1, 0, 0).is_err(), "a directory is not a log file");
    }
}
