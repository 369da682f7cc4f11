//! `fedlab check` runs kept regressions (files under a `regressions/` folder) before the other
//! experiments, and reports them like any other run.

use std::process::Command;

fn experiment(name: &str) -> String {
    format!(
        "name = \"{name}\"\ndescription = \"t\"\nfabric = \"fast\"\nduration = \"10s\"\nsettle = \"5s\"\n[topology.group.hs]\ncount = 2\n"
    )
}

#[test]
fn check_runs_regressions_first() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("experiments");
    std::fs::create_dir_all(root.join("regressions")).unwrap();
    std::fs::write(root.join("a-first.toml"), experiment("a-first")).unwrap();
    std::fs::write(root.join("regressions/z-kept.toml"), experiment("z-kept")).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_fedlab"))
        .args(["check", "experiments", "--jobs", "1"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    let rows: Vec<&str> = stdout
        .lines()
        .filter(|line| line.contains("PASS"))
        .map(|line| line.split_whitespace().next().unwrap())
        .collect();
    assert_eq!(rows, ["z-kept", "a-first"], "{stdout}");
}
