//! A tiny Prometheus text-format writer, so each daemon's `/metrics` is a few lines of code
//! and needs no registry crate.

use std::fmt::Write;

/// Accumulates metric families in the Prometheus text exposition format.
#[derive(Default, Debug)]
pub struct PrometheusText {
    out: String,
}

impl PrometheusText {
    /// An empty document.
    pub fn new() -> PrometheusText {
        PrometheusText::default()
    }

    fn header(&mut self, name: &str, kind: &str, help: &str) {
        // Writing to a String cannot fail.
        let _ = writeln!(self.out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    /// A counter without labels.
    pub fn counter(&mut self, name: &str, help: &str, value: u64) -> &mut Self {
        self.header(name, "counter", help);
        let _ = writeln!(self.out, "{name} {value}");
        self
    }

    /// A gauge without labels.
    pub fn gauge(&mut self, name: &str, help: &str, value: f64) -> &mut Self {
        self.header(name, "gauge", help);
        let _ = writeln!(self.out, "{name} {value}");
        self
    }

    /// A family with one sample per label set.
    pub fn labelled(
        &mut self,
        name: &str,
        kind: &str,
        help: &str,
        samples: &[(Vec<(&str, String)>, f64)],
    ) -> &mut Self {
        self.header(name, kind, help);
        for (labels, value) in samples {
            let labels: Vec<String> = labels
                .iter()
                .map(|(k, v)| format!("{k}=\"{}\"", escape_label(v)))
                .collect();
            let _ = writeln!(self.out, "{name}{{{}}} {value}", labels.join(","));
        }
        self
    }

    /// The finished document.
    pub fn finish(self) -> String {
        self.out
    }
}

fn escape_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Seconds since the Unix epoch as a float, the reference's timestamp format.
pub fn unix_time_f64() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Token totals by the wire's four categories, shared by every daemon's `/stats` and
/// `/metrics`.
#[derive(Debug, Default)]
pub struct TokenCounters {
    prompt: std::sync::atomic::AtomicU64,
    cached: std::sync::atomic::AtomicU64,
    completion: std::sync::atomic::AtomicU64,
    reasoning: std::sync::atomic::AtomicU64,
    total: std::sync::atomic::AtomicU64,
}

/// A snapshot of [`TokenCounters`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct TokenTotals {
    /// Prompt tokens not served from cache.
    pub prompt: u64,
    /// Prompt tokens served from cache.
    pub cached: u64,
    /// Completion tokens that are not reasoning.
    pub completion: u64,
    /// Reasoning tokens.
    pub reasoning: u64,
    /// All tokens, as the backend reported them.
    pub total: u64,
}

impl TokenCounters {
    /// Adds one usage report (negative counts from a hostile peer count as zero).
    pub fn add(&self, tokens: &cocoon_proto::TokensUsed) {
        use std::sync::atomic::Ordering::Relaxed;
        let add = |counter: &std::sync::atomic::AtomicU64, value: i64| {
            counter.fetch_add(u64::try_from(value).unwrap_or(0), Relaxed);
        };
        add(&self.prompt, tokens.prompt_tokens_used);
        add(&self.cached, tokens.cached_tokens_used);
        add(&self.completion, tokens.completion_tokens_used);
        add(&self.reasoning, tokens.reasoning_tokens_used);
        add(&self.total, tokens.total_tokens_used);
    }

    /// The current totals.
    pub fn totals(&self) -> TokenTotals {
        use std::sync::atomic::Ordering::Relaxed;
        TokenTotals {
            prompt: self.prompt.load(Relaxed),
            cached: self.cached.load(Relaxed),
            completion: self.completion.load(Relaxed),
            reasoning: self.reasoning.load(Relaxed),
            total: self.total.load(Relaxed),
        }
    }

    /// Writes the totals as one labelled counter family.
    pub fn write_prometheus(&self, text: &mut PrometheusText, name: &str, help: &str) {
        let t = self.totals();
        text.labelled(
            name,
            "counter",
            help,
            &[
                (vec![("kind", "prompt".into())], t.prompt as f64),
                (vec![("kind", "cached".into())], t.cached as f64),
                (vec![("kind", "completion".into())], t.completion as f64),
                (vec![("kind", "reasoning".into())], t.reasoning as f64),
                (vec![("kind", "total".into())], t.total as f64),
            ],
        );
    }
}
