//! Polling a condition against a deadline: what tests do instead of sleeping
//! for a guessed time.

use std::thread;
use std::time::{Duration, Instant};

/// Calls `cond` every couple of milliseconds until it returns true (→ true)
/// or `timeout` has passed (→ false, after one last check).
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return cond();
        }
        thread::sleep(Duration::from_millis(2));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn returns_as_soon_as_the_condition_holds() {
        let mut calls = 0;
        assert!(wait_until(Duration::from_secs(5), || {
            calls += 1;
            calls == 3
        }));
        assert_eq!(calls, 3);
    }

    #[test]
    fn gives_up_after_the_timeout() {
        let started = Instant::now();
        assert!(!wait_until(Duration::from_millis(20), || false));
        assert!(started.elapsed() >= Duration::from_millis(20));
    }
}
