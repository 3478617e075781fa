//! The raw source's reading order, read-ahead, gaps and progress.

use super::*;

#[test]
fn file_names() {
    let p = file_name_pattern();
    let c = p
        .captures("dbserver1.public.t+3+0000000120.keys.json.gz")
        .unwrap();
    assert_eq!(&c["topic"], "dbserver1.public.t");
    assert_eq!(&c["partition"], "3");
    assert_eq!(&c["offset"], "0000000120");
    assert!(c.name("keys").is_some());
    // The S3 sink's other formats: Avro, Parquet with its codec's name, ByteArray.
    for name in [
        "t+0+0000000000.avro",
        "t+0+0000000000.keys.avro",
        "t+0+0000000000.parquet",
        "t+0+0000000000.snappy.parquet",
        "t+0+0000000000.keys.gz.parquet",
        "t+0+0000000000.zstd.parquet",
        "t+0+0000000000.bin",
        "t+0+0000000000.keys.bin.gz",
    ] {
        let c = p.captures(name).unwrap_or_else(|| panic!("{name}"));
        assert_eq!(c.name("keys").is_some(), name.contains(".keys."), "{name}");
    }
    for name in [
        "readme.txt",
        "t+0+0.csv",
        "t+0+0.txt.parquet",
        "t+0+0.bin.zst",
    ] {
        assert!(p.captures(name).is_none(), "{name}");
    }
}

#[test]
fn lines() {
    let b = Bytes::from_static(b"a\r\nb\n\nc");
    let l = split_lines(&b);
    assert_eq!(
        l,
        vec![
            Bytes::from("a"),
            Bytes::from("b"),
            Bytes::from(""),
            Bytes::from("c")
        ]
    );
}

/// Files of two partitions, `n` records of offsets `start..` each.
fn layout(dir: &std::path::Path, files: usize, n: i64) {
    for p in 0..2 {
        let d = dir.join(format!("t/partition={p}"));
        std::fs::create_dir_all(&d).unwrap();
        for f in 0..files as i64 {
            let lines: Vec<String> = (0..n).map(|i| format!("{}", f * n + i)).collect();
            let name = format!("t+{p}+{:010}.json", f * n);
            std::fs::write(d.join(name), lines.join("\n")).unwrap();
        }
    }
}

#[tokio::test]
async fn read_ahead_keeps_the_order_and_a_seek_skips_what_it_read() {
    let dir = tempfile::tempdir().unwrap();
    layout(dir.path(), 6, 3);
    let mut source = RawFileSource::open(dir.path().to_str().unwrap())
        .await
        .unwrap();
    let first = source.next_file().await.unwrap().unwrap();
    assert_eq!((first[0].partition, first[0].offset), (0, 0));
    assert!(!source.ahead.is_empty(), "the next files are being read");
    // A seek of partition 1 (already read ahead) to offset 10: files from 9 on, records
    // from 10.
    source.seek("t", 1, 10);
    let mut seen: Vec<(i32, i64)> = Vec::new();
    while let Some(records) = source.next_file().await.unwrap() {
        for r in records {
            assert_eq!(r.value.as_deref(), Some(r.offset.to_string().as_bytes()));
            seen.push((r.partition, r.offset));
        }
    }
    let of = |p: i32| -> Vec<i64> {
        seen.iter()
            .filter(|(q, _)| *q == p)
            .map(|(_, o)| *o)
            .collect()
    };
    assert_eq!(of(0), (3..18).collect::<Vec<_>>());
    assert_eq!(of(1), (10..18).collect::<Vec<_>>());
    assert_eq!(source.ahead_bytes, 0);
}

/// Reads every file; the first gap error ends the read.
async fn read_until_gap(source: &mut RawFileSource) -> (Vec<(i32, i64)>, Option<Error>) {
    let mut seen = Vec::new();
    loop {
        match source.next_file().await {
            Ok(Some(records)) => seen.extend(records.iter().map(|r| (r.partition, r.offset))),
            Ok(None) => return (seen, None),
            Err(e) => return (seen, Some(e)),
        }
    }
}

#[tokio::test]
async fn a_missing_file_is_a_gap_unless_gaps_are_allowed() {
    let dir = tempfile::tempdir().unwrap();
    layout(dir.path(), 6, 3);
    for p in 0..2 {
        let file = format!("t/partition={p}/t+{p}+0000000006.json");
        std::fs::remove_file(dir.path().join(file)).unwrap();
    }
    let open = || RawFileSource::open(dir.path().to_str().unwrap());
    let gap = |e: Option<Error>| match e {
        Some(Error::OffsetGap {
            partition,
            first,
            last,
            ..
        }) => (partition, first, last),
        other => panic!("not a gap: {other:?}"),
    };

    // From the beginning: offsets 6..=8 are in no file.
    let mut source = open().await.unwrap();
    let (_, err) = read_until_gap(&mut source).await;
    assert_eq!(gap(err), (0, 6, 8));

    // From a checkpoint inside the missing file: 7..=8.
    let mut source = open().await.unwrap();
    source.seek("t", 1, 7);
    let (_, err) = read_until_gap(&mut source).await;
    assert_eq!(gap(err), (1, 7, 8));

    // Allowed: everything the files hold, from the checkpoint on.
    let mut source = open().await.unwrap();
    source.allow_gaps(true);
    source.seek("t", 1, 7);
    let (seen, err) = read_until_gap(&mut source).await;
    assert!(err.is_none(), "{err:?}");
    let of = |p: i32| -> Vec<i64> {
        let mut o: Vec<i64> = seen
            .iter()
            .filter(|(q, _)| *q == p)
            .map(|(_, o)| *o)
            .collect();
        o.sort();
        o
    };
    assert_eq!(
        of(0),
        [(0..6).collect::<Vec<_>>(), (9..18).collect()].concat()
    );
    assert_eq!(of(1), (9..18).collect::<Vec<_>>());
}

#[tokio::test]
async fn progress_counts_the_files_from_the_checkpoint_on() {
    let dir = tempfile::tempdir().unwrap();
    layout(dir.path(), 4, 3);
    let mut source = RawFileSource::open(dir.path().to_str().unwrap())
        .await
        .unwrap();
    let sizes = |p: i32, from: usize| -> u64 {
        let files = &source.partitions[&("t".to_string(), p)].files;
        files[from..].iter().map(|f| f.size).sum()
    };
    // Partition 1 resumes at offset 6: its first two files are not read.
    let bytes = sizes(0, 0) + sizes(1, 2);
    let positions = [
        (("t".to_string(), 0), None),
        (("t".to_string(), 1), Some(6)),
    ];
    Source::start(&mut source, &positions).await.unwrap();
    assert_eq!(source.progress().snapshot(), (0, 6, 0, bytes));
    while source.next_file().await.unwrap().is_some() {}
    assert_eq!(source.progress().snapshot(), (6, 6, bytes, bytes));
}

/// A `.json` and an `.avro` file of the same partition and start offset: which holds the
/// records cannot be told, so the listing is an error naming both.
#[tokio::test]
async fn two_files_at_one_offset_are_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let files = dir.path().join("t").join("partition=0");
    std::fs::create_dir_all(&files).unwrap();
    std::fs::write(files.join("t+0+0000000000.json"), "null\n").unwrap();
    std::fs::write(files.join("t+0+0000000000.json.gz"), "").unwrap();
    let e = match RawFileSource::open(dir.path().to_str().unwrap()).await {
        Err(e) => e.to_string(),
        Ok(_) => panic!("two files at one offset were accepted"),
    };
    assert!(
        e.contains("t+0+0000000000.json") && e.contains("same offset"),
        "{e}"
    );
}
