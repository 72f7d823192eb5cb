//! A virtual host: its exchanges, queues and the bindings between them. Declarations check
//! equivalence and reserved names here so every entry point (AMQP now, the management API
//! later) answers the same way, with RabbitMQ's reply texts.

use std::collections::HashMap;
use std::sync::{Arc, Weak};

use parking_lot::RwLock;

use crate::dead_letter;
use crate::definitions::Durability;
use crate::error::{AmqpException, ChannelException, ConnectionException};
use crate::exchange::{Destination, Exchange, ExchangeKind, RouteScratch};
use crate::message::Message;
use crate::protocol::{AMQPValue, FieldTable};
use crate::queue::{
    ConnMsg, ConnectionId, DeadLetter, PublishOutcome, Queue, QueueArgs, QueueSettings, QueueType,
};
use crate::timer::Timers;

/// Parameters of `exchange.declare`.
#[derive(Clone, Debug)]
pub struct ExchangeDeclare {
    pub name: String,
    pub kind: String,
    pub durable: bool,
    pub auto_delete: bool,
    pub internal: bool,
    pub arguments: FieldTable,
}

/// Parameters of `queue.declare` (non-passive).
#[derive(Clone, Debug)]
pub struct QueueDeclare {
    pub name: String,
    pub durable: bool,
    pub exclusive: bool,
    pub auto_delete: bool,
    pub arguments: FieldTable,
}

/// One virtual host.
#[derive(Debug)]
pub struct Vhost {
    pub name: String,
    exchanges: RwLock<HashMap<String, Arc<Exchange>>>,
    queues: RwLock<HashMap<String, Arc<Queue>>>,
    timers: Timers,
    me: Weak<Vhost>,
    /// Where durable definitions and queue logs go (absent for a broker without a store).
    durability: Option<Arc<Durability>>,
}

impl Vhost {
    /// A vhost with RabbitMQ's predeclared exchanges.
    pub fn new(name: &str, timers: Timers, durability: Option<Arc<Durability>>) -> Arc<Self> {
        let v = Arc::new_cyclic(|me| Self {
            name: name.to_owned(),
            exchanges: RwLock::default(),
            queues: RwLock::default(),
            timers,
            me: me.clone(),
            durability,
        });
        {
            let mut ex = v.exchanges.write();
            for (n, kind, internal) in [
                ("", ExchangeKind::Direct, false),
                ("amq.direct", ExchangeKind::Direct, false),
                ("amq.fanout", ExchangeKind::Fanout, false),
                ("amq.topic", ExchangeKind::Topic, false),
                ("amq.headers", ExchangeKind::Headers, false),
                ("amq.match", ExchangeKind::Headers, false),
                ("amq.rabbitmq.trace", ExchangeKind::Topic, true),
            ] {
                ex.insert(
                    n.to_owned(),
                    Arc::new(Exchange::new(
                        n.to_owned(),
                        kind,
                        true,
                        false,
                        internal,
                        FieldTable::default(),
                    )),
                );
            }
        }
        v
    }

    /// An exchange by name.
    pub fn exchange(&self, name: &str) -> Option<Arc<Exchange>> {
        self.exchanges.read().get(name).cloned()
    }

    /// A queue by name.
    pub fn queue(&self, name: &str) -> Option<Arc<Queue>> {
        self.queues.read().get(name).cloned()
    }

    /// All exchanges.
    pub fn exchanges(&self) -> Vec<Arc<Exchange>> {
        self.exchanges.read().values().cloned().collect()
    }

    /// All queues.
    pub fn queues(&self) -> Vec<Arc<Queue>> {
        self.queues.read().values().cloned().collect()
    }

    /// The exchange, or RabbitMQ's 404.
    pub fn existing_exchange(&self, name: &str) -> Result<Arc<Exchange>, ChannelException> {
        self.exchange(name).ok_or_else(|| self.no_exchange(name))
    }

    /// The queue, or RabbitMQ's 404.
    pub fn existing_queue(&self, name: &str) -> Result<Arc<Queue>, ChannelException> {
        self.queue(name).ok_or_else(|| self.no_queue(name))
    }

    /// `NOT_FOUND - no exchange 'x' in vhost '/'`.
    pub fn no_exchange(&self, name: &str) -> ChannelException {
        ChannelException::not_found(format!("no exchange '{name}' in vhost '{}'", self.name))
    }

    /// `NOT_FOUND - no queue 'x' in vhost '/'`.
    pub fn no_queue(&self, name: &str) -> ChannelException {
        ChannelException::not_found(format!("no queue '{name}' in vhost '{}'", self.name))
    }

    /// Declares (or checks the equivalence of) an exchange.
    pub fn declare_exchange(&self, d: ExchangeDeclare) -> Result<Arc<Exchange>, AmqpException> {
        let Some(kind) = ExchangeKind::parse(&d.kind) else {
            return Err(ConnectionException::command_invalid(format!(
                "unknown exchange type '{}'",
                d.kind
            ))
            .into());
        };
        let mut map = self.exchanges.write();
        if let Some(existing) = map.get(&d.name) {
            let what = format!("exchange '{}' in vhost '{}'", d.name, self.name);
            check_equivalent(&what, "type", d.kind.as_str(), existing.kind.as_str())?;
            check_equivalent_bool(&what, "durable", d.durable, existing.durable)?;
            check_equivalent_bool(&what, "auto_delete", d.auto_delete, existing.auto_delete)?;
            check_equivalent_bool(&what, "internal", d.internal, existing.internal)?;
            check_arguments(&what, &d.arguments, &existing.arguments)?;
            return Ok(Arc::clone(existing));
        }
        if d.name.starts_with("amq.") {
            return Err(ChannelException::access_refused(format!(
                "exchange name '{}' contains reserved prefix 'amq.*'",
                d.name
            ))
            .into());
        }
        let ex = Arc::new(Exchange::new(
            d.name.clone(),
            kind,
            d.durable,
            d.auto_delete,
            d.internal,
            d.arguments,
        ));
        map.insert(d.name, Arc::clone(&ex));
        drop(map);
        self.changed(ex.durable);
        Ok(ex)
    }

    /// Deletes an exchange (missing exchanges are fine, as in RabbitMQ).
    pub fn delete_exchange(&self, name: &str, if_unused: bool) -> Result<(), ChannelException> {
        if name.is_empty() || name.starts_with("amq.") {
            return Err(ChannelException::access_refused(format!(
                "deletion of system exchange '{name}' in vhost '{}' not allowed",
                self.name
            )));
        }
        let Some(ex) = self.exchange(name) else {
            return Ok(());
        };
        let as_destination = Destination::Exchange(Arc::clone(&ex));
        if if_unused && ex.binding_count() > 0 {
            return Err(ChannelException::precondition_failed(format!(
                "exchange '{name}' in vhost '{}' in use",
                self.name
            )));
        }
        self.exchanges.write().remove(name);
        ex.mark_deleted();
        self.unbind_everywhere(&as_destination);
        self.changed(ex.durable);
        Ok(())
    }

    /// Removes every binding to `d` and deletes auto-delete exchanges left without bindings.
    fn unbind_everywhere(&self, d: &Destination) {
        let exchanges = self.exchanges();
        for ex in exchanges {
            if ex.unbind_all_to(d) > 0 {
                self.maybe_auto_delete_exchange(&ex);
            }
        }
    }

    /// Deletes an auto-delete exchange once it has no bindings left.
    pub fn maybe_auto_delete_exchange(&self, ex: &Arc<Exchange>) {
        if ex.auto_delete && ex.binding_count() == 0 && !ex.is_deleted() {
            let _ = self.delete_exchange(&ex.name, false);
        }
    }

    /// Declares a queue, or checks an existing one. Returns the queue and whether it was new.
    pub fn declare_queue(
        &self,
        d: QueueDeclare,
        owner: ConnectionId,
    ) -> Result<(Arc<Queue>, bool), ChannelException> {
        if d.name.starts_with("amq.") {
            return Err(ChannelException::access_refused(format!(
                "queue name '{}' contains reserved prefix 'amq.*'",
                d.name
            )));
        }
        let mut map = self.queues.write();
        if let Some(existing) = map.get(&d.name) {
            self.check_exclusive_access(existing, owner)?;
            let what = format!("queue '{}' in vhost '{}'", d.name, self.name);
            check_equivalent_bool(&what, "durable", d.durable, existing.settings.durable)?;
            if d.exclusive != existing.settings.exclusive_owner.is_some() {
                return Err(self.locked(&d.name));
            }
            check_equivalent_bool(
                &what,
                "auto_delete",
                d.auto_delete,
                existing.settings.auto_delete,
            )?;
            check_arguments(&what, &d.arguments, &existing.settings.arguments)?;
            existing.touch();
            return Ok((Arc::clone(existing), false));
        }
        let q = self.new_queue(d, owner)?;
        map.insert(q.name.clone(), Arc::clone(&q));
        drop(map);
        self.changed(is_persisted(&q));
        Ok((q, true))
    }

    /// Validates the arguments and builds a queue (not yet registered).
    fn new_queue(
        &self,
        d: QueueDeclare,
        owner: ConnectionId,
    ) -> Result<Arc<Queue>, ChannelException> {
        let args = QueueArgs::parse(&d.arguments, &d.name, &self.name)?;
        if args.queue_type == QueueType::Quorum {
            let what = format!("queue '{}' in vhost '{}'", d.name, self.name);
            if !d.durable {
                return Err(ChannelException::precondition_failed(format!(
                    "invalid property 'non-durable' for {what}"
                )));
            }
            if d.exclusive {
                return Err(ChannelException::precondition_failed(format!(
                    "invalid property 'exclusive-owner' for {what}"
                )));
            }
            if d.auto_delete {
                return Err(ChannelException::precondition_failed(format!(
                    "invalid property 'auto-delete' for {what}"
                )));
            }
        }
        let settings = QueueSettings {
            durable: d.durable,
            exclusive_owner: d.exclusive.then_some(owner),
            auto_delete: d.auto_delete,
            arguments: d.arguments,
            args,
        };
        let log = match (
            &self.durability,
            settings.durable && settings.exclusive_owner.is_none(),
        ) {
            (Some(durability), true) => Some(
                durability
                    .store
                    .open_queue(&self.name, &d.name)
                    .map_err(|e| {
                        tracing::error!(queue = %d.name, error = %e, "cannot open the queue log");
                        ChannelException::precondition_failed(format!(
                            "cannot store queue '{}': {e}",
                            d.name
                        ))
                    })?,
            ),
            _ => None,
        };
        Ok(Queue::new(
            d.name,
            self.name.clone(),
            settings,
            Weak::clone(&self.me),
            self.timers.clone(),
            log,
        ))
    }

    /// Declares a queue under a server-generated name (never an existing one).
    pub fn declare_server_named_queue(
        &self,
        d: QueueDeclare,
        owner: ConnectionId,
    ) -> Result<(Arc<Queue>, bool), ChannelException> {
        if QueueArgs::parse(&d.arguments, &d.name, &self.name)?.queue_type == QueueType::Quorum {
            return Err(ChannelException::precondition_failed(
                "Cannot declare a server-named queue for type rabbit_quorum_queue",
            ));
        }
        let q = self.new_queue(d, owner)?;
        self.queues.write().insert(q.name.clone(), Arc::clone(&q));
        self.changed(is_persisted(&q));
        Ok((q, true))
    }

    /// Every queue a message published to `exchange` reaches: the bindings for its routing
    /// key and its `CC`/`BCC` keys, then the exchange's alternate exchanges while nothing
    /// matched. The default exchange routes to the queue named by each key.
    pub fn route(
        &self,
        exchange: &Arc<Exchange>,
        keys: &[&str],
        headers: Option<&FieldTable>,
        scratch: &mut RouteScratch,
        out: &mut Vec<Arc<Queue>>,
    ) {
        let mut current = Arc::clone(exchange);
        let mut tried: Vec<usize> = Vec::new();
        loop {
            for key in keys {
                if current.name.is_empty() {
                    if let Some(q) = self.queue(key)
                        && !out.iter().any(|o| Arc::ptr_eq(o, &q))
                    {
                        out.push(q);
                    }
                } else {
                    current.route(key, headers, scratch, out);
                }
            }
            if !out.is_empty() {
                return;
            }
            tried.push(Arc::as_ptr(&current) as usize);
            let Some(ae) = current.alternate_exchange().and_then(|n| self.exchange(n)) else {
                return;
            };
            if tried.contains(&(Arc::as_ptr(&ae) as usize)) {
                return;
            }
            current = ae;
        }
    }

    /// Appends `message` to each target queue. Returns whether any queue refused it
    /// (`x-overflow = reject-publish`, or a failed store) and whether any wrote it to its log
    /// (its confirm then waits for the fsync). Dead letters this causes are routed before
    /// returning.
    pub fn enqueue(&self, targets: &[Arc<Queue>], message: &Arc<Message>) -> (bool, bool) {
        let mut dead = Vec::new();
        let (mut rejected, mut persisted) = (false, false);
        for q in targets {
            match q.publish(Arc::clone(message), &mut dead) {
                PublishOutcome::Rejected => rejected = true,
                PublishOutcome::Persisted => persisted = true,
                PublishOutcome::Enqueued => {}
            }
        }
        self.route_dead_letters(dead);
        (rejected, persisted)
    }

    /// Republishes dead letters to their dead-letter exchanges. Dead letters those publishes
    /// cause (a full dead-letter queue, say) join the same worklist; cycles are broken as
    /// RabbitMQ breaks them.
    pub fn route_dead_letters(&self, dead: Vec<DeadLetter>) {
        if dead.is_empty() {
            return;
        }
        let mut work: std::collections::VecDeque<DeadLetter> = dead.into();
        let mut scratch = RouteScratch::default();
        let mut targets = Vec::new();
        let mut more = Vec::new();
        let mut sources = Vec::new();
        while let Some(mut dl) = work.pop_front() {
            sources.extend(dl.source.take());
            // A dead-letter exchange that does not exist drops the message, as in RabbitMQ.
            let Some(exchange) = self.exchange(&dl.exchange) else {
                continue;
            };
            let (message, keys) = dead_letter::republish(&dl);
            let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
            targets.clear();
            self.route(
                &exchange,
                &keys,
                message.properties.headers().as_ref(),
                &mut scratch,
                &mut targets,
            );
            for q in &targets {
                if dead_letter::is_cycle(&message, dl.reason, &q.name) {
                    tracing::debug!(queue = %q.name, "dead-letter cycle: message dropped");
                    continue;
                }
                q.publish(Arc::clone(&message), &mut more);
            }
            work.extend(more.drain(..));
        }
        self.forget_sources_after_sync(sources);
    }

    /// Acks the dead-lettered records in their source logs once everything written so far
    /// (the copies in the dead-letter queues) is fsynced. If the sync fails they stay, and
    /// come back after a restart: a duplicate, never a loss.
    fn forget_sources_after_sync(&self, sources: Vec<(Arc<Queue>, u64, crate::store::Location)>) {
        if sources.is_empty() {
            return;
        }
        match &self.durability {
            Some(d) => d.store.request_sync(Box::new(move |result| {
                if result.is_ok() {
                    for (q, seq, location) in sources {
                        q.forget_dead_lettered(seq, location);
                    }
                }
            })),
            None => {
                for (q, seq, location) in sources {
                    q.forget_dead_lettered(seq, location);
                }
            }
        }
    }

    /// Adds a binding, saving definitions when it joins durable objects.
    pub fn bind(
        &self,
        source: &Arc<Exchange>,
        destination: Destination,
        routing_key: &str,
        arguments: FieldTable,
    ) {
        let durable = source.durable && destination_durable(&destination);
        if source.bind(destination, routing_key, arguments) {
            self.changed(durable);
        }
    }

    /// Removes a binding (auto-delete exchanges left without bindings go too).
    pub fn unbind(
        &self,
        source: &Arc<Exchange>,
        destination: &Destination,
        routing_key: &str,
        arguments: &FieldTable,
    ) {
        if source.unbind(destination, routing_key, arguments) {
            self.changed(source.durable && destination_durable(destination));
            self.maybe_auto_delete_exchange(source);
        }
    }

    /// Saves definitions if a durable object changed.
    fn changed(&self, durable: bool) {
        if durable && let Some(d) = &self.durability {
            d.save();
        }
    }

    /// Recreates a durable queue from saved definitions, with its logged messages.
    pub fn restore_queue(
        &self,
        name: &str,
        auto_delete: bool,
        arguments: FieldTable,
    ) -> Result<Arc<Queue>, ChannelException> {
        let q = self.new_queue(
            QueueDeclare {
                name: name.to_owned(),
                durable: true,
                exclusive: false,
                auto_delete,
                arguments,
            },
            0,
        )?;
        self.queues.write().insert(q.name.clone(), Arc::clone(&q));
        Ok(q)
    }

    /// 405 unless `connection` may use `queue` (exclusive queues belong to one connection).
    pub fn check_exclusive_access(
        &self,
        queue: &Queue,
        connection: ConnectionId,
    ) -> Result<(), ChannelException> {
        match queue.settings.exclusive_owner {
            Some(owner) if owner != connection => Err(self.locked(&queue.name)),
            _ => Ok(()),
        }
    }

    fn locked(&self, name: &str) -> ChannelException {
        ChannelException::resource_locked(format!(
            "cannot obtain exclusive access to locked queue '{name}' in vhost '{}'. It could be \
             originally declared on another connection or the exclusive property value does not \
             match that of the original declaration.",
            self.name
        ))
    }

    /// Deletes a queue: unbinds it, tells its consumers' connections, returns the ready count.
    pub fn delete_queue(&self, queue: &Arc<Queue>) -> u32 {
        {
            let mut map = self.queues.write();
            match map.get(&queue.name) {
                Some(q) if Arc::ptr_eq(q, queue) => {
                    map.remove(&queue.name);
                }
                _ => return 0,
            }
        }
        let (consumers, count) = queue.mark_deleted();
        for c in consumers {
            let _ = c.sender.send(ConnMsg::ConsumerCancelled {
                channel: c.channel,
                consumer_tag: c.tag,
            });
        }
        self.unbind_everywhere(&Destination::Queue(Arc::clone(queue)));
        self.changed(is_persisted(queue));
        count
    }

    /// Deletes the exclusive queues owned by a closing connection.
    pub fn delete_exclusive_queues(&self, owner: ConnectionId) {
        let owned: Vec<Arc<Queue>> = self
            .queues
            .read()
            .values()
            .filter(|q| q.settings.exclusive_owner == Some(owner))
            .cloned()
            .collect();
        for q in owned {
            self.delete_queue(&q);
        }
    }
}

/// Whether a queue's definition and messages are kept on disk.
fn is_persisted(q: &Queue) -> bool {
    q.settings.durable && q.settings.exclusive_owner.is_none()
}

fn destination_durable(d: &Destination) -> bool {
    match d {
        Destination::Queue(q) => is_persisted(q),
        Destination::Exchange(e) => e.durable,
    }
}

fn check_equivalent(
    what: &str,
    arg: &str,
    received: &str,
    current: &str,
) -> Result<(), ChannelException> {
    if received == current {
        return Ok(());
    }
    Err(ChannelException::precondition_failed(format!(
        "inequivalent arg '{arg}' for {what}: received '{received}' but current is '{current}'"
    )))
}

fn check_equivalent_bool(
    what: &str,
    arg: &str,
    received: bool,
    current: bool,
) -> Result<(), ChannelException> {
    check_equivalent(
        what,
        arg,
        if received { "true" } else { "false" },
        if current { "true" } else { "false" },
    )
}

/// Arguments that take part in equivalence (RabbitMQ ignores unknown ones).
const EQUIVALENCE_ARGS: &[&str] = &[
    "alternate-exchange",
    "x-dead-letter-exchange",
    "x-dead-letter-routing-key",
    "x-expires",
    "x-max-length",
    "x-max-length-bytes",
    "x-max-priority",
    "x-message-ttl",
    "x-overflow",
    "x-queue-mode",
    "x-queue-type",
    "x-single-active-consumer",
    "x-delivery-limit",
    "x-queue-master-locator",
    "x-queue-version",
];

fn check_arguments(
    what: &str,
    received: &FieldTable,
    current: &FieldTable,
) -> Result<(), ChannelException> {
    for &key in EQUIVALENCE_ARGS {
        let r = received.inner().get(key);
        let c = current.inner().get(key);
        // An absent x-queue-type is equivalent to "classic".
        if key == "x-queue-type" && is_classic_or_absent(r) && is_classic_or_absent(c) {
            continue;
        }
        // Integers compare by value whatever their wire width, as in RabbitMQ.
        let same_number =
            matches!((r.and_then(number), c.and_then(number)), (Some(x), Some(y)) if x == y);
        if r == c || same_number {
            continue;
        }
        return Err(ChannelException::precondition_failed(format!(
            "inequivalent arg '{key}' for {what}: received {} but current is {}",
            describe(r, c.is_none()),
            describe(c, r.is_none())
        )));
    }
    Ok(())
}

fn is_classic_or_absent(v: Option<&AMQPValue>) -> bool {
    match v {
        None => true,
        Some(AMQPValue::LongString(s)) => s.as_bytes() == b"classic",
        Some(AMQPValue::ShortString(s)) => s.as_str() == "classic",
        _ => false,
    }
}

/// Integer value of a numeric argument, whatever its wire type.
pub fn number(v: &AMQPValue) -> Option<i128> {
    Some(match v {
        AMQPValue::ShortShortInt(n) => i128::from(*n),
        AMQPValue::ShortShortUInt(n) => i128::from(*n),
        AMQPValue::ShortInt(n) => i128::from(*n),
        AMQPValue::ShortUInt(n) => i128::from(*n),
        AMQPValue::LongInt(n) => i128::from(*n),
        AMQPValue::LongUInt(n) => i128::from(*n),
        AMQPValue::LongLongInt(n) => i128::from(*n),
        AMQPValue::Timestamp(n) => i128::from(*n),
        _ => return None,
    })
}

/// RabbitMQ 3.10's rendering of an argument value in equivalence errors: plain when both
/// sides have a value, with its type when the other side has none.
fn describe(v: Option<&AMQPValue>, typed: bool) -> String {
    let (value, kind) = match v {
        None => return "none".into(),
        Some(AMQPValue::LongString(s)) => (
            String::from_utf8_lossy(s.as_bytes()).into_owned(),
            "longstr",
        ),
        Some(AMQPValue::ShortString(s)) => (s.as_str().to_owned(), "shortstr"),
        Some(AMQPValue::Boolean(b)) => (b.to_string(), "bool"),
        Some(AMQPValue::ShortShortInt(n)) => (n.to_string(), "byte"),
        Some(AMQPValue::ShortShortUInt(n)) => (n.to_string(), "unsignedbyte"),
        Some(AMQPValue::ShortInt(n)) => (n.to_string(), "short"),
        Some(AMQPValue::ShortUInt(n)) => (n.to_string(), "unsignedshort"),
        Some(AMQPValue::LongInt(n)) => (n.to_string(), "signedint"),
        Some(AMQPValue::LongUInt(n)) => (n.to_string(), "unsignedint"),
        Some(AMQPValue::LongLongInt(n)) => (n.to_string(), "long"),
        Some(AMQPValue::Timestamp(n)) => (n.to_string(), "timestamp"),
        Some(other) => (format!("{other:?}"), "table"),
    };
    if typed {
        format!("the value '{value}' of type '{kind}'")
    } else {
        format!("'{value}'")
    }
}
