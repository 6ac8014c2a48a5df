//! `demo-service receiver`: a receiver for Alertmanager's webhook notifications that needs no
//! account anywhere, so that alerts arrive somewhere out of the box. It logs each alert of each
//! notification, keeps the latest notifications, and shows them: `GET /` newest first, as a
//! page that reloads itself for a browser (which asks for text/html), as JSON for a client that
//! asks for application/json, as plain text for anything else (curl); `GET /alerts` as JSON,
//! oldest first.

use std::collections::VecDeque;
use std::fmt::Write;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
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
    /// All its annotations (summary, description, ...).
    pub annotations: std::collections::BTreeMap<String, String>,
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
            annotations: a.annotations,
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

/// How often the page reloads itself.
const REFRESH_SECONDS: u32 = 5;

/// The page's only style; no script at all (the Content-Security-Policy forbids any).
const STYLE: &str = "
body { font: 15px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: .35em .6em; border-bottom: 1px solid #ddd; vertical-align: top; }
td.status { font-weight: bold; text-transform: uppercase; color: #fff; white-space: nowrap; }
tr.firing td.status { background: #c4162a; }
tr.resolved td.status { background: #37872d; }
tr.resolved { color: #666; }
code { font-size: 90%; background: #f3f3f3; padding: 0 .25em; margin-right: .3em; }
details { margin-top: .3em; }
";

/// What the client asked for in its Accept header.
#[derive(Debug, PartialEq, Eq)]
enum Format {
    Html,
    Json,
    Text,
}

/// As RFC 9110 (12.5.1) says, each format takes the `q` of the most specific media range of
/// the Accept header's lines that applies to it, and the highest above 0 wins, HTML on a tie,
/// then JSON: browsers name text/html; a client that names application/json above it gets
/// JSON. HTML and JSON only when named; anything else (curl sends */*), and a header that
/// refuses everything, gets text. The header is read as the exposition reads it
/// ([`crate::metrics::media_ranges`]).
fn format(headers: &HeaderMap) -> Format {
    use crate::metrics::{quality, specificity};
    let ranges: Vec<_> = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(crate::metrics::media_ranges)
        .collect();
    let named = |essence: &str| {
        quality(&ranges, |range| {
            (range.essence_str() == essence).then(|| specificity(range))
        })
        .unwrap_or(0.0)
    };
    let (html, json) = (named("text/html"), named("application/json"));
    if html > 0.0 && html >= json {
        Format::Html
    } else if json > 0.0 {
        Format::Json
    } else {
        Format::Text
    }
}

/// `GET /`: the kept notifications, newest first, in the format the client asked for.
async fn page(State(inbox): State<Arc<Inbox>>, headers: HeaderMap) -> Response {
    let kept = inbox.kept();
    let mut response = match format(&headers) {
        Format::Html => html(&kept).into_response(),
        Format::Json => axum::Json(kept.iter().rev().cloned().collect::<Vec<_>>()).into_response(),
        Format::Text => text(&kept).into_response(),
    };
    let headers = response.headers_mut();
    headers.insert(header::VARY, HeaderValue::from_static("accept"));
    // The labels and annotations come from outside: escaped by the template, and, should
    // anything slip through, no script runs and no other origin is reached.
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
        ),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

/// The notifications as a page that reloads itself, firing and resolved alerts in colours of
/// their own. maud escapes every value it writes.
fn html(kept: &VecDeque<Notification>) -> maud::Markup {
    use maud::{DOCTYPE, PreEscaped, html};
    let alerts = kept
        .iter()
        .rev()
        .flat_map(|n| n.alerts.iter().map(move |a| (n, a)));
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta http-equiv="refresh" content=(REFRESH_SECONDS);
                title { "Alert receiver: " (kept.len()) " notifications" }
                style { (PreEscaped(STYLE)) }
            }
            body {
                h1 { "Alerts received" }
                p {
                    (kept.len()) " notifications from Alertmanager, newest first. This page reloads every "
                    (REFRESH_SECONDS) " s; the same as JSON: " a href="/alerts" { "/alerts" } "."
                }
                table {
                    thead {
                        tr {
                            th { "received" } th { "status" } th { "severity" } th { "alert" }
                            th { "instance" } th { "summary" }
                        }
                    }
                    tbody {
                        @for (n, a) in alerts {
                            tr class=(if a.status == "firing" { "firing" } else { "resolved" }) {
                                td { (n.received_at) }
                                td.status { (a.status) }
                                td { (a.severity) }
                                td { (a.alertname) }
                                td { (a.instance) }
                                td {
                                    (a.summary)
                                    details {
                                        summary { "labels and annotations" }
                                        @for (name, value) in &a.labels {
                                            code { (name) "=" (value) }
                                        }
                                        @for (name, value) in &a.annotations {
                                            p { b { (name) ": " } (value) }
                                        }
                                        p { "since " (a.starts_at) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The notifications as text, newest first, an alert a line.
fn text(kept: &VecDeque<Notification>) -> String {
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
        let (status, _, body) = call_accepting(router, method, uri, body, None).await;
        (status, body)
    }

    async fn call_accepting(
        router: &Router,
        method: &str,
        uri: &str,
        body: &str,
        accept: Option<&str>,
    ) -> (StatusCode, HeaderMap, String) {
        let mut request = Request::builder().method(method).uri(uri);
        if let Some(accept) = accept {
            request = request.header(header::ACCEPT, accept);
        }
        let request = request.body(Body::from(body.to_owned())).unwrap();
        let response = router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, headers, String::from_utf8_lossy(&body).into_owned())
    }

    /// What a browser sends.
    const BROWSER: &str = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";

    #[tokio::test]
    async fn a_browser_gets_a_page_that_reloads_and_tells_firing_from_resolved() {
        let router = router(Arc::new(Inbox::new(10)));
        call(&router, "POST", "/alerts", NOTIFICATION).await;
        let resolved = NOTIFICATION.replace(r#""status": "firing""#, r#""status": "resolved""#);
        call(&router, "POST", "/alerts", &resolved).await;

        let (status, headers, page) = call_accepting(&router, "GET", "/", "", Some(BROWSER)).await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            headers[header::CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with("text/html")
        );
        assert!(
            headers[header::CONTENT_SECURITY_POLICY]
                .to_str()
                .unwrap()
                .starts_with("default-src 'none';")
        );
        assert_eq!(headers[header::VARY], "accept");
        assert!(page.starts_with("<!DOCTYPE html>"), "{page}");
        assert!(
            page.contains(r#"<meta http-equiv="refresh" content="5">"#),
            "{page}"
        );
        // Newest first: the resolved one, then the firing one.
        let resolved_at = page.find(r#"<tr class="resolved">"#).expect(&page);
        let firing_at = page.find(r#"<tr class="firing">"#).expect(&page);
        assert!(resolved_at < firing_at, "{page}");
        assert!(page.contains("<code>job=flask_app</code>"), "{page}");
    }

    #[tokio::test]
    async fn labels_and_annotations_from_outside_are_shown_as_text() {
        let router = router(Arc::new(Inbox::new(10)));
        let hostile = NOTIFICATION
            .replace("app:8000 (flask_app) is down", "<script>alert(1)</script>")
            .replace(
                r#""job": "flask_app""#,
                r#""job": "\"><img src=x onerror=alert(2)>""#,
            )
            .replace(
                r#""status": "firing""#,
                r#""status": "firing\" onmouseover=\"alert(3)""#,
            );
        assert_eq!(
            call(&router, "POST", "/alerts", &hostile).await.0,
            StatusCode::OK
        );
        let (_, _, page) = call_accepting(&router, "GET", "/", "", Some(BROWSER)).await;
        assert!(!page.contains("<script"), "{page}");
        assert!(!page.contains("<img"), "{page}");
        assert!(!page.contains("onmouseover=\""), "{page}");
        assert!(
            page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{page}"
        );
        assert!(
            page.contains("&lt;img src=x onerror=alert(2)&gt;"),
            "{page}"
        );
        // An unknown status is shown as it came, in the colours of neither.
        assert!(page.contains(r#"<tr class="resolved">"#), "{page}");
    }

    #[tokio::test]
    async fn curl_gets_text_and_a_client_asking_for_json_gets_json() {
        let router = router(Arc::new(Inbox::new(10)));
        call(&router, "POST", "/alerts", NOTIFICATION).await;
        for accept in [
            None,
            Some("*/*"),
            Some("text/plain"),
            Some("text/html;q=0, */*"),
        ] {
            let (_, headers, body) = call_accepting(&router, "GET", "/", "", accept).await;
            assert!(
                headers[header::CONTENT_TYPE]
                    .to_str()
                    .unwrap()
                    .starts_with("text/plain"),
                "{accept:?}"
            );
            assert!(
                body.starts_with("1 notifications (newest first)"),
                "{accept:?}: {body}"
            );
        }
        for accept in [
            "application/json",
            "application/json, text/html;q=0.1",
            "text/html;q=0.5, application/json;q=0.9, */*;q=0.1",
        ] {
            let (_, headers, _) = call_accepting(&router, "GET", "/", "", Some(accept)).await;
            assert_eq!(
                headers[header::CONTENT_TYPE],
                "application/json",
                "{accept}"
            );
        }
        let (_, headers, _) = call_accepting(
            &router,
            "GET",
            "/",
            "",
            Some("application/json;q=0.5, text/html"),
        )
        .await;
        assert!(
            headers[header::CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with("text/html")
        );
        let (_, headers, body) =
            call_accepting(&router, "GET", "/", "", Some("application/json")).await;
        assert_eq!(headers[header::CONTENT_TYPE], "application/json");
        let kept: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            kept[0]["alerts"][0]["annotations"]["summary"],
            "app:8000 (flask_app) is down"
        );
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
