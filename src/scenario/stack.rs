//! The running stack a scenario plays against: where Prometheus, the receiver and the admin
//! API answer, the admin token, and how a part of the stack is stopped and started.
//!
//! Everything is found as the docs find it: the addresses on `BIND_ADDRESS` (from `.env`,
//! else 127.0.0.1) at the stack's fixed ports; the token in `DEMO_SERVICE_ADMIN_TOKEN`, else
//! in `.env` (compose), else in `target/stack/admin-token` (the native stack's, which it makes
//! at each start). Flags override each.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

use super::{How, Part, StackKind, Stop};
use crate::config::ScenarioStackArgs;

/// How long one request to the stack may take.
const TIMEOUT: Duration = Duration::from_secs(10);

/// Sends `request` and gives the answer's body as JSON; or why not, in a line that names the
/// URL: no answer within `timeout`, no connection (`unreachable` says what that means), a
/// status other than success (with the body), a body that is not JSON.
pub(crate) async fn fetch_json(
    http: &Client<HttpConnector, Full<Bytes>>,
    request: hyper::Request<Full<Bytes>>,
    timeout: Duration,
    unreachable: impl FnOnce() -> String,
) -> anyhow::Result<Value> {
    let url = request.uri().to_string();
    let answer = async {
        let response = http.request(request).await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        anyhow::Ok((status, body))
    };
    let (status, body) = tokio::time::timeout(timeout, answer)
        .await
        .map_err(|_| anyhow::anyhow!("{url}: no answer within {}s", timeout.as_secs()))?
        .with_context(unreachable)?;
    if !status.is_success() {
        let text = String::from_utf8_lossy(&body);
        bail!("{url}: {status}: {}", text.trim());
    }
    serde_json::from_slice(&body).with_context(|| format!("{url}: not JSON"))
}

/// `text` percent-encoded for a query string.
pub(crate) fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            b => format!("%{b:02X}"),
        })
        .collect()
}

/// A running stack.
#[derive(Clone, Debug)]
pub struct Stack {
    pub kind: StackKind,
    /// Base URLs, `http://host:port`.
    pub prometheus: String,
    pub receiver: String,
    pub admin: String,
    token: Option<String>,
    /// The repository: where `.env`, `docker-compose.yml` and `scripts/stack` are.
    dir: PathBuf,
    http: Client<HttpConnector, Full<Bytes>>,
}

impl Stack {
    /// The stack the flags describe, the rest found in `dir` as the docs find it.
    pub fn find(args: &ScenarioStackArgs, dir: &Path) -> anyhow::Result<Self> {
        let env = dot_env(&dir.join(".env"))?;
        let native_running = native_running(dir);
        let kind = args.stack.unwrap_or(if native_running {
            StackKind::Native
        } else {
            StackKind::Compose
        });
        let host = match env.get("BIND_ADDRESS").map(String::as_str) {
            None | Some("" | "0.0.0.0") => "127.0.0.1".to_owned(),
            Some(host) => host.to_owned(),
        };
        let url = |given: &Option<String>, port: u16| {
            given
                .clone()
                .unwrap_or_else(|| format!("http://{host}:{port}"))
                .trim_end_matches('/')
                .to_owned()
        };
        let token_file = dir.join("target/stack/admin-token");
        let token = match (&args.admin_token, kind) {
            (Some(token), _) => Some(token.clone()),
            (None, StackKind::Native) => std::fs::read_to_string(&token_file)
                .ok()
                .map(|t| t.trim().to_owned()),
            (None, StackKind::Compose) => env.get("DEMO_SERVICE_ADMIN_TOKEN").cloned(),
        }
        .filter(|t| !t.is_empty());
        Ok(Self {
            kind,
            prometheus: url(&args.prometheus, 9090),
            receiver: url(&args.receiver, 9095),
            admin: url(&args.admin, 8000),
            token,
            dir: dir.to_owned(),
            http: Client::builder(TokioExecutor::new()).build_http(),
        })
    }

    /// A request; the body as JSON, or why there is none.
    async fn request(
        &self,
        method: hyper::Method,
        url: &str,
        body: Option<&Value>,
        token: Option<&str>,
    ) -> anyhow::Result<Value> {
        let mut request = hyper::Request::builder().method(method).uri(url);
        if let Some(token) = token {
            request = request.header(hyper::header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let body = body.map_or_else(Bytes::new, |b| Bytes::from(b.to_string()));
        let request = request
            .body(Full::new(body))
            .with_context(|| url.to_owned())?;
        fetch_json(&self.http, request, TIMEOUT, || {
            format!("{url}: is the stack running?")
        })
        .await
    }

    /// GET a JSON document from anywhere in the stack.
    pub async fn get(&self, url: &str) -> anyhow::Result<Value> {
        self.request(hyper::Method::GET, url, None, None).await
    }

    /// The token, or what to do without one.
    fn token(&self) -> anyhow::Result<&str> {
        self.token.as_deref().ok_or_else(|| {
            anyhow::anyhow!(match self.kind {
                StackKind::Compose => "this scenario turns knobs, and the admin API needs a token: set DEMO_SERVICE_ADMIN_TOKEN in .env and `docker compose up -d` (or give --admin-token)",
                StackKind::Native => "this scenario turns knobs, and target/stack/admin-token is missing: is scripts/stack running here? (or give --admin-token)",
            })
        })
    }

    /// The knobs of the service, as `GET /admin/knobs` shows them.
    pub async fn knobs(&self) -> anyhow::Result<serde_json::Map<String, Value>> {
        let url = format!("{}/admin/knobs", self.admin);
        match self
            .request(hyper::Method::GET, &url, None, Some(self.token()?))
            .await?
        {
            Value::Object(knobs) => Ok(knobs),
            other => bail!("{url}: not the knobs: {other}"),
        }
    }

    /// Sets knobs (`PUT /admin/knobs`); a knob whose value is null (a hidden family none)
    /// is sent as the admin API takes it, "".
    pub async fn set(&self, knobs: &serde_json::Map<String, Value>) -> anyhow::Result<()> {
        let body: serde_json::Map<String, Value> = knobs
            .iter()
            .map(|(k, v)| (k.clone(), if v.is_null() { "".into() } else { v.clone() }))
            .collect();
        let url = format!("{}/admin/knobs", self.admin);
        self.request(
            hyper::Method::PUT,
            &url,
            Some(&Value::Object(body)),
            Some(self.token()?),
        )
        .await
        .map(drop)
    }

    /// The incident timeline the service plays, if any (`GET /admin/incidents`).
    pub async fn incidents(&self) -> anyhow::Result<Option<String>> {
        let url = format!("{}/admin/incidents", self.admin);
        let status = self
            .request(hyper::Method::GET, &url, None, Some(self.token()?))
            .await?;
        Ok(status["timeline"].as_str().map(str::to_owned))
    }

    /// Whether this machine can break `part` as `how` says: `docker compose` here (not in a
    /// container, which has no docker), with the part running in this directory's project; or
    /// `scripts/stack`, which stops and starts the app and the load generator only.
    pub async fn can_control(&self, part: Part, how: How) -> anyhow::Result<()> {
        match self.kind {
            StackKind::Compose => {
                let mut version = tokio::process::Command::new("docker");
                version.args(["compose", "version"]);
                if run(version, &self.dir).await.is_err() {
                    bail!(
                        "this scenario breaks the {}, which takes `docker compose`: run it from the repository, on the machine of the stack",
                        part.name()
                    );
                }
                if self.container(part).await?.is_none() {
                    bail!(
                        "`docker compose` in {} finds no running {}: run the scenario in the stack's directory, with its COMPOSE_PROJECT_NAME if it has one{}",
                        self.dir.display(),
                        part.compose_service(),
                        if part == Part::Load {
                            " (the load generator runs with --profile load)"
                        } else {
                            ""
                        }
                    );
                }
            }
            StackKind::Native => {
                if !matches!((part, how), (Part::App | Part::Load, How::Stop(_))) {
                    bail!(
                        "scripts/stack stops and starts the app and the load generator only: this scenario ({}) runs on compose",
                        Stop {
                            part,
                            at: Duration::ZERO,
                            how
                        }
                        .describe()
                    );
                }
                if !self.dir.join("scripts/stack").exists() {
                    bail!(
                        "this scenario stops the {}, which takes scripts/stack: run it from the repository",
                        part.name()
                    );
                }
            }
        }
        Ok(())
    }

    /// The id of the running container of `part` in this directory's compose project.
    async fn container(&self, part: Part) -> anyhow::Result<Option<String>> {
        let mut ps = tokio::process::Command::new("docker");
        ps.args([
            "compose",
            "--profile",
            "*",
            "ps",
            "--quiet",
            part.compose_service(),
        ]);
        let ids = run(ps, &self.dir).await?;
        Ok(ids.lines().next().map(str::to_owned))
    }

    /// Breaks `part`, or starts it again, as the docs do it.
    pub async fn control(&self, part: Part, action: Control) -> anyhow::Result<()> {
        let command = match (self.kind, action) {
            (StackKind::Compose, Control::Kill) => return self.kill(part).await,
            (StackKind::Compose, _) => {
                let mut c = tokio::process::Command::new("docker");
                c.args([
                    "compose",
                    "--profile",
                    "*",
                    action.verb(),
                    part.compose_service(),
                ]);
                c
            }
            (StackKind::Native, _) => {
                let what = match part {
                    Part::App => "1",
                    _ => "load",
                };
                let mut c = tokio::process::Command::new(self.dir.join("scripts/stack"));
                c.args([action.verb(), what]);
                c
            }
        };
        run(command, &self.dir).await.map(drop)
    }

    /// SIGKILL to the process of `part`'s container, from this machine, as a crash or the OOM
    /// killer would send it: the restart policy (`unless-stopped`) brings it back. (`docker
    /// kill` would not do: Docker counts a container it was asked to kill as stopped by hand,
    /// and leaves it stopped.)
    async fn kill(&self, part: Part) -> anyhow::Result<()> {
        let service = part.compose_service();
        let Some(id) = self.container(part).await? else {
            bail!("{service} has no running container to kill");
        };
        let mut inspect = tokio::process::Command::new("docker");
        inspect.args(["inspect", "--format", "{{.State.Pid}}", &id]);
        let pid = run(inspect, &self.dir).await?;
        // The process must be the container's, on this machine: under Docker Desktop the
        // containers run in a virtual machine, and the pid would be some other process here.
        let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
        if !cgroup.contains(&id) {
            bail!(
                "{service}'s process (pid {pid}) is not on this machine (Docker Desktop runs containers in a virtual machine): this scenario needs a Docker engine on this machine"
            );
        }
        let pid = pid
            .parse::<i32>()
            .ok()
            .and_then(rustix::process::Pid::from_raw)
            .with_context(|| format!("{service}: no process (pid {pid:?})"))?;
        rustix::process::kill_process(pid, rustix::process::Signal::KILL).map_err(|e| {
            let why = if e == rustix::io::Errno::PERM {
                "it runs as another user, so this takes root (sudo)"
            } else {
                "it is gone"
            };
            anyhow::anyhow!(
                "cannot send SIGKILL to {service}'s process ({}): {e}; {why}",
                pid.as_raw_nonzero()
            )
        })
    }
}

/// How long one `docker compose` or `scripts/stack` command may take (a stop drains for up
/// to 15 s).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);

/// Runs `command` in `dir`: its stdout, or why it failed. In a process group of its own, so
/// that a Ctrl-C meant for the run does not stop the command that puts the stack back.
async fn run(mut command: tokio::process::Command, dir: &Path) -> anyhow::Result<String> {
    let shown = format!("{:?}", command.as_std());
    #[cfg(unix)]
    command.process_group(0);
    let output = command.current_dir(dir).kill_on_drop(true).output();
    let out = tokio::time::timeout(COMMAND_TIMEOUT, output)
        .await
        .map_err(|_| anyhow::anyhow!("{shown}: no end within {}s", COMMAND_TIMEOUT.as_secs()))?
        .with_context(|| format!("cannot run {shown}"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        bail!(
            "{shown}: {}: {}",
            out.status,
            err.lines().last().unwrap_or_default()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// What is done to a part of the stack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Control {
    Stop,
    Start,
    Restart,
    Kill,
}

impl Control {
    fn verb(self) -> &'static str {
        match self {
            Self::Stop => "stop",
            Self::Start => "start",
            Self::Restart => "restart",
            Self::Kill => "kill",
        }
    }
}

/// Whether `scripts/stack` runs in `dir`: its state file names a live process.
fn native_running(dir: &Path) -> bool {
    let Ok(running) = std::fs::read_to_string(dir.join("target/stack/running")) else {
        return false;
    };
    let pid = running.split_whitespace().next().unwrap_or_default();
    !pid.is_empty() && Path::new("/proc").join(pid).exists()
}

/// The settings of `.env`, if there is one.
fn dot_env(path: &Path) -> anyhow::Result<std::collections::HashMap<String, String>> {
    if !path.exists() {
        return Ok(Default::default());
    }
    dotenvy::from_path_iter(path)
        .and_then(Iterator::collect)
        .with_context(|| format!("cannot read {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(stack: Option<StackKind>) -> ScenarioStackArgs {
        ScenarioStackArgs {
            stack,
            prometheus: None,
            receiver: None,
            admin: None,
            admin_token: None,
        }
    }

    #[test]
    fn the_stack_is_found_as_the_docs_find_it() {
        let dir = tempfile::tempdir().unwrap();
        let compose = Stack::find(&args(None), dir.path()).unwrap();
        assert_eq!(
            compose.kind,
            StackKind::Compose,
            "no native stack runs here"
        );
        assert_eq!(compose.prometheus, "http://127.0.0.1:9090");
        assert_eq!(compose.token, None);

        std::fs::write(
            dir.path().join(".env"),
            "BIND_ADDRESS=127.0.0.9\nDEMO_SERVICE_ADMIN_TOKEN=\"from-dot-env-0123\"\n",
        )
        .unwrap();
        let compose = Stack::find(&args(None), dir.path()).unwrap();
        assert_eq!(compose.receiver, "http://127.0.0.9:9095");
        assert_eq!(compose.token.as_deref(), Some("from-dot-env-0123"));

        std::fs::create_dir_all(dir.path().join("target/stack")).unwrap();
        std::fs::write(
            dir.path().join("target/stack/admin-token"),
            "made-at-start\n",
        )
        .unwrap();
        let me = std::process::id();
        std::fs::write(
            dir.path().join("target/stack/running"),
            format!("{me} 1 127.0.0.1\n"),
        )
        .unwrap();
        let native = Stack::find(&args(None), dir.path()).unwrap();
        assert_eq!(
            native.kind,
            StackKind::Native,
            "a live pid in target/stack/running"
        );
        assert_eq!(native.token.as_deref(), Some("made-at-start"));

        let mut given = args(Some(StackKind::Compose));
        given.admin = Some("http://10.0.0.1:8000/".to_owned());
        given.admin_token = Some("flag".to_owned());
        let flagged = Stack::find(&given, dir.path()).unwrap();
        assert_eq!(flagged.kind, StackKind::Compose);
        assert_eq!(flagged.admin, "http://10.0.0.1:8000");
        assert_eq!(flagged.token.as_deref(), Some("flag"));
    }

    #[test]
    fn a_missing_token_says_where_to_set_it() {
        let dir = tempfile::tempdir().unwrap();
        let stack = Stack::find(&args(Some(StackKind::Compose)), dir.path()).unwrap();
        assert!(
            stack
                .token()
                .unwrap_err()
                .to_string()
                .contains("DEMO_SERVICE_ADMIN_TOKEN in .env")
        );
        let stack = Stack::find(&args(Some(StackKind::Native)), dir.path()).unwrap();
        assert!(
            stack
                .token()
                .unwrap_err()
                .to_string()
                .contains("target/stack/admin-token")
        );
    }
}
