//! A readable rendering of an nft rule's expressions (the
//! NFTA_RULE_EXPRESSIONS payload the kernel digested), for the RI who reads
//! a change request. It follows `nft --debug=netlink`'s notation for the
//! common expressions and names the others; it never fails, it shows what
//! it cannot decode as such.

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

fn expression(name: &str, attrs: &[(u16, &[u8])]) -> String {
    let reg = |kind| be32(attrs, kind).map_or_else(|| "?".into(), |r| r.to_string());
    match name {
        "payload" => {
            let base = match be32(attrs, 2) {
                Some(0) => "link",
                Some(1) => "network",
                Some(2) => "transport",
                _ => "inner",
            };
            format!(
                "[ payload load {}b @ {base} header + {} => reg {} ]",
                be32(attrs, 4).unwrap_or(0),
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
        "lookup" => format!("[ lookup reg {} set {} ]", reg(2), attr(attrs, 1).map(text).unwrap_or_default()),
        other => format!("[ {other} ]"),
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
