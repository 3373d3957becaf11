//! The store database: SQLite with Nix's schema (version 10: `ValidPaths`, `Refs`, `DerivationOutputs` and their
//! indices), in WAL mode. Every registration is one `BEGIN IMMEDIATE` transaction, so a crash leaves either all of
//! it or none. The local store is the only user of this module.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use crate::error::{Result, StoreError};
use crate::hash::{Hash, HashFormat};
use crate::store_path::{ContentAddress, StoreDir, StorePath};

/// The schema version Nix 2.8 writes to `db/schema`.
pub const SCHEMA_VERSION: &str = "10";

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS ValidPaths (
    id               INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    path             TEXT UNIQUE NOT NULL,
    hash             TEXT NOT NULL,
    registrationTime INTEGER NOT NULL,
    deriver          TEXT,
    narSize          INTEGER,
    ultimate         INTEGER,
    sigs             TEXT,
    ca               TEXT
);
CREATE TABLE IF NOT EXISTS Refs (
    referrer  INTEGER NOT NULL,
    reference INTEGER NOT NULL,
    PRIMARY KEY (referrer, reference),
    FOREIGN KEY (referrer) REFERENCES ValidPaths(id) ON DELETE CASCADE,
    FOREIGN KEY (reference) REFERENCES ValidPaths(id) ON DELETE RESTRICT
);
CREATE INDEX IF NOT EXISTS IndexReferrer ON Refs(referrer);
CREATE INDEX IF NOT EXISTS IndexReference ON Refs(reference);
CREATE TRIGGER IF NOT EXISTS DeleteSelfRefs BEFORE DELETE ON ValidPaths
  BEGIN
    DELETE FROM Refs WHERE referrer = old.id AND reference = old.id;
  END;
CREATE TABLE IF NOT EXISTS DerivationOutputs (
    drv  INTEGER NOT NULL,
    id   TEXT NOT NULL,
    path TEXT NOT NULL,
    PRIMARY KEY (drv, id),
    FOREIGN KEY (drv) REFERENCES ValidPaths(id) ON DELETE CASCADE
);
CREATE INDEX IF NOT EXISTS IndexDerivationOutputs ON DerivationOutputs(path);
";

/// What the store knows about a valid path (Nix's `ValidPathInfo`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathInfo {
    pub path: StorePath,
    /// sha256 of the NAR serialisation.
    pub nar_hash: Hash,
    pub nar_size: u64,
    pub references: BTreeSet<StorePath>,
    pub deriver: Option<StorePath>,
    /// Seconds since the epoch.
    pub registration_time: i64,
    /// True for paths built locally (Nix's "ultimately trusted").
    pub ultimate: bool,
    pub sigs: Vec<String>,
    pub ca: Option<ContentAddress>,
}

/// The whole reference graph, loaded at once so closures and GC walk integers instead of issuing a query per path.
#[derive(Debug, Default)]
pub struct Graph {
    pub paths: Vec<StorePath>,
    pub index: HashMap<StorePath, usize>,
    pub references: Vec<Vec<usize>>,
    pub referrers: Vec<Vec<usize>>,
    pub deriver: Vec<Option<StorePath>>,
    pub nar_size: Vec<u64>,
    /// drv index -> output paths (valid or not).
    pub outputs: HashMap<usize, Vec<StorePath>>,
}

pub(crate) struct Db {
    conn: Connection,
    path: PathBuf,
    store_dir: StoreDir,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Db({})", self.path.display())
    }
}

impl Db {
    fn err(&self, action: &'static str) -> impl FnOnce(rusqlite::Error) -> StoreError + '_ {
        move |source| StoreError::Db { action, path: self.path.clone(), source }
    }

    /// Opens (creating if needed) `db_dir/db.sqlite` and writes `db_dir/schema`.
    pub fn open(db_dir: &Path, store_dir: StoreDir) -> Result<Db> {
        let path = db_dir.join("db.sqlite");
        let err = |action| {
            let path = path.clone();
            move |source| StoreError::Db { action, path, source }
        };
        let conn = Connection::open(&path).map_err(err("open"))?;
        conn.busy_timeout(Duration::from_secs(600)).map_err(err("set the busy timeout"))?;
        let _mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(err("switch to WAL mode"))?;
        conn.execute_batch("PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;")
            .map_err(err("set pragmas"))?;
        conn.execute_batch(SCHEMA).map_err(err("create the schema"))?;
        let schema = db_dir.join("schema");
        if !schema.exists() {
            crate::fsutil::write_atomic(&schema, SCHEMA_VERSION.as_bytes())?;
        }
        Ok(Db { conn, path, store_dir })
    }

    fn parse(&self, text: &str) -> Result<StorePath> {
        Ok(self.store_dir.parse_path(text)?)
    }

    pub fn is_valid(&self, path: &StorePath) -> Result<bool> {
        self.conn
            .prepare_cached("SELECT 1 FROM ValidPaths WHERE path = ?1")
            .and_then(|mut s| s.exists([path.to_string()]))
            .map_err(self.err("query a path"))
    }

    /// Registers paths in one transaction. Each path's references must be valid already or be in `infos`.
    pub fn register(&mut self, infos: &[PathInfo]) -> Result<()> {
        self.register_with_outputs(infos, &[])
    }

    /// Registers paths and, in the same transaction, the `DerivationOutputs` rows of the derivations among them
    /// (`drv_outputs`: each `.drv` path with its output names and paths), as Nix does when a `.drv` becomes valid.
    pub fn register_with_outputs(
        &mut self,
        infos: &[PathInfo],
        drv_outputs: &[(StorePath, Vec<(String, StorePath)>)],
    ) -> Result<()> {
        let path = self.path.clone();
        let err = |action| {
            let path = path.clone();
            move |source| StoreError::Db { action, path, source }
        };
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(err("begin a transaction"))?;
        {
            let mut insert = tx
                .prepare_cached(
                    "INSERT INTO ValidPaths (path, hash, registrationTime, deriver, narSize, ultimate, sigs, ca)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                     ON CONFLICT(path) DO UPDATE SET hash = excluded.hash, registrationTime = excluded.registrationTime,
                       deriver = excluded.deriver, narSize = excluded.narSize, ultimate = excluded.ultimate,
                       sigs = excluded.sigs, ca = excluded.ca",
                )
                .map_err(err("prepare a registration"))?;
            for info in infos {
                let sigs = (!info.sigs.is_empty()).then(|| info.sigs.join(" "));
                insert
                    .execute(params![
                        info.path.to_string(),
                        info.nar_hash.to_typed(HashFormat::Base16),
                        info.registration_time,
                        info.deriver.as_ref().map(|d| d.to_string()),
                        info.nar_size as i64,
                        info.ultimate.then_some(1i64),
                        sigs,
                        info.ca.as_ref().map(|c| c.to_string()),
                    ])
                    .map_err(err("register a path"))?;
            }
            let mut id = tx
                .prepare_cached("SELECT id FROM ValidPaths WHERE path = ?1")
                .map_err(err("prepare a query"))?;
            let mut add_ref = tx
                .prepare_cached("INSERT OR IGNORE INTO Refs (referrer, reference) VALUES (?1, ?2)")
                .map_err(err("prepare a reference insert"))?;
            for info in infos {
                let referrer: i64 = id
                    .query_row([info.path.to_string()], |r| r.get(0))
                    .map_err(err("find a registered path"))?;
                for reference in &info.references {
                    let rid: Option<i64> = id
                        .query_row([reference.to_string()], |r| r.get(0))
                        .optional()
                        .map_err(err("find a reference"))?;
                    let rid = rid.ok_or_else(|| StoreError::NotValid(reference.to_string()))?;
                    add_ref.execute([referrer, rid]).map_err(err("register a reference"))?;
                }
            }
            let mut add_output = tx
                .prepare_cached(
                    "INSERT OR REPLACE INTO DerivationOutputs (drv, id, path) VALUES (?1, ?2, ?3)",
                )
                .map_err(err("prepare a derivation output insert"))?;
            for (drv, outputs) in drv_outputs {
                let drv_id: i64 = id
                    .query_row([drv.to_string()], |r| r.get(0))
                    .map_err(err("find a registered derivation"))?;
                for (name, out) in outputs {
                    add_output
                        .execute(params![drv_id, name, out.to_string()])
                        .map_err(err("register a derivation output"))?;
                }
            }
        }
        tx.commit().map_err(err("commit a registration"))
    }

    /// Replaces the signatures recorded for a valid path.
    pub fn set_sigs(&mut self, path: &StorePath, sigs: &[String]) -> Result<()> {
        let sigs = (!sigs.is_empty()).then(|| sigs.join(" "));
        let n = self
            .conn
            .execute("UPDATE ValidPaths SET sigs = ?1 WHERE path = ?2", params![sigs, path.to_string()])
            .map_err(self.err("record signatures"))?;
        if n == 0 {
            return Err(StoreError::NotValid(path.to_string()));
        }
        Ok(())
    }

    /// Records derivation outputs (`drv` must be valid).
    pub fn register_outputs(&mut self, drv: &StorePath, outputs: &[(String, StorePath)]) -> Result<()> {
        let path = self.path.clone();
        let err = move |action| {
            let path = path.clone();
            move |source| StoreError::Db { action, path, source }
        };
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(err("begin a transaction"))?;
        let id: Option<i64> = tx
            .query_row("SELECT id FROM ValidPaths WHERE path = ?1", [drv.to_string()], |r| r.get(0))
            .optional()
            .map_err(err("find a derivation"))?;
        let id = id.ok_or_else(|| StoreError::NotValid(drv.to_string()))?;
        for (name, out) in outputs {
            tx.execute(
                "INSERT OR REPLACE INTO DerivationOutputs (drv, id, path) VALUES (?1, ?2, ?3)",
                params![id, name, out.to_string()],
            )
            .map_err(err("register a derivation output"))?;
        }
        tx.commit().map_err(err("commit derivation outputs"))
    }

    /// The `DerivationOutputs` rows of `drv`: output name → path.
    pub fn derivation_outputs(&self, drv: &StorePath) -> Result<Vec<(String, StorePath)>> {
        let mut s = self
            .conn
            .prepare_cached(
                "SELECT d.id, d.path FROM DerivationOutputs AS d JOIN ValidPaths AS v ON d.drv = v.id
                 WHERE v.path = ?1 ORDER BY d.id",
            )
            .map_err(self.err("query derivation outputs"))?;
        let rows = s
            .query_map([drv.to_string()], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
            .map_err(self.err("query derivation outputs"))?;
        let mut out = Vec::new();
        for r in rows {
            let (name, path) = r.map_err(self.err("query derivation outputs"))?;
            out.push((name, self.parse(&path)?));
        }
        Ok(out)
    }

    /// The derivations that list `path` as an output (Nix's `queryValidDerivers`).
    pub fn derivers_of_output(&self, path: &StorePath) -> Result<Vec<StorePath>> {
        let mut s = self
            .conn
            .prepare_cached(
                "SELECT v.path FROM DerivationOutputs AS d JOIN ValidPaths AS v ON d.drv = v.id WHERE d.path = ?1",
            )
            .map_err(self.err("query derivers"))?;
        let rows =
            s.query_map([path.to_string()], |r| r.get::<_, String>(0)).map_err(self.err("query derivers"))?;
        let mut out = Vec::new();
        for r in rows {
            out.push(self.parse(&r.map_err(self.err("query derivers"))?)?);
        }
        Ok(out)
    }

    pub fn query_info(&self, path: &StorePath) -> Result<Option<PathInfo>> {
        let row = self
            .conn
            .prepare_cached(
                "SELECT id, hash, registrationTime, deriver, narSize, ultimate, sigs, ca FROM ValidPaths WHERE path = ?1",
            )
            .and_then(|mut s| {
                s.query_row([path.to_string()], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, i64>(2)?,
                        r.get::<_, Option<String>>(3)?,
                        r.get::<_, Option<i64>>(4)?,
                        r.get::<_, Option<i64>>(5)?,
                        r.get::<_, Option<String>>(6)?,
                        r.get::<_, Option<String>>(7)?,
                    ))
                })
                .optional()
            })
            .map_err(self.err("query path info"))?;
        let Some((id, hash, time, deriver, size, ultimate, sigs, ca)) = row else { return Ok(None) };
        let mut references = BTreeSet::new();
        {
            let mut s = self
                .conn
                .prepare_cached("SELECT path FROM Refs JOIN ValidPaths ON reference = id WHERE referrer = ?1")
                .map_err(self.err("query references"))?;
            let rows = s.query_map([id], |r| r.get::<_, String>(0)).map_err(self.err("query references"))?;
            for r in rows {
                references.insert(self.parse(&r.map_err(self.err("query references"))?)?);
            }
        }
        Ok(Some(PathInfo {
            path: path.clone(),
            nar_hash: Hash::parse(&hash, None)?,
            nar_size: size.unwrap_or(0) as u64,
            references,
            deriver: deriver.as_deref().map(|d| self.parse(d)).transpose()?,
            registration_time: time,
            ultimate: ultimate.unwrap_or(0) != 0,
            sigs: sigs
                .map(|s| s.split(' ').filter(|x| !x.is_empty()).map(str::to_owned).collect())
                .unwrap_or_default(),
            ca: ca.as_deref().and_then(ContentAddress::parse),
        }))
    }

    pub fn referrers(&self, path: &StorePath) -> Result<BTreeSet<StorePath>> {
        let mut s = self
            .conn
            .prepare_cached(
                "SELECT r.path FROM Refs JOIN ValidPaths AS t ON reference = t.id JOIN ValidPaths AS r ON referrer = r.id
                 WHERE t.path = ?1",
            )
            .map_err(self.err("query referrers"))?;
        let rows = s
            .query_map([path.to_string()], |r| r.get::<_, String>(0))
            .map_err(self.err("query referrers"))?;
        let mut out = BTreeSet::new();
        for r in rows {
            out.insert(self.parse(&r.map_err(self.err("query referrers"))?)?);
        }
        Ok(out)
    }

    /// Valid paths whose absolute path starts with `prefix` (a store dir plus a hash prefix).
    pub fn paths_with_prefix(&self, prefix: &str) -> Result<Vec<StorePath>> {
        // Hash parts are nix32, so incrementing the last byte gives a tight exclusive upper bound.
        let mut upper = prefix.as_bytes().to_vec();
        if let Some(last) = upper.last_mut() {
            *last += 1;
        }
        let upper = String::from_utf8_lossy(&upper).into_owned();
        let mut s = self
            .conn
            .prepare_cached("SELECT path FROM ValidPaths WHERE path >= ?1 AND path < ?2 ORDER BY path")
            .map_err(self.err("search paths"))?;
        let rows =
            s.query_map([prefix, &upper], |r| r.get::<_, String>(0)).map_err(self.err("search paths"))?;
        let mut out = Vec::new();
        for r in rows {
            out.push(self.parse(&r.map_err(self.err("search paths"))?)?);
        }
        Ok(out)
    }

    /// Loads every valid path and reference in two queries.
    pub fn graph(&self) -> Result<Graph> {
        let mut g = Graph::default();
        let mut ids: HashMap<i64, usize> = HashMap::new();
        {
            let mut s = self
                .conn
                .prepare("SELECT id, path, deriver, narSize FROM ValidPaths ORDER BY path")
                .map_err(self.err("load paths"))?;
            let rows = s
                .query_map([], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, Option<String>>(2)?,
                        r.get::<_, Option<i64>>(3)?,
                    ))
                })
                .map_err(self.err("load paths"))?;
            for r in rows {
                let (id, path, deriver, size) = r.map_err(self.err("load paths"))?;
                let p = self.parse(&path)?;
                let i = g.paths.len();
                ids.insert(id, i);
                g.index.insert(p.clone(), i);
                g.paths.push(p);
                g.deriver.push(deriver.as_deref().and_then(|d| self.store_dir.parse_path(d).ok()));
                g.nar_size.push(size.unwrap_or(0) as u64);
            }
        }
        g.references = vec![Vec::new(); g.paths.len()];
        g.referrers = vec![Vec::new(); g.paths.len()];
        {
            let mut s = self
                .conn
                .prepare("SELECT referrer, reference FROM Refs")
                .map_err(self.err("load references"))?;
            let rows = s
                .query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)))
                .map_err(self.err("load references"))?;
            for r in rows {
                let (a, b) = r.map_err(self.err("load references"))?;
                if let (Some(&a), Some(&b)) = (ids.get(&a), ids.get(&b)) {
                    g.references[a].push(b);
                    g.referrers[b].push(a);
                }
            }
        }
        {
            let mut s = self
                .conn
                .prepare("SELECT drv, path FROM DerivationOutputs")
                .map_err(self.err("load outputs"))?;
            let rows = s
                .query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))
                .map_err(self.err("load outputs"))?;
            for r in rows {
                let (drv, path) = r.map_err(self.err("load outputs"))?;
                if let (Some(&d), Ok(p)) = (ids.get(&drv), self.store_dir.parse_path(&path)) {
                    g.outputs.entry(d).or_default().push(p);
                }
            }
        }
        for refs in g.references.iter_mut().chain(g.referrers.iter_mut()) {
            refs.sort_unstable();
        }
        Ok(g)
    }

    /// Unregisters paths in one transaction (their referrers must be among them or already gone).
    pub fn unregister(&mut self, paths: &[StorePath]) -> Result<()> {
        let path = self.path.clone();
        let err = move |action| {
            let path = path.clone();
            move |source| StoreError::Db { action, path, source }
        };
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(err("begin a transaction"))?;
        {
            let mut refs = tx
                .prepare_cached(
                    "DELETE FROM Refs WHERE referrer = (SELECT id FROM ValidPaths WHERE path = ?1)",
                )
                .map_err(err("prepare a deletion"))?;
            for p in paths {
                refs.execute([p.to_string()]).map_err(err("delete references"))?;
            }
            let mut del = tx
                .prepare_cached("DELETE FROM ValidPaths WHERE path = ?1")
                .map_err(err("prepare a deletion"))?;
            for p in paths {
                del.execute([p.to_string()]).map_err(err("unregister a path"))?;
            }
        }
        tx.commit().map_err(err("commit a deletion"))
    }
}
