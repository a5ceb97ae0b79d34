"""Sideways routes for the kernel tier, where no CLI tool takes them.

    sideways.py tiocsti          TIOCSTI into a fresh pty (types into its reader)
    sideways.py sigio PID SIG    F_SETOWN(PID) + F_SETSIG(SIG) on an O_ASYNC
                                 pipe, then a write: the kernel signals PID
    sideways.py deputy NAME KIND a root deputy: listens on unix socket NAME
                                 (a path, or @name for an abstract one; KIND
                                 stream or dgram) and runs each message it
                                 gets as a shell command; prints "ready"
    sideways.py ask NAME KIND CMD  sends CMD to the deputy at NAME

Exits 0 on success, or with the errno of the failing call (EPERM is 1).
For sigio the write always succeeds: whether the signal arrived is for the
caller to check.
"""
import fcntl
import os
import pty
import socket
import subprocess
import sys
import termios

F_SETSIG = 10


def tiocsti():
    master, slave = pty.openpty()
    try:
        fcntl.ioctl(slave, termios.TIOCSTI, b"x")
    except OSError as err:
        return err.errno
    os.read(master, 1)
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


def deputy(name, kind):
    stream = kind == "stream"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM if stream else socket.SOCK_DGRAM)
    if not name.startswith("@") and os.path.exists(name):
        os.unlink(name)
    server.bind(address(name))
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
        conn.sendall(str(result.returncode).encode())
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


def tcp_deputy(port):
    server = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    server.bind(("::", int(port)))
    server.listen(8)
    print("ready", flush=True)
    serve_commands(server)


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
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        client.sendto(b"x", (host, int(port)))
    except OSError as err:
        return err.errno
    return 0


def main():
    command, args = sys.argv[1], sys.argv[2:]
    if command == "tfo-ask":
        sys.exit(tfo_ask(args[0], args[1], args[2]))
    if command == "udp-send":
        sys.exit(udp_send(args[0], args[1]))
    if command == "tcp-deputy":
        tcp_deputy(args[0])
    if command == "tcp-ask":
        sys.exit(tcp_ask(args[0], args[1], args[2]))
    if command == "tiocsti":
        sys.exit(tiocsti())
    if command == "sigio":
        sys.exit(sigio(int(args[0]), int(args[1])))
    if command == "deputy":
        deputy(args[0], args[1])
    if command == "ask":
        sys.exit(ask(args[0], args[1], args[2]))
    sys.exit(f"unknown command {command!r}")


if __name__ == "__main__":
    main()
