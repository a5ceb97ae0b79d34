//! The netlink classifiers and batch decision, exactly as the kernel runs
//! them, on arbitrary bytes: no panic, and every sendmsg gets an outcome.
//! The first byte picks the mode (bit 0) and the netlink protocol (the
//! rest, modulo 24; 12 is nfnetlink).
#![no_main]

use std::collections::HashMap;

use libfuzzer_sys::fuzz_target;
use warrant_common::{
    FAMILY_ANY, NAME_LEN, RuleEntry, TargetKey, action,
    decision::{BatchScratch, PolicyView, decide_batch},
    mode,
    netlink::{NETLINK_NETFILTER, Nfnetlink, SliceBuffer},
    netlink_protocols::{Interfaces, OtherProtocol},
    tier,
};

/// A wildcard rule for every action (allow with a rate of one for even ids,
/// approve for odd ones) and a warrant for everything: every path of the
/// decision is reachable.
struct Everything(HashMap<TargetKey, RuleEntry>);

impl Everything {
    fn new() -> Self {
        let rules = action::ALL
            .iter()
            .map(|(id, _)| {
                let mut key = TargetKey::zeroed();
                key.action = *id;
                key.family = FAMILY_ANY;
                let tier = if id % 2 == 0 { tier::ALLOW } else { tier::APPROVE };
                (key, RuleEntry { tier, rule_index: *id, rate_limit: 1, rate_window_secs: 60 })
            })
            .collect();
        Self(rules)
    }
}

impl PolicyView for Everything {
    fn rule(&self, key: &TargetKey) -> Option<RuleEntry> {
        self.0.get(key).copied()
    }
    fn usable_warrant(&self, _: &TargetKey, _: u64) -> Option<u32> {
        Some(0)
    }
    fn consume_warrant(&self, _: &TargetKey, _: u64) -> bool {
        true
    }
    fn refund_warrant(&self, _: &TargetKey) {}
    fn take_rate(&self, rule: &RuleEntry) -> bool {
        rule.rule_index % 2 == 0
    }
}

/// Interfaces named for two indexes in three, so that naming by index and
/// failing to are both reached.
struct SomeInterfaces;

impl Interfaces for SomeInterfaces {
    fn netns(&self) -> u64 {
        4026531840
    }
    fn name_of(&self, index: u32, out: &mut [u8; NAME_LEN]) -> bool {
        if index % 3 == 0 {
            return false;
        }
        let name = format!("if{index}");
        out[..name.len()].copy_from_slice(name.as_bytes());
        true
    }
}

fuzz_target!(|data: &[u8]| {
    let policy = Everything::new();
    let mut scratch = BatchScratch::zeroed();
    let first = data.first().copied().unwrap_or(0);
    let audit = if first & 1 == 1 { mode::AUDIT } else { mode::ENFORCE };
    let protocol = u16::from(first >> 1) % 24;
    if protocol == NETLINK_NETFILTER {
        decide_batch(&SliceBuffer(data), &Nfnetlink, &policy, 0, audit, &mut scratch);
    } else {
        decide_batch(&SliceBuffer(data), &OtherProtocol { protocol, interfaces: SomeInterfaces }, &policy, 0, audit, &mut scratch);
    }
});
