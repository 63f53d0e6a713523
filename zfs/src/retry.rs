//! The bounded backoff applied to "dataset is busy".
//!
//! ZFS reports a dataset as busy while something still holds it: on zfs-fuse, a destroy right
//! after a clone (or after destroying a child) answers "dataset is busy" for roughly 50 ms;
//! on OpenZFS a just-exited jail's mount can linger the same way. Retrying a few times with a
//! short doubling delay turns those transient refusals into successes without hiding a
//! dataset that is really in use: after the last attempt the [`ZfsError::Busy`] is returned.
//!
//! The policy is a value so tests can use zero delays and hosts can tune it.

use std::thread;
use std::time::Duration;

use crate::error::ZfsError;

/// How often and how patiently a busy operation is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Total attempts, including the first; `1` means no retry.
    pub attempts: u32,
    /// Delay before the second attempt; each further delay doubles.
    pub initial_delay: Duration,
}

impl Default for RetryPolicy {
    /// 5 attempts, 20 ms doubling: at most 20+40+80+160 = 300 ms of waiting, several times
    /// the ~50 ms zfs-fuse needs after a clone.
    fn default() -> Self {
        RetryPolicy {
            attempts: 5,
            initial_delay: Duration::from_millis(20),
        }
    }
}

impl RetryPolicy {
    /// No retry at all.
    pub fn none() -> Self {
        RetryPolicy {
            attempts: 1,
            initial_delay: Duration::ZERO,
        }
    }

    /// `attempts` tries without sleeping in between, for tests with a fake runner.
    pub fn immediate(attempts: u32) -> Self {
        RetryPolicy {
            attempts,
            initial_delay: Duration::ZERO,
        }
    }

    /// The delay before attempt `n + 1` (so `n` counts from 1).
    pub fn delay_after(&self, n: u32) -> Duration {
        let doublings = n.saturating_sub(1).min(16);
        self.initial_delay.saturating_mul(1 << doublings)
    }

    /// Runs `op` until it returns anything but [`ZfsError::Busy`] or the attempts are used up.
    /// Blocks the calling thread while waiting.
    pub fn run<T>(&self, mut op: impl FnMut() -> Result<T, ZfsError>) -> Result<T, ZfsError> {
        let attempts = self.attempts.max(1);
        let mut n = 1;
        loop {
            match op() {
                Err(err) if err.is_busy() && n < attempts => {
                    let delay = self.delay_after(n);
                    tracing::debug!(attempt = n, ?delay, error = %err, "zfs busy, retrying");
                    if !delay.is_zero() {
                        thread::sleep(delay);
                    }
                    n += 1;
                }
                other => return other,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn busy() -> ZfsError {
        ZfsError::Busy {
            dataset: "p/a".into(),
        }
    }

    #[test]
    fn default_delays_double_from_20ms() {
        let policy = RetryPolicy::default();
        let delays: Vec<u128> = (1..policy.attempts)
            .map(|n| policy.delay_after(n).as_millis())
            .collect();
        assert_eq!(delays, [20, 40, 80, 160]);
    }

    #[test]
    fn busy_is_retried_until_success() {
        let mut calls = 0;
        let result = RetryPolicy::immediate(5).run(|| {
            calls += 1;
            if calls < 3 {
                Err(busy())
            } else {
                Ok(calls)
            }
        });
        assert_eq!(result.expect("third attempt succeeds"), 3);
    }

    #[test]
    fn busy_is_returned_after_the_last_attempt() {
        let mut calls = 0;
        let result: Result<(), _> = RetryPolicy::immediate(4).run(|| {
            calls += 1;
            Err(busy())
        });
        assert!(result.expect_err("always busy").is_busy());
        assert_eq!(calls, 4);
    }

    #[test]
    fn other_errors_are_not_retried() {
        let mut calls = 0;
        let result: Result<(), _> = RetryPolicy::immediate(5).run(|| {
            calls += 1;
            Err(ZfsError::NotFound {
                dataset: "p/a".into(),
            })
        });
        assert!(result.expect_err("not found").is_not_found());
        assert_eq!(calls, 1);
    }

    #[test]
    fn zero_attempts_still_runs_once() {
        let mut calls = 0;
        let _ = RetryPolicy::immediate(0).run(|| {
            calls += 1;
            Err::<(), _>(busy())
        });
        assert_eq!(calls, 1);
    }
}
