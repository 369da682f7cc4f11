//! The figures of `perf.json`: how long a run took on this machine, against how much simulated
//! time it covered, and how much memory the process needed.
//!
//! Invariant: nothing here reaches the summary; these are the only wall-clock and OS readings
//! of a run, taken after the simulation ended.

use crate::observe::record::Perf;
use crate::server::PduCacheStats;
use std::time::{Duration, Instant};

/// Clocks read when a run starts.
pub struct Start {
    wall: Instant,
    cpu: Option<Duration>,
}

impl Start {
    pub fn now() -> Self {
        Self {
            wall: Instant::now(),
            cpu: thread_cpu(),
        }
    }

    /// The run's figures, read now.
    pub fn finish(
        &self,
        simulated_ms: u64,
        servers: usize,
        events_delivered: u64,
        pdu_cache: Option<PduCacheStats>,
    ) -> Perf {
        let wall_ms = self.wall.elapsed().as_millis() as u64;
        let cpu_ms = self
            .cpu
            .zip(thread_cpu())
            .map(|(start, end)| end.saturating_sub(start).as_millis() as u64);
        Perf {
            wall_ms,
            simulated_ms,
            simulated_per_wall: simulated_ms as f64 / wall_ms.max(1) as f64,
            events_delivered_per_wall_second: events_delivered as f64 * 1000.0
                / wall_ms.max(1) as f64,
            peak_memory_bytes: peak_memory_bytes(),
            cpu_ms,
            simulated_per_cpu: cpu_ms.map(|cpu| simulated_ms as f64 / cpu.max(1) as f64),
            servers: u32::try_from(servers).unwrap_or(u32::MAX),
            events_delivered,
            pdu_cache,
        }
    }
}

/// The process's peak resident memory (`VmHWM`), where the OS reports it.
pub fn peak_memory_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// CPU time of the calling thread so far (the first field of Linux's schedstat, in ns).
pub fn thread_cpu() -> Option<Duration> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let nanos = text.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_relate_simulated_to_wall_time() {
        let perf = Start::now().finish(60_000, 3, 120, None);
        assert!(perf.simulated_per_wall >= 60.0, "{perf:?}");
        assert!(perf.events_delivered_per_wall_second >= 120.0, "{perf:?}");
        assert_eq!((perf.servers, perf.events_delivered), (3, 120));
        if cfg!(target_os = "linux") {
            assert!(perf.peak_memory_bytes.is_some_and(|bytes| bytes > 0));
            assert!(perf.cpu_ms.is_some());
        }
    }
}
