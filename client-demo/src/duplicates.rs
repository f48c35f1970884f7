//! Duplicate candidates among a company's clients, found from summaries alone.
//!
//! Two branches can create the same person offline; a merge cannot know they are one. After
//! every creation and every sync the app compares normalised tax ids, emails, phones (by
//! digits, with the Spanish country code assumed for nine-digit numbers) and name + birth date,
//! archived clients included. It never merges on its own: a person merges or dismisses.

use std::collections::BTreeMap;

use ficha_core::DocId;
use ficha_domain::ClientSummary;
use ficha_domain::search::{Filter, normalise, phone_digits};
use ficha_store::StoreError;
use serde::Serialize;
use uuid::Uuid;

use crate::app::AppError;

/// Two records that may be one person.
#[derive(Debug, Clone, Serialize)]
pub struct Candidate {
    /// One record.
    pub a: ClientSummary,
    /// The other.
    pub b: ClientSummary,
    /// What they share: tax_id, email, phone, name_and_birth_date.
    pub reasons: Vec<&'static str>,
}

/// The normalised keys a client is matched on.
pub fn keys(c: &ClientSummary) -> Vec<(&'static str, String)> {
    match_keys(
        c.tax_id.as_deref(),
        c.email.as_deref(),
        c.phone.as_deref(),
        &c.name,
        c.birth_date.as_deref(),
    )
}

/// The normalised keys of these fields: tax id, email, phone (E.164 digits), name + birth date.
pub fn match_keys(
    tax_id: Option<&str>,
    email: Option<&str>,
    phone: Option<&str>,
    name: &str,
    birth_date: Option<&str>,
) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    if let Some(t) = tax_id {
        let t: String = t
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .collect::<String>()
            .to_uppercase();
        if t.len() >= 5 {
            out.push(("tax_id", t));
        }
    }
    if let Some(e) = email {
        let e = e.trim().to_lowercase();
        if e.contains('@') {
            out.push(("email", e));
        }
    }
    if let Some(p) = phone {
        let d = phone_digits(p);
        let e164 = if d.len() == 9 { format!("34{d}") } else { d };
        if e164.len() >= 8 {
            out.push(("phone", e164));
        }
    }
    if let Some(b) = birth_date {
        out.push((
            "name_and_birth_date",
            format!("{}|{b}", normalise(name.trim())),
        ));
    }
    out
}

/// True unless `c` is the tombstone a merge left: only live records can be duplicates.
fn is_live(c: &ClientSummary) -> bool {
    c.merged_into.is_none() && c.state != "merged"
}

/// Every candidate pair, in a stable order.
pub fn candidates(clients: &[ClientSummary]) -> Vec<Candidate> {
    let live: Vec<&ClientSummary> = clients.iter().filter(|c| is_live(c)).collect();
    let mut by_key: BTreeMap<(String, &'static str, String), Vec<usize>> = BTreeMap::new();
    for (i, c) in live.iter().enumerate() {
        for (kind, key) in keys(c) {
            by_key
                .entry((c.company.clone(), kind, key))
                .or_default()
                .push(i);
        }
    }
    let mut pairs: BTreeMap<(Uuid, Uuid), Vec<&'static str>> = BTreeMap::new();
    for ((_, kind, _), idx) in by_key {
        for (n, &i) in idx.iter().enumerate() {
            for &j in &idx[n + 1..] {
                let (a, b) = (live[i].id.min(live[j].id), live[i].id.max(live[j].id));
                let reasons = pairs.entry((a, b)).or_default();
                if !reasons.contains(&kind) {
                    reasons.push(kind);
                }
            }
        }
    }
    let find = |id: Uuid| live.iter().find(|c| c.id == id).map(|c| (*c).clone());
    pairs
        .into_iter()
        .filter_map(|((a, b), reasons)| {
            let (a, b) = (find(a)?, find(b)?);
            let dismissed = a.not_duplicates.contains(&b.id) || b.not_duplicates.contains(&a.id);
            (!dismissed).then_some(Candidate { a, b, reasons })
        })
        .collect()
}

/// A client that may be the person about to be created, and why.
#[derive(Debug, Clone, Serialize)]
pub struct Similar {
    /// The existing client.
    pub client: ClientSummary,
    /// What they share: tax_id, email, phone, name_and_birth_date.
    pub reasons: Vec<&'static str>,
}

/// What a new client is about to be created with, for the check before creating it.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct Prospect {
    /// Their company.
    pub company: String,
    /// Their name.
    #[serde(default)]
    pub name: String,
    /// Their tax id.
    pub tax_id: Option<String>,
    /// Their email.
    pub email: Option<String>,
    /// Their phone.
    pub phone: Option<String>,
    /// Their birth date (YYYY-MM-DD).
    pub birth_date: Option<String>,
}

/// The clients among `clients` that share a key with `p`, in list order.
pub fn similar(p: &Prospect, clients: &[ClientSummary]) -> Vec<Similar> {
    let wanted = match_keys(
        p.tax_id.as_deref(),
        p.email.as_deref(),
        p.phone.as_deref(),
        &p.name,
        p.birth_date.as_deref(),
    );
    clients
        .iter()
        .filter(|c| c.company == p.company && is_live(c))
        .filter_map(|c| {
            let theirs = keys(c);
            let reasons: Vec<&'static str> = wanted
                .iter()
                .filter(|w| theirs.contains(w))
                .map(|(kind, _)| *kind)
                .collect();
            (!reasons.is_empty()).then(|| Similar {
                client: c.clone(),
                reasons,
            })
        })
        .collect()
}

impl crate::app::Replica {
    /// Clients of the prospect's company (active or archived) that may be the same person:
    /// the warning shown before a client is created.
    pub fn similar(&self, p: &Prospect) -> Result<Vec<Similar>, AppError> {
        let clients = self.query(&Filter {
            company: Some(p.company.clone()),
            ..Filter::default()
        })?;
        Ok(similar(p, &clients))
    }

    /// Merges `other` into `survivor`: every item of both survives under the survivor's id,
    /// and `other` becomes a tombstone pointing at it.
    pub fn merge(&self, survivor: DocId, other: DocId) -> Result<usize, AppError> {
        self.require(crate::app::Role::Admin)?;
        if survivor == other {
            return Err(AppError::BadInput(
                "a client cannot be merged into itself".into(),
            ));
        }
        let (s, o) = (self.meta_company(survivor)?, self.meta_company(other)?);
        if s != o {
            return Err(AppError::Conflict(format!(
                "{survivor} is in {s} and {other} in {o}: only clients of one company merge"
            )));
        }
        let other_doc = self
            .store()
            .read_doc(&other)?
            .ok_or(StoreError::UnknownDoc(other))?;
        if ficha_domain::merge::merged_into(&other_doc)?.is_some() {
            return Err(AppError::Conflict(format!("{other} was already merged")));
        }
        let copied = self.logged(survivor, "merged", &format!("absorbed {other}"), |d| {
            Ok(ficha_domain::merge::absorb(d, &other_doc)?)
        })?;
        let into = survivor.uuid();
        self.logged(other, "merged", &format!("merged into {survivor}"), |d| {
            Ok(ficha_domain::merge::mark_merged(d, into)?)
        })?;
        Ok(copied)
    }

    /// Remembers that two clients are different people.
    pub fn dismiss(&self, a: DocId, b: DocId) -> Result<(), AppError> {
        let (ua, ub) = (a.uuid(), b.uuid());
        self.logged(a, "not_duplicate", &b.to_string(), |d| {
            Ok(ficha_domain::merge::mark_not_duplicate(d, ub)?)
        })?;
        self.logged(b, "not_duplicate", &a.to_string(), |d| {
            Ok(ficha_domain::merge::mark_not_duplicate(d, ua)?)
        })
    }

    /// Copies into each survivor what arrived for its tombstone since the merge (edits made
    /// offline on a branch that had not heard of the merge). Returns the items forwarded; a
    /// read-only replica forwards nothing (the replicas that may write do it).
    pub fn forward_tombstones(&self) -> Result<usize, AppError> {
        if !self.may_write() {
            return Ok(0);
        }
        let mut forwarded = 0;
        let merged = self.query(&Filter {
            state: Some("merged".into()),
            ..Filter::default()
        })?;
        for tomb in merged {
            let Some(survivor) = tomb.merged_into else {
                continue;
            };
            let Some(doc) = self.store().read_doc(&DocId::from(tomb.id))? else {
                continue;
            };
            let survivor = DocId::from(survivor);
            if self.store().doc_meta(&survivor)?.is_none() {
                continue;
            }
            let n = self.writer()?.edit_doc(survivor, |d| {
                Ok::<_, AppError>(ficha_domain::merge::absorb(d, &doc)?)
            })?;
            if n > 0 {
                self.edited();
                forwarded += n;
            }
        }
        Ok(forwarded)
    }

    fn meta_company(&self, id: DocId) -> Result<String, AppError> {
        Ok(self
            .store()
            .doc_meta(&id)?
            .ok_or(StoreError::UnknownDoc(id))?
            .company)
    }
}
