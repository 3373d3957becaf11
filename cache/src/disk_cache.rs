//! The on-disk narinfo cache: remembers, per HTTP or S3 cache, which narinfos exist (for
//! `narinfo-cache-positive-ttl`) and which do not (for `narinfo-cache-negative-ttl`), so repeated commands do not
//! ask the network again. SQLite with the tables of Nix 2.8's `binary-cache-v6.sqlite` (`BinaryCaches`, `NARs`),
//! kept under fhskit's own cache directory. Local (`file://`) caches are not cached, as in Nix.

use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, params};
use store::{ContentAddress, Hash, StoreDir};

use crate::compression::Compression;
use crate::error::{CacheError, Result};
use crate::narinfo::NarInfo;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS BinaryCaches (
    id            INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    url           TEXT UNIQUE NOT NULL,
    timestamp     INTEGER NOT NULL,
    storeDir      TEXT NOT NULL,
    wantMassQuery INTEGER NOT NULL,
    priority      INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS NARs (
    cache       INTEGER NOT NULL,
    hashPart    TEXT NOT NULL,
    namePart    TEXT,
    url         TEXT,
    compression TEXT,
    fileHash    TEXT,
    fileSize    INTEGER,
    narHash     TEXT,
    narSize     INTEGER,
    refs        TEXT,
    deriver     TEXT,
    sigs        TEXT,
    ca          TEXT,
    timestamp   INTEGER NOT NULL,
    present     INTEGER NOT NULL,
    PRIMARY KEY (cache, hashPart),
    FOREIGN KEY (cache) REFERENCES BinaryCaches(id) ON DELETE CASCADE
);
CREATE TABLE IF NOT EXISTS LastPurge (dummy TEXT PRIMARY KEY, value INTEGER);
";

/// An open narinfo disk cache.
#[derive(Debug)]
pub struct DiskCache {
    conn: Mutex<Connection>,
    path: String,
}

/// What the disk cache knows about a narinfo.
#[derive(Debug)]
pub enum Cached {
    /// Nothing, or only an expired entry.
    Unknown,
    /// The cache did not have it.
    Absent,
    Present(Box<NarInfo>),
}

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

impl DiskCache {
    /// Opens (creating) `dir/binary-cache-v6.sqlite`.
    pub fn open(dir: &Path) -> Result<DiskCache> {
        std::fs::create_dir_all(dir).map_err(crate::error::io_err("create directory", dir.display()))?;
        let path = dir.join("binary-cache-v6.sqlite");
        let shown = path.display().to_string();
        let err = |e: rusqlite::Error| CacheError::Setting(format!("narinfo cache {shown}: {e}"));
        let conn = Connection::open(&path).map_err(err)?;
        conn.busy_timeout(Duration::from_secs(60)).map_err(err)?;
        let _: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0)).map_err(err)?;
        conn.execute_batch("PRAGMA synchronous = NORMAL;").map_err(err)?;
        conn.execute_batch(SCHEMA).map_err(err)?;
        Ok(DiskCache { conn: Mutex::new(conn), path: shown })
    }

    fn err(&self, e: rusqlite::Error) -> CacheError {
        CacheError::Setting(format!("narinfo cache {}: {e}", self.path))
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The row id of the cache `url`, recording it when new.
    pub fn cache_id(
        &self,
        url: &str,
        store_dir: &StoreDir,
        want_mass_query: bool,
        priority: i64,
    ) -> Result<i64> {
        let conn = self.conn();
        conn.execute(
            "INSERT INTO BinaryCaches (url, timestamp, storeDir, wantMassQuery, priority) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT(url) DO UPDATE SET timestamp = excluded.timestamp, storeDir = excluded.storeDir,
               wantMassQuery = excluded.wantMassQuery, priority = excluded.priority",
            params![url, now(), store_dir.as_str(), want_mass_query as i64, priority],
        )
        .map_err(|e| self.err(e))?;
        conn.query_row("SELECT id FROM BinaryCaches WHERE url = ?1", [url], |r| r.get(0))
            .map_err(|e| self.err(e))
    }

    /// Looks `hash_part` up for cache `id`, honouring the TTLs (seconds).
    pub fn lookup(
        &self,
        id: i64,
        hash_part: &str,
        store_dir: &StoreDir,
        positive_ttl: u64,
        negative_ttl: u64,
    ) -> Result<Cached> {
        type Row = (
            Option<String>,
            Option<String>,
            Option<String>,
            Option<String>,
            Option<i64>,
            Option<String>,
            Option<i64>,
            Option<String>,
            Option<String>,
            Option<String>,
            Option<String>,
            i64,
            i64,
        );
        let row: Option<Row> = self
            .conn()
            .query_row(
                "SELECT namePart, url, compression, fileHash, fileSize, narHash, narSize, refs, deriver, sigs, ca,
                        timestamp, present FROM NARs WHERE cache = ?1 AND hashPart = ?2",
                params![id, hash_part],
                |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                        r.get(6)?,
                        r.get(7)?,
                        r.get(8)?,
                        r.get(9)?,
                        r.get(10)?,
                        r.get(11)?,
                        r.get(12)?,
                    ))
                },
            )
            .optional()
            .map_err(|e| self.err(e))?;
        let Some((
            name,
            url,
            compression,
            file_hash,
            file_size,
            nar_hash,
            nar_size,
            refs,
            deriver,
            sigs,
            ca,
            ts,
            present,
        )) = row
        else {
            return Ok(Cached::Unknown);
        };
        let age = now().saturating_sub(ts).max(0) as u64;
        if present == 0 {
            return Ok(if age < negative_ttl { Cached::Absent } else { Cached::Unknown });
        }
        if age >= positive_ttl {
            return Ok(Cached::Unknown);
        }
        // A row that does not rebuild into a narinfo is treated as unknown (asked again and overwritten).
        let rebuilt = (|| -> Option<NarInfo> {
            let path = store_dir.from_base_name(&format!("{hash_part}-{}", name?)).ok()?;
            let refs = refs.unwrap_or_default();
            Some(NarInfo {
                path,
                url: url?,
                compression: Compression::parse(&compression.unwrap_or_default())?,
                file_hash: file_hash
                    .filter(|h| !h.is_empty())
                    .map(|h| Hash::parse(&h, None))
                    .transpose()
                    .ok()?,
                file_size: file_size.unwrap_or(0) as u64,
                nar_hash: Hash::parse(&nar_hash?, None).ok()?,
                nar_size: nar_size? as u64,
                references: refs
                    .split(' ')
                    .filter(|s| !s.is_empty())
                    .map(|b| store_dir.from_base_name(b))
                    .collect::<Result<_, _>>()
                    .ok()?,
                deriver: deriver
                    .filter(|d| !d.is_empty())
                    .map(|d| store_dir.from_base_name(&d))
                    .transpose()
                    .ok()?,
                sigs: sigs
                    .unwrap_or_default()
                    .split(' ')
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect(),
                ca: match ca.filter(|c| !c.is_empty()) {
                    Some(c) => Some(ContentAddress::parse(&c)?),
                    None => None,
                },
            })
        })();
        Ok(rebuilt.map_or(Cached::Unknown, |n| Cached::Present(Box::new(n))))
    }

    /// Records what the cache answered for `hash_part` (`None`: it does not have it).
    pub fn insert(&self, id: i64, hash_part: &str, info: Option<&NarInfo>) -> Result<()> {
        let conn = self.conn();
        let r = match info {
            None => conn.execute(
                "INSERT OR REPLACE INTO NARs (cache, hashPart, timestamp, present) VALUES (?1, ?2, ?3, 0)",
                params![id, hash_part, now()],
            ),
            Some(n) => {
                let refs: Vec<&str> = n.references.iter().map(|r| r.base_name()).collect();
                let sigs: Vec<&str> = n.sigs.iter().map(String::as_str).collect();
                conn.execute(
                    "INSERT OR REPLACE INTO NARs (cache, hashPart, namePart, url, compression, fileHash, fileSize,
                       narHash, narSize, refs, deriver, sigs, ca, timestamp, present)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, 1)",
                    params![
                        id,
                        hash_part,
                        n.path.name(),
                        n.url,
                        n.compression.name(),
                        n.file_hash.as_ref().map(|h| h.to_typed(store::HashFormat::Nix32)),
                        n.file_size as i64,
                        n.nar_hash.to_typed(store::HashFormat::Nix32),
                        n.nar_size as i64,
                        refs.join(" "),
                        n.deriver.as_ref().map(|d| d.base_name().to_owned()),
                        sigs.join(" "),
                        n.ca.as_ref().map(ToString::to_string),
                        now()
                    ],
                )
            }
        };
        r.map(drop).map_err(|e| self.err(e))
    }
}
