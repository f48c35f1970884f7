//! The fuzz targets' smoke run on stable: seeded mutations (bit flips, insertions, deletions,
//! splices, truncations) of valid inputs through every entry point of `ficha_e2e::fuzz`, then
//! every saved regression input. A panic anywhere fails the test and prints the seed.
//!
//! Longer run: `FICHA_FUZZ_ITERS=50 FICHA_FUZZ_SEED=n cargo test --release -p ficha-e2e --test fuzz_smoke`
//! (iterations are multiplied); coverage-guided:
//! `RUSTC_BOOTSTRAP=1 cargo fuzz run -O <target>` in `fuzz/`.

use std::path::Path;

use automerge::transaction::Transactable;
use automerge::{AutoCommit, ROOT};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use ficha_core::frame::{ByteBuf, DocChanges, Frame, Hello, Upload};
use ficha_core::{Company, DocId, ReplicaId};
use ficha_e2e::fuzz;

fn multiplier() -> usize {
    std::env::var("FICHA_FUZZ_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
}

fn seed() -> u64 {
    std::env::var("FICHA_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
}

fn mutate(rng: &mut SmallRng, seeds: &[Vec<u8>]) -> Vec<u8> {
    let mut data = seeds[rng.random_range(0..seeds.len())].clone();
    for _ in 0..rng.random_range(1..6) {
        match rng.random_range(0..6) {
            0 if !data.is_empty() => {
                let i = rng.random_range(0..data.len());
                data[i] ^= 1 << rng.random_range(0..8);
            }
            1 => {
                let i = rng.random_range(0..=data.len());
                let n = rng.random_range(1..16);
                let bytes: Vec<u8> = (0..n).map(|_| rng.random()).collect();
                data.splice(i..i, bytes);
            }
            2 if !data.is_empty() => {
                let i = rng.random_range(0..data.len());
                let j = (i + rng.random_range(1..32)).min(data.len());
                data.drain(i..j);
            }
            3 => {
                let other = &seeds[rng.random_range(0..seeds.len())];
                let cut = rng.random_range(0..=other.len());
                let at = rng.random_range(0..=data.len());
                data.truncate(at);
                data.extend_from_slice(&other[cut..]);
            }
            4 if !data.is_empty() => {
                data.truncate(rng.random_range(0..data.len()));
            }
            _ => {
                // Interesting values: lengths and varints at their edges.
                let i = rng.random_range(0..=data.len());
                let v = [0x00, 0x7f, 0x80, 0xff, 0xf1][rng.random_range(0..5)];
                data.insert(i, v);
            }
        }
    }
    data
}

fn run(target: &str, f: fn(&[u8]), seeds: &[Vec<u8>], iterations: usize) {
    let seed = seed();
    let mut rng = SmallRng::seed_from_u64(seed ^ target.len() as u64);
    for s in seeds {
        f(s);
    }
    for i in 0..iterations * multiplier() {
        let input = mutate(&mut rng, seeds);
        let outcome = std::panic::catch_unwind(|| f(&input));
        if outcome.is_err() {
            let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../fuzz/crashes")
                .join(target);
            let _ = std::fs::create_dir_all(&dir);
            let file = dir.join(format!("seed{seed}-iter{i}"));
            let _ = std::fs::write(&file, &input);
            panic!(
                "{target} panicked on input {} (FICHA_FUZZ_SEED={seed}); saved to {}",
                input.len(),
                file.display()
            );
        }
    }
    let regressions = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/regressions")
        .join(target);
    if let Ok(entries) = std::fs::read_dir(regressions) {
        for e in entries.flatten() {
            if let Ok(bytes) = std::fs::read(e.path()) {
                f(&bytes);
            }
        }
    }
}

fn a_change() -> Vec<u8> {
    let mut doc = AutoCommit::new();
    doc.put(ROOT, "name", "Ana").expect("put");
    doc.commit();
    doc.get_last_local_change()
        .map(|c| c.raw_bytes().to_vec())
        .expect("a change")
}

fn frames() -> Vec<Vec<u8>> {
    let acme = Company::new("acme").expect("company");
    vec![
        Frame::Hello(Hello {
            replica: ReplicaId([1; 16]),
            token: "ft1.abc.def".into(),
        })
        .encode(),
        Frame::Subscribe {
            company: acme.clone(),
            after: 42,
        }
        .encode(),
        Frame::Upload(Upload {
            upto: 3,
            docs: vec![DocChanges {
                doc: DocId([2; 16]),
                company: acme.clone(),
                changes: vec![ByteBuf::from(a_change())],
            }],
        })
        .encode(),
        Frame::CaughtUp {
            company: acme,
            upto: 9,
        }
        .encode(),
    ]
}

#[test]
fn frame_decoding() {
    run("frame_decode", fuzz::frame_decode, &frames(), 20_000);
}

#[test]
fn relay_change_ingestion() {
    let mut seeds = frames();
    seeds.push(a_change());
    run("relay_ingest", fuzz::relay_ingest, &seeds, 4_000);
}

#[test]
fn csv_import() {
    let seeds = vec![
        "Nombre,Correo,Teléfono,NIF,Fecha de nacimiento,Grupo\n\
         \"Ana, Ruiz\",ana@x.es,600 11 22 33,12345678Z,1990-02-03,vip\n\
         Luis,luis@x.es,,,,\n"
            .as_bytes()
            .to_vec(),
        b"name,email,company,birth_date\nPau,pau@x.es,acme,2001-13-40\n".to_vec(),
        b"first_name;last_name\nA;B\n".to_vec(),
    ];
    run("csv_import", fuzz::csv_import, &seeds, 150);
}

#[test]
fn api_json_bodies() {
    let seeds: Vec<Vec<u8>> = [
        r#"{"company":"acme","name":"Ana","email":"a@b.c"}"#,
        r#"{"action":"add-group","value":"vip","ids":["00000000-0000-0000-0000-000000000001"]}"#,
        r#"{"survivor":"00000000-0000-0000-0000-000000000001","other":"00000000-0000-0000-0000-000000000002"}"#,
        r#"{"field":"name","value":"Eva"}"#,
        r#"{"text":"hola","private":true}"#,
        r#"{"older_than_days":0}"#,
        r#"{"type":"latex","severity":"severe"}"#,
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect();
    run("api_body", fuzz::api_body, &seeds, 120);
}
