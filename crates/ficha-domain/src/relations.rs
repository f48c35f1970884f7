//! Relations between client accounts (parent/subsidiary, partner, other) and the account tree
//! they make. Two replicas can each add an edge offline that together close a cycle (A parent
//! of B here, B parent of A there), or give one client two parents; no merge can refuse
//! either. So the tree is computed from the merged edges in an order every replica agrees on
//! (creation time, then id): an edge that would close a cycle or give a second parent is kept,
//! shown on both clients, and left out of the tree until a person removes one.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::record::RecordSummary;

/// One relation as the tree counts it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Edge {
    /// The relation record's id.
    pub id: String,
    /// The parent (or first) client.
    pub parent: String,
    /// The subsidiary (or second) client.
    pub child: String,
    /// parent, partner or other.
    #[serde(rename = "type")]
    pub kind: String,
    /// When it was made (ms).
    pub created_at: i64,
    /// Why it is left out of the tree (a cycle, a second parent), if it is.
    pub broken_because: Option<String>,
}

/// Every relation, and the tree the parent edges that count make.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Accounts {
    /// Every edge, oldest first.
    pub edges: Vec<Edge>,
    /// Each client's parent in the tree.
    pub parent_of: BTreeMap<String, String>,
}

fn edge(r: &RecordSummary) -> Option<Edge> {
    let text = |k: &str| r.text(k);
    Some(Edge {
        id: r.id.clone(),
        parent: text("parent")?,
        child: text("child")?,
        kind: text("type")?,
        created_at: r.created_at,
        broken_because: None,
    })
}

/// The account tree of the relations given, in any order: the result is the same.
pub fn accounts(records: &[RecordSummary]) -> Accounts {
    let mut edges = crate::record::in_agreed_order(records, "relation", edge);
    let mut parent_of: BTreeMap<String, String> = BTreeMap::new();
    for e in edges.iter_mut().filter(|e| e.kind == "parent") {
        let why = if e.parent == e.child {
            Some("a client cannot be its own parent".to_string())
        } else if let Some(p) = parent_of.get(&e.child) {
            Some(format!("{} already has the parent {p}", e.child))
        } else if ancestors(&parent_of, &e.parent).contains(&e.child) {
            Some(format!(
                "{} is already above {} in the tree: this would close a cycle",
                e.child, e.parent
            ))
        } else {
            None
        };
        match why {
            Some(w) => e.broken_because = Some(w),
            None => {
                parent_of.insert(e.child.clone(), e.parent.clone());
            }
        }
    }
    Accounts { edges, parent_of }
}

/// `client`'s ancestors, nearest first.
fn ancestors(parent_of: &BTreeMap<String, String>, client: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut seen = BTreeSet::new();
    let mut at = client.to_string();
    while let Some(p) = parent_of.get(&at) {
        if !seen.insert(p.clone()) {
            break;
        }
        out.push(p.clone());
        at = p.clone();
    }
    out
}

impl Accounts {
    /// A client's place in the tree: its ancestors (nearest first), its children, its other
    /// relations, and the edges that concern it and are left out.
    pub fn tree_of(&self, client: &str) -> serde_json::Value {
        let children: Vec<&str> = self
            .parent_of
            .iter()
            .filter(|(_, p)| *p == client)
            .map(|(c, _)| c.as_str())
            .collect();
        let related = |e: &&Edge| e.parent == client || e.child == client;
        let others: Vec<&Edge> = self
            .edges
            .iter()
            .filter(related)
            .filter(|e| e.kind != "parent")
            .collect();
        let broken: Vec<&Edge> = self
            .edges
            .iter()
            .filter(related)
            .filter(|e| e.broken_because.is_some())
            .collect();
        serde_json::json!({
            "ancestors": ancestors(&self.parent_of, client),
            "children": children,
            "other_relations": others,
            "broken": broken,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::seq::SliceRandom;
    use rand::{Rng, SeedableRng};

    fn rel(id: &str, parent: &str, child: &str, at: i64) -> RecordSummary {
        let mut fields = BTreeMap::new();
        fields.insert("parent".into(), serde_json::json!(parent));
        fields.insert("child".into(), serde_json::json!(child));
        fields.insert("type".into(), serde_json::json!("parent"));
        RecordSummary {
            id: id.into(),
            kind: "relation".into(),
            company: "acme".into(),
            client: None,
            title: String::new(),
            status: None,
            date: None,
            total: None,
            paid: None,
            fields,
            links: Vec::new(),
            created_at: at,
            updated_at: at,
        }
    }

    #[test]
    fn a_cycle_made_offline_is_broken_at_the_same_edge_for_any_order_of_arrival() {
        // Seeded and replayable: random forests of parent edges, many with cycles and second
        // parents, every permutation answering alike, and the tree always a forest.
        for seed in 0..200u64 {
            let mut rng = rand::rngs::SmallRng::seed_from_u64(seed);
            let clients: Vec<String> = (0..6).map(|i| format!("c{i}")).collect();
            let edges: Vec<RecordSummary> = (0..rng.random_range(1..12))
                .map(|i| {
                    let p = &clients[rng.random_range(0..6)];
                    let c = &clients[rng.random_range(0..6)];
                    rel(&format!("e{i:02}"), p, c, rng.random_range(0..5))
                })
                .collect();
            let want = accounts(&edges);
            for _ in 0..20 {
                let mut shuffled = edges.clone();
                shuffled.shuffle(&mut rng);
                assert_eq!(accounts(&shuffled), want, "seed {seed}");
            }
            for c in &clients {
                let up = ancestors(&want.parent_of, c);
                assert!(!up.contains(c), "seed {seed}: {c} is its own ancestor");
            }
        }
        let two = accounts(&[rel("x", "a", "b", 1), rel("y", "b", "a", 1)]);
        assert_eq!(two.parent_of.get("b").map(String::as_str), Some("a"));
        assert!(
            two.edges[1]
                .broken_because
                .as_deref()
                .is_some_and(|w| w.contains("cycle"))
        );
        let tree = two.tree_of("a");
        assert_eq!(tree["children"], serde_json::json!(["b"]));
        assert_eq!(tree["broken"][0]["id"], "y", "shown on both clients");
        assert_eq!(two.tree_of("b")["broken"][0]["id"], "y");
    }
}
