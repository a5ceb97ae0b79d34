//! Classifier for the netlink messages of one `sendmsg` on a NETLINK_NETFILTER
//! socket: which nftables operation each message is, and on which target.
//!
//! It walks the buffer the way the kernel's `netlink_rcv_skb` and
//! `nfnetlink_rcv_batch` will (aligned message lengths, last attribute of a
//! type wins), so what is classified is what the kernel will apply. The same
//! code runs in the BPF program (reading the skb) and in the plain test tier
//! (reading a byte slice).

use super::*;

/// Netlink protocol number of nfnetlink sockets.
pub const NETLINK_NETFILTER: u16 = 12;

pub const NFNL_SUBSYS_NFTABLES: u16 = 10;
/// `NFNL_SUBSYS_IPSET`.
pub const NFNL_SUBSYS_IPSET: u16 = 6;

/// ipset's commands and attributes (`linux/netfilter/ipset/ip_set.h`).
pub mod ipset {
    pub const CMD_PROTOCOL: u16 = 1;
    pub const CMD_CREATE: u16 = 2;
    pub const CMD_DESTROY: u16 = 3;
    pub const CMD_FLUSH: u16 = 4;
    pub const CMD_RENAME: u16 = 5;
    pub const CMD_SWAP: u16 = 6;
    pub const CMD_LIST: u16 = 7;
    pub const CMD_SAVE: u16 = 8;
    pub const CMD_ADD: u16 = 9;
    pub const CMD_DEL: u16 = 10;
    pub const CMD_TEST: u16 = 11;
    pub const CMD_HEADER: u16 = 12;
    pub const CMD_TYPE: u16 = 13;
    pub const CMD_GET_BYNAME: u16 = 14;
    pub const CMD_GET_BYINDEX: u16 = 15;
    /// `IPSET_ATTR_SETNAME`.
    pub const ATTR_SETNAME: u16 = 2;
    /// `IPSET_ATTR_SETNAME2` (the new name, or the set swapped with);
    /// attribute 3 is the type name in a create, so it is read only here.
    pub const ATTR_SETNAME2: u16 = 3;
}
/// Batch delimiters (`NFNL_MSG_BATCH_BEGIN`, `NFNL_MSG_BATCH_END`).
pub const NFNL_MSG_BATCH_BEGIN: u16 = 0x10;
pub const NFNL_MSG_BATCH_END: u16 = 0x11;

/// `enum nf_tables_msg_types`.
pub mod nft_msg {
    pub const NEWTABLE: u16 = 0;
    pub const GETTABLE: u16 = 1;
    pub const DELTABLE: u16 = 2;
    pub const NEWCHAIN: u16 = 3;
    pub const GETCHAIN: u16 = 4;
    pub const DELCHAIN: u16 = 5;
    pub const NEWRULE: u16 = 6;
    pub const GETRULE: u16 = 7;
    pub const DELRULE: u16 = 8;
    pub const NEWSET: u16 = 9;
    pub const GETSET: u16 = 10;
    pub const DELSET: u16 = 11;
    pub const NEWSETELEM: u16 = 12;
    pub const GETSETELEM: u16 = 13;
    pub const DELSETELEM: u16 = 14;
    pub const NEWGEN: u16 = 15;
    pub const GETGEN: u16 = 16;
    pub const TRACE: u16 = 17;
    pub const NEWOBJ: u16 = 18;
    pub const GETOBJ: u16 = 19;
    pub const DELOBJ: u16 = 20;
    pub const GETOBJ_RESET: u16 = 21;
    pub const NEWFLOWTABLE: u16 = 22;
    pub const GETFLOWTABLE: u16 = 23;
    pub const DELFLOWTABLE: u16 = 24;
    pub const GETRULE_RESET: u16 = 25;
    pub const DESTROYTABLE: u16 = 26;
    pub const DESTROYCHAIN: u16 = 27;
    pub const DESTROYRULE: u16 = 28;
    pub const DESTROYSET: u16 = 29;
    pub const DESTROYSETELEM: u16 = 30;
    pub const DESTROYOBJ: u16 = 31;
    pub const DESTROYFLOWTABLE: u16 = 32;
    pub const GETSETELEM_RESET: u16 = 33;
}

/// Handles and batch ids: attributes by which the kernel looks an object up
/// in place of, or before, its name.
mod nft_ref {
    /// NFTA_TABLE_HANDLE (DELTABLE, DESTROYTABLE).
    pub const TABLE_HANDLE: u16 = 4;
    /// NFTA_CHAIN_HANDLE (NEWCHAIN updates, and may rename, the chain it names).
    pub const CHAIN_HANDLE: u16 = 2;
    /// NFTA_SET_HANDLE.
    pub const SET_HANDLE: u16 = 16;
    /// NFTA_OBJ_HANDLE.
    pub const OBJ_HANDLE: u16 = 6;
    /// NFTA_FLOWTABLE_HANDLE.
    pub const FLOWTABLE_HANDLE: u16 = 5;
}

/// The name a key carries for an object the message addresses by handle or
/// by batch id: the kernel acts on whatever that handle names, so no rule
/// naming an object may cover it, only one whose name is `*`. Byte 0xff is
/// never in a policy name (names are UTF-8).
pub const BY_REFERENCE: [u8; 2] = [0xff, b'#'];

/// Whether a key's name is [`BY_REFERENCE`].
pub fn is_by_reference(name: &[u8]) -> bool {
    name.starts_with(&BY_REFERENCE)
}

/// Attribute 1 names the table in every nftables message kind
/// (NFTA_TABLE_NAME, NFTA_CHAIN_TABLE, NFTA_RULE_TABLE, NFTA_SET_TABLE, ...).
const ATTR_TABLE: u16 = 1;
/// NFTA_CHAIN_NAME.
const ATTR_CHAIN_NAME: u16 = 3;
/// NFTA_RULE_CHAIN, NFTA_SET_NAME, NFTA_SET_ELEM_LIST_SET, NFTA_OBJ_NAME,
/// NFTA_FLOWTABLE_NAME.
const ATTR_OBJECT_NAME: u16 = 2;
/// NFTA_RULE_EXPRESSIONS: the rule's content, which a warrant may bind.
const ATTR_RULE_EXPRESSIONS: u16 = 4;

/// nfnetlink: nftables, ipset and the other netfilter subsystems.
pub struct Nfnetlink;

impl Classifier for Nfnetlink {
    #[inline(always)]
    fn classify<B: MessageBuffer>(
        &self,
        buf: &B,
        offset: u32,
        header: &MessageHeader,
        key: &mut TargetKey,
        content: &mut MessageNotes,
    ) -> Class {
        classify(buf, offset, header, key, content)
    }
}

/// Classifies the message at `offset` into `key` (profile_id is left alone),
/// and notes in `content` where its attribute 4 lies (a rule's expressions;
/// the caller digests it for rules only, once per message, outside the
/// attribute walk).
pub fn classify<B: MessageBuffer>(
    buf: &B,
    offset: u32,
    header: &MessageHeader,
    key: &mut TargetKey,
    content: &mut MessageNotes,
) -> Class {
    content.at = 0;
    content.seen = 0;
    content.by_reference = 0;
    key.action = 0;
    key.family = header.family;
    key.clear_table();
    key.clear_object();

    let subsystem = header.subsystem();
    let message = header.message();
    if subsystem == 0 {
        // NLMSG_NOOP/ERROR/DONE/OVERRUN and the batch delimiters.
        return Class::NotAnAction;
    }
    // The action, the attributes naming its table (or set) and object, and
    // the one that addresses the object by handle or batch id instead.
    let (action_id, table_attr, object_attr, reference_attr) = if subsystem == NFNL_SUBSYS_NFTABLES {
        let Some(found) = nft_action(message, header.flags) else {
            return Class::NotAnAction;
        };
        (found.action, ATTR_TABLE, found.object_attr, found.reference_attr)
    } else if subsystem == NFNL_SUBSYS_IPSET {
        let Some((action_id, second_name)) = ipset_action(message) else {
            return Class::NotAnAction;
        };
        // ipset's family byte is the set's address family, not a target.
        key.family = 0;
        (action_id, ipset::ATTR_SETNAME, if second_name { ipset::ATTR_SETNAME2 } else { 0 }, 0)
    } else {
        // The kernel dispatches by message type, whatever the flags say.
        if nfnetlink_is_read(subsystem, message) {
            return Class::NotAnAction;
        }
        key.action = action::NFNETLINK_OTHER;
        return Class::Action;
    };
    key.action = action_id;
    if header.len < NLMSG_HDRLEN + NFGENMSG_LEN {
        return Class::Unparseable;
    }
    // Passed through the key's padding, which in the kernel is map memory:
    // the verifier then sees the attribute numbers as unknown and walks the
    // attribute loop once for nftables and ipset, not once per constant,
    // which the 1M-instruction budget cannot afford.
    let attrs = key.launder_attrs([table_attr, object_attr, reference_attr]);
    if !read_target_names(buf, offset, header.len, attrs, key, content) {
        return Class::Unparseable;
    }
    // The action is read back from the key, not carried through the
    // attribute walk in a register, where its per-kind constant would make
    // the verifier walk the loop once per kind.
    let action_id = read_field(&key.action);
    if read_field(&content.by_reference) != 0 {
        let name = if action_id == action::NFT_TABLE_DELETE {
            key.clear_table();
            &mut key.table
        } else {
            key.clear_object();
            &mut key.object
        };
        name[0] = BY_REFERENCE[0];
        name[1] = BY_REFERENCE[1];
    }
    if header.flags & NLM_F_EXCL == 0 {
        let (update, state) = update_of(action_id);
        if read_field(&content.seen) & state != 0 {
            key.action = update;
        }
    }
    Class::Action
}

/// For an nftables add that may update an existing object, the update's
/// action and the attributes (a bit per attribute type, bit 31 for any
/// from 31 up) that carry what an update changes; (0, 0) for the rest.
/// Names, ids and the table are not state: without the rest, the message
/// adds the object or leaves the one there as it is.
fn update_of(action_id: u32) -> (u32, u32) {
    const ALL: u32 = u32::MAX;
    const fn bit(attr: u32) -> u32 {
        1 << attr
    }
    match action_id {
        // NFTA_TABLE_NAME is not state; the rest (flags, userdata) is.
        action::NFT_TABLE_ADD => (action::NFT_TABLE_UPDATE, ALL & !bit(1)),
        // Table, name, NFTA_CHAIN_ID: not state. Hook, policy, type,
        // counters, flags, userdata: state.
        action::NFT_CHAIN_ADD => (action::NFT_CHAIN_UPDATE, ALL & !(bit(1) | bit(3) | bit(11))),
        // A set update changes NFTA_SET_TIMEOUT and NFTA_SET_GC_INTERVAL;
        // the kernel refuses one whose other attributes differ.
        action::NFT_SET_ADD => (action::NFT_SET_UPDATE, bit(11) | bit(12)),
        // Table, name, type: not state; NFTA_OBJ_DATA and the rest are.
        action::NFT_OBJECT_ADD => (action::NFT_OBJECT_UPDATE, ALL & !(bit(1) | bit(2) | bit(3))),
        action::NFT_FLOWTABLE_ADD => (action::NFT_FLOWTABLE_UPDATE, ALL & !(bit(1) | bit(2))),
        _ => (0, 0),
    }
}

/// Whether a message of an nfnetlink subsystem other than nftables and
/// ipset is a read: only the subsystems' GET types are (conntrack's
/// GET_CTRZERO and nfacct's GET_CTRZERO zero counters, so they are not).
fn nfnetlink_is_read(subsystem: u16, message: u16) -> bool {
    match subsystem {
        // ctnetlink: GET, GET_STATS_CPU, GET_STATS, GET_DYING, GET_UNCONFIRMED.
        1 => matches!(message, 1 | 4 | 5 | 6 | 7),
        // ctnetlink expectations: GET, GET_STATS_CPU.
        2 => matches!(message, 1 | 3),
        // nfacct GET, cthelper GET.
        7 | 9 => message == 1,
        // cttimeout: GET, DEFAULT_GET.
        8 => matches!(message, 1 | 4),
        // nft_compat GET (match and target revisions), hook GET.
        11 | 12 => message == 0,
        _ => false,
    }
}

/// The action of an ipset message, and whether it names a second set
/// (rename, swap); `None` for reads (protocol, list, save, test, header,
/// type, get by name or index). Any other command is `nfnetlink.other`.
fn ipset_action(message: u16) -> Option<(u32, bool)> {
    use ipset::*;
    Some(match message {
        CMD_CREATE => (action::IPSET_CREATE, false),
        CMD_DESTROY => (action::IPSET_DESTROY, false),
        CMD_FLUSH => (action::IPSET_FLUSH, false),
        CMD_RENAME => (action::IPSET_RENAME, true),
        CMD_SWAP => (action::IPSET_SWAP, true),
        CMD_ADD => (action::IPSET_ADD, false),
        CMD_DEL => (action::IPSET_DEL, false),
        CMD_PROTOCOL | CMD_LIST | CMD_SAVE | CMD_TEST | CMD_HEADER | CMD_TYPE | CMD_GET_BYNAME | CMD_GET_BYINDEX => {
            return None;
        }
        _ => (action::NFNETLINK_OTHER, false),
    })
}

/// What an nftables message is, and how it names its object.
struct NftAction {
    action: u32,
    /// The attribute naming its object; 0 when it has none.
    object_attr: u16,
    /// The attribute by which the kernel takes another object than the
    /// named one (a handle, or a batch id); 0 when it has none.
    reference_attr: u16,
}

/// The action of an nftables message; `None` for reads.
fn nft_action(message: u16, flags: u16) -> Option<NftAction> {
    use nft_msg::*;
    use nft_ref::*;
    let (action, object_attr, reference_attr) = match message {
        NEWTABLE => (action::NFT_TABLE_ADD, 0, 0),
        DELTABLE | DESTROYTABLE => (action::NFT_TABLE_DELETE, 0, TABLE_HANDLE),
        NEWCHAIN => (action::NFT_CHAIN_ADD, ATTR_CHAIN_NAME, CHAIN_HANDLE),
        DELCHAIN | DESTROYCHAIN => (action::NFT_CHAIN_DELETE, ATTR_CHAIN_NAME, CHAIN_HANDLE),
        NEWRULE => {
            let id = if flags & NLM_F_REPLACE != 0 {
                action::NFT_RULE_REPLACE
            } else if flags & NLM_F_APPEND != 0 {
                action::NFT_RULE_ADD
            } else {
                action::NFT_RULE_INSERT
            };
            // A rule's chain by NFTA_RULE_CHAIN_ID counts only without a
            // name, and no name already leaves the object to `*` rules.
            (id, ATTR_OBJECT_NAME, 0)
        }
        // Without a chain name, DELRULE flushes every chain of the table.
        DELRULE | DESTROYRULE => (action::NFT_RULE_DELETE, ATTR_OBJECT_NAME, 0),
        NEWSET => (action::NFT_SET_ADD, ATTR_OBJECT_NAME, 0),
        DELSET | DESTROYSET => (action::NFT_SET_DELETE, ATTR_OBJECT_NAME, SET_HANDLE),
        // Elements name their set and (nft always sends it) a batch set id,
        // which `nft_set_lookup_global` takes only when no set has the name:
        // then a set the same batch makes in the same table, which the
        // batch's own NEWSET message was decided on. The name decides.
        NEWSETELEM => (action::NFT_ELEMENT_ADD, ATTR_OBJECT_NAME, 0),
        DELSETELEM | DESTROYSETELEM => (action::NFT_ELEMENT_DELETE, ATTR_OBJECT_NAME, 0),
        NEWOBJ => (action::NFT_OBJECT_ADD, ATTR_OBJECT_NAME, 0),
        DELOBJ | DESTROYOBJ => (action::NFT_OBJECT_DELETE, ATTR_OBJECT_NAME, OBJ_HANDLE),
        NEWFLOWTABLE => (action::NFT_FLOWTABLE_ADD, ATTR_OBJECT_NAME, 0),
        DELFLOWTABLE | DESTROYFLOWTABLE => (action::NFT_FLOWTABLE_DELETE, ATTR_OBJECT_NAME, FLOWTABLE_HANDLE),
        GETOBJ_RESET | GETRULE_RESET | GETSETELEM_RESET => (action::NFT_RESET, ATTR_OBJECT_NAME, 0),
        GETTABLE | GETCHAIN | GETRULE | GETSET | GETSETELEM | GETGEN | GETOBJ | GETFLOWTABLE => return None,
        _ => (action::NFT_OTHER, 0, 0),
    };
    Some(NftAction { action, object_attr, reference_attr })
}

/// Reads the table (or set) name, attribute `table_attr`, and when
/// `object_attr` is not 0, the object name; notes where attribute 4 lies
/// (a rule's expressions; the caller digests it only for rules), which
/// attribute types the message carries, and whether it carries
/// `reference_attr` (not 0). Like `nla_parse`, the last attribute of a
/// type wins. False if the attributes cannot be walked or a name does not
/// fit.
fn read_target_names<B: MessageBuffer>(
    buf: &B,
    offset: u32,
    msg_len: u32,
    attrs: [u16; 3],
    key: &mut TargetKey,
    notes: &mut MessageNotes,
) -> bool {
    let end = offset + msg_len;
    write_field(&mut notes.next_attr, offset + NLMSG_HDRLEN + NFGENMSG_LEN);
    write_field(&mut notes.walk, WALK_ON);
    buf.repeat(MAX_ATTRS as u32, |_| read_attribute(buf, end, attrs, key, notes));
    // Still walking: more attributes than we read, so we cannot be sure
    // which name wins.
    read_field(&notes.walk) == WALK_DONE
}

/// One step of [`read_target_names`]: the attribute at `notes.next_attr`.
/// False once the walk is over (`notes.walk` says how).
#[inline(always)]
fn read_attribute<B: MessageBuffer>(
    buf: &B,
    end: u32,
    [table_attr, object_attr, reference_attr]: [u16; 3],
    key: &mut TargetKey,
    notes: &mut MessageNotes,
) -> bool {
    let Some((at, nla_len, nla_type)) = next_attribute(buf, end, notes) else {
        return false;
    };
    notes.note_seen(1 << if nla_type < 31 { nla_type } else { 31 });
    let payload_len = nla_len - NLA_HDRLEN;
    // A repeated attribute replaces the earlier one, so clear before
    // reading. One read site for both names keeps the program small.
    let target = if nla_type == table_attr {
        key.clear_table();
        Some(&mut key.table)
    } else if object_attr != 0 && nla_type == object_attr {
        key.clear_object();
        Some(&mut key.object)
    } else {
        if reference_attr != 0 && nla_type == reference_attr {
            write_field(&mut notes.by_reference, 1);
        }
        None
    };
    if let Some(name) = target
        && !read_name(buf, at + NLA_HDRLEN, payload_len, name)
    {
        write_field(&mut notes.walk, WALK_FAILED);
        return false;
    }
    // Last, when nothing after reads `nla_type`: the verifier's knowing
    // it is 4 on one path then ends here.
    if nla_type == ATTR_RULE_EXPRESSIONS {
        write_field(&mut notes.at, at + NLA_HDRLEN);
        write_field(&mut notes.len, payload_len);
    }
    write_field(&mut notes.next_attr, at + ((nla_len + 3) & !3));
    true
}
