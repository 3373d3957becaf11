//! The local store end to end through its library API: adding, querying, export/import, roots and collection.
//! Paths are computed for `/nix/store` (a chroot store under a temporary directory) so they equal Nix's.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use store::{FileIngestion, GcOptions, HashAlgo, NarMetadata, Store, StoreConfig, StoreError};

/// The reference tree `d`: `a.txt`, `link -> a.txt`, `sub/run.sh` (executable).
fn make_d(parent: &Path) -> std::path::PathBuf {
    let d = parent.join("d");
    fs::create_dir_all(d.join("sub")).unwrap();
    fs::write(d.join("a.txt"), "hello\n").unwrap();
    std::os::unix::fs::symlink("a.txt", d.join("link")).unwrap();
    fs::write(d.join("sub/run.sh"), "#!/bin/sh\necho hi\n").unwrap();
    fs::set_permissions(d.join("sub/run.sh"), fs::Permissions::from_mode(0o4755)).unwrap();
    d
}

fn chroot_store(dir: &Path) -> Store {
    Store::open(StoreConfig::nix_chroot(&dir.join("root")).unwrap()).unwrap()
}

#[test]
fn add_tree_matches_nix_and_is_canonical() {
    let tmp = tempfile::tempdir().unwrap();
    let store = chroot_store(tmp.path());
    let d = make_d(tmp.path());
    let p = store.add_tree("d", &d, &[]).unwrap();
    assert_eq!(p.to_string(), "/nix/store/46h99v2kjhaignz5dm0y8kzhwanpiirv-d");
    assert_eq!(p.to_absolute(), Path::new("/nix/store/46h99v2kjhaignz5dm0y8kzhwanpiirv-d"));
    let phys = store.physical_path(&p);
    assert_eq!(phys, tmp.path().join("root/nix/store/46h99v2kjhaignz5dm0y8kzhwanpiirv-d"));
    for (rel, mode) in [("", 0o555), ("a.txt", 0o444), ("sub", 0o555), ("sub/run.sh", 0o555)] {
        let m = fs::metadata(phys.join(rel)).unwrap();
        assert_eq!(m.mode() & 0o7777, mode, "{rel}");
        assert_eq!(m.mtime(), 1, "{rel}");
    }
    assert_eq!(fs::symlink_metadata(phys.join("link")).unwrap().mtime(), 1);
    let info = store.path_info(&p).unwrap().unwrap();
    assert_eq!(info.nar_size, 888);
    assert_eq!(info.nar_hash.to_nix32(), "1z6lc24y87d2fvdvij404yddclby8qbcmybm61w8ckrxb86617mb");
    assert_eq!(
        info.ca.unwrap().to_string(),
        "fixed:r:sha256:1z6lc24y87d2fvdvij404yddclby8qbcmybm61w8ckrxb86617mb"
    );
    // Adding again returns the same path.
    assert_eq!(store.add_tree("d", &d, &[]).unwrap(), p);
    // Flat fixed-output of a file.
    let hello = tmp.path().join("hello.txt");
    fs::write(&hello, "hello\n").unwrap();
    let f = store.add_fixed("hello.txt", &hello, FileIngestion::Flat, HashAlgo::Sha256).unwrap();
    assert_eq!(f.base_name(), "gy454w1cxaq731grqwylhzf4pp9r5izh-hello.txt");
    let r = store.add_fixed("hello.txt", &hello, FileIngestion::Recursive, HashAlgo::Sha256).unwrap();
    assert_eq!(r.base_name(), "i9pmrzmpshapij2kin22pff6fc2adavx-hello.txt");
    assert!(matches!(store.add_tree("bad name", &d, &[]), Err(StoreError::StorePath(_))));
}

#[test]
fn prepared_trees_move_in_and_get_the_add_tree_path() {
    let tmp = tempfile::tempdir().unwrap();
    let store = chroot_store(tmp.path());
    let dep = store.add_text("dep", b"x", &[]).unwrap();
    // Built in the store's scratch directory: moved, not copied (the same inode ends up in the store).
    let scratch = store.scratch_dir().unwrap();
    let d = make_d(scratch.path());
    let inode = fs::metadata(d.join("a.txt")).unwrap().ino();
    let prepared = store.prepare_tree(&d).unwrap();
    assert!(!d.exists(), "the tree was taken");
    let p = store.add_prepared("d", prepared, std::slice::from_ref(&dep)).unwrap();
    let phys = store.physical_path(&p);
    assert_eq!(fs::metadata(phys.join("a.txt")).unwrap().ino(), inode);
    assert_eq!(fs::metadata(phys.join("sub")).unwrap().mode() & 0o7777, 0o555);
    assert_eq!(
        store.add_tree("d", &make_d(&tmp.path().join("again")), std::slice::from_ref(&dep)).unwrap(),
        p
    );
    assert!(store.path_info(&p).unwrap().unwrap().references.contains(&dep));
    // From another directory (copied when not on the same file system), then dropped: nothing is left.
    let other = make_d(&tmp.path().join("other"));
    fs::write(other.join("extra"), "y").unwrap();
    let prepared = store.prepare_tree(&other).unwrap();
    let staged = prepared.path();
    assert!(staged.join("extra").is_file());
    drop(prepared);
    assert!(!staged.exists());
    drop(scratch);
    let leftovers: Vec<_> = fs::read_dir(store.physical_store_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    // A reference that is not valid is refused.
    let bad = store.parse_path(&format!("{}/{}", store.store_dir(), "00000000000000000000000000000000-nope"));
    if let Ok(bad) = bad {
        let prepared = store.prepare_tree(&make_d(&tmp.path().join("third"))).unwrap();
        assert!(store.add_prepared("d", prepared, &[bad]).is_err());
    }
}

#[test]
fn prepared_trees_added_together_get_the_paths_added_one_by_one_get() {
    let tmp = tempfile::tempdir().unwrap();
    let store = chroot_store(tmp.path());
    let one_by_one = chroot_store(&tmp.path().join("other"));
    let dep = store.add_text("dep", b"x", &[]).unwrap();
    assert_eq!(one_by_one.add_text("dep", b"x", &[]).unwrap(), dep);
    // A batch whose second tree refers to the first (a package and its dependency) and to a valid path.
    let lib = store.prepare_tree(&make_d(&tmp.path().join("lib"))).unwrap();
    let lib_path = store.prepared_path("lib", &lib, &[]).unwrap();
    let app_dir = make_d(&tmp.path().join("app"));
    fs::write(app_dir.join("extra"), "y").unwrap();
    let app = store.prepare_tree(&app_dir).unwrap();
    let app_refs = vec![lib_path.clone(), dep.clone()];
    let staged = [lib.path(), app.path()];
    let paths = store
        .add_prepared_all(vec![("lib".into(), lib, vec![]), ("app".into(), app, app_refs.clone())])
        .unwrap();
    assert_eq!(paths[0], lib_path);
    assert!(staged.iter().all(|s| !s.exists()), "the trees were moved in");
    let lib1 = one_by_one.add_tree("lib", &make_d(&tmp.path().join("lib1")), &[]).unwrap();
    let app1_dir = make_d(&tmp.path().join("app1"));
    fs::write(app1_dir.join("extra"), "y").unwrap();
    let app1 = one_by_one.add_tree("app", &app1_dir, &[lib1.clone(), dep.clone()]).unwrap();
    assert_eq!(paths, [lib1, app1]);
    let info = store.path_info(&paths[1]).unwrap().unwrap();
    assert_eq!(info.references, app_refs.into_iter().collect());
    assert!(store.physical_path(&paths[1]).join("extra").is_file());
    // A reference neither valid nor in the batch fails the whole batch: nothing is registered or left behind.
    let bad = store.prepare_tree(&make_d(&tmp.path().join("bad"))).unwrap();
    let missing =
        store.prepared_path("missing", &store.prepare_tree(&make_d(&tmp.path().join("m"))).unwrap(), &[]);
    let good = store.prepare_tree(&make_d(&tmp.path().join("good"))).unwrap();
    let good_path = store.prepared_path("good", &good, &[]).unwrap();
    let batch = vec![("good".into(), good, vec![]), ("bad".into(), bad, vec![missing.unwrap()])];
    assert!(store.add_prepared_all(batch).is_err());
    assert!(!store.is_valid(&good_path).unwrap());
    let leftovers: Vec<_> = fs::read_dir(store.physical_store_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.') || n.ends_with("-good"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn text_references_closure_and_find() {
    let tmp = tempfile::tempdir().unwrap();
    let store = chroot_store(tmp.path());
    let a = store.add_text("a", b"x", &[]).unwrap();
    assert_eq!(a.to_string(), "/nix/store/12wigjpizrn8axaqxj288q1b751qmwya-a");
    let t2 = store.add_text("t2", format!("ref {a}").as_bytes(), std::slice::from_ref(&a)).unwrap();
    assert_eq!(t2.to_string(), "/nix/store/5mbaajqgv6hmmzj56z6myfdim6px32xk-t2");
    let d = tmp.path().join("pkg");
    fs::create_dir(&d).unwrap();
    fs::write(d.join("uses"), format!("prefix {t2}/x suffix")).unwrap();
    let refs = store.scan_references(&d, &[a.clone(), t2.clone()]).unwrap();
    assert_eq!(refs.into_iter().collect::<Vec<_>>(), vec![t2.clone()]);
    let pkg = store.add_tree("pkg", &d, std::slice::from_ref(&t2)).unwrap();
    assert_eq!(store.closure(std::slice::from_ref(&pkg)).unwrap(), vec![a.clone(), t2.clone(), pkg.clone()]);
    assert_eq!(
        store.reverse_closure(std::slice::from_ref(&a)).unwrap(),
        vec![pkg.clone(), t2.clone(), a.clone()]
    );
    assert_eq!(store.referrers(&a).unwrap().into_iter().collect::<Vec<_>>(), vec![t2.clone()]);
    assert_eq!(store.find(&pkg.hash_part()[..6]).unwrap(), pkg);
    assert!(matches!(store.find("12w"), Err(StoreError::Invalid(_))));
    // Unknown references are refused.
    let other = store.store_dir().parse_path("/nix/store/00000000000000000000000000000000-x").unwrap();
    assert!(matches!(store.add_text("t3", b"", &[other]), Err(StoreError::NotValid(_))));
}

#[test]
fn export_import_round_trip_and_bad_hash() {
    let tmp = tempfile::tempdir().unwrap();
    let one = chroot_store(&tmp.path().join("one"));
    let a = one.add_text("a", b"x", &[]).unwrap();
    let d = make_d(tmp.path());
    let p = one.add_tree("d", &d, std::slice::from_ref(&a)).unwrap();
    let closure = one.closure(std::slice::from_ref(&p)).unwrap();
    let mut stream = Vec::new();
    one.export(&closure, &mut stream).unwrap();
    let two = chroot_store(&tmp.path().join("two"));
    assert_eq!(two.import(&mut &stream[..]).unwrap(), closure);
    let (i1, i2) = (one.path_info(&p).unwrap().unwrap(), two.path_info(&p).unwrap().unwrap());
    assert_eq!((i1.nar_hash, i1.references), (i2.nar_hash, i2.references));
    // A NAR with a wrong expected hash is refused and nothing is registered.
    let three = chroot_store(&tmp.path().join("three"));
    let mut nar = Vec::new();
    store::nar::dump(&d, &mut nar).unwrap();
    let wrong = store::Hash::digest(HashAlgo::Sha256, b"not it");
    let meta = NarMetadata {
        path: p.clone(),
        nar_hash: Some(wrong),
        references: Default::default(),
        deriver: None,
        ca: None,
        sigs: vec![],
    };
    assert!(matches!(three.add_nar(&mut &nar[..], meta), Err(StoreError::HashMismatch { .. })));
    assert!(!three.is_valid(&p).unwrap());
}

#[test]
fn gc_keeps_roots_and_deletes_the_rest() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = StoreConfig::nix_chroot(&tmp.path().join("root")).unwrap();
    let a;
    let b;
    let c;
    {
        let store = Store::open(cfg.clone()).unwrap();
        a = store.add_text("a", b"a", &[]).unwrap();
        b = store.add_text("b", b"b", std::slice::from_ref(&a)).unwrap();
        c = store.add_text("c", b"c", &[]).unwrap();
        store.add_root(&tmp.path().join("result"), &b).unwrap();
        // While this handle is open its additions are temporary roots.
        let dead = store.dead_paths(&GcOptions::default()).unwrap();
        assert!(dead.is_empty(), "{dead:?}");
    }
    let store = Store::open(cfg).unwrap();
    assert_eq!(store.dead_paths(&GcOptions::default()).unwrap(), vec![c.clone()]);
    assert!(matches!(
        store.delete_paths(std::slice::from_ref(&a), &GcOptions::default()),
        Err(StoreError::Alive(_)) | Err(StoreError::Referenced { .. })
    ));
    let r = store.collect_garbage(&GcOptions::default()).unwrap();
    assert_eq!(r.deleted, vec![c.clone()]);
    assert!(!store.physical_path(&c).exists());
    assert!(store.is_valid(&a).unwrap() && store.is_valid(&b).unwrap());
    // Removing the indirect root's link makes it stale: the next collection removes it and deletes both.
    fs::remove_file(tmp.path().join("result")).unwrap();
    let r = store.collect_garbage(&GcOptions::default()).unwrap();
    assert_eq!(r.deleted, vec![b.clone(), a.clone()]);
    assert_eq!(fs::read_dir(store.state_dir().join("gcroots/auto")).unwrap().count(), 0);
}

#[test]
fn verify_repair_and_optimise() {
    let tmp = tempfile::tempdir().unwrap();
    let store = chroot_store(tmp.path());
    let d = make_d(tmp.path());
    let p = store.add_tree("d", &d, &[]).unwrap();
    let copy = store.add_tree("d-copy", &d, &[]).unwrap();
    assert!(store.verify(None).unwrap().problems.is_empty());
    // Corrupt a file behind the store's back.
    let file = store.physical_path(&p).join("a.txt");
    fs::set_permissions(&file, fs::Permissions::from_mode(0o644)).unwrap();
    fs::write(&file, "tampered\n").unwrap();
    let report = store.verify(None).unwrap();
    assert_eq!(report.checked, 2);
    assert!(matches!(&report.problems[..], [store::Problem::HashMismatch { path, .. }] if *path == p));
    // A NAR of other content is refused; the right one repairs.
    let mut wrong = Vec::new();
    store::nar::dump(&tmp.path().join("d/sub"), &mut wrong).unwrap();
    assert!(matches!(store.repair_from_nar(&p, &mut &wrong[..]), Err(StoreError::HashMismatch { .. })));
    let mut good = Vec::new();
    store::nar::dump(&d, &mut good).unwrap();
    store.repair_from_nar(&p, &mut &good[..]).unwrap();
    assert!(store.verify(None).unwrap().problems.is_empty());
    // The two copies share their three files after optimising; contents still verify.
    let report = store.optimise().unwrap();
    assert_eq!(report.files_linked, 2, "{report:?}");
    assert_eq!(report.bytes_saved, 6 + 18);
    let (a, b) = (store.physical_path(&p).join("a.txt"), store.physical_path(&copy).join("a.txt"));
    assert_eq!(fs::metadata(a).unwrap().ino(), fs::metadata(b).unwrap().ino());
    assert_eq!(fs::metadata(store.physical_path(&p).join("sub")).unwrap().mtime(), 1);
    assert!(store.verify(None).unwrap().problems.is_empty());
    assert_eq!(store.optimise().unwrap().files_linked, 0);
}
