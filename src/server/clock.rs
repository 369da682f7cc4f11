//! Where a server's idea of "now" comes from.
//!
//! Servers never read the wall clock: the fabric supplies simulated time (turmoil's or the
//! paused tokio clock), and each server adds its own skew so the nemesis can make clocks
//! disagree. Timestamps such as `origin_server_ts` come from here.
//!
//! Invariant: for a given fabric and seed, `now_ms` returns the same sequence on every replay.

use std::cell::Cell;
use std::rc::Rc;

/// Runs `future` (and the tasks it spawns locally) to completion on a current-thread tokio
/// runtime whose time is paused: simulated time that jumps to the next timer when every task
/// waits. How the fast fabric runs, and how tests drive servers through time.
pub fn block_on_paused<F: std::future::Future>(future: F) -> F::Output {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a current-thread runtime builds");
    tokio::task::LocalSet::new().block_on(&runtime, future)
}

/// Simulated time in milliseconds since the Unix epoch, as the network sees it.
pub trait NetworkClock {
    fn network_now_ms(&self) -> u64;
}

/// One server's clock: the network's time plus this server's skew.
#[derive(Clone)]
pub struct ServerClock {
    network: Rc<dyn NetworkClock>,
    skew_ms: Rc<Cell<i64>>,
}

impl ServerClock {
    pub fn new(network: Rc<dyn NetworkClock>) -> Self {
        Self {
            network,
            skew_ms: Rc::new(Cell::new(0)),
        }
    }

    /// This server's idea of now; never before the epoch.
    pub fn now_ms(&self) -> u64 {
        let network = self.network.network_now_ms() as i128;
        (network + self.skew_ms.get() as i128).max(0) as u64
    }

    /// The true network time, for observers (never for the server's own decisions).
    pub fn network_now_ms(&self) -> u64 {
        self.network.network_now_ms()
    }

    /// Sets how far ahead (positive) or behind (negative) this server's clock runs.
    pub fn set_skew_ms(&self, skew_ms: i64) {
        self.skew_ms.set(skew_ms);
    }

    pub fn skew_ms(&self) -> i64 {
        self.skew_ms.get()
    }
}

/// Simulated time read from tokio's clock (paused in simulations), offset to an epoch.
///
/// Both fabrics run servers on tokio runtimes whose time the simulation controls; `start` is
/// taken when the run begins, so `network_now_ms` is `epoch_ms` plus simulated elapsed time.
pub struct TokioClock {
    pub epoch_ms: u64,
    pub start: tokio::time::Instant,
}

impl NetworkClock for TokioClock {
    fn network_now_ms(&self) -> u64 {
        self.epoch_ms + self.start.elapsed().as_millis() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed(u64);
    impl NetworkClock for Fixed {
        fn network_now_ms(&self) -> u64 {
            self.0
        }
    }

    #[test]
    fn skew_shifts_the_server_clock_only() {
        let clock = ServerClock::new(Rc::new(Fixed(1_000)));
        clock.set_skew_ms(-250);
        assert_eq!((clock.now_ms(), clock.network_now_ms()), (750, 1_000));
        clock.set_skew_ms(-5_000);
        assert_eq!(clock.now_ms(), 0);
    }
}
