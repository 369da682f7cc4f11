//! The data files of a results directory: `summary.json`, `perf.json`, `timeline.csv` and
//! `trace.jsonl`.
//!
//! Invariant: each file's bytes are a function of its input alone (struct field order, sorted
//! maps, fixed float formatting, `\n` line ends, a trailing newline), so equal runs write
//! byte-identical files and a replay can be compared with `cmp`.

use crate::observe::record::{Perf, RunSummary, Sample};
use serde::Serialize;
use std::fmt::Write as _;
use std::io;
use std::path::Path;

pub const SUMMARY_FILE: &str = "summary.json";
pub const PERF_FILE: &str = "perf.json";
pub const TIMELINE_FILE: &str = "timeline.csv";
pub const TRACE_FILE: &str = "trace.jsonl";

/// The header of `timeline.csv`: the fields of [`Sample`] in struct order.
pub const TIMELINE_HEADER: &str = "t_ms,divergence,forward_extremities_max,\
forward_extremities_mean,servers_up,deliveries,messages_dropped,requests";

/// Decimals of `forward_extremities_mean` in `timeline.csv`: enough to tell one extremity on one
/// server in a thousand apart, few enough that float noise never reaches the file.
const MEAN_DECIMALS: usize = 3;

/// `summary.json`: pretty JSON with keys in struct order and a trailing newline.
pub fn summary_json(summary: &RunSummary) -> io::Result<String> {
    pretty_json(summary)
}

/// `perf.json`: pretty JSON with keys in struct order and a trailing newline.
pub fn perf_json(perf: &Perf) -> io::Result<String> {
    pretty_json(perf)
}

fn pretty_json(value: &impl Serialize) -> io::Result<String> {
    let mut text = serde_json::to_string_pretty(value).map_err(io::Error::other)?;
    text.push('\n');
    Ok(text)
}

/// `timeline.csv`: the header, then one row per sample in the order given.
pub fn timeline_csv(timeline: &[Sample]) -> String {
    let mut csv = String::with_capacity(64 * (timeline.len() + 1));
    csv.push_str(TIMELINE_HEADER);
    csv.push('\n');
    for sample in timeline {
        // Writing to a String cannot fail.
        let _ = writeln!(
            csv,
            "{},{},{},{:.prec$},{},{},{},{}",
            sample.t_ms,
            sample.divergence,
            sample.forward_extremities_max,
            sample.forward_extremities_mean,
            sample.servers_up,
            sample.deliveries,
            sample.messages_dropped,
            sample.requests,
            prec = MEAN_DECIMALS,
        );
    }
    csv
}

/// `trace.jsonl`: one line per trace record. A record holding a line break would silently
/// become two records, so it is refused with the number of the offending line.
pub fn trace_jsonl(lines: &[String]) -> io::Result<String> {
    let mut text = String::with_capacity(lines.iter().map(|line| line.len() + 1).sum());
    for (index, line) in lines.iter().enumerate() {
        if line.contains(['\n', '\r']) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{TRACE_FILE}: record {} contains a line break", index + 1),
            ));
        }
        text.push_str(line);
        text.push('\n');
    }
    Ok(text)
}

/// Writes `contents` to `dir/name`, naming the file in any error.
pub fn write_file(dir: &Path, name: &str, contents: &[u8]) -> io::Result<()> {
    let path = dir.join(name);
    std::fs::write(&path, contents).map_err(|error| with_path(&path, error))
}

/// Removes `dir/name` if it exists: a results directory reused without `--trace` must not keep
/// the trace of an earlier run beside a summary it does not belong to.
pub fn remove_stale(dir: &Path, name: &str) -> io::Result<()> {
    let path = dir.join(name);
    match std::fs::remove_file(&path) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(with_path(&path, error)),
    }
}

pub fn with_path(path: &Path, error: io::Error) -> io::Error {
    io::Error::new(error.kind(), format!("{}: {error}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(t_ms: u64, mean: f64) -> Sample {
        Sample {
            t_ms,
            divergence: 2,
            forward_extremities_max: 3,
            forward_extremities_mean: mean,
            servers_up: 5,
            deliveries: 10,
            messages_dropped: 1,
            requests: 40,
        }
    }

    #[test]
    fn timeline_has_header_and_fixed_decimals() {
        let csv = timeline_csv(&[sample(0, 1.0), sample(100, 4.0 / 3.0)]);
        assert_eq!(
            csv,
            format!("{TIMELINE_HEADER}\n0,2,3,1.000,5,10,1,40\n100,2,3,1.333,5,10,1,40\n")
        );
    }

    #[test]
    fn header_names_every_sample_field_in_order() {
        // The derived serializer writes fields in declaration order.
        let object = serde_json::to_string(&sample(0, 0.0)).unwrap();
        let keys: Vec<&str> = object
            .trim_matches(['{', '}'])
            .split(',')
            .map(|pair| pair.split(':').next().unwrap().trim_matches('"'))
            .collect();
        assert_eq!(keys.join(","), TIMELINE_HEADER);
    }

    #[test]
    fn empty_timeline_is_just_the_header() {
        assert_eq!(timeline_csv(&[]), format!("{TIMELINE_HEADER}\n"));
    }

    #[test]
    fn trace_refuses_a_record_with_a_line_break() {
        let error = trace_jsonl(&["{}".into(), "{\n}".into()]).unwrap_err();
        assert!(error.to_string().contains("record 2"), "{error}");
        assert_eq!(trace_jsonl(&["{}".into()]).unwrap(), "{}\n");
    }

    #[test]
    fn perf_json_ends_with_newline() {
        let text = perf_json(&Perf::default()).unwrap();
        assert!(text.starts_with("{\n  \"wall_ms\": 0,"), "{text}");
        assert!(text.ends_with("}\n"));
    }
}
