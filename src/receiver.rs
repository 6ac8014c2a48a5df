//! `demo-service receiver`: a receiver for Alertmanager's webhook notifications that needs no
//! account anywhere, so that alerts arrive somewhere out of the box. It logs each alert of each
//! notification, keeps the latest notifications, and shows them: `GET /` as text, newest
//! first; `GET /alerts` as JSON, oldest first.

use std::collections::VecDeque;
use std::fmt::Write;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::{Deserialize, Serialize};
use tracing::info;

/// The largest notification read (Alertmanager's are a few kilobytes per alert).
const BODY_LIMIT: usize = 1024 * 1024;

/// What Alertmanager posts (webhook version 4); fields not read here are ignored.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Payload {
    receiver: String,
    status: String,
    #[serde(default)]
    alerts: Vec<PayloadAlert>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PayloadAlert {
    status: String,
    #[serde(default)]
    labels: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    annotations: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    starts_at: String,
    #[serde(default)]
    ends_at: String,
}

/// One notification as received.
#[derive(Clone, Debug, Serialize)]
pub struct Notification {
    /// When it arrived, RFC 3339.
    pub received_at: String,
    /// The Alertmanager receiver it was sent for (`oncall`, `team`).
    pub receiver: String,
    /// `firing` or `resolved`.
    pub status: String,
    pub alerts: Vec<Alert>,
}

/// One alert of a notification.
#[derive(Clone, Debug, Serialize)]
pub struct Alert {
    pub status: String,
    pub alertname: String,
    pub severity: String,
    pub instance: String,
    pub summary: String,
    pub starts_at: String,
    pub ends_at: String,
    /// All its labels.
    pub labels: std::collections::BTreeMap<String, String>,
}

/// The latest notifications, up to a number.
#[derive(Debug)]
pub struct Inbox {
    kept: Mutex<VecDeque<Notification>>,
    keep: usize,
}

impl Inbox {
    pub fn new(keep: usize) -> Self {
        Self {
            kept: Mutex::new(VecDeque::with_capacity(keep)),
            keep,
        }
    }

    fn kept(&self) -> std::sync::MutexGuard<'_, VecDeque<Notification>> {
        self.kept.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn push(&self, notification: Notification) {
        let mut kept = self.kept();
        if kept.len() == self.keep {
            kept.pop_front();
        }
        kept.push_back(notification);
    }
}

/// The receiver's routes.
pub fn router(inbox: Arc<Inbox>) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/alerts", get(list).post(receive))
        .route("/healthz", get(|| async { "ok" }))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(inbox)
}

/// `POST /alerts`: a notification from Alertmanager.
async fn receive(State(inbox): State<Arc<Inbox>>, body: Bytes) -> Response {
    let payload: Payload = match serde_json::from_slice(&body) {
        Ok(payload) => payload,
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                format!("not an Alertmanager notification: {e}\n"),
            )
                .into_response();
        }
    };
    let label = |labels: &std::collections::BTreeMap<String, String>, name: &str| {
        labels.get(name).cloned().unwrap_or_default()
    };
    let alerts: Vec<Alert> = payload
        .alerts
        .into_iter()
        .map(|a| Alert {
            status: a.status,
            alertname: label(&a.labels, "alertname"),
            severity: label(&a.labels, "severity"),
            instance: label(&a.labels, "instance"),
            summary: a.annotations.get("summary").cloned().unwrap_or_default(),
            starts_at: a.starts_at,
            ends_at: a.ends_at,
            labels: a.labels,
        })
        .collect();
    for alert in &alerts {
        info!(
            receiver = payload.receiver,
            status = alert.status,
            alertname = alert.alertname,
            severity = alert.severity,
            instance = alert.instance,
            summary = alert.summary,
            "alert notification"
        );
    }
    inbox.push(Notification {
        received_at: humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
        receiver: payload.receiver,
        status: payload.status,
        alerts,
    });
    StatusCode::OK.into_response()
}

/// Listens on `args.addr` until a signal.
pub async fn serve(
    args: &crate::config::ReceiverArgs,
    mut signals: crate::signals::Signals,
) -> anyhow::Result<()> {
    use anyhow::Context;
    let listener = tokio::net::TcpListener::bind(args.addr)
        .await
        .with_context(|| format!("cannot listen on {} (--addr)", args.addr))?;
    info!(addr = %listener.local_addr()?, "listening");
    let inbox = Arc::new(Inbox::new(args.keep as usize));
    axum::serve(listener, router(inbox))
        .with_graceful_shutdown(async move {
            signals.next().await;
        })
        .await?;
    Ok(())
}

/// `GET /alerts`: the kept notifications, oldest first.
async fn list(State(inbox): State<Arc<Inbox>>) -> axum::Json<Vec<Notification>> {
    axum::Json(inbox.kept().iter().cloned().collect())
}

/// `GET /`: the kept notifications as text, newest first.
async fn page(State(inbox): State<Arc<Inbox>>) -> String {
    let kept = inbox.kept();
    let mut out = format!("{} notifications (newest first)\n\n", kept.len());
    for n in kept.iter().rev() {
        for a in &n.alerts {
            let _ = writeln!(
                out,
                "{}  {:<8} {:<8} {:<20} {:<22} {}",
                n.received_at,
                a.status.to_uppercase(),
                a.severity,
                a.alertname,
                a.instance,
                a.summary
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    const NOTIFICATION: &str = r#"{
      "version": "4", "receiver": "oncall", "status": "firing", "groupKey": "{}:{}",
      "alerts": [{
        "status": "firing",
        "labels": {"alertname": "DemoServiceTargetDown", "severity": "critical", "instance": "app:8000", "job": "flask_app"},
        "annotations": {"summary": "app:8000 (flask_app) is down"},
        "startsAt": "2026-11-25T12:00:00Z", "endsAt": "0001-01-01T00:00:00Z"
      }]
    }"#;

    async fn call(router: &Router, method: &str, uri: &str, body: &str) -> (StatusCode, String) {
        let request = Request::builder()
            .method(method)
            .uri(uri)
            .body(Body::from(body.to_owned()))
            .unwrap();
        let response = router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn notifications_are_kept_and_shown() {
        let router = router(Arc::new(Inbox::new(2)));
        assert_eq!(
            call(&router, "POST", "/alerts", NOTIFICATION).await.0,
            StatusCode::OK
        );

        let (_, json) = call(&router, "GET", "/alerts", "").await;
        let kept: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(kept[0]["receiver"], "oncall");
        assert_eq!(kept[0]["alerts"][0]["alertname"], "DemoServiceTargetDown");
        assert_eq!(kept[0]["alerts"][0]["labels"]["job"], "flask_app");
        let (_, page) = call(&router, "GET", "/", "").await;
        assert!(
            page.contains("FIRING   critical DemoServiceTargetDown"),
            "{page}"
        );
        assert!(page.contains("app:8000 (flask_app) is down"), "{page}");
    }

    #[tokio::test]
    async fn only_the_latest_are_kept_and_garbage_is_refused() {
        let router = router(Arc::new(Inbox::new(2)));
        for _ in 0..3 {
            call(&router, "POST", "/alerts", NOTIFICATION).await;
        }
        let (_, json) = call(&router, "GET", "/alerts", "").await;
        assert_eq!(
            serde_json::from_str::<Vec<serde_json::Value>>(&json)
                .unwrap()
                .len(),
            2
        );
        let (status, body) = call(&router, "POST", "/alerts", "{\"not\": 1}").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(
            body.starts_with("not an Alertmanager notification"),
            "{body}"
        );
    }
}
