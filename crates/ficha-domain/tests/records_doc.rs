//! docs/records.md shows the registry as it is: the table between its markers is generated
//! from `record::kinds::KINDS`. `FICHA_WRITE_DOCS=1` rewrites it after a change to a kind.

const BEGIN: &str = "<!-- kinds:begin (generated; FICHA_WRITE_DOCS=1 cargo test -p ficha-domain --test records_doc) -->\n";
const END: &str = "<!-- kinds:end -->";

#[test]
fn the_records_doc_lists_every_kind_and_field_of_the_registry() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/records.md");
    let doc = std::fs::read_to_string(&path).expect("docs/records.md");
    let (head, rest) = doc.split_once(BEGIN).expect("begin marker");
    let (_, tail) = rest.split_once(END).expect("end marker");
    let fresh = format!(
        "{head}{BEGIN}{}{END}{tail}",
        ficha_domain::record::markdown()
    );
    if std::env::var_os("FICHA_WRITE_DOCS").is_some() {
        std::fs::write(&path, &fresh).expect("write");
        return;
    }
    assert!(
        doc == fresh,
        "docs/records.md is behind the registry: run FICHA_WRITE_DOCS=1 cargo test -p ficha-domain --test records_doc"
    );
    for k in ficha_domain::record::kinds::KINDS {
        assert!(
            doc.contains(&format!("### `{}`", k.name)),
            "{} is documented",
            k.name
        );
    }
}
