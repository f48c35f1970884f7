//! `ficha demo --script`: a day of the group, every business rule a merge alone cannot keep
//! played out offline, then what the product did about each, and a check that every replica
//! ended with the same records (exit 0 only then).

use std::path::PathBuf;

use anyhow::{Context, Result, bail, ensure};

use super::group::{Group, PLACES};
use super::sample::{self, CLINICA, ESTETICA};
use super::step;
use crate::app::time::TimeForm;
use crate::app::{Given, Replica};
use ficha_core::DocId;

const MADRID: usize = 0;
const SEVILLA: usize = 1;
const LAPTOP: usize = 2;
const OFFICE: usize = 3;

/// Clients of each company in the morning.
const CLIENTS: usize = 8;

fn as_person(g: &Group, i: usize, code: &str) -> Result<Replica> {
    let r = g.replica(i);
    Ok(r.acting_as(&r.employee(code)?)?)
}

fn client_named(r: &Replica, name: &str) -> Result<DocId> {
    r.list()?
        .into_iter()
        .find(|c| c.name == name)
        .map(|c| c.id.into())
        .with_context(|| format!("no client named {name}"))
}

fn case_form(title: &str, assignee: &str) -> Vec<(String, Given)> {
    [
        ("title", title),
        ("category", "complaint"),
        ("status", "new"),
        ("priority", "high"),
        (
            "description",
            "La clienta no recibió el recordatorio de la cita",
        ),
        ("assignee", assignee),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), Given::Text(v.to_string())))
    .collect()
}

fn euros(minor: i64) -> String {
    format!("{:.2} EUR", minor as f64 / 100.0)
}

/// Plays the day in `dir` (or a temporary directory); fails unless the group converged.
pub async fn run(dir: Option<PathBuf>) -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let root = dir.unwrap_or_else(|| tmp.path().to_path_buf());
    let mut g = Group::create(&root).await?;
    let today = chrono::Local::now().date_naive();

    step("08:00 · El grupo abre / The group opens: staff, clients and a first sync");
    for (i, company) in [(MADRID, &CLINICA), (SEVILLA, &ESTETICA)] {
        let admin = sample::staff(g.replica(i), company)?;
        sample::load(&admin, company, CLIENTS, today)?;
        println!(
            "   {}: {} clients of {}, {} employees",
            PLACES[i].name,
            CLIENTS,
            company.id,
            company.people.len()
        );
    }
    g.sync_all().await?;
    let (ana_madrid, carmen_laptop) = (
        as_person(&g, MADRID, "ana")?,
        as_person(&g, LAPTOP, "carmen")?,
    );
    let ana_office = as_person(&g, OFFICE, "ana")?;
    let luis = as_person(&g, SEVILLA, "luis")?;
    let lucia = client_named(&ana_madrid, &CLINICA.client(0))?;
    let regular = client_named(&ana_madrid, &CLINICA.client(1))?;
    let former_name = ESTETICA.client(2);
    let former = client_named(&luis, &former_name)?;
    luis.set_state(former, "archived", false)?;
    println!(
        "   sucursal-sevilla (luis): {former_name} archived: a former client, in the Histórico"
    );
    g.sync_all().await?;

    step("10:00 · Se cae la conexión / The WAN goes down; every place keeps working");
    g.relay_down().await;
    ana_madrid.set_field(lucia, "phone", "+34 600 999 001")?;
    ana_madrid.add_note(lucia, "Llamó para cambiar la cita del jueves")?;
    carmen_laptop.set_field(lucia, "phone", "+34 600 999 002")?;
    carmen_laptop.add_note(lucia, "Firmó el consentimiento del láser")?;
    println!(
        "   both clinica-sol places edit {}: two phones, two notes",
        CLINICA.client(0)
    );

    let rosa = "Rosa Medina Ortiz";
    let mail = Some("rosa.medina@correo.example");
    ana_madrid.add_client("clinica-sol", rosa, mail, Some("+34 655 000 321"))?;
    carmen_laptop.add_client("clinica-sol", rosa, mail, Some("+34 655 000 321"))?;
    println!("   a new client, {rosa}, is registered at the branch and on the laptop");

    ana_madrid.wallet_move(lucia, "deduct", "40EUR", Some("Limpieza facial"))?;
    carmen_laptop.wallet_move(lucia, "deduct", "40EUR", Some("Peeling químico"))?;
    println!(
        "   the wallet of {} is spent twice: 40 EUR at the branch, 40 EUR on the laptop; each sees {}",
        CLINICA.client(0),
        euros(ana_madrid.wallet(&lucia)?.balance)
    );

    let carmen = ana_madrid.employee("carmen")?.id;
    let ana = ana_madrid.employee("ana")?.id;
    let (_, n1) = carmen_laptop.add_case(lucia, &case_form("Recordatorio no recibido", &ana))?;
    let (_, n2) = ana_madrid.add_case(regular, &case_form("Cambio de centro", &carmen))?;
    println!(
        "   cases opened offline: {n1} (laptop, assigned to ana), {n2} (branch, assigned to carmen)"
    );

    let form = |who: &str, minutes| TimeForm {
        text: "Revisión del plan de tratamiento".into(),
        employee: who.into(),
        date: today.to_string(),
        minutes: Some(minutes),
        next_action: None,
        project: None,
    };
    let on_laptop = carmen_laptop.add_time(regular, &form("carmen", 30))?;
    let on_office = ana_office.add_time(regular, &form("ana", 45))?;
    println!(
        "   quick time on two laptops for {}: the rule makes project {} on one and {} on the other",
        CLINICA.client(1),
        on_laptop.project,
        on_office.project
    );

    let phone = luis.show(former)?["phone"].clone();
    let returning = luis.add_client("estetica-luna", &former_name, None, phone.as_str())?;
    println!("   sucursal-sevilla: {former_name} comes back and is registered again as new");

    step("13:00 · Vuelve la conexión / The WAN is back; every place syncs");
    g.relay_up().await?;
    g.sync_all().await?;
    for (i, p) in PLACES.iter().enumerate() {
        println!(
            "   {}: synced, {} pending upload",
            p.name,
            g.replica(i).pending_upload()?
        );
    }

    step("Lo que hizo el producto / What the product did about each rule");
    let view = g.replica(OFFICE).show(lucia)?;
    println!(
        "   phone: {} kept, {} shown under conflicts for a person to pick",
        view["phone"], view["conflicts"]["phone"]
    );
    let notes = view["notes"].as_array().map_or(0, Vec::len);
    ensure!(notes >= 3, "a note was lost: {notes} notes");
    println!("   notes: all {notes} kept");

    let pairs = g.replica(OFFICE).duplicates()?;
    let pair = pairs
        .iter()
        .find(|c| c.a.name == rosa && c.b.name == rosa)
        .context("the duplicate made in two branches was not found")?;
    println!(
        "   duplicate found: {rosa} twice ({}); the office merges them",
        pair.reasons.join(", ")
    );
    ana_office.merge(pair.a.id.into(), pair.b.id.into())?;

    let wallet = g.replica(OFFICE).wallet(&lucia)?;
    ensure!(wallet.overdraft, "the double spend left no overdraft");
    println!(
        "   wallet: merged balance {} → overdraft shown on every replica until funds are added",
        euros(wallet.balance)
    );

    ensure!(n1 != n2, "two cases share the number {n1}");
    println!("   case numbers: {n1} and {n2}, apart by construction (one series per replica)");

    ensure!(
        on_laptop.project == on_office.project,
        "the two laptops made different projects"
    );
    let projects = g
        .replica(OFFICE)
        .linked_records(&regular)?
        .into_iter()
        .filter(|r| r.kind == "project")
        .count();
    ensure!(projects == 1, "{projects} projects for one client");
    println!("   projects: one, the same id derived on both laptops, with both entries");

    match g.replica(OFFICE).reactivate(former, false) {
        Ok(()) => bail!("reactivating a client registered again was not checked"),
        Err(e) => println!("   reactivation of {former_name} refused: {e}"),
    }
    let luis_office = as_person(&g, OFFICE, "luis")?;
    luis_office.merge(former, returning)?;
    luis_office.reactivate(former, false)?;
    println!("   the office merges the new record into the archived one and reactivates it");

    step("Al cerrar / At closing: one more sync, and every place holds the same records");
    g.sync_all().await?;
    let differences = g.differences()?;
    g.relay_down().await;
    if !differences.is_empty() {
        bail!("the replicas did not converge:\n{}", differences.join("\n"));
    }
    for (i, p) in PLACES.iter().enumerate() {
        let clients = g.replica(i).list()?;
        println!(
            "   {}: {} clients ({} active)",
            p.name,
            clients.len(),
            clients.iter().filter(|c| c.state == "active").count()
        );
    }
    println!("\nConverged: every place shows the same clients, with nothing lost.");
    Ok(())
}
