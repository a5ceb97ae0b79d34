//! Policy text: parsing and compiling must refuse bad input with an error,
//! never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use warrant::policy::{self, HostNames};
use warrant_common::FileKey;

/// A host with no namespaces and no files: compiling must not depend on one.
struct NoHost;

impl HostNames for NoHost {
    fn netns(&self, _: &str) -> Option<u64> {
        None
    }
    fn file(&self, _: &str) -> Option<FileKey> {
        None
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(parsed) = policy::Policy::parse(text) {
        let _ = policy::compile_with(parsed, &NoHost);
    }
});
