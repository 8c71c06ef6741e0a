//! Per-node pod IP allocation from the node's `spec.podCIDR`, like the host-local CNI plugin:
//! round-robin from the first usable address after the gateway (.1), never the network or
//! broadcast address; IPv4 only.

use std::collections::HashSet;
use std::net::Ipv4Addr;

#[derive(Debug, Clone)]
pub struct PodIpPool {
    cidr: String,
    first: u32,
    last: u32,
    used: HashSet<u32>,
    next: u32,
}

impl PodIpPool {
    /// A pool over `cidr` ("10.244.1.0/24"); None when it is not a usable IPv4 CIDR.
    pub fn new(cidr: &str) -> Option<Self> {
        let (ip, len) = cidr.split_once('/')?;
        let ip: Ipv4Addr = ip.parse().ok()?;
        let len: u32 = len.parse().ok()?;
        if !(8..=30).contains(&len) {
            return None;
        }
        let mask = u32::MAX << (32 - len);
        let net = u32::from(ip) & mask;
        let broadcast = net | !mask;
        // .1 is the bridge gateway; hand out .2 .. broadcast-1.
        Some(Self { cidr: cidr.to_string(), first: net + 2, last: broadcast - 1, used: HashSet::new(), next: net + 2 })
    }

    pub fn cidr(&self) -> &str {
        &self.cidr
    }

    /// The next free address, or None when every address is in use.
    pub fn allocate(&mut self) -> Option<String> {
        let size = self.last - self.first + 1;
        for step in 0..size {
            let cand = self.first + (self.next - self.first + step) % size;
            if self.used.insert(cand) {
                self.next = if cand == self.last { self.first } else { cand + 1 };
                return Some(Ipv4Addr::from(cand).to_string());
            }
        }
        None
    }

    /// Marks `ip` used (a pod found running at start); false when outside the pool or taken.
    pub fn reserve(&mut self, ip: &str) -> bool {
        match ip.parse::<Ipv4Addr>() {
            Ok(a) if (self.first..=self.last).contains(&u32::from(a)) => self.used.insert(u32::from(a)),
            _ => false,
        }
    }

    pub fn release(&mut self, ip: &str) {
        if let Ok(a) = ip.parse::<Ipv4Addr>() {
            self.used.remove(&u32::from(a));
        }
    }

    pub fn in_use(&self) -> usize {
        self.used.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_robin_skips_gateway_and_broadcast() {
        let mut p = PodIpPool::new("10.244.3.0/30").unwrap();
        // A /30 has only .2 usable after the gateway (.3 is broadcast).
        assert_eq!(p.allocate().as_deref(), Some("10.244.3.2"));
        assert_eq!(p.allocate(), None);
        p.release("10.244.3.2");
        assert_eq!(p.allocate().as_deref(), Some("10.244.3.2"));

        let mut p = PodIpPool::new("10.244.1.0/24").unwrap();
        assert_eq!(p.allocate().as_deref(), Some("10.244.1.2"));
        assert_eq!(p.allocate().as_deref(), Some("10.244.1.3"));
        p.release("10.244.1.2");
        // Round-robin: a released address is not reused at once.
        assert_eq!(p.allocate().as_deref(), Some("10.244.1.4"));
        assert!(p.reserve("10.244.1.9"));
        assert!(!p.reserve("10.244.1.9"));
        assert!(!p.reserve("10.244.2.9"));
        assert!(!p.reserve("10.244.1.255"));
        assert_eq!(p.in_use(), 3);
    }

    #[test]
    fn rejects_unusable_cidrs() {
        assert!(PodIpPool::new("fd00::/64").is_none());
        assert!(PodIpPool::new("10.0.0.0/31").is_none());
        assert!(PodIpPool::new("junk").is_none());
    }
}
