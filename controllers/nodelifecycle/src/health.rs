//! Node health from the kubelet's two signals, the Ready condition's heartbeat and the node Lease's
//! renewTime (upstream's `tryUpdateNodeHealth`). Probe times are the controller's own clock, taken when
//! a signal changes, so clock skew between nodes and the controller does not matter. When no signal
//! arrived for the grace period the node's conditions become Unknown. Pure functions, no I/O.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, NodeCondition, NodeStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::{SignedDuration, Timestamp};

/// Condition types set to Unknown when the kubelet stops reporting (NetworkUnavailable is left alone:
/// the network plugin owns it).
pub const CONDITIONS_SET_UNKNOWN: [&str; 4] = ["Ready", "MemoryPressure", "DiskPressure", "PIDPressure"];

/// What the controller remembers about a node between passes.
#[derive(Clone, Debug)]
pub struct NodeHealth {
    pub probe_timestamp: Timestamp,
    pub ready_transition_timestamp: Timestamp,
    /// The Ready condition as last seen.
    pub ready: Option<NodeCondition>,
    /// `Some(renewTime)` once a lease was seen.
    pub lease_renew: Option<Option<Timestamp>>,
}

impl NodeHealth {
    /// The Ready status last seen ("True", "False", "Unknown"), None without a Ready condition.
    pub fn ready_status(&self) -> Option<&str> {
        self.ready.as_ref().map(|c| c.status.as_str())
    }
}

/// The result of assessing one node.
#[derive(Clone, Debug)]
pub struct Assessment {
    pub health: NodeHealth,
    /// The Ready condition as found on the node (a synthetic Unknown one if it has none).
    pub observed_ready: NodeCondition,
    /// The Ready condition after this pass (None if the node has none and none was added).
    pub current_ready: Option<NodeCondition>,
    /// The status to write when the Ready condition changed.
    pub new_status: Option<NodeStatus>,
}

pub fn ready_condition(status: Option<&NodeStatus>) -> Option<&NodeCondition> {
    status.and_then(|s| s.conditions.as_ref()).and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
}

fn creation(node: &Node) -> Timestamp {
    node.metadata.creation_timestamp.as_ref().map(|t| t.0).unwrap_or(Timestamp::UNIX_EPOCH)
}

fn lease_renew(lease: &Lease) -> Option<Timestamp> {
    lease.spec.as_ref().and_then(|s| s.renew_time.as_ref()).map(|t| t.0)
}

fn add(ts: Timestamp, d: Duration) -> Timestamp {
    SignedDuration::try_from(d).ok().and_then(|d| ts.checked_add(d).ok()).unwrap_or(Timestamp::MAX)
}

/// Assess `node` (with its Lease, if any) against what was remembered, at `now`.
pub fn assess(
    node: &Node,
    lease: Option<&Lease>,
    prev: Option<&NodeHealth>,
    now: Timestamp,
    monitor_grace: Duration,
    startup_grace: Duration,
) -> Assessment {
    let current = ready_condition(node.status.as_ref()).cloned();
    let (observed_ready, grace) = match &current {
        Some(c) => (c.clone(), monitor_grace),
        None => (
            NodeCondition {
                type_: "Ready".into(),
                status: "Unknown".into(),
                last_heartbeat_time: Some(Time(creation(node))),
                last_transition_time: Some(Time(creation(node))),
                ..Default::default()
            },
            startup_grace,
        ),
    };

    let fresh = |probe: Timestamp| NodeHealth {
        probe_timestamp: probe,
        ready_transition_timestamp: probe,
        ready: current.clone(),
        lease_renew: None,
    };
    let mut health = match prev {
        // Never seen, no Ready condition: count from the node's creation.
        None if current.is_none() => fresh(creation(node)),
        None => fresh(now),
        Some(p) => {
            let mut h = match (&p.ready, &current) {
                (None, None) => p.clone(),
                // Appeared or vanished: start counting again.
                (None, Some(_)) | (Some(_), None) => fresh(now),
                (Some(saved), Some(cur)) if saved.last_heartbeat_time != cur.last_heartbeat_time => {
                    let transition = if saved.last_transition_time != cur.last_transition_time {
                        now
                    } else {
                        p.ready_transition_timestamp
                    };
                    NodeHealth {
                        probe_timestamp: now,
                        ready_transition_timestamp: transition,
                        ready: current.clone(),
                        lease_renew: None,
                    }
                }
                (Some(_), Some(_)) => p.clone(),
            };
            h.lease_renew = p.lease_renew;
            h
        }
    };

    // A renewed lease is a heartbeat too.
    if let Some(lease) = lease {
        let observed = lease_renew(lease);
        let renewed = match health.lease_renew {
            None => true,
            Some(saved) => matches!((saved, observed), (Some(s), Some(o)) if s < o),
        };
        if renewed {
            health.lease_renew = Some(observed);
            health.probe_timestamp = now;
        }
    }

    let mut out = Assessment { health: health.clone(), observed_ready, current_ready: current, new_status: None };
    if now <= add(health.probe_timestamp, grace) {
        return out;
    }

    // No signal for longer than the grace period: everything the kubelet reports becomes Unknown.
    let mut status = node.status.clone().unwrap_or_default();
    let conditions = status.conditions.get_or_insert_with(Vec::new);
    for ty in CONDITIONS_SET_UNKNOWN {
        match conditions.iter_mut().find(|c| c.type_ == ty) {
            None => conditions.push(NodeCondition {
                type_: ty.into(),
                status: "Unknown".into(),
                reason: Some("NodeStatusNeverUpdated".into()),
                message: Some("Kubelet never posted node status.".into()),
                last_heartbeat_time: Some(Time(creation(node))),
                last_transition_time: Some(Time(now)),
            }),
            Some(c) if c.status != "Unknown" => {
                c.status = "Unknown".into();
                c.reason = Some("NodeStatusUnknown".into());
                c.message = Some("Kubelet stopped posting node status.".into());
                c.last_transition_time = Some(Time(now));
            }
            Some(_) => {}
        }
    }
    let new_ready = ready_condition(Some(&status)).cloned();
    if new_ready.as_ref() != Some(&out.observed_ready) {
        out.health = NodeHealth {
            probe_timestamp: health.probe_timestamp,
            ready_transition_timestamp: now,
            ready: new_ready.clone(),
            lease_renew: health.lease_renew,
        };
        out.current_ready = new_ready;
        out.new_status = Some(status);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::coordination::v1::LeaseSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;

    const GRACE: Duration = Duration::from_secs(50);
    const STARTUP: Duration = Duration::from_secs(60);

    fn ts(secs: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + secs).unwrap_or(Timestamp::UNIX_EPOCH)
    }

    fn node(ready: Option<(&str, i64)>) -> Node {
        let mut n = Node::default();
        n.metadata.name = Some("n1".into());
        n.metadata.creation_timestamp = Some(Time(ts(0)));
        if let Some((s, hb)) = ready {
            n.status = Some(NodeStatus {
                conditions: Some(vec![
                    NodeCondition {
                        type_: "Ready".into(),
                        status: s.into(),
                        reason: Some("KubeletReady".into()),
                        last_heartbeat_time: Some(Time(ts(hb))),
                        last_transition_time: Some(Time(ts(0))),
                        ..Default::default()
                    },
                    NodeCondition {
                        type_: "MemoryPressure".into(),
                        status: "False".into(),
                        last_heartbeat_time: Some(Time(ts(hb))),
                        last_transition_time: Some(Time(ts(0))),
                        ..Default::default()
                    },
                ]),
                ..Default::default()
            });
        }
        n
    }

    fn lease(renew: i64) -> Lease {
        Lease {
            spec: Some(LeaseSpec { renew_time: Some(MicroTime(ts(renew))), ..Default::default() }),
            ..Default::default()
        }
    }

    #[test]
    fn healthy_node_with_renewing_lease_stays() {
        let n = node(Some(("True", 0)));
        let a = assess(&n, Some(&lease(0)), None, ts(1), GRACE, STARTUP);
        assert!(a.new_status.is_none());
        // Heartbeat on the node is stale but the lease keeps renewing.
        let mut h = a.health;
        for t in (10..200).step_by(10) {
            let a = assess(&n, Some(&lease(t)), Some(&h), ts(t), GRACE, STARTUP);
            assert!(a.new_status.is_none(), "at {t}");
            h = a.health;
        }
    }

    #[test]
    fn silent_node_becomes_unknown_after_grace() {
        let n = node(Some(("True", 0)));
        let l = lease(0);
        let a = assess(&n, Some(&l), None, ts(1), GRACE, STARTUP);
        let a2 = assess(&n, Some(&l), Some(&a.health), ts(50), GRACE, STARTUP);
        assert!(a2.new_status.is_none(), "within grace");
        let a3 = assess(&n, Some(&l), Some(&a2.health), ts(52), GRACE, STARTUP);
        let st = a3.new_status.expect("status update");
        let conds = st.conditions.unwrap_or_default();
        for ty in ["Ready", "MemoryPressure"] {
            let c = conds.iter().find(|c| c.type_ == ty).expect("condition");
            assert_eq!(c.status, "Unknown");
            assert_eq!(c.reason.as_deref(), Some("NodeStatusUnknown"));
            assert_eq!(c.message.as_deref(), Some("Kubelet stopped posting node status."));
            assert_eq!(c.last_transition_time, Some(Time(ts(52))));
            // Heartbeat is left as the kubelet wrote it.
            assert_eq!(c.last_heartbeat_time, Some(Time(ts(0))));
        }
        for ty in ["DiskPressure", "PIDPressure"] {
            let c = conds.iter().find(|c| c.type_ == ty).expect("added condition");
            assert_eq!(c.reason.as_deref(), Some("NodeStatusNeverUpdated"));
        }
        assert_eq!(a3.observed_ready.status, "True");
        assert_eq!(a3.current_ready.map(|c| c.status), Some("Unknown".to_string()));
    }

    #[test]
    fn already_unknown_is_not_rewritten() {
        let n = node(Some(("Unknown", 0)));
        let a = assess(&n, None, None, ts(0), GRACE, STARTUP);
        let a = assess(&n, None, Some(&a.health), ts(500), GRACE, STARTUP);
        assert!(a.new_status.is_none());
        assert_eq!(a.observed_ready.status, "Unknown");
    }

    #[test]
    fn node_that_never_reported_gets_startup_grace_from_creation() {
        let n = node(None);
        let a = assess(&n, None, None, ts(59), GRACE, STARTUP);
        assert!(a.new_status.is_none());
        let a = assess(&n, None, Some(&a.health), ts(61), GRACE, STARTUP);
        let st = a.new_status.expect("update");
        let ready = ready_condition(Some(&st)).expect("ready added").clone();
        assert_eq!(ready.status, "Unknown");
        assert_eq!(ready.reason.as_deref(), Some("NodeStatusNeverUpdated"));
        assert_eq!(ready.message.as_deref(), Some("Kubelet never posted node status."));
    }

    #[test]
    fn new_heartbeat_resets_probe() {
        let l = lease(0);
        let a = assess(&node(Some(("True", 0))), Some(&l), None, ts(0), GRACE, STARTUP);
        // Lease stale, but the kubelet posted status at 40.
        let a = assess(&node(Some(("True", 40))), Some(&l), Some(&a.health), ts(40), GRACE, STARTUP);
        let a = assess(&node(Some(("True", 40))), Some(&l), Some(&a.health), ts(80), GRACE, STARTUP);
        assert!(a.new_status.is_none());
        let a = assess(&node(Some(("True", 40))), Some(&l), Some(&a.health), ts(91), GRACE, STARTUP);
        assert!(a.new_status.is_some());
    }
}
