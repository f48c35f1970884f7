//! The list index may only make queries faster: for any filter, paging included, the planner
//! answers exactly what a scan of every summary answers, also after edits that move clients
//! between terms, states and positions in the list.

use ficha_app::app::Replica;
use ficha_core::token::{Claims, sign};
use ficha_core::{Company, DocId};
use ficha_domain::ClientSummary;
use ficha_domain::search::{Filter, Sort, normalise};
use proptest::prelude::*;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

const COMPANIES: &[&str] = &["acme", "beta", "gamma"];
const FIRST: &[&str] = &["José", "Ana", "María", "Jordi", "Núria", "Anaïs", "Joan"];
const LAST: &[&str] = &["Núñez", "Ruiz", "Puig", "García", "Ruiz-Puig", "Anaya"];
const GROUPS: &[&str] = &["vip", "spring", "debtors"];
const STATES: &[&str] = &["active", "archived", "trashed"];
const QUERIES: &[&str] = &[
    "jo",
    "jose",
    "ana",
    "ruiz",
    "ruiz puig",
    "nu",
    "NÚÑEZ",
    "600",
    "612 3",
    "+34 6",
    "example",
    "b-12",
    "b12",
    "x",
    "",
    "  ",
    "an ru",
    "anaya@",
];

fn pick<'a>(rng: &mut SmallRng, from: &[&'a str]) -> &'a str {
    from[rng.random_range(0..from.len())]
}

fn replica() -> (tempfile::TempDir, Replica, Vec<DocId>) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let claims = Claims {
        replica: "r".into(),
        companies: COMPANIES
            .iter()
            .map(|c| Company::new(c).expect("company"))
            .collect(),
        write: true,
        issued_at: 0,
        expires_at: u64::MAX,
        code: String::new(),
    };
    let token = sign(&[7; 32], &claims);
    Replica::init(tmp.path(), "r", "ws://127.0.0.1:1/sync", &token).expect("init");
    let r = Replica::open(tmp.path()).expect("open");
    let mut rng = SmallRng::seed_from_u64(11);
    let mut ids = Vec::new();
    for n in 0..120 {
        let name = format!("{} {}", pick(&mut rng, FIRST), pick(&mut rng, LAST));
        let email = rng
            .random_bool(0.5)
            .then(|| format!("{}{n}@example.com", normalise(pick(&mut rng, LAST))));
        let phone = rng.random_bool(0.6).then(|| {
            format!(
                "+34 6{:02} {:03} {:03}",
                n % 13,
                rng.random_range(0..1000),
                n
            )
        });
        let id = r
            .add_client(
                pick(&mut rng, COMPANIES),
                &name,
                email.as_deref(),
                phone.as_deref(),
            )
            .expect("add");
        if rng.random_bool(0.3) {
            r.set_field(id, "tax_id", &format!("B-12{n:03}"))
                .expect("tax id");
        }
        if rng.random_bool(0.4) {
            r.group(id, pick(&mut rng, GROUPS), true).expect("group");
        }
        ids.push(id);
    }
    // Edits after creation move clients between terms, states and list positions.
    for _ in 0..80 {
        let id = ids[rng.random_range(0..ids.len())];
        match rng.random_range(0..5) {
            0 => r
                .set_field(
                    id,
                    "name",
                    &format!("{} {}", pick(&mut rng, FIRST), pick(&mut rng, LAST)),
                )
                .expect("rename"),
            1 => r.set_field(id, "phone", "+34 612 345 678").expect("phone"),
            2 => r
                .set_state(id, pick(&mut rng, STATES), true)
                .expect("state"),
            3 => r.group(id, pick(&mut rng, GROUPS), false).expect("ungroup"),
            _ => r.set_field(id, "home_centre", "centro").expect("centre"),
        }
    }
    (tmp, r, ids)
}

fn scan(r: &Replica, f: &Filter) -> Vec<ClientSummary> {
    let mut all: Vec<ClientSummary> = r
        .store()
        .summaries()
        .expect("summaries")
        .into_iter()
        .map(|(_, b)| serde_json::from_slice(&b).expect("summary"))
        .filter(|c| f.matches(c))
        .collect();
    all.sort_by_key(|c| (normalise(&c.name), c.id));
    all
}

fn filter() -> impl Strategy<Value = (Filter, Sort, usize, Option<usize>)> {
    let opt = |from: &'static [&'static str]| {
        proptest::option::weighted(0.3, proptest::sample::select(from).prop_map(String::from))
    };
    (
        proptest::option::weighted(
            0.7,
            proptest::sample::select(QUERIES).prop_map(String::from),
        ),
        opt(COMPANIES),
        opt(STATES),
        opt(GROUPS),
        proptest::option::weighted(0.1, Just("centro".to_string())),
        proptest::sample::select(vec![
            Sort::Name,
            Sort::NameDesc,
            Sort::Created,
            Sort::CreatedDesc,
            Sort::Rating,
        ]),
        0usize..5,
        proptest::option::of(1usize..8),
    )
        .prop_map(
            |(text, company, state, group, centre, sort, offset, limit)| {
                let f = Filter {
                    text,
                    company,
                    state,
                    group,
                    centre,
                    ..Filter::default()
                };
                (f, sort, offset, limit)
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn the_index_answers_what_a_scan_answers((f, sort, offset, limit) in filter()) {
        thread_local! {
            static FIXTURE: (tempfile::TempDir, Replica, Vec<DocId>) = replica();
        }
        FIXTURE.with(|(_, r, _)| {
            let mut want = scan(r, &f);
            sort.apply(&mut want);
            let want: Vec<_> = want
                .into_iter()
                .skip(offset)
                .take(limit.unwrap_or(usize::MAX))
                .map(|c| c.id)
                .collect();
            let got: Vec<_> = r
                .page_sorted(&f, sort, offset, limit)
                .expect("page")
                .into_iter()
                .map(|c| c.id)
                .collect();
            prop_assert_eq!(got, want, "filter {:?}", f);
            Ok(())
        })?;
    }
}

#[test]
fn a_search_finds_part_of_a_phone_and_tax_ids_without_punctuation() {
    let (_tmp, r, _) = replica();
    let found = |q: &str| {
        r.page(
            &Filter {
                text: Some(q.into()),
                ..Filter::default()
            },
            0,
            None,
        )
        .expect("page")
    };
    let phone = found("612 345 678");
    assert!(
        !phone.is_empty(),
        "edited phones are found by their new number"
    );
    assert!(
        phone
            .iter()
            .all(|c| c.phone.as_deref() == Some("+34 612 345 678"))
    );
    let tax = found("b12");
    assert!(!tax.is_empty());
    assert!(
        tax.iter()
            .all(|c| c.tax_id.as_deref().is_some_and(|t| t.starts_with("B-12")))
    );
}
