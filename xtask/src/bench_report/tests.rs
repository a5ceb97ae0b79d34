//! The report code on recorded output.

use super::*;

/// Two rounds as warrant-bench prints them (shortened).
const RECORDED: &str = r#"
{"kind":"daemon_start","ms":12000.5}
{"kind":"policy_apply","rules":1000,"protected_inodes":660,"ms":80.5,"phases_ms":{"verify":2.5,"pick_up":70.0}}
{"kind":"verifier","program":"sb_mount","instructions":67954}
{"kind":"verifier","program":"file_open","instructions":17841}
{"kind":"rss","when":"idle","kib":19000}
{"kind":"sample","workload":"open-close-read","state":"detached","round":0,"ns_per_op":1000.0}
{"kind":"sample","workload":"open-close-read","state":"attached","round":0,"ns_per_op":1010.0}
{"kind":"sample","workload":"open-close-read","state":"subject","round":0,"ns_per_op":1100.0}
{"kind":"sample","workload":"open-close-read","state":"subject_protected","round":0,"ns_per_op":1200.0}
{"kind":"sample","workload":"open-close-read","state":"attached","round":1,"ns_per_op":2040.0}
{"kind":"sample","workload":"open-close-read","state":"subject","round":1,"ns_per_op":2100.0}
{"kind":"sample","workload":"open-close-read","state":"detached","round":1,"ns_per_op":2000.0}
{"kind":"nft","batch":100,"state":"not_subject","round":0,"ns":10000000}
{"kind":"nft","batch":100,"state":"subject","round":0,"ns":11000000}
{"kind":"rss","when":"after load","kib":30000}
{"kind":"rss","when":"under load, 50000/s offered (highest)","kib":13000}
{"kind":"audit","offered_rate":10000,"seconds":2.0,"ops":20000,"written":20000,"lost":0,"last_record_s":2.5}
{"kind":"native_apply","rules":1000,"inodes":246,"verify_ms":[9.5,8.0,8.25],"walk_ms":[30.5,4.0,3.5,3.75],"commit_ms":[20.0,18.5]}
{"kind":"native_apply","rules":10,"inodes":246,"verify_ms":[1.0],"walk_ms":[2.0]}
{"kind":"native_audit","offered_rate":50000,"seconds":2.0,"ops":100000,"written":100000,"lost":0,"last_record_s":2.0}
{"kind":"native_records","action":"file.write","records":50000,"ms":400.0,"per_s":125000.0,"log_file_system":"ext4"}
{"kind":"program_cost","workload":"open-close-read","state":"attached","ns_per_op":1200.0,"programs":{"file_open":{"calls_per_op":1.0,"ns_per_call":40.0},"file_free_security":{"calls_per_op":1.0,"ns_per_call":60.0}}}
"#;

#[test]
fn ratios_are_paired_by_round() {
    let raw = parse(RECORDED).unwrap();
    let key = |s: &str| ("open-close-read".to_owned(), s.to_owned());
    let not_subject = paired(&raw.samples[&key("attached")], &raw.samples[&key("detached")]).unwrap();
    // Rounds: 1010/1000 and 2040/2000, though the absolute times doubled.
    assert_eq!(not_subject.pairs, 2);
    assert!((not_subject.median - 1.015).abs() < 1e-9);
    assert!((not_subject.min - 1.01).abs() < 1e-9 && (not_subject.max - 1.02).abs() < 1e-9);
    let protected = paired(&raw.samples[&key("subject_protected")], &raw.samples[&key("detached")]).unwrap();
    assert_eq!(protected.pairs, 1);
}

#[test]
fn report_marks_missed_targets() {
    let report = report(&parse(RECORDED).unwrap());
    // subject vs no Warrant: 1.10 and 1.05, median 1.075 > 1.05; nft 100: 1.10; RSS after load 30000 KiB.
    assert_eq!(report.misses.len(), 3, "{:?}", report.misses);
    assert!(report.table.contains("x1.015"), "{}", report.table);
    // The daemon's rows line up on the longest name.
    assert!(report.table.contains("\n  rss_kib idle                                  19000\n"), "{}", report.table);
    assert!(report.table.contains("\n  rss_kib under load, 50000/s offered (highest) 13000\n"), "{}", report.table);
    assert_eq!(report.json["nft"][0]["us_per_message"]["median"], 10.0);
    assert_eq!(report.json["verifier"][0]["program"], "sb_mount");
    assert_eq!(report.json["audit"][0]["written_per_second"], 8000.0);
    assert_eq!(report.json["policy_apply"][0]["ms"], 80.5);
    assert_eq!(report.json["policy_apply"][0]["phases_ms"]["pick_up"], 70.0);
    let native = &report.json["policy_apply_on_the_host"][0];
    assert_eq!((native["rules"].as_u64(), native["inodes"].as_u64()), (Some(1000), Some(246)));
    assert_eq!((native["verify_ms"]["first"].as_f64(), native["verify_ms"]["best"].as_f64()), (Some(9.5), Some(8.0)));
    assert_eq!((native["walk_ms"]["first"].as_f64(), native["walk_ms"]["best"].as_f64()), (Some(30.5), Some(3.5)));
    assert_eq!(native["sum_of_best_ms"].as_f64(), Some(8.0 + 3.5 + 18.5));
    let records = &report.json["audit_records_on_the_host"][0];
    assert_eq!(
        (records["records_per_second"].as_f64(), records["log_file_system"].as_str()),
        (Some(125_000.0), Some("ext4"))
    );
    assert_eq!(report.json["audit_on_the_host"][0]["written_per_second"], 50000.0);
    // A recording without the commit: none shown, nothing summed.
    let older = &report.json["policy_apply_on_the_host"][1];
    assert!(older["commit_ms"].is_null() && older["sum_of_best_ms"].is_null(), "{older}");
    // Best of rounds: 1010 over 1000 for attached.
    let best = report.json["workloads"][0]["best_of_rounds_vs_detached"]["attached"].as_f64().unwrap();
    assert!((best - 1.01).abs() < 1e-9, "{best}");
}

#[test]
fn program_costs_add_up_per_step_costliest_first() {
    let raw = parse(RECORDED).unwrap();
    let cost = &raw.program_costs[0];
    assert_eq!(cost.programs[0].0, "file_free_security");
    assert_eq!(cost.programs_ns_per_op(), 100.0);
    let report = report(&raw);
    assert_eq!(report.json["program_costs"][0]["programs_ns_per_op"], 100.0);
    assert!(report.table.contains("file_free_security 1.00 x 60"), "{}", report.table);
}

#[test]
fn the_clock_says_what_the_vm_counted() {
    let emulated = report(&parse(RECORDED).unwrap());
    assert_eq!(emulated.json["clock"], "emulated");
    assert!(!emulated.table.contains("icount"));
    let counted = report(&parse(&format!("{RECORDED}{{\"kind\":\"clock\",\"clock\":\"instructions\"}}\n")).unwrap());
    assert_eq!(counted.json["clock"], "instructions");
    assert!(counted.table.starts_with("the VM's clock counts instructions"), "{}", counted.table);
}

#[test]
fn bad_output_is_one_clear_error() {
    assert!(parse("").unwrap_err().to_string().contains("no samples"));
    assert!(parse("{\"kind\":\"sample\"}").unwrap_err().to_string().contains("line 1: no workload"));
    assert!(parse("Segmentation fault").unwrap_err().to_string().contains("line 1: not JSON"));
}

#[test]
fn median_of_an_even_count_is_the_mean_of_the_middle_two() {
    assert_eq!(Spread::of(vec![4.0, 1.0, 3.0, 2.0]).unwrap().median, 2.5);
    assert_eq!(Spread::of(vec![]), None);
}
