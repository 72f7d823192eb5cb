//! One integration binary: behaviour scenarios run against our broker and RabbitMQ.
//! Each module covers one area; each scenario is declared with `tests::parity!`.

mod basic;
mod channel;
mod confirm_tx;
mod connection;
mod dead_letter;
mod delivery_limit;
mod exchange;
mod hostile;
mod limits;
mod management;
mod management_admin;
mod management_bindings;
mod management_connections;
mod management_exchanges;
mod management_queues;
mod management_stats;
mod metrics;
mod priority;
mod queue;
mod queue_type;
mod rabbitmqadmin;
mod reply_to;
mod routing_ext;
mod smoke;
mod store_faults;
mod support;
mod timeouts;
mod ttl;
