//! One AMQP channel: synchronous state and handlers, no I/O. The connection task owns every
//! channel of its connection and calls [`Channel::on_method`], [`Channel::on_header`],
//! [`Channel::on_body`] and [`Channel::on_delivery`]; handlers append frames to the
//! connection's [`Outbox`] and return an exception to close the channel or the connection.

mod basic;
mod declare;
mod tx;

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use bytes::Bytes;

use crate::error::{AmqpException, ConnectionException};
use crate::exchange::{Exchange, RouteScratch};
use crate::message::Message;
use crate::node::Node;
use crate::protocol::{AMQPClass, AMQPValue, ContentAssembler, Outbox, channel, encode_properties};
use crate::queue::{
    CancelOutcome, ChannelCredit, ConnSender, ConnectionId, ConsumerCredit, Delivery, Entry, Queue,
    QueueType,
};
use crate::stats::ChannelStats;
use crate::vhost::Vhost;

pub use tx::TxState;

use tx::PendingCommit;

/// What a channel handler may touch outside its channel.
pub struct Ctx<'a> {
    pub node: &'a Node,
    pub vhost: &'a Arc<Vhost>,
    pub connection: ConnectionId,
    pub user: &'a str,
    /// Handed to queues so they can deliver to this connection's consumers.
    pub sender: &'a ConnSender,
    pub out: &'a mut Outbox,
    /// Queues to wake (dispatch) once the current batch of frames is handled.
    pub kick: &'a mut Vec<Arc<Queue>>,
    /// Whether this turn wrote persistent messages whose confirms wait for an fsync.
    pub sync: &'a mut SyncRequest,
}

/// The store fsync a connection asks for at the end of a turn (group commit).
#[derive(Debug)]
pub struct SyncRequest {
    /// Set when a confirm waits for the next fsync.
    pub wanted: bool,
    /// Number of the next request; confirms waiting for it carry this number.
    pub generation: u64,
}

/// How a publish on a confirm channel is to be confirmed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Ack,
    Nack,
    /// Acked once the store's fsync number `n` (or a later one) completes.
    Synced(u64),
}

/// Where the channel is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifecycle {
    Open,
    /// We sent `channel.close` and wait for `close-ok`; everything else is ignored.
    Closing,
}

/// A delivery awaiting ack.
#[derive(Debug)]
struct Unacked {
    tag: u64,
    queue: Arc<Queue>,
    entry: Entry,
    /// The consumer whose credit it holds (`None` for `basic.get`).
    credit: Option<Arc<ConsumerCredit>>,
}

/// A consumer as its channel sees it.
#[derive(Debug)]
struct ChannelConsumer {
    queue: Arc<Queue>,
}

/// Publisher-confirm bookkeeping.
#[derive(Debug, Default)]
struct Confirms {
    /// Sequence number of the last publish.
    published: u64,
    /// Outcomes not yet sent, in sequence order starting at `published - len + 1`.
    unsent: VecDeque<Outcome>,
}

/// One channel.
pub struct Channel {
    pub id: u16,
    pub lifecycle: Lifecycle,
    content: ContentAssembler,
    next_delivery_tag: u64,
    unacked: VecDeque<Unacked>,
    consumers: HashMap<Arc<str>, ChannelConsumer>,
    credit: Arc<ChannelCredit>,
    /// `basic.qos global=false`: prefetch given to consumers created from now on.
    consumer_prefetch: u32,
    confirms: Option<Confirms>,
    tx: Option<TxState>,
    /// A `tx.commit` whose reply waits for an fsync (see `tx.rs`).
    committing: Option<PendingCommit>,
    /// Name of the last queue declared on this channel (AMQP lets later methods omit it).
    last_queue: String,
    /// The exchange of the previous publish, so a stream of publishes skips the lookup.
    exchange_cache: Option<Arc<Exchange>>,
    /// Name of this channel's direct reply-to queue, while it consumes `amq.rabbitmq.reply-to`.
    reply_to: Option<String>,
    /// The queue of the previous publish to the default exchange, for the same reason.
    queue_cache: Option<Arc<Queue>>,
    route_scratch: RouteScratch,
    route_out: Vec<Arc<Queue>>,
    /// Counters and gauges the management API and metrics read (see `stats.rs`).
    pub stats: Arc<ChannelStats>,
}

impl Channel {
    /// A newly opened channel.
    pub fn new(id: u16, stats: Arc<ChannelStats>) -> Self {
        Self {
            id,
            lifecycle: Lifecycle::Open,
            content: ContentAssembler::default(),
            next_delivery_tag: 1,
            unacked: VecDeque::new(),
            consumers: HashMap::new(),
            credit: Arc::new(ChannelCredit::default()),
            consumer_prefetch: 0,
            confirms: None,
            tx: None,
            committing: None,
            last_queue: String::new(),
            exchange_cache: None,
            queue_cache: None,
            reply_to: None,
            route_scratch: RouteScratch::default(),
            route_out: Vec::new(),
            stats,
        }
    }

    /// Publishes the channel's gauges to its statistics (a few relaxed stores).
    fn refresh_gauges(&self) {
        let s = &self.stats;
        s.unacked.set(self.unacked.len() as u64);
        s.consumers.set(self.consumers.len() as u64);
        s.unconfirmed
            .set(self.confirms.as_ref().map_or(0, |c| c.unsent.len() as u64));
        s.uncommitted
            .set(self.tx.as_ref().map_or(0, |t| t.publishes.len() as u64));
        s.prefetch_count.set(u64::from(self.consumer_prefetch));
        s.global_prefetch_count.set(u64::from(
            self.credit
                .prefetch
                .load(std::sync::atomic::Ordering::Relaxed),
        ));
        s.confirm.set(self.confirms.is_some());
        s.transactional.set(self.tx.is_some());
    }

    /// Sends a synchronous method's reply unless the client asked for `nowait`.
    fn reply(&self, ctx: &mut Ctx<'_>, nowait: bool, reply: AMQPClass) {
        if !nowait {
            ctx.out.method(self.id, &reply);
        }
    }

    /// Whether a method frame may arrive now (no content in progress).
    pub fn expects_method(&self) -> bool {
        self.content.is_idle()
    }

    /// Handles a method for this channel (never `channel.open`, handled by the connection).
    pub fn on_method(&mut self, ctx: &mut Ctx<'_>, method: AMQPClass) -> Result<(), AmqpException> {
        if self.committing.is_some() {
            return Err(ConnectionException::channel_error(
                "unexpected command while processing 'tx.commit'",
            )
            .into());
        }
        let result = self.dispatch_method(ctx, method);
        self.refresh_gauges();
        result
    }

    fn dispatch_method(
        &mut self,
        ctx: &mut Ctx<'_>,
        method: AMQPClass,
    ) -> Result<(), AmqpException> {
        use crate::protocol::{basic as b, confirm as c, exchange as e, queue as q, tx as t};
        match method {
            AMQPClass::Channel(channel::AMQPMethod::Flow(f)) => {
                if !f.active {
                    return Err(ConnectionException::not_implemented("active=false").into());
                }
                ctx.out.method(
                    self.id,
                    &AMQPClass::Channel(channel::AMQPMethod::FlowOk(channel::FlowOk {
                        active: true,
                    })),
                );
                Ok(())
            }
            AMQPClass::Channel(channel::AMQPMethod::FlowOk(_)) => Ok(()),
            AMQPClass::Exchange(e::AMQPMethod::Declare(m)) => self.on_exchange_declare(ctx, m),
            AMQPClass::Exchange(e::AMQPMethod::Delete(m)) => self.on_exchange_delete(ctx, m),
            AMQPClass::Exchange(e::AMQPMethod::Bind(m)) => self.on_exchange_bind(ctx, m),
            AMQPClass::Exchange(e::AMQPMethod::Unbind(m)) => self.on_exchange_unbind(ctx, m),
            AMQPClass::Queue(q::AMQPMethod::Declare(m)) => self.on_queue_declare(ctx, m),
            AMQPClass::Queue(q::AMQPMethod::Bind(m)) => self.on_queue_bind(ctx, m),
            AMQPClass::Queue(q::AMQPMethod::Unbind(m)) => self.on_queue_unbind(ctx, m),
            AMQPClass::Queue(q::AMQPMethod::Purge(m)) => self.on_queue_purge(ctx, m),
            AMQPClass::Queue(q::AMQPMethod::Delete(m)) => self.on_queue_delete(ctx, m),
            AMQPClass::Basic(b::AMQPMethod::Qos(m)) => self.on_basic_qos(ctx, m),
            AMQPClass::Basic(b::AMQPMethod::Consume(m)) => self.on_basic_consume(ctx, m),
            AMQPClass::Basic(b::AMQPMethod::Cancel(m)) => self.on_basic_cancel(ctx, m),
            AMQPClass::Basic(b::AMQPMethod::Publish(m)) => self.on_basic_publish(ctx, m),
            AMQPClass::Basic(b::AMQPMethod::Get(m)) => self.on_basic_get(ctx, m),
            AMQPClass::Basic(b::AMQPMethod::Ack(m)) => {
                self.on_basic_ack(ctx, m.delivery_tag, m.multiple)
            }
            AMQPClass::Basic(b::AMQPMethod::Nack(m)) => {
                self.on_basic_nack(ctx, m.delivery_tag, m.multiple, m.requeue)
            }
            AMQPClass::Basic(b::AMQPMethod::Reject(m)) => {
                self.on_basic_nack(ctx, m.delivery_tag, false, m.requeue)
            }
            AMQPClass::Basic(b::AMQPMethod::Recover(_)) => {
                self.on_basic_recover(ctx);
                ctx.out.method(
                    self.id,
                    &AMQPClass::Basic(b::AMQPMethod::RecoverOk(b::RecoverOk {})),
                );
                Ok(())
            }
            AMQPClass::Basic(b::AMQPMethod::RecoverAsync(_)) => {
                self.on_basic_recover(ctx);
                Ok(())
            }
            AMQPClass::Confirm(c::AMQPMethod::Select(m)) => self.on_confirm_select(ctx, m),
            AMQPClass::Tx(t::AMQPMethod::Select(_)) => self.on_tx_select(ctx),
            AMQPClass::Tx(t::AMQPMethod::Commit(_)) => self.on_tx_commit(ctx),
            AMQPClass::Tx(t::AMQPMethod::Rollback(_)) => self.on_tx_rollback(ctx),
            other => {
                let (c, m) = crate::protocol::ids_of(&other);
                Err(ConnectionException::command_invalid(format!(
                    "unexpected method in channel: class {c}, method {m}"
                ))
                .into())
            }
        }
    }

    /// A content header frame for this channel.
    pub fn on_header(&mut self, ctx: &mut Ctx<'_>, payload: Bytes) -> Result<(), AmqpException> {
        if let Some(m) = self
            .content
            .on_header(payload, ctx.node.config.max_message_size)?
        {
            self.on_content(ctx, m)?;
        }
        Ok(())
    }

    /// A content body frame for this channel.
    pub fn on_body(&mut self, ctx: &mut Ctx<'_>, payload: Bytes) -> Result<(), AmqpException> {
        if let Some(m) = self.content.on_body(payload)? {
            self.on_content(ctx, m)?;
        }
        Ok(())
    }

    /// A delivery from a queue for one of this channel's consumers.
    pub fn on_delivery(&mut self, ctx: &mut Ctx<'_>, d: Delivery) {
        let live =
            self.lifecycle == Lifecycle::Open && self.consumers.contains_key(&d.consumer_tag);
        if !live {
            // Cancelled or closing: the message goes back untouched.
            d.credit.release_unsent(d.no_ack);
            d.queue.return_unsent(d.entry, !d.no_ack);
            ctx.kick.push(d.queue);
            return;
        }
        let Some(m) = d.queue.materialize(&d.entry) else {
            // Unreadable in the log (logged): it cannot be delivered, so it is settled.
            d.credit.on_sent();
            if !d.no_ack {
                d.credit.on_settled(1);
                d.queue.ack(std::slice::from_ref(&d.entry));
            }
            ctx.kick.push(d.queue);
            return;
        };
        let tag = self.next_delivery_tag;
        self.next_delivery_tag += 1;
        if d.no_ack {
            self.stats.messages.deliver_no_ack.incr();
        } else {
            self.stats.messages.deliver.incr();
        }
        if d.entry.redelivered {
            self.stats.messages.redeliver.incr();
        }
        ctx.out.deliver(
            self.id,
            &d.consumer_tag,
            tag,
            d.entry.redelivered,
            m.exchange.as_str(),
            m.routing_key.as_str(),
        );
        let props = wire_properties(&d.queue, &d.entry, &m, false);
        ctx.out.content(
            self.id,
            props.as_deref().unwrap_or(&m.raw_properties),
            &m.body,
        );
        if d.credit.on_sent() {
            ctx.kick.push(Arc::clone(&d.queue));
        }
        if !d.no_ack {
            self.unacked.push_back(Unacked {
                tag,
                queue: d.queue,
                entry: d.entry,
                credit: Some(d.credit),
            });
            self.stats.unacked.set(self.unacked.len() as u64);
        }
    }

    /// The queue of one of our consumers was deleted: tell the client.
    pub fn on_consumer_cancelled(&mut self, ctx: &mut Ctx<'_>, consumer_tag: &str) {
        if self.consumers.remove(consumer_tag).is_some() && self.lifecycle == Lifecycle::Open {
            use crate::protocol::basic as b;
            ctx.out.method(
                self.id,
                &AMQPClass::Basic(b::AMQPMethod::Cancel(b::Cancel {
                    consumer_tag: consumer_tag.into(),
                    nowait: true,
                })),
            );
        }
    }

    /// Sends confirms for publishes settled during this batch.
    pub fn flush_confirms(&mut self, out: &mut Outbox) {
        use crate::protocol::basic as b;
        let Some(c) = &mut self.confirms else { return };
        // One cumulative ack or nack per run of equal outcomes, up to the first that waits.
        let mut tag = c.published - c.unsent.len() as u64;
        while let Some(&first) = c.unsent.front() {
            let ack = match first {
                Outcome::Ack => true,
                Outcome::Nack => false,
                Outcome::Synced(_) => break,
            };
            let run = c.unsent.iter().take_while(|o| **o == first).count();
            c.unsent.drain(..run);
            if ack {
                self.stats.messages.confirm.add(run as u64);
            }
            tag += run as u64;
            let multiple = run > 1;
            let method = if ack {
                b::AMQPMethod::Ack(b::Ack {
                    delivery_tag: tag,
                    multiple,
                })
            } else {
                b::AMQPMethod::Nack(b::Nack {
                    delivery_tag: tag,
                    multiple,
                    requeue: false,
                })
            };
            out.method(self.id, &AMQPClass::Basic(method));
        }
        self.stats.unconfirmed.set(c.unsent.len() as u64);
    }

    /// The store's fsync number `generation` completed (or failed): confirms waiting for it
    /// become acks (or nacks), and a `tx.commit` waiting for it is answered.
    pub fn on_synced(&mut self, ctx: &mut Ctx<'_>, generation: u64, ok: bool) {
        if let Some(c) = &mut self.confirms {
            for o in c.unsent.iter_mut() {
                if let Outcome::Synced(g) = *o
                    && g <= generation
                {
                    *o = if ok { Outcome::Ack } else { Outcome::Nack };
                }
            }
        }
        self.finish_commit(ctx, generation, ok);
    }

    /// Closes the channel's business: requeues unacked messages (in order, redelivered) and
    /// removes its consumers. Called on `channel.close`, on channel exceptions and when the
    /// connection goes.
    pub fn release(&mut self, ctx: &mut Ctx<'_>) {
        for (tag, c) in self.consumers.drain() {
            if ctx
                .vhost
                .queue(&c.queue.name)
                .is_some_and(|q| Arc::ptr_eq(&q, &c.queue))
                && c.queue.cancel(ctx.connection, self.id, &tag) == CancelOutcome::RemovedLast
            {
                ctx.vhost.delete_queue(&c.queue);
            }
        }
        self.reply_to = None;
        self.requeue_all(ctx);
        self.tx = None;
        self.committing = None;
        self.content = ContentAssembler::default();
    }

    /// Requeues every unacked delivery.
    fn requeue_all(&mut self, ctx: &mut Ctx<'_>) {
        let all: Vec<Unacked> = self.unacked.drain(..).collect();
        requeue(ctx, all);
    }

    /// Closes the channel from our side with a channel exception.
    pub fn close_with(
        &mut self,
        ctx: &mut Ctx<'_>,
        code: u16,
        text: &str,
        class_method: (u16, u16),
    ) {
        self.release(ctx);
        self.lifecycle = Lifecycle::Closing;
        ctx.out.method(
            self.id,
            &AMQPClass::Channel(channel::AMQPMethod::Close(channel::Close {
                reply_code: code,
                reply_text: text.into(),
                class_id: class_method.0,
                method_id: class_method.1,
            })),
        );
    }
}

/// The properties to send with a delivery: as published, except that queues counting
/// deliveries (quorum queues, and any queue with `x-delivery-limit`) add `x-delivery-count`
/// (earlier returns; on `basic.get` from the first delivery on, on consumers from the first
/// redelivery on, as RabbitMQ's quorum queues do).
pub(crate) fn wire_properties(
    queue: &Queue,
    entry: &Entry,
    m: &Message,
    from_get: bool,
) -> Option<Vec<u8>> {
    let args = &queue.settings.args;
    if args.queue_type != QueueType::Quorum && args.delivery_limit.is_none() {
        return None;
    }
    let count = entry.deliveries.saturating_sub(1);
    if count == 0 && !from_get {
        return None;
    }
    let mut headers = m.properties.headers().clone().unwrap_or_default();
    headers.insert(
        "x-delivery-count".into(),
        AMQPValue::LongLongInt(i64::from(count)),
    );
    Some(encode_properties(
        &m.properties.clone().with_headers(headers),
    ))
}

/// Settles deliveries by putting them back in their queues, grouped per queue, in order.
fn requeue(ctx: &mut Ctx<'_>, items: Vec<Unacked>) {
    let mut by_queue: Vec<(Arc<Queue>, Vec<Entry>)> = Vec::new();
    for u in items {
        if let Some(c) = &u.credit {
            c.on_settled(1);
        }
        match by_queue.iter_mut().find(|(q, _)| Arc::ptr_eq(q, &u.queue)) {
            Some((_, v)) => v.push(u.entry),
            None => by_queue.push((u.queue, vec![u.entry])),
        }
    }
    for (q, entries) in by_queue {
        q.requeue(entries);
        ctx.kick.push(q);
    }
}
