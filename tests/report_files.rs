//! `report::write_run`: the files of a results directory, their determinism, and plots that
//! survive missing data.

mod report_common;

use fedlab::report;
use report_common::{crowded_run, empty_run, failed_run, partition_run, single_sample_run};
use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

const PLOT_FILES: [&str; 6] = [
    "divergence.svg",
    "divergence.png",
    "extremities.svg",
    "extremities.png",
    "latency-cdf.svg",
    "latency-cdf.png",
];

fn read_dir(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fs::read_dir(dir)
        .unwrap()
        .map(|entry| {
            let entry = entry.unwrap();
            let name = entry.file_name().into_string().unwrap();
            (name, fs::read(entry.path()).unwrap())
        })
        .collect()
}

fn png_size(bytes: &[u8]) -> (u32, u32) {
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "not a PNG");
    assert_eq!(&bytes[12..16], b"IHDR");
    let width = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
    let height = u32::from_be_bytes(bytes[20..24].try_into().unwrap());
    (width, height)
}

#[test]
fn equal_runs_write_byte_identical_files() {
    let output = partition_run();
    let (first, second) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    report::write_run(first.path(), &output).unwrap();
    report::write_run(second.path(), &output).unwrap();
    let (first, second) = (read_dir(first.path()), read_dir(second.path()));
    let mut expected: Vec<&str> = vec!["perf.json", "summary.json", "timeline.csv", "trace.jsonl"];
    expected.extend(PLOT_FILES);
    expected.sort_unstable();
    assert_eq!(
        first.keys().map(String::as_str).collect::<Vec<_>>(),
        expected
    );
    for (name, bytes) in &first {
        assert!(bytes == &second[name], "{name} differs between equal runs");
    }
}

#[test]
fn summary_json_is_pretty_in_struct_order_with_trailing_newline() {
    let dir = tempfile::tempdir().unwrap();
    report::write_run(dir.path(), &partition_run()).unwrap();
    let text = fs::read_to_string(dir.path().join(report::SUMMARY_FILE)).unwrap();
    assert!(text.starts_with("{\n  \"experiment\": \"partition-heal\",\n  \"seed\": 7,\n"));
    assert!(text.ends_with("}\n") && !text.ends_with("\n\n"));
    let keys = [
        "experiment",
        "seed",
        "code_version",
        "metrics",
        "faults",
        "replay",
    ];
    let positions: Vec<usize> = keys
        .iter()
        .map(|key| text.find(&format!("\n  \"{key}\":")).unwrap())
        .collect();
    assert!(
        positions.is_sorted(),
        "keys out of struct order: {positions:?}"
    );
    let parsed: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(parsed["metrics"]["convergence_time_ms"], 6_750);
}

#[test]
fn timeline_has_one_row_per_sample() {
    let output = partition_run();
    let dir = tempfile::tempdir().unwrap();
    report::write_run(dir.path(), &output).unwrap();
    let csv = fs::read_to_string(dir.path().join(report::TIMELINE_FILE)).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], report::TIMELINE_HEADER);
    assert_eq!(lines.len(), output.timeline.len() + 1);
    assert!(lines[1].starts_with("0,1,1,1."), "{}", lines[1]);
}

#[test]
fn trace_is_written_only_when_present_and_a_stale_one_is_removed() {
    let dir = tempfile::tempdir().unwrap();
    let traced = partition_run();
    report::write_run(dir.path(), &traced).unwrap();
    let trace = fs::read_to_string(dir.path().join(report::TRACE_FILE)).unwrap();
    assert_eq!(trace.lines().count(), 2);
    assert!(trace.ends_with('\n'));
    let mut untraced = traced;
    untraced.trace = None;
    report::write_run(dir.path(), &untraced).unwrap();
    assert!(!dir.path().join(report::TRACE_FILE).exists());
}

#[test]
fn empty_timeline_and_no_latencies_still_render_plots_with_notes() {
    let dir = tempfile::tempdir().unwrap();
    report::write_run(dir.path(), &empty_run()).unwrap();
    let files = read_dir(dir.path());
    for name in PLOT_FILES {
        let bytes = &files[name];
        if name.ends_with(".png") {
            assert_eq!(png_size(bytes), report::PLOT_SIZE_PX, "{name}");
        } else {
            let svg = std::str::from_utf8(bytes).unwrap();
            assert!(
                svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"),
                "{name}"
            );
        }
    }
    let divergence = String::from_utf8(files["divergence.svg"].clone()).unwrap();
    assert!(divergence.contains("no samples recorded"));
    let extremities = String::from_utf8(files["extremities.svg"].clone()).unwrap();
    assert!(extremities.contains("no samples recorded"));
    let cdf = String::from_utf8(files["latency-cdf.svg"].clone()).unwrap();
    assert!(cdf.contains("no deliveries recorded"));
    assert_eq!(
        fs::read_to_string(dir.path().join(report::TIMELINE_FILE)).unwrap(),
        format!("{}\n", report::TIMELINE_HEADER)
    );
}

#[test]
fn plots_label_fault_windows_and_mark_percentiles() {
    let dir = tempfile::tempdir().unwrap();
    report::write_run(dir.path(), &partition_run()).unwrap();
    let divergence = fs::read_to_string(dir.path().join("divergence.svg")).unwrap();
    for label in [
        "#0 partition",
        "#1 latency",
        "#2 crash",
        "#3 loss: NO EFFECT",
    ] {
        assert!(divergence.contains(label), "divergence.svg lacks {label}");
    }
    assert!(divergence.contains("simulated time (s)"));
    let cdf = fs::read_to_string(dir.path().join("latency-cdf.svg")).unwrap();
    for mark in ["p50", "p95", "p99", "log scale"] {
        assert!(cdf.contains(mark), "latency-cdf.svg lacks {mark}");
    }
}

#[test]
fn unwritable_directory_is_an_error_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("not-a-dir");
    fs::write(&blocker, b"").unwrap();
    let error = report::write_run(&blocker.join("results"), &partition_run()).unwrap_err();
    assert!(error.to_string().contains("not-a-dir"), "{error}");
}

/// Renders the synthetic runs for a person to look at:
/// `cargo test --test report_files -- --ignored`, into `FEDLAB_REPORT_SAMPLE_DIR` or
/// `target/report-sample`.
#[test]
#[ignore = "writes sample plots for review"]
fn sample_output_for_review() {
    let dir = std::env::var_os("FEDLAB_REPORT_SAMPLE_DIR").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("target/report-sample"),
        Into::into,
    );
    report::write_run(&dir.join("partition"), &partition_run()).unwrap();
    report::write_run(&dir.join("empty"), &empty_run()).unwrap();
    report::write_run(&dir.join("crowded"), &crowded_run()).unwrap();
    report::write_run(&dir.join("single"), &single_sample_run()).unwrap();
    for (name, output) in [("partition", partition_run()), ("failed", failed_run())] {
        let mut table = Vec::new();
        report::print_summary(&output, &mut table).unwrap();
        fs::write(dir.join(format!("{name}-table.txt")), table).unwrap();
    }
    eprintln!("sample results in {}", dir.display());
}

/// Regression: with many fault kinds the legend ran past the right edge and was cut off.
#[test]
fn crowded_plots_keep_every_text_inside_the_picture() {
    let dir = tempfile::tempdir().unwrap();
    report::write_run(dir.path(), &crowded_run()).unwrap();
    let (width_px, height_px) = report::PLOT_SIZE_PX;
    for name in ["divergence.svg", "extremities.svg"] {
        let svg = fs::read_to_string(dir.path().join(name)).unwrap();
        let mut texts = 0;
        for tag in svg.split("<text").skip(1) {
            let attribute = |key: &str| -> f64 {
                let start = tag.find(&format!(" {key}=\"")).unwrap() + key.len() + 3;
                tag[start..].split('"').next().unwrap().parse().unwrap()
            };
            let (x, y) = (attribute("x"), attribute("y"));
            // Text that starts at x needs room after it; centred tick labels may sit on the edge.
            let room_px = if tag.contains("text-anchor=\"start\"") {
                60.0
            } else {
                0.0
            };
            assert!(
                x >= 0.0 && x <= f64::from(width_px) - room_px,
                "{name}: text at x={x}: {tag}"
            );
            assert!(
                y >= 0.0 && y < f64::from(height_px),
                "{name}: text at y={y}: {tag}"
            );
            texts += 1;
        }
        assert!(
            svg.contains(">\nfault with no effect\n<"),
            "{name}: legend entry missing"
        );
        assert!(texts > 20, "{name}: only {texts} texts");
    }
}
