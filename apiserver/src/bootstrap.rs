//! What exists from the first start: the four system namespaces, the
//! `default/kubernetes` Service pointing at this apiserver (with its
//! Endpoints and EndpointSlice), and the default ServiceCIDR. Runs on every
//! start and repairs what is missing or stale.

use crate::request::ResourcePath;
use crate::rest::WriteOptions;
use crate::server::Server;

/// The field manager of what the apiserver itself writes.
const MANAGER: &str = "kube-apiserver";
use rkube_registry::ApiError;
use rkube_registry::resources::{self, ResourceInfo};
use serde_json::{Value, json};

fn info(group: &str, resource: &str) -> Result<&'static ResourceInfo, ApiError> {
    resources::lookup(group, "v1", resource)
        .ok_or_else(|| ApiError::internal(format!("built-in resource {resource} missing from the table")))
}

impl Server {
    async fn ensure(&self, info: &'static ResourceInfo, ns: Option<&str>, obj: Value) -> Result<(), ApiError> {
        let name = crate::objects::name(&obj).to_string();
        let key = crate::objects::key(info, ns, &name);
        if self.store.get(&key).await.map_err(crate::server::store_error)?.is_some() {
            return Ok(());
        }
        match self.create_object(info, &ResourcePath::default(), ns, obj, &WriteOptions::internal(MANAGER)).await {
            Ok(_) => Ok(()),
            Err(e) if e.code == 409 => Ok(()),
            Err(e) => Err(ApiError::internal(format!("bootstrap of {} {name}: {}", info.resource, e.message))),
        }
    }

    /// Create or correct an object we own completely (endpoints of `kubernetes`).
    async fn reconcile(&self, info: &'static ResourceInfo, ns: Option<&str>, obj: Value) -> Result<(), ApiError> {
        let name = crate::objects::name(&obj).to_string();
        let path = ResourcePath::default();
        match self.get_object(info, &path, ns, &name, &crate::request::Query::default()).await {
            Ok(cur) => {
                let same = ["subsets", "endpoints", "ports", "addressType"].iter().all(|f| cur.get(*f) == obj.get(*f));
                if same {
                    return Ok(());
                }
                let mut new = obj;
                new["metadata"]["resourceVersion"] = cur["metadata"]["resourceVersion"].clone();
                self.update_object(
                    info,
                    &path,
                    ns,
                    &name,
                    crate::rest::Change::Replace(new),
                    &WriteOptions::internal(MANAGER),
                )
                .await
                .map(|_| ())
            }
            Err(e) if e.code == 404 => self.ensure(info, ns, obj).await,
            Err(e) => Err(e),
        }
    }

    pub async fn bootstrap(&self) -> Result<(), ApiError> {
        let ns = info("", "namespaces")?;
        for name in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            self.ensure(ns, None, json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})).await?;
        }
        if let Ok(cidrs) = info("networking.k8s.io", "servicecidrs") {
            self.ensure(
                cidrs,
                None,
                json!({"apiVersion": "networking.k8s.io/v1", "kind": "ServiceCIDR",
                    "metadata": {"name": "kubernetes"},
                    "spec": {"cidrs": [self.settings.service_cidr.to_string()]}}),
            )
            .await?;
        }
        let ip = self.settings.service_cidr.first().to_string();
        let port = self.settings.secure_port;
        let addr = self.settings.advertise_address.to_string();
        self.ensure(
            info("", "services")?,
            Some("default"),
            json!({"apiVersion": "v1", "kind": "Service",
                "metadata": {"name": "kubernetes", "namespace": "default",
                    "labels": {"component": "apiserver", "provider": "kubernetes"}},
                "spec": {"type": "ClusterIP", "clusterIP": ip, "sessionAffinity": "None",
                    "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": port}]}}),
        )
        .await?;
        self.reconcile(
            info("", "endpoints")?,
            Some("default"),
            json!({"apiVersion": "v1", "kind": "Endpoints",
                "metadata": {"name": "kubernetes", "namespace": "default",
                    "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
                "subsets": [{"addresses": [{"ip": addr}], "ports": [{"name": "https", "port": port, "protocol": "TCP"}]}]}),
        )
        .await?;
        if let Ok(slices) = info("discovery.k8s.io", "endpointslices") {
            self.reconcile(
                slices,
                Some("default"),
                json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                    "metadata": {"name": "kubernetes", "namespace": "default",
                        "labels": {"kubernetes.io/service-name": "kubernetes",
                            "endpointslice.kubernetes.io/managed-by": "endpointslicemirroring-controller.k8s.io"}},
                    "addressType": "IPv4",
                    "endpoints": [{"addresses": [addr], "conditions": {"ready": true}}],
                    "ports": [{"name": "https", "port": port, "protocol": "TCP"}]}),
            )
            .await?;
        }
        Ok(())
    }
}
