//! CPU time of a process from `/proc/PID/stat` (utime + stime, all threads), the figure the
//! benchmarks divide by messages to get a broker's CPU cost per message.

use std::io;
use std::sync::OnceLock;

/// User + system CPU seconds consumed so far by process `pid` (use `"self"` for this one).
pub fn cpu_seconds(pid: &str) -> io::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    parse_stat(&stat)
        .map(|ticks| ticks as f64 / clock_ticks_per_second() as f64)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "unreadable /proc/PID/stat"))
}

/// CPU seconds all processes on the machine have used so far (every core; from `/proc/stat`):
/// what is left after subtracting the broker and the client is other work on the machine.
pub fn machine_busy_seconds() -> io::Result<f64> {
    let stat = std::fs::read_to_string("/proc/stat")?;
    parse_machine(&stat)
        .map(|ticks| ticks as f64 / clock_ticks_per_second() as f64)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "unreadable /proc/stat"))
}

/// user + nice + system + irq + softirq + steal ticks from the `cpu` line of `/proc/stat`.
fn parse_machine(stat: &str) -> Option<u64> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line
        .split_ascii_whitespace()
        .skip(1)
        .map(|f| f.parse().ok())
        .collect::<Option<_>>()?;
    // user nice system idle iowait irq softirq steal …
    Some(v.first()? + v.get(1)? + v.get(2)? + v.get(5)? + v.get(6)? + v.get(7).unwrap_or(&0))
}

/// utime + stime in clock ticks from the text of `/proc/PID/stat`.
fn parse_stat(stat: &str) -> Option<u64> {
    // The command name (field 2) is in parentheses and may hold spaces or ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_ascii_whitespace();
    // After the name: state (3), ppid (4), …, utime (14), stime (15).
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// `getconf CLK_TCK` (USER_HZ); 100 on every Linux we know of, used when `getconf` is missing.
fn clock_ticks_per_second() -> u64 {
    static TCK: OnceLock<u64> = OnceLock::new();
    *TCK.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .filter(|&t| t > 0)
            .unwrap_or(100)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_utime_and_stime_after_an_odd_name() {
        let stat = "1234 (a) b (c)) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 17 0 0 20 0 9 0";
        assert_eq!(parse_stat(stat), Some(267));
    }

    #[test]
    fn parses_machine_busy_time() {
        let stat = "cpu  100 5 50 1000 7 3 2 1 0 0\ncpu0 50 2 25 500 3 1 1 0 0 0\n";
        assert_eq!(parse_machine(stat), Some(161));
    }

    #[test]
    fn reads_our_own_process() {
        assert!(cpu_seconds("self").expect("readable") >= 0.0);
    }
}
