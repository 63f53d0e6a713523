//! Waiting for something the daemon or the host does in its own time (a container's first write,
//! a restart by policy, a dataset destroyed in the background): [`eventually`] asks again and
//! again until the answer is there or the time is up, and hands the last answer back, so that
//! the caller asserts on it with its own message.

use std::time::{Duration, Instant};

/// How long [`eventually`] waits between two questions.
const INTERVAL: Duration = Duration::from_millis(50);

/// An answer [`eventually`] can wait for: `true`, `Some(_)` or `Ok(_)` mean it is there.
pub trait Outcome {
    /// Whether the awaited thing happened.
    fn arrived(&self) -> bool;
}

impl Outcome for bool {
    fn arrived(&self) -> bool {
        *self
    }
}

impl<T> Outcome for Option<T> {
    fn arrived(&self) -> bool {
        self.is_some()
    }
}

impl<T, E> Outcome for Result<T, E> {
    fn arrived(&self) -> bool {
        self.is_ok()
    }
}

/// Calls `check` every 50 ms until its answer has [`arrived`](Outcome::arrived), at most for
/// `timeout`, and answers the last answer: `false`, `None` or the last `Err` when time ran out
/// (an `Err` can carry what was seen, for the caller's message). `check` runs at least once.
#[must_use = "the answer says whether it happened in time"]
pub fn eventually<R: Outcome>(timeout: Duration, mut check: impl FnMut() -> R) -> R {
    let deadline = Instant::now() + timeout;
    loop {
        let answer = check();
        if answer.arrived() || Instant::now() >= deadline {
            return answer;
        }
        std::thread::sleep(INTERVAL);
    }
}
