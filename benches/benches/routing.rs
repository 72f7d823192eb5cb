//! Topic routing with 1,000 bindings: `Exchange::route` on a topic exchange whose bindings
//! mix literal keys, `*` and `#` patterns, for keys that match many, few and no bindings.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

use broker::exchange::{Destination, Exchange, ExchangeKind, RouteScratch};
use broker::protocol::FieldTable;
use broker::queue::{Queue, QueueArgs, QueueSettings};
use broker::timer::Timers;

const BINDINGS: usize = 1000;
const REGIONS: [&str; 8] = ["eu", "us", "apac", "latam", "mea", "ca", "uk", "jp"];
const KINDS: [&str; 5] = ["sale", "refund", "stock", "price", "audit"];

/// The binding key of queue `i`: a spread of shapes as real topologies have them.
fn pattern(i: usize) -> String {
    let region = REGIONS[i % REGIONS.len()];
    let kind = KINDS[(i / 8) % KINDS.len()];
    match i % 6 {
        0 => format!("{kind}.{region}.store-{i}"),
        1 => format!("{kind}.{region}.*"),
        2 => format!("*.{region}.store-{i}"),
        3 => format!("{kind}.#"),
        4 => format!("#.store-{i}"),
        _ => format!("{kind}.*.store-{i}.#"),
    }
}

fn exchange() -> Arc<Exchange> {
    let ex = Arc::new(Exchange::new(
        "bench.topic".into(),
        ExchangeKind::Topic,
        false,
        false,
        false,
        FieldTable::default(),
    ));
    for i in 0..BINDINGS {
        let q = Queue::new(
            format!("q-{i}"),
            "/".into(),
            QueueSettings {
                durable: false,
                exclusive_owner: None,
                auto_delete: false,
                arguments: FieldTable::default(),
                args: QueueArgs::default(),
            },
            std::sync::Weak::new(),
            Timers::disconnected(),
            None,
        );
        assert!(ex.bind(Destination::Queue(q), &pattern(i), FieldTable::default()));
    }
    ex
}

fn routing(c: &mut Criterion) {
    let ex = exchange();
    let mut scratch = RouteScratch::default();
    let mut out = Vec::new();
    let mut g = c.benchmark_group("topic_route_1k_bindings");
    g.throughput(Throughput::Elements(1));
    for key in [
        "sale.eu.store-48",
        "audit.jp.store-7.x.y",
        "nomatch.key.here",
    ] {
        out.clear();
        ex.route(key, None, &mut scratch, &mut out);
        let matched = out.len();
        g.bench_with_input(
            BenchmarkId::new(format!("{matched}_matches"), key),
            key,
            |b, key| {
                b.iter(|| {
                    out.clear();
                    ex.route(black_box(key), None, &mut scratch, &mut out);
                    black_box(out.len())
                })
            },
        );
    }
    g.finish();
}

criterion_group!(benches, routing);
criterion_main!(benches);
