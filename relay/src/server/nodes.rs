//! A node of a relay cluster on PostgreSQL follows what the other nodes store: it listens for
//! their notifications (a hint naming each company whose feed moved) and, because a hint can
//! be lost (the listening connection drops, the node was busy reconnecting), also re-reads
//! every company's feed head after each reconnect and every `every` (when it also reconnects the store's own connection if the database
//! dropped it). Either way the relay core
//! reads the feed from each session's own cursor ([`ficha_core::relay::Relay::feed_moved`]),
//! so a lost hint delays a push by at most `every` and never loses it. Revocations made on
//! another node end this node's sessions on the same timer.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use ficha_core::Company;

use super::{Shared, blocking};
use crate::pg::notify;
use crate::stores::AnyHandle;

/// How a node reaches the cluster's notifications.
#[derive(Debug, Clone)]
pub struct Cluster {
    /// The database, as `serve --store` names it.
    pub url: String,
    /// The channel the nodes notify (see [`notify::channel`]).
    pub channel: String,
    /// How often heads and revocations are re-read whatever the notifications say.
    pub every: Duration,
}

/// What the node last read from the store.
#[derive(Default)]
struct Marks {
    heads: BTreeMap<String, u64>,
    revoked: BTreeMap<String, u64>,
}

/// Follows the cluster until the task is aborted.
pub(super) async fn follow(shared: Arc<Shared>, cluster: Cluster) {
    let mut marks = Marks::default();
    loop {
        match notify::listen(&cluster.url, &cluster.channel).await {
            Ok((client, mut hints)) => {
                tracing::info!("listening for the other relay nodes' feed notifications");
                // Anything may have moved while this node was not listening.
                marks.heads.clear();
                poll(&shared, &mut marks);
                let mut tick = tokio::time::interval(cluster.every);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tokio::select! {
                        hint = hints.recv() => match hint {
                            Some(first) => moved(&shared, first, &mut hints),
                            None => break,
                        },
                        _ = tick.tick() => poll(&shared, &mut marks),
                    }
                }
                drop(client);
                tracing::warn!("lost the notification connection to PostgreSQL: reconnecting");
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for the other nodes' notifications");
                poll(&shared, &mut marks);
            }
        }
        tokio::time::sleep(cluster.every.min(Duration::from_secs(1))).await;
    }
}

/// Handles a hint and every other already waiting, once per company.
fn moved(
    shared: &Shared,
    first: Company,
    hints: &mut tokio::sync::mpsc::UnboundedReceiver<Company>,
) {
    let mut companies = BTreeSet::from([first]);
    while let Ok(c) = hints.try_recv() {
        companies.insert(c);
    }
    for c in companies {
        shared.with_relay(|r| ((), r.feed_moved(&c)));
    }
}

/// Re-reads every head and revocation; pushes what moved and ends revoked sessions.
fn poll(shared: &Shared, marks: &mut Marks) {
    let AnyHandle::Pg(handle) = &shared.store else {
        return;
    };
    match blocking(|| super::lock(&shared.relay).store_mut().reconnect_if_closed()) {
        Ok(true) => tracing::info!("connected to PostgreSQL again"),
        Ok(false) => {}
        Err(e) => tracing::warn!(error = %e, "cannot connect to PostgreSQL again"),
    }
    match blocking(|| handle.feed_heads()) {
        Ok(heads) => {
            let followed = super::lock(&shared.relay).followed_companies();
            for c in followed {
                let head = heads.get(c.as_str()).copied();
                if head.is_some() && head != marks.heads.get(c.as_str()).copied() {
                    shared.with_relay(|r| ((), r.feed_moved(&c)));
                }
            }
            marks.heads = heads;
        }
        Err(e) => tracing::warn!(error = %e, "cannot read the feed heads"),
    }
    match blocking(|| handle.revocations()) {
        Ok(revoked) => {
            for (name, at) in &revoked {
                if marks.revoked.get(name) != Some(at) {
                    shared.with_relay(|r| ((), r.revoked_before(name, *at)));
                }
            }
            marks.revoked = revoked;
        }
        Err(e) => tracing::warn!(error = %e, "cannot read the revocations"),
    }
}
