//! `rawperf`: a lean AMQP 0-9-1 load client for filling and draining one queue, so the figures
//! show the broker and not the client.
//!
//! Why it exists: with `perf` (lapin) the client is the bottleneck when filling or draining a
//! durable queue on a small machine. Filling 1M persistent 1 KiB messages with 1000 confirms in
//! flight, lapin spends 6-10 µs of CPU per message (many small allocations per publish) and
//! tops out at one core, while the broker uses a third of one. `rawperf` spends well under a
//! microsecond per message: it speaks the protocol directly on a blocking `std::net::TcpStream`,
//! one thread, no runtime.
//!
//! What it does:
//! - `fill`: handshake (PLAIN, tune-ok echoing the server's channel-max and frame-max, heartbeats
//!   off), channel 1, `confirm.select`, optionally declares a durable queue (`--declare`), then
//!   publishes exactly `--count` messages of `--size` bytes to the default exchange with the
//!   queue as routing key, at most `--confirm` unconfirmed. One message (publish, content header,
//!   body frames) is encoded once with amq-protocol's generator and repeated into a batch buffer,
//!   so each write syscall carries up to [`BATCH_BYTES`] of publishes and nothing is encoded per
//!   message. `basic.ack`/`basic.nack` (single or `multiple`) are decoded by hand; nacks are
//!   counted and reported.
//! - `drain`: channel 1 consumes (manual ack, `basic.qos` `--prefetch`) until `--count`
//!   messages (default: the ready count a passive declare reports at the start) have arrived,
//!   acking with `multiple=true` once per read (or every `--ack-every` messages). Deliveries,
//!   content headers and bodies are decoded by hand and checked (each body complete, and of
//!   `--size` bytes when given). At the end channel 1 is closed (so prefetched extras go back
//!   to the queue) and a passive declare on channel 2 reports what is left.
//!
//! Both print one `RESULT key=value ...` line on stdout with the elapsed time, the rate, the
//! client's CPU time and, with `--broker-pid`, the broker's CPU time per message (from /proc).
//! A `connection.close` or `channel.close` from the server, a malformed frame, or no data for
//! `--timeout` seconds ends the run with a clear error and a non-zero exit.
//!
//! What it does not do: TLS, heartbeats (it asks for none), other exchanges, mandatory
//! publishes, several channels or connections, latency measurement, or recovery of any kind.
//! Use `perf` for those.
//!
//! ```text
//! rawperf fill --queue q --declare --persistent --count 1000000 --size 1024 --confirm 1000 \
//!     --broker-pid "$(pgrep -f 'broker --port 5674')" --url amqp://guest:guest@127.0.0.1:5674/%2f
//! rawperf drain --queue q --prefetch 1000 --size 1024 --url amqp://guest:guest@127.0.0.1:5674/%2f
//! ```

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::ops::Range;
use std::time::{Duration, Instant};

use amq_protocol::frame::{AMQPContentHeader, AMQPFrame, ProtocolVersion, WriteContext, gen_frame};
use amq_protocol::protocol::{AMQPClass, basic, channel, confirm, connection, queue};
use amq_protocol::types::{AMQPValue, FieldTable, LongString, ShortString};
use amq_protocol::uri::AMQPUri;
use anyhow::{Context, bail};
use benches::cpu::cpu_seconds;
use clap::{Parser, Subcommand};

const FRAME_METHOD: u8 = 1;
const FRAME_HEADER: u8 = 2;
const FRAME_BODY: u8 = 3;
const FRAME_HEARTBEAT: u8 = 8;
const FRAME_END: u8 = 0xCE;
/// Type (1) + channel (2) + size (4) + frame-end (1).
const FRAME_OVERHEAD: usize = 8;
/// Largest frame accepted before tuning, or after tuning when the server says "no limit".
const UNTUNED_FRAME_MAX: usize = 1 << 20;
/// The read buffer; one read takes whatever the socket has, up to this.
const READ_BUF: usize = 256 * 1024;
/// Compact the read buffer when less than this is free at its end.
const MIN_READ: usize = 64 * 1024;
/// Publishes per write call: as many whole messages as fit in this many bytes (at least one,
/// at most [`BATCH_MESSAGES`]).
const BATCH_BYTES: usize = 256 * 1024;
const BATCH_MESSAGES: usize = 256;
/// The channel carrying the publishes or the consumer.
const CH: u16 = 1;
/// The drain's second channel, for passive declares (channel 1 is closed before the last one).
const ADMIN_CH: u16 = 2;

/// Lean AMQP 0-9-1 client for filling and draining one queue.
#[derive(Debug, Parser)]
#[command(version, about, long_about = None)]
struct Args {
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Debug, Subcommand)]
enum Mode {
    /// Publish --count messages with publisher confirms.
    Fill(FillArgs),
    /// Consume (manual ack) until --count messages have arrived.
    Drain(DrainArgs),
}

#[derive(Debug, clap::Args)]
struct Common {
    /// Broker URI (amqp:// only).
    #[arg(long, default_value = "amqp://guest:guest@127.0.0.1:5672/%2f")]
    url: String,
    /// Queue to fill or drain.
    #[arg(long)]
    queue: String,
    /// PID of the broker process, to report its CPU time per message.
    #[arg(long)]
    broker_pid: Option<u32>,
    /// Give up when the broker sends nothing (or reads nothing) for this many seconds.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    timeout: u64,
    /// Free-form label copied into the RESULT line (e.g. the broker's name).
    #[arg(long, default_value = "-")]
    label: String,
    /// No per-second progress on stderr.
    #[arg(long)]
    quiet: bool,
}

#[derive(Debug, clap::Args)]
struct FillArgs {
    #[command(flatten)]
    common: Common,
    /// Messages to publish.
    #[arg(long)]
    count: u64,
    /// Body size in bytes.
    #[arg(long, default_value_t = 1024)]
    size: u32,
    /// Most messages published but not yet confirmed.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..))]
    confirm: u64,
    /// Publish with delivery_mode=2.
    #[arg(long)]
    persistent: bool,
    /// Declare the queue (durable, no arguments) before publishing.
    #[arg(long)]
    declare: bool,
}

#[derive(Debug, clap::Args)]
struct DrainArgs {
    #[command(flatten)]
    common: Common,
    /// Messages to receive; default: the queue's ready count at the start.
    #[arg(long)]
    count: Option<u64>,
    /// basic.qos prefetch count (0 = unlimited).
    #[arg(long, default_value_t = 1000)]
    prefetch: u16,
    /// Ack (multiple=true) every N messages; 0 = once per read from the socket. RabbitMQ
    /// sends a few deliveries per segment, so 0 means an ack every ~3 messages there, which
    /// costs it about a third of its throughput; `--ack-every 100` compares like with like.
    #[arg(long, default_value_t = 0)]
    ack_every: u64,
    /// Check that every body has this many bytes.
    #[arg(long)]
    size: Option<u64>,
}

fn main() -> std::process::ExitCode {
    let result = match Args::parse().mode {
        Mode::Fill(a) => fill(&a),
        Mode::Drain(a) => drain(&a),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn fill(a: &FillArgs) -> anyhow::Result<()> {
    let c = &a.common;
    let queue_name = short(&c.queue, "--queue")?;
    let mut conn = Conn::open(&c.url, "rawperf-fill", Duration::from_secs(c.timeout))?;
    conn.rpc(CH, channel_open())?;
    conn.rpc(
        CH,
        AMQPClass::Confirm(confirm::AMQPMethod::Select(confirm::Select {
            nowait: false,
        })),
    )?;
    if a.declare {
        conn.rpc(CH, queue_declare(queue_name.clone(), false))?;
    }
    let one = encode_message(queue_name, a.size, a.persistent, conn.frame_max);
    let per_batch = (BATCH_BYTES / one.len()).clamp(1, BATCH_MESSAGES);
    let batch = one.repeat(per_batch);

    let meter = Meter::start(c.broker_pid)?;
    let mut progress = Progress::new(c.quiet, "confirmed");
    let mut confirms = Confirms::default();
    let mut published = 0u64;
    while published < a.count || confirms.unconfirmed > 0 {
        let mut allowed = (a.confirm.saturating_sub(confirms.unconfirmed)).min(a.count - published);
        while allowed > 0 {
            let n = allowed.min(per_batch as u64);
            // n ≤ per_batch, so the range is inside `batch`.
            conn.write_all(&batch[..n as usize * one.len()])
                .with_context(|| progress_note(published, confirms.settled(), a.count))?;
            published += n;
            confirms.publish(n);
            allowed -= n;
        }
        conn.read_more()
            .with_context(|| progress_note(published, confirms.settled(), a.count))?;
        while let Some(f) = conn.next_buffered()? {
            match (f.kind, method_ids(conn.payload(&f))) {
                (FRAME_METHOD, Some((60, 80))) => {
                    let (tag, bits) =
                        tag_and_bits(conn.payload(&f)).context("malformed basic.ack")?;
                    confirms.settle(tag, bits & 1 != 0, false)?;
                }
                (FRAME_METHOD, Some((60, 120))) => {
                    let (tag, bits) =
                        tag_and_bits(conn.payload(&f)).context("malformed basic.nack")?;
                    confirms.settle(tag, bits & 1 != 0, true)?;
                }
                _ => conn.other_frame(&f)?,
            }
        }
        progress.tick(confirms.settled());
    }
    let m = meter.stop()?;
    conn.close();
    println!(
        "RESULT mode=fill label={} queue={} count={} size={} persistent={} confirm={} \
         elapsed_s={:.3} rate={:.0} nacks={} {} msgs_per_write={:.1}",
        c.label,
        c.queue,
        a.count,
        a.size,
        a.persistent,
        a.confirm,
        m.elapsed,
        a.count as f64 / m.elapsed,
        confirms.nacked,
        m.cpu_fields(a.count),
        a.count as f64 / conn.writes.max(1) as f64,
    );
    Ok(())
}

fn drain(a: &DrainArgs) -> anyhow::Result<()> {
    let c = &a.common;
    if a.prefetch > 0 && a.ack_every > u64::from(a.prefetch) {
        bail!(
            "--ack-every {} exceeds --prefetch {}: the consumer would stall",
            a.ack_every,
            a.prefetch
        );
    }
    let queue_name = short(&c.queue, "--queue")?;
    let mut conn = Conn::open(&c.url, "rawperf-drain", Duration::from_secs(c.timeout))?;
    conn.rpc(ADMIN_CH, channel_open())?;
    let count = match a.count {
        Some(n) => n,
        None => match ready_messages(&mut conn, &queue_name)? {
            0 => bail!(
                "queue '{}' has no ready messages; fill it or pass --count",
                c.queue
            ),
            n => u64::from(n),
        },
    };
    conn.rpc(CH, channel_open())?;
    conn.rpc(
        CH,
        AMQPClass::Basic(basic::AMQPMethod::Qos(basic::Qos {
            prefetch_count: a.prefetch,
            global: false,
        })),
    )?;

    let meter = Meter::start(c.broker_pid)?;
    let mut progress = Progress::new(c.quiet, "received");
    conn.rpc(
        CH,
        AMQPClass::Basic(basic::AMQPMethod::Consume(basic::Consume {
            queue: queue_name.clone(),
            consumer_tag: ShortString::default(),
            no_local: false,
            no_ack: false,
            exclusive: false,
            nowait: false,
            arguments: FieldTable::default(),
        })),
    )?;
    let mut consumer = Consumer {
        content: Content::Idle,
        received: 0,
        bytes: 0,
        acks: 0,
        last_tag: 0,
        acked_tag: 0,
        first_at: None,
        size: a.size,
    };
    let mut ack = Vec::with_capacity(32);
    'read: loop {
        while let Some(f) = conn.next_buffered()? {
            let payload = conn.payload(&f);
            let hot = f.channel == CH
                && (f.kind != FRAME_METHOD || method_ids(payload) == Some((60, 60)));
            if !hot {
                conn.other_frame(&f)?;
            } else if consumer.on_frame(f.kind, payload)? {
                if consumer.received == count {
                    break 'read;
                }
                if a.ack_every > 0 && consumer.last_tag - consumer.acked_tag >= a.ack_every {
                    consumer.ack(&mut conn, &mut ack)?;
                }
            }
        }
        if a.ack_every == 0 && consumer.last_tag > consumer.acked_tag {
            consumer.ack(&mut conn, &mut ack)?;
        }
        progress.tick(consumer.received);
        conn.read_more()
            .with_context(|| format!("received {} of {count} messages", consumer.received))?;
    }
    consumer.ack(&mut conn, &mut ack)?;
    let m = meter.stop()?;
    let first_ms = consumer
        .first_at
        .map_or(0.0, |t| t.duration_since(m.started).as_secs_f64() * 1e3);

    // Closing channel 1 requeues any prefetched extras, so the passive declare sees them.
    conn.send_method(
        CH,
        AMQPClass::Channel(channel::AMQPMethod::Close(channel::Close {
            reply_code: 200,
            reply_text: "done".into(),
            class_id: 0,
            method_id: 0,
        })),
    )?;
    conn.wait_for(CH, |m| {
        matches!(m, AMQPClass::Channel(channel::AMQPMethod::CloseOk(_)))
    })?;
    let remaining = ready_messages(&mut conn, &queue_name)?;
    conn.close();
    println!(
        "RESULT mode=drain label={} queue={} count={count} bytes={} prefetch={} ack_every={} \
         first_delivery_ms={first_ms:.1} elapsed_s={:.3} rate={:.0} remaining={remaining} {} \
         acks={}",
        c.label,
        c.queue,
        consumer.bytes,
        a.prefetch,
        a.ack_every,
        m.elapsed,
        count as f64 / m.elapsed,
        m.cpu_fields(count),
        consumer.acks,
    );
    Ok(())
}

/// One connection: a blocking socket, a read buffer that frames are sliced out of in place, and
/// counters of the syscalls made.
struct Conn {
    stream: TcpStream,
    /// Bytes read; `rbuf[rpos..rend]` are not yet consumed.
    rbuf: Vec<u8>,
    rpos: usize,
    rend: usize,
    /// Bytes the frame at `rpos` needs in all (0 when unknown), so a read makes room for it.
    need: usize,
    /// Negotiated frame-max (0 = no limit): bounds the body frames we send.
    frame_max: u32,
    /// Largest frame we accept from the server.
    max_frame_in: usize,
    /// Scratch for amq-protocol's generator.
    scratch: Vec<u8>,
    timeout: Duration,
    writes: u64,
}

/// A complete frame in the read buffer.
struct RawFrame {
    kind: u8,
    channel: u16,
    payload: Range<usize>,
}

impl Conn {
    /// Connects, performs the handshake and opens the vhost.
    fn open(url: &str, name: &str, timeout: Duration) -> anyhow::Result<Self> {
        let uri: AMQPUri = url
            .parse()
            .map_err(|e| anyhow::anyhow!("bad --url '{url}': {e}"))?;
        let host = &uri.authority.host;
        let port = uri.authority.port;
        let addr = (host.as_str(), port)
            .to_socket_addrs()
            .with_context(|| format!("cannot resolve {host}"))?
            .next()
            .with_context(|| format!("{host} has no address"))?;
        let stream = TcpStream::connect_timeout(&addr, timeout)
            .with_context(|| format!("cannot connect to {host}:{port}"))?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        let mut conn = Self {
            stream,
            rbuf: vec![0; READ_BUF],
            rpos: 0,
            rend: 0,
            need: 0,
            frame_max: 0,
            max_frame_in: UNTUNED_FRAME_MAX,
            scratch: Vec::new(),
            timeout,
            writes: 0,
        };
        conn.handshake(&uri, name)
            .with_context(|| format!("handshake with {host}:{port} failed"))?;
        Ok(conn)
    }

    fn handshake(&mut self, uri: &AMQPUri, name: &str) -> anyhow::Result<()> {
        self.send(&AMQPFrame::ProtocolHeader(ProtocolVersion::amqp_0_9_1()))?;
        let start = match self.wait_for(0, |_| true)? {
            AMQPClass::Connection(connection::AMQPMethod::Start(s)) => s,
            other => bail!("expected connection.start, got {other:?}"),
        };
        let mechanisms = String::from_utf8_lossy(start.mechanisms.as_bytes()).into_owned();
        if !mechanisms.split(' ').any(|m| m == "PLAIN") {
            bail!("the broker does not offer PLAIN authentication (it offers: {mechanisms})");
        }
        let user = &uri.authority.userinfo;
        let mut capabilities = FieldTable::default();
        for cap in [
            "publisher_confirms",
            "basic.nack",
            "consumer_cancel_notify",
            "connection.blocked",
            "authentication_failure_close",
        ] {
            capabilities.insert(cap.into(), AMQPValue::Boolean(true));
        }
        let mut props = FieldTable::default();
        props.insert("product".into(), AMQPValue::LongString("rawperf".into()));
        props.insert("connection_name".into(), AMQPValue::LongString(name.into()));
        props.insert("capabilities".into(), AMQPValue::FieldTable(capabilities));
        let response = format!("\0{}\0{}", user.username, user.password);
        self.send_method(
            0,
            AMQPClass::Connection(connection::AMQPMethod::StartOk(connection::StartOk {
                client_properties: props,
                mechanism: "PLAIN".into(),
                response: LongString::from(response),
                locale: "en_US".into(),
            })),
        )?;
        let tune = match self.wait_for(0, |_| true)? {
            AMQPClass::Connection(connection::AMQPMethod::Tune(t)) => t,
            other => bail!("expected connection.tune, got {other:?}"),
        };
        self.send_method(
            0,
            AMQPClass::Connection(connection::AMQPMethod::TuneOk(connection::TuneOk {
                channel_max: tune.channel_max,
                frame_max: tune.frame_max,
                heartbeat: 0,
            })),
        )?;
        self.frame_max = tune.frame_max;
        if tune.frame_max != 0 {
            self.max_frame_in = tune.frame_max as usize;
        }
        let vhost = short(&uri.vhost, "the vhost in --url")?;
        self.rpc(
            0,
            AMQPClass::Connection(connection::AMQPMethod::Open(connection::Open {
                virtual_host: vhost,
            })),
        )?;
        Ok(())
    }

    /// Sends a synchronous method and waits for its reply on the same channel.
    fn rpc(&mut self, channel: u16, method: AMQPClass) -> anyhow::Result<AMQPClass> {
        let what = method_name(&method);
        self.send_method(channel, method)?;
        self.wait_for(channel, |_| true)
            .with_context(|| format!("{what} on channel {channel}"))
    }

    /// Reads until a method on `channel` that `wanted` accepts; content frames and other
    /// methods on that channel are skipped (deliveries still arriving while a channel closes).
    /// A close from the server is an error.
    fn wait_for(
        &mut self,
        channel: u16,
        wanted: impl Fn(&AMQPClass) -> bool,
    ) -> anyhow::Result<AMQPClass> {
        loop {
            while let Some(f) = self.next_buffered()? {
                if f.kind != FRAME_METHOD {
                    continue;
                }
                let class = self.decode(&f)?;
                self.on_server_close(f.channel, &class)?;
                if f.channel == channel && wanted(&class) {
                    return Ok(class);
                }
            }
            self.read_more()?;
        }
    }

    /// Handles a frame the hot loops do not expect: a close from the server is an error,
    /// heartbeats and `connection.blocked` are tolerated, anything else is an error.
    fn other_frame(&mut self, f: &RawFrame) -> anyhow::Result<()> {
        match f.kind {
            FRAME_HEARTBEAT => Ok(()),
            FRAME_METHOD => {
                let class = self.decode(f)?;
                self.on_server_close(f.channel, &class)?;
                match class {
                    AMQPClass::Connection(connection::AMQPMethod::Blocked(b)) => {
                        eprintln!("warning: the broker blocked publishers: {}", b.reason);
                        Ok(())
                    }
                    AMQPClass::Connection(connection::AMQPMethod::Unblocked(_)) => {
                        eprintln!("warning: the broker unblocked publishers");
                        Ok(())
                    }
                    other => bail!("unexpected {other:?} on channel {}", f.channel),
                }
            }
            kind => bail!("unexpected frame of type {kind} on channel {}", f.channel),
        }
    }

    /// Turns `connection.close`, `channel.close` and a server-sent `basic.cancel` into errors
    /// (answering the closes, so the broker is not left waiting).
    fn on_server_close(&mut self, channel: u16, class: &AMQPClass) -> anyhow::Result<()> {
        match class {
            AMQPClass::Connection(connection::AMQPMethod::Close(c)) => {
                let _ = self.send_method(
                    0,
                    AMQPClass::Connection(connection::AMQPMethod::CloseOk(connection::CloseOk {})),
                );
                bail!(
                    "the broker closed the connection: {} {} (class {}, method {})",
                    c.reply_code,
                    c.reply_text,
                    c.class_id,
                    c.method_id
                )
            }
            AMQPClass::Channel(channel::AMQPMethod::Close(c)) => {
                let _ = self.send_method(
                    channel,
                    AMQPClass::Channel(channel::AMQPMethod::CloseOk(channel::CloseOk {})),
                );
                bail!(
                    "the broker closed channel {channel}: {} {} (class {}, method {})",
                    c.reply_code,
                    c.reply_text,
                    c.class_id,
                    c.method_id
                )
            }
            AMQPClass::Basic(basic::AMQPMethod::Cancel(c)) => bail!(
                "the broker cancelled consumer '{}' (queue deleted?)",
                c.consumer_tag
            ),
            _ => Ok(()),
        }
    }

    /// Closes the connection politely; failures only warn (the figures are already taken).
    fn close(&mut self) {
        let close = AMQPClass::Connection(connection::AMQPMethod::Close(connection::Close {
            reply_code: 200,
            reply_text: "bye".into(),
            class_id: 0,
            method_id: 0,
        }));
        let result = self.send_method(0, close).and_then(|()| {
            self.wait_for(0, |m| {
                matches!(m, AMQPClass::Connection(connection::AMQPMethod::CloseOk(_)))
            })
        });
        if let Err(e) = result {
            eprintln!("warning: closing the connection: {e:#}");
        }
    }

    /// Takes the next complete frame out of the read buffer, or `None` when more bytes are
    /// needed. The frame's size is checked from its header before anything is buffered for it.
    fn next_buffered(&mut self) -> anyhow::Result<Option<RawFrame>> {
        if self.rend - self.rpos < 7 {
            self.need = 7;
            return Ok(None);
        }
        let h = &self.rbuf[self.rpos..self.rpos + 7];
        let kind = h[0];
        let channel = u16::from_be_bytes([h[1], h[2]]);
        let size = u32::from_be_bytes([h[3], h[4], h[5], h[6]]) as usize;
        if !matches!(
            kind,
            FRAME_METHOD | FRAME_HEADER | FRAME_BODY | FRAME_HEARTBEAT
        ) {
            bail!("the broker sent a frame of unknown type {kind} (not an AMQP 0-9-1 broker?)");
        }
        if size + FRAME_OVERHEAD > self.max_frame_in {
            bail!(
                "the broker sent a {}-byte frame; the limit is {}",
                size + FRAME_OVERHEAD,
                self.max_frame_in
            );
        }
        let total = size + FRAME_OVERHEAD;
        if self.rend - self.rpos < total {
            self.need = total;
            return Ok(None);
        }
        let start = self.rpos;
        if self.rbuf[start + total - 1] != FRAME_END {
            bail!("the broker sent a frame without the frame-end octet");
        }
        self.rpos += total;
        self.need = 0;
        Ok(Some(RawFrame {
            kind,
            channel,
            payload: start + 7..start + 7 + size,
        }))
    }

    fn payload(&self, f: &RawFrame) -> &[u8] {
        &self.rbuf[f.payload.clone()]
    }

    /// Decodes a method frame with amq-protocol.
    fn decode(&self, f: &RawFrame) -> anyhow::Result<AMQPClass> {
        match amq_protocol::protocol::parse_class(self.payload(f)) {
            Ok(([], class)) => Ok(class),
            _ => bail!(
                "cannot decode a method frame from the broker (class/method {:?})",
                method_ids(self.payload(f))
            ),
        }
    }

    /// One read from the socket (blocking up to the timeout). Makes room first: consumed bytes
    /// are dropped from the front, and the buffer grows for a frame larger than it.
    fn read_more(&mut self) -> anyhow::Result<()> {
        if self.rpos == self.rend {
            (self.rpos, self.rend) = (0, 0);
        } else if self.rbuf.len() - self.rend < MIN_READ || self.rpos + self.need > self.rbuf.len()
        {
            self.rbuf.copy_within(self.rpos..self.rend, 0);
            (self.rpos, self.rend) = (0, self.rend - self.rpos);
        }
        if self.rbuf.len() < self.rpos + self.need {
            self.rbuf.resize(self.rpos + self.need, 0);
        }
        loop {
            match self.stream.read(&mut self.rbuf[self.rend..]) {
                Ok(0) => bail!("the broker closed the socket without connection.close"),
                Ok(n) => {
                    self.rend += n;
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if is_timeout(&e) => {
                    bail!("no data from the broker for {} s", self.timeout.as_secs())
                }
                Err(e) => return Err(e).context("reading from the broker"),
            }
        }
    }

    fn write_all(&mut self, mut bytes: &[u8]) -> anyhow::Result<()> {
        while !bytes.is_empty() {
            match self.stream.write(bytes) {
                Ok(0) => bail!("the broker closed the socket"),
                Ok(n) => {
                    self.writes += 1;
                    bytes = &bytes[n..];
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if is_timeout(&e) => bail!(
                    "the broker has not read from its socket for {} s",
                    self.timeout.as_secs()
                ),
                Err(e) => return Err(e).context("writing to the broker"),
            }
        }
        Ok(())
    }

    fn send_method(&mut self, channel: u16, method: AMQPClass) -> anyhow::Result<()> {
        self.send(&AMQPFrame::Method(channel, method))
    }

    fn send(&mut self, frame: &AMQPFrame) -> anyhow::Result<()> {
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.clear();
        let scratch = encode(frame, scratch);
        let result = self.write_all(&scratch);
        self.scratch = scratch;
        result
    }
}

/// Publisher confirm bookkeeping: which delivery tags are still unconfirmed.
#[derive(Default)]
struct Confirms {
    /// Delivery tag of `pending[0]` minus one (tags start at 1).
    settled_below: u64,
    /// From the oldest unconfirmed tag on: `true` while unconfirmed. Single acks can arrive out
    /// of order, so confirmed tags stay here until everything before them is confirmed too.
    pending: VecDeque<bool>,
    unconfirmed: u64,
    nacked: u64,
}

impl Confirms {
    fn publish(&mut self, n: u64) {
        self.pending.extend(std::iter::repeat_n(true, n as usize));
        self.unconfirmed += n;
    }

    /// Messages acked or nacked so far.
    fn settled(&self) -> u64 {
        self.settled_below + self.pending.len() as u64 - self.unconfirmed
    }

    /// Applies a `basic.ack` (or `basic.nack` when `nack`) for `tag`.
    fn settle(&mut self, tag: u64, multiple: bool, nack: bool) -> anyhow::Result<()> {
        let published = self.settled_below + self.pending.len() as u64;
        if tag == 0 || tag > published {
            bail!("the broker confirmed delivery tag {tag}, but {published} were published");
        }
        let mut newly = 0;
        if multiple {
            let upto = tag.saturating_sub(self.settled_below) as usize;
            for slot in self.pending.iter_mut().take(upto).filter(|s| **s) {
                *slot = false;
                newly += 1;
            }
        } else {
            match tag
                .checked_sub(self.settled_below + 1)
                .and_then(|i| self.pending.get_mut(i as usize))
            {
                Some(slot) if *slot => {
                    *slot = false;
                    newly = 1;
                }
                _ => bail!("the broker confirmed delivery tag {tag} twice"),
            }
        }
        self.unconfirmed -= newly;
        if nack {
            self.nacked += newly;
        }
        while self.pending.front() == Some(&false) {
            self.pending.pop_front();
            self.settled_below += 1;
        }
        Ok(())
    }
}

/// The drain's consumer state.
struct Consumer {
    content: Content,
    /// Complete messages received.
    received: u64,
    /// Body bytes received.
    bytes: u64,
    /// `basic.ack` frames sent.
    acks: u64,
    /// Delivery tag of the last complete message, and of the last one acked.
    last_tag: u64,
    acked_tag: u64,
    first_at: Option<Instant>,
    /// Expected body size, if checked.
    size: Option<u64>,
}

/// Where the consumer is in a delivery's frames.
enum Content {
    Idle,
    AwaitingHeader { tag: u64 },
    AwaitingBody { tag: u64, remaining: u64 },
}

impl Consumer {
    /// Handles a `basic.deliver` or a content frame on the consumer's channel (the caller hands
    /// other methods to [`Conn::other_frame`]). Returns whether it completed a message.
    fn on_frame(&mut self, kind: u8, payload: &[u8]) -> anyhow::Result<bool> {
        match (kind, &self.content) {
            (FRAME_METHOD, Content::Idle) if method_ids(payload) == Some((60, 60)) => {
                let tag = deliver_tag(payload).context("malformed basic.deliver")?;
                if self.first_at.is_none() {
                    self.first_at = Some(Instant::now());
                }
                self.content = Content::AwaitingHeader { tag };
                Ok(false)
            }
            (FRAME_METHOD, Content::Idle) => {
                bail!(
                    "unexpected method {:?} on the consumer's channel",
                    method_ids(payload)
                )
            }
            (FRAME_HEADER, Content::AwaitingHeader { tag }) => {
                let size = payload
                    .get(4..12)
                    .and_then(|b| b.try_into().ok())
                    .map(u64::from_be_bytes)
                    .context("malformed content header")?;
                if let Some(want) = self.size.filter(|&w| w != size) {
                    bail!("delivery {tag} has a {size}-byte body; expected {want}");
                }
                let tag = *tag;
                if size == 0 {
                    return Ok(self.complete(tag));
                }
                self.content = Content::AwaitingBody {
                    tag,
                    remaining: size,
                };
                Ok(false)
            }
            (FRAME_BODY, Content::AwaitingBody { tag, remaining }) => {
                let (tag, len) = (*tag, payload.len() as u64);
                let Some(left) = remaining.checked_sub(len) else {
                    bail!("delivery {tag}: body frames longer than the content header says");
                };
                self.bytes += len;
                if left == 0 {
                    return Ok(self.complete(tag));
                }
                self.content = Content::AwaitingBody {
                    tag,
                    remaining: left,
                };
                Ok(false)
            }
            (kind, _) => bail!("frame of type {kind} out of order in a delivery"),
        }
    }

    fn complete(&mut self, tag: u64) -> bool {
        self.content = Content::Idle;
        self.received += 1;
        self.last_tag = tag;
        true
    }

    /// Acks everything up to the last complete message (multiple=true).
    fn ack(&mut self, conn: &mut Conn, buf: &mut Vec<u8>) -> anyhow::Result<()> {
        if self.last_tag == self.acked_tag {
            return Ok(());
        }
        buf.clear();
        encode_ack(buf, CH, self.last_tag, true);
        conn.write_all(buf)?;
        self.acked_tag = self.last_tag;
        self.acks += 1;
        Ok(())
    }
}

/// Wall clock and CPU times at the start of the measured window.
struct Meter {
    started: Instant,
    broker_pid: Option<String>,
    broker_cpu0: Option<f64>,
    client_cpu0: f64,
}

struct Measured {
    started: Instant,
    elapsed: f64,
    broker_cpu: Option<f64>,
    client_cpu: f64,
}

impl Meter {
    fn start(broker_pid: Option<u32>) -> anyhow::Result<Self> {
        let broker_pid = broker_pid.map(|p| p.to_string());
        let broker_cpu0 = broker_pid
            .as_deref()
            .map(cpu_seconds)
            .transpose()
            .context("reading the broker's CPU time (is --broker-pid right?)")?;
        Ok(Self {
            started: Instant::now(),
            broker_pid,
            broker_cpu0,
            client_cpu0: cpu_seconds("self")?,
        })
    }

    fn stop(self) -> anyhow::Result<Measured> {
        let elapsed = self.started.elapsed().as_secs_f64().max(1e-9);
        let broker_cpu = match (self.broker_pid.as_deref(), self.broker_cpu0) {
            (Some(pid), Some(c0)) => Some(cpu_seconds(pid)? - c0),
            _ => None,
        };
        Ok(Measured {
            started: self.started,
            elapsed,
            broker_cpu,
            client_cpu: cpu_seconds("self")? - self.client_cpu0,
        })
    }
}

impl Measured {
    /// The CPU `key=value` fields of the RESULT line.
    fn cpu_fields(&self, messages: u64) -> String {
        let per_msg = |cpu: f64| cpu * 1e6 / messages.max(1) as f64;
        let (broker_s, broker_us) = match self.broker_cpu {
            Some(c) => (format!("{c:.2}"), format!("{:.2}", per_msg(c))),
            None => ("na".into(), "na".into()),
        };
        format!(
            "broker_cpu_s={broker_s} broker_cpu_us_per_msg={broker_us} client_cpu_s={:.2} \
             client_cpu_us_per_msg={:.2}",
            self.client_cpu,
            per_msg(self.client_cpu)
        )
    }
}

/// Per-second progress on stderr.
struct Progress {
    quiet: bool,
    what: &'static str,
    start: Instant,
    next: Instant,
    last: u64,
}

impl Progress {
    fn new(quiet: bool, what: &'static str) -> Self {
        let start = Instant::now();
        Self {
            quiet,
            what,
            start,
            next: start + Duration::from_secs(1),
            last: 0,
        }
    }

    fn tick(&mut self, done: u64) {
        if self.quiet {
            return;
        }
        let now = Instant::now();
        if now < self.next {
            return;
        }
        let dt = (now - self.next + Duration::from_secs(1)).as_secs_f64();
        eprintln!(
            "time {:5.1}s  {} {done:>9}  {:>9.0} msg/s",
            (now - self.start).as_secs_f64(),
            self.what,
            (done - self.last) as f64 / dt
        );
        self.last = done;
        self.next = now + Duration::from_secs(1);
    }
}

/// One message as the wire carries it: `basic.publish` to the default exchange, the content
/// header, and the body split by `frame_max`.
fn encode_message(queue: ShortString, size: u32, persistent: bool, frame_max: u32) -> Vec<u8> {
    let mut properties = basic::AMQPProperties::default();
    if persistent {
        properties = properties.with_delivery_mode(2);
    }
    let mut frames = vec![
        AMQPFrame::Method(
            CH,
            AMQPClass::Basic(basic::AMQPMethod::Publish(basic::Publish {
                exchange: ShortString::default(),
                routing_key: queue,
                mandatory: false,
                immediate: false,
            })),
        ),
        AMQPFrame::Header(
            CH,
            AMQPContentHeader {
                class_id: 60,
                body_size: u64::from(size),
                properties,
            },
        ),
    ];
    let body: Vec<u8> = (0..size).map(|i| b'a' + (i % 26) as u8).collect();
    let max_chunk = match frame_max as usize {
        0 => usize::MAX,
        m => m.saturating_sub(FRAME_OVERHEAD).max(1),
    };
    frames.extend(
        body.chunks(max_chunk)
            .map(|c| AMQPFrame::Body(CH, c.to_vec())),
    );
    frames.iter().fold(Vec::new(), |buf, f| encode(f, buf))
}

/// Appends a frame to `buf` with amq-protocol's generator.
fn encode(frame: &AMQPFrame, buf: Vec<u8>) -> Vec<u8> {
    match gen_frame(frame)(WriteContext::from(buf)) {
        Ok(ctx) => ctx.into_inner().0,
        // Writing into a Vec cannot fail.
        Err(e) => unreachable!("encoding into a Vec failed: {e:?}"),
    }
}

/// Appends `basic.ack` (the only frame the drain sends per batch), encoded by hand.
fn encode_ack(buf: &mut Vec<u8>, channel: u16, tag: u64, multiple: bool) {
    buf.push(FRAME_METHOD);
    buf.extend_from_slice(&channel.to_be_bytes());
    buf.extend_from_slice(&13u32.to_be_bytes());
    buf.extend_from_slice(&[0, 60, 0, 80]);
    buf.extend_from_slice(&tag.to_be_bytes());
    buf.push(u8::from(multiple));
    buf.push(FRAME_END);
}

fn method_ids(payload: &[u8]) -> Option<(u16, u16)> {
    let ids = payload.get(..4)?;
    Some((
        u16::from_be_bytes([ids[0], ids[1]]),
        u16::from_be_bytes([ids[2], ids[3]]),
    ))
}

/// Delivery tag and bit octet of `basic.ack` / `basic.nack`.
fn tag_and_bits(payload: &[u8]) -> Option<(u64, u8)> {
    let tag = u64::from_be_bytes(payload.get(4..12)?.try_into().ok()?);
    Some((tag, *payload.get(12)?))
}

/// Delivery tag of `basic.deliver` (after the consumer tag, a short string).
fn deliver_tag(payload: &[u8]) -> Option<u64> {
    let at = 5 + usize::from(*payload.get(4)?);
    Some(u64::from_be_bytes(
        payload.get(at..at + 8)?.try_into().ok()?,
    ))
}

/// The ready message count of a queue (passive declare on the admin channel).
fn ready_messages(conn: &mut Conn, queue: &ShortString) -> anyhow::Result<u32> {
    match conn.rpc(ADMIN_CH, queue_declare(queue.clone(), true))? {
        AMQPClass::Queue(queue::AMQPMethod::DeclareOk(ok)) => Ok(ok.message_count),
        other => bail!("expected queue.declare-ok, got {other:?}"),
    }
}

fn queue_declare(queue: ShortString, passive: bool) -> AMQPClass {
    AMQPClass::Queue(queue::AMQPMethod::Declare(queue::Declare {
        queue,
        passive,
        durable: true,
        exclusive: false,
        auto_delete: false,
        nowait: false,
        arguments: FieldTable::default(),
    }))
}

fn channel_open() -> AMQPClass {
    AMQPClass::Channel(channel::AMQPMethod::Open(channel::Open {}))
}

/// The spec's name of the synchronous methods we send, for error context.
fn method_name(m: &AMQPClass) -> String {
    let name = match (m.get_amqp_class_id(), m.get_amqp_method_id()) {
        (10, 40) => "connection.open",
        (20, 10) => "channel.open",
        (50, 10) => "queue.declare",
        (60, 10) => "basic.qos",
        (60, 20) => "basic.consume",
        (85, 10) => "confirm.select",
        (c, m) => return format!("class {c} method {m}"),
    };
    name.to_string()
}

fn short(s: &str, what: &str) -> anyhow::Result<ShortString> {
    ShortString::try_new(s).map_err(|e| anyhow::anyhow!("{what}: {e}"))
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

fn progress_note(published: u64, settled: u64, count: u64) -> String {
    format!("published {published} of {count}, {settled} confirmed")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_encoded_ack_matches_amq_protocol() {
        let mut ours = Vec::new();
        encode_ack(&mut ours, 3, 0x0102_0304_0506_0708, true);
        let theirs = encode(
            &AMQPFrame::Method(
                3,
                AMQPClass::Basic(basic::AMQPMethod::Ack(basic::Ack {
                    delivery_tag: 0x0102_0304_0506_0708,
                    multiple: true,
                })),
            ),
            Vec::new(),
        );
        assert_eq!(ours, theirs);
    }

    #[test]
    fn deliver_tag_is_read_after_the_consumer_tag() {
        let frame = encode(
            &AMQPFrame::Method(
                1,
                AMQPClass::Basic(basic::AMQPMethod::Deliver(basic::Deliver {
                    consumer_tag: "amq.ctag-xyz".into(),
                    delivery_tag: 77,
                    redelivered: false,
                    exchange: "".into(),
                    routing_key: "q".into(),
                })),
            ),
            Vec::new(),
        );
        let payload = &frame[7..frame.len() - 1];
        assert_eq!(method_ids(payload), Some((60, 60)));
        assert_eq!(deliver_tag(payload), Some(77));
        assert_eq!(deliver_tag(&payload[..10]), None);
    }

    #[test]
    fn message_template_splits_the_body_by_frame_max() {
        let one = encode_message("q".into(), 10_000, true, 4096);
        let mut conn_frames = Vec::new();
        let mut rest = &one[..];
        while !rest.is_empty() {
            let (r, f) = amq_protocol::frame::parse_frame(rest).expect("parses");
            conn_frames.push(f);
            rest = r;
        }
        assert_eq!(conn_frames.len(), 2 + 3);
        let AMQPFrame::Header(_, h) = &conn_frames[1] else {
            panic!("content header second")
        };
        assert_eq!(h.body_size, 10_000);
        assert_eq!(h.properties.delivery_mode(), &Some(2));
        let sizes: Vec<usize> = conn_frames[2..]
            .iter()
            .map(|f| match f {
                AMQPFrame::Body(_, b) => b.len(),
                _ => panic!("body frames last"),
            })
            .collect();
        assert_eq!(sizes, vec![4088, 4088, 1824]);
    }

    #[test]
    fn confirms_handle_multiple_out_of_order_and_nacks() {
        let mut c = Confirms::default();
        c.publish(5);
        c.settle(3, false, false).expect("single ack");
        assert_eq!((c.unconfirmed, c.settled()), (4, 1));
        c.settle(2, true, true).expect("multiple nack");
        assert_eq!((c.unconfirmed, c.nacked, c.settled()), (2, 2, 3));
        assert_eq!(c.settled_below, 3, "1..=3 are settled");
        c.settle(5, true, false).expect("multiple ack");
        assert_eq!((c.unconfirmed, c.settled()), (0, 5));
        assert!(c.pending.is_empty());
        assert!(c.settle(5, false, false).is_err(), "confirmed twice");
        assert!(c.settle(6, true, false).is_err(), "never published");
    }

    #[test]
    fn consumer_checks_content_frames() {
        let mut c = Consumer {
            content: Content::Idle,
            received: 0,
            bytes: 0,
            acks: 0,
            last_tag: 0,
            acked_tag: 0,
            first_at: None,
            size: Some(5),
        };
        let deliver = [0, 60, 0, 60, 1, b'c', 0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 1, b'q'];
        let mut header = vec![0, 60, 0, 0];
        header.extend_from_slice(&5u64.to_be_bytes());
        header.extend_from_slice(&[0, 0]);
        assert!(!c.on_frame(FRAME_METHOD, &deliver).expect("deliver"));
        assert!(!c.on_frame(FRAME_HEADER, &header).expect("header"));
        assert!(!c.on_frame(FRAME_BODY, b"ab").expect("body part"));
        assert!(c.on_frame(FRAME_BODY, b"cde").expect("body end"));
        assert_eq!((c.received, c.bytes, c.last_tag), (1, 5, 9));
        assert!(
            c.on_frame(FRAME_BODY, b"x").is_err(),
            "body without a delivery"
        );
        let mut wrong = vec![0, 60, 0, 0];
        wrong.extend_from_slice(&6u64.to_be_bytes());
        c.content = Content::AwaitingHeader { tag: 10 };
        assert!(c.on_frame(FRAME_HEADER, &wrong).is_err(), "wrong size");
    }
}
