//! Why the daemon could not start, or stopped.

use crate::kernel::KernelError;

/// Why the daemon could not start, or stopped: one line for the operator,
/// with the error under it kept as the source.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// A step of the start failed: what the daemon was doing.
    #[error("{doing}")]
    Step {
        doing: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
    #[error(transparent)]
    Kernel(#[from] KernelError),
    /// The event reader stopped: why.
    #[error("{0}")]
    Events(String),
    /// A setting that cannot work, said with what to do.
    #[error("{0}")]
    Config(String),
    /// A socket's accept loop ended.
    #[error("stopped accepting")]
    StoppedAccepting,
    /// The state's owner did not answer the housekeeping tick.
    #[error("the tick gave no answer (see the log above)")]
    Unanswered,
    #[error("the daemon's {task} task stopped ({why}); restart the daemon")]
    TaskStopped { task: String, why: String },
}

/// What the daemon was doing when a step failed (`anyhow`'s context, typed).
pub(super) trait Doing<T> {
    fn doing(self, what: impl FnOnce() -> String) -> Result<T, DaemonError>;
}

impl<T, E: std::error::Error + Send + Sync + 'static> Doing<T> for Result<T, E> {
    fn doing(self, what: impl FnOnce() -> String) -> Result<T, DaemonError> {
        self.map_err(|source| DaemonError::Step { doing: what(), source: Box::new(source) })
    }
}
