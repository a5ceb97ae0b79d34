//! Plain tier: `warrant doctor` on a kernel that cannot run BPF-LSM programs
//! (the development and CI hosts) says so, with the reason, and exits non-zero.
//! Inside the VM the kernel tier checks the opposite.

use std::process::Command;

#[test]
fn doctor_reports_unavailable_enforcement_on_this_host_with_a_reason() {
    if std::env::var("WARRANT_KERNEL_TIER").as_deref() == Ok("1") {
        return; // In the VM, `doctor_says_enforcement_is_available_and_in_which_mode` covers doctor.
    }
    let out = Command::new(env!("CARGO_BIN_EXE_warrant")).args(["doctor", "--json"]).output().unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("doctor --json prints JSON");
    assert!(!out.status.success(), "doctor claims enforcement works on the host: {report}");
    assert_eq!(report["enforcement"], "unavailable");
    let reason = report["reason"].as_str().unwrap();
    assert!(!reason.is_empty(), "no reason given");
    eprintln!("host doctor: {reason}");
    let text = Command::new(env!("CARGO_BIN_EXE_warrant")).arg("doctor").output().unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("enforcement: unavailable ("), "{text}");
}

#[test]
fn bad_input_gets_one_line_and_a_non_zero_exit() {
    let dir = std::env::temp_dir().join(format!("warrant-badinput-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "version = ").unwrap();
    let key = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies/demo-keys/security-team.key");
    let out = Command::new(env!("CARGO_BIN_EXE_warrant"))
        .args(["policy", "sign", bad.to_str().unwrap(), "--key", key.to_str().unwrap(), "--out"])
        .arg(dir.join("out.bundle"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("not valid TOML") && !stderr.contains("panicked"), "{stderr}");
    assert!(!dir.join("out.bundle").exists(), "nothing half-written");
    std::fs::remove_dir_all(dir).unwrap();
}
