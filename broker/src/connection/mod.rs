//! One client connection: a single task that owns the socket, every channel of the
//! connection and an inbox of deliveries from queues. Each turn of its loop reads as many
//! bytes as are ready, handles every complete frame synchronously, handles queued deliveries,
//! and writes the resulting frames with as few syscalls as possible. When the outbound buffer
//! is over [`OUT_HIGH_WATER`] the task stops reading the socket and its inbox, which pushes
//! back on publishers (TCP) and consumers' queues (transit credit).

mod handshake;

use std::collections::HashMap;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until, timeout};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::channel::{Channel, Ctx, Lifecycle, SyncRequest};
use crate::error::{AmqpException, ConnectionException, REPLY_SUCCESS};
use crate::node::Node;
use crate::protocol::{
    AMQPClass, AMQPValue, Frame, Outbox, PROTOCOL_HEADER, channel, connection, decode_frame,
    decode_method, ids_of,
};
use crate::queue::{ConnMsg, ConnSender, ConnectionId, Queue};
use crate::registry::{ConnectionDetails, ConnectionInfo};
use crate::vhost::Vhost;

/// Stop reading (socket and inbox) while this many bytes wait to be written.
const OUT_HIGH_WATER: usize = 1 << 20;
/// How long we wait for `close-ok` after sending `connection.close`.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(3);
/// Delay before silently closing a connection whose handshake failed (as RabbitMQ does, to
/// slow down brute force).
const SILENT_CLOSE_DELAY: Duration = Duration::from_secs(3);
/// Deliveries taken from the inbox per turn.
const INBOX_BATCH: usize = 256;

/// Serves one accepted TCP connection until it closes.
pub async fn serve(stream: TcpStream, node: Arc<Node>, shutdown: CancellationToken) {
    let (Ok(peer_addr), Ok(local_addr)) = (stream.peer_addr(), stream.local_addr()) else {
        return;
    };
    let peer = peer_addr.to_string();
    let _ = stream.set_nodelay(true);
    let mut io = Io {
        stream,
        inbuf: BytesMut::with_capacity(64 * 1024),
        out: Outbox::new(node.config.frame_max),
    };
    let handshake_timeout = node.config.handshake_timeout;
    let opened = match timeout(handshake_timeout, open(&mut io, &node)).await {
        Ok(Ok(Some(s))) => s,
        Ok(Ok(None)) => return,
        Ok(Err(e)) => {
            debug!(%peer, error = %e, "connection closed during handshake");
            return;
        }
        Err(_) => {
            info!(%peer, "handshake timed out after {handshake_timeout:?}, closing");
            return;
        }
    };
    info!(%peer, user = %opened.user, vhost = %opened.vhost.name, "connection opened");
    let (sender, inbox) = mpsc::unbounded_channel();
    let id = node.next_connection_id();
    let info = ConnectionInfo::new(
        id,
        ConnectionDetails {
            peer: peer_addr,
            local: local_addr,
            user: opened.user.clone(),
            vhost: opened.vhost.name.clone(),
            auth_mechanism: opened.mechanism,
            client_properties: opened.client_properties,
            channel_max: opened.channel_max,
            frame_max: opened.frame_max,
            heartbeat: opened.heartbeat,
        },
        sender.clone(),
    );
    node.registry.register(Arc::clone(&info));
    let mut session = Session {
        id,
        info,
        node: Arc::clone(&node),
        vhost: opened.vhost,
        user: opened.user,
        channel_max: opened.channel_max,
        frame_max: opened.frame_max,
        heartbeat: opened.heartbeat,
        channels: HashMap::new(),
        sender,
        kick: Vec::new(),
        touched: Vec::new(),
        sync: SyncRequest {
            wanted: false,
            generation: 1,
        },
        state: State::Running,
    };
    io.out.set_frame_max(opened.frame_max);
    let result = session.run(&mut io, inbox, &shutdown).await;
    session.release_all(&mut io.out);
    node.registry.unregister(id);
    match result {
        Ok(()) => info!(%peer, "connection closed"),
        Err(e) => debug!(%peer, error = %e, "connection ended"),
    }
}

/// The socket, its read buffer and the frames waiting to be written.
struct Io {
    stream: TcpStream,
    inbuf: BytesMut,
    out: Outbox,
}

impl Io {
    /// Reads at least one more byte, or fails with `UnexpectedEof`.
    async fn read_more(&mut self) -> io::Result<()> {
        use tokio::io::AsyncReadExt;
        self.inbuf.reserve(16 * 1024);
        if self.stream.read_buf(&mut self.inbuf).await? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        Ok(())
    }

    /// Writes everything in the outbox.
    async fn flush(&mut self) -> io::Result<()> {
        use tokio::io::AsyncWriteExt;
        self.stream.write_all(&self.out.buf).await?;
        self.out.buf.clear();
        Ok(())
    }

    /// The next frame, reading as needed (handshake only).
    async fn next_frame(
        &mut self,
        frame_max: u32,
    ) -> io::Result<Result<Frame, ConnectionException>> {
        loop {
            match decode_frame(&mut self.inbuf, frame_max) {
                Ok(Some(f)) => return Ok(Ok(f)),
                Ok(None) => self.read_more().await?,
                Err(e) => return Ok(Err(e)),
            }
        }
    }

    /// The next method on channel 0 (handshake only); anything else is a connection error.
    async fn next_method(
        &mut self,
        frame_max: u32,
    ) -> io::Result<Result<AMQPClass, ConnectionException>> {
        Ok(match self.next_frame(frame_max).await? {
            Ok(Frame::Method {
                channel: 0,
                payload,
            }) => decode_method(&payload),
            Ok(Frame::Heartbeat { channel: 0 }) => Box::pin(self.next_method(frame_max)).await?,
            Ok(_) => Err(ConnectionException::command_invalid(
                "expected a connection method during the handshake",
            )),
            Err(e) => Err(e),
        })
    }

    /// Sends `connection.close` and waits briefly for `close-ok` before the socket goes.
    async fn close_with(&mut self, e: &ConnectionException) -> io::Result<()> {
        self.out.method(0, &close_method(e));
        self.flush().await?;
        let _ = timeout(CLOSE_TIMEOUT, async {
            while let Ok(Ok(f)) = self.next_frame(0).await {
                if let Frame::Method {
                    channel: 0,
                    payload,
                } = f
                    && crate::protocol::class_method_ids(&payload) == Some((10, 51))
                {
                    break;
                }
            }
        })
        .await;
        Ok(())
    }
}

fn close_method(e: &ConnectionException) -> AMQPClass {
    AMQPClass::Connection(connection::AMQPMethod::Close(connection::Close {
        reply_code: e.code,
        reply_text: e.text.as_str().into(),
        class_id: e.class_method.0,
        method_id: e.class_method.1,
    }))
}

/// Content frames belong to channels, never to channel 0.
fn content_on_channel_zero(kind: u8, payload: &[u8]) -> ConnectionException {
    ConnectionException::unexpected_frame(format!(
        "type {kind}, all octets = {}",
        crate::protocol::erlang_binary(payload)
    ))
}

/// What the handshake settled.
struct Opened {
    vhost: Arc<Vhost>,
    user: String,
    mechanism: String,
    client_properties: crate::protocol::FieldTable,
    channel_max: u16,
    frame_max: u32,
    heartbeat: u16,
}

/// Runs the handshake. `Ok(None)` when the connection was refused (and already answered).
async fn open(io: &mut Io, node: &Node) -> io::Result<Option<Opened>> {
    let config = &node.config;
    while io.inbuf.len() < PROTOCOL_HEADER.len() {
        io.read_more().await?;
    }
    if &io.inbuf[..8] != PROTOCOL_HEADER {
        io.out.raw(PROTOCOL_HEADER);
        io.flush().await?;
        return Ok(None);
    }
    io.inbuf.advance(8);
    io.out.method(
        0,
        &AMQPClass::Connection(connection::AMQPMethod::Start(handshake::start())),
    );
    io.flush().await?;

    let start_ok = match io.next_method(config.frame_max).await? {
        Ok(AMQPClass::Connection(connection::AMQPMethod::StartOk(s))) => s,
        Ok(_) => {
            return refuse(
                io,
                ConnectionException::command_invalid("expected connection.start-ok"),
            )
            .await;
        }
        Err(e) => return refuse(io, e).await,
    };
    let user = match handshake::credentials(&start_ok) {
        Ok((user, pass)) if node.authenticate(&user, &pass).is_some() => user,
        _ => {
            let mechanism = start_ok.mechanism.as_str();
            warn!(mechanism, "login refused");
            if !wants_auth_failure_close(&start_ok.client_properties) {
                return Ok(None);
            }
            let e = ConnectionException::access_refused(format!(
                "Login was refused using authentication mechanism {mechanism}. For details see the broker logfile."
            ));
            return refuse(io, e).await;
        }
    };

    io.out.method(
        0,
        &AMQPClass::Connection(connection::AMQPMethod::Tune(connection::Tune {
            channel_max: config.channel_max,
            frame_max: config.frame_max,
            heartbeat: config.heartbeat,
        })),
    );
    io.flush().await?;
    let (channel_max, frame_max, heartbeat) = match io.next_method(config.frame_max).await? {
        Ok(AMQPClass::Connection(connection::AMQPMethod::TuneOk(t))) => {
            match handshake::negotiate(config.channel_max, config.frame_max, &t) {
                Ok(v) => v,
                Err(e) => {
                    // RabbitMQ 3.10 logs this and closes the socket after a delay, sending no
                    // connection.close (the client has not opened the connection yet).
                    warn!(text = %e.text, "refusing tune-ok");
                    tokio::time::sleep(SILENT_CLOSE_DELAY).await;
                    return Ok(None);
                }
            }
        }
        Ok(_) => {
            return refuse(
                io,
                ConnectionException::command_invalid("expected connection.tune-ok"),
            )
            .await;
        }
        Err(e) => return refuse(io, e).await,
    };

    let vhost_name = match io.next_method(frame_max).await? {
        Ok(AMQPClass::Connection(connection::AMQPMethod::Open(o))) => {
            o.virtual_host.as_str().to_owned()
        }
        Ok(_) => {
            return refuse(
                io,
                ConnectionException::command_invalid("expected connection.open"),
            )
            .await;
        }
        Err(e) => return refuse(io, e).await,
    };
    let Some(vhost) = node.vhost(&vhost_name) else {
        let e = ConnectionException::not_allowed(format!("vhost {vhost_name} not found"))
            .caused_by((10, 40));
        return refuse(io, e).await;
    };
    if !node.authenticate_vhost(&user, &vhost_name) {
        let e = ConnectionException::not_allowed(format!(
            "access to vhost '{vhost_name}' refused for user '{user}'"
        ))
        .caused_by((10, 40));
        return refuse(io, e).await;
    }
    io.out.method(
        0,
        &AMQPClass::Connection(connection::AMQPMethod::OpenOk(connection::OpenOk {})),
    );
    io.flush().await?;
    Ok(Some(Opened {
        vhost,
        user,
        mechanism: start_ok.mechanism.as_str().to_owned(),
        client_properties: start_ok.client_properties,
        channel_max,
        frame_max,
        heartbeat,
    }))
}

async fn refuse(io: &mut Io, e: ConnectionException) -> io::Result<Option<Opened>> {
    info!(code = e.code, text = %e.text, "connection refused during handshake");
    io.close_with(&e).await?;
    Ok(None)
}

fn wants_auth_failure_close(client_properties: &crate::protocol::FieldTable) -> bool {
    match client_properties.inner().get("capabilities") {
        Some(AMQPValue::FieldTable(caps)) => {
            matches!(
                caps.inner().get("authentication_failure_close"),
                Some(AMQPValue::Boolean(true))
            )
        }
        _ => false,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Running,
    /// We sent `connection.close`; waiting for `close-ok` until the deadline.
    Closing {
        deadline: Instant,
    },
    /// Done: flush what is left and end (after the peer closes, if it asked to close).
    Closed {
        await_peer_close: bool,
    },
}

/// An open connection.
struct Session {
    id: ConnectionId,
    /// This connection in the node's registry (statistics, management API).
    info: Arc<ConnectionInfo>,
    node: Arc<Node>,
    vhost: Arc<Vhost>,
    user: String,
    channel_max: u16,
    frame_max: u32,
    heartbeat: u16,
    channels: HashMap<u16, Channel>,
    sender: ConnSender,
    kick: Vec<Arc<Queue>>,
    /// Channels that handled frames this turn (their confirms are flushed after it).
    touched: Vec<u16>,
    /// The fsync this connection asks the store for at the end of the turn.
    sync: SyncRequest,
    state: State,
}

impl Session {
    async fn run(
        &mut self,
        io: &mut Io,
        mut inbox: mpsc::UnboundedReceiver<ConnMsg>,
        shutdown: &CancellationToken,
    ) -> io::Result<()> {
        let mut msgs = Vec::with_capacity(INBOX_BATCH);
        let beat = Duration::from_secs(u64::from(self.heartbeat.max(1)));
        let mut ticker = tokio::time::interval(beat / 2);
        let mut last_read = Instant::now();
        loop {
            // Write what is ready without waiting; most turns end here with one syscall.
            if !io.out.is_empty() {
                match io.stream.try_write(&io.out.buf) {
                    Ok(n) => {
                        self.info.stats.send_oct.add(n as u64);
                        self.info.stats.send_cnt.incr();
                        io.out.buf.advance(n);
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => return Err(e),
                }
            }
            if let State::Closed { await_peer_close } = self.state {
                let _ = timeout(CLOSE_TIMEOUT, async {
                    io.flush().await?;
                    // After our close-ok the client closes the socket (RabbitMQ waits for it).
                    if await_peer_close {
                        loop {
                            io.inbuf.clear();
                            io.read_more().await?;
                        }
                    }
                    Ok::<(), io::Error>(())
                })
                .await;
                return Ok(());
            }
            let room = io.out.len() < OUT_HIGH_WATER;
            let closing_deadline = match self.state {
                State::Closing { deadline } => Some(deadline),
                _ => None,
            };
            tokio::select! {
                r = io.stream.readable(), if room => {
                    r?;
                    io.inbuf.reserve(64 * 1024);
                    match io.stream.try_read_buf(&mut io.inbuf) {
                        Ok(0) => return Ok(()),
                        Ok(n) => {
                            self.info.stats.recv_oct.add(n as u64);
                            self.info.stats.recv_cnt.incr();
                            last_read = Instant::now();
                            // Deliveries queued before these bytes arrived come first: the
                            // client may have sent them after seeing a confirm that followed
                            // the delivery (a basic.cancel must not overtake it).
                            while let Ok(m) = inbox.try_recv() {
                                self.on_inbox(&mut io.out, m);
                            }
                            self.on_bytes(io);
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                        Err(e) => return Err(e),
                    }
                }
                _ = io.stream.writable(), if !io.out.is_empty() => {}
                n = inbox.recv_many(&mut msgs, INBOX_BATCH), if room => {
                    if n == 0 {
                        return Ok(());
                    }
                    for m in msgs.drain(..) {
                        self.on_inbox(&mut io.out, m);
                    }
                }
                _ = ticker.tick(), if self.heartbeat > 0 => {
                    if last_read.elapsed() > beat * 2 {
                        warn!("missed heartbeats from client, timeout: {}s", self.heartbeat);
                        return Ok(());
                    }
                    io.out.heartbeat();
                }
                _ = shutdown.cancelled(), if self.state == State::Running => {
                    self.connection_exception(
                        &mut io.out,
                        ConnectionException::connection_forced("broker forced connection closure with reason 'shutdown'"),
                    );
                }
                _ = sleep_until(closing_deadline.unwrap_or_else(Instant::now)), if closing_deadline.is_some() => {
                    self.state = State::Closed { await_peer_close: false };
                }
            }
            self.after_turn(&mut io.out);
        }
    }

    /// Handles every complete frame in the read buffer.
    fn on_bytes(&mut self, io: &mut Io) {
        loop {
            if matches!(self.state, State::Closed { .. }) {
                return;
            }
            match decode_frame(&mut io.inbuf, self.frame_max) {
                Ok(Some(frame)) => {
                    if let Err(e) = self.on_frame(&mut io.out, frame) {
                        self.connection_exception(&mut io.out, e);
                    }
                }
                Ok(None) => return,
                Err(e) => {
                    // We lost frame sync: answer, then stop reading.
                    self.connection_exception(&mut io.out, e);
                    self.state = State::Closed {
                        await_peer_close: false,
                    };
                    return;
                }
            }
        }
    }

    fn on_frame(&mut self, out: &mut Outbox, frame: Frame) -> Result<(), ConnectionException> {
        if let State::Closing { .. } = self.state {
            // Only close-ok (or a crossing close) matters now.
            if let Frame::Method {
                channel: 0,
                payload,
            } = &frame
            {
                match crate::protocol::class_method_ids(payload) {
                    Some((10, 51)) => {
                        self.state = State::Closed {
                            await_peer_close: false,
                        }
                    }
                    Some((10, 50)) => {
                        out.method(
                            0,
                            &AMQPClass::Connection(connection::AMQPMethod::CloseOk(
                                connection::CloseOk {},
                            )),
                        );
                        self.state = State::Closed {
                            await_peer_close: false,
                        };
                    }
                    _ => {}
                }
            }
            return Ok(());
        }
        match frame {
            Frame::Heartbeat { channel: 0 } => Ok(()),
            Frame::Header {
                channel: 0,
                payload,
            } => Err(content_on_channel_zero(2, &payload)),
            Frame::Body {
                channel: 0,
                payload,
            } => Err(content_on_channel_zero(3, &payload)),
            Frame::Heartbeat { .. } => Err(ConnectionException::unexpected_frame(
                "type 8, all octets = <<>>",
            )),
            Frame::Method {
                channel: 0,
                payload,
            } => {
                let method = decode_method(&payload)?;
                self.on_connection_method(out, method)
            }
            Frame::Method { channel, payload } => {
                let method = decode_method(&payload)?;
                self.on_channel_method(out, channel, method)
            }
            Frame::Header { channel, payload } => {
                self.with_open_channel(out, channel, |ch, ctx| ch.on_header(ctx, payload))
            }
            Frame::Body { channel, payload } => {
                self.with_open_channel(out, channel, |ch, ctx| ch.on_body(ctx, payload))
            }
        }
    }

    fn on_connection_method(
        &mut self,
        out: &mut Outbox,
        method: AMQPClass,
    ) -> Result<(), ConnectionException> {
        match method {
            AMQPClass::Connection(connection::AMQPMethod::Close(_)) => {
                // Exclusive queues and unacked messages are released before close-ok, so a
                // client that sees close-ok can rely on them being gone (as in RabbitMQ).
                self.release_all(out);
                out.method(
                    0,
                    &AMQPClass::Connection(connection::AMQPMethod::CloseOk(connection::CloseOk {})),
                );
                self.state = State::Closed {
                    await_peer_close: true,
                };
                Ok(())
            }
            AMQPClass::Connection(connection::AMQPMethod::CloseOk(_)) => {
                self.state = State::Closed {
                    await_peer_close: false,
                };
                Ok(())
            }
            AMQPClass::Connection(connection::AMQPMethod::UpdateSecret(_)) => {
                out.method(
                    0,
                    &AMQPClass::Connection(connection::AMQPMethod::UpdateSecretOk(
                        connection::UpdateSecretOk {},
                    )),
                );
                Ok(())
            }
            AMQPClass::Connection(
                connection::AMQPMethod::Blocked(_) | connection::AMQPMethod::Unblocked(_),
            ) => Ok(()),
            other => {
                let ids = ids_of(&other);
                Err(ConnectionException::channel_error(
                    "unexpected method in connection state running",
                )
                .caused_by(ids))
            }
        }
    }

    fn on_channel_method(
        &mut self,
        out: &mut Outbox,
        id: u16,
        method: AMQPClass,
    ) -> Result<(), ConnectionException> {
        let ids = ids_of(&method);
        let is_open = matches!(method, AMQPClass::Channel(channel::AMQPMethod::Open(_)));
        let Some(ch) = self.channels.get_mut(&id) else {
            if !is_open {
                return Err(
                    ConnectionException::channel_error("expected 'channel.open'").caused_by(ids),
                );
            }
            if id > self.channel_max {
                return Err(ConnectionException::not_allowed(format!(
                    "number of channels opened ({}) has reached the negotiated channel_max ({})",
                    self.channels.len(),
                    self.channel_max
                ))
                .caused_by(ids));
            }
            let stats = self.node.registry.open_channel(&self.info, id);
            self.channels.insert(id, Channel::new(id, stats));
            out.method(
                id,
                &AMQPClass::Channel(channel::AMQPMethod::OpenOk(channel::OpenOk {})),
            );
            return Ok(());
        };
        if ch.lifecycle == Lifecycle::Closing {
            match method {
                AMQPClass::Channel(channel::AMQPMethod::CloseOk(_)) => {
                    self.remove_channel(id);
                }
                AMQPClass::Channel(channel::AMQPMethod::Close(_)) => {
                    out.method(
                        id,
                        &AMQPClass::Channel(channel::AMQPMethod::CloseOk(channel::CloseOk {})),
                    );
                    self.remove_channel(id);
                }
                _ => {}
            }
            return Ok(());
        }
        if !ch.expects_method() {
            return Err(ConnectionException::unexpected_frame(
                "expected content header for class 60, got non content header frame instead",
            )
            .caused_by(ids));
        }
        match method {
            AMQPClass::Channel(channel::AMQPMethod::Open(_)) => {
                Err(ConnectionException::channel_error("second 'channel.open' seen").caused_by(ids))
            }
            AMQPClass::Channel(channel::AMQPMethod::Close(_)) => {
                if let Some(mut ch) = self.remove_channel(id) {
                    let mut ctx = ctx!(self, out);
                    ch.release(&mut ctx);
                }
                out.method(
                    id,
                    &AMQPClass::Channel(channel::AMQPMethod::CloseOk(channel::CloseOk {})),
                );
                Ok(())
            }
            AMQPClass::Channel(channel::AMQPMethod::CloseOk(_)) => Ok(()),
            method => self.with_open_channel(out, id, |ch, ctx| {
                ch.on_method(ctx, method).map_err(|e| e.caused_by(ids))
            }),
        }
    }

    /// Runs `f` on an open channel, turning channel exceptions into `channel.close`.
    fn with_open_channel(
        &mut self,
        out: &mut Outbox,
        id: u16,
        f: impl FnOnce(&mut Channel, &mut Ctx<'_>) -> Result<(), AmqpException>,
    ) -> Result<(), ConnectionException> {
        if !self.touched.contains(&id) {
            self.touched.push(id);
        }
        let Some(ch) = self.channels.get_mut(&id) else {
            return Err(ConnectionException::channel_error(
                "expected 'channel.open'",
            ));
        };
        if ch.lifecycle == Lifecycle::Closing {
            return Ok(());
        }
        let mut ctx = ctx!(self, out);
        match f(ch, &mut ctx) {
            Ok(()) => Ok(()),
            Err(AmqpException::Channel(e)) => {
                debug!(channel = id, code = e.code, text = %e.text, "channel exception");
                ch.flush_confirms(ctx.out);
                ch.close_with(&mut ctx, e.code, &e.text, e.class_method);
                Ok(())
            }
            Err(AmqpException::Connection(e)) => Err(e),
        }
    }

    fn on_inbox(&mut self, out: &mut Outbox, msg: ConnMsg) {
        match msg {
            ConnMsg::Deliver(d) => {
                let mut ctx = ctx!(self, out);
                match self.channels.get_mut(&d.channel) {
                    Some(ch) => ch.on_delivery(&mut ctx, d),
                    None => {
                        d.credit.release_unsent(d.no_ack);
                        d.queue.return_unsent(d.entry, !d.no_ack);
                        ctx.kick.push(d.queue);
                    }
                }
            }
            ConnMsg::ConsumerCancelled {
                channel,
                consumer_tag,
            } => {
                let mut ctx = ctx!(self, out);
                if let Some(ch) = self.channels.get_mut(&channel) {
                    ch.on_consumer_cancelled(&mut ctx, &consumer_tag);
                }
            }
            ConnMsg::Close { reason } => {
                info!(%reason, "connection closed by an operator");
                self.connection_exception(out, ConnectionException::connection_forced(reason));
            }
            ConnMsg::Synced { generation, ok } => {
                let mut ctx = ctx!(self, out);
                for (id, ch) in &mut self.channels {
                    ch.on_synced(&mut ctx, generation, ok);
                    if !self.touched.contains(id) {
                        self.touched.push(*id);
                    }
                }
            }
        }
    }

    /// Work deferred to the end of a turn: wake queues whose consumers got credit back and
    /// send publisher confirms (one cumulative ack per channel).
    fn after_turn(&mut self, out: &mut Outbox) {
        if self.sync.wanted {
            self.sync.wanted = false;
            let generation = self.sync.generation;
            self.sync.generation += 1;
            let sender = self.sender.clone();
            match self.node.store() {
                Some(store) => store.request_sync(Box::new(move |result| {
                    if let Err(e) = &result {
                        tracing::error!(error = %e, "fsync failed: publishers get basic.nack");
                    }
                    let _ = sender.send(ConnMsg::Synced {
                        generation,
                        ok: result.is_ok(),
                    });
                })),
                None => {
                    let _ = sender.send(ConnMsg::Synced {
                        generation,
                        ok: true,
                    });
                }
            }
        }
        for id in self.touched.drain(..) {
            if let Some(ch) = self.channels.get_mut(&id) {
                ch.flush_confirms(out);
            }
        }
        if !self.kick.is_empty() {
            let mut kick = std::mem::take(&mut self.kick);
            kick.sort_by_key(|q| Arc::as_ptr(q) as usize);
            kick.dedup_by(|a, b| Arc::ptr_eq(a, b));
            for q in kick.drain(..) {
                q.dispatch();
            }
            self.kick = kick;
        }
    }

    /// Forgets a channel (closed by both sides) and unregisters its statistics.
    fn remove_channel(&mut self, id: u16) -> Option<Channel> {
        self.node.registry.close_channel(&self.info, id);
        self.channels.remove(&id)
    }

    /// Sends `connection.close` and releases every channel.
    fn connection_exception(&mut self, out: &mut Outbox, e: ConnectionException) {
        if self.state != State::Running {
            return;
        }
        if e.code != REPLY_SUCCESS {
            info!(code = e.code, text = %e.text, "closing connection");
        }
        self.release_all(out);
        out.method(0, &close_method(&e));
        self.state = State::Closing {
            deadline: Instant::now() + CLOSE_TIMEOUT,
        };
    }

    /// Requeues unacked deliveries, removes consumers and deletes exclusive queues.
    fn release_all(&mut self, out: &mut Outbox) {
        let mut channels = std::mem::take(&mut self.channels);
        {
            let mut ctx = ctx!(self, out);
            for ch in channels.values_mut() {
                ch.release(&mut ctx);
            }
        }
        // Keep closing channels known so their close-ok is accepted.
        self.channels = channels;
        for ch in self.channels.values_mut() {
            ch.lifecycle = Lifecycle::Closing;
        }
        self.vhost.delete_exclusive_queues(self.id);
        self.after_turn(out);
    }
}

/// Builds a [`Ctx`] from a session's fields (channels excluded).
macro_rules! ctx {
    ($s:expr, $out:expr) => {
        Ctx {
            node: &$s.node,
            vhost: &$s.vhost,
            connection: $s.id,
            user: &$s.user,
            sender: &$s.sender,
            out: $out,
            kick: &mut $s.kick,
            sync: &mut $s.sync,
        }
    };
}
use ctx;
