//! automerge-repo peers on the relay: they open records of their token's companies only, their
//! changes are admitted and stored like uploads before the relay's reply, Ficha replicas and
//! other peers receive them, and whatever breaks a rule ends the session with an `error`.
//!
//! The peer here is Rust automerge driven as automerge-repo drives it (a random 16-byte actor,
//! `request` then `sync`), so every rule is checked without Node; `tests/tests/automerge_repo.rs`
//! runs the stock npm packages against the real relay.

mod common;

use automerge::sync::{self, SyncDoc};
use automerge::transaction::Transactable;
use automerge::{ActorId, AutoCommit, ObjType, ROOT, ReadDoc};
use common::{SECRET, acme, write_token};
use ficha_core::frame::{ByteBuf, DocChanges, Frame, Hello, Upload};
use ficha_core::ids::{actor_for, genesis_actor};
use ficha_core::mem::MemRelayStore;
use ficha_core::relay::{ConnId, IngestDoc, Output, Relay, RelayConfig, RelayStore};
use ficha_core::repo_wire::{DocMessage, PeerMetadata, RepoMessage};
use ficha_core::token::{Claims, sign};
use ficha_core::{Company, DocId, RelayEpoch, ReplicaId};
use proptest::prelude::*;

const REPLICA: ConnId = 1;
const NOW: u64 = 1_000;

fn token(name: &str, companies: &[&str], write: bool) -> String {
    sign(
        &SECRET,
        &Claims {
            replica: name.into(),
            companies: companies
                .iter()
                .map(|c| Company::new(c).expect("company"))
                .collect(),
            write,
            issued_at: 0,
            expires_at: u64::MAX,
            code: String::new(),
        },
    )
}

/// A record as a Ficha replica writes it: genesis, then fields and a notes map.
fn record(doc: DocId, company: &str) -> AutoCommit {
    let mut d = AutoCommit::new().with_actor(genesis_actor(doc));
    d.put(ROOT, "id", doc.to_string()).expect("put");
    d.commit_with(automerge::transaction::CommitOptions::default().with_time(0));
    d.set_actor(actor_for(ReplicaId([1; 16]), 1));
    d.put(ROOT, "company", company).expect("put");
    d.put(ROOT, "kind", "client").expect("put");
    d.put(ROOT, "schema", 1).expect("put");
    d.put(ROOT, "name", "Ana").expect("put");
    let notes = d.put_object(ROOT, "notes", ObjType::Map).expect("notes");
    let n = d.put_object(&notes, "n1", ObjType::Map).expect("note");
    let t = d.put_object(&n, "text", ObjType::Text).expect("text");
    d.splice_text(&t, 0, 0, "alergia al látex").expect("splice");
    d.commit();
    d
}

/// A relay holding one `acme` record and one of `otra`, with a Ficha replica subscribed live
/// to `acme`.
struct World {
    relay: Relay<MemRelayStore>,
    doc: DocId,
    other: DocId,
    ficha: AutoCommit,
}

fn world() -> World {
    world_with(RelayConfig::new(SECRET))
}

fn world_with(cfg: RelayConfig) -> World {
    let mut relay = Relay::new(MemRelayStore::new(RelayEpoch([1; 16])), cfg);
    let (doc, other) = (DocId([7; 16]), DocId([8; 16]));
    let mut ficha = record(doc, "acme");
    let mut theirs = record(other, "otra");
    for (id, company, d) in [(doc, "acme", &mut ficha), (other, "otra", &mut theirs)] {
        let changes = d.get_changes(&[]);
        let company = Company::new(company).expect("company");
        relay
            .store_mut()
            .ingest(
                ReplicaId([1; 16]),
                vec![IngestDoc::applied(id, company, changes)],
            )
            .expect("ingest");
    }
    relay.connect(REPLICA);
    let hello = Frame::Hello(Hello {
        replica: ReplicaId([1; 16]),
        token: write_token("recepcion"),
    });
    relay.receive(REPLICA, &hello.encode(), NOW);
    let subscribe = Frame::Subscribe {
        company: acme(),
        after: 0,
    };
    let mut out = relay.receive(REPLICA, &subscribe.encode(), NOW);
    // Acknowledge catch-up pages until the replica is live.
    while let Some(upto) = frames_to(&out, REPLICA).iter().find_map(|f| match f {
        Frame::Feed(page) => Some(page.upto),
        _ => None,
    }) {
        let ack = Frame::PageAck {
            company: acme(),
            upto,
        };
        out = relay.receive(REPLICA, &ack.encode(), NOW);
    }
    World {
        relay,
        doc,
        other,
        ficha,
    }
}

impl World {
    /// Commits the Ficha replica's pending edit and uploads it as the replica does.
    fn upload_last_edit(&mut self) -> Vec<Output> {
        self.ficha.commit();
        let change = self.ficha.get_last_local_change().expect("change");
        let upload = Frame::Upload(Upload {
            upto: 1,
            docs: vec![DocChanges {
                doc: self.doc,
                company: acme(),
                changes: vec![ByteBuf::from(change.raw_bytes().to_vec())],
            }],
        });
        self.relay.receive(REPLICA, &upload.encode(), NOW)
    }
}

/// An automerge-repo peer: a document per id it opened, each with its sync state.
struct Peer {
    conn: ConnId,
    id: String,
    doc: AutoCommit,
    state: sync::State,
    closed: bool,
    errors: Vec<String>,
    unavailable: Vec<String>,
    ephemeral: Vec<Vec<u8>>,
}

impl Peer {
    fn connect(relay: &mut Relay<MemRelayStore>, conn: ConnId, token: &str) -> Self {
        let mut p = Peer {
            conn,
            id: format!("peer-{conn}"),
            doc: AutoCommit::new().with_actor(ActorId::from(&[conn as u8; 16][..])),
            state: sync::State::new(),
            closed: false,
            errors: Vec::new(),
            unavailable: Vec::new(),
            ephemeral: Vec::new(),
        };
        let out = relay.connect_repo(conn, token, NOW);
        p.take(&out);
        if !p.closed {
            let join = RepoMessage::Join {
                sender: p.id.clone(),
                versions: vec!["1".into()],
                metadata: PeerMetadata::default(),
            };
            let out = relay.receive_repo(conn, &join.encode(), NOW);
            let peers: Vec<_> = messages_to(&out, conn);
            assert!(
                matches!(&peers[..], [RepoMessage::Peer { target, version, .. }] if *target == p.id && version == "1"),
                "join is answered with peer: {peers:?}"
            );
        }
        p
    }

    /// Handles what the relay sent this peer; returns the sync messages' count.
    fn take(&mut self, out: &[Output]) -> usize {
        let mut syncs = 0;
        for o in out {
            match o {
                Output::Close(c) if *c == self.conn => self.closed = true,
                Output::Send(c, b) if *c == self.conn => {
                    match RepoMessage::decode(b).expect("the relay writes valid messages") {
                        RepoMessage::Sync(m) => {
                            let msg = sync::Message::decode(&m.data).expect("sync message");
                            self.doc
                                .sync()
                                .receive_sync_message(&mut self.state, msg)
                                .expect("apply");
                            syncs += 1;
                        }
                        RepoMessage::Error { message } => self.errors.push(message),
                        RepoMessage::DocUnavailable { document, .. } => {
                            self.unavailable.push(document)
                        }
                        RepoMessage::Ephemeral { doc, .. } => self.ephemeral.push(doc.data),
                        _ => {}
                    }
                }
                _ => {}
            }
        }
        syncs
    }

    /// Sends what its sync state says to send about `doc` (a request the first time), and
    /// keeps exchanging until neither side has more to say.
    fn sync(&mut self, relay: &mut Relay<MemRelayStore>, doc: DocId) -> Vec<Output> {
        let mut all = Vec::new();
        let mut first = self.doc.get_heads().is_empty();
        for _ in 0..10 {
            let Some(msg) = self.doc.sync().generate_sync_message(&mut self.state) else {
                break;
            };
            let m = DocMessage {
                sender: self.id.clone(),
                target: "relay".into(),
                document: doc.automerge_id(),
                data: msg.encode(),
            };
            let wire = if first {
                RepoMessage::Request(m)
            } else {
                RepoMessage::Sync(m)
            };
            first = false;
            let out = relay.receive_repo(self.conn, &wire.encode(), NOW);
            let answered = self.take(&out);
            all.extend(out);
            if self.closed || answered == 0 {
                break;
            }
        }
        all
    }

    fn name(&mut self) -> Option<String> {
        self.doc
            .get(ROOT, "name")
            .expect("get")
            .map(|(v, id)| match v {
                automerge::Value::Object(ObjType::Text) => self.doc.text(&id).expect("text"),
                automerge::Value::Scalar(s) => s.as_str().unwrap_or_default().to_string(),
                _ => String::new(),
            })
    }
}

fn messages_to(out: &[Output], conn: ConnId) -> Vec<RepoMessage> {
    out.iter()
        .filter_map(|o| match o {
            Output::Send(c, b) if *c == conn => RepoMessage::decode(b).ok(),
            _ => None,
        })
        .collect()
}

fn frames_to(out: &[Output], conn: ConnId) -> Vec<Frame> {
    out.iter()
        .filter_map(|o| match o {
            Output::Send(c, b) if *c == conn => Frame::decode(b, usize::MAX).ok(),
            _ => None,
        })
        .collect()
}

fn stored_heads(w: &World, doc: DocId) -> Vec<automerge::ChangeHash> {
    w.relay
        .store()
        .load_doc(&doc)
        .expect("load")
        .expect("doc")
        .doc
        .get_heads()
}

#[test]
fn a_peer_reads_a_record_writes_to_it_and_ficha_replicas_receive_it() {
    let mut w = world();
    let mut p = Peer::connect(&mut w.relay, 10, &token("tablet", &["acme"], true));
    p.sync(&mut w.relay, w.doc);
    assert_eq!(
        p.doc.get_heads(),
        w.ficha.get_heads(),
        "read the whole record"
    );
    assert_eq!(p.name().as_deref(), Some("Ana"));

    p.doc.put(ROOT, "name", "Ana María").expect("put");
    p.doc.commit();
    let out = p.sync(&mut w.relay, w.doc);
    assert!(p.errors.is_empty(), "{:?}", p.errors);
    assert_eq!(
        stored_heads(&w, w.doc),
        p.doc.get_heads(),
        "stored before the relay's reply, which carries its heads"
    );
    let pages: Vec<_> = frames_to(&out, REPLICA)
        .into_iter()
        .filter_map(|f| match f {
            Frame::Feed(page) => Some(page),
            _ => None,
        })
        .collect();
    assert_eq!(pages.len(), 1, "the Ficha replica got it live");
    let entry = &pages[0].entries[0];
    assert_eq!(entry.doc, w.doc);
    let change = ficha_core::change::split(&entry.changes).expect("changes");
    w.ficha.apply_changes(change).expect("apply");
    assert_eq!(w.ficha.get_heads(), p.doc.get_heads());
}

#[test]
fn a_ficha_upload_reaches_peers_with_the_record_open() {
    let mut w = world();
    let mut p = Peer::connect(&mut w.relay, 10, &token("tablet", &["acme"], false));
    p.sync(&mut w.relay, w.doc);
    w.ficha.put(ROOT, "phone", "600 111 222").expect("put");
    let out = w.upload_last_edit();
    assert_eq!(p.take(&out), 1, "pushed to the open peer");
    assert_eq!(p.doc.get_heads(), w.ficha.get_heads());
}

#[test]
fn records_outside_the_tokens_companies_look_like_records_that_do_not_exist() {
    let mut w = world();
    let mut p = Peer::connect(&mut w.relay, 10, &token("tablet", &["acme"], true));
    let (other, missing) = (w.other, DocId([9; 16]));
    p.sync(&mut w.relay, other);
    p.state = sync::State::new();
    p.sync(&mut w.relay, missing);
    assert_eq!(
        p.unavailable,
        vec![other.automerge_id(), missing.automerge_id()]
    );
    assert!(p.doc.get_heads().is_empty() && !p.closed);
}

#[test]
fn a_read_only_token_reads_and_watches_but_its_write_ends_the_session() {
    let mut w = world();
    let before = stored_heads(&w, w.doc);
    let mut p = Peer::connect(&mut w.relay, 10, &token("kiosko", &["acme"], false));
    p.sync(&mut w.relay, w.doc);
    assert_eq!(p.name().as_deref(), Some("Ana"));
    p.doc.put(ROOT, "name", "otra").expect("put");
    p.doc.commit();
    p.sync(&mut w.relay, w.doc);
    assert!(p.closed);
    assert!(p.errors[0].contains("read-only"), "{:?}", p.errors);
    assert_eq!(stored_heads(&w, w.doc), before, "nothing stored");
    assert_eq!(w.relay.repo_peer_count(), 0);
}

#[test]
fn a_bad_token_gets_an_error_and_a_close() {
    let mut w = world();
    for bad in ["", "ft1.nope.nope", &token("x", &["acme"], true)[..20]] {
        let p = Peer::connect(&mut w.relay, 10, bad);
        assert!(p.closed && p.errors.len() == 1, "{bad:?}: {:?}", p.errors);
    }
    let mut revoked = Relay::new(
        {
            let mut s = MemRelayStore::new(RelayEpoch([1; 16]));
            s.revoke("tablet", 10);
            s
        },
        RelayConfig::new(SECRET),
    );
    let out = revoked.connect_repo(1, &token("tablet", &["acme"], true), NOW);
    assert!(matches!(
        &messages_to(&out, 1)[..],
        [RepoMessage::Error { .. }]
    ));
}

/// Edits that break the record's rules, each ending the session with nothing stored.
#[test]
fn changes_that_break_a_records_rules_end_the_session_and_store_nothing() {
    type Edit = fn(&mut AutoCommit);
    let edits: [(&str, Edit); 3] = [
        ("company", |d| d.put(ROOT, "company", "otra").expect("put")),
        ("kind", |d| d.put(ROOT, "kind", "invoice").expect("put")),
        ("notes", |d| d.delete(ROOT, "notes").expect("delete")),
    ];
    for (what, edit) in edits {
        let mut w = world();
        let before = stored_heads(&w, w.doc);
        let mut p = Peer::connect(&mut w.relay, 10, &token("tablet", &["acme"], true));
        p.sync(&mut w.relay, w.doc);
        edit(&mut p.doc);
        p.doc.commit();
        let out = p.sync(&mut w.relay, w.doc);
        assert!(p.closed, "{what}");
        assert!(p.errors[0].contains(what), "{what}: {:?}", p.errors);
        assert_eq!(stored_heads(&w, w.doc), before, "{what}");
        assert!(
            frames_to(&out, REPLICA).is_empty(),
            "{what}: nothing pushed"
        );
        // The relay's copy in memory was dropped with the refusal: the next peer reads what
        // is stored.
        let mut q = Peer::connect(&mut w.relay, 11, &token("tablet2", &["acme"], true));
        q.sync(&mut w.relay, w.doc);
        assert_eq!(q.doc.get_heads(), before, "{what}");
    }
}

#[test]
fn actors_belong_to_the_token_that_first_wrote_with_them() {
    let mut w = world();
    let mut a = Peer::connect(&mut w.relay, 10, &token("tablet", &["acme"], true));
    a.sync(&mut w.relay, w.doc);
    a.doc.put(ROOT, "phone", "1").expect("put");
    a.doc.commit();
    a.sync(&mut w.relay, w.doc);
    assert!(a.errors.is_empty());
    // Another token's client writing under the same actor is refused.
    let mut b = Peer::connect(&mut w.relay, 11, &token("intruso", &["acme"], true));
    b.doc.set_actor(ActorId::from(&[10u8; 16][..]));
    b.sync(&mut w.relay, w.doc);
    b.doc.put(ROOT, "phone", "2").expect("put");
    b.doc.commit();
    b.sync(&mut w.relay, w.doc);
    assert!(
        b.closed && b.errors[0].contains("another token"),
        "{:?}",
        b.errors
    );
    // And so is one posing as a Ficha replica.
    let mut c = Peer::connect(&mut w.relay, 12, &token("tablet", &["acme"], true));
    c.doc.set_actor(actor_for(ReplicaId([1; 16]), 9));
    c.sync(&mut w.relay, w.doc);
    c.doc.put(ROOT, "phone", "3").expect("put");
    c.doc.commit();
    c.sync(&mut w.relay, w.doc);
    assert!(
        c.closed && c.errors[0].contains("Ficha replica"),
        "{:?}",
        c.errors
    );
    // The same token's next document load, with a fresh actor, writes fine.
    let mut d = Peer::connect(&mut w.relay, 13, &token("tablet", &["acme"], true));
    d.sync(&mut w.relay, w.doc);
    d.doc.put(ROOT, "phone", "4").expect("put");
    d.doc.commit();
    d.sync(&mut w.relay, w.doc);
    assert!(d.errors.is_empty(), "{:?}", d.errors);
    assert_eq!(stored_heads(&w, w.doc), d.doc.get_heads());
}

#[test]
fn ephemeral_messages_reach_the_other_peers_of_the_document_only() {
    let mut w = world();
    let mut a = Peer::connect(&mut w.relay, 10, &token("a", &["acme"], true));
    let mut b = Peer::connect(&mut w.relay, 11, &token("b", &["acme"], true));
    let mut c = Peer::connect(&mut w.relay, 12, &token("c", &["acme", "otra"], true));
    a.sync(&mut w.relay, w.doc);
    b.sync(&mut w.relay, w.doc);
    c.sync(&mut w.relay, w.other);
    let hello = RepoMessage::Ephemeral {
        doc: DocMessage {
            sender: a.id.clone(),
            target: "relay".into(),
            document: w.doc.automerge_id(),
            data: b"cursor at 3".to_vec(),
        },
        count: 1,
        session: "s".into(),
    };
    let out = w.relay.receive_repo(10, &hello.encode(), NOW);
    a.take(&out);
    b.take(&out);
    c.take(&out);
    assert_eq!(b.ephemeral, vec![b"cursor at 3".to_vec()]);
    assert!(a.ephemeral.is_empty() && c.ephemeral.is_empty());
}

#[test]
fn concurrent_text_edits_from_a_peer_and_a_replica_both_survive() {
    let mut w = world();
    let mut p = Peer::connect(&mut w.relay, 10, &token("tablet", &["acme"], true));
    p.sync(&mut w.relay, w.doc);
    let text_of = |d: &AutoCommit| {
        let notes = d.get(ROOT, "notes").expect("get").expect("notes").1;
        let n = d.get(&notes, "n1").expect("get").expect("n1").1;
        d.get(&n, "text").expect("get").expect("text").1
    };
    let t = text_of(&p.doc);
    p.doc.splice_text(&t, 0, 0, "Importante: ").expect("splice");
    p.doc.commit();
    let t = text_of(&w.ficha);
    let len = w.ficha.text(&t).expect("text").chars().count();
    w.ficha
        .splice_text(&t, len, 0, " (confirmada)")
        .expect("splice");
    let out = w.upload_last_edit();
    p.take(&out);
    p.sync(&mut w.relay, w.doc);
    let t = text_of(&p.doc);
    assert_eq!(
        p.doc.text(&t).expect("text"),
        "Importante: alergia al látex (confirmada)"
    );
    assert_eq!(stored_heads(&w, w.doc), p.doc.get_heads());
}

#[test]
fn connections_per_token_name_and_documents_per_connection_are_capped() {
    let mut cfg = RelayConfig::new(SECRET);
    cfg.max_repo_peers_per_name = 2;
    cfg.max_repo_docs_per_peer = 1;
    let mut w = world_with(cfg);
    let tablet = token("tablet", &["acme", "otra"], true);
    let mut a = Peer::connect(&mut w.relay, 10, &tablet);
    let b = Peer::connect(&mut w.relay, 11, &tablet);
    let c = Peer::connect(&mut w.relay, 12, &tablet);
    assert!(!a.closed && !b.closed);
    assert!(
        c.closed && c.errors[0].contains("close one"),
        "{:?}",
        c.errors
    );
    // Another name is not held back by this one's connections.
    assert!(!Peer::connect(&mut w.relay, 13, &token("kiosk", &["acme"], true)).closed);
    a.sync(&mut w.relay, w.doc);
    assert!(!a.closed);
    let mut second = sync::State::new();
    let msg = AutoCommit::new()
        .sync()
        .generate_sync_message(&mut second)
        .expect("message");
    let request = RepoMessage::Request(DocMessage {
        sender: a.id.clone(),
        target: "relay".into(),
        document: w.other.automerge_id(),
        data: msg.encode(),
    });
    let out = w.relay.receive_repo(10, &request.encode(), NOW);
    a.take(&out);
    assert!(
        a.closed && a.errors[0].contains("documents open"),
        "{:?}",
        a.errors
    );
}

#[test]
fn revoking_or_expiring_a_token_ends_its_peers_sessions_and_the_admin_page_lists_them() {
    let mut w = world();
    let mut tablet = Peer::connect(&mut w.relay, 10, &token("tablet", &["acme"], true));
    let expiring = sign(
        &SECRET,
        &Claims {
            replica: "kiosk".into(),
            companies: vec![acme()],
            write: false,
            issued_at: 0,
            expires_at: NOW + 60,
            code: String::new(),
        },
    );
    let mut kiosk = Peer::connect(&mut w.relay, 11, &expiring);
    let listed: Vec<_> = w
        .relay
        .sessions_info()
        .into_iter()
        .map(|s| (s.replica, s.read_only))
        .collect();
    assert!(
        listed.contains(&("tablet (automerge-repo)".into(), false)),
        "{listed:?}"
    );
    assert!(
        listed.contains(&("kiosk (automerge-repo)".into(), true)),
        "{listed:?}"
    );

    let out = w.relay.revoked("tablet");
    tablet.take(&out);
    assert!(
        tablet.closed && tablet.errors[0].contains("revoked"),
        "{:?}",
        tablet.errors
    );
    assert!(!kiosk.closed);
    let out = w.relay.expire(NOW + 60);
    kiosk.take(&out);
    assert!(
        kiosk.closed && kiosk.errors[0].contains("expired"),
        "{:?}",
        kiosk.errors
    );
    assert_eq!(w.relay.repo_peer_count(), 0);
    assert_eq!(
        w.relay
            .recent_refusals()
            .filter(|r| r.replica.as_deref() == Some("tablet"))
            .count(),
        1
    );
}

/// One step of a session mixing two automerge-repo peers and a Ficha replica.
#[derive(Debug, Clone)]
enum Step {
    /// A peer sets a field, locally.
    PeerField(usize, u8),
    /// A peer types into the note's body, locally.
    PeerText(usize, u8),
    /// A peer syncs with the relay.
    PeerSync(usize),
    /// The Ficha replica edits and uploads.
    ReplicaEdit(u8),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (0..2usize, any::<u8>()).prop_map(|(p, v)| Step::PeerField(p, v)),
        (0..2usize, any::<u8>()).prop_map(|(p, v)| Step::PeerText(p, v)),
        (0..2usize).prop_map(Step::PeerSync),
        any::<u8>().prop_map(Step::ReplicaEdit),
    ]
}

/// Hands the relay's outputs to every peer but `except` (which took its own) and applies the
/// feed pages sent to the Ficha replica to its copy.
fn deliver(out: &[Output], peers: &mut [Peer], except: Option<usize>, ficha: &mut AutoCommit) {
    for (i, p) in peers.iter_mut().enumerate() {
        if Some(i) != except {
            p.take(out);
        }
    }
    for f in frames_to(out, REPLICA) {
        if let Frame::Feed(page) = f {
            for e in page.entries.iter().filter(|e| !e.changes.is_empty()) {
                ficha
                    .load_incremental(&e.changes)
                    .expect("feed entry loads");
            }
        }
    }
}

fn note_text(d: &AutoCommit) -> automerge::ObjId {
    let notes = d.get(ROOT, "notes").expect("get").expect("notes").1;
    let n = d.get(&notes, "n1").expect("get").expect("n1").1;
    d.get(&n, "text").expect("get").expect("text").1
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Two automerge-repo peers and a Ficha replica edit the same record in any order: once
    /// everyone has synced, the peers, the relay's stored copy and the replica hold the same
    /// heads, and no session was refused.
    #[test]
    fn peers_and_a_replica_editing_in_any_order_converge(steps in proptest::collection::vec(step(), 1..40)) {
        let mut w = world();
        let mut peers = vec![
            Peer::connect(&mut w.relay, 10, &token("tablet-a", &["acme"], true)),
            Peer::connect(&mut w.relay, 11, &token("tablet-b", &["acme"], true)),
        ];
        for i in 0..peers.len() {
            let out = peers[i].sync(&mut w.relay, w.doc);
            deliver(&out, &mut peers, Some(i), &mut w.ficha);
        }
        for s in steps {
            match s {
                Step::PeerField(p, v) => {
                    peers[p].doc.put(ROOT, "phone", v.to_string()).expect("put");
                    peers[p].doc.commit();
                }
                Step::PeerText(p, v) => {
                    let t = note_text(&peers[p].doc);
                    let len = peers[p].doc.text(&t).expect("text").chars().count();
                    let at = usize::from(v) % (len + 1);
                    peers[p].doc.splice_text(&t, at, 0, "x").expect("splice");
                    peers[p].doc.commit();
                }
                Step::PeerSync(p) => {
                    let out = peers[p].sync(&mut w.relay, w.doc);
                    deliver(&out, &mut peers, Some(p), &mut w.ficha);
                }
                Step::ReplicaEdit(v) => {
                    w.ficha.put(ROOT, "email", format!("{v}@example.es")).expect("put");
                    let out = w.upload_last_edit();
                    deliver(&out, &mut peers, None, &mut w.ficha);
                }
            }
        }
        for _ in 0..4 {
            for i in 0..peers.len() {
                let out = peers[i].sync(&mut w.relay, w.doc);
                deliver(&out, &mut peers, Some(i), &mut w.ficha);
            }
        }
        let stored = stored_heads(&w, w.doc);
        for p in &mut peers {
            prop_assert!(!p.closed, "refused: {:?}", p.errors);
            prop_assert_eq!(p.doc.get_heads(), stored.clone());
        }
        prop_assert_eq!(w.ficha.get_heads(), stored);
    }

    /// Whatever a peer sends, the relay does not panic, answers only that peer, and another
    /// peer still reads the record afterwards.
    #[test]
    fn hostile_bytes_never_break_the_relay(junk in proptest::collection::vec(any::<u8>(), 0..300), flip in any::<usize>()) {
        let mut w = world();
        let mut p = Peer::connect(&mut w.relay, 10, &token("tablet", &["acme"], true));
        p.sync(&mut w.relay, w.doc);
        p.doc.put(ROOT, "phone", "5").expect("put");
        p.doc.commit();
        // Raw junk, and a real sync message with one byte flipped.
        let msg = p.doc.sync().generate_sync_message(&mut p.state).map(|m| m.encode()).unwrap_or_default();
        let mut bent = msg.clone();
        if !bent.is_empty() {
            let i = flip % bent.len();
            bent[i] ^= 0x5a;
        }
        for bytes in [junk.clone(), RepoMessage::Sync(DocMessage {
            sender: p.id.clone(), target: "relay".into(), document: w.doc.automerge_id(), data: bent,
        }).encode()] {
            let out = w.relay.receive_repo(10, &bytes, NOW);
            prop_assert!(out.iter().all(|o| matches!(o, Output::Send(10, _) | Output::Close(10))));
        }
        let mut q = Peer::connect(&mut w.relay, 11, &token("tablet2", &["acme"], false));
        q.sync(&mut w.relay, w.doc);
        let name = q.name();
        prop_assert_eq!(name.as_deref(), Some("Ana"));
    }
}
