//! A validating admission webhook served by the test itself: HTTPS on loopback (a
//! self-signed certificate made with openssl, handed to the API server as the caBundle),
//! answering each review as the test decides per namespace: allow, deny with a message, or
//! answer late. It records every review it received, so a test can see how often the API
//! server asked.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::{Value, json};

/// How the webhook answers the reviews of one namespace.
#[derive(Clone, Debug)]
pub enum Answer {
    Allow,
    /// Refused, with this message (HTTP 403 in the API server's answer).
    Deny(String),
    /// Allowed, after this long (longer than the webhook's timeout: the API server gives up).
    Late(Duration),
}

/// One review the webhook received.
#[derive(Clone, Debug)]
pub struct Review {
    pub namespace: String,
    pub kind: String,
    pub name: String,
    pub at: Instant,
}

#[derive(Default)]
struct State {
    answers: BTreeMap<String, Answer>,
    reviews: Vec<Review>,
}

/// The running webhook; it serves until the test's runtime ends.
pub struct Webhook {
    /// Its URL, for the webhook configuration's clientConfig.
    pub url: String,
    /// Its certificate (PEM), for the configuration's caBundle.
    pub ca_bundle: Vec<u8>,
    state: Arc<Mutex<State>>,
}

impl Webhook {
    /// Makes a certificate for 127.0.0.1 and starts serving on a free loopback port.
    pub async fn start() -> Self {
        let (cert, key) =
            crate::certificate::self_signed("127.0.0.1", &["subjectAltName=IP:127.0.0.1"]);
        let ca_bundle = cert.clone().into_bytes();
        let chain = vec![CertificateDer::from_pem_slice(cert.as_bytes()).unwrap()];
        let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap();
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("https://{}/validate", listener.local_addr().unwrap());
        let state = Arc::new(Mutex::new(State::default()));
        let served = state.clone();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (acceptor, state) = (acceptor.clone(), served.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service = service_fn(move |request| review(request, state.clone()));
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        Self {
            url,
            ca_bundle,
            state,
        }
    }

    /// From now on, answers the reviews of `namespace` with `answer`.
    pub fn answer(&self, namespace: &str, answer: Answer) {
        let mut state = self.state.lock().unwrap();
        state.answers.insert(namespace.to_string(), answer);
    }

    /// The reviews received so far for objects in `namespace`.
    pub fn reviews(&self, namespace: &str) -> Vec<Review> {
        let state = self.state.lock().unwrap();
        state
            .reviews
            .iter()
            .filter(|r| r.namespace == namespace)
            .cloned()
            .collect()
    }
}

async fn review(
    request: Request<Incoming>,
    state: Arc<Mutex<State>>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let body = request
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let review: Value = serde_json::from_slice(&body).unwrap_or_default();
    let asked = &review["request"];
    let namespace = asked["namespace"].as_str().unwrap_or_default().to_string();
    let answer = {
        let mut state = state.lock().unwrap();
        state.reviews.push(Review {
            namespace: namespace.clone(),
            kind: asked["kind"]["kind"].as_str().unwrap_or_default().into(),
            name: asked["name"].as_str().unwrap_or_default().into(),
            at: Instant::now(),
        });
        state
            .answers
            .get(&namespace)
            .cloned()
            .unwrap_or(Answer::Allow)
    };
    let response = match answer {
        Answer::Allow => json!({ "uid": asked["uid"], "allowed": true }),
        Answer::Deny(message) => json!({
            "uid": asked["uid"], "allowed": false,
            "status": { "code": 403, "message": message }
        }),
        Answer::Late(delay) => {
            tokio::time::sleep(delay).await;
            json!({ "uid": asked["uid"], "allowed": true })
        }
    };
    let body = json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "response": response,
    });
    let mut reply = Response::new(Full::new(Bytes::from(body.to_string())));
    reply.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    Ok(reply)
}
