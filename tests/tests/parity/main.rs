//! One integration binary: behaviour scenarios run against our broker and RabbitMQ.
//! Each module covers one area; each scenario is declared with `tests::parity!`.

mod basic;
mod channel;
mod confirm_tx;
mod connection;
mod exchange;
mod hostile;
mod queue;
mod smoke;
mod support;
mod timeouts;
