//! Deterministic simulation of a relay cluster: three relay nodes on one shared store (as
//! PostgreSQL nodes share one database), replicas connecting to any node and moving between
//! them, random edits, disconnects, nodes killed and restarted mid-upload, and hints that
//! another node moved a feed (PostgreSQL `NOTIFY`) lost at random, with a timer that re-reads
//! as the driver's does.
//!
//! Afterwards every replica holds every change made in its companies, the store holds every
//! change and parks none, each feed is numbered 1..=n without a gap, and no replica ever saw a
//! page that did not start at its checkpoint (a replica session refuses such a page, and any
//! refusal fails the run). Seeded: a failure prints `FICHA_SIM_SEED=<n>` to replay it alone.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::convert::Infallible;
use std::rc::Rc;

use automerge::transaction::Transactable;
use automerge::{ActorId, ChangeHash, ObjType, ROOT, ReadDoc};
use ficha_core::digest::DocDigests;
use ficha_core::frame::{FeedEntry, Frame};
use ficha_core::ids::{Company, DocId, RelayEpoch, ReplicaId, Seq, actor_for};
use ficha_core::mem::{MemRelayStore, MemReplicaStore};
use ficha_core::relay::{
    Binding, ConnId, IngestDoc, LoadedDoc, NewEntry, Output, Relay, RelayConfig, RelayStore,
};
use ficha_core::replica::{ReplicaConfig, ReplicaSession};
use ficha_core::token::{Claims, sign};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

const SECRET: [u8; 32] = [9; 32];
const NOW: u64 = 1_000;
const NODES: usize = 3;

/// One store every node writes, as the nodes of a cluster share one database.
#[derive(Clone)]
struct SharedStore(Rc<RefCell<MemRelayStore>>);

impl RelayStore for SharedStore {
    type Error = Infallible;
    fn epoch(&self) -> RelayEpoch {
        self.0.borrow().epoch()
    }
    fn revoked_at(&self, name: &str) -> Result<Option<u64>, Infallible> {
        self.0.borrow().revoked_at(name)
    }
    fn bind_replica(&mut self, name: &str, id: ReplicaId) -> Result<Binding, Infallible> {
        self.0.borrow_mut().bind_replica(name, id)
    }
    fn bind_actors(&mut self, name: &str, a: &[ActorId]) -> Result<Option<ActorId>, Infallible> {
        self.0.borrow_mut().bind_actors(name, a)
    }
    fn read_feed(&self, c: &Company, after: Seq, max: usize) -> Result<Vec<FeedEntry>, Infallible> {
        self.0.borrow().read_feed(c, after, max)
    }
    fn doc_company(&self, doc: &DocId) -> Result<Option<Company>, Infallible> {
        self.0.borrow().doc_company(doc)
    }
    fn ingest(&mut self, o: ReplicaId, d: Vec<IngestDoc>) -> Result<Vec<NewEntry>, Infallible> {
        self.0.borrow_mut().ingest(o, d)
    }
    fn parked_count(&self, company: &Company) -> Result<usize, Infallible> {
        self.0.borrow().parked_count(company)
    }
    fn doc_digests(&self, company: &Company) -> Result<(Seq, DocDigests), Infallible> {
        self.0.borrow().doc_digests(company)
    }
    fn load_doc(&self, doc: &DocId) -> Result<Option<LoadedDoc>, Infallible> {
        self.0.borrow().load_doc(doc)
    }
    fn doc_state(&self, doc: &DocId) -> Result<Option<(Vec<ChangeHash>, usize)>, Infallible> {
        self.0.borrow().doc_state(doc)
    }
    fn set_heads(&mut self, doc: &DocId, heads: &[ChangeHash]) -> Result<(), Infallible> {
        self.0.borrow_mut().set_heads(doc, heads)
    }
}

struct Conn {
    id: ConnId,
    node: usize,
    session: ReplicaSession,
    to_relay: VecDeque<Vec<u8>>,
    to_replica: VecDeque<Vec<u8>>,
}

struct Replica {
    id: ReplicaId,
    companies: Vec<Company>,
    store: MemReplicaStore,
    conn: Option<Conn>,
    token: String,
}

struct World {
    rng: SmallRng,
    store: SharedStore,
    nodes: Vec<Option<Relay<SharedStore>>>,
    replicas: Vec<Replica>,
    /// Hints not delivered yet: (node, company).
    hints: VecDeque<(usize, Company)>,
    next_conn: ConnId,
    made: BTreeMap<DocId, (Company, BTreeSet<ChangeHash>)>,
    log: Vec<String>,
    /// Hints lost at random while faults last.
    faults: bool,
}

fn company(s: &str) -> Company {
    Company::new(s).expect("valid company")
}

fn config() -> RelayConfig {
    RelayConfig {
        page_bytes: 300,
        window: 2,
        shared_store: true,
        ..RelayConfig::new(SECRET)
    }
}

impl World {
    fn new(seed: u64) -> Self {
        let mut rng = SmallRng::seed_from_u64(seed);
        let grants = [
            vec!["acme", "beta"],
            vec!["acme"],
            vec!["acme"],
            vec!["beta"],
        ];
        let replicas = grants
            .iter()
            .enumerate()
            .map(|(i, g)| {
                let companies: Vec<Company> = g.iter().map(|c| company(c)).collect();
                let token = sign(
                    &SECRET,
                    &Claims {
                        replica: format!("r{i}"),
                        companies: companies.clone(),
                        write: true,
                        issued_at: 0,
                        expires_at: NOW * 10,
                        code: String::new(),
                    },
                );
                Replica {
                    id: ReplicaId([i as u8 + 1; 16]),
                    companies,
                    store: MemReplicaStore::default(),
                    conn: None,
                    token,
                }
            })
            .collect();
        let store = SharedStore(Rc::new(RefCell::new(MemRelayStore::new(RelayEpoch(
            rng.random(),
        )))));
        let nodes = (0..NODES)
            .map(|_| Some(Relay::new(store.clone(), config())))
            .collect();
        Self {
            rng,
            store,
            nodes,
            replicas,
            hints: VecDeque::new(),
            next_conn: 1,
            made: BTreeMap::new(),
            log: Vec::new(),
            faults: true,
        }
    }

    fn connect(&mut self, r: usize) {
        if self.replicas[r].conn.is_some() {
            return;
        }
        let alive: Vec<usize> = (0..NODES).filter(|n| self.nodes[*n].is_some()).collect();
        if alive.is_empty() {
            return;
        }
        let node = alive[self.rng.random_range(0..alive.len())];
        self.connect_to(r, node);
    }

    fn connect_to(&mut self, r: usize, node: usize) {
        let id = self.next_conn;
        self.next_conn += 1;
        let rep = &self.replicas[r];
        let mut session = ReplicaSession::new(ReplicaConfig {
            max_upload_changes: 3,
            repair_concurrency: 2,
            ..ReplicaConfig::new(rep.id, rep.token.clone())
        });
        let hello = session.start().iter().map(Frame::encode).collect();
        if let Some(n) = self.nodes[node].as_mut() {
            n.connect(id);
        }
        self.replicas[r].conn = Some(Conn {
            id,
            node,
            session,
            to_relay: hello,
            to_replica: VecDeque::new(),
        });
        self.log.push(format!("connect r{r} to node {node}"));
    }

    fn disconnect(&mut self, r: usize, why: &str) {
        if let Some(c) = self.replicas[r].conn.take() {
            if let Some(n) = self.nodes[c.node].as_mut() {
                n.disconnect(c.id);
            }
            self.log.push(format!("disconnect r{r} ({why})"));
        }
    }

    /// Kills a node: its sessions end with whatever was in flight (an upload it stored but
    /// did not acknowledge yet, pages it queued).
    fn kill(&mut self, node: usize) {
        for r in 0..self.replicas.len() {
            if self.replicas[r]
                .conn
                .as_ref()
                .is_some_and(|c| c.node == node)
            {
                self.replicas[r].conn = None;
            }
        }
        self.nodes[node] = None;
        self.log.push(format!("kill node {node}"));
    }

    fn start(&mut self, node: usize) {
        if self.nodes[node].is_none() {
            self.nodes[node] = Some(Relay::new(self.store.clone(), config()));
            self.log.push(format!("start node {node}"));
        }
    }

    fn edit(&mut self, r: usize) {
        let rep = &mut self.replicas[r];
        let company = rep.companies[self.rng.random_range(0..rep.companies.len())].clone();
        let existing: Vec<DocId> = self
            .made
            .iter()
            .filter(|(d, (c, _))| *c == company && rep.store.doc(d).is_some())
            .map(|(d, _)| *d)
            .collect();
        let (doc, fresh) = if existing.is_empty() || self.rng.random_bool(0.1) {
            (DocId(self.rng.random()), true)
        } else {
            (existing[self.rng.random_range(0..existing.len())], false)
        };
        let value: u32 = self.rng.random();
        let hash = rep.store.edit(doc, &company, &actor_for(rep.id, 1), |tx| {
            if fresh {
                tx.put(ROOT, "company", company.as_str()).expect("put");
                tx.put_object(ROOT, "notes", ObjType::Map).expect("notes");
            }
            let notes = match tx.get(ROOT, "notes").expect("get") {
                Some((_, id)) => id,
                None => tx.put_object(ROOT, "notes", ObjType::Map).expect("notes"),
            };
            tx.put(&notes, format!("n{value}"), i64::from(value))
                .expect("note");
        });
        if let Some(hash) = hash {
            self.made
                .entry(doc)
                .or_insert_with(|| (company.clone(), BTreeSet::new()))
                .1
                .insert(hash);
        }
        if let Some(c) = rep.conn.as_mut() {
            let frames = c.session.local_change(&rep.store).expect("local change");
            c.to_relay.extend(frames.iter().map(Frame::encode));
        }
    }

    fn route(&mut self, outputs: Vec<Output>) {
        for o in outputs {
            match o {
                Output::Send(id, bytes) => {
                    if let Some(c) = self
                        .replicas
                        .iter_mut()
                        .filter_map(|r| r.conn.as_mut())
                        .find(|c| c.id == id)
                    {
                        c.to_replica.push_back(bytes.to_vec());
                    }
                }
                Output::Close(id) => {
                    for r in &mut self.replicas {
                        if r.conn.as_ref().is_some_and(|c| c.id == id) {
                            r.conn = None;
                        }
                    }
                }
            }
        }
    }

    /// Delivers one frame; false when there was none. A replica that refuses what it is sent
    /// (a page not starting at its checkpoint among others) fails the run.
    fn deliver(&mut self, r: usize, to_relay: bool) -> Result<bool, String> {
        let Some(conn) = self.replicas[r].conn.as_mut() else {
            return Ok(false);
        };
        let queue = if to_relay {
            &mut conn.to_relay
        } else {
            &mut conn.to_replica
        };
        let Some(bytes) = queue.pop_front() else {
            return Ok(false);
        };
        let (id, node) = (conn.id, conn.node);
        if to_relay {
            let Some(relay) = self.nodes[node].as_mut() else {
                return Ok(false);
            };
            let outputs = relay.receive(id, &bytes, NOW);
            self.route(outputs);
            // Every node hears (unless the hint is lost) that this company may have moved.
            for c in self.replicas[r].companies.clone() {
                for other in (0..NODES).filter(|n| *n != node) {
                    if !self.faults || self.rng.random_bool(0.7) {
                        self.hints.push_back((other, c.clone()));
                    }
                }
            }
        } else {
            let frame = Frame::decode(&bytes, usize::MAX).expect("relay frames decode");
            let rep = &mut self.replicas[r];
            let conn = rep.conn.as_mut().expect("connected");
            match conn.session.receive(&mut rep.store, frame) {
                Ok(frames) => conn.to_relay.extend(frames.iter().map(Frame::encode)),
                Err(e) => return Err(format!("r{r} refused what node {node} sent: {e}")),
            }
        }
        Ok(true)
    }

    fn hint(&mut self) {
        if let Some((node, company)) = self.hints.pop_front()
            && let Some(relay) = self.nodes[node].as_mut()
        {
            let outputs = relay.feed_moved(&company);
            self.route(outputs);
        }
    }

    /// A node's timer: re-reads every feed it has live sessions of.
    fn tick(&mut self, node: usize) {
        let Some(relay) = self.nodes[node].as_mut() else {
            return;
        };
        let mut outputs = Vec::new();
        for c in relay.followed_companies() {
            outputs.extend(relay.feed_moved(&c));
        }
        self.route(outputs);
    }

    fn step(&mut self) -> Result<(), String> {
        let r = self.rng.random_range(0..self.replicas.len());
        let node = self.rng.random_range(0..NODES);
        match self.rng.random_range(0..100) {
            0..=19 => self.edit(r),
            20..=69 => {
                let to_relay = self.rng.random_bool(0.5);
                self.deliver(r, to_relay)?;
            }
            70..=79 => self.hint(),
            80..=83 => self.tick(node),
            84..=89 => self.connect(r),
            90..=94 => self.disconnect(r, "network cut"),
            95..=96 => self.kill(node),
            _ => self.start(node),
        }
        Ok(())
    }

    fn heal(&mut self) -> Result<(), String> {
        self.faults = false;
        for n in 0..NODES {
            self.start(n);
        }
        for _ in 0..5_000 {
            let mut moved = false;
            for r in 0..self.replicas.len() {
                if self.replicas[r].conn.is_none() {
                    self.connect(r);
                    moved = true;
                }
                while self.deliver(r, true)? {
                    moved = true;
                }
                while self.deliver(r, false)? {
                    moved = true;
                }
            }
            while !self.hints.is_empty() {
                self.hint();
                moved = true;
            }
            for n in 0..NODES {
                self.tick(n);
            }
            let quiet = self.replicas.iter().all(|r| {
                r.conn.as_ref().is_some_and(|c| {
                    c.session.is_synced() && c.to_relay.is_empty() && c.to_replica.is_empty()
                })
            });
            if quiet && !moved {
                return Ok(());
            }
        }
        Err("did not quiesce".into())
    }

    fn check(&self) -> Result<(), String> {
        let store = self.store.0.borrow();
        for c in [company("acme"), company("beta")] {
            let seqs: Vec<Seq> = store.feed(&c).iter().map(|e| e.seq).collect();
            let expected: Vec<Seq> = (1..=seqs.len() as Seq).collect();
            if seqs != expected {
                return Err(format!("feed of {c} is not 1..=n: {seqs:?}"));
            }
            let parked = store.parked_count(&c).unwrap_or_else(|e| match e {});
            if parked != 0 {
                return Err(format!("{parked} changes of {c} stay parked"));
            }
        }
        for (i, r) in self.replicas.iter().enumerate() {
            if !r.store.refused().is_empty() || !r.store.quarantine_list().is_empty() {
                return Err(format!(
                    "r{i} had changes refused ({:?}) or documents quarantined ({:?})",
                    r.store.refused(),
                    r.store.quarantine_list()
                ));
            }
            if r.store.outbox_len() != 0 {
                return Err(format!(
                    "r{i} still has {} changes to upload",
                    r.store.outbox_len()
                ));
            }
        }
        for (doc, (c, hashes)) in &self.made {
            if !hashes.is_subset(&store.hashes(doc)) {
                return Err(format!("the store lost changes of {doc}"));
            }
            // The heads the store records (what digests and repair compare) are the heads of
            // what it holds: a node that trusted a stale copy would have written older ones.
            let held = store.load_doc(doc).unwrap_or_else(|e| match e {});
            let mut real = held.map(|l| l.doc.get_heads()).unwrap_or_default();
            let mut recorded = store
                .doc_state(doc)
                .unwrap_or_else(|e| match e {})
                .map(|(h, _)| h)
                .unwrap_or_default();
            real.sort();
            recorded.sort();
            if real != recorded {
                return Err(format!("the store records stale heads for {doc}"));
            }
            for (i, r) in self.replicas.iter().enumerate() {
                if !r.companies.contains(c) {
                    continue;
                }
                let d = r.store.doc(doc).ok_or(format!("r{i} is missing {doc}"))?;
                let mine: BTreeSet<ChangeHash> =
                    d.get_changes(&[]).iter().map(|ch| ch.hash()).collect();
                if !hashes.is_subset(&mine) {
                    return Err(format!("r{i} lacks changes of {doc}"));
                }
            }
        }
        Ok(())
    }
}

impl World {
    /// Delivers everything queued between replica `r` and its node, both ways.
    fn settle(&mut self, r: usize) {
        loop {
            let up = self.deliver(r, true).expect("delivers");
            let down = self.deliver(r, false).expect("delivers");
            if !up && !down {
                return;
            }
        }
    }

    /// Connects replica `r` to `node` and lets it catch up.
    fn join(&mut self, r: usize, node: usize) {
        self.connect_to(r, node);
        self.settle(r);
    }
}

fn run(seed: u64) -> Result<(), String> {
    let mut world = World::new(seed);
    let tail = |w: &World, e: String| {
        let t: Vec<&String> = w.log.iter().rev().take(15).collect();
        format!("{e}\nlast events (newest first): {t:#?}")
    };
    for _ in 0..400 {
        if let Err(e) = world.step() {
            return Err(tail(&world, e));
        }
    }
    world.heal().map_err(|e| tail(&world, e))?;
    world.check().map_err(|e| tail(&world, e))
}

fn seeds() -> Vec<u64> {
    if let Ok(s) = std::env::var("FICHA_SIM_SEED") {
        return vec![s.parse().expect("FICHA_SIM_SEED is a number")];
    }
    let n: u64 = std::env::var("FICHA_SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(150);
    (0..n).collect()
}

/// A node that kept a record in memory while another node stored a change to it must not
/// admit the next change on its stale copy: that change depends on the other node's, and
/// would wait forever for a history the store already holds.
#[test]
fn a_node_admits_on_what_the_store_holds_not_on_its_stale_copy() {
    let mut w = World::new(1);
    w.faults = false;
    w.join(1, 0);
    w.join(2, 1);
    w.edit(1);
    w.settle(1);
    for n in 0..NODES {
        w.tick(n);
    }
    w.settle(2);
    let (doc, _) = w
        .made
        .iter()
        .next()
        .map(|(d, v)| (*d, v.clone()))
        .expect("a record");
    assert!(
        w.replicas[2].store.doc(&doc).is_some(),
        "node 1 pushed it live"
    );
    w.edit(2);
    w.settle(2);
    w.tick(0);
    w.settle(1);
    w.edit(1);
    w.settle(1);
    let store = w.store.0.borrow();
    assert_eq!(store.parked_count(&company("acme")), Ok(0), "nothing waits");
    assert_eq!(store.hashes(&doc), w.made[&doc].1, "every change is stored");
}

#[test]
fn replicas_on_three_nodes_of_one_store_converge() {
    for seed in seeds() {
        if let Err(e) = run(seed) {
            panic!("cluster simulation failed; replay with FICHA_SIM_SEED={seed}\n{e}");
        }
    }
}
