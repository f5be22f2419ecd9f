//! CPU time used by the processes of one measurement, read from `/proc`: how much of the machine
//! each of Bunker, PostgreSQL and the load generator takes per record.

/// Seconds of CPU (user + system) used so far by the process `pid`.
pub fn of_process(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| ticks(&stat))
        .map_or(0.0, |t| t as f64 / ticks_per_second())
}

/// Seconds of CPU used so far by every process named `name` (e.g. all PostgreSQL backends).
pub fn of_named(name: &str) -> f64 {
    let wanted = format!("({name})");
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0.0;
    };
    let total: u64 = entries
        .filter_map(Result::ok)
        .filter_map(|e| std::fs::read_to_string(e.path().join("stat")).ok())
        .filter(|stat| stat.split_whitespace().nth(1) == Some(wanted.as_str()))
        .filter_map(|stat| ticks(&stat))
        .sum();
    total as f64 / ticks_per_second()
}

/// utime + stime (fields 14 and 15), counted after the command name, which may hold spaces.
fn ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let user: u64 = fields.get(11)?.parse().ok()?;
    let system: u64 = fields.get(12)?.parse().ok()?;
    Some(user + system)
}

fn ticks_per_second() -> f64 {
    // The kernel's USER_HZ, 100 on every Linux this runs on.
    100.0
}

/// CPU seconds of (bunker, postgres, load generator) at one moment.
#[derive(Clone, Copy, Debug, Default)]
pub struct Snapshot {
    pub bunker: f64,
    pub postgres: f64,
    pub generator: f64,
}

impl Snapshot {
    pub fn take(bunker_pid: Option<u32>) -> Self {
        Snapshot {
            bunker: bunker_pid.map_or(0.0, of_process),
            postgres: of_named("postgres"),
            generator: of_process(std::process::id()),
        }
    }

    /// Microseconds of CPU per record between `self` and `later`.
    pub fn per_record(&self, later: &Snapshot, records: f64) -> [f64; 3] {
        let per = |a: f64, b: f64| {
            if records > 0.0 {
                (b - a) * 1e6 / records
            } else {
                0.0
            }
        };
        [
            per(self.bunker, later.bunker),
            per(self.postgres, later.postgres),
            per(self.generator, later.generator),
        ]
    }
}
