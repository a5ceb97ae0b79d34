//! Plain tier: policy parsing and compiling, envelope signing and each kind
//! of bad bundle, warrant checks. Every example policy in policies/ is loaded.

use std::path::PathBuf;

mod common;

use base64::Engine as _;
use ed25519_dalek::SigningKey;
use warrant::{
    approval::{self, Approval, ApprovalError},
    policy::{self, CompiledPolicy},
    trust::{self, Envelope, POLICY_PAYLOAD_TYPE, TrustError, WARRANT_PAYLOAD_TYPE},
    trust_root::{TRUST_ROOT_PAYLOAD_TYPE, TrustRoot},
};
use warrant_common::{action, tier};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn key(name: &str) -> SigningKey {
    trust::read_signing_key(&repo().join(format!("policies/demo-keys/{name}.key"))).unwrap()
}

fn demo_policy() -> CompiledPolicy {
    let text = std::fs::read_to_string(repo().join("policies/demo.toml")).unwrap();
    policy::compile(policy::Policy::parse(&text).unwrap()).unwrap()
}

#[test]
fn every_example_policy_loads() {
    let mut count = 0;
    for entry in std::fs::read_dir(repo().join("policies")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let text = std::fs::read_to_string(&path).unwrap();
            let compiled = policy::Policy::parse(&text)
                .and_then(policy::compile)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert!(!compiled.rules.is_empty(), "{} has no rules", path.display());
            count += 1;
        }
    }
    assert!(count >= 1);
}

#[test]
fn demo_policy_compiles_to_the_expected_tiers() {
    let compiled = demo_policy();
    let target =
        policy::Target::parse(action::TargetKind::Firewall, "inet filter input", &[], &policy::ThisHost).unwrap();
    let agent = compiled.profile_ids["agent"];
    let approve = compiled.rules[&target.key(agent, action::NFT_RULE_ADD)];
    assert_eq!(approve.tier, tier::APPROVE);
    let blocklist =
        policy::Target::parse(action::TargetKind::Firewall, "inet filter blocklist", &[], &policy::ThisHost).unwrap();
    assert_eq!(compiled.rules[&blocklist.key(agent, action::NFT_ELEMENT_ADD)].tier, tier::ALLOW);
    assert_eq!(compiled.rules[&blocklist.key(agent, action::NFT_ELEMENT_DELETE)].tier, tier::ALLOW);
}

#[test]
fn strictest_tier_wins_for_one_target() {
    let text = r#"
version = 1
expires = "2030-01-01T00:00:00Z"
[[profile]]
name = "a"
[[profile.rule]]
action = "nft.rule.add"
target = "inet filter input"
tier = "allow"
[[profile.rule]]
action = "nft.rule.*"
target = "inet filter input"
tier = "deny"
"#;
    let compiled = policy::compile(policy::Policy::parse(text).unwrap()).unwrap();
    let k = policy::Target::parse(action::TargetKind::Firewall, "inet filter input", &[], &policy::ThisHost)
        .unwrap()
        .key(compiled.profile_ids["a"], action::NFT_RULE_ADD);
    assert_eq!(compiled.rules[&k].tier, tier::DENY);
}

#[test]
fn bad_policies_are_refused_with_a_reason() {
    let cases = [
        ("version = \"x\"", "TOML"),
        ("version = 1\nexpires = \"soon\"\n[[profile]]\nname = \"a\"", "expires"),
        (
            "version = 1\nexpires = \"2030-01-01T00:00:00Z\"\n[[profile]]\nname = \"a\"\n[[profile.rule]]\naction = \"nft.bogus\"\ntarget = \"inet filter\"\ntier = \"allow\"",
            "no known action",
        ),
        (
            "version = 1\nexpires = \"2030-01-01T00:00:00Z\"\n[[profile]]\nname = \"a\"\n[[profile.rule]]\naction = \"nft.rule.add\"\ntarget = \"* filter input\"\ntier = \"allow\"",
            "trailing",
        ),
        (
            "version = 1\nexpires = \"2030-01-01T00:00:00Z\"\n[[profile]]\nname = \"a\"\n[[profile.rule]]\naction = \"nft.rule.add\"\ntarget = \"inet filter input\"\ntier = \"maybe\"",
            "TOML",
        ),
        (
            "version = 1\nexpires = \"2030-01-01T00:00:00Z\"\n[[profile]]\nname = \"a\"\n[[profile]]\nname = \"a\"",
            "twice",
        ),
        (
            "version = 1\nexpires = \"2030-01-01T00:00:00Z\"\n[[responsible]]\nname = \"x\"\nrole = \"r\"\nkey = \"nope\"\nmay_approve = []\n[[profile]]\nname = \"a\"",
            "public key",
        ),
    ];
    for (text, expected) in cases {
        let error = policy::Policy::parse(text).and_then(policy::compile).unwrap_err().to_string();
        assert!(error.contains(expected), "{text:?} gave {error:?}, expected it to mention {expected:?}");
        assert!(!error.contains('\n'), "one line: {error:?}");
    }
}

fn signed_bundle(keys: &[SigningKey]) -> Envelope {
    let text = std::fs::read(repo().join("policies/demo.toml")).unwrap();
    Envelope::sign(POLICY_PAYLOAD_TYPE, &text, keys)
}

#[test]
fn signed_bundle_verifies_with_the_trusted_key() {
    let team = key("security-team");
    let bundle = Envelope::parse(&signed_bundle(std::slice::from_ref(&team)).to_json()).unwrap();
    let (payload, signers) = bundle.verify(POLICY_PAYLOAD_TYPE, &[public(&team)], 1).unwrap();
    assert_eq!(signers, [public(&team)]);
    assert!(String::from_utf8(payload).unwrap().contains("[[profile]]"));
}

#[test]
fn each_kind_of_bad_bundle_is_refused() {
    let team = key("security-team");
    let trusted = [public(&team)];
    // Unsigned.
    let mut unsigned = signed_bundle(std::slice::from_ref(&team));
    unsigned.signatures.clear();
    assert!(matches!(unsigned.verify(POLICY_PAYLOAD_TYPE, &trusted, 1), Err(TrustError::Unsigned)));
    // Tampered payload.
    let mut tampered = signed_bundle(std::slice::from_ref(&team));
    let mut text = base64::engine::general_purpose::STANDARD.decode(&tampered.payload).unwrap();
    text.extend_from_slice(b"\n# edited\n");
    tampered.payload = base64::engine::general_purpose::STANDARD.encode(text);
    assert!(matches!(tampered.verify(POLICY_PAYLOAD_TYPE, &trusted, 1), Err(TrustError::NotEnoughSignatures { .. })));
    // Signed by a key the host does not trust.
    let wrong = signed_bundle(&[key("mallory")]);
    assert!(matches!(wrong.verify(POLICY_PAYLOAD_TYPE, &trusted, 1), Err(TrustError::NotEnoughSignatures { .. })));
    // Wrong payload type.
    let text = std::fs::read(repo().join("policies/demo.toml")).unwrap();
    let typed = Envelope::sign(WARRANT_PAYLOAD_TYPE, &text, std::slice::from_ref(&team));
    assert!(matches!(typed.verify(POLICY_PAYLOAD_TYPE, &trusted, 1), Err(TrustError::WrongPayloadType { .. })));
    // Truncated signature.
    let mut truncated = signed_bundle(std::slice::from_ref(&team));
    truncated.signatures[0].sig.truncate(20);
    assert!(matches!(truncated.verify(POLICY_PAYLOAD_TYPE, &trusted, 1), Err(TrustError::MalformedSignature { .. })));
    // Not an envelope at all.
    assert!(matches!(Envelope::parse("{\"payload\": 1}"), Err(TrustError::BadEnvelope(_))));
    // A payload that is not base64.
    let mut garbled = signed_bundle(std::slice::from_ref(&team));
    garbled.payload = "%%% not base64 %%%".into();
    let error = garbled.verify(POLICY_PAYLOAD_TYPE, &trusted, 1).unwrap_err();
    assert!(matches!(error, TrustError::BadEnvelope(_)) && !error.to_string().contains('\n'), "{error}");
    // The same key twice does not make a threshold of two.
    let doubled = signed_bundle(&[team.clone(), team.clone()]);
    assert!(matches!(
        doubled.verify(POLICY_PAYLOAD_TYPE, &trusted, 2),
        Err(TrustError::NotEnoughSignatures { needed: 2, found: 1 })
    ));
}

fn public(key: &SigningKey) -> warrant::keys::PublicKey {
    key.verifying_key().into()
}

fn approval_for(approver: &str, approver_key: &SigningKey) -> Approval {
    common::approval(approver, &public(approver_key))
}

#[test]
fn warrant_from_the_named_ri_is_accepted() {
    let alice = key("alice");
    let envelope = approval_for("alice", &alice).seal(&alice);
    let checked = approval::check(&envelope, &demo_policy(), "host-a", 1_000).unwrap();
    let agent = demo_policy().profile_ids["agent"];
    let input =
        policy::Target::parse(action::TargetKind::Firewall, "inet filter input", &[], &policy::ThisHost).unwrap();
    assert_eq!(checked.key, input.key(agent, action::NFT_RULE_ADD));
}

#[test]
fn warrants_are_refused_for_each_reason() {
    let alice = key("alice");
    let policy = demo_policy();
    let check = |a: Approval, k: &SigningKey, host: &str, now: u64| approval::check(&a.seal(k), &policy, host, now);
    let mallory = key("mallory");
    assert!(matches!(
        check(approval_for("mallory", &mallory), &mallory, "host-a", 1),
        Err(ApprovalError::NotResponsible { .. })
    ));
    assert!(matches!(check(approval_for("alice", &alice), &alice, "host-b", 1), Err(ApprovalError::WrongHost { .. })));
    assert!(matches!(
        check(approval_for("alice", &alice), &alice, "host-a", 2_000_000_001),
        Err(ApprovalError::Expired { .. })
    ));
    let mut other_profile = approval_for("alice", &alice);
    other_profile.profile = "nobody".into();
    assert!(matches!(check(other_profile, &alice, "host-a", 1), Err(ApprovalError::UnknownProfile { .. })));
    let mut out_of_scope = approval_for("alice", &alice);
    out_of_scope.action = "nft.table.delete".into();
    assert!(matches!(check(out_of_scope, &alice, "host-a", 1), Err(ApprovalError::OutOfScope { .. })));
    let mut wildcard = approval_for("alice", &alice);
    wildcard.target = "inet * *".into();
    assert!(matches!(check(wildcard, &alice, "host-a", 1), Err(ApprovalError::BadTarget(..))));
    let mut self_approved = approval_for("alice", &alice);
    self_approved.requester = Some("alice".into());
    assert!(matches!(check(self_approved, &alice, "host-a", 1), Err(ApprovalError::SelfApproved { .. })));
    let mut no_uses = approval_for("alice", &alice);
    no_uses.max_uses = 0;
    assert!(matches!(check(no_uses, &alice, "host-a", 1), Err(ApprovalError::NoUses { .. })));
    // A warrant for later than the allowed clock skew: one clock is wrong.
    let mut ahead = approval_for("alice", &alice);
    ahead.not_before = 1_000 + approval::MAX_CLOCK_SKEW_SECS + 1;
    assert!(matches!(check(ahead.clone(), &alice, "host-a", 1_000), Err(ApprovalError::ClockSkew { .. })));
    ahead.not_before = 1_000 + approval::MAX_CLOCK_SKEW_SECS;
    assert!(check(ahead, &alice, "host-a", 1_000).is_ok(), "skew within the margin is tolerated");
    // A content digest binds rules only, and must be one.
    let mut bound = approval_for("alice", &alice);
    bound.content_digest = Some("00000000deadbeef".into());
    assert_eq!(check(bound.clone(), &alice, "host-a", 1).unwrap().content_digest, 0xdead_beef);
    for bad in ["deadbeef", "0000000000000000", "ffffffffffffffff", "zz000000deadbeef"] {
        bound.content_digest = Some(bad.into());
        assert!(matches!(check(bound.clone(), &alice, "host-a", 1), Err(ApprovalError::BadTarget(..))), "{bad}");
    }
}

#[test]
fn keygen_writes_a_private_key_readable_only_by_its_owner() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = std::env::temp_dir().join(format!("warrant-keygen-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("k");
    let public = trust::generate_key_pair(&path).unwrap();
    assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    assert_eq!(trust::read_public_key(&trust::public_path_of(&path)).unwrap(), public);
    assert!(trust::generate_key_pair(&path).is_err(), "never overwrites a key");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn audit_chain_detects_edits_deletions_and_reordering_and_survives_a_torn_tail() {
    use warrant::audit::{self, AuditError, AuditLog};
    let dir = std::env::temp_dir().join(format!("warrant-audit-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let path = dir.join("audit.jsonl");
    let mut log = AuditLog::open(&path, audit::DEFAULT_MAX_BYTES).unwrap();
    for i in 0..4 {
        let mut record = serde_json::Map::new();
        record.insert("kind".into(), "test".into());
        record.insert("n".into(), i.into());
        log.append(record).unwrap();
    }
    drop(log);
    assert_eq!(audit::verify(&path).unwrap().records, 4);
    let original = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = original.lines().collect();
    let broken_at = |text: String| {
        std::fs::write(&path, text).unwrap();
        match audit::verify(&path) {
            Err(AuditError::Broken { line, .. }) => line,
            other => panic!("tampering not detected: {:?}", other.map(|s| s.records)),
        }
    };
    assert_eq!(broken_at(original.replace("\"n\":2", "\"n\":7")), 3, "edit");
    assert_eq!(broken_at(format!("{}\n{}\n{}\n", lines[0], lines[2], lines[3])), 2, "deletion");
    assert_eq!(broken_at(format!("{}\n{}\n{}\n{}\n", lines[0], lines[2], lines[1], lines[3])), 2, "reorder");
    // A crash mid-write: the partial line is cut and the cut is recorded.
    std::fs::write(&path, format!("{original}{{\"kind\":\"tor")).unwrap();
    let mut log = AuditLog::open(&path, audit::DEFAULT_MAX_BYTES).unwrap();
    log.append(serde_json::Map::new()).unwrap();
    drop(log);
    let summary = audit::verify(&path).unwrap();
    assert_eq!(summary.records, 6);
    assert!(std::fs::read_to_string(&path).unwrap().contains("audit.torn_tail"));
    std::fs::remove_dir_all(dir).unwrap();
}

fn append_n(log: &mut warrant::audit::AuditLog, n: usize) {
    for i in 0..n {
        let mut record = serde_json::Map::new();
        record.insert("kind".into(), "test".into());
        record.insert("n".into(), i.into());
        record.insert("padding".into(), "x".repeat(200).into());
        log.append(record).unwrap();
    }
}

#[test]
fn a_group_commit_writes_each_record_at_once_and_syncs_them_together() {
    use warrant::audit::{self, AuditLog};
    let dir = std::env::temp_dir().join(format!("warrant-audit-group-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let path = dir.join("audit.jsonl");
    let mut log = AuditLog::open(&path, 4096).unwrap();
    log.defer_sync();
    // Across rotations (4 KiB files): each rotation syncs the file it sets aside.
    append_n(&mut log, 30);
    assert!(log.unsynced() > 0 && log.unsynced() < 30, "rotation did not sync: {}", log.unsynced());
    // Written already (a daemon killed now loses none): the chain reads whole.
    assert_eq!(audit::verify_log(&path, None).unwrap().0.records, 30);
    log.sync().unwrap();
    assert_eq!(log.unsynced(), 0);
    // After the group, each record is synced on its own again.
    append_n(&mut log, 1);
    assert_eq!(log.unsynced(), 0);
    drop(log);
    assert_eq!(audit::verify_log(&path, None).unwrap().0.records, 31);
    // A record half written (the daemon writing it now) is not counted, nor a break.
    let mut file = std::fs::OpenOptions::new().append(true).open(&path).unwrap();
    std::io::Write::write_all(&mut file, br#"{"kind":"test","n":"#).unwrap();
    let summary = audit::verify_log(&path, None).unwrap().0;
    assert_eq!((summary.records, summary.unfinished_tail), (31, 19));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn rotation_keeps_the_chain_and_checkpoints_catch_truncation_and_rewrites() {
    use warrant::audit::{self, AuditError, AuditLog};
    let dir = std::env::temp_dir().join(format!("warrant-audit-rotation-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let path = dir.join("audit.jsonl");
    let host = key("security-team");
    let other = key("mallory");
    // 4 KiB files: 40 records of ~280 bytes make several rotations.
    let mut log = AuditLog::open(&path, 4096).unwrap();
    append_n(&mut log, 40);
    log.checkpoint(&host, "test-host/warrant-audit").unwrap();
    append_n(&mut log, 3);
    drop(log);
    let files = audit::chain_files(&path);
    assert!(files.len() >= 3, "no rotation happened: {files:?}");
    let (summary, checkpoint) = audit::verify_log(&path, Some(&host.verifying_key())).unwrap();
    assert_eq!(summary.records, 43);
    assert_eq!(checkpoint.unwrap().size, 40);
    // Reopened, the chain goes on where it stopped.
    let mut log = AuditLog::open(&path, 4096).unwrap();
    assert_eq!(log.head().0, 43);
    append_n(&mut log, 1);
    drop(log);
    assert_eq!(audit::verify_log(&path, None).unwrap().0.records, 44);

    let current = std::fs::read_to_string(&path).unwrap();
    let expect = |what: &str, check: &dyn Fn(&AuditError) -> bool| {
        let error = audit::verify_log(&path, Some(&host.verifying_key())).map(|_| ()).expect_err(what);
        assert!(check(&error) && !error.to_string().contains('\n'), "{what}: {error}");
    };
    // Truncation to before the checkpoint, with the chain still whole.
    std::fs::write(&path, "").unwrap();
    expect(
        "the current file emptied",
        &|e| matches!(e, AuditError::Checkpoint { problem, .. } if problem.contains("truncated")),
    );
    std::fs::write(&path, &current).unwrap();
    // A rotated file deleted: the next one does not follow.
    let first_rotated = files[0].clone();
    let saved = std::fs::read(&first_rotated).unwrap();
    std::fs::remove_file(&first_rotated).unwrap();
    expect("a rotated file deleted", &|e| matches!(e, AuditError::Broken { line: 1, .. }));
    std::fs::write(&first_rotated, &saved).unwrap();
    // One byte flipped in a rotated file: named by its record number.
    let flipped = String::from_utf8(saved.clone()).unwrap().replacen("\"n\":2,", "\"n\":9,", 1);
    std::fs::write(&first_rotated, flipped).unwrap();
    expect(
        "a byte flipped",
        &|e| matches!(e, AuditError::Broken { line: 3, problem, .. } if problem.contains("edited")),
    );
    std::fs::write(&first_rotated, &saved).unwrap();
    // A checkpoint signed by another key, or edited, is no checkpoint.
    let note_path = audit::checkpoint_path(&path);
    let note = std::fs::read_to_string(&note_path).unwrap();
    std::fs::write(&note_path, note.replacen("\n40\n", "\n44\n", 1)).unwrap();
    expect(
        "an edited checkpoint",
        &|e| matches!(e, AuditError::Checkpoint { problem, .. } if problem.contains("signature")),
    );
    let log = AuditLog::open(&path, 4096).unwrap();
    log.checkpoint(&other, "test-host/warrant-audit").unwrap();
    drop(log);
    expect("another key's checkpoint", &|e| matches!(e, AuditError::Checkpoint { .. }));
    std::fs::remove_dir_all(dir).unwrap();
}

/// The compiled rules, as the kernel's decision function reads them.
struct CompiledRules<'a>(&'a std::collections::HashMap<warrant_common::TargetKey, warrant_common::RuleEntry>);

impl warrant_common::decision::PolicyView for CompiledRules<'_> {
    fn rule(&self, key: &warrant_common::TargetKey) -> Option<warrant_common::RuleEntry> {
        self.0.get(key).copied()
    }
    fn usable_warrant(&self, _: &warrant_common::TargetKey, _: u64) -> Option<u32> {
        None
    }
    fn consume_warrant(&self, _: &warrant_common::TargetKey, _: u64) -> bool {
        false
    }
    fn refund_warrant(&self, _: &warrant_common::TargetKey) {}
    fn take_rate(&self, _: &warrant_common::RuleEntry) -> bool {
        true
    }
}

/// The verdict the kernel reaches for one action on namespace `inode` (0: none).
fn netns_verdict(compiled: &CompiledPolicy, action_id: u32, inode: u64) -> (u32, u32) {
    use warrant_common::decision::{SingleScratch, decide_single};
    let mut scratch = SingleScratch::zeroed();
    // Exactly the key agent-ebpf's decide_action builds.
    let key = &mut scratch.messages[0].key;
    *key = warrant_common::TargetKey::new(compiled.profile_ids["p"], action_id);
    key.set_netns(inode);
    decide_single(&CompiledRules(&compiled.rules), warrant_common::mode::ENFORCE, &mut scratch);
    (scratch.messages[0].tier, scratch.messages[0].verdict)
}

#[test]
fn network_namespace_rules_cover_only_the_namespace_they_name() {
    use warrant_common::verdict;
    let text = r#"
version = 1
expires = "2030-01-01T00:00:00Z"
[[profile]]
name = "p"
[[profile.rule]]
action = "netns.enter"
target = "blue"
tier = "allow"
[[profile.rule]]
action = "netns.enter"
target = "net:[300]"
tier = "deny"
[[profile.rule]]
action = "netns.enter"
target = "*"
tier = "approve"
[[profile.rule]]
action = "netns.create"
target = "*"
tier = "approve"
[[profile.rule]]
action = "netns.enter"
target = "absent"
tier = "allow"
"#;
    struct Names;
    impl policy::HostNames for Names {
        fn netns(&self, name: &str) -> Option<u64> {
            (name == "blue").then_some(100)
        }
        fn file(&self, _: &str) -> Option<warrant_common::FileKey> {
            None
        }
    }
    let compiled = policy::compile_with(policy::Policy::parse(text).unwrap(), &Names).unwrap();
    assert_eq!(netns_verdict(&compiled, action::NETNS_ENTER, 100), (tier::ALLOW, verdict::ALLOWED));
    assert_eq!(netns_verdict(&compiled, action::NETNS_ENTER, 200), (tier::APPROVE, verdict::DENIED_NEEDS_WARRANT));
    assert_eq!(netns_verdict(&compiled, action::NETNS_ENTER, 300), (tier::DENY, verdict::DENIED));
    assert_eq!(netns_verdict(&compiled, action::NETNS_CREATE, 0), (tier::APPROVE, verdict::DENIED_NEEDS_WARRANT));
    // A name this host does not have is reported, and covers nothing.
    assert_eq!(compiled.unresolved.len(), 1, "{:?}", compiled.unresolved);
    assert!(compiled.unresolved[0].contains("absent"));
    let key = |a| policy::render_target(&policy::Target::Namespace(Some(200)).key(0, a));
    assert_eq!(key(action::NETNS_ENTER), "net:[200]");
}

#[test]
fn namespace_targets_are_checked_for_their_kind() {
    let policy_with = |action: &str, target: &str| {
        format!(
            "version = 1\nexpires = \"2030-01-01T00:00:00Z\"\n[[profile]]\nname = \"p\"\n[[profile.rule]]\naction = \"{action}\"\ntarget = \"{target}\"\ntier = \"allow\"\n"
        )
    };
    for (action, target, says) in [
        ("netns.create", "blue", "has no target"),
        ("netns.*", "blue", "mixes actions"),
        ("iptables.replace", "ip filter", "family alone"),
    ] {
        let err =
            policy::Policy::parse(&policy_with(action, target)).and_then(policy::compile).unwrap_err().to_string();
        assert!(err.contains(says), "{action} {target}: {err}");
    }
    // `*` is every target of every kind the actions take.
    for action in ["netns.*", "ipc.*"] {
        let compiled = policy::Policy::parse(&policy_with(action, "*")).and_then(policy::compile);
        assert!(compiled.is_ok(), "{action} *: {:?}", compiled.err());
    }
}

#[test]
fn profile_ids_follow_names_not_positions() {
    let text = |order: [&str; 2]| {
        format!(
            "version = 1\nexpires = \"2030-01-01T00:00:00Z\"\n[[profile]]\nname = \"{}\"\n[[profile]]\nname = \"{}\"\n",
            order[0], order[1]
        )
    };
    let one = policy::compile(policy::Policy::parse(&text(["a", "b"])).unwrap()).unwrap();
    let other = policy::compile(policy::Policy::parse(&text(["b", "a"])).unwrap()).unwrap();
    assert_eq!(one.profile_ids, other.profile_ids, "reordering profiles must not move running subjects");
}

#[test]
fn rates_parse_and_only_allow_rules_take_one() {
    assert_eq!(policy::parse_rate("10/minute"), Ok((10, 60)));
    assert_eq!(policy::parse_rate("1/hour"), Ok((1, 3600)));
    for bad in ["0/minute", "10", "10/fortnight", "x/second"] {
        assert!(policy::parse_rate(bad).is_err(), "{bad}");
    }
    let text = "version = 1\nexpires = \"2030-01-01T00:00:00Z\"\n[[profile]]\nname = \"p\"\n[[profile.rule]]\naction = \"nft.rule.add\"\ntarget = \"inet filter input\"\ntier = \"approve\"\nrate = \"1/minute\"\n";
    let err = policy::Policy::parse(text).and_then(policy::compile).unwrap_err().to_string();
    assert!(err.contains("only `allow` rules take a rate"), "{err}");
    let compiled = demo_policy();
    let ops_bot = compiled.profile_ids["ops-bot"];
    let blocklist =
        policy::Target::parse(action::TargetKind::Firewall, "inet filter blocklist", &[], &policy::ThisHost).unwrap();
    let rule = compiled.rules[&blocklist.key(ops_bot, action::NFT_ELEMENT_ADD)];
    assert_eq!((rule.rate_limit, rule.rate_window_secs), (3, 60));
}

#[test]
fn proc_paths_hash_one_component_at_a_time_as_the_kernel_does() {
    use std::path::Path;
    use warrant::protect::proc_path_hash;
    use warrant_common::proc_path::{ROOT, component, join};
    // The kernel joins from the procfs root down, one dentry name at a time.
    let by_hand = ["sys", "net", "ipv4", "ip_forward"].iter().fold(ROOT, |h, c| join(h, component(c.as_bytes())));
    assert_eq!(proc_path_hash(Path::new("/proc/sys/net/ipv4/ip_forward")), Some(by_hand));
    assert_ne!(proc_path_hash(Path::new("/proc/sys/net/ipv6/ip_forward")), Some(by_hand));
    // Order matters: the tree and a file below it differ, and so do swapped names.
    assert_ne!(proc_path_hash(Path::new("/proc/sys/net")), proc_path_hash(Path::new("/proc/net/sys")));
    assert_eq!(proc_path_hash(Path::new("/etc/sysctl.d")), None);
    // A name is hashed up to its NUL, as the kernel reads it.
    assert_eq!(component(b"net\0junk"), component(b"net"));
}

#[test]
fn two_person_actions_need_two_distinct_responsible_individuals() {
    let policy = demo_policy();
    let (alice, bob, mallory) = (key("alice"), key("bob"), key("mallory"));
    let mut approval = approval_for("alice", &alice);
    approval.action = "nft.chain.add".into();
    approval.target = "inet filter newchain".into();
    // Alice alone is not enough for a two-person action...
    let mut envelope = approval.seal(&alice);
    let refused = approval::check(&envelope, &policy, "host-a", 1_000).unwrap_err();
    assert!(matches!(refused, ApprovalError::NeedsTwo { found: 1, .. }), "{refused}");
    // ...nor her signature twice, nor a key the policy does not name...
    envelope.add_signature(&alice).unwrap();
    envelope.add_signature(&mallory).unwrap();
    assert!(matches!(
        approval::check(&envelope, &policy, "host-a", 1_000),
        Err(ApprovalError::NeedsTwo { found: 1, .. })
    ));
    // ...but Bob co-signing makes two.
    envelope.add_signature(&bob).unwrap();
    let checked = approval::check(&envelope, &policy, "host-a", 1_000).unwrap();
    assert_eq!(checked.approvers, ["alice", "bob"]);
    // The requester's own signature never counts.
    approval.requester = Some("bob".into());
    let mut own = approval.seal(&alice);
    own.add_signature(&bob).unwrap();
    assert!(matches!(approval::check(&own, &policy, "host-a", 1_000), Err(ApprovalError::NeedsTwo { found: 1, .. })));
    // Other actions still need one.
    let single = approval_for("alice", &alice).seal(&alice);
    assert_eq!(approval::check(&single, &policy, "host-a", 1_000).unwrap().approvers, ["alice"]);
}

#[test]
fn a_bundle_needs_k_distinct_keys_of_n_trusted() {
    // Three trusted keys, threshold two.
    let (team, alice, bob) = (key("security-team"), key("alice"), key("bob"));
    let trusted = [public(&team), public(&alice), public(&bob)];
    let two = signed_bundle(&[team.clone(), bob.clone()]);
    let (_, signers) = two.verify(POLICY_PAYLOAD_TYPE, &trusted, 2).unwrap();
    assert_eq!(signers, [public(&team), public(&bob)]);
    // One trusted signature and an untrusted one are not two.
    let with_stranger = signed_bundle(&[team.clone(), key("mallory")]);
    assert!(matches!(
        with_stranger.verify(POLICY_PAYLOAD_TYPE, &trusted, 2),
        Err(TrustError::NotEnoughSignatures { needed: 2, found: 1 })
    ));
    // All three, in any order, satisfy a threshold of three.
    let all = signed_bundle(&[bob.clone(), alice.clone(), team.clone()]);
    assert_eq!(all.verify(POLICY_PAYLOAD_TYPE, &trusted, 3).unwrap().1.len(), 3);
}

fn root_text(version: u64, threshold: usize, keys: &[&SigningKey]) -> String {
    let keys: Vec<String> =
        keys.iter().map(|k| format!("{:?}", trust::encode_public_key(&k.verifying_key()))).collect();
    format!("version = {version}\nthreshold = {threshold}\nkeys = [{}]\n", keys.join(", "))
}

#[test]
fn the_trust_root_rotates_only_when_a_threshold_of_the_keys_in_force_signs() {
    let (team, alice, bob, mallory) = (key("security-team"), key("alice"), key("bob"), key("mallory"));
    // In force: team, alice and bob, two of them to sign.
    let current = TrustRoot::parse(&root_text(1, 2, &[&team, &alice, &bob])).unwrap();
    let next_text = root_text(2, 1, &[&mallory]);
    let sign = |text: &str, keys: &[SigningKey]| Envelope::sign(TRUST_ROOT_PAYLOAD_TYPE, text.as_bytes(), keys);

    let rotated = current.rotate(&sign(&next_text, &[team.clone(), bob.clone()])).unwrap();
    assert_eq!((rotated.version, rotated.threshold), (2, 1));
    assert_eq!(rotated.keys, [public(&mallory)]);
    // Bundles now need the new key, and the old ones no longer count.
    let bundle = signed_bundle(std::slice::from_ref(&mallory));
    assert!(bundle.verify(POLICY_PAYLOAD_TYPE, &rotated.keys, rotated.threshold).is_ok());
    assert!(
        signed_bundle(std::slice::from_ref(&team))
            .verify(POLICY_PAYLOAD_TYPE, &rotated.keys, rotated.threshold)
            .is_err()
    );

    let refusals = [
        ("one key of a threshold of two", sign(&next_text, std::slice::from_ref(&team))),
        ("the same key twice", sign(&next_text, &[team.clone(), team.clone()])),
        ("the new keys signing themselves in", sign(&next_text, std::slice::from_ref(&mallory))),
        ("an older version", sign(&root_text(1, 1, &[&mallory]), &[team.clone(), bob.clone()])),
        ("a threshold above its keys", sign(&root_text(3, 2, &[&mallory]), &[team.clone(), bob.clone()])),
        ("a threshold of zero", sign(&root_text(3, 0, &[&mallory]), &[team.clone(), bob.clone()])),
        ("a key listed twice", sign(&root_text(3, 1, &[&mallory, &mallory]), &[team.clone(), bob.clone()])),
        ("not a trust root", sign("version = 3\nkeys = 7\n", &[team.clone(), bob.clone()])),
        ("a policy bundle", signed_bundle(&[team.clone(), bob.clone()])),
    ];
    for (what, envelope) in refusals {
        let error = current.rotate(&envelope).expect_err(what).to_string();
        assert!(error.starts_with("trust root refused:") && !error.contains('\n'), "{what}: {error}");
    }
}
