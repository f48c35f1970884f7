//! The replica as a user sees it: client records over the store, with sync notified on edit.

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;

use serde::Serialize;
use thiserror::Error;
use tokio::sync::Notify;
use uuid::Uuid;

use ficha_core::{Company, DocId, ReplicaId, token};
use ficha_domain::search::Filter;
use ficha_domain::{AlertPriority, ClientSummary, Priority};
use ficha_store::{Batch, Identity, Store, StoreError};

/// What a user action can fail with.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum AppError {
    /// The store failed or refused (not initialised, locked, unknown id…).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Input that does not make sense.
    #[error("{0}")]
    BadInput(String),
    /// A company this replica's token does not grant.
    #[error("company {company} is not granted to this replica (its token grants: {granted})")]
    NotGranted {
        /// The company asked for.
        company: String,
        /// The companies the token grants.
        granted: String,
    },
    /// An attachment could not be moved to or from the relay.
    #[error(transparent)]
    Blob(#[from] crate::files::BlobError),
}

impl AppError {
    /// True when the error is about something that does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(
            self,
            AppError::Store(StoreError::UnknownDoc(_))
                | AppError::Blob(crate::files::BlobError::Missing(_))
        )
    }

    /// True when the error is the caller's input.
    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            AppError::BadInput(_)
                | AppError::NotGranted { .. }
                | AppError::Store(StoreError::Edit(_))
        )
    }
}

pub use crate::listing::ClientIndexer;

/// What one import row writes besides the name.
#[derive(Clone, Copy)]
pub struct ImportedRow<'a> {
    /// Field values, by field name.
    pub fields: &'a [(&'a str, String)],
    /// Client groups to add.
    pub groups: &'a [String],
    /// A note to add (once).
    pub note: Option<&'a str>,
}

/// An open replica.
pub struct Replica {
    store: Arc<Store>,
    changed: Arc<Notify>,
}

/// Milliseconds since the Unix epoch, for record timestamps.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Midnight UTC of a YYYY-MM-DD day, in ms since the Unix epoch.
pub fn day_start_ms(day: &str) -> Result<i64, AppError> {
    let d = chrono::NaiveDate::parse_from_str(day, "%Y-%m-%d")
        .map_err(|e| AppError::BadInput(format!("{day:?} is not a YYYY-MM-DD date: {e}")))?;
    Ok(d.and_time(chrono::NaiveTime::MIN)
        .and_utc()
        .timestamp_millis())
}

/// Parses a client id given by a user.
pub fn parse_id(s: &str) -> Result<DocId, AppError> {
    DocId::from_str(s).map_err(|e| AppError::BadInput(e.to_string()))
}

impl Replica {
    /// Creates a replica in `dir`, bound to a relay and a token.
    pub fn init(
        dir: &Path,
        name: &str,
        relay_url: &str,
        token: &str,
    ) -> Result<Identity, AppError> {
        if !(relay_url.starts_with("ws://") || relay_url.starts_with("wss://")) {
            return Err(AppError::BadInput(format!(
                "relay URL {relay_url:?} must start with ws:// or wss://"
            )));
        }
        token::peek(token).map_err(|e| AppError::BadInput(format!("token: {e}")))?;
        let identity = Identity {
            replica: ReplicaId::from(Uuid::new_v4()),
            name: name.to_string(),
            relay_url: relay_url.to_string(),
            token: token.trim().to_string(),
        };
        Store::init(dir, &identity)?;
        Ok(identity)
    }

    /// Opens the replica in `dir`.
    pub fn open(dir: &Path) -> Result<Self, AppError> {
        let store = Store::open(dir, Arc::new(ClientIndexer))?;
        Ok(Self {
            store: Arc::new(store),
            changed: Arc::new(Notify::new()),
        })
    }

    /// The store, for the sync driver.
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// Signalled after every local edit.
    pub fn changed(&self) -> &Arc<Notify> {
        &self.changed
    }

    /// The companies this replica's token grants.
    pub fn granted(&self) -> Vec<Company> {
        token::peek(&self.store.identity().token)
            .map(|c| c.companies)
            .unwrap_or_default()
    }

    pub(crate) fn check_granted(&self, company: &Company) -> Result<(), AppError> {
        let granted = self.granted();
        if granted.contains(company) {
            Ok(())
        } else {
            Err(AppError::NotGranted {
                company: company.to_string(),
                granted: granted
                    .iter()
                    .map(Company::as_str)
                    .collect::<Vec<_>>()
                    .join(", "),
            })
        }
    }

    pub(crate) fn edited(&self) {
        self.changed.notify_one();
    }

    /// Starts a batch of edits that become durable together (imports).
    pub fn batch(&self) -> Result<Batch<'_>, AppError> {
        Ok(self.store.batch()?)
    }

    /// Makes a batch durable and wakes the sync loop for it.
    pub fn commit(&self, batch: Batch<'_>) -> Result<(), AppError> {
        batch.commit()?;
        self.edited();
        Ok(())
    }

    /// Runs `f` and appends an activity-log entry in the same transaction.
    pub(crate) fn logged<T>(
        &self,
        id: DocId,
        kind: &str,
        text: &str,
        f: impl FnOnce(&mut automerge::AutoCommit) -> Result<T, ficha_domain::DomainError>,
    ) -> Result<T, AppError> {
        let who = self.store.identity().name.clone();
        let out = self.store.edit_doc(id, |d| {
            let out = f(d)?;
            ficha_domain::log_event(d, Uuid::new_v4(), &who, kind, text, now_ms())?;
            Ok::<T, ficha_domain::DomainError>(out)
        })?;
        self.edited();
        Ok(out)
    }

    /// Adds an item to a section (emails, phones, addresses, allergies, skin_tests, reviews,
    /// contacts, files) and returns its id.
    pub fn add_item(
        &self,
        id: DocId,
        section: &str,
        values: &[(String, String)],
    ) -> Result<Uuid, AppError> {
        let item = Uuid::new_v4();
        self.logged(id, &format!("{section}_added"), &describe(values), |d| {
            ficha_domain::add_item(d, section, item, values, now_ms())
        })?;
        Ok(item)
    }

    /// Changes fields of an item.
    pub fn set_item(
        &self,
        id: DocId,
        section: &str,
        item: Uuid,
        values: &[(String, String)],
    ) -> Result<(), AppError> {
        self.logged(id, &format!("{section}_changed"), &describe(values), |d| {
            ficha_domain::set_item(d, section, item, values)
        })
    }

    /// Removes an item (clinical items are deactivated instead).
    pub fn remove_item(&self, id: DocId, section: &str, item: Uuid) -> Result<(), AppError> {
        self.logged(id, &format!("{section}_removed"), &item.to_string(), |d| {
            ficha_domain::remove_item(d, section, item)
        })
    }

    /// Adds or removes a group.
    pub fn group(&self, id: DocId, group: &str, add: bool) -> Result<(), AppError> {
        let kind = if add { "group_added" } else { "group_removed" };
        self.logged(id, kind, group, |d| {
            if add {
                ficha_domain::add_group(d, group)
            } else {
                ficha_domain::remove_group(d, group)
            }
        })
    }

    /// Reactivates an archived or trashed client, refusing if an active client looks like the
    /// same person (merge them first, or pass `force` after checking).
    pub fn reactivate(&self, id: DocId, force: bool) -> Result<(), AppError> {
        if !force {
            let clashes: Vec<String> = self
                .duplicates()?
                .into_iter()
                .filter_map(|c| {
                    let other = if c.a.id == id.uuid() {
                        c.b
                    } else if c.b.id == id.uuid() {
                        c.a
                    } else {
                        return None;
                    };
                    (other.state == "active").then(|| {
                        format!(
                            "{} {:?} (same {})",
                            other.id,
                            other.name,
                            c.reasons.join(", ")
                        )
                    })
                })
                .collect();
            if !clashes.is_empty() {
                return Err(AppError::BadInput(format!(
                    "not reactivated: it may duplicate active {}; merge with `ficha duplicates merge`, or pass --force",
                    clashes.join("; ")
                )));
            }
        }
        self.set_state(id, "active")
    }

    /// Moves a client to active, archived or trashed.
    pub fn set_state(&self, id: DocId, state: &str) -> Result<(), AppError> {
        self.logged(id, state, &format!("state set to {state}"), |d| {
            ficha_domain::set_state(d, state, now_ms())
        })
    }

    /// Logs a contact or event by hand.
    pub fn log(&self, id: DocId, kind: &str, text: &str) -> Result<(), AppError> {
        if kind.trim().is_empty() || text.trim().is_empty() {
            return Err(AppError::BadInput(
                "a log entry needs a kind and a text".into(),
            ));
        }
        self.logged(id, kind, text, |_| Ok(()))
    }

    /// Creates a client and returns its id.
    pub fn add_client(
        &self,
        company: &str,
        name: &str,
        email: Option<&str>,
        phone: Option<&str>,
    ) -> Result<DocId, AppError> {
        let company = Company::new(company).map_err(|e| AppError::BadInput(e.to_string()))?;
        self.check_granted(&company)?;
        let id = Uuid::new_v4();
        let doc = DocId::from(id);
        let who = self.store.identity().name.clone();
        self.store.create_doc(doc, &company, |d| {
            ficha_domain::new_client(d, id, company.as_str(), name, email, phone, now_ms())?;
            ficha_domain::log_event(d, Uuid::new_v4(), &who, "created", name, now_ms())
        })?;
        self.edited();
        Ok(doc)
    }

    /// Sets one field of a client.
    pub fn set_field(&self, id: DocId, field: &str, value: &str) -> Result<(), AppError> {
        self.logged(id, "field_set", &format!("{field} = {value}"), |d| {
            ficha_domain::set_field(d, field, value)
        })
    }

    /// Adds a note and returns its id.
    pub fn add_note(&self, id: DocId, text: &str) -> Result<Uuid, AppError> {
        let note = Uuid::new_v4();
        self.logged(id, "note_added", text, |d| {
            ficha_domain::add_note(d, note, text, now_ms())
        })?;
        Ok(note)
    }

    /// Adds a comment and returns its id.
    pub fn add_comment(
        &self,
        id: DocId,
        text: &str,
        private: bool,
        pinned: bool,
        priority: &str,
    ) -> Result<Uuid, AppError> {
        let priority = Priority::from_str(priority).map_err(|_| {
            AppError::BadInput(format!("priority {priority:?} is not low, normal or high"))
        })?;
        let comment = Uuid::new_v4();
        self.logged(id, "comment_added", text, |d| {
            ficha_domain::add_comment(d, comment, text, private, pinned, priority, now_ms())
        })?;
        Ok(comment)
    }

    /// Adds an alert and returns its id.
    pub fn add_alert(
        &self,
        id: DocId,
        kind: &str,
        priority: &str,
        description: &str,
    ) -> Result<Uuid, AppError> {
        let priority = AlertPriority::from_str(priority).map_err(|_| {
            AppError::BadInput(format!(
                "priority {priority:?} is not low, normal, high or critical"
            ))
        })?;
        let alert = Uuid::new_v4();
        self.logged(id, "alert_added", description, |d| {
            ficha_domain::add_alert(d, alert, kind, priority, description, now_ms())
        })?;
        Ok(alert)
    }

    /// The whole client record as JSON.
    pub fn show(&self, id: DocId) -> Result<serde_json::Value, AppError> {
        let doc = self
            .store
            .read_doc(&id)?
            .ok_or(StoreError::UnknownDoc(id))?;
        let view = ficha_domain::view(&doc).map_err(|e| AppError::BadInput(e.to_string()))?;
        serde_json::to_value(view).map_err(|e| AppError::BadInput(e.to_string()))
    }

    /// Every client's summary, sorted by name then id, without loading any document.
    pub fn list(&self) -> Result<Vec<ClientSummary>, AppError> {
        self.query(&Filter::default())
    }

    /// Every client `filter` matches, in list order.
    pub fn query(&self, filter: &Filter) -> Result<Vec<ClientSummary>, AppError> {
        self.page(filter, 0, None)
    }

    /// One page of the clients `filter` matches, in list order.
    pub fn page(
        &self,
        filter: &Filter,
        offset: usize,
        limit: Option<usize>,
    ) -> Result<Vec<ClientSummary>, AppError> {
        Ok(crate::listing::query(&self.store, filter, offset, limit)?)
    }

    /// One page of the clients `filter` matches, in the order `sort` asks for.
    pub fn page_sorted(
        &self,
        filter: &Filter,
        sort: ficha_domain::search::Sort,
        offset: usize,
        limit: Option<usize>,
    ) -> Result<Vec<ClientSummary>, AppError> {
        Ok(crate::listing::query_sorted(
            &self.store,
            filter,
            sort,
            offset,
            limit,
        )?)
    }

    /// The list's quick metrics over the clients matching `filter`.
    pub fn metrics(&self, filter: &Filter) -> Result<serde_json::Value, AppError> {
        let clients = self.query(filter)?;
        let reviews: u32 = clients.iter().map(|c| c.reviews).sum();
        let ratings: u32 = clients.iter().map(|c| c.rating_sum).sum();
        let average = if reviews == 0 {
            None
        } else {
            Some(f64::from(ratings) / f64::from(reviews))
        };
        Ok(serde_json::json!({
            "total_clients": clients.len(),
            "total_reviews": reviews,
            "average_rating": average,
        }))
    }

    /// Creates a client from an import row, tagged with its batch; one transaction.
    pub fn create_imported(
        &self,
        w: &Batch<'_>,
        company: &str,
        name: &str,
        row: &ImportedRow<'_>,
        batch: Uuid,
    ) -> Result<DocId, AppError> {
        let ImportedRow {
            fields,
            groups,
            note,
        } = *row;
        let company = Company::new(company).map_err(|e| AppError::BadInput(e.to_string()))?;
        self.check_granted(&company)?;
        let id = Uuid::new_v4();
        let who = self.store.identity().name.clone();
        w.create_doc(DocId::from(id), &company, |d| {
            ficha_domain::new_client(d, id, company.as_str(), name, None, None, now_ms())?;
            for (f, v) in fields {
                ficha_domain::set_field(d, f, v)?;
            }
            for g in groups {
                ficha_domain::add_group(d, g)?;
            }
            if let Some(n) = note {
                ficha_domain::add_note(d, Uuid::new_v4(), n, now_ms())?;
            }
            ficha_domain::merge::mark_import(d, batch)?;
            ficha_domain::log_event(
                d,
                Uuid::new_v4(),
                &who,
                "imported",
                &format!("batch {batch}"),
                now_ms(),
            )
        })?;
        self.edited();
        Ok(DocId::from(id))
    }

    /// Applies an import row to an existing client, writing only what differs; true if
    /// anything changed.
    pub fn apply_import(
        &self,
        w: &Batch<'_>,
        id: DocId,
        row: &ImportedRow<'_>,
    ) -> Result<bool, AppError> {
        let ImportedRow {
            fields,
            groups,
            note,
        } = *row;
        let who = self.store.identity().name.clone();
        let changed = w.edit_doc(id, |d| {
            let current = serde_json::to_value(ficha_domain::view(d.document())?)
                .map_err(|e| ficha_domain::DomainError::NotAClient(e.to_string()))?;
            let mut changed = false;
            for (f, v) in fields {
                let now = current.get(*f).or_else(|| current["profile"].get(*f));
                let same = match (*f, now) {
                    ("additional_info", Some(serde_json::Value::String(s))) => s == v,
                    (_, Some(serde_json::Value::String(s))) => s == v,
                    _ => false,
                };
                if !same {
                    ficha_domain::set_field(d, f, v)?;
                    changed = true;
                }
            }
            for g in groups {
                if !current["groups"]
                    .as_array()
                    .is_some_and(|a| a.iter().any(|x| x == g))
                {
                    ficha_domain::add_group(d, g)?;
                    changed = true;
                }
            }
            if let Some(n) = note
                && !current["notes"]
                    .as_array()
                    .is_some_and(|a| a.iter().any(|x| x["text"] == n))
            {
                ficha_domain::add_note(d, Uuid::new_v4(), n, now_ms())?;
                changed = true;
            }
            if changed {
                ficha_domain::log_event(
                    d,
                    Uuid::new_v4(),
                    &who,
                    "import_updated",
                    "updated by an import",
                    now_ms(),
                )?;
            }
            Ok::<bool, ficha_domain::DomainError>(changed)
        })?;
        if changed {
            self.edited();
        }
        Ok(changed)
    }

    /// Applies one action to every client a filter (or an explicit selection) picks; returns
    /// how many changed. Actions: archive, trash, restore, add-group, remove-group, assign.
    pub fn bulk(
        &self,
        filter: &Filter,
        ids: &[DocId],
        action: &str,
        value: Option<&str>,
    ) -> Result<usize, AppError> {
        let targets: Vec<DocId> = if ids.is_empty() {
            self.query(filter)?
                .iter()
                .map(|c| DocId::from(c.id))
                .collect()
        } else {
            ids.to_vec()
        };
        let need = |what: &str| {
            value.ok_or_else(|| AppError::BadInput(format!("{action} needs a {what}")))
        };
        let valid = [
            "archive",
            "trash",
            "restore",
            "add-group",
            "remove-group",
            "assign",
        ];
        if !valid.contains(&action) {
            return Err(AppError::BadInput(format!(
                "unknown bulk action {action:?}; actions: {}",
                valid.join(", ")
            )));
        }
        for id in &targets {
            match action {
                "archive" => self.set_state(*id, "archived")?,
                "trash" => self.set_state(*id, "trashed")?,
                "restore" => self.set_state(*id, "active")?,
                "add-group" => self.group(*id, need("group")?, true)?,
                "remove-group" => self.group(*id, need("group")?, false)?,
                _ => self.set_field(*id, "assigned_employee", need("employee")?)?,
            }
        }
        Ok(targets.len())
    }

    /// Duplicate candidates among the clients this replica holds.
    pub fn duplicates(&self) -> Result<Vec<crate::duplicates::Candidate>, AppError> {
        let all = self.query(&Filter {
            state: None,
            ..Filter::default()
        });
        let mut clients = all?;
        // The default filter already includes archived clients; trashed ones count too.
        clients.extend(self.query(&Filter {
            state: Some("trashed".into()),
            ..Filter::default()
        })?);
        Ok(crate::duplicates::candidates(&clients))
    }

    /// Merges `other` into `survivor`: every item of both survives under the survivor's id,
    /// and `other` becomes a tombstone pointing at it.
    pub fn merge(&self, survivor: DocId, other: DocId) -> Result<usize, AppError> {
        if survivor == other {
            return Err(AppError::BadInput(
                "a client cannot be merged into itself".into(),
            ));
        }
        let (s, o) = (self.meta_company(survivor)?, self.meta_company(other)?);
        if s != o {
            return Err(AppError::BadInput(format!(
                "{survivor} is in {s} and {other} in {o}: only clients of one company merge"
            )));
        }
        let other_doc = self
            .store
            .read_doc(&other)?
            .ok_or(StoreError::UnknownDoc(other))?;
        if ficha_domain::merge::merged_into(&other_doc)
            .map_err(|e| AppError::BadInput(e.to_string()))?
            .is_some()
        {
            return Err(AppError::BadInput(format!("{other} was already merged")));
        }
        let copied = self.logged(survivor, "merged", &format!("absorbed {other}"), |d| {
            ficha_domain::merge::absorb(d, &other_doc)
        })?;
        let into = survivor.uuid();
        self.logged(other, "merged", &format!("merged into {survivor}"), |d| {
            ficha_domain::merge::mark_merged(d, into)
        })?;
        Ok(copied)
    }

    /// Remembers that two clients are different people.
    pub fn dismiss(&self, a: DocId, b: DocId) -> Result<(), AppError> {
        let (ua, ub) = (a.uuid(), b.uuid());
        self.logged(a, "not_duplicate", &b.to_string(), |d| {
            ficha_domain::merge::mark_not_duplicate(d, ub)
        })?;
        self.logged(b, "not_duplicate", &a.to_string(), |d| {
            ficha_domain::merge::mark_not_duplicate(d, ua)
        })
    }

    /// Copies into each survivor what arrived for its tombstone since the merge (edits made
    /// offline on a branch that had not heard of the merge). Returns the items forwarded.
    pub fn forward_tombstones(&self) -> Result<usize, AppError> {
        let mut forwarded = 0;
        let merged = self.query(&Filter {
            state: Some("merged".into()),
            ..Filter::default()
        })?;
        for tomb in merged {
            let Some(survivor) = tomb.merged_into else {
                continue;
            };
            let Some(doc) = self.store.read_doc(&DocId::from(tomb.id))? else {
                continue;
            };
            let survivor = DocId::from(survivor);
            if self.store.doc_meta(&survivor)?.is_none() {
                continue;
            }
            let n = self
                .store
                .edit_doc(survivor, |d| ficha_domain::merge::absorb(d, &doc))?;
            if n > 0 {
                self.edited();
                forwarded += n;
            }
        }
        Ok(forwarded)
    }

    fn meta_company(&self, id: DocId) -> Result<String, AppError> {
        Ok(self
            .store
            .doc_meta(&id)?
            .ok_or(StoreError::UnknownDoc(id))?
            .company)
    }

    /// Local changes the relay has not acknowledged yet.
    pub fn pending_upload(&self) -> Result<u64, AppError> {
        Ok(self.store.pending_upload()?)
    }
}

pub(crate) fn describe(values: &[(String, String)]) -> String {
    values
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Parses `key=value` arguments.
pub fn parse_pairs(args: &[String]) -> Result<Vec<(String, String)>, AppError> {
    args.iter()
        .map(|a| {
            a.split_once('=')
                .map(|(k, v)| (k.trim().to_string(), v.to_string()))
                .ok_or_else(|| AppError::BadInput(format!("{a:?} is not key=value")))
        })
        .collect()
}

/// The status the API and CLI report.
#[derive(Debug, Serialize)]
pub struct Status {
    /// "connected" or "disconnected".
    pub relay: &'static str,
    /// Local changes not acknowledged by the relay.
    pub pending_upload: u64,
    /// This replica's name.
    pub replica: String,
    /// Documents held.
    pub documents: u64,
    /// The last sync error, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}
