//! Skin-test status that only moves forward, even through a merge.
//!
//! The status is stored as the set of stages reached (`stages: {stage: true}`), never as one
//! register: a replica still saying `pending` merged with one saying `satisfactory` keeps both
//! flags, and the furthest stage wins. If both outcomes were recorded concurrently, the view
//! reports `unsatisfactory` (a failed test must never pass through a merge) and names the
//! other outcome in `status_conflict`.

use automerge::transaction::Transactable;
use automerge::{AutoCommit, ObjId, ObjType, ReadDoc};

use crate::error::DomainError;
use crate::read;

/// Stages in order; the last two are the outcomes.
pub const STAGES: &[&str] = &["pending", "in_progress", "satisfactory", "unsatisfactory"];

fn rank(stage: &str) -> usize {
    match stage {
        "pending" => 0,
        "in_progress" => 1,
        _ => 2,
    }
}

/// The effective status and, if both outcomes were reached, the other one.
pub fn status(
    doc: &impl ReadDoc,
    item: &ObjId,
) -> Result<(&'static str, Option<&'static str>), DomainError> {
    let Some(stages) = read::map(doc, item, "stages")? else {
        return Ok(("pending", None));
    };
    let reached: Vec<&'static str> = STAGES
        .iter()
        .copied()
        .filter(|s| read::boolean(doc, &stages, s).unwrap_or(false))
        .collect();
    let sat = reached.contains(&"satisfactory");
    let unsat = reached.contains(&"unsatisfactory");
    Ok(match (sat, unsat) {
        (true, true) => ("unsatisfactory", Some("satisfactory")),
        (true, false) => ("satisfactory", None),
        (false, true) => ("unsatisfactory", None),
        _ => (
            reached
                .iter()
                .copied()
                .max_by_key(|s| rank(s))
                .unwrap_or("pending"),
            None,
        ),
    })
}

/// Moves the test to `to`; refuses to go backwards or to change a recorded outcome.
pub fn advance(doc: &mut AutoCommit, item: &ObjId, to: &str) -> Result<(), DomainError> {
    let stage =
        STAGES
            .iter()
            .copied()
            .find(|s| *s == to)
            .ok_or_else(|| DomainError::InvalidValue {
                field: "status".into(),
                reason: format!("{to:?} is not one of: {}", STAGES.join(", ")),
            })?;
    let (current, _) = status(doc, item)?;
    if rank(stage) < rank(current) || (rank(current) == 2 && current != stage) {
        return Err(DomainError::InvalidValue {
            field: "status".into(),
            reason: format!("a skin test cannot go from {current} to {stage}"),
        });
    }
    let stages = match read::map(doc, item, "stages")? {
        Some(s) => s,
        None => doc.put_object(item, "stages", ObjType::Map)?,
    };
    doc.put(&stages, stage, true)?;
    Ok(())
}
