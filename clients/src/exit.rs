//! Exit codes of the programs, so scripts and supervisors can tell failures apart.
//!
//! | code | meaning |
//! |---|---|
//! | 0 | success; for consumers, a graceful shutdown on SIGINT/SIGTERM |
//! | 1 | unexpected error (see the log) |
//! | 2 | bad command line (clap's code), including an invalid sale given as flags |
//! | 3 | producer: at least one sale was not confirmed by the broker (they are listed) |
//! | 69 | the broker could not be reached within `--connect-timeout` (`EX_UNAVAILABLE`) |
//! | 78 | configuration problem: a queue exists with other arguments, access refused, bad `SMTP_URL`, unusable outbox or ledger (`EX_CONFIG`) |

use std::error::Error;
use std::process::ExitCode;

use crate::connection::ConnectError;
use crate::email::MailerError;
use crate::event::EventError;
use crate::loyalty::LedgerError;
use crate::publish::PublishError;
use crate::settings::SettingsError;
use crate::topology::TopologyError;
use crate::worker::WorkerError;

/// Success, or a consumer stopped by a signal.
pub const OK: u8 = 0;
/// Unexpected error.
pub const FAILURE: u8 = 1;
/// Bad command line.
pub const USAGE: u8 = 2;
/// Some sales were not confirmed.
pub const UNCONFIRMED: u8 = 3;
/// Broker unreachable.
pub const UNAVAILABLE: u8 = 69;
/// Configuration problem.
pub const CONFIG: u8 = 78;

/// The exit code for `error`, found by walking its source chain for a known library error.
pub fn code_for(error: &(dyn Error + 'static)) -> ExitCode {
    ExitCode::from(classify(error))
}

fn classify(error: &(dyn Error + 'static)) -> u8 {
    let mut current: Option<&(dyn Error + 'static)> = Some(error);
    while let Some(e) = current {
        if let Some(c) = e.downcast_ref::<ConnectError>() {
            return match c {
                ConnectError::Unreachable { .. } => UNAVAILABLE,
                ConnectError::Refused { .. } => CONFIG,
                ConnectError::Cancelled => OK,
            };
        }
        if let Some(t) = e.downcast_ref::<TopologyError>() {
            return if t.is_fatal() { CONFIG } else { FAILURE };
        }
        if e.downcast_ref::<EventError>().is_some() {
            return USAGE;
        }
        if e.is::<SettingsError>() || e.is::<MailerError>() {
            return CONFIG;
        }
        if let Some(LedgerError::Open { .. }) = e.downcast_ref::<LedgerError>() {
            return CONFIG;
        }
        if let Some(w) = e.downcast_ref::<WorkerError>() {
            match w {
                WorkerError::Connect(inner) => return classify(inner),
                WorkerError::Topology(inner) => return classify(inner),
            }
        }
        if let Some(p) = e.downcast_ref::<PublishError>() {
            match p {
                PublishError::Connect(inner) => return classify(inner),
                PublishError::Topology(inner) => return classify(inner),
                PublishError::Channel(_) => return FAILURE,
            }
        }
        current = e.source();
    }
    FAILURE
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn codes() {
        let unreachable = ConnectError::Unreachable {
            url: "amqp://x".into(),
            attempts: 3,
            waited: Duration::from_secs(1),
            last: "refused".into(),
        };
        assert_eq!(classify(&unreachable), UNAVAILABLE);
        assert_eq!(classify(&WorkerError::Connect(unreachable)), UNAVAILABLE);
        let conflict = TopologyError::Conflict {
            what: "queue",
            kind: "queue",
            name: "q".into(),
            detail: "inequivalent arg".into(),
        };
        assert_eq!(classify(&PublishError::Topology(conflict)), CONFIG);
        assert_eq!(classify(&std::io::Error::other("boom")), FAILURE);
    }
}
