//! Importing a few thousand clients from CSV through the real binary: bad rows reported by line
//! and skipped, dry run writes nothing, re-import is idempotent, near-duplicates are flagged,
//! a batch reverts, and the list exports.

use std::fmt::Write as _;

use anyhow::Result;
use ficha_e2e::Relay;

const ROWS: usize = 3000;

fn csv(bad: &[usize]) -> String {
    let mut s = String::from(
        "Nombre,Correo,Teléfono,NIF,Fecha de nacimiento,Grupo,Notas,Código,Columna rara\n",
    );
    for i in 0..ROWS {
        let date = if bad.contains(&i) {
            "1990-02-30".to_string()
        } else {
            format!("19{:02}-0{}-1{}", 50 + i % 50, 1 + i % 9, i % 10)
        };
        let _ = writeln!(
            s,
            "\"Cliente {i}, Pérez\",c{i}@example.com,+34 6{i:08},{i:08}Z,{},{},\"visita {i}\",C{i},x",
            date,
            if i % 2 == 0 { "vip" } else { "" }
        );
    }
    s
}

#[test]
fn thousands_of_rows_with_bad_ones() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let relay = Relay::start(&tmp.path().join("relay"), 0)?;
    let a = relay.replica(&tmp.path().join("a"), "a", &["acme"])?;
    let bad = [10, 1500, 2999];
    let file = tmp.path().join("clientes.csv");
    std::fs::write(&file, csv(&bad))?;
    let path = file.to_str().unwrap_or_default();

    let dry: serde_json::Value =
        serde_json::from_str(&a.ok(&["import", path, "--company", "acme", "--dry-run"])?)?;
    assert_eq!(dry["created"], ROWS - bad.len());
    let lines: Vec<u64> = dry["errors"]
        .as_array()
        .map(|e| e.iter().filter_map(|x| x["line"].as_u64()).collect())
        .unwrap_or_default();
    assert_eq!(
        lines,
        bad.iter().map(|i| *i as u64 + 2).collect::<Vec<_>>(),
        "line numbers count the header as line 1"
    );
    assert_eq!(dry["ignored_columns"], serde_json::json!(["Columna rara"]));
    assert_eq!(
        a.ok(&["client", "list", "--json"])?,
        "[]",
        "a dry run writes nothing"
    );

    let real: serde_json::Value =
        serde_json::from_str(&a.ok(&["import", path, "--company", "acme"])?)?;
    assert_eq!(real["created"], ROWS - bad.len());
    assert_eq!(real["errors"].as_array().map(Vec::len), Some(bad.len()));
    let listed: serde_json::Value = serde_json::from_str(&a.ok(&[
        "client",
        "list",
        "--json",
        "--search",
        "cliente 42, perez",
    ])?)?;
    assert_eq!(listed[0]["email"], "c42@example.com");
    assert_eq!(listed[0]["groups"], serde_json::json!(["vip"]));

    let again: serde_json::Value =
        serde_json::from_str(&a.ok(&["import", path, "--company", "acme"])?)?;
    assert_eq!(
        (again["created"].as_u64(), again["unchanged"].as_u64()),
        (Some(0), Some((ROWS - bad.len()) as u64)),
        "re-import is idempotent"
    );

    // A second file: one update (same code), one near-duplicate (same phone, new everything else).
    let second = tmp.path().join("second.csv");
    std::fs::write(
        &second,
        "name,email,phone,code\nCliente 7 Pérez,c7@example.com,+34 600000007,C7\nOtra Persona,otra@example.com,600 000 008,Z1\n,missing@example.com,1,Z2\n",
    )?;
    let r2: serde_json::Value = serde_json::from_str(&a.ok(&[
        "import",
        second.to_str().unwrap_or_default(),
        "--company",
        "acme",
    ])?)?;
    assert_eq!(
        (r2["created"].as_u64(), r2["updated"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(r2["flagged"][0]["reason"], "phone");
    assert_eq!(r2["errors"][0]["line"], 4);
    let batch = r2["batch"].as_str().unwrap_or_default().to_string();
    a.ok(&["import", "revert", &batch])?;
    let found: serde_json::Value =
        serde_json::from_str(&a.ok(&["client", "list", "--json", "--search", "otra persona"])?)?;
    assert_eq!(
        found,
        serde_json::json!([]),
        "the reverted batch's client is in the trash"
    );

    let export = tmp.path().join("vip.csv");
    a.ok(&[
        "export",
        "--group",
        "vip",
        "--format",
        "csv",
        "--out",
        export.to_str().unwrap_or_default(),
    ])?;
    let exported = std::fs::read_to_string(&export)?;
    let expected_vip = (0..ROWS).filter(|i| i % 2 == 0 && !bad.contains(i)).count();
    assert_eq!(exported.lines().count(), expected_vip + 1);
    assert!(exported.lines().nth(1).is_some_and(|l| l.contains("vip")));
    let json: serde_json::Value = serde_json::from_str(&a.ok(&[
        "export",
        "--search",
        "c42@example.com",
        "--format",
        "json",
    ])?)?;
    assert_eq!(json[0]["notes"][0]["text"], "visita 42");
    Ok(())
}
