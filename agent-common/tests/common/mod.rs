//! Helpers shared by the plain-tier decision and classifier tests: netlink
//! messages built the way the tools lay them out, and in-memory maps.
#![allow(dead_code)] // each test file uses its own part

use std::{cell::RefCell, collections::HashMap};

use warrant_common::{
    RuleEntry, TargetKey, action,
    decision::{BatchOutcome, BatchScratch, PolicyView, decide_batch},
    netlink::{NLM_F_APPEND, NLM_F_REQUEST, Nfnetlink, SliceBuffer, nft_msg},
    tier,
};

pub const INET: u8 = 1;

/// Builds nfnetlink messages the way libnftnl lays them out.
#[derive(Default)]
pub struct Batch(pub Vec<u8>);

impl Batch {
    pub fn message(mut self, msg_type: u16, flags: u16, family: u8, attrs: &[(u16, &[u8])]) -> Self {
        let start = self.0.len();
        self.0.extend_from_slice(&[0; 16]);
        self.0.extend_from_slice(&[family, 0, 0, 10]);
        for (attr_type, payload) in attrs {
            let len = 4 + payload.len();
            self.0.extend_from_slice(&(len as u16).to_ne_bytes());
            self.0.extend_from_slice(&attr_type.to_ne_bytes());
            self.0.extend_from_slice(payload);
            while !self.0.len().is_multiple_of(4) {
                self.0.push(0);
            }
        }
        let len = (self.0.len() - start) as u32;
        self.0[start..start + 4].copy_from_slice(&len.to_ne_bytes());
        self.0[start + 4..start + 6].copy_from_slice(&msg_type.to_ne_bytes());
        self.0[start + 6..start + 8].copy_from_slice(&(flags | NLM_F_REQUEST).to_ne_bytes());
        self
    }
    pub fn begin(self) -> Self {
        self.message(0x10, 0, 0, &[])
    }
    pub fn end(self) -> Self {
        self.message(0x11, 0, 0, &[])
    }
    pub fn nft(self, msg: u16, flags: u16, attrs: &[(u16, &[u8])]) -> Self {
        self.message((10 << 8) | msg, flags, INET, attrs)
    }
    pub fn add_rule(self, table: &str, chain: &str) -> Self {
        self.nft(nft_msg::NEWRULE, NLM_F_APPEND, &[(1, &cstr(table)), (2, &cstr(chain)), (4, &[1, 2, 3, 4])])
    }
    /// A rule whose NFTA_RULE_EXPRESSIONS payload is `expressions`.
    pub fn add_rule_with(self, table: &str, chain: &str, expressions: &[u8]) -> Self {
        self.nft(nft_msg::NEWRULE, NLM_F_APPEND, &[(1, &cstr(table)), (2, &cstr(chain)), (4, expressions)])
    }
    pub fn add_element(self, table: &str, set: &str) -> Self {
        self.nft(nft_msg::NEWSETELEM, 0, &[(1, &cstr(table)), (2, &cstr(set))])
    }
}

pub fn cstr(s: &str) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    v.push(0);
    v
}

pub fn key(profile: u32, action_id: u32, family: u8, table: &str, object: &str) -> TargetKey {
    let mut k = TargetKey::zeroed();
    k.profile_id = profile;
    k.action = action_id;
    k.family = family;
    k.table[..table.len()].copy_from_slice(table.as_bytes());
    k.object[..object.len()].copy_from_slice(object.as_bytes());
    k
}

#[derive(Default)]
pub struct FakeMaps {
    /// Actions counted per rule, in one never-ending window.
    pub rate_counts: RefCell<HashMap<u32, u32>>,
    pub rules: HashMap<TargetKey, RuleEntry>,
    /// key -> (warrant index, uses left, valid)
    pub warrants: RefCell<HashMap<TargetKey, (u32, u64, bool, u64)>>,
}

impl FakeMaps {
    pub fn rule(mut self, k: TargetKey, tier_value: u32, index: u32) -> Self {
        self.rules.insert(k, RuleEntry { tier: tier_value, rule_index: index, rate_limit: 0, rate_window_secs: 0 });
        self
    }
    pub fn warrant(self, k: TargetKey, uses: u64, valid: bool) -> Self {
        self.warrants.borrow_mut().insert(k, (7, uses, valid, 0));
        self
    }
    /// A warrant bound to the content with digest `digest`.
    pub fn warrant_for_content(self, k: TargetKey, uses: u64, digest: u64) -> Self {
        self.warrants.borrow_mut().insert(k, (7, uses, true, digest));
        self
    }
    pub fn uses_left(&self, k: &TargetKey) -> u64 {
        self.warrants.borrow()[k].1
    }
}

impl PolicyView for FakeMaps {
    fn rule(&self, key: &TargetKey) -> Option<RuleEntry> {
        self.rules.get(key).copied()
    }
    fn usable_warrant(&self, key: &TargetKey, digest: u64) -> Option<u32> {
        self.warrants
            .borrow()
            .get(key)
            .filter(|(_, uses, valid, bound)| *valid && *uses > 0 && (*bound == 0 || *bound == digest))
            .map(|(i, ..)| *i)
    }
    fn consume_warrant(&self, key: &TargetKey, digest: u64) -> bool {
        match self.warrants.borrow_mut().get_mut(key) {
            Some((_, uses, true, bound)) if *uses > 0 && (*bound == 0 || *bound == digest) => {
                *uses -= 1;
                true
            }
            _ => false,
        }
    }
    fn refund_warrant(&self, key: &TargetKey) {
        if let Some((_, uses, ..)) = self.warrants.borrow_mut().get_mut(key) {
            *uses += 1;
        }
    }
    fn take_rate(&self, rule: &RuleEntry) -> bool {
        let mut counts = self.rate_counts.borrow_mut();
        let count = counts.entry(rule.rule_index).or_default();
        *count += 1;
        *count <= rule.rate_limit
    }
}

/// The demo policy for profile 0: blocklist elements allowed, input rules
/// need a warrant, the rest of inet filter denied.
pub fn demo_maps() -> FakeMaps {
    FakeMaps::default()
        .rule(key(0, action::NFT_ELEMENT_ADD, INET, "filter", "blocklist"), tier::ALLOW, 0)
        .rule(key(0, action::NFT_RULE_ADD, INET, "filter", "input"), tier::APPROVE, 1)
        .rule(key(0, action::NFT_RULE_ADD, INET, "filter", ""), tier::DENY, 2)
}

pub fn run(batch: &Batch, maps: &FakeMaps, profile_mode: u32) -> (BatchOutcome, Box<BatchScratch>) {
    let mut scratch = Box::new(BatchScratch::zeroed());
    let outcome = decide_batch(&SliceBuffer(&batch.0), &Nfnetlink, maps, 0, profile_mode, &mut scratch);
    (outcome, scratch)
}

pub fn verdicts(scratch: &BatchScratch) -> Vec<u32> {
    scratch.messages[..scratch.count as usize].iter().map(|m| m.verdict).collect()
}
