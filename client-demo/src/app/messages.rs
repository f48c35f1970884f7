//! Email messages (seed 002): queued as records on any replica, offline too, and sent once by
//! the company's sender (`ficha serve --smtp`, see `crate::mail`). The sender marks a message
//! `sending` durably before the SMTP exchange and records `sent` or `failed` after, so a
//! message is never sent twice: one found `sending` at the sender's start was interrupted and
//! waits for a person's decision (`ficha message retry`).

use serde_json::Value as Json;

use ficha_core::DocId;
use ficha_domain::record::{self, RecordFilter, RecordSort, RecordSummary, Stored};

use super::records::{Given, SystemValues};
use super::{AppError, Replica, iso, now_ms};

/// A message the sender is to send now.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// The record.
    pub id: DocId,
    /// Recipient.
    pub to: String,
    /// Subject.
    pub subject: String,
    /// Text body.
    pub body: String,
}

/// What the SMTP exchange ended in.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// The server accepted it, with this reply.
    Sent(String),
    /// It was refused for good (a 5xx reply) or cannot be sent as it is.
    Failed(String),
    /// The server said "not now" (a 4xx reply, or no connection before anything was sent):
    /// it goes back to the queue.
    Later(String),
    /// The exchange broke off after the message may have reached the server.
    Unknown(String),
}

/// Why a message found `sending` at the sender's start is not sent again.
pub const INTERRUPTED: &str = "the sender stopped during the SMTP exchange, so the server may have accepted it: check with the recipient, then `ficha message retry ID` to send it again";

fn text(r: &RecordSummary, k: &str) -> Option<String> {
    r.fields.get(k).and_then(Json::as_str).map(str::to_string)
}

impl Replica {
    /// Queues a message to `to` on `client`; returns its id.
    pub fn send_message(
        &self,
        client: DocId,
        to: &str,
        subject: &str,
        body: &str,
    ) -> Result<DocId, AppError> {
        let to = to.trim();
        if !to.contains('@') || to.contains(char::is_whitespace) {
            return Err(AppError::BadInput(format!(
                "{to:?} is not an email address such as ana@example.com"
            )));
        }
        let given = [
            ("to".to_string(), Given::Text(to.into())),
            ("subject".to_string(), Given::Text(subject.into())),
            ("body".to_string(), Given::Text(body.into())),
        ];
        let system: SystemValues = vec![("status", Stored::Str("queued".into()))];
        self.add_record_with("message", Some(client), None, &given, system, now_ms())
    }

    /// Queues the client's account statement as a message, to `to` or the client's email.
    pub fn email_statement(&self, client: DocId, to: Option<&str>) -> Result<DocId, AppError> {
        let summary = self.client_summary(&client)?;
        let to = match to.map(str::to_string).or(summary.email.clone()) {
            Some(t) => t,
            None => {
                return Err(AppError::BadInput(format!(
                    "{} has no email: give --to ADDRESS, or add one to the client",
                    summary.name
                )));
            }
        };
        let statement = self.statement(&client)?;
        let body = statement_text(&statement);
        let subject = format!("Estado de cuenta / Account statement — {}", summary.name);
        self.send_message(client, &to, &subject, &body)
    }

    /// Every message of a client, oldest first, with its status.
    pub fn messages(&self, client: &DocId) -> Result<Vec<Json>, AppError> {
        self.client_summary(client)?;
        let list = self.of_status(Some(client.to_string()), None)?;
        Ok(list.iter().map(message_json).collect())
    }

    fn of_status(
        &self,
        linked: Option<String>,
        status: Option<&str>,
    ) -> Result<Vec<RecordSummary>, AppError> {
        self.list_records(
            &RecordFilter {
                kind: Some("message".into()),
                linked,
                status: status.map(str::to_string),
                ..RecordFilter::default()
            },
            &RecordSort::default(),
            0,
            None,
        )
    }

    /// Puts a failed message back in the queue (a person decided it should go again).
    pub fn retry_message(&self, id: DocId) -> Result<(), AppError> {
        let m = self.record_summary(&id)?;
        if m.kind != "message" {
            return Err(AppError::BadInput(format!(
                "{id} is a {}, not a message",
                m.kind
            )));
        }
        if m.status.as_deref() != Some("failed") {
            return Err(AppError::Conflict(format!(
                "message {id} is {}; only a failed message is sent again",
                m.status.unwrap_or_default()
            )));
        }
        self.write_system(
            id,
            vec![
                ("status", Stored::Str("queued".into())),
                ("error", Stored::Str(String::new())),
            ],
        )
    }

    /// Writes system fields of a record (the sender's marks), durably when it returns.
    fn write_system(&self, id: DocId, values: SystemValues) -> Result<(), AppError> {
        let spec = super::records::spec(&self.record_summary(&id)?.kind)?;
        let values: Vec<record::Assignment> = values
            .into_iter()
            .filter_map(|(k, v)| spec.field(k).map(|f| (f, v)))
            .collect();
        let who = self.who();
        self.writer()?.edit_doc(id, |d| {
            record::set(
                d,
                &values,
                &who,
                &mut std::iter::repeat_with(uuid::Uuid::new_v4),
                now_ms(),
            )
            .map_err(AppError::from)
        })?;
        self.edited();
        Ok(())
    }

    /// At the sender's start: every message this replica left `sending` is marked failed,
    /// never sent again on its own; returns how many.
    pub fn reconcile_interrupted(&self) -> Result<usize, AppError> {
        let me = self.store().identity().name.clone();
        let mine: Vec<RecordSummary> = self
            .of_status(None, Some("sending"))?
            .into_iter()
            .filter(|m| text(m, "sender").as_deref() == Some(me.as_str()))
            .collect();
        for m in &mine {
            self.write_system(
                super::parse_id(&m.id)?,
                vec![
                    ("status", Stored::Str("failed".into())),
                    ("error", Stored::Str(INTERRUPTED.into())),
                ],
            )?;
        }
        Ok(mine.len())
    }

    /// How many messages wait in the queue, of every company this replica sees.
    pub fn queued_messages(&self) -> Result<usize, AppError> {
        Ok(self.of_status(None, Some("queued"))?.len())
    }

    /// Takes the oldest queued message of a company this replica may write, marking it
    /// `sending` by this replica, durably, before anything goes out.
    pub fn claim_next_message(&self) -> Result<Option<Outgoing>, AppError> {
        let granted = self.granted();
        let next = self
            .of_status(None, Some("queued"))?
            .into_iter()
            .find(|m| granted.iter().any(|c| c.as_str() == m.company));
        let Some(m) = next else { return Ok(None) };
        let id = super::parse_id(&m.id)?;
        let me = self.store().identity().name.clone();
        self.write_system(
            id,
            vec![
                ("status", Stored::Str("sending".into())),
                ("sender", Stored::Str(me)),
            ],
        )?;
        let doc = self.show_record(id)?;
        let field = |k: &str| doc[k].as_str().unwrap_or_default().to_string();
        Ok(Some(Outgoing {
            id,
            to: field("to"),
            subject: field("subject"),
            body: field("body"),
        }))
    }

    /// Records how sending `id` ended.
    pub fn record_outcome(&self, id: DocId, outcome: &Outcome, at_ms: i64) -> Result<(), AppError> {
        let s = |v: &str| Stored::Str(v.to_string());
        let values = match outcome {
            Outcome::Sent(reply) => vec![
                ("status", s("sent")),
                ("reply", s(reply)),
                ("sent_at", Stored::Str(iso(at_ms).unwrap_or_default())),
                ("error", s("")),
            ],
            Outcome::Failed(why) => vec![("status", s("failed")), ("error", s(why))],
            Outcome::Later(why) => vec![("status", s("queued")), ("error", s(why))],
            Outcome::Unknown(why) => vec![
                ("status", s("failed")),
                ("error", s(&format!("{why}; {INTERRUPTED}"))),
            ],
        };
        self.write_system(id, values)
    }
}

/// A message as `message list --json` shows it.
fn message_json(m: &RecordSummary) -> Json {
    serde_json::json!({
        "id": m.id,
        "to": text(m, "to"),
        "subject": text(m, "subject"),
        "status": m.status,
        "sent_at": text(m, "sent_at"),
        "sender": text(m, "sender"),
        "reply": text(m, "reply"),
        "error": text(m, "error"),
        "created_at": iso(m.created_at),
    })
}

/// The statement as the text of an email, in Spanish and English.
fn statement_text(s: &Json) -> String {
    let mut out = format!(
        "Estado de cuenta de {name} / Account statement of {name}\n\n",
        name = s["name"].as_str().unwrap_or_default()
    );
    for p in s["pending"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "{}  {}  {}  pendiente / pending {}\n",
            p["date"].as_str().unwrap_or("-"),
            p["title"].as_str().unwrap_or_default(),
            p["total"]["text"].as_str().unwrap_or_default(),
            p["pending"]["text"].as_str().unwrap_or_default(),
        ));
    }
    for (currency, minor) in s["pending_total"].as_object().into_iter().flatten() {
        let m = record::Money {
            amount: minor.as_i64().unwrap_or(0),
            currency: currency.clone(),
        };
        out.push_str(&format!(
            "\nTotal pendiente / Total pending: {}\n",
            m.display()
        ));
    }
    out
}
