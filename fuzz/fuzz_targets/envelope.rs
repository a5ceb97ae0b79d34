//! DSSE envelopes: parsing, signature verification against the demo trust
//! root, and warrant checks against the demo policy, on arbitrary input.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use warrant::{
    approval,
    keys::PublicKey,
    policy::{self, CompiledPolicy},
    trust::{Envelope, POLICY_PAYLOAD_TYPE},
};

static TRUST_ROOT: LazyLock<PublicKey> = LazyLock::new(|| {
    PublicKey::parse(include_str!("../../policies/demo-keys/security-team.key.pub"))
        .expect("the demo trust root parses")
});

static DEMO_POLICY: LazyLock<CompiledPolicy> = LazyLock::new(|| {
    let text = include_str!("../../policies/demo.toml");
    policy::compile(policy::Policy::parse(text).expect("demo policy parses")).expect("demo policy compiles")
});

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(envelope) = Envelope::parse(text) else { return };
    let _ = envelope.verify(POLICY_PAYLOAD_TYPE, std::slice::from_ref(&*TRUST_ROOT), 1);
    let _ = approval::check(&envelope, &DEMO_POLICY, "fuzz-host", 1_800_000_000);
});
