//! The request every dynamic admission step sees: upstream's
//! `admission.k8s.io/v1` `AdmissionRequest`. Admission webhooks receive it in
//! an `AdmissionReview`; ValidatingAdmissionPolicy binds it to CEL's
//! `request` variable. Built by the apiserver only when some webhook or
//! policy is configured.

pub mod matching;
pub mod policy;

use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

/// The operation being admitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    Create,
    Update,
    Delete,
    Connect,
}

impl Operation {
    /// As written in AdmissionRequest.operation and in webhook rules.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Create => "CREATE",
            Operation::Update => "UPDATE",
            Operation::Delete => "DELETE",
            Operation::Connect => "CONNECT",
        }
    }
}

/// Who is asking (authentication.k8s.io/v1 UserInfo).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct UserInfo {
    pub username: String,
    pub uid: String,
    pub groups: Vec<String>,
    pub extra: BTreeMap<String, Vec<String>>,
}

impl UserInfo {
    pub fn to_value(&self) -> Value {
        let mut m = Map::new();
        m.insert("username".into(), json!(self.username));
        if !self.uid.is_empty() {
            m.insert("uid".into(), json!(self.uid));
        }
        if !self.groups.is_empty() {
            m.insert("groups".into(), json!(self.groups));
        }
        if !self.extra.is_empty() {
            m.insert("extra".into(), json!(self.extra));
        }
        Value::Object(m)
    }
}

/// One admission request. `group`/`version`/`kind` name the object sent
/// (for a subresource: the subresource's kind, e.g. autoscaling/v1 Scale);
/// `resource`/`subresource` name the endpoint.
#[derive(Clone, Debug)]
pub struct AdmissionRequest {
    /// Unique per request (a UUID).
    pub uid: String,
    pub group: String,
    pub version: String,
    pub kind: String,
    pub resource: String,
    /// Empty when not a subresource.
    pub subresource: String,
    pub name: String,
    /// Empty for cluster-scoped resources.
    pub namespace: String,
    pub operation: Operation,
    pub user: UserInfo,
    /// The new object (CREATE, UPDATE; CONNECT options object), None on DELETE.
    pub object: Option<Value>,
    /// The existing object (UPDATE, DELETE), None on CREATE.
    pub old_object: Option<Value>,
    /// CreateOptions / UpdateOptions / DeleteOptions as sent, with apiVersion and kind.
    pub options: Option<Value>,
    pub dry_run: bool,
}

impl AdmissionRequest {
    /// The request as upstream's AdmissionRequest JSON (also CEL's `request`).
    /// `requestKind`/`requestResource` equal `kind`/`resource`: rkube calls
    /// webhooks in the version the client used.
    pub fn to_value(&self) -> Value {
        let kind = json!({ "group": self.group, "version": self.version, "kind": self.kind });
        let resource = json!({ "group": self.group, "version": self.version, "resource": self.resource });
        let mut m = Map::new();
        m.insert("uid".into(), json!(self.uid));
        m.insert("kind".into(), kind.clone());
        m.insert("resource".into(), resource.clone());
        if !self.subresource.is_empty() {
            m.insert("subResource".into(), json!(self.subresource));
        }
        m.insert("requestKind".into(), kind);
        m.insert("requestResource".into(), resource);
        if !self.subresource.is_empty() {
            m.insert("requestSubResource".into(), json!(self.subresource));
        }
        if !self.name.is_empty() {
            m.insert("name".into(), json!(self.name));
        }
        if !self.namespace.is_empty() {
            m.insert("namespace".into(), json!(self.namespace));
        }
        m.insert("operation".into(), json!(self.operation.as_str()));
        m.insert("userInfo".into(), self.user.to_value());
        m.insert("object".into(), self.object.clone().unwrap_or(Value::Null));
        m.insert("oldObject".into(), self.old_object.clone().unwrap_or(Value::Null));
        m.insert("dryRun".into(), json!(self.dry_run));
        m.insert("options".into(), self.options.clone().unwrap_or(Value::Null));
        Value::Object(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_json_has_upstream_field_names() {
        let r = AdmissionRequest {
            uid: "u1".into(),
            group: "apps".into(),
            version: "v1".into(),
            kind: "Deployment".into(),
            resource: "deployments".into(),
            subresource: String::new(),
            name: "web".into(),
            namespace: "default".into(),
            operation: Operation::Create,
            user: UserInfo { username: "alice".into(), groups: vec!["dev".into()], ..Default::default() },
            object: Some(json!({"kind": "Deployment"})),
            old_object: None,
            options: Some(json!({"kind": "CreateOptions", "apiVersion": "meta.k8s.io/v1"})),
            dry_run: false,
        };
        let v = r.to_value();
        assert_eq!(v["operation"], "CREATE");
        assert_eq!(v["kind"]["kind"], "Deployment");
        assert_eq!(v["resource"]["resource"], "deployments");
        assert_eq!(v["userInfo"]["username"], "alice");
        assert_eq!(v["oldObject"], Value::Null);
        assert!(v.get("subResource").is_none());
    }
}
