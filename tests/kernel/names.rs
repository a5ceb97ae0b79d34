//! Kernel tier: new names in protected trees. A subject's create, link or
//! move into one is decided on the name it makes, so an RI can warrant one
//! new file (a service install); renames into, out of and between trees,
//! by root and by subjects: what lands in a tree joins it, whoever moved it
//! there.

use crate::files::{PROTECTED_FILE, expect_refused, protected_entries, sh_subject};
use crate::harness::{self, daemon, run_subject};
use crate::warrant_after_refusal;

/// Maps argv[1] shared and writable, closes its fd, then tries to rename
/// and to link it to argv[2]: exits non-zero if either went through.
const MOVE_WHILE_MAPPED: &str = r#"
import mmap, os, sys
src, dst = sys.argv[1], sys.argv[2]
f = os.open(src, os.O_RDWR)
kept = mmap.mmap(f, 8)
os.close(f)
for move in (os.rename, os.link):
    try:
        move(src, dst)
    except PermissionError:
        continue
    sys.exit(f"{move.__name__} of a file mapped shared and writable went through")
"#;

/// Root's rewrites keep protection: a new file renamed over a protected
/// one (`sed -i` on a one-file tree, whose directory is not protected) or
/// moved into a protected directory from outside (on the same mount: the
/// bind mount at /etc/sysctl.d would make `mv` copy) joins the tree.
/// Before, the new inode stayed unprotected until the next apply.
#[test]
#[ignore = "kernel tier: run by `cargo xtask test` in the VM"]
fn a_file_root_renames_into_a_protected_tree_is_protected() {
    let d = daemon();
    std::fs::create_dir_all("/mnt/single").unwrap();
    std::fs::write("/mnt/single/only.conf", "one\n").unwrap();
    let text = std::fs::read_to_string("policies/demo.toml").unwrap();
    let single = text.replacen("protect = [", "protect = [\"/mnt/single/only.conf\", ", 1);
    assert_ne!(single, text);
    d.apply_next_policy(&single);
    let root = harness::as_root;
    root("sed -i 's/one/two/' /mnt/single/only.conf");
    root(
        "printf 'net.ipv4.ip_forward = 0\\n' > /mnt/outside/91-root.conf && mv /mnt/outside/91-root.conf /mnt/sysctl.d/",
    );
    for (what, path) in [
        ("the file root rewrote with sed -i", "/mnt/single/only.conf"),
        ("the file root moved in", "/etc/sysctl.d/91-root.conf"),
    ] {
        let mark = d.audit_len();
        let out = sh_subject(&format!("echo evil >> {path}"));
        assert!(!out.status.success(), "{what} was written by a subject");
        // The one-file tree has no rule (denied), sysctl.d is approve-tier.
        d.expect_record_where(mark, what, |r| {
            r["action"] == "file.write" && r["verdict"].as_str().is_some_and(|v| v.starts_with("denied"))
        });
    }
    assert_eq!(std::fs::read_to_string("/mnt/single/only.conf").unwrap(), "two\n");
    std::fs::remove_file("/etc/sysctl.d/91-root.conf").unwrap();
    d.apply_next_policy(&text);
}

/// Root's rewrites by rename (`sed -i`, an editor's save) leave each
/// replaced inode without a name: its entry goes when its link count
/// reaches zero, so PROTECTED does not grow by one per rewrite (at 65,536
/// it is full, and new files in protected trees go unprotected), while the
/// file under the name stays protected. (On tmpfs, as here, each new file
/// gets a new number; on ext4 one may reuse the number just released.)
#[test]
#[ignore = "kernel tier: run by `cargo xtask test` in the VM"]
fn root_rewriting_a_protected_file_by_rename_leaves_no_entries_behind() {
    let d = daemon();
    let path = "/etc/sysctl.d/92-rewritten.conf";
    harness::as_root(&format!("printf 'net.ipv4.ip_forward = 0\\n' > {path}"));
    let before = protected_entries();
    let rewrites = 40;
    harness::as_root(&format!(
        "for i in $(seq {rewrites}); do printf 'net.ipv4.ip_forward = 0\\n' > {path}.new && mv {path}.new {path}; done"
    ));
    let after = protected_entries();
    // The daemon may protect a few files of its own meanwhile (a rotated log).
    assert!(after < before + 5, "{rewrites} rewrites by rename left {} entries", after.saturating_sub(before));
    let mark = d.audit_len();
    let out = sh_subject(&format!("echo evil >> {path}"));
    expect_refused(d, "a write to the rewritten file", out, "file.write", path, "denied-needs-warrant", mark);
    std::fs::remove_file(path).unwrap();
}

/// A rename is decided on both sides: a move the policy allows inside one
/// tree cannot replace a file of another (the demo's approve-tier sysctl.d,
/// from an allow-tier scratch tree on the same file system).
#[test]
#[ignore = "kernel tier: run by `cargo xtask test` in the VM"]
fn a_rename_allowed_in_one_tree_cannot_replace_a_file_of_another() {
    let d = daemon();
    std::fs::create_dir_all("/mnt/scratch").unwrap();
    let (text, wider) = harness::demo_policy_with(&["/mnt/scratch"], &[("file.*", "/mnt/scratch", "allow")]);
    d.apply_next_policy(&wider);
    let original = std::fs::read_to_string(PROTECTED_FILE).unwrap();
    let within = sh_subject("echo evil > /mnt/scratch/x && mv /mnt/scratch/x /mnt/scratch/y");
    assert!(within.status.success(), "a rename inside the allowed tree was refused: {}", within.stderr);
    let mark = d.audit_len();
    expect_refused(
        d,
        "a rename from the allowed tree over a protected file",
        sh_subject("mv /mnt/scratch/y /mnt/sysctl.d/90-agent.conf"),
        "file.rename",
        PROTECTED_FILE,
        "denied-needs-warrant",
        mark,
    );
    assert_eq!(std::fs::read_to_string(PROTECTED_FILE).unwrap(), original);
    // A link is decided on the tree it makes a name in too, not only on
    // the linked file's.
    let mark = d.audit_len();
    expect_refused(
        d,
        "a link from the allowed tree into another",
        sh_subject("ln /mnt/scratch/y /mnt/sysctl.d/92-linked.conf"),
        "file.link",
        "/etc/sysctl.d/92-linked.conf",
        "denied-needs-warrant",
        mark,
    );
    d.apply_next_policy(&text);
}

/// A rule that lets a subject create files in a tree lets it make them,
/// not write them: the open that made a file is decided as a write, unless
/// a warrant made it.
#[test]
#[ignore = "kernel tier: run by `cargo xtask test` in the VM"]
fn a_rule_that_allows_creating_files_does_not_allow_writing_them() {
    let d = daemon();
    std::fs::create_dir_all("/mnt/dropbox").unwrap();
    let (text, dropbox) = harness::demo_policy_with(&["/mnt/dropbox"], &[("file.create", "/mnt/dropbox", "allow")]);
    d.apply_next_policy(&dropbox);
    let mark = d.audit_len();
    let out = sh_subject("printf evil > /mnt/dropbox/note");
    assert!(out.stderr.contains("Operation not permitted"), "{}", out.stderr);
    d.expect_record(mark, "file.create", "/mnt/dropbox/note", "allowed");
    d.expect_record(mark, "file.write", "/mnt/dropbox/note", "denied");
    assert_eq!(std::fs::read_to_string("/mnt/dropbox/note").unwrap(), "");
    std::fs::remove_file("/mnt/dropbox/note").unwrap();
    d.apply_next_policy(&text);
}

/// A rule naming a directory inside a tree decides the names made in it
/// before the tree's rule does: more lenient (an inbox the agent may drop
/// files in) and stricter (a directory that needs a warrant inside a tree
/// where creates are allowed). Without the directory step, both fell to
/// the tree's rule.
#[test]
#[ignore = "kernel tier: run by `cargo xtask test` in the VM"]
fn a_rule_on_a_directory_inside_a_tree_decides_the_names_made_in_it() {
    let d = daemon();
    for dir in ["/mnt/dropbox/gated", "/mnt/inbox/open"] {
        std::fs::create_dir_all(dir).unwrap();
    }
    let rules = [("/mnt/dropbox", "allow"), ("/mnt/dropbox/gated", "approve"), ("/mnt/inbox/open", "allow")]
        .map(|(target, tier)| ("file.create", target, tier));
    let (text, dirs) = harness::demo_policy_with(&["/mnt/dropbox", "/mnt/inbox"], &rules);
    d.apply_next_policy(&dirs);
    for (path, verdict) in [
        ("/mnt/inbox/open/a", "allowed"),
        ("/mnt/inbox/a", "denied"),
        ("/mnt/dropbox/c", "allowed"),
        ("/mnt/dropbox/gated/b", "denied-needs-warrant"),
    ] {
        let mark = d.audit_len();
        // The open's write is decided apart (no file.write rule): only the
        // create is looked at here.
        sh_subject(&format!(": > {path}"));
        d.expect_record(mark, "file.create", path, verdict);
        assert_eq!(std::path::Path::new(path).exists(), verdict == "allowed", "{path}");
    }
    d.apply_next_policy(&text);
    std::fs::remove_dir_all("/mnt/dropbox").unwrap();
    std::fs::remove_dir_all("/mnt/inbox").unwrap();
}

/// A file a subject moves into a protected directory with a warrant joins
/// the tree: before, the moved inode stayed unprotected until the next
/// apply, and the agent could rewrite what the RI approved (a unit's
/// ExecStart). Hard-linked elsewhere first, it joins all the same.
#[test]
#[ignore = "kernel tier: run by `cargo xtask test` in the VM"]
fn a_file_a_subject_moves_into_a_tree_with_a_warrant_joins_it() {
    let d = daemon();
    let staged = sh_subject(
        "rm -f /mnt/outside/91-agent.conf /mnt/outside/91-other-name
        printf 'net.ipv4.ip_forward = 0\\n' > /mnt/outside/91-agent.conf
        ln /mnt/outside/91-agent.conf /mnt/outside/91-other-name",
    );
    assert!(staged.status.success(), "the subject could not stage its file: {}", staged.stderr);
    let install = || sh_subject("mv /mnt/outside/91-agent.conf /mnt/sysctl.d/91-agent.conf");
    warrant_after_refusal(d, install, "file.rename", "/etc/sysctl.d/91-agent.conf", "10m", 1);
    // Not while the agent holds it open for writing: it would write on
    // after the move.
    let mark = d.audit_len();
    let held =
        sh_subject("exec 3>>/mnt/outside/91-agent.conf; mv /mnt/outside/91-agent.conf /mnt/sysctl.d/91-agent.conf");
    assert!(!held.status.success(), "a file held open for writing was moved into the tree");
    d.expect_record(mark, "file.rename", "*", "denied");
    // Nor while it holds a shared writable mapping of it, its fd closed;
    // not by a link either.
    let mapped =
        run_subject(&["python3", "-c", MOVE_WHILE_MAPPED, "/mnt/outside/91-agent.conf", "/mnt/sysctl.d/91-agent.conf"]);
    assert!(mapped.status.success(), "{}", mapped.stderr);
    let moved = install();
    assert!(moved.status.success(), "the warranted move failed: {}", moved.stderr);
    // What the RI approved stays what it was, by either name.
    for path in ["/etc/sysctl.d/91-agent.conf", "/mnt/outside/91-other-name"] {
        let mark = d.audit_len();
        let out = sh_subject(&format!("echo 'net.ipv4.ip_forward = 1' >> {path}"));
        assert!(!out.status.success(), "the subject rewrote the file it moved in, by {path}");
        d.expect_record_where(mark, "file.write denied-needs-warrant", |r| {
            r["action"] == "file.write" && r["verdict"] == "denied-needs-warrant"
        });
    }
    assert_eq!(std::fs::read_to_string("/etc/sysctl.d/91-agent.conf").unwrap(), "net.ipv4.ip_forward = 0\n");
    std::fs::remove_file("/etc/sysctl.d/91-agent.conf").unwrap();
    std::fs::remove_file("/mnt/outside/91-other-name").unwrap();
}

/// An RI approves a service install: with the unit directory moved to
/// `approve`, the agent's unit is refused, a warrant for that one unit
/// lets the same command make it (the create and the writes of the open
/// that made it), and it is then protected like the rest of the tree.
/// Another unit still needs its own warrant. /etc/systemd/system is a
/// tmpfs here (the VM's own is the host's, read-only).
#[test]
#[ignore = "kernel tier: run by `cargo xtask test` in the VM"]
fn an_ri_approves_a_service_install_by_its_unit_s_name() {
    let d = daemon();
    let root = harness::as_root;
    root("grep -qs ' /etc/systemd/system tmpfs ' /proc/mounts || mount -t tmpfs units /etc/systemd/system");
    let (text, approving) = harness::demo_policy_with(&[], &[("file.*", "/etc/systemd/system", "approve")]);
    d.apply_next_policy(&approving);
    let unit = "/etc/systemd/system/agent-job.service";
    let install = || sh_subject(&format!("printf '[Service]\\nExecStart=/bin/true\\n' > {unit}"));
    warrant_after_refusal(d, install, "file.create", unit, "10m", 1);
    // The warrant is for a regular file: not a symlink to one the agent
    // can rewrite, nor a directory.
    for other_kind in [format!("ln -s /run/agent-unit {unit}"), format!("mkdir {unit}")] {
        let out = sh_subject(&other_kind);
        assert!(out.stderr.contains("Operation not permitted"), "{other_kind}: {}", out.stderr);
    }
    let mark = d.audit_len();
    let installed = install();
    assert!(installed.status.success(), "the warranted install failed: {}", installed.stderr);
    d.expect_record(mark, "file.create", unit, "allowed-by-warrant");
    assert_eq!(std::fs::read_to_string(unit).unwrap(), "[Service]\nExecStart=/bin/true\n");
    // What the RI approved stays so; another unit needs its own warrant.
    let mark = d.audit_len();
    expect_refused(
        d,
        "a rewrite of the approved unit",
        sh_subject(&format!("echo 'ExecStartPost=/usr/sbin/nft flush ruleset' >> {unit}")),
        "file.write",
        unit,
        "denied-needs-warrant",
        mark,
    );
    let mark = d.audit_len();
    let other = run_subject(&["sh", "-c", "echo '[Service]' > /etc/systemd/system/agent-other.service"]);
    expect_refused(
        d,
        "another unit",
        other,
        "file.create",
        "/etc/systemd/system/agent-other.service",
        "denied-needs-warrant",
        mark,
    );
    d.apply_next_policy(&text);
    // Removed first: an unmount drops no protected entries.
    root(&format!("rm -f {unit}; umount /etc/systemd/system"));
}

/// On a disk file system, the dentry cache lets directories go and a later
/// lookup instantiates them again: a tree's directory keeps what the apply
/// flagged it with (here, the name of a tree inside it that is not there
/// yet), rather than being re-tagged a plain file of its tree. An ext4
/// image on a loop device: tmpfs never lets a dentry go.
#[test]
#[ignore = "kernel tier: run by `cargo xtask test` in the VM"]
fn a_directory_the_dentry_cache_let_go_keeps_its_guarded_names() {
    let d = daemon();
    let root = harness::as_root;
    root(
        "modprobe loop; mkdir -p /run/disk /mnt/disk; truncate -s 32M /run/disk/img; mkfs.ext4 -q -F /run/disk/img
        mount -o loop /run/disk/img /mnt/disk; mkdir -p /mnt/disk/home/deep/er",
    );
    let rules = ["file.create", "file.write"].map(|action| (action, "/mnt/disk/home", "allow"));
    let (text, home) = harness::demo_policy_with(&["/mnt/disk/home", "/mnt/disk/home/deep/er/.login"], &rules);
    d.apply_next_policy(&home);
    root("sync; echo 2 > /proc/sys/vm/drop_caches; ls -a /mnt/disk/home/deep/er > /dev/null");
    let mark = d.audit_len();
    let out =
        sh_subject("echo x > /mnt/disk/home/deep/er/notes && echo 'nft flush ruleset' > /mnt/disk/home/deep/er/.login");
    assert!(out.stderr.contains("Operation not permitted"), "{}", out.stderr);
    d.expect_record(mark, "file.create", "/mnt/disk/home/deep/er/notes", "allowed");
    d.expect_record(mark, "file.create", "/mnt/disk/home/deep/er/.login", "denied");
    assert!(std::fs::symlink_metadata("/mnt/disk/home/deep/er/.login").is_err());
    d.apply_next_policy(&text);
    root("rm -rf /mnt/disk/home; umount /mnt/disk; rm -rf /run/disk");
}

/// A file system's entries go with it: a tmpfs mounted in a tree, walked
/// by an apply and unmounted, leaves none behind. Anonymous device numbers
/// are reused lowest first and tmpfs numbers its inodes from 1, so the
/// next tmpfs, wherever root mounts it, would have the old one's keys and
/// be protected as the old one's tree (or, mounted in a stricter tree,
/// decided by a looser one's rules).
#[test]
#[ignore = "kernel tier: run by `cargo xtask test` in the VM"]
fn an_unmounted_file_system_leaves_its_entries_to_no_other() {
    let d = daemon();
    let (dir, next) = ("/etc/sysctl.d/94-mounted", "/tmp/94-next");
    let root = harness::as_root;
    root(&format!("mkdir -p {dir} {next} && mount -t tmpfs warrant-94 {dir} && echo '# root' > {dir}/94.conf"));
    let dev = warrant::protect::super_block_file_key(std::path::Path::new(dir)).unwrap().dev;
    let of_device = || {
        let map = crate::files::protected_map();
        map.keys().filter_map(Result::ok).filter(|key| key.dev & u64::from(u32::MAX) == dev).count()
    };
    d.apply_next_policy(&std::fs::read_to_string("policies/demo.toml").unwrap());
    assert!(of_device() >= 2, "the apply's walk did not enter the tmpfs mounted in the tree");
    let out = sh_subject(&format!("echo net.ipv4.ip_forward=1 >> {dir}/94.conf"));
    assert!(!out.status.success(), "a subject wrote a file of the tmpfs mounted in the tree");
    root(&format!("umount {dir} && rmdir {dir}"));
    assert_eq!(of_device(), 0, "the unmounted tmpfs (device {dev:#x}) left entries");
    // The next tmpfs, outside every tree: its files are a subject's to write.
    root(&format!(
        "mount -t tmpfs warrant-94-next {next} && echo '# root' > {next}/94.conf && chmod 666 {next}/94.conf"
    ));
    let reused = warrant::protect::super_block_file_key(std::path::Path::new(next)).unwrap().dev == dev;
    let out = sh_subject(&format!("echo x >> {next}/94.conf"));
    root(&format!("umount {next} && rmdir {next}"));
    assert!(
        out.status.success(),
        "a subject's write on a new tmpfs (device reused: {reused}) was refused: {}",
        out.stderr
    );
}

/// What root mounts in a tree between applies is protected once the daemon
/// hears the mount table change, with no apply (the kernel's names walk
/// ends at a mount's root, so only a walk gives its files entries): a file
/// an unmount uncovers (the apply that made the tree saw the mount over
/// it), a tmpfs on a directory of the tree (also made again at once, and
/// moved in with its directory), a bind mount of an unprotected directory
/// there and a tmpfs over the tree's root, each recorded as
/// `protected.mounts`. Before, a subject wrote them all until the next
/// apply.
#[test]
#[ignore = "kernel tier: run by `cargo xtask test` in the VM"]
fn what_root_mounts_in_a_tree_between_applies_is_protected() {
    let d = daemon();
    // Not /tmp: the guest's is overlayfs, whose files stat reports by
    // their layer's device (BYPASS).
    let (tree, dir, source) = ("/mnt/95-tree", "/mnt/95-tree/sub", "/mnt/95-source");
    let root = harness::as_root;
    root(&format!(
        "mkdir -p {dir} {source} && echo '# root' > {source}/95.conf && echo '# root' > {dir}/95-under.conf"
    ));
    let under = warrant::protect::file_key(std::path::Path::new(&format!("{dir}/95-under.conf"))).unwrap();
    root(&format!("mount -t tmpfs warrant-95 {dir}"));
    let (demo, with_tree) = harness::demo_policy_with(&[tree], &[]);
    d.apply_next_policy(&with_tree);
    assert!(crate::files::protected_map().get(&under, 0).is_err(), "the apply's walk saw beneath the mount");
    let changed = |mark: usize, what: &str, how: &str, point: &str| {
        let record = d.expect_record_where(mark, what, |r| {
            r["kind"] == "protected.mounts" && r[how].as_array().is_some_and(|p| p.iter().any(|p| p == point))
        });
        assert!(record["files"].as_u64().is_some(), "{what}: {record}");
    };
    let refused = |mark: usize, what: &str, file: &str| {
        let write = sh_subject(&format!("echo net.ipv4.ip_forward=1 >> {file}"));
        assert!(!write.status.success(), "{what}: a subject appended to root's {file}");
        d.expect_record_where(mark, &format!("{what}: file.write denied"), |r| {
            r["action"] == "file.write" && r["verdict"].as_str().is_some_and(|v| v.starts_with("denied"))
        });
        let dir = std::path::Path::new(file).parent().unwrap().display();
        let create = sh_subject(&format!("echo net.ipv4.ip_forward=1 > {dir}/95-agent.conf"));
        assert!(!create.status.success(), "{what}: a subject made a file in {dir}");
        d.expect_record_where(mark, &format!("{what}: file.create denied"), |r| {
            r["action"] == "file.create" && r["verdict"].as_str().is_some_and(|v| v.starts_with("denied"))
        });
    };
    let mark = d.audit_len();
    root(&format!("umount {dir}"));
    changed(mark, "the tmpfs unmounted", "unmounted", dir);
    refused(mark, "uncovered", &format!("{dir}/95-under.conf"));
    let mark = d.audit_len();
    root(&format!("mount -t tmpfs warrant-95 {dir} && echo '# root' > {dir}/95.conf"));
    changed(mark, "a tmpfs mounted in the tree", "mounted", dir);
    refused(mark, "on the tmpfs", &format!("{dir}/95.conf"));
    // Made again at once, it may have the mount id it had: its root's
    // missing entry says it is new.
    let mark = d.audit_len();
    root(&format!("umount {dir} && mount -t tmpfs warrant-95 {dir} && echo '# root' > {dir}/95.conf"));
    changed(mark, "a tmpfs made again in the tree", "mounted", dir);
    refused(mark, "made again", &format!("{dir}/95.conf"));
    root(&format!("umount {dir}"));
    // Moved in with its directory, which no mount event says: the tick's look.
    let (outside, moved) = ("/mnt/95-outside", "/mnt/95-tree/moved");
    root(&format!(
        "mkdir -p {outside}/m && mount -t tmpfs warrant-95 {outside}/m && echo '# root' > {outside}/m/95.conf"
    ));
    let mark = d.audit_len();
    root(&format!("mv {outside} {moved}"));
    changed(mark, "a tmpfs moved into the tree with its directory", "mounted", &format!("{moved}/m"));
    refused(mark, "moved in", &format!("{moved}/m/95.conf"));
    root(&format!("umount {moved}/m"));
    let mark = d.audit_len();
    root(&format!("mount --bind {source} {dir}"));
    changed(mark, "a directory bind-mounted in the tree", "mounted", dir);
    refused(mark, "on the bind mount", &format!("{dir}/95.conf"));
    root(&format!("umount {dir}"));
    // Over the tree's root: every tree is walked again, the new root first.
    let mark = d.audit_len();
    root(&format!("mount -t tmpfs warrant-95 {tree} && echo '# root' > {tree}/95.conf"));
    changed(mark, "a tmpfs mounted over the tree's root", "mounted", tree);
    refused(mark, "over the root", &format!("{tree}/95.conf"));
    root(&format!("umount {tree}"));
    d.apply_next_policy(&demo);
    root(&format!("rm -r {tree} {source}"));
}
