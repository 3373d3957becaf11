//! Compatibility with real Nix 2.8: compares against the golden vectors in `tests/fixtures/store-golden/`, which
//! `regenerate.sh` there produces with `nix-hash`, `nix-store` and `nix-env` (so these tests need no Nix).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use store::gc::auto_root_name;
use store::nar::{self, RestoreOptions};
use store::profile::format_generations;
use store::{FileIngestion, Hash, HashAlgo, Profile, Store, StoreConfig};

fn golden() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/store-golden")
}

/// The input trees, made by the same script that regenerate.sh uses.
fn inputs(tmp: &Path) -> PathBuf {
    let dir = tmp.join("in");
    let status = Command::new("sh").arg(golden().join("make-tree.sh")).arg(&dir).status().unwrap();
    assert!(status.success());
    dir
}

fn read(name: &str) -> String {
    fs::read_to_string(golden().join(name)).unwrap()
}

#[test]
fn nar_bytes_equal_nix_store_dump() {
    let tmp = tempfile::tempdir().unwrap();
    let input = inputs(tmp.path());
    for t in ["d", "hello.txt", "edge", "toplink"] {
        let expected = fs::read(golden().join(format!("nar/{t}.nar"))).unwrap();
        let mut ours = Vec::new();
        nar::dump(&input.join(t), &mut ours).unwrap();
        assert!(ours == expected, "NAR of {t} differs from nix-store --dump");
        // Restoring Nix's NAR and dumping it again gives the same bytes.
        let back = tmp.path().join(format!("back-{t}"));
        nar::restore(&mut &expected[..], &back, &RestoreOptions::default()).unwrap();
        let mut again = Vec::new();
        nar::dump(&back, &mut again).unwrap();
        assert!(again == expected, "restore + dump of {t} changed the NAR");
    }
}

#[test]
fn hashes_equal_nix_hash() {
    let tmp = tempfile::tempdir().unwrap();
    let input = inputs(tmp.path());
    for line in read("hashes.txt").lines() {
        let (args, expected) = line.split_once('\t').unwrap();
        let words: Vec<&str> = args.split(' ').collect();
        let algo = HashAlgo::parse(words[1]).unwrap();
        let flat = words.contains(&"--flat");
        let path = input.join(words.last().unwrap());
        let hash = if flat {
            Hash::digest(algo, &fs::read(&path).unwrap())
        } else {
            nar::hash_path(&path, algo).unwrap().0
        };
        let text = if words.contains(&"--base32") { hash.to_nix32() } else { hash.to_hex() };
        assert_eq!(text, expected, "nix-hash {args}");
    }
}

/// Performs in `store` what regenerate.sh did with nix-store and nix-instantiate.
fn populate(store: &Store, input: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for line in read("paths.txt").lines() {
        let (args, _) = line.split_once('\t').unwrap();
        let words: Vec<&str> = args.split(' ').collect();
        let file = input.join(words.last().unwrap());
        let name = words.last().unwrap();
        let p = match words[0] {
            "--add" => store.add_tree(name, &file, &[]).unwrap(),
            _ => {
                let recursive = words.contains(&"--recursive");
                let algo = HashAlgo::parse(words[words.len() - 2]).unwrap();
                let method = if recursive { FileIngestion::Recursive } else { FileIngestion::Flat };
                store.add_fixed(name, &file, method, algo).unwrap()
            }
        };
        out.push((args.to_owned(), p.to_string()));
    }
    let a = store.add_text("a", b"x", &[]).unwrap();
    let t2 = store.add_text("t2", format!("ref {a}").as_bytes(), std::slice::from_ref(&a)).unwrap();
    let drv_text = fs::read(golden().join("x.drv")).unwrap();
    let drv = store.add_text("x.drv", &drv_text, std::slice::from_ref(&t2)).unwrap();
    let text = String::from_utf8(drv_text).unwrap();
    let out_path = text.split('"').nth(3).unwrap();
    store.register_derivation_outputs(&drv, &[("out".into(), store.parse_path(out_path).unwrap())]).unwrap();
    out
}

fn chroot(tmp: &Path, name: &str) -> Store {
    Store::open(StoreConfig::nix_chroot(&tmp.join(name)).unwrap()).unwrap()
}

#[test]
fn store_paths_export_and_database_equal_nix() {
    let tmp = tempfile::tempdir().unwrap();
    let input = inputs(tmp.path());
    let store = chroot(tmp.path(), "root");
    let ours = populate(&store, &input);
    let expected: Vec<(String, String)> = read("paths.txt")
        .lines()
        .map(|l| {
            let (a, b) = l.split_once('\t').unwrap();
            (a.to_owned(), b.to_owned())
        })
        .collect();
    assert_eq!(ours, expected);

    // The closure of the .drv, in Nix's order, and its export bytes.
    let closure_txt = read("closure.txt");
    let drv = store.parse_path(closure_txt.lines().last().unwrap()).unwrap();
    let closure: Vec<String> = store.closure(&[drv]).unwrap().iter().map(ToString::to_string).collect();
    assert_eq!(closure, closure_txt.lines().collect::<Vec<_>>());
    let paths: Vec<_> = closure.iter().map(|p| store.parse_path(p).unwrap()).collect();
    let mut exported = Vec::new();
    store.export(&paths, &mut exported).unwrap();
    assert!(
        exported == fs::read(golden().join("export.bin")).unwrap(),
        "export bytes differ from nix-store --export"
    );
    // Nix's export imports here.
    let other = chroot(tmp.path(), "other");
    let imported = other.import(&mut &fs::read(golden().join("export.bin")).unwrap()[..]).unwrap();
    assert_eq!(imported, paths);

    // The database: schema version, structure and rows.
    let db_dir = tmp.path().join("root/nix/var/nix/db");
    assert_eq!(fs::read_to_string(db_dir.join("schema")).unwrap() + "\n", read("db-version.txt"));
    let conn = rusqlite::Connection::open(db_dir.join("db.sqlite")).unwrap();
    assert_eq!(run_sql(&conn, &read("schema.sql")), read("db-schema.txt"));
    assert_eq!(run_sql(&conn, &read("rows.sql")), read("db-rows.txt"));
}

/// Runs each statement and prints rows as the sqlite3 shell does (`|` between columns, NULL as empty).
fn run_sql(conn: &rusqlite::Connection, sql: &str) -> String {
    let mut out = String::new();
    for stmt in sql.split(";\n").map(str::trim).filter(|s| !s.is_empty()) {
        let mut s = conn.prepare(stmt).unwrap();
        let n = s.column_count();
        let mut rows = s.query([]).unwrap();
        while let Some(row) = rows.next().unwrap() {
            let cols: Vec<String> = (0..n)
                .map(|i| match row.get_ref(i).unwrap() {
                    rusqlite::types::ValueRef::Null => String::new(),
                    rusqlite::types::ValueRef::Integer(v) => v.to_string(),
                    rusqlite::types::ValueRef::Real(v) => v.to_string(),
                    rusqlite::types::ValueRef::Text(t) | rusqlite::types::ValueRef::Blob(t) => {
                        String::from_utf8_lossy(t).into_owned()
                    }
                })
                .collect();
            out.push_str(&cols.join("|"));
            out.push('\n');
        }
    }
    out
}

#[test]
fn gc_root_names_and_generations_equal_nix() {
    for line in read("gcroots-auto.txt").lines() {
        let (name, link) = line.split_once('\t').unwrap();
        assert_eq!(auto_root_name(Path::new(link)), name, "auto root name of {link}");
    }
    let tmp = tempfile::tempdir().unwrap();
    let input = inputs(tmp.path());
    let store = chroot(tmp.path(), "root");
    let d = store.add_tree("d", &input.join("d"), &[]).unwrap();
    let h = store.add_tree("hello.txt", &input.join("hello.txt"), &[]).unwrap();
    let links = tmp.path().join("links");
    let profile = Profile::new(links.join("profile"));
    for (target, expect) in [(&d, (1, true)), (&h, (2, true)), (&h, (2, false)), (&d, (3, true))] {
        assert_eq!(store.create_generation(&profile, target).unwrap(), expect);
    }
    let mut listing = String::new();
    let mut names: Vec<_> =
        fs::read_dir(&links).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    names.sort();
    for n in names {
        listing.push_str(&format!("{n} -> {}\n", fs::read_link(links.join(&n)).unwrap().display()));
    }
    assert_eq!(listing, read("profile-links.txt"));
    // Every generation has its auto root, named as Nix names it.
    for n in 1..=3 {
        let link = links.join(format!("profile-{n}-link"));
        assert!(store.state_dir().join("gcroots/auto").join(auto_root_name(&link)).is_symlink());
    }
    for (n, t) in [(1, 1_700_000_000), (2, 1_700_003_600), (3, 1_700_086_400)] {
        let link = links.join(format!("profile-{n}-link"));
        nix::sys::stat::utimensat(
            nix::fcntl::AT_FDCWD,
            &link,
            &nix::sys::time::TimeSpec::new(t, 0),
            &nix::sys::time::TimeSpec::new(t, 0),
            nix::sys::stat::UtimensatFlags::NoFollowSymlink,
        )
        .unwrap();
    }
    assert_eq!(format_generations(&profile.generations().unwrap(), false), read("generations.txt"));
    assert_eq!(profile.switch(1).unwrap(), Some(3));
    assert_eq!(
        format_generations(&profile.generations().unwrap(), false),
        read("generations-after-switch.txt")
    );
}
