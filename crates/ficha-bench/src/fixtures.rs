//! Client documents, relays and replicas for the workloads.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Result;
use automerge::{AutoCommit, Automerge, Change};
use ficha_core::ids::actor_for;
use ficha_core::relay::{IngestDoc, RelayStore};
use ficha_core::{Company, DocId, ReplicaId};
use ficha_domain::{AlertPriority, Priority};
use ficha_relay::store::RedbRelayStore;
use ficha_store::{Identity, Store};
use uuid::Uuid;

/// The company every fixture document belongs to.
pub fn company() -> Company {
    Company::new("bench").expect("invariant: constant company code is valid")
}

/// The replica id fixture documents are written by.
pub const AUTHOR: ReplicaId = ReplicaId([0xAA; 16]);

/// Clients `first..first + count` with `items` items each, built on every core (building is
/// most of a full-size run's time, and nothing of it is measured).
pub fn clients(first: u64, count: usize, items: usize) -> Result<Vec<(DocId, Automerge)>> {
    let numbers: Vec<u64> = (first..first + count as u64).collect();
    par_map(&numbers, |&n| client(n, items))
}

/// `f` over `items` on every core, results in order.
pub fn par_map<T: Sync, U: Send>(
    items: &[T],
    f: impl Fn(&T) -> Result<U> + Sync + Send,
) -> Result<Vec<U>> {
    use rayon::prelude::*;
    items.par_iter().map(f).collect()
}

/// A realistic client: `items` notes, comments and alerts (160-character texts), committed in
/// groups of five as a person would add them over several visits.
pub fn client(n: u64, items: usize) -> Result<(DocId, Automerge)> {
    let mut doc = AutoCommit::new().with_actor(actor_for(AUTHOR, 1));
    let id = Uuid::from_u64_pair(0xF1C4A, n);
    let text = |i: usize| note_text(n, i);
    ficha_domain::new_client(
        &mut doc,
        id,
        "bench",
        &format!("Client {n:06} Pérez"),
        Some(&format!("c{n}@example.com")),
        Some("+34 600 000 000"),
        1_700_000_000_000,
    )?;
    doc.commit();
    for i in 0..items {
        let item = Uuid::from_u64_pair(n, i as u64);
        let at = 1_700_000_000_000 + i as i64;
        match i % 3 {
            0 => ficha_domain::add_note(&mut doc, item, &text(i), at)?,
            1 => ficha_domain::add_comment(
                &mut doc,
                item,
                &text(i),
                false,
                i % 7 == 0,
                Priority::Normal,
                at,
            )?,
            _ => ficha_domain::add_alert(
                &mut doc,
                item,
                "follow-up",
                AlertPriority::Normal,
                &text(i),
                at,
            )?,
        }
        if i % 5 == 4 {
            doc.commit();
        }
    }
    doc.commit();
    Ok((DocId::from(id), doc.document().clone()))
}

const WORDS: &[&str] = &[
    "cliente",
    "cita",
    "tratamiento",
    "alergia",
    "revisión",
    "mañana",
    "tarde",
    "llamada",
    "factura",
    "presupuesto",
    "piel",
    "prueba",
    "resultado",
    "seguimiento",
    "centro",
    "doctora",
    "prefers",
    "morning",
    "visit",
    "treatment",
    "invoice",
    "follow-up",
    "confirmed",
    "called",
    "pending",
    "payment",
    "skin",
    "sensitive",
    "product",
    "session",
    "next",
    "week",
    "notes",
    "latex",
    "cream",
    "laser",
    "review",
    "email",
    "phone",
    "address",
    "discount",
    "wallet",
];

/// A 160-character note made of words chosen by a hash of (client, item): as varied as real
/// notes, so no baseline gains from text repeated across items.
pub fn note_text(client: u64, item: usize) -> String {
    let mut x = client.wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ (item as u64 + 1).wrapping_mul(0xC2B2_AE3D_27D4_EB4F);
    let mut out = String::new();
    while out.chars().count() < 160 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.push_str(WORDS[(x % WORDS.len() as u64) as usize]);
        out.push(' ');
    }
    out.chars().take(160).collect()
}

/// Every change of a document, in causal order.
pub fn changes(doc: &Automerge) -> Vec<Change> {
    doc.get_changes(&[])
}

/// A relay database in `dir` holding `docs`, written in large transactions.
pub fn relay_with(dir: &Path, docs: &[(DocId, Automerge)]) -> Result<()> {
    let mut store = RedbRelayStore::open(dir)?;
    for chunk in docs.chunks(500) {
        let batch = par_map(chunk, |(id, d)| {
            Ok(IngestDoc::applied(*id, company(), changes(d)))
        })?;
        store.ingest(AUTHOR, batch)?;
    }
    // The steady state a serving relay's background compaction reaches.
    while store.compact(ficha_relay::store::COMPACT_BYTES)? > 0 {}
    Ok(())
}

/// A fresh replica in `dir` bound to the relay at `url`, with a token from `relay_dir`.
pub fn replica(dir: &Path, relay_dir: &Path, url: &str, name: &str) -> Result<Arc<Store>> {
    let token = ficha_relay::issue_token(relay_dir, name, &["bench".into()], false, 1)?;
    Store::init(
        dir,
        &Identity {
            replica: ReplicaId::from(Uuid::new_v4()),
            name: name.into(),
            relay_url: url.into(),
            token,
        },
    )?;
    Ok(Arc::new(Store::open(
        dir,
        Arc::new(ficha_domain::index::DomainIndexer),
    )?))
}

/// A replica that never syncs (its relay URL is unreachable), ready to apply feed pages.
pub fn local_replica(scratch: &Scratch, name: &str) -> Result<Arc<Store>> {
    use ficha_core::replica::ReplicaStore;
    let store = replica(
        &scratch.path(name),
        &scratch.path("relay"),
        "ws://127.0.0.1:9/sync",
        name,
    )?;
    ficha_store::SyncStore(&store).set_epoch(ficha_core::RelayEpoch([1; 16]), false)?;
    Ok(store)
}

/// A feed page carrying whole documents as entries `from + 1 ..`.
pub fn page(from: u64, docs: &[(DocId, Automerge)]) -> ficha_core::frame::FeedPage {
    let entries: Vec<ficha_core::frame::FeedEntry> = docs
        .iter()
        .enumerate()
        .map(|(i, (id, d))| ficha_core::frame::FeedEntry {
            seq: from + i as u64 + 1,
            doc: *id,
            changes: changes(d)
                .iter()
                .flat_map(|c| c.raw_bytes().to_vec())
                .collect(),
        })
        .collect();
    ficha_core::frame::FeedPage {
        company: company(),
        from,
        upto: from + docs.len() as u64,
        entries,
    }
}

/// A scratch directory that lives as long as the value.
pub struct Scratch(tempfile::TempDir);

impl Scratch {
    /// A new scratch directory.
    pub fn new() -> Result<Self> {
        Ok(Self(tempfile::tempdir()?))
    }

    /// A path inside it.
    pub fn path(&self, name: &str) -> PathBuf {
        self.0.path().join(name)
    }
}

/// Relay traffic counters, read from `/metrics`.
#[derive(Debug, Default, Clone, Copy)]
pub struct Traffic {
    /// Frames in + out.
    pub frames: f64,
    /// Bytes in + out.
    pub bytes: f64,
}

/// Reads the relay's counters.
pub async fn traffic(relay: &ficha_relay::RunningRelay) -> Result<Traffic> {
    let body = reqwest::Client::new()
        .get(format!("http://{}/metrics", relay.addr))
        .bearer_auth(&relay.metrics_key)
        .send()
        .await?
        .text()
        .await?;
    let get = |name: &str| -> f64 {
        body.lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0.0)
    };
    Ok(Traffic {
        frames: get("ficha_frames_in_total") + get("ficha_frames_out_total"),
        bytes: get("ficha_bytes_in_total") + get("ficha_bytes_out_total"),
    })
}

impl std::ops::Sub for Traffic {
    type Output = Traffic;
    fn sub(self, o: Traffic) -> Traffic {
        Traffic {
            frames: self.frames - o.frames,
            bytes: self.bytes - o.bytes,
        }
    }
}

/// The large set of stored clients that idle reconnect, query and memory all read, built once
/// per run (building and syncing it is most of what those workloads would otherwise cost): the
/// clients, a compacted relay database holding them, and a replica that synced them from it.
pub struct Corpus {
    _scratch: Scratch,
    /// Every client, in memory (the baselines' side).
    pub docs: Vec<(DocId, Automerge)>,
    /// Items per client.
    pub items: usize,
    /// The relay database holding `docs`.
    pub relay_dir: PathBuf,
    /// A relay serving `relay_dir` until [`Corpus::stop_relay`].
    pub relay: Option<ficha_relay::RunningRelay>,
    /// A replica that synced every client from `relay`.
    pub replica: Arc<Store>,
}

impl Corpus {
    /// Builds `count` clients of `items` items, the relay and the synced replica.
    pub async fn build(count: usize, items: usize) -> Result<Self> {
        let scratch = Scratch::new()?;
        let mut lap = std::time::Instant::now();
        let docs = clients(0, count, items)?;
        crate::report::phase("corpus", "build clients", &mut lap);
        let relay_dir = scratch.path("relay");
        relay_with(&relay_dir, &docs)?;
        crate::report::phase("corpus", "fill and compact the relay", &mut lap);
        let relay = ficha_relay::spawn(&relay_dir, "127.0.0.1:0".parse()?).await?;
        let replica = replica(&scratch.path("replica"), &relay_dir, &relay.url(), "corpus")?;
        ficha_app::sync::sync_once(replica.clone(), std::time::Duration::from_secs(3600)).await?;
        anyhow::ensure!(
            replica.doc_count()? == count as u64,
            "the corpus replica missed documents"
        );
        crate::report::phase("corpus", "sync the replica", &mut lap);
        Ok(Self {
            _scratch: scratch,
            docs,
            items,
            relay_dir,
            relay: Some(relay),
            replica,
        })
    }

    /// Stops the relay, releasing its database (for a workload that serves it elsewhere).
    pub async fn stop_relay(&mut self) {
        if let Some(relay) = self.relay.take() {
            relay.stop().await;
        }
    }
}

/// Values for every required and searched field of a record of `spec`, and its status at
/// its default: the `n`th record of a bench corpus, with `word` in its text.
pub fn record_values(
    spec: &'static ficha_domain::record::KindSpec,
    n: usize,
    word: &str,
) -> Result<Vec<ficha_domain::record::Assignment>> {
    use ficha_domain::record::{self, FieldType, Stored};
    let day = format!("2026-{:02}-{:02}", 1 + n % 12, 1 + n % 28);
    let mut values = Vec::new();
    for f in spec.fields.iter().filter(|f| f.required || f.search) {
        let text = match f.ty {
            FieldType::DateTime => format!("{day}T10:00:00Z"),
            FieldType::Date => day.clone(),
            FieldType::Money => format!("{}.00EUR", 10 + n % 90),
            _ => format!("{word} {n}"),
        };
        values.push((f, record::parse(f, &text, None)?));
    }
    if let Some(status) = spec.status.and_then(|s| spec.field(s)) {
        values.push((
            status,
            Stored::Str(status.default.unwrap_or("draft").into()),
        ));
    }
    Ok(values)
}
