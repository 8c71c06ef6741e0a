//! rkube-controller-serviceaccount: the `default` ServiceAccount and the `kube-root-ca.crt` ConfigMap in
//! every namespace.
//!
//! Two upstream kube-controller-manager controllers in one reconciler keyed by namespace:
//! - `serviceaccount-controller`: every Active namespace has a ServiceAccount named `default`
//!   (recreated when deleted; namespaces that are terminating are left alone);
//! - `root-ca-certificate-publisher-controller`: every namespace has the ConfigMap `kube-root-ca.crt`
//!   whose data is exactly `{"ca.crt": <cluster CA PEM>}` and which carries the
//!   `kubernetes.io/description` annotation (recreated when deleted, corrected when edited).
//!
//! It is an API client only: it watches Namespaces, and the two named objects in every namespace, and
//! writes through the API. It never deletes anything.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, ServiceAccount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{Controller, watcher};
use kube::{Client, ResourceExt};

/// Name of the ServiceAccount ensured in every namespace.
pub const DEFAULT_SERVICE_ACCOUNT: &str = "default";
/// Name of the ConfigMap holding the cluster CA bundle in every namespace.
pub const ROOT_CA_CONFIGMAP: &str = "kube-root-ca.crt";
/// Key of the CA bundle inside [`ROOT_CA_CONFIGMAP`].
pub const ROOT_CA_KEY: &str = "ca.crt";
/// Annotation upstream puts on [`ROOT_CA_CONFIGMAP`].
pub const DESCRIPTION_ANNOTATION: &str = "kubernetes.io/description";
/// Upstream's value of [`DESCRIPTION_ANNOTATION`].
pub const DESCRIPTION: &str = "Contains a CA bundle that can be used to verify the kube-apiserver when using internal \
     endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across \
     distributions of Kubernetes clusters.";

/// Configuration of the controller.
#[derive(Clone, Debug, Default)]
pub struct Config {
    /// The cluster CA certificate(s), PEM, published as `ca.crt` (upstream: `--root-ca-file`).
    pub root_ca_pem: String,
}

/// Errors of the controller.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
}

struct Ctx {
    client: Client,
    config: Config,
}

/// Runs the controller until the process ends.
pub async fn run(client: Client, config: Config) -> Result<(), Error> {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let sas: Api<ServiceAccount> = Api::all(client.clone());
    let cms: Api<ConfigMap> = Api::all(client.clone());
    let ctx = Arc::new(Ctx { client, config });
    tracing::info!(controller = "serviceaccount-controller", "Starting controller");
    Controller::new(namespaces, watcher::Config::default())
        .watches(
            sas,
            watcher::Config::default().fields(&format!("metadata.name={DEFAULT_SERVICE_ACCOUNT}")),
            |sa: ServiceAccount| sa.namespace().map(|ns| ObjectRef::<Namespace>::new(&ns)),
        )
        .watches(
            cms,
            watcher::Config::default().fields(&format!("metadata.name={ROOT_CA_CONFIGMAP}")),
            |cm: ConfigMap| cm.namespace().map(|ns| ObjectRef::<Namespace>::new(&ns)),
        )
        .run(reconcile, error_policy, ctx)
        .for_each(|res| async move {
            if let Err(e) = res {
                tracing::debug!(error = %e, "serviceaccount controller");
            }
        })
        .await;
    Ok(())
}

fn error_policy(ns: Arc<Namespace>, err: &Error, _ctx: Arc<Ctx>) -> Action {
    tracing::warn!(namespace = %ns.name_any(), error = %err, "syncing namespace failed; retrying");
    Action::requeue(Duration::from_millis(500))
}

async fn reconcile(ns: Arc<Namespace>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    if !is_active(&ns) {
        return Ok(Action::await_change());
    }
    let name = ns.name_any();
    ensure_service_account(&ctx.client, &name).await?;
    ensure_root_ca(&ctx.client, &name, &ctx.config.root_ca_pem).await?;
    Ok(Action::await_change())
}

/// Whether objects should be created in the namespace: it is not being deleted (upstream: phase Active).
pub fn is_active(ns: &Namespace) -> bool {
    if ns.metadata.deletion_timestamp.is_some() {
        return false;
    }
    match ns.status.as_ref().and_then(|s| s.phase.as_deref()) {
        None => true,
        Some(phase) => phase == "Active",
    }
}

/// Errors a create may meet that mean "nothing to do": the object already exists, or the namespace is
/// gone or terminating (upstream ignores these too).
fn ignorable_create_error(err: &kube::Error) -> bool {
    match err {
        kube::Error::Api(s) => {
            s.code == 409
                || s.code == 404
                || s.details.as_ref().is_some_and(|d| d.causes.iter().any(|c| c.reason == "NamespaceTerminating"))
        }
        _ => false,
    }
}

async fn ensure_service_account(client: &Client, ns: &str) -> Result<(), Error> {
    let api: Api<ServiceAccount> = Api::namespaced(client.clone(), ns);
    if api.get_opt(DEFAULT_SERVICE_ACCOUNT).await?.is_some() {
        return Ok(());
    }
    let sa = ServiceAccount {
        metadata: ObjectMeta { name: Some(DEFAULT_SERVICE_ACCOUNT.into()), ..Default::default() },
        ..Default::default()
    };
    match api.create(&PostParams::default(), &sa).await {
        Ok(_) => {
            tracing::info!(namespace = ns, "created default ServiceAccount");
            Ok(())
        }
        Err(e) if ignorable_create_error(&e) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// The ConfigMap the publisher creates in a namespace that has none.
pub fn desired_configmap(root_ca_pem: &str) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(ROOT_CA_CONFIGMAP.into()),
            annotations: Some(BTreeMap::from([(DESCRIPTION_ANNOTATION.to_string(), DESCRIPTION.to_string())])),
            ..Default::default()
        },
        data: Some(BTreeMap::from([(ROOT_CA_KEY.to_string(), root_ca_pem.to_string())])),
        ..Default::default()
    }
}

/// The corrected ConfigMap when `cm` differs from what the publisher owns (data other than exactly
/// `ca.crt`, or no description annotation); `None` when it is already right. Other annotations, labels
/// and metadata are kept, as upstream does.
pub fn corrected_configmap(cm: &ConfigMap, root_ca_pem: &str) -> Option<ConfigMap> {
    let want = BTreeMap::from([(ROOT_CA_KEY.to_string(), root_ca_pem.to_string())]);
    let data_ok = cm.data.as_ref() == Some(&want) && cm.binary_data.as_ref().is_none_or(|b| b.is_empty());
    let annotated =
        cm.metadata.annotations.as_ref().and_then(|a| a.get(DESCRIPTION_ANNOTATION)).is_some_and(|v| !v.is_empty());
    if data_ok && annotated {
        return None;
    }
    let mut out = cm.clone();
    out.data = Some(want);
    out.binary_data = None;
    out.metadata
        .annotations
        .get_or_insert_with(BTreeMap::new)
        .insert(DESCRIPTION_ANNOTATION.into(), DESCRIPTION.into());
    Some(out)
}

async fn ensure_root_ca(client: &Client, ns: &str, pem: &str) -> Result<(), Error> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    match api.get_opt(ROOT_CA_CONFIGMAP).await? {
        None => match api.create(&PostParams::default(), &desired_configmap(pem)).await {
            Ok(_) => Ok(()),
            // 409: created meanwhile; the watch brings it back here to be checked.
            Err(e) if ignorable_create_error(&e) => Ok(()),
            Err(e) => Err(e.into()),
        },
        Some(cm) => {
            let Some(fixed) = corrected_configmap(&cm, pem) else {
                return Ok(());
            };
            match api.replace(ROOT_CA_CONFIGMAP, &PostParams::default(), &fixed).await {
                Ok(_) => Ok(()),
                Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
                Err(e) => Err(e.into()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::NamespaceStatus;

    const PEM: &str = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";

    #[test]
    fn desired_configmap_matches_upstream_shape() {
        let cm = desired_configmap(PEM);
        assert_eq!(cm.metadata.name.as_deref(), Some("kube-root-ca.crt"));
        assert_eq!(cm.data.as_ref().and_then(|d| d.get("ca.crt")).map(String::as_str), Some(PEM));
        assert_eq!(cm.data.as_ref().map(|d| d.len()), Some(1));
        let ann = cm.metadata.annotations.unwrap_or_default();
        assert!(ann["kubernetes.io/description"].starts_with("Contains a CA bundle"));
        assert!(corrected_configmap(&desired_configmap(PEM), PEM).is_none());
    }

    #[test]
    fn edited_configmap_is_corrected_keeping_other_metadata() {
        let mut cm = desired_configmap("stale");
        cm.metadata.labels = Some(BTreeMap::from([("a".to_string(), "b".to_string())]));
        cm.metadata.annotations.get_or_insert_with(BTreeMap::new).insert("x".into(), "y".into());
        cm.data.get_or_insert_with(BTreeMap::new).insert("extra".into(), "1".into());
        let fixed = corrected_configmap(&cm, PEM).expect("needs correction");
        assert_eq!(fixed.data, Some(BTreeMap::from([("ca.crt".to_string(), PEM.to_string())])));
        assert_eq!(fixed.metadata.labels, cm.metadata.labels);
        let ann = fixed.metadata.annotations.unwrap_or_default();
        assert_eq!(ann.get("x").map(String::as_str), Some("y"));
        assert_eq!(ann.get(DESCRIPTION_ANNOTATION).map(String::as_str), Some(DESCRIPTION));
    }

    #[test]
    fn missing_annotation_alone_triggers_correction() {
        let mut cm = desired_configmap(PEM);
        cm.metadata.annotations = None;
        assert!(corrected_configmap(&cm, PEM).is_some());
    }

    #[test]
    fn terminating_namespaces_are_not_active() {
        let mut ns = Namespace::default();
        assert!(is_active(&ns));
        ns.status = Some(NamespaceStatus { phase: Some("Active".into()), ..Default::default() });
        assert!(is_active(&ns));
        ns.status = Some(NamespaceStatus { phase: Some("Terminating".into()), ..Default::default() });
        assert!(!is_active(&ns));
        let mut ns = Namespace::default();
        ns.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(k8s_openapi::jiff::Timestamp::now()));
        assert!(!is_active(&ns));
    }
}
