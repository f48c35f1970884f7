//! Lists, metrics and the status a person sees, read without loading documents.

use serde::Serialize;

use ficha_core::Company;
use ficha_domain::ClientSummary;
use ficha_domain::search::{Filter, Sort};
use ficha_store::{QuarantinedDoc, RefusedEntry};

use super::{AppError, Replica};
use crate::progress::Snapshot;

/// Every state a list may be filtered by.
const STATES: &[&str] = &["active", "archived", "trashed", "merged", "purged"];

/// An ISO 8601 date-time (UTC) for milliseconds since the Unix epoch.
pub fn iso(ms: i64) -> Option<String> {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
}

/// Adds `X_iso` beside every integer `X_at` (and `at`) of a JSON view, so people and scripts
/// read dates as dates.
pub(crate) fn add_iso_dates(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(m) => {
            let dates: Vec<(String, String)> = m
                .iter()
                .filter(|(k, _)| k.ends_with("_at") || k.as_str() == "at")
                .filter_map(|(k, v)| Some((format!("{k}_iso"), iso(v.as_i64()?)?)))
                .collect();
            for x in m.values_mut() {
                add_iso_dates(x);
            }
            for (k, d) in dates {
                m.insert(k, serde_json::Value::String(d));
            }
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(add_iso_dates),
        _ => {}
    }
}

/// The status the API and CLI report.
#[derive(Debug, Serialize)]
pub struct Status {
    /// "connected" only while a session with the relay is up, else "disconnected".
    pub relay: &'static str,
    /// The background sync: "running", "restarting" (it failed and is started again) or
    /// "off" (no `ficha serve`).
    pub sync: &'static str,
    /// Local changes not acknowledged by the relay.
    pub pending_upload: u64,
    /// This replica's name.
    pub replica: String,
    /// This replica's id.
    pub replica_id: String,
    /// The relay's URL.
    pub relay_url: String,
    /// Documents held.
    pub documents: u64,
    /// Whether this replica's token may upload.
    pub read_only: bool,
    /// When a sync last completed (ISO 8601), if ever.
    pub last_sync_at: Option<String>,
    /// The last sync error, if the last session ended in one.
    pub last_error: Option<String>,
    /// Documents whose data from the relay could not be applied.
    pub quarantined: Vec<QuarantinedDoc>,
    /// Local changes the relay refused for good.
    pub refused: Vec<RefusedEntry>,
    /// What a damaged edit journal lost at the last opening that found damage.
    pub journal_damage: Option<String>,
    /// The sync round under way, once it has run longer than a second; `null` otherwise.
    pub progress: Option<Snapshot>,
}

impl Replica {
    /// Refuses a filter value that can match nothing by mistake (an unknown state, a company
    /// this replica does not see): an empty list would hide the typo.
    pub fn check_filter(&self, filter: &Filter) -> Result<(), AppError> {
        if let Some(s) = &filter.state
            && !STATES.contains(&s.as_str())
        {
            return Err(AppError::BadInput(format!(
                "unknown state {s:?}; states: {}",
                STATES.join(", ")
            )));
        }
        if let Some(c) = &filter.company {
            let company = Company::new(c)?;
            self.check_granted(&company)?;
        }
        if let (Some(since), Some(until)) = (filter.since, filter.until)
            && since >= until
        {
            return Err(AppError::BadInput("--since must be before --until".into()));
        }
        Ok(())
    }

    /// Every client's summary, sorted by name then id, without loading any document.
    pub fn list(&self) -> Result<Vec<ClientSummary>, AppError> {
        self.query(&Filter::default())
    }

    /// Every client `filter` matches, in list order.
    pub fn query(&self, filter: &Filter) -> Result<Vec<ClientSummary>, AppError> {
        Ok(crate::listing::query(
            &self.store,
            &self.scoped(filter),
            0,
            None,
        )?)
    }

    /// An employee sees their own company only: a filter naming another finds nothing.
    pub(crate) fn scoped(&self, filter: &Filter) -> Filter {
        let mut f = filter.clone();
        if let Some(own) = self.actor_company() {
            if f.company.as_ref().is_some_and(|c| *c != own) {
                f.company = Some(format!("{own}\u{0}none"));
            } else {
                f.company = Some(own);
            }
        }
        f
    }

    /// One page of the clients `filter` matches (checked first), in list order.
    pub fn page(
        &self,
        filter: &Filter,
        offset: usize,
        limit: Option<usize>,
    ) -> Result<Vec<ClientSummary>, AppError> {
        self.check_filter(filter)?;
        Ok(crate::listing::query(&self.store, filter, offset, limit)?)
    }

    /// One page of the clients `filter` matches (checked first), in the order `sort` asks for.
    pub fn page_sorted(
        &self,
        filter: &Filter,
        sort: Sort,
        offset: usize,
        limit: Option<usize>,
    ) -> Result<Vec<ClientSummary>, AppError> {
        self.check_filter(filter)?;
        Ok(crate::listing::query_sorted(
            &self.store,
            &self.scoped(filter),
            sort,
            offset,
            limit,
        )?)
    }

    /// The list's quick metrics over the clients matching `filter` and `links`.
    pub fn metrics(
        &self,
        filter: &Filter,
        links: &super::LinkFilter,
    ) -> Result<serde_json::Value, AppError> {
        self.check_filter(filter)?;
        let mut clients = self.query(filter)?;
        if !links.is_empty() {
            let keep = self.link_predicate(links, super::now_ms())?;
            clients.retain(|c| keep(&c.id.to_string()));
        }
        let reviews: u32 = clients.iter().map(|c| c.reviews).sum();
        let ratings: u32 = clients.iter().map(|c| c.rating_sum).sum();
        let average = if reviews == 0 {
            None
        } else {
            Some(f64::from(ratings) / f64::from(reviews))
        };
        let total_sales = self.total_sales(clients.iter().map(|c| c.id.to_string()).collect())?;
        Ok(serde_json::json!({
            "total_sales": total_sales,
            "total_clients": clients.len(),
            "total_reviews": reviews,
            "average_rating": average,
        }))
    }

    /// Duplicate candidates among the clients this replica holds.
    pub fn duplicates(&self) -> Result<Vec<crate::duplicates::Candidate>, AppError> {
        let mut clients = self.query(&Filter::default())?;
        // The default filter already includes archived clients; trashed ones count too.
        clients.extend(self.query(&Filter {
            state: Some("trashed".into()),
            ..Filter::default()
        })?);
        Ok(crate::duplicates::candidates(&clients))
    }

    /// The replica's state; `relay`, `sync`, `last_error` and `progress` come from the sync
    /// driver, if one runs.
    pub fn status(
        &self,
        relay: &'static str,
        sync: &'static str,
        last_error: Option<String>,
        progress: Option<Snapshot>,
    ) -> Result<Status, AppError> {
        let store = self.store();
        let identity = store.identity();
        Ok(Status {
            relay,
            sync,
            pending_upload: store.pending_upload()?,
            replica: identity.name.clone(),
            replica_id: identity.replica.to_string(),
            relay_url: identity.relay_url.clone(),
            documents: store.doc_count()?,
            read_only: !self.may_write(),
            last_sync_at: store.last_sync()?.and_then(iso),
            last_error,
            quarantined: store.quarantined()?,
            refused: store.refused()?,
            journal_damage: store.journal_damage()?,
            progress,
        })
    }
}
