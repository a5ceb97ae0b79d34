//! The exact change that puts `bpf` among a host's active LSMs, printed by
//! `warrant doctor` when it is missing: for GRUB, which Debian and Ubuntu
//! boot with, the `GRUB_CMDLINE_LINUX` line to write, computed from the
//! host's own /etc/default/grub, then `update-grub` and a reboot.

/// The `lsm=` list to boot with: the active LSMs in their order, then bpf.
pub fn lsm_with_bpf(active: &str) -> String {
    let mut list: Vec<&str> = active.trim().split(',').filter(|l| !l.is_empty() && *l != "bpf").collect();
    list.push("bpf");
    list.join(",")
}

/// The variable of /etc/default/grub to change and its new line: the one
/// that already sets `lsm=` (its value replaced), else GRUB_CMDLINE_LINUX
/// (with `lsm=` appended to what it holds).
pub fn grub_line(grub_default: Option<&str>, lsm: &str) -> String {
    let assignments: Vec<(&str, String)> = grub_default
        .unwrap_or("")
        .lines()
        .filter_map(|line| {
            let (name, value) = line.trim().split_once('=')?;
            matches!(name, "GRUB_CMDLINE_LINUX" | "GRUB_CMDLINE_LINUX_DEFAULT").then(|| (name, shell_value(value)))
        })
        .collect();
    // The last assignment of a variable is the one GRUB uses.
    let last = |name: &str| assignments.iter().rev().find(|(n, _)| *n == name).map(|(_, v)| v.clone());
    let (name, value) = ["GRUB_CMDLINE_LINUX_DEFAULT", "GRUB_CMDLINE_LINUX"]
        .into_iter()
        .find_map(|name| last(name).filter(|v| v.split_whitespace().any(|w| w.starts_with("lsm="))).map(|v| (name, v)))
        .unwrap_or_else(|| ("GRUB_CMDLINE_LINUX", last("GRUB_CMDLINE_LINUX").unwrap_or_default()));
    let mut words: Vec<String> =
        value.split_whitespace().filter(|w| !w.starts_with("lsm=")).map(str::to_owned).collect();
    words.push(format!("lsm={lsm}"));
    format!("{name}=\"{}\"", words.join(" "))
}

/// A shell assignment's value as the shell reads it: inside its quotes, or
/// up to the first blank (a `# comment` after it is not part of it).
fn shell_value(value: &str) -> String {
    let value = value.trim_start();
    match value.chars().next() {
        Some(quote @ ('"' | '\'')) => value[1..].split(quote).next().unwrap_or("").to_owned(),
        _ => value.split(|c: char| c.is_whitespace() || c == '#').next().unwrap_or("").to_owned(),
    }
}

/// /etc/default/grub, then the files of /etc/default/grub.d/ in the order
/// grub-mkconfig reads them: the last assignment of a variable wins.
pub fn read_grub_defaults() -> Option<String> {
    let mut text = std::fs::read_to_string("/etc/default/grub").ok()?;
    let mut extra: Vec<_> = std::fs::read_dir("/etc/default/grub.d")
        .map(|dir| dir.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "cfg")).collect())
        .unwrap_or_default();
    extra.sort();
    for path in extra {
        text.push('\n');
        text.push_str(&std::fs::read_to_string(path).unwrap_or_default());
    }
    Some(text)
}

/// What to do, line by line, given the active LSMs and GRUB's defaults
/// ([`read_grub_defaults`]).
pub fn steps(active: &str, grub_default: Option<&str>) -> Vec<String> {
    let lsm = lsm_with_bpf(active);
    vec![
        "fix (Debian/Ubuntu, GRUB): in /etc/default/grub (or the file in /etc/default/grub.d/ that sets it) write"
            .into(),
        format!("  {}", grub_line(grub_default, &lsm)),
        "then run: update-grub && reboot".into(),
        format!(
            "(systemd-boot: put lsm={lsm} in /etc/kernel/cmdline and run kernel-install or bootctl update; after the reboot `warrant doctor` says mode: bpf-lsm)"
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    const ACTIVE: &str = "lockdown,capability,landlock,yama,apparmor,tomoyo,ima,evm";

    #[test]
    fn bpf_is_appended_to_the_active_list_once() {
        assert_eq!(lsm_with_bpf(ACTIVE), "lockdown,capability,landlock,yama,apparmor,tomoyo,ima,evm,bpf");
        assert_eq!(lsm_with_bpf("capability,bpf,yama\n"), "capability,yama,bpf");
    }

    #[test]
    fn the_grub_line_keeps_what_the_host_has_and_sets_lsm() {
        let debian = "GRUB_DEFAULT=0\nGRUB_CMDLINE_LINUX_DEFAULT=\"quiet\"\nGRUB_CMDLINE_LINUX=\"console=ttyS0\"\n";
        assert_eq!(
            grub_line(Some(debian), "capability,bpf"),
            "GRUB_CMDLINE_LINUX=\"console=ttyS0 lsm=capability,bpf\""
        );
        // An lsm= already set is replaced where it is.
        let set = "GRUB_CMDLINE_LINUX_DEFAULT=\"quiet lsm=landlock,yama splash\"\nGRUB_CMDLINE_LINUX=\"\"\n";
        assert_eq!(
            grub_line(Some(set), "landlock,yama,bpf"),
            "GRUB_CMDLINE_LINUX_DEFAULT=\"quiet splash lsm=landlock,yama,bpf\""
        );
        // No file, or no such line: a new GRUB_CMDLINE_LINUX.
        assert_eq!(grub_line(None, "bpf"), "GRUB_CMDLINE_LINUX=\"lsm=bpf\"");
        // The last assignment is the one GRUB uses.
        let twice = "GRUB_CMDLINE_LINUX=\"a\"\nGRUB_CMDLINE_LINUX=\"b\"\n";
        assert_eq!(grub_line(Some(twice), "bpf"), "GRUB_CMDLINE_LINUX=\"b lsm=bpf\"");
        // A comment after the value is not part of it.
        let commented = "GRUB_CMDLINE_LINUX=\"console=ttyS0\" # serial\nGRUB_CMDLINE_LINUX_DEFAULT=quiet # q\n";
        assert_eq!(grub_line(Some(commented), "bpf"), "GRUB_CMDLINE_LINUX=\"console=ttyS0 lsm=bpf\"");
    }

    #[test]
    fn the_steps_name_the_file_the_line_and_the_commands() {
        let steps = steps(ACTIVE, Some("GRUB_CMDLINE_LINUX=\"\"\n"));
        assert!(
            steps[1]
                .contains("GRUB_CMDLINE_LINUX=\"lsm=lockdown,capability,landlock,yama,apparmor,tomoyo,ima,evm,bpf\"")
        );
        assert_eq!(steps[2], "then run: update-grub && reboot");
    }
}
