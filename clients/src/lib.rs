//! The sales-event programs (see issue 4).
