//! Pacing: every frame a session sends costs the relay work, so each is paid for from a token
//! bucket, and a session over its share waits before its next frame is read (TCP then pushes
//! back on it) instead of every other session waiting behind it.

use std::time::Duration;

use tokio::time::Instant;

/// A token bucket.
pub(super) struct Pace {
    rate: f64,
    burst: f64,
    tokens: f64,
    at: Instant,
}

impl Pace {
    pub(super) fn new(rate: f64, burst: f64) -> Self {
        Self {
            rate: rate.max(f64::MIN_POSITIVE),
            burst: burst.max(1.0),
            tokens: burst.max(1.0),
            at: Instant::now(),
        }
    }

    /// Spends `cost` tokens; returns how long to wait if the session is over its rate.
    pub(super) fn take(&mut self, now: Instant, cost: f64) -> Option<Duration> {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.at = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst) - cost;
        (self.tokens < 0.0).then(|| Duration::from_secs_f64(-self.tokens / self.rate))
    }
}

/// What a frame other than an upload costs from a session's work bucket (uploads have a bucket
/// of their own: each is a durable write). Reconciling reads every document digest of a
/// company; subscribing starts a catch-up; a repair step may load a document; acknowledging a
/// page reads the next.
pub(super) fn work_of(kind: Option<&str>) -> f64 {
    match kind {
        Some("reconcile") => 100.0,
        Some("subscribe") => 20.0,
        Some("doc_sync") | Some("page_ack") => 1.0,
        _ => 1.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_passes_then_frames_are_paced_to_the_rate() {
        let start = Instant::now();
        let mut pace = Pace::new(10.0, 3.0);
        assert!(
            (0..3).all(|_| pace.take(start, 1.0).is_none()),
            "the burst passes"
        );
        let wait = pace.take(start, 1.0).expect("over the burst");
        assert!((wait.as_secs_f64() - 0.1).abs() < 1e-9, "{wait:?}");
        // Waiting it out refills exactly that token.
        assert!(pace.take(start + Duration::from_millis(200), 1.0).is_none());
    }

    #[test]
    fn a_reconcile_costs_a_hundred_acknowledgements() {
        let start = Instant::now();
        let mut pace = Pace::new(200.0, 2000.0);
        let reconciles = (0..100)
            .take_while(|_| pace.take(start, work_of(Some("reconcile"))).is_none())
            .count();
        assert_eq!(reconciles, 20, "a burst of 20 reconciles, then 2 a second");
        let wait = pace.take(start, work_of(Some("reconcile"))).expect("paced");
        assert!((wait.as_secs_f64() - 1.0).abs() < 1e-9, "{wait:?}");
    }
}
