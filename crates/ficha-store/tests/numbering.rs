//! Numbers from a replica's own series: thousands of offline creations on many replicas,
//! interleaved with reopenings and failed edits, never give one number twice, and each
//! replica's sequence has no gap.

mod common;

use std::collections::HashSet;

use automerge::ROOT;
use automerge::transaction::Transactable;
use common::{company, init, open};
use ficha_core::DocId;
use ficha_store::StoreError;
use rand::{Rng, SeedableRng};

#[test]
fn numbers_never_collide_across_replicas_reopenings_and_refused_edits() {
    let seeds = common::seeds("FICHA_NUMBERING_SEEDS", 3);
    for seed in 0..seeds {
        let mut rng = rand::rngs::SmallRng::seed_from_u64(seed);
        let tmp = tempfile::tempdir().expect("tmp");
        let codes = ["01", "02", "03", "0A", "10", "ZZ"];
        let dirs: Vec<_> = codes.iter().map(|c| tmp.path().join(c)).collect();
        let mut stores: Vec<_> = dirs.iter().map(|d| Some(init(d))).collect();
        let mut given = HashSet::new();
        let mut per_replica = vec![0u64; codes.len()];
        for _ in 0..2400 {
            let r = rng.random_range(0..codes.len());
            if rng.random_ratio(1, 50) {
                // Closed and opened again: the series goes on where it was.
                stores[r] = None;
                stores[r] = Some(open(&dirs[r]));
            }
            let Some(store) = stores[r].as_ref() else {
                continue;
            };
            let fail = rng.random_ratio(1, 10);
            let doc = DocId(rng.random());
            let made = store.create_numbered(doc, &company(), "case", |d, seq| {
                if fail {
                    return Err(StoreError::Corrupt("refused by the caller".into()));
                }
                let number = format!("{}-{seq}", codes[r]);
                d.put(ROOT, "number", number.as_str())?;
                Ok(number)
            });
            match made {
                Ok(number) => {
                    per_replica[r] += 1;
                    assert_eq!(
                        number,
                        format!("{}-{}", codes[r], per_replica[r]),
                        "seed {seed}: no gap"
                    );
                    assert!(given.insert(number), "seed {seed}: a number given twice");
                }
                Err(_) => assert!(fail, "seed {seed}: only the refused edit fails"),
            }
        }
        for (r, store) in stores.iter().enumerate() {
            let last = store.as_ref().map(|s| s.last_number("case").expect("last"));
            assert_eq!(last, Some(per_replica[r]), "seed {seed}");
        }
        assert_eq!(given.len() as u64, per_replica.iter().sum::<u64>());
    }
}
