//! Exchanges and their bindings. Routing is a pure function of the bindings, the routing key
//! and the message headers; exchange-to-exchange bindings are followed with an explicit
//! worklist (no recursion) and each queue receives a message at most once.

pub mod headers;
pub mod topic;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::RwLock;

use crate::protocol::FieldTable;
use crate::queue::Queue;
pub use topic::TopicPattern;

/// The exchange types.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExchangeKind {
    Direct,
    Fanout,
    Topic,
    Headers,
}

impl ExchangeKind {
    /// Parses a type name as clients send it.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "direct" => Some(Self::Direct),
            "fanout" => Some(Self::Fanout),
            "topic" => Some(Self::Topic),
            "headers" => Some(Self::Headers),
            _ => None,
        }
    }

    /// The type name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Direct => "direct",
            Self::Fanout => "fanout",
            Self::Topic => "topic",
            Self::Headers => "headers",
        }
    }
}

/// Where a binding leads.
#[derive(Clone, Debug)]
pub enum Destination {
    Queue(Arc<Queue>),
    Exchange(Arc<Exchange>),
}

impl Destination {
    fn same(&self, other: &Destination) -> bool {
        match (self, other) {
            (Self::Queue(a), Self::Queue(b)) => Arc::ptr_eq(a, b),
            (Self::Exchange(a), Self::Exchange(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

/// One binding of an exchange.
#[derive(Clone, Debug)]
pub struct Binding {
    /// Where matching messages go.
    pub destination: Destination,
    /// The binding key.
    pub routing_key: String,
    /// Binding arguments (headers exchanges match on them).
    pub arguments: FieldTable,
    /// The key pre-split for topic exchanges.
    topic: Option<TopicPattern>,
}

/// An exchange. Its bindings sit behind a read-write lock: routing reads, binding writes.
#[derive(Debug)]
pub struct Exchange {
    pub name: String,
    pub kind: ExchangeKind,
    pub durable: bool,
    pub auto_delete: bool,
    pub internal: bool,
    pub arguments: FieldTable,
    bindings: RwLock<Bindings>,
    /// Set when the exchange is deleted, so cached handles stop routing through it.
    deleted: AtomicBool,
    /// Messages published to this exchange (`publish_in`) and those it routed to at least
    /// one queue (`publish_out`), for the management API.
    pub publish_in: crate::stats::Counter,
    pub publish_out: crate::stats::Counter,
}

#[derive(Debug, Default)]
struct Bindings {
    all: Vec<Binding>,
    /// Direct exchanges: binding key → indexes into `all`, so routing is one hash lookup.
    by_key: HashMap<String, Vec<usize>>,
}

/// Scratch space reused across publishes by one channel, so routing allocates nothing.
#[derive(Debug, Default)]
pub struct RouteScratch {
    pending: Vec<Arc<Exchange>>,
    /// Addresses of exchanges already visited (identities only, never dereferenced).
    seen_exchanges: Vec<usize>,
    /// Buffers for topic matching.
    topic: topic::TopicScratch,
}

impl Exchange {
    /// A new exchange with no bindings.
    pub fn new(
        name: String,
        kind: ExchangeKind,
        durable: bool,
        auto_delete: bool,
        internal: bool,
        arguments: FieldTable,
    ) -> Self {
        Self {
            name,
            kind,
            durable,
            auto_delete,
            internal,
            arguments,
            bindings: RwLock::new(Bindings::default()),
            deleted: AtomicBool::new(false),
            publish_in: crate::stats::Counter::default(),
            publish_out: crate::stats::Counter::default(),
        }
    }

    /// Adds a binding; returns false if an identical one exists.
    pub fn bind(&self, destination: Destination, routing_key: &str, arguments: FieldTable) -> bool {
        let mut b = self.bindings.write();
        if b.all.iter().any(|x| {
            x.destination.same(&destination)
                && x.routing_key == routing_key
                && x.arguments == arguments
        }) {
            return false;
        }
        let topic = (self.kind == ExchangeKind::Topic).then(|| TopicPattern::new(routing_key));
        b.all.push(Binding {
            destination,
            routing_key: routing_key.to_owned(),
            arguments,
            topic,
        });
        b.reindex();
        true
    }

    /// Removes a binding; returns false if there was none.
    pub fn unbind(
        &self,
        destination: &Destination,
        routing_key: &str,
        arguments: &FieldTable,
    ) -> bool {
        let mut b = self.bindings.write();
        let before = b.all.len();
        b.all.retain(|x| {
            !(x.destination.same(destination)
                && x.routing_key == routing_key
                && &x.arguments == arguments)
        });
        let removed = b.all.len() != before;
        if removed {
            b.reindex();
        }
        removed
    }

    /// Removes every binding to `destination`; returns how many went.
    pub fn unbind_all_to(&self, destination: &Destination) -> usize {
        let mut b = self.bindings.write();
        let before = b.all.len();
        b.all.retain(|x| !x.destination.same(destination));
        let removed = before - b.all.len();
        if removed > 0 {
            b.reindex();
        }
        removed
    }

    /// Whether a binding to `destination` with this key and arguments exists.
    pub fn has_binding(
        &self,
        destination: &Destination,
        routing_key: &str,
        arguments: &FieldTable,
    ) -> bool {
        self.bindings.read().all.iter().any(|x| {
            x.destination.same(destination)
                && x.routing_key == routing_key
                && &x.arguments == arguments
        })
    }

    /// Number of bindings with this exchange as source.
    pub fn binding_count(&self) -> usize {
        self.bindings.read().all.len()
    }

    /// A copy of the bindings (management, definitions).
    pub fn bindings(&self) -> Vec<Binding> {
        self.bindings.read().all.clone()
    }

    /// Marks the exchange deleted and drops its bindings.
    pub fn mark_deleted(&self) {
        self.deleted.store(true, Ordering::Release);
        let mut b = self.bindings.write();
        b.all.clear();
        b.by_key.clear();
    }

    /// The `alternate-exchange` argument, if any.
    pub fn alternate_exchange(&self) -> Option<&str> {
        match self.arguments.inner().get("alternate-exchange")? {
            crate::protocol::AMQPValue::LongString(s) => std::str::from_utf8(s.as_bytes()).ok(),
            crate::protocol::AMQPValue::ShortString(s) => Some(s.as_str()),
            _ => None,
        }
    }

    /// Whether the exchange was deleted.
    pub fn is_deleted(&self) -> bool {
        self.deleted.load(Ordering::Acquire)
    }

    /// Appends to `out` every queue a message reaches from this exchange, following
    /// exchange-to-exchange bindings; each queue appears once.
    pub fn route(
        self: &Arc<Self>,
        routing_key: &str,
        headers: Option<&FieldTable>,
        scratch: &mut RouteScratch,
        out: &mut Vec<Arc<Queue>>,
    ) {
        scratch.pending.clear();
        scratch.seen_exchanges.clear();
        scratch.pending.push(Arc::clone(self));
        scratch.seen_exchanges.push(Arc::as_ptr(self) as usize);
        while let Some(ex) = scratch.pending.pop() {
            let b = ex.bindings.read();
            let mut visit = |binding: &Binding| match &binding.destination {
                Destination::Queue(q) => {
                    if !out.iter().any(|o| Arc::ptr_eq(o, q)) {
                        out.push(Arc::clone(q));
                    }
                }
                Destination::Exchange(e) => {
                    let p = Arc::as_ptr(e) as usize;
                    if !scratch.seen_exchanges.contains(&p) {
                        scratch.seen_exchanges.push(p);
                        scratch.pending.push(Arc::clone(e));
                    }
                }
            };
            match ex.kind {
                ExchangeKind::Direct => {
                    if let Some(idx) = b.by_key.get(routing_key) {
                        for &i in idx {
                            if let Some(binding) = b.all.get(i) {
                                visit(binding);
                            }
                        }
                    }
                }
                ExchangeKind::Fanout => b.all.iter().for_each(&mut visit),
                ExchangeKind::Topic => {
                    let key = topic::TopicKey::new(routing_key);
                    b.all
                        .iter()
                        .filter(|x| {
                            x.topic
                                .as_ref()
                                .is_some_and(|t| t.matches_key(&key, &mut scratch.topic))
                        })
                        .for_each(&mut visit);
                }
                ExchangeKind::Headers => b
                    .all
                    .iter()
                    .filter(|x| headers::matches(&x.arguments, headers))
                    .for_each(&mut visit),
            }
        }
    }
}

impl Bindings {
    fn reindex(&mut self) {
        self.by_key.clear();
        for (i, b) in self.all.iter().enumerate() {
            self.by_key
                .entry(b.routing_key.clone())
                .or_default()
                .push(i);
        }
    }
}
