//! The trash's retention: trashed clients stay restorable for a period, then `trash purge`
//! removes their personal data (see `ficha_domain::purge`).

use serde::Serialize;

use ficha_core::DocId;
use ficha_domain::search::Filter;

use crate::app::{AppError, Replica, now_ms};

/// What a purge did.
#[derive(Debug, Default, Serialize)]
pub struct PurgeReport {
    /// Trashed clients purged now.
    pub purged: usize,
    /// Purged clients cleaned again because an offline edit had brought data back.
    pub recleaned: usize,
    /// Trashed clients still inside their retention period.
    pub kept: usize,
}

impl Replica {
    /// Purges clients trashed more than `retention_days` ago, and cleans purged clients that
    /// a concurrent edit refilled. Each purge is one durable edit, recorded in the client's log.
    pub fn purge_trash(&self, retention_days: u32) -> Result<PurgeReport, AppError> {
        self.require(crate::app::Role::Admin)?;
        let cutoff = now_ms() - i64::from(retention_days) * 86_400_000;
        let trashed = |until| Filter {
            state: Some("trashed".into()),
            until,
            ..Filter::default()
        };
        let mut report = PurgeReport::default();
        for c in self.query(&trashed(Some(cutoff)))? {
            self.purge_one(DocId::from(c.id))?;
            report.purged += 1;
        }
        report.kept = self.query(&trashed(None))?.len();
        let purged = Filter {
            state: Some("purged".into()),
            ..Filter::default()
        };
        for c in self.query(&purged)? {
            let id = DocId::from(c.id);
            let Some(doc) = self.store().read_doc(&id)? else {
                continue;
            };
            if ficha_domain::purge::has_residue(&doc)? {
                self.purge_one(id)?;
                report.recleaned += 1;
            }
        }
        Ok(report)
    }

    fn purge_one(&self, id: DocId) -> Result<(), AppError> {
        self.logged(id, "purged", "", |d| {
            Ok(ficha_domain::purge::purge(d, now_ms())?)
        })
    }
}
