//! `exchange.*` and `queue.*`: declarations, bindings, purge and delete.

use std::sync::Arc;

use super::{Channel, Ctx};
use crate::error::{AmqpException, ChannelException};
use crate::exchange::Destination;
use crate::protocol::{AMQPClass, exchange, queue};
use crate::vhost::{ExchangeDeclare, QueueDeclare};

impl Channel {
    pub(super) fn on_exchange_declare(
        &mut self,
        ctx: &mut Ctx<'_>,
        m: exchange::Declare,
    ) -> Result<(), AmqpException> {
        let name = m.exchange.as_str();
        if m.passive {
            ctx.vhost.existing_exchange(name)?;
        } else {
            if name.is_empty() {
                return Err(default_exchange_refused().into());
            }
            ctx.vhost.declare_exchange(ExchangeDeclare {
                name: name.to_owned(),
                kind: m.kind.as_str().to_owned(),
                durable: m.durable,
                auto_delete: m.auto_delete,
                internal: m.internal,
                arguments: m.arguments,
            })?;
        }
        self.reply(
            ctx,
            m.nowait,
            AMQPClass::Exchange(exchange::AMQPMethod::DeclareOk(exchange::DeclareOk {})),
        );
        Ok(())
    }

    pub(super) fn on_exchange_delete(
        &mut self,
        ctx: &mut Ctx<'_>,
        m: exchange::Delete,
    ) -> Result<(), AmqpException> {
        if m.exchange.as_str().is_empty() {
            return Err(default_exchange_refused().into());
        }
        ctx.vhost
            .delete_exchange(m.exchange.as_str(), m.if_unused)?;
        self.reply(
            ctx,
            m.nowait,
            AMQPClass::Exchange(exchange::AMQPMethod::DeleteOk(exchange::DeleteOk {})),
        );
        Ok(())
    }

    pub(super) fn on_exchange_bind(
        &mut self,
        ctx: &mut Ctx<'_>,
        m: exchange::Bind,
    ) -> Result<(), AmqpException> {
        if m.source.as_str().is_empty() || m.destination.as_str().is_empty() {
            return Err(default_exchange_refused().into());
        }
        let destination = ctx.vhost.existing_exchange(m.destination.as_str())?;
        let source = ctx.vhost.existing_exchange(m.source.as_str())?;
        ctx.vhost.bind(
            &source,
            Destination::Exchange(destination),
            m.routing_key.as_str(),
            m.arguments,
        );
        self.reply(
            ctx,
            m.nowait,
            AMQPClass::Exchange(exchange::AMQPMethod::BindOk(exchange::BindOk {})),
        );
        Ok(())
    }

    pub(super) fn on_exchange_unbind(
        &mut self,
        ctx: &mut Ctx<'_>,
        m: exchange::Unbind,
    ) -> Result<(), AmqpException> {
        if m.source.as_str().is_empty() || m.destination.as_str().is_empty() {
            return Err(default_exchange_refused().into());
        }
        let destination = ctx.vhost.existing_exchange(m.destination.as_str())?;
        let source = ctx.vhost.existing_exchange(m.source.as_str())?;
        ctx.vhost.unbind(
            &source,
            &Destination::Exchange(destination),
            m.routing_key.as_str(),
            &m.arguments,
        );
        self.reply(
            ctx,
            m.nowait,
            AMQPClass::Exchange(exchange::AMQPMethod::UnbindOk(exchange::UnbindOk {})),
        );
        Ok(())
    }

    pub(super) fn on_queue_declare(
        &mut self,
        ctx: &mut Ctx<'_>,
        m: queue::Declare,
    ) -> Result<(), AmqpException> {
        if m.queue.as_str() == "amq.rabbitmq.reply-to" {
            // The direct reply-to pseudo-queue always "exists" with one consumer (RabbitMQ).
            self.reply(
                ctx,
                m.nowait,
                AMQPClass::Queue(queue::AMQPMethod::DeclareOk(queue::DeclareOk {
                    queue: m.queue,
                    message_count: 0,
                    consumer_count: 1,
                })),
            );
            return Ok(());
        }
        let (queue, created) = if m.passive {
            let name = self.queue_name(m.queue.as_str())?;
            let q = ctx.vhost.existing_queue(&name)?;
            ctx.vhost.check_exclusive_access(&q, ctx.connection)?;
            (q, false)
        } else {
            let name = if m.queue.as_str().is_empty() {
                format!("amq.gen-{}", crate::naming::random_suffix())
            } else {
                m.queue.as_str().to_owned()
            };
            let declare = QueueDeclare {
                name,
                durable: m.durable,
                exclusive: m.exclusive,
                auto_delete: m.auto_delete,
                arguments: m.arguments,
            };
            if m.queue.as_str().is_empty() {
                ctx.vhost
                    .declare_server_named_queue(declare, ctx.connection)?
            } else {
                ctx.vhost.declare_queue(declare, ctx.connection)?
            }
        };
        let churn = &ctx.node.registry.churn;
        churn.queue_declared.incr();
        if created {
            churn.queue_created.incr();
        }
        self.last_queue.clone_from(&queue.name);
        self.reply(
            ctx,
            m.nowait,
            AMQPClass::Queue(queue::AMQPMethod::DeclareOk(queue::DeclareOk {
                queue: queue.name.as_str().into(),
                message_count: queue.message_count(),
                consumer_count: queue.consumer_count(),
            })),
        );
        Ok(())
    }

    pub(super) fn on_queue_bind(
        &mut self,
        ctx: &mut Ctx<'_>,
        m: queue::Bind,
    ) -> Result<(), AmqpException> {
        let name = self.queue_name(m.queue.as_str())?;
        if m.exchange.as_str().is_empty() {
            return Err(default_exchange_refused().into());
        }
        let q = ctx.vhost.existing_queue(&name)?;
        ctx.vhost.check_exclusive_access(&q, ctx.connection)?;
        let ex = ctx.vhost.existing_exchange(m.exchange.as_str())?;
        // An empty routing key with an empty queue name means "the last queue's name".
        let key = if m.routing_key.as_str().is_empty() && m.queue.as_str().is_empty() {
            name.clone()
        } else {
            m.routing_key.as_str().to_owned()
        };
        ctx.vhost
            .bind(&ex, Destination::Queue(Arc::clone(&q)), &key, m.arguments);
        self.reply(
            ctx,
            m.nowait,
            AMQPClass::Queue(queue::AMQPMethod::BindOk(queue::BindOk {})),
        );
        Ok(())
    }

    pub(super) fn on_queue_unbind(
        &mut self,
        ctx: &mut Ctx<'_>,
        m: queue::Unbind,
    ) -> Result<(), AmqpException> {
        let name = self.queue_name(m.queue.as_str())?;
        if m.exchange.as_str().is_empty() {
            return Err(default_exchange_refused().into());
        }
        let q = ctx.vhost.existing_queue(&name)?;
        ctx.vhost.check_exclusive_access(&q, ctx.connection)?;
        let ex = ctx.vhost.existing_exchange(m.exchange.as_str())?;
        ctx.vhost.unbind(
            &ex,
            &Destination::Queue(q),
            m.routing_key.as_str(),
            &m.arguments,
        );
        ctx.out.method(
            self.id,
            &AMQPClass::Queue(queue::AMQPMethod::UnbindOk(queue::UnbindOk {})),
        );
        Ok(())
    }

    pub(super) fn on_queue_purge(
        &mut self,
        ctx: &mut Ctx<'_>,
        m: queue::Purge,
    ) -> Result<(), AmqpException> {
        let name = self.queue_name(m.queue.as_str())?;
        let q = ctx.vhost.existing_queue(&name)?;
        ctx.vhost.check_exclusive_access(&q, ctx.connection)?;
        let message_count = q.purge();
        self.reply(
            ctx,
            m.nowait,
            AMQPClass::Queue(queue::AMQPMethod::PurgeOk(queue::PurgeOk { message_count })),
        );
        Ok(())
    }

    pub(super) fn on_queue_delete(
        &mut self,
        ctx: &mut Ctx<'_>,
        m: queue::Delete,
    ) -> Result<(), AmqpException> {
        let name = self.queue_name(m.queue.as_str())?;
        let message_count = match ctx.vhost.queue(&name) {
            // Deleting a missing queue succeeds, as in RabbitMQ.
            None => 0,
            Some(q) => {
                ctx.vhost.check_exclusive_access(&q, ctx.connection)?;
                if m.if_unused && q.consumer_count() > 0 {
                    return Err(ChannelException::precondition_failed(format!(
                        "queue '{name}' in vhost '{}' in use",
                        ctx.vhost.name
                    ))
                    .into());
                }
                if m.if_empty && q.message_count() > 0 {
                    return Err(ChannelException::precondition_failed(format!(
                        "queue '{name}' in vhost '{}' not empty",
                        ctx.vhost.name
                    ))
                    .into());
                }
                ctx.node.registry.churn.queue_deleted.incr();
                ctx.vhost.delete_queue(&q)
            }
        };
        self.reply(
            ctx,
            m.nowait,
            AMQPClass::Queue(queue::AMQPMethod::DeleteOk(queue::DeleteOk {
                message_count,
            })),
        );
        Ok(())
    }
}

fn default_exchange_refused() -> ChannelException {
    ChannelException::access_refused("operation not permitted on the default exchange")
}
