//! What a guest that died mid-run left behind, said in the failure line
//! itself: CI keeps only the tail of a run's output, and the console lines
//! of a boot that died early in the run are long gone from it by the end.

use std::path::Path;

/// How many of the kernel log's last lines the summary quotes.
const KERNEL_LINES: usize = 12;

/// The test that was running (the kernel test binary's last line, which
/// libtest leaves open until the test ends), the tests that had passed, and
/// the kernel log's last lines; `kernel_log` and `dmesg_log` are the
/// guest's copies on the shared directory.
pub fn summary(kernel_log: &Path, dmesg_log: &Path) -> String {
    let tests = std::fs::read_to_string(kernel_log).unwrap_or_default();
    let dmesg = std::fs::read_to_string(dmesg_log).unwrap_or_default();
    let mut said = match running_test(&tests) {
        Some(name) => format!("it died during {name}"),
        None => "no test was running (it died before the first or after the last)".to_string(),
    };
    let passed = tests.lines().filter(|line| line.ends_with(" ... ok")).count();
    said.push_str(&format!(", after {passed} passed; the guest kernel's last lines:"));
    let lines: Vec<&str> = dmesg.lines().collect();
    if lines.is_empty() {
        said.push_str(&format!("\n    (none: {} is empty or missing)", dmesg_log.display()));
    }
    for line in &lines[lines.len().saturating_sub(KERNEL_LINES)..] {
        said.push_str("\n    ");
        said.push_str(line);
    }
    said
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
    fn the_summary_quotes_the_kernel_s_last_lines() {
        let dir = std::env::temp_dir().join(format!("xtask-last-words-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (tests, dmesg) = (dir.join("kernel.log"), dir.join("dmesg.log"));
        std::fs::write(&tests, "test a ... ok\ntest b ... ").unwrap();
        let kernel: Vec<String> = (0..20).map(|n| format!("[{n}] line")).collect();
        std::fs::write(&dmesg, kernel.join("\n")).unwrap();
        let said = summary(&tests, &dmesg);
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(said.starts_with("it died during b, after 1 passed"), "{said}");
        assert!(said.ends_with("[19] line") && said.contains("[8] line") && !said.contains("[7] line"), "{said}");
    }
}
