//! Service ClusterIP and NodePort allocation, as upstream's allocators do it.
//!
//! Every allocation is a key created with a compare-and-swap create in the
//! store, so it survives restarts and holds across several apiservers on one
//! etcd: a ClusterIP is an `IPAddress` object (networking.k8s.io/v1, named by
//! the address, as upstream 1.33's allocator keeps them); a NodePort is the key
//! `/rkube/nodeports/<port>`. Requested values are honoured when free; taken or
//! out-of-range values are rejected with upstream's messages; allocations are
//! released when the Service is deleted or stops needing them.

use crate::objects;
use crate::server::{Server, Settings, store_error};
use bytes::Bytes;
use rand::Rng;
use rkube_registry::resources::{self, ResourceInfo};
use rkube_registry::{ApiError, FieldError};
use rkube_storage::StoreError;
use serde_json::{Value, json};
use std::net::Ipv4Addr;

/// An IPv4 range such as 10.96.0.0/12.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    pub base: Ipv4Addr,
    pub prefix: u8,
}

impl Cidr {
    pub fn parse(s: &str) -> Option<Cidr> {
        let (ip, len) = s.split_once('/')?;
        let ip: Ipv4Addr = ip.parse().ok()?;
        let prefix: u8 = len.parse().ok().filter(|p| *p <= 32)?;
        let mask = if prefix == 0 { 0 } else { u32::MAX << (32 - prefix) };
        Some(Cidr { base: Ipv4Addr::from(u32::from(ip) & mask), prefix })
    }
    pub fn size(&self) -> u64 {
        1u64 << (32 - self.prefix)
    }
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        let off = u32::from(ip).wrapping_sub(u32::from(self.base)) as u64;
        u32::from(ip) >= u32::from(self.base) && off < self.size()
    }
    pub fn nth(&self, n: u64) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.base).wrapping_add(n as u32))
    }
    /// The first usable address (the `kubernetes` Service's ClusterIP).
    pub fn first(&self) -> Ipv4Addr {
        self.nth(1)
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.base, self.prefix)
    }
}

pub struct Allocators {
    cidr: Cidr,
    ports: (u16, u16),
}

impl Allocators {
    pub fn new(s: &Settings) -> Self {
        Self { cidr: s.service_cidr, ports: s.node_port_range }
    }
}

const NODEPORT_PREFIX: &str = "/rkube/nodeports/";

fn ipaddress_info() -> Option<&'static ResourceInfo> {
    resources::lookup("networking.k8s.io", "v1", "ipaddresses")
}

fn ip_key(ip: &str) -> String {
    match ipaddress_info() {
        Some(info) => objects::key(info, None, ip),
        None => format!("/rkube/serviceips/{ip}"),
    }
}

fn port_key(port: i64) -> String {
    format!("{NODEPORT_PREFIX}{port}")
}

/// Keys taken by a write; released again if the write fails.
#[derive(Default)]
pub struct Taken {
    keys: Vec<String>,
    /// Keys to free once the write succeeded (allocations no longer used).
    free_after: Vec<String>,
}

impl Taken {
    pub async fn release(self, server: &Server) {
        for k in self.keys {
            let _ = server.store.delete(&k, 0).await;
        }
    }
    pub async fn rollback(self, server: &Server) {
        self.release(server).await
    }
    pub async fn commit(self, server: &Server) {
        for k in self.free_after {
            let _ = server.store.delete(&k, 0).await;
        }
    }
}

fn is_service(info: &ResourceInfo) -> bool {
    info.group.is_empty() && info.resource == "services"
}

fn svc_type(obj: &Value) -> &str {
    obj.pointer("/spec/type").and_then(Value::as_str).unwrap_or("ClusterIP")
}

fn needs_node_ports(obj: &Value) -> bool {
    match svc_type(obj) {
        "NodePort" => true,
        "LoadBalancer" => obj.pointer("/spec/allocateLoadBalancerNodePorts").and_then(Value::as_bool).unwrap_or(true),
        _ => false,
    }
}

fn owner(obj: &Value) -> String {
    format!("{}/{}", objects::meta_str(obj, "namespace").unwrap_or(""), objects::name(obj))
}

fn invalid(obj: &Value, errs: Vec<FieldError>) -> ApiError {
    ApiError::invalid("", "Service", objects::name(obj), &errs)
}

impl Server {
    async fn take_ip(&self, ip: Ipv4Addr, svc: &Value) -> Result<bool, ApiError> {
        let key = ip_key(&ip.to_string());
        let value = match ipaddress_info() {
            Some(_) => json!({
                "apiVersion": "networking.k8s.io/v1",
                "kind": "IPAddress",
                "metadata": {
                    "name": ip.to_string(),
                    "uid": uuid::Uuid::new_v4().to_string(),
                    "creationTimestamp": objects::now_rfc3339(),
                    "labels": {
                        "ipaddress.kubernetes.io/ip-family": "IPv4",
                        "ipaddress.kubernetes.io/managed-by": "ipallocator.k8s.io",
                    },
                },
                "spec": {"parentRef": {
                    "group": "",
                    "resource": "services",
                    "namespace": objects::meta_str(svc, "namespace").unwrap_or(""),
                    "name": objects::name(svc),
                }},
            }),
            None => json!(owner(svc)),
        };
        match self.store.create(&key, Bytes::from(serde_json::to_vec(&value).unwrap_or_default())).await {
            Ok(_) => Ok(true),
            Err(StoreError::AlreadyExists(_)) => Ok(false),
            Err(e) => Err(store_error(e)),
        }
    }

    async fn take_port(&self, port: i64, svc: &Value) -> Result<bool, ApiError> {
        match self.store.create(&port_key(port), Bytes::from(owner(svc))).await {
            Ok(_) => Ok(true),
            Err(StoreError::AlreadyExists(_)) => Ok(false),
            Err(e) => Err(store_error(e)),
        }
    }

    /// A ClusterIP: the requested one, or a random free one (upper part of
    /// the range first, as upstream keeps the lower part for static choices).
    async fn allocate_ip(&self, svc: &mut Value, taken: &mut Taken) -> Result<(), ApiError> {
        let cidr = self.alloc.cidr;
        let requested = svc
            .pointer("/spec/clusterIPs/0")
            .and_then(Value::as_str)
            .or_else(|| svc.pointer("/spec/clusterIP").and_then(Value::as_str))
            .unwrap_or("")
            .to_string();
        if requested == "None" {
            svc["spec"]["clusterIPs"] = json!(["None"]);
            return Ok(());
        }
        let ip = if requested.is_empty() {
            let size = cidr.size();
            let reserved = (size / 16).clamp(16, 256).min(size.saturating_sub(2));
            let mut found = None;
            // random probes in the dynamic part, then a scan of everything
            for _ in 0..64 {
                let n = rand::rng().random_range(reserved.max(2)..size - 1);
                let ip = cidr.nth(n);
                if self.take_ip(ip, svc).await? {
                    found = Some(ip);
                    break;
                }
            }
            if found.is_none() {
                for n in (2..size - 1).rev() {
                    let ip = cidr.nth(n);
                    if self.take_ip(ip, svc).await? {
                        found = Some(ip);
                        break;
                    }
                }
            }
            found.ok_or_else(|| ApiError::internal("failed to allocate a serviceIP: range is full".to_string()))?
        } else {
            let Ok(ip) = requested.parse::<Ipv4Addr>() else {
                return Err(invalid(
                    svc,
                    vec![FieldError::invalid(
                        "spec.clusterIPs[0]",
                        json!(requested),
                        "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
                    )],
                ));
            };
            if !cidr.contains(ip)
                || ip == cidr.base
                || u64::from(u32::from(ip) - u32::from(cidr.base)) == cidr.size() - 1
            {
                return Err(invalid(
                    svc,
                    vec![FieldError::invalid(
                        "spec.clusterIPs[0]",
                        json!(requested),
                        format!(
                            "failed to allocate IP {requested}: provided IP ({requested}) is not in the valid range. The range of valid IPs is {cidr}"
                        ),
                    )],
                ));
            }
            if !self.take_ip(ip, svc).await? {
                return Err(invalid(
                    svc,
                    vec![FieldError::invalid(
                        "spec.clusterIPs[0]",
                        json!(requested),
                        format!("failed to allocate IP {requested}: provided IP is already allocated"),
                    )],
                ));
            }
            ip
        };
        taken.keys.push(ip_key(&ip.to_string()));
        let s = &mut svc["spec"];
        s["clusterIP"] = json!(ip.to_string());
        s["clusterIPs"] = json!([ip.to_string()]);
        Ok(())
    }

    /// NodePorts for every port that has none; requested ones checked.
    async fn allocate_ports(&self, svc: &mut Value, keep: &[i64], taken: &mut Taken) -> Result<(), ApiError> {
        let (lo, hi) = self.alloc.ports;
        let n = svc.pointer("/spec/ports").and_then(Value::as_array).map_or(0, Vec::len);
        for i in 0..n {
            let requested = svc["spec"]["ports"][i].get("nodePort").and_then(Value::as_i64).unwrap_or(0);
            if requested != 0 {
                if keep.contains(&requested) {
                    continue;
                }
                if requested < lo as i64 || requested > hi as i64 {
                    return Err(invalid(
                        svc,
                        vec![FieldError::invalid(
                            format!("spec.ports[{i}].nodePort"),
                            json!(requested),
                            format!("provided port is not in the valid range. The range of valid ports is {lo}-{hi}"),
                        )],
                    ));
                }
                if !self.take_port(requested, svc).await? {
                    return Err(invalid(
                        svc,
                        vec![FieldError::invalid(
                            format!("spec.ports[{i}].nodePort"),
                            json!(requested),
                            "provided port is already allocated",
                        )],
                    ));
                }
                taken.keys.push(port_key(requested));
                continue;
            }
            let span = (hi - lo + 1) as i64;
            let mut port = None;
            let start = rand::rng().random_range(0..span);
            for k in 0..span {
                let p = lo as i64 + (start + k) % span;
                if self.take_port(p, svc).await? {
                    port = Some(p);
                    break;
                }
            }
            let p = port.ok_or_else(|| ApiError::internal("failed to allocate a nodePort: range is full"))?;
            taken.keys.push(port_key(p));
            svc["spec"]["ports"][i]["nodePort"] = json!(p);
        }
        Ok(())
    }
}

fn node_ports(obj: &Value) -> Vec<i64> {
    obj.pointer("/spec/ports")
        .and_then(Value::as_array)
        .map(|ps| ps.iter().filter_map(|p| p.get("nodePort").and_then(Value::as_i64)).filter(|p| *p != 0).collect())
        .unwrap_or_default()
}

fn cluster_ip(obj: &Value) -> Option<&str> {
    obj.pointer("/spec/clusterIP").and_then(Value::as_str).filter(|s| !s.is_empty() && *s != "None")
}

/// On Service create: allocate a ClusterIP (unless headless or ExternalName)
/// and NodePorts. Dry runs check requested values but keep nothing.
pub async fn allocate_on_create(
    server: &Server,
    info: &ResourceInfo,
    obj: &mut Value,
    dry_run: bool,
) -> Result<Taken, ApiError> {
    let mut taken = Taken::default();
    if !is_service(info) {
        return Ok(taken);
    }
    let result = async {
        if svc_type(obj) != "ExternalName" {
            server.allocate_ip(obj, &mut taken).await?;
            let s = &mut obj["spec"];
            if s.get("ipFamilies").is_none() {
                s["ipFamilies"] = json!(["IPv4"]);
            }
            if s.get("ipFamilyPolicy").is_none() {
                s["ipFamilyPolicy"] = json!("SingleStack");
            }
        }
        if needs_node_ports(obj) {
            server.allocate_ports(obj, &[], &mut taken).await?;
        }
        Ok::<(), ApiError>(())
    }
    .await;
    if result.is_err() || dry_run {
        taken.release(server).await;
        result?;
        return Ok(Taken::default());
    }
    Ok(taken)
}

/// On Service update: values the client left out stay as allocated.
pub fn keep_allocations(info: &ResourceInfo, new: &mut Value, old: &Value) {
    if !is_service(info) || !new.get("spec").is_some_and(Value::is_object) {
        return;
    }
    for f in ["clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"] {
        if new["spec"].get(f).is_none_or(|v| v.is_null() || v == "")
            && let Some(v) = old.pointer(&format!("/spec/{f}"))
        {
            new["spec"][f] = v.clone();
        }
    }
    // Upstream's dropTypeDependentFields: a type change that no longer needs node
    // ports drops the allocated ones and an externalTrafficPolicy the client left as it was.
    if needs_node_ports(old) && !needs_node_ports(new) {
        let old_ports = node_ports(old);
        if let Some(ports) = new.pointer_mut("/spec/ports").and_then(Value::as_array_mut) {
            for p in ports {
                if p.get("nodePort").and_then(Value::as_i64).is_some_and(|n| old_ports.contains(&n))
                    && let Some(o) = p.as_object_mut()
                {
                    o.remove("nodePort");
                }
            }
        }
        if matches!(svc_type(new), "ClusterIP" | "ExternalName")
            && new.pointer("/spec/externalTrafficPolicy") == old.pointer("/spec/externalTrafficPolicy")
            && let Some(o) = new["spec"].as_object_mut()
        {
            o.remove("externalTrafficPolicy");
            o.remove("healthCheckNodePort");
        }
    }
    if needs_node_ports(new) {
        let old_ports = old.pointer("/spec/ports").and_then(Value::as_array).cloned().unwrap_or_default();
        if let Some(ports) = new.pointer_mut("/spec/ports").and_then(Value::as_array_mut) {
            for p in ports {
                if p.get("nodePort").and_then(Value::as_i64).unwrap_or(0) != 0 {
                    continue;
                }
                let same = old_ports.iter().find(|o| {
                    o.get("port") == p.get("port")
                        && o.get("protocol").unwrap_or(&json!("TCP")) == p.get("protocol").unwrap_or(&json!("TCP"))
                });
                if let Some(np) = same.and_then(|o| o.get("nodePort")).filter(|v| v.as_i64().unwrap_or(0) != 0) {
                    p["nodePort"] = np.clone();
                }
            }
        }
    }
}

/// On Service update: new NodePorts taken now, unused ones freed on commit.
pub async fn reallocate_on_update(
    server: &Server,
    info: &ResourceInfo,
    new: &mut Value,
    old: &Value,
    dry_run: bool,
) -> Result<Taken, ApiError> {
    let mut taken = Taken::default();
    if !is_service(info) {
        return Ok(taken);
    }
    let old_ports = node_ports(old);
    if needs_node_ports(new) {
        if let Err(e) = server.allocate_ports(new, &old_ports, &mut taken).await {
            taken.release(server).await;
            return Err(e);
        }
    } else if let Some(ports) = new.pointer_mut("/spec/ports").and_then(Value::as_array_mut) {
        for p in ports {
            if let Some(o) = p.as_object_mut() {
                o.remove("nodePort");
            }
        }
    }
    let still = node_ports(new);
    taken.free_after = old_ports.into_iter().filter(|p| !still.contains(p)).map(port_key).collect();
    if svc_type(new) == "ExternalName"
        && let Some(ip) = cluster_ip(old)
    {
        taken.free_after.push(ip_key(ip));
    }
    if dry_run {
        taken.release(server).await;
        return Ok(Taken::default());
    }
    Ok(taken)
}

/// On Service delete: everything it held goes back.
pub async fn release_on_delete(server: &Server, info: &ResourceInfo, obj: &Value) {
    if !is_service(info) {
        return;
    }
    if let Some(ip) = cluster_ip(obj) {
        let _ = server.store.delete(&ip_key(ip), 0).await;
    }
    for p in node_ports(obj) {
        let _ = server.store.delete(&port_key(p), 0).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_math() {
        let c = Cidr::parse("10.96.0.0/12").unwrap();
        assert_eq!(c.size(), 1 << 20);
        assert_eq!(c.first(), Ipv4Addr::new(10, 96, 0, 1));
        assert!(c.contains(Ipv4Addr::new(10, 111, 255, 255)));
        assert!(!c.contains(Ipv4Addr::new(10, 112, 0, 0)));
        assert_eq!(Cidr::parse("10.96.3.4/12").unwrap().base, Ipv4Addr::new(10, 96, 0, 0));
        assert!(Cidr::parse("10.96.0.0/33").is_none());
    }
}
