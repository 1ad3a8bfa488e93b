//! Smoke tests of the `vigil` binary's command line. (Having an integration test here
//! also makes `cargo test --workspace` build the binary the `tests/` crate runs.)

use std::process::Command;

#[test]
fn every_subcommand_has_help() {
    let bin = env!("CARGO_BIN_EXE_vigil");
    let out = Command::new(bin).arg("--help").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("validate"), "{text}");
    assert!(text.contains("launch") && text.contains("render"), "{text}");
    let out = Command::new(bin)
        .args(["launch", "--help"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("75 preempted"), "{text}");
}

#[test]
fn unknown_subcommand_is_a_usage_error() {
    let bin = env!("CARGO_BIN_EXE_vigil");
    let out = Command::new(bin).arg("frobnicate").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}
