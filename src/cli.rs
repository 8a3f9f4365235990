//! The command line: `crd` prints the CustomResourceDefinition, `render` prints what the
//! operator would create for given manifests.

use std::io::Read;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use kube::CustomResourceExt;

use crate::api::HealthSystem;
use crate::config::Config;
use crate::render::{Source, render};

/// The HealthSystem operator: hosts health information systems in the State Data Centre.
#[derive(Debug, Parser)]
#[command(name = "healthsystem-operator", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the HealthSystem CustomResourceDefinition as YAML.
    Crd,
    /// Print, as multi-document YAML, every object the operator would create for the given
    /// HealthSystem manifests. Reads stdin when no file is given (or for "-"). Invalid input
    /// exits non-zero naming the file, the document and the field, and prints nothing.
    Render {
        /// Manifest files, each with one or more YAML documents.
        files: Vec<PathBuf>,
    },
}

impl Cli {
    /// Runs the chosen subcommand, printing its result on stdout.
    pub fn run(self) -> anyhow::Result<()> {
        match self.command {
            Command::Crd => {
                print!("{}", crd_yaml()?);
                Ok(())
            }
            Command::Render { files } => {
                let sources = read_sources(&files)?;
                let out = render(&sources, &Config::default())?;
                print!("{out}");
                Ok(())
            }
        }
    }
}

/// The CRD as YAML, exactly as committed in `crds/healthsystem.yaml`.
pub fn crd_yaml() -> anyhow::Result<String> {
    let yaml = serde_saphyr::to_string(&HealthSystem::crd()).context("serialising the CRD")?;
    Ok(format!("---\n{yaml}"))
}

fn read_sources(files: &[PathBuf]) -> anyhow::Result<Vec<Source>> {
    if files.is_empty() {
        return Ok(vec![read_stdin()?]);
    }
    files
        .iter()
        .map(|path| {
            if path.as_os_str() == "-" {
                return read_stdin();
            }
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            Ok(Source {
                name: path.display().to_string(),
                text,
            })
        })
        .collect()
}

fn read_stdin() -> anyhow::Result<Source> {
    let mut text = String::new();
    std::io::stdin()
        .read_to_string(&mut text)
        .context("cannot read stdin")?;
    Ok(Source {
        name: "<stdin>".into(),
        text,
    })
}
