//! A set of equally sized subnets of one IPv4 cluster range (upstream's `cidrset`): allocate the
//! next free subnet round-robin, occupy a given one, release one.

use std::net::Ipv4Addr;

#[derive(Debug, Clone)]
pub struct CidrSet {
    base: u32,
    sub_prefix: u8,
    used: Vec<bool>,
    next: usize,
}

/// Parses "a.b.c.d/n" into (network address, prefix length), rejecting host bits.
pub fn parse_v4(cidr: &str) -> Result<(u32, u8), String> {
    let (ip, len) = cidr.trim().split_once('/').ok_or_else(|| format!("{cidr:?} is not a CIDR"))?;
    let ip: Ipv4Addr = ip.parse().map_err(|_| format!("{cidr:?}: only IPv4 ranges are supported"))?;
    let len: u8 = len.parse().map_err(|_| format!("{cidr:?}: bad prefix length"))?;
    if len > 32 {
        return Err(format!("{cidr:?}: bad prefix length"));
    }
    let raw = u32::from(ip);
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
    Ok((raw & mask, len))
}

impl CidrSet {
    pub fn new(cluster_cidr: &str, sub_prefix: u8) -> Result<Self, String> {
        let (base, prefix) = parse_v4(cluster_cidr)?;
        if sub_prefix < prefix || sub_prefix > 32 {
            return Err(format!("node CIDR mask size {sub_prefix} does not fit in {cluster_cidr}"));
        }
        if sub_prefix - prefix > 20 {
            return Err(format!("node CIDR mask size {sub_prefix} gives too many subnets of {cluster_cidr}"));
        }
        let count = 1usize << (sub_prefix - prefix);
        Ok(Self { base, sub_prefix, used: vec![false; count], next: 0 })
    }

    fn render(&self, idx: usize) -> String {
        let addr = self.base + ((idx as u32) << (32 - self.sub_prefix as u32).min(31));
        let addr = if self.sub_prefix == 32 { self.base + idx as u32 } else { addr };
        format!("{}/{}", Ipv4Addr::from(addr), self.sub_prefix)
    }

    fn index_of(&self, cidr: &str) -> Option<usize> {
        let (net, len) = parse_v4(cidr).ok()?;
        if len != self.sub_prefix || net < self.base {
            return None;
        }
        let idx = if self.sub_prefix == 32 { net - self.base } else { (net - self.base) >> (32 - self.sub_prefix) };
        let idx = idx as usize;
        (idx < self.used.len()).then_some(idx)
    }

    pub fn clear(&mut self) {
        self.used.iter_mut().for_each(|u| *u = false);
        self.next = 0;
    }

    /// The next free subnet after the last one handed out, or None when the range is full.
    pub fn allocate(&mut self) -> Option<String> {
        let n = self.used.len();
        for step in 0..n {
            let idx = (self.next + step) % n;
            if !self.used[idx] {
                self.used[idx] = true;
                self.next = (idx + 1) % n;
                return Some(self.render(idx));
            }
        }
        None
    }

    /// Marks `cidr` used; false when it is not one of this set's subnets.
    pub fn occupy(&mut self, cidr: &str) -> bool {
        match self.index_of(cidr) {
            Some(i) => {
                self.used[i] = true;
                true
            }
            None => false,
        }
    }

    pub fn release(&mut self, cidr: &str) {
        if let Some(i) = self.index_of(cidr) {
            self.used[i] = false;
        }
    }

    pub fn free(&self) -> usize {
        self.used.iter().filter(|u| !**u).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_range_gives_256_slash_24s() {
        let mut s = CidrSet::new("10.244.0.0/16", 24).unwrap();
        assert_eq!(s.free(), 256);
        assert_eq!(s.allocate().as_deref(), Some("10.244.0.0/24"));
        assert_eq!(s.allocate().as_deref(), Some("10.244.1.0/24"));
        assert!(s.occupy("10.244.2.0/24"));
        assert_eq!(s.allocate().as_deref(), Some("10.244.3.0/24"));
        assert!(!s.occupy("10.245.0.0/24"), "outside the range");
        assert!(!s.occupy("10.244.0.0/25"), "wrong size");
    }

    #[test]
    fn exhaustion_and_release() {
        let mut s = CidrSet::new("192.168.0.0/23", 24).unwrap();
        assert!(s.allocate().is_some());
        assert!(s.allocate().is_some());
        assert_eq!(s.allocate(), None);
        s.release("192.168.1.0/24");
        assert_eq!(s.allocate().as_deref(), Some("192.168.1.0/24"));
    }

    #[test]
    fn bad_config_is_an_error() {
        assert!(CidrSet::new("10.244.0.0/16", 8).is_err());
        assert!(CidrSet::new("nonsense", 24).is_err());
        assert!(CidrSet::new("fd00::/48", 64).is_err());
        // Host bits are masked off like net.ParseCIDR does.
        let mut s = CidrSet::new("10.244.7.9/16", 24).unwrap();
        assert_eq!(s.allocate().as_deref(), Some("10.244.0.0/24"));
    }
}
