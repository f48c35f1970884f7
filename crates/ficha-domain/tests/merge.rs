//! The merge rules of the client record, checked on concurrent edits.

use automerge::{ActorId, AutoCommit};
use ficha_domain::{
    AlertPriority, ClientView, Priority, add_alert, add_comment, add_note, new_client, set_field,
    view,
};
use proptest::prelude::*;
use uuid::Uuid;

fn actor(n: u8) -> ActorId {
    ActorId::from(&[n; 20][..])
}

fn client() -> AutoCommit {
    let mut doc = AutoCommit::new().with_actor(actor(0));
    new_client(
        &mut doc,
        Uuid::from_u128(1),
        "acme",
        "Ana",
        Some("ana@example.com"),
        None,
        10,
    )
    .expect("new client");
    doc.commit();
    doc
}

fn fork(doc: &mut AutoCommit, n: u8) -> AutoCommit {
    doc.fork().with_actor(actor(n))
}

fn shown(doc: &mut AutoCommit) -> ClientView {
    view(doc.document()).expect("view")
}

#[test]
fn concurrent_items_all_survive_and_a_field_converges_with_its_loser_visible() {
    let mut base = client();
    let (mut a, mut b) = (fork(&mut base, 1), fork(&mut base, 2));
    add_note(&mut a, Uuid::from_u128(10), "from a", 20).expect("note");
    add_comment(
        &mut a,
        Uuid::from_u128(11),
        "ca",
        false,
        true,
        Priority::High,
        21,
    )
    .expect("c");
    add_alert(
        &mut a,
        Uuid::from_u128(12),
        "allergy",
        AlertPriority::Critical,
        "latex",
        22,
    )
    .expect("a");
    set_field(&mut a, "phone", "111", 0).expect("set");
    add_note(&mut b, Uuid::from_u128(20), "from b", 20).expect("note");
    add_comment(
        &mut b,
        Uuid::from_u128(21),
        "cb",
        true,
        false,
        Priority::Low,
        21,
    )
    .expect("c");
    add_alert(
        &mut b,
        Uuid::from_u128(22),
        "debt",
        AlertPriority::Low,
        "owes",
        22,
    )
    .expect("a");
    set_field(&mut b, "phone", "222", 0).expect("set");
    set_field(&mut b, "email", "ana@b.example", 0).expect("set");
    a.commit();
    b.commit();
    a.merge(&mut b.clone()).expect("merge");
    b.merge(&mut a.clone()).expect("merge");
    let (va, vb) = (shown(&mut a), shown(&mut b));
    assert_eq!(va, vb);
    assert_eq!(va.notes.len(), 2);
    assert_eq!(va.comments.len(), 2);
    assert_eq!(va.alerts.len(), 2);
    let phone = va.phone.clone().expect("phone");
    let loser = if phone == "111" { "222" } else { "111" };
    assert_eq!(va.conflicts.get("phone"), Some(&vec![loser.to_string()]));
    assert_eq!(
        va.email.as_deref(),
        Some("ana@b.example"),
        "an edit on one side only just wins"
    );
    assert!(!va.conflicts.contains_key("email"));
    assert_eq!(va.heads.len(), 2);
}

#[test]
fn concurrent_edits_of_one_note_body_both_survive() {
    use automerge::ReadDoc;
    use automerge::transaction::Transactable;
    let mut base = client();
    add_note(&mut base, Uuid::from_u128(5), "hello", 11).expect("note");
    base.commit();
    let (mut a, mut b) = (fork(&mut base, 1), fork(&mut base, 2));
    let text_of = |d: &AutoCommit| {
        let (_, notes) = d.get(automerge::ROOT, "notes").expect("g").expect("notes");
        let (_, note) = d
            .get(&notes, Uuid::from_u128(5).to_string())
            .expect("g")
            .expect("note");
        d.get(&note, "text").expect("g").expect("text").1
    };
    let ta = text_of(&a);
    a.splice_text(&ta, 5, 0, " world").expect("splice");
    let tb = text_of(&b);
    b.splice_text(&tb, 0, 0, "Oh, ").expect("splice");
    a.merge(&mut b).expect("merge");
    assert_eq!(shown(&mut a).notes[0].text, "Oh, hello world");
}

#[test]
fn bad_input_is_refused_and_changes_nothing() {
    let mut doc = client();
    let before = shown(&mut doc);
    assert!(set_field(&mut doc, "shoe_size", "42", 0).is_err());
    assert!(set_field(&mut doc, "email", "not-an-email", 0).is_err());
    assert!(set_field(&mut doc, "name", "  ", 0).is_err());
    assert!(add_note(&mut doc, Uuid::from_u128(3), "", 1).is_err());
    assert_eq!(shown(&mut doc), before);
    assert!(
        view(AutoCommit::new().document()).is_err(),
        "an empty document is not a client"
    );
}

#[derive(Debug, Clone)]
enum Edit {
    Note(u8),
    Comment(u8),
    Alert(u8),
    Field(u8, u8),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        any::<u8>().prop_map(Edit::Note),
        any::<u8>().prop_map(Edit::Comment),
        any::<u8>().prop_map(Edit::Alert),
        (0u8..3, any::<u8>()).prop_map(|(f, v)| Edit::Field(f, v)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    /// Three replicas edit concurrently and merge in any order: they converge, and every item
    /// anyone added is present.
    #[test]
    fn three_replicas_converge_and_lose_nothing(
        edits in prop::collection::vec((0usize..3, edit()), 1..40),
        order in prop::collection::vec((0usize..3, 0usize..3), 0..12),
    ) {
        let mut base = client();
        let mut docs: Vec<AutoCommit> = (1..=3).map(|n| fork(&mut base, n)).collect();
        let mut added = 0usize;
        for (i, (who, e)) in edits.iter().enumerate() {
            let d = &mut docs[*who];
            let id = Uuid::from_u128(1000 + i as u128);
            let at = i as i64;
            match e {
                Edit::Note(v) => add_note(d, id, &format!("n{v}"), at).map(|_| added += 1),
                Edit::Comment(v) => add_comment(d, id, &format!("c{v}"), v % 2 == 0, v % 3 == 0, Priority::Normal, at).map(|_| added += 1),
                Edit::Alert(v) => add_alert(d, id, "t", AlertPriority::High, &format!("a{v}"), at).map(|_| added += 1),
                Edit::Field(f, v) => set_field(d, ["name", "email", "phone"][*f as usize], &format!("v{v}@x"), 0),
            }.expect("edit");
            d.commit();
            // Random partial merges along the way.
            if let Some((x, y)) = order.get(i).copied().filter(|(x, y)| x != y) {
                let mut other = docs[y].clone();
                docs[x].merge(&mut other).expect("merge");
            }
        }
        for x in 0..3 {
            for y in 0..3 {
                if x != y {
                    let mut other = docs[y].clone();
                    docs[x].merge(&mut other).expect("merge");
                }
            }
        }
        let views: Vec<ClientView> = docs.iter_mut().map(shown).collect();
        prop_assert_eq!(&views[0], &views[1]);
        prop_assert_eq!(&views[1], &views[2]);
        let v = &views[0];
        prop_assert_eq!(v.notes.len() + v.comments.len() + v.alerts.len(), added);
    }
}
