//! The log writer: lines from every thread go into one buffer in memory, and a thread of its
//! own writes them to stdout in large writes. Logging a line costs a lock and a copy: no
//! system call, no allocation and no wake-up of another thread per line, which matters for a
//! service that logs every request.
//!
//! The writer thread writes what waits every [`FLUSH_EVERY`], and at once when a batch
//! ([`BATCH`]) is waiting. When stdout does not keep up (a container runtime that stopped
//! reading it) and the buffer reaches its limit, further lines are dropped, and their number
//! told on stderr, rather than making requests wait for the log.

use std::io::Write;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use tracing_subscriber::fmt::MakeWriter;

/// How long a line may wait before it is written.
pub const FLUSH_EVERY: Duration = Duration::from_millis(100);

/// How much waiting makes the writer write at once.
pub const BATCH: usize = 64 * 1024;

/// How much may wait before lines are dropped: a few seconds of a busy service's log.
pub const LIMIT: usize = 8 * 1024 * 1024;

/// Where the lines of every thread wait for the writer thread; its clones share the thread.
#[derive(Clone, Debug)]
pub struct Batched {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    waiting: Mutex<Waiting>,
    /// Rung when a batch is waiting, and at the close.
    ready: Condvar,
    limit: usize,
}

#[derive(Debug, Default)]
struct Waiting {
    lines: Vec<u8>,
    /// Lines dropped since the start.
    dropped: u64,
    closed: bool,
}

/// Keeps the writer thread: dropping it writes the last lines and ends the thread.
#[derive(Debug)]
pub struct Guard {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Batched {
    /// A writer of lines to `out`, and the guard of its thread; at most `limit` bytes wait.
    pub fn new<W: Write + Send + 'static>(out: W, limit: usize) -> std::io::Result<(Self, Guard)> {
        let shared = Arc::new(Shared {
            waiting: Mutex::new(Waiting {
                lines: Vec::with_capacity(BATCH),
                ..Waiting::default()
            }),
            ready: Condvar::new(),
            limit,
        });
        let thread = std::thread::Builder::new()
            .name("log-writer".into())
            .spawn({
                let shared = shared.clone();
                move || shared.write_to(out)
            })?;
        Ok((
            Batched {
                shared: shared.clone(),
            },
            Guard {
                shared,
                thread: Some(thread),
            },
        ))
    }
}

impl Shared {
    fn waiting(&self) -> MutexGuard<'_, Waiting> {
        self.waiting.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The writer thread: takes what waits (swapping buffers, so that neither side allocates
    /// once both have grown) and writes it, until closed and nothing waits.
    fn write_to(&self, mut out: impl Write) {
        let mut batch = Vec::with_capacity(BATCH);
        let mut told = 0;
        loop {
            let (closed, dropped) = {
                let mut waiting = self.waiting();
                if waiting.lines.len() < BATCH && !waiting.closed {
                    waiting = self
                        .ready
                        .wait_timeout_while(waiting, FLUSH_EVERY, |w| {
                            w.lines.len() < BATCH && !w.closed
                        })
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                }
                std::mem::swap(&mut waiting.lines, &mut batch);
                (waiting.closed, waiting.dropped)
            };
            if dropped > told {
                let newly = dropped - told;
                eprintln!("demo-service: {newly} log lines dropped: stdout did not keep up");
                told = dropped;
            }
            if !batch.is_empty() {
                // A log that cannot be written is not worth stopping the service for.
                let _ = out.write_all(&batch).and_then(|()| out.flush());
                batch.clear();
            }
            if closed && self.waiting().lines.is_empty() {
                return;
            }
        }
    }
}

impl Write for &Batched {
    /// Takes one line (tracing-subscriber writes each event whole, in one call).
    fn write(&mut self, line: &[u8]) -> std::io::Result<usize> {
        let shared = &self.shared;
        let mut waiting = shared.waiting();
        let before = waiting.lines.len();
        if before + line.len() > shared.limit {
            waiting.dropped += 1;
        } else {
            waiting.lines.extend_from_slice(line);
            if before < BATCH && waiting.lines.len() >= BATCH {
                shared.ready.notify_one();
            }
        }
        Ok(line.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Batched {
    type Writer = &'a Batched;

    fn make_writer(&'a self) -> Self::Writer {
        self
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.shared.waiting().closed = true;
        self.shared.ready.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Instant;

    /// An output that keeps what it was given.
    #[derive(Clone, Default)]
    struct Kept(Arc<Mutex<Vec<u8>>>);

    impl Write for Kept {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Kept {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    #[test]
    fn every_line_of_every_thread_is_written_whole_and_in_its_order() {
        let out = Kept::default();
        let (batched, guard) = Batched::new(out.clone(), LIMIT).unwrap();
        let batched = Arc::new(batched);
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let batched = batched.clone();
                std::thread::spawn(move || {
                    for n in 0..20_000 {
                        let line = format!("thread {t} line {n}\n");
                        (&*batched).write_all(line.as_bytes()).unwrap();
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        drop(guard);
        let text = out.text();
        for t in 0..4 {
            let lines: Vec<&str> = text
                .lines()
                .filter(|l| l.starts_with(&format!("thread {t} ")))
                .collect();
            let expected: Vec<String> = (0..20_000)
                .map(|n| format!("thread {t} line {n}"))
                .collect();
            assert_eq!(lines, expected, "thread {t}");
        }
        assert_eq!(text.lines().count(), 80_000);
    }

    #[test]
    fn a_lone_line_is_written_without_waiting_for_more() {
        let out = Kept::default();
        let (batched, _guard) = Batched::new(out.clone(), LIMIT).unwrap();
        (&batched).write_all(b"only line\n").unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while out.text() != "only line\n" {
            assert!(Instant::now() < deadline, "not written: {:?}", out.text());
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// An output that takes nothing until it is let go.
    struct Stuck(Mutex<mpsc::Receiver<()>>, Kept);

    impl Write for Stuck {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let _ = self.0.lock().unwrap().recv();
            self.1.write(buf)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn when_the_output_is_stuck_lines_past_the_limit_are_dropped_and_logging_goes_on() {
        let (let_go, stuck) = mpsc::channel();
        let out = Kept::default();
        let (batched, guard) = Batched::new(Stuck(Mutex::new(stuck), out.clone()), 1000).unwrap();
        // Ten lines of 100 bytes fill the limit; the output takes none of them meanwhile
        // (the first batch may be in the stuck write, which is why 30 are sent).
        let mut line = vec![b'x'; 99];
        line.push(b'\n');
        for _ in 0..30 {
            (&batched).write_all(&line).unwrap();
        }
        let dropped = batched.shared.waiting().dropped;
        assert!(dropped > 0, "nothing was dropped");
        drop(let_go);
        drop(guard);
        let written = out.text().len();
        assert!(
            written <= 2 * 1000,
            "{written} bytes written, more than could wait"
        );
        assert!(
            written >= 1000,
            "{written} bytes written: what waited was lost"
        );
    }
}
