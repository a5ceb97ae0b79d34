//! Kernel tier: the mount family beyond mount(2) (files.rs has that) that
//! a subject may not use: the new mount API by every entry, freezing or
//! shutting down a file system, device-mapper changes.

use std::process::Command;

use crate::files::{expect_script_refused, expect_syscall_refused, syscall_script};
use crate::harness::{self, daemon, run_subject};

/// mount_setattr(2) on `path` with `attr_set`, made through the 32-bit
/// entry (int 0x80) from a 64-bit process: python that exits with the
/// errno. The code and its arguments sit in one page below 4 GiB.
fn mount_setattr_by_int80(path: &str, attr_set: u64) -> String {
    format!(
        "import ctypes,sys\n\
         libc=ctypes.CDLL(None,use_errno=True)\n\
         libc.mmap.restype=ctypes.c_void_p\n\
         libc.mmap.argtypes=[ctypes.c_void_p,ctypes.c_size_t,ctypes.c_int,ctypes.c_int,ctypes.c_int,ctypes.c_long]\n\
         page=libc.mmap(None,4096,7,0x62,-1,0)\n\
         path=b'{path}\\0'\n\
         ctypes.memmove(page+256,path,len(path))\n\
         ctypes.memmove(page+512,(ctypes.c_uint64*4)({attr_set},0,0,0),32)\n\
         le=lambda n: (n&0xffffffff).to_bytes(4,'little')\n\
         code=b'\\x53\\xb8'+le(442)+b'\\xbb'+le(-100)+b'\\xb9'+le(page+256)+b'\\x31\\xd2\\xbe'+le(page+512)+b'\\xbf'+le(32)+b'\\xcd\\x80\\x5b\\x48\\x63\\xc0\\xc3'\n\
         ctypes.memmove(page,code,len(code))\n\
         r=ctypes.CFUNCTYPE(ctypes.c_long)(page)()\n\
         sys.exit(-r if r<0 else 0)\n"
    )
}

/// The new mount API reaches what mount(2) does without its hook: a new
/// superblock (fsopen, fsconfig's create, fsmount), a live one's options
/// (fspick, reconfigure), a mount's flags in place (mount_setattr, also
/// by the 32-bit entry, and 7.x's open_tree_attr), a clone (open_tree).
/// Each asks for CAP_SYS_ADMIN first, where a subject is refused. So is
/// freezing a file system. Root keeps them all; a subject keeps open_tree
/// without a clone (an O_PATH descriptor).
#[test]
#[ignore = "kernel tier: run by `cargo xtask test` in the VM"]
fn subjects_cannot_mount_or_remount_through_the_new_mount_api() {
    let d = daemon();
    let scratch = Scratch::mount();
    let scratch = scratch.0;
    // The mount's own flags (mountinfo's sixth field) and the superblock's
    // options, of the last mount at exactly that point.
    let options = || {
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        let line = mounts
            .lines()
            .rfind(|line| line.split_whitespace().nth(4) == Some(scratch))
            .expect("the scratch mount")
            .to_owned();
        let fields: Vec<&str> = line.split_whitespace().collect();
        (fields[5].to_owned(), fields.last().unwrap().to_string())
    };
    let mount_api = "self.mount";
    // fsopen(430); with an fs context, fsconfig(431) FSCONFIG_CMD_CREATE (6) would build the superblock.
    expect_syscall_refused(d, "fsopen", "", "430,b'cgroup2',0", mount_api);
    // fspick(433) of a live superblock, for FSCONFIG_CMD_RECONFIGURE (7).
    expect_syscall_refused(d, "fspick", "", &format!("433,-100,b'{scratch}',0"), mount_api);
    // mount_setattr(442), MOUNT_ATTR_RDONLY (1) in a 32-byte mount_attr, by both entries.
    let attr = "a=(ctypes.c_uint64*4)(1,0,0,0); ";
    let setattr = format!("442,-100,b'{scratch}',0,a,32");
    expect_syscall_refused(d, "mount_setattr", attr, &setattr, mount_api);
    expect_script_refused(d, "mount_setattr by int 0x80", &mount_setattr_by_int80(scratch, 1), mount_api);
    // open_tree(428) with OPEN_TREE_CLONE (1): a detached copy.
    expect_syscall_refused(d, "open_tree clone", "", &format!("428,-100,b'{scratch}',1"), mount_api);
    // open_tree_attr(467, 6.15): open_tree and mount_setattr in one call.
    let mark = d.audit_len();
    let tree_attr = run_subject(&["python3", "-c", &syscall_script(attr, &format!("467,-100,b'{scratch}',0,a,32"))]);
    match tree_attr.status.code() {
        Some(1) => _ = d.expect_record(mark, mount_api, "*", "denied"),
        Some(38) if !kernel_at_least(6, 15) => eprintln!("open_tree_attr: not before 6.15 (ENOSYS)"),
        other => panic!("open_tree_attr from a subject: {other:?} {}", tree_attr.stderr),
    }
    // FIFREEZE (0xc0045877) on the file system.
    let freeze = format!("fd=os.open('{scratch}',os.O_RDONLY); ");
    expect_syscall_refused(d, "FIFREEZE", &freeze, "16,fd,0xc0045877,ctypes.byref(ctypes.c_int(0))", mount_api);
    // FS_IOC_SHUTDOWN (0x8004587d): tmpfs has none (ENOTTY), so an EPERM is Warrant's.
    let shutdown = "16,fd,0x8004587d,ctypes.byref(ctypes.c_int(0))";
    expect_syscall_refused(d, "FS_IOC_SHUTDOWN", &freeze, shutdown, mount_api);
    let (flags, superblock) = options();
    assert!(
        flags.starts_with("rw,") && !flags.contains("noexec") && superblock.contains("size=4096k"),
        "a subject changed the mount: {flags} {superblock}"
    );
    // Descriptors root made, handed to a subject: a context to create, a
    // created one to mount, a picked one to reconfigure, a clone to attach.
    let handed = format!(
        "import ctypes,subprocess,sys; libc=ctypes.CDLL(None,use_errno=True)\n\
         create=libc.syscall(430,b'tmpfs',0); created=libc.syscall(430,b'tmpfs',0)\n\
         assert libc.syscall(431,created,6,None,None,0)==0, ctypes.get_errno()\n\
         pick=libc.syscall(433,-100,b'{scratch}',0); clone=libc.syscall(428,-100,b'{scratch}',1)\n\
         fds=[create,created,pick,clone]; assert min(fds)>=0, fds; print(fds,file=sys.stderr)\n\
         sub=('import ctypes,sys; libc=ctypes.CDLL(None,use_errno=True)\\n'\n\
              'e=lambda r: ctypes.get_errno() if r<0 else 0\\n'\n\
              f'r=[e(libc.syscall(431,{{create}},6,None,None,0)),e(libc.syscall(432,{{created}},0,0)),'\n\
              f'e(libc.syscall(431,{{pick}},7,None,None,0)),e(libc.syscall(429,{{clone}},b\"\",-100,b\"{scratch}/over\",4))]\\n'\n\
              'print(r,file=sys.stderr); sys.exit(0 if r==[1,1,1,1] else 2)')\n\
         keep=[a for f in fds for a in ('--keep-fd',str(f))]\n\
         sys.exit(subprocess.run([{warrant:?},'--config',{config:?},'run','--profile','agent',*keep,'--','python3','-c',sub],pass_fds=fds).returncode)\n",
        warrant = harness::warrant_bin().display().to_string(),
        config = d.config.display().to_string(),
    );
    let mark = d.audit_len();
    let given = Command::new("python3").args(["-c", &handed]).output().unwrap();
    assert!(given.status.success(), "handed mount fds: {}", String::from_utf8_lossy(&given.stderr));
    // One refusal each: move_mount's own hook alone would make one.
    d.expect_records_where(mark, 4, "four self.mount refusals", |r| r["action"] == mount_api);
    // Device-mapper: a subject may read (version) but not change a mapping.
    assert!(Command::new("modprobe").arg("dm_mod").status().unwrap().success());
    let version = run_subject(&["dmsetup", "version"]);
    assert!(version.status.success(), "a subject's dmsetup version: {}", version.stderr);
    let mark = d.audit_len();
    let create = run_subject(&["dmsetup", "create", "warrant-test", "--table", "0 8 zero"]);
    assert!(!create.status.success(), "a subject created a device-mapper device");
    d.expect_record(mark, "self.blockdev", "*", "denied");
    let by_root = Command::new("dmsetup").args(["create", "warrant-test", "--table", "0 8 zero"]).status();
    assert!(by_root.unwrap().success(), "root's dmsetup create");
    // A subject may not suspend root's device (which freezes a file system on it).
    let mark = d.audit_len();
    let suspend = run_subject(&["dmsetup", "suspend", "warrant-test"]);
    assert!(!suspend.status.success(), "a subject suspended a device-mapper device");
    d.expect_record(mark, "self.blockdev", "*", "denied");
    // A subject keeps open_tree without a clone: an O_PATH descriptor.
    let plain = run_subject(&["python3", "-c", &syscall_script("", &format!("428,-100,b'{scratch}',0"))]);
    assert_eq!(plain.status.code(), Some(0), "a subject's plain open_tree: {}", plain.stderr);
    // Root: every call works (the freeze reaches the file system, which may not support it).
    let as_root = format!(
        "import ctypes,os,sys; libc=ctypes.CDLL(None,use_errno=True)\n\
         fd=libc.syscall(430,b'tmpfs',0); assert libc.syscall(431,fd,6,None,None,0)==0, ctypes.get_errno()\n\
         assert libc.syscall(432,fd,0,0)>=0, ctypes.get_errno()\n\
         fd=libc.syscall(433,-100,b'{scratch}',0); libc.syscall(431,fd,1,b'size',b'1m',0)\n\
         assert libc.syscall(431,fd,7,None,None,0)==0, ctypes.get_errno()\n\
         assert libc.syscall(428,-100,b'{scratch}',1)>=0, ctypes.get_errno()\n\
         {attr}assert libc.syscall({setattr})==0, ctypes.get_errno()\n\
         fd=os.open('{scratch}',os.O_RDONLY); r=libc.syscall(16,fd,0xc0045877,ctypes.byref(ctypes.c_int(0)))\n\
         assert r==0 or ctypes.get_errno()!=1, 'FIFREEZE: EPERM'\n\
         r==0 and libc.syscall(16,fd,0xc0045878,ctypes.byref(ctypes.c_int(0)))\n"
    );
    let root = Command::new("python3").args(["-c", &as_root]).output().unwrap();
    let by_int80 = Command::new("python3").args(["-c", &mount_setattr_by_int80(scratch, 8)]).status();
    let (flags, superblock) = options();
    assert!(root.status.success(), "root's new mount API calls: {}", String::from_utf8_lossy(&root.stderr));
    assert_eq!(by_int80.unwrap().code(), Some(0), "root's mount_setattr by int 0x80");
    assert!(
        flags.starts_with("ro,") && flags.contains("noexec") && superblock.contains("size=1024k"),
        "root's changes: {flags} {superblock}"
    );
}

/// The scratch tmpfs, and what a failed run could leave: unmounted with
/// anything a refusal that failed mounted inside it (lazily: whatever is
/// under it goes too), and the device-mapper device removed, whatever the
/// test's outcome. (/mnt itself is the VM's own tmpfs, which later tests use.)
struct Scratch(&'static str);

impl Scratch {
    fn mount() -> Self {
        let path = "/mnt/new-mount-api";
        std::fs::create_dir_all(path).unwrap();
        let mount = Command::new("mount").args(["-t", "tmpfs", "-o", "size=4m", "scratch", path]).status();
        assert!(mount.unwrap().success(), "mounting the scratch tmpfs");
        // Where a handed clone would be attached, were move_mount allowed.
        std::fs::create_dir_all(format!("{path}/over")).unwrap();
        Scratch(path)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = Command::new("umount").args(["-l", self.0]).status();
        let _ = Command::new("dmsetup").args(["remove", "warrant-test"]).output();
    }
}

/// Whether the running kernel is `major.minor` or newer.
fn kernel_at_least(major: u32, minor: u32) -> bool {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mut numbers = release.split(|c: char| !c.is_ascii_digit()).filter_map(|n| n.parse::<u32>().ok());
    (numbers.next().unwrap_or(0), numbers.next().unwrap_or(0)) >= (major, minor)
}
