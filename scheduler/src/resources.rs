//! Resource arithmetic as the scheduler sees it: a pod's effective requests (containers,
//! sidecars, the init-container max rule, overhead), the "non-zero" requests used for scoring
//! (100m CPU / 200Mi memory for containers that request nothing), and a node's allocatable.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, Node, Pod};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

/// Default CPU request (millicores) assumed for scoring a container without one.
pub const DEFAULT_MILLI_CPU_REQUEST: i64 = 100;
/// Default memory request (bytes) assumed for scoring a container without one.
pub const DEFAULT_MEMORY_REQUEST: i64 = 200 * 1024 * 1024;

/// Requested or allocatable amounts: CPU in millicores, the rest in units.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Resources {
    pub milli_cpu: i64,
    pub memory: i64,
    pub ephemeral_storage: i64,
    /// Extended resources, hugepages and anything else that is not cpu/memory/ephemeral/pods.
    pub scalar: BTreeMap<String, i64>,
}

fn qty_value(q: &Quantity, milli: bool) -> i64 {
    let Some(q) = rkube_registry::quantity::parse_quantity(&q.0) else { return 0 };
    let v = if milli { q.milli_value() } else { q.value() };
    i64::try_from(v).unwrap_or(if v > 0 { i64::MAX } else { 0 })
}

impl Resources {
    pub fn from_list(list: &BTreeMap<String, Quantity>) -> Self {
        let mut r = Resources::default();
        for (name, q) in list {
            r.set(name, q);
        }
        r
    }

    fn set(&mut self, name: &str, q: &Quantity) {
        match name {
            "cpu" => self.milli_cpu = qty_value(q, true),
            "memory" => self.memory = qty_value(q, false),
            "ephemeral-storage" => self.ephemeral_storage = qty_value(q, false),
            "pods" => {}
            other => {
                self.scalar.insert(other.to_string(), qty_value(q, false));
            }
        }
    }

    pub fn add(&mut self, o: &Resources) {
        self.milli_cpu = self.milli_cpu.saturating_add(o.milli_cpu);
        self.memory = self.memory.saturating_add(o.memory);
        self.ephemeral_storage = self.ephemeral_storage.saturating_add(o.ephemeral_storage);
        for (k, v) in &o.scalar {
            let e = self.scalar.entry(k.clone()).or_insert(0);
            *e = e.saturating_add(*v);
        }
    }

    pub fn sub(&mut self, o: &Resources) {
        self.milli_cpu = self.milli_cpu.saturating_sub(o.milli_cpu);
        self.memory = self.memory.saturating_sub(o.memory);
        self.ephemeral_storage = self.ephemeral_storage.saturating_sub(o.ephemeral_storage);
        for (k, v) in &o.scalar {
            let e = self.scalar.entry(k.clone()).or_insert(0);
            *e = e.saturating_sub(*v);
        }
    }

    pub fn max_with(&mut self, o: &Resources) {
        self.milli_cpu = self.milli_cpu.max(o.milli_cpu);
        self.memory = self.memory.max(o.memory);
        self.ephemeral_storage = self.ephemeral_storage.max(o.ephemeral_storage);
        for (k, v) in &o.scalar {
            let e = self.scalar.entry(k.clone()).or_insert(0);
            *e = (*e).max(*v);
        }
    }

    pub fn is_zero(&self) -> bool {
        self.milli_cpu == 0 && self.memory == 0 && self.ephemeral_storage == 0 && self.scalar.values().all(|v| *v == 0)
    }
}

/// A container's requests; a resource with a limit but no request requests its limit
/// (as the apiserver's defaulting does). With `non_zero`, missing cpu/memory get the defaults.
fn container_requests(c: &Container, non_zero: bool) -> Resources {
    let mut r = Resources::default();
    let (requests, limits) = match &c.resources {
        Some(res) => (res.requests.as_ref(), res.limits.as_ref()),
        None => (None, None),
    };
    if let Some(l) = limits {
        for (name, q) in l {
            if requests.is_none_or(|req| !req.contains_key(name)) {
                r.set(name, q);
            }
        }
    }
    if let Some(req) = requests {
        for (name, q) in req {
            r.set(name, q);
        }
    }
    if non_zero {
        let has =
            |name: &str| requests.is_some_and(|m| m.contains_key(name)) || limits.is_some_and(|m| m.contains_key(name));
        if !has("cpu") {
            r.milli_cpu = DEFAULT_MILLI_CPU_REQUEST;
        }
        if !has("memory") {
            r.memory = DEFAULT_MEMORY_REQUEST;
        }
    }
    r
}

/// Upstream's `PodRequests`: sum of containers and restartable (sidecar) init containers,
/// at least the largest init-container step (each step also carrying the sidecars started
/// before it), plus the pod overhead.
pub fn pod_requests(pod: &Pod, non_zero: bool) -> Resources {
    let mut reqs = Resources::default();
    let Some(spec) = &pod.spec else { return reqs };
    for c in &spec.containers {
        reqs.add(&container_requests(c, non_zero));
    }
    let mut sidecars = Resources::default();
    let mut init_max = Resources::default();
    for c in spec.init_containers.iter().flatten() {
        let r = container_requests(c, non_zero);
        let step = if c.restart_policy.as_deref() == Some("Always") {
            reqs.add(&r);
            sidecars.add(&r);
            sidecars.clone()
        } else {
            let mut s = r;
            s.add(&sidecars);
            s
        };
        init_max.max_with(&step);
    }
    reqs.max_with(&init_max);
    if let Some(overhead) = &spec.overhead {
        reqs.add(&Resources::from_list(overhead));
    }
    reqs
}

/// A node's allocatable (falling back to capacity) and its allowed pod count.
pub fn node_allocatable(node: &Node) -> (Resources, i64) {
    let status = node.status.as_ref();
    let list = status.and_then(|s| s.allocatable.as_ref().or(s.capacity.as_ref()));
    match list {
        Some(l) => (Resources::from_list(l), l.get("pods").map(|q| qty_value(q, false)).unwrap_or(0)),
        None => (Resources::default(), 0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PodSpec, ResourceRequirements};

    fn c(cpu: Option<&str>, mem: Option<&str>, restart: Option<&str>) -> Container {
        let mut req = BTreeMap::new();
        if let Some(v) = cpu {
            req.insert("cpu".to_string(), Quantity(v.into()));
        }
        if let Some(v) = mem {
            req.insert("memory".to_string(), Quantity(v.into()));
        }
        Container {
            name: "c".into(),
            resources: Some(ResourceRequirements { requests: Some(req), ..Default::default() }),
            restart_policy: restart.map(Into::into),
            ..Default::default()
        }
    }

    fn pod(containers: Vec<Container>, init: Vec<Container>) -> Pod {
        Pod {
            spec: Some(PodSpec { containers, init_containers: Some(init), ..Default::default() }),
            ..Default::default()
        }
    }

    #[test]
    fn containers_sum_and_init_max() {
        let p =
            pod(vec![c(Some("100m"), Some("1Gi"), None), c(Some("200m"), None, None)], vec![c(Some("1"), None, None)]);
        let r = pod_requests(&p, false);
        assert_eq!(r.milli_cpu, 1000);
        assert_eq!(r.memory, 1 << 30);
        let nz = pod_requests(&p, true);
        // init container step: 1000m cpu + default 200Mi memory vs containers 300m / 1Gi+200Mi
        assert_eq!(nz.milli_cpu, 1000);
        assert_eq!(nz.memory, (1 << 30) + DEFAULT_MEMORY_REQUEST);
    }

    #[test]
    fn sidecars_add_to_containers_and_later_init_steps() {
        let p = pod(
            vec![c(Some("100m"), None, None)],
            vec![c(Some("500m"), None, Some("Always")), c(Some("700m"), None, None)],
        );
        // containers: 100m + sidecar 500m = 600m; init step 2: 700m + 500m = 1200m
        assert_eq!(pod_requests(&p, false).milli_cpu, 1200);
    }

    #[test]
    fn overhead_and_limits_fallback() {
        let mut cont = Container { name: "c".into(), ..Default::default() };
        cont.resources = Some(ResourceRequirements {
            limits: Some([("cpu".to_string(), Quantity("250m".into()))].into()),
            ..Default::default()
        });
        let mut p = pod(vec![cont], vec![]);
        if let Some(spec) = p.spec.as_mut() {
            spec.overhead = Some([("cpu".to_string(), Quantity("50m".into()))].into());
        }
        assert_eq!(pod_requests(&p, false).milli_cpu, 300);
    }
}
