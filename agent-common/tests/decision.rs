//! Plain tier: the classifier and the decision function, exactly as the
//! kernel runs them, against netlink batches built here and in-memory maps.

mod common;

use common::*;
use warrant_common::{
    FAMILY_ANY, NAME_LEN, TargetKey, action,
    decision::{BatchOutcome, BatchScratch, decide_batch},
    mode,
    netlink::{self, Class, NLM_F_APPEND, NLM_F_REPLACE, Nfnetlink, SliceBuffer, nft_msg},
    tier, verdict,
};

#[test]
fn allow_tier_applies() {
    let batch = Batch::default().begin().add_element("filter", "blocklist").end();
    let (outcome, scratch) = run(&batch, &demo_maps(), mode::ENFORCE);
    assert_eq!(outcome, BatchOutcome::Allow);
    assert_eq!(verdicts(&scratch), [verdict::ALLOWED]);
    assert_eq!(scratch.messages[0].key.action, action::NFT_ELEMENT_ADD);
}

#[test]
fn approve_tier_without_warrant_is_denied_for_a_request() {
    let batch = Batch::default().begin().add_rule("filter", "input").end();
    let (outcome, scratch) = run(&batch, &demo_maps(), mode::ENFORCE);
    assert_eq!(outcome, BatchOutcome::Deny);
    assert_eq!(verdicts(&scratch), [verdict::DENIED_NEEDS_WARRANT]);
    assert_eq!(scratch.messages[0].tier, tier::APPROVE);
}

#[test]
fn warrant_allows_once_then_is_spent() {
    let warranted = key(0, action::NFT_RULE_ADD, INET, "filter", "input");
    let maps = demo_maps().warrant(warranted, 1, true);
    let batch = Batch::default().begin().add_rule("filter", "input").end();
    let (first, scratch) = run(&batch, &maps, mode::ENFORCE);
    assert_eq!(first, BatchOutcome::Allow);
    assert_eq!(verdicts(&scratch), [verdict::ALLOWED_BY_WARRANT]);
    assert_eq!(scratch.messages[0].warrant_index, 7);
    assert_eq!(maps.uses_left(&warranted), 0);
    let (second, scratch) = run(&batch, &maps, mode::ENFORCE);
    assert_eq!(second, BatchOutcome::Deny);
    assert_eq!(verdicts(&scratch), [verdict::DENIED_NEEDS_WARRANT]);
}

#[test]
fn a_content_bound_warrant_covers_only_its_rule() {
    let chain = key(0, action::NFT_RULE_ADD, INET, "filter", "input");
    // Stand-ins for `tcp dport 22 accept` and a bare `accept`.
    let ssh_only: &[u8] = b"payload dport cmp 22 immediate accept";
    let bare_accept: &[u8] = b"immediate accept";
    let bound = netlink::content_digest(netlink::PLAIN_DIGEST_KEY, ssh_only);
    assert_ne!(bound, netlink::content_digest(netlink::PLAIN_DIGEST_KEY, bare_accept));

    let approved = Batch::default().begin().add_rule_with("filter", "input", ssh_only).end();
    let (_, scratch) = run(&approved, &demo_maps(), mode::ENFORCE);
    assert_eq!(scratch.messages[0].content_digest, bound, "the request carries the digest the RI approves");

    let maps = demo_maps().warrant_for_content(chain, 2, bound);
    let other = Batch::default().begin().add_rule_with("filter", "input", bare_accept).end();
    let (outcome, scratch) = run(&other, &maps, mode::ENFORCE);
    assert_eq!(outcome, BatchOutcome::Deny, "a bare accept is not the approved rule");
    assert_eq!(verdicts(&scratch), [verdict::DENIED_NEEDS_WARRANT]);
    assert_eq!(maps.uses_left(&chain), 2);
    let (outcome, scratch) = run(&approved, &maps, mode::ENFORCE);
    assert_eq!(outcome, BatchOutcome::Allow);
    assert_eq!(verdicts(&scratch), [verdict::ALLOWED_BY_WARRANT]);
    assert_eq!(maps.uses_left(&chain), 1);

    // The last expressions attribute is the one the kernel applies.
    let doubled = Batch::default()
        .begin()
        .nft(
            nft_msg::NEWRULE,
            NLM_F_APPEND,
            &[(1, &cstr("filter")), (2, &cstr("input")), (4, ssh_only), (4, bare_accept)],
        )
        .end();
    assert_eq!(run(&doubled, &maps, mode::ENFORCE).0, BatchOutcome::Deny);
    // Content too long to digest binds nothing.
    assert_eq!(
        netlink::content_digest(netlink::PLAIN_DIGEST_KEY, &[0; netlink::MAX_DIGEST_BYTES as usize + 1]),
        netlink::DIGEST_TOO_LONG
    );
}

#[test]
fn expired_warrant_does_not_allow() {
    let maps = demo_maps().warrant(key(0, action::NFT_RULE_ADD, INET, "filter", "input"), 5, false);
    let batch = Batch::default().begin().add_rule("filter", "input").end();
    assert_eq!(run(&batch, &maps, mode::ENFORCE).0, BatchOutcome::Deny);
}

#[test]
fn warrant_for_another_chain_does_not_cover() {
    let maps = demo_maps().rule(key(0, action::NFT_RULE_ADD, INET, "filter", "forward"), tier::APPROVE, 3).warrant(
        key(0, action::NFT_RULE_ADD, INET, "filter", "forward"),
        1,
        true,
    );
    let batch = Batch::default().begin().add_rule("filter", "input").end();
    assert_eq!(run(&batch, &maps, mode::ENFORCE).0, BatchOutcome::Deny);
}

#[test]
fn one_denied_message_denies_the_batch_and_spends_no_warrant() {
    let warranted = key(0, action::NFT_RULE_ADD, INET, "filter", "input");
    let maps = demo_maps().warrant(warranted, 1, true);
    let batch = Batch::default()
        .begin()
        .add_element("filter", "blocklist")
        .add_rule("filter", "input")
        .add_rule("filter", "output")
        .end();
    let (outcome, scratch) = run(&batch, &maps, mode::ENFORCE);
    assert_eq!(outcome, BatchOutcome::Deny);
    assert_eq!(verdicts(&scratch), [verdict::BATCH_DENIED, verdict::BATCH_DENIED, verdict::DENIED]);
    assert_eq!(maps.uses_left(&warranted), 1, "a denied batch must not spend a warrant use");
}

#[test]
fn two_messages_cannot_share_a_one_use_warrant() {
    let warranted = key(0, action::NFT_RULE_ADD, INET, "filter", "input");
    let maps = demo_maps().warrant(warranted, 1, true);
    let batch = Batch::default().begin().add_rule("filter", "input").add_rule("filter", "input").end();
    let (outcome, _) = run(&batch, &maps, mode::ENFORCE);
    assert_eq!(outcome, BatchOutcome::Deny);
    assert_eq!(maps.uses_left(&warranted), 1, "the use taken by the first message is given back");
}

#[test]
fn audit_mode_allows_but_reports_would_deny() {
    let batch = Batch::default().begin().add_rule("filter", "output").end();
    let (outcome, scratch) = run(&batch, &demo_maps(), mode::AUDIT);
    assert_eq!(outcome, BatchOutcome::Allow);
    assert_eq!(verdicts(&scratch), [verdict::WOULD_DENY]);
}

#[test]
fn unmatched_actions_are_denied() {
    let batch = Batch::default().begin().nft(nft_msg::DELTABLE, 0, &[(1, &cstr("filter"))]).end();
    let (outcome, scratch) = run(&batch, &demo_maps(), mode::ENFORCE);
    assert_eq!(outcome, BatchOutcome::Deny);
    assert_eq!(scratch.messages[0].tier, tier::UNMATCHED);
    assert_eq!(scratch.messages[0].key.action, action::NFT_TABLE_DELETE);
}

#[test]
fn reads_are_not_actions() {
    let batch = Batch::default().nft(nft_msg::GETGEN, 0, &[]).nft(nft_msg::GETTABLE, 0x300, &[]);
    assert_eq!(run(&batch, &demo_maps(), mode::ENFORCE).0, BatchOutcome::NoAction);
}

#[test]
fn wildcards_match_from_most_to_least_specific() {
    let maps = FakeMaps::default().rule(key(0, action::NFT_CHAIN_ADD, FAMILY_ANY, "", ""), tier::DENY, 0).rule(
        key(0, action::NFT_CHAIN_ADD, INET, "", ""),
        tier::ALLOW,
        1,
    );
    let batch = Batch::default().nft(nft_msg::NEWCHAIN, 0, &[(1, &cstr("t")), (3, &cstr("c"))]);
    let (outcome, scratch) = run(&batch, &maps, mode::ENFORCE);
    assert_eq!(outcome, BatchOutcome::Allow);
    assert_eq!(scratch.messages[0].rule_index, 1);
}

#[test]
fn rule_flags_select_add_insert_replace() {
    for (flags, expected) in
        [(NLM_F_APPEND, action::NFT_RULE_ADD), (0, action::NFT_RULE_INSERT), (NLM_F_REPLACE, action::NFT_RULE_REPLACE)]
    {
        let batch = Batch::default().nft(nft_msg::NEWRULE, flags, &[(1, &cstr("filter")), (2, &cstr("input"))]);
        let (_, scratch) = run(&batch, &demo_maps(), mode::ENFORCE);
        assert_eq!(scratch.messages[0].key.action, expected);
    }
}

#[test]
fn last_attribute_of_a_type_wins_like_nla_parse() {
    // An agent cannot hide the real table behind an allowed one.
    let batch = Batch::default().nft(
        nft_msg::NEWSETELEM,
        0,
        &[(1, &cstr("filter")), (2, &cstr("blocklist")), (1, &cstr("other"))],
    );
    let (outcome, scratch) = run(&batch, &demo_maps(), mode::ENFORCE);
    assert_eq!(outcome, BatchOutcome::Deny);
    assert_eq!(warrant_common::name_bytes(&scratch.messages[0].key.table), b"other");
}

#[test]
fn unterminated_names_are_read_whole() {
    let batch = Batch::default().nft(nft_msg::NEWSETELEM, 0, &[(1, b"filterX"), (2, &cstr("blocklist"))]);
    let (outcome, scratch) = run(&batch, &demo_maps(), mode::ENFORCE);
    assert_eq!(outcome, BatchOutcome::Deny);
    assert_eq!(warrant_common::name_bytes(&scratch.messages[0].key.table), b"filterX");
}

#[test]
fn names_too_long_to_key_on_are_unparseable() {
    let long = "t".repeat(NAME_LEN);
    let batch = Batch::default().nft(nft_msg::NEWTABLE, 0, &[(1, &cstr(&long))]);
    let (outcome, scratch) = run(&batch, &demo_maps(), mode::ENFORCE);
    assert_eq!(outcome, BatchOutcome::Deny);
    assert_eq!(scratch.messages[0].verdict, verdict::UNPARSEABLE);
}

#[test]
fn batches_longer_than_the_kernel_reads_are_denied() {
    let batch = |actions: usize| {
        let mut batch = Batch::default().begin();
        for _ in 0..actions {
            batch = batch.add_element("filter", "blocklist");
        }
        batch.end()
    };
    let (outcome, scratch) = run(&batch(netlink::MAX_MESSAGES), &demo_maps(), mode::ENFORCE);
    assert_eq!(outcome, BatchOutcome::Allow, "as many actions as the kernel keeps");
    assert_eq!(scratch.count as usize, netlink::MAX_MESSAGES);
    let (outcome, scratch) = run(&batch(netlink::MAX_MESSAGES + 1), &demo_maps(), mode::ENFORCE);
    assert_eq!(outcome, BatchOutcome::Deny);
    assert!(verdicts(&scratch).contains(&verdict::UNPARSEABLE));
    // Messages that are no action (here NOOPs) count against the walk's
    // steps, not the actions: past the steps, the batch is denied too.
    let mut noops = Batch::default();
    for _ in 0..warrant_common::decision::MAX_STEPS {
        noops = noops.message(1, 0, 0, &[]);
    }
    let (outcome, _) = run(&noops.add_element("filter", "blocklist"), &demo_maps(), mode::ENFORCE);
    assert_eq!(outcome, BatchOutcome::Deny);
}

#[test]
fn truncated_attribute_is_unparseable() {
    let mut batch = Batch::default().add_element("filter", "blocklist");
    // Claim a longer attribute than the message holds.
    batch.0[20] = 200;
    let header = match netlink::read_header(&SliceBuffer(&batch.0), 0) {
        netlink::Step::Message { header, .. } => header,
        netlink::Step::End => panic!("header"),
    };
    let mut k = TargetKey::zeroed();
    assert_eq!(
        netlink::classify(&SliceBuffer(&batch.0), 0, &header, &mut k, &mut Default::default()),
        Class::Unparseable
    );
}

#[test]
fn other_nfnetlink_subsystems_are_classified_not_ignored() {
    let batch = Batch::default().message((1 << 8) | 2, 0, 2, &[]);
    let (outcome, scratch) = run(&batch, &demo_maps(), mode::ENFORCE);
    assert_eq!(outcome, BatchOutcome::Deny);
    assert_eq!(scratch.messages[0].key.action, action::NFNETLINK_OTHER);
}

#[test]
fn legacy_setsockopt_classifies_by_level_and_option() {
    use warrant_common::legacy::{self, *};
    assert_eq!(legacy::classify(SOL_IP, IPT_SO_SET_REPLACE), Some((action::IPTABLES_REPLACE, FAMILY_IP)));
    assert_eq!(legacy::classify(SOL_IPV6, IPT_SO_SET_REPLACE), Some((action::IPTABLES_REPLACE, FAMILY_IP6)));
    assert_eq!(legacy::classify(SOL_IP, ARPT_SO_SET_ADD_COUNTERS), Some((action::IPTABLES_COUNTERS, FAMILY_ARP)));
    assert_eq!(legacy::classify(SOL_IP, EBT_SO_SET_ENTRIES), Some((action::IPTABLES_REPLACE, FAMILY_BRIDGE)));
    assert_eq!(legacy::classify(SOL_IP, 1), None, "IP_TOS is not a firewall write");
    // IPVS: IP_VS_SO_SET_ADD, _FLUSH, _EDITDEST, _STARTDAEMON and _ZERO;
    // the GETs (1152 on) are getsockopt, another hook.
    for name in [1152, 1157, 1161, 1163, 1167] {
        assert_eq!(legacy::classify(SOL_IP, name), Some((action::NET_IPVS, 0)), "{name}");
    }
    assert_eq!(legacy::classify(SOL_IP, 1168), None);
    // An XDP socket's rings and umem: frames it sends pass no send hook.
    assert_eq!(legacy::classify(SOL_XDP, 4), Some((action::NET_RAW, 0)), "XDP_UMEM_REG");
    assert_eq!(legacy::classify(SOL_IPV6, 1152), None);
    // A socket's own IPsec policy (an ALLOW policy skips the host's).
    for (level, name) in [(SOL_IP, 16), (SOL_IP, 17), (SOL_IPV6, 34), (SOL_IPV6, 35)] {
        assert_eq!(legacy::classify(level, name), Some((action::NET_XFRM_POLICY_ADD, 0)), "{level} {name}");
    }
    // Multicast routing, IPv4 and IPv6: MRT_ADD_VIF makes pimreg, MRT_ADD_MFC
    // a forwarding route; MRT_INIT takes the router's socket.
    for level in [SOL_IP, SOL_IPV6] {
        assert_eq!(legacy::classify(level, MRT_ADD_VIF), Some((action::NET_LINK_ADD, 0)));
        assert_eq!(legacy::classify(level, MRT_DEL_VIF), Some((action::NET_LINK_DELETE, 0)));
        assert_eq!(legacy::classify(level, MRT_ADD_MFC), Some((action::NET_ROUTE_ADD, 0)));
        assert_eq!(legacy::classify(level, MRT_FLUSH), Some((action::NET_ROUTE_DELETE, 0)));
        assert_eq!(legacy::classify(level, 200), Some((action::NET_ROUTE_ADD, 0)));
        assert_eq!(legacy::classify(level, 213), None);
    }
    assert_eq!(legacy::classify(SOL_IPV6, IPV6_JOIN_ANYCAST), Some((action::NET_ADDR_ADD, 0)));
    assert_eq!(legacy::classify(SOL_IPV6, IPV6_LEAVE_ANYCAST), Some((action::NET_ADDR_DELETE, 0)));
    assert_eq!(legacy::classify(SOL_IPV6, 20), None, "IPV6_ADD_MEMBERSHIP is an application's");
}

#[test]
fn single_actions_use_the_same_tiers_and_warrants() {
    use warrant_common::decision::decide_single;
    let target = key(0, action::IPTABLES_REPLACE, 2, "", "");
    let maps = FakeMaps::default().rule(target, tier::APPROVE, 4).warrant(target, 1, true);
    let mut scratch = Box::new(warrant_common::decision::SingleScratch::zeroed());
    scratch.messages[0].key = target;
    assert_eq!(decide_single(&maps, mode::ENFORCE, &mut scratch), BatchOutcome::Allow);
    assert_eq!(scratch.messages[0].verdict, verdict::ALLOWED_BY_WARRANT);
    scratch.messages[0].key = target;
    assert_eq!(decide_single(&maps, mode::ENFORCE, &mut scratch), BatchOutcome::Deny);
    assert_eq!(scratch.messages[0].verdict, verdict::DENIED_NEEDS_WARRANT);
}

#[test]
fn a_new_name_is_decided_on_its_name_then_its_directory_then_its_tree() {
    use warrant_common::{FileKey, S_IFREG, decision::decide_single};
    let (tree, dir, other_dir) = (3, FileKey { ino: 70, dev: 8 }, FileKey { ino: 71, dev: 8 });
    let file_key = |action, object: Option<FileKey>, name: &[u8]| {
        let mut key = TargetKey::new(0, action);
        key.set_file(tree, object.map(|o| (o.ino, o.dev)));
        key.set_file_name(name);
        key
    };
    let decide = |maps: &FakeMaps, key: TargetKey| {
        let mut scratch = Box::new(warrant_common::decision::SingleScratch::zeroed());
        scratch.messages[0].key = key;
        decide_single(maps, mode::ENFORCE, &mut scratch);
        (scratch.messages[0].verdict, scratch.messages[0].rule_index)
    };
    let new_name = |dir, name: &[u8]| file_key(action::FILE_CREATE, Some(FileKey::of_new_name(dir, S_IFREG)), name);
    // The tree allows creates; the directory inside it needs a warrant.
    let maps = FakeMaps::default().rule(file_key(action::FILE_CREATE, None, b""), tier::ALLOW, 1).rule(
        file_key(action::FILE_CREATE, Some(dir), b""),
        tier::APPROVE,
        2,
    );
    assert_eq!(decide(&maps, new_name(dir, b"x.conf")), (verdict::DENIED_NEEDS_WARRANT, 2));
    assert_eq!(decide(&maps, new_name(other_dir, b"x.conf")), (verdict::ALLOWED, 1));
    // A warrant names the one file.
    let maps = maps.warrant(new_name(dir, b"x.conf"), 1, true);
    assert_eq!(decide(&maps, new_name(dir, b"x.conf")), (verdict::ALLOWED_BY_WARRANT, 2));
    assert_eq!(decide(&maps, new_name(dir, b"y.conf")), (verdict::DENIED_NEEDS_WARRANT, 2));
    // Only a file action's name key has a directory: a chain name whose
    // bytes look like one is not cut down to a shorter name's rule.
    let mut chain = [b'a'; 40];
    chain[15] = 0x80;
    let long = TargetKey::firewall(0, action::NFT_CHAIN_ADD, INET, b"filter", &chain);
    let maps = FakeMaps::default().rule(key(0, action::NFT_CHAIN_ADD, INET, "filter", "aaaaaaaaaaaa"), tier::ALLOW, 1);
    assert_eq!(decide(&maps, long).0, verdict::DENIED);
}

#[test]
fn past_its_rate_an_allow_rule_falls_to_the_approve_tier() {
    let element = key(0, action::NFT_ELEMENT_ADD, INET, "filter", "blocklist");
    let mut maps = demo_maps();
    maps.rules.get_mut(&element).unwrap().rate_limit = 2;
    let verdicts = |maps: &FakeMaps| {
        let batch = Batch::default().begin().add_element("filter", "blocklist").end();
        let mut scratch = Box::new(BatchScratch::zeroed());
        let outcome = decide_batch(&SliceBuffer(&batch.0), &Nfnetlink, maps, 0, mode::ENFORCE, &mut scratch);
        (outcome, scratch.messages[0].tier, scratch.messages[0].verdict)
    };
    assert_eq!(verdicts(&maps), (BatchOutcome::Allow, tier::ALLOW, verdict::ALLOWED));
    assert_eq!(verdicts(&maps), (BatchOutcome::Allow, tier::ALLOW, verdict::ALLOWED));
    // The third needs a warrant...
    assert_eq!(verdicts(&maps), (BatchOutcome::Deny, tier::APPROVE, verdict::DENIED_NEEDS_WARRANT));
    // ...which covers it.
    let maps = maps.warrant(element, 1, true);
    assert_eq!(verdicts(&maps), (BatchOutcome::Allow, tier::APPROVE, verdict::ALLOWED_BY_WARRANT));
    assert_eq!(maps.uses_left(&element), 0);
}

/// Classifies the first message of `batch`.
fn classify_first(batch: &Batch) -> (Class, TargetKey) {
    let header = match netlink::read_header(&SliceBuffer(&batch.0), 0) {
        netlink::Step::Message { header, .. } => header,
        netlink::Step::End => panic!("no message"),
    };
    let mut k = TargetKey::zeroed();
    let class = netlink::classify(&SliceBuffer(&batch.0), 0, &header, &mut k, &mut Default::default());
    (class, k)
}

#[test]
fn ipset_writes_are_classified_by_command_and_set_and_reads_are_not_actions() {
    use warrant_common::netlink::ipset;
    let ipset = |cmd: u16, attrs: &[(u16, &[u8])]| Batch::default().message((6 << 8) | cmd, 0, 2, attrs);
    let protocol: &[u8] = &[7];
    // create: attribute 3 is the type name there, not a second set.
    let (class, k) =
        classify_first(&ipset(ipset::CMD_CREATE, &[(1, protocol), (2, &cstr("agentset")), (3, &cstr("hash:ip"))]));
    assert_eq!(class, Class::Action);
    assert_eq!((k.action, k.family), (action::IPSET_CREATE, 0));
    assert_eq!(warrant_common::name_bytes(&k.table), b"agentset");
    assert!(warrant_common::name_bytes(&k.object).is_empty());
    let (_, k) = classify_first(&ipset(ipset::CMD_ADD, &[(1, protocol), (2, &cstr("agentset"))]));
    assert_eq!(k.action, action::IPSET_ADD);
    let (_, k) = classify_first(&ipset(ipset::CMD_SWAP, &[(1, protocol), (2, &cstr("a")), (3, &cstr("b"))]));
    assert_eq!((k.action, warrant_common::name_bytes(&k.object)), (action::IPSET_SWAP, &b"b"[..]));
    // list, save, test, header, type, protocol: reads.
    for read in [1u16, 7, 8, 11, 12, 13] {
        assert_eq!(
            classify_first(&ipset(read, &[(1, protocol), (2, &cstr("agentset"))])).0,
            Class::NotAnAction,
            "command {read}"
        );
    }
    // Other nfnetlink subsystems stay coarse (conntrack = 1).
    let (class, k) = classify_first(&Batch::default().message(1 << 8, 0, 2, &[]));
    assert_eq!((class, k.action), (Class::Action, action::NFNETLINK_OTHER));
}
