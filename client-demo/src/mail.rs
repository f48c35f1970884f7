//! The company's email sender: `ficha serve --smtp URL` sends every queued message once, over
//! SMTP with lettre. The durable `sending` mark before the exchange and the reconciliation at
//! start (see `app::messages`) make a crash cost at most a message a person must decide on,
//! never a message sent twice.

use std::sync::Arc;
use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use thiserror::Error;
use tokio::sync::watch;

use crate::app::{AppError, Outcome, Outgoing, Replica, now_ms};

/// How the sender reaches its SMTP server.
#[derive(Debug, Clone)]
pub struct SmtpConfig {
    /// `smtp://host:port` (plain, STARTTLS with `?tls=required`) or `smtps://host:port`.
    pub url: String,
    /// The From address.
    pub from: String,
    /// User and password (FICHA_SMTP_USER, FICHA_SMTP_PASSWORD).
    pub credentials: Option<(String, String)>,
}

/// What stops the sender from starting.
#[derive(Debug, Error)]
pub enum MailError {
    /// The URL is not an SMTP URL lettre understands.
    #[error("--smtp {url:?}: {source}; write it as smtp://host:port or smtps://host:port")]
    Url {
        /// The URL given.
        url: String,
        /// lettre's complaint.
        #[source]
        source: Box<lettre::transport::smtp::Error>,
    },
    /// The From address is not one.
    #[error("--smtp-from {from:?} is not an email address: {source}")]
    From {
        /// The address given.
        from: String,
        /// Why.
        #[source]
        source: lettre::address::AddressError,
    },
}

/// A ready sender.
pub struct Sender {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: lettre::message::Mailbox,
}

impl Sender {
    /// Checks the configuration (no connection yet).
    pub fn new(cfg: &SmtpConfig) -> Result<Sender, MailError> {
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::from_url(&cfg.url)
            .map_err(|source| MailError::Url {
                url: cfg.url.clone(),
                source: Box::new(source),
            })?
            .timeout(Some(Duration::from_secs(30)));
        if let Some((user, password)) = &cfg.credentials {
            builder = builder.credentials(Credentials::new(user.clone(), password.clone()));
        }
        let from = cfg.from.parse().map_err(|source| MailError::From {
            from: cfg.from.clone(),
            source,
        })?;
        Ok(Sender {
            transport: builder.build(),
            from,
        })
    }

    /// One message over SMTP, classified: whether it may have reached the server decides
    /// whether it may ever go again on its own.
    async fn send(&self, m: &Outgoing) -> Outcome {
        let to = match m.to.parse() {
            Ok(to) => to,
            Err(e) => return Outcome::Failed(format!("{:?} is not an address: {e}", m.to)),
        };
        let email = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(m.subject.clone())
            // The same id on every attempt, so a recipient's server can spot a repeat.
            .message_id(Some(format!("<{}@ficha>", m.id)))
            .header(ContentType::TEXT_PLAIN)
            .body(m.body.clone());
        let email = match email {
            Ok(e) => e,
            Err(e) => return Outcome::Failed(format!("cannot build the message: {e}")),
        };
        match self.transport.send(email).await {
            Ok(reply) => Outcome::Sent(format!(
                "{} {}",
                reply.code(),
                reply.message().collect::<Vec<_>>().join(" ")
            )),
            Err(e) if e.is_permanent() => Outcome::Failed(format!("the server refused it: {e}")),
            Err(e) if e.is_transient() => Outcome::Later(format!("the server said not now: {e}")),
            Err(e) => Outcome::Unknown(format!("the SMTP exchange broke off: {e}")),
        }
    }
}

/// Runs store work off the async workers.
async fn blocking<T: Send + 'static>(
    replica: &Arc<Replica>,
    f: impl FnOnce(&Replica) -> Result<T, AppError> + Send + 'static,
) -> Result<T, AppError> {
    let r = replica.clone();
    match tokio::task::spawn_blocking(move || f(&r)).await {
        Ok(out) => out,
        Err(e) => Err(AppError::BadInput(format!("the sender's task failed: {e}"))),
    }
}

/// Runs the sender until `stop` turns true: reconciles what an earlier run left `sending`, then
/// sends queued messages one at a time, looking for them every second at most.
pub async fn run(replica: Arc<Replica>, sender: Sender, mut stop: watch::Receiver<bool>) {
    match blocking(&replica, |r| r.reconcile_interrupted()).await {
        Ok(0) => {}
        Ok(n) => tracing::warn!(
            messages = n,
            "messages interrupted while sending were marked failed, not sent again"
        ),
        Err(e) => tracing::warn!(error = %e, "cannot reconcile interrupted messages"),
    }
    let mut idle = Duration::from_millis(200);
    // Checked between messages only: a message being sent is finished before stopping.
    while !*stop.borrow() {
        // Not claimed while the server is unreachable: a claimed message whose exchange
        // never started would still have to wait for a person.
        let waiting = blocking(&replica, |r| r.queued_messages())
            .await
            .unwrap_or(0);
        let reachable = waiting > 0 && sender.transport.test_connection().await.unwrap_or(false);
        let claimed = if reachable {
            blocking(&replica, |r| r.claim_next_message()).await
        } else {
            Ok(None)
        };
        match claimed {
            Ok(Some(m)) => {
                let outcome = sender.send(&m).await;
                tracing::info!(message = %m.id, ?outcome, "message handed to SMTP");
                let id = m.id;
                if let Err(e) =
                    blocking(&replica, move |r| r.record_outcome(id, &outcome, now_ms())).await
                {
                    tracing::warn!(error = %e, message = %id, "cannot record how sending ended; it stays `sending` and is reconciled at the next start");
                }
                idle = Duration::from_millis(200);
                continue;
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "cannot take the next queued message"),
        }
        // A tick, not the edit notification: that one wakes the sync loop, which must not
        // miss it.
        tokio::select! {
            _ = stop.changed() => {}
            _ = tokio::time::sleep(idle) => {}
        }
        idle = (idle * 2).min(Duration::from_secs(1));
    }
}
