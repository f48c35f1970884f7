//! Search on a replica holding 50 000 clients, through the real binary: the index answers
//! exactly (no timing assertions here; the benchmark measures speed).

use std::fmt::Write as _;

use anyhow::Result;
use ficha_e2e::Relay;

const CLIENTS: usize = 50_000;

fn names(json: &str) -> Result<Vec<String>> {
    let v: serde_json::Value = serde_json::from_str(json)?;
    Ok(v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["name"].as_str().map(str::to_string))
        .collect())
}

#[test]
fn fifty_thousand_clients_are_searched_by_the_index() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let relay = Relay::start(&tmp.path().join("relay"), 0)?;
    let a = relay.replica(&tmp.path().join("a"), "a", &["acme"])?;
    let mut csv = String::from("Nombre de pila,Apellidos,Correo,Teléfono,NIF,Grupo,Centro\n");
    const FIRST: &[&str] = &["José", "María", "Núria", "Iñaki", "Ana"];
    const LAST: &[&str] = &["Núñez", "García", "Puig", "Etxeberria", "Ruiz"];
    for i in 0..CLIENTS {
        writeln!(
            csv,
            "{} {i:05},{},c{i}@example.com,+34 7{i:08},B-{i:07},{},centro-{}",
            FIRST[i % FIRST.len()],
            LAST[(i / 5) % LAST.len()],
            if i % 100 == 0 { "vip" } else { "" },
            i % 20,
        )?;
    }
    let file = tmp.path().join("clientes.csv");
    std::fs::write(&file, csv)?;
    let report: serde_json::Value = serde_json::from_str(&a.ok(&[
        "import",
        file.to_str().unwrap_or_default(),
        "--company",
        "acme",
    ])?)?;
    assert_eq!(report["created"], CLIENTS);

    let search = |q: &str, extra: &[&str]| -> Result<Vec<String>> {
        let mut args = vec!["client", "list", "--json", "--search", q];
        args.extend_from_slice(extra);
        names(&a.ok(&args)?)
    };
    let i = 31_415;
    let want = format!(
        "{} {i:05} {}",
        FIRST[i % FIRST.len()],
        LAST[(i / 5) % LAST.len()]
    );
    assert_eq!(
        search("31415", &[])?,
        vec![want.clone()],
        "by the number in the name"
    );
    assert_eq!(
        search(&plain(&want), &[])?,
        vec![want.clone()],
        "accent- and case-insensitive"
    );
    assert_eq!(
        search("7 0003 1415", &[])?,
        vec![want.clone()],
        "by part of the phone"
    );
    assert_eq!(
        search("b0031415", &[])?,
        vec![want.clone()],
        "by tax id without punctuation"
    );
    assert_eq!(
        search("c31415@example", &[])?,
        vec![want.clone()],
        "by email"
    );
    // A word shared by a fifth of the list, narrowed by a filter, paged.
    let vip_nunez = search("nunez", &["--group", "vip"])?;
    let expected = (0..CLIENTS)
        .filter(|i| i % 100 == 0 && (i / 5) % LAST.len() == 0)
        .count();
    assert_eq!(vip_nunez.len(), expected);
    assert!(vip_nunez.iter().all(|n| n.ends_with("Núñez")));
    let page = names(&a.ok(&[
        "client", "list", "--json", "--centre", "centro-7", "--limit", "25", "--offset", "100",
    ])?)?;
    assert_eq!(page.len(), 25);
    let mut sorted = page.clone();
    sorted.sort_by_key(|n| plain(n));
    assert_eq!(page, sorted, "pages come in list order");
    let stats: serde_json::Value =
        serde_json::from_str(&a.ok(&["client", "stats", "--group", "vip"])?)?;
    assert_eq!(stats["total_clients"], CLIENTS / 100);
    assert!(search("nobody-is-called-this", &[])?.is_empty());
    Ok(())
}

/// Lower case without accents, as a person might type it.
fn plain(s: &str) -> String {
    s.to_lowercase()
        .replace('á', "a")
        .replace('é', "e")
        .replace('í', "i")
        .replace('ó', "o")
        .replace('ú', "u")
        .replace('ñ', "n")
}
