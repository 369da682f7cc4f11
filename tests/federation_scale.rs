//! How fast turmoil runs a room of many servers: simulated seconds per wall second for 10, 25
//! and 50 servers in one room at about 10 events per second. A measurement, not a check, so
//! it is ignored by default; run it in release mode:
//!
//! ```text
//! cargo test --release --test federation_scale -- --ignored --nocapture
//! FEDLAB_SCALE_SERVERS=10,25 cargo test --release --test federation_scale -- --ignored --nocapture
//! ```
//!
//! Besides wall time it reports the CPU time of the simulating thread (Linux), which stays
//! meaningful on a machine shared with other work.

mod common_fed;

use common_fed::Lab;
use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// Simulated time of steady traffic measured per run.
const STEADY: Duration = Duration::from_secs(30);
/// One message every 100 ms: 10 events per second in the room.
const INTERVAL: Duration = Duration::from_millis(100);

/// What one run measured.
#[derive(Debug, Default)]
struct Figures {
    join_sim: Duration,
    join_wall: Duration,
    steady_wall: Duration,
    steady_cpu: Option<Duration>,
    settle_sim: Duration,
    settle_wall: Duration,
    events: usize,
}

fn measure(count: usize) -> Figures {
    let figures = Rc::new(RefCell::new(Figures::default()));
    let out = figures.clone();
    Lab::with_duration(count, 1, Duration::from_secs(3600)).run(|servers| async move {
        let (wall, sim) = (Instant::now(), tokio::time::Instant::now());
        let room = servers.room_with_everyone().await;
        servers.converge(&room, Duration::from_secs(300)).await?;
        let (join_wall, join_sim) = (wall.elapsed(), sim.elapsed());

        let (wall, cpu) = (Instant::now(), thread_cpu());
        let sent = servers
            .clone()
            .traffic(room.clone(), INTERVAL, STEADY)
            .await;
        let steady_wall = wall.elapsed();
        let steady_cpu = cpu.zip(thread_cpu()).map(|(start, end)| end - start);

        let (wall, sim) = (Instant::now(), tokio::time::Instant::now());
        servers.converge(&room, Duration::from_secs(300)).await?;
        *out.borrow_mut() = Figures {
            join_sim,
            join_wall,
            steady_wall,
            steady_cpu,
            settle_sim: sim.elapsed(),
            settle_wall: wall.elapsed(),
            events: sent.len(),
        };
        Ok(())
    });
    figures.take()
}

#[test]
#[ignore = "a measurement: run in release mode with --ignored"]
fn simulated_seconds_per_wall_second() {
    let counts: Vec<usize> = std::env::var("FEDLAB_SCALE_SERVERS")
        .unwrap_or_else(|_| "10,25,50".into())
        .split(',')
        .map(|n| n.trim().parse().expect("a list of server counts"))
        .collect();
    println!(
        "servers | join: sim s / wall s | steady 10 ev/s: sim s / wall s = ratio, per CPU s | settle"
    );
    for count in counts {
        let f = measure(count);
        let ratio = STEADY.as_secs_f64() / f.steady_wall.as_secs_f64();
        let per_cpu = f.steady_cpu.map_or("n/a".to_owned(), |cpu| {
            format!("{:.2}", STEADY.as_secs_f64() / cpu.as_secs_f64())
        });
        println!(
            "{count:7} | {:6.1} / {:7.1} | {:4.0} / {:7.1} = {ratio:6.2}, {per_cpu:>6} ({} events) | {:.1} / {:.1}",
            f.join_sim.as_secs_f64(),
            f.join_wall.as_secs_f64(),
            STEADY.as_secs_f64(),
            f.steady_wall.as_secs_f64(),
            f.events,
            f.settle_sim.as_secs_f64(),
            f.settle_wall.as_secs_f64(),
        );
    }
}

/// CPU time of the calling thread so far (the first field of Linux's schedstat, in ns).
fn thread_cpu() -> Option<Duration> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let nanos = text.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(nanos))
}
