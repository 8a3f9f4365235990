//! What a run cost the API server: its own CPU seconds (from /proc) and the requests it
//! served (its `apiserver_request_total`, every client included).

use std::path::Path;

use kube::Client;

/// A reading of the API server's counters.
#[derive(Clone, Copy, Debug, Default)]
pub struct Usage {
    /// User and system CPU seconds of the kube-apiserver process.
    pub cpu_seconds: f64,
    /// Requests served, every verb and client.
    pub requests: f64,
}

impl std::ops::Sub for Usage {
    type Output = Usage;
    fn sub(self, before: Usage) -> Usage {
        Usage {
            cpu_seconds: self.cpu_seconds - before.cpu_seconds,
            requests: self.requests - before.requests,
        }
    }
}

/// The kube-apiserver process of the cluster in `dir` (its flags name files under it).
fn pid(dir: &Path) -> Option<u32> {
    let dir = dir.to_string_lossy().to_string();
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .find_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
            let args: Vec<String> = cmdline
                .split(|b| *b == 0)
                .map(|a| String::from_utf8_lossy(a).to_string())
                .collect();
            let is_apiserver = args.first()?.ends_with("kube-apiserver");
            (is_apiserver && args.iter().any(|a| a.contains(&dir))).then_some(pid)
        })
}

/// User plus system CPU seconds of `pid` (fields 14 and 15 of /proc/PID/stat, in ticks of
/// 1/100 s on Linux).
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The command name may hold spaces: count fields after its closing parenthesis.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // After the name: state is field 3, utime 14, stime 15 (so indices 11 and 12 here).
    (ticks(11) + ticks(12)) / 100.0
}

/// Reads the API server of the cluster in `dir` through `client`.
pub async fn usage(client: &Client, dir: &Path) -> Usage {
    let cpu_seconds = pid(dir).map(cpu_seconds).unwrap_or(0.0);
    let request = http::Request::get("/metrics").body(Vec::new()).unwrap();
    let text = client.request_text(request).await.unwrap_or_default();
    let requests = text
        .lines()
        .filter(|l| l.starts_with("apiserver_request_total{"))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum();
    Usage {
        cpu_seconds,
        requests,
    }
}
