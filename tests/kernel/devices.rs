//! Kernel tier: stopping the disk under the audit log without a mount: the
//! sysfs attributes that remove, reset or fail a device or a file system
//! (`self.device`), and the loop and block ioctls that change a disk
//! (`self.blockdev`), refused to a subject whatever fd it holds; root keeps
//! them, and a subject keeps the reads.

use std::process::Command;

use crate::files::{expect_script_refused, expect_syscall_refused};
use crate::harness::{self, daemon, run_subject};

/// Python that opens `path` for writing, writes `value` (if any) and exits
/// with the errno (0 when both worked; 99 for any other failure, so that 1
/// is EPERM alone).
fn write_script(path: &str, value: Option<&str>) -> String {
    let write = value.map(|value| format!("; os.write(fd,b'{value}')")).unwrap_or_default();
    errno_script(&format!("fd=os.open('{path}',os.O_WRONLY){write}"))
}

/// Python `body` (one line) that exits with the errno of the OSError it
/// raises, 99 for any other failure, 0 if none.
fn errno_script(body: &str) -> String {
    format!(
        "import ctypes,fcntl,os,struct,sys\ntry:\n {body}\nexcept OSError as e: sys.exit(e.errno)\nexcept Exception: sys.exit(99)"
    )
}

/// A subject may not fail an ext4 file system by its sysfs
/// `trigger_fs_error` or take its room (`reserved_clusters`), replay a
/// disk's uevent, reset a zram disk (also through an fd root opened and
/// handed over), unbind a driver, write a PCI device's configuration space
/// (by sysfs or /proc) or registers, detach or resize a loop device, make a
/// block device read-only, or zero or discard it through root's write fd;
/// a network device's uevent is decided as a link change. It may read a
/// loop device's status and a block device's flag. Root writes
/// `trigger_fs_error`, `reserved_clusters`, the uevent and zram's `reset`,
/// and makes BLKROSET and LOOP_SET_CAPACITY (no PCI file: a write there
/// could hang the VM).
#[test]
#[ignore = "kernel tier: run by `cargo xtask test` in the VM"]
fn subjects_cannot_stop_a_disk_or_its_file_system() {
    let d = daemon();
    let disk = ScratchDisk::new();
    let loop_dev = disk.loop_dev.as_str();
    let name = loop_dev.trim_start_matches("/dev/");
    let fs_error = format!("/sys/fs/ext4/{name}/trigger_fs_error");
    let errors = || std::fs::read_to_string(format!("/sys/fs/ext4/{name}/errors_count")).unwrap().trim().to_owned();
    let device = "self.device";
    expect_script_refused(d, "trigger_fs_error", &write_script(&fs_error, Some("warrant")), device);
    assert_eq!(errors(), "0", "a subject's trigger_fs_error reached ext4");
    // A driver's unbind: refused at the open, before any name is read.
    let unbind = "/sys/bus/pci/drivers/virtio-pci/unbind";
    expect_script_refused(d, "a driver's unbind", &write_script(unbind, None), device);
    // A device's uevent, which root's device manager acts on ("remove" has
    // systemd stop the mounts bound to the device).
    let uevent = format!("/sys/block/{name}/uevent");
    expect_script_refused(d, "a disk's uevent", &write_script(&uevent, Some("change")), device);
    // zram0, unused: its `reset` by a subject, then through root's fd.
    assert!(Command::new("modprobe").arg("zram").status().unwrap().success(), "modprobe zram");
    let reset = "/sys/block/zram0/reset";
    expect_script_refused(d, "zram's reset", &write_script(reset, Some("1")), device);
    let mark = d.audit_len();
    let write_one = errno_script("os.write(FD,b'1')");
    assert_eq!(
        with_root_fd(reset, "os.O_WRONLY", &write_one),
        Some(1),
        "a subject's write to zram's reset through root's fd"
    );
    d.expect_record(mark, device, "*", "denied");
    // A PCI device's configuration space, by sysfs and by /proc (a
    // guarded surface), and its registers (`resource0`).
    let pci = std::fs::read_dir("/sys/bus/pci/devices")
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .find(|device| device.join("resource0").exists() && device.to_string_lossy().contains("/0000:"))
        .expect("a PCI device with a BAR in the VM");
    let config = pci.join("config").display().to_string();
    expect_script_refused(d, "PCI config by sysfs", &write_script(&config, None), device);
    let resource = pci.join("resource0").display().to_string();
    expect_script_refused(d, "PCI resource0", &write_script(&resource, None), device);
    // Its registers by a shared writable mapping, through root's fd.
    // By libc, not python's mmap module, which checks the size first (an
    // I/O BAR's file is smaller than a page); the hook comes before the BAR's.
    let map = errno_script(
        "libc=ctypes.CDLL(None,use_errno=True); libc.mmap.restype=ctypes.c_void_p; \
         r=libc.mmap(None,4096,3,1,FD,0); sys.exit(ctypes.get_errno() if r in (None,2**64-1) else 0)",
    );
    let mark = d.audit_len();
    assert_eq!(with_root_fd(&resource, "os.O_RDWR", &map), Some(1), "a subject's shared writable mapping of resource0");
    d.expect_record(mark, device, "*", "denied");
    let address = pci.file_name().unwrap().to_str().unwrap().to_owned();
    let (bus, slot) = (&address[5..7], &address[8..]);
    let mark = d.audit_len();
    let proc_config = format!("/proc/bus/pci/{bus}/{slot}");
    let by_proc = run_subject(&["python3", "-c", &write_script(&proc_config, None)]);
    assert_eq!(by_proc.status.code(), Some(1), "a subject's PCI config write by /proc: {}", by_proc.stderr);
    d.expect_record(mark, "file.write", &proc_config, "denied");
    // ext4's reserved clusters: every write ENOSPC.
    let reserved = format!("/sys/fs/ext4/{name}/reserved_clusters");
    let reserved_before = std::fs::read_to_string(&reserved).unwrap().trim().to_owned();
    expect_script_refused(d, "ext4's reserved_clusters", &write_script(&reserved, Some("2000")), device);
    // A network device's uevent is a link change: decided as one (denied here).
    let mark = d.audit_len();
    let lo = run_subject(&["python3", "-c", &write_script("/sys/class/net/lo/uevent", Some("change"))]);
    assert_eq!(lo.status.code(), Some(1), "a subject's uevent of lo: {}", lo.stderr);
    d.expect_denied(mark, "net.link.set");
    // Loop and block ioctls: the reads stay, the changes go.
    let status = run_subject(&["losetup", loop_dev]);
    assert!(status.status.success(), "a subject's losetup (status): {}", status.stderr);
    let read_only = run_subject(&["blockdev", "--getro", loop_dev]);
    assert!(read_only.status.success(), "a subject's blockdev --getro: {}", read_only.stderr);
    // By ioctl on a read-only fd (no write open to refuse first): LOOP_CLR_FD,
    // LOOP_SET_CAPACITY, BLKROSET.
    let open = format!("fd=os.open('{loop_dev}',os.O_RDONLY); ");
    let one = "ctypes.byref(ctypes.c_int(1))";
    for (what, call) in [
        ("LOOP_CLR_FD", "16,fd,0x4c01,0".to_owned()),
        ("LOOP_SET_CAPACITY", "16,fd,0x4c07,0".into()),
        ("BLKROSET", format!("16,fd,0x125d,{one}")),
    ] {
        expect_syscall_refused(d, what, &open, &call, "self.blockdev");
    }
    // Through a write fd root opened and handed over: BLKZEROOUT, BLKDISCARD.
    for (what, cmd) in [("BLKZEROOUT", "0x127f"), ("BLKDISCARD", "0x1277")] {
        let zero = errno_script(&format!("fcntl.ioctl(FD,{cmd},struct.pack('QQ',0,4096))"));
        let mark = d.audit_len();
        assert_eq!(with_root_fd(loop_dev, "os.O_RDWR", &zero), Some(1), "a subject's {what} through root's fd");
        d.expect_record(mark, "self.blockdev", "*", "denied");
    }
    let attached = Command::new("losetup").arg(loop_dev).output().unwrap();
    assert!(attached.status.success(), "a subject detached {loop_dev}");
    let flag = Command::new("blockdev").args(["--getro", loop_dev]).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&flag.stdout).trim(), "0", "a subject made {loop_dev} read-only");
    // Root: each of them works.
    let root_write =
        |path: &str, value: &str| Command::new("python3").args(["-c", &write_script(path, Some(value))]).status();
    assert_eq!(root_write(&fs_error, "warrant").unwrap().code(), Some(0), "root's trigger_fs_error");
    assert_ne!(errors(), "0", "root's trigger_fs_error did not reach ext4");
    assert_eq!(root_write(reset, "1").unwrap().code(), Some(0), "root's zram reset");
    assert_eq!(root_write(&uevent, "change").unwrap().code(), Some(0), "root's uevent");
    assert_eq!(root_write(&reserved, &reserved_before).unwrap().code(), Some(0), "root's reserved_clusters");
    let unbound = root_write(unbind, "0000:ff:1f.7").unwrap().code();
    assert!(unbound.is_some_and(|errno| errno != 1), "root's unbind of no device: {unbound:?}");
    for change in [&["--setro", loop_dev][..], &["--setrw", loop_dev]] {
        assert!(Command::new("blockdev").args(change).status().unwrap().success(), "root's blockdev {change:?}");
    }
    assert!(Command::new("losetup").args(["-c", loop_dev]).status().unwrap().success(), "root's losetup -c");
}

/// Root opens `path` with `flags` (python's `os` names) and hands the fd
/// to a subject running python `script`, in which `FD` stands for its
/// number: the subject's exit code.
fn with_root_fd(path: &str, flags: &str, script: &str) -> Option<i32> {
    harness::with_root_fd_from(&format!("fd=os.open('{path}',{flags})"), script)
}

/// An ext4 file system on a loop device, mounted `errors=continue` (so that
/// root's own trigger_fs_error leaves it writable), taken down whatever the
/// test's outcome.
struct ScratchDisk {
    loop_dev: String,
}

const IMAGE: &str = "/mnt/warrant-disk.img";
const MOUNT: &str = "/mnt/warrant-disk";

impl ScratchDisk {
    fn new() -> Self {
        let root = |program: &str, args: &[&str]| {
            let out = Command::new(program).args(args).output().unwrap();
            assert!(out.status.success(), "{program} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
            String::from_utf8_lossy(&out.stdout).trim().to_owned()
        };
        // The guard first: whatever fails below is taken down.
        let mut disk = ScratchDisk { loop_dev: String::new() };
        root("truncate", &["-s", "8M", IMAGE]);
        root("mkfs.ext4", &["-q", "-F", IMAGE]);
        assert!(Command::new("modprobe").arg("loop").status().unwrap().success(), "modprobe loop");
        disk.loop_dev = root("losetup", &["--find", "--show", IMAGE]);
        std::fs::create_dir_all(MOUNT).unwrap();
        root("mount", &["-o", "errors=continue", &disk.loop_dev, MOUNT]);
        disk
    }
}

impl Drop for ScratchDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(MOUNT).status();
        if !self.loop_dev.is_empty() {
            let _ = Command::new("losetup").args(["-d", &self.loop_dev]).status();
        }
        let _ = std::fs::remove_file(IMAGE);
        let _ = std::fs::remove_dir(MOUNT);
        // The test loads zram for its reset; no other test uses it.
        let _ = Command::new("rmmod").arg("zram").status();
    }
}
