//! The syscall loops, each timing itself: a fresh process runs one loop,
//! so only the syscalls (and the hooks they pass) are in the figure, never
//! the process start or an interpreter.

use std::ffi::CString;
use std::io::{Error, Result};
use std::os::unix::ffi::{OsStrExt as _, OsStringExt as _};
use std::path::Path;
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Workload {
    /// open(O_RDONLY) + close.
    OpenCloseRead,
    /// open(O_WRONLY) + close.
    OpenCloseWrite,
    /// stat of the file.
    Stat,
    /// pread of 4 KiB from an open file.
    Read4k,
    /// pwrite of 4 KiB to an open file.
    Write4k,
    /// mmap of 4 KiB of the file (shared, read-write) + munmap.
    Mmap,
    /// fork, the child exits, the parent waits.
    ForkWait,
    /// fork + exec of /bin/true + wait.
    ExecTrue,
    /// connect to a unix socket (the orchestrator listens) + close.
    UnixConnect,
    /// pipe2 + close of both ends: a file with no name, made and freed (as
    /// every shell pipeline does).
    Pipe,
    /// A new file beside the one given (O_CREAT|O_EXCL) + close + unlink:
    /// what every temporary file costs.
    CreateUnlink,
    /// mount of a new tmpfs beside the file + umount: a superblock made and
    /// shut down (as a container's start and exit do, several each). Not a
    /// subject's: subjects may not mount.
    MountUmount,
    /// send of 64 bytes on a UDP socket connected to a loopback port
    /// (`UDP_PORT`; nothing reads it, the kernel drops what overflows).
    UdpSend,
    /// An rtnetlink link dump (read-only) on a fresh socket.
    NetlinkDump,
    /// getppid: passes no hook, the control.
    Getppid,
}

impl Workload {
    pub const ALL: [Workload; 15] = [
        Workload::OpenCloseRead,
        Workload::OpenCloseWrite,
        Workload::Stat,
        Workload::Read4k,
        Workload::Write4k,
        Workload::Mmap,
        Workload::ForkWait,
        Workload::ExecTrue,
        Workload::UnixConnect,
        Workload::Pipe,
        Workload::CreateUnlink,
        Workload::MountUmount,
        Workload::UdpSend,
        Workload::NetlinkDump,
        Workload::Getppid,
    ];

    /// The name in the bench's output (the clap value name).
    pub fn name(self) -> String {
        clap::ValueEnum::to_possible_value(&self).map(|v| v.get_name().to_owned()).unwrap_or_default()
    }

    /// Whether a subject may run it (subjects may not mount).
    pub fn for_subjects(self) -> bool {
        self != Workload::MountUmount
    }

    /// Whether it works on the file it is given (and so is measured on a
    /// protected file too).
    pub fn uses_file(self) -> bool {
        matches!(
            self,
            Workload::OpenCloseRead
                | Workload::OpenCloseWrite
                | Workload::Stat
                | Workload::Read4k
                | Workload::Write4k
                | Workload::Mmap
        )
    }
}

/// Runs `iterations` of `workload` (after a tenth as many unmeasured) and
/// returns the time of the measured ones.
pub fn run(workload: Workload, iterations: u64, file: &Path, socket: &Path) -> Result<Duration> {
    let path = CString::new(file.as_os_str().as_bytes()).map_err(Error::other)?;
    let mut step = step_for(workload, &path, socket)?;
    for _ in 0..iterations.div_ceil(10) {
        step()?;
    }
    let start = Instant::now();
    for _ in 0..iterations {
        step()?;
    }
    Ok(start.elapsed())
}

/// open(O_WRONLY) + close of `file`, `rate` times a second (0: unpaced),
/// for `duration`; returns how many were done.
pub fn paced_opens(file: &Path, rate: u64, duration: Duration) -> Result<u64> {
    let path = CString::new(file.as_os_str().as_bytes()).map_err(Error::other)?;
    let start = Instant::now();
    let mut done = 0u64;
    while start.elapsed() < duration {
        if rate > 0 {
            let due = Duration::from_secs_f64(done as f64 / rate as f64);
            if let Some(wait) = due.checked_sub(start.elapsed()) {
                std::thread::sleep(wait);
            }
        }
        open_close(&path, libc::O_WRONLY)?;
        done += 1;
    }
    Ok(done)
}

/// The loopback port `UdpSend` sends to (policies/bench.toml names it).
pub const UDP_PORT: u16 = 47011;

type Step<'a> = Box<dyn FnMut() -> Result<()> + 'a>;

fn step_for<'a>(workload: Workload, path: &'a CString, socket: &Path) -> Result<Step<'a>> {
    Ok(match workload {
        Workload::OpenCloseRead => Box::new(move || open_close(path, libc::O_RDONLY)),
        Workload::OpenCloseWrite => Box::new(move || open_close(path, libc::O_WRONLY)),
        Workload::Stat => Box::new(move || {
            // SAFETY: a zeroed stat is a valid out buffer; `path` is NUL-terminated.
            let mut st: libc::stat = unsafe { std::mem::zeroed() };
            check(unsafe { libc::stat(path.as_ptr(), &mut st) })
        }),
        Workload::Read4k => {
            let fd = Fd::open(path, libc::O_RDONLY)?;
            let mut buf = vec![0u8; 4096];
            Box::new(move || {
                // SAFETY: `buf` is 4096 writable bytes.
                check_len(unsafe { libc::pread(fd.raw(), buf.as_mut_ptr().cast(), buf.len(), 0) })
            })
        }
        Workload::Write4k => {
            let fd = Fd::open(path, libc::O_WRONLY)?;
            let buf = vec![0x5au8; 4096];
            Box::new(move || {
                // SAFETY: `buf` is 4096 readable bytes.
                check_len(unsafe { libc::pwrite(fd.raw(), buf.as_ptr().cast(), buf.len(), 0) })
            })
        }
        Workload::Mmap => {
            let fd = Fd::open(path, libc::O_RDWR)?;
            Box::new(move || {
                let prot = libc::PROT_READ | libc::PROT_WRITE;
                // SAFETY: a new shared mapping of 4 KiB of an open file, unmapped at once.
                let map = unsafe { libc::mmap(std::ptr::null_mut(), 4096, prot, libc::MAP_SHARED, fd.raw(), 0) };
                if map == libc::MAP_FAILED {
                    return Err(Error::last_os_error());
                }
                check(unsafe { libc::munmap(map, 4096) })
            })
        }
        Workload::ForkWait => Box::new(|| fork_and_wait(|| {})),
        Workload::ExecTrue => Box::new(|| {
            let program = c"/bin/true";
            let argv = [program.as_ptr(), std::ptr::null()];
            // SAFETY: in the child, execv with a NUL-terminated argv; _exit if it fails.
            fork_and_wait(|| unsafe {
                libc::execv(program.as_ptr(), argv.as_ptr());
            })
        }),
        Workload::UnixConnect => {
            // The orchestrator listens there for the whole run.
            let socket = socket.to_owned();
            Box::new(move || std::os::unix::net::UnixStream::connect(&socket).map(drop))
        }
        Workload::UdpSend => {
            // The connect is `ipc.loopback` for a subject, decided once
            // (policies/bench.toml allows the port); the sends are not.
            let receiver = std::net::UdpSocket::bind(("127.0.0.1", UDP_PORT))?;
            let sender = std::net::UdpSocket::bind(("127.0.0.1", 0))?;
            sender.connect(("127.0.0.1", UDP_PORT))?;
            let payload = [0x5au8; 64];
            Box::new(move || {
                let _keep = &receiver;
                sender.send(&payload).map(drop)
            })
        }
        Workload::CreateUnlink => {
            let name = Path::new(std::ffi::OsStr::from_bytes(path.as_bytes()))
                .with_file_name(format!("new-{}", std::process::id()));
            let name = CString::new(name.into_os_string().into_vec()).map_err(Error::other)?;
            Box::new(move || {
                let flags = libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY | libc::O_CLOEXEC;
                // SAFETY: `name` is NUL-terminated; the file is closed and unlinked at once.
                let fd = unsafe { libc::open(name.as_ptr(), flags, 0o600) };
                if fd < 0 {
                    return Err(Error::last_os_error());
                }
                drop(Fd(fd));
                check(unsafe { libc::unlink(name.as_ptr()) })
            })
        }
        Workload::MountUmount => {
            let dir = Path::new(std::ffi::OsStr::from_bytes(path.as_bytes()))
                .with_file_name(format!("mount-{}", std::process::id()));
            std::fs::create_dir_all(&dir)?;
            let dir = CString::new(dir.into_os_string().into_vec()).map_err(Error::other)?;
            Box::new(move || {
                // SAFETY: NUL-terminated strings; the mount is undone at once.
                check(unsafe { libc::mount(c"bench".as_ptr(), dir.as_ptr(), c"tmpfs".as_ptr(), 0, std::ptr::null()) })?;
                check(unsafe { libc::umount2(dir.as_ptr(), 0) })
            })
        }
        Workload::Pipe => Box::new(|| {
            let mut ends = [0 as libc::c_int; 2];
            // SAFETY: `ends` is two writable ints; both are closed at once.
            check(unsafe { libc::pipe2(ends.as_mut_ptr(), libc::O_CLOEXEC) })?;
            drop((Fd(ends[0]), Fd(ends[1])));
            Ok(())
        }),
        Workload::NetlinkDump => Box::new(netlink_link_dump),
        Workload::Getppid => Box::new(|| {
            // SAFETY: getppid has no arguments and cannot fail.
            std::hint::black_box(unsafe { libc::getppid() });
            Ok(())
        }),
    })
}

struct Fd(libc::c_int);

impl Fd {
    fn open(path: &CString, flags: libc::c_int) -> Result<Fd> {
        // SAFETY: `path` is NUL-terminated.
        let fd = unsafe { libc::open(path.as_ptr(), flags | libc::O_CLOEXEC) };
        if fd < 0 { Err(Error::last_os_error()) } else { Ok(Fd(fd)) }
    }

    /// Through `&self`, so a closure that uses it owns the whole Fd (and
    /// the descriptor stays open as long as the closure).
    fn raw(&self) -> libc::c_int {
        self.0
    }
}

impl Drop for Fd {
    fn drop(&mut self) {
        // SAFETY: our own descriptor, closed once.
        unsafe { libc::close(self.0) };
    }
}

fn open_close(path: &CString, flags: libc::c_int) -> Result<()> {
    Fd::open(path, flags).map(drop)
}

fn check(rc: libc::c_int) -> Result<()> {
    if rc < 0 { Err(Error::last_os_error()) } else { Ok(()) }
}

fn check_len(rc: isize) -> Result<()> {
    if rc < 0 { Err(Error::last_os_error()) } else { Ok(()) }
}

/// Forks; the child runs `child` then exits; the parent waits for it.
fn fork_and_wait(child: impl FnOnce()) -> Result<()> {
    // SAFETY: the child only calls async-signal-safe functions (execv, _exit).
    match unsafe { libc::fork() } {
        -1 => Err(Error::last_os_error()),
        0 => {
            child();
            // SAFETY: leaving the child without running the parent's destructors.
            unsafe { libc::_exit(0) }
        }
        pid => {
            let mut status = 0;
            // SAFETY: waiting for our own child.
            check(unsafe { libc::waitpid(pid, &mut status, 0) })?;
            if libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0 {
                Ok(())
            } else {
                Err(Error::other(format!("child ended with status {status:#x}")))
            }
        }
    }
}

/// RTM_GETLINK with NLM_F_DUMP on a fresh NETLINK_ROUTE socket, read to NLMSG_DONE.
fn netlink_link_dump() -> Result<()> {
    // SAFETY: a new socket, owned by `fd` below.
    let raw = unsafe { libc::socket(libc::AF_NETLINK, libc::SOCK_RAW | libc::SOCK_CLOEXEC, libc::NETLINK_ROUTE) };
    if raw < 0 {
        return Err(Error::last_os_error());
    }
    let fd = Fd(raw);
    // nlmsghdr (16 bytes) + ifinfomsg (16 bytes).
    let mut request = [0u8; 32];
    request[0..4].copy_from_slice(&32u32.to_ne_bytes());
    request[4..6].copy_from_slice(&libc::RTM_GETLINK.to_ne_bytes());
    request[6..8].copy_from_slice(&((libc::NLM_F_REQUEST | libc::NLM_F_DUMP) as u16).to_ne_bytes());
    request[8..12].copy_from_slice(&1u32.to_ne_bytes());
    request[16] = libc::AF_UNSPEC as u8;
    // SAFETY: `request` is 32 readable bytes.
    check_len(unsafe { libc::send(fd.0, request.as_ptr().cast(), request.len(), 0) })?;
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        // SAFETY: `buf` is writable for its length.
        let len = unsafe { libc::recv(fd.0, buf.as_mut_ptr().cast(), buf.len(), 0) };
        check_len(len)?;
        let mut offset = 0usize;
        while offset + 16 <= len as usize {
            let message_len = u32::from_ne_bytes(buf[offset..offset + 4].try_into().unwrap()) as usize;
            let message_type = u16::from_ne_bytes(buf[offset + 4..offset + 6].try_into().unwrap());
            if message_type == libc::NLMSG_DONE as u16 {
                return Ok(());
            }
            if message_type == libc::NLMSG_ERROR as u16 {
                return Err(Error::other("the link dump was answered with an error"));
            }
            if message_len < 16 {
                return Err(Error::other("a netlink message shorter than its header"));
            }
            offset += (message_len + 3) & !3;
        }
    }
}
