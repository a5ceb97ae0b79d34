//! Plain tier: what ships beside the binary (default configuration, systemd
//! unit, .deb metadata, Kubernetes manifest) agrees with the code, and the
//! metrics text is well formed.

use std::path::{Path, PathBuf};

use warrant::{config::Config, metrics};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn the_shipped_configuration_is_the_documented_defaults() {
    let shipped: Config = toml::from_str(&read("deploy/warrant.toml")).expect("deploy/warrant.toml parses");
    let defaults = Config::default();
    assert_eq!(shipped.state_dir, defaults.state_dir);
    assert_eq!(shipped.socket, defaults.socket);
    assert_eq!(shipped.audit_log, defaults.audit_log);
    assert_eq!(shipped.audit_max_bytes, defaults.audit_max_bytes);
    assert_eq!(shipped.checkpoint_interval_secs, defaults.checkpoint_interval_secs);
    assert_eq!(shipped.policy_threshold, defaults.policy_threshold);
    assert_eq!(shipped.query_socket, defaults.query_socket);
    assert_eq!(shipped.requests_per_minute, defaults.requests_per_minute);
    assert_eq!(shipped.max_open_requests, defaults.max_open_requests);
    assert!(shipped.trusted_keys.is_empty());
}

#[test]
fn the_systemd_unit_lets_the_daemon_write_where_the_defaults_point() {
    let unit = read("deploy/warrant.service");
    assert!(unit.contains("ExecStart=/usr/sbin/warrant daemon --config /etc/warrant/warrant.toml"), "{unit}");
    let writable = unit.lines().find_map(|l| l.strip_prefix("ReadWritePaths=")).expect("ReadWritePaths");
    let writable: Vec<&Path> = writable.split_whitespace().map(Path::new).collect();
    let defaults = Config::default();
    for needed in [
        defaults.state_dir.as_path(),
        defaults.audit_log.parent().unwrap(),
        defaults.socket.parent().unwrap(),
        Path::new("/sys/fs/bpf"),
    ] {
        assert!(writable.iter().any(|w| needed.starts_with(w)), "{} is not writable under the unit", needed.display());
    }
    // The deployment tier runs the unit; these say why a change broke it.
    // CAP_NET_ADMIN: nft snapshots (every nft warrant needs one); CAP_KILL:
    // stopping a picked-up agent of another uid (`subject.stopped`).
    for capability in ["CAP_BPF", "CAP_PERFMON", "CAP_SYS_ADMIN", "CAP_NET_ADMIN", "CAP_KILL"] {
        let line = |key: &str| unit.lines().find_map(|l| l.strip_prefix(key)).unwrap_or_default().to_owned();
        for key in ["CapabilityBoundingSet=", "AmbientCapabilities="] {
            assert!(line(key).split_whitespace().any(|c| c == capability), "the unit's {key} drops {capability}");
        }
    }
    // File rollback writes protected files outside the unit's own directories.
    assert!(!unit.contains("ProtectSystem=strict"), "ProtectSystem=strict breaks file rollback");
}

#[test]
fn the_deb_ships_files_that_exist() {
    let manifest: toml::Value = toml::from_str(&read("agent/Cargo.toml")).unwrap();
    let deb = &manifest["package"]["metadata"]["deb"];
    let assets = deb["assets"].as_array().expect("deb assets");
    let targets: Vec<&str> = assets.iter().map(|a| a[1].as_str().unwrap()).collect();
    assert!(targets.contains(&"usr/sbin/warrant") && targets.contains(&"etc/warrant/warrant.toml"));
    // The unit comes from `systemd-units`, which reads deploy/warrant.service.
    let units = &deb["systemd-units"];
    assert_eq!(units["unit-name"].as_str(), Some("warrant"));
    let unit_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(units["unit-scripts"].as_str().unwrap());
    assert!(unit_dir.join("warrant.service").exists());
    for asset in assets {
        let source = asset[0].as_str().unwrap();
        if !source.starts_with("target/") {
            let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(source);
            assert!(path.exists(), "deb asset {source} is missing");
        }
    }
}

#[test]
fn the_daemonset_is_privileged_on_the_hosts_pids_and_network_and_enters_its_mounts() {
    let manifest = read("deploy/kubernetes/daemonset.yaml");
    for needed in ["hostPID: true", "hostNetwork: true", "privileged: true"] {
        assert!(manifest.contains(needed), "the DaemonSet lacks {needed}");
    }
    // The configuration embedded in its ConfigMap is one the daemon accepts.
    let start = manifest.find("warrant.toml: |\n").expect("embedded warrant.toml") + "warrant.toml: |\n".len();
    let embedded: String = manifest[start..]
        .lines()
        .take_while(|l| l.starts_with("    ") || l.is_empty())
        .map(|l| format!("{}\n", l.get(4..).unwrap_or("")))
        .collect();
    let config: Config = toml::from_str(&embedded).unwrap_or_else(|e| panic!("{e}\n{embedded}"));
    assert!(config.bundle_dir.is_some() && !config.trusted_keys.is_empty());
    // Paths resolve on the node (agent/src/host_mount.rs); the deployment
    // tier runs this configuration in a pod's mount namespace.
    assert_eq!(config.host_mount_namespace.as_deref(), Some(Path::new("/proc/1/ns/mnt")));
}

#[test]
fn metrics_are_prometheus_text_with_escaped_labels() {
    let mut snapshot = metrics::Snapshot { policy_version: Some(7), enforcement_available: true, ..Default::default() };
    snapshot.decisions.insert(("denied", "nft.rule.add", "agent \"x\"".into()), 3);
    let text = metrics::render(&snapshot);
    assert!(text.contains("# TYPE warrant_decisions_total counter\n"), "{text}");
    assert!(
        text.contains(
            "warrant_decisions_total{verdict=\"denied\",action=\"nft.rule.add\",profile=\"agent \\\"x\\\"\"} 3\n"
        ),
        "{text}"
    );
    assert!(
        text.contains("warrant_policy_version 7\n") && text.contains("warrant_enforcement_available 1\n"),
        "{text}"
    );
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let value = line.rsplit(' ').next().unwrap();
        assert!(value.parse::<u64>().is_ok(), "not a sample: {line}");
    }
}

#[test]
fn a_file_snapshot_restores_bytes_and_mode_and_refuses_a_target_changed_since() {
    use std::os::unix::fs::PermissionsExt as _;
    use warrant::rollback::{self, RollbackError};
    let dir = std::env::temp_dir().join(format!("warrant-rollback-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let state = dir.join("state");
    let file = dir.join("app.conf");
    std::fs::create_dir_all(&state).unwrap();
    std::fs::write(&file, "port = 22\n").unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).unwrap();
    let target = file.to_str().unwrap();

    assert!(rollback::take(&state, "w-1", "netns.create", "*", 1).unwrap().is_none(), "namespaces have no snapshot");
    rollback::take(&state, "w-1", "file.write", target, 1).unwrap().expect("a file snapshot");
    assert!(matches!(rollback::restore(&state, "w-1", false, 2), Err(RollbackError::NotUsed(_))));
    std::fs::write(&file, "port = 2222\n").unwrap();
    rollback::note_after(&state, "w-1").unwrap();
    let meta = rollback::restore(&state, "w-1", false, 3).unwrap();
    assert_eq!(rollback::describe(&meta), target);
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "port = 22\n");
    assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o640);
    assert!(matches!(rollback::restore(&state, "w-1", false, 4), Err(RollbackError::Done(_))));

    // Changed again after the warranted change: only --force restores.
    rollback::take(&state, "w-2", "file.write", target, 5).unwrap();
    std::fs::write(&file, "port = 2222\n").unwrap();
    rollback::note_after(&state, "w-2").unwrap();
    std::fs::write(&file, "port = 3333\n").unwrap();
    let error = rollback::restore(&state, "w-2", false, 6).unwrap_err();
    assert!(matches!(error, RollbackError::ChangedSince { .. }) && !error.to_string().contains('\n'), "{error}");
    rollback::restore(&state, "w-2", true, 7).unwrap();
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "port = 22\n");

    // A file the change created is removed again.
    let created = dir.join("new.conf");
    rollback::take(&state, "w-3", "file.create", created.to_str().unwrap(), 8).unwrap();
    std::fs::write(&created, "x").unwrap();
    rollback::note_after(&state, "w-3").unwrap();
    rollback::restore(&state, "w-3", false, 9).unwrap();
    assert!(!created.exists());
    assert!(matches!(rollback::restore(&state, "w-nope", false, 10), Err(RollbackError::Unknown(_))));
    std::fs::remove_dir_all(dir).unwrap();
}

/// One netlink attribute (nested when `kind` has NLA_F_NESTED), padded.
fn nla(kind: u16, payload: &[u8]) -> Vec<u8> {
    let mut out = ((4 + payload.len()) as u16).to_ne_bytes().to_vec();
    out.extend_from_slice(&kind.to_ne_bytes());
    out.extend_from_slice(payload);
    while !out.len().is_multiple_of(4) {
        out.push(0);
    }
    out
}

fn expr(name: &str, data: &[Vec<u8>]) -> Vec<u8> {
    const NESTED: u16 = 0x8000;
    let mut name_z = name.as_bytes().to_vec();
    name_z.push(0);
    let elem = [nla(1, &name_z), nla(2 | NESTED, &data.concat())].concat();
    nla(1 | NESTED, &elem)
}

#[test]
fn an_nft_rule_renders_as_nft_debug_netlink_shows_it() {
    const NESTED: u16 = 0x8000;
    let be = |v: u32| v.to_be_bytes().to_vec();
    // What nft sends for `tcp dport 22 accept`.
    let rule = [
        expr("meta", &[nla(2, &be(16)), nla(1, &be(1))]),
        expr("cmp", &[nla(1, &be(1)), nla(2, &be(0)), nla(3 | NESTED, &nla(1, &[6]))]),
        expr("payload", &[nla(1, &be(1)), nla(2, &be(2)), nla(3, &be(2)), nla(4, &be(2))]),
        expr("cmp", &[nla(1, &be(1)), nla(2, &be(0)), nla(3 | NESTED, &nla(1, &[0, 22]))]),
        expr("immediate", &[nla(1, &be(0)), nla(2 | NESTED, &nla(2 | NESTED, &nla(1, &be(1))))]),
    ]
    .concat();
    let text = warrant::nft_render::render(&rule, true);
    assert_eq!(
        text,
        "[ meta load l4proto => reg 1 ] [ cmp eq reg 1 0x06 ] [ payload load 2b @ transport header + 2 => reg 1 ] \
         [ cmp eq reg 1 0x0016 ] [ immediate reg 0 accept ]"
    );
    // Cut short or garbled content still renders, and says so.
    assert!(warrant::nft_render::render(&rule[..30], false).ends_with("(longer than the kernel sends) ]"));
    assert_eq!(warrant::nft_render::render(&[0xff; 7], true), "");
}

#[test]
fn what_the_kernel_reads_differently_renders_differently_and_nothing_is_left_out() {
    let be = |v: u32| v.to_be_bytes().to_vec();
    let render = |rule: Vec<u8>| warrant::nft_render::render(&rule, true);
    // `ip saddr @blocklist` and `ip saddr != @blocklist` (NFT_LOOKUP_F_INV).
    let lookup = |flags: Option<u32>| {
        let mut data = vec![nla(1, b"blocklist\0"), nla(2, &be(1))];
        data.extend(flags.map(|f| nla(5, &be(f))));
        expr("lookup", &data)
    };
    assert_eq!(render(lookup(None)), "[ lookup reg 1 set blocklist ]");
    assert_eq!(render(lookup(Some(1))), "[ lookup reg 1 not in set blocklist ]");
    // A map's lookup loads a value.
    let map = expr("lookup", &[nla(1, b"ports\0"), nla(2, &be(1)), nla(3, &be(0))]);
    assert_eq!(render(map), "[ lookup reg 1 set ports => reg 0 ]");
    // A payload write (a rewrite of the destination port) is not a load.
    let write = expr("payload", &[nla(5, &be(1)), nla(2, &be(2)), nla(3, &be(2)), nla(4, &be(2))]);
    assert_eq!(
        render(write),
        "[ payload write reg 1 => 2b @ transport header + 2 csum_type 0 csum_off 0 csum_flags 0 ]"
    );
    // An expression not decoded, and an attribute a decoded one does not
    // know, are shown raw; a repeated attribute as the kernel takes it (the last).
    assert_eq!(render(expr("nat", &[nla(1, &be(1)), nla(2, &be(2))])), "[ nat attr 1=0x00000001 attr 2=0x00000002 ]");
    let odd = expr("cmp", &[nla(1, &be(1)), nla(2, &be(0)), nla(9, &[7]), nla(9, &[8])]);
    assert_eq!(render(odd), "[ cmp eq reg 1  attr 9=0x08 ]");
}
