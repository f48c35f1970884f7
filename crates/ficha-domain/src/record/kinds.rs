//! Every record kind, as data. Adding a kind is one declaration here (and a row in
//! `docs/records.md`, which a test compares with this table).

use super::registry::FieldType::*;
use super::registry::{Account, FieldSpec, KindSpec, Numbering, Parent, field};

const APPOINTMENT_STATUS: &[&str] = &["scheduled", "confirmed", "done", "cancelled", "no_show"];
const INVOICE_STATUS: &[&str] = &["draft", "issued", "paid", "cancelled"];
const QUOTE_STATUS: &[&str] = &["draft", "sent", "accepted", "rejected", "expired"];
const ORDER_STATUS: &[&str] = &["draft", "confirmed", "delivered", "invoiced", "cancelled"];
const ACTIVE_CANCELLED: &[&str] = &["active", "cancelled"];
const SERVICE_TYPE: &[&str] = &["one_off", "subscription", "licence", "module"];
const PERIOD: &[&str] = &["once", "monthly", "quarterly", "yearly"];
const ENVIRONMENT: &[&str] = &["production", "staging", "test", "development"];
/// A message's statuses: queued on any replica, `sending` marked durably by the company's
/// sender before the SMTP exchange, then sent or failed.
pub const MESSAGE_STATUS: &[&str] = &["draft", "queued", "sending", "sent", "failed"];
const STAGE: &[&str] = &[
    "lead",
    "qualified",
    "proposal",
    "negotiation",
    "won",
    "lost",
];
const PAYMENT_METHOD: &[&str] = &[
    "cash",
    "card",
    "transfer",
    "direct_debit",
    "wallet",
    "other",
];
const DIRECTION: &[&str] = &["in", "out"];
const ACTIVITY: &[&str] = &["call", "meeting", "task"];
const ACTIVITY_STATUS: &[&str] = &["planned", "done", "cancelled"];
const PLATFORM: &[&str] = &["whatsapp", "telegram", "slack", "teams", "email", "other"];
const ROLE: &[&str] = &["admin", "staff", "viewer"];
/// The languages of the web app, in the order it offers them.
const LANGUAGE: &[&str] = &["es", "en"];
const MOVEMENT: &[&str] = &["add_funds", "deduct", "reward", "redeem", "reversal"];
const RELATION: &[&str] = &["parent", "partner", "other"];
const PROJECT_STATUS: &[&str] = &["planned", "active", "on_hold", "done", "cancelled"];
const CAMPAIGN_STATUS: &[&str] = &["planned", "active", "finished"];
const COMMISSION_STATUS: &[&str] = &["pending", "paid"];
const POLICY_STATUS: &[&str] = &["active", "expired", "cancelled"];
/// A case's statuses, in the order of the form (seed 004).
pub const CASE_STATUS: &[&str] = &["new", "in_progress", "pending", "resolved", "closed"];
/// A case's priorities (medium, not normal).
pub const PRIORITY: &[&str] = &["low", "medium", "high", "critical"];
const TASK_STATUS: &[&str] = &["pending", "done", "cancelled"];

/// Lines, totals and status of a commercial document, shared by invoices, quotes, orders.
const fn doc_fields(
    status: &'static [&'static str],
    extra: [FieldSpec; 3],
    monotonic: bool,
) -> [FieldSpec; 10] {
    let [a, b, c] = extra;
    let status_field = field("status", Enum(status)).default("draft");
    [
        field("series", Text),
        field("number", Text).searched(),
        field("issue_date", Date),
        a,
        b,
        c,
        field("lines", Lines),
        field("total", Money),
        if monotonic {
            status_field.monotonic()
        } else {
            status_field
        },
        field("notes", LongText),
    ]
}

const INVOICE_FIELDS: [FieldSpec; 10] = doc_fields(
    INVOICE_STATUS,
    [
        field("due_date", Date),
        field("amount_paid", Money),
        field("quote", Ref("quote")),
    ],
    true,
);
const QUOTE_FIELDS: [FieldSpec; 10] = doc_fields(
    QUOTE_STATUS,
    [
        field("valid_until", Date),
        field("opportunity", Ref("opportunity")),
        field("employee", Ref("employee")),
    ],
    false,
);
const ORDER_FIELDS: [FieldSpec; 10] = doc_fields(
    ORDER_STATUS,
    [
        field("delivery_date", Date),
        field("quote", Ref("quote")),
        field("employee", Ref("employee")),
    ],
    true,
);
const CREDIT_NOTE_FIELDS: [FieldSpec; 10] = doc_fields(
    INVOICE_STATUS,
    [
        field("invoice", Ref("invoice")).required(),
        field("reason", Text).searched(),
        field("fiscal_uuid", Text),
    ],
    true,
);

const fn kind(
    name: &'static str,
    label_es: &'static str,
    label_en: &'static str,
    parent: Parent,
    fields: &'static [FieldSpec],
    title: &'static [&'static str],
) -> KindSpec {
    KindSpec {
        name,
        label_es,
        label_en,
        version: 1,
        parent,
        fields,
        title,
        status: None,
        date: None,
        total: None,
        account: Account::None,
        append_only: false,
        numbering: None,
    }
}

const fn with(
    mut k: KindSpec,
    status: Option<&'static str>,
    date: Option<&'static str>,
    total: Option<&'static str>,
    account: Account,
) -> KindSpec {
    k.status = status;
    k.date = date;
    k.total = total;
    k.account = account;
    k
}

/// A movement of a client's wallet: an append-only ledger from which balance, total spent
/// and rewards are derived (see `crate::wallet`).
const WALLET_MOVEMENT: KindSpec = {
    let mut k = with(
        kind(
            "wallet_movement",
            "Movimiento de monedero",
            "Wallet movement",
            Parent::Client,
            &[
                field("type", Enum(MOVEMENT)).required(),
                field("amount", Money).required(),
                field("reverses", Ref("wallet_movement")),
                field("note", Text).searched(),
                field("date", Date),
            ],
            &["type", "note"],
        ),
        Some("type"),
        Some("date"),
        Some("amount"),
        Account::None,
    );
    k.append_only = true;
    k
};

/// A relation between two client accounts, possibly of two companies the replica sees; it
/// belongs to the company of `parent` (see `crate::relations` for the tree).
const RELATION_KIND: KindSpec = with(
    kind(
        "relation",
        "Relación entre cuentas",
        "Account relation",
        Parent::Company,
        &[
            field("parent", Ref("client")).required(),
            field("child", Ref("client")).required(),
            field("type", Enum(RELATION)).required(),
            field("note", Text).searched(),
        ],
        &["type", "note"],
    ),
    Some("type"),
    None,
    None,
    Account::None,
);

const fn numbered(mut k: KindSpec, numbering: Numbering) -> KindSpec {
    k.numbering = Some(numbering);
    k
}

/// A support case (seed 004, "Add case"): its number comes from the replica's own series, and
/// its service level is computed from the events it keeps (see `crate::sla`).
const CASE: KindSpec = numbered(
    with(
        kind(
            "case",
            "Caso de soporte",
            "Support case",
            Parent::Client,
            &[
                field("number", Text).searched().system(),
                field("title", Text).required().searched(),
                field("category", Text).required().searched(),
                // The latest change wins, as the SLA clock reads the events in time order.
                field("status", Enum(CASE_STATUS)).required().latest(),
                field("priority", Enum(PRIORITY)).required(),
                field("description", LongText).required(),
                field("solution", LongText),
                field("contact", Text),
                field("attachments", Set),
                field("assignee", Ref("employee")).required().latest(),
                field("department", Text).searched(),
                field("policy", Ref("policy")),
                field("events", Set).system(),
            ],
            &["number", "title"],
        ),
        Some("status"),
        None,
        None,
        Account::None,
    ),
    Numbering {
        series: "case",
        field: "number",
        series_field: None,
        at_status: None,
    },
);

/// Service levels of a company: per priority, minutes of working time until the first
/// response and until resolution, in a calendar; statuses in `paused` stop the clock.
const SLA_PLAN: KindSpec = with(
    kind(
        "sla_plan",
        "Plan de nivel de servicio",
        "SLA plan",
        Parent::Company,
        &[
            field("name", Text).required().searched(),
            field("default", Bool).default("false"),
            field("timezone", Text).default("Europe/Madrid"),
            field("hours", Text).default("mon-fri 09:00-18:00"),
            field("holidays", Set),
            field("paused", Set).default("pending"),
            field("response_low_min", Integer).default("480"),
            field("resolution_low_min", Integer).default("2400"),
            field("response_medium_min", Integer).default("240"),
            field("resolution_medium_min", Integer).default("960"),
            field("response_high_min", Integer).default("120"),
            field("resolution_high_min", Integer).default("480"),
            field("response_critical_min", Integer).default("60"),
            field("resolution_critical_min", Integer).default("240"),
        ],
        &["name"],
    ),
    None,
    None,
    None,
    Account::None,
);

/// Every record kind beyond the client.
pub const KINDS: &[KindSpec] = &[
    with(
        kind(
            "appointment",
            "Cita",
            "Appointment",
            Parent::Client,
            &[
                field("start", DateTime).required(),
                field("duration_min", Integer).default("30"),
                field("service", Text).searched(),
                field("employee", Ref("employee")),
                field("centre", Text),
                field("status", Enum(APPOINTMENT_STATUS)).default("scheduled"),
                field("notes", LongText),
            ],
            &["service"],
        ),
        Some("status"),
        Some("start"),
        None,
        Account::None,
    ),
    with(
        kind(
            "procedure",
            "Procedimiento",
            "Procedure",
            Parent::Client,
            &[
                field("performed_on", Date).required(),
                field("treatment", Text).required().searched(),
                field("employee", Ref("employee")),
                field("appointment", Ref("appointment")),
                field("centre", Text),
                field("notes", LongText),
            ],
            &["treatment"],
        ),
        None,
        Some("performed_on"),
        None,
        Account::None,
    ),
    numbered(
        with(
            kind(
                "invoice",
                "Factura",
                "Invoice",
                Parent::Client,
                &INVOICE_FIELDS,
                &["series", "number"],
            ),
            Some("status"),
            Some("issue_date"),
            Some("total"),
            Account::Sale,
        ),
        // Spanish law allows a series per establishment: each replica is one.
        Numbering {
            series: "invoice",
            field: "number",
            series_field: Some("series"),
            at_status: Some("issued"),
        },
    ),
    with(
        kind(
            "quote",
            "Presupuesto",
            "Quote",
            Parent::Client,
            &QUOTE_FIELDS,
            &["series", "number"],
        ),
        Some("status"),
        Some("issue_date"),
        Some("total"),
        Account::None,
    ),
    with(
        kind(
            "transaction",
            "Movimiento",
            "Transaction",
            Parent::Client,
            &[
                field("date", Date).required(),
                field("category", Text).searched(),
                field("amount", Money).required(),
                field("payment_method", Enum(PAYMENT_METHOD)),
                field("account", Text),
                field("invoice", Ref("invoice")),
                field("description", Text).searched(),
            ],
            &["category", "description"],
        ),
        None,
        Some("date"),
        Some("amount"),
        Account::None,
    ),
    with(
        kind(
            "service",
            "Servicio",
            "Service",
            Parent::Client,
            &[
                field("name", Text).required().searched(),
                field("type", Enum(SERVICE_TYPE)).default("one_off"),
                field("service_type", Text).searched(),
                field("status", Enum(ACTIVE_CANCELLED)).default("active"),
                field("start", Date),
                field("end", Date),
                field("price", Money),
                field("period", Enum(PERIOD)),
                field("notes", LongText),
            ],
            &["name"],
        ),
        Some("status"),
        Some("start"),
        Some("price"),
        Account::None,
    ),
    with(
        kind(
            "solution",
            "Solución instalada",
            "Installed solution",
            Parent::Client,
            &[
                field("product", Text).required().searched(),
                field("version", Text),
                field("environment", Enum(ENVIRONMENT)),
                field("installed_on", Date),
                field("url", Text),
                field("notes", LongText),
            ],
            &["product", "version"],
        ),
        None,
        Some("installed_on"),
        None,
        Account::None,
    ),
    with(
        kind(
            "message",
            "Correo",
            "Email message",
            Parent::Client,
            &[
                field("to", Text).required().searched(),
                field("subject", Text).required().searched(),
                field("body", LongText),
                field("status", Enum(MESSAGE_STATUS))
                    .default("draft")
                    .system(),
                field("sent_at", DateTime).system(),
                field("sender", Text).system(),
                field("reply", Text).system(),
                field("error", Text).system(),
            ],
            &["subject"],
        ),
        Some("status"),
        Some("sent_at"),
        None,
        Account::None,
    ),
    with(
        kind(
            "credit_note",
            "Nota de crédito",
            "Credit note",
            Parent::Client,
            &CREDIT_NOTE_FIELDS,
            &["series", "number"],
        ),
        Some("status"),
        Some("issue_date"),
        Some("total"),
        Account::Refund,
    ),
    with(
        kind(
            "payment_receipt",
            "Complemento de pago",
            "Payment receipt",
            Parent::Client,
            &[
                field("fiscal_uuid", Text).searched(),
                field("date", Date).required(),
                field("amount", Money).required(),
                field("payment_method", Enum(PAYMENT_METHOD)),
                field("invoices", Set),
                field("notes", LongText),
            ],
            &["fiscal_uuid"],
        ),
        None,
        Some("date"),
        Some("amount"),
        Account::None,
    ),
    with(
        kind(
            "sales_order",
            "Pedido",
            "Sales order",
            Parent::Client,
            &ORDER_FIELDS,
            &["series", "number"],
        ),
        Some("status"),
        Some("issue_date"),
        Some("total"),
        Account::None,
    ),
    with(
        kind(
            "opportunity",
            "Oportunidad",
            "Opportunity",
            Parent::Client,
            &[
                field("name", Text).required().searched(),
                field("stage", Enum(STAGE)).default("lead"),
                field("amount", Money),
                field("probability", Integer),
                field("expected_close", Date),
                field("employee", Ref("employee")),
                field("notes", LongText),
            ],
            &["name"],
        ),
        Some("stage"),
        Some("expected_close"),
        Some("amount"),
        Account::None,
    ),
    with(
        kind(
            "policy",
            "Póliza de servicio",
            "Service contract",
            Parent::Client,
            &[
                field("name", Text).required().searched(),
                field("coverage", LongText),
                field("start", Date),
                field("end", Date),
                field("sla_plan", Text).searched(),
                field("status", Enum(POLICY_STATUS)).default("active"),
                field("price", Money),
            ],
            &["name"],
        ),
        Some("status"),
        Some("start"),
        Some("price"),
        Account::None,
    ),
    with(
        kind(
            "asset",
            "Activo",
            "Asset",
            Parent::Client,
            &[
                field("name", Text).required().searched(),
                field("serial", Text).searched(),
                field("model", Text).searched(),
                field("installed_on", Date),
                field("location", Text),
                field("notes", LongText),
            ],
            &["name", "serial"],
        ),
        None,
        Some("installed_on"),
        None,
        Account::None,
    ),
    with(
        kind(
            "lot_serial",
            "Lote / número de serie",
            "Lot / serial number",
            Parent::Client,
            &[
                field("product", Text).required().searched(),
                field("lot", Text).searched(),
                field("serial", Text).searched(),
                field("expires_on", Date),
                field("quantity", Integer),
            ],
            &["product", "lot", "serial"],
        ),
        None,
        Some("expires_on"),
        None,
        Account::None,
    ),
    with(
        kind(
            "warehouse_movement",
            "Movimiento de almacén",
            "Warehouse movement",
            Parent::Client,
            &[
                field("date", Date).required(),
                field("product", Text).required().searched(),
                field("quantity", Integer).required(),
                field("direction", Enum(DIRECTION)).required(),
                field("warehouse", Text),
                field("reference", Text).searched(),
            ],
            &["product"],
        ),
        None,
        Some("date"),
        None,
        Account::None,
    ),
    with(
        kind(
            "transfer_invoice",
            "Factura de traslado",
            "Transfer invoice",
            Parent::Client,
            &[
                field("series", Text),
                field("number", Text).searched(),
                field("issue_date", Date),
                field("origin", Text),
                field("destination", Text),
                field("fiscal_uuid", Text).searched(),
                field("lines", Lines),
            ],
            &["series", "number"],
        ),
        None,
        Some("issue_date"),
        None,
        Account::None,
    ),
    with(
        kind(
            "cash_movement",
            "Movimiento de caja y bancos",
            "Cash and bank movement",
            Parent::OptionalClient,
            &[
                field("date", Date).required(),
                field("amount", Money).required(),
                field("direction", Enum(DIRECTION)).required(),
                field("account", Text).searched(),
                field("concept", Text).searched(),
                field("invoice", Ref("invoice")),
            ],
            &["concept"],
        ),
        None,
        Some("date"),
        Some("amount"),
        Account::None,
    ),
    with(
        kind(
            "cash_flow",
            "Flujo de efectivo",
            "Cash flow",
            Parent::OptionalClient,
            &[
                field("date", Date).required(),
                field("amount", Money).required(),
                field("direction", Enum(DIRECTION)).required(),
                field("category", Text).searched(),
                field("expected", Bool),
            ],
            &["category"],
        ),
        None,
        Some("date"),
        Some("amount"),
        Account::None,
    ),
    with(
        kind(
            "commission",
            "Comisión",
            "Commission",
            Parent::Client,
            &[
                field("employee", Ref("employee")).required(),
                field("amount", Money).required(),
                field("date", Date),
                field("invoice", Ref("invoice")),
                field("status", Enum(COMMISSION_STATUS)).default("pending"),
            ],
            &["employee"],
        ),
        Some("status"),
        Some("date"),
        Some("amount"),
        Account::None,
    ),
    with(
        kind(
            "product",
            "Producto asociado",
            "Associated product",
            Parent::Client,
            &[
                field("name", Text).required().searched(),
                field("sku", Text).searched(),
                field("price", Money),
                field("since", Date),
                field("notes", LongText),
            ],
            &["name"],
        ),
        None,
        Some("since"),
        Some("price"),
        Account::None,
    ),
    with(
        kind(
            "campaign",
            "Campaña",
            "Campaign",
            Parent::Company,
            &[
                field("name", Text).required().searched(),
                field("channel", Text),
                field("start", Date),
                field("end", Date),
                field("status", Enum(CAMPAIGN_STATUS)).default("planned"),
                field("members", Set),
                field("description", LongText),
            ],
            &["name"],
        ),
        Some("status"),
        Some("start"),
        None,
        Account::None,
    ),
    with(
        kind(
            "calendar_activity",
            "Actividad de calendario",
            "Calendar activity",
            Parent::Client,
            &[
                field("type", Enum(ACTIVITY)).required(),
                field("subject", Text).required().searched(),
                field("start", DateTime).required(),
                field("duration_min", Integer),
                field("employee", Ref("employee")),
                field("status", Enum(ACTIVITY_STATUS)).default("planned"),
                field("notes", LongText),
            ],
            &["subject"],
        ),
        Some("status"),
        Some("start"),
        None,
        Account::None,
    ),
    with(
        kind(
            "chat_channel",
            "Canal de chat",
            "Chat channel",
            Parent::Client,
            &[
                field("platform", Enum(PLATFORM)).required(),
                field("url", Text).required(),
                field("name", Text).searched(),
            ],
            &["platform", "name"],
        ),
        None,
        None,
        None,
        Account::None,
    ),
    with(
        kind(
            "project",
            "Proyecto",
            "Project",
            Parent::Client,
            &[
                field("name", Text).required().searched(),
                field("code", Text).searched(),
                field("status", Enum(PROJECT_STATUS)).default("planned"),
                field("start", Date),
                field("end", Date),
                field("employee", Ref("employee")),
                field("service", Ref("service")),
                field("description", LongText),
            ],
            &["name"],
        ),
        Some("status"),
        Some("start"),
        None,
        Account::None,
    ),
    with(
        kind(
            "employee",
            "Empleado",
            "Employee",
            Parent::Company,
            &[
                field("name", Text).required().searched(),
                field("code", Text).searched(),
                field("email", Text).searched(),
                field("role", Enum(ROLE)).default("staff"),
                field("centre", Text),
                field("active", Bool).default("true"),
                field("language", Enum(LANGUAGE)).default("es"),
                field("password_hash", Text).hidden(),
                // Notifications read on any of their replicas: marks only ever added.
                field("read_notifications", Set).system(),
            ],
            &["name"],
        ),
        Some("role"),
        None,
        None,
        Account::None,
    ),
    WALLET_MOVEMENT,
    RELATION_KIND,
    CASE,
    SLA_PLAN,
    with(
        kind(
            "case_category",
            "Categoría de caso",
            "Case category",
            Parent::Company,
            &[field("name", Text).required().searched()],
            &["name"],
        ),
        None,
        None,
        None,
        Account::None,
    ),
    with(
        kind(
            "task",
            "Tarea",
            "Task",
            Parent::Client,
            &[
                field("project", Ref("project")).required(),
                field("title", Text).required().searched(),
                field("status", Enum(TASK_STATUS)).default("pending"),
                field("next_action", Date).latest(),
                field("employee", Ref("employee")),
                field("description", LongText),
            ],
            &["title"],
        ),
        Some("status"),
        Some("next_action"),
        None,
        Account::None,
    ),
    TIME_ENTRY,
];

/// Time spent on a client (seed 003): append-only, so entries made offline on two laptops
/// all survive.
const TIME_ENTRY: KindSpec = {
    let mut k = with(
        kind(
            "time_entry",
            "Tiempo dedicado",
            "Time entry",
            Parent::Client,
            &[
                field("project", Ref("project")).required(),
                field("task", Ref("task")).required(),
                field("employee", Ref("employee")).required(),
                field("date", Date).required(),
                field("minutes", Integer),
                field("text", Text).required().searched(),
                field("next_action", Date),
            ],
            &["text"],
        ),
        None,
        Some("date"),
        None,
        Account::None,
    );
    k.append_only = true;
    k
};
