//! Beyond RAM (issue 10): search latency when only 10 % of the vector bytes may stay in RAM,
//! beside the same collection all in RAM, in one run.
//!
//! The base (`ANN_DATA`, default `target/ann/glove50`, written by `benches/ann.sh`) is loaded
//! into a collection and compacted into one indexed segment: a warm segment, its file mapped.
//! Each mode then runs in a child process of its own (a fresh page cache state):
//!
//! - `hot`: everything cached (the warm-up reads every page), the default `RescoreReads::Auto`
//!   (every vector found in the page cache: read through the mapping);
//! - `limited-mapping`, `limited-batched`: the child joins a memory cgroup (v1,
//!   `/sys/fs/cgroup/memory`), warms up without a limit (codes loaded, the graph read), then
//!   gets a limit of its anonymous memory + the segment file but its vectors and codes (in
//!   anonymous memory since the first search) + a tenth of the vectors + 4 MB, corrected in steady state until the page cache holds 10 ± 2 % of the
//!   vectors section (`mincore`) — the kernel's LRU, not the bench, picks which pages stay.
//!   The first limited mode calibrates the limit; the others run under the same one. The walk reads the one-byte codes
//!   (process RAM) and the graph (mapped); the best `2·k` candidates are re-scored from `f32`
//!   vectors read through the mapping (`limited-mapping`: a page fault each that misses, one
//!   after the other), by one batched read per search (`limited-batched`: io_uring, 4 KiB per
//!   miss, in flight together), or as the default picks per candidate (`limited-auto`: the
//!   cached ones through the mapping, the others by one batched read);
//! - `limited-graphs-in-ram`: as `limited-auto`, the graph walked from a copy in process RAM
//!   (`EngineOptions::graphs_in_ram`), under the same limit — so the vectors' share of the
//!   page cache is what the graph copy leaves;
//! - `limited-f32`: the same limit, the walk over the `f32` vectors themselves
//!   (`ignore_quantization`): what a walk without codes costs when its vectors do not fit;
//! - `limited-approx`, `limited-approx-graphs-in-ram`: the same limit, no re-score (Qdrant's
//!   `quantization.rescore: false`): the hits keep their distances over the codes, no vector
//!   is read — its recall is the walk's over codes, so compare it at equal recall (below).
//!
//! After the modes, each limited mode's p50 at the recall of each hot row is printed beside the
//! hot p50 as a ratio (the "p50 at the same recall"): a mode that re-scores gives the
//! hot answers, so its row at the same `ef`; a mode that does not is searched at more `ef`s, on
//! the same queries as hot, and interpolated linearly between the two whose recall brackets
//! the hot row's. A mode that never reaches that recall says so.
//!
//! Knobs: `BEYOND_RAM_MODES` (a comma-separated subset of the modes), `BEYOND_RAM_OVERSAMPLING`
//! (Qdrant's `quantization.oversampling`: candidates re-scored = k × it; default 2).
//!
//! Per mode and `ef` (`BEYOND_RAM_EF`, default `32,64,128`), one search thread, k = 10: p50
//! and p99 latency, QPS, recall@10, device bytes read and major faults per query
//! (`/proc/self/io`, `/proc/self/stat`), the cgroup's limit and usage, and how much of the
//! segment file and of its vectors section is in the page cache (`mincore`). The warm-up uses other queries (coordinates
//! reversed) and, in the modes that read vectors from disk, each `ef` its own slice of the
//! queries, so no query meets pages its own earlier search brought in (hot and the modes
//! reading no vector search every query at every `ef`).
//!
//! `cargo bench -p strata-benches --bench beyond_ram` (root, or a writable memory cgroup,
//! is needed for the limited modes; they are reported as skipped otherwise).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use strata_engine::*;

const CHILD: &str = "BEYOND_RAM_CHILD";
const DIR: &str = "BEYOND_RAM_DIR";
/// The memory limit the first limited mode calibrated, passed to the next ones.
const LIMIT: &str = "BEYOND_RAM_LIMIT";
const CGROUP_ROOT: &str = "/sys/fs/cgroup/memory";
const MODES: [&str; 8] = [
    "hot",
    "limited-auto",
    "limited-graphs-in-ram",
    "limited-approx",
    "limited-approx-graphs-in-ram",
    "limited-mapping",
    "limited-batched",
    "limited-f32",
];

struct Data {
    metric: Distance,
    /// Empty in the children (they only search; reading it would fill their page cache).
    base: Vec<Vec<f32>>,
    /// Bytes of the base's vectors (`rows × dim × 4`).
    vector_bytes: u64,
    queries: Vec<Vec<f32>>,
    truth: Vec<Vec<i32>>,
}

fn data(with_base: bool) -> Option<Data> {
    let dir = PathBuf::from(std::env::var("ANN_DATA").unwrap_or_else(|_| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/../target/ann/glove50").to_string()
    }));
    let metric = match std::fs::read_to_string(dir.join("metric")).ok()?.trim() {
        "cosine" => Distance::Cosine,
        "l2" => Distance::Euclid,
        _ => Distance::Dot,
    };
    let queries = strata_benches::read_fvecs(&dir.join("query.fvecs"));
    // .fvecs rows: a 4-byte dimension, then the values.
    let file = std::fs::metadata(dir.join("base.fvecs")).ok()?.len();
    let dim = queries.first()?.len() as u64;
    let vector_bytes = file / (4 + 4 * dim) * 4 * dim;
    Some(Data {
        metric,
        base: match with_base {
            true => strata_benches::read_fvecs(&dir.join("base.fvecs")),
            false => Vec::new(),
        },
        vector_bytes,
        queries,
        truth: strata_benches::read_ivecs(&dir.join("groundtruth.ivecs")),
    })
}

fn efs() -> Vec<usize> {
    std::env::var("BEYOND_RAM_EF")
        .unwrap_or_else(|_| "32,64,128".into())
        .split(',')
        .map(|x| x.trim().parse().expect("BEYOND_RAM_EF"))
        .collect()
}

/// Bytes this process caused to be read from the device so far.
fn read_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/io")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("read_bytes: ")?.trim().parse().ok())
        })
        .unwrap_or(0)
}

/// Major page faults of this process so far (field 12 of `/proc/self/stat`).
fn major_faults() -> u64 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            let after = s.rsplit_once(')')?.1;
            after.split_whitespace().nth(9)?.parse().ok()
        })
        .unwrap_or(0)
}

/// Drops every file under `dir` from the page cache (files nobody maps).
fn drop_cache(dir: &Path) {
    use std::os::fd::AsRawFd;
    for e in walk(dir) {
        if let Ok(f) = std::fs::File::open(&e) {
            // SAFETY: a valid descriptor; the advice has no memory-safety effect.
            unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
        }
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        match p.is_dir() {
            true => out.extend(walk(&p)),
            false => out.push(p),
        }
    }
    out
}

/// A memory cgroup (v1) this process has joined; removed on drop (after leaving it).
struct Cgroup(PathBuf);

impl Cgroup {
    fn join() -> Result<Cgroup, String> {
        let path = PathBuf::from(CGROUP_ROOT).join(format!("strata-bench-{}", std::process::id()));
        std::fs::create_dir(&path).map_err(|e| format!("creating {}: {e}", path.display()))?;
        let g = Cgroup(path);
        g.write("cgroup.procs", &std::process::id().to_string())?;
        Ok(g)
    }
    fn write(&self, file: &str, value: &str) -> Result<(), String> {
        std::fs::write(self.0.join(file), value)
            .map_err(|e| format!("writing {value} to {}/{file}: {e}", self.0.display()))
    }
    fn read(&self, file: &str) -> u64 {
        std::fs::read_to_string(self.0.join(file))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0)
    }
    fn stat(&self, key: &str) -> u64 {
        std::fs::read_to_string(self.0.join("memory.stat"))
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        let _ = std::fs::write(
            Path::new(CGROUP_ROOT).join("cgroup.procs"),
            std::process::id().to_string(),
        );
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// The byte range of the first vector space's vectors section in a segment file, from its
/// header and section table (`docs/format.md`; kind 0 is the vectors section).
fn vectors_section(m: &[u8]) -> Option<std::ops::Range<usize>> {
    let u32_at = |at: usize| Some(u32::from_le_bytes(m.get(at..at + 4)?.try_into().ok()?));
    let u64_at = |at: usize| Some(u64::from_le_bytes(m.get(at..at + 8)?.try_into().ok()?));
    let (spaces, sections) = (u32_at(56)? as usize, u32_at(60)? as usize);
    let (indexes, sparse) = (u32_at(68)?, u32_at(72)?);
    if indexes != 0 || sparse != 0 {
        return None; // the bench's collection has neither
    }
    let mut at = 128;
    for _ in 0..spaces {
        at += 32 + (*m.get(at + 3)? as usize).next_multiple_of(8);
    }
    (0..sections).find_map(|i| {
        let e = at + i * 24;
        (*m.get(e + 20)? == 0).then_some(())?;
        let (off, len) = (u64_at(e)? as usize, u64_at(e + 8)? as usize);
        Some(off..off + len)
    })
}

/// Of the segment files under `dir`: bytes in the page cache (`mincore` over a fresh
/// mapping), their size, and the bytes of their vectors sections in the page cache.
fn resident(dir: &Path) -> (u64, u64, u64) {
    let (mut cached, mut total, mut vectors) = (0u64, 0u64, 0u64);
    for p in walk(dir) {
        if p.extension().is_none_or(|e| e != "seg") {
            continue;
        }
        let Ok(f) = std::fs::File::open(&p) else {
            continue;
        };
        // SAFETY: a read-only mapping of a file nobody writes while it exists; only mincore
        // looks at it (and the header, read below, is what the engine reads too).
        let Ok(m) = (unsafe { memmap2::Mmap::map(&f) }) else {
            continue;
        };
        let pages = m.len().div_ceil(4096);
        let mut vec = vec![0u8; pages];
        // SAFETY: `vec` has one byte per page of the mapping, as mincore requires.
        let rc = unsafe { libc::mincore(m.as_ptr() as *mut _, m.len(), vec.as_mut_ptr()) };
        if rc == 0 {
            let count = |r: std::ops::Range<usize>| {
                vec[r.start / 4096..r.end.div_ceil(4096).min(pages)]
                    .iter()
                    .filter(|b| *b & 1 == 1)
                    .count() as u64
                    * 4096
            };
            cached += count(0..m.len());
            if let Some(r) = vectors_section(&m) {
                vectors += count(r);
            }
        }
        total += m.len() as u64;
    }
    (cached, total, vectors)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn child(mode: &str, dir: &Path) {
    let d = data(false).expect("data");
    let vector_bytes = d.vector_bytes;
    drop_cache(dir);
    let limited = mode.starts_with("limited");
    let cgroup = match limited {
        true => match Cgroup::join() {
            Ok(g) => Some(g),
            Err(e) => {
                println!("{mode},skipped: {e}");
                return;
            }
        },
        false => None,
    };
    let mut opts = EngineOptions::new(dir);
    opts.background = false;
    opts.rescore_reads = match mode {
        "limited-batched" => RescoreReads::Batched,
        "limited-mapping" | "limited-f32" => RescoreReads::Mapping,
        _ => RescoreReads::Auto,
    };
    opts.graphs_in_ram = mode.ends_with("graphs-in-ram");
    let engine = Engine::open(opts).expect("open");
    let coll = engine.collection(DEFAULT_TENANT, "b").expect("collection");
    let oversampling: Option<f64> = std::env::var("BEYOND_RAM_OVERSAMPLING")
        .ok()
        .map(|v| v.parse().expect("BEYOND_RAM_OVERSAMPLING"));
    let search = |q: &[f32], ef: usize| -> Vec<u64> {
        let mut r = SearchRequest::new(q.to_vec(), 10);
        r.ef = Some(ef);
        r.ignore_quantization = mode == "limited-f32";
        r.oversampling = oversampling;
        r.rescore = !mode.starts_with("limited-approx");
        coll.search(&r)
            .expect("search")
            .into_iter()
            .map(|h| match h.id {
                PointId::Num(n) => n,
                PointId::Uuid(_) => u64::MAX,
            })
            .collect()
    };
    // Warm-up with other queries (each one's coordinates reversed): codes made, the graph
    // and the vectors read; the measured queries then meet the cache as a new query would.
    let efs = efs();
    for q in &d.queries {
        let other: Vec<f32> = q.iter().rev().copied().collect();
        search(&other, efs[efs.len() - 1]);
    }
    let (mut limit, mut usage) = (0, 0);
    if let Some(g) = &cgroup {
        // The limit: the process's anonymous memory (codes included), the segment file but
        // its vectors and codes, a tenth of the vectors, and 4 MB for the program's own pages; then
        // corrected in steady state (a few hundred searches each time) until the page cache
        // holds a tenth of the vectors section, ± 2 % (`mincore`): the kernel, not the bench,
        // picks which pages stay.
        let before = g.read("memory.usage_in_bytes");
        let (_, file, _) = resident(dir);
        let tenth = vector_bytes / 10;
        // The codes section (segment format 5) was copied into anonymous memory (counted in
        // rss) at the first search; its file pages are not read again, so the floor leaves them
        // out as it leaves out the vectors.
        let dim = d.queries[0].len() as u64;
        let stride = match dim {
            ..=64 => dim.next_power_of_two(),
            _ => dim.next_multiple_of(64),
        };
        let codes = vector_bytes / (4 * dim) * stride;
        let floor = g.stat("rss") + file.saturating_sub(vector_bytes + codes);
        limit = floor + tenth + (4 << 20);
        // A limit calibrated by an earlier mode: every limited mode gets the same RAM.
        let given: Option<u64> = std::env::var(LIMIT).ok().and_then(|v| v.parse().ok());
        if let Some(l) = given {
            limit = l;
        }
        let other = |i: usize| -> Vec<f32> {
            let q = &d.queries[i % d.queries.len()];
            q.iter().rev().copied().collect()
        };
        let mut cached = 0;
        for round in 0..8 {
            if let Err(e) = g.write("memory.limit_in_bytes", &limit.to_string()) {
                println!("{mode},skipped: {e}");
                return;
            }
            for i in 0..300 {
                search(&other(round * 300 + i), efs[efs.len() - 1]);
            }
            cached = resident(dir).2;
            if given.is_some() || cached.abs_diff(tenth) <= vector_bytes / 50 || round == 7 {
                break;
            }
            // Never below the process's anonymous memory and the segment's other sections:
            // the vectors are what the limit squeezes.
            limit = (limit + tenth).saturating_sub(cached).max(floor);
        }
        usage = g.read("memory.usage_in_bytes");
        if given.is_none() {
            println!("#limit,{limit}");
        }
        eprintln!(
            "{mode}: usage {:.1} MB after warm-up; limit {:.1} MB (vectors {:.1} MB, of which {:.1} % cached); now {:.1} MB, of which page cache {:.1} MB, anonymous {:.1} MB",
            before as f64 / 1e6,
            limit as f64 / 1e6,
            vector_bytes as f64 / 1e6,
            cached as f64 * 100.0 / vector_bytes as f64,
            usage as f64 / 1e6,
            g.stat("cache") as f64 / 1e6,
            g.stat("rss") as f64 / 1e6
        );
    }
    // A mode that reads vectors from disk searches each `ef` with its own slice of the
    // queries: none is answered twice, so no answer is served from the pages its earlier
    // search brought in. The hot mode (all cached) and those reading no vector search every
    // query at every `ef`: their recall curves are compared at equal recall, so they must
    // come from the same queries (a slice's recall differs from another's by more than an
    // `ef` step does). Those reading no vector also go to higher `ef`s, to reach the recall
    // the re-score gives.
    let approx = mode.starts_with("limited-approx");
    let whole = mode == "hot" || approx;
    let efs = match approx {
        true => {
            let top = efs[efs.len() - 1];
            efs.iter().copied().chain([2 * top, 4 * top]).collect()
        }
        false => efs,
    };
    let slice = match mode {
        "limited-f32" => 100,
        _ if whole => d.queries.len(),
        _ => d.queries.len() / efs.len(),
    };
    for (i, ef) in efs.into_iter().enumerate() {
        let i = if whole { 0 } else { i };
        let queries = &d.queries[i * slice..(i + 1) * slice];
        let truth = &d.truth[i * slice..(i + 1) * slice];
        let (bytes0, faults0) = (read_bytes(), major_faults());
        let start = Instant::now();
        let mut lat = Vec::with_capacity(queries.len());
        let mut hit = 0usize;
        for (q, t) in queries.iter().zip(truth) {
            let t0 = Instant::now();
            let found = search(q, ef);
            lat.push(t0.elapsed());
            hit += found
                .iter()
                .filter(|r| t[..10].contains(&(**r as i32)))
                .count();
        }
        let took = start.elapsed();
        let n = queries.len() as f64;
        lat.sort();
        let (resident, file, vectors_cached) = resident(dir);
        println!(
            "{mode},{ef},{},{:.0},{:.0},{:.0},{:.4},{:.1},{:.2},{:.1},{:.1},{:.1},{:.1},{:.1}",
            queries.len(),
            percentile(&lat, 0.5).as_secs_f64() * 1e6,
            percentile(&lat, 0.99).as_secs_f64() * 1e6,
            n / took.as_secs_f64(),
            hit as f64 / (10.0 * n),
            (read_bytes() - bytes0) as f64 / n / 1024.0,
            (major_faults() - faults0) as f64 / n,
            limit as f64 / 1e6,
            cgroup
                .as_ref()
                .map_or(usage, |g| g.read("memory.usage_in_bytes")) as f64
                / 1e6,
            resident as f64 / 1e6,
            file as f64 / 1e6,
            vectors_cached as f64 * 100.0 / vector_bytes as f64,
        );
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    if let (Ok(mode), Ok(dir)) = (std::env::var(CHILD), std::env::var(DIR)) {
        child(&mode, Path::new(&dir));
        return;
    }
    let Some(d) = data(true) else {
        println!("beyond RAM: skipped (no data set: run benches/ann.sh once, or set ANN_DATA)");
        return;
    };
    let dim = d.base[0].len();
    println!(
        "machine: {}; {} × {dim} ({:?}), {} queries; vectors {:.1} MB",
        strata_benches::machine(),
        d.base.len(),
        d.metric,
        d.queries.len(),
        d.vector_bytes as f64 / 1e6
    );
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("tempdir");
    {
        let mut opts = EngineOptions::new(dir.path());
        opts.background = false;
        opts.wal_ack = AckMode::None;
        let engine = Engine::open(opts).expect("open");
        let coll = engine
            .create_collection(
                DEFAULT_TENANT,
                "b",
                CollectionConfig::single(VectorParams::new(dim as u32, d.metric)),
            )
            .expect("create");
        strata_benches::load(&coll, &d.base, |_| None);
        let t = Instant::now();
        coll.flush().expect("flush");
        coll.compact().expect("compact");
        eprintln!("indexed in {:.1} s", t.elapsed().as_secs_f64());
    }
    println!(
        "mode,ef,queries,p50_us,p99_us,qps,recall,device_kb_per_query,major_faults_per_query,limit_mb,usage_mb,segment_cached_mb,segment_mb,vectors_cached_pct"
    );
    let exe = std::env::current_exe().expect("exe");
    // (mode, ef, p50 µs, recall) of every row, for the comparison at equal recall.
    let mut rows: Vec<(String, usize, f64, f64)> = Vec::new();
    let modes = std::env::var("BEYOND_RAM_MODES").unwrap_or_else(|_| MODES.join(","));
    let mut limit: Option<String> = None;
    for mode in MODES
        .into_iter()
        .filter(|m| modes.split(',').any(|x| x == *m))
    {
        let mut cmd = std::process::Command::new(&exe);
        cmd.env(CHILD, mode).env(DIR, dir.path());
        if let Some(l) = &limit {
            cmd.env(LIMIT, l);
        }
        let child = cmd
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .expect("child");
        let cgroup = PathBuf::from(CGROUP_ROOT).join(format!("strata-bench-{}", child.id()));
        let out = child.wait_with_output().expect("child");
        // The child leaves its cgroup on exit; if it could not (killed), remove it here.
        let _ = std::fs::remove_dir(&cgroup);
        assert!(out.status.success(), "{mode}: {}", out.status);
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            match line.strip_prefix("#limit,") {
                Some(l) => limit = Some(l.to_string()),
                None => {
                    println!("{line}");
                    let f: Vec<&str> = line.split(',').collect();
                    if let (Some(ef), Some(p50), Some(recall)) = (
                        f.get(1).and_then(|x| x.parse().ok()),
                        f.get(3).and_then(|x| x.parse().ok()),
                        f.get(6).and_then(|x| x.parse().ok()),
                    ) {
                        rows.push((mode.to_string(), ef, p50, recall));
                    }
                }
            }
        }
    }
    print_equal_recall(&rows);
}

/// Each limited mode's p50 at the recall of each hot row, beside the hot p50: for the modes
/// that re-score (the same answers as hot at the same `ef`), its row at that `ef`; for those
/// that do not (`limited-approx*`, searched on the same queries as hot), linear between its
/// two rows whose recall brackets the hot row's.
fn print_equal_recall(rows: &[(String, usize, f64, f64)]) {
    let hot: Vec<_> = rows.iter().filter(|r| r.0 == "hot").collect();
    if hot.is_empty() {
        return;
    }
    println!("# p50 at the hot rows' recall");
    println!("mode,hot_ef,recall,hot_p50_us,p50_us_at_recall,ratio");
    let mut modes: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
    modes.dedup();
    for mode in modes.into_iter().filter(|m| *m != "hot") {
        let mut pts: Vec<(f64, f64)> = rows
            .iter()
            .filter(|r| r.0 == mode)
            .map(|r| (r.3, r.2))
            .collect();
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        for h in &hot {
            if !mode.starts_with("limited-approx") {
                if let Some(r) = rows.iter().find(|r| r.0 == mode && r.1 == h.1) {
                    println!(
                        "{mode},{},{:.4},{:.0},{:.0},{:.2}",
                        h.1,
                        h.3,
                        h.2,
                        r.2,
                        r.2 / h.2
                    );
                }
                continue;
            }
            let at = pts.windows(2).find_map(|w| {
                let ((r0, p0), (r1, p1)) = (w[0], w[1]);
                (r0 <= h.3 && h.3 <= r1).then(|| match r1 > r0 {
                    true => p0 + (p1 - p0) * (h.3 - r0) / (r1 - r0),
                    false => p0.min(p1),
                })
            });
            // One row at exactly that recall (no bracket of two).
            let at = at.or_else(|| pts.iter().find(|p| p.0 == h.3).map(|p| p.1));
            match at {
                Some(p) => println!("{mode},{},{:.4},{:.0},{p:.0},{:.2}", h.1, h.3, h.2, p / h.2),
                None => println!(
                    "{mode},{},{:.4},{:.0},recall {:.4}-{:.4} does not reach it,",
                    h.1,
                    h.3,
                    h.2,
                    pts.first().map_or(0.0, |p| p.0),
                    pts.last().map_or(0.0, |p| p.0)
                ),
            }
        }
    }
}
