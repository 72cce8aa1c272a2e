//! A fast replay of real traces through the policies, for tuning (not part of the normal
//! test run). Traces are the decompressed `<name>.keys` files (one integer key per line) in
//! `$CACHEHAVEN_TRACE_DIR` (default `/tmp/traces`), e.g.
//!
//! ```text
//! mkdir -p /tmp/traces && for f in ../shared/traces/*.keys.gz; do
//!     zcat "$f" > /tmp/traces/$(basename "$f" .gz); done
//! cargo test --release --lib policy::replay -- --ignored --nocapture
//! ```
//!
//! `POLICY_TUNING="step=0.05,decay=0.9"` overrides [`Tuning`] fields, `POLICY=lru|lfu`
//! replays another policy, `SEEDS=n` averages over `n` sketch seeds, `TRACES=a,b` picks
//! traces. Output: one `trace pct capacity hit_ratio window` line per row.

use super::tests::Sim;
use super::*;

fn parse_tuning(spec: &str) -> Tuning {
    let mut t = Tuning::default();
    for kv in spec.split(',').filter(|s| !s.is_empty()) {
        let (k, v) = kv.split_once('=').expect("key=value");
        let f: f64 = v.parse().expect("a number");
        match k {
            "window" => t.window = f,
            "protected" => t.protected = f,
            "sketch_words" => t.sketch_words = f,
            "sketch_min_words" => t.sketch_min_words = f as usize,
            "age_factor" => t.age_factor = f,
            "age_min" => t.age_min = f as u64,
            "warm" => t.warm = f,
            "ghost" => t.ghost = f,
            "step" => t.step = f,
            "accel" => t.accel = f,
            "max_step" => t.max_step = f,
            "max_step_abs" => t.max_step_abs = f,
            "jitter" => t.jitter = f != 0.0,
            other => panic!("unknown tuning field {other}"),
        }
    }
    t
}

fn load(path: &std::path::Path) -> Vec<u64> {
    std::fs::read_to_string(path)
        .expect("readable trace")
        .split_ascii_whitespace()
        .map(|s| s.parse::<i64>().expect("an integer key") as u64)
        .collect()
}

#[test]
#[ignore = "reads traces from disk; run by hand for tuning"]
fn replay_traces() {
    let dir = std::env::var("CACHEHAVEN_TRACE_DIR").unwrap_or_else(|_| "/tmp/traces".into());
    let tuning = parse_tuning(&std::env::var("POLICY_TUNING").unwrap_or_default());
    let kind = PolicyKind::parse(&std::env::var("POLICY").unwrap_or_else(|_| "adaptive".into()))
        .expect("a policy name");
    let seeds: u64 = std::env::var("SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let only: Option<Vec<String>> = std::env::var("TRACES")
        .ok()
        .map(|s| s.split(',').map(str::to_string).collect());
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .expect("trace directory")
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let n = e.file_name().to_string_lossy().to_string();
            n.strip_suffix(".keys").map(str::to_string)
        })
        .filter(|n| only.as_ref().is_none_or(|o| o.contains(n)))
        .collect();
    names.sort();
    eprintln!("{tuning:?}");
    for name in names {
        let trace = load(&std::path::Path::new(&dir).join(format!("{name}.keys")));
        let distinct = trace.iter().collect::<std::collections::HashSet<_>>().len();
        for pct in [5, 20] {
            let cap = (distinct * pct / 100).max(1);
            let mut total = 0.0;
            let mut window = 0;
            for seed in 0..seeds {
                let t = Tuning {
                    seed: Some(seed * 0x9e37_79b9 + 1),
                    ..tuning
                };
                let mut sim = Sim::new(Policy::with_tuning(kind, Some(cap), t), cap);
                if std::env::var_os("TRACE_WINDOW").is_some() {
                    let mut hits = 0;
                    for (n, chunk) in trace.chunks(trace.len() / 20 + 1).enumerate() {
                        let h = sim.run(chunk);
                        hits += h;
                        eprintln!(
                            "{name} {pct} chunk {n} window {} hr {:.3}",
                            sim.policy.window_max(),
                            h as f64 / chunk.len() as f64
                        );
                    }
                    total += hits as f64 / trace.len() as f64;
                    continue;
                }
                let r = sim.run(&trace) as f64 / trace.len() as f64;
                if std::env::var_os("PER_SEED").is_some() {
                    eprintln!("{name} {pct} seed {seed} {r:.4}");
                }
                total += r;
                window = sim.policy.window_max();
            }
            println!(
                "{name} {pct} {cap} {:.4} {}",
                total / seeds as f64,
                if window == usize::MAX { 0 } else { window }
            );
        }
    }
}
