//! Reading libtest's output: its summary lines and, from a log stamped
//! per line, how long each test took.

use std::ops::AddAssign;

/// Totals of the libtest `test result:` lines.
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub struct Counts {
    pub passed: u64,
    pub failed: u64,
    pub ignored: u64,
}

impl AddAssign for Counts {
    fn add_assign(&mut self, other: Counts) {
        self.passed += other.passed;
        self.failed += other.failed;
        self.ignored += other.ignored;
    }
}

/// The `count` longest tests in a timed log (`SECONDS line` per line): a
/// test took from the line before it to its own `test NAME ... RESULT` line.
pub fn slowest_tests(timed: &str, count: usize) -> Vec<(String, u64)> {
    let mut previous = None::<u64>;
    let mut durations = Vec::new();
    for line in timed.lines() {
        let Some((stamp, text)) = line.split_once(' ') else { continue };
        let Ok(stamp) = stamp.parse::<u64>() else { continue };
        if let Some(name) = text.strip_prefix("test ").and_then(|rest| rest.split(" ... ").next())
            && text.contains(" ... ")
            && let Some(start) = previous
        {
            durations.push((name.to_string(), stamp.saturating_sub(start)));
        }
        previous = Some(stamp);
    }
    durations.sort_by_key(|d| std::cmp::Reverse(d.1));
    durations.truncate(count);
    durations
}

/// Sums every libtest summary line
/// (`test result: ok. 3 passed; 0 failed; 1 ignored; ...`); None if none.
pub fn parse_test_results(output: &str) -> Option<Counts> {
    let mut total = None::<Counts>;
    for line in output.lines() {
        let Some(rest) = line.trim().strip_prefix("test result:") else {
            continue;
        };
        let mut counts = Counts::default();
        for field in rest.split([';', '.']) {
            let mut words = field.split_whitespace();
            let (Some(number), Some(label)) = (words.next(), words.next()) else {
                continue;
            };
            let Ok(n) = number.parse::<u64>() else {
                continue;
            };
            match label {
                "passed" => counts.passed = n,
                "failed" => counts.failed = n,
                "ignored" => counts.ignored = n,
                _ => {}
            }
        }
        *total.get_or_insert_default() += counts;
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_all_result_lines() {
        let output = "\
running 3 tests
test result: ok. 3 passed; 0 failed; 2 ignored; 0 measured; 0 filtered out; finished in 0.01s
test result: FAILED. 4 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out; finished in 1.50s
";
        assert_eq!(parse_test_results(output), Some(Counts { passed: 7, failed: 1, ignored: 2 }));
    }

    #[test]
    fn slowest_tests_are_timed_from_the_line_before() {
        let timed =
            "100 running 3 tests\n130 test a ... ok\n131 test b ... ok\n200 test c ... FAILED\n201 test result: ok.";
        assert_eq!(slowest_tests(timed, 2), [("c".to_string(), 69), ("a".to_string(), 30)]);
    }

    #[test]
    fn no_result_line_is_none() {
        assert_eq!(parse_test_results("error: could not compile `warrant`"), None);
    }

    #[test]
    fn zero_tests_is_some_zero() {
        let output = "test result: ok. 0 passed; 0 failed; 0 ignored; 0 measured; 5 filtered out; finished in 0.00s";
        assert_eq!(parse_test_results(output), Some(Counts::default()));
    }
}
