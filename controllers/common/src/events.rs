//! Publishing Normal / Warning events about an object, over kube's [`Recorder`]
//! (`events.k8s.io/v1`, shown by `kubectl describe` and `kubectl events`).
//!
//! Like upstream's recorder, publishing is best effort: a failure is logged, never returned, so a
//! controller's sync does not fail because an event could not be written. Repeating an identical
//! event (same object, type, reason and message) within a few minutes updates the first one as a
//! series (count, lastObservedTime) instead of creating a new object; a different message makes a
//! new event. (kube's Recorder alone would fold all events with the same reason into one series
//! and keep the first message, losing e.g. each "Created pod: …".)

use k8s_openapi::api::core::v1::ObjectReference;
use kube::Resource;
pub use kube::runtime::events::EventType;
use kube::runtime::events::{Event, Recorder, Reporter};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long an identical event keeps being folded into the same series (kube's recorder keeps
/// its cache 6 minutes).
const SERIES_WINDOW: Duration = Duration::from_secs(5 * 60);

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Key {
    api_version: Option<String>,
    kind: Option<String>,
    namespace: Option<String>,
    name: Option<String>,
    uid: Option<String>,
    warning: bool,
    reason: String,
    note: String,
}

/// Publishes events as one reporting component (e.g. `replicaset-controller`).
#[derive(Clone)]
pub struct EventPublisher {
    client: kube::Client,
    reporter: Reporter,
    recorders: Arc<Mutex<HashMap<Key, (Recorder, Instant)>>>,
}

impl EventPublisher {
    /// A publisher reporting as `component` (upstream's reporting controller name).
    pub fn new(client: kube::Client, component: &str) -> Self {
        Self::with_reporter(client, Reporter { controller: component.to_string(), instance: None })
    }

    /// A publisher with an explicit reporter (controller and instance).
    pub fn with_reporter(client: kube::Client, reporter: Reporter) -> Self {
        Self { client, reporter, recorders: Arc::default() }
    }

    /// The reporting component.
    pub fn component(&self) -> &str {
        &self.reporter.controller
    }

    /// A Normal event about `obj`.
    pub async fn normal<K: Resource<DynamicType = ()>>(&self, obj: &K, reason: &str, action: &str, note: String) {
        self.publish(&obj.object_ref(&()), EventType::Normal, reason, action, note).await;
    }

    /// A Warning event about `obj`.
    pub async fn warning<K: Resource<DynamicType = ()>>(&self, obj: &K, reason: &str, action: &str, note: String) {
        self.publish(&obj.object_ref(&()), EventType::Warning, reason, action, note).await;
    }

    /// An event about the object `regarding`; failures are logged.
    pub async fn publish(
        &self,
        regarding: &ObjectReference,
        type_: EventType,
        reason: &str,
        action: &str,
        note: String,
    ) {
        // The resourceVersion changes all the time; an event is about the object, not a version.
        let mut regarding = regarding.clone();
        regarding.resource_version = None;
        regarding.field_path = None;
        let key = Key {
            api_version: regarding.api_version.clone(),
            kind: regarding.kind.clone(),
            namespace: regarding.namespace.clone(),
            name: regarding.name.clone(),
            uid: regarding.uid.clone(),
            warning: type_ == EventType::Warning,
            reason: reason.to_string(),
            note: note.clone(),
        };
        let recorder = {
            let mut recorders = self.recorders.lock().unwrap_or_else(|p| p.into_inner());
            let now = Instant::now();
            recorders.retain(|_, (_, used)| now.duration_since(*used) < SERIES_WINDOW);
            let entry = recorders
                .entry(key)
                .or_insert_with(|| (Recorder::new(self.client.clone(), self.reporter.clone()), now));
            entry.1 = now;
            entry.0.clone()
        };
        let event = Event {
            type_,
            reason: reason.to_string(),
            note: Some(truncate(note, 1024)),
            action: action.to_string(),
            secondary: None,
        };
        if let Err(e) = recorder.publish(&event, &regarding).await {
            tracing::warn!(
                component = %self.reporter.controller,
                object = ?regarding.name,
                reason,
                error = %e,
                "could not publish event"
            );
        }
    }
}

/// Events notes are limited to 1 kB; cut on a character boundary.
fn truncate(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notes_are_cut_on_char_boundaries() {
        assert_eq!(truncate("abc".into(), 10), "abc");
        assert_eq!(truncate("abcdef".into(), 3), "abc");
        // 'é' is two bytes: cutting inside it backs off.
        assert_eq!(truncate("aé".into(), 2), "a");
    }
}
