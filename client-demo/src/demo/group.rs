//! The demo's group: one relay and four replicas (two branches of two companies, a
//! consultant's laptop and the central office), created in a directory or reopened from it.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use ficha_relay::RunningRelay;

use super::ROUND;
use crate::app::Replica;
use crate::sync::sync_once;

/// One replica of the group.
pub struct Place {
    /// Its replica name (the token's).
    pub name: &'static str,
    /// What it is, in Spanish.
    pub label_es: &'static str,
    /// What it is, in English.
    pub label_en: &'static str,
    /// The companies its token grants.
    pub companies: &'static [&'static str],
    /// Who signs in there (employee codes).
    pub people: &'static [&'static str],
}

/// The group's replicas, in the order they are created and synced.
pub const PLACES: [Place; 4] = [
    Place {
        name: "sucursal-madrid",
        label_es: "Sucursal de Madrid (Clínica Sol)",
        label_en: "Madrid branch (Clínica Sol)",
        companies: &["clinica-sol"],
        people: &["ana", "carmen"],
    },
    Place {
        name: "sucursal-sevilla",
        label_es: "Sucursal de Sevilla (Estética Luna)",
        label_en: "Seville branch (Estética Luna)",
        companies: &["estetica-luna"],
        people: &["luis", "rocio"],
    },
    Place {
        name: "portatil-consultora",
        label_es: "Portátil de la consultora (Clínica Sol)",
        label_en: "The consultant's laptop (Clínica Sol)",
        companies: &["clinica-sol"],
        people: &["carmen"],
    },
    Place {
        name: "oficina-central",
        label_es: "Oficina central (las dos empresas)",
        label_en: "Central office (both companies)",
        companies: &["clinica-sol", "estetica-luna"],
        people: &["marta", "ana", "luis"],
    },
];

/// The relay and the replicas of [`PLACES`], all in one directory.
pub struct Group {
    relay_dir: PathBuf,
    /// The relay's address (kept across a restart of the relay).
    pub addr: SocketAddr,
    relay: Option<RunningRelay>,
    /// The replicas, in the order of [`PLACES`], with their directories.
    pub replicas: Vec<(Replica, PathBuf)>,
}

impl Group {
    /// Whether `root` already holds a group.
    pub fn exists(root: &Path) -> bool {
        root.join("relay").is_dir()
    }

    /// Creates the relay and the replicas in `root`, which must be empty or missing.
    pub async fn create(root: &Path) -> Result<Group> {
        if root.read_dir().is_ok_and(|mut d| d.next().is_some()) {
            bail!(
                "{} is not empty and holds no demo: pass an empty or new directory",
                root.display()
            );
        }
        let relay_dir = root.join("relay");
        let relay = ficha_relay::spawn(&relay_dir, "127.0.0.1:0".parse()?).await?;
        let mut replicas = Vec::new();
        for p in &PLACES {
            let companies: Vec<String> = p.companies.iter().map(|c| c.to_string()).collect();
            let token = ficha_relay::issue_token(&relay_dir, p.name, &companies, false, 365)?;
            let dir = root.join(p.name);
            Replica::init(&dir, p.name, &relay.url(), &token)?;
            replicas.push((Replica::open(&dir)?, dir));
        }
        Ok(Group {
            relay_dir,
            addr: relay.addr,
            relay: Some(relay),
            replicas,
        })
    }

    /// Reopens the group in `root`, its relay on the address the replicas know.
    pub async fn reopen(root: &Path) -> Result<Group> {
        let mut replicas = Vec::new();
        for p in &PLACES {
            let dir = root.join(p.name);
            let r = Replica::open(&dir)
                .with_context(|| format!("{} holds no replica {}", root.display(), p.name))?;
            replicas.push((r, dir));
        }
        let url = replicas[0].0.store().identity().relay_url.clone();
        let addr: SocketAddr = url
            .trim_start_matches("ws://")
            .trim_end_matches("/sync")
            .parse()
            .with_context(|| format!("the demo's relay URL {url:?} names no address"))?;
        let relay_dir = root.join("relay");
        let relay = ficha_relay::spawn(&relay_dir, addr)
            .await
            .with_context(|| format!("cannot start the demo's relay again on {addr}"))?;
        Ok(Group {
            relay_dir,
            addr,
            relay: Some(relay),
            replicas,
        })
    }

    /// The relay's data directory.
    pub fn relay_dir(&self) -> &Path {
        &self.relay_dir
    }

    /// Replica `i` of [`PLACES`].
    pub fn replica(&self, i: usize) -> &Replica {
        &self.replicas[i].0
    }

    /// Syncs replica `i` once: uploads what it has, receives what the relay has.
    pub async fn sync(&self, i: usize) -> Result<()> {
        sync_once(self.replica(i).store().clone(), ROUND)
            .await
            .with_context(|| format!("{} could not sync", PLACES[i].name))
    }

    /// Two rounds over every replica: after them each holds what any held before.
    pub async fn sync_all(&self) -> Result<()> {
        for _ in 0..2 {
            for i in 0..self.replicas.len() {
                self.sync(i).await?;
            }
        }
        Ok(())
    }

    /// Stops the relay (the WAN goes down for everyone).
    pub async fn relay_down(&mut self) {
        if let Some(r) = self.relay.take() {
            r.stop().await;
        }
    }

    /// Starts the relay again on the same address.
    pub async fn relay_up(&mut self) -> Result<()> {
        if self.relay.is_none() {
            self.relay = Some(ficha_relay::spawn(&self.relay_dir, self.addr).await?);
        }
        Ok(())
    }

    /// Every difference between replicas that hold the same company: a client missing on one,
    /// or shown differently. Empty when the group converged.
    pub fn differences(&self) -> Result<Vec<String>> {
        let mut seen: BTreeMap<String, (usize, serde_json::Value)> = BTreeMap::new();
        let mut out = Vec::new();
        for (i, (r, _)) in self.replicas.iter().enumerate() {
            let clients = r.list()?;
            for c in &clients {
                let view = r.show(c.id.into())?;
                let key = c.id.to_string();
                match seen.get(&key) {
                    Some((j, other)) if *other != view => out.push(format!(
                        "{} differs between {} and {}",
                        c.name, PLACES[*j].name, PLACES[i].name
                    )),
                    Some(_) => {}
                    None => {
                        seen.insert(key, (i, view));
                    }
                }
            }
            for (key, (j, view)) in &seen {
                let company = view["company"].as_str().unwrap_or_default();
                if PLACES[i].companies.contains(&company)
                    && !clients.iter().any(|c| c.id.to_string() == *key)
                {
                    out.push(format!(
                        "{} is on {} but not on {}",
                        view["name"], PLACES[*j].name, PLACES[i].name
                    ));
                }
            }
        }
        Ok(out)
    }

    /// Hands the replicas over (to serve them), keeping the relay running.
    pub fn into_parts(self) -> (Option<RunningRelay>, Vec<(Replica, PathBuf)>) {
        (self.relay, self.replicas)
    }
}
