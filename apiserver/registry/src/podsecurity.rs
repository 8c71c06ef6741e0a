//! Pod Security admission (upstream k8s.io/pod-security-admission) as pure functions.
//!
//! Owns: parsing a namespace's `pod-security.kubernetes.io/*` labels into a policy, evaluating a
//! pod's metadata and spec against the `baseline` / `restricted` Pod Security Standards at policy
//! version "latest" (= v1.33), and rendering upstream's enforce (403) and warning messages.
//! Also finds the pod template inside workload objects, which upstream only warns/audits on.
//!
//! Checks run in upstream's order: baseline checks sorted by check id, then, for `restricted`, the
//! restricted checks sorted by id; baseline checks that a restricted check overrides
//! (capabilities, hostPath volumes, seccomp) only run at `baseline`.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

use crate::status::{ApiError, FieldError};

/// A Pod Security Standards level.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Privileged,
    Baseline,
    Restricted,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Privileged => "privileged",
            Level::Baseline => "baseline",
            Level::Restricted => "restricted",
        }
    }

    /// Upstream's `ParseLevel` without the fallback: `None` for anything but the three names.
    pub fn parse(s: &str) -> Option<Level> {
        match s {
            "privileged" => Some(Level::Privileged),
            "baseline" => Some(Level::Baseline),
            "restricted" => Some(Level::Restricted),
            _ => None,
        }
    }
}

/// The label prefix upstream uses on namespaces.
pub const LABEL_PREFIX: &str = "pod-security.kubernetes.io/";

/// The levels a namespace asks for, per mode. Versions are recorded (for messages) but every
/// version is evaluated as "latest".
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NamespacePolicy {
    pub enforce: Level,
    pub audit: Level,
    pub warn: Level,
    /// `latest` or `v1.N`, as the `<mode>-version` label said (invalid or absent = `latest`).
    pub enforce_version: String,
    pub audit_version: String,
    pub warn_version: String,
}

impl Default for NamespacePolicy {
    fn default() -> Self {
        Self {
            enforce: Level::Privileged,
            audit: Level::Privileged,
            warn: Level::Privileged,
            enforce_version: "latest".into(),
            audit_version: "latest".into(),
            warn_version: "latest".into(),
        }
    }
}

impl NamespacePolicy {
    /// True when no mode checks anything (upstream short-circuits these namespaces).
    pub fn fully_privileged(&self) -> bool {
        self.enforce == Level::Privileged && self.audit == Level::Privileged && self.warn == Level::Privileged
    }
}

fn valid_version(v: &str) -> bool {
    if v == "latest" {
        return true;
    }
    match v.strip_prefix("v1.") {
        Some(n) => !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) && (n == "0" || !n.starts_with('0')),
        None => false,
    }
}

fn label_str<'a>(labels: Option<&'a Map<String, Value>>, mode: &str, suffix: &str) -> Option<&'a str> {
    labels?.get(&format!("{LABEL_PREFIX}{mode}{suffix}")).and_then(Value::as_str)
}

/// The policy a namespace's labels ask for. Absent labels mean `privileged`. An invalid level
/// fails closed for `enforce` (→ `restricted`) and open for `audit` / `warn` (→ `privileged`),
/// as upstream's `PolicyToEvaluate`; an invalid version means `latest`.
pub fn policy_from_labels(labels: Option<&Map<String, Value>>) -> NamespacePolicy {
    let level = |mode: &str, invalid: Level| match label_str(labels, mode, "") {
        None => Level::Privileged,
        Some(v) => Level::parse(v).unwrap_or(invalid),
    };
    let version = |mode: &str| match label_str(labels, mode, "-version") {
        Some(v) if valid_version(v) => v.to_string(),
        _ => "latest".to_string(),
    };
    NamespacePolicy {
        enforce: level("enforce", Level::Restricted),
        audit: level("audit", Level::Privileged),
        warn: level("warn", Level::Privileged),
        enforce_version: version("enforce"),
        audit_version: version("audit"),
        warn_version: version("warn"),
    }
}

/// Upstream's namespace-label validation (a namespace with bad PodSecurity labels is rejected):
/// one `Invalid` error per bad `pod-security.kubernetes.io/{mode}[-version]` label.
pub fn validate_labels(labels: Option<&Map<String, Value>>) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for mode in ["enforce", "audit", "warn"] {
        let key = format!("{LABEL_PREFIX}{mode}");
        if let Some(v) = labels.and_then(|l| l.get(&key)) {
            let s = v.as_str().unwrap_or_default();
            if Level::parse(s).is_none() {
                errs.push(FieldError::invalid(
                    format!("metadata.labels[{key}]"),
                    Value::String(s.to_string()),
                    "must be one of privileged, baseline, restricted",
                ));
            }
        }
        let vkey = format!("{key}-version");
        if let Some(v) = labels.and_then(|l| l.get(&vkey)) {
            let s = v.as_str().unwrap_or_default();
            if !valid_version(s) {
                errs.push(FieldError::invalid(
                    format!("metadata.labels[{vkey}]"),
                    Value::String(s.to_string()),
                    "must be \"latest\" or \"v1.x\"",
                ));
            }
        }
    }
    errs
}

// ---------------------------------------------------------------------------------------------
// JSON helpers

fn get<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    v.get(key).filter(|x| !x.is_null())
}

fn get_path<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(v, |cur, k| get(cur, k))
}

fn is_true(v: Option<&Value>) -> bool {
    v.and_then(Value::as_bool) == Some(true)
}

fn str_of(v: Option<&Value>) -> &str {
    v.and_then(Value::as_str).unwrap_or_default()
}

fn array(v: Option<&Value>) -> &[Value] {
    v.and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default()
}

/// Init containers, then containers, then ephemeral containers (upstream's visit order).
fn containers(spec: &Value) -> impl Iterator<Item = &Value> {
    ["initContainers", "containers", "ephemeralContainers"].into_iter().flat_map(move |k| array(get(spec, k)))
}

fn name(c: &Value) -> String {
    str_of(get(c, "name")).to_string()
}

fn csc<'a>(c: &'a Value, path: &[&str]) -> Option<&'a Value> {
    get_path(get(c, "securityContext")?, path)
}

fn psc<'a>(spec: &'a Value, path: &[&str]) -> Option<&'a Value> {
    get_path(get(spec, "securityContext")?, path)
}

fn join_quote<S: AsRef<str>>(items: impl IntoIterator<Item = S>) -> String {
    items.into_iter().map(|s| go_quote(s.as_ref())).collect::<Vec<_>>().join(", ")
}

/// Go's `%q` for the strings that reach these messages.
fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn plural<'a>(singular: &'a str, plural: &'a str, n: usize) -> &'a str {
    if n == 1 { singular } else { plural }
}

fn containers_phrase(names: &[String]) -> String {
    format!("{} {}", plural("container", "containers", names.len()), join_quote(names))
}

type CheckResult = Option<(String, String)>;

fn fail(reason: impl Into<String>, detail: impl Into<String>) -> CheckResult {
    Some((reason.into(), detail.into()))
}

// ---------------------------------------------------------------------------------------------
// Baseline checks

fn allow_privilege_escalation(_meta: &Value, spec: &Value) -> CheckResult {
    let bad: Vec<String> = containers(spec)
        .filter(|c| csc(c, &["allowPrivilegeEscalation"]).and_then(Value::as_bool) != Some(false))
        .map(name)
        .collect();
    if bad.is_empty() {
        return None;
    }
    fail(
        "allowPrivilegeEscalation != false",
        format!("{} must set securityContext.allowPrivilegeEscalation=false", containers_phrase(&bad)),
    )
}

fn app_armor_profile(meta: &Value, spec: &Value) -> CheckResult {
    let allowed_type = |t: &str| t == "RuntimeDefault" || t == "Localhost";
    let mut setters = Vec::new();
    let mut bad_values = BTreeSet::new();
    if let Some(p) = psc(spec, &["appArmorProfile"]) {
        let t = str_of(get(p, "type"));
        if !allowed_type(t) {
            setters.push("pod".to_string());
            bad_values.insert(t.to_string());
        }
    }
    let mut bad = Vec::new();
    for c in containers(spec) {
        if let Some(p) = csc(c, &["appArmorProfile"]) {
            let t = str_of(get(p, "type"));
            if !allowed_type(t) {
                bad.push(name(c));
                bad_values.insert(t.to_string());
            }
        }
    }
    if !bad.is_empty() {
        setters.push(containers_phrase(&bad));
    }
    let mut annotations: Vec<String> = get(meta, "annotations")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter(|(k, _)| k.starts_with("container.apparmor.security.beta.kubernetes.io/"))
        .filter_map(|(k, v)| {
            let v = v.as_str().unwrap_or_default();
            let ok = v.is_empty() || v == "runtime/default" || v.starts_with("localhost/");
            (!ok).then(|| format!("{k}={}", go_quote(v)))
        })
        .collect();
    annotations.sort();
    let mut values: Vec<String> = bad_values.into_iter().collect();
    if !annotations.is_empty() {
        setters.push(plural("annotation", "annotations", annotations.len()).to_string());
        values.extend(annotations);
    }
    if setters.is_empty() {
        return None;
    }
    fail(
        plural("forbidden AppArmor profile", "forbidden AppArmor profiles", values.len()),
        format!("{} must not set AppArmor profile type to {}", setters.join(" and "), join_quote(&values)),
    )
}

const DEFAULT_CAPABILITIES: &[&str] = &[
    "AUDIT_WRITE",
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "MKNOD",
    "NET_BIND_SERVICE",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_CHROOT",
];

fn capabilities_baseline(_meta: &Value, spec: &Value) -> CheckResult {
    let mut bad = Vec::new();
    let mut caps = BTreeSet::new();
    for c in containers(spec) {
        let mut valid = true;
        for cap in array(csc(c, &["capabilities", "add"])) {
            let cap = cap.as_str().unwrap_or_default();
            if !DEFAULT_CAPABILITIES.contains(&cap) {
                valid = false;
                caps.insert(cap.to_string());
            }
        }
        if !valid {
            bad.push(name(c));
        }
    }
    if bad.is_empty() {
        return None;
    }
    fail(
        "non-default capabilities",
        format!(
            "{} must not include {} in securityContext.capabilities.add",
            containers_phrase(&bad),
            join_quote(&caps)
        ),
    )
}

fn capabilities_restricted(_meta: &Value, spec: &Value) -> CheckResult {
    let mut missing_drop = Vec::new();
    let mut adding = Vec::new();
    let mut caps = BTreeSet::new();
    for c in containers(spec) {
        let Some(capabilities) = csc(c, &["capabilities"]) else {
            missing_drop.push(name(c));
            continue;
        };
        if !array(get(capabilities, "drop")).iter().any(|d| d.as_str() == Some("ALL")) {
            missing_drop.push(name(c));
        }
        let mut forbidden = false;
        for cap in array(get(capabilities, "add")) {
            let cap = cap.as_str().unwrap_or_default();
            if cap != "NET_BIND_SERVICE" {
                forbidden = true;
                caps.insert(cap.to_string());
            }
        }
        if forbidden {
            adding.push(name(c));
        }
    }
    let mut details = Vec::new();
    if !missing_drop.is_empty() {
        details
            .push(format!("{} must set securityContext.capabilities.drop=[\"ALL\"]", containers_phrase(&missing_drop)));
    }
    if !adding.is_empty() {
        details.push(format!(
            "{} must not include {} in securityContext.capabilities.add",
            containers_phrase(&adding),
            join_quote(&caps)
        ));
    }
    if details.is_empty() {
        return None;
    }
    fail("unrestricted capabilities", details.join("; "))
}

fn host_namespaces(_meta: &Value, spec: &Value) -> CheckResult {
    // Sorted, as upstream's string set: hostIPC, hostNetwork, hostPID.
    let set: Vec<&str> = ["hostIPC", "hostNetwork", "hostPID"].into_iter().filter(|k| is_true(get(spec, k))).collect();
    if set.is_empty() {
        return None;
    }
    fail("host namespaces", set.iter().map(|k| format!("{k}=true")).collect::<Vec<_>>().join(", "))
}

fn host_path_volumes(_meta: &Value, spec: &Value) -> CheckResult {
    let bad: Vec<String> =
        array(get(spec, "volumes")).iter().filter(|v| get(v, "hostPath").is_some()).map(name).collect();
    if bad.is_empty() {
        return None;
    }
    fail("hostPath volumes", format!("{} {}", plural("volume", "volumes", bad.len()), join_quote(&bad)))
}

fn host_ports(_meta: &Value, spec: &Value) -> CheckResult {
    let mut bad = Vec::new();
    let mut ports = BTreeSet::new();
    for c in containers(spec) {
        let mut valid = true;
        for p in array(get(c, "ports")) {
            let hp = get(p, "hostPort").and_then(Value::as_i64).unwrap_or(0);
            if hp != 0 {
                valid = false;
                ports.insert(hp.to_string());
            }
        }
        if !valid {
            bad.push(name(c));
        }
    }
    if bad.is_empty() {
        return None;
    }
    fail(
        "hostPort",
        format!(
            "{} {} {} {}",
            containers_phrase(&bad),
            plural("uses", "use", bad.len()),
            plural("hostPort", "hostPorts", ports.len()),
            ports.into_iter().collect::<Vec<_>>().join(", ")
        ),
    )
}

fn privileged(_meta: &Value, spec: &Value) -> CheckResult {
    let bad: Vec<String> = containers(spec).filter(|c| is_true(csc(c, &["privileged"]))).map(name).collect();
    if bad.is_empty() {
        return None;
    }
    fail("privileged", format!("{} must not set securityContext.privileged=true", containers_phrase(&bad)))
}

fn proc_mount(_meta: &Value, spec: &Value) -> CheckResult {
    let mut bad = Vec::new();
    let mut types = BTreeSet::new();
    for c in containers(spec) {
        if let Some(pm) = csc(c, &["procMount"]) {
            let pm = pm.as_str().unwrap_or_default();
            if pm != "Default" {
                bad.push(name(c));
                types.insert(pm.to_string());
            }
        }
    }
    if bad.is_empty() {
        return None;
    }
    fail(
        "procMount",
        format!("{} must not set securityContext.procMount to {}", containers_phrase(&bad), join_quote(&types)),
    )
}

const ALLOWED_VOLUME_SOURCES: &[&str] =
    &["configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected", "secret"];

const RESTRICTED_VOLUME_SOURCES: &[&str] = &[
    "hostPath",
    "gcePersistentDisk",
    "awsElasticBlockStore",
    "gitRepo",
    "nfs",
    "iscsi",
    "glusterfs",
    "rbd",
    "flexVolume",
    "cinder",
    "cephfs",
    "flocker",
    "fc",
    "azureFile",
    "vsphereVolume",
    "quobyte",
    "azureDisk",
    "portworxVolume",
    "photonPersistentDisk",
    "scaleIO",
    "storageos",
];

fn restricted_volumes(_meta: &Value, spec: &Value) -> CheckResult {
    let mut bad = Vec::new();
    let mut types = BTreeSet::new();
    for v in array(get(spec, "volumes")) {
        if ALLOWED_VOLUME_SOURCES.iter().any(|k| get(v, k).is_some()) {
            continue;
        }
        bad.push(name(v));
        let t = RESTRICTED_VOLUME_SOURCES.iter().find(|k| get(v, k).is_some()).copied().unwrap_or("unknown");
        types.insert(t);
    }
    if bad.is_empty() {
        return None;
    }
    fail(
        "restricted volume types",
        format!(
            "{} {} {} {} {}",
            plural("volume", "volumes", bad.len()),
            join_quote(&bad),
            plural("uses", "use", bad.len()),
            plural("restricted volume type", "restricted volume types", types.len()),
            join_quote(&types)
        ),
    )
}

fn run_as_non_root(_meta: &Value, spec: &Value) -> CheckResult {
    let mut setters = Vec::new();
    let mut pod_non_root = false;
    if let Some(v) = psc(spec, &["runAsNonRoot"]).and_then(Value::as_bool) {
        if v {
            pod_non_root = true;
        } else {
            setters.push("pod".to_string());
        }
    }
    let mut explicit = Vec::new();
    let mut implicit = Vec::new();
    for c in containers(spec) {
        match csc(c, &["runAsNonRoot"]).and_then(Value::as_bool) {
            Some(false) => explicit.push(name(c)),
            Some(true) => {}
            None if !pod_non_root => implicit.push(name(c)),
            None => {}
        }
    }
    if !explicit.is_empty() {
        setters.push(containers_phrase(&explicit));
    }
    if !setters.is_empty() {
        return fail(
            "runAsNonRoot != true",
            format!("{} must not set securityContext.runAsNonRoot=false", setters.join(" and ")),
        );
    }
    if !implicit.is_empty() {
        return fail(
            "runAsNonRoot != true",
            format!("pod or {} must set securityContext.runAsNonRoot=true", containers_phrase(&implicit)),
        );
    }
    None
}

fn run_as_user(_meta: &Value, spec: &Value) -> CheckResult {
    let is_root = |v: Option<&Value>| v.and_then(Value::as_i64) == Some(0);
    let mut setters = Vec::new();
    if is_root(psc(spec, &["runAsUser"])) {
        setters.push("pod".to_string());
    }
    let bad: Vec<String> = containers(spec).filter(|c| is_root(csc(c, &["runAsUser"]))).map(name).collect();
    if !bad.is_empty() {
        setters.push(containers_phrase(&bad));
    }
    if setters.is_empty() {
        return None;
    }
    fail("runAsUser=0", format!("{} must not set runAsUser=0", setters.join(" and ")))
}

const SELINUX_TYPES: &[&str] = &["", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"];

fn se_linux_options(_meta: &Value, spec: &Value) -> CheckResult {
    let mut bad_types = BTreeSet::new();
    let (mut set_user, mut set_role) = (false, false);
    let mut valid = |o: &Value| {
        let mut ok = true;
        let t = str_of(get(o, "type"));
        if !SELINUX_TYPES.contains(&t) {
            ok = false;
            bad_types.insert(t.to_string());
        }
        if !str_of(get(o, "user")).is_empty() {
            ok = false;
            set_user = true;
        }
        if !str_of(get(o, "role")).is_empty() {
            ok = false;
            set_role = true;
        }
        ok
    };
    let mut setters = Vec::new();
    if let Some(o) = psc(spec, &["seLinuxOptions"])
        && !valid(o)
    {
        setters.push("pod".to_string());
    }
    let mut bad = Vec::new();
    for c in containers(spec) {
        if let Some(o) = csc(c, &["seLinuxOptions"])
            && !valid(o)
        {
            bad.push(name(c));
        }
    }
    if !bad.is_empty() {
        setters.push(containers_phrase(&bad));
    }
    if setters.is_empty() {
        return None;
    }
    let mut data = Vec::new();
    if !bad_types.is_empty() {
        data.push(format!("{} {}", plural("type", "types", bad_types.len()), join_quote(&bad_types)));
    }
    if set_user {
        data.push("user may not be set".to_string());
    }
    if set_role {
        data.push("role may not be set".to_string());
    }
    fail(
        "seLinuxOptions",
        format!("{} set forbidden securityContext.seLinuxOptions: {}", setters.join(" and "), data.join("; ")),
    )
}

fn valid_seccomp(t: &str) -> bool {
    t == "RuntimeDefault" || t == "Localhost"
}

/// Shared by both seccomp checks; `require` adds the restricted "must set" rule.
fn seccomp(spec: &Value, require: bool) -> CheckResult {
    let mut setters = Vec::new();
    let mut bad_values = BTreeSet::new();
    let mut pod_set = false;
    if let Some(p) = psc(spec, &["seccompProfile"]) {
        let t = str_of(get(p, "type"));
        if valid_seccomp(t) {
            pod_set = true;
        } else {
            setters.push("pod".to_string());
            bad_values.insert(t.to_string());
        }
    }
    let mut explicit = Vec::new();
    let mut implicit = Vec::new();
    for c in containers(spec) {
        match csc(c, &["seccompProfile"]) {
            Some(p) => {
                let t = str_of(get(p, "type"));
                if !valid_seccomp(t) {
                    explicit.push(name(c));
                    bad_values.insert(t.to_string());
                }
            }
            None if !pod_set => implicit.push(name(c)),
            None => {}
        }
    }
    if !explicit.is_empty() {
        setters.push(containers_phrase(&explicit));
    }
    if !setters.is_empty() {
        return fail(
            "seccompProfile",
            format!(
                "{} must not set securityContext.seccompProfile.type to {}",
                setters.join(" and "),
                join_quote(&bad_values)
            ),
        );
    }
    if require && !implicit.is_empty() {
        return fail(
            "seccompProfile",
            format!(
                "pod or {} must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\"",
                containers_phrase(&implicit)
            ),
        );
    }
    None
}

fn seccomp_profile_baseline(_meta: &Value, spec: &Value) -> CheckResult {
    seccomp(spec, false)
}

fn seccomp_profile_restricted(_meta: &Value, spec: &Value) -> CheckResult {
    seccomp(spec, true)
}

/// The safe sysctls as of policy v1.32 (1.0 set + 1.27 + 1.29 + 1.32 additions).
const SAFE_SYSCTLS: &[&str] = &[
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
    "net.ipv4.tcp_rmem",
    "net.ipv4.tcp_wmem",
];

fn sysctls(_meta: &Value, spec: &Value) -> CheckResult {
    let bad: Vec<&str> = array(psc(spec, &["sysctls"]))
        .iter()
        .map(|s| str_of(get(s, "name")))
        .filter(|n| !SAFE_SYSCTLS.contains(n))
        .collect();
    if bad.is_empty() {
        return None;
    }
    fail("forbidden sysctls", bad.join(", "))
}

fn windows_host_process(_meta: &Value, spec: &Value) -> CheckResult {
    let bad: Vec<String> =
        containers(spec).filter(|c| is_true(csc(c, &["windowsOptions", "hostProcess"]))).map(name).collect();
    let mut setters = Vec::new();
    if is_true(psc(spec, &["windowsOptions", "hostProcess"])) {
        setters.push("pod".to_string());
    }
    if !bad.is_empty() {
        setters.push(containers_phrase(&bad));
    }
    if setters.is_empty() {
        return None;
    }
    fail(
        "hostProcess",
        format!("{} must not set securityContext.windowsOptions.hostProcess=true", setters.join(" and ")),
    )
}

type CheckFn = fn(&Value, &Value) -> CheckResult;

/// Baseline checks sorted by check id (upstream sorts checks by id, baseline first). The flag
/// marks checks a restricted check overrides: those only run at `baseline`.
const BASELINE: &[(&str, CheckFn, bool)] = &[
    ("appArmorProfile", app_armor_profile, false),
    ("capabilities_baseline", capabilities_baseline, true),
    ("hostNamespaces", host_namespaces, false),
    ("hostPathVolumes", host_path_volumes, true),
    ("hostPorts", host_ports, false),
    ("privileged", privileged, false),
    ("procMount", proc_mount, false),
    ("seLinuxOptions", se_linux_options, false),
    ("seccompProfile_baseline", seccomp_profile_baseline, true),
    ("sysctls", sysctls, false),
    ("windowsHostProcess", windows_host_process, false),
];

/// Restricted-only checks sorted by check id.
const RESTRICTED: &[(&str, CheckFn)] = &[
    ("allowPrivilegeEscalation", allow_privilege_escalation),
    ("capabilities_restricted", capabilities_restricted),
    ("restrictedVolumes", restricted_volumes),
    ("runAsNonRoot", run_as_non_root),
    ("runAsUser", run_as_user),
    ("seccompProfile_restricted", seccomp_profile_restricted),
];

/// Like [`check`], but each failure also carries the upstream check id:
/// `(check id, forbidden reason, forbidden detail)`.
pub fn check_with_ids(level: Level, pod_meta: &Value, pod_spec: &Value) -> Vec<(&'static str, String, String)> {
    let restricted = match level {
        Level::Privileged => return Vec::new(),
        Level::Baseline => false,
        Level::Restricted => true,
    };
    let baseline =
        BASELINE.iter().filter(|(_, _, overridden)| !(restricted && *overridden)).map(|(id, f, _)| (*id, *f));
    let extra: &[(&str, CheckFn)] = if restricted { RESTRICTED } else { &[] };
    baseline.chain(extra.iter().copied()).filter_map(|(id, f)| f(pod_meta, pod_spec).map(|(r, d)| (id, r, d))).collect()
}

/// The checks that fail for `pod_spec` (with `pod_meta` for annotations) at `level`, as upstream's
/// `(forbidden reason, forbidden detail)` pairs in upstream's order. Empty = allowed.
pub fn check(level: Level, pod_meta: &Value, pod_spec: &Value) -> Vec<(String, String)> {
    check_with_ids(level, pod_meta, pod_spec).into_iter().map(|(_, r, d)| (r, d)).collect()
}

/// Upstream's `ForbiddenDetail`: `reason (detail), reason, ...`.
pub fn failures_detail(failures: &[(String, String)]) -> String {
    failures
        .iter()
        .map(|(r, d)| if d.is_empty() { r.clone() } else { format!("{r} ({d})") })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Upstream's `ForbiddenReason` (used in audit annotations and namespace-label warnings):
/// the reasons only, comma separated.
pub fn failures_reason(failures: &[(String, String)]) -> String {
    failures.iter().map(|(r, _)| r.as_str()).collect::<Vec<_>>().join(", ")
}

/// `restricted:latest`.
pub fn level_version(level: Level, version: &str) -> String {
    format!("{}:{version}", level.as_str())
}

/// The enforce message at version "latest":
/// `pods "x" is forbidden: violates PodSecurity "restricted:latest": ...`.
pub fn forbidden_message(name: &str, level: Level, failures: &[(String, String)]) -> String {
    forbidden_message_versioned(name, level, "latest", failures)
}

/// [`forbidden_message`] for an explicit policy version label (`v1.33`).
pub fn forbidden_message_versioned(name: &str, level: Level, version: &str, failures: &[(String, String)]) -> String {
    format!(
        "pods {} is forbidden: violates PodSecurity {}: {}",
        go_quote(name),
        go_quote(&level_version(level, version)),
        failures_detail(failures)
    )
}

/// The 403 `ApiError` for enforce (details: kind `pods`, name).
pub fn forbidden_error(name: &str, level: Level, version: &str, failures: &[(String, String)]) -> ApiError {
    let mut e = ApiError::forbidden(forbidden_message_versioned(name, level, version, failures));
    e.group = Some(String::new());
    e.kind = Some("pods".into());
    if !name.is_empty() {
        e.name = Some(name.into());
    }
    e
}

/// The warning for warn mode (and for workloads):
/// `would violate PodSecurity "restricted:latest": ...`.
pub fn warning_message(level: Level, failures: &[(String, String)]) -> String {
    warning_message_versioned(level, "latest", failures)
}

/// [`warning_message`] for an explicit policy version label.
pub fn warning_message_versioned(level: Level, version: &str, failures: &[(String, String)]) -> String {
    format!("would violate PodSecurity {}: {}", go_quote(&level_version(level, version)), failures_detail(failures))
}

static NULL: Value = Value::Null;

/// The pod metadata and spec upstream evaluates for an object, by `kind`: a Pod's own, or the pod
/// template of ReplicationController, ReplicaSet, Deployment, DaemonSet, StatefulSet, Job,
/// CronJob (`spec.jobTemplate.spec.template`) and PodTemplate (`template`). `None` for other kinds
/// or when the template/spec is missing. A missing metadata is returned as `null`.
pub fn pod_template_spec(obj: &Value) -> Option<(&Value, &Value)> {
    let kind = obj.get("kind").and_then(Value::as_str)?;
    let holder = match kind {
        "Pod" => obj,
        "PodTemplate" => get(obj, "template")?,
        "ReplicationController" | "ReplicaSet" | "Deployment" | "DaemonSet" | "StatefulSet" | "Job" => {
            get_path(obj, &["spec", "template"])?
        }
        "CronJob" => get_path(obj, &["spec", "jobTemplate", "spec", "template"])?,
        _ => return None,
    };
    let spec = get(holder, "spec")?;
    Some((get(holder, "metadata").unwrap_or(&NULL), spec))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(level: Level, pod: &Value) -> Vec<(String, String)> {
        let (meta, spec) = pod_template_spec(pod).expect("pod");
        check(level, meta, spec)
    }

    fn restricted_pod() -> Value {
        json!({"kind": "Pod", "metadata": {"name": "ok"}, "spec": {
            "securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{"name": "c", "image": "nginx", "securityContext": {
                "allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}}}],
            "volumes": [{"name": "cfg", "configMap": {"name": "x"}}, {"name": "tmp", "emptyDir": {}}]
        }})
    }

    #[test]
    fn privileged_pod_against_restricted_matches_upstream_message() {
        let pod = json!({"kind": "Pod", "metadata": {"name": "x"}, "spec": {"containers": [
            {"name": "c", "image": "busybox", "securityContext": {"privileged": true}}]}});
        let failures = run(Level::Restricted, &pod);
        assert_eq!(
            forbidden_message("x", Level::Restricted, &failures),
            "pods \"x\" is forbidden: violates PodSecurity \"restricted:latest\": \
             privileged (container \"c\" must not set securityContext.privileged=true), \
             allowPrivilegeEscalation != false (container \"c\" must set securityContext.allowPrivilegeEscalation=false), \
             unrestricted capabilities (container \"c\" must set securityContext.capabilities.drop=[\"ALL\"]), \
             runAsNonRoot != true (pod or container \"c\" must set securityContext.runAsNonRoot=true), \
             seccompProfile (pod or container \"c\" must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\")"
        );
        assert!(
            warning_message(Level::Restricted, &failures)
                .starts_with("would violate PodSecurity \"restricted:latest\": privileged (container \"c\"")
        );
        let e = forbidden_error("x", Level::Restricted, "latest", &failures);
        assert_eq!(e.code, 403);
        assert_eq!(e.kind.as_deref(), Some("pods"));
    }

    #[test]
    fn documented_host_pod_message_order() {
        // The order upstream prints for a host-namespace, privileged, hostPath, root pod.
        let pod = json!({"kind": "Pod", "metadata": {"name": "p"}, "spec": {
            "hostNetwork": true, "hostPID": true,
            "containers": [{"name": "container-00", "securityContext": {"privileged": true, "runAsUser": 0}}],
            "volumes": [{"name": "host", "hostPath": {"path": "/"}}]}});
        let reasons: Vec<String> = run(Level::Restricted, &pod).into_iter().map(|(r, _)| r).collect();
        assert_eq!(
            reasons,
            [
                "host namespaces",
                "privileged",
                "allowPrivilegeEscalation != false",
                "unrestricted capabilities",
                "restricted volume types",
                "runAsNonRoot != true",
                "runAsUser=0",
                "seccompProfile"
            ]
        );
        let f = run(Level::Restricted, &pod);
        assert_eq!(f[0].1, "hostNetwork=true, hostPID=true");
        assert_eq!(f[4].1, "volume \"host\" uses restricted volume type \"hostPath\"");
        assert_eq!(f[6].1, "container \"container-00\" must not set runAsUser=0");
        // Baseline reports the hostPath volume through its own check instead.
        let b = run(Level::Baseline, &pod);
        assert_eq!(
            b.iter().map(|(r, _)| r.as_str()).collect::<Vec<_>>(),
            ["host namespaces", "hostPath volumes", "privileged"]
        );
        assert_eq!(b[1].1, "volume \"host\"");
    }

    #[test]
    fn compliant_restricted_pod_passes_every_level() {
        let pod = restricted_pod();
        assert!(run(Level::Restricted, &pod).is_empty(), "{:?}", run(Level::Restricted, &pod));
        assert!(run(Level::Baseline, &pod).is_empty());
        assert!(run(Level::Privileged, &pod).is_empty());
    }

    #[test]
    fn baseline_allows_what_restricted_forbids() {
        let pod = json!({"kind": "Pod", "metadata": {}, "spec": {"containers": [{"name": "app",
            "securityContext": {"capabilities": {"add": ["CHOWN"]}}}],
            "volumes": [{"name": "n", "nfs": {"server": "s", "path": "/"}}]}});
        assert!(run(Level::Baseline, &pod).is_empty());
        let r = run(Level::Restricted, &pod);
        let caps = r.iter().find(|(k, _)| k == "unrestricted capabilities").expect("caps");
        assert_eq!(
            caps.1,
            "container \"app\" must set securityContext.capabilities.drop=[\"ALL\"]; \
             container \"app\" must not include \"CHOWN\" in securityContext.capabilities.add"
        );
        let vols = r.iter().find(|(k, _)| k == "restricted volume types").expect("vols");
        assert_eq!(vols.1, "volume \"n\" uses restricted volume type \"nfs\"");
    }

    #[test]
    fn baseline_checks_details() {
        let pod = json!({"kind": "Pod", "metadata": {"annotations": {
            "container.apparmor.security.beta.kubernetes.io/a": "unconfined"}},
        "spec": {
            "securityContext": {"sysctls": [{"name": "kernel.msgmax", "value": "1"},
                {"name": "net.ipv4.tcp_syncookies", "value": "1"}],
                "seccompProfile": {"type": "Unconfined"},
                "seLinuxOptions": {"type": "spc_t", "user": "u"}},
            "initContainers": [{"name": "i", "ports": [{"containerPort": 80, "hostPort": 8080}],
                "securityContext": {"procMount": "Unmasked"}}],
            "containers": [{"name": "a", "ports": [{"containerPort": 1, "hostPort": 443}],
                "securityContext": {"capabilities": {"add": ["NET_RAW", "SYS_ADMIN", "CHOWN"]},
                    "appArmorProfile": {"type": "Unconfined"},
                    "windowsOptions": {"hostProcess": true}}}]
        }});
        let got = run(Level::Baseline, &pod);
        let want: Vec<(String, String)> = [
            (
                "forbidden AppArmor profiles",
                "container \"a\" and annotation must not set AppArmor profile type to \"Unconfined\", \
                 \"container.apparmor.security.beta.kubernetes.io/a=\\\"unconfined\\\"\"",
            ),
            (
                "non-default capabilities",
                "container \"a\" must not include \"NET_RAW\", \"SYS_ADMIN\" in securityContext.capabilities.add",
            ),
            ("hostPort", "containers \"i\", \"a\" use hostPorts 443, 8080"),
            ("procMount", "container \"i\" must not set securityContext.procMount to \"Unmasked\""),
            ("seLinuxOptions", "pod set forbidden securityContext.seLinuxOptions: type \"spc_t\"; user may not be set"),
            ("seccompProfile", "pod must not set securityContext.seccompProfile.type to \"Unconfined\""),
            ("forbidden sysctls", "kernel.msgmax"),
            ("hostProcess", "container \"a\" must not set securityContext.windowsOptions.hostProcess=true"),
        ]
        .into_iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn explicit_false_run_as_non_root_and_container_seccomp() {
        let mut pod = restricted_pod();
        pod["spec"]["securityContext"]["runAsNonRoot"] = json!(false);
        pod["spec"]["containers"][0]["securityContext"]["runAsNonRoot"] = json!(false);
        let r = run(Level::Restricted, &pod);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].1, "pod and container \"c\" must not set securityContext.runAsNonRoot=false");
        // Container-level runAsNonRoot=true satisfies it without the pod-level field.
        let mut pod = restricted_pod();
        pod["spec"]["securityContext"] = json!({"seccompProfile": {"type": "Localhost"}});
        pod["spec"]["containers"][0]["securityContext"]["runAsNonRoot"] = json!(true);
        assert!(run(Level::Restricted, &pod).is_empty());
    }

    #[test]
    fn labels_parsing() {
        let p = policy_from_labels(None);
        assert!(p.fully_privileged());
        assert_eq!(p.enforce_version, "latest");
        let labels = json!({
            "pod-security.kubernetes.io/enforce": "baseline",
            "pod-security.kubernetes.io/enforce-version": "v1.33",
            "pod-security.kubernetes.io/warn": "restricted",
            "pod-security.kubernetes.io/audit": "restricted",
            "pod-security.kubernetes.io/audit-version": "bogus",
            "other": "x"
        });
        let p = policy_from_labels(labels.as_object());
        assert_eq!((p.enforce, p.audit, p.warn), (Level::Baseline, Level::Restricted, Level::Restricted));
        assert_eq!(p.enforce_version, "v1.33");
        assert_eq!(p.audit_version, "latest");
        // Invalid levels: enforce fails closed, audit/warn fail open.
        let bad = json!({
            "pod-security.kubernetes.io/enforce": "strict",
            "pod-security.kubernetes.io/warn": "Restricted",
            "pod-security.kubernetes.io/audit": 7
        });
        let p = policy_from_labels(bad.as_object());
        assert_eq!((p.enforce, p.audit, p.warn), (Level::Restricted, Level::Privileged, Level::Privileged));
        let errs = validate_labels(bad.as_object());
        assert_eq!(errs.len(), 3);
        assert_eq!(errs[0].field, "metadata.labels[pod-security.kubernetes.io/enforce]");
        assert!(validate_labels(labels.as_object()).len() == 1);
        assert!(valid_version("v1.0") && valid_version("v1.33") && !valid_version("v1.033") && !valid_version("1.33"));
    }

    #[test]
    fn workload_templates() {
        let dep = json!({"kind": "Deployment", "spec": {"template": {"metadata": {"labels": {"a": "b"}},
            "spec": {"containers": [{"name": "c", "securityContext": {"privileged": true}}]}}}});
        let (meta, spec) = pod_template_spec(&dep).expect("deployment");
        assert_eq!(meta["labels"]["a"], "b");
        assert_eq!(check(Level::Baseline, meta, spec)[0].0, "privileged");
        let cj =
            json!({"kind": "CronJob", "spec": {"jobTemplate": {"spec": {"template": {"spec": {"containers": []}}}}}});
        let (meta, _) = pod_template_spec(&cj).expect("cronjob");
        assert!(meta.is_null());
        assert!(pod_template_spec(&json!({"kind": "ConfigMap"})).is_none());
        assert!(pod_template_spec(&json!({"kind": "Deployment", "spec": {}})).is_none());
        // Garbage shapes don't panic.
        let junk = json!({"kind": "Pod", "spec": {"containers": "x", "volumes": [1, null], "securityContext": 5}});
        let (m, s) = pod_template_spec(&junk).expect("pod");
        let _ = check(Level::Restricted, m, s);
    }
}
