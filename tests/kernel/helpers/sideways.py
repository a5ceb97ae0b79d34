"""Sideways routes for the kernel tier, where no CLI tool takes them.

    sideways.py tiocsti          TIOCSTI into a fresh pty (types into its reader)
    sideways.py sigio PID SIG    F_SETOWN(PID) + F_SETSIG(SIG) on an O_ASYNC
                                 pipe, then a write: the kernel signals PID

Exits 0 on success, or with the errno of the failing call (EPERM is 1).
For sigio the write always succeeds: whether the signal arrived is for the
caller to check.
"""
import fcntl
import os
import pty
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


def main():
    command, args = sys.argv[1], sys.argv[2:]
    if command == "tiocsti":
        sys.exit(tiocsti())
    if command == "sigio":
        sys.exit(sigio(int(args[0]), int(args[1])))
    sys.exit(f"unknown command {command!r}")


if __name__ == "__main__":
    main()
