//! One result row per measured metric, printed as a table or as JSON lines.

use serde::Serialize;

/// A measured metric of one workload against its baseline.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// Workload name (the names the issue fixes).
    pub workload: &'static str,
    /// What was measured.
    pub metric: String,
    /// Our figure.
    pub ours: f64,
    /// The baseline's figure, measured in the same run.
    pub baseline: f64,
    /// ours / baseline.
    pub ratio: f64,
    /// Unit of `ours` and `baseline`.
    pub unit: &'static str,
    /// The sizes used.
    pub sizes: serde_json::Value,
    /// What the baseline is.
    pub against: &'static str,
}

impl Row {
    /// A row; the ratio is computed here so it is always ours / baseline.
    pub fn new(
        workload: &'static str,
        metric: impl Into<String>,
        ours: f64,
        baseline: f64,
        unit: &'static str,
        against: &'static str,
        sizes: serde_json::Value,
    ) -> Self {
        let ratio = if baseline == 0.0 {
            f64::NAN
        } else {
            ours / baseline
        };
        Self {
            workload,
            metric: metric.into(),
            ours,
            baseline,
            ratio,
            unit,
            sizes,
            against,
        }
    }

    /// Prints the row as the configured format.
    pub fn print(&self, json: bool) {
        if json {
            match serde_json::to_string(self) {
                Ok(s) => println!("{s}"),
                Err(e) => eprintln!("cannot print row: {e}"),
            }
        } else {
            println!(
                "{:<22} {:<34} {:>14} {:>14} {:>10} {:<6} vs {}",
                self.workload,
                self.metric,
                fmt(self.ours),
                fmt(self.baseline),
                format!("{:.4}", self.ratio),
                self.unit,
                self.against
            );
        }
    }
}

fn fmt(v: f64) -> String {
    if v.abs() >= 1000.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.3}")
    }
}

/// The median of a sample (sorted in place).
pub fn median(samples: &mut [f64]) -> f64 {
    percentile(samples, 0.5)
}

/// A percentile (0..=1) of a sample (sorted in place).
pub fn percentile(samples: &mut [f64], p: f64) -> f64 {
    if samples.is_empty() {
        return f64::NAN;
    }
    samples.sort_by(|a, b| a.total_cmp(b));
    let i = ((samples.len() - 1) as f64 * p).round() as usize;
    samples[i]
}

/// Reports on stderr how long a phase of a workload took since `since`, and restarts it: the
/// full run has a time budget, and fixtures are most of it.
pub fn phase(workload: &str, what: &str, since: &mut std::time::Instant) {
    eprintln!(
        "  {workload}: {what} {:.1} s",
        since.elapsed().as_secs_f64()
    );
    *since = std::time::Instant::now();
}
