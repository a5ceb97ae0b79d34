//! A readable rendering of an nft rule's expressions (the
//! NFTA_RULE_EXPRESSIONS payload the kernel digested), for the RI who reads
//! a change request. It follows `nft --debug=netlink`'s notation for the
//! common expressions; every attribute it does not decode (another
//! expression's, a flag it does not know) is shown raw beside them, so
//! nothing the kernel reads is left out of what the RI reads. It never
//! fails.

use std::fmt::Write as _;

const NLA_HDRLEN: usize = 4;
const NLA_TYPE_MASK: u16 = 0x3fff;
/// NFTA_LIST_ELEM, NFTA_EXPR_NAME, NFTA_EXPR_DATA.
const LIST_ELEM: u16 = 1;
const EXPR_NAME: u16 = 1;
const EXPR_DATA: u16 = 2;

/// The attributes of a netlink attribute stream, as (type, payload).
fn attributes(mut bytes: &[u8]) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    while bytes.len() >= NLA_HDRLEN {
        let len = u16::from_ne_bytes([bytes[0], bytes[1]]) as usize;
        let kind = u16::from_ne_bytes([bytes[2], bytes[3]]) & NLA_TYPE_MASK;
        if len < NLA_HDRLEN || len > bytes.len() {
            break;
        }
        out.push((kind, &bytes[NLA_HDRLEN..len]));
        bytes = &bytes[((len + 3) & !3).min(bytes.len())..];
    }
    out
}

fn attr<'a>(attrs: &[(u16, &'a [u8])], kind: u16) -> Option<&'a [u8]> {
    attrs.iter().rev().find(|(k, _)| *k == kind).map(|(_, v)| *v)
}

/// A big-endian u32 attribute (nftables sends its numbers in network order).
fn be32(attrs: &[(u16, &[u8])], kind: u16) -> Option<u32> {
    attr(attrs, kind).and_then(|v| v.get(..4)).map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes.split(|&b| b == 0).next().unwrap_or_default()).into_owned()
}

fn hex(bytes: &[u8]) -> String {
    let mut out = String::from("0x");
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// NFTA_DATA_VALUE (1) bytes, or a NFTA_DATA_VERDICT (2) as nft names it.
fn data(bytes: &[u8]) -> String {
    let attrs = attributes(bytes);
    if let Some(value) = attr(&attrs, 1) {
        return hex(value);
    }
    let Some(verdict) = attr(&attrs, 2) else { return "?".into() };
    let verdict = attributes(verdict);
    let chain = attr(&verdict, 2).map(text).unwrap_or_default();
    match be32(&verdict, 1).map(|c| c as i32) {
        Some(1) => "accept".into(),
        Some(0) => "drop".into(),
        Some(-1) => "continue".into(),
        Some(-2) => "break".into(),
        Some(-3) => format!("jump {chain}"),
        Some(-4) => format!("goto {chain}"),
        Some(-5) => "return".into(),
        other => format!("verdict {other:?}"),
    }
}

fn meta_key(key: u32) -> String {
    const KEYS: &[&str] = &[
        "len",
        "protocol",
        "priority",
        "mark",
        "iif",
        "oif",
        "iifname",
        "oifname",
        "iiftype",
        "oiftype",
        "skuid",
        "skgid",
        "nftrace",
        "rtclassid",
        "secmark",
        "nfproto",
        "l4proto",
    ];
    KEYS.get(key as usize).map_or_else(|| format!("key {key}"), |k| (*k).to_owned())
}

/// One expression: what [`decoded`] makes of it, then each attribute it
/// left alone, raw, in order (a repeated type's last value: the kernel
/// takes that one).
fn expression(name: &str, attrs: &[(u16, &[u8])]) -> String {
    let (text, used) = decoded(name, attrs);
    let mut seen: Vec<u16> = used.to_vec();
    let mut extra = String::new();
    for (kind, _) in attrs {
        if seen.contains(kind) {
            continue;
        }
        seen.push(*kind);
        let _ = write!(extra, " attr {kind}={}", attr(attrs, *kind).map(hex).unwrap_or_default());
    }
    match text.strip_suffix(" ]") {
        Some(head) if !extra.is_empty() => format!("{head}{extra} ]"),
        _ => text,
    }
}

/// The common expressions in nft's notation, with the attribute types read.
fn decoded(name: &str, attrs: &[(u16, &[u8])]) -> (String, &'static [u16]) {
    let reg = |kind| be32(attrs, kind).map_or_else(|| "?".into(), |r| r.to_string());
    let text = match name {
        // A write (NFTA_PAYLOAD_SREG) with its checksum fields, or a load.
        "payload" if attr(attrs, 5).is_some() => {
            format!(
                "[ payload write reg {} => {}b @ {} header + {} csum_type {} csum_off {} csum_flags {} ]",
                reg(5),
                be32(attrs, 4).unwrap_or(0),
                payload_base(attrs),
                be32(attrs, 3).unwrap_or(0),
                be32(attrs, 6).unwrap_or(0),
                be32(attrs, 7).unwrap_or(0),
                be32(attrs, 8).unwrap_or(0),
            )
        }
        "payload" => {
            format!(
                "[ payload load {}b @ {} header + {} => reg {} ]",
                be32(attrs, 4).unwrap_or(0),
                payload_base(attrs),
                be32(attrs, 3).unwrap_or(0),
                reg(1)
            )
        }
        "cmp" => {
            let op = ["eq", "neq", "lt", "lte", "gt", "gte"]
                .get(be32(attrs, 2).unwrap_or(9) as usize)
                .copied()
                .unwrap_or("?");
            format!("[ cmp {op} reg {} {} ]", reg(1), attr(attrs, 3).map(data).unwrap_or_default())
        }
        "meta" if attr(attrs, 1).is_some() => {
            format!("[ meta load {} => reg {} ]", meta_key(be32(attrs, 2).unwrap_or(u32::MAX)), reg(1))
        }
        "meta" => format!("[ meta set {} with reg {} ]", meta_key(be32(attrs, 2).unwrap_or(u32::MAX)), reg(3)),
        "immediate" => format!("[ immediate reg {} {} ]", reg(1), attr(attrs, 2).map(data).unwrap_or_default()),
        // NFT_LOOKUP_F_INV matches what is not in the set; a map's lookup
        // loads its value into a register.
        "lookup" => {
            let inverted = if be32(attrs, 5).unwrap_or(0) & 1 != 0 { " not in" } else { "" };
            let map = if attr(attrs, 3).is_some() { format!(" => reg {}", reg(3)) } else { String::new() };
            let set = attr(attrs, 1).map(text).unwrap_or_default();
            format!("[ lookup reg {}{inverted} set {set}{map} ]", reg(2))
        }
        other => return (format!("[ {other} ]"), &[]),
    };
    let used: &'static [u16] = match name {
        "payload" => &[1, 2, 3, 4, 5, 6, 7, 8],
        "cmp" | "meta" => &[1, 2, 3],
        "immediate" => &[1, 2],
        // NFTA_LOOKUP_SET_ID (4) only names the set within its batch.
        "lookup" => &[1, 2, 3, 4, 5],
        _ => &[],
    };
    (text, used)
}

fn payload_base(attrs: &[(u16, &[u8])]) -> &'static str {
    match be32(attrs, 2) {
        Some(0) => "link",
        Some(1) => "network",
        Some(2) => "transport",
        _ => "inner",
    }
}

/// `expressions` (at most the first bytes of them when `complete` is false)
/// as one line of `[ ... ]` groups.
pub fn render(expressions: &[u8], complete: bool) -> String {
    let mut groups: Vec<String> = attributes(expressions)
        .into_iter()
        .filter(|(kind, _)| *kind == LIST_ELEM)
        .map(|(_, elem)| {
            let elem = attributes(elem);
            let name = attr(&elem, EXPR_NAME).map(text).unwrap_or_else(|| "?".into());
            let data = attr(&elem, EXPR_DATA).map(attributes).unwrap_or_default();
            expression(&name, &data)
        })
        .collect();
    if !complete {
        groups.push("[ ... (longer than the kernel sends) ]".into());
    }
    groups.join(" ")
}
