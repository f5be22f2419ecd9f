//! CPU time used during one measurement by Bunker, PostgreSQL and the load generator, read from
//! `/proc`. Processes are sampled every 50 ms while the measurement runs and remembered by pid, so
//! that PostgreSQL backends which exit at its end (pgbench's) still count.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// Seconds of CPU per process group: (bunker, postgres, load generator).
pub type Totals = [f64; 3];

pub struct Sampler {
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<HashMap<u32, (usize, u64, u64)>>>,
    thread: Option<JoinHandle<()>>,
}

impl Sampler {
    /// Starts sampling `bunker` (a pid), every process named `postgres`, and this process.
    pub fn start(bunker: Option<u32>) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let seen: Arc<Mutex<HashMap<u32, (usize, u64, u64)>>> = Arc::default();
        let me = std::process::id();
        let (flag, table) = (stop.clone(), seen.clone());
        // Processes already running count from their first sample; those that start later from
        // zero, since they are new.
        let sample = move |initial: bool| {
            let Ok(entries) = std::fs::read_dir("/proc") else {
                return;
            };
            let mut now = Vec::new();
            for entry in entries.filter_map(Result::ok) {
                let Some(pid) = entry
                    .file_name()
                    .to_str()
                    .and_then(|n| n.parse::<u32>().ok())
                else {
                    continue;
                };
                let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
                    continue;
                };
                let group = if Some(pid) == bunker {
                    0
                } else if stat.split_whitespace().nth(1) == Some("(postgres)") {
                    1
                } else if pid == me {
                    2
                } else {
                    continue;
                };
                if let Some(ticks) = ticks(&stat) {
                    now.push((pid, group, ticks));
                }
            }
            if let Ok(mut table) = table.lock() {
                for (pid, group, ticks) in now {
                    let first = if initial { ticks } else { 0 };
                    table
                        .entry(pid)
                        .and_modify(|e| e.2 = ticks)
                        .or_insert((group, first, ticks));
                }
            }
        };
        sample(true);
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(50));
                sample(false);
            }
            sample(false);
        });
        Sampler {
            stop,
            seen,
            thread: Some(thread),
        }
    }

    /// Stops sampling; CPU seconds used meanwhile per group.
    pub fn stop(mut self) -> Totals {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        let mut totals = [0.0; 3];
        if let Ok(table) = self.seen.lock() {
            for (group, first, last) in table.values() {
                if let Some(total) = totals.get_mut(*group) {
                    *total += (last - first) as f64 / 100.0;
                }
            }
        }
        totals
    }
}

/// utime + stime in clock ticks (USER_HZ, 100), read after the command name, which may hold
/// spaces.
fn ticks(stat: &str) -> Option<u64> {
    let rest = stat.get(stat.rfind(')')? + 1..)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let user: u64 = fields.get(11)?.parse().ok()?;
    let system: u64 = fields.get(12)?.parse().ok()?;
    Some(user + system)
}

/// Microseconds of CPU per record for each group.
pub fn per_record(totals: Totals, records: f64) -> Totals {
    totals.map(|seconds| {
        if records > 0.0 {
            seconds * 1e6 / records
        } else {
            0.0
        }
    })
}
