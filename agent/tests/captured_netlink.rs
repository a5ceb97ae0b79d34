//! Plain tier: the classifier on what real tools send. The messages in
//! `fixtures/netlink.jsonl` were captured from `ip`, `tc`, `nft` and
//! `conntrack` in the test VM (`fixtures/capture_netlink.py`); each command
//! must classify as the actions (and targets, as records show them) below.

use std::collections::BTreeMap;

use warrant::{net_target, policy::render_target};
use warrant_common::{
    NAME_LEN, TargetKey,
    action::{self, TargetKind},
    netlink::{self, Class, Classifier, MessageNotes, Nfnetlink, SliceBuffer, Step},
    netlink_protocols::{Interfaces, OtherProtocol},
};

/// The capture VM's interfaces just before a command ran, and its namespace.
struct CapturedHost {
    interfaces: BTreeMap<u32, String>,
    netns: u64,
}

impl Interfaces for &CapturedHost {
    fn netns(&self) -> u64 {
        self.netns
    }
    fn name_of(&self, index: u32, out: &mut [u8; NAME_LEN]) -> bool {
        let Some(name) = self.interfaces.get(&index) else { return false };
        out[..name.len()].copy_from_slice(name.as_bytes());
        true
    }
}

/// A key's target as records show it on the capture VM (records name a
/// namespace when it is not the host's, and the host running this test is
/// not the capture VM).
fn target_text(key: &TargetKey, netns: u64) -> String {
    match action::target_kind(key.action) {
        TargetKind::Interface => net_target::render_interface(key, Some(netns)),
        TargetKind::Route => net_target::render_route(key, Some(netns)),
        _ => render_target(key),
    }
}

/// Every action message of one sendmsg, as (action, target).
fn actions<C: Classifier>(classifier: &C, bytes: &[u8], netns: u64) -> Vec<(String, String)> {
    let buf = SliceBuffer(bytes);
    let mut out = Vec::new();
    let mut offset = 0;
    while let Step::Message { header, next } = netlink::read_header(&buf, offset) {
        let mut key = TargetKey::zeroed();
        match classifier.classify(&buf, offset, &header, &mut key, &mut MessageNotes::default()) {
            Class::NotAnAction => {}
            Class::Action => out.push((action::name(key.action).unwrap_or("?").to_owned(), target_text(&key, netns))),
            other => out.push((format!("{other:?}"), String::new())),
        }
        offset = next;
    }
    out
}

/// The actions of each captured command, by label, in capture order.
fn captured() -> Vec<(String, Vec<(String, String)>)> {
    let text = include_str!("fixtures/netlink.jsonl");
    let mut lines = text.lines().map(|l| serde_json::from_str::<serde_json::Value>(l).expect("a JSON line"));
    let netns = lines.next().expect("the host line")["netns"].as_u64().expect("netns");
    let mut by_label: Vec<(String, Vec<(String, String)>)> = Vec::new();
    for record in lines {
        let label = record["label"].as_str().unwrap().to_owned();
        let bytes = hex::decode(record["hex"].as_str().unwrap()).unwrap();
        let protocol = record["protocol"].as_u64().unwrap() as u16;
        let host = CapturedHost {
            interfaces: record["interfaces"]
                .as_object()
                .expect("interfaces")
                .iter()
                .map(|(index, name)| (index.parse().unwrap(), name.as_str().unwrap().to_owned()))
                .collect(),
            netns,
        };
        let found = if protocol == netlink::NETLINK_NETFILTER {
            actions(&Nfnetlink, &bytes, netns)
        } else {
            actions(&OtherProtocol { protocol, interfaces: &host }, &bytes, netns)
        };
        match by_label.last_mut() {
            Some((last, all)) if *last == label => all.extend(found),
            _ => by_label.push((label, found)),
        }
    }
    by_label
}

#[test]
fn what_real_tools_send_is_classified_as_the_kernel_acts_on_it() {
    let by_label = captured();
    let expected: &[(&str, &[(&str, &str)])] = EXPECTED;
    let mut mismatches = Vec::new();
    for (label, want) in expected {
        let got = by_label.iter().find(|(l, _)| l == label).map(|(_, a)| a.clone()).unwrap_or_default();
        let want: Vec<(String, String)> = want.iter().map(|(a, t)| ((*a).to_owned(), (*t).to_owned())).collect();
        if got != want {
            mismatches.push(format!("{label}: got {got:?}, want {want:?}"));
        }
    }
    if std::env::var_os("SHOW").is_some() {
        for (label, got) in &by_label {
            eprintln!("{label:?} => {got:?}");
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
    let labels: Vec<&str> = expected.iter().map(|(l, _)| *l).collect();
    for (label, _) in &by_label {
        assert!(labels.contains(&label.as_str()), "a capture no expectation covers: {label}");
    }
}

/// What each captured command is, by its label in the fixture: checked
/// against what the kernel does with the messages, not copied from a run.
const EXPECTED: &[(&str, &[(&str, &str)])] = &[
    // `ip link add` probes with a NEWLINK naming no link (not an action),
    // then makes the link by name.
    ("link add", &[("net.link.add", "wcap0")]),
    // By index: the kernel finds the link by index, named as it is now.
    ("link up", &[("net.link.set", "wcap0")]),
    ("link mtu", &[("net.link.set", "wcap0")]),
    // The index with a new name beside it renames the indexed link.
    ("link rename", &[("net.link.set", "wcap0")]),
    ("link rename back", &[("net.link.set", "wcap1")]),
    ("addr add", &[("net.addr.add", "wcap0")]),
    ("addr del", &[("net.addr.delete", "wcap0")]),
    ("neigh add", &[("net.neigh.add", "wcap0")]),
    // A route by table (rtm_table main, no RTA_TABLE) and prefix; rules
    // and xfrm are not named per object yet.
    ("route add", &[("net.route.add", "main 10.63.1.0/24")]),
    ("route show", &[]),
    ("rule add", &[("net.rule.add", "*")]),
    // tc by tcmsg's ifindex.
    ("qdisc add", &[("net.tc.qdisc.add", "wcap0")]),
    ("xfrm policy add", &[("net.xfrm.policy.add", "*")]),
    ("link show", &[]),
    ("link netns", &[("net.link.netns", "wcap0")]),
    ("link add 2", &[("net.link.add", "wcap2")]),
    ("link delete", &[("net.link.delete", "wcap2")]),
    // `nft add table` carries the table flags, which an existing table takes.
    ("nft add table", &[("nft.table.update", "inet cap")]),
    ("nft add chain", &[("nft.chain.add", "inet cap c")]),
    ("nft add rule", &[("nft.rule.add", "inet cap c")]),
    ("nft list", &[]),
    ("nft add set", &[("nft.set.add", "inet cap s")]),
    // Eleven elements travel in one NEWSETELEM: one action, whole.
    ("nft 11 elements", &[("nft.element.add", "inet cap s")]),
    // `nft delete chain ... handle N` sends the handle, which the kernel takes.
    ("nft delete chain by handle", &[("nft.chain.delete", "inet cap #handle")]),
    // A conntrack DELETE without a tuple flushes the table.
    ("conntrack flush", &[("nfnetlink.other", "family0 *")]),
    ("conntrack list", &[]),
];
