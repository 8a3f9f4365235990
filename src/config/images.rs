//! The container images the operator runs. The PostgreSQL images are also the list of major
//! versions the platform offers: a system asking for a version without an image is refused
//! (at admission by the chart's policy, by `render`, else in its status), and `onboard` maps
//! each source database to an offered version.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::api::PostgresVersion;

/// Container images: PostgreSQL by major version, the metrics exporter and the operator's own.
/// The backup Job uses the database's own image, so pg_dump always matches the server. A key
/// left out keeps its default; `postgres`, when given, is the whole list of offered versions.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Images {
    /// The PostgreSQL image of every major version the platform offers, keyed by the major
    /// version ("15"). CloudNativePG reads the major version from the image's tag.
    pub postgres: BTreeMap<String, String>,
    /// The Prometheus PostgreSQL exporter.
    pub exporter: String,
    /// The operator's own image: the backup Jobs copy the backup agent (this binary) from it
    /// into the database's image, whose client tools match the server.
    /// Unset, the data centre's mirror of this very version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator: Option<String>,
}

impl Images {
    /// The operator's image, for the backup agent.
    pub fn operator(&self) -> String {
        self.operator.clone().unwrap_or_else(|| {
            format!(
                "registry.sdc.gov.rs/healthsystem-operator:{}",
                env!("CARGO_PKG_VERSION")
            )
        })
    }

    /// The PostgreSQL image of a major version; empty when the platform does not offer it
    /// (the reconcile and `render` refuse such a system before anything is built:
    /// [`Images::refuse_version`]).
    pub fn postgres(&self, version: PostgresVersion) -> &str {
        self.postgres
            .get(version.as_str())
            .map(String::as_str)
            .unwrap_or_default()
    }

    /// The versions offered, oldest first.
    pub fn offered(&self) -> Vec<PostgresVersion> {
        PostgresVersion::ALL
            .into_iter()
            .filter(|v| self.postgres.contains_key(v.as_str()))
            .collect()
    }

    /// Why a system may not ask for `version` here, naming the field; None when offered.
    pub fn refuse_version(&self, version: PostgresVersion) -> Option<String> {
        if self.postgres.contains_key(version.as_str()) {
            return None;
        }
        let offered: Vec<&str> = self.offered().iter().map(|v| v.as_str()).collect();
        Some(format!(
            "spec.database.version: PostgreSQL {} is not offered by this platform, which has images for {} only (the operator configuration's images.postgres)",
            version.as_str(),
            offered.join(", ")
        ))
    }

    /// Every image is a reference and every PostgreSQL key a major version the API knows.
    pub fn check(&self) -> Result<(), (String, String)> {
        if self.postgres.is_empty() {
            return Err((
                "images.postgres".into(),
                "at least one PostgreSQL major version needs an image".into(),
            ));
        }
        for major in self.postgres.keys() {
            if PostgresVersion::from_major(major).is_none() {
                let known: Vec<&str> = PostgresVersion::ALL.iter().map(|v| v.as_str()).collect();
                return Err((
                    format!("images.postgres.{major}"),
                    format!(
                        "not a PostgreSQL major version the API offers ({})",
                        known.join(", ")
                    ),
                ));
            }
        }
        let postgres = self
            .postgres
            .iter()
            .map(|(major, image)| (format!("images.postgres.{major}"), image.clone()));
        let others = [
            ("images.exporter".to_string(), self.exporter.clone()),
            ("images.operator".to_string(), self.operator()),
        ];
        for (key, image) in postgres.chain(others) {
            if image.is_empty() || image.chars().any(char::is_whitespace) {
                return Err((key, "must be an image reference".into()));
            }
        }
        Ok(())
    }
}

impl Default for Images {
    fn default() -> Self {
        let mirror = "registry.sdc.gov.rs/mirror";
        let postgres = [("15", "15.13"), ("16", "16.9"), ("17", "17.5")]
            .into_iter()
            .map(|(major, tag)| (major.to_string(), format!("{mirror}/postgres:{tag}")))
            .collect();
        Self {
            postgres,
            exporter: format!("{mirror}/postgres-exporter:v0.17.1"),
            operator: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_version_without_an_image_is_refused_naming_the_field_and_the_offer() {
        let mut images = Images::default();
        images.postgres.remove("16");
        assert_eq!(
            images.offered(),
            [PostgresVersion::V15, PostgresVersion::V17]
        );
        assert_eq!(images.refuse_version(PostgresVersion::V15), None);
        let refusal = images.refuse_version(PostgresVersion::V16).unwrap();
        assert!(
            refusal.starts_with("spec.database.version: PostgreSQL 16 is not offered"),
            "{refusal}"
        );
        assert!(refusal.contains("images for 15, 17 only"), "{refusal}");
        assert_eq!(images.postgres(PostgresVersion::V16), "");
    }

    #[test]
    fn postgres_keys_are_known_major_versions_and_at_least_one() {
        let mut images = Images::default();
        images
            .postgres
            .insert("14".into(), "registry/postgres:14".into());
        assert_eq!(images.check().unwrap_err().0, "images.postgres.14");
        images.postgres.clear();
        assert_eq!(images.check().unwrap_err().0, "images.postgres");
        images
            .postgres
            .insert("17".into(), "registry/postgres 17".into());
        assert_eq!(images.check().unwrap_err().0, "images.postgres.17");
    }
}
