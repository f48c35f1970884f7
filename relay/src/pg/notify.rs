//! Live push across relay nodes on one database. Every ingest sends a notification naming each
//! company whose feed moved; PostgreSQL delivers a NOTIFY sent inside a transaction only when
//! that transaction commits, so a listening node never hears of entries it cannot read yet.
//! It is a hint: the node re-reads the feed from its own mark, and (in the node's loop, to
//! come) re-reads every company's head after its listening connection reconnects and every
//! few seconds, so a lost notification delays a push but never loses it.

use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio_postgres::{AsyncMessage, Client, GenericClient, NoTls};

use ficha_core::Company;

use super::PgError;

/// The channel of the relay cluster using `schema` (or the default schema).
pub fn channel(schema: Option<&str>) -> String {
    match schema {
        Some(s) => format!("ficha_feed_{s}"),
        None => "ficha_feed".into(),
    }
}

/// Notifies `channel` that `company`'s feed moved, when the caller's transaction commits.
pub async fn notify(
    txn: &impl GenericClient,
    channel: &str,
    company: &Company,
) -> Result<(), PgError> {
    txn.execute("SELECT pg_notify($1, $2)", &[&channel, &company.as_str()])
        .await?;
    Ok(())
}

/// Listens on `channel`: the companies notified, in order, until the connection ends (then
/// the receiver closes, and the node must reconnect and re-read every head). The client is
/// returned so the caller keeps the connection open.
pub async fn listen(
    url: &str,
    channel: &str,
) -> Result<(Client, mpsc::UnboundedReceiver<Company>), PgError> {
    let (client, mut conn) = tokio_postgres::connect(url, NoTls).await?;
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| conn.poll_message(cx));
        while let Some(Ok(message)) = messages.next().await {
            if let AsyncMessage::Notification(n) = message {
                match Company::new(n.payload()) {
                    Ok(c) => {
                        if tx.send(c).is_err() {
                            return;
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "a feed notification names no company"),
                }
            }
        }
    });
    client
        .batch_execute(&format!("LISTEN \"{channel}\""))
        .await?;
    Ok((client, rx))
}
