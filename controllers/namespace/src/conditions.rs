//! The namespace status conditions the deleter maintains (upstream's
//! namespaceConditionUpdater): five condition types, each either a failure
//! (status True, with upstream's reason and message) or its "ok" variant
//! (status False). lastTransitionTime changes only when the status does.

use k8s_openapi::api::core::v1::{NamespaceCondition, NamespaceStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use std::collections::BTreeMap;

pub const DISCOVERY_FAILURE: &str = "NamespaceDeletionDiscoveryFailure";
pub const GV_PARSING_FAILURE: &str = "NamespaceDeletionGroupVersionParsingFailure";
pub const CONTENT_FAILURE: &str = "NamespaceDeletionContentFailure";
pub const CONTENT_REMAINING: &str = "NamespaceContentRemaining";
pub const FINALIZERS_REMAINING: &str = "NamespaceFinalizersRemaining";

/// The condition types, in the order upstream appends them.
pub const TYPES: [&str; 5] =
    [DISCOVERY_FAILURE, GV_PARSING_FAILURE, CONTENT_FAILURE, CONTENT_REMAINING, FINALIZERS_REMAINING];

fn ok_reason_message(t: &str) -> (&'static str, &'static str) {
    match t {
        DISCOVERY_FAILURE => ("ResourcesDiscovered", "All resources successfully discovered"),
        GV_PARSING_FAILURE => ("ParsedGroupVersions", "All legacy kube types successfully parsed"),
        CONTENT_FAILURE => ("ContentDeleted", "All content successfully deleted, may be waiting on finalization"),
        CONTENT_REMAINING => ("ContentRemoved", "All content successfully removed"),
        _ => ("ContentHasNoFinalizers", "All content-preserving finalizers finished"),
    }
}

fn now() -> Time {
    Time(k8s_openapi::jiff::Timestamp::now())
}

fn condition(t: &str, status: &str, reason: &str, message: String) -> NamespaceCondition {
    NamespaceCondition {
        type_: t.to_string(),
        status: status.to_string(),
        reason: Some(reason.to_string()),
        message: Some(message),
        last_transition_time: Some(now()),
    }
}

/// How much content remains: instances per (group, version, resource) and per finalizer.
#[derive(Default, Debug, Clone)]
pub struct Totals {
    pub remaining: BTreeMap<(String, String, String), usize>,
    pub finalizers: BTreeMap<String, usize>,
}

impl Totals {
    pub fn add(&mut self, gvr: &(String, String, String), count: usize, finalizers: &BTreeMap<String, usize>) {
        if count == 0 {
            return;
        }
        *self.remaining.entry(gvr.clone()).or_default() += count;
        for (f, n) in finalizers {
            if *n > 0 {
                *self.finalizers.entry(f.clone()).or_default() += n;
            }
        }
    }
}

#[derive(Default, Debug)]
pub struct ConditionUpdater {
    new: Vec<NamespaceCondition>,
    content_errors: Vec<String>,
}

impl ConditionUpdater {
    /// `message` is the full discovery failure text.
    pub fn discovery_failed(&mut self, message: String) {
        self.new.push(condition(DISCOVERY_FAILURE, "True", "DiscoveryFailed", message));
    }

    pub fn group_version_parsing_failed(&mut self, message: String) {
        self.new.push(condition(GV_PARSING_FAILURE, "True", "GroupVersionParsingFailed", message));
    }

    pub fn content_deletion_failed(&mut self, message: String) {
        self.content_errors.push(message);
    }

    pub fn content_totals(&mut self, totals: &Totals) {
        if !totals.remaining.is_empty() {
            let mut parts: Vec<String> = totals
                .remaining
                .iter()
                .filter(|(_, n)| **n > 0)
                .map(|((group, _, resource), n)| format!("{resource}.{group} has {n} resource instances"))
                .collect();
            parts.sort();
            self.new.push(condition(
                CONTENT_REMAINING,
                "True",
                "SomeResourcesRemain",
                format!("Some resources are remaining: {}", parts.join(", ")),
            ));
        }
        if !totals.finalizers.is_empty() {
            let mut parts: Vec<String> = totals
                .finalizers
                .iter()
                .filter(|(_, n)| **n > 0)
                .map(|(f, n)| format!("{f} in {n} resource instances"))
                .collect();
            parts.sort();
            self.new.push(condition(
                FINALIZERS_REMAINING,
                "True",
                "SomeFinalizersRemain",
                format!("Some content in the namespace has finalizers remaining: {}", parts.join(", ")),
            ));
        }
    }

    /// Fold the collected failures into `status.conditions`; true when anything changed.
    pub fn update(mut self, status: &mut NamespaceStatus) -> bool {
        if !self.new.iter().any(|c| c.type_ == CONTENT_FAILURE) && !self.content_errors.is_empty() {
            let mut msgs = self.content_errors.clone();
            msgs.sort();
            self.new.push(condition(
                CONTENT_FAILURE,
                "True",
                "ContentDeletionFailed",
                format!("Failed to delete all resource types, {} remaining: {}", msgs.len(), msgs.join(", ")),
            ));
        }
        let conditions = status.conditions.get_or_insert_with(Vec::new);
        let mut changed = false;
        for t in TYPES {
            let new = self.new.iter().find(|c| c.type_ == t).cloned().unwrap_or_else(|| {
                let (reason, message) = ok_reason_message(t);
                condition(t, "False", reason, message.to_string())
            });
            match conditions.iter_mut().find(|c| c.type_ == t) {
                None => {
                    conditions.push(new);
                    changed = true;
                }
                Some(old) => {
                    if old.status != new.status || old.message != new.message || old.reason != new.reason {
                        if old.status != new.status {
                            old.last_transition_time = Some(now());
                        }
                        old.status = new.status;
                        old.reason = new.reason;
                        old.message = new.message;
                        changed = true;
                    }
                }
            }
        }
        changed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn find<'a>(s: &'a NamespaceStatus, t: &str) -> &'a NamespaceCondition {
        s.conditions.as_ref().and_then(|c| c.iter().find(|c| c.type_ == t)).expect("condition present")
    }

    #[test]
    fn all_ok_sets_five_false_conditions_once() {
        let mut status = NamespaceStatus::default();
        assert!(ConditionUpdater::default().update(&mut status));
        assert_eq!(status.conditions.as_ref().map(Vec::len), Some(5));
        let c = find(&status, FINALIZERS_REMAINING);
        assert_eq!(c.status, "False");
        assert_eq!(c.reason.as_deref(), Some("ContentHasNoFinalizers"));
        assert_eq!(c.message.as_deref(), Some("All content-preserving finalizers finished"));
        assert_eq!(find(&status, CONTENT_FAILURE).reason.as_deref(), Some("ContentDeleted"));
        // Same again: nothing changes.
        assert!(!ConditionUpdater::default().update(&mut status));
    }

    #[test]
    fn remaining_content_and_finalizers_use_upstream_messages() {
        let mut totals = Totals::default();
        let fins: BTreeMap<String, usize> = [("example.com/hold".to_string(), 2)].into();
        totals.add(&(String::new(), "v1".into(), "configmaps".into()), 2, &fins);
        totals.add(&("apps".into(), "v1".into(), "deployments".into()), 1, &BTreeMap::new());
        let mut u = ConditionUpdater::default();
        u.content_totals(&totals);
        let mut status = NamespaceStatus::default();
        assert!(u.update(&mut status));
        let c = find(&status, CONTENT_REMAINING);
        assert_eq!(c.status, "True");
        assert_eq!(c.reason.as_deref(), Some("SomeResourcesRemain"));
        assert_eq!(
            c.message.as_deref(),
            Some(
                "Some resources are remaining: configmaps. has 2 resource instances, deployments.apps has 1 resource instances"
            )
        );
        let f = find(&status, FINALIZERS_REMAINING);
        assert_eq!(f.reason.as_deref(), Some("SomeFinalizersRemain"));
        assert_eq!(
            f.message.as_deref(),
            Some("Some content in the namespace has finalizers remaining: example.com/hold in 2 resource instances")
        );
    }

    #[test]
    fn content_errors_are_sorted_and_counted_and_transition_time_kept_on_same_status() {
        let mut u = ConditionUpdater::default();
        u.content_deletion_failed("zeta failed".into());
        u.content_deletion_failed("alpha failed".into());
        let mut status = NamespaceStatus::default();
        u.update(&mut status);
        let c = find(&status, CONTENT_FAILURE).clone();
        assert_eq!(c.status, "True");
        assert_eq!(c.reason.as_deref(), Some("ContentDeletionFailed"));
        assert_eq!(
            c.message.as_deref(),
            Some("Failed to delete all resource types, 2 remaining: alpha failed, zeta failed")
        );
        // Pin an old time; a message change with the same status keeps it.
        let old = Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH);
        for c in status.conditions.iter_mut().flatten() {
            c.last_transition_time = Some(old.clone());
        }
        let mut u = ConditionUpdater::default();
        u.content_deletion_failed("other".into());
        assert!(u.update(&mut status));
        let c = find(&status, CONTENT_FAILURE);
        assert_eq!(c.last_transition_time, Some(old.clone()));
        // Back to ok: status flips, time moves.
        assert!(ConditionUpdater::default().update(&mut status));
        let c = find(&status, CONTENT_FAILURE);
        assert_eq!(c.status, "False");
        assert_ne!(c.last_transition_time, Some(old));
    }

    #[test]
    fn discovery_failure_condition() {
        let mut u = ConditionUpdater::default();
        u.discovery_failed("Discovery failed for some groups, 1 failing: boom".into());
        let mut status = NamespaceStatus::default();
        u.update(&mut status);
        let c = find(&status, DISCOVERY_FAILURE);
        assert_eq!((c.status.as_str(), c.reason.as_deref()), ("True", Some("DiscoveryFailed")));
        assert_eq!(find(&status, GV_PARSING_FAILURE).status, "False");
    }
}
