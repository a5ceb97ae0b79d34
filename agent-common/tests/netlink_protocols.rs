//! Plain tier: netlink as the kernel reads it. Objects addressed by handle
//! or batch id, reads known by message type (never by flags), and the
//! protocols beside nfnetlink (rtnetlink, xfrm, generic, audit, the rest).

mod common;

use common::*;
use warrant_common::{
    NAME_LEN, TargetKey, action,
    decision::{BatchOutcome, BatchScratch, decide_batch},
    mode,
    netlink::{self, BY_REFERENCE, Class, Classifier, NLM_F_DUMP, NLM_F_REQUEST, SliceBuffer, Step, nft_msg},
    netlink_protocols::{GENL_COMMAND_PRESENT, Interfaces, OtherProtocol, protocol},
    tier, verdict,
};

const NLM_F_REPLACE: u16 = 0x100;
const NLM_F_EXCL: u16 = 0x200;
const NLM_F_CREATE: u16 = 0x400;

/// One message of protocol `family_len`-byte fixed header (ifinfomsg 16,
/// rtmsg 12, genlmsghdr 4, ...) whose first byte is `first`, then `attrs`.
fn message(msg_type: u16, flags: u16, fixed: &[u8], attrs: &[(u16, &[u8])]) -> Vec<u8> {
    let mut out = vec![0u8; 16];
    out.extend_from_slice(fixed);
    for (attr_type, payload) in attrs {
        out.extend_from_slice(&((4 + payload.len()) as u16).to_ne_bytes());
        out.extend_from_slice(&attr_type.to_ne_bytes());
        out.extend_from_slice(payload);
        while !out.len().is_multiple_of(4) {
            out.push(0);
        }
    }
    let len = out.len() as u32;
    out[0..4].copy_from_slice(&len.to_ne_bytes());
    out[4..6].copy_from_slice(&msg_type.to_ne_bytes());
    out[6..8].copy_from_slice(&(flags | NLM_F_REQUEST).to_ne_bytes());
    out
}

/// Classifies the first message of `bytes` with `classifier`.
fn classify_with<C: Classifier>(classifier: &C, bytes: &[u8]) -> (Class, TargetKey) {
    let Step::Message { header, .. } = netlink::read_header(&SliceBuffer(bytes), 0) else {
        panic!("no message");
    };
    let mut key = TargetKey::zeroed();
    let class = classifier.classify(&SliceBuffer(bytes), 0, &header, &mut key, &mut Default::default());
    (class, key)
}

fn route(bytes: &[u8]) -> (Class, u32) {
    let (class, key) = classify_with(&OtherProtocol::plain(protocol::ROUTE), bytes);
    (class, key.action)
}

fn handle(n: u64) -> [u8; 8] {
    n.to_be_bytes()
}

#[test]
fn a_handle_beats_the_name_it_travels_with() {
    // `nft delete chain inet filter agentchain` with the handle of `input`:
    // the kernel deletes `input`, so the name decides nothing.
    let delete =
        Batch::default().nft(nft_msg::DELCHAIN, 0, &[(1, &cstr("filter")), (3, &cstr("agentchain")), (2, &handle(1))]);
    let (class, key) = classify_first_nft(&delete);
    assert_eq!((class, key.action), (Class::Action, action::NFT_CHAIN_DELETE));
    assert!(netlink::is_by_reference(warrant_common::name_bytes(&key.object)), "{:?}", key.object);
    // The handle first and the name after it: the same.
    let reversed =
        Batch::default().nft(nft_msg::DELCHAIN, 0, &[(1, &cstr("filter")), (2, &handle(1)), (3, &cstr("agentchain"))]);
    assert_eq!(classify_first_nft(&reversed).1, key);

    // A rule that lets the agent delete its own chain does not cover it; a
    // `*` rule on the table does.
    let own_chain = keyed(action::NFT_CHAIN_DELETE, "filter", "agentchain");
    let maps = FakeMaps::default().rule(own_chain, tier::ALLOW, 0);
    let batch = Batch::default()
        .begin()
        .nft(nft_msg::DELCHAIN, 0, &[(1, &cstr("filter")), (3, &cstr("agentchain")), (2, &handle(1))])
        .end();
    assert_eq!(decide(&batch, &maps).0, BatchOutcome::Deny);
    let maps = maps.rule(keyed(action::NFT_CHAIN_DELETE, "filter", ""), tier::ALLOW, 1);
    assert_eq!(decide(&batch, &maps).0, BatchOutcome::Allow);

    // A table delete by handle names no table a rule could name.
    let table = Batch::default().nft(nft_msg::DELTABLE, 0, &[(1, &cstr("agent")), (4, &handle(3))]);
    let (_, key) = classify_first_nft(&table);
    assert_eq!(&key.table[..2], &BY_REFERENCE);
    // Sets, objects and flowtables by handle.
    for (msg, attr) in
        [(nft_msg::DELSET, 16), (nft_msg::DELOBJ, 6), (nft_msg::DELFLOWTABLE, 5), (nft_msg::DESTROYSET, 16)]
    {
        let batch = Batch::default().nft(msg, 0, &[(1, &cstr("filter")), (2, &cstr("blocklist")), (attr, &handle(9))]);
        assert!(netlink::is_by_reference(&classify_first_nft(&batch).1.object), "message {msg}");
    }
    // Elements carry their set's name and (as nft always sends) a batch set
    // id, which the kernel takes only when no set has the name: the name
    // decides, and the demo's blocklist rule covers it.
    let element = Batch::default()
        .begin()
        .nft(nft_msg::NEWSETELEM, 0, &[(1, &cstr("filter")), (2, &cstr("blocklist")), (4, &7u32.to_be_bytes())])
        .end();
    let (outcome, scratch) = decide(&element, &demo_maps());
    assert_eq!(outcome, BatchOutcome::Allow);
    assert_eq!(warrant_common::name_bytes(&scratch.messages[0].key.object), b"blocklist");
    // A NEWCHAIN by handle updates (and may rename) that chain.
    let rename =
        Batch::default().nft(nft_msg::NEWCHAIN, 0, &[(1, &cstr("filter")), (2, &handle(1)), (3, &cstr("mine"))]);
    assert!(netlink::is_by_reference(&classify_first_nft(&rename).1.object));
    // Attribute 4 is a table's handle only in a table message.
    let chain =
        Batch::default().nft(nft_msg::DELCHAIN, 0, &[(1, &cstr("filter")), (3, &cstr("agentchain")), (4, &[0; 4])]);
    assert_eq!(warrant_common::name_bytes(&classify_first_nft(&chain).1.object), b"agentchain");
}

#[test]
fn an_add_that_may_update_an_existing_object_is_the_update() {
    let action_of = |msg: u16, flags: u16, attrs: &[(u16, &[u8])]| {
        classify_first_nft(&Batch::default().nft(msg, flags, attrs)).1.action
    };
    let table = cstr("filter");
    let chain = cstr("input");
    // `nft add table` carries NFTA_TABLE_FLAGS, which an existing table takes.
    assert_eq!(action_of(nft_msg::NEWTABLE, 0, &[(1, &table), (2, &[0; 4])]), action::NFT_TABLE_UPDATE);
    // `nft create table` (NLM_F_EXCL) fails on an existing table: an add.
    assert_eq!(action_of(nft_msg::NEWTABLE, NLM_F_EXCL, &[(1, &table), (2, &[0; 4])]), action::NFT_TABLE_ADD);
    assert_eq!(action_of(nft_msg::NEWTABLE, 0, &[(1, &table)]), action::NFT_TABLE_ADD);
    // A regular chain (table and name, maybe a batch id) adds or leaves the
    // one there as it is; a base chain's hook and policy update it.
    assert_eq!(
        action_of(nft_msg::NEWCHAIN, NLM_F_CREATE, &[(1, &table), (3, &chain), (11, &[0; 4])]),
        action::NFT_CHAIN_ADD
    );
    let base: &[(u16, &[u8])] = &[(1, &table), (3, &chain), (7, b"filter\0"), (5, &[0; 4]), (4, &[0; 8])];
    assert_eq!(action_of(nft_msg::NEWCHAIN, NLM_F_CREATE, base), action::NFT_CHAIN_UPDATE);
    assert_eq!(action_of(nft_msg::NEWCHAIN, NLM_F_CREATE | NLM_F_EXCL, base), action::NFT_CHAIN_ADD);
    // A set update changes only its timeout and gc interval.
    let set: &[(u16, &[u8])] = &[(1, &table), (2, &cstr("s")), (3, &[0; 4]), (4, &[0; 4]), (5, &[0; 4]), (10, &[0; 4])];
    assert_eq!(action_of(nft_msg::NEWSET, NLM_F_CREATE, set), action::NFT_SET_ADD);
    let timed: &[(u16, &[u8])] = &[(1, &table), (2, &cstr("s")), (11, &[0; 8])];
    assert_eq!(action_of(nft_msg::NEWSET, NLM_F_CREATE, timed), action::NFT_SET_UPDATE);
    // A quota or counter with data; a flowtable with hooks.
    assert_eq!(
        action_of(nft_msg::NEWOBJ, NLM_F_CREATE, &[(1, &table), (2, &cstr("q")), (3, &[0; 4]), (4, &[0; 8])]),
        action::NFT_OBJECT_UPDATE
    );
    assert_eq!(
        action_of(nft_msg::NEWFLOWTABLE, NLM_F_CREATE, &[(1, &table), (2, &cstr("f")), (3, &[0; 8])]),
        action::NFT_FLOWTABLE_UPDATE
    );
    // Elements and rules have no update.
    assert_eq!(
        action_of(nft_msg::NEWSETELEM, 0, &[(1, &table), (2, &cstr("blocklist")), (3, &[0; 8])]),
        action::NFT_ELEMENT_ADD
    );
}

fn keyed(action_id: u32, table: &str, object: &str) -> TargetKey {
    key(0, action_id, INET, table, object)
}

fn classify_first_nft(batch: &Batch) -> (Class, TargetKey) {
    classify_with(&netlink::Nfnetlink, &batch.0)
}

fn decide(batch: &Batch, maps: &FakeMaps) -> (BatchOutcome, Box<BatchScratch>) {
    run(batch, maps, mode::ENFORCE)
}

#[test]
fn nfnetlink_reads_are_known_types_whatever_the_flags() {
    let ct = |msg: u16, flags: u16| Batch::default().message((1 << 8) | msg, flags, 2, &[]);
    // A conntrack DELETE (flush) or NEW dressed with the dump flags is a write.
    for msg in [0u16, 2, 3] {
        let (class, key) = classify_first_nft(&ct(msg, NLM_F_DUMP));
        assert_eq!((class, key.action), (Class::Action, action::NFNETLINK_OTHER), "ctnetlink message {msg}");
    }
    // `conntrack -L` and the statistics requests are reads.
    for msg in [1u16, 4, 5, 6, 7] {
        assert_eq!(classify_first_nft(&ct(msg, NLM_F_DUMP)).0, Class::NotAnAction, "ctnetlink message {msg}");
    }
    // Expectations, accounting, timeouts, helpers: GETs only.
    let other = |subsys: u16, msg: u16| {
        classify_first_nft(&Batch::default().message((subsys << 8) | msg, NLM_F_DUMP, 2, &[])).0
    };
    assert_eq!(other(2, 1), Class::NotAnAction);
    assert_eq!(other(2, 2), Class::Action);
    assert_eq!(other(7, 2), Class::Action, "nfacct GET_CTRZERO zeroes counters");
    assert_eq!(other(8, 4), Class::NotAnAction);
    assert_eq!(other(8, 3), Class::Action);
    assert_eq!(other(3, 2), Class::Action, "nfqueue config");
    assert_eq!(other(12, 0), Class::NotAnAction, "nfnetlink_hook GET");
    // An ipset command that is neither a known write nor a known read.
    let (class, key) = classify_first_nft(&Batch::default().message((6 << 8) | 40, 0, 2, &[]));
    assert_eq!((class, key.action), (Class::Action, action::NFNETLINK_OTHER));
}

/// An ifinfomsg for the link with index 1 (lo).
const IFINFOMSG: [u8; 16] = [0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
/// An ifinfomsg naming no link by index.
const NO_INDEX: [u8; 16] = [0; 16];
const RTMSG: [u8; 12] = [2, 0, 0, 0, 254, 3, 0, 1, 0, 0, 0, 0];

#[test]
fn rtnetlink_writes_are_actions_by_type_and_gets_are_reads() {
    assert_eq!(route(&message(26, NLM_F_DUMP, &RTMSG, &[])), (Class::NotAnAction, 0), "ip route show");
    assert_eq!(route(&message(18, 0, &IFINFOMSG, &[])), (Class::NotAnAction, 0), "ip link show dev");
    // The dump flags do not make a write a read: on a NEW they are
    // NLM_F_REPLACE | NLM_F_EXCL, which the kernel reads as such.
    assert_eq!(route(&message(24, NLM_F_DUMP, &RTMSG, &[])).1, action::NET_ROUTE_REPLACE);
    assert_eq!(route(&message(24, NLM_F_CREATE | NLM_F_EXCL, &RTMSG, &[])).1, action::NET_ROUTE_ADD);
    assert_eq!(route(&message(24, NLM_F_CREATE | NLM_F_REPLACE, &RTMSG, &[])).1, action::NET_ROUTE_REPLACE);
    assert_eq!(route(&message(25, 0, &RTMSG, &[])).1, action::NET_ROUTE_DELETE);
    assert_eq!(route(&message(20, NLM_F_CREATE | NLM_F_EXCL, &[2, 24, 0, 0, 1, 0, 0, 0], &[])).1, action::NET_ADDR_ADD);
    assert_eq!(route(&message(21, 0, &[2, 24, 0, 0, 1, 0, 0, 0], &[])).1, action::NET_ADDR_DELETE);
    assert_eq!(route(&message(32, NLM_F_CREATE, &RTMSG, &[])).1, action::NET_RULE_ADD);
    assert_eq!(route(&message(29, 0, &[0; 12], &[])).1, action::NET_NEIGH_DELETE);
    assert_eq!(route(&message(67, 0, &[0; 4], &[])).1, action::NET_NEIGH_TABLE);
    assert_eq!(route(&message(104, NLM_F_CREATE, &[0; 8], &[])).1, action::NET_NEXTHOP_ADD);
    assert_eq!(route(&message(36, NLM_F_CREATE | NLM_F_EXCL, &[0; 20], &[])).1, action::NET_TC_QDISC_ADD);
    assert_eq!(route(&message(41, 0, &[0; 20], &[])).1, action::NET_TC_CLASS_DELETE);
    assert_eq!(route(&message(44, NLM_F_CREATE, &[0; 20], &[])).1, action::NET_TC_FILTER_ADD);
    assert_eq!(route(&message(100, NLM_F_CREATE, &[0; 20], &[])).1, action::NET_TC_FILTER_ADD, "a tc chain");
    assert_eq!(route(&message(48, NLM_F_CREATE, &[0; 4], &[])).1, action::NET_TC_ACTION_ADD);
    // Control messages are acknowledged, never handed to rtnetlink.
    assert_eq!(route(&message(3, 0, &[], &[])), (Class::NotAnAction, 0));
    // Writes without an action of their own: netlink.other, with the type.
    let (class, key) = classify_with(&OtherProtocol::plain(protocol::ROUTE), &message(88, 0, &[0; 4], &[]));
    assert_eq!((class, key.action, key.family, key.table[0]), (Class::Action, action::NETLINK_OTHER, 0, 88));
    assert_eq!(key.object, [0; NAME_LEN], "only generic netlink has a command");
}

#[test]
fn link_messages_are_classed_by_what_they_change() {
    let name: &[u8] = b"dummy0\0";
    let add = message(16, NLM_F_CREATE | NLM_F_EXCL, &IFINFOMSG, &[(3, name), (18, &[0; 8])]);
    assert_eq!(route(&add).1, action::NET_LINK_ADD);
    // `ip link set dev X down` is RTM_NEWLINK without CREATE.
    assert_eq!(route(&message(16, 0, &IFINFOMSG, &[])).1, action::NET_LINK_SET);
    assert_eq!(route(&message(16, NLM_F_CREATE, &NO_INDEX, &[(3, name)])).1, action::NET_LINK_SET);
    // A link found by name, or a group of links by IFLA_GROUP.
    assert_eq!(route(&message(19, 0, &NO_INDEX, &[(3, name)])).1, action::NET_LINK_SET);
    assert_eq!(route(&message(16, 0, &NO_INDEX, &[(27, &[1, 0, 0, 0])])).1, action::NET_LINK_SET);
    // One naming no link changes nothing (ENODEV): what `ip link` sends to
    // probe the kernel is not an action. With CREATE it makes a link.
    assert_eq!(route(&message(16, 0, &NO_INDEX, &[])), (Class::NotAnAction, 0));
    assert_eq!(route(&message(19, 0, &NO_INDEX, &[(4, &1400u32.to_ne_bytes())])), (Class::NotAnAction, 0));
    assert_eq!(route(&message(16, NLM_F_CREATE, &NO_INDEX, &[(18, &[0; 8])])).1, action::NET_LINK_ADD);
    assert_eq!(route(&message(17, 0, &IFINFOMSG, &[])).1, action::NET_LINK_DELETE);
    // Moving a link to another namespace, by fd, pid or netnsid; also in a create.
    for attr in [19u16, 28, 46] {
        assert_eq!(route(&message(19, 0, &IFINFOMSG, &[(attr, &[3, 0, 0, 0])])).1, action::NET_LINK_NETNS);
        assert_eq!(
            route(&message(16, NLM_F_CREATE | NLM_F_EXCL, &IFINFOMSG, &[(3, name), (attr, &[3, 0, 0, 0])])).1,
            action::NET_LINK_NETNS
        );
    }
    // IFLA_AF_SPEC alone is the interface's IP settings (net.ipv4.conf.*)...
    let conf = message(19, 0, &IFINFOMSG, &[(26, &[0; 12])]);
    assert_eq!(route(&conf).1, action::NET_CONF);
    // ...but with anything else beside it, the message changes the link too.
    let both = message(19, 0, &IFINFOMSG, &[(26, &[0; 12]), (4, &1400u32.to_ne_bytes())]);
    assert_eq!(route(&both).1, action::NET_LINK_SET);
    // More attributes than are read: its class cannot be known, so denied.
    let attrs: Vec<(u16, &[u8])> = (0..13).map(|_| (4u16, &[0u8; 4][..])).collect();
    assert_eq!(route(&message(19, 0, &IFINFOMSG, &attrs)), (Class::Unparseable, action::NET_LINK_SET));
    // An attribute longer than the message: nlmsg_parse refuses it.
    let mut truncated = message(19, 0, &IFINFOMSG, &[(26, &[0; 12])]);
    truncated[32] = 200;
    assert_eq!(route(&truncated).0, Class::Unparseable);
}

/// Interfaces 1 `lo` and 7 `veth-agent` in namespace 4026531840.
struct TwoInterfaces;

impl Interfaces for TwoInterfaces {
    fn netns(&self) -> u64 {
        4026531840
    }
    fn name_of(&self, index: u32, out: &mut [u8; NAME_LEN]) -> bool {
        let name: &[u8] = match index {
            1 => b"lo",
            7 => b"veth-agent",
            _ => return false,
        };
        out[..name.len()].copy_from_slice(name);
        true
    }
}

/// The action and interface (name, unnamed index) a route message names.
fn interface(bytes: &[u8]) -> (u32, String, u32) {
    let (class, key) = classify_with(&OtherProtocol { protocol: protocol::ROUTE, interfaces: TwoInterfaces }, bytes);
    assert_eq!(class, Class::Action);
    assert_eq!(key.interface_netns(), 4026531840);
    let name = String::from_utf8_lossy(warrant_common::name_bytes(&key.table)).into_owned();
    (key.action, name, key.interface_index())
}

#[test]
fn interfaces_are_named_as_the_kernel_finds_them() {
    let index = |i: u32| {
        let mut fixed = IFINFOMSG;
        fixed[4..8].copy_from_slice(&i.to_ne_bytes());
        fixed
    };
    let named = |n: &str| (action::NET_LINK_SET, n.to_owned(), 0);
    // By index, resolved to the name; an index with a name beside it is a
    // rename of the indexed link.
    assert_eq!(interface(&message(16, 0, &index(7), &[])), named("veth-agent"));
    assert_eq!(interface(&message(19, 0, &index(1), &[(3, b"veth-agent\0")])), named("lo"));
    // By name when the index is 0; IFLA_IFNAME before IFLA_ALT_IFNAME, and
    // the last of each, as nla_parse keeps it.
    assert_eq!(interface(&message(19, 0, &NO_INDEX, &[(3, b"eth0\0")])), named("eth0"));
    assert_eq!(interface(&message(19, 0, &NO_INDEX, &[(3, b"eth0\0"), (53, b"veth-agent\0")])), named("eth0"));
    assert_eq!(interface(&message(19, 0, &NO_INDEX, &[(53, b"veth-agent\0"), (3, b"eth0\0")])), named("eth0"));
    assert_eq!(interface(&message(19, 0, &NO_INDEX, &[(3, b"x\0"), (3, b"eth0\0")])), named("eth0"));
    assert_eq!(interface(&message(19, 0, &NO_INDEX, &[(53, b"uplink\0")])), named("uplink"));
    // Cut to 15 bytes as the kernel cuts IFLA_IFNAME; unterminated names
    // end with their payload.
    assert_eq!(interface(&message(19, 0, &NO_INDEX, &[(3, b"veth-agentXXXXXXXX")])), named("veth-agentXXXXX"));
    assert_eq!(interface(&message(19, 0, &NO_INDEX, &[(3, b"eth0")])), named("eth0"));
    // An alternative name is not cut (up to 127 bytes): a long one is unnamed.
    assert_eq!(
        interface(&message(19, 0, &NO_INDEX, &[(53, b"veth-agentXXXXXXXX\0")])),
        (action::NET_LINK_SET, "".into(), 0)
    );
    // Unnamed: an index with no link, a group, a link in another namespace.
    assert_eq!(interface(&message(19, 0, &index(9), &[])), (action::NET_LINK_SET, "".into(), 9));
    assert_eq!(interface(&message(16, 0, &NO_INDEX, &[(27, &[1, 0, 0, 0])])), (action::NET_LINK_SET, "".into(), 0));
    // A NEWLINK whose name finds no link changes the whole group it
    // carries (group 0 holds every link): unnamed whatever the name says.
    let group = message(16, 0, &NO_INDEX, &[(3, b"veth-agent\0"), (27, &[0; 4]), (4, &[0; 4])]);
    assert_eq!(interface(&group), (action::NET_LINK_SET, "".into(), 0));
    assert_eq!(interface(&message(19, 0, &index(7), &[(46, &[3, 0, 0, 0])])), (action::NET_LINK_NETNS, "".into(), 7));
    assert_eq!(interface(&message(17, 0, &index(7), &[(46, &[3, 0, 0, 0])])), (action::NET_LINK_DELETE, "".into(), 7));
    // A move by fd or pid names the link in the socket's namespace.
    assert_eq!(
        interface(&message(19, 0, &index(7), &[(28, &[3, 0, 0, 0])])),
        (action::NET_LINK_NETNS, "veth-agent".into(), 0)
    );
    // A delete stays a delete whatever it carries.
    assert_eq!(
        interface(&message(17, 0, &index(7), &[(19, &[3, 0, 0, 0])])),
        (action::NET_LINK_DELETE, "veth-agent".into(), 0)
    );
    assert_eq!(
        interface(&message(17, 0, &index(7), &[(26, &[0; 12])])),
        (action::NET_LINK_DELETE, "veth-agent".into(), 0)
    );
    // A new link is the one its name names.
    let add = message(16, NLM_F_CREATE | NLM_F_EXCL, &index(7), &[(3, b"agent0\0")]);
    assert_eq!(interface(&add), (action::NET_LINK_ADD, "agent0".into(), 0));
    // Addresses and neighbours by their index.
    assert_eq!(
        interface(&message(20, NLM_F_CREATE, &[2, 24, 0, 0, 7, 0, 0, 0], &[])),
        (action::NET_ADDR_ADD, "veth-agent".into(), 0)
    );
    assert_eq!(
        interface(&message(29, 0, &[2, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0], &[])),
        (action::NET_NEIGH_DELETE, "lo".into(), 0)
    );
    // tc's qdiscs, classes, filters and filter chains by tcmsg's ifindex;
    // a filter on a shared block (TCM_IFINDEX_MAGIC_BLOCK) is unnamed.
    let tcmsg = |ifindex: u32| {
        let mut fixed = [0u8; 20];
        fixed[4..8].copy_from_slice(&ifindex.to_ne_bytes());
        fixed
    };
    assert_eq!(
        interface(&message(36, NLM_F_CREATE, &tcmsg(7), &[])),
        (action::NET_TC_QDISC_ADD, "veth-agent".into(), 0)
    );
    assert_eq!(interface(&message(41, 0, &tcmsg(1), &[])), (action::NET_TC_CLASS_DELETE, "lo".into(), 0));
    assert_eq!(interface(&message(100, NLM_F_CREATE, &tcmsg(7), &[])).1, "veth-agent", "a filter chain");
    assert_eq!(
        interface(&message(44, NLM_F_CREATE, &tcmsg(u32::MAX), &[])),
        (action::NET_TC_FILTER_ADD, "".into(), u32::MAX)
    );
    // IP settings of one interface.
    assert_eq!(interface(&message(19, 0, &index(1), &[(26, &[0; 12])])), (action::NET_CONF, "lo".into(), 0));
    // ...but not when the message also sets flags (`ifi_change` 0 means
    // every flag) or renames the link.
    let mut up = index(1);
    up[8] = 1;
    assert_eq!(interface(&message(19, 0, &up, &[(26, &[0; 12])])).0, action::NET_LINK_SET);
    assert_eq!(interface(&message(19, 0, &index(1), &[(3, b"x\0"), (26, &[0; 12])])).0, action::NET_LINK_SET);
}

#[test]
fn what_the_kernel_does_beside_the_named_link_is_not_covered_by_its_name() {
    let unnamed = |action_id: u32| (action_id, String::new(), 0);
    // A link is made with IFLA_IFNAME's name only: an alternative name
    // names nothing a create makes, with or without NLM_F_EXCL.
    let alt: &[(u16, &[u8])] = &[(53, b"veth-agent\0")];
    assert_eq!(interface(&message(16, NLM_F_CREATE | NLM_F_EXCL, &NO_INDEX, alt)), unnamed(action::NET_LINK_ADD));
    assert_eq!(interface(&message(16, NLM_F_CREATE, &NO_INDEX, alt)), unnamed(action::NET_LINK_SET));
    let named: &[(u16, &[u8])] = &[(3, b"agent0\0")];
    assert_eq!(interface(&message(16, NLM_F_CREATE, &NO_INDEX, named)), (action::NET_LINK_SET, "agent0".into(), 0));
    // A link made on a lower device in another namespace.
    let across = message(16, NLM_F_CREATE | NLM_F_EXCL, &NO_INDEX, &[(3, b"agent0\0"), (37, &[3, 0, 0, 0])]);
    assert_eq!(interface(&across), unnamed(action::NET_LINK_NETNS));
    // Bridge messages act on the port's master (its VLANs, its forwarding
    // database): unnamed whatever port they name.
    let mut bridge_port = IFINFOMSG;
    bridge_port[0] = 7;
    bridge_port[4] = 7;
    assert_eq!(interface(&message(17, 0, &bridge_port, &[(26, &[0; 8])])), (action::NET_LINK_DELETE, "".into(), 7));
    let fdb = message(29, 0x200, &[7, 0, 0, 0, 7, 0, 0, 0, 0, 0x40, 0, 0], &[]);
    assert_eq!(interface(&fdb), (action::NET_NEIGH_DELETE, "".into(), 7));
    // dcbnl takes its set commands under RTM_GETDCB: those are actions.
    let dcb = |cmd: u8| route(&message(78, 0, &[0, cmd, 0, 0], &[(1, b"eth0\0")]));
    assert_eq!(dcb(21), (Class::NotAnAction, 0), "DCB_CMD_IEEE_GET");
    assert_eq!(dcb(20), (Class::Action, action::NETLINK_OTHER), "DCB_CMD_IEEE_SET");
    assert_eq!(dcb(2), (Class::Action, action::NETLINK_OTHER), "DCB_CMD_SSTATE");
}

#[test]
fn xfrm_generic_audit_and_the_rest_fail_closed() {
    let xfrm =
        |msg_type: u16| classify_with(&OtherProtocol::plain(protocol::XFRM), &message(msg_type, 0, &[0; 8], &[]));
    assert_eq!(xfrm(19).1.action, action::NET_XFRM_POLICY_ADD);
    assert_eq!(xfrm(28).1.action, action::NET_XFRM_STATE_DELETE);
    assert_eq!(xfrm(22).1.action, action::NET_XFRM_OTHER, "ALLOCSPI makes a state");
    assert_eq!(xfrm(18).0, Class::NotAnAction, "GETSA");

    let generic_with = |msg_type: u16, flags: u16, cmd: u8| {
        classify_with(&OtherProtocol::plain(protocol::GENERIC), &message(msg_type, flags, &[cmd, 1, 0, 0], &[]))
    };
    let generic = |msg_type: u16, cmd: u8| generic_with(msg_type, 0, cmd);
    assert_eq!(generic(0x10, 3).0, Class::NotAnAction, "the controller's CTRL_CMD_GETFAMILY");
    // The target: protocol, the family's type, then its command (0 too).
    let (class, key) = generic(0x1c, 1);
    assert_eq!((class, key.action, key.family), (Class::Action, action::NETLINK_OTHER, 16));
    assert_eq!((&key.table[..2], &key.object[..2]), (&[0x1c, 0][..], &[1, GENL_COMMAND_PRESENT][..]));
    assert_eq!(generic(0x1c, 0).1.object[..2], [0, GENL_COMMAND_PRESENT], "WG_CMD_GET_DEVICE as a do");
    assert_eq!(generic(0x10, 1).0, Class::Action, "CTRL_CMD_NEWFAMILY is not a read");
    // A dump runs the command's dump callbacks, which may act or hand out
    // secrets: decided like the command (`wg show` is get_device).
    let (class, key) = generic_with(0x1c, NLM_F_DUMP, 0);
    assert_eq!((class, key.object[..2].to_vec()), (Class::Action, vec![0, GENL_COMMAND_PRESENT]), "wg show");
    assert_eq!(generic_with(0x10, NLM_F_DUMP, 3).0, Class::NotAnAction, "the controller's family dump");
    assert_eq!(generic_with(0x10, NLM_F_DUMP, 10).0, Class::NotAnAction, "the controller's policy dump");
    let (class, key) = generic_with(0x10, NLM_F_DUMP, 1);
    assert_eq!((class, key.object[..2].to_vec()), (Class::Action, vec![1, GENL_COMMAND_PRESENT]), "NEWFAMILY dump");
    // Elsewhere the kernel dispatches by type: the dump bits read nothing.
    let (class, key) = classify_with(&OtherProtocol::plain(protocol::AUDIT), &message(1001, NLM_F_DUMP, &[0; 4], &[]));
    assert_eq!((class, key.action), (Class::Action, action::NETLINK_OTHER), "AUDIT_SET dressed as a dump");

    let audit =
        |msg_type: u16| classify_with(&OtherProtocol::plain(protocol::AUDIT), &message(msg_type, 0, &[0; 4], &[])).0;
    assert_eq!(audit(1000), Class::NotAnAction, "AUDIT_GET");
    assert_eq!(audit(1112), Class::NotAnAction, "AUDIT_USER_LOGIN is a record for the log");
    assert_eq!(audit(1001), Class::Action, "AUDIT_SET can switch auditing off");
    assert_eq!(audit(1011), Class::Action, "AUDIT_ADD_RULE");

    let diag = |msg_type: u16| {
        classify_with(&OtherProtocol::plain(protocol::SOCK_DIAG), &message(msg_type, 0, &[0; 8], &[])).0
    };
    assert_eq!(diag(20), Class::NotAnAction, "SOCK_DIAG_BY_FAMILY (ss)");
    assert_eq!(diag(21), Class::Action, "SOCK_DESTROY kills other processes' sockets");
    // A uevent sent to udev, and connector (which reads no type at all, so
    // control types count too).
    assert_eq!(
        classify_with(&OtherProtocol::plain(protocol::KOBJECT_UEVENT), &message(20, 0, &[], &[])).0,
        Class::Action
    );
    assert_eq!(classify_with(&OtherProtocol::plain(11), &message(3, 0, &[0; 20], &[])).0, Class::Action);
}

#[test]
fn other_protocols_are_decided_like_netfilter_batches() {
    let net = |action_id: u32| {
        let mut k = TargetKey::zeroed();
        k.action = action_id;
        k
    };
    let any = |action_id: u32| {
        let mut k = net(action_id);
        k.family = warrant_common::FAMILY_ANY;
        k
    };
    let mut generic = net(action::NETLINK_OTHER);
    generic.family = 16;
    // The default route of table main (RTMSG names it), as warrants name it.
    let mut default_route = net(action::NET_ROUTE_DELETE);
    default_route.table[..4].copy_from_slice(&action::RT_TABLE_MAIN.to_le_bytes());
    default_route.object[0] = 2;
    let maps = FakeMaps::default()
        .rule(any(action::NET_ROUTE_ADD), tier::ALLOW, 0)
        .rule(any(action::NET_ROUTE_DELETE), tier::APPROVE, 1)
        .rule(generic, tier::ALLOW, 2)
        .warrant(default_route, 1, true);
    let decide = |bytes: &[u8]| {
        let mut scratch = Box::new(BatchScratch::zeroed());
        let outcome = decide_batch(
            &SliceBuffer(bytes),
            &OtherProtocol::plain(protocol::ROUTE),
            &maps,
            0,
            mode::ENFORCE,
            &mut scratch,
        );
        (outcome, scratch.messages[0].verdict)
    };
    assert_eq!(decide(&message(24, NLM_F_CREATE, &RTMSG, &[])), (BatchOutcome::Allow, verdict::ALLOWED));
    assert_eq!(decide(&message(26, NLM_F_DUMP, &RTMSG, &[])).0, BatchOutcome::NoAction);
    assert_eq!(decide(&message(25, 0, &RTMSG, &[])), (BatchOutcome::Allow, verdict::ALLOWED_BY_WARRANT));
    assert_eq!(decide(&message(25, 0, &RTMSG, &[])), (BatchOutcome::Deny, verdict::DENIED_NEEDS_WARRANT));
    assert_eq!(decide(&message(16, 0, &IFINFOMSG, &[])), (BatchOutcome::Deny, verdict::DENIED));
    // A read first and a write after it in one sendmsg: the write is decided.
    let mut two = message(26, 0, &RTMSG, &[]);
    two.extend(message(17, 0, &IFINFOMSG, &[]));
    assert_eq!(decide(&two).0, BatchOutcome::Deny);
    // netlink.other is decided on the protocol, whatever the type.
    let mut scratch = Box::new(BatchScratch::zeroed());
    let genl = message(0x1c, 0, &[1, 1, 0, 0], &[]);
    let outcome = decide_batch(
        &SliceBuffer(&genl),
        &OtherProtocol::plain(protocol::GENERIC),
        &maps,
        0,
        mode::ENFORCE,
        &mut scratch,
    );
    assert_eq!(outcome, BatchOutcome::Allow);
    let xfrm = message(19, 0, &[0; 8], &[]);
    let outcome =
        decide_batch(&SliceBuffer(&xfrm), &OtherProtocol::plain(protocol::XFRM), &maps, 0, mode::ENFORCE, &mut scratch);
    assert_eq!(outcome, BatchOutcome::Deny, "no rule for net.xfrm.policy.add");
}

#[test]
fn network_ioctls_are_the_rtnetlink_actions_they_amount_to() {
    use warrant_common::ioctl::network_action;
    // SIOCADDRT, SIOCDELRT, SIOCSIFADDR, SIOCDIFADDR, SIOCSIFFLAGS,
    // SIOCSIFNAME, SIOCSARP, SIOCBRADDBR, SIOCDELTUNNEL, TUNSETIFF,
    // VHOST_NET_SET_BACKEND; SIOCGIFBR and SIOCDEVPRIVATE (a bridge's
    // BRCTL_ADD_BRIDGE and BRCTL_ADD_IF go through them); PPPIOCNEWUNIT;
    // TIOCSETD (SLIP, SLCAN, GSM disciplines make links).
    for (cmd, action_id) in [
        (0x890b, action::NET_ROUTE_ADD),
        (0x890c, action::NET_ROUTE_DELETE),
        (0x8916, action::NET_ADDR_ADD),
        (0x8936, action::NET_ADDR_DELETE),
        (0x8914, action::NET_LINK_SET),
        (0x8923, action::NET_LINK_SET),
        (0x8955, action::NET_NEIGH_ADD),
        (0x89a0, action::NET_LINK_ADD),
        (0x89f2, action::NET_LINK_DELETE),
        (0x4004_54ca, action::NET_LINK_ADD),
        (0x4008_af30, action::NET_RAW),
        (0x8940, action::NET_LINK_SET),
        (0x89f0, action::NET_LINK_SET),
        (0xc004_743e, action::NET_LINK_ADD),
        (0x5423, action::NET_LINK_ADD),
    ] {
        assert_eq!(network_action(cmd), Some(action_id), "{cmd:#x}");
    }
    // Reads stay reads: SIOCGIFINDEX, SIOCGIFFLAGS, SIOCGIFHWADDR, SIOCGIFMTU,
    // SIOCGIFCONF, FIOSETOWN, SIOCGSKNS, TUNGETIFF; and other ioctls are
    // not this module's: TCGETS, TIOCSTI, FIONREAD, SIOCGSTAMP_NEW.
    for cmd in
        [0x8933u32, 0x8913, 0x8927, 0x8921, 0x8912, 0x8901, 0x894c, 0x8004_54d2, 0x5401, 0x5412, 0x541b, 0x8010_8906]
    {
        assert_eq!(network_action(cmd), None, "{cmd:#x}");
    }
}
