//! Plain tier: rtnetlink targets in policy (interfaces, routes) read into
//! the very keys the kernel's classifier builds from the messages, and
//! the texts policy authors get wrong refused with a reason.

use warrant::policy::{HostNames, Named, Target, TargetError};
use warrant_common::{
    FileKey, NAME_LEN, TargetKey,
    action::{self, TargetKind},
    netlink::{self, Classifier, MessageNotes, SliceBuffer, Step},
    netlink_protocols::{Interfaces, OtherProtocol, protocol},
};

const HOST: u64 = 4026531840;
const BLUE: u64 = 4026532001;

/// The host's namespace, `blue` under /run/netns, and `planted`, which a
/// subject pinned.
struct Names;

impl HostNames for Names {
    fn netns(&self, name: &str) -> Option<u64> {
        match name {
            "host" => Some(HOST),
            "blue" => Some(BLUE),
            "planted" => Some(1),
            _ => None,
        }
    }
    fn file(&self, _: &str) -> Option<FileKey> {
        None
    }
    fn made_by_subject(&self, name: Named) -> Option<String> {
        matches!(name, Named::Netns("planted")).then(|| "agent".to_owned())
    }
}

/// The socket's namespace is `netns`; interface 7 is `veth-agent` there.
struct Socket {
    netns: u64,
}

impl Interfaces for Socket {
    fn netns(&self) -> u64 {
        self.netns
    }
    fn name_of(&self, index: u32, out: &mut [u8; NAME_LEN]) -> bool {
        if index != 7 {
            return false;
        }
        out[..10].copy_from_slice(b"veth-agent");
        true
    }
}

fn message(msg_type: u16, flags: u16, fixed: &[u8], attrs: &[(u16, &[u8])]) -> Vec<u8> {
    let mut out = vec![0u8; 16];
    out.extend_from_slice(fixed);
    for (kind, payload) in attrs {
        out.extend_from_slice(&((4 + payload.len()) as u16).to_ne_bytes());
        out.extend_from_slice(&kind.to_ne_bytes());
        out.extend_from_slice(payload);
        while !out.len().is_multiple_of(4) {
            out.push(0);
        }
    }
    let len = out.len() as u32;
    out[0..4].copy_from_slice(&len.to_ne_bytes());
    out[4..6].copy_from_slice(&msg_type.to_ne_bytes());
    out[6..8].copy_from_slice(&(flags | 1).to_ne_bytes());
    out
}

/// The key the kernel builds for the message, sent from namespace `netns`.
fn kernel_key(bytes: &[u8], netns: u64) -> TargetKey {
    let buf = SliceBuffer(bytes);
    let Step::Message { header, .. } = netlink::read_header(&buf, 0) else { panic!("no message") };
    let mut key = TargetKey::zeroed();
    let classifier = OtherProtocol { protocol: protocol::ROUTE, interfaces: Socket { netns } };
    classifier.classify(&buf, 0, &header, &mut key, &mut MessageNotes::default());
    key
}

/// The key a policy rule on `text` for the message's action makes.
fn rule_key(kernel: &TargetKey, text: &str) -> TargetKey {
    let target = Target::parse(action::target_kind(kernel.action), text, &[], &Names).expect(text);
    target.key(0, kernel.action)
}

/// An rtmsg: family, destination length, table.
fn rtmsg(family: u8, dst_len: u8, table: u8) -> [u8; 12] {
    [family, dst_len, 0, 0, table, 3, 0, 1, 0, 0, 0, 0]
}

#[test]
fn interface_rules_key_what_the_kernel_keys() {
    let mut index7 = [0u8; 16];
    index7[4] = 7;
    let by_index = kernel_key(&message(16, 0, &index7, &[]), HOST);
    assert_eq!(rule_key(&by_index, "veth-agent"), by_index);
    // The same name in another namespace is another interface.
    let elsewhere = kernel_key(&message(16, 0, &index7, &[]), BLUE);
    assert_ne!(rule_key(&elsewhere, "veth-agent"), elsewhere);
    assert_eq!(rule_key(&elsewhere, "veth-agent netns blue"), elsewhere);
    let by_name = kernel_key(&message(19, 0, &[0; 16], &[(3, b"eth0\0")]), HOST);
    assert_eq!(rule_key(&by_name, "eth0"), by_name);
    assert_eq!(action::target_kind(by_name.action), TargetKind::Interface);
}

#[test]
fn route_rules_key_what_the_kernel_keys() {
    let v4 = kernel_key(&message(24, 0x600, &rtmsg(2, 24, 254), &[(1, &[10, 62, 5, 0])]), HOST);
    assert_eq!(v4.action, action::NET_ROUTE_ADD);
    assert_eq!(rule_key(&v4, "main 10.62.5.0/24"), v4);
    assert_eq!(warrant::policy::render_target(&v4).split(" netns").next(), Some("main 10.62.5.0/24"));
    // RTA_TABLE wins over rtm_table, table 0 is main, and the last of an
    // attribute is the one the kernel keeps.
    let table =
        kernel_key(&message(24, 0x600, &rtmsg(2, 24, 254), &[(15, &100u32.to_ne_bytes()), (1, &[10, 62, 5, 0])]), HOST);
    assert_eq!(rule_key(&table, "100 10.62.5.0/24"), table);
    let zero = kernel_key(&message(25, 0, &rtmsg(2, 24, 0), &[(1, &[10, 9, 9, 0]), (1, &[10, 62, 5, 0])]), HOST);
    assert_eq!(zero.action, action::NET_ROUTE_DELETE);
    assert_eq!(rule_key(&zero, "main 10.62.5.0/24"), zero);
    // IPv6 keeps the prefix's bits only (the kernel clears the rest).
    let mut address = [0u8; 16];
    address[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
    address[15] = 1;
    let v6 = kernel_key(&message(24, 0x100, &rtmsg(10, 64, 254), &[(1, &address)]), HOST);
    assert_eq!(v6.action, action::NET_ROUTE_REPLACE);
    assert_eq!(rule_key(&v6, "main 2001:db8::/64"), v6);
    // Every prefix length keeps exactly its bits, IPv4's and IPv6's.
    for (family, width) in [(2u8, 4usize), (10, 16)] {
        for dst_len in 0..=(width * 8) as u8 {
            let all = vec![0xffu8; width];
            let key = kernel_key(&message(24, 0x600, &rtmsg(family, dst_len, 254), &[(1, &all)]), HOST);
            let kept: Vec<u8> = (0..16)
                .map(|i| {
                    let bits = (dst_len as i32 - 8 * i as i32).clamp(0, 8);
                    if i < width { !(0xffu16 >> bits) as u8 } else { 0 }
                })
                .collect();
            assert_eq!(key.object[4..20], kept[..], "family {family} /{dst_len}");
        }
    }
    // A default route has no RTA_DST.
    let default = kernel_key(&message(24, 0x600, &rtmsg(2, 0, 254), &[]), HOST);
    assert_eq!(rule_key(&default, "main 0.0.0.0/0"), default);
    // `TABLE *` is the level the kernel reaches after the exact prefix.
    let mut widened = v4;
    widened.clear_object();
    assert_eq!(rule_key(&v4, "main *"), widened);
    // Another namespace, another family or an impossible length: no
    // prefix a rule could name.
    assert_ne!(
        rule_key(&v4, "main 10.62.5.0/24"),
        kernel_key(&message(24, 0x600, &rtmsg(2, 24, 254), &[(1, &[10, 62, 5, 0])]), BLUE)
    );
    for unnamed in [
        message(24, 0x600, &rtmsg(28, 20, 254), &[(1, &[0, 0, 1, 0])]),
        message(24, 0x600, &rtmsg(2, 33, 254), &[(1, &[10, 62, 5, 0])]),
    ] {
        let key = kernel_key(&unnamed, HOST);
        assert_eq!((key.table, key.object), (TargetKey::zeroed().table, TargetKey::zeroed().object));
    }
}

#[test]
fn rtnetlink_targets_that_cannot_mean_one_thing_are_refused_with_a_reason() {
    let route = |text: &str| Target::parse(TargetKind::Route, text, &[], &Names);
    let interface = |text: &str| Target::parse(TargetKind::Interface, text, &[], &Names);
    let said = |r: Result<Target, TargetError>| r.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(said(route("main 10.62.5.1/24")).contains("the prefix is 10.62.5.0/24"));
    assert!(said(route("main 2001:db8::1/64")).contains("2001:db8::/64"));
    assert!(said(route("0 10.0.0.0/8")).contains("0 is main"));
    assert!(said(route("main 10.0.0.0/33")).contains("prefix length"));
    assert!(said(route("10.0.0.0/8")).contains("TABLE PREFIX"));
    assert!(said(route("main 10.0.0.0/8 netns nowhere")).contains("no network namespace"));
    assert!(said(route("main 10.0.0.0/8 netns planted")).contains("made by a subject"));
    assert!(route("local 127.0.0.0/8 netns blue").is_ok());
    assert!(route("*").is_ok_and(|t| !t.is_exact(TargetKind::Route)));
    assert!(route("main *").is_ok_and(|t| !t.is_exact(TargetKind::Route)));
    assert!(route("main 10.0.0.0/8").is_ok_and(|t| t.is_exact(TargetKind::Route)));
    for bad in ["eth%d", "a/b", "0123456789abcdef", "..", "two words", "eth0:1"] {
        assert!(
            said(interface(bad)).contains("not an interface name") || said(interface(bad)).contains("must be"),
            "{bad}"
        );
    }
    assert!(interface("eth0 netns blue").is_ok());
}

/// A file a subject wrote, at a path a policy protects.
struct WrittenConfig;

impl HostNames for WrittenConfig {
    fn netns(&self, _: &str) -> Option<u64> {
        None
    }
    fn file(&self, _: &str) -> Option<FileKey> {
        None
    }
    fn made_by_subject(&self, name: Named) -> Option<String> {
        matches!(name, Named::File("/etc/agent-made.conf")).then(|| "agent".to_owned())
    }
}

#[test]
fn a_protected_path_a_subject_wrote_stays_protected_and_is_reported() {
    let text = "version = 1\nexpires = \"2030-01-01T00:00:00Z\"\nprotect = [\"/etc/agent-made.conf\", \"/etc/other.conf\"]\n\
                [[profile]]\nname = \"agent\"\n";
    let policy = warrant::policy::Policy::parse(text).unwrap();
    let compiled = warrant::policy::compile_with(policy, &WrittenConfig).unwrap();
    assert!(compiled.policy.protect.iter().any(|p| p == "/etc/agent-made.conf"), "no longer protected");
    assert_eq!(compiled.protected_written.len(), 1, "{:?}", compiled.protected_written);
    let said = &compiled.protected_written[0];
    assert!(said.contains("/etc/agent-made.conf") && said.contains("profile agent") && said.contains("warrant unmark"));
}
