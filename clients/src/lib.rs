//! The sales-event programs of the course document (`semana-3-mensajeria`), as a library shared
//! by four binaries: `producer`, `email_consumer`, `loyalty_consumer` and `consumer`.
//!
//! Code map:
//! * [`event`]: the `sale_completed` JSON event and its validation.
//! * [`settings`]: flags and environment variables common to all programs.
//! * [`topology`]: exchange, work/retry/dead queues and bindings, declared idempotently.
//! * [`connection`]: connect with retry and backoff.
//! * [`retry`]: the portable retry pattern (reject → `.retry` TTL → back; park in `.dead`).
//! * [`worker`]: the consume loop of the two work-queue consumers.
//! * [`publish`]: publishing with publisher confirms.
//! * [`email`], [`loyalty`]: what the two consumers do with a sale.
//! * [`catalog`]: generated sales for demos and load.
//! * [`exit`], [`runtime`]: exit codes, logging and signal handling for the binaries.
//!
//! The programs run unchanged against RabbitMQ 3.x/4.x and against our broker.

pub mod catalog;
pub mod connection;
pub mod email;
pub mod event;
pub mod exit;
pub mod loyalty;
pub mod publish;
pub mod retry;
pub mod runtime;
pub mod settings;
pub mod topology;
pub mod worker;

pub use event::SaleCompleted;
