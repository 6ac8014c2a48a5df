//! `demo-service healthcheck`: asks a running service whether it is ready, for container
//! healthchecks in images that have no shell and no curl.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use anyhow::{Context, bail};
use http_body_util::Empty;
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::config::HealthcheckArgs;

/// The address to reach a listener bound to `addr`: an unspecified address (`0.0.0.0`, `::`) is
/// reached on loopback.
fn reachable(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => (Ipv4Addr::LOCALHOST, addr.port()).into(),
        IpAddr::V6(ip) if ip.is_unspecified() => (Ipv6Addr::LOCALHOST, addr.port()).into(),
        _ => addr,
    }
}

/// Asks for `args.path` on the metrics listener; succeeds on a 2xx, saying what answered.
pub async fn check(args: &HealthcheckArgs) -> anyhow::Result<String> {
    let url = format!("http://{}{}", reachable(args.metrics_addr), args.path);
    let uri: hyper::Uri = url.parse().with_context(|| format!("bad URL {url}"))?;
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let status = tokio::time::timeout(args.timeout, client.get(uri))
        .await
        .map_err(|_| {
            anyhow::anyhow!(
                "{url}: no answer within {}",
                humantime::format_duration(args.timeout)
            )
        })?
        .with_context(|| url.clone())?
        .status();
    if !status.is_success() {
        bail!("{url}: {status}");
    }
    Ok(format!("{url} answered {status}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unspecified_addresses_are_reached_on_loopback() {
        let any: SocketAddr = "0.0.0.0:8000".parse().unwrap();
        assert_eq!(reachable(any), "127.0.0.1:8000".parse().unwrap());
        let any6: SocketAddr = "[::]:8000".parse().unwrap();
        assert_eq!(reachable(any6), "[::1]:8000".parse().unwrap());
        let own: SocketAddr = "10.1.2.3:8000".parse().unwrap();
        assert_eq!(reachable(own), own);
    }
}
