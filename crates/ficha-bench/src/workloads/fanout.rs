//! Live fan-out: one writer, many subscribers.

use anyhow::Result;

use crate::report::Row;

/// Not measured yet.
pub async fn fanout(_subscribers: usize, _changes: usize) -> Result<Vec<Row>> {
    anyhow::bail!("fanout is not implemented yet")
}
