//! A short soak in CI: 40 sessions over 4 companies editing for a few seconds through the real
//! relay. Every edit must reach every other replica of its company, every company must
//! converge, nothing may fail. (The long soak is the `ficha-soak` binary; figures in
//! docs/RELIABILITY.md.)

use std::time::Duration;

use anyhow::Result;
use ficha_e2e::bin;
use ficha_e2e::soak::{SoakConfig, run};

#[test]
fn forty_sessions_editing_at_once_lose_nothing() -> Result<()> {
    let report = run(
        &bin("ficha-relay"),
        &SoakConfig {
            sessions: 40,
            companies: 4,
            duration: Duration::from_secs(6),
            edit_every: Duration::from_millis(300),
            flooders: 0,
            flood: Default::default(),
        },
    )?;
    assert!(report.errors.is_empty(), "{:#?}", report.errors);
    assert!(report.edits >= 40 * 10, "{} edits", report.edits);
    assert_eq!(report.deliveries, report.expected_deliveries);
    assert_eq!(report.expected_deliveries, report.edits * 9);
    assert!(report.delay_p99_ms.is_finite());
    assert!(!report.relay_rss_mib.is_empty());
    Ok(())
}
