//! What a guest that died mid-run left behind, said in the failure line
//! itself (CI keeps only the tail of a run's output, and the console lines
//! of a boot that died early in the run are long gone from it by the end),
//! and which of its tests had passed, for the next boot to leave out.

use std::path::Path;

/// How many of the kernel log's last lines the summary quotes.
const KERNEL_LINES: usize = 12;

/// The logs the kernel tier's script writes on the shared directory, by
/// name without ".log": the test binary's output, the kernel's, memory.
const LOGS: [&str; 3] = ["kernel", "dmesg", "memory"];

/// Renames a dead boot's logs to NAME-died.log, out of the next boot's way.
pub fn keep(results: &Path) {
    for log in LOGS {
        let _ = std::fs::rename(results.join(format!("{log}.log")), results.join(format!("{log}-died.log")));
    }
}

/// The test that was running (the kernel test binary's last line, which
/// libtest leaves open until the test ends), the tests that had passed, the
/// guest's last memory reading and its kernel log's last lines, from the
/// logs in `results` named NAME{suffix}.log.
pub fn summary(results: &Path, suffix: &str) -> String {
    let [tests, dmesg, memory] =
        LOGS.map(|log| std::fs::read_to_string(results.join(format!("{log}{suffix}.log"))).unwrap_or_default());
    let mut said = match running_test(&tests) {
        Some(name) => format!("it died during {name}"),
        None => "no test was running (it died before the first or after the last)".to_string(),
    };
    let passed = tests.lines().filter(|line| line.ends_with(" ... ok")).count();
    said.push_str(&format!(", after {passed} passed; "));
    match memory.lines().last() {
        Some(reading) => said.push_str(&format!("memory at {reading}; ")),
        None => said.push_str("no memory reading; "),
    }
    said.push_str("the guest kernel's last lines:");
    let lines: Vec<&str> = dmesg.lines().collect();
    if lines.is_empty() {
        said.push_str(&format!("\n    (none: dmesg{suffix}.log is empty or missing)"));
    }
    for line in &lines[lines.len().saturating_sub(KERNEL_LINES)..] {
        said.push_str("\n    ");
        said.push_str(line);
    }
    said
}

/// What a boot that died leaves the next.
pub struct DeadBoot {
    /// [`summary`] of it.
    pub said: String,
    /// The tests that ended on it, for the next boot to leave out (see
    /// [`skippable`]).
    pub left_out: Vec<String>,
    /// How many of those passed.
    pub passed: u64,
    /// Those that failed (their output is in kernel-died.log).
    pub failed: Vec<String>,
}

/// Keeps the logs of the boot that died in `results` (see [`keep`]) and
/// says what it left: the tests the next boot runs are those that did not
/// end on it, for which every test of `test_exe` is listed.
pub fn after_death(results: &Path, test_exe: &Path) -> DeadBoot {
    keep(results);
    let all = list_tests(test_exe);
    let passed = skippable(&ended(results, "-died", " ... ok"), &all);
    let failed = skippable(&ended(results, "-died", " ... FAILED"), &all);
    DeadBoot {
        said: summary(results, "-died"),
        passed: passed.len() as u64,
        left_out: [passed, failed.clone()].concat(),
        failed,
    }
}

/// The tests whose line ends with `outcome` in the log kernel{suffix}.log.
pub fn ended(results: &Path, suffix: &str, outcome: &str) -> Vec<String> {
    let tests = std::fs::read_to_string(results.join(format!("kernel{suffix}.log"))).unwrap_or_default();
    tests.lines().filter_map(|line| line.strip_prefix("test ")?.strip_suffix(outcome)).map(str::to_owned).collect()
}

/// Every test the kernel test binary holds (`--list --ignored`, run here:
/// listing runs none); empty if it cannot say, so that nothing is skipped.
pub fn list_tests(test_exe: &Path) -> Vec<String> {
    let Ok(out) = std::process::Command::new(test_exe).args(["--list", "--ignored"]).output() else {
        return Vec::new();
    };
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| line.strip_suffix(": test"))
        .map(str::to_owned)
        .collect()
}

/// Of `ended`, those a `--skip` can leave out alone: libtest skips every
/// test whose name contains the one given, so a name inside another test's
/// name (of `all`) is run again rather than risk leaving that one out.
pub fn skippable(ended: &[String], all: &[String]) -> Vec<String> {
    ended.iter().filter(|name| all.iter().filter(|other| other.contains(name.as_str())).count() == 1).cloned().collect()
}

/// The name of the test a libtest log ends inside, if it does.
fn running_test(tests: &str) -> Option<&str> {
    let last = tests.lines().last()?;
    let rest = last.strip_prefix("test ")?;
    let (name, outcome) = rest.split_once(" ...").unwrap_or((rest, ""));
    outcome.trim().is_empty().then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_open_last_line_names_the_running_test() {
        let log = "running 3 tests\ntest a ... ok\ntest b ... ";
        assert_eq!(running_test(log), Some("b"));
        assert_eq!(running_test("test a ... ok\n"), None);
        assert_eq!(running_test("test a ... FAILED"), None);
        assert_eq!(running_test(""), None);
    }

    #[test]
    fn a_passed_test_is_skipped_only_if_no_other_name_holds_its_name() {
        let all = ["a::one", "a::one_more", "b::two"].map(String::from);
        let passed = ["a::one", "b::two"].map(String::from);
        assert_eq!(skippable(&passed, &all), ["b::two"]);
    }

    #[test]
    fn the_summary_quotes_the_kernel_s_last_lines() {
        let dir = std::env::temp_dir().join(format!("xtask-last-words-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("kernel.log"), "test a ... ok\ntest b ... ").unwrap();
        let kernel: Vec<String> = (0..20).map(|n| format!("[{n}] line")).collect();
        std::fs::write(dir.join("dmesg.log"), kernel.join("\n")).unwrap();
        std::fs::write(dir.join("memory.log"), "1 MemAvailable: 9 kB\n2 MemAvailable: 8 kB\n").unwrap();
        keep(&dir);
        assert_eq!(ended(&dir, "-died", " ... ok"), ["a"]);
        let said = summary(&dir, "-died");
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(said.starts_with("it died during b, after 1 passed; memory at 2 MemAvailable: 8 kB;"), "{said}");
        assert!(said.ends_with("[19] line") && said.contains("[8] line") && !said.contains("[7] line"), "{said}");
    }
}
