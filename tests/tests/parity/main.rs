//! One integration binary: behaviour scenarios run against our broker and RabbitMQ.
//! Each module covers one area; each scenario is declared with `tests::parity!`.

mod smoke;
