"""File routes no coreutils tool takes, for the kernel tier.

    files.py uring-open PATH          io_uring IORING_OP_OPENAT, O_WRONLY
    files.py uring-cmd ublk|socket    io_uring IORING_OP_URING_CMD: ublk's
                                      GET_FEATURES on /dev/ublk-control, or
                                      SIOCINQ on a UDP socket
    files.py pass-fd SOCKET PATH      (not a subject) open PATH O_RDWR and
                                      send the fd over SCM_RIGHTS to the
                                      first client of SOCKET, then exit
    files.py use-fd SOCKET HOW        receive that fd, then HOW it:
                                      write, mmap (shared, writable),
                                      mprotect (shared read-only mapping
                                      made writable), uring-write, read

Exits 0 on success, or with the errno of the failing call (EPERM is 1).
"""
import array
import ctypes
import mmap
import os
import socket
import struct
import sys

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
SYS_IO_URING_SETUP = 425
SYS_IO_URING_ENTER = 426
IORING_OP_OPENAT = 18
IORING_OP_WRITE = 23
IORING_OFF_SQ_RING = 0
IORING_OFF_CQ_RING = 0x8000000
IORING_OFF_SQES = 0x10000000
IORING_ENTER_GETEVENTS = 1
IORING_SETUP_SQE128 = 1 << 10
IORING_OP_URING_CMD = 46
# _IOR('u', 0x13, struct ublksrv_ctrl_cmd), and the socket's SIOCINQ.
UBLK_U_CMD_GET_FEATURES = 0x80207513
SOCKET_URING_OP_SIOCINQ = 0
AT_FDCWD = -100


def fail(errno=None):
    sys.exit(errno or ctypes.get_errno() or 255)


def uring(opcode, fd, addr, length, offset, op_flags, command=None):
    """Submits one SQE and returns the CQE's result (a negative errno on
    failure). With COMMAND, the SQE is a 128-byte one carrying it."""
    params = (ctypes.c_uint8 * 120)()
    sqe_size = 128 if command is not None else 64
    if command is not None:
        struct.pack_into("I", params, 8, IORING_SETUP_SQE128)
    ring_fd = libc.syscall(SYS_IO_URING_SETUP, 4, params)
    if ring_fd < 0:
        fail()
    p = bytes(params)
    sq_entries, cq_entries = struct.unpack_from("II", p, 0)
    sq_head, sq_tail, sq_mask, _, _, _, sq_array = struct.unpack_from("7I", p, 40)
    cq_head, cq_tail, cq_mask, _, _, cq_cqes = struct.unpack_from("6I", p, 80)
    sq = mmap.mmap(ring_fd, sq_array + sq_entries * 4, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE, offset=IORING_OFF_SQ_RING)
    cq = mmap.mmap(ring_fd, cq_cqes + cq_entries * 16, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE, offset=IORING_OFF_CQ_RING)
    sqes = mmap.mmap(ring_fd, sq_entries * sqe_size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE, offset=IORING_OFF_SQES)
    # opcode, flags, ioprio, fd, off (a URING_CMD's op), addr, len, op_flags, user_data
    struct.pack_into("BBHiQQIIQ", sqes, 0, opcode, 0, 0, fd, offset, addr, length, op_flags, 7)
    if command is not None:
        sqes[48:48 + len(command)] = command
    tail = struct.unpack_from("I", sq, sq_tail)[0]
    struct.pack_into("I", sq, sq_array + (tail & struct.unpack_from("I", sq, sq_mask)[0]) * 4, 0)
    struct.pack_into("I", sq, sq_tail, tail + 1)
    if libc.syscall(SYS_IO_URING_ENTER, ring_fd, 1, 1, IORING_ENTER_GETEVENTS, None, 0) < 0:
        fail()
    head = struct.unpack_from("I", cq, cq_head)[0]
    mask = struct.unpack_from("I", cq, cq_mask)[0]
    _, res, _ = struct.unpack_from("QiI", cq, cq_cqes + (head & mask) * 16)
    return res


def check(res):
    if res < 0:
        fail(-res)


def main():
    what = sys.argv[1]
    if what == "uring-open":
        path = ctypes.create_string_buffer(sys.argv[2].encode())
        check(uring(IORING_OP_OPENAT, AT_FDCWD, ctypes.addressof(path), 0, 0, os.O_WRONLY))
    elif what == "uring-cmd":
        if sys.argv[2] == "ublk":
            target = os.open("/dev/ublk-control", os.O_RDWR)
            features = ctypes.create_string_buffer(8)
            # struct ublksrv_ctrl_cmd: dev_id, queue_id, len, addr, data, dev_path_len.
            header = struct.pack("=IHHQQHHI", 0xFFFFFFFF, 0xFFFF, 8, ctypes.addressof(features), 0, 0, 0, 0)
            check(uring(IORING_OP_URING_CMD, target, 0, 0, UBLK_U_CMD_GET_FEATURES, 0, header))
        else:
            target = socket.socket(socket.AF_INET, socket.SOCK_DGRAM).detach()
            check(uring(IORING_OP_URING_CMD, target, 0, 0, SOCKET_URING_OP_SIOCINQ, 0, bytes(16)))
    elif what == "pass-fd":
        fd = os.open(sys.argv[3], os.O_RDWR)
        server = socket.socket(socket.AF_UNIX)
        server.bind(sys.argv[2])
        server.listen(1)
        print("ready", flush=True)
        conn, _ = server.accept()
        conn.sendmsg([b"f"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [fd]))])
        conn.close()
    elif what == "use-fd":
        client = socket.socket(socket.AF_UNIX)
        client.connect(sys.argv[2])
        _, ancillary, _, _ = client.recvmsg(1, socket.CMSG_SPACE(4))
        fd = array.array("i", ancillary[0][2])[0]
        how = sys.argv[3]
        try:
            if how == "write":
                os.write(fd, b"# written through a passed fd\n")
            elif how == "read":
                os.read(fd, 16)
            elif how == "mmap":
                mmap.mmap(fd, 0, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
            elif how == "mprotect":
                libc.mmap.restype = ctypes.c_void_p
                libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
                addr = libc.mmap(None, 4096, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
                if addr in (None, ctypes.c_void_p(-1).value):
                    fail()
                if libc.mprotect(ctypes.c_void_p(addr), 4096, mmap.PROT_READ | mmap.PROT_WRITE) != 0:
                    fail()
            elif how == "uring-write":
                data = ctypes.create_string_buffer(b"# io_uring\n")
                check(uring(IORING_OP_WRITE, fd, ctypes.addressof(data), 11, 0, 0))
            else:
                sys.exit(f"unknown use {how!r}")
        except OSError as e:
            fail(e.errno)
    else:
        sys.exit(f"unknown request {what!r}")


main()
