//! Frame codec on the per-message hot path.
//!
//! - `decode/publish_1k`: one `basic.publish` + content header + 1 KiB body as they arrive on a
//!   socket, taken through what a connection does per message: `decode_frame` ×3,
//!   `decode_method`, and content assembly (header properties decoded, body sliced).
//! - `encode/deliver_1k`: what a consumer's connection appends per delivery with
//!   `broker::protocol::Outbox` (`basic.deliver` + content header + body).

use std::hint::black_box;

use bytes::{Bytes, BytesMut};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};

use broker::protocol::{
    AMQPClass, AMQPProperties, ContentAssembler, Frame, Outbox, basic, decode_frame, decode_method,
    encode_properties,
};

const FRAME_MAX: u32 = 131_072;
const BODY: usize = 1024;

fn properties() -> AMQPProperties {
    AMQPProperties::default()
        .with_content_type("application/json".into())
        .with_delivery_mode(1)
        .with_message_id("0b7e1d2c-41f4-4f5e-9d6a-6c1c8f2a9e01".into())
        .with_timestamp(1_700_000_000)
}

/// The bytes a client sends for one publish of a 1 KiB body.
fn publish_wire() -> BytesMut {
    let mut out = Outbox::new(FRAME_MAX);
    out.method(
        1,
        &AMQPClass::Basic(basic::AMQPMethod::Publish(basic::Publish {
            exchange: "sales".into(),
            routing_key: "sale.eu.store-17".into(),
            mandatory: false,
            immediate: false,
        })),
    );
    let raw = encode_properties(&properties());
    out.content(1, &raw, &Bytes::from(vec![0xAB; BODY]));
    out.buf
}

/// Decodes and assembles one message; returns its body length.
fn decode_one(buf: &mut BytesMut, asm: &mut ContentAssembler) -> usize {
    let mut assembled = None;
    while let Some(frame) = decode_frame(buf, FRAME_MAX).expect("valid frame") {
        match frame {
            Frame::Method { payload, .. } => match decode_method(&payload).expect("valid method") {
                AMQPClass::Basic(basic::AMQPMethod::Publish(p)) => asm.on_publish(p),
                other => panic!("unexpected {other:?}"),
            },
            Frame::Header { payload, .. } => {
                assembled = asm.on_header(payload, 128 << 20).expect("valid header");
            }
            Frame::Body { payload, .. } => {
                assembled = asm.on_body(payload).expect("valid body");
            }
            Frame::Heartbeat { .. } => {}
        }
    }
    assembled.map_or(0, |m| m.body.len())
}

fn codec(c: &mut Criterion) {
    let wire = publish_wire();
    let mut asm = ContentAssembler::default();
    assert_eq!(decode_one(&mut wire.clone(), &mut asm), BODY);

    let mut g = c.benchmark_group("decode");
    g.throughput(Throughput::Elements(1));
    g.bench_function("publish_1k", |b| {
        b.iter_batched_ref(
            || wire.clone(),
            |buf| black_box(decode_one(buf, &mut asm)),
            BatchSize::SmallInput,
        )
    });
    g.finish();

    let raw = encode_properties(&properties());
    let body = Bytes::from(vec![0xCD; BODY]);
    let mut out = Outbox::new(FRAME_MAX);
    let mut tag = 0u64;
    let mut g = c.benchmark_group("encode");
    g.throughput(Throughput::Elements(1));
    g.bench_function("deliver_1k", |b| {
        b.iter(|| {
            out.buf.clear();
            tag += 1;
            out.deliver(
                1,
                "amq.ctag-AbCdEfGhIjKlMnOpQrStUv",
                tag,
                false,
                "sales",
                "sale.eu.store-17",
            );
            out.content(1, &raw, &body);
            black_box(out.len())
        })
    });
    g.finish();
}

criterion_group!(benches, codec);
criterion_main!(benches);
