//! Deterministic simulation of one relay and several replicas, all in memory.
//!
//! Random local edits, disconnects, duplicated / reordered / dropped frames, replica restarts
//! (new incarnation), relay restarts from its stored state and relay replacement by an empty
//! database (a new epoch: replicas must repair and re-upload). After healing, every replica
//! must hold exactly what the relay holds for its companies, and every change ever made must
//! be there. A second run adds a hostile replica with a valid token that sends every class of
//! bad upload (`sim_attacks`): the honest replicas must still converge, refuse nothing of
//! their own and quarantine nothing. Seeded: a failure prints `FICHA_SIM_SEED=<n>` to replay
//! it alone.

mod sim_attacks;

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use automerge::transaction::Transactable;
use automerge::{ChangeHash, ObjType, ROOT, ReadDoc};
use ficha_core::frame::Frame;
use ficha_core::ids::{Company, DocId, RelayEpoch, ReplicaId, actor_for};
use ficha_core::mem::{MemRelayStore, MemReplicaStore};
use ficha_core::relay::{ConnId, Output, Relay, RelayConfig};
use ficha_core::replica::{ReplicaConfig, ReplicaSession};
use ficha_core::token::{Claims, sign};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

const SECRET: [u8; 32] = [42; 32];
const NOW: u64 = 1_000;

struct Conn {
    id: ConnId,
    session: ReplicaSession,
    to_relay: VecDeque<Vec<u8>>,
    to_replica: VecDeque<Vec<u8>>,
}

struct Replica {
    id: ReplicaId,
    companies: Vec<Company>,
    store: MemReplicaStore,
    incarnation: u32,
    conn: Option<Conn>,
    token: String,
    /// Sends attacks instead of edits; left out of every check.
    hostile: bool,
}

struct World {
    rng: SmallRng,
    relay: Option<Relay<MemRelayStore>>,
    replicas: Vec<Replica>,
    next_conn: ConnId,
    made: BTreeMap<DocId, (Company, BTreeSet<ChangeHash>)>,
    faults: bool,
    log: Vec<String>,
    /// Per replica, the heads of each document as last read there (for monotonic reads).
    observed: Vec<BTreeMap<DocId, Vec<ChangeHash>>>,
    /// Fresh actors the hostile replica has used.
    attacks: u32,
}

fn company(s: &str) -> Company {
    Company::new(s).expect("valid company")
}

impl World {
    fn new(seed: u64, hostile: bool) -> Self {
        let mut rng = SmallRng::seed_from_u64(seed);
        let grants = [
            vec!["acme", "beta"],
            vec!["acme"],
            vec!["acme", "beta"],
            vec!["beta"],
        ];
        let n = rng.random_range(3..=4);
        let mut replicas: Vec<Replica> = (0..n)
            .map(|i| {
                let companies: Vec<Company> = grants[i].iter().map(|c| company(c)).collect();
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
                    incarnation: 1,
                    conn: None,
                    token,
                    hostile: false,
                }
            })
            .collect();
        if hostile {
            let companies = vec![company("acme")];
            let token = sign(
                &SECRET,
                &Claims {
                    replica: "mallory".into(),
                    companies: companies.clone(),
                    write: true,
                    issued_at: 0,
                    expires_at: NOW * 10,
                    code: String::new(),
                },
            );
            replicas.push(Replica {
                id: ReplicaId([0xEE; 16]),
                companies,
                store: MemReplicaStore::default(),
                incarnation: 1,
                conn: None,
                token,
                hostile: true,
            });
        }
        let epoch = RelayEpoch(rng.random());
        Self {
            rng,
            relay: Some(Relay::new(
                MemRelayStore::new(epoch),
                RelayConfig {
                    page_bytes: 300,
                    window: 2,
                    ..RelayConfig::new(SECRET)
                },
            )),
            replicas,
            next_conn: 1,
            made: BTreeMap::new(),
            faults: true,
            log: Vec::new(),
            observed: Vec::new(),
            attacks: 0,
        }
    }

    /// The hostile replica sends one attack, if connected.
    fn attack(&mut self, r: usize) {
        let victims: Vec<ReplicaId> = self
            .replicas
            .iter()
            .filter(|x| !x.hostile)
            .map(|x| x.id)
            .collect();
        // Ids of another company's documents that have reached the relay (an id could leak
        // once it is in use; one still offline cannot be known).
        let beta = company("beta");
        let foreign: Vec<DocId> = self
            .made
            .keys()
            .filter(|d| {
                self.relay
                    .as_ref()
                    .and_then(|r| ficha_core::relay::RelayStore::doc_company(r.store(), d).ok())
                    .flatten()
                    .as_ref()
                    == Some(&beta)
            })
            .copied()
            .collect();
        let rep = &self.replicas[r];
        if rep.conn.is_none() {
            return;
        }
        let acme = company("acme");
        let mut target = sim_attacks::Target {
            me: rep.id,
            company: &acme,
            store: &rep.store,
            victims: &victims,
            foreign_docs: &foreign,
            next_actor: &mut self.attacks,
        };
        let attack = sim_attacks::craft(&mut target, &mut self.rng);
        self.log.push(format!("attack: {}", attack.what));
        if let Some(c) = self.replicas[r].conn.as_mut() {
            c.to_relay.push_back(attack.bytes);
        }
    }

    fn relay(&mut self) -> &mut Relay<MemRelayStore> {
        self.relay.as_mut().expect("relay is running")
    }

    fn connect(&mut self, r: usize) {
        if self.replicas[r].conn.is_some() {
            return;
        }
        let id = self.next_conn;
        self.next_conn += 1;
        let rep = &self.replicas[r];
        let mut session = ReplicaSession::new(ReplicaConfig {
            max_upload_changes: 3,
            repair_concurrency: 2,
            ..ReplicaConfig::new(rep.id, rep.token.clone())
        });
        let hello: VecDeque<Vec<u8>> = session.start().iter().map(Frame::encode).collect();
        self.relay().connect(id);
        self.replicas[r].conn = Some(Conn {
            id,
            session,
            to_relay: hello,
            to_replica: VecDeque::new(),
        });
        self.log.push(format!("connect r{r} as conn {id}"));
    }

    fn disconnect(&mut self, r: usize, why: &str) {
        if let Some(c) = self.replicas[r].conn.take() {
            self.relay().disconnect(c.id);
            self.log.push(format!("disconnect r{r} ({why})"));
        }
    }

    fn edit(&mut self, r: usize) {
        let rep = &mut self.replicas[r];
        let company = rep.companies[self.rng.random_range(0..rep.companies.len())].clone();
        let existing: Vec<DocId> = rep
            .store
            .doc_ids()
            .into_iter()
            .filter(|d| self.made.get(d).is_some_and(|(c, _)| *c == company))
            .collect();
        let (doc, fresh) = if existing.is_empty() || self.rng.random_bool(0.15) {
            (DocId(self.rng.random()), true)
        } else {
            (existing[self.rng.random_range(0..existing.len())], false)
        };
        let actor = actor_for(rep.id, rep.incarnation);
        let value: u32 = self.rng.random();
        let note = format!("note-{value}");
        let hash = rep.store.edit(doc, &company, &actor, |tx| {
            if fresh {
                tx.put(ROOT, "company", company.as_str()).expect("put");
                tx.put_object(ROOT, "notes", ObjType::Map).expect("notes");
            }
            tx.put(ROOT, "name", format!("name-{value}")).expect("put");
            let notes = match tx.get(ROOT, "notes").expect("get") {
                Some((_, id)) => id,
                None => tx.put_object(ROOT, "notes", ObjType::Map).expect("notes"),
            };
            tx.put(&notes, note.as_str(), i64::from(value))
                .expect("note");
        });
        if let Some(hash) = hash {
            // Read-your-writes: the edit is visible on its replica the moment it returns.
            assert!(
                rep.store
                    .doc(&doc)
                    .is_some_and(|d| d.get_change_by_hash(&hash).is_some()),
                "read-your-writes violated on r{r} for {doc}"
            );
            self.made
                .entry(doc)
                .or_insert_with(|| (company.clone(), BTreeSet::new()))
                .1
                .insert(hash);
        }
        if let Some(c) = rep.conn.as_mut() {
            match c.session.local_change(&rep.store) {
                Ok(frames) => c.to_relay.extend(frames.iter().map(Frame::encode)),
                Err(e) => panic!("local_change failed: {e}"),
            }
        }
    }

    /// Delivers one frame on one connection; returns false if there was nothing to deliver.
    fn deliver(&mut self, r: usize, to_relay: bool) -> bool {
        let faults = self.faults;
        let roll: f64 = self.rng.random();
        let Some(conn) = self.replicas[r].conn.as_mut() else {
            return false;
        };
        let queue = if to_relay {
            &mut conn.to_relay
        } else {
            &mut conn.to_replica
        };
        if faults && roll < 0.02 && queue.len() >= 2 {
            queue.swap(0, 1);
            self.log.push(format!("reorder on r{r}"));
        }
        let Some(bytes) = queue.pop_front() else {
            return false;
        };
        if faults && roll > 0.98 {
            self.log.push(format!("drop frame on r{r}"));
            return true;
        }
        if faults && (0.95..0.98).contains(&roll) {
            queue.push_front(bytes.clone());
            self.log.push(format!("duplicate frame on r{r}"));
        }
        let conn_id = conn.id;
        if to_relay {
            let outputs = self.relay().receive(conn_id, &bytes, NOW);
            for o in outputs {
                match o {
                    Output::Send(id, b) => {
                        if let Some(c) = self
                            .replicas
                            .iter_mut()
                            .filter_map(|x| x.conn.as_mut())
                            .find(|c| c.id == id)
                        {
                            c.to_replica.push_back(b.to_vec());
                        }
                    }
                    Output::Close(id) => {
                        if let Some(i) = self
                            .replicas
                            .iter()
                            .position(|x| x.conn.as_ref().is_some_and(|c| c.id == id))
                        {
                            self.replicas[i].conn = None;
                            self.log.push(format!("relay closed r{i}"));
                        }
                    }
                }
            }
        } else {
            let frame = Frame::decode(&bytes, usize::MAX).expect("relay frames decode");
            let rep = &mut self.replicas[r];
            let conn = rep.conn.as_mut().expect("connected");
            match conn.session.receive(&mut rep.store, frame) {
                Ok(frames) => conn.to_relay.extend(frames.iter().map(Frame::encode)),
                Err(e) => {
                    let why = e.to_string();
                    self.disconnect(r, &why);
                }
            }
        }
        true
    }

    fn step(&mut self) {
        let r = self.rng.random_range(0..self.replicas.len());
        match self.rng.random_range(0..100) {
            0..=24 if self.replicas[r].hostile => self.attack(r),
            0..=24 => self.edit(r),
            25..=84 => {
                let to_relay = self.rng.random_bool(0.5);
                self.deliver(r, to_relay);
            }
            85..=90 => self.connect(r),
            91..=94 => self.disconnect(r, "network cut"),
            95..=96 => {
                self.disconnect(r, "replica restart");
                self.replicas[r].incarnation += 1;
            }
            97..=98 => self.restart_relay(false),
            _ => {
                if self.rng.random_bool(0.3) {
                    self.restart_relay(true);
                }
            }
        }
    }

    fn restart_relay(&mut self, replace: bool) {
        for r in 0..self.replicas.len() {
            self.disconnect(r, "relay restart");
        }
        let old = self.relay.take().expect("relay");
        let cfg = RelayConfig {
            page_bytes: 300,
            window: 2,
            ..RelayConfig::new(SECRET)
        };
        let store = if replace {
            self.log.push("relay replaced by an empty database".into());
            MemRelayStore::new(RelayEpoch(self.rng.random()))
        } else {
            self.log.push("relay restarted".into());
            old.into_store()
        };
        self.relay = Some(Relay::new(store, cfg));
    }

    /// Reliable network, everyone connected, until nothing moves and every session is synced.
    fn heal(&mut self) -> Result<(), String> {
        self.faults = false;
        for round in 0..20_000 {
            let mut moved = false;
            for r in 0..self.replicas.len() {
                if self.replicas[r].conn.is_none() {
                    self.connect(r);
                    moved = true;
                }
                while self.deliver(r, true) {
                    moved = true;
                }
                while self.deliver(r, false) {
                    moved = true;
                }
            }
            let all_synced = self.replicas.iter().all(|r| {
                r.conn.as_ref().is_some_and(|c| {
                    c.session.is_synced() && c.to_relay.is_empty() && c.to_replica.is_empty()
                })
            });
            if all_synced && !moved {
                return Ok(());
            }
            if round > 0 && round % 50 == 0 && !moved {
                // A session stuck on a frame the faults phase dropped: cut it, as a timeout would.
                for r in 0..self.replicas.len() {
                    if !self.replicas[r]
                        .conn
                        .as_ref()
                        .is_some_and(|c| c.session.is_synced())
                    {
                        self.disconnect(r, "idle timeout");
                    }
                }
            }
        }
        Err("did not quiesce".into())
    }

    /// Monotonic reads: whatever a replica has shown of a document (its heads at the last
    /// read) is still there at the next read, through disconnects, restarts, repairs and a
    /// relay replaced by an empty database. Then remembers what it shows now.
    fn check_history(&mut self) -> Result<(), String> {
        self.observed
            .resize_with(self.replicas.len(), BTreeMap::new);
        for (i, r) in self.replicas.iter().enumerate() {
            if r.hostile {
                continue;
            }
            for (doc, heads) in &self.observed[i] {
                let d = r
                    .store
                    .doc(doc)
                    .ok_or(format!("r{i} no longer holds {doc}"))?;
                if let Some(h) = heads.iter().find(|h| d.get_change_by_hash(h).is_none()) {
                    return Err(format!("r{i} went back in time on {doc}: lost {h}"));
                }
            }
            for doc in r.store.doc_ids() {
                if let Some(d) = r.store.doc(&doc) {
                    self.observed[i].insert(doc, d.get_heads());
                }
            }
        }
        Ok(())
    }

    fn check(&self) -> Result<(), String> {
        let relay = self.relay.as_ref().expect("relay");
        let store = relay.store();
        for (doc, (company, hashes)) in &self.made {
            let at_relay = store.hashes(doc);
            if !hashes.is_subset(&at_relay) {
                let refused: Vec<_> = self.replicas.iter().map(|r| r.store.refused()).collect();
                let quarantined: Vec<_> = self
                    .replicas
                    .iter()
                    .map(|r| r.store.quarantine_list())
                    .collect();
                let outboxes: Vec<_> = self.replicas.iter().map(|r| r.store.outbox_len()).collect();
                let parked = ficha_core::relay::RelayStore::parked_count(store, company);
                let holders: Vec<_> = self
                    .replicas
                    .iter()
                    .map(|r| r.store.doc(doc).map(|d| d.get_changes(&[]).len()))
                    .collect();
                let missing = hashes.difference(&at_relay).count();
                return Err(format!(
                    "relay lost changes of {doc}: missing {missing} of {}; refused {refused:?} quarantined {quarantined:?} outboxes {outboxes:?} parked {parked:?} holders {holders:?}",
                    hashes.len()
                ));
            }
            for (i, r) in self.replicas.iter().enumerate() {
                if r.hostile {
                    continue;
                }
                if !r.companies.contains(company) {
                    if r.store.doc(doc).is_some() {
                        return Err(format!("r{i} holds {doc} of a company it may not see"));
                    }
                    continue;
                }
                let d = r.store.doc(doc).ok_or(format!("r{i} is missing {doc}"))?;
                let heads: BTreeSet<ChangeHash> = d.get_heads().into_iter().collect();
                let mine: BTreeSet<ChangeHash> =
                    d.get_changes(&[]).iter().map(|c| c.hash()).collect();
                if !at_relay.is_subset(&mine) || !hashes.is_subset(&mine) {
                    return Err(format!(
                        "r{i} lacks changes of {doc}: relay {} mine {} made {} quarantined {:?}",
                        at_relay.len(),
                        mine.len(),
                        hashes.len(),
                        r.store.quarantine_list()
                    ));
                }
                let first = self
                    .replicas
                    .iter()
                    .find(|x| !x.hostile && x.companies.contains(company))
                    .and_then(|x| x.store.doc(doc))
                    .expect("someone sees it");
                let first_heads: BTreeSet<ChangeHash> = first.get_heads().into_iter().collect();
                if heads != first_heads || d.hydrate(None) != first.hydrate(None) {
                    return Err(format!("r{i} diverges on {doc}"));
                }
            }
        }
        for (i, r) in self.replicas.iter().enumerate() {
            if r.hostile {
                continue;
            }
            if !r.store.refused().is_empty() || !r.store.quarantine_list().is_empty() {
                return Err(format!(
                    "r{i} had its own changes refused ({:?}) or quarantined documents ({:?})",
                    r.store.refused(),
                    r.store.quarantine_list()
                ));
            }
            if r.store.outbox_len() != 0 {
                return Err(format!(
                    "r{i} still has {} changes in its outbox",
                    r.store.outbox_len()
                ));
            }
        }
        Ok(())
    }
}

fn run(seed: u64, steps: usize, hostile: bool) -> Result<(), String> {
    let mut world = World::new(seed, hostile);
    let tail = |world: &World, e: String| {
        let tail: Vec<&String> = world.log.iter().rev().take(15).collect();
        format!("{e}\nlast events (newest first): {tail:#?}")
    };
    for _ in 0..steps {
        world.step();
        if let Err(e) = world.check_history() {
            return Err(tail(&world, e));
        }
    }
    world.heal()?;
    world.check_history().map_err(|e| tail(&world, e))?;
    world.check().map_err(|e| {
        let tail: Vec<&String> = world.log.iter().rev().take(15).collect();
        format!("{e}\nlast events (newest first): {tail:#?}")
    })
}

fn seeds() -> Vec<u64> {
    if let Ok(s) = std::env::var("FICHA_SIM_SEED") {
        return vec![s.parse().expect("FICHA_SIM_SEED is a number")];
    }
    let n: u64 = std::env::var("FICHA_SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    (0..n).collect()
}

#[test]
fn replicas_converge_under_faults() {
    for seed in seeds() {
        if let Err(e) = run(seed, 400, false) {
            panic!("simulation failed; replay with FICHA_SIM_SEED={seed}\n{e}");
        }
    }
}

#[test]
fn honest_replicas_converge_beside_a_hostile_one() {
    for seed in seeds() {
        if let Err(e) = run(seed, 400, true) {
            panic!(
                "simulation with a hostile replica failed; replay with FICHA_SIM_SEED={seed}\n{e}"
            );
        }
    }
}

#[test]
fn idle_reconnect_costs_a_constant_number_of_frames() {
    for docs in [10usize, 200] {
        let mut world = World::new(7, false);
        world.faults = false;
        world.replicas.truncate(2);
        for _ in 0..docs {
            world.edit(0);
        }
        world.heal().expect("heals");
        world.check().expect("converges");
        world.disconnect(1, "test");
        world.connect(1);
        let mut frames = 0;
        let mut bytes = 0;
        loop {
            let c = world.replicas[1].conn.as_ref().expect("connected");
            let n = c.to_relay.len() + c.to_replica.len();
            bytes += c
                .to_relay
                .iter()
                .chain(c.to_replica.iter())
                .map(Vec::len)
                .sum::<usize>();
            frames += n;
            let a = world.deliver(1, true);
            let b = world.deliver(1, false);
            if !a && !b {
                break;
            }
        }
        assert!(
            world.replicas[1]
                .conn
                .as_ref()
                .expect("c")
                .session
                .is_synced()
        );
        assert!(frames <= 8, "{frames} frames for {docs} docs");
        assert!(bytes < 1024, "{bytes} bytes for {docs} docs");
    }
}
