//! What the watcher tells its operators: the counters and gauges of
//! `/metrics` (Prometheus text format) and the facts `/healthz` and
//! `/readyz` judge. One [`Health`] per watcher, shared by the loop, the
//! passes and the HTTP endpoint; nothing here decides anything.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::time::Instant;

/// The shared state (cheap to clone).
#[derive(Debug, Clone, Default)]
pub struct Health(Arc<Mutex<State>>);

#[derive(Debug, Default)]
struct State {
    /// Last time the main loop turned (a watch event, a leadership change, a tick).
    loop_alive: Option<Instant>,
    /// Last time both watch streams had their lists (the watcher's view).
    views_fresh: Option<Instant>,
    /// Whether this replica leads (or acts alone).
    leader: bool,
    /// (pass, outcome) → count.
    passes: BTreeMap<(String, &'static str), u64>,
    /// pass → (sum of seconds, count).
    durations: BTreeMap<String, (f64, u64)>,
    /// pass → seconds since the epoch of the last success.
    last_success: BTreeMap<String, f64>,
    slots_seen: u64,
    slots_removed: u64,
    namespaces_deleted: u64,
    /// reason → count.
    slots_kept: BTreeMap<String, u64>,
    /// code → count.
    api_errors: BTreeMap<String, u64>,
    /// (operation, kind) → count; kind `error` or `timeout`.
    git_errors: BTreeMap<(String, &'static str), u64>,
    agent_phases_recorded: u64,
}

impl Health {
    fn state(&self) -> MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The main loop turned.
    pub fn beat(&self) {
        self.state().loop_alive = Some(Instant::now());
    }

    /// The watch streams hold listed views (`false`: not yet, or a stream
    /// just failed).
    pub fn views(&self, fresh: bool) {
        self.state().views_fresh = fresh.then(Instant::now);
    }

    /// This replica leads (or follows).
    pub fn leader(&self, leads: bool) {
        self.state().leader = leads;
    }

    /// A pass ended.
    pub fn pass(&self, pass: &str, ok: bool, took: Duration) {
        let mut s = self.state();
        *s.passes.entry((pass.to_owned(), if ok { "ok" } else { "error" })).or_default() += 1;
        let d = s.durations.entry(pass.to_owned()).or_default();
        d.0 += took.as_secs_f64();
        d.1 += 1;
        if ok {
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
            s.last_success.insert(pass.to_owned(), now.as_secs_f64());
        }
    }

    /// A TTL pass saw `seen` managed slot namespaces.
    pub fn slots_seen(&self, seen: usize) {
        self.state().slots_seen += seen as u64;
    }

    /// Slots removed from git, namespaces deleted.
    pub fn removed(&self, slots: usize, namespaces: usize) {
        let mut s = self.state();
        s.slots_removed += slots as u64;
        s.namespaces_deleted += namespaces as u64;
    }

    /// A slot kept (or skipped) for `reason` (a short, fixed label).
    pub fn kept(&self, reason: &str) {
        *self.state().slots_kept.entry(reason.to_owned()).or_default() += 1;
    }

    /// An API call failed with `code` (HTTP code, `connection`, `timeout`).
    pub fn api_error(&self, code: &str) {
        *self.state().api_errors.entry(code.to_owned()).or_default() += 1;
    }

    /// A git operation failed (`timeout`: did not answer in time).
    pub fn git_error(&self, operation: &str, timeout: bool) {
        let kind = if timeout { "timeout" } else { "error" };
        *self.state().git_errors.entry((operation.to_owned(), kind)).or_default() += 1;
    }

    /// An agent phase was written.
    pub fn agent_phase_recorded(&self) {
        self.state().agent_phases_recorded += 1;
    }

    /// `/healthz`: the main loop turned within `within`.
    pub fn alive(&self, within: Duration) -> bool {
        self.state().loop_alive.is_some_and(|t| t.elapsed() <= within)
    }

    /// `/readyz`: alive, and the watch views are listed and not failing
    /// (leader or follower).
    pub fn ready(&self, within: Duration) -> bool {
        let s = self.state();
        s.loop_alive.is_some_and(|t| t.elapsed() <= within) && s.views_fresh.is_some()
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let s = self.state();
        let mut o = String::new();
        let family = |o: &mut String, name: &str, kind: &str, help: &str| {
            let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} {kind}");
        };
        family(&mut o, "codex_k8s_watch_passes_total", "counter", "Passes run, by pass and outcome.");
        for ((pass, outcome), n) in &s.passes {
            let _ = writeln!(o, "codex_k8s_watch_passes_total{{pass=\"{pass}\",outcome=\"{outcome}\"}} {n}");
        }
        family(&mut o, "codex_k8s_watch_pass_duration_seconds", "summary", "Time passes took.");
        for (pass, (sum, count)) in &s.durations {
            let _ = writeln!(o, "codex_k8s_watch_pass_duration_seconds_sum{{pass=\"{pass}\"}} {sum}");
            let _ = writeln!(o, "codex_k8s_watch_pass_duration_seconds_count{{pass=\"{pass}\"}} {count}");
        }
        family(
            &mut o,
            "codex_k8s_watch_pass_last_success_timestamp_seconds",
            "gauge",
            "When each pass last succeeded.",
        );
        for (pass, t) in &s.last_success {
            let _ = writeln!(o, "codex_k8s_watch_pass_last_success_timestamp_seconds{{pass=\"{pass}\"}} {t}");
        }
        family(&mut o, "codex_k8s_watch_slots_seen_total", "counter", "Managed slot namespaces seen by TTL passes.");
        let _ = writeln!(o, "codex_k8s_watch_slots_seen_total {}", s.slots_seen);
        family(&mut o, "codex_k8s_watch_slots_removed_total", "counter", "Slots removed from git as idle.");
        let _ = writeln!(o, "codex_k8s_watch_slots_removed_total {}", s.slots_removed);
        family(
            &mut o,
            "codex_k8s_watch_namespaces_deleted_total",
            "counter",
            "Slot namespaces deleted after the grace.",
        );
        let _ = writeln!(o, "codex_k8s_watch_namespaces_deleted_total {}", s.namespaces_deleted);
        family(&mut o, "codex_k8s_watch_slots_kept_total", "counter", "Slots kept or skipped, by reason.");
        for (reason, n) in &s.slots_kept {
            let _ = writeln!(o, "codex_k8s_watch_slots_kept_total{{reason=\"{reason}\"}} {n}");
        }
        family(&mut o, "codex_k8s_watch_api_errors_total", "counter", "Failed API calls (each attempt), by code.");
        for (code, n) in &s.api_errors {
            let _ = writeln!(o, "codex_k8s_watch_api_errors_total{{code=\"{code}\"}} {n}");
        }
        family(&mut o, "codex_k8s_watch_git_errors_total", "counter", "Failed git operations, by operation and kind.");
        for ((op, kind), n) in &s.git_errors {
            let _ = writeln!(o, "codex_k8s_watch_git_errors_total{{operation=\"{op}\",kind=\"{kind}\"}} {n}");
        }
        family(&mut o, "codex_k8s_watch_agent_phases_recorded_total", "counter", "Agent phases written.");
        let _ = writeln!(o, "codex_k8s_watch_agent_phases_recorded_total {}", s.agent_phases_recorded);
        family(&mut o, "codex_k8s_watch_leader", "gauge", "1 while this replica leads (or acts alone).");
        let _ = writeln!(o, "codex_k8s_watch_leader {}", u8::from(s.leader));
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exposition_names_every_family_with_its_labels() {
        let h = Health::default();
        h.pass("ttl", true, Duration::from_millis(500));
        h.pass("ttl", false, Duration::from_millis(500));
        h.api_error("503");
        h.git_error("fetch", true);
        h.kept("pinned");
        h.leader(true);
        let text = h.render();
        for line in [
            "codex_k8s_watch_passes_total{pass=\"ttl\",outcome=\"ok\"} 1",
            "codex_k8s_watch_passes_total{pass=\"ttl\",outcome=\"error\"} 1",
            "codex_k8s_watch_pass_duration_seconds_sum{pass=\"ttl\"} 1",
            "codex_k8s_watch_pass_duration_seconds_count{pass=\"ttl\"} 2",
            "codex_k8s_watch_api_errors_total{code=\"503\"} 1",
            "codex_k8s_watch_git_errors_total{operation=\"fetch\",kind=\"timeout\"} 1",
            "codex_k8s_watch_slots_kept_total{reason=\"pinned\"} 1",
            "codex_k8s_watch_leader 1",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in:\n{text}");
        }
    }

    #[test]
    fn alive_needs_a_recent_beat_and_ready_needs_listed_views() {
        let h = Health::default();
        assert!(!h.alive(Duration::from_secs(60)));
        h.beat();
        assert!(h.alive(Duration::from_secs(60)));
        assert!(!h.ready(Duration::from_secs(60)), "no views yet");
        h.views(true);
        assert!(h.ready(Duration::from_secs(60)));
        h.views(false);
        assert!(!h.ready(Duration::from_secs(60)));
    }
}
