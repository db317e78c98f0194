//! Checkpoints and metrics files: bit-exact round trips, atomic replacement,
//! typed errors for every kind of damaged file (never a panic), and the
//! metrics history that a resumed run restores.

use std::fs;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::support::files::{mutate, Scratch};
use proptest::prelude::*;
use smoothout_models::train::{
    history_from_str, history_to_string, load_checkpoint, load_checkpoint_with, save_checkpoint,
    write_atomic, write_metrics, Checkpoint, EpochMetrics, LoadOptions, TensorData, TrainError,
};

/// A fresh directory `smoothout-train-ckpt-<pid>-<tag>-<n>`, removed on drop.
fn scratch(tag: &str) -> Scratch {
    Scratch::new("smoothout-train-ckpt", tag)
}

/// f32 values whose bits are easy to lose: signed zeros, subnormals,
/// extremes, infinities and NaNs with payloads (quiet and signalling).
fn awkward_f32() -> Vec<f32> {
    let mut v = vec![
        0.0,
        -0.0,
        1.0,
        -1.5,
        f32::MIN_POSITIVE,
        f32::from_bits(1),            // smallest subnormal
        -f32::from_bits(0x007f_ffff), // largest subnormal, negative
        f32::MAX,
        f32::MIN,
        f32::EPSILON,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
        f32::from_bits(0x7fc1_2345), // quiet NaN with payload
        f32::from_bits(0xffc0_0001), // negative quiet NaN
        f32::from_bits(0x7f80_0001), // signalling NaN
    ];
    v.extend((0..20).map(|i| (i as f32 * 0.37).sin()));
    v
}

fn awkward_f64() -> Vec<f64> {
    let mut v = vec![
        0.0,
        -0.0,
        1.0,
        0.1,
        f64::MIN_POSITIVE,
        f64::from_bits(1),
        -f64::from_bits(0x000f_ffff_ffff_ffff),
        f64::MAX,
        f64::MIN,
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::NAN,
        f64::from_bits(0x7ff8_dead_beef_0001),
        f64::from_bits(0xfff0_0000_0000_0001),
    ];
    v.extend((0..18).map(|i| (f64::from(i) * 0.37).cos()));
    v
}

fn bits_f32(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

fn bits_f64(v: &[f64]) -> Vec<u64> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// A small but varied checkpoint: both precisions, a scalar, an empty
/// tensor, metadata with awkward characters.
fn sample_checkpoint() -> Checkpoint {
    let mut c = Checkpoint::new();
    let w32 = awkward_f32();
    c.push("layer.0.weight", &[4, w32.len() / 4], TensorData::F32(w32));
    c.push(
        "layer.0.bias",
        &[3],
        TensorData::F32(vec![0.5, -0.25, 1e-40]),
    );
    c.push("optim.step", &[], TensorData::F64(vec![1234.0]));
    c.push("empty", &[0, 5], TensorData::F32(vec![]));
    let w64 = awkward_f64();
    c.push("z.double", &[w64.len()], TensorData::F64(w64));
    c.metadata.insert("epoch".into(), "12".into());
    c.metadata.insert(
        "config".into(),
        "{\"lr\": 0.1, \"name\": \"ünï\\n\"}\nline2".into(),
    );
    c.metadata.insert(String::new(), "empty key".into());
    c
}

/// The bytes of `sample_checkpoint` as saved (written once per process).
fn sample_bytes() -> Vec<u8> {
    static BYTES: OnceLock<Vec<u8>> = OnceLock::new();
    BYTES
        .get_or_init(|| {
            let dir = scratch("sample");
            let path = dir.path("s.safetensors");
            save_checkpoint(&path, &sample_checkpoint()).unwrap();
            fs::read(&path).unwrap()
        })
        .clone()
}

/// Saves `sample_checkpoint` into a fresh scratch directory `tag` and
/// loads it back: the directory (removed when dropped), the file, what was
/// saved and what was loaded.
fn sample_round_trip(tag: &str) -> (Scratch, PathBuf, Checkpoint, Checkpoint) {
    let dir = scratch(tag);
    let path = dir.path("ckpt.safetensors");
    let saved = sample_checkpoint();
    save_checkpoint(&path, &saved).unwrap();
    let loaded = load_checkpoint(&path).unwrap();
    (dir, path, saved, loaded)
}

/// Writes `bytes` to a file and loads it.
fn load_bytes(bytes: &[u8]) -> Result<Checkpoint, TrainError> {
    load_bytes_with(bytes, LoadOptions::default())
}

/// Writes `bytes` to a file and loads it with `options`.
fn load_bytes_with(bytes: &[u8], options: LoadOptions) -> Result<Checkpoint, TrainError> {
    let dir = scratch("bytes");
    let path = dir.path("x.safetensors");
    fs::write(&path, bytes).unwrap();
    load_checkpoint_with(&path, options)
}

/// Loading that accepts files without checksums (hand-written ones).
const ACCEPT: LoadOptions = LoadOptions {
    accept_unchecked: true,
};

/// Whether two checkpoints hold the same tensors (bit for bit, NaNs
/// included) and metadata.
pub(super) fn same_checkpoint(a: &Checkpoint, b: &Checkpoint) -> bool {
    let bits = |d: &TensorData| -> Vec<u64> {
        match d {
            TensorData::F32(v) => v.iter().map(|x| u64::from(x.to_bits())).collect(),
            TensorData::F64(v) => v.iter().map(|x| x.to_bits()).collect(),
        }
    };
    a.metadata == b.metadata
        && a.tensors.len() == b.tensors.len()
        && a.tensors.iter().all(|(name, shape, data)| {
            b.tensor(name).is_some_and(|(s, d)| {
                s == shape.as_slice()
                    && core::mem::discriminant(d) == core::mem::discriminant(data)
                    && bits(d) == bits(data)
            })
        })
}

/// The header of a safetensors file as JSON, and where the data start.
fn split_file(bytes: &[u8]) -> (serde_json::Map<String, serde_json::Value>, usize) {
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value =
        serde_json::from_str(std::str::from_utf8(&bytes[8..8 + n]).unwrap()).unwrap();
    let serde_json::Value::Object(map) = header else {
        panic!("the header is an object")
    };
    (map, 8 + n)
}

/// Where the data start, and each tensor's bytes in the file.
pub(super) fn layout(bytes: &[u8]) -> (usize, Vec<(String, Range<usize>)>) {
    let (header, start) = split_file(bytes);
    let mut tensors = Vec::new();
    for (name, info) in &header {
        if name == "__metadata__" {
            continue;
        }
        let o = info["data_offsets"].as_array().unwrap();
        let (a, b) = (
            o[0].as_u64().unwrap() as usize,
            o[1].as_u64().unwrap() as usize,
        );
        tensors.push((name.clone(), start + a..start + b));
    }
    (start, tensors)
}

/// `bytes` with its header replaced by `header` (the data unchanged).
fn with_header(bytes: &[u8], header: &serde_json::Map<String, serde_json::Value>) -> Vec<u8> {
    let (_, data_start) = split_file(bytes);
    let text = serde_json::to_string(header).unwrap();
    raw_file(&text, &bytes[data_start..])
}

/// A safetensors file assembled by hand from a header string and data.
fn raw_file(header: &str, data: &[u8]) -> Vec<u8> {
    let mut b = (header.len() as u64).to_le_bytes().to_vec();
    b.extend_from_slice(header.as_bytes());
    b.extend_from_slice(data);
    b
}

fn checkpoint_reason(r: Result<Checkpoint, TrainError>) -> String {
    match r {
        Err(TrainError::Checkpoint { reason, .. }) => reason,
        other => panic!("expected TrainError::Checkpoint, got {other:?}"),
    }
}

#[test]
fn round_trip_is_bit_exact_for_f32_and_f64() {
    let (_dir, path, saved, loaded) = sample_round_trip("roundtrip");

    assert_eq!(loaded.tensors.len(), saved.tensors.len());
    for (name, shape, data) in &saved.tensors {
        let (lshape, ldata) = loaded.tensor(name).unwrap();
        assert_eq!(lshape, shape.as_slice(), "{name}");
        match (data, ldata) {
            (TensorData::F32(a), TensorData::F32(b)) => assert_eq!(bits_f32(a), bits_f32(b)),
            (TensorData::F64(a), TensorData::F64(b)) => assert_eq!(bits_f64(a), bits_f64(b)),
            _ => panic!("{name}: precision changed"),
        }
    }
    // And through `to_vec` into the run's element type.
    let (_, w) = loaded.tensor("layer.0.weight").unwrap();
    let w: Vec<f32> = w.to_vec(&path, "layer.0.weight").unwrap();
    assert_eq!(bits_f32(&w), bits_f32(&awkward_f32()));
    let (_, d) = loaded.tensor("z.double").unwrap();
    let d: Vec<f64> = d.to_vec(&path, "z.double").unwrap();
    assert_eq!(bits_f64(&d), bits_f64(&awkward_f64()));
}

#[test]
fn from_slice_and_to_vec_are_inverse() {
    let p = Path::new("mem");
    let a = awkward_f32();
    let d = TensorData::from_slice(&a);
    assert_matches!(d, TensorData::F32(_));
    assert_eq!(d.len(), a.len());
    assert_eq!(bits_f32(&d.to_vec::<f32>(p, "a").unwrap()), bits_f32(&a));
    let b = awkward_f64();
    let d = TensorData::from_slice(&b);
    assert_matches!(d, TensorData::F64(_));
    assert_eq!(bits_f64(&d.to_vec::<f64>(p, "b").unwrap()), bits_f64(&b));
    assert!(TensorData::from_slice::<f32>(&[]).is_empty());
}

#[test]
fn metadata_round_trips() {
    let (_dir, path, saved, loaded) = sample_round_trip("meta");
    assert_eq!(loaded.metadata, saved.metadata);
    assert_eq!(loaded.meta("epoch"), Some("12"));
    assert_eq!(loaded.meta("missing"), None);

    // No metadata and no tensors at all is a valid checkpoint too.
    save_checkpoint(&path, &Checkpoint::new()).unwrap();
    assert_eq!(load_checkpoint(&path).unwrap(), Checkpoint::new());
}

#[test]
fn load_order_is_the_files_order() {
    // Names in insertion order c, a, b (all F32): the writer sorts them by
    // name, and loading reports the order of the data in the file.
    let dir = scratch("order");
    let path = dir.path("o.safetensors");
    let mut c = Checkpoint::new();
    for name in ["c", "a", "b"] {
        c.push(name, &[1], TensorData::F32(vec![1.0]));
    }
    save_checkpoint(&path, &c).unwrap();
    let names: Vec<String> = load_checkpoint(&path)
        .unwrap()
        .tensors
        .into_iter()
        .map(|t| t.0)
        .collect();
    assert_eq!(names, ["a", "b", "c"]);
}

#[test]
fn saved_file_is_plain_safetensors() {
    // The layout is the published one: u64 LE header length, JSON header
    // padded to 8 bytes, little-endian data.
    let dir = scratch("layout");
    let path = dir.path("l.safetensors");
    let mut c = Checkpoint::new();
    c.push("w", &[2], TensorData::F32(vec![1.0, -2.0]));
    save_checkpoint(&path, &c).unwrap();
    let b = fs::read(&path).unwrap();
    let n = u64::from_le_bytes(b[..8].try_into().unwrap()) as usize;
    assert_eq!(n % 8, 0);
    let header: serde_json::Value =
        serde_json::from_str(std::str::from_utf8(&b[8..8 + n]).unwrap()).unwrap();
    assert_eq!(header["w"]["dtype"], "F32");
    assert_eq!(header["w"]["shape"], serde_json::json!([2]));
    assert_eq!(header["w"]["data_offsets"], serde_json::json!([0, 8]));
    assert_eq!(
        &b[8 + n..],
        [1.0f32.to_le_bytes(), (-2.0f32).to_le_bytes()].concat()
    );
}

#[test]
fn failed_save_leaves_previous_file_and_no_temporary() {
    let dir = scratch("atomic");
    let path = dir.path("last.safetensors");
    save_checkpoint(&path, &sample_checkpoint()).unwrap();
    let before = fs::read(&path).unwrap();

    let mut bad_cases = Vec::new();
    let mut dup = sample_checkpoint();
    dup.push("layer.0.bias", &[1], TensorData::F32(vec![0.0]));
    bad_cases.push(dup);
    let mut shape = Checkpoint::new();
    shape.push("w", &[2, 3], TensorData::F64(vec![0.0; 5]));
    bad_cases.push(shape);
    let mut empty = Checkpoint::new();
    empty.push("", &[1], TensorData::F32(vec![0.0]));
    bad_cases.push(empty);

    for bad in &bad_cases {
        let e = save_checkpoint(&path, bad).unwrap_err();
        assert_matches!(e, TrainError::Checkpoint { .. });
        assert_eq!(fs::read(&path).unwrap(), before);
        assert_eq!(dir.listing(), ["last.safetensors"]);
    }
}

#[test]
fn failed_write_removes_its_temporary() {
    // Renaming a file over a non-empty directory fails after the temporary
    // file was written: the temporary must not be left behind.
    let dir = scratch("rename");
    let target = dir.path("occupied");
    fs::create_dir_all(target.join("inside")).unwrap();
    let e = write_atomic(&target, b"bytes").unwrap_err();
    assert_matches!(e, TrainError::Io { .. });
    assert_eq!(dir.listing(), ["occupied"]);
}

#[test]
fn write_atomic_replaces_and_creates_directories() {
    let dir = scratch("write");
    let path = dir.path("a/b/c.txt");
    write_atomic(&path, b"first").unwrap();
    write_atomic(&path, b"second, longer").unwrap();
    assert_eq!(fs::read(&path).unwrap(), b"second, longer");
    write_atomic(&path, b"").unwrap();
    assert_eq!(fs::read(&path).unwrap(), b"");
    assert_eq!(fs::read_dir(dir.path("a/b")).unwrap().count(), 1);
    assert_matches!(
        write_atomic(Path::new("/"), b"x"),
        Err(TrainError::Io { .. })
    );
}

#[test]
fn missing_file_is_io_not_found() {
    let dir = scratch("missing");
    match load_checkpoint(&dir.path("nope.safetensors")) {
        Err(TrainError::Io { source, path }) => {
            assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
            assert!(path.ends_with("nope.safetensors"));
        }
        other => panic!("expected Io NotFound, got {other:?}"),
    }
}

#[test]
fn truncated_header_length() {
    for len in 0..8 {
        let r = checkpoint_reason(load_bytes(&vec![0u8; len]));
        assert!(r.contains("8-byte header length"), "{r}");
    }
}

#[test]
fn header_length_past_end_of_file() {
    let mut b = raw_file("{}", b"");
    b[..8].copy_from_slice(&1000u64.to_le_bytes());
    let r = checkpoint_reason(load_bytes(&b));
    assert!(r.contains("1000"), "{r}");
    b[..8].copy_from_slice(&u64::MAX.to_le_bytes());
    checkpoint_reason(load_bytes(&b));
}

#[test]
fn header_not_json() {
    for header in [
        "{not json",
        "\"a string\"",
        "[1,2]",
        "{\"w\":{}}",
        "{\"w\":7}",
    ] {
        checkpoint_reason(load_bytes(&raw_file(header, b"")));
    }
    // Not UTF-8.
    let mut b = raw_file("{}  ", b"");
    b[9] = 0xff;
    checkpoint_reason(load_bytes(&b));
}

#[test]
fn unsupported_dtypes() {
    for (dtype, size) in [
        ("I32", 4),
        ("BF16", 2),
        ("F16", 2),
        ("U8", 1),
        ("I64", 8),
        ("BOOL", 1),
    ] {
        let header = format!(
            "{{\"w\":{{\"dtype\":\"{dtype}\",\"shape\":[2],\"data_offsets\":[0,{}]}}}}",
            2 * size
        );
        let r = checkpoint_reason(load_bytes(&raw_file(&header, &vec![0u8; 2 * size])));
        assert!(r.contains(dtype) && r.contains("F32"), "{r}");
    }
    // A dtype safetensors itself does not know.
    let header = "{\"w\":{\"dtype\":\"Q7\",\"shape\":[1],\"data_offsets\":[0,1]}}";
    checkpoint_reason(load_bytes(&raw_file(header, &[0])));
}

#[test]
fn data_offsets_out_of_range() {
    let data = [0u8; 8];
    for offsets in [
        "[0,16]",
        "[8,16]",
        "[0,18446744073709551615]",
        "[0,-4]",
        "[0]",
        "[4,0]",
    ] {
        let header =
            format!("{{\"w\":{{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":{offsets}}}}}");
        checkpoint_reason(load_bytes(&raw_file(&header, &data)));
    }
    // Offsets inside the file that do not fit the shape, leave a gap, or
    // leave bytes over.
    for (header, data_len) in [
        ("{\"w\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8),
        ("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8),
        ("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 8),
        (
            "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}",
            8,
        ),
    ] {
        checkpoint_reason(load_bytes(&raw_file(header, &vec![0u8; data_len])));
    }
}

#[test]
fn hand_written_valid_file_loads() {
    // Checks the parser against the format independently of our writer.
    // The file carries no checksums: refused unless that is accepted.
    let header = "{\"__metadata__\":{\"k\":\"v\"},\"w\":{\"dtype\":\"F64\",\"shape\":[1,1],\"data_offsets\":[0,8]}}";
    let file = raw_file(header, &(-0.0f64).to_le_bytes());
    assert_matches!(
        load_bytes(&file),
        Err(TrainError::UncheckedCheckpoint { .. })
    );
    let c = load_bytes_with(&file, ACCEPT).unwrap();
    assert_eq!(c.meta("k"), Some("v"));
    let (shape, data) = c.tensor("w").unwrap();
    assert_eq!(shape, &[1, 1]);
    let TensorData::F64(v) = data else {
        panic!("F64 expected")
    };
    assert_eq!(v[0].to_bits(), (-0.0f64).to_bits());
}

#[test]
fn precision_mismatch_is_a_checkpoint_error() {
    let p = Path::new("run.safetensors");
    let e = TensorData::F64(vec![1.0])
        .to_vec::<f32>(p, "w")
        .unwrap_err();
    match e {
        TrainError::Checkpoint { path, reason } => {
            assert_eq!(path, p);
            assert!(
                reason.contains("'w'") && reason.contains("F64") && reason.contains("f32"),
                "{reason}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert_matches!(
        TensorData::F32(vec![1.0]).to_vec::<f64>(p, "w"),
        Err(TrainError::Checkpoint { .. })
    );
}

#[test]
fn every_truncation_is_a_checkpoint_error() {
    let bytes = sample_bytes();
    assert!(load_bytes(&bytes).is_ok());
    let dir = scratch("trunc");
    let path = dir.path("t.safetensors");
    for cut in 0..bytes.len() {
        fs::write(&path, &bytes[..cut]).unwrap();
        assert_matches!(
            load_checkpoint(&path),
            Err(TrainError::Checkpoint { .. }),
            "cut at {cut}"
        );
    }
    // Bytes appended after the data are refused too.
    let mut longer = bytes.clone();
    longer.push(0);
    fs::write(&path, &longer).unwrap();
    assert_matches!(load_checkpoint(&path), Err(TrainError::Checkpoint { .. }));
}

/// CRC-32 (IEEE, reflected, as zlib's `crc32`) bit by bit: a reference
/// independent of the crate the writer uses.
fn crc32_reference(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[test]
fn crc32_reference_is_zlibs() {
    // The check value of CRC-32/ISO-HDLC.
    assert_eq!(crc32_reference(b"123456789"), 0xcbf4_3926);
}

/// The header's checksum as the module documentation lays it out.
fn documented_header_crc(
    header: &serde_json::Map<String, serde_json::Value>,
    metadata: &std::collections::BTreeMap<String, String>,
) -> u32 {
    let text = |out: &mut Vec<u8>, s: &str| {
        out.extend_from_slice(&(s.len() as u64).to_le_bytes());
        out.extend_from_slice(s.as_bytes());
    };
    let mut covered = Vec::new();
    let mut names: Vec<&String> = header.keys().filter(|k| *k != "__metadata__").collect();
    names.sort();
    for name in names {
        let info = &header[name.as_str()];
        covered.push(b'T');
        text(&mut covered, name);
        text(&mut covered, info["dtype"].as_str().unwrap());
        let shape = info["shape"].as_array().unwrap();
        covered.extend_from_slice(&(shape.len() as u64).to_le_bytes());
        for d in shape {
            covered.extend_from_slice(&d.as_u64().unwrap().to_le_bytes());
        }
    }
    for (k, v) in metadata {
        covered.push(b'M');
        text(&mut covered, k);
        text(&mut covered, v);
    }
    crc32_reference(&covered)
}

#[test]
fn checksums_are_crc32_as_documented() {
    let bytes = sample_bytes();
    let (header, _) = split_file(&bytes);
    let meta = header["__metadata__"].as_object().unwrap();
    let mut tensors = 0;
    for (name, range) in layout(&bytes).1 {
        let want = format!("crc32:{:08x}", crc32_reference(&bytes[range]));
        assert_eq!(meta[&format!("checksum.{name}")], want.as_str(), "{name}");
        tensors += 1;
    }
    assert_eq!(tensors, sample_checkpoint().tensors.len());
    // The header's: over the tensor list and the metadata other than the
    // checksums, which is exactly what was saved.
    let saved = sample_checkpoint().metadata;
    let want = format!("crc32:{:08x}", documented_header_crc(&header, &saved));
    assert_eq!(meta["checksum.__metadata__"], want.as_str());
    assert_eq!(meta.len(), saved.len() + tensors + 1);
    // Loading verifies and removes them.
    let loaded = load_bytes(&bytes).unwrap();
    assert_eq!(loaded.metadata, saved);
    assert!(same_checkpoint(&loaded, &sample_checkpoint()));
}

#[test]
fn a_damaged_tensor_is_named() {
    let bytes = sample_bytes();
    for (name, range) in layout(&bytes).1 {
        let (a, b) = (range.start, range.end);
        if b == a {
            continue;
        }
        // The first, a middle and the last bit of the tensor's data.
        for bit in [0, (b - a) * 4 + 3, (b - a) * 8 - 1] {
            let mut damaged = bytes.clone();
            damaged[a + bit / 8] ^= 1 << (bit % 8);
            for options in [LoadOptions::default(), ACCEPT] {
                let r = checkpoint_reason(load_bytes_with(&damaged, options));
                assert!(
                    r.contains(&format!("tensor '{name}'")) && r.contains("checksum"),
                    "{r}"
                );
            }
        }
    }
}

#[test]
fn a_changed_header_fails_its_checksum() {
    let bytes = sample_bytes();
    let (header, _) = split_file(&bytes);
    // A metadata value, a shape (same element count) and a metadata key,
    // each changed consistently with everything else in the file.
    let mut value = header.clone();
    value["__metadata__"]["epoch"] = "13".into();
    let mut shape = header.clone();
    shape["layer.0.weight"]["shape"] = serde_json::json!([9, 4]);
    let mut empty = header.clone();
    empty["empty"]["shape"] = serde_json::json!([0, 6]);
    let mut key = header.clone();
    let meta = key["__metadata__"].as_object_mut().unwrap();
    let v = meta.remove("epoch").unwrap();
    meta.insert("epocH".into(), v);
    for changed in [value, shape, empty, key] {
        let r = checkpoint_reason(load_bytes(&with_header(&bytes, &changed)));
        assert!(r.contains("header") && r.contains("checksum"), "{r}");
    }
}

#[test]
fn missing_extra_or_malformed_checksums_are_refused() {
    let bytes = sample_bytes();
    let (header, _) = split_file(&bytes);
    let edit = |f: &dyn Fn(&mut serde_json::Map<String, serde_json::Value>)| {
        let mut h = header.clone();
        f(h["__metadata__"].as_object_mut().unwrap());
        with_header(&bytes, &h)
    };
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (
            edit(&|m| {
                m.remove("checksum.z.double");
            }),
            "tensor 'z.double' has no checksum",
        ),
        (
            edit(&|m| {
                m.remove("checksum.__metadata__");
            }),
            "the header has no checksum",
        ),
        (
            edit(&|m| {
                m.insert("checksum.ghost".into(), "crc32:00000000".into());
            }),
            "'ghost'",
        ),
        (
            edit(&|m| {
                m.insert("checksum.empty".into(), "crc32:0000000".into());
            }),
            "`checksum.empty` is not a checksum",
        ),
        (
            edit(&|m| {
                m.insert("checksum.empty".into(), "md5:00000000".into());
            }),
            "`checksum.empty` is not a checksum",
        ),
    ];
    for (file, want) in cases {
        // Accepting files without checksums does not excuse a file that
        // has some.
        for options in [LoadOptions::default(), ACCEPT] {
            let r = checkpoint_reason(load_bytes_with(&file, options));
            assert!(r.contains(want), "{want}: {r}");
        }
    }
    // With every checksum gone the file is unchecked: refused unless
    // accepted, and then it loads as saved.
    let bare = edit(&|m| m.retain(|k, _| !k.starts_with("checksum.")));
    match load_bytes(&bare) {
        Err(e @ TrainError::UncheckedCheckpoint { .. }) => {
            let text = e.to_string();
            assert!(
                text.contains("no checksums") && text.contains("--accept-unchecked-checkpoint"),
                "{text}"
            );
        }
        other => panic!("expected UncheckedCheckpoint, got {other:?}"),
    }
    assert!(same_checkpoint(
        &load_bytes_with(&bare, ACCEPT).unwrap(),
        &sample_checkpoint()
    ));
}

#[test]
fn checksum_keys_are_reserved() {
    let dir = scratch("reserved");
    let path = dir.path("r.safetensors");
    let mut c = sample_checkpoint();
    c.metadata
        .insert("checksum.layer.0.bias".into(), "crc32:00000000".into());
    let r = checkpoint_reason(save_checkpoint(&path, &c).map(|()| Checkpoint::new()));
    assert!(r.contains("reserved"), "{r}");
    assert!(dir.listing().is_empty());
    // A key that merely starts with the same word is the user's.
    let mut c = sample_checkpoint();
    c.metadata.insert("checksums".into(), "mine".into());
    save_checkpoint(&path, &c).unwrap();
    assert_eq!(
        load_checkpoint(&path).unwrap().meta("checksums"),
        Some("mine")
    );
}

#[test]
fn an_unreadable_file_is_reported_as_unreadable() {
    let dir = scratch("unreadable");
    // A directory where the file should be: readable by nobody, root too.
    let path = dir.path("ckpt.safetensors");
    fs::create_dir(&path).unwrap();
    match load_checkpoint(&path) {
        Err(e @ TrainError::Io { .. }) => {
            let text = e.to_string();
            assert!(text.contains("cannot be read"), "{text}");
            let TrainError::Io { source, .. } = e else {
                unreachable!()
            };
            assert_ne!(source.kind(), std::io::ErrorKind::NotFound);
            // The operating system's error stays the source.
            assert!(std::error::Error::source(&source).is_some());
        }
        other => panic!("expected Io, got {other:?}"),
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let file = dir.path("locked.safetensors");
        save_checkpoint(&file, &sample_checkpoint()).unwrap();
        fs::set_permissions(&file, fs::Permissions::from_mode(0o000)).unwrap();
        if fs::read(&file).is_ok() {
            eprintln!("skipping the permission case: this process reads any file (root)");
        } else {
            match load_checkpoint(&file) {
                Err(TrainError::Io { source, .. }) => {
                    assert_eq!(source.kind(), std::io::ErrorKind::PermissionDenied);
                    assert!(source.to_string().contains("cannot be read"), "{source}");
                }
                other => panic!("expected Io PermissionDenied, got {other:?}"),
            }
        }
    }
}

fn sample_history() -> Vec<EpochMetrics> {
    (1..=4)
        .map(|e| EpochMetrics {
            epoch: e,
            step: e * 469,
            lr: if e < 3 { 0.1 } else { 0.01 },
            train_loss: 1.0 / (e as f64 + 0.3),
            train_acc: 1.0 - 0.7f64.powi(e as i32),
            test_loss: if e == 2 { f64::NAN } else { 0.4 / e as f64 },
            test_acc: 0.9 + 1e-3 * e as f64,
            seconds: 12.5 * e as f64,
            images_per_sec: 60000.0 / 12.5 + e as f64 * 1e-9,
        })
        .collect()
}

/// Equality that treats NaN as equal to NaN (what the files can express).
fn same(a: &EpochMetrics, b: &EpochMetrics) -> bool {
    let f = |x: f64, y: f64| x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan());
    a.epoch == b.epoch
        && a.step == b.step
        && f(a.lr, b.lr)
        && f(a.train_loss, b.train_loss)
        && f(a.train_acc, b.train_acc)
        && f(a.test_loss, b.test_loss)
        && f(a.test_acc, b.test_acc)
        && f(a.seconds, b.seconds)
        && f(a.images_per_sec, b.images_per_sec)
}

#[test]
fn metrics_files_hold_header_and_one_row_per_epoch() {
    let dir = scratch("metrics");
    let out = dir.path("run");
    let history = sample_history();
    write_metrics(&out, &history).unwrap();

    let csv = fs::read_to_string(out.join("metrics.csv")).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert!(csv.ends_with('\n'));
    assert_eq!(lines[0], EpochMetrics::CSV_HEADER);
    assert_eq!(lines.len(), history.len() + 1);
    for (line, m) in lines[1..].iter().zip(&history) {
        let cols: Vec<&str> = line.split(',').collect();
        assert_eq!(cols.len(), 9);
        assert_eq!(cols[0].parse::<u64>().unwrap(), m.epoch);
        assert_eq!(cols[1].parse::<u64>().unwrap(), m.step);
        let floats: Vec<f64> = cols[2..].iter().map(|c| c.parse().unwrap()).collect();
        let want = [
            m.lr,
            m.train_loss,
            m.train_acc,
            m.test_loss,
            m.test_acc,
            m.seconds,
            m.images_per_sec,
        ];
        for (got, want) in floats.iter().zip(want) {
            assert!(got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan()));
        }
    }

    let jsonl = fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    assert!(jsonl.ends_with('\n'));
    let parsed: Vec<EpochMetrics> = jsonl
        .lines()
        .map(|l| {
            // Each line is standalone JSON that any parser reads.
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            assert!(v.is_object());
            EpochMetrics::from_json(l).unwrap()
        })
        .collect();
    assert_eq!(parsed.len(), history.len());
    assert!(parsed.iter().zip(&history).all(|(a, b)| same(a, b)));

    // A resumed run rewrites the files from its (shorter) history: no
    // leftover rows from the longer one, and no temporaries.
    write_metrics(&out, &history[..2]).unwrap();
    assert_eq!(
        fs::read_to_string(out.join("metrics.csv"))
            .unwrap()
            .lines()
            .count(),
        3
    );
    assert_eq!(
        fs::read_to_string(out.join("metrics.jsonl"))
            .unwrap()
            .lines()
            .count(),
        2
    );
    let mut names: Vec<_> = fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["metrics.csv", "metrics.jsonl"]);

    // An empty history gives a header-only CSV and an empty JSONL.
    write_metrics(&out, &[]).unwrap();
    assert_eq!(
        fs::read_to_string(out.join("metrics.csv")).unwrap(),
        format!("{}\n", EpochMetrics::CSV_HEADER)
    );
    assert_eq!(fs::read_to_string(out.join("metrics.jsonl")).unwrap(), "");
}

#[test]
fn history_round_trips_through_checkpoint_metadata() {
    let dir = scratch("history");
    let path = dir.path("h.safetensors");
    let history = sample_history();
    let mut c = Checkpoint::new();
    c.metadata
        .insert("history".into(), history_to_string(&history));
    save_checkpoint(&path, &c).unwrap();

    let loaded = load_checkpoint(&path).unwrap();
    let back = history_from_str(&path, loaded.meta("history").unwrap()).unwrap();
    assert_eq!(back.len(), history.len());
    assert!(back.iter().zip(&history).all(|(a, b)| same(a, b)));

    assert_eq!(history_to_string(&[]), "");
    assert!(history_from_str(&path, "").unwrap().is_empty());
    let with_newline = format!("{}\n", history_to_string(&history));
    assert_eq!(history_from_str(&path, &with_newline).unwrap().len(), 4);
}

#[test]
fn malformed_history_is_a_checkpoint_error() {
    let p = Path::new("h.safetensors");
    let good = history_to_string(&sample_history());
    let mut lines: Vec<&str> = good.lines().collect();
    lines[2] = "{\"epoch\":3}";
    match history_from_str(p, &lines.join("\n")) {
        Err(TrainError::Checkpoint { reason, .. }) => {
            assert!(reason.contains("line 3"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    assert_matches!(
        history_from_str(p, "garbage"),
        Err(TrainError::Checkpoint { .. })
    );
}

proptest! {
    #![proptest_config(ProptestConfig {
        // Fixed so that CI runs the same cases every time.
        rng_seed: proptest::test_runner::RngSeed::Fixed(0x5afe_7e25),
        failure_persistence: None,
        ..ProptestConfig::with_cases(64)
    })]

    /// Arbitrary bytes, with or without a plausible header length in front,
    /// load as a typed error (or, by luck, a checkpoint), never a panic.
    #[test]
    fn arbitrary_bytes_never_panic(
        body in proptest::collection::vec(any::<u8>(), 0..600),
        prefix in any::<bool>(),
    ) {
        let bytes = if prefix {
            let n = (body.len() as u64) / 2;
            let mut b = n.to_le_bytes().to_vec();
            b.extend_from_slice(&body);
            b
        } else {
            body
        };
        for options in [LoadOptions::default(), ACCEPT] {
            match load_bytes_with(&bytes, options) {
                Ok(_) | Err(TrainError::Checkpoint { .. } | TrainError::UncheckedCheckpoint { .. }) => {}
                Err(e) => prop_assert!(false, "unexpected error {e:?}"),
            }
        }
    }

    /// A valid file with a few bytes changed and cut anywhere: never a
    /// panic, and never a checkpoint other than the one saved.
    #[test]
    fn damaged_valid_file_never_panics(
        edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..4),
        cut in any::<usize>(),
    ) {
        let bytes = sample_bytes();
        let cut = cut % (bytes.len() + 1);
        let damaged = mutate(bytes, &edits, cut);
        for options in [LoadOptions::default(), ACCEPT] {
            match load_bytes_with(&damaged, options) {
                Ok(c) => prop_assert!(same_checkpoint(&c, &sample_checkpoint()), "loaded other contents"),
                Err(TrainError::Checkpoint { .. }) => {}
                Err(e) => prop_assert!(false, "unexpected error {e:?}"),
            }
        }
    }

    /// Random tensors of both precisions round-trip bit for bit.
    #[test]
    fn random_tensors_round_trip(
        a in proptest::collection::vec(any::<u32>(), 0..50),
        b in proptest::collection::vec(any::<u64>(), 0..50),
    ) {
        let dir = scratch("prop");
        let path = dir.path("p.safetensors");
        let mut c = Checkpoint::new();
        c.push("a", &[a.len()], TensorData::F32(a.iter().map(|&x| f32::from_bits(x)).collect()));
        c.push("b", &[b.len()], TensorData::F64(b.iter().map(|&x| f64::from_bits(x)).collect()));
        save_checkpoint(&path, &c).unwrap();
        let back = load_checkpoint(&path).unwrap();
        let (_, da) = back.tensor("a").unwrap();
        let (_, db) = back.tensor("b").unwrap();
        let va: Vec<f32> = da.to_vec(&path, "a").unwrap();
        let vb: Vec<f64> = db.to_vec(&path, "b").unwrap();
        prop_assert_eq!(va.iter().map(|x| x.to_bits()).collect::<Vec<_>>(), a);
        prop_assert_eq!(vb.iter().map(|x| x.to_bits()).collect::<Vec<_>>(), b);
    }

    /// Finite metrics survive JSON and CSV bit for bit; non-finite ones
    /// come back from JSON as NaN.
    #[test]
    fn metrics_text_round_trip(bits in proptest::collection::vec(any::<u64>(), 7), epoch in any::<u64>(), step in any::<u64>()) {
        let f: Vec<f64> = bits.iter().map(|&b| f64::from_bits(b)).collect();
        let m = EpochMetrics {
            epoch, step, lr: f[0], train_loss: f[1], train_acc: f[2], test_loss: f[3],
            test_acc: f[4], seconds: f[5], images_per_sec: f[6],
        };
        let back = EpochMetrics::from_json(&m.to_json()).unwrap();
        let got = [back.lr, back.train_loss, back.train_acc, back.test_loss, back.test_acc, back.seconds, back.images_per_sec];
        prop_assert_eq!((back.epoch, back.step), (epoch, step));
        for (g, w) in got.iter().zip(&f) {
            let ok = if w.is_finite() { g.to_bits() == w.to_bits() } else { g.is_nan() };
            prop_assert!(ok, "{} read back as {}", w, g);
        }
        let csv: Vec<f64> = m.to_csv().split(',').skip(2).map(|c| c.parse().unwrap()).collect();
        for (g, w) in csv.iter().zip(&f) {
            prop_assert!(g.to_bits() == w.to_bits() || (g.is_nan() && w.is_nan()));
        }
    }
}
