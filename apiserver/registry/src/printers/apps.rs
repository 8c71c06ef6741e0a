//! Table printers for workload kinds: deployments, replica sets, stateful sets,
//! daemon sets, controller revisions (apps), jobs and cron jobs (batch),
//! horizontal pod autoscalers (autoscaling) and pod disruption budgets (policy).

use super::corev1::{CONTAINERS_DESC, IMAGES_DESC};
use super::util::{
    age, at, bool_ptr, boolean, container_cells, format_label_selector, format_labels, int, int_opt, int_or_string,
    list, name, parse_time, selector_string, since, st, st_opt,
};
use super::{Col, Row, cells, doc, human_duration, text};
use chrono::{DateTime, Utc};
use serde_json::Value;

const DEPLOY_STATUS: &str = "io.k8s.api.apps.v1.DeploymentStatus";
const DEPLOY_SPEC: &str = "io.k8s.api.apps.v1.DeploymentSpec";
const RS_SPEC: &str = "io.k8s.api.apps.v1.ReplicaSetSpec";
const RS_STATUS: &str = "io.k8s.api.apps.v1.ReplicaSetStatus";
const DS_STATUS: &str = "io.k8s.api.apps.v1.DaemonSetStatus";
const JOB_SPEC: &str = "io.k8s.api.batch.v1.JobSpec";
const JOB_STATUS: &str = "io.k8s.api.batch.v1.JobStatus";
const CJ_SPEC: &str = "io.k8s.api.batch.v1.CronJobSpec";
const CJ_STATUS: &str = "io.k8s.api.batch.v1.CronJobStatus";
const HPA_SPEC: &str = "io.k8s.api.autoscaling.v2.HorizontalPodAutoscalerSpec";
const HPA_STATUS: &str = "io.k8s.api.autoscaling.v2.HorizontalPodAutoscalerStatus";

fn containers_col() -> Col {
    text("Containers", "string", CONTAINERS_DESC).wide()
}

fn images_col() -> Col {
    text("Images", "string", IMAGES_DESC).wide()
}

/// `spec.replicas`, which defaulting sets to 1 when omitted.
fn desired(obj: &Value) -> i64 {
    int_opt(obj, "spec.replicas").unwrap_or(1)
}

// ---------------------------------------------------------------------------
// Deployments, replica sets, stateful sets, daemon sets

pub(crate) fn deployment_columns() -> Vec<Col> {
    vec![
        Col::name(),
        text("Ready", "string", "Number of the pod with ready state"),
        doc("Up-to-date", "string", DEPLOY_STATUS, "updatedReplicas"),
        doc("Available", "string", DEPLOY_STATUS, "availableReplicas"),
        Col::age(),
        containers_col(),
        images_col(),
        doc("Selector", "string", DEPLOY_SPEC, "selector").wide(),
    ]
}

pub(crate) fn deployment_row(obj: &Value, now: DateTime<Utc>) -> Row {
    let (names, images) = container_cells(list(obj, "spec.template.spec.containers"));
    // Unlike the other workloads, deployments print an invalid selector as "<invalid>"
    // and an empty one as "".
    let selector = selector_string(at(obj, "spec.selector")).unwrap_or_else(|()| "<invalid>".to_string());
    cells![
        name(obj),
        format!("{}/{}", int(obj, "status.readyReplicas"), desired(obj)),
        int(obj, "status.updatedReplicas"),
        int(obj, "status.availableReplicas"),
        age(obj, now),
        names,
        images,
        selector,
    ]
}

pub(crate) fn replicaset_columns() -> Vec<Col> {
    vec![
        Col::name(),
        doc("Desired", "integer", RS_SPEC, "replicas"),
        doc("Current", "integer", RS_STATUS, "replicas"),
        doc("Ready", "integer", RS_STATUS, "readyReplicas"),
        Col::age(),
        containers_col(),
        images_col(),
        doc("Selector", "string", RS_SPEC, "selector").wide(),
    ]
}

pub(crate) fn replicaset_row(obj: &Value, now: DateTime<Utc>) -> Row {
    let (names, images) = container_cells(list(obj, "spec.template.spec.containers"));
    cells![
        name(obj),
        desired(obj),
        int(obj, "status.replicas"),
        int(obj, "status.readyReplicas"),
        age(obj, now),
        names,
        images,
        format_label_selector(at(obj, "spec.selector")),
    ]
}

pub(crate) fn statefulset_columns() -> Vec<Col> {
    vec![
        Col::name(),
        text("Ready", "string", "Number of the pod with ready state"),
        Col::age(),
        containers_col(),
        images_col(),
    ]
}

pub(crate) fn statefulset_row(obj: &Value, now: DateTime<Utc>) -> Row {
    let (names, images) = container_cells(list(obj, "spec.template.spec.containers"));
    cells![name(obj), format!("{}/{}", int(obj, "status.readyReplicas"), desired(obj)), age(obj, now), names, images]
}

pub(crate) fn daemonset_columns() -> Vec<Col> {
    vec![
        Col::name(),
        doc("Desired", "integer", DS_STATUS, "desiredNumberScheduled"),
        doc("Current", "integer", DS_STATUS, "currentNumberScheduled"),
        doc("Ready", "integer", DS_STATUS, "numberReady"),
        doc("Up-to-date", "integer", DS_STATUS, "updatedNumberScheduled"),
        doc("Available", "integer", DS_STATUS, "numberAvailable"),
        doc("Node Selector", "string", "io.k8s.api.core.v1.PodSpec", "nodeSelector"),
        Col::age(),
        containers_col(),
        images_col(),
        doc("Selector", "string", "io.k8s.api.apps.v1.DaemonSetSpec", "selector").wide(),
    ]
}

pub(crate) fn daemonset_row(obj: &Value, now: DateTime<Utc>) -> Row {
    let (names, images) = container_cells(list(obj, "spec.template.spec.containers"));
    cells![
        name(obj),
        int(obj, "status.desiredNumberScheduled"),
        int(obj, "status.currentNumberScheduled"),
        int(obj, "status.numberReady"),
        int(obj, "status.updatedNumberScheduled"),
        int(obj, "status.numberAvailable"),
        format_labels(at(obj, "spec.template.spec.nodeSelector")),
        age(obj, now),
        names,
        images,
        format_label_selector(at(obj, "spec.selector")),
    ]
}

pub(crate) fn controllerrevision_columns() -> Vec<Col> {
    vec![
        Col::name(),
        text("Controller", "string", "Controller of the object"),
        doc("Revision", "string", "io.k8s.api.apps.v1.ControllerRevision", "revision"),
        Col::age(),
    ]
}

/// The controlling owner as "kind.group/name" (lower-cased kind and group), or "<none>".
pub(crate) fn controller_of(obj: &Value) -> String {
    let Some(owner) = list(obj, "metadata.ownerReferences").iter().find(|o| boolean(o, "controller") == Some(true))
    else {
        return "<none>".to_string();
    };
    let api_version = st(owner, "apiVersion");
    let group = match api_version.split_once('/') {
        Some((g, _)) => g,
        None => "",
    };
    let kind = st(owner, "kind");
    let group_kind = if group.is_empty() { kind.to_string() } else { format!("{kind}.{group}") };
    if group_kind.is_empty() {
        st(owner, "name").to_string()
    } else {
        format!("{}/{}", group_kind.to_lowercase(), st(owner, "name"))
    }
}

pub(crate) fn controllerrevision_row(obj: &Value, now: DateTime<Utc>) -> Row {
    cells![name(obj), controller_of(obj), int(obj, "revision"), age(obj, now)]
}

// ---------------------------------------------------------------------------
// Jobs and cron jobs

pub(crate) fn job_columns() -> Vec<Col> {
    vec![
        Col::name(),
        text("Status", "string", "Status of the job."),
        doc("Completions", "string", JOB_STATUS, "succeeded"),
        text("Duration", "string", "Time required to complete the job."),
        Col::age(),
        containers_col(),
        images_col(),
        doc("Selector", "string", JOB_SPEC, "selector").wide(),
    ]
}

/// `hasJobCondition`: the first condition of that type decides.
fn job_condition(job: &Value, ty: &str) -> bool {
    list(job, "status.conditions").iter().find(|c| st(c, "type") == ty).is_some_and(|c| st(c, "status") == "True")
}

pub(crate) fn job_row(job: &Value, now: DateTime<Utc>) -> Row {
    let succeeded = int(job, "status.succeeded");
    let completions = match int_opt(job, "spec.completions") {
        Some(c) => format!("{succeeded}/{c}"),
        None => match int(job, "spec.parallelism") {
            p if p > 1 => format!("{succeeded}/1 of {p}"),
            _ => format!("{succeeded}/1"),
        },
    };
    let duration = match (parse_time(at(job, "status.startTime")), parse_time(at(job, "status.completionTime"))) {
        (None, _) => String::new(),
        (Some(start), None) => human_duration(now - start),
        (Some(start), Some(done)) => human_duration(done - start),
    };
    let status = if job_condition(job, "Complete") {
        "Complete"
    } else if job_condition(job, "Failed") {
        "Failed"
    } else if at(job, "metadata.deletionTimestamp").is_some() {
        "Terminating"
    } else if job_condition(job, "Suspended") {
        "Suspended"
    } else if job_condition(job, "FailureTarget") {
        "FailureTarget"
    } else {
        "Running"
    };
    let (names, images) = container_cells(list(job, "spec.template.spec.containers"));
    cells![
        name(job),
        status,
        completions,
        duration,
        age(job, now),
        names,
        images,
        format_label_selector(at(job, "spec.selector")),
    ]
}

pub(crate) fn cronjob_columns() -> Vec<Col> {
    vec![
        Col::name(),
        doc("Schedule", "string", CJ_SPEC, "schedule"),
        doc("Timezone", "string", CJ_SPEC, "timeZone"),
        doc("Suspend", "boolean", CJ_SPEC, "suspend"),
        doc("Active", "integer", CJ_STATUS, "active"),
        doc("Last Schedule", "string", CJ_STATUS, "lastScheduleTime"),
        Col::age(),
        containers_col(),
        images_col(),
        doc("Selector", "string", JOB_SPEC, "selector").wide(),
    ]
}

pub(crate) fn cronjob_row(cj: &Value, now: DateTime<Utc>) -> Row {
    let last = match at(cj, "status.lastScheduleTime") {
        Some(t) => since(Some(t), now),
        None => "<none>".to_string(),
    };
    let (names, images) = container_cells(list(cj, "spec.jobTemplate.spec.template.spec.containers"));
    cells![
        name(cj),
        st(cj, "spec.schedule"),
        st_opt(cj, "spec.timeZone").unwrap_or("<none>"),
        bool_ptr(boolean(cj, "spec.suspend")),
        list(cj, "status.active").len() as i64,
        last,
        age(cj, now),
        names,
        images,
        format_label_selector(at(cj, "spec.jobTemplate.spec.selector")),
    ]
}

// ---------------------------------------------------------------------------
// Horizontal pod autoscalers

pub(crate) fn hpa_columns() -> Vec<Col> {
    vec![
        Col::name(),
        doc("Reference", "string", HPA_SPEC, "scaleTargetRef"),
        doc("Targets", "string", HPA_SPEC, "metrics"),
        doc("MinPods", "string", HPA_SPEC, "minReplicas"),
        doc("MaxPods", "string", HPA_SPEC, "maxReplicas"),
        doc("Replicas", "string", HPA_STATUS, "currentReplicas"),
        Col::age(),
    ]
}

fn qty(v: &Value, path: &str) -> Option<String> {
    at(v, path).map(|q| super::util::quantity(Some(q)))
}

/// One metric of the TARGETS cell ("cpu: 40%/50%", "<unknown>/100 (avg)").
fn format_metric(spec: &Value, status: Option<&Value>) -> String {
    const UNKNOWN: &str = "<unknown>";
    let unknown = || UNKNOWN.to_string();
    let zero = || "0".to_string();
    // The status entry of the same source kind, if the controller reported one.
    let cur = |source: &str| status.and_then(|s| at(s, source));
    match st(spec, "type") {
        "External" | "Object" => {
            let source = if st(spec, "type") == "External" { "external" } else { "object" };
            if let Some(target) = qty(spec, &format!("{source}.target.averageValue")) {
                let current = cur(source).and_then(|c| qty(c, "current.averageValue")).unwrap_or_else(unknown);
                format!("{current}/{target} (avg)")
            } else {
                let current = cur(source).map(|c| qty(c, "current.value").unwrap_or_else(zero)).unwrap_or_else(unknown);
                let target = qty(spec, &format!("{source}.target.value")).unwrap_or_else(zero);
                format!("{current}/{target}")
            }
        }
        "Pods" => {
            let current =
                cur("pods").map(|c| qty(c, "current.averageValue").unwrap_or_else(zero)).unwrap_or_else(unknown);
            let target = qty(spec, "pods.target.averageValue").unwrap_or_else(zero);
            format!("{current}/{target}")
        }
        "Resource" | "ContainerResource" => {
            let source = if st(spec, "type") == "Resource" { "resource" } else { "containerResource" };
            let resource = st(spec, &format!("{source}.name"));
            if let Some(target) = qty(spec, &format!("{source}.target.averageValue")) {
                let current =
                    cur(source).map(|c| qty(c, "current.averageValue").unwrap_or_else(zero)).unwrap_or_else(unknown);
                format!("{resource}: {current}/{target}")
            } else {
                let current = cur(source)
                    .and_then(|c| int_opt(c, "current.averageUtilization"))
                    .map_or_else(unknown, |u| format!("{u}%"));
                let target = int_opt(spec, &format!("{source}.target.averageUtilization"))
                    .map_or_else(|| "<auto>".to_string(), |u| format!("{u}%"));
                format!("{resource}: {current}/{target}")
            }
        }
        _ => "<unknown type>".to_string(),
    }
}

/// `formatHPAMetrics`: at most two metrics, then "+ N more...".
fn format_hpa_metrics(hpa: &Value) -> String {
    let specs = list(hpa, "spec.metrics");
    let statuses = list(hpa, "status.currentMetrics");
    if specs.is_empty() {
        // An autoscaling/v1 object: its CPU target is the only metric.
        if let Some(target) = int_opt(hpa, "spec.targetCPUUtilizationPercentage") {
            let current = int_opt(hpa, "status.currentCPUUtilizationPercentage")
                .map_or_else(|| "<unknown>".to_string(), |u| format!("{u}%"));
            return format!("cpu: {current}/{target}%");
        }
        return "<none>".to_string();
    }
    const MAX: usize = 2;
    let list: Vec<String> = specs.iter().enumerate().map(|(i, s)| format_metric(s, statuses.get(i))).collect();
    if list.len() > MAX {
        format!("{} + {} more...", list[..MAX].join(", "), list.len() - MAX)
    } else {
        list.join(", ")
    }
}

pub(crate) fn hpa_row(hpa: &Value, now: DateTime<Utc>) -> Row {
    let reference = format!("{}/{}", st(hpa, "spec.scaleTargetRef.kind"), st(hpa, "spec.scaleTargetRef.name"));
    let min_pods = int_opt(hpa, "spec.minReplicas").map_or_else(|| "<unset>".to_string(), |m| m.to_string());
    cells![
        name(hpa),
        reference,
        format_hpa_metrics(hpa),
        min_pods,
        int(hpa, "spec.maxReplicas"),
        int(hpa, "status.currentReplicas"),
        age(hpa, now),
    ]
}

// ---------------------------------------------------------------------------
// Pod disruption budgets

pub(crate) fn pdb_columns() -> Vec<Col> {
    vec![
        Col::name(),
        text("Min Available", "string", "The minimum number of pods that must be available."),
        text("Max Unavailable", "string", "The maximum number of pods that may be unavailable."),
        text("Allowed Disruptions", "integer", "Calculated number of pods that may be disrupted at this time."),
        Col::age(),
    ]
}

pub(crate) fn pdb_row(pdb: &Value, now: DateTime<Utc>) -> Row {
    let or_na = |path: &str| at(pdb, path).map_or_else(|| "N/A".to_string(), int_or_string);
    cells![
        name(pdb),
        or_na("spec.minAvailable"),
        or_na("spec.maxUnavailable"),
        int(pdb, "status.disruptionsAllowed"),
        age(pdb, now),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::printers::tests::now;
    use crate::printers::{IncludeObject, table};
    use serde_json::json;

    fn deployment() -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default", "creationTimestamp": "2025-05-30T09:00:00Z"},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "nginx", "image": "nginx:1.27"}, {"name": "log", "image": "busybox"}]}}},
            "status": {"replicas": 3, "readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}
        })
    }

    #[test]
    fn deployment_columns_and_cells() {
        let d = deployment();
        let t = table("apps", "deployments", &[&d], IncludeObject::Metadata, now());
        let cols = t["columnDefinitions"].as_array().cloned().unwrap_or_default();
        let summary: Vec<(String, i64)> = cols
            .iter()
            .map(|c| (c["name"].as_str().unwrap_or("").to_string(), c["priority"].as_i64().unwrap_or(-1)))
            .collect();
        let want = [
            ("Name", 0),
            ("Ready", 0),
            ("Up-to-date", 0),
            ("Available", 0),
            ("Age", 0),
            ("Containers", 1),
            ("Images", 1),
            ("Selector", 1),
        ];
        assert_eq!(summary, want.iter().map(|(n, p)| (n.to_string(), *p)).collect::<Vec<_>>());
        assert!(cols[2]["description"].as_str().is_some_and(|d| d.contains("desired template spec")));
        assert_eq!(
            t["rows"][0]["cells"],
            json!(["web", "2/3", 3, 2, "2d3h", "nginx,log", "nginx:1.27,busybox", "app=web"])
        );
        assert_eq!(t["rows"][0]["object"]["metadata"]["name"], "web");

        let mut bad = d.clone();
        bad["spec"]["selector"] = json!({"matchExpressions": [{"key": "a", "operator": "Bogus"}]});
        assert_eq!(deployment_row(&bad, now()).cells[7], "<invalid>");
        let mut none = d;
        none["spec"]["selector"] = json!({});
        assert_eq!(deployment_row(&none, now()).cells[7], "");
    }

    #[test]
    fn replicaset_statefulset_daemonset() {
        let rs = json!({"metadata": {"name": "web-abc"}, "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}}},
            "status": {"replicas": 2, "readyReplicas": 1}});
        assert_eq!(replicaset_row(&rs, now()).cells[1..4], [json!(2), json!(2), json!(1)]);
        let sts = json!({"metadata": {"name": "db"}, "spec": {}, "status": {"readyReplicas": 1}});
        assert_eq!(statefulset_row(&sts, now()).cells[1], "1/1");
        let ds = json!({"metadata": {"name": "proxy"}, "spec": {"selector": {"matchLabels": {"k": "v"}},
            "template": {"spec": {"nodeSelector": {"kubernetes.io/os": "linux"}}}},
            "status": {"desiredNumberScheduled": 2, "currentNumberScheduled": 2, "numberReady": 1,
                "updatedNumberScheduled": 2, "numberAvailable": 1}});
        let row = daemonset_row(&ds, now());
        assert_eq!(
            row.cells[1..7],
            [json!(2), json!(2), json!(1), json!(2), json!(1), json!("kubernetes.io/os=linux")]
        );
        assert_eq!(row.cells[10], "k=v");
        assert_eq!(row.cells.len(), daemonset_columns().len());
    }

    #[test]
    fn job_status_completions_duration() {
        let job = json!({"metadata": {"name": "pi"}, "spec": {"completions": 3, "parallelism": 1,
                "selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": "u1"}}},
            "status": {"succeeded": 1, "startTime": "2025-06-01T11:57:00Z"}});
        let row = job_row(&job, now());
        assert_eq!(row.cells[1..4], [json!("Running"), json!("1/3"), json!("3m")]);
        assert_eq!(row.cells[7], "batch.kubernetes.io/controller-uid=u1");

        let done = json!({"metadata": {"name": "pi"}, "spec": {"parallelism": 4},
            "status": {"succeeded": 1, "startTime": "2025-06-01T11:00:00Z", "completionTime": "2025-06-01T11:00:42Z",
                "conditions": [{"type": "SuccessCriteriaMet", "status": "True"}, {"type": "Complete", "status": "True"}]}});
        assert_eq!(job_row(&done, now()).cells[1..4], [json!("Complete"), json!("1/1 of 4"), json!("42s")]);

        let failed = json!({"spec": {}, "status": {"conditions": [{"type": "Failed", "status": "True"}]}});
        assert_eq!(job_row(&failed, now()).cells[1..4], [json!("Failed"), json!("0/1"), json!("")]);
        let suspended = json!({"status": {"conditions": [{"type": "Suspended", "status": "True"}]}});
        assert_eq!(job_row(&suspended, now()).cells[1], "Suspended");
        let deleting = json!({"metadata": {"deletionTimestamp": "2025-06-01T11:00:00Z"},
            "status": {"conditions": [{"type": "Suspended", "status": "True"}]}});
        assert_eq!(job_row(&deleting, now()).cells[1], "Terminating");
        let target = json!({"status": {"conditions": [{"type": "FailureTarget", "status": "True"}]}});
        assert_eq!(job_row(&target, now()).cells[1], "FailureTarget");
        let complete_false = json!({"status": {"conditions": [{"type": "Complete", "status": "False"}]}});
        assert_eq!(job_row(&complete_false, now()).cells[1], "Running");
    }

    #[test]
    fn cronjob_cells() {
        let cj = json!({"metadata": {"name": "backup"}, "spec": {"schedule": "*/5 * * * *", "suspend": false,
                "jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "b", "image": "busybox"}]}}}}},
            "status": {"active": [{"name": "backup-1"}], "lastScheduleTime": "2025-06-01T11:55:00Z"}});
        assert_eq!(
            cronjob_row(&cj, now()).cells,
            vec![
                json!("backup"),
                json!("*/5 * * * *"),
                json!("<none>"),
                json!("False"),
                json!(1),
                json!("5m"),
                json!("<unknown>"),
                json!("b"),
                json!("busybox"),
                json!("<none>")
            ]
        );
        let bare = json!({"spec": {"timeZone": "Etc/UTC"}});
        assert_eq!(
            cronjob_row(&bare, now()).cells[2..6],
            [json!("Etc/UTC"), json!("<unset>"), json!(0), json!("<none>")]
        );
    }

    #[test]
    fn hpa_targets() {
        let hpa = json!({"metadata": {"name": "web"}, "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"},
                "maxReplicas": 10, "metrics": [{"type": "Resource", "resource": {"name": "cpu",
                    "target": {"type": "Utilization", "averageUtilization": 50}}}]},
            "status": {"currentReplicas": 1}});
        assert_eq!(
            hpa_row(&hpa, now()).cells[..6],
            [json!("web"), json!("Deployment/web"), json!("cpu: <unknown>/50%"), json!("<unset>"), json!(10), json!(1)]
        );

        let hpa = json!({"spec": {"minReplicas": 2, "metrics": [
                {"type": "Resource", "resource": {"name": "cpu", "target": {"averageUtilization": 50}}},
                {"type": "Pods", "pods": {"target": {"averageValue": "1k"}}},
                {"type": "External", "external": {"target": {"value": "100"}}}]},
            "status": {"currentMetrics": [{"type": "Resource", "resource": {"name": "cpu",
                "current": {"averageUtilization": 40, "averageValue": "100m"}}}, {"type": "Pods",
                "pods": {"current": {"averageValue": "500"}}}]}});
        let row = hpa_row(&hpa, now());
        assert_eq!(row.cells[2], "cpu: 40%/50%, 500/1k + 1 more...");
        assert_eq!(row.cells[3], "2");
        let v1 = json!({"spec": {"targetCPUUtilizationPercentage": 80}});
        assert_eq!(hpa_row(&v1, now()).cells[2], "cpu: <unknown>/80%");
        assert_eq!(hpa_row(&json!({}), now()).cells[2], "<none>");
        let m = json!({"type": "Resource", "resource": {"name": "memory", "target": {"averageValue": "1Gi"}}});
        assert_eq!(format_metric(&m, None), "memory: <unknown>/1Gi");
        let o = json!({"type": "Object", "object": {"target": {"averageValue": "5"}}});
        assert_eq!(format_metric(&o, None), "<unknown>/5 (avg)");
        assert_eq!(format_metric(&json!({"type": "Weird"}), None), "<unknown type>");
    }

    #[test]
    fn pdb_and_controller_revision() {
        let pdb =
            json!({"metadata": {"name": "web"}, "spec": {"minAvailable": "50%"}, "status": {"disruptionsAllowed": 1}});
        assert_eq!(pdb_row(&pdb, now()).cells[1..4], [json!("50%"), json!("N/A"), json!(1)]);
        let pdb = json!({"spec": {"maxUnavailable": 1}});
        assert_eq!(pdb_row(&pdb, now()).cells[1..3], [json!("N/A"), json!("1")]);

        let cr = json!({"metadata": {"name": "web-5d4f", "ownerReferences": [
            {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "web", "controller": true}]}, "revision": 2});
        assert_eq!(controllerrevision_row(&cr, now()).cells[1..3], [json!("statefulset.apps/web"), json!(2)]);
        let orphan = json!({"metadata": {"name": "x"}, "revision": 1});
        assert_eq!(controllerrevision_row(&orphan, now()).cells[1], "<none>");
        let core_owner = json!({"metadata": {"ownerReferences": [{"apiVersion": "v1", "kind": "Pod", "name": "p",
            "controller": true}]}});
        assert_eq!(controller_of(&core_owner), "pod/p");
    }
}
