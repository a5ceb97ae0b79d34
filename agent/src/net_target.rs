//! Policy text for the targets of rtnetlink actions: interfaces
//! (`IFNAME [netns NAME]`) and routes (`TABLE PREFIX [netns NAME]`), read
//! into the keys the kernel builds (see `warrant_common::action::TargetKind`)
//! and rendered back for records.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use warrant_common::{FAMILY_ANY, TargetKey, action};

use crate::policy::{HOST_NETNS, HostNames, Target, TargetError, resolve_netns_word};

/// Route table names `ip route` knows, by id.
const TABLES: &[(&str, u32)] = &[("default", 253), ("main", 254), ("local", 255)];
const AF_INET: u8 = 2;
const AF_INET6: u8 = 10;

/// A route target: a table, a destination prefix (`None`: any in the
/// table), in a namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    pub table: u32,
    pub prefix: Option<(IpAddr, u8)>,
    pub netns: u64,
}

impl Route {
    /// Writes the route into `key` as the kernel program does.
    pub fn fill(&self, key: &mut TargetKey) {
        key.set_route(self.table, self.netns);
        if let Some((address, len)) = self.prefix {
            let mut bytes = [0u8; 16];
            let family = match address {
                IpAddr::V4(v4) => {
                    bytes[..4].copy_from_slice(&v4.octets());
                    AF_INET
                }
                IpAddr::V6(v6) => {
                    bytes.copy_from_slice(&v6.octets());
                    AF_INET6
                }
            };
            key.set_route_prefix(family, len, &bytes);
        }
    }
}

/// The namespace `word` names (`host`, a name under /run/netns,
/// `net:[INODE]`), refusing a name a subject made.
fn namespace(text: &str, word: &str, names: &dyn HostNames) -> Result<u64, TargetError> {
    resolve_netns_word(text, word, "its namespace's name", names)?.ok_or_else(|| {
        TargetError::NotOnThisHost(format!("target {text:?}: no network namespace {word:?} on this host"))
    })
}

/// The words of `text` and the namespace a trailing `netns NAME` names
/// (the host's without one).
fn split_netns<'a>(text: &'a str, names: &dyn HostNames) -> Result<(Vec<&'a str>, u64), TargetError> {
    let mut words: Vec<&str> = text.split_whitespace().collect();
    let netns = match words.iter().position(|w| *w == "netns") {
        Some(at) if at + 2 == words.len() => {
            let inode = namespace(text, words[at + 1], names)?;
            words.truncate(at);
            inode
        }
        Some(_) => return Err(TargetError::Invalid(format!("target {text:?}: `netns NAME` must end it"))),
        None => namespace(text, HOST_NETNS, names)?,
    };
    Ok((words, netns))
}

/// `IFNAME` (in the host's namespace) or `IFNAME netns NAME`.
pub fn parse_interface(text: &str, names: &dyn HostNames) -> Result<Target, TargetError> {
    let (words, netns) = split_netns(text, names)?;
    let [name] = words[..] else {
        return Err(TargetError::Invalid(format!(
            "target {text:?} must be IFNAME, IFNAME netns NAME, or * (e.g. \"veth-agent\")"
        )));
    };
    // As the kernel's dev_valid_name, in printable ASCII (the kernel's
    // isspace also takes some bytes past it), and no `%d` pattern: a rule
    // names one interface.
    let valid = !name.is_empty()
        && name.len() < action::IFNAME_LEN
        && name != "."
        && name != ".."
        && name.bytes().all(|b| b.is_ascii_graphic() && !matches!(b, b'/' | b':' | b'%' | b'*'));
    if !valid {
        return Err(TargetError::Invalid(format!(
            "target {text:?}: {name:?} is not an interface name (1-15 printable ASCII bytes, no '/', ':', '%' or '*')"
        )));
    }
    Ok(Target::Interface(Some((name.to_owned(), netns))))
}

/// `TABLE PREFIX` or `TABLE *`, then optionally `netns NAME`: TABLE is
/// `main`, `local`, `default` or an id; PREFIX is `ADDRESS/LENGTH` with no
/// bits set past the length.
pub fn parse_route(text: &str, names: &dyn HostNames) -> Result<Target, TargetError> {
    let (words, netns) = split_netns(text, names)?;
    let invalid = |why: &str| TargetError::Invalid(format!("target {text:?}: {why}"));
    let [table, prefix] = words[..] else {
        return Err(invalid("must be TABLE PREFIX or TABLE * (e.g. \"main 10.62.0.0/16\"), or *"));
    };
    let table = match TABLES.iter().find(|(name, _)| *name == table) {
        Some((_, id)) => *id,
        None => table.parse::<u32>().ok().filter(|id| *id != 0).ok_or_else(|| {
            invalid("the table must be main, local, default or an id from 1 (0 is main, as the kernel reads it)")
        })?,
    };
    let prefix = match prefix {
        "*" => None,
        prefix => Some(parse_prefix(prefix).map_err(|why| invalid(&why))?),
    };
    Ok(Target::Route(Some(Route { table, prefix, netns })))
}

/// `ADDRESS/LENGTH` (a bare address is the host route), refusing bits past
/// the length: IPv4 refuses such a route and IPv6 clears them, so a rule
/// written with them would name a prefix other than the one meant.
fn parse_prefix(text: &str) -> Result<(IpAddr, u8), String> {
    let (address, len) = match text.split_once('/') {
        Some((address, len)) => (address, Some(len)),
        None => (text, None),
    };
    let address: IpAddr = address.parse().map_err(|_| format!("{address:?} is not an IP address"))?;
    let width = if address.is_ipv4() { 32 } else { 128 };
    let len = match len {
        Some(len) => len
            .parse::<u8>()
            .ok()
            .filter(|l| u32::from(*l) <= width)
            .ok_or_else(|| format!("{len:?} is not a prefix length (0-{width})"))?,
        None => width as u8,
    };
    let masked = mask(address, len);
    if masked != address {
        return Err(format!("{text} has bits set past /{len}; the prefix is {masked}/{len}"));
    }
    Ok((address, len))
}

fn mask(address: IpAddr, len: u8) -> IpAddr {
    match address {
        IpAddr::V4(v4) => {
            let bits = u32::from(v4) & u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
            IpAddr::V4(Ipv4Addr::from(bits))
        }
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(bits))
        }
    }
}

/// ` netns net:[N]` unless `netns` is the host's (or unknown, 0).
fn netns_suffix(netns: u64, host: Option<u64>) -> String {
    if netns == 0 || Some(netns) == host { String::new() } else { format!(" netns net:[{netns}]") }
}

/// An interface key as policy text; `host` is the host's namespace.
pub fn render_interface(key: &TargetKey, host: Option<u64>) -> String {
    let name = String::from_utf8_lossy(key.interface_name()).into_owned();
    let suffix = netns_suffix(key.interface_netns(), host);
    match (name.is_empty(), key.interface_index()) {
        (false, _) => format!("{name}{suffix}"),
        (true, _) if key.family == FAMILY_ANY => "*".to_owned(),
        (true, 0) => "(an interface no name names)".to_owned(),
        (true, index) => format!("(ifindex {index}, unnamed)"),
    }
}

/// A route key as policy text; `host` is the host's namespace.
pub fn render_route(key: &TargetKey, host: Option<u64>) -> String {
    if key.family == FAMILY_ANY {
        return "*".to_owned();
    }
    let (table, netns) = key.route();
    if table == 0 {
        return "(a route no target names)".to_owned();
    }
    let table = TABLES.iter().find(|(_, id)| *id == table).map_or_else(|| table.to_string(), |(n, _)| (*n).to_owned());
    let (family, len, address) = key.route_prefix();
    let prefix = match family {
        AF_INET => {
            let octets: [u8; 4] = address[..4].try_into().unwrap_or_default();
            format!("{}/{len}", Ipv4Addr::from(octets))
        }
        AF_INET6 => format!("{}/{len}", Ipv6Addr::from(address)),
        _ => "*".to_owned(),
    };
    format!("{table} {prefix}{}", netns_suffix(netns, host))
}
