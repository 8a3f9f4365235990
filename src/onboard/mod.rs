//! `healthsystem-operator onboard INVENTORY.csv`: a migration team's inventory in, one
//! validated HealthSystem manifest per importable system out. The mapping rules (kind and
//! size to tier, RPO to backup schedule, national services to platform services) are in the
//! operator configuration (`rules.rs`). Every row is reported: a manifest, a source that
//! needs a conversion first (not PostgreSQL), or its errors as
//! `FILE:LINE (INSTITUTION): COLUMN: MESSAGE`; a bad row yields nothing.

pub mod names;
pub mod table;

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::{Value, json};

use crate::api::validation::validate;
use crate::api::{PostgresVersion, Tier};
use crate::config::Config;
pub use crate::config::onboarding::OnboardingConfig;
use table::{Row, number};

/// Which rows to onboard: all, or those of some waves, or some system ids.
#[derive(Clone, Debug, Default)]
pub struct Selection {
    /// Waves to take (all when empty).
    pub waves: Vec<u32>,
    /// System ids to take (all when empty).
    pub only: Vec<String>,
}

/// What became of one row.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// A valid HealthSystem manifest.
    Manifest(Value),
    /// The source database is not PostgreSQL: it needs a conversion before it can be
    /// imported. The reason.
    NeedsConversion(String),
    /// What is wrong, by column.
    Invalid(Vec<(String, String)>),
}

/// One row's report.
#[derive(Clone, Debug, PartialEq)]
pub struct RowReport {
    /// Line in the file.
    pub line: u64,
    /// The institution's display name.
    pub institution: String,
    /// The system id (given or derived), when there is one.
    pub id: Option<String>,
    /// The migration wave, when readable.
    pub wave: Option<u32>,
    /// Public or Private, as written.
    pub ownership: String,
    /// What became of it.
    pub outcome: Outcome,
}

/// Everything `onboard` found in one file.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// The file's name, for messages.
    pub file: String,
    /// Every selected row, in file order.
    pub rows: Vec<RowReport>,
    /// Lines that could not be read at all.
    pub unreadable: Vec<String>,
}

impl Report {
    /// The manifests of the good rows, by system id.
    pub fn manifests(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.rows.iter().filter_map(|r| match (&r.outcome, &r.id) {
            (Outcome::Manifest(m), Some(id)) => Some((id.as_str(), m)),
            _ => None,
        })
    }

    /// Whether any row is invalid or any line unreadable.
    pub fn has_errors(&self) -> bool {
        !self.unreadable.is_empty()
            || self
                .rows
                .iter()
                .any(|r| matches!(r.outcome, Outcome::Invalid(_)))
    }

    /// One line per problem, `FILE:LINE (INSTITUTION): COLUMN: MESSAGE`, and one per row that
    /// needs a conversion.
    pub fn problems(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .unreadable
            .iter()
            .map(|e| format!("{}: {e}", self.file))
            .collect();
        for row in &self.rows {
            let at = format!("{}:{} ({})", self.file, row.line, row.institution);
            match &row.outcome {
                Outcome::Invalid(errors) => {
                    out.extend(errors.iter().map(|(c, m)| format!("{at}: {c}: {m}")));
                }
                Outcome::NeedsConversion(why) => out.push(format!("{at}: db_engine: {why}")),
                Outcome::Manifest(_) => {}
            }
        }
        out
    }

    /// Counts by wave and by ownership of manifests, conversions and errors.
    pub fn summary(&self) -> String {
        let mut by_wave: BTreeMap<String, [usize; 3]> = BTreeMap::new();
        let mut by_ownership: BTreeMap<String, [usize; 3]> = BTreeMap::new();
        for row in &self.rows {
            let slot = match row.outcome {
                Outcome::Manifest(_) => 0,
                Outcome::NeedsConversion(_) => 1,
                Outcome::Invalid(_) => 2,
            };
            let wave = row.wave.map_or("?".to_string(), |w| w.to_string());
            by_wave.entry(format!("wave {wave}")).or_default()[slot] += 1;
            by_ownership.entry(row.ownership.clone()).or_default()[slot] += 1;
        }
        let mut out = String::from("             manifests  conversion  errors\n");
        let mut total = [0; 3];
        for (label, counts) in by_wave.iter().chain(by_ownership.iter()) {
            let _ = writeln!(
                out,
                "{label:<12} {:>9}  {:>10}  {:>6}",
                counts[0], counts[1], counts[2]
            );
        }
        for counts in by_wave.values() {
            for i in 0..3 {
                total[i] += counts[i];
            }
        }
        let _ = writeln!(
            out,
            "{:<12} {:>9}  {:>10}  {:>6}",
            "total",
            total[0],
            total[1],
            total[2] + self.unreadable.len()
        );
        out
    }
}

/// Onboards the inventory `bytes` (named `file` in messages) with the rules of `config`.
/// Fails only when the file as a whole cannot be read (no header, missing columns).
pub fn onboard(
    bytes: &[u8],
    file: &str,
    config: &Config,
    selection: &Selection,
) -> Result<Report, String> {
    let (rows, unreadable) = table::read(bytes).map_err(|e| format!("{file}: {e}"))?;
    let mut report = Report {
        file: file.to_string(),
        rows: Vec::new(),
        unreadable: unreadable.iter().map(ToString::to_string).collect(),
    };
    for row in &rows {
        let wave = row.get("wave").parse::<u32>().ok();
        if !selection.waves.is_empty() && !wave.is_some_and(|w| selection.waves.contains(&w)) {
            continue;
        }
        let id = system_id(row);
        if !selection.only.is_empty() && !id.as_ref().is_some_and(|i| selection.only.contains(i)) {
            continue;
        }
        report.rows.push(RowReport {
            line: row.line,
            institution: row.get("institution").to_string(),
            id: id.clone(),
            wave,
            ownership: row.get("ownership").to_string(),
            outcome: outcome(row, id.as_deref(), config),
        });
    }
    report_collisions(&mut report.rows);
    Ok(report)
}

/// The row's system id: its own, or derived from the institution and city.
fn system_id(row: &Row) -> Option<String> {
    let given = row.get("system_id");
    let id = if given.is_empty() {
        names::derive_id(row.get("institution"), row.get("city"))
    } else {
        given.to_string()
    };
    (!id.is_empty()).then_some(id)
}

/// Two rows with the same id: both are refused, each naming the other's line.
fn report_collisions(rows: &mut [RowReport]) {
    let mut lines: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for row in rows.iter() {
        if let Some(id) = &row.id {
            lines.entry(id.clone()).or_default().push(row.line);
        }
    }
    for row in rows.iter_mut() {
        let Some(id) = &row.id else { continue };
        let others: Vec<String> = lines[id]
            .iter()
            .filter(|l| **l != row.line)
            .map(u64::to_string)
            .collect();
        if others.is_empty() {
            continue;
        }
        let error = (
            "system_id".to_string(),
            format!("{id} is also the id of line {}", others.join(", ")),
        );
        match &mut row.outcome {
            Outcome::Invalid(errors) => errors.push(error),
            other => *other = Outcome::Invalid(vec![error]),
        }
    }
}

fn outcome(row: &Row, id: Option<&str>, config: &Config) -> Outcome {
    let engine = row.get("db_engine").to_lowercase();
    let version = row.get("db_version");
    match engine.as_str() {
        "postgresql" => {}
        "mssql" | "oracle" | "mysql" => {
            return Outcome::NeedsConversion(format!(
                "{engine} {version} is not PostgreSQL: the database needs a conversion before \
                 it can be imported"
            ));
        }
        other => {
            return Outcome::Invalid(vec![(
                "db_engine".into(),
                format!("unknown engine {other:?} (postgresql, mssql, oracle or mysql)"),
            )]);
        }
    }
    match manifest(row, id, config) {
        Err(errors) => Outcome::Invalid(errors),
        Ok(manifest) => match validate(&manifest) {
            Ok(_) => Outcome::Manifest(manifest),
            Err(errors) => Outcome::Invalid(
                errors
                    .into_iter()
                    .map(|e| (column_of(&e.field).to_string(), e.message))
                    .collect(),
            ),
        },
    }
}

/// The inventory column a manifest field comes from, for messages.
fn column_of(field: &str) -> &str {
    const COLUMNS: &[(&str, &str)] = &[
        ("metadata.name", "system_id"),
        ("spec.institution.displayName", "institution"),
        ("spec.institution.registryId", "registry_id"),
        ("spec.institution.ownership", "ownership"),
        ("spec.access", "admins_group"),
        ("spec.database.version", "db_version"),
        ("spec.database.storage", "db_size_gib"),
        ("spec.backup", "rpo_hours"),
        ("spec.network.platformServices", "national_services"),
        ("spec.tier", "kind"),
        ("spec.migration.source.host", "source_host"),
        ("spec.migration.source.port", "source_port"),
        ("spec.migration.source.database", "source_database"),
        ("spec.migration.source.network", "source_cidr"),
    ];
    COLUMNS
        .iter()
        .find(|(prefix, _)| field.starts_with(prefix))
        .map_or(field, |(_, column)| column)
}

/// The HealthSystem of a PostgreSQL row, or every problem found, by column.
fn manifest(row: &Row, id: Option<&str>, config: &Config) -> Result<Value, Vec<(String, String)>> {
    let rules = &config.onboarding;
    let mut errors: Vec<(String, String)> = Vec::new();
    let mut fail = |column: &str, message: String| errors.push((column.to_string(), message));

    if id.is_none() {
        fail(
            "system_id",
            "empty, and no id can be derived from the institution and city".into(),
        );
    }
    let registry_id = row.get("registry_id");
    if !(registry_id.len() == 8 && registry_id.bytes().all(|b| b.is_ascii_digit())) {
        fail(
            "registry_id",
            format!(
                "{registry_id:?} is not an 8-digit register number (a spreadsheet may have \
                 dropped its leading zeros)"
            ),
        );
    }
    let kind = row.get("kind");
    let kind_tier = rules.tier_by_kind.get(kind).copied();
    if kind_tier.is_none() {
        let known: Vec<&str> = rules.tier_by_kind.keys().map(String::as_str).collect();
        fail(
            "kind",
            format!("unknown kind {kind:?} (known: {})", known.join(", ")),
        );
    }
    let version = postgres_version(row.get("db_version"), &config.images.offered());
    if let Err(message) = &version {
        fail("db_version", message.clone());
    }
    let size = number(row.get("db_size_gib")).filter(|s| *s >= 0.0);
    if size.is_none() {
        fail(
            "db_size_gib",
            format!("{:?} is not a size in GiB", row.get("db_size_gib")),
        );
    }
    let rpo = row
        .get("rpo_hours")
        .parse::<u32>()
        .ok()
        .filter(|h| (1..=168).contains(h));
    // Where new systems archive their WAL, the archive meets the RPO and the logical dumps,
    // the second line, need only serve a day's.
    let archives = config.database.engine == crate::api::Engine::CloudNativePg
        && config.backup.archive_store().is_some();
    let schedule = rpo.and_then(|rpo| {
        let dumps_serve = if archives { rpo.max(24) } else { rpo };
        rules
            .backup_schedules
            .iter()
            .find(|s| s.max_rpo_hours >= dumps_serve)
    });
    match (rpo, schedule) {
        (None, _) => fail(
            "rpo_hours",
            format!(
                "{:?} is not a whole number of hours from 1 to 168",
                row.get("rpo_hours")
            ),
        ),
        (Some(rpo), None) => fail(
            "rpo_hours",
            format!("no backup schedule in the configuration serves an RPO of {rpo} hours"),
        ),
        _ => {}
    }
    let mut platform_services = Vec::new();
    for service in row
        .get("national_services")
        .split([';', ','])
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        match rules.national_services.get(service) {
            Some(name) if config.platform_services.contains_key(name) => {
                if !platform_services.contains(name) {
                    platform_services.push(name.clone());
                }
            }
            Some(name) => fail(
                "national_services",
                format!(
                    "{service} maps to platform service {name}, which the configuration does not define"
                ),
            ),
            None => {
                let known: Vec<&str> = rules.national_services.keys().map(String::as_str).collect();
                fail(
                    "national_services",
                    format!(
                        "unknown national service {service:?} (known: {})",
                        known.join(", ")
                    ),
                );
            }
        }
    }
    let admins = row.get("admins_group");
    if admins.is_empty() {
        fail(
            "admins_group",
            "empty: every system needs its administrators' group".into(),
        );
    }
    let storage_gi =
        size.map(|s| ((s * rules.storage_factor).ceil() as u64).max(rules.minimum_storage_gi));
    let tier = match (kind_tier, storage_gi) {
        (Some(tier), Some(gi)) => match tier_for(tier, gi, config) {
            Some(tier) => Some(tier),
            None => {
                fail(
                    "db_size_gib",
                    format!("a {gi}Gi database fits no tier's storage"),
                );
                None
            }
        },
        _ => None,
    };
    if !errors.is_empty() {
        return Err(errors);
    }
    let (
        Some(id),
        Ok(version),
        Some(rpo),
        Some(schedule),
        Some(size_gib),
        Some(storage_gi),
        Some(tier),
    ) = (id, version, rpo, schedule, size, storage_gi, tier)
    else {
        return Err(vec![("row".into(), "incomplete".into())]);
    };
    let mut viewers = rules.viewers.clone();
    viewers.retain(|v| v != admins);
    let migration = migration(row, id, rules);
    let mut manifest = json!({
        "apiVersion": "sdc.gov.rs/v1alpha1",
        "kind": "HealthSystem",
        "metadata": {
            "name": id,
            "labels": {
                "sdc.gov.rs/migration-wave": row.get("wave"),
                "sdc.gov.rs/institution-kind": kind,
            },
            "annotations": {
                "sdc.gov.rs/source-database": format!("postgresql {}, {size_gib} GiB", row.get("db_version")),
                "sdc.gov.rs/his-vendor": row.get("his_vendor"),
                "sdc.gov.rs/location": format!("{}, {}", row.get("city"), row.get("district")),
            },
        },
        "spec": {
            "institution": {
                "displayName": row.get("institution"),
                "registryId": registry_id,
                "ownership": row.get("ownership"),
            },
            "tier": tier,
            "access": { "admins": [admins], "viewers": viewers },
            "database": { "engine": "PostgreSQL", "version": version, "storage": format!("{storage_gi}Gi") },
            "backup": { "schedule": schedule.schedule, "rpo": format!("{rpo}h") },
            "network": { "platformServices": platform_services },
            "monitoring": { "enabled": true },
            "deletionPolicy": "Retain",
        },
    });
    if let Some(migration) = migration {
        manifest["spec"]["migration"] = migration;
    }
    Ok(manifest)
}

/// The spec.migration of a row not migrated yet: the inventory's own source columns when it
/// has them, else the configuration's templates.
fn migration(row: &Row, id: &str, rules: &OnboardingConfig) -> Option<Value> {
    if row.get("state").eq_ignore_ascii_case("migrated") {
        return None;
    }
    let template = rules.migration.as_ref()?;
    let or = |column: &str, default: String| {
        let value = row.get(column);
        if value.is_empty() {
            default
        } else {
            value.to_string()
        }
    };
    // A port that is not a number becomes 0, which validation reports against the column.
    let port = match row.get("source_port") {
        "" => template.port,
        given => given.parse().unwrap_or(0),
    };
    Some(json!({
        "source": {
            "host": or("source_host", template.host.replace("{id}", id)),
            "port": port,
            "database": or("source_database", template.database.clone()),
            "secretName": template.secret_name,
            "network": { "cidr": or("source_cidr", template.cidr.clone()) },
        },
    }))
}

/// The PostgreSQL major version of the system for a source version such as "13" or "9.6".
fn postgres_version(source: &str, offered: &[PostgresVersion]) -> Result<String, String> {
    let major = source
        .split('.')
        .next()
        .and_then(|m| m.trim().parse::<u32>().ok())
        .ok_or_else(|| format!("{source:?} is not a PostgreSQL version"))?;
    // The same version, or the next one offered: dump and restore upgrade the data.
    offered
        .iter()
        .find(|v| v.as_str().parse::<u32>().is_ok_and(|offer| offer >= major))
        .map(|v| v.as_str().to_string())
        .ok_or_else(|| {
            let offered: Vec<&str> = offered.iter().map(|v| v.as_str()).collect();
            format!(
                "PostgreSQL {major} is newer than the versions this platform offers ({}; the operator configuration's images.postgres)",
                offered.join(", ")
            )
        })
}

/// The smallest tier from `tier` up whose storage holds the database volume (the backup
/// volume is added to the namespace quota on top of it).
fn tier_for(tier: Tier, storage_gi: u64, config: &Config) -> Option<Tier> {
    [Tier::Small, Tier::Standard, Tier::Large]
        .into_iter()
        .skip_while(|t| *t != tier)
        .find(|t| gib(&config.tiers.get(*t).storage).is_some_and(|quota| storage_gi <= quota))
}

/// GiB in a binary-suffixed quantity (Gi, Ti, Pi), as tiers write their storage.
fn gib(quantity: &str) -> Option<u64> {
    let (number, factor) = if let Some(n) = quantity.strip_suffix("Gi") {
        (n, 1)
    } else if let Some(n) = quantity.strip_suffix("Ti") {
        (n, 1024)
    } else if let Some(n) = quantity.strip_suffix("Pi") {
        (n, 1024 * 1024)
    } else {
        return None;
    };
    number.parse::<u64>().ok().map(|n| n * factor)
}

#[cfg(test)]
mod tests;
