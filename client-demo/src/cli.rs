//! The `ficha` command line: the contract the end-to-end tests run.

use std::cell::Cell;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant};

use std::io::Write;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};

use crate::app::{Replica, parse_id, parse_pairs};
use crate::progress::{Counted, Progress, Terminal};
use crate::sync::{sync_once, sync_once_showing_progress};

/// Ficha replica: client records that work offline and sync through a relay.
#[derive(Parser)]
#[command(name = "ficha", version)]
pub struct Cli {
    /// The replica's data directory.
    #[arg(long, global = true, env = "FICHA_DATA")]
    pub data: Option<PathBuf>,
    /// Act as this employee (id or code) of the record's company, for roles and the audit
    /// log; without it, the replica itself acts.
    #[arg(long = "as", global = true, env = "FICHA_AS")]
    pub as_employee: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

/// Top-level commands.
#[derive(Subcommand)]
pub enum Command {
    /// Creates a replica bound to a relay and a token.
    Init {
        /// A name for this replica (as in its token).
        #[arg(long)]
        name: String,
        /// The relay's WebSocket URL, e.g. ws://127.0.0.1:7300/sync.
        #[arg(long)]
        relay: String,
        /// The token issued by `ficha-relay token`.
        #[arg(long)]
        token: String,
    },
    /// Client records.
    #[command(subcommand)]
    Client(ClientCmd),
    /// Records of every other kind linked to clients (invoices, appointments, services…).
    #[command(subcommand)]
    Record(crate::cli_records::RecordCmd),
    /// Employees: who signs in, is assigned work and appears in the audit trail.
    #[command(subcommand)]
    Employee(crate::cli_records::EmployeeCmd),
    /// A client's wallet: an append-only ledger of movements.
    #[command(subcommand)]
    Wallet(crate::cli_records::WalletCmd),
    /// Relations between client accounts (parent/subsidiary, partner, other).
    #[command(subcommand)]
    Relation(crate::cli_records::RelationCmd),
    /// Support cases, numbered offline, with their SLA.
    #[command(subcommand)]
    Case(crate::cli_cases::CaseCmd),
    /// What the employee given with --as is notified of: cases assigned to them, SLAs at
    /// risk; `notifications read ID` marks one read.
    Notifications(crate::cli_cases::NotificationsCmd),
    /// Email messages of a client: queue, list, send again.
    #[command(subcommand)]
    Message(crate::cli_cases::MessageCmd),
    /// Time spent on clients: quick entry and reports.
    #[command(subcommand)]
    Time(crate::cli_cases::TimeCmd),
    /// Notes on a client.
    #[command(subcommand)]
    Note(NoteCmd),
    /// Comments on a client.
    #[command(subcommand)]
    Comment(CommentCmd),
    /// Alerts on a client.
    #[command(subcommand)]
    Alert(AlertCmd),
    /// Items of the other sections: emails, phones, addresses, allergies, skin_tests,
    /// reviews, contacts, files.
    #[command(subcommand)]
    Item(ItemCmd),
    /// Client groups.
    #[command(subcommand)]
    Group(GroupCmd),
    /// Images and files of a client: attach (stored once by hash, synced beside the
    /// document) and fetch (from the relay on first use).
    #[command(subcommand)]
    File(FileCmd),
    /// The trash's retention: purge clients trashed longer ago than the retention period.
    #[command(subcommand)]
    Trash(TrashCmd),
    /// The activity log (bitácora).
    #[command(subcommand)]
    Log(LogCmd),
    /// Possible duplicate clients: list, merge, dismiss.
    #[command(subcommand)]
    Duplicates(DupCmd),
    /// Imports clients from a CSV file (or reverts an import).
    Import(ImportArgs),
    /// Exports the clients a filter selects, as CSV or JSON.
    Export {
        #[command(flatten)]
        filter: ListFilter,
        /// csv (summaries) or json (whole client files).
        #[arg(long, default_value = "csv")]
        format: String,
        /// Write here instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// One full sync round with the relay, then exit.
    Sync {
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 120)]
        timeout_secs: u64,
    },
    /// Local HTTP API and web page, with background sync.
    Serve {
        /// Address to listen on (port 0 picks a free one).
        #[arg(long, default_value = "127.0.0.1:7400")]
        listen: SocketAddr,
        /// Be the company's email sender, through this SMTP server (smtp://host:port,
        /// smtps://host:port); user and password from FICHA_SMTP_USER and FICHA_SMTP_PASSWORD.
        /// One replica per company should send.
        #[arg(long)]
        smtp: Option<String>,
        /// The From address of the messages sent.
        #[arg(long, env = "FICHA_SMTP_FROM", default_value = "ficha@localhost")]
        smtp_from: String,
        /// The time zone the web app shows times in, e.g. Europe/Madrid (default: the
        /// browser's).
        #[arg(long, env = "FICHA_TIME_ZONE", value_parser = time_zone)]
        time_zone: Option<chrono_tz::Tz>,
    },
    /// Sync status: pending uploads, refused changes, quarantined documents, last sync.
    Status {
        /// One line of JSON instead of indented JSON.
        #[arg(long)]
        json: bool,
    },
    /// This replica's token.
    #[command(subcommand)]
    Token(TokenCmd),
    /// Verifies the whole database file (slow on a large replica): every page's checksum and
    /// every document's record. Run it with `ficha serve` stopped.
    Check,
    /// Runs the two-branch offline story end to end in a temporary directory (exit 0 only if
    /// the replicas converged); `--web` serves a group of four replicas with sample data;
    /// `--script` plays a day of that group.
    Demo {
        /// Start a relay, two branches of two companies, a consultant's laptop and the central
        /// office with Spanish sample data, and serve each replica's page until Ctrl-C.
        #[arg(long, conflicts_with = "script")]
        web: bool,
        /// Play a day of the group (offline edits, a duplicate, a wallet spent twice, cases,
        /// time, an archive and a reactivation) and print what happened.
        #[arg(long)]
        script: bool,
        /// Keep the demo's data here instead of a temporary directory (`--web` reopens it).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

/// `ficha token …`
#[derive(Subcommand)]
pub enum TokenCmd {
    /// Replaces the token (one the relay issued again, for the same replica name, after the
    /// old one expired or was revoked); changes the relay had refused are queued again.
    Set {
        /// The new token.
        token: String,
    },
}

/// `ficha client …`
#[derive(Subcommand)]
pub enum ClientCmd {
    /// Creates a client; prints its id.
    Add {
        #[arg(long)]
        company: String,
        #[arg(long)]
        name: String,
        #[arg(long)]
        email: Option<String>,
        #[arg(long)]
        phone: Option<String>,
    },
    /// Sets one field (name, email, phone, …).
    Set {
        id: String,
        field: String,
        value: String,
    },
    /// Shows one client.
    Show {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Archives a client (a former client; keeps all history).
    Archive { id: String },
    /// Moves a client to the trash (restorable).
    Trash { id: String },
    /// Makes an archived or trashed client active again (refused if an active client looks
    /// like the same person, unless --force).
    Restore {
        id: String,
        #[arg(long)]
        force: bool,
    },
    /// Lists clients (trashed ones only with --state trashed).
    List {
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        filter: ListFilter,
        #[command(flatten)]
        links: LinkArgs,
        /// Skip this many.
        #[arg(long, default_value_t = 0)]
        offset: usize,
        /// Show at most this many.
        #[arg(long)]
        limit: Option<usize>,
        /// name (default), name-desc, created, created-desc (newest first) or rating.
        #[arg(long, default_value = "name")]
        sort: ficha_domain::search::Sort,
    },
    /// One action on every client a filter (or --ids) selects: archive, trash, restore,
    /// add-group G, remove-group G, assign EMPLOYEE. All or nothing: every client is checked
    /// first, then all change together.
    Bulk {
        action: String,
        value: Option<String>,
        #[command(flatten)]
        filter: ListFilter,
        /// Comma-separated client ids instead of a filter.
        #[arg(long, value_delimiter = ',')]
        ids: Vec<String>,
        /// With no filter and no ids: yes, every client.
        #[arg(long)]
        all: bool,
        /// Restore even clients that may duplicate active ones.
        #[arg(long)]
        force: bool,
    },
    /// Total clients, total reviews, average rating and total sales of the clients a filter
    /// selects.
    Stats {
        #[command(flatten)]
        filter: ListFilter,
        #[command(flatten)]
        links: LinkArgs,
    },
    /// The current account of a client: pending documents and totals.
    Statement {
        id: String,
        /// json (default) or csv.
        #[arg(long, default_value = "json")]
        format: String,
        /// Queue it as an email to the client (sent by the company's sender); prints the
        /// message id.
        #[arg(long)]
        email: bool,
        /// The address, when not the client's email.
        #[arg(long)]
        to: Option<String>,
    },
}

/// Client list filters over a client's records.
#[derive(clap::Args, Default)]
pub struct LinkArgs {
    /// with (an active service), without (none active) or cancelled.
    #[arg(long)]
    pub services: Option<String>,
    /// Only clients with a service of this type, e.g. "Implementación".
    #[arg(long)]
    pub service_type: Option<String>,
    /// Only clients with an upcoming appointment.
    #[arg(long)]
    pub upcoming: bool,
}

impl From<LinkArgs> for crate::app::LinkFilter {
    fn from(l: LinkArgs) -> Self {
        Self {
            services: l.services,
            service_type: l.service_type,
            upcoming: l.upcoming,
        }
    }
}

/// Which clients a list selects.
#[derive(clap::Args, Default)]
pub struct ListFilter {
    /// Accent- and case-insensitive text: name, email, phone, tax id or code.
    #[arg(long)]
    pub search: Option<String>,
    #[arg(long)]
    pub company: Option<String>,
    /// active, archived or trashed.
    #[arg(long)]
    pub state: Option<String>,
    #[arg(long)]
    pub group: Option<String>,
    #[arg(long)]
    pub centre: Option<String>,
    #[arg(long)]
    pub origin: Option<String>,
    /// Only clients that entered their state (archived, trashed…) on or after this day (YYYY-MM-DD).
    #[arg(long, value_parser = day_start)]
    pub since: Option<i64>,
    /// Only clients that entered their state before this day (YYYY-MM-DD).
    #[arg(long, value_parser = day_start)]
    pub until: Option<i64>,
}

fn time_zone(s: &str) -> std::result::Result<chrono_tz::Tz, String> {
    s.parse().map_err(|_| {
        format!(
            "unknown time zone {s:?}: use an IANA name such as Europe/Madrid or Atlantic/Canary"
        )
    })
}

fn day_start(s: &str) -> std::result::Result<i64, String> {
    crate::app::day_start_ms(s).map_err(|e| e.to_string())
}

impl From<ListFilter> for ficha_domain::search::Filter {
    fn from(f: ListFilter) -> Self {
        Self {
            text: f.search,
            company: f.company,
            state: f.state,
            group: f.group,
            centre: f.centre,
            origin: f.origin,
            since: f.since,
            until: f.until,
        }
    }
}

/// `ficha item …`
#[derive(Subcommand)]
pub enum ItemCmd {
    /// Adds an item: `ficha item add ID allergies type=latex severity=severe`; prints its id.
    Add {
        id: String,
        section: String,
        values: Vec<String>,
    },
    /// Changes fields: `ficha item set ID skin_tests ITEM status=satisfactory`.
    Set {
        id: String,
        section: String,
        item: String,
        values: Vec<String>,
    },
    /// Removes an item (allergies, alerts and skin tests are deactivated instead).
    Remove {
        id: String,
        section: String,
        item: String,
    },
}

/// `ficha duplicates …`
#[derive(Subcommand)]
pub enum DupCmd {
    /// Lists candidate pairs and what they share.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Merges OTHER into SURVIVOR (SURVIVOR keeps its id; every item of both survives).
    Merge { survivor: String, other: String },
    /// Remembers that two clients are different people.
    Dismiss { a: String, b: String },
}

/// `ficha import FILE` or `ficha import revert BATCH`.
#[derive(clap::Args)]
pub struct ImportArgs {
    /// The CSV file, or `revert` followed by a batch id.
    pub file: String,
    /// With `revert`: the batch to undo.
    pub batch: Option<String>,
    /// Company of rows that have no company column.
    #[arg(long)]
    pub company: Option<String>,
    /// A JSON object mapping CSV headers to fields, e.g. {"Apellidos y nombre": "name"}.
    #[arg(long)]
    pub mapping: Option<PathBuf>,
    /// Report what would be created, updated and flagged; write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Stop at the first bad row.
    #[arg(long)]
    pub stop_on_error: bool,
}

/// `ficha group …`
#[derive(Subcommand)]
pub enum GroupCmd {
    /// Adds the client to a group.
    Add { id: String, group: String },
    /// Removes the client from a group.
    Remove { id: String, group: String },
}

/// `ficha trash …`
#[derive(Subcommand)]
pub enum TrashCmd {
    /// Removes the personal data of clients trashed more than N days ago (they stay as
    /// purged tombstones, with the purge in their log); prints what it did as JSON.
    Purge {
        #[arg(long, default_value_t = ficha_domain::purge::DEFAULT_RETENTION_DAYS)]
        older_than_days: u32,
    },
}

/// `ficha file …`
#[derive(Subcommand)]
pub enum FileCmd {
    /// Attaches a file to a client; prints the file item's id.
    Add {
        id: String,
        /// The file to attach (at most 8 MiB).
        path: PathBuf,
        /// Name to show (default: the file's name).
        #[arg(long)]
        name: Option<String>,
        /// image or file.
        #[arg(long)]
        kind: Option<String>,
        /// Media type, e.g. image/jpeg.
        #[arg(long)]
        mime: Option<String>,
    },
    /// Writes a client's file to --out (fetching it from the relay if this replica lacks it).
    Get {
        id: String,
        /// The file item's id (see `client show`).
        item: String,
        #[arg(long)]
        out: PathBuf,
    },
}

/// `ficha log …`
#[derive(Subcommand)]
pub enum LogCmd {
    /// Logs a contact or event with the client.
    Add {
        id: String,
        #[arg(long, default_value = "contact")]
        kind: String,
        #[arg(long)]
        text: String,
    },
}

/// `ficha note …`
#[derive(Subcommand)]
pub enum NoteCmd {
    /// Adds a note; prints its id.
    Add {
        id: String,
        #[arg(long)]
        text: String,
        #[arg(long)]
        category: Option<String>,
        /// Comma-separated.
        #[arg(long)]
        keywords: Option<String>,
    },
    /// Changes a note: text=…, category=…, keywords=a,b, pinned=true|false, active=false,
    /// attachments=FILE_ITEM,….
    Set {
        id: String,
        item: String,
        values: Vec<String>,
    },
}

/// `ficha comment …`
#[derive(Subcommand)]
pub enum CommentCmd {
    /// Adds a comment; prints its id.
    Add {
        id: String,
        #[arg(long)]
        text: String,
        #[arg(long)]
        private: bool,
        #[arg(long)]
        pinned: bool,
        #[arg(long, default_value = "normal")]
        priority: String,
        /// The appointment (record id) the comment is about.
        #[arg(long)]
        appointment: Option<String>,
    },
    /// Changes a comment: text=…, private=…, pinned=…, priority=…, appointment=ID,
    /// active=false, attachments=FILE_ITEM,….
    Set {
        id: String,
        item: String,
        values: Vec<String>,
    },
}

/// `ficha alert …`
#[derive(Subcommand)]
pub enum AlertCmd {
    /// Adds an alert; prints its id.
    Add {
        id: String,
        #[arg(long = "type")]
        kind: String,
        #[arg(long)]
        priority: String,
        #[arg(long)]
        description: String,
    },
    /// Changes an alert: type=…, priority=…, description=…, active=false.
    Set {
        id: String,
        item: String,
        values: Vec<String>,
    },
}

fn annotation(
    replica: &Replica,
    collection: &str,
    id: &str,
    item: &str,
    values: &[String],
) -> Result<()> {
    Ok(replica.edit_annotation(
        parse_id(id)?,
        collection,
        parse_uuid(item)?,
        &parse_pairs(values)?,
    )?)
}

/// One line of JSON for machines (`--json`), indented for people otherwise.
pub(crate) fn print_json(v: &impl serde::Serialize, compact: bool) -> Result<()> {
    if compact {
        println!("{}", serde_json::to_string(v)?);
    } else {
        println!("{}", serde_json::to_string_pretty(v)?);
    }
    Ok(())
}

fn parse_uuid(s: &str) -> Result<uuid::Uuid> {
    uuid::Uuid::parse_str(s.trim()).with_context(|| format!("{s:?} is not a valid item id"))
}

fn data_dir(data: &Option<PathBuf>) -> Result<&Path> {
    data.as_deref()
        .context("no data directory: pass --data DIR (or set FICHA_DATA)")
}

/// Runs one parsed command.
pub async fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Demo { web, script, dir } => {
            let mode = match (web, script) {
                (true, _) => crate::demo::Mode::Web,
                (_, true) => crate::demo::Mode::Script,
                _ => crate::demo::Mode::Story,
            };
            return crate::demo::run(mode, dir).await;
        }
        Command::Check => {
            let dir = data_dir(&cli.data)?;
            let n = ficha_store::Store::check(dir)?;
            println!("the replica's database is intact ({n} documents checked)");
            return Ok(());
        }
        Command::Init { name, relay, token } => {
            let dir = data_dir(&cli.data)?;
            let id = Replica::init(dir, &name, &relay, &token)?;
            crate::http::api_key(dir).with_context(|| {
                format!(
                    "cannot write {}",
                    dir.join(crate::http::API_KEY_FILE).display()
                )
            })?;
            println!(
                "initialised replica {} ({}) in {}",
                id.name,
                id.replica,
                dir.display()
            );
            return Ok(());
        }
        _ => {}
    }
    let dir = data_dir(&cli.data)?;
    let replica = Replica::open(dir)?;
    let replica = match cli.as_employee.as_deref() {
        Some(e) => {
            let employee = replica.active_employee(e)?;
            replica.acting_as(&employee)?
        }
        None => replica,
    };
    match cli.command {
        Command::Client(c) => client(&replica, c)?,
        Command::Record(c) => crate::cli_records::record(&replica, c)?,
        Command::Employee(c) => crate::cli_records::employee(&replica, c)?,
        Command::Wallet(c) => crate::cli_records::wallet(&replica, c)?,
        Command::Relation(c) => crate::cli_records::relation(&replica, c)?,
        Command::Case(c) => crate::cli_cases::case(&replica, c)?,
        Command::Notifications(c) => crate::cli_cases::notifications(&replica, c)?,
        Command::Time(c) => crate::cli_cases::time(&replica, c)?,
        Command::Message(c) => crate::cli_cases::message(&replica, c)?,
        Command::Note(NoteCmd::Add {
            id,
            text,
            category,
            keywords,
        }) => {
            let mut extras = Vec::new();
            extras.extend(category.map(|c| ("category".to_string(), c)));
            extras.extend(keywords.map(|k| ("keywords".to_string(), k)));
            println!("{}", replica.add_note_with(parse_id(&id)?, &text, &extras)?);
        }
        Command::Note(NoteCmd::Set { id, item, values }) => {
            annotation(&replica, "notes", &id, &item, &values)?
        }
        Command::Comment(CommentCmd::Set { id, item, values }) => {
            annotation(&replica, "comments", &id, &item, &values)?
        }
        Command::Alert(AlertCmd::Set { id, item, values }) => {
            annotation(&replica, "alerts", &id, &item, &values)?
        }
        Command::Comment(CommentCmd::Add {
            id,
            text,
            private,
            pinned,
            priority,
            appointment,
        }) => {
            let extras: Vec<(String, String)> = appointment
                .map(|a| ("appointment".to_string(), a))
                .into_iter()
                .collect();
            let c =
                replica.add_comment(parse_id(&id)?, &text, private, pinned, &priority, &extras)?;
            println!("{c}");
        }
        Command::Alert(AlertCmd::Add {
            id,
            kind,
            priority,
            description,
        }) => {
            println!(
                "{}",
                replica.add_alert(parse_id(&id)?, &kind, &priority, &description)?
            );
        }
        Command::Item(c) => match c {
            ItemCmd::Add {
                id,
                section,
                values,
            } => {
                let item = replica.add_item(parse_id(&id)?, &section, &parse_pairs(&values)?)?;
                println!("{item}");
            }
            ItemCmd::Set {
                id,
                section,
                item,
                values,
            } => {
                replica.set_item(
                    parse_id(&id)?,
                    &section,
                    parse_uuid(&item)?,
                    &parse_pairs(&values)?,
                )?;
            }
            ItemCmd::Remove { id, section, item } => {
                replica.remove_item(parse_id(&id)?, &section, parse_uuid(&item)?)?;
            }
        },
        Command::Group(GroupCmd::Add { id, group }) => {
            replica.group(parse_id(&id)?, &group, true)?
        }
        Command::Group(GroupCmd::Remove { id, group }) => {
            replica.group(parse_id(&id)?, &group, false)?
        }
        Command::File(FileCmd::Add {
            id,
            path,
            name,
            kind,
            mime,
        }) => {
            let bytes =
                std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
            let name = name.unwrap_or_else(|| {
                path.file_name()
                    .map_or("file".into(), |n| n.to_string_lossy().into_owned())
            });
            let item = replica.attach(
                parse_id(&id)?,
                &name,
                &bytes,
                kind.as_deref(),
                mime.as_deref(),
            )?;
            println!("{item}");
        }
        Command::Trash(TrashCmd::Purge { older_than_days }) => {
            let report = replica.purge_trash(older_than_days)?;
            println!("{}", serde_json::to_string(&report)?);
        }
        Command::File(FileCmd::Get { id, item, out }) => {
            let (_, bytes) = replica.file_bytes(parse_id(&id)?, &item).await?;
            std::fs::write(&out, bytes)
                .with_context(|| format!("cannot write {}", out.display()))?;
        }
        Command::Log(LogCmd::Add { id, kind, text }) => {
            replica.log(parse_id(&id)?, &kind, &text)?
        }
        Command::Duplicates(c) => duplicates(&replica, c)?,
        Command::Import(args) => import(&replica, args)?,
        Command::Export {
            filter,
            format,
            out,
        } => {
            let filter: ficha_domain::search::Filter = filter.into();
            let mut sink: Box<dyn std::io::Write> = match &out {
                Some(p) => Box::new(
                    std::fs::File::create(p)
                        .with_context(|| format!("cannot create {}", p.display()))?,
                ),
                None => Box::new(std::io::stdout()),
            };
            replica.check_filter(&filter)?;
            let clients = replica.query(&filter)?;
            match format.as_str() {
                "csv" => crate::import::export_csv(&clients, &mut sink)?,
                "json" => {
                    let views = clients
                        .iter()
                        .map(|c| replica.show(ficha_core::DocId::from(c.id)))
                        .collect::<Result<Vec<_>, _>>()?;
                    serde_json::to_writer_pretty(&mut sink, &views)?;
                    writeln!(sink)?;
                }
                other => bail!("unknown export format {other:?}: use csv or json"),
            }
            sink.flush()?;
        }
        Command::Sync { timeout_secs } => {
            sync_once_showing_progress(replica.store().clone(), Duration::from_secs(timeout_secs))
                .await?;
            let forwarded = replica.forward_tombstones()?;
            if forwarded > 0 {
                // What arrived for merged-away clients now lives on their survivors: upload it.
                sync_once(replica.store().clone(), Duration::from_secs(timeout_secs)).await?;
                eprintln!("forwarded {forwarded} items from merged clients to their survivors");
            }
            let candidates = replica.duplicates()?.len();
            if candidates > 0 {
                eprintln!("{candidates} possible duplicate clients: see `ficha duplicates list`");
            }
            let status = replica.status("disconnected", "off", None, None)?;
            if !status.refused.is_empty() {
                eprintln!(
                    "{} changes were refused by the relay and wait aside: see `ficha status`",
                    status.refused.len()
                );
            }
            if !status.quarantined.is_empty() {
                eprintln!(
                    "{} documents from the relay could not be applied and are in quarantine: see `ficha status`",
                    status.quarantined.len()
                );
            }
            eprintln!(
                "synced with {} ({} documents, {} changes pending upload)",
                status.relay_url, status.documents, status.pending_upload
            );
        }
        Command::Status { json } => {
            print_json(&replica.status("disconnected", "off", None, None)?, json)?;
        }
        Command::Token(TokenCmd::Set { token }) => {
            let requeued = replica.set_token(&token)?;
            eprintln!(
                "token replaced; the relay checks it at the next sync ({requeued} refused changes queued again)"
            );
        }
        Command::Serve {
            listen,
            smtp,
            smtp_from,
            time_zone,
        } => {
            let mail = smtp.map(|url| crate::mail::SmtpConfig {
                url,
                from: smtp_from,
                credentials: std::env::var("FICHA_SMTP_USER")
                    .ok()
                    .zip(std::env::var("FICHA_SMTP_PASSWORD").ok()),
            });
            let listener = tokio::net::TcpListener::bind(listen)
                .await
                .with_context(|| format!("cannot listen on {listen}"))?;
            crate::server::serve(
                replica,
                dir,
                listener,
                crate::server::Options { mail, time_zone },
                |ready| {
                    println!("listening on {}", ready.addr);
                    // As Jupyter does: whoever started the server may open the page signed in, once.
                    println!(
                        "open http://{}/?token={} (a one-time sign-in link); employees sign in with their password",
                        ready.addr, ready.link
                    );
                },
                crate::shutdown_signal(),
            )
            .await?
        }
        Command::Init { .. } | Command::Demo { .. } | Command::Check => {
            unreachable!("handled above")
        }
    }
    Ok(())
}

fn import(replica: &Replica, args: ImportArgs) -> Result<()> {
    if args.file == "revert" {
        let batch = args
            .batch
            .context("name the batch: ficha import revert BATCH")?;
        let n = crate::import::revert(replica, &batch)?;
        eprintln!("moved {n} clients of batch {batch} to the trash");
        return Ok(());
    }
    let mapping = match &args.mapping {
        Some(p) => serde_json::from_str(
            &std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))?,
        )
        .with_context(|| format!("{} is not a JSON object of header -> field", p.display()))?,
        None => Default::default(),
    };
    let file =
        std::fs::File::open(&args.file).with_context(|| format!("cannot open {}", args.file))?;
    // The file's size is the total to count towards, when it has one (a pipe has none).
    let size = file
        .metadata()
        .ok()
        .filter(|m| m.is_file())
        .map(|m| m.len());
    let opts = crate::import::Options {
        company: args.company,
        mapping,
        dry_run: args.dry_run,
        stop_on_error: args.stop_on_error,
    };
    let read = Rc::new(Cell::new(0u64));
    let input = Counted::new(std::io::BufReader::new(file), read.clone());
    let mut counts = Progress::new("import", Instant::now(), size);
    let mut terminal = Terminal::new();
    let mut progress = |rows: usize| {
        // Off a terminal an import says nothing until its report: scripts read stderr.
        if terminal.is_shown() {
            counts.set(rows as u64, read.get());
            terminal.show(counts.snapshot(Instant::now()).as_ref());
        }
    };
    let report = crate::import::import(replica, input, &opts, &mut progress)?;
    terminal.finish();
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}

fn duplicates(replica: &Replica, cmd: DupCmd) -> Result<()> {
    match cmd {
        DupCmd::List { json } => {
            let list = replica.duplicates()?;
            if json {
                println!("{}", serde_json::to_string(&list)?);
            } else {
                for c in list {
                    println!(
                        "{}  {:<24} ~ {}  {:<24} same {}",
                        c.a.id,
                        c.a.name,
                        c.b.id,
                        c.b.name,
                        c.reasons.join(", ")
                    );
                }
            }
        }
        DupCmd::Merge { survivor, other } => {
            let n = replica.merge(parse_id(&survivor)?, parse_id(&other)?)?;
            eprintln!("merged {other} into {survivor} ({n} items copied)");
        }
        DupCmd::Dismiss { a, b } => replica.dismiss(parse_id(&a)?, parse_id(&b)?)?,
    }
    Ok(())
}

fn client(replica: &Replica, cmd: ClientCmd) -> Result<()> {
    match cmd {
        ClientCmd::Add {
            company,
            name,
            email,
            phone,
        } => {
            let id = replica.add_client(&company, &name, email.as_deref(), phone.as_deref())?;
            println!("{id}");
            for c in replica.duplicates()? {
                let other = if c.a.id == id.uuid() {
                    &c.b
                } else if c.b.id == id.uuid() {
                    &c.a
                } else {
                    continue;
                };
                eprintln!(
                    "possible duplicate of {} {:?} (same {})",
                    other.id,
                    other.name,
                    c.reasons.join(", ")
                );
            }
        }
        ClientCmd::Set { id, field, value } => replica.set_field(parse_id(&id)?, &field, &value)?,
        ClientCmd::Archive { id } => replica.set_state(parse_id(&id)?, "archived", false)?,
        ClientCmd::Trash { id } => replica.set_state(parse_id(&id)?, "trashed", false)?,
        ClientCmd::Restore { id, force } => replica.reactivate(parse_id(&id)?, force)?,
        ClientCmd::Show { id, json } => {
            print_json(&replica.show(parse_id(&id)?)?, json)?;
        }
        ClientCmd::Bulk {
            action,
            value,
            filter,
            ids,
            all,
            force,
        } => {
            let ids = ids
                .iter()
                .map(|i| parse_id(i))
                .collect::<Result<Vec<_>, _>>()?;
            let filter: ficha_domain::search::Filter = filter.into();
            replica.check_filter(&filter)?;
            let selection = if ids.is_empty() {
                crate::app::Selection::Filter {
                    filter: &filter,
                    all,
                }
            } else {
                crate::app::Selection::Ids(&ids)
            };
            let n = replica.bulk(selection, &action, value.as_deref(), force)?;
            println!("{n}");
        }
        ClientCmd::Stats { filter, links } => {
            println!(
                "{}",
                serde_json::to_string_pretty(&replica.metrics(&filter.into(), &links.into())?)?
            );
        }
        ClientCmd::List {
            json,
            filter,
            links,
            offset,
            limit,
            sort,
        } => {
            let list = replica.client_rows(&filter.into(), &links.into(), sort, offset, limit)?;
            if json {
                println!("{}", serde_json::to_string(&list)?);
            } else {
                for c in list {
                    let archived = if c["archived"] == true {
                        " (archived)"
                    } else {
                        ""
                    };
                    println!(
                        "{}  {:<12} {}{archived}",
                        c["id"].as_str().unwrap_or_default(),
                        c["company"].as_str().unwrap_or_default(),
                        c["name"].as_str().unwrap_or_default()
                    );
                }
            }
        }
        ClientCmd::Statement {
            id,
            email: true,
            to,
            ..
        } => println!(
            "{}",
            replica.email_statement(parse_id(&id)?, to.as_deref())?
        ),
        ClientCmd::Statement { id, format, .. } => {
            let statement = replica.statement(&parse_id(&id)?)?;
            match format.as_str() {
                "json" => println!("{}", serde_json::to_string_pretty(&statement)?),
                "csv" => crate::cli_records::statement_csv(&statement, std::io::stdout())?,
                other => bail!("unknown format {other:?}: use json or csv"),
            }
        }
    }
    Ok(())
}
