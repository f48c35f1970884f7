//! `ficha demo --web`: the group with its sample data, every replica serving its page and the
//! relay its admin page, until Ctrl-C. A given directory keeps the data: run it again to reopen.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use tokio::net::TcpListener;

use super::group::{Group, PLACES};
use super::sample::{self, CLINICA, ESTETICA, PASSWORD};

/// Clients of each company in the sample.
const CLIENTS: usize = 60;

/// Starts (or reopens) the group, serves every page and prints how to reach them.
pub async fn run(dir: Option<PathBuf>) -> Result<()> {
    let tmp;
    let kept = dir.is_some();
    let root = match dir {
        Some(d) => d,
        None => {
            tmp = tempfile::tempdir()?;
            tmp.path().to_path_buf()
        }
    };
    let group = if Group::exists(&root) {
        println!(
            "Reabriendo la demo de {0} / Reopening the demo in {0}",
            root.display()
        );
        Group::reopen(&root).await?
    } else {
        println!(
            "Creando la demo en {0} con datos de ejemplo / Creating the demo in {0} with sample data",
            root.display()
        );
        let group = Group::create(&root).await?;
        tokio::task::spawn_blocking(move || seed(&group).map(|()| group))
            .await
            .context("loading the sample data stopped")??
    };
    group.sync_all().await?;
    let key = ficha_relay::secret::admin_key(
        &ficha_relay::secret::load_or_create(group.relay_dir())
            .context("cannot read the relay's secret")?,
    );
    let relay_addr = group.addr;
    let (relay, replicas) = group.into_parts();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut servers = Vec::new();
    let mut pages = Vec::new();
    for (place, (replica, dir)) in PLACES.iter().zip(replicas) {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let (ready, link) = tokio::sync::oneshot::channel();
        let mut stopped = stopped.clone();
        servers.push(tokio::spawn(async move {
            crate::server::serve(
                replica,
                &dir,
                listener,
                crate::server::Options {
                    mail: None,
                    // The sample group is in Spain, wherever the visitor's machine is.
                    time_zone: Some(chrono_tz::Europe::Madrid),
                },
                |r| {
                    let _ = ready.send((r.addr, r.link.clone()));
                },
                async move {
                    let _ = stopped.wait_for(|s| *s).await;
                },
            )
            .await
        }));
        let Ok((addr, link)) = link.await else {
            let failed = servers.pop().context("a page's server")?;
            failed.await??;
            anyhow::bail!("{}'s page stopped before it started", place.name);
        };
        pages.push((place, addr, link));
    }
    println!("\nRelay: ws://{relay_addr}/sync");
    println!("   administración / admin page: http://{relay_addr}/admin");
    println!("   clave / key: {key}");
    for (place, addr, link) in &pages {
        println!("\n{} / {}", place.label_es, place.label_en);
        println!("   {}: http://{addr}/", place.name);
        println!(
            "   entrar como / sign in as: {} · contraseña / password: {PASSWORD}",
            place.people.join(", ")
        );
        // An employee sees their own company; the replica itself sees all it holds.
        println!(
            "   todo lo que guarda, una vez / everything it holds, once: http://{addr}/?token={link}"
        );
    }
    println!(
        "\nCada página tiene un interruptor «Sin conexión»: edite el mismo cliente en dos sitios, \
         reconecte y vea la fusión.\nEach page has an \"offline\" switch: edit the same client in \
         two places, reconnect and watch the merge."
    );
    println!("Listo; Ctrl-C para parar / Ready; Ctrl-C to stop");
    crate::shutdown_signal().await;
    let _ = stop.send(true);
    for s in servers {
        s.await.context("a page's server stopped abruptly")??;
    }
    if let Some(relay) = relay {
        relay.stop().await;
    }
    if kept {
        keep_note(&root);
    }
    Ok(())
}

/// Each company's staff and clients, on the branch that owns it.
fn seed(group: &Group) -> Result<()> {
    let today = chrono::Local::now().date_naive();
    for (i, company) in [(0, &CLINICA), (1, &ESTETICA)] {
        let admin = sample::staff(group.replica(i), company)?;
        sample::load(&admin, company, CLIENTS, today)?;
    }
    Ok(())
}

fn keep_note(root: &Path) {
    println!(
        "Datos guardados en {0}: vuelva a abrirlos con --dir {0} / Data kept in {0}: reopen it with --dir {0}",
        root.display()
    );
}
