//! Plain tier: what every policy guards without a line (persistence and
//! usermode-helper surfaces), and the policy side of the netlink actions
//! (protocol targets, `#handle` names, records).

use warrant::{
    guarded,
    policy::{self, Target},
};
use warrant_common::{
    FAMILY_ANY, TargetKey, action, action::TargetKind, netlink_protocols::GENL_COMMAND_PRESENT, tier,
};

const HEAD: &str = "version = 1\nexpires = \"2030-01-01T00:00:00Z\"\n";

fn compile(text: &str) -> Result<policy::CompiledPolicy, policy::PolicyError> {
    policy::Policy::parse(&format!("{HEAD}{text}")).and_then(policy::compile)
}

/// The tier the policy gives `action_id` on the whole tree `tree` for profile `p`.
fn tree_tier(compiled: &policy::CompiledPolicy, tree: &str, action_id: u32) -> Option<u32> {
    let target = Target::File { tree: Some(warrant::protect::tree_id(tree)), inode: None, name: None };
    compiled.rules.get(&target.key(compiled.profile_ids["p"], action_id)).map(|r| r.tier)
}

#[test]
fn guarded_surfaces_are_denied_even_where_a_wildcard_allows_files() {
    // /etc/pam.d and /proc/sys/kernel/core_pattern are on every Debian host.
    let compiled = compile(
        "protect = [\"/etc/nftables.conf\"]\n[[profile]]\nname = \"p\"\n\
         [[profile.rule]]\naction = \"file.*\"\ntarget = \"*\"\ntier = \"allow\"\n",
    )
    .unwrap();
    for tree in ["/etc/pam.d", "/proc/sys/kernel/core_pattern"] {
        assert!(compiled.policy.protect.iter().any(|t| t == tree), "{tree} is not protected");
        for action_id in [action::FILE_WRITE, action::FILE_CREATE, action::FILE_RENAME] {
            assert_eq!(tree_tier(&compiled, tree, action_id), Some(tier::DENY), "{tree}");
        }
    }
    assert!(guarded::allowed(&compiled).is_empty(), "a wildcard is not a rule naming a guarded tree");
    // A place is listed once however /lib and /usr/lib relate, whether it
    // is there or not (a missing one is guarded by its name).
    let places: Vec<_> = compiled.policy.protect.iter().filter_map(|t| guarded::place_of(t)).collect();
    let distinct: std::collections::HashSet<_> = places.iter().collect();
    assert_eq!(distinct.len(), places.len(), "{:?}", compiled.policy.protect);
    for tree in guarded::GUARDED {
        assert!(compiled.policy.protect.iter().any(|t| guarded::place_of(t) == guarded::place_of(tree)), "{tree}");
    }
}

#[test]
fn a_rule_naming_a_guarded_tree_takes_it_over_and_allow_warns() {
    let approve = compile(
        "[[profile]]\nname = \"p\"\n\
         [[profile.rule]]\naction = \"file.*\"\ntarget = \"/etc/pam.d\"\ntier = \"approve\"\n",
    )
    .unwrap();
    assert_eq!(tree_tier(&approve, "/etc/pam.d", action::FILE_WRITE), Some(tier::APPROVE));
    assert_eq!(tree_tier(&approve, "/etc/profile.d", action::FILE_WRITE), Some(tier::DENY));
    assert!(guarded::allowed(&approve).is_empty());
    let allow = compile(
        "[[profile]]\nname = \"p\"\n\
         [[profile.rule]]\naction = \"file.write\"\ntarget = \"/etc/pam.d\"\ntier = \"allow\"\n",
    )
    .unwrap();
    let warnings = guarded::allowed(&allow);
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("/etc/pam.d"), "{warnings:?}");
}

#[test]
fn netlink_actions_take_protocol_targets_and_records_show_handles() {
    let protocol = |text: &str| Target::parse(TargetKind::Protocol, text, &[], &policy::ThisHost);
    assert_eq!(protocol("generic").unwrap().key(0, action::NETLINK_OTHER).family, 16);
    assert_eq!(protocol("9").unwrap().key(0, action::NETLINK_OTHER).family, 9);
    assert_eq!(protocol("*").unwrap().key(0, action::NETLINK_OTHER).family, FAMILY_ANY);
    assert!(protocol("wireguard").unwrap_err().to_string().contains("not a netlink protocol"));
    // Actions with no target (net.rule.*, net.tc.*, ...) take only `*`.
    assert!(Target::parse(TargetKind::None, "eth0", &[], &policy::ThisHost).is_err());
    let compiled = compile(
        "[[profile]]\nname = \"p\"\n\
         [[profile.rule]]\naction = \"net.route.*\"\ntarget = \"*\"\ntier = \"approve\"\n\
         [[profile.rule]]\naction = \"netlink.other\"\ntarget = \"generic\"\ntier = \"allow\"\n",
    )
    .unwrap();
    let mut route = TargetKey::zeroed();
    route.profile_id = compiled.profile_ids["p"];
    route.action = action::NET_ROUTE_REPLACE;
    // A route's `*` is the wildcard the kernel reaches last.
    route.family = FAMILY_ANY;
    assert_eq!(compiled.rules[&route].tier, tier::APPROVE);
    // Names starting with # are how records show a handle; policy may not use them.
    let err = compile(
        "[[profile]]\nname = \"p\"\n\
         [[profile.rule]]\naction = \"nft.chain.delete\"\ntarget = \"inet filter #handle\"\ntier = \"allow\"\n",
    )
    .unwrap_err();
    assert!(err.to_string().contains("only * covers"), "{err}");
    // Records: a by-handle object, and a netlink.other message type.
    let mut key = TargetKey::zeroed();
    key.action = action::NFT_CHAIN_DELETE;
    key.family = 1;
    key.table[..6].copy_from_slice(b"filter");
    key.object[..2].copy_from_slice(&warrant_common::netlink::BY_REFERENCE);
    assert_eq!(policy::render_target(&key), "inet filter #handle");
    // A generic family by its name (the controller's is always there), its
    // command, or by type once no family has it.
    let mut other = TargetKey::zeroed();
    other.action = action::NETLINK_OTHER;
    other.family = 16;
    other.table[0] = 0x10;
    assert_eq!(policy::render_target(&other), "generic nlctrl");
    other.object[..2].copy_from_slice(&[1, GENL_COMMAND_PRESENT]);
    assert_eq!(policy::render_target(&other), "generic nlctrl cmd 1");
    other.table[..2].copy_from_slice(&0xfff0u16.to_le_bytes());
    assert_eq!(policy::render_target(&other), "generic type 65520 cmd 1");
    other.family = 0;
    other.table[..2].copy_from_slice(&78u16.to_le_bytes());
    other.object = [0; warrant_common::NAME_LEN];
    assert_eq!(policy::render_target(&other), "route type 78");
}

#[test]
fn generic_netlink_targets_name_a_family_and_a_command() {
    let protocol = |text: &str| Target::parse(TargetKind::Protocol, text, &[], &policy::ThisHost);
    let key = |text: &str| protocol(text).unwrap().key(0, action::NETLINK_OTHER);
    // Each level the kernel widens to: command, family, protocol.
    let command = key("generic nlctrl cmd 1");
    assert_eq!((command.family, command.table[..2].to_vec()), (16, vec![0x10, 0]));
    assert_eq!(command.object[..2], [1, GENL_COMMAND_PRESENT]);
    let family = key("generic nlctrl");
    assert_eq!((family.table[..2].to_vec(), family.object[..2].to_vec()), (vec![0x10, 0], vec![0, 0]));
    assert_eq!(key("route type 78").table[..2], [78, 0]);
    // A warrant names one command of one family (the kernel's key has
    // both); elsewhere one type, type 0 (what some protocols send) included.
    let exact = |text: &str| protocol(text).unwrap().is_exact(TargetKind::Protocol);
    assert!(exact("generic nlctrl cmd 1") && exact("route type 78") && exact("connector"));
    assert!(!exact("generic nlctrl") && !exact("generic") && !exact("*"));
    let err = |text: &str| protocol(text).unwrap_err().to_string();
    assert!(err("generic nlctrl cmd 256").contains("from 0 to 255"), "{}", err("generic nlctrl cmd 256"));
    assert!(err("generic nlctrl set_device").contains("write `cmd N`"), "{}", err("generic nlctrl set_device"));
    assert!(err("generic no-such-family").contains("is its module loaded"));
    assert!(err("route type 78 cmd 1").contains("must be PROTOCOL"));
    // What records show for a family no longer registered is no target: the
    // next family registered gets that id.
    assert!(err("generic type 65520 cmd 1").contains("name the family"), "{}", err("generic type 65520 cmd 1"));
    assert!(err("generic type 65520").contains("name the family"), "{}", err("generic type 65520"));
}

#[test]
fn unix_sockets_are_named_by_path_or_abstract_name_and_deputies_warn() {
    let socket = |text: &str| Target::parse(TargetKind::Socket, text, &[], &policy::ThisHost);
    let docker = socket("/run/docker.sock").unwrap().key(0, action::IPC_CONNECT);
    assert_eq!(warrant_common::name_bytes(&docker.table), b"/run/docker.sock");
    assert_eq!(policy::render_target(&docker), "/run/docker.sock");
    assert_eq!(socket("@deputy").unwrap().key(0, action::IPC_CONNECT).table[0], b'@');
    assert_eq!(socket("*").unwrap().key(0, action::IPC_CONNECT).family, FAMILY_ANY);
    assert!(socket("run/relative.sock").is_err());
    assert!(socket(&format!("/{}", "x".repeat(70))).is_err());
    // A name longer than a key holds: marked, shown as such, covered only by `*`.
    let mut long = TargetKey::zeroed();
    long.action = action::IPC_CONNECT;
    long.table[..63].copy_from_slice(&[b'a'; 63]);
    long.table[63] = 0xff;
    assert!(policy::render_target(&long).ends_with("(longer than 63 bytes)"), "{}", policy::render_target(&long));

    // The journal is allowed for every profile; a deputy is not, and
    // allowing one (or every socket) makes verify warn.
    let quiet = compile("[[profile]]\nname = \"p\"\n").unwrap();
    let journal = socket("/run/systemd/journal/socket").unwrap().key(quiet.profile_ids["p"], action::IPC_CONNECT);
    assert_eq!(quiet.rules[&journal].tier, tier::ALLOW);
    let docker = socket("/run/docker.sock").unwrap().key(quiet.profile_ids["p"], action::IPC_CONNECT);
    assert!(!quiet.rules.contains_key(&docker));
    assert!(guarded::allowed(&quiet).is_empty());
    for target in ["/run/docker.sock", "*"] {
        let loud = compile(&format!(
            "[[profile]]\nname = \"p\"\n[[profile.rule]]\naction = \"ipc.connect\"\ntarget = \"{target}\"\ntier = \"allow\"\n"
        ))
        .unwrap();
        let warnings = guarded::allowed(&loud);
        assert!(warnings.iter().any(|w| w.contains("runs what it is sent")), "{target}: {warnings:?}");
    }
}

#[test]
fn a_protected_path_is_guarded_by_its_name_there_or_not() {
    use warrant::protect;
    use warrant_common::{
        FileKey, PROTECTED_ANCESTOR, PROTECTED_HOLDS_ROOT, PROTECTED_NAMES, ProtectedEntry, proc_path,
    };
    let dir = std::env::temp_dir().join(format!("warrant-missing-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("present")).unwrap();
    std::os::unix::fs::symlink(dir.join("nowhere.conf"), dir.join("dangling")).unwrap();
    std::fs::write(dir.join("present/.profile"), "true\n").unwrap();
    let trees: Vec<String> = ["present/.bash_profile", "absent/systemd/system", "dangling", "present/.profile"]
        .iter()
        .map(|t| dir.join(t).display().to_string())
        .collect();
    let entries = protect::inodes(&trees, &[]).unwrap();
    // The name itself in the nearest directory there, or the first missing
    // directory on the way, or where a symlink to nothing leads (and the
    // symlink's own name); a root that is there too (root may remove it).
    for (tree, in_dir, name) in [
        (&trees[0], dir.join("present"), ".bash_profile"),
        (&trees[1], dir.clone(), "absent"),
        (&trees[2], dir.clone(), "nowhere.conf"),
        (&trees[2], dir.clone(), "dangling"),
        (&trees[3], dir.join("present"), ".profile"),
    ] {
        let dir_key = protect::file_key(&in_dir).unwrap();
        let flags = entries[&dir_key].flags;
        assert_eq!(flags & (PROTECTED_ANCESTOR | PROTECTED_NAMES), PROTECTED_ANCESTOR | PROTECTED_NAMES, "{tree}");
        let name_key = FileKey::of_name(dir_key, proc_path::component(name.as_bytes()));
        assert!(name_key.is_name());
        assert_eq!(entries[&name_key].tree, protect::tree_id(tree), "{tree}");
        assert_eq!(entries[&name_key].flags, 0, "{tree}");
    }
    // Inside another tree (a policy's /root holding a guarded .bashrc and a
    // missing .bash_login), the nearest root decides, whatever the order:
    // the inner tree keeps its files and its name.
    let present = dir.join("present").display().to_string();
    let inner = [dir.join("present/.profile"), dir.join("present/x.conf")].map(|p| p.display().to_string());
    let present_key = protect::file_key(&dir.join("present")).unwrap();
    for trees in [
        vec![present.clone(), inner[0].clone(), inner[1].clone()],
        vec![inner[1].clone(), inner[0].clone(), present.clone()],
    ] {
        let entries = protect::inodes(&trees, &[]).unwrap();
        assert_eq!(
            entries[&protect::file_key(&dir.join("present/.profile")).unwrap()].tree,
            protect::tree_id(&inner[0])
        );
        // It guards the inner roots' names, and holds them: no subject moves it.
        let flags = PROTECTED_NAMES | PROTECTED_HOLDS_ROOT;
        assert_eq!(entries[&present_key], ProtectedEntry { tree: protect::tree_id(&present), flags });
        for (name, tree) in [(".profile", &inner[0]), ("x.conf", &inner[1])] {
            let name_key = FileKey::of_name(present_key, proc_path::component(name.as_bytes()));
            assert_eq!(entries[&name_key].tree, protect::tree_id(tree), "{name}");
        }
    }
    // A tree's root made a symlink (by whoever could) hands that tree
    // nothing another tree has: not a file, nor a missing root's name, nor
    // a name in another tree's directory.
    let (inner0, inner1) = (inner[0].clone(), inner[1].clone());
    let to_file = dir.join("to-profile");
    let to_name = dir.join("to-missing");
    let to_dir = dir.join("to-present");
    let to_plain = dir.join("to-notes");
    std::fs::write(dir.join("present/notes"), "").unwrap();
    std::os::unix::fs::symlink(dir.join("present/.profile"), &to_file).unwrap();
    std::os::unix::fs::symlink(dir.join("present/x.conf"), &to_name).unwrap();
    std::os::unix::fs::symlink(dir.join("present/y.conf"), &to_dir).unwrap();
    std::os::unix::fs::symlink(dir.join("present/notes"), &to_plain).unwrap();
    let links: Vec<String> = [&to_file, &to_name, &to_dir, &to_plain].iter().map(|p| p.display().to_string()).collect();
    // And a root inside `present` whose directory on the way is missing:
    // what is made there is `present`'s, not that root's.
    let deeper = dir.join("present/sub/deep").display().to_string();
    let trees = [links.clone(), vec![present.clone(), inner0.clone(), inner1.clone(), deeper]].concat();
    let entries = protect::inodes(&trees, &[]).unwrap();
    assert_eq!(entries[&protect::file_key(&dir.join("present/.profile")).unwrap()].tree, protect::tree_id(&inner0));
    assert_eq!(entries[&protect::file_key(&dir.join("present/notes")).unwrap()].tree, protect::tree_id(&present));
    let name = |name: &str| entries.get(&FileKey::of_name(present_key, proc_path::component(name.as_bytes())));
    assert_eq!(name("x.conf").map(|e| e.tree), Some(protect::tree_id(&inner1)));
    assert_eq!(name("y.conf"), None, "a symlink's missing target in another tree's directory");
    assert_eq!(name("notes"), None, "a symlink's present target in another tree's directory");
    assert_eq!(name("sub"), None, "a directory on the way to a root, in another tree");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_kernel_knows_binfmt_misc_by_its_path_hash() {
    let hash = warrant::protect::proc_path_hash(std::path::Path::new("/proc/sys/fs/binfmt_misc"));
    assert_eq!(hash, Some(warrant_common::proc_path::BINFMT_MISC), "{:#x}", hash.unwrap());
}

#[test]
fn a_warrant_for_a_new_name_makes_a_regular_file_only() {
    use warrant::policy::Target;
    let protect = vec!["/etc".to_owned()];
    let file = Target::new_file_name("/etc/warrant-test-new.conf", &protect, &policy::ThisHost).unwrap();
    let Target::File { inode: Some(dir), name: Some(name), .. } = &file else { panic!("{file:?}") };
    assert_eq!(name, "warrant-test-new.conf");
    assert!(dir.is_name());
    assert_eq!(Target::new_name_kind(*dir), "", "a warrant's new file is a regular file");
    assert_eq!(dir.new_name_parts(), (warrant::protect::file_key(std::path::Path::new("/etc")).unwrap(), 0o100000));
    let refused = Target::new_file_name("/etc/agent.d (a directory)", &protect, &policy::ThisHost).unwrap_err();
    assert!(refused.to_string().contains("one regular file"), "{refused}");
    let refused = Target::new_file_name("/etc/../etc/x.conf", &protect, &policy::ThisHost).unwrap_err();
    assert!(refused.to_string().contains("as written"), "{refused}");
}

/// Over a full PROTECTED, a root the names lookup cannot find must have its
/// entry: Warrant's own roots guard no name, but a file in an own directory
/// is found by that directory; a policy's root by its guarded name.
#[test]
fn only_roots_no_name_or_directory_finds_need_their_entries() {
    use warrant::protect;
    let dir = std::env::temp_dir().join(format!("warrant-roots-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    for made in ["own", "tree"] {
        std::fs::create_dir_all(dir.join(made)).unwrap();
    }
    for file in ["own/audit.log", "own.key", "tree/a.conf", "single.conf"] {
        std::fs::write(dir.join(file), "").unwrap();
    }
    let path = |p: &str| dir.join(p);
    let trees: Vec<String> = ["tree", "single.conf"].iter().map(|t| path(t).display().to_string()).collect();
    let own = ["own", "own/audit.log", "own.key"].map(path);
    let entries = protect::inodes(&trees, &own).unwrap();
    let needing = protect::roots_needing_entries(&trees, &own, &entries);
    let key = |p: &str| protect::file_key(&path(p)).unwrap();
    assert_eq!(needing, [key("own"), key("own.key")].into_iter().collect(), "{dir:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}
