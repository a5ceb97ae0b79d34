"""Raw namespace syscalls for the kernel tier, where no CLI tool makes them.

    netns.py clone          clone(CLONE_NEWNET | SIGCHLD), child exits at once
    netns.py clone3         clone3 with CLONE_NEWNET
    netns.py setns-pidfd PID  setns(pidfd_open(PID), CLONE_NEWNET)

Exits 0 on success, or with the errno of the failing call (EPERM is 1).
"""
import ctypes
import os
import sys

CLONE_NEWNET = 0x40000000
SIGCHLD = 17
SYS_CLONE = 56
SYS_CLONE3 = 435
SYS_PIDFD_OPEN = 434

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long


class CloneArgs(ctypes.Structure):
    _fields_ = [(name, ctypes.c_uint64) for name in (
        "flags", "pidfd", "child_tid", "parent_tid", "exit_signal",
        "stack", "stack_size", "tls", "set_tid", "set_tid_size", "cgroup")]


def fail():
    sys.exit(ctypes.get_errno() or 255)


def reap(pid):
    if pid == 0:
        os._exit(0)
    if pid < 0:
        fail()
    _, status = os.waitpid(pid, 0)
    sys.exit(os.waitstatus_to_exitcode(status))


def main():
    what = sys.argv[1]
    if what == "clone":
        reap(libc.syscall(SYS_CLONE, ctypes.c_ulong(CLONE_NEWNET | SIGCHLD), None, None, None, None))
    elif what == "clone3":
        args = CloneArgs(flags=CLONE_NEWNET, exit_signal=SIGCHLD)
        reap(libc.syscall(SYS_CLONE3, ctypes.byref(args), ctypes.c_size_t(ctypes.sizeof(args))))
    elif what == "setns-pidfd":
        pidfd = libc.syscall(SYS_PIDFD_OPEN, int(sys.argv[2]), 0)
        if pidfd < 0:
            fail()
        if libc.setns(int(pidfd), CLONE_NEWNET) != 0:
            fail()
    else:
        sys.exit(f"unknown request {what!r}")


main()
