//! Login and refresh rate limits, and the bounded pool that runs password hashing.
//!
//! Both exist so that a flood of logins costs the attacker more than it costs the proxied
//! traffic: the limiter refuses early (429), and the pool caps how much CPU and memory
//! hashing may take (503 when its queue is full).

use std::hash::Hash;
use std::num::NonZeroU32;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};

use crate::config::Rate;

type Job = Box<dyn FnOnce() + Send + 'static>;

/// CPU-heavy password hashing on dedicated OS threads with a bounded queue, so a login flood
/// can neither occupy the async workers nor grow memory without bound.
///
/// Clones share the same threads; the threads end when the last clone is dropped.
#[derive(Clone)]
pub struct HashPool {
    jobs: SyncSender<Job>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("hashing pool queue is full")]
pub struct PoolBusy;

// === impl HashPool ===

impl HashPool {
    /// `threads` workers (at least 1) and room for `queue` waiting jobs.
    pub fn new(threads: usize, queue: usize) -> HashPool {
        let (jobs, receiver) = std::sync::mpsc::sync_channel::<Job>(queue);
        let receiver = Arc::new(Mutex::new(receiver));
        for index in 0..threads.max(1) {
            let receiver = receiver.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("portcullis-hash-{index}"))
                .spawn(move || worker(&receiver));
            if let Err(e) = spawned {
                // Fewer workers is slower, not wrong; with none at all every job stays queued
                // and the full queue turns logins into 503s rather than a crash.
                tracing::error!(error = %e, "cannot start a password hashing thread");
            }
        }
        HashPool { jobs }
    }

    /// Half the cores (at least 1), leaving the rest to proxied traffic; 16 queued jobs per thread.
    pub fn with_default_size() -> HashPool {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let threads = (cores / 2).max(1);
        HashPool::new(threads, threads * 16)
    }

    /// Queues `job` without waiting for room; `PoolBusy` when the queue is full.
    pub async fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, PoolBusy> {
        let (answer, answered) = tokio::sync::oneshot::channel();
        let wrapped: Job = Box::new(move || {
            // The caller gave up (client went away): skip the expensive work.
            if !answer.is_closed() {
                let _ = answer.send(job());
            }
        });
        match self.jobs.try_send(wrapped) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => return Err(PoolBusy),
        }
        // A job that panicked drops its sender; the caller sees "busy" (503), never a success.
        answered.await.map_err(|_| PoolBusy)
    }
}

fn worker(receiver: &Mutex<Receiver<Job>>) {
    lower_priority();
    loop {
        // The lock is held only while waiting for the next job, never while running it.
        let next = match receiver.lock() {
            Ok(receiver) => receiver.recv(),
            Err(poisoned) => poisoned.into_inner().recv(),
        };
        let Ok(job) = next else { return };
        // A panicking job must not take the worker with it.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
    }
}

/// Hashing runs under `SCHED_IDLE`: the scheduler runs it only when no proxy worker wants the
/// core and preempts it the moment one wakes, so a login flood slows logins (then fills the
/// queue: 503) rather than every proxied request. A plain `nice` value is not enough: a
/// niced thread still keeps the core for a whole time slice once it has it, which showed up
/// as a tripled proxied p99 under a login flood (bench/run.sh's flood phase).
#[cfg(target_os = "linux")]
fn lower_priority() {
    use thread_priority::unix::{
        NormalThreadSchedulePolicy, ThreadSchedulePolicy, set_thread_priority_and_policy, thread_native_id,
    };
    let idle = ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle);
    let set = set_thread_priority_and_policy(thread_native_id(), thread_priority::ThreadPriority::Min, idle);
    if let Err(e) = set {
        tracing::warn!(error = ?e, "cannot lower the priority of a password hashing thread");
    }
}

#[cfg(not(target_os = "linux"))]
fn lower_priority() {}

// === impl KeyedLimiter ===

/// One GCRA limit per key: `count` events per `per`, with a burst of `count`.
pub struct KeyedLimiter<K: Hash + Eq + Clone> {
    limiter: DefaultKeyedRateLimiter<K>,
    clock: DefaultClock,
}

impl<K: Hash + Eq + Clone> KeyedLimiter<K> {
    pub fn new(rate: Rate) -> KeyedLimiter<K> {
        KeyedLimiter {
            limiter: DefaultKeyedRateLimiter::keyed(quota(rate)),
            clock: DefaultClock::default(),
        }
    }

    /// Counts one event for `key`; `Err(retry_after)` (whole seconds, at least 1) when over.
    pub fn check(&self, key: &K) -> Result<(), Duration> {
        self.limiter.check_key(key).map_err(|not_until| {
            let wait = not_until.wait_time_from(self.clock.now());
            whole_seconds(wait)
        })
    }

    /// Drops keys whose state is back to fresh, so memory follows the active keys only.
    pub fn forget_idle(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }

    /// How many keys are being tracked (an estimate under concurrent use).
    pub fn len(&self) -> usize {
        self.limiter.len()
    }

    pub fn is_empty(&self) -> bool {
        self.limiter.is_empty()
    }
}

fn quota(rate: Rate) -> Quota {
    // Validated rates are never zero; clamping keeps a hand-built one from panicking.
    let count = NonZeroU32::new(rate.count).unwrap_or(NonZeroU32::MIN);
    let period = (rate.per / count.get()).max(Duration::from_nanos(1));
    Quota::with_period(period)
        .unwrap_or_else(|| Quota::per_second(count))
        .allow_burst(count)
}

/// Retry-After is in whole seconds; rounding down could tell a client to retry too early.
fn whole_seconds(wait: Duration) -> Duration {
    let mut seconds = wait.as_secs();
    if wait.subsec_nanos() > 0 {
        seconds += 1;
    }
    Duration::from_secs(seconds.max(1))
}

// === impl LoginLimiter ===

/// `login_per_ip` and `login_per_user`, checked together on every attempt.
pub struct LoginLimiter {
    per_ip: KeyedLimiter<std::net::IpAddr>,
    per_user: KeyedLimiter<String>,
}

impl LoginLimiter {
    pub fn new(per_ip: Rate, per_user: Rate) -> LoginLimiter {
        LoginLimiter {
            per_ip: KeyedLimiter::new(per_ip),
            per_user: KeyedLimiter::new(per_user),
        }
    }

    /// Counts one attempt for both keys; `Err(retry_after)` when either is over its limit.
    ///
    /// Both keys are always checked, so an attacker cannot spend one limit without the other,
    /// and unknown users are counted exactly like existing ones.
    pub fn check(&self, ip: std::net::IpAddr, username: &str) -> Result<(), Duration> {
        let by_ip = self.per_ip.check(&ip);
        let by_user = self.per_user.check(&user_key(username));
        match (by_ip, by_user) {
            (Ok(()), Ok(())) => Ok(()),
            (Err(a), Err(b)) => Err(a.max(b)),
            (Err(wait), Ok(())) | (Ok(()), Err(wait)) => Err(wait),
        }
    }

    /// Drops idle keys so memory stays bounded; call from a periodic task.
    pub fn forget_idle(&self) {
        self.per_ip.forget_idle();
        self.per_user.forget_idle();
    }
}

/// Real names are at most 128 bytes; capping the key stops megabyte-long made-up names from
/// filling the limiter's memory, while still counting them (in a shared bucket per prefix).
fn user_key(username: &str) -> String {
    let bytes = username.as_bytes();
    let capped = &bytes[..bytes.len().min(MAX_USER_KEY_BYTES)];
    String::from_utf8_lossy(capped).to_ascii_lowercase()
}

const MAX_USER_KEY_BYTES: usize = 256;

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::net::IpAddr;
    use std::pin::pin;
    use std::task::{Context, Poll, Waker};

    use super::*;

    fn per_minute(count: u32) -> Rate {
        Rate {
            count,
            per: Duration::from_secs(60),
        }
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("test address")
    }

    /// Polls once, as the first `.await` would, without waiting.
    fn poll_once<F: Future>(future: std::pin::Pin<&mut F>) -> Poll<F::Output> {
        future.poll(&mut Context::from_waker(Waker::noop()))
    }

    #[tokio::test]
    async fn the_pool_runs_jobs_off_the_calling_thread() {
        let pool = HashPool::new(2, 4);
        let caller = std::thread::current().id();
        let (id, name) = pool
            .run(|| {
                (
                    std::thread::current().id(),
                    std::thread::current().name().map(String::from),
                )
            })
            .await
            .expect("pool has room");
        assert_ne!(id, caller);
        assert!(name.unwrap_or_default().starts_with("portcullis-hash-"));
    }

    /// `SCHED_IDLE` is policy 5 (sched.h); `/proc/thread-self/stat` field 41 is the policy.
    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn hashing_threads_run_under_sched_idle() {
        let pool = HashPool::new(1, 1);
        let stat = pool
            .run(|| std::fs::read_to_string("/proc/thread-self/stat").expect("stat"))
            .await
            .expect("ran");
        let after_name = stat.rsplit_once(')').expect("comm").1;
        let policy = after_name.split_whitespace().nth(38).expect("policy field");
        assert_eq!(policy, "5", "{stat}");
    }

    #[tokio::test]
    async fn a_saturated_pool_answers_busy_immediately() {
        let pool = HashPool::new(1, 1);
        let (started_tx, started_rx) = std::sync::mpsc::channel();
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let mut blocked = pin!(pool.run(move || {
            let _ = started_tx.send(());
            let _ = release_rx.recv();
            "blocked"
        }));
        assert!(poll_once(blocked.as_mut()).is_pending());
        started_rx
            .recv_timeout(Duration::from_secs(5))
            .expect("the worker took the first job");
        let mut queued = pin!(pool.run(|| "queued"));
        assert!(poll_once(queued.as_mut()).is_pending());

        let mut refused = pin!(pool.run(|| "refused"));
        assert_eq!(poll_once(refused.as_mut()), Poll::Ready(Err(PoolBusy)));

        release_tx.send(()).expect("worker is waiting");
        assert_eq!(blocked.await, Ok("blocked"));
        assert_eq!(queued.await, Ok("queued"));
    }

    #[tokio::test]
    async fn a_panicking_job_is_reported_busy_and_the_worker_survives() {
        let pool = HashPool::new(1, 1);
        assert_eq!(pool.run(|| -> u8 { panic!("job failed") }).await, Err(PoolBusy));
        assert_eq!(pool.run(|| 7).await, Ok(7));
    }

    #[test]
    fn the_attempt_after_the_burst_is_refused_with_a_whole_second_retry_after() {
        let limiter = LoginLimiter::new(per_minute(100), per_minute(3));
        for _ in 0..3 {
            assert_eq!(limiter.check(ip("192.0.2.1"), "alice"), Ok(()));
        }
        let retry_after = limiter
            .check(ip("192.0.2.1"), "alice")
            .expect_err("fourth is over");
        assert!(retry_after >= Duration::from_secs(1), "{retry_after:?}");
        assert!(retry_after <= Duration::from_secs(20), "{retry_after:?}");
        assert_eq!(retry_after.subsec_nanos(), 0);
    }

    #[test]
    fn a_different_ip_is_still_limited_per_user() {
        let limiter = LoginLimiter::new(per_minute(100), per_minute(2));
        assert_eq!(limiter.check(ip("192.0.2.1"), "alice"), Ok(()));
        assert_eq!(limiter.check(ip("192.0.2.2"), "alice"), Ok(()));
        assert!(limiter.check(ip("2001:db8::1"), "alice").is_err());
        assert_eq!(limiter.check(ip("2001:db8::1"), "bob"), Ok(()));
    }

    #[test]
    fn different_users_from_one_ip_hit_the_per_ip_limit() {
        let limiter = LoginLimiter::new(per_minute(3), per_minute(100));
        for user in ["a", "b", "c"] {
            assert_eq!(limiter.check(ip("192.0.2.1"), user), Ok(()));
        }
        assert!(limiter.check(ip("192.0.2.1"), "d").is_err());
        assert_eq!(limiter.check(ip("192.0.2.9"), "d"), Ok(()));
    }

    #[test]
    fn usernames_share_a_limit_regardless_of_case() {
        let limiter = LoginLimiter::new(per_minute(100), per_minute(1));
        assert_eq!(limiter.check(ip("192.0.2.1"), "Alice"), Ok(()));
        assert!(limiter.check(ip("192.0.2.2"), "aLICE").is_err());
    }

    #[test]
    fn forgetting_idle_keys_keeps_the_ones_still_limited() {
        let limiter = KeyedLimiter::new(per_minute(1));
        assert_eq!(limiter.check(&"session"), Ok(()));
        limiter.forget_idle();
        assert_eq!(limiter.len(), 1);
        assert!(limiter.check(&"session").is_err());
    }

    #[test]
    fn a_hand_built_zero_rate_does_not_panic() {
        let limiter = KeyedLimiter::new(Rate {
            count: 0,
            per: Duration::ZERO,
        });
        assert_eq!(limiter.check(&1u8), Ok(()));
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        assert_eq!(whole_seconds(Duration::ZERO), Duration::from_secs(1));
        assert_eq!(whole_seconds(Duration::from_millis(1500)), Duration::from_secs(2));
        assert_eq!(whole_seconds(Duration::from_secs(20)), Duration::from_secs(20));
    }
}
