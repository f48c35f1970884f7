//! A replica from before record kinds: a client document without `kind` at its root, listed by
//! an index of unscoped rows (the old `ClientIndexer`, version 2). Opened by this version, the
//! index is rebuilt with rows scoped by kind, and the old client still opens, lists, is found
//! by search and is a client.

use std::sync::Arc;

use automerge::Automerge;
use automerge::transaction::Transactable;
use ficha_app::app::Replica;
use ficha_app::listing::{query, query_records};
use ficha_core::token::{Claims, sign};
use ficha_core::{Company, DocId};
use ficha_domain::index::scoped;
use ficha_domain::record::{KIND, KIND_VERSION, RecordFilter, RecordSort, kind_of};
use ficha_domain::search::{Filter, index_terms, order_key};
use ficha_store::{IndexKeys, Indexer, Store};

/// The client indexer of the release before record kinds: client summaries, unscoped rows.
struct OldClientIndexer;

impl Indexer for OldClientIndexer {
    fn summarize(&self, doc: &Automerge) -> Option<Vec<u8>> {
        serde_json::to_vec(&ficha_domain::summary(doc).ok()?).ok()
    }

    fn keys(&self, summary: &[u8]) -> Option<IndexKeys> {
        let c = serde_json::from_slice(summary).ok()?;
        Some(IndexKeys {
            order: order_key(&c),
            terms: index_terms(&c),
        })
    }

    fn version(&self) -> u64 {
        2
    }
}

#[test]
fn a_client_from_before_kinds_lists_and_is_found_after_the_index_is_rebuilt() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let claims = Claims {
        replica: "r".into(),
        companies: vec![Company::new("acme").expect("company")],
        write: true,
        issued_at: 0,
        expires_at: u64::MAX,
        code: String::new(),
    };
    Replica::init(
        tmp.path(),
        "r",
        "ws://127.0.0.1:1/sync",
        &sign(&[7; 32], &claims),
    )
    .expect("init");

    // The old release writes the client as it did: no kind at the root, unscoped rows.
    let uuid = uuid::Uuid::new_v4();
    let id = DocId::from(uuid);
    {
        let old = Store::open(tmp.path(), Arc::new(OldClientIndexer)).expect("old open");
        old.create_doc(id, &Company::new("acme").expect("company"), |d| {
            ficha_domain::new_client(d, uuid, "acme", "Núria Puig", None, None, 1)?;
            d.delete(automerge::ROOT, KIND)?;
            d.delete(automerge::ROOT, KIND_VERSION)?;
            Ok::<(), anyhow::Error>(())
        })
        .expect("old client");
        let index = old.index().expect("index").expect("tables");
        let found = |t: &str| index.prefix(t, 10).expect("lookup").expect("under cap");
        assert!(found("w:nur").contains(&id), "the old index is unscoped");
        assert!(found(&scoped("client", "w:nur")).is_empty());
    }

    let r = Replica::open(tmp.path()).expect("open with the domain indexer");
    let index = r.store().index().expect("index").expect("tables");
    let found = |t: &str| index.prefix(t, 10).expect("lookup").expect("under cap");
    assert!(
        found(&scoped("client", "w:nur")).contains(&id),
        "rebuilt with rows scoped by kind"
    );
    assert!(found("w:").is_empty(), "no unscoped row is left");

    let doc = r.store().read_doc(&id).expect("read").expect("stored");
    assert_eq!(kind_of(&doc).expect("kind"), "client");
    assert_eq!(ficha_domain::view(&doc).expect("opens").name, "Núria Puig");
    let ids = |f: &Filter| -> Vec<DocId> {
        query(r.store(), f, 0, None)
            .expect("query")
            .iter()
            .map(|c| DocId::from(c.id))
            .collect()
    };
    assert_eq!(ids(&Filter::default()), vec![id], "it lists");
    let search = |q: &str| Filter {
        text: Some(q.into()),
        ..Filter::default()
    };
    assert_eq!(ids(&search("nuria pu")), vec![id], "it is found by search");

    // An edit rewrites its rows with this version's indexer: still a client, found by its
    // new words, and never a record.
    r.set_field(id, "name", "Núria Roca").expect("edit");
    assert_eq!(ids(&search("roca")), vec![id]);
    assert!(ids(&search("puig")).is_empty());
    let records = query_records(
        r.store(),
        &RecordFilter {
            search: Some("nuria".into()),
            ..RecordFilter::default()
        },
        &RecordSort::default(),
        0,
        None,
    )
    .expect("records");
    assert!(records.is_empty(), "a client is not listed as a record");
}
