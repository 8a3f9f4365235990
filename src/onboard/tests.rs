//! Onboarding rules on small inline inventories.

use super::*;

const HEADER: &str = "system_id,institution,registry_id,ownership,kind,district,city,his_vendor,db_engine,db_version,db_size_gib,daily_patients,national_services,rpo_hours,admins_group,state,wave";

fn run(rows: &[&str], selection: &Selection) -> Report {
    let text = format!("{HEADER}\n{}\n", rows.join("\n"));
    onboard(text.as_bytes(), "inv.csv", &Config::default(), selection).unwrap()
}

fn only_row(rows: &[&str]) -> RowReport {
    let report = run(rows, &Selection::default());
    assert_eq!(report.rows.len(), 1);
    report.rows[0].clone()
}

fn manifest_of(row: &RowReport) -> &Value {
    match &row.outcome {
        Outcome::Manifest(m) => m,
        other => panic!("no manifest: {other:?}"),
    }
}

const GOOD: &str = "dz-cuprija,Дом здравља Ћуприја,07151950,Public,PrimaryCare,Pomoravski,Ćuprija,v1,postgresql,13,40.0,900,e-uput;izis;e-recept,8,dz-cuprija-admins,Planned,3";

#[test]
fn a_postgresql_row_becomes_a_valid_healthsystem_with_the_configured_rules() {
    let row = only_row(&[GOOD]);
    let m = manifest_of(&row);
    assert_eq!(m["metadata"]["name"], "dz-cuprija");
    assert_eq!(m["metadata"]["labels"]["sdc.gov.rs/migration-wave"], "3");
    assert_eq!(
        m["spec"]["institution"]["displayName"],
        "Дом здравља Ћуприја"
    );
    assert_eq!(m["spec"]["institution"]["registryId"], "07151950");
    assert_eq!(m["spec"]["tier"], "Standard");
    // 40 GiB x 1.5, and 13 is older than every version offered: the oldest offered.
    assert_eq!(m["spec"]["database"]["storage"], "60Gi");
    assert_eq!(m["spec"]["database"]["version"], "15");
    // RPO 8h: a dump every 4 hours.
    assert_eq!(m["spec"]["backup"]["schedule"], "0 */4 * * *");
    assert_eq!(m["spec"]["backup"]["rpo"], "8h");
    assert_eq!(
        m["spec"]["network"]["platformServices"],
        json!(["e-referral", "e-health-record", "e-prescription"])
    );
    assert_eq!(m["spec"]["access"]["admins"], json!(["dz-cuprija-admins"]));
    assert!(validate(m).is_ok());
}

#[test]
fn a_missing_id_is_derived_from_the_cyrillic_name_and_city() {
    let row = only_row(&[&GOOD.replacen("dz-cuprija", "", 1)]);
    assert_eq!(row.id.as_deref(), Some("dom-zdravlja-cuprija"));
    assert_eq!(
        manifest_of(&row)["metadata"]["name"],
        "dom-zdravlja-cuprija"
    );
}

#[test]
fn a_database_too_large_for_its_tier_moves_the_system_up() {
    // A pharmacy is Small (200Gi of storage): 150 GiB x 1.5 = 225Gi does not fit; Standard's
    // 2Ti does.
    let row = only_row(&[&GOOD
        .replace("PrimaryCare", "Pharmacy")
        .replace("40.0", "150")]);
    assert_eq!(manifest_of(&row)["spec"]["tier"], "Standard");
}

/// The backup claim is added to the quota on top of the tier's storage,
/// so a database that fits its tier stays in it (120 GiB x 1.5 = 180Gi of Small's 200Gi;
/// with the backup counted against the tier it was moved up).
#[test]
fn a_database_that_fits_its_tier_stays_in_it_whatever_its_backup_claim() {
    let row = only_row(&[&GOOD
        .replace("PrimaryCare", "Pharmacy")
        .replace("40.0", "120")]);
    assert_eq!(manifest_of(&row)["spec"]["tier"], "Small");
}

#[test]
fn other_engines_are_reported_as_needing_a_conversion() {
    let row = only_row(&[&GOOD.replace("postgresql,13", "mssql,2019")]);
    let Outcome::NeedsConversion(why) = &row.outcome else {
        panic!("{:?}", row.outcome)
    };
    assert!(why.contains("mssql 2019 is not PostgreSQL"), "{why}");
}

#[test]
fn every_problem_of_a_bad_row_is_reported_by_column_and_nothing_is_made() {
    let bad = GOOD
        .replace("07151950", "7151950")
        .replace("PrimaryCare", "Hospice")
        .replace("e-uput;izis;e-recept", "e-uput;e-magic")
        .replace(",8,dz-cuprija-admins", ",0,dz-cuprija-admins");
    let report = run(&[&bad], &Selection::default());
    assert!(report.has_errors());
    assert_eq!(report.manifests().count(), 0);
    let problems = report.problems();
    let columns: Vec<&str> = problems
        .iter()
        .map(|p| p.split(": ").nth(1).unwrap())
        .collect();
    assert_eq!(
        columns,
        ["registry_id", "kind", "rpo_hours", "national_services"],
        "{problems:#?}"
    );
    assert!(
        problems[0].starts_with("inv.csv:2 (Дом здравља Ћуприја): registry_id: \"7151950\""),
        "{}",
        problems[0]
    );
}

#[test]
fn admission_checks_are_reported_against_the_column() {
    let row = only_row(&[&GOOD.replace("dz-cuprija-admins", "system:authenticated")]);
    let Outcome::Invalid(errors) = &row.outcome else {
        panic!("{:?}", row.outcome)
    };
    assert_eq!(errors[0].0, "admins_group", "{errors:?}");
    assert!(errors[0].1.contains("Kubernetes' own groups"), "{errors:?}");
}

#[test]
fn two_rows_with_the_same_id_are_both_refused() {
    let other = GOOD.replace("07151950", "07151951");
    let report = run(&[GOOD, &other], &Selection::default());
    let problems = report.problems();
    assert_eq!(
        problems,
        [
            "inv.csv:2 (Дом здравља Ћуприја): system_id: dz-cuprija is also the id of line 3",
            "inv.csv:3 (Дом здравља Ћуприја): system_id: dz-cuprija is also the id of line 2",
        ]
    );
    assert_eq!(report.manifests().count(), 0);
}

#[test]
fn waves_and_ids_select_rows() {
    let wave5 = GOOD.replace("dz-cuprija", "dz-paracin").replace(",3", ",5");
    let rows = [GOOD, wave5.as_str()];
    let by_wave = run(
        &rows,
        &Selection {
            waves: vec![5],
            only: vec![],
        },
    );
    assert_eq!(by_wave.rows.len(), 1);
    assert_eq!(by_wave.rows[0].id.as_deref(), Some("dz-paracin"));
    let by_id = run(
        &rows,
        &Selection {
            waves: vec![],
            only: vec!["dz-cuprija".into()],
        },
    );
    assert_eq!(by_id.rows.len(), 1);
    assert_eq!(by_id.rows[0].id.as_deref(), Some("dz-cuprija"));
}

#[test]
fn the_summary_counts_by_wave_and_ownership() {
    let conversion = GOOD
        .replace("dz-cuprija", "apoteka")
        .replace("postgresql,13", "oracle,19c")
        .replace("Public", "Private");
    let summary = run(&[GOOD, &conversion], &Selection::default()).summary();
    assert!(
        summary.contains("wave 3               1           1       0"),
        "{summary}"
    );
    assert!(
        summary.contains("Private              0           1       0"),
        "{summary}"
    );
    assert!(
        summary.contains("total                1           1       0"),
        "{summary}"
    );
}

#[test]
fn systems_not_migrated_yet_get_a_migration_from_the_templates_or_their_own_columns() {
    let config = Config::default();
    let header = format!("{HEADER},source_host,source_port,source_database,source_cidr");
    let csv = format!(
        "{header}\n\
         dz-a,Dom zdravlja A,07151950,Public,PrimaryCare,Nišavski,Niš,his-vendor-a,postgresql,15,40,900,e-uput,24,dz-a-admins,Planned,2,,,,\n\
         dz-b,Dom zdravlja B,07151951,Public,PrimaryCare,Nišavski,Niš,his-vendor-a,postgresql,15,40,900,e-uput,24,dz-b-admins,InProgress,1,10.7.1.20,6432,bolnica,10.7.1.20/32\n\
         dz-c,Dom zdravlja C,07151952,Public,PrimaryCare,Nišavski,Niš,his-vendor-a,postgresql,15,40,900,e-uput,24,dz-c-admins,Migrated,0,,,,\n\
         dz-d,Dom zdravlja D,07151953,Public,PrimaryCare,Nišavski,Niš,his-vendor-a,postgresql,15,40,900,e-uput,24,dz-d-admins,Planned,2,,54x,,\n"
    );
    let report = onboard(csv.as_bytes(), "t.csv", &config, &Selection::default()).unwrap();
    let manifests: BTreeMap<&str, &Value> = report.manifests().collect();
    let a = &manifests["dz-a"]["spec"]["migration"]["source"];
    assert_eq!(a["host"], "dz-a.his.zdravlje.local");
    assert_eq!(a["port"], 5432);
    assert_eq!(a["database"], "his");
    assert_eq!(a["secretName"], "legacy-credentials");
    assert_eq!(a["network"]["cidr"], "10.40.0.0/16");
    let b = &manifests["dz-b"]["spec"]["migration"]["source"];
    assert_eq!(
        (
            &b["host"],
            &b["port"],
            &b["database"],
            &b["network"]["cidr"]
        ),
        (
            &json!("10.7.1.20"),
            &json!(6432),
            &json!("bolnica"),
            &json!("10.7.1.20/32")
        )
    );
    assert!(
        manifests["dz-c"]["spec"].get("migration").is_none(),
        "a migrated system gets no migration"
    );
    assert!(!manifests.contains_key("dz-d"));
    let errors = report.problems().join("\n");
    assert!(
        errors.contains("t.csv:5 (Dom zdravlja D): source_port"),
        "{errors}"
    );
}

#[test]
fn a_source_moves_to_its_version_or_the_next_one_the_platform_has_an_image_for() {
    let mut config = Config::default();
    config.images.postgres.remove("16");
    let with_version = |version: &str| {
        let row = GOOD.replacen(",postgresql,13,", &format!(",postgresql,{version},"), 1);
        let text = format!("{HEADER}\n{row}\n");
        let report = onboard(text.as_bytes(), "inv.csv", &config, &Selection::default()).unwrap();
        report.rows[0].outcome.clone()
    };
    let version_of = |outcome: Outcome| match outcome {
        Outcome::Manifest(m) => m["spec"]["database"]["version"].clone(),
        other => panic!("no manifest: {other:?}"),
    };
    assert_eq!(version_of(with_version("9.6")), "15");
    assert_eq!(version_of(with_version("15.4")), "15");
    assert_eq!(version_of(with_version("16.2")), "17");
    assert_eq!(version_of(with_version("17")), "17");
    let newer = format!("{:?}", with_version("18.1"));
    assert!(
        newer.contains("PostgreSQL 18 is newer than the versions this platform offers (15, 17"),
        "{newer}"
    );
}

/// Where new systems archive their WAL (CloudNativePG with `backup.archiving`), the archive
/// meets the RPO: a 1-hour row keeps its RPO, and its logical dumps, the second line, run on
/// the schedule of a day's RPO instead of every hour.
#[test]
fn where_systems_archive_the_dumps_of_a_short_rpo_row_run_as_for_a_day() {
    let mut config = Config::default();
    config.database.engine = crate::api::Engine::CloudNativePg;
    config.backup.object_store = Some(
        serde_json::from_value(json!({
            "endpoint": "https://s3.sdc.gov.rs", "bucket": "b",
            "network": { "cidrs": ["10.220.0.0/24"], "ports": [{ "port": 443 }] }
        }))
        .unwrap(),
    );
    config.backup.archiving.enabled = true;
    let one_hour = GOOD.replace(",8,dz-cuprija-admins", ",1,dz-cuprija-admins");
    let text = format!("{HEADER}\n{one_hour}\n");
    let report = onboard(text.as_bytes(), "inv.csv", &config, &Selection::default()).unwrap();
    let m = manifest_of(&report.rows[0]);
    assert_eq!(m["spec"]["backup"]["rpo"], "1h");
    assert_eq!(m["spec"]["backup"]["schedule"], "0 */12 * * *");

    // Without archiving, the dumps alone meet it: every hour.
    let report = onboard(
        text.as_bytes(),
        "inv.csv",
        &Config::default(),
        &Selection::default(),
    )
    .unwrap();
    assert_eq!(
        manifest_of(&report.rows[0])["spec"]["backup"]["schedule"],
        "0 * * * *"
    );
}
