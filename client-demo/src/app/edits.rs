//! Edits of one client, each one durable transaction with its activity-log entry.

use std::str::FromStr;

use automerge::AutoCommit;
use uuid::Uuid;

use ficha_core::{Company, DocId};
use ficha_domain::{AlertPriority, Priority};
use ficha_store::StoreError;

use super::{AppError, Replica, describe, now_ms};

/// The section whose items only `attach` creates: a file item without its bytes would name a
/// file nobody can fetch.
const FILES: &str = "files";

/// `f`, then an activity-log entry by `who`, as one edit.
pub(crate) fn logged<T>(
    who: ficha_domain::Actor,
    kind: String,
    text: String,
    f: impl FnOnce(&mut AutoCommit) -> Result<T, AppError>,
) -> impl FnOnce(&mut AutoCommit) -> Result<T, AppError> {
    move |d| {
        let out = f(d)?;
        ficha_domain::log_event(d, Uuid::new_v4(), &who, &kind, &text, now_ms())?;
        Ok(out)
    }
}

impl Replica {
    /// Who edits: this replica, or the employee acting on it.
    pub(crate) fn who(&self) -> ficha_domain::Actor {
        self.acting.actor.clone()
    }

    /// Runs `f` and appends an activity-log entry in the same transaction.
    pub(crate) fn logged<T>(
        &self,
        id: DocId,
        kind: &str,
        text: &str,
        f: impl FnOnce(&mut AutoCommit) -> Result<T, AppError>,
    ) -> Result<T, AppError> {
        let out = self.writer()?.edit_doc(
            id,
            logged(self.who(), kind.into(), text.into(), |d| {
                self.check_client_doc(d.document())?;
                f(d)
            }),
        )?;
        self.edited();
        Ok(out)
    }

    /// Adds an item to a section (emails, phones, addresses, allergies, skin_tests, reviews,
    /// contacts; files come with their bytes through `attach`) and returns its id.
    pub fn add_item(
        &self,
        id: DocId,
        section: &str,
        values: &[(String, String)],
    ) -> Result<Uuid, AppError> {
        if section == FILES {
            return Err(AppError::BadInput(
                "a file is attached with its bytes: `ficha file add ID PATH` or POST /api/clients/{id}/files".into(),
            ));
        }
        let item = Uuid::new_v4();
        self.logged(id, &format!("{section}_added"), &describe(values), |d| {
            Ok(ficha_domain::add_item(d, section, item, values, now_ms())?)
        })?;
        Ok(item)
    }

    /// Changes fields of an item (a file's bytes, named by its hash, never change).
    pub fn set_item(
        &self,
        id: DocId,
        section: &str,
        item: Uuid,
        values: &[(String, String)],
    ) -> Result<(), AppError> {
        if section == FILES && values.iter().any(|(k, _)| k == "hash" || k == "size") {
            return Err(AppError::BadInput(
                "a file's hash and size come from its bytes: attach the new file instead".into(),
            ));
        }
        self.logged(id, &format!("{section}_changed"), &describe(values), |d| {
            Ok(ficha_domain::set_item(d, section, item, values)?)
        })
    }

    /// Removes an item (clinical items are deactivated instead).
    pub fn remove_item(&self, id: DocId, section: &str, item: Uuid) -> Result<(), AppError> {
        self.logged(id, &format!("{section}_removed"), &item.to_string(), |d| {
            Ok(ficha_domain::remove_item(d, section, item)?)
        })
    }

    /// Adds or removes a group.
    pub fn group(&self, id: DocId, group: &str, add: bool) -> Result<(), AppError> {
        let kind = if add { "group_added" } else { "group_removed" };
        self.logged(id, kind, group, |d| {
            if add {
                ficha_domain::add_group(d, group)?;
            } else {
                ficha_domain::remove_group(d, group)?;
            }
            Ok(())
        })
    }

    /// Logs a contact or event by hand. The kinds the app writes itself (a state change, a
    /// merge, a purge, a field set…) cannot be forged this way.
    pub fn log(&self, id: DocId, kind: &str, text: &str) -> Result<(), AppError> {
        if kind.trim().is_empty() || text.trim().is_empty() {
            return Err(AppError::BadInput(
                "a log entry needs a kind and a text".into(),
            ));
        }
        if is_system_kind(kind) {
            return Err(AppError::BadInput(format!(
                "{kind:?} entries are written by the action itself; log a contact, a call or an email instead"
            )));
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
        let company = Company::new(company)?;
        self.check_granted(&company)?;
        let id = Uuid::new_v4();
        let doc = DocId::from(id);
        let who = self.who();
        self.writer()?.create_doc(doc, &company, |d| {
            ficha_domain::new_client(d, id, company.as_str(), name, email, phone, now_ms())?;
            ficha_domain::log_event(d, Uuid::new_v4(), &who, "created", name, now_ms())?;
            Ok::<(), AppError>(())
        })?;
        self.edited();
        Ok(doc)
    }

    /// Sets one field of a client; `state` and `archived` go through the lifecycle's rules.
    pub fn set_field(&self, id: DocId, field: &str, value: &str) -> Result<(), AppError> {
        match field {
            "state" => return self.set_state(id, value, false),
            "archived" => {
                let archived = bool::from_str(value.trim())
                    .map_err(|_| AppError::BadInput("archived must be true or false".into()))?;
                let state = if archived { "archived" } else { "active" };
                return self.set_state(id, state, false);
            }
            _ => {}
        }
        let who = self.who();
        self.writer()?.edit_doc(id, |d| {
            self.check_client_doc(d.document())?;
            let old = ficha_domain::field_value(d, field)?;
            ficha_domain::set_field(d, field, value, now_ms())?;
            ficha_domain::log_field(d, Uuid::new_v4(), &who, field, old.as_deref(), now_ms())?;
            Ok::<(), AppError>(())
        })?;
        self.edited();
        Ok(())
    }

    /// Adds a note and returns its id.
    pub fn add_note(&self, id: DocId, text: &str) -> Result<Uuid, AppError> {
        self.add_note_with(id, text, &[])
    }

    /// Adds a note with more of its keys (category, keywords, attachments, pinned), in one
    /// edit; returns its id.
    pub fn add_note_with(
        &self,
        id: DocId,
        text: &str,
        extras: &[(String, String)],
    ) -> Result<Uuid, AppError> {
        let note = Uuid::new_v4();
        self.check_attachments(id, extras)?;
        self.logged(id, "note_added", text, |d| {
            ficha_domain::add_note(d, note, text, now_ms())?;
            ficha_domain::annotations::edit(d, "notes", &note.to_string(), extras)?;
            Ok(())
        })?;
        Ok(note)
    }

    /// Changes a note, comment or alert (`collection`: notes, comments, alerts): text,
    /// category, keywords, pinned, active (deactivation), appointment, attachments.
    pub fn edit_annotation(
        &self,
        id: DocId,
        collection: &str,
        item: Uuid,
        values: &[(String, String)],
    ) -> Result<(), AppError> {
        if values.is_empty() {
            return Err(AppError::BadInput(
                "nothing to change: give KEY=VALUE (text, pinned, active, …)".into(),
            ));
        }
        self.check_attachments(id, values)?;
        let kind = format!("{}_changed", collection.trim_end_matches('s'));
        self.logged(id, &kind, &describe(values), |d| {
            Ok(ficha_domain::annotations::edit(
                d,
                collection,
                &item.to_string(),
                values,
            )?)
        })
    }

    /// An appointment linked from a comment must be this client's; attachments must be this
    /// client's files.
    fn check_attachments(&self, id: DocId, values: &[(String, String)]) -> Result<(), AppError> {
        for (k, v) in values {
            match k.as_str() {
                "appointment" if !v.trim().is_empty() => {
                    let r = self.record_summary(&super::parse_id(v)?)?;
                    if r.kind != "appointment" || r.client.as_deref() != Some(&id.to_string()) {
                        return Err(AppError::BadInput(format!(
                            "{v} is not an appointment of client {id}"
                        )));
                    }
                }
                "attachments" => {
                    let view = serde_json::to_value(self.client_file(id)?)?;
                    for file in v.split(',').map(str::trim).filter(|f| !f.is_empty()) {
                        let known = view["files"]
                            .as_array()
                            .is_some_and(|fs| fs.iter().any(|f| f["id"] == file));
                        if !known {
                            return Err(AppError::BadInput(format!(
                                "client {id} has no file {file}: attach it first with `ficha file add`"
                            )));
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Adds a comment and returns its id.
    pub fn add_comment(
        &self,
        id: DocId,
        text: &str,
        private: bool,
        pinned: bool,
        priority: &str,
        extras: &[(String, String)],
    ) -> Result<Uuid, AppError> {
        let priority = Priority::from_str(priority).map_err(|_| {
            AppError::BadInput(format!("priority {priority:?} is not low, normal or high"))
        })?;
        let comment = Uuid::new_v4();
        self.check_attachments(id, extras)?;
        self.logged(id, "comment_added", text, |d| {
            ficha_domain::add_comment(d, comment, text, private, pinned, priority, now_ms())?;
            ficha_domain::annotations::edit(d, "comments", &comment.to_string(), extras)?;
            Ok(())
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
            Ok(ficha_domain::add_alert(
                d,
                alert,
                kind,
                priority,
                description,
                now_ms(),
            )?)
        })?;
        Ok(alert)
    }

    /// The whole client record as JSON, with ISO 8601 dates beside every `*_at`.
    pub fn show(&self, id: DocId) -> Result<serde_json::Value, AppError> {
        let mut json = serde_json::to_value(self.client_file(id)?)?;
        if let Some(m) = json.as_object_mut() {
            // What links to the client is listed once: its account and its wallet both
            // come from these records.
            let records = self.linked_records(&id)?;
            let account = self.account_of(&id, &records)?;
            let updated = [
                m.get("created_at").and_then(|v| v.as_i64()),
                m.get("state_at").and_then(|v| v.as_i64()),
                m["log"]
                    .as_array()
                    .and_then(|l| l.iter().filter_map(|e| e["at"].as_i64()).max()),
                account["records_updated_at"].as_i64(),
            ]
            .into_iter()
            .flatten()
            .max();
            for k in ["linked", "sales_total", "pending_total"] {
                m.insert(k.into(), account[k].clone());
            }
            // The same document, as an automerge-repo app opens it.
            m.insert("automerge_url".into(), id.automerge_url().into());
            // Derived from the merged movements, so every replica shows the same alert.
            let wallet = ficha_domain::wallet::compute(&records);
            let mut derived = Vec::new();
            if wallet.overdraft {
                derived.push(serde_json::json!({
                    "type": "overdraft",
                    "priority": "high",
                    "description": format!(
                        "el monedero está en descubierto / the wallet is overdrawn: {}",
                        ficha_domain::record::Money {
                            amount: wallet.balance,
                            currency: wallet.currency.clone().unwrap_or_default(),
                        }
                        .display()
                    ),
                }));
            }
            let tree = self.relations_of(&id)?;
            if tree["broken"].as_array().is_some_and(|b| !b.is_empty()) {
                derived.push(serde_json::json!({
                    "type": "relation_conflict",
                    "priority": "normal",
                    "description": "relaciones en conflicto (un ciclo o dos matrices): revísalas / conflicting account relations (a cycle or two parents): review them",
                }));
            }
            m.insert("account_tree".into(), tree);
            m.insert("derived_alerts".into(), serde_json::json!(derived));
            m.insert(
                "wallet".into(),
                serde_json::json!({
                    "balance": wallet.balance,
                    "currency": wallet.currency,
                    "overdraft": wallet.overdraft,
                }),
            );
            m.insert(
                "last_update".into(),
                serde_json::json!(updated.and_then(super::iso)),
            );
        }
        super::queries::add_iso_dates(&mut json);
        Ok(json)
    }

    /// The client's own document as its view, checked to be a client the caller may see;
    /// none of what `show` derives from linked records.
    pub(crate) fn client_file(&self, id: DocId) -> Result<ficha_domain::ClientView, AppError> {
        let doc = self
            .store
            .read_doc(&id)?
            .ok_or(StoreError::UnknownDoc(id))?;
        self.check_client_doc(&doc)?;
        Ok(ficha_domain::view(&doc)?)
    }

    /// Refuses a document that is not a client, or a client of another company than the
    /// employee acting works for.
    pub(crate) fn check_client_doc(&self, doc: &automerge::Automerge) -> Result<(), AppError> {
        let kind = ficha_domain::record::kind_of(doc)?;
        if kind != "client" {
            return Err(AppError::NotFound(format!(
                "this is a {kind}, not a client: `ficha record show ID` shows it"
            )));
        }
        if let Some(own) = self.actor_company() {
            use automerge::ReadDoc;
            let company = match doc.get(automerge::ROOT, ficha_domain::schema::COMPANY) {
                Ok(Some((automerge::Value::Scalar(s), _))) => {
                    s.as_str().unwrap_or_default().to_string()
                }
                _ => String::new(),
            };
            if company != own {
                return Err(AppError::NotFound(
                    "there is no such client in your company".into(),
                ));
            }
        }
        Ok(())
    }
}

/// Log entry kinds only the app's own actions write.
pub(crate) fn is_system_kind(kind: &str) -> bool {
    const SYSTEM: &[&str] = &[
        "created",
        "field_set",
        "note_added",
        "comment_added",
        "alert_added",
        "group_added",
        "group_removed",
        "active",
        "archived",
        "trashed",
        "merged",
        "purged",
        "not_duplicate",
        "imported",
        "import_updated",
    ];
    let k = kind.trim();
    SYSTEM.contains(&k)
        || k.ends_with("_added")
        || k.ends_with("_changed")
        || k.ends_with("_removed")
}
