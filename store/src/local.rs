//! The local store: opens the layout of [`StoreConfig`], adds paths (trees, text, fixed-output files, NARs with
//! metadata), and answers queries. Every add hashes and canonicalises a copy in a temporary directory inside the
//! store, renames it into place and only then registers it, all under the shared writer lock and with a temporary
//! root; a crash at any point leaves no registered path incomplete.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use crate::config::StoreConfig;
use crate::db::{Db, PathInfo};
use crate::derivation::Derivation;
use crate::error::{Result, StoreError, io_err};
use crate::fsutil;
use crate::hash::{Hash, HashAlgo, Hasher};
use crate::nar::{self, HashingReader, RestoreOptions, SymlinkConfinement};
use crate::roots::{self, LockGuard, TempRoots};
use crate::store_path::{ContentAddress, FileIngestion, StoreDir, StorePath, validate_name};

/// Where Nix keeps its database; its presence means Nix manages `/nix/store`, unless fhskit made it.
const NIX_DB: &str = "/nix/var/nix/db/db.sqlite";

/// The file beside a database at Nix's place that says fhskit made it.
const OWN_DB_MARK: &str = "fhskit-store";

/// An open local store. Cheap to share between threads (`&Store` is `Sync`); writers in other processes are
/// serialised through the database and `gc.lock`.
#[derive(Debug)]
pub struct Store {
    config: StoreConfig,
    store: PathBuf,
    state: PathBuf,
    db: Mutex<Db>,
    temp_roots: Mutex<Option<TempRoots>>,
    /// Whether this handle's first write removed the temporary entries that killed processes left.
    swept: std::sync::atomic::AtomicBool,
}

/// A directory inside the store directory from [`Store::scratch_dir`]; removed when dropped.
#[derive(Debug)]
pub struct ScratchDir {
    path: PathBuf,
}

impl ScratchDir {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = fsutil::remove_tree(&self.path);
    }
}

/// A tree moved into the store directory, canonicalised and hashed by [`Store::prepare_tree`], waiting for
/// [`Store::add_prepared`] (or [`Store::add_prepared_all`]); whatever was not installed is removed when it is
/// dropped.
#[derive(Debug)]
pub struct PreparedTree {
    /// The tree itself, named like the store's temporary entries (`.tmp-<pid>-…`, which a collection removes once
    /// the process is gone) until it is renamed to its store path.
    path: PathBuf,
    nar_hash: Hash,
    nar_size: u64,
}

impl PreparedTree {
    /// Where the tree is now.
    pub fn path(&self) -> PathBuf {
        self.path.clone()
    }
}

impl Drop for PreparedTree {
    fn drop(&mut self) {
        // Installed trees were renamed away: this finds nothing.
        let _ = fsutil::remove_tree(&self.path);
    }
}

/// A derivation and its outputs (name, path), for the `DerivationOutputs` table.
type DrvOutputs = (StorePath, Vec<(String, StorePath)>);

/// A finished build output for [`Store::add_built`]: where its tree is now and what to register.
#[derive(Debug, Clone)]
pub struct BuiltOutput {
    /// The canonicalised tree: in a scratch directory of the store, or already at its store path.
    pub staged: PathBuf,
    pub info: PathInfo,
}

/// Metadata that comes with a NAR (from an export, a binary cache or the user).
#[derive(Debug, Clone)]
pub struct NarMetadata {
    pub path: StorePath,
    /// Checked against the NAR as it is read, when given.
    pub nar_hash: Option<Hash>,
    pub references: BTreeSet<StorePath>,
    pub deriver: Option<StorePath>,
    pub ca: Option<ContentAddress>,
    pub sigs: Vec<String>,
}

/// Seconds since the epoch, as the `registrationTime` column holds them.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl Store {
    /// Opens (creating if needed) the store described by `config`. Refuses `/nix/store` when Nix's database exists.
    pub fn open(config: StoreConfig) -> Result<Store> {
        let store = config.physical_store_dir();
        let state = config.physical_state_dir();
        let nix_db = Path::new(NIX_DB);
        let is_nix_store =
            fs::canonicalize(&store).unwrap_or_else(|_| store.clone()) == Path::new("/nix/store");
        // A database at Nix's place is ours only if we made it (`local?root=/` on a machine without Nix).
        let ours = state.join("db").join(OWN_DB_MARK);
        if is_nix_store && nix_db.exists() && !ours.exists() {
            return Err(StoreError::ManagedByNix { store, db: nix_db.to_owned() });
        }
        for dir in [
            store.clone(),
            state.join("db"),
            state.join("gcroots/auto"),
            state.join("profiles"),
            state.join("temproots"),
        ] {
            fs::create_dir_all(&dir).map_err(io_err("create directory", &dir))?;
        }
        let db = Db::open(&state.join("db"), config.store_dir.clone())?;
        if is_nix_store && !ours.exists() {
            fsutil::write_atomic(&ours, b"this database belongs to fhskit, not to Nix\n")?;
        }
        Ok(Store {
            config,
            store,
            state,
            db: Mutex::new(db),
            temp_roots: Mutex::new(None),
            swept: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// Opens the store named by `FHSKIT_STORE`, or the default one.
    pub fn open_default() -> Result<Store> {
        Store::open(StoreConfig::from_env()?)
    }

    pub fn config(&self) -> &StoreConfig {
        &self.config
    }

    pub fn store_dir(&self) -> &StoreDir {
        &self.config.store_dir
    }

    /// The physical state directory (database, roots, profiles).
    pub fn state_dir(&self) -> &Path {
        &self.state
    }

    /// Where a store path's files are on disk (differs from `to_absolute()` with a root prefix).
    pub fn physical_path(&self, path: &StorePath) -> PathBuf {
        self.store.join(path.base_name())
    }

    /// The physical store directory.
    pub fn physical_store_dir(&self) -> &Path {
        &self.store
    }

    pub(crate) fn db(&self) -> MutexGuard<'_, Db> {
        self.db.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes the shared writer lock. The first time a handle writes, it removes what killed writers left in the
    /// store directory (a killed add of a large tree leaves its whole temporary copy behind).
    pub(crate) fn lock_writers(&self) -> Result<LockGuard> {
        let guard = roots::lock(&self.state.join("gc.lock"), false)?;
        if !self.swept.swap(true, std::sync::atomic::Ordering::Relaxed)
            && let Err(e) = self.remove_stale_temporaries()
        {
            tracing::warn!("cannot remove the temporary entries of killed processes: {e}");
        }
        Ok(guard)
    }

    pub(crate) fn lock_collector(&self) -> Result<LockGuard> {
        roots::lock(&self.state.join("gc.lock"), true)
    }

    /// Keeps `path` alive until this store handle is dropped.
    pub fn add_temp_root(&self, path: &StorePath) -> Result<()> {
        let mut guard = self.temp_roots.lock().unwrap_or_else(|p| p.into_inner());
        if guard.is_none() {
            *guard = Some(TempRoots::create(&self.state.join("temproots"))?);
        }
        guard.as_mut().map(|t| t.add(&path.to_string())).unwrap_or(Ok(()))
    }

    /// Parses an absolute path (or a path inside a store object) of this store.
    pub fn parse_path(&self, text: &str) -> Result<StorePath> {
        Ok(self.store_dir().parse_path_prefix(text)?.0)
    }

    /// Parses a path as the user wrote it: absolute logical, physical (under the root prefix), a path inside a store
    /// object, or a chain of symlinks ending in one (a profile: `~/…/profiles/default -> default-3-link -> …`, relative
    /// hops resolved from the link's directory), as `nix-store -qR ~/.nix-profile` accepts.
    pub fn resolve_user_path(&self, text: &str) -> Result<StorePath> {
        /// As many hops as the kernel follows before ELOOP.
        const MAX_HOPS: usize = 40;
        let not_in_store =
            || StoreError::Invalid(format!("'{text}' is not a path in the store {}", self.store_dir()));
        let mut current = std::path::absolute(text).map_err(io_err("resolve", Path::new(text)))?;
        for _ in 0..=MAX_HOPS {
            if let Some(p) = self.store_path_in(&current.to_string_lossy()) {
                return Ok(p);
            }
            // The first symlink along the path (everything before it is a real directory, so `..` is lexical).
            let mut prefix = PathBuf::from("/");
            let mut components = current.components().skip(1);
            let mut next = None;
            while let Some(c) = components.next() {
                match c {
                    std::path::Component::ParentDir => {
                        prefix.pop();
                        continue;
                    }
                    std::path::Component::CurDir => continue,
                    c => prefix.push(c),
                }
                if let Ok(target) = fs::read_link(&prefix) {
                    let dir = prefix.parent().unwrap_or(Path::new("/"));
                    let mut resolved = dir.join(target);
                    resolved.extend(components);
                    next = Some(resolved);
                    break;
                }
            }
            match next {
                Some(n) => current = n,
                None => return Err(not_in_store()),
            }
        }
        Err(StoreError::Invalid(format!("'{text}': too many levels of symbolic links")))
    }

    pub fn is_valid(&self, path: &StorePath) -> Result<bool> {
        self.db().is_valid(path)
    }

    /// Everything the store records about `path`, or `None` if it is not valid.
    pub fn path_info(&self, path: &StorePath) -> Result<Option<PathInfo>> {
        self.db().query_info(path)
    }

    /// Checks that `paths` are valid and keeps them alive for this handle (call with the writer lock held).
    fn require_valid(&self, paths: &BTreeSet<StorePath>, except: Option<&StorePath>) -> Result<()> {
        for p in paths {
            if Some(p) != except {
                if !self.is_valid(p)? {
                    return Err(StoreError::NotValid(p.to_string()));
                }
                self.add_temp_root(p)?;
            }
        }
        Ok(())
    }

    /// Adds the tree at `src` (file, directory or symlink) as a `source` path named `name`, recording exactly
    /// `references` (each must be valid; use [`Store::scan_references`] to find which a tree uses). Returns the
    /// existing path if it is already valid. This is how packages and patched programs enter the store.
    pub fn add_tree(&self, name: &str, src: &Path, references: &[StorePath]) -> Result<StorePath> {
        validate_name(name)?;
        let refs: BTreeSet<StorePath> = references.iter().cloned().collect();
        self.add_copy(name, src, FileIngestion::Recursive, HashAlgo::Sha256, refs)
    }

    /// A directory inside the store directory (so on its file system) for building trees that
    /// [`Store::prepare_tree`] then moves in without copying. Named like the store's own temporary entries, so a
    /// collection leaves it alone while this process lives and removes it after a crash; removed with everything
    /// left in it when the returned value is dropped.
    pub fn scratch_dir(&self) -> Result<ScratchDir> {
        let path = self.store.join(fsutil::unique_name(".tmp"));
        fs::create_dir(&path).map_err(io_err("create directory", &path))?;
        Ok(ScratchDir { path })
    }

    /// The slow half of [`Store::add_tree`], which needs no reference, so that many trees can be prepared on
    /// several threads while their dependencies are still being added: takes the tree at `src` (renamed into a
    /// temporary directory of the store when it is on the store's file system, as in a [`Store::scratch_dir`],
    /// else copied and removed), canonicalises it and computes its NAR hash. [`Store::add_prepared`] then
    /// registers it; dropped instead, it is removed.
    pub fn prepare_tree(&self, src: &Path) -> Result<PreparedTree> {
        // The tree becomes the temporary entry itself (no directory around it, which would cost a mkdir and an
        // rmdir per tree).
        let staged = self.store.join(fsutil::unique_name(".tmp"));
        let hashed = (|| {
            match fsutil::rename(src, &staged) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::CrossesDevices => {
                    fsutil::copy_tree(src, &staged)?;
                    fsutil::remove_tree(src)?;
                }
                Err(e) => return Err(io_err("move into the store", src)(e)),
            }
            fsutil::canonicalise(&staged)?;
            Ok(nar::hash_path(&staged, HashAlgo::Sha256)?)
        })();
        match hashed {
            Ok((nar_hash, nar_size)) => Ok(PreparedTree { path: staged, nar_hash, nar_size }),
            Err(e) => {
                let _ = fsutil::remove_tree(&staged);
                Err(e)
            }
        }
    }

    /// The path [`Store::add_prepared`] gives `tree` named `name` with `references`, without adding it.
    pub fn prepared_path(
        &self,
        name: &str,
        tree: &PreparedTree,
        references: &[StorePath],
    ) -> Result<StorePath> {
        validate_name(name)?;
        let ca = ContentAddress::Fixed(FileIngestion::Recursive, tree.nar_hash.clone());
        let refs: BTreeSet<StorePath> = references.iter().cloned().collect();
        let refs_vec: Vec<StorePath> = refs.into_iter().collect();
        Ok(self.store_dir().make_ca_path(name, &ca, &refs_vec, false)?)
    }

    /// Registers prepared trees together, under one writer lock and in one transaction (all become valid or none
    /// does): each `(name, tree, references)` gets the path [`Store::prepared_path`] gives it. A tree's references
    /// must be valid or among the batch, so a batch can hold a package and its dependencies. Trees whose path is
    /// valid already keep the existing files. Returns the paths in the order given.
    pub fn add_prepared_all(
        &self,
        trees: Vec<(String, PreparedTree, Vec<StorePath>)>,
    ) -> Result<Vec<StorePath>> {
        let _lock = self.lock_writers()?;
        let mut staged = Vec::with_capacity(trees.len());
        let mut paths = Vec::with_capacity(trees.len());
        let mut held = Vec::with_capacity(trees.len());
        let time = now();
        for (name, tree, references) in trees {
            let path = self.prepared_path(&name, &tree, &references)?;
            let info = PathInfo {
                path: path.clone(),
                nar_hash: tree.nar_hash.clone(),
                nar_size: tree.nar_size,
                references: references.into_iter().collect(),
                deriver: None,
                registration_time: time,
                ultimate: false,
                sigs: Vec::new(),
                ca: Some(ContentAddress::Fixed(FileIngestion::Recursive, tree.nar_hash.clone())),
            };
            staged.push((tree.path(), info));
            paths.push(path);
            held.push(tree);
        }
        self.install_all(staged)?;
        Ok(paths)
    }

    /// Registers a prepared tree as a `source` path named `name` recording exactly `references` (each must be
    /// valid): the path [`Store::add_tree`] gives for the same tree. Returns the existing path if it is already
    /// valid.
    pub fn add_prepared(
        &self,
        name: &str,
        tree: PreparedTree,
        references: &[StorePath],
    ) -> Result<StorePath> {
        validate_name(name)?;
        let nar_hash = tree.nar_hash.clone();
        let refs: BTreeSet<StorePath> = references.iter().cloned().collect();
        let _lock = self.lock_writers()?;
        self.require_valid(&refs, None)?;
        let ca = ContentAddress::Fixed(FileIngestion::Recursive, nar_hash.clone());
        let refs_vec: Vec<StorePath> = refs.iter().cloned().collect();
        let path = self.store_dir().make_ca_path(name, &ca, &refs_vec, false)?;
        let info = PathInfo {
            path: path.clone(),
            nar_hash,
            nar_size: tree.nar_size,
            references: refs,
            deriver: None,
            registration_time: now(),
            ultimate: false,
            sigs: Vec::new(),
            ca: Some(ca),
        };
        self.install(&tree.path(), info)?;
        Ok(path)
    }

    /// Adds `src` as a fixed-output path: `Flat` hashes the file's contents, `Recursive` its NAR, with `algo`
    /// (`nix-store --add-fixed [--recursive] algo`). With recursive sha256 this equals [`Store::add_tree`].
    pub fn add_fixed(
        &self,
        name: &str,
        src: &Path,
        method: FileIngestion,
        algo: HashAlgo,
    ) -> Result<StorePath> {
        validate_name(name)?;
        if method == FileIngestion::Flat {
            let meta = fs::symlink_metadata(src).map_err(io_err("read metadata of", src))?;
            if !meta.is_file() {
                return Err(StoreError::Invalid(format!(
                    "cannot add {} flat: it is not a regular file",
                    src.display()
                )));
            }
        }
        self.add_copy(name, src, method, algo, BTreeSet::new())
    }

    fn add_copy(
        &self,
        name: &str,
        src: &Path,
        method: FileIngestion,
        algo: HashAlgo,
        refs: BTreeSet<StorePath>,
    ) -> Result<StorePath> {
        let _lock = self.lock_writers()?;
        // Checked under the lock, and kept alive: a collection cannot remove a reference before registration.
        self.require_valid(&refs, None)?;
        let tmp = self.store.join(fsutil::unique_name(".tmp"));
        fs::create_dir(&tmp).map_err(io_err("create directory", &tmp))?;
        let result = (|| {
            let staged = tmp.join("x");
            fsutil::copy_tree(src, &staged)?;
            let (nar_hash, nar_size) = nar::hash_path(&staged, HashAlgo::Sha256)?;
            let ca_hash = match (method, algo) {
                (FileIngestion::Recursive, HashAlgo::Sha256) => nar_hash.clone(),
                (FileIngestion::Recursive, _) => nar::hash_path(&staged, algo)?.0,
                (FileIngestion::Flat, _) => hash_file(&staged, algo)?,
            };
            let ca = ContentAddress::Fixed(method, ca_hash);
            let refs_vec: Vec<StorePath> = refs.iter().cloned().collect();
            let path = self.store_dir().make_ca_path(name, &ca, &refs_vec, false)?;
            let info = PathInfo {
                path: path.clone(),
                nar_hash,
                nar_size,
                references: refs,
                deriver: None,
                registration_time: now(),
                ultimate: false,
                sigs: Vec::new(),
                ca: Some(ca),
            };
            self.install(&staged, info)?;
            Ok(path)
        })();
        let _ = fsutil::remove_tree(&tmp);
        result
    }

    /// Adds `contents` as a text file (`builtins.toFile`, `.drv` files) referring to `references`.
    pub fn add_text(&self, name: &str, contents: &[u8], references: &[StorePath]) -> Result<StorePath> {
        validate_name(name)?;
        let refs: BTreeSet<StorePath> = references.iter().cloned().collect();
        let hash = Hash::digest(HashAlgo::Sha256, contents);
        let refs_vec: Vec<StorePath> = refs.iter().cloned().collect();
        let path = self.store_dir().make_text_path(name, &hash, &refs_vec)?;
        let _lock = self.lock_writers()?;
        self.require_valid(&refs, None)?;
        self.add_temp_root(&path)?;
        if self.is_valid(&path)? {
            return Ok(path);
        }
        let mut hasher = Hasher::new(HashAlgo::Sha256);
        let nar_size = nar::dump_bytes(contents, false, &mut hasher)?;
        let tmp = self.store.join(fsutil::unique_name(".tmp"));
        let result = (|| {
            fs::write(&tmp, contents).map_err(io_err("write", &tmp))?;
            fsutil::canonicalise(&tmp)?;
            self.install(
                &tmp,
                PathInfo {
                    path: path.clone(),
                    nar_hash: hasher.finish(),
                    nar_size,
                    references: refs,
                    deriver: None,
                    registration_time: now(),
                    ultimate: false,
                    sigs: Vec::new(),
                    ca: Some(ContentAddress::Text(hash)),
                },
            )
        })();
        let _ = fsutil::remove_tree(&tmp);
        result.map(|()| path)
    }

    /// Moves a complete, canonical staged object into place and registers it (the caller holds the writer lock).
    fn install(&self, staged: &Path, info: PathInfo) -> Result<()> {
        self.add_temp_root(&info.path)?;
        if self.is_valid(&info.path)? {
            return Ok(());
        }
        let dest = self.physical_path(&info.path);
        if fs::symlink_metadata(&dest).is_ok() {
            // Left by a crash between rename and registration: not valid, so not trusted.
            tracing::debug!(path = ?dest, "replacing an unregistered leftover");
            fsutil::remove_tree(&dest)?;
        }
        let drv_outputs = self.outputs_of_staged_derivation(&info.path, staged)?;
        fsutil::rename(staged, &dest).map_err(io_err("move into the store", &dest))?;
        self.db().register_with_outputs(std::slice::from_ref(&info), &drv_outputs)
    }

    /// For a `.drv` about to be registered: its statically known outputs, for the `DerivationOutputs` table.
    fn outputs_of_staged_derivation(&self, path: &StorePath, staged: &Path) -> Result<Vec<DrvOutputs>> {
        if !path.is_derivation() {
            return Ok(Vec::new());
        }
        let Ok(text) = fs::read_to_string(staged) else {
            // A directory or binary file named `.drv` is not a derivation; Nix stores it all the same.
            return Ok(Vec::new());
        };
        let drv = Derivation::parse(&text, self.store_dir())
            .map_err(|source| StoreError::Derivation { path: path.to_string(), source })?;
        let outputs = drv.output_paths().map(|(n, p)| (n.to_owned(), p.clone())).collect();
        Ok(vec![(path.clone(), outputs)])
    }

    /// Reads and parses a valid `.drv` file of this store.
    pub fn read_derivation(&self, drv: &StorePath) -> Result<Derivation> {
        let file = self.physical_path(drv);
        let text = fs::read_to_string(&file).map_err(io_err("read", &file))?;
        Derivation::parse(&text, self.store_dir())
            .map_err(|source| StoreError::Derivation { path: drv.to_string(), source })
    }

    /// The outputs the database records for `drv` (output name → path); empty when none are recorded.
    pub fn derivation_outputs(&self, drv: &StorePath) -> Result<BTreeMap<String, StorePath>> {
        Ok(self.db().derivation_outputs(drv)?.into_iter().collect())
    }

    /// The valid derivations that have `path` among their outputs.
    pub fn derivers_of_output(&self, path: &StorePath) -> Result<Vec<StorePath>> {
        self.db().derivers_of_output(path)
    }

    /// Registers the outputs of a build in one transaction: each staged tree (complete and canonical, on the
    /// store's file system) is renamed to its store path, then all of them become valid together, so a crash
    /// leaves either every output registered or none. References must be valid or among `outputs`; an output
    /// that is valid already keeps its files and registration. Takes the writer lock.
    pub fn add_built(&self, outputs: Vec<BuiltOutput>) -> Result<()> {
        let _lock = self.lock_writers()?;
        let ours: BTreeSet<StorePath> = outputs.iter().map(|o| o.info.path.clone()).collect();
        for o in &outputs {
            for r in &o.info.references {
                if !ours.contains(r) {
                    if !self.is_valid(r)? {
                        return Err(StoreError::NotValid(r.to_string()));
                    }
                    self.add_temp_root(r)?;
                }
            }
        }
        let mut infos = Vec::new();
        for o in outputs {
            self.add_temp_root(&o.info.path)?;
            if self.is_valid(&o.info.path)? {
                continue;
            }
            let dest = self.physical_path(&o.info.path);
            if o.staged != dest {
                if fs::symlink_metadata(&dest).is_ok() {
                    tracing::debug!(path = ?dest, "replacing an unregistered leftover");
                    fsutil::remove_tree(&dest)?;
                }
                fsutil::rename(&o.staged, &dest).map_err(io_err("move into the store", &dest))?;
            }
            infos.push(o.info);
        }
        self.db().register(&infos)
    }

    /// Restores a NAR read from `input` as `meta.path`, checking the NAR hash (when given), the content address
    /// (when given) and that no symlink leaves the store; registers it only when all of that holds.
    pub fn add_nar(&self, input: &mut impl Read, meta: NarMetadata) -> Result<StorePath> {
        let _lock = self.lock_writers()?;
        self.restore_and_install(input, Some(meta), true, |_| Ok(None)).map(|(p, _)| p)
    }

    /// Restores a NAR fetched from a binary cache as `meta.path`: like [`Store::add_nar`], but its NAR hash is
    /// required and its symlinks may point anywhere, as in Nix's stores (NixOS paths link to `/etc/…` and
    /// `/dev/null`, relative links climb out of a package). Restoring never writes through a symlink, so such a
    /// link is only a dangling name until something follows it.
    pub fn add_substitute(&self, input: &mut impl Read, meta: NarMetadata) -> Result<StorePath> {
        if meta.nar_hash.is_none() {
            return Err(StoreError::Invalid(format!(
                "no NAR hash given for the substitute of {}",
                meta.path
            )));
        }
        let _lock = self.lock_writers()?;
        self.restore_and_install(input, Some(meta), false, |_| Ok(None)).map(|(p, _)| p)
    }

    /// Restores one NAR into a staging directory, checks it and installs it; `meta` may come before (given) or
    /// after the NAR (`read_meta`).
    fn restore_and_install(
        &self,
        input: &mut impl Read,
        meta: Option<NarMetadata>,
        confine: bool,
        read_meta: impl FnOnce(&mut dyn Read) -> Result<Option<NarMetadata>>,
    ) -> Result<(StorePath, PathInfo)> {
        let tmp = self.store.join(fsutil::unique_name(".tmp"));
        fs::create_dir(&tmp).map_err(io_err("create directory", &tmp))?;
        let result = (|| {
            let staged = tmp.join("x");
            let info = self.restore_checked(input, &staged, meta, confine, read_meta)?;
            self.require_valid(&info.references, Some(&info.path))?;
            self.install(&staged, info.clone())?;
            Ok((info.path.clone(), info))
        })();
        let _ = fsutil::remove_tree(&tmp);
        result
    }

    /// Restores one NAR at `staged` (inside the store directory), checks its NAR hash and content address against
    /// the metadata, canonicalises it and returns what to register. References are not checked here.
    pub(crate) fn restore_checked(
        &self,
        input: &mut impl Read,
        staged: &Path,
        meta: Option<NarMetadata>,
        confine: bool,
        read_meta: impl FnOnce(&mut dyn Read) -> Result<Option<NarMetadata>>,
    ) -> Result<PathInfo> {
        let options = RestoreOptions {
            read_only: false,
            confine_symlinks: confine.then(|| SymlinkConfinement {
                logical: self.store_dir().as_path().join("x"),
                root: self.store_dir().as_path().to_owned(),
            }),
        };
        let mut hashing = HashingReader::new(&mut *input, HashAlgo::Sha256);
        nar::restore(&mut hashing, staged, &options)?;
        let (nar_hash, nar_size) = hashing.finish();
        let meta = match meta {
            Some(m) => m,
            None => read_meta(input)?.ok_or_else(|| StoreError::Invalid("NAR without metadata".into()))?,
        };
        if let Some(expected) = &meta.nar_hash
            && *expected != nar_hash
        {
            return Err(StoreError::HashMismatch {
                what: format!("the NAR of {}", meta.path),
                expected: expected.to_string(),
                got: nar_hash.to_string(),
            });
        }
        if let Some(ca) = &meta.ca {
            let self_ref = meta.references.contains(&meta.path);
            let refs: Vec<StorePath> = meta.references.iter().filter(|r| **r != meta.path).cloned().collect();
            let computed = self.store_dir().make_ca_path(meta.path.name(), ca, &refs, self_ref)?;
            let content_ok = match ca {
                ContentAddress::Fixed(FileIngestion::Recursive, h) => {
                    *h == nar::hash_path(staged, h.algo())?.0
                }
                ContentAddress::Fixed(FileIngestion::Flat, h) => *h == hash_file(staged, h.algo())?,
                ContentAddress::Text(h) => *h == hash_file(staged, HashAlgo::Sha256)?,
            };
            if computed != meta.path || !content_ok {
                return Err(StoreError::HashMismatch {
                    what: format!("the content address {ca} of {}", meta.path),
                    expected: meta.path.to_string(),
                    got: computed.to_string(),
                });
            }
        }
        fsutil::canonicalise(staged)?;
        Ok(PathInfo {
            path: meta.path,
            nar_hash,
            nar_size,
            references: meta.references,
            deriver: meta.deriver,
            registration_time: now(),
            ultimate: false,
            sigs: meta.sigs,
            ca: meta.ca,
        })
    }

    /// Moves staged objects (complete, canonical, inside the store directory) into place and registers all of them
    /// in one transaction, so either every one becomes valid or none does. References must be valid or among
    /// `staged`; objects already valid keep their files. The caller holds the writer lock.
    pub(crate) fn install_all(&self, staged: Vec<(PathBuf, PathInfo)>) -> Result<()> {
        let ours: BTreeSet<StorePath> = staged.iter().map(|(_, i)| i.path.clone()).collect();
        for (_, info) in &staged {
            for r in &info.references {
                if !ours.contains(r) {
                    if !self.is_valid(r)? {
                        return Err(StoreError::NotValid(r.to_string()));
                    }
                    self.add_temp_root(r)?;
                }
            }
        }
        let mut infos = Vec::new();
        let mut drv_outputs = Vec::new();
        let mut moved = Vec::new();
        let result = (|| {
            for (from, info) in staged {
                self.add_temp_root(&info.path)?;
                if self.is_valid(&info.path)? {
                    continue;
                }
                let dest = self.physical_path(&info.path);
                if fs::symlink_metadata(&dest).is_ok() {
                    tracing::debug!(path = ?dest, "replacing an unregistered leftover");
                    fsutil::remove_tree(&dest)?;
                }
                drv_outputs.extend(self.outputs_of_staged_derivation(&info.path, &from)?);
                fsutil::rename(&from, &dest).map_err(io_err("move into the store", &dest))?;
                moved.push(dest);
                infos.push(info);
            }
            self.db().register_with_outputs(&infos, &drv_outputs)
        })();
        if result.is_err() {
            // Nothing was registered: what was moved is an unregistered leftover, removed now.
            for dest in moved {
                let _ = fsutil::remove_tree(&dest);
            }
        }
        result
    }

    /// Which of `candidates` the tree at `src` refers to (by their hash parts).
    pub fn scan_references(&self, src: &Path, candidates: &[StorePath]) -> Result<BTreeSet<StorePath>> {
        crate::refscan::scan_tree(src, candidates)
    }

    /// Which valid paths the tree at `src` refers to, scanning for every valid path's hash.
    pub fn scan_all_references(&self, src: &Path) -> Result<BTreeSet<StorePath>> {
        let graph = self.db().graph()?;
        crate::refscan::scan_tree(src, &graph.paths)
    }

    /// Every valid path, sorted.
    pub fn all_paths(&self) -> Result<Vec<StorePath>> {
        let mut paths = self.db().graph()?.paths;
        paths.sort();
        Ok(paths)
    }

    /// Adds signatures (`name:base64`, e.g. from `fhskit store sign` or a binary cache) to a valid path; returns
    /// how many were new.
    pub fn add_signatures(&self, path: &StorePath, sigs: &[String]) -> Result<usize> {
        let _lock = self.lock_writers()?;
        let mut db = self.db();
        let mut info = db.query_info(path)?.ok_or_else(|| StoreError::NotValid(path.to_string()))?;
        let before = info.sigs.len();
        for s in sigs {
            if !info.sigs.contains(s) {
                info.sigs.push(s.clone());
            }
        }
        info.sigs.sort();
        let added = info.sigs.len() - before;
        if added > 0 {
            db.set_sigs(path, &info.sigs)?;
        }
        Ok(added)
    }

    /// Records a derivation's outputs (for `keep-outputs` in the collector).
    pub fn register_derivation_outputs(
        &self,
        drv: &StorePath,
        outputs: &[(String, StorePath)],
    ) -> Result<()> {
        self.db().register_outputs(drv, outputs)
    }

    /// The closure of `paths`: every path they reach through references, references before referrers, ties in
    /// path order (stable across runs).
    pub fn closure(&self, paths: &[StorePath]) -> Result<Vec<StorePath>> {
        let mut order = Vec::new();
        let mut seen = HashSet::new();
        let mut roots: Vec<&StorePath> = paths.iter().collect();
        roots.sort();
        for p in roots {
            self.visit(p, &mut seen, &mut order, &|s, p| Ok(s.info_or_err(p)?.references))?;
        }
        Ok(order)
    }

    /// Every path that reaches one of `paths` through references (the paths themselves included), referrers
    /// before what they refer to: the order in which they could be deleted.
    pub fn reverse_closure(&self, paths: &[StorePath]) -> Result<Vec<StorePath>> {
        let mut order = Vec::new();
        let mut seen = HashSet::new();
        let mut roots: Vec<&StorePath> = paths.iter().collect();
        roots.sort();
        for p in roots {
            self.info_or_err(p)?;
            self.visit(p, &mut seen, &mut order, &|s, p| s.db().referrers(p))?;
        }
        Ok(order)
    }

    fn info_or_err(&self, p: &StorePath) -> Result<PathInfo> {
        self.path_info(p)?.ok_or_else(|| StoreError::NotValid(p.to_string()))
    }

    /// Depth-first post-order over `next`, iterative so deep chains do not overflow the stack.
    fn visit(
        &self,
        start: &StorePath,
        seen: &mut HashSet<StorePath>,
        order: &mut Vec<StorePath>,
        next: &dyn Fn(&Store, &StorePath) -> Result<BTreeSet<StorePath>>,
    ) -> Result<()> {
        if !seen.insert(start.clone()) {
            return Ok(());
        }
        let mut stack: Vec<(StorePath, Vec<StorePath>)> = Vec::new();
        let children = |p: &StorePath| -> Result<Vec<StorePath>> {
            Ok(next(self, p)?.into_iter().filter(|c| c != p).rev().collect())
        };
        stack.push((start.clone(), children(start)?));
        while let Some((_, pending)) = stack.last_mut() {
            match pending.pop() {
                Some(c) => {
                    if seen.insert(c.clone()) {
                        let kids = children(&c)?;
                        stack.push((c, kids));
                    }
                }
                None => {
                    let (p, _) = stack.pop().expect("stack is not empty");
                    order.push(p);
                }
            }
        }
        Ok(())
    }

    /// Valid paths that refer to `path` directly.
    pub fn referrers(&self, path: &StorePath) -> Result<BTreeSet<StorePath>> {
        self.db().referrers(path)
    }

    /// The valid path whose hash starts with `prefix` (at least 4 nix32 characters); lists candidates when several
    /// match.
    pub fn find(&self, prefix: &str) -> Result<StorePath> {
        if prefix.len() < 4 || !crate::nix32::is_nix32(prefix) {
            return Err(StoreError::Invalid(format!(
                "'{prefix}' is not a hash prefix: give at least 4 characters of a store path's hash"
            )));
        }
        let found = self.db().paths_with_prefix(&format!("{}/{prefix}", self.store_dir()))?;
        match found.len() {
            0 => Err(StoreError::NoMatch(prefix.to_owned())),
            1 => Ok(found.into_iter().next().expect("one element")),
            _ => Err(StoreError::Ambiguous {
                prefix: prefix.to_owned(),
                candidates: found.iter().map(ToString::to_string).collect(),
            }),
        }
    }
}

/// The hash of a regular file's contents.
pub(crate) fn hash_file(path: &Path, algo: HashAlgo) -> Result<Hash> {
    let mut f = fs::File::open(path).map_err(io_err("open", path))?;
    let mut h = Hasher::new(algo);
    std::io::copy(&mut f, &mut h).map_err(io_err("read", path))?;
    Ok(h.finish())
}
