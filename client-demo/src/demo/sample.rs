//! Realistic Spanish sample data for the demo: a clinic and a beauty salon of one group, with
//! their staff, clients and a few weeks of appointments, invoices, procedures, wallets, cases
//! and time. Deterministic: client `i` is always the same person, so a test can look for them.

use anyhow::{Context, Result};
use chrono::{Duration, NaiveDate};

use crate::app::time::TimeForm;
use crate::app::{Given, Replica};

/// One person who can sign in to the demo's pages.
pub struct Person {
    /// Their employee code (what they type to sign in).
    pub code: &'static str,
    /// Their full name.
    pub name: &'static str,
    /// admin, staff or viewer.
    pub role: &'static str,
    /// The branch centre they work in.
    pub centre: &'static str,
}

/// One company of the group, with what it sells.
pub struct Company {
    /// Its id.
    pub id: &'static str,
    /// Its staff; the first is its admin.
    pub people: &'static [Person],
    /// Its centres.
    pub centres: &'static [&'static str],
    /// Its services: name and price.
    pub services: &'static [(&'static str, &'static str)],
    /// Where its clients start in the sequence of sample people, so two companies share none.
    pub first: usize,
}

impl Company {
    /// The name of this company's sample client `i`.
    pub fn client(&self, i: usize) -> String {
        client_name(self.first + i)
    }
}

/// Every demo employee's password (the demo is for trying, not for keeping secrets).
pub const PASSWORD: &str = "ficha-demo";

/// The clinic.
pub const CLINICA: Company = Company {
    id: "clinica-sol",
    people: &[
        Person {
            code: "ana",
            name: "Ana García Molina",
            role: "admin",
            centre: "Madrid Centro",
        },
        Person {
            code: "carmen",
            name: "Carmen Ruiz Vidal",
            role: "staff",
            centre: "Madrid Norte",
        },
        Person {
            code: "marta",
            name: "Marta Ortega Díaz",
            role: "viewer",
            centre: "Oficina central",
        },
    ],
    centres: &["Madrid Centro", "Madrid Norte"],
    services: &[
        ("Limpieza facial", "45EUR"),
        ("Tratamiento láser", "120EUR"),
        ("Revisión dermatológica", "60EUR"),
        ("Peeling químico", "85EUR"),
    ],
    first: 0,
};

/// The salon.
pub const ESTETICA: Company = Company {
    id: "estetica-luna",
    people: &[
        Person {
            code: "luis",
            name: "Luis Romero Castillo",
            role: "admin",
            centre: "Sevilla Triana",
        },
        Person {
            code: "rocio",
            name: "Rocío Navarro Gil",
            role: "staff",
            centre: "Sevilla Nervión",
        },
    ],
    centres: &["Sevilla Triana", "Sevilla Nervión"],
    services: &[
        ("Corte y peinado", "35EUR"),
        ("Coloración", "55EUR"),
        ("Manicura", "20EUR"),
        ("Tinte de pestañas", "18EUR"),
    ],
    first: 500,
};

const FIRST: &[&str] = &[
    "Lucía", "Javier", "Elena", "Pablo", "Carmen", "Sergio", "Isabel", "Miguel", "Laura", "Diego",
    "Paula", "Andrés", "Marta", "Raúl", "Nuria", "Álvaro", "Cristina", "Jorge", "Beatriz", "Iván",
];
const LAST: &[&str] = &[
    "Fernández",
    "López",
    "Martínez",
    "Sánchez",
    "Pérez",
    "Gómez",
    "Jiménez",
    "Moreno",
    "Álvarez",
    "Romero",
    "Navarro",
    "Torres",
    "Domínguez",
    "Vázquez",
    "Ramos",
    "Serrano",
    "Blanco",
    "Molina",
];
const ORIGINS: &[&str] = &["Recomendación", "Instagram", "Web", "Paso por la tienda"];
const NOTES: &[&str] = &[
    "Prefiere cita por la mañana",
    "Pide la factura por email",
    "Viene acompañada de su hija",
    "Piel sensible: usar productos sin perfume",
    "Aparca en el lateral; avisar si hay obras",
];

/// Client `i`'s full name: first name and two surnames, as Spanish names are.
pub fn client_name(i: usize) -> String {
    format!(
        "{} {} {}",
        FIRST[i % FIRST.len()],
        LAST[(i * 7 + i / FIRST.len()) % LAST.len()],
        LAST[(i * 3 + 5) % LAST.len()]
    )
}

/// A valid DNI (eight digits and their check letter).
fn dni(n: u32) -> String {
    const LETTERS: &[u8] = b"TRWAGMYFPDXBNJZSQVHLCKE";
    let n = n % 100_000_000;
    format!("{n:08}{}", LETTERS[(n % 23) as usize] as char)
}

fn ascii(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            'á' | 'Á' => 'a',
            'é' | 'É' => 'e',
            'í' | 'Í' => 'i',
            'ó' | 'Ó' => 'o',
            'ú' | 'Ú' => 'u',
            'ñ' | 'Ñ' => 'n',
            c => c.to_ascii_lowercase(),
        })
        .collect()
}

fn text(pairs: &[(&str, String)]) -> Vec<(String, Given)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), Given::Text(v.clone())))
        .collect()
}

/// Creates a company's employees (its admin first, by the replica itself) and their passwords;
/// returns the replica acting as the admin.
pub fn staff(r: &Replica, company: &Company) -> Result<Replica> {
    let mut admin: Option<Replica> = None;
    for p in company.people {
        let by = admin.as_ref().unwrap_or(r);
        by.add_employee(
            company.id,
            p.name,
            Some(p.code),
            Some(&format!("{}@{}.example", p.code, company.id)),
            Some(p.role),
            Some(p.centre),
        )
        .with_context(|| format!("cannot add employee {}", p.code))?;
        by.set_password(p.code, PASSWORD)?;
        if admin.is_none() {
            admin = Some(r.acting_as(&r.employee(p.code)?)?);
        }
    }
    admin.context("a company needs at least one employee")
}

/// Loads `clients` sample clients of `company` and what hangs from them, as `by` (one of its
/// staff), around `today`.
pub fn load(by: &Replica, company: &Company, clients: usize, today: NaiveDate) -> Result<()> {
    let staff: Vec<String> = company
        .people
        .iter()
        .filter(|p| p.role != "viewer")
        .map(|p| by.employee(p.code).map(|e| e.id))
        .collect::<Result<_, _>>()?;
    for i in company.first..company.first + clients {
        let name = client_name(i);
        let mut parts = name.splitn(2, ' ');
        let (first, last) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        let email = format!(
            "{}.{}{}@correo.example",
            ascii(first),
            ascii(last.split(' ').next().unwrap_or("")),
            i
        );
        let phone = format!(
            "+34 6{:02} {:03} {:03}",
            10 + i % 89,
            (i * 37) % 1000,
            (i * 91) % 1000
        );
        let id = by.add_client(company.id, &name, Some(&email), Some(&phone))?;
        let centre = company.centres[i % company.centres.len()];
        let employee = &staff[i % staff.len()];
        let birth = NaiveDate::from_ymd_opt(1950 + (i % 50) as i32, 1 + (i % 12) as u32, 1)
            .context("a birth date")?
            + Duration::days((i * 13 % 27) as i64);
        for (field, value) in [
            ("first_name", first.to_string()),
            ("last_name", last.to_string()),
            ("tax_id", dni(10_000_000 + (i as u32) * 7_919)),
            ("birth_date", birth.to_string()),
            ("gender", if i % 2 == 0 { "female" } else { "male" }.into()),
            ("origin", ORIGINS[i % ORIGINS.len()].into()),
            ("home_centre", centre.into()),
            ("assigned_employee", employee.clone()),
        ] {
            by.set_field(id, field, &value)?;
        }
        if i % 4 == 0 {
            by.group(id, "VIP", true)?;
        }
        if i % 3 == 0 {
            by.add_note(id, NOTES[i % NOTES.len()])?;
        }
        if i % 10 == 3 {
            by.add_alert(id, "allergy", "critical", "Alergia al látex")?;
            by.add_item(
                id,
                "allergies",
                &[
                    ("type".into(), "Látex".into()),
                    ("severity".into(), "severe".into()),
                ],
            )?;
        }
        if i % 4 == 1 {
            by.add_item(
                id,
                "reviews",
                &[
                    ("rating".into(), (3 + i % 3).to_string()),
                    ("text".into(), "Muy buena atención".into()),
                ],
            )?;
        }
        let (service, price) = company.services[i % company.services.len()];
        // A past visit, done and invoiced; and for one in three, one coming up.
        let past = today - Duration::days(3 + (i % 40) as i64);
        let at = |day: NaiveDate, hour: usize| format!("{day}T{:02}:00:00+01:00", 9 + hour % 9);
        let visit = by.add_record(
            "appointment",
            Some(id),
            None,
            &text(&[
                ("start", at(past, i)),
                ("service", service.into()),
                ("centre", centre.into()),
                ("employee", employee.clone()),
                ("status", "done".into()),
            ]),
        )?;
        by.add_record(
            "procedure",
            Some(id),
            None,
            &text(&[
                ("performed_on", past.to_string()),
                ("treatment", service.into()),
                ("appointment", visit.to_string()),
                ("centre", centre.into()),
            ]),
        )?;
        let invoice = by.add_record(
            "invoice",
            Some(id),
            None,
            &text(&[
                ("issue_date", past.to_string()),
                ("lines", format!("{service};1;{price};21")),
            ]),
        )?;
        by.set_record(invoice, &text(&[("status", "issued".into())]))?;
        if i % 3 == 0 {
            let day = today + Duration::days(1 + (i % 14) as i64);
            by.add_record(
                "appointment",
                Some(id),
                None,
                &text(&[
                    ("start", at(day, i + 2)),
                    ("service", service.into()),
                    ("centre", centre.into()),
                    ("employee", employee.clone()),
                ]),
            )?;
        }
        if i % 5 == 0 {
            by.wallet_move(id, "add_funds", "100EUR", Some("Bono de 100 €"))?;
            by.wallet_move(id, "deduct", price, Some(service))?;
        }
        if i % 6 == 0 {
            by.add_case(
                id,
                &text(&[
                    ("title", "Consulta sobre el tratamiento".into()),
                    ("category", "query".into()),
                    ("status", "new".into()),
                    ("priority", ["low", "medium", "high"][i % 3].into()),
                    (
                        "description",
                        "La clienta pregunta por las sesiones que le quedan del bono".into(),
                    ),
                    ("assignee", employee.clone()),
                ]),
            )?;
        }
        if i % 7 == 0 {
            by.add_time(
                id,
                &TimeForm {
                    text: "Seguimiento telefónico".into(),
                    employee: employee.clone(),
                    date: past.to_string(),
                    minutes: Some(15 + (i % 4) as i64 * 15),
                    next_action: Some((today + Duration::days(7)).to_string()),
                    project: None,
                },
            )?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dni_letters_are_the_official_check_letters() {
        // 12345678 mod 23 = 14 → Z, the example every Spanish form validator uses.
        assert_eq!(dni(12_345_678), "12345678Z");
        assert_eq!(dni(0), "00000000T");
    }

    #[test]
    fn sample_names_are_mostly_distinct() {
        let names: std::collections::HashSet<String> = (0..120).map(client_name).collect();
        assert!(names.len() > 110, "only {} distinct names", names.len());
    }
}
