//! What a policy apply does besides writing the kernel's maps, on this
//! machine's own CPU and file systems: `cargo xtask bench` runs it on the
//! host, beside the VM, whose emulated CPU and 9p root slow both parts.

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};
use serde_json::json;
use warrant::keys::PublicKey;
use warrant::policy::{self, Policy, ThisHost};
use warrant::trust::{self, Envelope, POLICY_PAYLOAD_TYPE};

use crate::policy_text::apply_policy;

/// Runs of each policy; the first walk reads a cold cache if nothing read
/// those paths before.
const RUNS: usize = 5;

/// For policies of 10, 100 and 1000 rules, each of [`RUNS`] times: the
/// daemon's `verify` phase (the bundle's signature checked, the policy
/// parsed and compiled) and its `walk` (the inodes of every protected
/// tree, the guarded ones included, as the daemon walks them but for its
/// own files). One JSON line a policy.
pub fn apply(repo: &Path) -> Result<()> {
    let key_path = repo.join("policies/demo-keys/security-team.key");
    let key = trust::read_signing_key(&key_path).with_context(|| format!("reading {}", key_path.display()))?;
    let trusted = [PublicKey::Ed25519(key.verifying_key())];
    let protected = std::env::temp_dir().join(format!("warrant-bench-native-{}", std::process::id()));
    std::fs::write(&protected, b"").with_context(|| format!("creating {}", protected.display()))?;
    let measured = (|| {
        for rules in [10u64, 100, 1000] {
            let text = apply_policy(2, rules, &[&protected], None);
            let bundle = Envelope::sign(POLICY_PAYLOAD_TYPE, text.as_bytes(), std::slice::from_ref(&key)).to_json();
            let (mut verify_ms, mut walk_ms, mut inodes) = (Vec::new(), Vec::new(), 0);
            for _ in 0..RUNS {
                let started = Instant::now();
                let compiled = verify_and_compile(&bundle, &trusted).with_context(|| format!("{rules} rules"))?;
                verify_ms.push(started.elapsed().as_secs_f64() * 1e3);
                let started = Instant::now();
                let walked = warrant::protect::inodes(&compiled.policy.protect, &[]);
                inodes = walked.with_context(|| format!("walking for {rules} rules"))?.len();
                walk_ms.push(started.elapsed().as_secs_f64() * 1e3);
            }
            println!(
                "{}",
                json!({"kind": "native_apply", "rules": rules, "inodes": inodes, "verify_ms": verify_ms, "walk_ms": walk_ms})
            );
        }
        Ok(())
    })();
    let _ = std::fs::remove_file(&protected);
    measured
}

/// The daemon's `verify` phase: the signature, then the policy parsed and
/// compiled (with this host's names; the daemon's also know what subjects
/// wrote, which changes no timing here).
fn verify_and_compile(bundle: &str, trusted: &[PublicKey]) -> Result<policy::CompiledPolicy> {
    let (payload, _) = Envelope::parse(bundle)?.verify(POLICY_PAYLOAD_TYPE, trusted, 1)?;
    let policy = Policy::parse(std::str::from_utf8(&payload)?)?;
    Ok(policy::compile_guarding(policy, &[], &ThisHost)?)
}
