//! Controller owner references and upstream's ControllerRefManager.
//!
//! An object has at most one *controller* owner reference (`controller: true`). A controller claims
//! the objects it selects:
//! - an object it controls and that still matches is kept;
//! - an object it controls that no longer matches is *released* (its ownerReference removed),
//!   unless the controller is being deleted;
//! - an orphan (no controller) that matches is *adopted* (a controller ownerReference added),
//!   unless the controller or the orphan is being deleted, or the orphan lives in another
//!   namespace. Before the first adoption the controller re-reads itself from the apiserver,
//!   uncached, and refuses if it is gone, was replaced, or is being deleted
//!   (upstream's `RecheckDeletionTimestamp`);
//! - objects controlled by someone else are ignored.
//!
//! Adoption and release are strategic-merge patches on `metadata.ownerReferences` (merge key
//! `uid`) that also carry the child's `metadata.uid`, so they fail instead of touching a child
//! that was deleted and re-created under the same name.

use crate::Error;
use futures::future::BoxFuture;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{Api, Patch, PatchParams};
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use std::fmt::Debug;
use std::sync::Arc;
use tokio::sync::OnceCell;

/// The controller owner reference of an object, if any (upstream's `metav1.GetControllerOf`).
pub fn controller_of(meta: &ObjectMeta) -> Option<&OwnerReference> {
    meta.owner_references.as_ref()?.iter().find(|r| r.controller == Some(true))
}

/// Whether `meta` is controlled by the object with this UID.
pub fn is_controlled_by(meta: &ObjectMeta, owner_uid: &str) -> bool {
    controller_of(meta).is_some_and(|r| r.uid == owner_uid)
}

/// A controller owner reference to `owner` (upstream's `metav1.NewControllerRef`):
/// `controller: true`, `blockOwnerDeletion: true`.
pub fn controller_ref<K: Resource<DynamicType = ()>>(owner: &K) -> OwnerReference {
    OwnerReference {
        api_version: K::api_version(&()).into_owned(),
        kind: K::kind(&()).into_owned(),
        name: owner.name_any(),
        uid: owner.meta().uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// Strategic-merge patch adding `owner_ref` to the child with UID `child_uid`.
pub fn adopt_patch(owner_ref: &OwnerReference, child_uid: &str) -> Value {
    json!({"metadata": {"ownerReferences": [owner_ref], "uid": child_uid}})
}

/// Strategic-merge patch removing the owner reference with UID `owner_uid` from the child with
/// UID `child_uid`.
pub fn release_patch(owner_uid: &str, child_uid: &str) -> Value {
    json!({"metadata": {"ownerReferences": [{"$patch": "delete", "uid": owner_uid}], "uid": child_uid}})
}

type Check = Box<dyn Fn() -> BoxFuture<'static, Result<(), Error>> + Send + Sync>;

/// The "may this controller adopt?" check, run at most once per claim pass (lazily, before the
/// first adoption), like upstream's `canAdoptFunc` wrapped in a `sync.Once`.
pub struct CanAdopt {
    check: Check,
    outcome: OnceCell<Result<(), String>>,
}

impl CanAdopt {
    /// A custom check.
    pub fn new<F>(check: F) -> Self
    where
        F: Fn() -> BoxFuture<'static, Result<(), Error>> + Send + Sync + 'static,
    {
        Self { check: Box::new(check), outcome: OnceCell::new() }
    }

    /// Always allowed (tests, or owners that cannot be deleted).
    pub fn always() -> Self {
        Self::new(|| Box::pin(async { Ok(()) }))
    }

    /// Upstream's `RecheckDeletionTimestamp`: a fresh GET of the owner (not from a cache) must
    /// return the same UID and no `deletionTimestamp`.
    pub fn recheck_deletion_timestamp<O>(api: Api<O>, name: String, uid: String) -> Self
    where
        O: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    {
        Self::new(move || {
            let api = api.clone();
            let name = name.clone();
            let uid = uid.clone();
            Box::pin(async move {
                let fresh = api.get(&name).await?;
                let fresh_uid = fresh.meta().uid.clone().unwrap_or_default();
                if fresh_uid != uid {
                    return Err(Error::CannotAdopt(format!(
                        "original {name} is gone: got uid {fresh_uid}, wanted {uid}"
                    )));
                }
                if fresh.meta().deletion_timestamp.is_some() {
                    return Err(Error::CannotAdopt(format!("{name} has just been deleted")));
                }
                Ok(())
            })
        })
    }

    /// Runs the check (once) and returns its outcome.
    pub async fn check(&self) -> Result<(), Error> {
        let outcome = self.outcome.get_or_init(|| async { (self.check)().await.map_err(|e| e.to_string()) }).await;
        outcome.clone().map_err(Error::CannotAdopt)
    }
}

/// Upstream's ControllerRefManager for one owner and one kind of child.
pub struct ControllerRefManager<K> {
    api: Api<K>,
    owner_ref: OwnerReference,
    owner_namespace: Option<String>,
    owner_deleting: bool,
    can_adopt: Arc<CanAdopt>,
}

impl<K> ControllerRefManager<K>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Serialize + Debug,
{
    /// A manager claiming children through `api` (the children's namespace) for `owner`.
    pub fn new<O: Resource<DynamicType = ()>>(api: Api<K>, owner: &O, can_adopt: CanAdopt) -> Self {
        Self {
            api,
            owner_ref: controller_ref(owner),
            owner_namespace: owner.meta().namespace.clone(),
            owner_deleting: owner.meta().deletion_timestamp.is_some(),
            can_adopt: Arc::new(can_adopt),
        }
    }

    /// The controller reference this manager adds on adoption.
    pub fn owner_ref(&self) -> &OwnerReference {
        &self.owner_ref
    }

    /// Claims each object (see the module doc); `matches` is the owner's selector (plus any extra
    /// filter). Returns the objects the owner controls afterwards — adopted ones as the apiserver
    /// returned them. Every object is processed; if some adoption or release failed, the first
    /// error is returned instead.
    pub async fn claim(&self, objects: Vec<K>, matches: impl Fn(&K) -> bool) -> Result<Vec<K>, Error> {
        let mut claimed = Vec::new();
        let mut first_err = None;
        for obj in objects {
            match self.claim_object(obj, &matches).await {
                Ok(Some(obj)) => claimed.push(obj),
                Ok(None) => {}
                Err(e) => {
                    if first_err.is_none() {
                        first_err = Some(e);
                    }
                }
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(claimed),
        }
    }

    /// Claims one object: `Some(obj)` if the owner controls it afterwards.
    pub async fn claim_object(&self, obj: K, matches: &impl Fn(&K) -> bool) -> Result<Option<K>, Error> {
        if let Some(cref) = controller_of(obj.meta()) {
            if cref.uid != self.owner_ref.uid {
                return Ok(None);
            }
            if matches(&obj) {
                return Ok(Some(obj));
            }
            if self.owner_deleting {
                return Ok(None);
            }
            match self.release(&obj).await {
                Ok(()) => return Ok(None),
                Err(e) if crate::is_not_found(&e) => return Ok(None),
                Err(e) => return Err(e.into()),
            }
        }
        // An orphan.
        if self.owner_deleting || !matches(&obj) || obj.meta().deletion_timestamp.is_some() {
            return Ok(None);
        }
        if let Some(ns) = self.owner_namespace.as_deref().filter(|ns| !ns.is_empty())
            && obj.meta().namespace.as_deref() != Some(ns)
        {
            return Ok(None);
        }
        match self.adopt(&obj).await {
            Ok(adopted) => Ok(Some(adopted)),
            Err(Error::Kube(e)) if crate::is_not_found(&e) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Adds the controller reference to an orphan (after the owner's can-adopt check).
    pub async fn adopt(&self, obj: &K) -> Result<K, Error> {
        self.can_adopt
            .check()
            .await
            .map_err(|e| Error::CannotAdopt(format!("can't adopt {} {}: {e}", K::kind(&()), obj.name_any())))?;
        let uid = obj.meta().uid.clone().unwrap_or_default();
        let patch = adopt_patch(&self.owner_ref, &uid);
        Ok(self.api.patch(&obj.name_any(), &PatchParams::default(), &Patch::Strategic(patch)).await?)
    }

    /// Removes the owner's reference from a child. A child that is gone (404) or no longer
    /// matches the patch's UID precondition (422) needs no release.
    pub async fn release(&self, obj: &K) -> Result<(), kube::Error> {
        let uid = obj.meta().uid.clone().unwrap_or_default();
        let patch = release_patch(&self.owner_ref.uid, &uid);
        match self.api.patch(&obj.name_any(), &PatchParams::default(), &Patch::Strategic(patch)).await {
            Ok(_) => Ok(()),
            Err(e) if crate::is_not_found(&e) || crate::is_invalid(&e) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::ReplicaSet;

    fn oref(uid: &str, controller: Option<bool>) -> OwnerReference {
        OwnerReference {
            api_version: "apps/v1".into(),
            kind: "ReplicaSet".into(),
            name: format!("rs-{uid}"),
            uid: uid.into(),
            controller,
            block_owner_deletion: None,
        }
    }

    #[test]
    fn controller_of_picks_the_controller_reference() {
        let mut meta = ObjectMeta::default();
        assert!(controller_of(&meta).is_none());
        meta.owner_references = Some(vec![oref("a", None), oref("b", Some(false))]);
        assert!(controller_of(&meta).is_none());
        meta.owner_references = Some(vec![oref("a", None), oref("b", Some(true))]);
        assert_eq!(controller_of(&meta).map(|r| r.uid.as_str()), Some("b"));
        assert!(is_controlled_by(&meta, "b"));
        assert!(!is_controlled_by(&meta, "a"));
    }

    #[test]
    fn controller_ref_names_the_owner() {
        let rs = ReplicaSet {
            metadata: ObjectMeta { name: Some("web".into()), uid: Some("u-1".into()), ..Default::default() },
            ..Default::default()
        };
        let r = controller_ref(&rs);
        assert_eq!(r.api_version, "apps/v1");
        assert_eq!(r.kind, "ReplicaSet");
        assert_eq!(r.name, "web");
        assert_eq!(r.uid, "u-1");
        assert_eq!(r.controller, Some(true));
        assert_eq!(r.block_owner_deletion, Some(true));
    }

    #[test]
    fn patches_carry_the_child_uid() {
        let r = oref("owner", Some(true));
        let p = adopt_patch(&r, "child");
        assert_eq!(p["metadata"]["uid"], "child");
        assert_eq!(p["metadata"]["ownerReferences"][0]["uid"], "owner");
        assert_eq!(p["metadata"]["ownerReferences"][0]["controller"], true);
        let p = release_patch("owner", "child");
        assert_eq!(p["metadata"]["uid"], "child");
        assert_eq!(p["metadata"]["ownerReferences"][0], json!({"$patch": "delete", "uid": "owner"}));
    }

    #[tokio::test]
    async fn can_adopt_runs_its_check_once() {
        let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let c = calls.clone();
        let can = CanAdopt::new(move || {
            c.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Box::pin(async { Err(Error::CannotAdopt("being deleted".into())) })
        });
        assert!(can.check().await.is_err());
        assert!(can.check().await.is_err());
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 1);
        assert!(CanAdopt::always().check().await.is_ok());
    }
}
