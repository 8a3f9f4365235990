//! Who the operator runs as, asked of the API server (a SelfSubjectReview, which every
//! authenticated user may make): the ServiceAccount it binds in each namespace it manages to
//! read its credentials Secrets there, so that no configuration can name the wrong one.

use k8s_openapi::api::authentication::v1::SelfSubjectReview;
use kube::Client;
use kube::api::{Api, PostParams};
use tracing::{info, warn};

use crate::config::OperatorAccount;

/// The ServiceAccount the operator's client authenticates as; `None` for another user (run
/// locally with an administrator's credentials, which read Secrets anyway) or when the API
/// server cannot say.
pub async fn operator_account(client: &Client) -> Option<OperatorAccount> {
    let review = Api::<SelfSubjectReview>::all(client.clone())
        .create(&PostParams::default(), &SelfSubjectReview::default())
        .await;
    let username = match review {
        Ok(review) => review
            .status
            .and_then(|s| s.user_info)
            .and_then(|u| u.username)
            .unwrap_or_default(),
        Err(e) => {
            warn!(error = %e, "cannot ask the API server who the operator is: no credentials binding is made");
            return None;
        }
    };
    let account = OperatorAccount::from_username(&username);
    match &account {
        Some(account) => info!(
            namespace = account.namespace,
            name = account.name,
            "running as a ServiceAccount: bound to read its credentials Secrets in each namespace it manages"
        ),
        None => info!(
            username,
            "not running as a ServiceAccount: no credentials binding is made"
        ),
    }
    account
}
