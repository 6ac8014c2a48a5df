//! Faults and bad input, against the real binary over real sockets: the counts stay exact, the
//! drain answers everything, garbage gets a 4xx or a closed connection, slow and idle clients
//! are cut off, a flood of connections is outlived, and no client can add a series.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::helpers::{BIN, Lines, Service, count, get, load, sample, scrape};

#[tokio::test]
async fn counts_are_exact_under_concurrency() {
    let service = Service::start(&["--max-delay", "0s"]);

    let summary = load(
        &service,
        &[
            "--concurrency",
            "256",
            "--requests",
            "100000",
            "--timeout",
            "30s",
        ],
    );

    assert_eq!(summary["answered"], 100_000, "{summary}");
    let m = scrape(&service.metrics_url("/metrics")).await;
    assert_eq!(sample(&m, "request_count_total"), 100_000.0);
    for code in ["200", "500"] {
        let series = format!(r#"response_code_count_total{{status_code="{code}"}}"#);
        assert_eq!(
            sample(&m, &series),
            count(&summary["status"][code]),
            "{code}"
        );
    }
    assert_eq!(
        sample(&m, "error_count_total"),
        count(&summary["status"]["500"])
    );
    let roots = count(&summary["paths"]["/"]["sent"]);
    assert_eq!(sample(&m, "request_duration_seconds_count"), roots);
    assert_eq!(sample(&m, "request_processing_seconds_count"), roots);
    let red: f64 = m
        .iter()
        .filter(|(k, _)| k.starts_with("http_requests_total{"))
        .map(|(_, v)| v)
        .sum();
    assert_eq!(red, 100_000.0, "RED counts every request too");
}

#[tokio::test]
async fn sigterm_with_a_thousand_requests_in_flight_answers_every_one() {
    let mut service = Service::start(&["--min-delay", "3s", "--max-delay", "3s"]);
    let target = service.app_url("");
    let generator = std::thread::spawn(move || {
        let out = Command::new(BIN)
            .args([
                "load", "--target", &target, "--output", "json", "--mix", "/",
            ])
            .args([
                "--concurrency",
                "1000",
                "--requests",
                "1000",
                "--timeout",
                "20s",
            ])
            .output()
            .unwrap();
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    while sample(
        &scrape(&service.metrics_url("/metrics")).await,
        "http_requests_in_flight",
    ) < 1000.0
    {
        assert!(Instant::now() < deadline, "never 1000 requests in flight");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    service.signal("TERM");
    service.wait_for_log(
        |e| e["message"].as_str().unwrap().starts_with("shutting down"),
        Duration::from_secs(2),
    );
    assert_eq!(
        get(&service.metrics_url("/readyz")).await.0,
        503,
        "ready while draining"
    );
    let refused = Instant::now() + Duration::from_secs(2);
    while TcpStream::connect(service.app).is_ok() {
        assert!(
            Instant::now() < refused,
            "the app listener still accepts while draining"
        );
        std::thread::sleep(Duration::from_millis(10));
    }

    let summary = generator.join().unwrap();
    assert_eq!(summary["status"]["200"], 1000, "{summary}");
    assert_eq!(summary["failed"], 0, "{summary}");
    assert_eq!(service.wait(Duration::from_secs(10)).code(), Some(0));
}

/// Sends `request` raw to `addr`; returns what came back before the server closed or went
/// quiet for `wait`, and whether it closed.
fn raw(addr: SocketAddr, request: &[u8], wait: Duration) -> (String, bool) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(wait)).unwrap();
    // A server may close before taking all of a huge request: that is an answer too.
    let _ = stream.write_all(request);
    let mut answer = Vec::new();
    let mut buffer = [0u8; 4096];
    let closed = loop {
        match stream.read(&mut buffer) {
            Ok(0) => break true,
            Ok(n) => answer.extend_from_slice(&buffer[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                break false;
            }
            Err(_) => break true,
        }
    };
    (String::from_utf8_lossy(&answer).into_owned(), closed)
}

/// The status code of the first answer, if any.
fn status(answer: &str) -> Option<u16> {
    answer.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
}

#[test]
fn bad_input_gets_a_4xx_or_a_closed_connection_and_others_are_served() {
    let service = Service::start(&["--max-delay", "0s", "--header-timeout", "2s"]);
    let rss = |pid: u32| -> u64 {
        let statm = std::fs::read_to_string(format!("/proc/{pid}/statm")).unwrap();
        statm
            .split_whitespace()
            .nth(1)
            .unwrap()
            .parse::<u64>()
            .unwrap()
            * 4096
    };
    // Meanwhile, a well-behaved client.
    let (stop, served, failed) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
    );
    let bystander = {
        let (stop, served, failed, addr) =
            (stop.clone(), served.clone(), failed.clone(), service.app);
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let (answer, _) = raw(
                    addr,
                    b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                    Duration::from_secs(2),
                );
                let counter = if status(&answer) == Some(200) {
                    &served
                } else {
                    &failed
                };
                counter.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    let big = "a".repeat(1024 * 1024);
    let long_uri = format!("/{}", "u".repeat(10 * 1024));
    // What each listener answers. The metrics listener serves the exposition on every path
    // and method, as the seed's start_http_server does: valid HTTP gets a 200 there.
    #[rustfmt::skip]
    let cases: Vec<(&str, Vec<u8>, u16, u16)> = vec![
        ("a malformed request line", b"GARBAGE\r\n\r\n".to_vec(), 400, 400),
        ("no HTTP version", b"GET /\r\n\r\n".to_vec(), 400, 400),
        ("an unknown method", b"BREW / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(), 405, 200),
        ("a 1 MiB header", format!("GET / HTTP/1.1\r\nHost: x\r\nX-Big: {big}\r\n\r\n").into_bytes(), 431, 431),
        ("a 1 MiB URI", format!("GET /{big} HTTP/1.1\r\nHost: x\r\n\r\n").into_bytes(), 431, 431),
        ("a 10 KiB URI", format!("GET {long_uri} HTTP/1.1\r\nHost: x\r\n\r\n").into_bytes(), 414, 414),
        ("invalid percent-encoding", b"GET /status/%zz HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(), 400, 200),
        ("invalid UTF-8 in the path", b"GET /\xff\xfe HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(), 400, 400),
        ("an HTTP/2 preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec(), 0, 0),
        ("an absurd Content-Length", b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999\r\n\r\n".to_vec(), 400, 400),
        ("a negative Content-Length", b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n".to_vec(), 400, 400),
        ("two Content-Lengths", b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab".to_vec(), 400, 400),
        ("a body on GET", b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello".to_vec(), 200, 200),
        ("pipelined garbage", b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n\x00\x01garbage\r\n\r\n".to_vec(), 200, 200),
        ("a header without a colon", b"GET / HTTP/1.1\r\nHost x\r\n\r\n".to_vec(), 400, 400),
        ("only a NUL byte", vec![0u8], 400, 400),
    ];
    let before = rss(service.pid());
    let mut report = String::from("listener | input | answer\n");
    for (addr, listener) in [(service.app, "app"), (service.metrics, "metrics")] {
        for (what, request, on_app, on_metrics) in &cases {
            let expected = if listener == "app" {
                *on_app
            } else {
                *on_metrics
            };
            let (answer, closed) = raw(addr, request, Duration::from_secs(5));
            let got = status(&answer);
            // 0: no answer at all, only a closed connection; else that status (and, for
            // garbage, the connection closed after it, or at least no further answer).
            let fine = match (expected, got) {
                (0, None) => closed,
                (0, Some(code)) => (400..500).contains(&code),
                (expected, Some(code)) => code == expected,
                (_, None) => false,
            };
            assert!(
                fine,
                "{listener} listener, {what}: got {got:?} (closed: {closed}), expected {expected}:\n{}",
                &answer[..answer.len().min(300)]
            );
            let answered = got.map_or("no answer".to_owned(), |code| code.to_string());
            let after = if closed { ", then closed" } else { "" };
            report += &format!("{listener} | {what} | {answered}{after}\n");
        }
    }
    stop.store(true, Ordering::Relaxed);
    bystander.join().unwrap();

    assert_eq!(
        failed.load(Ordering::Relaxed),
        0,
        "the well-behaved client was refused"
    );
    assert!(served.load(Ordering::Relaxed) > 0);
    let grown = rss(service.pid()).saturating_sub(before);
    assert!(grown < 32 * 1024 * 1024, "memory grew by {grown} bytes");
    let logs = serde_json::to_string(&service.logs()).unwrap();
    assert!(!logs.contains("panicked"), "a panic in the log");
    report += &format!(
        "meanwhile a well-behaved client got {} × 200 and nothing else; memory grew by {} kB\n",
        served.load(Ordering::Relaxed),
        grown / 1024
    );
    crate::helpers::write_report("bad-input.txt", &report);
}

#[test]
fn slow_and_idle_clients_are_cut_off_while_others_are_served() {
    let service = Service::start(&["--header-timeout", "1s"]);

    // Slowloris: a header byte every 200 ms, forever.
    let started = Instant::now();
    let mut slow = TcpStream::connect(service.app).unwrap();
    slow.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").unwrap();
    let mut cut_off = None;
    for _ in 0..50 {
        std::thread::sleep(Duration::from_millis(200));
        if slow.write_all(b"X").is_err() || slow.flush().is_err() {
            cut_off = Some(started.elapsed());
            break;
        }
        // Others are served meanwhile.
        let (answer, _) = raw(
            service.app,
            b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            Duration::from_secs(2),
        );
        assert_eq!(status(&answer), Some(200));
    }
    let cut_off = cut_off.expect("a trickling client was never cut off");
    assert!(
        cut_off < Duration::from_secs(5),
        "cut off only after {cut_off:?}"
    );

    // An idle kept-alive connection is closed after the same timeout.
    let mut idle = TcpStream::connect(service.metrics).unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    idle.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buffer = [0u8; 1024];
    let n = idle.read(&mut buffer).unwrap();
    assert!(String::from_utf8_lossy(&buffer[..n]).starts_with("HTTP/1.1 200"));
    let waited = Instant::now();
    let eof = idle.read(&mut buffer).unwrap_or(0);
    assert_eq!(
        eof, 0,
        "the idle connection got data instead of being closed"
    );
    let idle_for = waited.elapsed();
    assert!(
        idle_for >= Duration::from_millis(800) && idle_for < Duration::from_secs(4),
        "closed after {idle_for:?}"
    );

    // A request that takes longer than the timeout is in service, not waiting: it is answered.
    let (answer, _) = raw(
        service.app,
        b"GET /delay/2500ms HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        Duration::from_secs(5),
    );
    assert_eq!(status(&answer), Some(200), "{answer:?}");
}

#[tokio::test]
async fn a_connection_flood_up_to_the_descriptor_limit_is_outlived() {
    // The service with room for about 64 connections.
    let mut service = Lines::spawn(Command::new("prlimit").args([
        "--nofile=64:64",
        BIN,
        "serve",
        "--app-addr",
        "127.0.0.1:0",
        "--metrics-addr",
        "127.0.0.1:0",
        "--log-format",
        "json",
    ]));
    let deadline = Instant::now() + Duration::from_secs(10);
    let listening: Value = loop {
        if let Some(line) = service.lines().iter().find(|l| l.contains("\"listening\"")) {
            break serde_json::from_str(line).unwrap();
        }
        assert!(Instant::now() < deadline, "the service did not start");
        std::thread::sleep(Duration::from_millis(20));
    };
    let app: SocketAddr = listening["app"].as_str().unwrap().parse().unwrap();
    let metrics: SocketAddr = listening["metrics"].as_str().unwrap().parse().unwrap();

    // Twice as many connections as it can hold, each with a request pending.
    let flood: Vec<TcpStream> = (0..128)
        .filter_map(|_| {
            let mut stream = TcpStream::connect(app).ok()?;
            stream
                .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
                .ok()?;
            Some(stream)
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !service
        .lines()
        .iter()
        .any(|l| l.contains("cannot accept a connection"))
    {
        assert!(
            Instant::now() < deadline,
            "no accept error logged with {} connections",
            flood.len()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(flood);

    // Once the flood is gone, it answers as before.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok((200, _)) = tokio::time::timeout(
            Duration::from_secs(2),
            get(&format!("http://{app}/healthz")),
        )
        .await
        {
            break;
        }
        assert!(Instant::now() < deadline, "the service did not recover");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(get(&format!("http://{metrics}/healthz")).await.0, 200);
    assert!(
        service.child.try_wait().unwrap().is_none(),
        "the service died"
    );
    assert!(!service.lines().iter().any(|l| l.contains("panicked")));
}

#[tokio::test]
async fn ten_thousand_distinct_paths_add_no_series() {
    let service = Service::start(&[]);
    let client = reqwest::Client::new();
    get(&service.app_url("/nope")).await;
    let series = |m: &std::collections::BTreeMap<String, f64>| {
        m.keys().filter(|k| k.starts_with("http_")).count()
    };
    let before = series(&scrape(&service.metrics_url("/metrics")).await);

    let mut tasks = tokio::task::JoinSet::new();
    for chunk in 0..32 {
        let (client, base) = (client.clone(), service.app_url(""));
        tasks.spawn(async move {
            for i in 0..(10_000 / 32 + 1) {
                let path = format!("/scan/{chunk}/{i}/{:x}?q={i}", i * 7919 + chunk);
                let response = client.get(format!("{base}{path}")).send().await.unwrap();
                assert_eq!(response.status(), 404);
            }
        });
    }
    tasks.join_all().await;

    let m = scrape(&service.metrics_url("/metrics")).await;
    assert_eq!(series(&m), before, "new series appeared");
    assert!(
        sample(
            &m,
            r#"http_requests_total{method="GET",route="unmatched",status="404"}"#
        ) > 10_000.0
    );
}
