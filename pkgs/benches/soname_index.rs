//! The soname index in-process (issue 6's benchmark; `benches/pkgs.sh` runs it): builds the index from a
//! `Contents-<arch>.gz` exactly as `fhskit pkgs update` does once the file is downloaded and verified (streaming
//! decompression, scan, sort, write), and times lookups in the memory-mapped result, without process start-up.
//!
//! usage: cargo bench -p pkgs --bench soname_index -- CONTENTS.gz QUERIES-FILE [RUNS]
//! Prints one JSON object: build times (ms), index size, and lookup times (ns) for sonames from QUERIES-FILE (one a
//! line), for names no package ships, and for a fresh open of the index plus one lookup (what `fhskit locate` does).

use std::time::{Duration, Instant};

use pkgs::soname::{SonameIndex, build_from_compressed, preferred};

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn percentile(v: &mut [Duration], p: f64) -> Duration {
    v.sort();
    v[((v.len() - 1) as f64 * p).round() as usize]
}

fn ns(d: Duration) -> f64 {
    d.as_secs_f64() * 1e9
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // `cargo bench` adds `--bench`.
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let (Some(contents), Some(queries)) = (args.first(), args.get(1)) else {
        return Err("usage: soname_index CONTENTS.gz QUERIES-FILE [RUNS]".into());
    };
    let runs: usize = args.get(2).map_or(Ok(5), |r| r.parse())?;
    let data = std::fs::read(contents)?;
    let files = vec![(contents.clone(), data)];
    let dir = tempfile::tempdir()?;
    let index = dir.path().join("soname-amd64.idx");

    let mut builds = Vec::new();
    let mut stats = None;
    for _ in 0..runs.max(1) {
        let t = Instant::now();
        stats = Some(build_from_compressed(&files, &index)?);
        builds.push(t.elapsed());
    }
    let stats = stats.ok_or("no build")?;
    let best_build = *builds.iter().min().ok_or("no build")?;
    let median_build = median(&mut builds);

    let wanted: Vec<String> = std::fs::read_to_string(queries)?.lines().map(str::to_owned).collect();
    if wanted.is_empty() {
        return Err("no queries".into());
    }
    let missing: Vec<String> = wanted.iter().map(|q| format!("{q}.99")).collect();
    let idx = SonameIndex::open(&index)?;
    for q in &wanted {
        if idx.lookup(q)?.is_empty() {
            return Err(format!("{q} is not in the index").into());
        }
    }
    // Each lookup timed alone, as `fhskit locate` does it: the hits and the preferred provider.
    let time_each = |qs: &[String]| -> Result<Vec<Duration>, Box<dyn std::error::Error>> {
        let mut times = Vec::with_capacity(qs.len() * 20);
        for _ in 0..20 {
            for q in qs {
                let t = Instant::now();
                let hits = idx.lookup(q)?;
                std::hint::black_box(preferred(q, &hits));
                times.push(t.elapsed());
            }
        }
        Ok(times)
    };
    let mut hit_times = time_each(&wanted)?;
    let mut miss_times = time_each(&missing)?;
    let mut cold = Vec::new();
    for q in wanted.iter().take(200) {
        let t = Instant::now();
        let idx = SonameIndex::open(&index)?;
        let hits = idx.lookup(q)?;
        std::hint::black_box(preferred(q, &hits));
        cold.push(t.elapsed());
    }
    let out = serde_json::json!({
        "contents_gz_bytes": files[0].1.len(),
        "lines": stats.lines,
        "entries": stats.entries,
        "packages": stats.packages,
        "index_bytes": std::fs::metadata(&index)?.len(),
        "build_ms_best": best_build.as_secs_f64() * 1e3,
        "build_ms_median": median_build.as_secs_f64() * 1e3,
        "lookup_ns_median": ns(median(&mut hit_times)),
        "lookup_ns_p99": ns(percentile(&mut hit_times, 0.99)),
        "lookup_ns_max": ns(percentile(&mut hit_times, 1.0)),
        "miss_ns_median": ns(median(&mut miss_times)),
        "open_and_lookup_ns_median": ns(median(&mut cold)),
        "open_and_lookup_ns_max": ns(percentile(&mut cold, 1.0)),
    });
    println!("{out}");
    Ok(())
}
