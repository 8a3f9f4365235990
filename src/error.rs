//! The controller's errors. Each has a short static category, used as the metric label and
//! the event reason; never its text or an object's name (unbounded values).

/// What can go wrong in a reconcile.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The API server refused or failed a request (transient unless it says otherwise).
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// The finalizer machinery failed.
    #[error("finalizer: {0}")]
    Finalizer(Box<kube::runtime::finalizer::Error<Error>>),
    /// The HealthSystem cannot be reconciled as written; waits for the user to change it.
    #[error("invalid HealthSystem: {0}")]
    InvalidSpec(String),
    /// The system's namespace is being deleted; cleanup waits for it to go.
    #[error("namespace {0} is still terminating")]
    NamespaceTerminating(String),
    /// Deleted with Delete: the final backup runs (or failed); the finalizer stays until it
    /// succeeded.
    #[error("the final backup of namespace {0} has not succeeded yet")]
    FinalBackupPending(String),
    /// The namespace exists and is not this HealthSystem's: nothing is written into it.
    #[error("{0}")]
    NamespaceNotOwned(String),
    /// The operating system could not provide randomness for credentials.
    #[error("cannot generate credentials: {0}")]
    Random(String),
}

impl Error {
    /// A short, bounded category for metrics and event reasons.
    pub fn category(&self) -> &'static str {
        match self {
            Self::Kube(kube::Error::Api(_)) => "api_error",
            Self::Kube(_) => "api_unreachable",
            Self::Finalizer(_) => "finalizer",
            Self::InvalidSpec(_) => "invalid_spec",
            Self::NamespaceTerminating(_) => "namespace_terminating",
            Self::FinalBackupPending(_) => "final_backup_pending",
            Self::NamespaceNotOwned(_) => "namespace_not_owned",
            Self::Random(_) => "random",
        }
    }
}

/// The result of controller steps.
pub type Result<T, E = Error> = std::result::Result<T, E>;
