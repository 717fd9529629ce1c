//! One conformance suite per trait, run against every implementation (as `object_store`'s
//! `integration.rs` and tantivy's directory tests): the local directory, RAM, and the
//! fault-injecting decorators with no rules (and with delays) around both. Then the behaviour
//! specific to each: reopening, temp-file sweeping, read-only mode and the lock (local), crash
//! simulation (RAM), and every kind of injected fault.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use crate::*;

fn blob_suite(s: &dyn BlobStore) {
    blob_suite_with(s, true);
}

/// [`BlobStore::put_assembled`]: parts from several threads in any order; a failing fill, a
/// refused check, holes, overlaps and parts outside the blob leave the name as it was.
fn assembled_suite(s: &dyn BlobStore) {
    let name = "segments/assembled.seg";
    let data: Vec<u8> = (0..100_003u32).map(|i| (i * 7 % 253) as u8).collect();
    let len = data.len() as u64;
    let parts: Vec<std::ops::Range<usize>> = (0..data.len())
        .step_by(9_000)
        .map(|a| a..(a + 9_000).min(data.len()))
        .rev()
        .collect();
    let all = |sink: &dyn crate::PartSink| -> crate::StoreResult<()> {
        let data = &data;
        std::thread::scope(|sc| {
            let hs: Vec<_> = parts
                .chunks(4)
                .map(|ps| {
                    sc.spawn(move || {
                        ps.iter()
                            .try_for_each(|r| sink.write_part(r.start as u64, &data[r.clone()]))
                    })
                })
                .collect();
            hs.into_iter().try_for_each(|h| h.join().expect("thread"))
        })
    };
    let seen = std::sync::Mutex::new(Vec::new());
    s.put_assembled(name, len, &all, &|b| {
        seen.lock().expect("lock").extend_from_slice(b.as_bytes());
        Ok(())
    })
    .expect("assembled");
    assert_eq!(
        *seen.lock().expect("lock"),
        data,
        "check saw the whole blob"
    );
    assert_eq!(s.open(name).expect("open").as_bytes(), &data[..]);
    assert!(
        !s.list("segments/")
            .expect("list")
            .iter()
            .any(|m| m.name.contains(".tmp"))
    );

    // Failures leave the earlier bytes.
    let refused = s.put_assembled(name, len, &all, &|_| Err("no thanks".into()));
    assert!(
        refused
            .expect_err("refused")
            .to_string()
            .contains("no thanks")
    );
    let failing = |_: &dyn crate::PartSink| -> crate::StoreResult<()> {
        Err(crate::StoreError::io(
            "fetching",
            "x",
            std::io::Error::other("gone"),
        ))
    };
    assert!(s.put_assembled(name, len, &failing, &|_| Ok(())).is_err());
    let hole = |sink: &dyn crate::PartSink| sink.write_part(0, &data[..10]);
    let e = s
        .put_assembled(name, len, &hole, &|_| Ok(()))
        .expect_err("hole");
    assert!(e.to_string().contains("end at byte 10"), "{e}");
    let overlap = |sink: &dyn crate::PartSink| {
        sink.write_part(0, &data)?;
        sink.write_part(5, &data[5..9])
    };
    let e = s
        .put_assembled(name, len, &overlap, &|_| Ok(()))
        .expect_err("overlap");
    assert!(e.to_string().contains("overlap"), "{e}");
    let outside = |sink: &dyn crate::PartSink| sink.write_part(len - 1, b"xy");
    let e = s
        .put_assembled(name, len, &outside, &|_| Ok(()))
        .expect_err("outside");
    assert!(e.to_string().contains("outside"), "{e}");
    assert_eq!(s.open(name).expect("unchanged").as_bytes(), &data[..]);
    assert!(
        !s.list("segments/")
            .expect("list")
            .iter()
            .any(|m| m.name.contains(".tmp"))
    );
    s.delete(name).expect("delete");
}

/// `if_match`: whether the backend supports [`PutMode::Update`] (object_store's local
/// filesystem does not; Strata's cold tier uses only overwrite and create-only).
fn blob_suite_with(s: &dyn BlobStore, if_match: bool) {
    assembled_suite(s);
    // Absent names.
    assert!(s.open("MANIFEST").expect_err("absent").is_not_found());
    assert!(s.head("MANIFEST").expect_err("absent").is_not_found());
    assert!(s.list("segments/").expect("list of nothing").is_empty());
    s.delete("segments/none.seg")
        .expect("deleting an absent name is fine");

    // Put, open, head, read ranges; nested names create their directory.
    let data: Vec<u8> = (0..70_000u32).map(|i| (i % 251) as u8).collect();
    let t1 = s
        .put("segments/a.seg", &data, PutMode::Overwrite)
        .expect("put");
    let b = s.open("segments/a.seg").expect("open");
    assert_eq!(b.as_bytes(), &data[..]);
    assert_eq!(b.as_bytes().as_ptr() as usize % 16, 0, "16-byte aligned");
    let h = s.head("segments/a.seg").expect("head");
    assert_eq!((h.size, &h.e_tag), (70_000, &t1));
    let got = s
        .read_ranges(
            "segments/a.seg",
            &[0..0, 0..1, 5..4101, 65_536..70_000, 69_999..70_000],
        )
        .expect("ranges");
    for (g, r) in got
        .iter()
        .zip([0..0, 0..1, 5..4101, 65_536..70_000, 69_999..70_000])
    {
        assert_eq!(&g[..], &data[r.start as usize..r.end as usize], "{r:?}");
    }
    for bad in [69_999..70_001, 70_001..70_002, u64::MAX - 1..u64::MAX] {
        let e = s
            .read_ranges("segments/a.seg", &[0..1, bad.clone()])
            .expect_err("past the end");
        assert_eq!(
            e.io_kind(),
            Some(io::ErrorKind::UnexpectedEof),
            "{bad:?}: {e}"
        );
    }
    // Empty blobs exist and are empty.
    s.put("segments/empty.seg", b"", PutMode::Overwrite)
        .expect("empty put");
    assert!(s.open("segments/empty.seg").expect("open").is_empty());

    // Overwrite changes the version; create-only refuses a taken name; if-match checks it.
    let t2 = s
        .put("segments/a.seg", b"second", PutMode::Overwrite)
        .expect("overwrite");
    assert_ne!(t1, t2);
    assert_eq!(
        s.open("segments/a.seg").expect("open").as_bytes(),
        b"second"
    );
    assert!(matches!(
        s.put("segments/a.seg", b"x", PutMode::Create),
        Err(StoreError::AlreadyExists { .. })
    ));
    assert_eq!(
        s.open("segments/a.seg").expect("open").as_bytes(),
        b"second"
    );
    if if_match {
        assert!(matches!(
            s.put("segments/a.seg", b"x", PutMode::Update(t1.clone())),
            Err(StoreError::Precondition { .. })
        ));
        let t3 = s
            .put("segments/a.seg", b"third", PutMode::Update(t2.clone()))
            .expect("if-match with the current version");
        assert_eq!(s.head("segments/a.seg").expect("head").e_tag, t3);
        assert!(
            matches!(
                s.put("MANIFEST", b"x", PutMode::Update(t3.clone())),
                Err(StoreError::Precondition { .. })
            ),
            "if-match on an absent blob"
        );
    } else {
        let e = s
            .put("segments/a.seg", b"x", PutMode::Update(t2.clone()))
            .expect_err("if-match unsupported");
        assert_eq!(e.io_kind(), Some(io::ErrorKind::Unsupported), "{e}");
        s.put("segments/a.seg", b"third", PutMode::Overwrite)
            .expect("overwrite");
    }
    s.put("MANIFEST", b"m1", PutMode::Create)
        .expect("create a free name");

    // List: direct children of the prefix only, sorted, with sizes.
    s.put("segments/sub/deep.seg", b"deep", PutMode::Overwrite)
        .expect("deep put");
    s.put("segments/0.seg", b"zero", PutMode::Overwrite)
        .expect("put");
    let names: Vec<(String, u64)> = s
        .list("segments/")
        .expect("list")
        .into_iter()
        .map(|m| (m.name, m.size))
        .collect();
    assert_eq!(
        names,
        vec![
            ("segments/0.seg".to_string(), 4),
            ("segments/a.seg".to_string(), 5),
            ("segments/empty.seg".to_string(), 0),
        ]
    );
    let root: Vec<String> = s
        .list("")
        .expect("list")
        .into_iter()
        .map(|m| m.name)
        .collect();
    assert_eq!(root, vec!["MANIFEST".to_string()]);

    // Delete is idempotent.
    s.delete("segments/a.seg").expect("delete");
    s.delete("segments/a.seg").expect("delete again");
    assert!(s.open("segments/a.seg").expect_err("gone").is_not_found());

    // Names that must never reach a backend.
    for bad in [
        "", "/abs", "a/../b", "./a", "a//b", "dir/", "x.tmp", "a\\b", "nul\0",
    ] {
        assert!(
            matches!(
                s.put(bad, b"x", PutMode::Overwrite),
                Err(StoreError::InvalidName { .. })
            ),
            "{bad:?} accepted"
        );
        assert!(s.open(bad).is_err(), "{bad:?} opened");
    }
    assert!(s.list("segments").is_err(), "a prefix ends with /");

    // Concurrent puts of different names and reads of one.
    let shared: Vec<u8> = vec![7u8; 10_000];
    s.put("segments/shared.seg", &shared, PutMode::Overwrite)
        .expect("put");
    std::thread::scope(|scope| {
        for t in 0..4u8 {
            scope.spawn(move || {
                for i in 0..20u8 {
                    let name = format!("segments/t{t}-{i}.seg");
                    s.put(&name, &[t, i], PutMode::Create).expect("put");
                    assert_eq!(s.open(&name).expect("open").as_bytes(), &[t, i]);
                    let r = s
                        .read_ranges("segments/shared.seg", &[100..200, 0..0])
                        .expect("read");
                    assert_eq!(r[0], vec![7u8; 100]);
                }
            });
        }
    });
    assert_eq!(s.list("segments/").expect("list").len(), 3 + 80);
}

fn log_suite(l: &dyn LogStore) {
    assert!(l.list().expect("list").is_empty());
    assert!(l.read("1.wal").expect_err("absent").is_not_found());
    assert!(l.len("1.wal").expect_err("absent").is_not_found());
    l.remove("1.wal").expect("removing an absent file is fine");

    let f = l
        .create("00000000000000000001.wal", b"HEADER")
        .expect("create");
    assert_eq!(l.read("00000000000000000001.wal").expect("read"), b"HEADER");
    f.write_at(6, b"abc").expect("append");
    f.write_at(9, b"defg").expect("append");
    assert_eq!(
        l.len("00000000000000000001.wal").expect("len"),
        13,
        "visible before sync"
    );
    f.sync().expect("sync");
    assert_eq!(
        l.read("00000000000000000001.wal").expect("read"),
        b"HEADERabcdefg"
    );
    f.set_len(8).expect("roll back");
    f.write_at(8, b"XY").expect("append after rollback");
    f.sync().expect("sync");
    assert_eq!(
        l.read("00000000000000000001.wal").expect("read"),
        b"HEADERabXY"
    );

    let g = l.create("00000000000000000000.wal", b"H0").expect("create");
    g.sync().expect("sync");
    assert_eq!(
        l.list().expect("list"),
        vec![
            "00000000000000000000.wal".to_string(),
            "00000000000000000001.wal".to_string()
        ]
    );
    l.sync_file("00000000000000000001.wal")
        .expect("sync a whole file");
    assert!(
        l.sync_file("00000000000000000009.wal")
            .expect_err("absent")
            .is_not_found()
    );
    l.truncate("00000000000000000001.wal", 7).expect("truncate");
    assert_eq!(
        l.read("00000000000000000001.wal").expect("read"),
        b"HEADERa"
    );
    // Reserved space reads as zeros; writes into it keep the size; a shorter reservation
    // changes nothing; set_len cuts it.
    let h = l
        .create("00000000000000000002.wal", b"HDR")
        .expect("create");
    h.allocate(64).expect("allocate");
    let got = l.read("00000000000000000002.wal").expect("read");
    assert!(
        got.len() == 3 || got.len() == 64,
        "either reserved or left to grow: {} bytes",
        got.len()
    );
    assert!(got[3..].iter().all(|b| *b == 0), "reserved bytes are zeros");
    h.write_at(3, b"abc").expect("write into reserved space");
    h.allocate(8).expect("a shorter reservation");
    h.sync().expect("sync");
    let got = l.read("00000000000000000002.wal").expect("read");
    assert_eq!(&got[..6], b"HDRabc");
    assert!(got[6..].iter().all(|b| *b == 0));
    // Reserving more past written bytes keeps them and the new space reads as zeros.
    h.allocate(200).expect("a longer reservation");
    let got = l.read("00000000000000000002.wal").expect("read");
    assert!(
        got.len() == 6 || got.len() == 200,
        "either reserved or left to grow: {} bytes",
        got.len()
    );
    assert_eq!(
        &got[..6],
        b"HDRabc",
        "a reservation never touches written bytes"
    );
    assert!(got[6..].iter().all(|b| *b == 0));
    assert_eq!(
        l.len("00000000000000000002.wal").expect("len"),
        got.len() as u64
    );
    h.set_len(6).expect("cut the reservation");
    assert_eq!(l.read("00000000000000000002.wal").expect("read"), b"HDRabc");
    l.remove("00000000000000000002.wal").expect("remove");
    // Creating an existing name replaces it.
    l.create("00000000000000000000.wal", b"NEW")
        .expect("re-create");
    assert_eq!(l.read("00000000000000000000.wal").expect("read"), b"NEW");
    l.remove("00000000000000000000.wal").expect("remove");
    assert_eq!(
        l.list().expect("list"),
        vec!["00000000000000000001.wal".to_string()]
    );
    for bad in ["", "a/b.wal", "../x.wal", "x.wal.tmp"] {
        assert!(l.create(bad, b"h").is_err(), "{bad:?} accepted");
    }
    // Appends from several threads to several files.
    std::thread::scope(|scope| {
        for t in 0..4u64 {
            scope.spawn(move || {
                let name = format!("{:020}.wal", 100 + t);
                let f = l.create(&name, b"h").expect("create");
                let mut off = 1;
                for i in 0..50u8 {
                    f.write_at(off, &[i; 10]).expect("write");
                    off += 10;
                }
                f.sync().expect("sync");
                assert_eq!(l.len(&name).expect("len"), off);
            });
        }
    });
    assert_eq!(l.list().expect("list").len(), 5);
}

fn local() -> (tempfile::TempDir, Storage) {
    let d = tempfile::tempdir().expect("tempdir");
    let s = Storage::open_local(d.path()).expect("open");
    (d, s)
}

#[test]
fn local_directory_conforms() {
    let (d, s) = local();
    blob_suite(&*s.blobs);
    log_suite(&*s.log);
    // `list` hides temporary files; the directory itself must not hold any either (failed
    // assembled puts remove theirs).
    let temp: Vec<_> = std::fs::read_dir(d.path().join("segments"))
        .expect("ls")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(crate::layout::TMP_SUFFIX))
        .collect();
    assert!(temp.is_empty(), "{temp:?}");
}

#[test]
fn memory_conforms() {
    let m = MemStorage::new();
    blob_suite(&*m.blobs);
    log_suite(&*m.log);
}

#[test]
fn fault_decorators_without_faults_conform() {
    let faults = Faults::new(1);
    faults.set_max_delay(Duration::from_micros(50));
    let m = MemStorage::new().storage().with_faults(&faults);
    blob_suite(&*m.blobs);
    log_suite(&*m.log);
    let (_d, s) = local();
    let s = s.with_faults(&Faults::new(2));
    blob_suite(&*s.blobs);
    log_suite(&*s.log);
    assert_eq!(faults.injected(), 0);
}

fn in_memory_object_store(prefix: &str) -> ObjectBlobStore {
    ObjectBlobStore::new(
        Arc::new(object_store::memory::InMemory::new()),
        prefix,
        "memory://",
    )
    .expect("runtime")
}

/// A test "manifest": the names it refers to, one a line (see [`line_refs`]).
fn lines(names: &[&str]) -> String {
    names.iter().map(|n| format!("{n}\n")).collect()
}

/// Reads every manifest as a newline-separated list of the blobs it names (for tiered tests).
fn line_refs() -> ManifestRefs {
    Arc::new(|b: &[u8]| {
        let s = std::str::from_utf8(b).ok()?;
        Some(
            s.lines()
                .filter(|l| !l.is_empty())
                .map(String::from)
                .collect(),
        )
    })
}

#[test]
fn object_stores_conform() {
    blob_suite(&in_memory_object_store(""));
    blob_suite(&in_memory_object_store("some/prefix"));
    let d = tempfile::tempdir().expect("tempdir");
    let file = ObjectBlobStore::open(&ColdConfig::new(format!(
        "file://{}/cold",
        d.path().display()
    )))
    .expect("file store");
    blob_suite_with(&file, false);
}

#[test]
fn s3_object_store_conforms() {
    let moto = testing::Moto::start();
    moto.create_bucket("conformance");
    let mut c = moto.config("conformance", "a/prefix");
    // Small parts: the 70 kB blob of the suite goes up as a real multipart upload.
    c.multipart_threshold = 1000;
    let s = ObjectBlobStore::open(&c).expect("s3 store");
    blob_suite(&s);
    assert!(
        s.location("MANIFEST")
            .starts_with("s3://conformance/a/prefix/")
    );
}

#[test]
fn tiered_stores_conform() {
    let t = TieredStore::open(
        Arc::new(MemStore::new()),
        Arc::new(MemStore::new()),
        line_refs(),
        TieredOptions::default(),
    )
    .expect("tiered");
    blob_suite(&t);
    let (_d, local) = local();
    let t = TieredStore::open(
        local.blobs,
        Arc::new(in_memory_object_store("cold")),
        line_refs(),
        TieredOptions::default(),
    )
    .expect("tiered");
    blob_suite(&t);
}

#[test]
fn tiered_uploads_fetches_restores_and_collects_garbage() {
    let cold: Arc<dyn BlobStore> = Arc::new(MemStore::new());
    let grace = Duration::from_secs(60);
    let opts = TieredOptions {
        retain_manifests: 2,
        gc_grace: grace,
    };
    let open = |local: Arc<dyn BlobStore>| {
        TieredStore::open(local, Arc::clone(&cold), line_refs(), opts.clone()).expect("open")
    };
    let local1: Arc<dyn BlobStore> = Arc::new(MemStore::new());
    let t = open(Arc::clone(&local1));
    assert_eq!(t.restored_generation(), None);
    let (a, b, c) = (layout::segment(1), layout::segment(2), layout::segment(3));
    t.put(&a, b"AAAA", PutMode::Overwrite).expect("put a");
    t.put(&b, b"BB", PutMode::Overwrite).expect("put b");
    assert_eq!(cold.open(&a).expect("uploaded").as_bytes(), b"AAAA");
    t.put(
        layout::MANIFEST,
        lines(&[&a, &b]).as_bytes(),
        PutMode::Overwrite,
    )
    .expect("manifest 1");
    t.put(&c, b"C", PutMode::Overwrite).expect("put c");
    t.put(
        layout::MANIFEST,
        lines(&[&a, &c]).as_bytes(),
        PutMode::Overwrite,
    )
    .expect("manifest 2");
    t.delete(&b).expect("delete b");
    assert!(t.open(&b).expect_err("deleted").is_not_found());
    assert!(cold.head(&b).is_ok(), "the cold copy waits for collection");
    let gens: Vec<String> = cold
        .list(layout::MANIFESTS)
        .expect("list")
        .into_iter()
        .map(|m| m.name)
        .collect();
    assert_eq!(
        gens,
        vec![
            layout::manifest_generation(1),
            layout::manifest_generation(2)
        ]
    );

    // Restore: an empty local store gets the newest manifest; segments are fetched on open.
    let local2: Arc<dyn BlobStore> = Arc::new(MemStore::new());
    let r = open(Arc::clone(&local2));
    assert_eq!(r.restored_generation(), Some(2));
    assert_eq!(
        local2.open(layout::MANIFEST).expect("restored").as_bytes(),
        lines(&[&a, &c]).as_bytes()
    );
    assert!(local2.head(&c).is_err(), "not local before first use");
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let r = &r;
            let c = c.clone();
            move || r.open(&c).expect("fetched").as_bytes().to_vec()
        })
        .collect();
    std::thread::scope(|s| {
        for f in threads {
            let h = s.spawn(f);
            assert_eq!(h.join().expect("join"), b"C");
        }
    });
    assert_eq!(local2.open(&c).expect("now local").as_bytes(), b"C");
    // The next manifest written continues the cold generations (create-only).
    r.put(
        layout::MANIFEST,
        lines(&[&a, &c]).as_bytes(),
        PutMode::Overwrite,
    )
    .expect("manifest 3");
    // A stale writer (the first store, still running) is fenced: generation 3 exists. The
    // fence holds for every later write and collection, not just this attempt.
    let e = t
        .put(layout::MANIFEST, b"stale", PutMode::Overwrite)
        .expect_err("fenced");
    assert!(e.to_string().contains("fenced"), "{e}");
    for _ in 0..2 {
        assert!(
            t.put(layout::MANIFEST, b"again", PutMode::Overwrite)
                .is_err()
        );
        assert!(
            t.put(&layout::segment(4), b"D", PutMode::Overwrite)
                .is_err()
        );
        assert!(t.collect_garbage(u64::MAX).is_err());
    }
    assert!(
        cold.head(&layout::segment(4)).is_err(),
        "a fenced store uploads nothing"
    );
    assert_eq!(cold.list(layout::MANIFESTS).expect("list").len(), 3);

    // GC: b is named by no retained manifest (2 and 3 name a, c; 1 is beyond retention).
    let now = 1_000_000;
    let first = r.collect_garbage(now).expect("gc");
    assert_eq!(
        (first.manifests_retained, first.unreferenced, first.deleted),
        (2, 2, 0)
    );
    assert!(cold.head(&b).is_ok(), "within the grace period");
    let later = r
        .collect_garbage(now + grace.as_millis() as u64)
        .expect("gc");
    assert_eq!(later.deleted, 2, "segment b and manifest generation 1");
    assert!(cold.head(&b).expect_err("collected").is_not_found());
    assert!(cold.head(&layout::manifest_generation(1)).is_err());
    for keep in [&a, &c] {
        assert!(
            cold.head(keep).is_ok(),
            "{keep} is named by a retained manifest"
        );
    }
    // An unreadable retained manifest stops collection: nothing is deleted in doubt.
    cold.put(&layout::manifest_generation(9), b"\xff", PutMode::Create)
        .expect("put");
    cold.put(&layout::segment(8), b"orphan", PutMode::Create)
        .expect("put");
    let refs_fail: ManifestRefs = Arc::new(|b: &[u8]| (b != b"\xff").then(Vec::new));
    assert!(
        TieredStore::open(
            Arc::new(MemStore::new()),
            Arc::clone(&cold),
            Arc::clone(&refs_fail),
            opts.clone()
        )
        .is_err(),
        "restore refuses an unreadable newest manifest"
    );
    let with_manifest: Arc<dyn BlobStore> = Arc::new(MemStore::new());
    with_manifest
        .put(layout::MANIFEST, b"", PutMode::Create)
        .expect("put");
    let strict = TieredStore::open(with_manifest, Arc::clone(&cold), refs_fail, opts.clone())
        .expect("a local manifest: no restore");
    assert!(strict.collect_garbage(u64::MAX).is_err());
    assert!(cold.head(&layout::segment(8)).is_ok(), "nothing deleted");
}

#[test]
fn tiered_never_collects_an_upload_in_flight_and_uploads_what_cold_lacks() {
    let cold: Arc<dyn BlobStore> = Arc::new(MemStore::new());
    let local: Arc<dyn BlobStore> = Arc::new(MemStore::new());
    // A segment written before the cold tier was configured.
    let old = layout::segment(1);
    local.put(&old, b"OLD", PutMode::Create).expect("put");
    let opts = TieredOptions {
        retain_manifests: 1,
        gc_grace: Duration::ZERO,
    };
    let t =
        TieredStore::open(Arc::clone(&local), Arc::clone(&cold), line_refs(), opts).expect("open");
    // An upload whose manifest is not written yet: even a zero grace does not take it.
    let fresh = layout::segment(2);
    t.put(&fresh, b"NEW", PutMode::Overwrite).expect("put");
    t.put(layout::MANIFEST, b"", PutMode::Overwrite)
        .expect("manifest");
    assert_eq!(t.collect_garbage(1).expect("gc").deleted, 0);
    assert_eq!(t.collect_garbage(2).expect("gc").deleted, 0);
    assert!(cold.head(&fresh).is_ok(), "pending uploads are kept");
    // Publishing a manifest that names the old local segment uploads it first.
    t.put(
        layout::MANIFEST,
        lines(&[&old, &fresh]).as_bytes(),
        PutMode::Overwrite,
    )
    .expect("manifest");
    assert_eq!(cold.open(&old).expect("uploaded").as_bytes(), b"OLD");
    // Conditional manifest puts are checked before anything reaches the cold store.
    let gens = cold.list(layout::MANIFESTS).expect("list").len();
    assert!(matches!(
        t.put(layout::MANIFEST, b"x", PutMode::Create),
        Err(StoreError::AlreadyExists { .. })
    ));
    assert_eq!(cold.list(layout::MANIFESTS).expect("list").len(), gens);
}

#[test]
fn local_data_survives_reopen_and_crash_leftovers_are_swept() {
    let d = tempfile::tempdir().expect("tempdir");
    {
        let s = Storage::open_local(d.path()).expect("open");
        s.blobs
            .put("MANIFEST", b"m", PutMode::Overwrite)
            .expect("put");
        s.blobs
            .put("segments/1.seg", b"seg", PutMode::Create)
            .expect("put");
        let f = s.log.create("1.wal", b"h").expect("create");
        f.write_at(1, b"rec").expect("write");
        f.sync().expect("sync");
    }
    std::fs::write(d.path().join("MANIFEST.77.0.tmp"), b"half").expect("w");
    std::fs::write(d.path().join("segments/2.seg.1.2.tmp"), b"half").expect("w");
    std::fs::write(d.path().join("wal/2.wal.3.4.tmp"), b"half").expect("w");
    let ro = Storage::open_local_read_only(d.path()).expect("read-only open");
    assert_eq!(ro.swept_temp_files, 3, "counted");
    assert!(matches!(
        ro.blobs.put("x", b"x", PutMode::Overwrite),
        Err(StoreError::ReadOnly { .. })
    ));
    assert!(matches!(
        ro.log.create("3.wal", b"h"),
        Err(StoreError::ReadOnly { .. })
    ));
    assert!(matches!(
        ro.log.truncate("1.wal", 1),
        Err(StoreError::ReadOnly { .. })
    ));
    drop(ro);
    assert!(
        d.path().join("MANIFEST.77.0.tmp").exists(),
        "read-only leaves them"
    );
    let s = Storage::open_local(d.path()).expect("reopen");
    assert_eq!(s.swept_temp_files, 3);
    assert!(!d.path().join("MANIFEST.77.0.tmp").exists());
    assert_eq!(s.blobs.open("MANIFEST").expect("open").as_bytes(), b"m");
    assert_eq!(
        s.blobs.open("segments/1.seg").expect("open").as_bytes(),
        b"seg"
    );
    assert_eq!(s.log.read("1.wal").expect("read"), b"hrec");
    assert_eq!(s.log.list().expect("list"), vec!["1.wal".to_string()]);
    assert!(Storage::open_local_read_only(&d.path().join("missing")).is_err());
}

#[test]
fn one_process_per_local_directory() {
    let (d, _s) = local();
    let e = Storage::open_local(d.path()).expect_err("locked");
    assert!(
        e.to_string().contains("in use by another Strata process"),
        "{e}"
    );
    drop(_s);
    Storage::open_local(d.path()).expect("free again");
}

#[test]
fn write_file_atomic_sets_mode_and_refuses_to_replace_when_asked() {
    use std::os::unix::fs::PermissionsExt;
    let d = tempfile::tempdir().expect("tempdir");
    let p = d.path().join("secret");
    write_file_atomic(&p, b"one", 0o600, Replace::CreateOnly).expect("create");
    let mode = std::fs::metadata(&p).expect("meta").permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    assert!(matches!(
        write_file_atomic(&p, b"two", 0o600, Replace::CreateOnly),
        Err(StoreError::AlreadyExists { .. })
    ));
    assert_eq!(std::fs::read(&p).expect("read"), b"one");
    write_file_atomic(&p, b"three", 0o600, Replace::Overwrite).expect("overwrite");
    assert_eq!(std::fs::read(&p).expect("read"), b"three");
    let left: Vec<_> = std::fs::read_dir(d.path()).expect("ls").collect();
    assert_eq!(left.len(), 1, "no temporary file left behind");
}

#[test]
fn a_memory_crash_keeps_synced_bytes_and_at_most_a_prefix_of_the_rest() {
    let m = MemStorage::new();
    let f = m.log.create("1.wal", b"H").expect("create");
    f.write_at(1, b"synced").expect("w");
    f.sync().expect("sync");
    f.write_at(7, b"unsynced").expect("w");
    assert_eq!(m.log.unsynced_bytes(), 8);
    m.blobs
        .put("MANIFEST", b"m", PutMode::Overwrite)
        .expect("put");
    m.crash(None);
    assert_eq!(m.log.read("1.wal").expect("read"), b"Hsynced");
    assert_eq!(m.blobs.open("MANIFEST").expect("open").as_bytes(), b"m");
    let f = m.log.create("2.wal", b"H").expect("create");
    f.write_at(1, b"0123456789").expect("w");
    m.crash(Some(9));
    let kept = m.log.read("2.wal").expect("read");
    assert!(
        kept.len() <= 11 && b"H0123456789".starts_with(&kept),
        "{kept:?}"
    );
    assert_eq!(m.log.unsynced_bytes(), 0);
    let f = m.log.create("3.wal", b"H").expect("create");
    f.write_at(1, b"abc").expect("w");
    m.log.sync_file("3.wal").expect("sync the whole file");
    m.crash(None);
    assert_eq!(m.log.read("3.wal").expect("read"), b"Habc");
}

fn mem_with(rule: FaultRule) -> (MemStorage, Storage, Arc<Faults>) {
    let m = MemStorage::new();
    let faults = Faults::new(7);
    faults.add(rule);
    let s = m.storage().with_faults(&faults);
    (m, s, faults)
}

#[test]
fn nth_faults_fire_once_and_from_faults_persist() {
    let (_m, s, faults) = mem_with(
        FaultRule::new(FaultOp::Rename, Trigger::Nth(2))
            .fault(Fault::Error(io::ErrorKind::StorageFull)),
    );
    s.blobs
        .put("a", b"1", PutMode::Overwrite)
        .expect("first rename fine");
    let e = s
        .blobs
        .put("b", b"2", PutMode::Overwrite)
        .expect_err("second fails");
    assert_eq!(e.io_kind(), Some(io::ErrorKind::StorageFull));
    assert!(e.to_string().contains("injected"), "{e}");
    assert!(
        s.blobs
            .open("b")
            .expect_err("a failed rename leaves nothing")
            .is_not_found()
    );
    s.blobs
        .put("b", b"2", PutMode::Overwrite)
        .expect("third fine");
    assert_eq!(faults.injected(), 1);

    let (_m, s, _f) = mem_with(FaultRule::new(FaultOp::Sync, Trigger::From(1)).on("wal"));
    s.blobs
        .put("MANIFEST", b"m", PutMode::Overwrite)
        .expect("not a wal: unaffected");
    let f = s.log.create("1.wal", b"h");
    assert!(f.is_err(), "create syncs");
    for _ in 0..3 {
        assert!(
            s.log.remove("1.wal").is_err(),
            "every sync fails from then on"
        );
    }
}

#[test]
fn a_failed_directory_fsync_is_ambiguous_the_change_happened() {
    // put = write, sync, rename, then the directory sync: the 2nd sync is the directory's.
    let (_m, s, _f) = mem_with(FaultRule::new(FaultOp::Sync, Trigger::Nth(2)));
    assert!(s.blobs.put("MANIFEST", b"new", PutMode::Overwrite).is_err());
    assert_eq!(
        s.blobs.open("MANIFEST").expect("visible").as_bytes(),
        b"new"
    );
}

#[test]
fn failed_log_writes_leave_a_prefix_and_failed_syncs_lose_on_crash() {
    let (m, s, _f) = mem_with(FaultRule::new(FaultOp::Write, Trigger::Nth(2)));
    // create = 1st write step; the append is the 2nd.
    let f = s.log.create("1.wal", b"H").expect("create");
    assert!(f.write_at(1, b"0123456789").is_err());
    let got = m.log.read("1.wal").expect("read");
    assert!(
        b"H0123456789".starts_with(&got) && got.len() < 12,
        "{got:?}"
    );

    let (m, s, _f) = mem_with(FaultRule::new(FaultOp::Sync, Trigger::Nth(3)));
    let f = s.log.create("1.wal", b"H").expect("create: syncs 1 and 2");
    f.write_at(1, b"abc").expect("write");
    assert!(f.sync().is_err());
    m.crash(None);
    assert_eq!(
        m.log.read("1.wal").expect("read"),
        b"H",
        "nothing past the failed sync survives"
    );
}

#[test]
fn short_reads_return_fewer_bytes_without_an_error() {
    let (_m, s, _f) =
        mem_with(FaultRule::new(FaultOp::Read, Trigger::From(1)).fault(Fault::ShortRead));
    s.blobs
        .put("b", &[1u8; 100], PutMode::Overwrite)
        .expect("put");
    assert!(s.blobs.open("b").expect("open").len() < 100);
    let r = s.blobs.read_ranges("b", &[0..10, 10..60]).expect("read");
    assert_eq!(r[0].len(), 10);
    assert!(r[1].len() < 50);
    let f = s.log.create("1.wal", &[2u8; 64]).expect("create");
    f.sync().expect("sync");
    assert!(s.log.read("1.wal").expect("read").len() < 64);
}

#[test]
fn chance_faults_replay_exactly_from_their_seed() {
    let run = |seed: u64| {
        let faults = Faults::new(seed);
        faults.add(FaultRule::new(FaultOp::Write, Trigger::Chance(0.3)));
        faults.add(FaultRule::new(FaultOp::Read, Trigger::Chance(0.2)).fault(Fault::ShortRead));
        let s = MemStorage::new().storage().with_faults(&faults);
        let mut outcomes = Vec::new();
        for i in 0..200u32 {
            let name = format!("b{i}");
            outcomes.push(
                s.blobs
                    .put(&name, &i.to_le_bytes(), PutMode::Overwrite)
                    .is_ok(),
            );
            outcomes.push(s.blobs.open(&name).map(|b| b.len()).unwrap_or(99) == 4);
        }
        (outcomes, faults.history())
    };
    let (a, ha) = run(11);
    assert_eq!((a.clone(), ha.clone()), run(11), "same seed, same faults");
    assert_ne!(a, run(12).0, "another seed, other faults");
    let failed = a.iter().step_by(2).filter(|ok| !**ok).count();
    assert!(
        (30..90).contains(&failed),
        "{failed} of 200 puts failed at p = 0.3"
    );
}

#[test]
#[should_panic(expected = "injected panic")]
fn panics_are_injected_too() {
    let (_m, s, _f) = mem_with(FaultRule::new(FaultOp::Write, Trigger::Nth(1)).fault(Fault::Panic));
    let _ = s.blobs.put("a", b"x", PutMode::Overwrite);
}

#[test]
fn tiered_evicts_only_what_cold_holds_and_promotes_verified_without_resurrecting_deletes() {
    // Over a local store in RAM (parts assembled on the heap) and over a local directory
    // (parts written straight into the temporary file).
    tiered_moves(Arc::new(MemStore::new()));
    let (_d, s) = local();
    tiered_moves(Arc::clone(&s.blobs));
}

fn tiered_moves(local: Arc<dyn BlobStore>) {
    let cold: Arc<dyn BlobStore> = Arc::new(MemStore::new());
    let t = TieredStore::open(
        Arc::clone(&local),
        Arc::clone(&cold),
        line_refs(),
        TieredOptions::default(),
    )
    .expect("open");
    let (a, b) = (layout::segment(1), layout::segment(2));
    // Big enough for several parallel parts (8 MiB each).
    let big: Vec<u8> = (0..20_000_000u32).map(|i| (i % 251) as u8).collect();
    t.put(&a, &big, PutMode::Overwrite).expect("put a");
    t.put(&b, b"BB", PutMode::Overwrite).expect("put b");
    assert!(t.is_local(&a).expect("local"));

    // Evict: refused when the size the caller expects differs, or the cold copy is gone.
    assert!(t.evict(&a, 5).is_err());
    assert!(t.is_local(&a).expect("kept"));
    cold.delete(&b).expect("lifecycle rule removes b");
    assert!(t.evict(&b, 2).is_err(), "no cold copy: the local one stays");
    assert_eq!(local.open(&b).expect("kept").as_bytes(), b"BB");
    t.evict(&a, big.len() as u64).expect("evict a");
    assert!(!t.is_local(&a).expect("gone locally"));
    assert_eq!(t.head(&a).expect("still listed").size, big.len() as u64);

    // Streaming reads leave nothing local.
    let got = t
        .read_cold(&a, &[3..7, 10_000_000..10_000_002])
        .expect("stream");
    assert_eq!(
        got,
        vec![big[3..7].to_vec(), big[10_000_000..10_000_002].to_vec()]
    );
    assert!(!t.is_local(&a).expect("still cold"));

    // Promotion: the verifier sees the whole object (assembled from parts) before it is
    // written; a refusal writes nothing.
    let refused = t
        .promote(&a, big.len() as u64, &|_| Err("checksum says no".into()))
        .expect_err("refused")
        .to_string();
    assert!(
        refused.contains("checksum says no") && refused.contains(&cold.location(&a)),
        "{refused}"
    );
    assert!(!t.is_local(&a).expect("nothing written"));
    t.promote(&a, big.len() as u64, &|blob| {
        if blob.as_bytes() == &big[..] {
            Ok(())
        } else {
            Err(format!("{} bytes differ", blob.len()))
        }
    })
    .expect("promote");
    assert_eq!(local.open(&a).expect("local again").as_bytes(), &big[..]);

    // A deleted name is never promoted back (it would be an orphan), though its cold copy is
    // still streamed until garbage collection.
    t.evict(&a, big.len() as u64).expect("evict again");
    t.delete(&a).expect("delete");
    assert!(
        t.promote(&a, big.len() as u64, &|_| Ok(()))
            .expect_err("deleted")
            .is_not_found()
    );
    assert!(!t.is_local(&a).expect("not resurrected"));
    assert_eq!(
        t.read_cold(&a, std::slice::from_ref(&(0..2)))
            .expect("stream")
            .len(),
        1
    );

    // Derived data (a meta file) is replaced in both places, not treated as a conflict.
    let m = layout::segment_meta(3);
    t.put(&m, b"old", PutMode::Overwrite).expect("put meta");
    t.replace_derived(&m, b"rebuilt").expect("replace");
    assert_eq!(cold.open(&m).expect("cold").as_bytes(), b"rebuilt");
    assert_eq!(local.open(&m).expect("local").as_bytes(), b"rebuilt");
    assert!(t.fenced().is_none());
}

#[test]
fn object_store_faults_stalls_and_resets_mid_upload_fail_cleanly_and_lose_nothing() {
    use crate::{FaultyObjectStore, ObjectFaults};
    let mem: Arc<dyn object_store::ObjectStore> = Arc::new(object_store::memory::InMemory::new());
    let faulty = Arc::new(FaultyObjectStore::new(Arc::clone(&mem), 3));
    let s = ObjectBlobStore::new(
        Arc::clone(&faulty) as Arc<dyn object_store::ObjectStore>,
        "p",
        "memory://",
    )
    .expect("runtime")
    .with_op_timeout(Duration::from_millis(200))
    .with_multipart(1000, 1000);
    let name = layout::segment(1);
    let data: Vec<u8> = (0..10_000u32).map(|i| (i % 253) as u8).collect();

    // A call that stalls past the timeout fails with TimedOut instead of hanging its caller.
    faulty.set(ObjectFaults {
        stall_chance: 1.0,
        stall: Duration::from_secs(5),
        ..ObjectFaults::default()
    });
    let started = std::time::Instant::now();
    let err = s.put(&name, &data, PutMode::Create).expect_err("stalled");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    match &err {
        StoreError::Io { source, .. } => assert_eq!(source.kind(), std::io::ErrorKind::TimedOut),
        other => panic!("{other:?}"),
    }
    faulty.clear();
    assert!(s.head(&name).is_err() || s.open(&name).expect("open").as_bytes() == &data[..]);

    // A reset in the middle of a multipart upload (part 4 of 10): the put fails, the upload is
    // aborted, nothing half-written is visible, and a retry succeeds and verifies.
    let other = layout::segment(2);
    faulty.set(ObjectFaults {
        reset_part: Some(4),
        ..ObjectFaults::default()
    });
    let err = s.put(&other, &data, PutMode::Create).expect_err("reset");
    assert!(err.to_string().contains("reset"), "{err}");
    assert!(s.open(&other).expect_err("nothing visible").is_not_found());
    s.put(&other, &data, PutMode::Create).expect("retry");
    assert_eq!(s.open(&other).expect("open").as_bytes(), &data[..]);
    assert!(faulty.injected() >= 2);

    // Errors on 30 % of calls: every call either fails or is right.
    faulty.set(ObjectFaults {
        error_chance: 0.3,
        ..ObjectFaults::default()
    });
    let (mut ok, mut failed) = (0, 0);
    for i in 10..60u64 {
        let n = layout::segment(i);
        let bytes = vec![i as u8; 1500 + i as usize];
        match s.put(&n, &bytes, PutMode::Overwrite) {
            Ok(_) => ok += 1,
            Err(_) => failed += 1,
        }
        if let Ok(b) = s.open(&n) {
            assert_eq!(b.as_bytes(), &bytes[..], "a successful read is right");
        }
    }
    assert!(ok > 0 && failed > 0, "{ok} {failed}");
}

#[test]
fn an_assembled_put_under_a_fault_changes_nothing_and_the_retry_lands() {
    let (_d, s) = local();
    let faults = Faults::new(3);
    faults.add(FaultRule::new(FaultOp::Rename, Trigger::Nth(1)).on("assembled"));
    let f = FaultyStore::new(Arc::clone(&s.blobs), Arc::clone(&faults));
    let name = "segments/assembled.seg";
    let fill = |sink: &dyn crate::PartSink| sink.write_part(0, b"abc");
    let e = f
        .put_assembled(name, 3, &fill, &|_| Ok(()))
        .expect_err("injected");
    assert!(e.to_string().contains("injected"), "{e}");
    assert!(f.open(name).expect_err("absent").is_not_found());
    f.put_assembled(name, 3, &fill, &|_| Ok(()))
        .expect("the retry");
    assert_eq!(f.open(name).expect("open").as_bytes(), b"abc");
}

#[test]
fn a_failing_read_back_of_a_taken_cold_name_is_an_error_to_retry_not_a_fence() {
    // A retried upload whose first attempt landed finds the name taken and reads the object
    // back to compare; when that read fails, the put fails (and is retried), the store is not
    // fenced.
    let mem: Arc<dyn BlobStore> = Arc::new(MemStore::new());
    let faults = Faults::new(7);
    let cold: Arc<dyn BlobStore> =
        Arc::new(FaultyStore::new(Arc::clone(&mem), Arc::clone(&faults)));
    let t = TieredStore::open(
        Arc::new(MemStore::new()),
        Arc::clone(&cold),
        line_refs(),
        TieredOptions::default(),
    )
    .expect("open");
    let seg = layout::segment(1);
    mem.put(&seg, b"A", PutMode::Create)
        .expect("the first attempt landed");
    faults.add(FaultRule::new(FaultOp::Read, Trigger::Nth(1)).on(seg.as_str()));
    let e = t
        .put(&seg, b"A", PutMode::Overwrite)
        .expect_err("the read-back failed");
    assert!(!e.to_string().contains("fenced"), "{e}");
    assert!(
        t.fenced().is_none(),
        "one failed read is no proof of another writer"
    );
    t.put(&seg, b"A", PutMode::Overwrite)
        .expect("the retry sees its own bytes");
    // The same for a manifest generation that landed before its answer was lost.
    let manifest = seg.clone() + "\n";
    mem.put(
        &layout::manifest_generation(1),
        manifest.as_bytes(),
        PutMode::Create,
    )
    .expect("landed");
    faults.add(FaultRule::new(FaultOp::Read, Trigger::Nth(1)).on(layout::MANIFESTS));
    let e = t
        .put(layout::MANIFEST, manifest.as_bytes(), PutMode::Overwrite)
        .expect_err("the read-back failed");
    assert!(!e.to_string().contains("fenced"), "{e}");
    assert!(t.fenced().is_none());
    t.put(layout::MANIFEST, manifest.as_bytes(), PutMode::Overwrite)
        .expect("the retry writes the next generation");
    // Other bytes under a taken name still fence.
    let other = layout::segment(2);
    mem.put(&other, b"theirs", PutMode::Create).expect("put");
    let e = t.put(&other, b"ours", PutMode::Create).expect_err("fenced");
    assert!(e.to_string().contains("fenced"), "{e}");
    assert!(t.fenced().is_some());
}
