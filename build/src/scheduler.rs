//! Scheduling a realisation: from the requested derivations down, every derivation whose wanted outputs are not
//! valid (and cannot be substituted) becomes a node of a graph whose edges are its input derivations that need
//! building too; derivations with valid outputs are not descended into. Ready nodes (inputs done) run on threads,
//! at most `max-jobs` at once. A failure fails every derivation depending on it; without `keep-going` the running
//! builds are killed and nothing new starts.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::mpsc;

use store::{Derivation, StorePath};

use crate::error::{BuildError, Failure, FailureKind, Result, exit_status};
use crate::local::{self, Job, Stop};
use crate::{BuildMode, Builder, DerivedPath, Event, Plan, Realised};

/// One derivation to build.
pub(crate) struct Node {
    drv_path: StorePath,
    drv: Derivation,
    wanted: BTreeSet<String>,
    check: bool,
    /// Nodes that must be built first.
    deps: BTreeSet<usize>,
}

/// The derivations of a realisation that need building.
pub(crate) struct Graph {
    nodes: Vec<Node>,
    index: HashMap<StorePath, usize>,
    drvs: HashMap<StorePath, Derivation>,
    pub plan: Plan,
}

/// Removes entries `<pid>-…` of `dir` whose process is gone (sandboxes and build directories of killed builders).
pub(crate) fn remove_stale(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = name.split('-').next().and_then(|p| p.parse::<i32>().ok()) else { continue };
        if pid != std::process::id() as i32 && !Path::new("/proc").join(pid.to_string()).exists() {
            tracing::debug!(path = ?e.path(), "removing what a killed builder left");
            let _ = store::fsutil::remove_tree(&e.path());
        }
    }
}

impl Graph {
    /// Finds what needs building (`dry`: asks the substituter only whether it has paths, fetches nothing).
    pub fn plan(b: &Builder<'_>, targets: &[DerivedPath], mode: BuildMode, dry: bool) -> Result<Graph> {
        let mut g =
            Graph { nodes: Vec::new(), index: HashMap::new(), drvs: HashMap::new(), plan: Plan::default() };
        let mut order = Vec::new();
        for t in targets {
            g.visit(b, &t.drv, t.outputs.as_ref(), mode == BuildMode::Check, dry, &mut order)?;
        }
        g.plan.build = order.iter().map(|&i| g.nodes[i].drv_path.clone()).collect();
        Ok(g)
    }

    fn derivation(&mut self, b: &Builder<'_>, drv_path: &StorePath, dry: bool) -> Result<Derivation> {
        if let Some(d) = self.drvs.get(drv_path) {
            return Ok(d.clone());
        }
        // Kept from the collector while this realisation needs it.
        b.store.add_temp_root(drv_path)?;
        if !b.store.is_valid(drv_path)? && !self.substitute(b, drv_path, dry)? {
            return Err(BuildError::MissingDerivation(drv_path.to_string()));
        }
        let drv = b.store.read_derivation(drv_path)?;
        if !dry && b.store.derivation_outputs(drv_path)?.is_empty() {
            // Registered before fhskit recorded outputs (or by an older tool): record them now, for the collector.
            let outs: Vec<(String, StorePath)> =
                drv.output_paths().map(|(n, p)| (n.to_owned(), p.clone())).collect();
            if !outs.is_empty() {
                b.store.register_derivation_outputs(drv_path, &outs)?;
            }
        }
        self.drvs.insert(drv_path.clone(), drv.clone());
        Ok(drv)
    }

    /// Asks the substituter for `path`; with `dry`, only whether it has it.
    fn substitute(&mut self, b: &Builder<'_>, path: &StorePath, dry: bool) -> Result<bool> {
        let Some(sub) = b.substituter.filter(|_| b.settings.substitute) else { return Ok(false) };
        if dry {
            let has = sub.has(path);
            if has {
                self.plan.substitute.push(path.clone());
            }
            return Ok(has);
        }
        match sub.substitute(b.store, path) {
            Ok(true) if b.store.is_valid(path)? => {
                b.observer.event(&Event::Substituted { path });
                self.plan.substitute.push(path.clone());
                Ok(true)
            }
            Ok(_) => Ok(false),
            Err(e) => {
                b.observer.event(&Event::Note(&format!("warning: substituting '{path}' failed: {e}")));
                Ok(false)
            }
        }
    }

    /// Returns the node of `drv_path` when it needs building.
    fn visit(
        &mut self,
        b: &Builder<'_>,
        drv_path: &StorePath,
        wanted: Option<&BTreeSet<String>>,
        check: bool,
        dry: bool,
        order: &mut Vec<usize>,
    ) -> Result<Option<usize>> {
        if let Some(&i) = self.index.get(drv_path) {
            let node = &mut self.nodes[i];
            match wanted {
                Some(w) if !node.wanted.is_empty() => node.wanted.extend(w.iter().cloned()),
                _ => node.wanted.clear(),
            }
            node.check |= check;
            return Ok(Some(i));
        }
        let drv = self.derivation(b, drv_path, dry)?;
        let names: Vec<&String> = match wanted {
            Some(w) => w.iter().collect(),
            None => drv.outputs.keys().collect(),
        };
        let mut missing = Vec::new();
        for n in &names {
            let out = drv.outputs.get(*n).ok_or_else(|| {
                BuildError::Unsupported(format!(
                    "derivation '{drv_path}' does not have an output named '{n}'"
                ))
            })?;
            let path = out.path.clone().ok_or_else(|| {
                BuildError::Unsupported(format!(
                    "output '{n}' of '{drv_path}' has no known path (content-addressed derivations are not supported)"
                ))
            })?;
            if !b.store.is_valid(&path)? {
                missing.push(path);
            }
        }
        if check {
            if !missing.is_empty() {
                return Err(BuildError::Unsupported(format!(
                    "some outputs of '{drv_path}' are not valid, so checking is not possible"
                )));
            }
        } else if missing.is_empty() {
            return Ok(None);
        } else if crate::env::bool_attr(
            &drv,
            crate::env::structured_attrs(drv_path, &drv)?.as_ref(),
            "allowSubstitutes",
            true,
        ) {
            let mut all = true;
            for p in &missing {
                all &= self.substitute(b, p, dry)?;
            }
            if all {
                return Ok(None);
            }
        }
        let i = self.nodes.len();
        self.index.insert(drv_path.clone(), i);
        self.nodes.push(Node {
            drv_path: drv_path.clone(),
            drv: drv.clone(),
            wanted: wanted.cloned().unwrap_or_default(),
            check,
            deps: BTreeSet::new(),
        });
        for (input, outs) in &drv.input_drvs {
            if let Some(j) = self.visit(b, input, Some(outs), false, dry, order)? {
                self.nodes[i].deps.insert(j);
            }
        }
        for src in &drv.input_srcs {
            if !b.store.is_valid(src)? && !self.substitute(b, src, dry)? {
                return Err(BuildError::MissingPath(format!("{src}' (a dependency of '{drv_path}")));
            }
        }
        order.push(i);
        Ok(Some(i))
    }

    /// The closure of a node's inputs (all of them valid by now).
    fn input_closure(&self, b: &Builder<'_>, node: &Node) -> Result<BTreeSet<StorePath>> {
        let mut roots: Vec<StorePath> = node.drv.input_srcs.iter().cloned().collect();
        for (input, outs) in &node.drv.input_drvs {
            let drv = match self.drvs.get(input) {
                Some(d) => d.clone(),
                None => b.store.read_derivation(input)?,
            };
            for o in outs {
                if let Some(p) = drv.outputs.get(o).and_then(|x| x.path.clone()) {
                    roots.push(p);
                } else {
                    return Err(BuildError::Unsupported(format!(
                        "derivation '{}' uses output '{o}' of '{input}', which it does not have",
                        node.drv_path
                    )));
                }
            }
        }
        Ok(b.store.closure(&roots)?.into_iter().collect())
    }
}

fn can_build_here(b: &Builder<'_>, node: &Node) -> std::result::Result<(), String> {
    let drv = &node.drv;
    let builtin = drv.builder.starts_with("builtin:");
    let structured = crate::env::structured_attrs(&node.drv_path, drv).map_err(|e| e.to_string())?;
    let features: BTreeSet<String> =
        crate::env::strings_attr(drv, structured.as_ref(), "requiredSystemFeatures")
            .unwrap_or_default()
            .into_iter()
            .collect();
    let platform_ok =
        builtin || drv.platform == b.settings.system || b.settings.extra_platforms.contains(&drv.platform);
    let features_ok = features.is_subset(&b.settings.system_features);
    if platform_ok && features_ok {
        if b.settings.max_jobs == 0 && !builtin {
            return Err(
                "unable to start any build; either increase '--max-jobs' or enable remote builds".into()
            );
        }
        return Ok(());
    }
    let join = |s: &BTreeSet<String>| s.iter().cloned().collect::<Vec<_>>().join(", ");
    Err(format!(
        "a '{}' with features {{{}}} is required to build '{}', but I am a '{}' with features {{{}}}",
        drv.platform,
        join(&features),
        node.drv_path,
        b.settings.system,
        join(&b.settings.system_features)
    ))
}

/// Builds what `targets` need (see the module documentation).
pub(crate) fn realise(b: &Builder<'_>, targets: &[DerivedPath], mode: BuildMode) -> Result<Realised> {
    let graph = Graph::plan(b, targets, mode, false)?;
    if !graph.plan.build.is_empty() || !graph.plan.substitute.is_empty() {
        b.observer.event(&Event::Planned(&graph.plan));
    }
    let n = graph.nodes.len();
    let mut p = Progress {
        dependents: vec![Vec::new(); n],
        pending: vec![0; n],
        failed_inputs: vec![0; n],
        failed: vec![false; n],
        ready: VecDeque::new(),
        failures: Vec::new(),
    };
    for (i, node) in graph.nodes.iter().enumerate() {
        p.pending[i] = node.deps.len();
        for &d in &node.deps {
            p.dependents[d].push(i);
        }
    }
    // Dependencies first, in the order they were found.
    p.ready = graph.plan.build.iter().map(|path| graph.index[path]).filter(|&i| p.pending[i] == 0).collect();
    let cancel = AtomicBool::new(false);
    let slots = b.settings.max_jobs.max(1);
    let mut stopping = false;
    type Done = (usize, std::result::Result<BTreeMap<String, StorePath>, Stop>);
    let (job_tx, job_rx) = mpsc::channel::<(usize, BTreeSet<StorePath>)>();
    let job_rx = std::sync::Mutex::new(job_rx);
    let mut job_tx = Some(job_tx);
    std::thread::scope(|scope| -> Result<()> {
        // Dropped when this closure returns, however it returns: the workers then stop.
        let job_tx = job_tx.take().expect("taken once");
        let (result_tx, result_rx) = mpsc::channel::<Done>();
        // Sandboxes are torn down here, one after the other, while the builds go on (see `local::Teardown`).
        let (cleanup_tx, cleanup_rx) = mpsc::channel::<local::Teardown>();
        std::thread::Builder::new()
            .name("sandbox cleanup".into())
            .stack_size(64 * 1024)
            .spawn_scoped(scope, move || cleanup_rx.into_iter().for_each(drop))
            .map_err(|e| BuildError::Io {
                action: "start a clean-up thread in",
                path: ".".into(),
                source: e,
            })?;
        // A fixed pool: a builder's parent-death signal belongs to the thread that started it, and threads that
        // come and go would each leave an allocator heap behind.
        for w in 0..slots.min(n) {
            let (result_tx, job_rx, cancel, graph) = (result_tx.clone(), &job_rx, &cancel, &graph);
            let cleanup_tx = cleanup_tx.clone();
            std::thread::Builder::new()
                .name(format!("builder {w}"))
                .spawn_scoped(scope, move || {
                    loop {
                        let next = job_rx.lock().unwrap_or_else(|e| e.into_inner()).recv();
                        let Ok((i, closure)) = next else { break };
                        let node = &graph.nodes[i];
                        let job = Job {
                            drv_path: &node.drv_path,
                            drv: &node.drv,
                            input_closure: &closure,
                            check: node.check,
                            wanted: &node.wanted,
                            cancel,
                            cleanup: Some(&cleanup_tx),
                        };
                        // A panic (a bug, or an observer that cannot print) fails this build instead of leaving
                        // the scheduler waiting for it forever.
                        let result =
                            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| local::build(b, &job)))
                                .unwrap_or_else(|panic| {
                                    let why = panic
                                        .downcast_ref::<&str>()
                                        .map(|s| s.to_string())
                                        .or_else(|| panic.downcast_ref::<String>().cloned())
                                        .unwrap_or_default();
                                    Err(Stop::Failed(Failure {
                                        drv: node.drv_path.clone(),
                                        kind: FailureKind::Other,
                                        message: format!("the build of '{}' panicked: {why}", node.drv_path),
                                    }))
                                });
                        if result_tx.send((i, result)).is_err() {
                            break;
                        }
                    }
                })
                .map_err(|e| BuildError::Io {
                    action: "start a build thread in",
                    path: ".".into(),
                    source: e,
                })?;
        }
        drop(result_tx);
        drop(cleanup_tx);
        let mut running = 0usize;
        loop {
            while running < slots && !stopping {
                let Some(i) = p.ready.pop_front() else { break };
                let node = &graph.nodes[i];
                if let Err(msg) = can_build_here(b, node) {
                    let f = Failure { drv: node.drv_path.clone(), kind: FailureKind::Other, message: msg };
                    p.fail(b, &graph, i, f);
                    if !b.settings.keep_going {
                        stopping = true;
                        cancel.store(true, std::sync::atomic::Ordering::Relaxed);
                    }
                    continue;
                }
                let closure = graph.input_closure(b, node)?;
                if job_tx.send((i, closure)).is_err() {
                    break;
                }
                running += 1;
            }
            if running == 0 {
                break;
            }
            let Ok((i, result)) = result_rx.recv() else { break };
            running -= 1;
            match result {
                Ok(_) => {
                    b.observer.event(&Event::Built { drv: &graph.nodes[i].drv_path });
                    p.succeeded(b, &graph, i);
                }
                Err(Stop::Failed(f)) => {
                    p.fail(b, &graph, i, f);
                    if !b.settings.keep_going && !stopping {
                        stopping = true;
                        cancel.store(true, std::sync::atomic::Ordering::Relaxed);
                    }
                }
                Err(Stop::Cancelled) => {}
            }
        }
        Ok(())
    })?;
    if !p.failures.is_empty() {
        let status = exit_status(&p.failures);
        return Err(BuildError::Failed { failures: p.failures, status });
    }
    let mut out = Realised::new();
    for t in targets {
        let drv = match graph.drvs.get(&t.drv) {
            Some(d) => d.clone(),
            None => b.store.read_derivation(&t.drv)?,
        };
        let outs = drv
            .output_paths()
            .filter(|(n, _)| t.outputs.as_ref().is_none_or(|w| w.contains(*n)))
            .map(|(n, p)| (n.to_owned(), p.clone()))
            .collect();
        out.insert(t.drv.clone(), outs);
    }
    Ok(out)
}

/// Bookkeeping of which nodes wait for which.
struct Progress {
    dependents: Vec<Vec<usize>>,
    /// Inputs not finished yet.
    pending: Vec<usize>,
    /// Inputs that failed.
    failed_inputs: Vec<usize>,
    /// The node's failure has been recorded.
    failed: Vec<bool>,
    ready: VecDeque<usize>,
    failures: Vec<Failure>,
}

impl Progress {
    /// Node `i` succeeded: its dependents whose inputs are all done become ready.
    fn succeeded(&mut self, b: &Builder<'_>, graph: &Graph, i: usize) {
        for d in self.dependents[i].clone() {
            self.pending[d] -= 1;
            self.settle(b, graph, d);
        }
    }

    /// Node `i` failed with `f`; so does everything depending on it (at once without `keep-going`, as Nix does,
    /// else when its last input is done).
    fn fail(&mut self, b: &Builder<'_>, graph: &Graph, i: usize, f: Failure) {
        b.observer.event(&Event::Failed(&f));
        self.failures.push(f);
        self.failed[i] = true;
        for d in self.dependents[i].clone() {
            self.pending[d] -= 1;
            self.failed_inputs[d] += 1;
            self.settle(b, graph, d);
        }
    }

    fn settle(&mut self, b: &Builder<'_>, graph: &Graph, d: usize) {
        if self.failed[d] {
            return;
        }
        if self.failed_inputs[d] > 0 && (self.pending[d] == 0 || !b.settings.keep_going) {
            let drv = &graph.nodes[d].drv_path;
            let f = Failure {
                drv: drv.clone(),
                kind: FailureKind::DependencyFailed,
                message: format!(
                    "{} dependencies of derivation '{drv}' failed to build",
                    self.failed_inputs[d]
                ),
            };
            self.fail(b, graph, d, f);
        } else if self.pending[d] == 0 && self.failed_inputs[d] == 0 {
            self.ready.push_back(d);
        }
    }
}
