//! Shared helpers for the benchmarks: the criterion benches in `benches/` and the `perf` load
//! tool in `src/bin/perf.rs` (a PerfTest-like client that measures throughput, end-to-end
//! latency and the broker's CPU time per message against any AMQP 0-9-1 broker).

pub mod cpu;
pub mod histogram;
