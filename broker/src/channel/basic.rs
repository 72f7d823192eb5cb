//! `basic.*`: qos, consume, cancel, publish, get, ack, nack, reject, recover.

use std::sync::Arc;

use super::{Channel, ChannelConsumer, Ctx, Outcome, Unacked, requeue};
use crate::dead_letter::header_strings;
use crate::error::{AmqpException, ChannelException, ConnectionException, NO_ROUTE};
use crate::message::Message;
use crate::protocol::{AMQPClass, Assembled, basic, encode_properties};
use crate::queue::{ConsumeError, Consumer, ConsumerCredit, PublishOutcome};
use crate::vhost::number;

impl Channel {
    pub(super) fn on_basic_qos(
        &mut self,
        ctx: &mut Ctx<'_>,
        m: basic::Qos,
    ) -> Result<(), AmqpException> {
        if m.global {
            self.credit.prefetch.store(
                u32::from(m.prefetch_count),
                std::sync::atomic::Ordering::Release,
            );
        } else {
            self.consumer_prefetch = u32::from(m.prefetch_count);
        }
        self.kick_consumers(ctx);
        ctx.out.method(
            self.id,
            &AMQPClass::Basic(basic::AMQPMethod::QosOk(basic::QosOk {})),
        );
        Ok(())
    }

    pub(super) fn on_basic_consume(
        &mut self,
        ctx: &mut Ctx<'_>,
        m: basic::Consume,
    ) -> Result<(), AmqpException> {
        let queue = if m.queue.as_str() == REPLY_TO {
            self.reply_queue(ctx, m.no_ack)?
        } else {
            let name = self.queue_name(m.queue.as_str())?;
            let queue = ctx.vhost.existing_queue(&name)?;
            ctx.vhost.check_exclusive_access(&queue, ctx.connection)?;
            queue
        };
        let tag: Arc<str> = if m.consumer_tag.as_str().is_empty() {
            format!("amq.ctag-{}", crate::naming::random_suffix()).into()
        } else {
            m.consumer_tag.as_str().into()
        };
        if self.consumers.contains_key(&tag) {
            return Err(ConnectionException::not_allowed(format!(
                "attempt to reuse consumer tag '{tag}'"
            ))
            .into());
        }
        let priority = match m.arguments.inner().get("x-priority") {
            None => 0,
            Some(v) => match number(v).and_then(|n| i32::try_from(n).ok()) {
                Some(p) => p,
                None => {
                    return Err(ChannelException::precondition_failed(format!(
                        "invalid arg 'x-priority' for queue '{}' in vhost '{}': \"expected integer, got {}\"",
                        queue.name,
                        queue.vhost,
                        crate::queue::args::type_name(v)
                    ))
                    .into());
                }
            },
        };
        let credit = Arc::new(ConsumerCredit::new(
            self.consumer_prefetch,
            Arc::clone(&self.credit),
        ));
        self.consumers.insert(
            Arc::clone(&tag),
            ChannelConsumer {
                queue: Arc::clone(&queue),
            },
        );
        let consumer = Consumer {
            tag: Arc::clone(&tag),
            channel: self.id,
            connection: ctx.connection,
            sender: ctx.sender.clone(),
            no_ack: m.no_ack,
            exclusive: m.exclusive,
            priority,
            credit,
        };
        // Deliveries reach the connection through its inbox, after this consume-ok.
        if let Err(ConsumeError::ExclusiveInUse) = queue.consume(consumer) {
            self.consumers.remove(&tag);
            return Err(ChannelException::access_refused(format!(
                "queue '{}' in vhost '{}' in exclusive use",
                queue.name, queue.vhost
            ))
            .into());
        }
        self.reply(
            ctx,
            m.nowait,
            AMQPClass::Basic(basic::AMQPMethod::ConsumeOk(basic::ConsumeOk {
                consumer_tag: tag.as_ref().into(),
            })),
        );
        Ok(())
    }

    pub(super) fn on_basic_cancel(
        &mut self,
        ctx: &mut Ctx<'_>,
        m: basic::Cancel,
    ) -> Result<(), AmqpException> {
        let tag = m.consumer_tag.as_str();
        if let Some(c) = self.consumers.remove(tag) {
            if self.reply_to.as_deref() == Some(c.queue.name.as_str()) {
                self.reply_to = None;
            }
            let outcome = c.queue.cancel(ctx.connection, self.id, tag);
            if outcome == crate::queue::CancelOutcome::RemovedLast {
                ctx.vhost.delete_queue(&c.queue);
            }
        }
        self.reply(
            ctx,
            m.nowait,
            AMQPClass::Basic(basic::AMQPMethod::CancelOk(basic::CancelOk {
                consumer_tag: m.consumer_tag,
            })),
        );
        Ok(())
    }

    pub(super) fn on_basic_publish(
        &mut self,
        _ctx: &mut Ctx<'_>,
        m: basic::Publish,
    ) -> Result<(), AmqpException> {
        if m.immediate {
            return Err(ConnectionException::not_implemented("immediate=true").into());
        }
        self.content.on_publish(m);
        Ok(())
    }

    /// A complete message arrived.
    pub(super) fn on_content(
        &mut self,
        ctx: &mut Ctx<'_>,
        m: Assembled,
    ) -> Result<(), AmqpException> {
        if let Some(e) = m.properties.expiration() {
            crate::queue::args::parse_expiration(e.as_str()).map_err(|e| e.caused_by((60, 40)))?;
        }
        if let Some(h) = m.properties.headers() {
            for key in ["CC", "BCC"] {
                if let Some(v) = h.inner().get(key)
                    && !matches!(v, crate::protocol::AMQPValue::FieldArray(_))
                {
                    return Err(ChannelException::precondition_failed(format!(
                        "invalid message: {{unacceptable_type_in_header,\"{key}\",{}}}",
                        crate::queue::args::type_name(v)
                    ))
                    .caused_by((60, 40))
                    .into());
                }
            }
        }
        if let Some(user_id) = m.properties.user_id()
            && user_id.as_str() != ctx.user
        {
            return Err(ChannelException::precondition_failed(format!(
                "user_id property set to '{user_id}' but authenticated user was '{}'",
                ctx.user
            ))
            .caused_by((60, 40))
            .into());
        }
        if let Some(tx) = &mut self.tx {
            // Routing errors surface at publish time in RabbitMQ too; check the exchange now.
            ctx.vhost
                .existing_exchange(m.publish.exchange.as_str())
                .map_err(|e| e.caused_by((60, 40)))?;
            tx.publishes.push(m);
            return Ok(());
        }
        self.publish_now(ctx, m)
            .map(drop)
            .map_err(|e| e.caused_by((60, 40)))
    }

    /// Routes a message and enqueues it; sends `basic.return` for unroutable mandatory ones.
    /// `Persisted` when a queue logged it (durable only after the next fsync), `Rejected` when
    /// a queue refused it.
    pub(super) fn publish_now(
        &mut self,
        ctx: &mut Ctx<'_>,
        m: Assembled,
    ) -> Result<PublishOutcome, AmqpException> {
        let exchange_name = m.publish.exchange.as_str();
        let exchange = match &self.exchange_cache {
            Some(e) if e.name == exchange_name && !e.is_deleted() => Arc::clone(e),
            _ => {
                let e = ctx.vhost.existing_exchange(exchange_name)?;
                self.exchange_cache = Some(Arc::clone(&e));
                e
            }
        };
        if exchange.internal {
            return Err(ChannelException::access_refused(format!(
                "cannot publish to internal exchange '{exchange_name}' in vhost '{}'",
                ctx.vhost.name
            ))
            .into());
        }
        let Assembled {
            publish,
            mut raw_properties,
            mut properties,
            body,
        } = m;
        // Sender-selected distribution: CC and BCC add routing keys; BCC is not delivered.
        let (cc, bcc) = match properties.headers() {
            Some(h) => (header_strings(h, "CC"), header_strings(h, "BCC")),
            None => (Vec::new(), Vec::new()),
        };
        let mut targets = std::mem::take(&mut self.route_out);
        targets.clear();
        if exchange.name.is_empty() && cc.is_empty() && bcc.is_empty() {
            let key = publish.routing_key.as_str();
            match &self.queue_cache {
                Some(q) if q.name == key && !q.is_deleted() => targets.push(Arc::clone(q)),
                _ => {
                    if let Some(q) = ctx.vhost.queue(key) {
                        self.queue_cache = Some(Arc::clone(&q));
                        targets.push(q);
                    }
                }
            }
        } else {
            let mut keys: Vec<&str> = vec![publish.routing_key.as_str()];
            keys.extend(cc.iter().map(String::as_str));
            keys.extend(bcc.iter().map(String::as_str));
            ctx.vhost.route(
                &exchange,
                &keys,
                properties.headers().as_ref(),
                &mut self.route_scratch,
                &mut targets,
            );
        }
        if !bcc.is_empty() {
            let mut map = properties
                .headers()
                .as_ref()
                .map(|h| h.inner().clone())
                .unwrap_or_default();
            map.remove("BCC");
            properties = properties.with_headers(map.into());
            raw_properties = bytes::Bytes::from(encode_properties(&properties));
        }
        if properties
            .reply_to()
            .as_ref()
            .is_some_and(|r| r.as_str() == REPLY_TO)
        {
            let Some(reply_to) = &self.reply_to else {
                return Err(ChannelException::precondition_failed(
                    "fast reply consumer does not exist",
                )
                .into());
            };
            properties = properties.with_reply_to(reply_to.as_str().into());
            raw_properties = bytes::Bytes::from(encode_properties(&properties));
        }
        let mandatory = publish.mandatory;
        self.stats.messages.publish.incr();
        exchange.publish_in.incr();
        if !targets.is_empty() {
            exchange.publish_out.incr();
        }
        if targets.is_empty() {
            if mandatory {
                self.stats.messages.return_unroutable.incr();
            } else {
                self.stats.messages.drop_unroutable.incr();
            }
        }
        let message = Arc::new(Message {
            exchange: publish.exchange,
            routing_key: publish.routing_key,
            raw_properties,
            properties,
            body,
        });
        if targets.is_empty() && mandatory {
            ctx.out.method(
                self.id,
                &AMQPClass::Basic(basic::AMQPMethod::Return(basic::Return {
                    reply_code: NO_ROUTE,
                    reply_text: "NO_ROUTE".into(),
                    exchange: message.exchange.clone(),
                    routing_key: message.routing_key.clone(),
                })),
            );
            ctx.out
                .content(self.id, &message.raw_properties, &message.body);
        }
        let (rejected, persisted) = ctx.vhost.enqueue(&targets, &message);
        targets.clear();
        self.route_out = targets;
        if let Some(c) = &mut self.confirms {
            c.published += 1;
            let outcome = if rejected {
                Outcome::Nack
            } else if persisted {
                // Confirmed once the fsync requested at the end of this turn completes.
                ctx.sync.wanted = true;
                Outcome::Synced(ctx.sync.generation)
            } else {
                Outcome::Ack
            };
            c.unsent.push_back(outcome);
        }
        Ok(if rejected {
            PublishOutcome::Rejected
        } else if persisted {
            PublishOutcome::Persisted
        } else {
            PublishOutcome::Enqueued
        })
    }

    /// Direct reply-to: consuming the pseudo-queue `amq.rabbitmq.reply-to` creates a private
    /// auto-delete queue for this channel; publishes with `reply_to = amq.rabbitmq.reply-to`
    /// carry its name, and replies published to it on the default exchange come back here.
    fn reply_queue(
        &mut self,
        ctx: &mut Ctx<'_>,
        no_ack: bool,
    ) -> Result<Arc<crate::queue::Queue>, AmqpException> {
        if !no_ack {
            return Err(
                ChannelException::precondition_failed("reply consumer cannot acknowledge").into(),
            );
        }
        if self.reply_to.is_some() {
            return Err(ChannelException::precondition_failed("reply consumer already set").into());
        }
        let (queue, _) = ctx.vhost.declare_server_named_queue(
            crate::vhost::QueueDeclare {
                name: format!("{REPLY_TO}.{}", crate::naming::random_suffix()),
                durable: false,
                exclusive: true,
                auto_delete: true,
                arguments: crate::protocol::FieldTable::default(),
            },
            ctx.connection,
        )?;
        self.reply_to = Some(queue.name.clone());
        Ok(queue)
    }

    pub(super) fn on_basic_get(
        &mut self,
        ctx: &mut Ctx<'_>,
        m: basic::Get,
    ) -> Result<(), AmqpException> {
        let name = self.queue_name(m.queue.as_str())?;
        let queue = ctx.vhost.existing_queue(&name)?;
        ctx.vhost.check_exclusive_access(&queue, ctx.connection)?;
        match queue.get(m.no_ack) {
            None => {
                self.stats.messages.get_empty.incr();
                ctx.out.method(
                    self.id,
                    &AMQPClass::Basic(basic::AMQPMethod::GetEmpty(basic::GetEmpty {})),
                );
            }
            Some((entry, remaining)) => {
                let Some(msg) = queue.materialize(&entry) else {
                    // Unreadable in the log (logged): settle it and report the queue empty.
                    queue.ack(std::slice::from_ref(&entry));
                    ctx.out.method(
                        self.id,
                        &AMQPClass::Basic(basic::AMQPMethod::GetEmpty(basic::GetEmpty {})),
                    );
                    return Ok(());
                };
                let tag = self.next_delivery_tag;
                self.next_delivery_tag += 1;
                if m.no_ack {
                    self.stats.messages.get_no_ack.incr();
                } else {
                    self.stats.messages.get.incr();
                }
                if entry.redelivered {
                    self.stats.messages.redeliver.incr();
                }
                ctx.out.get_ok(
                    self.id,
                    tag,
                    entry.redelivered,
                    msg.exchange.as_str(),
                    msg.routing_key.as_str(),
                    remaining,
                );
                let props = super::wire_properties(&queue, &entry, &msg, true);
                ctx.out.content(
                    self.id,
                    props.as_deref().unwrap_or(&msg.raw_properties),
                    &msg.body,
                );
                if !m.no_ack {
                    self.unacked.push_back(Unacked {
                        tag,
                        queue,
                        entry,
                        credit: None,
                    });
                }
            }
        }
        Ok(())
    }

    pub(super) fn on_basic_ack(
        &mut self,
        ctx: &mut Ctx<'_>,
        tag: u64,
        multiple: bool,
    ) -> Result<(), AmqpException> {
        if self.tx.is_some() {
            self.check_tags(tag, multiple)?;
        }
        if let Some(tx) = &mut self.tx {
            tx.acks.push(super::tx::PendingAck {
                tag,
                multiple,
                requeue: None,
            });
            return Ok(());
        }
        let settled = self.take_unacked(tag, multiple)?;
        self.stats.messages.ack.add(settled.len() as u64);
        settle(settled);
        self.kick_consumers(ctx);
        Ok(())
    }

    pub(super) fn on_basic_nack(
        &mut self,
        ctx: &mut Ctx<'_>,
        tag: u64,
        multiple: bool,
        requeue_it: bool,
    ) -> Result<(), AmqpException> {
        if self.tx.is_some() {
            self.check_tags(tag, multiple)?;
        }
        if let Some(tx) = &mut self.tx {
            tx.acks.push(super::tx::PendingAck {
                tag,
                multiple,
                requeue: Some(requeue_it),
            });
            return Ok(());
        }
        let items = self.take_unacked(tag, multiple)?;
        if requeue_it {
            requeue(ctx, items);
        } else {
            reject(items);
        }
        self.kick_consumers(ctx);
        Ok(())
    }

    pub(super) fn on_basic_recover(&mut self, ctx: &mut Ctx<'_>) {
        self.requeue_all(ctx);
        self.kick_consumers(ctx);
    }

    /// Takes the deliveries an ack/nack/reject names; 406 for tags we never issued or
    /// already settled.
    pub(super) fn take_unacked(
        &mut self,
        tag: u64,
        multiple: bool,
    ) -> Result<Vec<Unacked>, ChannelException> {
        self.check_tags(tag, multiple)?;
        if multiple {
            let upto = if tag == 0 { u64::MAX } else { tag };
            let n = self.unacked.partition_point(|u| u.tag <= upto);
            Ok(self.unacked.drain(..n).collect())
        } else {
            let i = self
                .unacked
                .binary_search_by_key(&tag, |u| u.tag)
                .map_err(|_| unknown_tag(tag))?;
            Ok(self.unacked.remove(i).into_iter().collect())
        }
    }

    /// 406 unless `tag` names an outstanding delivery (or, with `multiple`, 0 or any tag up
    /// to an outstanding one).
    pub(super) fn check_tags(&self, tag: u64, multiple: bool) -> Result<(), ChannelException> {
        let known = if multiple {
            tag == 0 || self.unacked.front().is_some_and(|u| u.tag <= tag)
        } else {
            self.unacked.binary_search_by_key(&tag, |u| u.tag).is_ok()
        };
        if known || (multiple && tag < self.next_delivery_tag) {
            Ok(())
        } else {
            Err(unknown_tag(tag))
        }
    }

    /// Wakes the queues this channel consumes from (credit may have been returned).
    pub(super) fn kick_consumers(&self, ctx: &mut Ctx<'_>) {
        for c in self.consumers.values() {
            if !ctx.kick.iter().any(|q| Arc::ptr_eq(q, &c.queue)) {
                ctx.kick.push(Arc::clone(&c.queue));
            }
        }
    }

    /// Resolves an empty queue name to the channel's last declared queue.
    pub(super) fn queue_name(&self, name: &str) -> Result<String, ChannelException> {
        if !name.is_empty() {
            return Ok(name.to_owned());
        }
        if self.last_queue.is_empty() {
            return Err(ChannelException::not_found("no previously declared queue"));
        }
        Ok(self.last_queue.clone())
    }
}

/// Drops acked (or rejected, not requeued) deliveries and returns their credit.
fn settle(items: Vec<Unacked>) {
    for (q, entries) in by_queue(items) {
        q.ack(&entries);
    }
}

/// Returns the deliveries' credit and groups their entries by queue, in order.
fn by_queue(items: Vec<Unacked>) -> Vec<(Arc<crate::queue::Queue>, Vec<crate::queue::Entry>)> {
    let mut grouped: Vec<(Arc<crate::queue::Queue>, Vec<crate::queue::Entry>)> = Vec::new();
    for u in items {
        if let Some(c) = &u.credit {
            c.on_settled(1);
        }
        match grouped.iter_mut().find(|(q, _)| Arc::ptr_eq(q, &u.queue)) {
            Some((_, v)) => v.push(u.entry),
            None => grouped.push((u.queue, vec![u.entry])),
        }
    }
    grouped
}

/// Drops deliveries rejected without requeue; their queues dead-letter them (`rejected`).
fn reject(items: Vec<Unacked>) {
    for (q, entries) in by_queue(items) {
        q.reject(entries);
    }
}

/// The pseudo-queue of direct reply-to.
const REPLY_TO: &str = "amq.rabbitmq.reply-to";

fn unknown_tag(tag: u64) -> ChannelException {
    ChannelException::precondition_failed(format!("unknown delivery tag {tag}"))
}
