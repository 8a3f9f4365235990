//! The Helm peer: one Helm release per system, from a chart that renders exactly the
//! objects the operator would apply (its values are those objects), as a platform team
//! without an operator would run it. Releases are installed IN_FLIGHT at a time.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::{Value, json};

/// What the Helm peer took.
#[derive(Debug, Default, Clone, Copy)]
pub struct Run {
    /// Until the last release was installed (every object exists).
    pub seconds: f64,
    /// The largest sum of the resident memory of the helm processes running at once.
    pub peak_rss_bytes: u64,
}

/// A chart whose one template renders `.Values.objects`, one document each.
fn write_chart(dir: &Path) -> PathBuf {
    let chart = dir.join("peer-chart");
    std::fs::create_dir_all(chart.join("templates")).unwrap();
    std::fs::write(
        chart.join("Chart.yaml"),
        "apiVersion: v2\nname: healthsystem-peer\nversion: 0.1.0\n",
    )
    .unwrap();
    std::fs::write(
        chart.join("templates/objects.yaml"),
        "{{- range .Values.objects }}\n---\n{{ toYaml . }}\n{{- end }}\n",
    )
    .unwrap();
    chart
}

/// Installs one release per system (`systems[i]` its objects) with `helm`, IN_FLIGHT
/// releases at a time; release records live in the namespace `default`.
pub async fn install_all(
    helm: &Path,
    kubeconfig: &Path,
    dir: &Path,
    systems: &[Vec<Value>],
    in_flight: usize,
) -> Run {
    let chart = write_chart(dir);
    let values: Vec<PathBuf> = systems
        .iter()
        .enumerate()
        .map(|(i, objects)| {
            let path = dir.join(format!("values-{i:04}.json"));
            std::fs::write(&path, json!({ "objects": objects }).to_string()).unwrap();
            path
        })
        .collect();
    let running: Arc<Mutex<HashSet<u32>>> = Arc::default();
    let peak = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let sampler = {
        let (running, peak) = (running.clone(), peak.clone());
        tokio::spawn(async move {
            loop {
                let pids: Vec<u32> = running.lock().unwrap().iter().copied().collect();
                let sum: u64 = pids.into_iter().map(crate::resident).sum();
                peak.fetch_max(sum, std::sync::atomic::Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    let home = dir.join("helm-home");
    let started = Instant::now();
    futures::stream::iter(values.iter().enumerate().map(|(i, values)| {
        let (running, chart, home) = (running.clone(), chart.clone(), home.clone());
        async move {
            let mut child = tokio::process::Command::new(helm)
                .args(["install", &format!("bench-{i:04}")])
                .arg(&chart)
                .arg("--values")
                .arg(values)
                .args(["--namespace", "default", "--kubeconfig"])
                .arg(kubeconfig)
                .env("HELM_CACHE_HOME", home.join("cache"))
                .env("HELM_CONFIG_HOME", home.join("config"))
                .env("HELM_DATA_HOME", home.join("data"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("helm");
            let pid = child.id().unwrap_or_default();
            running.lock().unwrap().insert(pid);
            let mut stderr = String::new();
            if let Some(mut pipe) = child.stderr.take() {
                use tokio::io::AsyncReadExt;
                let _ = pipe.read_to_string(&mut stderr).await;
            }
            let status = child.wait().await.unwrap();
            running.lock().unwrap().remove(&pid);
            assert!(status.success(), "helm install bench-{i:04}: {stderr}");
        }
    }))
    .buffer_unordered(in_flight)
    .collect::<Vec<()>>()
    .await;
    let seconds = started.elapsed().as_secs_f64();
    sampler.abort();
    Run {
        seconds,
        peak_rss_bytes: peak.load(std::sync::atomic::Ordering::Relaxed),
    }
}
