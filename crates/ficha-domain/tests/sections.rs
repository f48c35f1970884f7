//! Merge rules of the whole client file, on concurrent edits of several replicas.

use automerge::{ActorId, AutoCommit};
use ficha_domain::{
    ClientView, add_group, add_item, log_event, new_client, remove_group, remove_item, set_field,
    set_item, set_state, view,
};
use proptest::prelude::*;
use uuid::Uuid;

fn kv(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn client() -> AutoCommit {
    let mut doc = AutoCommit::new().with_actor(ActorId::from(&[0u8; 20][..]));
    new_client(&mut doc, Uuid::from_u128(1), "acme", "Ana", None, None, 10).expect("new");
    doc.commit();
    doc
}

fn fork(doc: &mut AutoCommit, n: u8) -> AutoCommit {
    doc.fork().with_actor(ActorId::from(&[n; 20][..]))
}

fn merged(docs: &mut [AutoCommit]) -> Vec<ClientView> {
    for x in 0..docs.len() {
        for y in 0..docs.len() {
            if x != y {
                let mut other = docs[y].clone();
                docs[x].merge(&mut other).expect("merge");
            }
        }
    }
    docs.iter_mut()
        .map(|d| view(d.document()).expect("view"))
        .collect()
}

fn json(v: &ClientView) -> serde_json::Value {
    serde_json::to_value(v).expect("json")
}

#[test]
fn a_skin_test_never_moves_backwards_through_a_merge() {
    let mut base = client();
    let t = Uuid::from_u128(7);
    add_item(
        &mut base,
        "skin_tests",
        t,
        &kv(&[("responsible", "Dr. Ruiz")]),
        11,
    )
    .expect("add");
    base.commit();
    let (mut a, mut b) = (fork(&mut base, 1), fork(&mut base, 2));
    set_item(&mut a, "skin_tests", t, &kv(&[("status", "in_progress")])).expect("a");
    set_item(&mut a, "skin_tests", t, &kv(&[("status", "satisfactory")])).expect("a");
    // b still thinks it is pending and edits another field.
    set_item(&mut b, "skin_tests", t, &kv(&[("description", "forearm")])).expect("b");
    let views = merged(&mut [a.clone(), b.clone()]);
    let test = &json(&views[0])["skin_tests"][0];
    assert_eq!(test["status"], "satisfactory");
    assert_eq!(test["description"], "forearm");
    assert!(
        set_item(&mut a, "skin_tests", t, &kv(&[("status", "pending")])).is_err(),
        "no way back"
    );
    assert!(
        set_item(
            &mut a,
            "skin_tests",
            t,
            &kv(&[("status", "unsatisfactory")])
        )
        .is_err(),
        "outcome is final"
    );
}

#[test]
fn concurrent_outcomes_resolve_to_the_safe_one_and_say_so() {
    let mut base = client();
    let t = Uuid::from_u128(7);
    add_item(&mut base, "skin_tests", t, &[], 11).expect("add");
    base.commit();
    let (mut a, mut b) = (fork(&mut base, 1), fork(&mut base, 2));
    set_item(&mut a, "skin_tests", t, &kv(&[("status", "satisfactory")])).expect("a");
    set_item(
        &mut b,
        "skin_tests",
        t,
        &kv(&[("status", "unsatisfactory")]),
    )
    .expect("b");
    let views = merged(&mut [a, b]);
    let test = &json(&views[0])["skin_tests"][0];
    assert_eq!(test["status"], "unsatisfactory");
    assert_eq!(test["status_conflict"], "satisfactory");
}

#[test]
fn clinical_items_are_deactivated_not_deleted_and_bad_values_refused() {
    let mut doc = client();
    let allergy = Uuid::from_u128(3);
    assert!(
        add_item(&mut doc, "allergies", allergy, &kv(&[("type", "latex")]), 1).is_err(),
        "severity required"
    );
    add_item(
        &mut doc,
        "allergies",
        allergy,
        &kv(&[
            ("type", "latex"),
            ("severity", "severe"),
            ("diagnosed_on", "2024-02-29"),
        ]),
        1,
    )
    .expect("add");
    assert!(
        set_item(
            &mut doc,
            "allergies",
            allergy,
            &kv(&[("diagnosed_on", "2023-02-29")])
        )
        .is_err(),
        "not a leap year"
    );
    assert!(
        set_item(
            &mut doc,
            "allergies",
            allergy,
            &kv(&[("severity", "mild-ish")])
        )
        .is_err()
    );
    remove_item(&mut doc, "allergies", allergy).expect("remove");
    let v = json(&view(doc.document()).expect("view"));
    assert_eq!(v["allergies"][0]["active"], false);
    assert_eq!(v["allergies"][0]["type"], "latex");
    let review = Uuid::from_u128(4);
    assert!(add_item(&mut doc, "reviews", review, &kv(&[("rating", "6")]), 1).is_err());
    add_item(
        &mut doc,
        "reviews",
        review,
        &kv(&[("rating", "5"), ("source", "google")]),
        1,
    )
    .expect("review");
    remove_item(&mut doc, "reviews", review).expect("non-clinical items are deleted");
    assert_eq!(
        json(&view(doc.document()).expect("view"))["reviews"],
        serde_json::json!([])
    );
    assert!(set_field(&mut doc, "birth_date", "1990-13-01", 0).is_err());
    set_field(&mut doc, "birth_date", "1990-12-01", 0).expect("date");
    set_field(&mut doc, "tax_id", "12345678Z", 0).expect("tax id");
    assert_eq!(
        json(&view(doc.document()).expect("view"))["profile"]["tax_id"],
        "12345678Z"
    );
}

#[derive(Debug, Clone)]
enum Op {
    Email(bool),
    Allergy,
    Group(u8, bool),
    Log,
    Field(u8),
    State(u8),
    Advance(u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        any::<bool>().prop_map(Op::Email),
        Just(Op::Allergy),
        (0u8..4, any::<bool>()).prop_map(|(g, add)| Op::Group(g, add)),
        Just(Op::Log),
        any::<u8>().prop_map(Op::Field),
        (0u8..3).prop_map(Op::State),
        (0u8..4).prop_map(Op::Advance),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    /// Three replicas, random edits of every section: same view everywhere, no item lost, one
    /// primary email per kind, skin test at the furthest stage any replica reached, log complete.
    #[test]
    fn the_whole_file_converges_and_loses_nothing(ops in prop::collection::vec((0usize..3, op()), 1..40)) {
        let mut base = client();
        let test = Uuid::from_u128(99);
        add_item(&mut base, "skin_tests", test, &[], 1).expect("test");
        base.commit();
        let mut docs: Vec<AutoCommit> = (1..=3).map(|n| fork(&mut base, n)).collect();
        let (mut emails, mut allergies, mut logs) = (0usize, 0usize, 0usize);
        let mut furthest = 0usize;
        for (i, (who, op)) in ops.iter().enumerate() {
            let d = &mut docs[*who];
            let id = Uuid::from_u128(1000 + i as u128);
            match op {
                Op::Email(primary) => {
                    add_item(d, "emails", id, &kv(&[("value", &format!("e{i}@x.es")), ("kind", "work"), ("primary", &primary.to_string())]), i as i64).expect("email");
                    emails += 1;
                }
                Op::Allergy => {
                    add_item(d, "allergies", id, &kv(&[("type", "pollen"), ("severity", "low")]), i as i64).expect("allergy");
                    allergies += 1;
                }
                Op::Group(g, true) => add_group(d, &format!("g{g}")).expect("group"),
                Op::Group(g, false) => remove_group(d, &format!("g{g}")).expect("group"),
                Op::Log => {
                    log_event(d, id, &ficha_domain::Actor::replica("tester"), "contact", "called", i as i64).expect("log");
                    logs += 1;
                }
                Op::Field(v) => set_field(d, "home_centre", &format!("centre-{v}"), 0).expect("field"),
                Op::State(s) => set_state(d, ["active", "archived", "trashed"][*s as usize], i as i64).expect("state"),
                Op::Advance(s) => {
                    let stage = ["pending", "in_progress", "satisfactory", "unsatisfactory"][*s as usize];
                    if set_item(d, "skin_tests", test, &kv(&[("status", stage)])).is_ok() {
                        furthest = furthest.max(if *s >= 2 { 2 } else { *s as usize });
                    }
                }
            }
            d.commit();
        }
        let views = merged(&mut docs);
        prop_assert_eq!(&views[0], &views[1]);
        prop_assert_eq!(&views[1], &views[2]);
        let v = json(&views[0]);
        prop_assert_eq!(v["emails"].as_array().map_or(0, Vec::len), emails);
        prop_assert_eq!(v["allergies"].as_array().map_or(0, Vec::len), allergies);
        prop_assert_eq!(v["log"].as_array().map_or(0, Vec::len), logs);
        let primaries = v["emails"].as_array().map_or(0, |a| a.iter().filter(|e| e["primary"] == true).count());
        prop_assert!(primaries <= 1, "{} primary work emails", primaries);
        let status = v["skin_tests"][0]["status"].as_str().unwrap_or_default().to_string();
        let rank = match status.as_str() { "pending" => 0, "in_progress" => 1, _ => 2 };
        prop_assert_eq!(rank, furthest);
        prop_assert_eq!(v["archived"].as_bool(), Some(v["state"] == "archived"));
    }
}
