//! Set-up shared by the store's tests.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use automerge::{Automerge, ROOT, ReadDoc};
use ficha_core::replica::ReplicaStore;
use ficha_core::{Company, RelayEpoch, ReplicaId};
use ficha_store::{Identity, NoIndex, Store, SyncStore};

/// Opens the replica in `dir`, without a domain indexer.
pub fn open(dir: &Path) -> Store {
    Store::open(dir, Arc::new(NoIndex)).expect("open")
}

/// The company every test document belongs to.
pub fn company() -> Company {
    Company::new("acme").expect("valid")
}

/// A new replica in `dir`, bound to a relay epoch so it can apply feed pages.
pub fn init(dir: &Path) -> Store {
    let identity = Identity {
        replica: ReplicaId([7; 16]),
        name: "laptop".into(),
        relay_url: "ws://127.0.0.1:1/sync".into(),
        token: "t".into(),
    };
    Store::init(dir, &identity).expect("init");
    let store = open(dir);
    SyncStore(&store)
        .set_epoch(RelayEpoch([1; 16]), false)
        .expect("epoch");
    store
}

/// The integer values at the root of `doc`, by key.
pub fn keys(doc: &Automerge) -> BTreeMap<String, i64> {
    doc.keys(ROOT)
        .filter_map(|k| {
            let v = doc.get(ROOT, &k).ok().flatten()?.0.as_scalar()?.as_i64()?;
            Some((k, v))
        })
        .collect()
}

/// How many seeds to run: `var` from the environment, else `default`.
pub fn seeds(var: &str, default: u64) -> u64 {
    std::env::var(var)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}
