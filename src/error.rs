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
    /// A request of one step of the reconcile failed: which step, on which object.
    #[error("{step} {object}: {source}")]
    Step {
        /// The step that sent the request.
        step: Step,
        /// The object it was about (kind and name).
        object: String,
        /// What the API server or the connection said.
        #[source]
        source: kube::Error,
    },
    /// A desired object of a kind the registry of child kinds does not declare: a defect of
    /// this operator, refused rather than skipped.
    #[error("{0} is not a declared child kind: nothing of this system is applied")]
    UndeclaredKind(String),
}

/// The steps of a reconcile that talk to the API server, named in their errors (a bounded
/// set, like the categories).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Creating or adopting the system's namespace.
    Namespace,
    /// Server-side applying a child.
    Apply,
    /// Taking back spec fields others added to a child.
    TakeBack,
    /// Creating a credentials Secret.
    Credentials,
    /// Growing the data claim.
    ClaimGrowth,
    /// Deleting a child no longer wanted.
    Prune,
    /// Writing the HealthSystem's status.
    Status,
    /// Evicting the database pod onto its new template.
    Restart,
    /// Starting or reading a restore drill.
    Drill,
    /// Restoring a new system from another's backup.
    Bootstrap,
    /// The final backup of a system deleted with `Delete`.
    FinalBackup,
    /// Reading the migration's Jobs.
    Migration,
    /// The finalizer's work when a system is deleted.
    Cleanup,
}

impl Step {
    /// The step's name, as errors and logs show it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Namespace => "namespace",
            Self::Apply => "apply",
            Self::TakeBack => "takeback",
            Self::Credentials => "credentials",
            Self::ClaimGrowth => "claim growth",
            Self::Prune => "prune",
            Self::Status => "status",
            Self::Restart => "database restart",
            Self::Drill => "restore drill",
            Self::Bootstrap => "bootstrap",
            Self::FinalBackup => "final backup",
            Self::Migration => "migration",
            Self::Cleanup => "cleanup",
        }
    }
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Names the step and object of a failed request: `api.patch(..).await.at(Step::Apply, ..)?`.
pub trait AtStep<T> {
    /// The error, if any, as [`Error::Step`].
    fn at(self, step: Step, object: impl std::fmt::Display) -> Result<T>;
}

impl<T> AtStep<T> for std::result::Result<T, kube::Error> {
    fn at(self, step: Step, object: impl std::fmt::Display) -> Result<T> {
        self.map_err(|source| Error::Step {
            step,
            object: object.to_string(),
            source,
        })
    }
}

impl Error {
    /// The API server's or the connection's error inside, if this is one.
    pub fn kube(&self) -> Option<&kube::Error> {
        match self {
            Self::Kube(e) | Self::Step { source: e, .. } => Some(e),
            _ => None,
        }
    }

    /// A short, bounded category for metrics and event reasons.
    pub fn category(&self) -> &'static str {
        match self {
            Self::Kube(kube::Error::Api(_))
            | Self::Step {
                source: kube::Error::Api(_),
                ..
            } => "api_error",
            Self::Kube(_) | Self::Step { .. } => "api_unreachable",
            Self::Finalizer(_) => "finalizer",
            Self::InvalidSpec(_) => "invalid_spec",
            Self::NamespaceTerminating(_) => "namespace_terminating",
            Self::FinalBackupPending(_) => "final_backup_pending",
            Self::NamespaceNotOwned(_) => "namespace_not_owned",
            Self::Random(_) => "random",
            Self::UndeclaredKind(_) => "undeclared_kind",
        }
    }
}

/// The result of controller steps.
pub type Result<T, E = Error> = std::result::Result<T, E>;
