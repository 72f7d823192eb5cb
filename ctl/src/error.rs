//! The CLI's one error type. Each variant is a failure class of RabbitMQ's CLI tools and exits
//! with the sysexits code they use for it (`rabbitmq_cli`'s `ExitCodes`), so scripts that check
//! `rabbitmqctl`'s exit status behave the same with `brokerctl`. Which class a given failure
//! belongs to is decided by the command (the same HTTP 404 is 64, 65, 67 or 69 depending on the
//! rabbitmqctl command it mirrors); this module only owns the codes and the wording rules:
//! lowercase, no final period, and say what to do when the user can act.

use std::fmt;
use std::io;

/// Why a command failed, and so which exit code it ends with.
#[derive(Debug)]
pub enum CtlError {
    /// 64 (EX_USAGE): a bad command line (unknown column, missing argument) and, as in
    /// rabbitmqctl 3.10, a `delete_queue` of a queue that is missing, not empty or in use.
    Usage(String),
    /// 65 (EX_DATAERR): unusable input: a file that does not exist or is not JSON, a
    /// definitions document the node rejects, a virtual host that does not exist
    /// (`delete_vhost`, `list_permissions`).
    DataErr(String),
    /// 67 (EX_NOUSER): the named user does not exist.
    NoUser(String),
    /// 69 (EX_UNAVAILABLE): the node cannot be reached or refuses our credentials, a health
    /// check failed, and the errors rabbitmqctl reports this way (`purge_queue` of a missing
    /// queue, `set_permissions` in a missing virtual host).
    Unavailable(String),
    /// 70 (EX_SOFTWARE): an answer we did not expect (`add_user` of an existing user, an
    /// HTTP status no rabbitmqctl command produces).
    Software(String),
    /// 75 (EX_TEMPFAIL): no answer within `--timeout`.
    Timeout(String),
    /// 70 (EX_SOFTWARE): writing our own output failed, e.g. the reader of a pipe went away.
    Output(io::Error),
}

impl CtlError {
    /// The process exit code for this error, as RabbitMQ's CLI tools use them.
    pub fn exit_code(&self) -> u8 {
        match self {
            CtlError::Usage(_) => 64,
            CtlError::DataErr(_) => 65,
            CtlError::NoUser(_) => 67,
            CtlError::Unavailable(_) => 69,
            CtlError::Software(_) | CtlError::Output(_) => 70,
            CtlError::Timeout(_) => 75,
        }
    }

    /// Whether the error is worth a message on stderr: a closed stdout pipe (`| head`) is not.
    pub fn is_reportable(&self) -> bool {
        !matches!(self, CtlError::Output(e) if e.kind() == io::ErrorKind::BrokenPipe)
    }
}

impl fmt::Display for CtlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CtlError::Usage(m)
            | CtlError::DataErr(m)
            | CtlError::NoUser(m)
            | CtlError::Unavailable(m)
            | CtlError::Software(m)
            | CtlError::Timeout(m) => f.write_str(m),
            CtlError::Output(e) => write!(f, "cannot write the output: {e}"),
        }
    }
}

impl std::error::Error for CtlError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_are_rabbitmqs() {
        assert_eq!(CtlError::Usage(String::new()).exit_code(), 64);
        assert_eq!(CtlError::DataErr(String::new()).exit_code(), 65);
        assert_eq!(CtlError::NoUser(String::new()).exit_code(), 67);
        assert_eq!(CtlError::Unavailable(String::new()).exit_code(), 69);
        assert_eq!(CtlError::Software(String::new()).exit_code(), 70);
        assert_eq!(CtlError::Timeout(String::new()).exit_code(), 75);
    }

    #[test]
    fn a_closed_pipe_is_not_reported() {
        let e = CtlError::Output(io::Error::from(io::ErrorKind::BrokenPipe));
        assert!(!e.is_reportable());
        assert_eq!(e.exit_code(), 70);
        assert!(CtlError::Usage("x".into()).is_reportable());
    }
}
