//! One task that wakes queues at deadlines: message expiry at the head (TTL) and queue expiry
//! (`x-expires`). Queues ask for a wake-up with [`Timers::schedule`]; a wake-up that finds
//! nothing to do is harmless, so duplicates need no bookkeeping.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Weak;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::clock;
use crate::queue::Queue;

/// Handle to the timer task.
#[derive(Clone, Debug)]
pub struct Timers {
    tx: mpsc::UnboundedSender<(u64, Weak<Queue>)>,
}

impl Timers {
    /// Wakes `queue` at `at_ms` on the [`clock::monotonic_ms`] clock.
    pub fn schedule(&self, at_ms: u64, queue: Weak<Queue>) {
        let _ = self.tx.send((at_ms, queue));
    }

    /// A handle whose wake-ups go nowhere (queues created outside a running broker, tests).
    pub fn disconnected() -> Self {
        let (tx, _) = mpsc::unbounded_channel();
        Self { tx }
    }
}

struct Due {
    at: u64,
    order: u64,
    queue: Weak<Queue>,
}

impl PartialEq for Due {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.order) == (other.at, other.order)
    }
}
impl Eq for Due {}
impl PartialOrd for Due {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Due {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.order).cmp(&(other.at, other.order))
    }
}

/// Creates the handle and the task body; the caller spawns the task.
pub fn start(shutdown: CancellationToken) -> (Timers, impl Future<Output = ()>) {
    let (tx, mut rx) = mpsc::unbounded_channel::<(u64, Weak<Queue>)>();
    let task = async move {
        let mut heap: BinaryHeap<Reverse<Due>> = BinaryHeap::new();
        let mut order = 0u64;
        loop {
            let next = heap.peek().map(|Reverse(d)| clock::instant_of(d.at));
            tokio::select! {
                req = rx.recv() => match req {
                    Some((at, queue)) => {
                        order += 1;
                        heap.push(Reverse(Due { at, order, queue }));
                    }
                    None => return,
                },
                () = tokio::time::sleep_until(next.unwrap_or_else(std::time::Instant::now).into()), if next.is_some() => {
                    let now = clock::monotonic_ms();
                    while heap.peek().is_some_and(|Reverse(d)| d.at <= now) {
                        if let Some(Reverse(d)) = heap.pop()
                            && let Some(q) = d.queue.upgrade()
                        {
                            q.on_timer();
                        }
                    }
                }
                () = shutdown.cancelled() => return,
            }
        }
    };
    (Timers { tx }, task)
}
