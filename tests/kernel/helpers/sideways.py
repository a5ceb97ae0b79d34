"""Sideways routes for the kernel tier, where no CLI tool takes them.

    sideways.py tiocsti          TIOCSTI into a fresh pty (types into its reader)
    sideways.py tioclinux        TIOCLINUX (paste the selection) on a fresh pty;
                                 exits with the errno (a pty is no console)
    sideways.py sigio PID SIG    F_SETOWN(PID) + F_SETSIG(SIG) on an O_ASYNC
                                 pipe, then a write: the kernel signals PID
    sideways.py deputy NAME KIND a root deputy: listens on unix socket NAME
                                 (a path, or @name for an abstract one; KIND
                                 stream, seqpacket or dgram) and runs each message it
                                 gets as a shell command; prints "ready"
    sideways.py ask NAME KIND CMD  sends CMD to the deputy at NAME
    sideways.py held-ask GO NAME KIND CMD ALLOWED
                                 connects to the deputy at NAME (KIND stream
                                 or seqpacket) and to
                                 the stream socket ALLOWED, prints
                                 "connected", waits for file GO, then sends
                                 on ALLOWED and sends CMD to the deputy;
                                 prints "allowed=E deputy=E" (errnos, 0: sent)
    sideways.py carry-ring UID keep|cloexec PROGRAM ARGS...
                                 makes an io_uring ring on fd 7 (kept across
                                 exec, or close-on-exec), becomes UID, execs
                                 PROGRAM
    sideways.py register-ring SOCKET PROFILE ring|none PROGRAM ARGS...
                                 as `warrant run` does but without its
                                 own check: (with a ring on fd 7, kept
                                 across exec) asks the daemon at SOCKET to
                                 make it a subject of PROFILE, then execs
                                 PROGRAM; prints "exec=E" if that fails
    sideways.py pass-ring UID    makes an SQPOLL ring, starts a child that
                                 becomes UID and execs `recv-ring`, and
                                 passes it the ring over SCM_RIGHTS; prints
                                 "sent=E" (errno, 0: sent) and the child's
                                 "received=N" (fds it got)
    sideways.py getfd-ring       forks a child that makes a ring, takes it
                                 with pidfd_getfd
    sideways.py sqpoll-held PROCS GO
                                 makes an SQPOLL ring, forks a child that
                                 prints "moving PID", writes its pid to
                                 cgroup file PROCS and waits for file GO (30 s at
                                 most); prints "status=S" (the child's exit
                                 code, -9 if it was killed)
    sideways.py map-held FILE shared|private PROCS GO FREEZE
                                 opens cgroup file FREEZE for writing, maps
                                 FILE writable, moves itself to PROCS,
                                 prints "moving PID" first, forks a child
                                 that keeps the mapping, prints
                                 "child=PID", waits for
                                 file GO (30 s at most), then writes "1" to
                                 FREEZE (prints "freeze=E") and "X" through
                                 the mapping
    sideways.py carry-memory UID rw|ro PROGRAM ARGS...
                                 opens a sleeping child's /proc/PID/mem on fd
                                 7 (kept across exec), becomes UID, execs
                                 PROGRAM
    sideways.py trace-held PROCS GO
                                 forks a child that sleeps and attaches to it
                                 (PTRACE_SEIZE; prints "victim=PID"), prints
                                 "moving PID", writes its pid to cgroup file
                                 PROCS and waits for file GO
    sideways.py traceme-held PROCS GO
                                 forks a child, prints "moving PID", moves
                                 itself to cgroup file PROCS; the child, at
                                 file GO, asks it to trace it (PTRACE_TRACEME)
                                 and it prints "traceme=E"
    sideways.py trace-exec UID PROGRAM ARGS...
                                 attaches to a sleeping child as trace-held
                                 does, becomes UID, execs PROGRAM
    sideways.py raw-send PORT    a crafted UDP datagram to 127.0.0.1:PORT on a
                                 raw IP socket
    sideways.py packet-send PORT the same as a frame on a packet socket on lo
    sideways.py packet-capture   captures on lo the datagram it sends to
                                 127.0.0.1:53 (2: none in 10 s)
    sideways.py connect-keep HOST PORT PROGRAM ARGS...
                                 connects to HOST:PORT over TCP, keeps the
                                 socket on fd 7 and execs PROGRAM
    sideways.py send-fd FD CMD ADDRESS
                                 sends CMD on the socket at FD (to ADDRESS,
                                 HOST:PORT, unless "-") and waits for a reply
    sideways.py udp-send-unspec HOST PORT
                                 a datagram to HOST:PORT addressed as AF_UNSPEC
    sideways.py xdp-setup        an AF_XDP socket's XDP_UMEM_REG
    sideways.py vhost-backend    VHOST_NET_SET_BACKEND with a packet socket
                                 (14, EFAULT, is the kernel's own refusal)
    sideways.py icmp-echo        an echo request to 127.0.0.1 on an ICMP
                                 datagram socket (ping's), and its reply

Exits 0 on success, or with the errno of the failing call (EPERM is 1).
For sigio the write always succeeds: whether the signal arrived is for the
caller to check.
"""
import fcntl
import importlib
import os
import socket
import struct
import sys
import time


class OnFirstUse:
    """A module imported when first used: under the VM's emulated CPU this
    script ran ~1.4 s a call, a third of it importing modules most commands
    never use (subprocess, ctypes)."""

    def __init__(self, name):
        self._name = name

    def __getattr__(self, attr):
        module = importlib.import_module(self._name)
        globals()[self._name] = module
        return getattr(module, attr)


class Libc:
    """libc through ctypes, loaded when first called."""

    def __getattr__(self, attr):
        lib = ctypes.CDLL(None, use_errno=True)
        lib.syscall.restype = ctypes.c_long
        globals()["libc"] = lib
        return getattr(lib, attr)


ctypes = OnFirstUse("ctypes")
mmap = OnFirstUse("mmap")
pty = OnFirstUse("pty")
subprocess = OnFirstUse("subprocess")
termios = OnFirstUse("termios")

F_SETSIG = 10
TIOCLINUX = 0x541C
TIOCL_PASTESEL = 3
SYS_IO_URING_SETUP = 425
IORING_SETUP_SQPOLL = 2
SYS_PIDFD_GETFD = 438
libc = Libc()


def tiocsti():
    master, slave = pty.openpty()
    try:
        fcntl.ioctl(slave, termios.TIOCSTI, b"x")
    except OSError as err:
        return err.errno
    os.read(master, 1)
    return 0


def tioclinux():
    master, slave = pty.openpty()
    try:
        fcntl.ioctl(slave, TIOCLINUX, bytes([TIOCL_PASTESEL]))
    except OSError as err:
        return err.errno
    return 0


def sigio(pid, sig):
    read_end, write_end = os.pipe()
    try:
        fcntl.fcntl(read_end, fcntl.F_SETOWN, pid)
        fcntl.fcntl(read_end, F_SETSIG, sig)
        flags = fcntl.fcntl(read_end, fcntl.F_GETFL)
        fcntl.fcntl(read_end, fcntl.F_SETFL, flags | os.O_ASYNC)
        os.write(write_end, b"x")
    except OSError as err:
        return err.errno
    return 0


def address(name):
    return "\0" + name[1:] if name.startswith("@") else name


KINDS = {"stream": socket.SOCK_STREAM, "seqpacket": socket.SOCK_SEQPACKET, "dgram": socket.SOCK_DGRAM}


def deputy(name, kind):
    stream = kind != "dgram"
    server = socket.socket(socket.AF_UNIX, KINDS[kind])
    if not name.startswith("@") and os.path.exists(name):
        os.unlink(name)
    server.bind(address(name))
    if not name.startswith("@"):
        # Any uid may connect: what stops a subject is Warrant, not the mode.
        os.chmod(name, 0o777)
    if stream:
        server.listen(8)
    print("ready", flush=True)
    if stream:
        serve_commands(server)
    while True:
        subprocess.run(server.recv(4096).decode(), shell=True)


def serve_commands(server):
    """Runs each connection's command and answers its exit status."""
    while True:
        conn, _ = server.accept()
        command = conn.recv(4096)
        result = subprocess.run(command.decode(), shell=True)
        try:
            conn.sendall(str(result.returncode).encode())
        except OSError:
            pass  # the asker is gone
        conn.close()


def ask(name, kind, command):
    stream = kind == "stream"
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM if stream else socket.SOCK_DGRAM)
    try:
        if stream:
            client.connect(address(name))
            client.sendall(command.encode())
            client.recv(16)
        else:
            client.sendto(command.encode(), address(name))
    except OSError as err:
        return err.errno
    return 0


def wait_for(path, seconds=30):
    deadline = time.time() + seconds
    while not os.path.exists(path) and time.time() < deadline:
        time.sleep(0.1)


def sendto_empty_address(conn, data):
    """sendto(2) with an address pointer and a length of 0."""
    name = ctypes.create_string_buffer(16)
    if libc.sendto(conn.fileno(), data, len(data), 0, name, 0) < 0:
        errno = ctypes.get_errno()
        raise OSError(errno, os.strerror(errno))


def held_ask(go, name, kind, command, allowed):
    to_deputy = socket.socket(socket.AF_UNIX, KINDS[kind])
    to_deputy.connect(address(name))
    to_allowed = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    to_allowed.connect(address(allowed))
    print("connected", flush=True)
    wait_for(go)
    results = []
    # The deputy is asked with an address too, one of length 0 (a connected
    # stream socket takes the send), then with none.
    sends = (
        lambda: to_allowed.sendall(b"true"),
        lambda: sendto_empty_address(to_deputy, command.encode()),
        lambda: to_deputy.sendall(command.encode()),
    )
    for send in sends:
        try:
            send()
            results.append(0)
        except OSError as err:
            results.append(err.errno)
    print(f"allowed={results[0]} deputy={results[1]},{results[2]}", flush=True)
    return 0


def io_uring(flags):
    params = (ctypes.c_uint8 * 120)()
    struct.pack_into("I", params, 8, flags)
    fd = libc.syscall(SYS_IO_URING_SETUP, 4, params)
    if fd < 0:
        raise OSError(ctypes.get_errno(), "io_uring_setup")
    return fd


def become_and_exec(uid, program, child=None):
    """Becomes UID and execs PROGRAM; if the exec fails, kills CHILD and
    returns the errno."""
    os.setgid(uid)
    os.setuid(uid)
    try:
        os.execv(program[0], program)
    except OSError as err:
        if child is not None:
            os.kill(child, 9)
        return err.errno


def carry_ring(uid, how, program):
    # On fd 7, where `warrant run --keep-fd 7` finds it.
    made = io_uring(0)
    os.dup2(made, 7, inheritable=how == "keep")
    os.close(made)
    return become_and_exec(uid, program)


def carry_memory(uid, how, program):
    """Opens a sleeping child's /proc/PID/mem (read-write or read-only) on
    fd 7, kept across exec, becomes UID and execs PROGRAM."""
    child = sleeper()
    memory = os.open(f"/proc/{child}/mem", os.O_RDWR if how == "rw" else os.O_RDONLY)
    os.dup2(memory, 7, inheritable=True)
    os.close(memory)
    return become_and_exec(uid, program, child)


def register_ring(socket_path, profile, how, program):
    if how == "ring":
        made = io_uring(0)
        os.dup2(made, 7, inheritable=True)
        os.close(made)
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.connect(socket_path)
    conn.sendall(b'{"op": "register", "profile": "%s", "v": 2}\n' % profile.encode())
    reply = conn.makefile().readline()
    conn.close()
    if '"kind":"registered"' not in reply.replace(" ", ""):
        print(f"register: {reply}", flush=True)
        return 2
    try:
        os.execv(program[0], program)
    except OSError as err:
        print(f"exec={err.errno}", flush=True)
        return 1


def pass_ring(uid):
    ring = io_uring(IORING_SETUP_SQPOLL)
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    os.set_inheritable(theirs.fileno(), True)
    child = os.fork()
    if child == 0:
        os.setgid(uid)
        os.setuid(uid)
        os.execv(sys.executable, [sys.executable, __file__, "recv-ring", str(theirs.fileno())])
    theirs.close()
    try:
        socket.send_fds(ours, [b"r"], [ring])
        print("sent=0", flush=True)
    except OSError as err:
        print(f"sent={err.errno}", flush=True)
        ours.close()
    os.waitpid(child, 0)
    return 0


def recv_ring(fd):
    conn = socket.socket(fileno=fd)
    try:
        _, fds, _, _ = socket.recv_fds(conn, 1, 4)
    except OSError as err:
        print(f"received=error {err.errno}", flush=True)
        return 0
    print(f"received={len(fds)}", flush=True)
    return 0


def getfd_ring():
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:
        os.write(write_end, b"%d\n" % io_uring(0))
        time.sleep(60)
        os._exit(0)
    ring = int(os.read(read_end, 16))
    fd = libc.syscall(SYS_PIDFD_GETFD, os.pidfd_open(child), ring, 0)
    err = 0 if fd >= 0 else ctypes.get_errno()
    os.kill(child, 9)
    os.waitpid(child, 0)
    return err


def sqpoll_held(procs, go):
    io_uring(IORING_SETUP_SQPOLL)
    child = os.fork()
    if child == 0:
        # Said first: the move may get it stopped at once.
        print(f"moving {os.getpid()}", flush=True)
        with open(procs, "w") as cgroup:
            cgroup.write(str(os.getpid()))
        wait_for(go)
        os._exit(0)
    _, status = os.waitpid(child, 0)
    print(f"status={os.waitstatus_to_exitcode(status)}", flush=True)
    return 0


def map_held(path, kind, procs, go, freeze):
    # Opened now, written once a subject: a cgroup control file.
    freezer = os.open(freeze, os.O_WRONLY)
    with open(path, "r+b") as file:
        flags = mmap.MAP_SHARED if kind == "shared" else mmap.MAP_PRIVATE
        mapping = mmap.mmap(file.fileno(), 0, flags, mmap.PROT_READ | mmap.PROT_WRITE)
    # Said first: the move may get it stopped at once.
    print(f"moving {os.getpid()}", flush=True)
    with open(procs, "w") as cgroup:
        cgroup.write(str(os.getpid()))
    # A child forked at once keeps the mapping, and writes through it later.
    child = os.fork()
    if child == 0:
        wait_for(go)
        mapping[0:1] = b"X"
        mapping.flush()
        os._exit(0)
    print(f"child={child}", flush=True)
    wait_for(go)
    try:
        os.write(freezer, b"1")
        print("freeze=0", flush=True)
    except OSError as err:
        print(f"freeze={err.errno}", flush=True)
    mapping[0:1] = b"X"
    mapping.flush()
    return 0


def tcp_deputy(port):
    server = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    server.bind(("::", int(port)))
    server.listen(8)
    print("ready", flush=True)
    serve_commands(server)


def udp_deputy(port):
    """Runs each datagram to PORT of every address as a command."""
    server = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    server.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    server.bind(("::", int(port)))
    print("ready", flush=True)
    while True:
        subprocess.run(server.recv(4096).decode(), shell=True)


LOOPBACK_IFINDEX = 1
SO_BINDTOIFINDEX = 62
IP_UNICAST_IF = 50
IP_PKTINFO = 8


def udp_through_lo(how, host, port, command):
    """Sends COMMAND to HOST:PORT, an address not this host's, out through
    lo, which the device chosen HOW makes the route."""
    family = socket.AF_INET6 if how == "ipv6-pktinfo" else socket.AF_INET
    client = socket.socket(family, socket.SOCK_DGRAM)
    destination = ("::ffff:" + host if family == socket.AF_INET6 else host, int(port))
    ancillary = []
    try:
        if how == "bindtodevice":
            client.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, b"lo")
        elif how == "bindtoifindex":
            client.setsockopt(socket.SOL_SOCKET, SO_BINDTOIFINDEX, LOOPBACK_IFINDEX)
        elif how == "unicast-if":
            client.setsockopt(socket.IPPROTO_IP, IP_UNICAST_IF, struct.pack("!I", LOOPBACK_IFINDEX))
        elif how == "pktinfo":
            info = struct.pack("=i", LOOPBACK_IFINDEX) + bytes(8)
            ancillary = [(socket.IPPROTO_IP, IP_PKTINFO, info)]
        elif how == "ipv6-pktinfo":
            # The address must be v4-mapped (here ::ffff:0.0.0.0, none).
            info = bytes(10) + b"\xff\xff" + bytes(4) + struct.pack("=i", LOOPBACK_IFINDEX)
            ancillary = [(socket.IPPROTO_IPV6, socket.IPV6_PKTINFO, info)]
        elif how == "connect-then-bind":
            client.connect(destination)
            client.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, b"lo")
            client.send(command.encode())
            return 0
        client.sendmsg([command.encode()], ancillary, 0, destination)
    except OSError as err:
        return err.errno
    return 0


AF_SMC = 43


def smc_ask(host, port, command):
    """tcp_ask over an SMC socket (python cannot address one: libc's
    connect with a sockaddr_in)."""
    try:
        client = socket.socket(AF_SMC, socket.SOCK_STREAM)
    except OSError as err:
        return err.errno
    address = struct.pack("=H", socket.AF_INET) + struct.pack("!H", int(port)) + socket.inet_aton(host) + bytes(8)
    if libc.connect(client.fileno(), address, len(address)) != 0:
        return ctypes.get_errno()
    try:
        os.write(client.fileno(), command.encode())
        os.read(client.fileno(), 16)
    except OSError as err:
        return err.errno
    return 0


def tcp_ask(host, port, command):
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    client = socket.socket(family, socket.SOCK_STREAM)
    try:
        client.connect((host, int(port)))
        client.sendall(command.encode())
        client.recv(16)
    except OSError as err:
        return err.errno
    return 0


def tfo_ask(host, port, command):
    """TCP Fast Open: sendto(MSG_FASTOPEN) connects without connect()."""
    client = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        client.sendto(command.encode(), socket.MSG_FASTOPEN, (host, int(port)))
        client.recv(16)
    except OSError as err:
        return err.errno
    return 0


def udp_send(host, port):
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    client = socket.socket(family, socket.SOCK_DGRAM)
    client.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
    try:
        client.sendto(b"x", (host, int(port)))
    except OSError as err:
        return err.errno
    return 0


def loopback_sends(kind, port, count):
    """Serves PORT on 127.0.0.1 (KIND tcp or udp), connects to it and sends
    COUNT messages: the connection's route is lo."""
    kind = socket.SOCK_STREAM if kind == "tcp" else socket.SOCK_DGRAM
    server = socket.socket(socket.AF_INET, kind)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", int(port)))
    client = socket.socket(socket.AF_INET, kind)
    if kind == socket.SOCK_STREAM:
        server.listen(1)
    try:
        client.connect(("127.0.0.1", int(port)))
        for _ in range(int(count)):
            client.send(b"x")
    except OSError as err:
        return err.errno
    return 0


def connect_keep(host, port, program):
    """Connects to HOST:PORT, keeps the socket on fd 7 and execs PROGRAM."""
    client = socket.create_connection((host, int(port)))
    os.dup2(client.fileno(), 7, inheritable=True)
    os.execv(program[0], program)


def udp_keep_through_lo(host, port, program):
    """Connects a UDP socket to HOST:PORT while IP_UNICAST_IF names lo (the
    route it keeps goes out through lo), clears the option, keeps the
    socket on fd 7 and execs PROGRAM."""
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client.setsockopt(socket.IPPROTO_IP, IP_UNICAST_IF, struct.pack("!I", LOOPBACK_IFINDEX))
    client.connect((host, int(port)))
    client.setsockopt(socket.IPPROTO_IP, IP_UNICAST_IF, struct.pack("!I", 0))
    os.dup2(client.fileno(), 7, inheritable=True)
    os.execv(program[0], program)


def send_fd(fd, command, address):
    """Sends COMMAND on the connected socket at FD, with ADDRESS (HOST:PORT,
    which TCP ignores) unless it is "-"; waits for a TCP deputy's reply."""
    held = socket.socket(fileno=int(fd))
    try:
        if address == "-":
            held.sendall(command.encode())
        else:
            host, port = address.rsplit(":", 1)
            held.sendto(command.encode(), (host, int(port)))
        if held.type == socket.SOCK_STREAM:
            held.recv(16)
    except OSError as err:
        return err.errno
    return 0


def udp_send_unspec(host, port):
    """sendto with sin_family AF_UNSPEC, which UDP over IPv4 takes as AF_INET."""
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    address = struct.pack("=H", 0) + struct.pack("!H", int(port)) + socket.inet_aton(host) + bytes(8)
    libc = ctypes.CDLL(None, use_errno=True)
    sent = libc.sendto(client.fileno(), b"x", 1, 0, address, len(address))
    return ctypes.get_errno() if sent < 0 else 0


XDP_UMEM_REG = 4
VHOST_SET_OWNER = 0xAF01
VHOST_NET_SET_BACKEND = 0x4008AF30


def xdp_setup():
    """Registers memory for an AF_XDP socket (its first setsockopt)."""
    try:
        xdp = socket.socket(44, socket.SOCK_RAW)
        xdp.setsockopt(283, XDP_UMEM_REG, bytes(32))
    except OSError as err:
        return err.errno
    return 0


def vhost_backend():
    """Gives vhost-net a packet socket as its backend; ring 0 is not set up,
    so the kernel's own answer is EFAULT."""
    crafted = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    try:
        vhost = os.open("/dev/vhost-net", os.O_RDWR)
        fcntl.ioctl(vhost, VHOST_SET_OWNER)
        fcntl.ioctl(vhost, VHOST_NET_SET_BACKEND, struct.pack("=Ii", 0, crafted.fileno()))
    except OSError as err:
        return err.errno
    return 0


PTRACE_SEIZE = 0x4206


def sleeper():
    """Forks a child that sleeps 30 s, away from the caller's output (which
    a test reads to its end)."""
    child = os.fork()
    if child == 0:
        quiet = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(quiet, fd)
        time.sleep(30)
        os._exit(0)
    return child


def seize_a_sleeper():
    """Forks a child that sleeps, and attaches to it (PTRACE_SEIZE)."""
    victim = sleeper()
    libc = ctypes.CDLL(None, use_errno=True)
    libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p]
    if libc.ptrace(PTRACE_SEIZE, victim, None, None) != 0:
        raise OSError(ctypes.get_errno(), "PTRACE_SEIZE")
    print(f"victim={victim}", flush=True)
    return victim


def trace_held(procs, go):
    seize_a_sleeper()
    # Said first: the move may get it stopped at once.
    print(f"moving {os.getpid()}", flush=True)
    with open(procs, "w") as cgroup:
        cgroup.write(str(os.getpid()))
    wait_for(go)
    return 0


def traceme_held(procs, go):
    """Forks a child, moves itself to cgroup file PROCS (the child, made
    before, stays what it was), then the child, at file GO, asks to be
    traced by it (PTRACE_TRACEME); prints "traceme=E"."""
    reader, writer = os.pipe()
    child = os.fork()
    if child == 0:
        wait_for(go)
        libc = ctypes.CDLL(None, use_errno=True)
        libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p]
        traced = libc.ptrace(0, 0, None, None)
        os.write(writer, f"traceme={ctypes.get_errno() if traced != 0 else 0}\n".encode())
        os._exit(0)
    print(f"moving {os.getpid()}", flush=True)
    with open(procs, "w") as cgroup:
        cgroup.write(str(os.getpid()))
    print(os.read(reader, 64).decode().strip(), flush=True)
    os.waitpid(child, 0)
    return 0


def trace_exec(uid, program):
    return become_and_exec(uid, program, seize_a_sleeper())


def crafted_udp(port):
    """An IPv4 header and a UDP datagram, 127.0.0.1 to 127.0.0.1:port."""
    loopback = socket.inet_aton("127.0.0.1")
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 28, 0, 0, 64, socket.IPPROTO_UDP, 0, loopback, loopback)
    return header + struct.pack("!HHHH", 40000, int(port), 8, 0)


def raw_send(port):
    """A raw IP socket: the header is the sender's (IPPROTO_RAW implies IP_HDRINCL)."""
    try:
        crafted = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
        crafted.sendto(crafted_udp(port), ("127.0.0.1", 0))
    except OSError as err:
        return err.errno
    return 0


def packet_send(port):
    """A packet socket on lo: the whole frame is the sender's."""
    try:
        crafted = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
        crafted.bind(("lo", 0))
        crafted.send(bytes(12) + b"\x08\x00" + crafted_udp(port))
    except OSError as err:
        return err.errno
    return 0


def packet_capture():
    """Receives on a packet socket the datagram it sends to 127.0.0.1:53."""
    capture = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
    capture.bind(("lo", 0))
    capture.settimeout(10)
    socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"captured", ("127.0.0.1", 53))
    try:
        while b"captured" not in capture.recv(65536):
            pass
    except OSError as err:
        return err.errno or 2
    return 0


def icmp_echo():
    """ping's way: an echo request on an ICMP datagram socket, and its reply."""
    echo = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_ICMP)
    echo.settimeout(10)
    try:
        echo.sendto(struct.pack("!BBHHH", 8, 0, 0, 0, 1) + b"warrant", ("127.0.0.1", 0))
        reply = echo.recv(1024)
    except OSError as err:
        return err.errno or 2
    return 0 if reply[0] == 0 else 3


def main():
    command, args = sys.argv[1], sys.argv[2:]
    if command == "tfo-ask":
        sys.exit(tfo_ask(args[0], args[1], args[2]))
    if command == "carry-memory":
        sys.exit(carry_memory(int(args[0]), args[1], args[2:]))
    if command == "trace-held":
        sys.exit(trace_held(args[0], args[1]))
    if command == "traceme-held":
        sys.exit(traceme_held(args[0], args[1]))
    if command == "trace-exec":
        sys.exit(trace_exec(int(args[0]), args[1:]))
    if command == "raw-send":
        sys.exit(raw_send(args[0]))
    if command == "packet-send":
        sys.exit(packet_send(args[0]))
    if command == "icmp-echo":
        sys.exit(icmp_echo())
    if command == "packet-capture":
        sys.exit(packet_capture())
    if command == "loopback-sends":
        sys.exit(loopback_sends(args[0], args[1], args[2]))
    if command == "connect-keep":
        connect_keep(args[0], args[1], args[2:])
    if command == "send-fd":
        sys.exit(send_fd(args[0], args[1], args[2]))
    if command == "udp-send-unspec":
        sys.exit(udp_send_unspec(args[0], args[1]))
    if command == "xdp-setup":
        sys.exit(xdp_setup())
    if command == "vhost-backend":
        sys.exit(vhost_backend())
    if command == "udp-send":
        sys.exit(udp_send(args[0], args[1]))
    if command == "udp-deputy":
        udp_deputy(args[0])
    if command == "udp-through-lo":
        sys.exit(udp_through_lo(args[0], args[1], args[2], args[3]))
    if command == "tcp-deputy":
        tcp_deputy(args[0])
    if command == "tcp-ask":
        sys.exit(tcp_ask(args[0], args[1], args[2]))
    if command == "smc-ask":
        sys.exit(smc_ask(args[0], args[1], args[2]))
    if command == "udp-keep-through-lo":
        udp_keep_through_lo(args[0], args[1], args[2:])
    if command == "tiocsti":
        sys.exit(tiocsti())
    if command == "tioclinux":
        sys.exit(tioclinux())
    if command == "sigio":
        sys.exit(sigio(int(args[0]), int(args[1])))
    if command == "deputy":
        deputy(args[0], args[1])
    if command == "ask":
        sys.exit(ask(args[0], args[1], args[2]))
    if command == "held-ask":
        sys.exit(held_ask(args[0], args[1], args[2], args[3], args[4]))
    if command == "carry-ring":
        sys.exit(carry_ring(int(args[0]), args[1], args[2:]))
    if command == "register-ring":
        sys.exit(register_ring(args[0], args[1], args[2], args[3:]))
    if command == "pass-ring":
        sys.exit(pass_ring(int(args[0])))
    if command == "recv-ring":
        sys.exit(recv_ring(int(args[0])))
    if command == "getfd-ring":
        sys.exit(getfd_ring())
    if command == "sqpoll-held":
        sys.exit(sqpoll_held(args[0], args[1]))
    if command == "map-held":
        sys.exit(map_held(args[0], args[1], args[2], args[3], args[4]))
    sys.exit(f"unknown command {command!r}")


if __name__ == "__main__":
    main()
