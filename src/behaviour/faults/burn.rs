//! The CPU burn: each request to `/` spends the knob's CPU time on a real computation, so that
//! `process_cpu_seconds_total` rises and the service saturates: latency grows and throughput
//! stops growing. Bounded twice: no request burns more than `--max-cpu-burn`, and no more than
//! two requests burn at once (the others wait their turn, which is what saturation looks like),
//! on threads of their own, so that health checks and the metrics listener still answer. Two,
//! as if the service were limited to two CPUs (fewer where the machine has fewer): saturation
//! then comes at the same load on every machine, 2.5 requests a second at 800 ms each.

use std::time::Duration;

use rustix::time::{ClockId, clock_gettime};
use tokio::sync::Semaphore;

/// Where burning requests take turns.
#[derive(Debug)]
pub struct Burner {
    cores: Semaphore,
}

/// The most requests that burn at once: the service's two CPUs.
pub const CORES: usize = 2;

impl Default for Burner {
    fn default() -> Self {
        let machine = std::thread::available_parallelism().map_or(1, usize::from);
        Self::with_cores(machine.min(CORES))
    }
}

impl Burner {
    /// At most `cores` requests burning at once.
    pub fn with_cores(cores: usize) -> Self {
        Self {
            cores: Semaphore::new(cores),
        }
    }

    /// Spends `cpu` of CPU time, once a core is free; returns the CPU time spent.
    pub async fn burn(&self, cpu: Duration) -> Duration {
        let _core = self.cores.acquire().await.expect("never closed");
        tokio::task::spawn_blocking(move || spin(cpu))
            .await
            .unwrap_or_default()
    }
}

/// This thread's CPU time.
fn thread_cpu() -> Duration {
    let t = clock_gettime(ClockId::ThreadCPUTime);
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

/// Computes (a hash chain) until this thread has used `cpu`; returns what it used.
fn spin(cpu: Duration) -> Duration {
    let start = thread_cpu();
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    loop {
        for _ in 0..10_000 {
            // xorshift64*: cheap, and not something the compiler can skip.
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            x = x.wrapping_mul(0x2545_F491_4F6C_DD1D);
        }
        std::hint::black_box(x);
        let used = thread_cpu() - start;
        if used >= cpu {
            return used;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread")]
    async fn it_spends_the_cpu_it_is_asked_for() {
        let burner = Burner::default();
        let wall = std::time::Instant::now();
        let used = burner.burn(Duration::from_millis(50)).await;
        assert!(
            used >= Duration::from_millis(50) && used < Duration::from_millis(80),
            "{used:?}"
        );
        // CPU time is not wall time: on a busy machine the wall clock may run further.
        assert!(wall.elapsed() >= Duration::from_millis(50));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn no_more_burn_at_once_than_there_are_cores() {
        // One core: three burns of 40 ms take turns, so at least 120 ms go by.
        let burner = std::sync::Arc::new(Burner::with_cores(1));
        let wall = std::time::Instant::now();
        let burns: Vec<_> = (0..3)
            .map(|_| {
                let burner = burner.clone();
                tokio::spawn(async move { burner.burn(Duration::from_millis(40)).await })
            })
            .collect();
        for burn in burns {
            assert!(burn.await.unwrap() >= Duration::from_millis(40));
        }
        assert!(
            wall.elapsed() >= Duration::from_millis(120),
            "{:?}",
            wall.elapsed()
        );
    }
}
