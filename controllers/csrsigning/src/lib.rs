//! rkube-controller-csrsigning: the CSR signing controller (upstream's
//! pkg/controller/certificates/signer, controller name `csrsigning-kube-apiserver-client`).
//!
//! For each certificates.k8s.io/v1 CertificateSigningRequest with
//! `spec.signerName: kubernetes.io/kube-apiserver-client` that is approved (an `Approved` condition
//! and no `Denied`), not failed (no true `Failed` condition) and has no `status.certificate` yet,
//! the controller parses `spec.request` (PEM PKCS#10, self-signature verified), checks the signer's
//! rules (usages: `client auth` required, `digital signature` / `key encipherment` allowed) and
//! either issues a certificate from the cluster CA into `status.certificate` or, when the rules are
//! broken, appends a `Failed` condition with reason `SignerValidationFailure`; both through the
//! `status` subresource with the object's resourceVersion (upstream's UpdateStatus). The
//! certificate's lifetime is `--cluster-signing-duration` unless `spec.expirationSeconds` asks for
//! less (never below 10 minutes). It is an API client only.

pub mod authority;

use authority::{Authority, KUBE_APISERVER_CLIENT_SIGNER};
use futures::StreamExt;
use k8s_openapi::ByteString;
use k8s_openapi::api::certificates::v1::{
    CertificateSigningRequest, CertificateSigningRequestCondition, CertificateSigningRequestStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::{Api, PostParams};
use kube::runtime::controller::{self, Action, Controller};
use kube::runtime::watcher;
use std::sync::Arc;
use std::time::Duration;

/// Signing-controller settings (upstream's kube-controller-manager `--cluster-signing-*` flags).
#[derive(Clone)]
pub struct Config {
    /// PEM certificate of the cluster signing CA (contents of `--cluster-signing-cert-file`).
    pub ca_cert_pem: String,
    /// PEM (PKCS#8) private key of the CA (contents of `--cluster-signing-key-file`).
    pub ca_key_pem: String,
    /// `--cluster-signing-duration`: the longest (and default) certificate lifetime; 8760h.
    pub cluster_signing_duration: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            ca_cert_pem: String::new(),
            ca_key_pem: String::new(),
            cluster_signing_duration: Duration::from_secs(365 * 24 * 3600),
        }
    }
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("ca_cert_pem", &self.ca_cert_pem)
            .field("cluster_signing_duration", &self.cluster_signing_duration)
            .finish_non_exhaustive()
    }
}

/// Errors of a sync or of the controller.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A request to the apiserver failed (409 conflicts are retried by re-reconciling).
    #[error(transparent)]
    Kube(#[from] kube::Error),
    /// The CA certificate or key could not be loaded.
    #[error("csrsigning: {0}")]
    Ca(String),
    /// `spec.request` could not be parsed (upstream retries these with backoff).
    #[error("unable to parse csr {name:?}: {reason}")]
    Parse { name: String, reason: String },
    /// Signing failed (e.g. the CA expired).
    #[error("error auto signing csr: {0}")]
    Sign(String),
}

/// Upstream's `IsCertificateRequestApproved`: an `Approved` condition and no `Denied` one.
pub fn is_approved(csr: &CertificateSigningRequest) -> bool {
    let conds = conditions(csr);
    conds.iter().any(|c| c.type_ == "Approved") && !conds.iter().any(|c| c.type_ == "Denied")
}

/// Upstream's `HasTrueCondition`: a condition of that type whose status is `True` (or empty).
pub fn has_true_condition(csr: &CertificateSigningRequest, type_: &str) -> bool {
    conditions(csr).iter().any(|c| c.type_ == type_ && (c.status.is_empty() || c.status == "True"))
}

fn conditions(csr: &CertificateSigningRequest) -> &[CertificateSigningRequestCondition] {
    csr.status.as_ref().and_then(|s| s.conditions.as_deref()).unwrap_or(&[])
}

/// Whether this controller has anything to do with the CSR: the kube-apiserver-client signer,
/// approved, not failed, no certificate yet.
pub fn needs_signing(csr: &CertificateSigningRequest) -> bool {
    let issued = csr.status.as_ref().and_then(|s| s.certificate.as_ref()).is_some_and(|c| !c.0.is_empty());
    !issued
        && is_approved(csr)
        && !has_true_condition(csr, "Failed")
        && csr.spec.signer_name == KUBE_APISERVER_CLIENT_SIGNER
}

/// The outcome of [`decide`]: what to write to the CSR's status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Nothing to do.
    Skip,
    /// The request breaks the signer's rules: add a `Failed` condition with this message.
    Fail(String),
    /// Write this PEM certificate to `status.certificate`.
    Issue(String),
}

/// The pure core of a sync (upstream's `signer.handle`).
pub fn decide(
    csr: &CertificateSigningRequest,
    ca: &Authority,
    max_duration: Duration,
    now: time::OffsetDateTime,
) -> Result<Decision, Error> {
    if !needs_signing(csr) {
        return Ok(Decision::Skip);
    }
    let req = authority::parse_request(&csr.spec.request.0)
        .map_err(|reason| Error::Parse { name: csr.name_any(), reason })?;
    let usages = csr.spec.usages.clone().unwrap_or_default();
    if let Err(msg) = authority::validate_kube_apiserver_client_usages(&usages) {
        return Ok(Decision::Fail(msg));
    }
    let ttl = authority::signing_duration(max_duration, csr.spec.expiration_seconds);
    let pem = ca.sign(&req, &usages, ttl, now).map_err(Error::Sign)?;
    Ok(Decision::Issue(pem))
}

struct Ctx {
    client: kube::Client,
    ca: Authority,
    max_duration: Duration,
}

async fn reconcile(csr: Arc<CertificateSigningRequest>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let decision = decide(&csr, &ctx.ca, ctx.max_duration, time::OffsetDateTime::now_utc())?;
    let mut updated = (*csr).clone();
    let status = updated.status.get_or_insert_with(CertificateSigningRequestStatus::default);
    match decision {
        Decision::Skip => return Ok(Action::await_change()),
        Decision::Fail(message) => {
            tracing::info!(csr = %csr.name_any(), %message, "csr failed signer validation");
            let now = Time(Timestamp::now());
            status.conditions.get_or_insert_with(Vec::new).push(CertificateSigningRequestCondition {
                type_: "Failed".into(),
                status: "True".into(),
                reason: Some("SignerValidationFailure".into()),
                message: Some(message),
                last_update_time: Some(now.clone()),
                last_transition_time: Some(now),
            });
        }
        Decision::Issue(pem) => {
            tracing::info!(csr = %csr.name_any(), "issued certificate for csr");
            status.certificate = Some(ByteString(pem.into_bytes()));
        }
    }
    let api: Api<CertificateSigningRequest> = Api::all(ctx.client.clone());
    match api.replace_status(&csr.name_any(), &PostParams::default(), &updated).await {
        Ok(_) => Ok(Action::await_change()),
        // Deleted meanwhile: nothing left to sign.
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(Action::await_change()),
        Err(e) => Err(e.into()),
    }
}

fn error_policy(_csr: Arc<CertificateSigningRequest>, err: &Error, _ctx: Arc<Ctx>) -> Action {
    tracing::debug!(error = %err, "csr signing failed; retrying");
    match err {
        // A malformed request will not heal by itself; retry slowly (upstream: rate-limited queue).
        Error::Parse { .. } | Error::Sign(_) => Action::requeue(Duration::from_secs(60)),
        _ => Action::requeue(Duration::from_secs(1)),
    }
}

/// Runs the kube-apiserver-client CSR signer until the process ends. Like upstream, without a
/// configured CA (empty `ca_cert_pem`/`ca_key_pem`) the controller is skipped (this future then
/// never completes); an unreadable CA is an error.
pub async fn run(client: kube::Client, config: Config) -> Result<(), Error> {
    if config.ca_cert_pem.is_empty() || config.ca_key_pem.is_empty() {
        tracing::info!("skipping CSR signer controller because no csr cert/key was specified");
        std::future::pending::<()>().await;
        return Ok(());
    }
    let ca = Authority::new(&config.ca_cert_pem, &config.ca_key_pem).map_err(Error::Ca)?;
    let ctx = Arc::new(Ctx { client: client.clone(), ca, max_duration: config.cluster_signing_duration });
    Controller::new(Api::<CertificateSigningRequest>::all(client), watcher::Config::default())
        .with_config(controller::Config::default().concurrency(5))
        .run(reconcile, error_policy, ctx)
        .for_each(|res| async move {
            if let Err(e) = res {
                tracing::debug!(error = %e, "csrsigning controller");
            }
        })
        .await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn csr(signer: &str, conds: &[(&str, &str)], cert: bool) -> CertificateSigningRequest {
        let mut v = serde_json::json!({"metadata": {"name": "c"},
            "spec": {"request": "", "signerName": signer, "usages": ["client auth"]}});
        let conds: Vec<_> = conds.iter().map(|(t, s)| serde_json::json!({"type": t, "status": s})).collect();
        v["status"] = serde_json::json!({"conditions": conds});
        if cert {
            v["status"]["certificate"] = serde_json::json!("Y2VydA==");
        }
        serde_json::from_value(v).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn only_approved_unfailed_unsigned_client_csrs_are_signed() {
        let s = KUBE_APISERVER_CLIENT_SIGNER;
        assert!(needs_signing(&csr(s, &[("Approved", "True")], false)));
        assert!(!needs_signing(&csr(s, &[], false)));
        assert!(!needs_signing(&csr(s, &[("Approved", "True"), ("Denied", "True")], false)));
        assert!(!needs_signing(&csr(s, &[("Approved", "True"), ("Failed", "True")], false)));
        assert!(needs_signing(&csr(s, &[("Approved", "True"), ("Failed", "False")], false)));
        assert!(!needs_signing(&csr(s, &[("Approved", "True")], true)));
        assert!(!needs_signing(&csr("kubernetes.io/kubelet-serving", &[("Approved", "True")], false)));
        assert!(!needs_signing(&csr("example.com/other", &[("Approved", "True")], false)));
    }
}
