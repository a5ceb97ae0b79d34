"""Raw netlink for the kernel tier: messages no tool sends.

    netlink.py nft-delchain TABLE NAME HANDLE
        one nftables batch: DELCHAIN in inet TABLE naming chain NAME and
        carrying NFTA_CHAIN_HANDLE HANDLE (the kernel takes the handle)
    netlink.py ct-flush-as-dump
        a conntrack DELETE (a flush) with the dump flags set
    netlink.py link-forwarding IFNAME VALUE
        RTM_SETLINK whose only attribute is IFLA_AF_SPEC, setting
        net.ipv4.conf.IFNAME.forwarding to VALUE
    netlink.py link-group-mtu IFNAME GROUP MTU
        RTM_NEWLINK with index 0 naming IFNAME (which should not exist) and
        carrying IFLA_GROUP GROUP and IFLA_MTU MTU: when no link has the
        name, the kernel sets the MTU of every link in the group
    netlink.py link-add-altname ALTNAME
        RTM_NEWLINK (CREATE, EXCL) of a dummy link naming only IFLA_ALT_IFNAME
        ALTNAME: the kernel names the new link itself (dummyN)
    netlink.py ioctl-route-add DST MASK DEV
        the old way to add a route, no netlink: SIOCADDRT on an AF_INET socket
    netlink.py ioctl-bridge-add NAME
        the old way to make a bridge: SIOCGIFBR (a "get") with
        BRCTL_ADD_BRIDGE, no netlink
    netlink.py mrt-add-vif [pimreg-seen]
        multicast routing with no netlink: MRT_ADD_VIF (a register vif,
        which makes pimreg) on an IGMP raw socket; with pimreg-seen, exits 3
        unless pimreg then exists, and deletes the vif again
    netlink.py genl-getfamily NAME
        the generic netlink controller's CTRL_CMD_GETFAMILY (a read)
    netlink.py genl-write FAMILY_NAME CMD
        a request with command CMD to the generic netlink family FAMILY_NAME

Exits 0 when the kernel acknowledges without error, else with the errno of
the failing sendmsg or of the acknowledgement (EPERM is 1).
"""
import os
import socket
import struct
import sys

NETLINK_ROUTE = 0
NETLINK_NETFILTER = 12
NETLINK_GENERIC = 16
NLM_F_REQUEST = 0x1
NLM_F_ACK = 0x4
NLM_F_DUMP = 0x300
NLMSG_ERROR = 2


def attr(kind, payload):
    length = 4 + len(payload)
    return struct.pack("=HH", length, kind) + payload + b"\0" * ((4 - length % 4) % 4)


def cstr(text):
    return text.encode() + b"\0"


def message(kind, flags, body, seq=1):
    return struct.pack("=IHHII", 16 + len(body), kind, flags, seq, 0) + body


def nfgen(family, res_id=0):
    return struct.pack("=BBH", family, 0, socket.htons(res_id))


def exchange(protocol, data):
    """Sends `data`, returns the errno of the first error acknowledgement (0: none)."""
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, protocol)
    sock.bind((0, 0))
    try:
        sock.send(data)
    except OSError as err:
        return err.errno
    sock.settimeout(5)
    while True:
        reply = sock.recv(65536)
        offset = 0
        while offset + 16 <= len(reply):
            length, kind = struct.unpack_from("=IH", reply, offset)
            if kind == NLMSG_ERROR:
                (error,) = struct.unpack_from("=i", reply, offset + 16)
                return -error
            if length < 16:
                return 0
            offset += (length + 3) & ~3
        if not reply:
            return 0


def nft_delchain(table, name, handle):
    begin = message(0x10, NLM_F_REQUEST, nfgen(0, 10))
    body = nfgen(1) + attr(1, cstr(table)) + attr(3, cstr(name)) + attr(2, struct.pack(">Q", handle))
    delete = message((10 << 8) | 5, NLM_F_REQUEST | NLM_F_ACK, body, seq=2)
    end = message(0x11, NLM_F_REQUEST, nfgen(0, 10), seq=3)
    return exchange(NETLINK_NETFILTER, begin + delete + end)


def ct_flush_as_dump():
    body = nfgen(socket.AF_INET)
    return exchange(NETLINK_NETFILTER, message((1 << 8) | 2, NLM_F_REQUEST | NLM_F_ACK | NLM_F_DUMP, body))


def link_forwarding(ifname, value):
    index = socket.if_nametoindex(ifname)
    ifinfo = struct.pack("=BBHiII", socket.AF_UNSPEC, 0, 0, index, 0, 0)
    # IFLA_AF_SPEC { AF_INET { IFLA_INET_CONF { IPV4_DEVCONF_FORWARDING: value } } }
    conf = attr(1, attr(1, struct.pack("=I", value)))
    spec = attr(26, attr(socket.AF_INET, conf))
    return exchange(NETLINK_ROUTE, message(19, NLM_F_REQUEST | NLM_F_ACK, ifinfo + spec))


def link_group_mtu(ifname, group, mtu):
    ifinfo = struct.pack("=BBHiII", socket.AF_UNSPEC, 0, 0, 0, 0, 0)
    attrs = attr(3, cstr(ifname)) + attr(27, struct.pack("=I", group)) + attr(4, struct.pack("=I", mtu))
    return exchange(NETLINK_ROUTE, message(16, NLM_F_REQUEST | NLM_F_ACK, ifinfo + attrs))


def link_add_altname(altname):
    ifinfo = struct.pack("=BBHiII", socket.AF_UNSPEC, 0, 0, 0, 0, 0)
    attrs = attr(53, cstr(altname)) + attr(18, attr(1, cstr("dummy")))
    return exchange(NETLINK_ROUTE, message(16, NLM_F_REQUEST | NLM_F_ACK | 0x600, ifinfo + attrs))


def ioctl_route_add(dst, mask, dev):
    import ctypes
    import fcntl

    def sockaddr_in(address):
        return struct.pack("=HH4s8x", socket.AF_INET, 0, socket.inet_aton(address))

    name = ctypes.create_string_buffer(dev.encode())
    # struct rtentry: rt_pad1, rt_dst, rt_gateway, rt_genmask, rt_flags
    # (RTF_UP), rt_pad2, rt_pad3, rt_pad4, rt_metric, rt_dev, rt_mtu,
    # rt_window, rt_irtt, padded to its 120 bytes.
    rtentry = struct.pack(
        "@L16s16s16sHhLPhPLLH6x",
        0, sockaddr_in(dst), sockaddr_in("0.0.0.0"), sockaddr_in(mask), 1, 0, 0, 0, 0,
        ctypes.addressof(name), 0, 0, 0,
    )
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        fcntl.ioctl(sock, 0x890B, rtentry)
    except OSError as err:
        return err.errno
    return 0


def ioctl_bridge_add(name):
    import ctypes
    import fcntl

    BRCTL_ADD_BRIDGE = 2
    buffer = ctypes.create_string_buffer(name.encode(), 16)
    args = (ctypes.c_ulong * 3)(BRCTL_ADD_BRIDGE, ctypes.addressof(buffer), 0)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        fcntl.ioctl(sock, 0x8940, args)
    except OSError as err:
        return err.errno
    return 0


def mrt_add_vif(check):
    MRT_ADD_VIF, MRT_DEL_VIF, VIFF_REGISTER = 202, 203, 0x4
    # struct vifctl: vifi, flags, threshold, rate_limit, lcl_addr, rmt_addr.
    vif = struct.pack("=HBBI4s4s", 0, VIFF_REGISTER, 1, 0, bytes(4), bytes(4))
    sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_IGMP)
    try:
        sock.setsockopt(socket.IPPROTO_IP, MRT_ADD_VIF, vif)
    except OSError as err:
        return err.errno
    if check:
        seen = os.path.exists("/sys/class/net/pimreg")
        sock.setsockopt(socket.IPPROTO_IP, MRT_DEL_VIF, vif)
        return 0 if seen else 3
    return 0


def genl_family_id(name):
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_GENERIC)
    body = struct.pack("=BBH", 3, 1, 0) + attr(2, cstr(name))
    sock.send(message(0x10, NLM_F_REQUEST, body))
    reply = sock.recv(65536)
    length, kind = struct.unpack_from("=IH", reply, 0)
    if kind == NLMSG_ERROR:
        sys.exit(-struct.unpack_from("=i", reply, 16)[0])
    offset = 20
    while offset + 4 <= length:
        alen, atype = struct.unpack_from("=HH", reply, offset)
        if atype == 1:
            return struct.unpack_from("=H", reply, offset + 4)[0]
        offset += (alen + 3) & ~3
    sys.exit(2)


def genl_getfamily(name):
    genl_family_id(name)
    return 0


def genl_write(family, cmd):
    family_id = genl_family_id(family)
    body = struct.pack("=BBH", int(cmd), 1, 0)
    return exchange(NETLINK_GENERIC, message(family_id, NLM_F_REQUEST | NLM_F_ACK, body))


def pfkey_spdflush():
    # struct sadb_msg: version PF_KEY_V2, type SADB_X_SPDFLUSH (19), errno,
    # satype, length in 8-byte words, reserved, seq, pid.
    sock = socket.socket(15, socket.SOCK_RAW, 2)
    try:
        sock.send(struct.pack("=BBBBHHII", 2, 19, 0, 0, 2, 0, 1, os.getpid()))
    except OSError as err:
        return err.errno
    return 0


def ipvs_flush():
    # IP_VS_SO_SET_FLUSH (1157) on SOL_IP, IPVS's setsockopt interface.
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.setsockopt(socket.SOL_IP, 1157, b"")
    except OSError as err:
        return err.errno
    return 0


def main():
    command, args = sys.argv[1], sys.argv[2:]
    if command == "nft-delchain":
        code = nft_delchain(args[0], args[1], int(args[2]))
    elif command == "ct-flush-as-dump":
        code = ct_flush_as_dump()
    elif command == "link-forwarding":
        code = link_forwarding(args[0], int(args[1]))
    elif command == "link-group-mtu":
        code = link_group_mtu(args[0], int(args[1]), int(args[2]))
    elif command == "link-add-altname":
        code = link_add_altname(args[0])
    elif command == "ioctl-route-add":
        code = ioctl_route_add(args[0], args[1], args[2])
    elif command == "ioctl-bridge-add":
        code = ioctl_bridge_add(args[0])
    elif command == "mrt-add-vif":
        code = mrt_add_vif(args[:1] == ["pimreg-seen"])
    elif command == "genl-getfamily":
        code = genl_getfamily(args[0])
    elif command == "genl-write":
        code = genl_write(args[0], args[1])
    elif command == "pfkey-spdflush":
        code = pfkey_spdflush()
    elif command == "ipvs-flush":
        code = ipvs_flush()
    else:
        sys.exit(f"unknown command {command!r}")
    sys.exit(code)


if __name__ == "__main__":
    main()
