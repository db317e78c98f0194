//! Checkpoints as safetensors files, and the atomic write that saves them.
//!
//! A checkpoint is a list of named tensors (`F32` or `F64`, little-endian)
//! plus string metadata, stored in the [safetensors] layout:
//!
//! ```text
//! [u64 little-endian: header length n][n bytes of JSON header][tensor bytes]
//! ```
//!
//! Files are replaced atomically (temporary file, fsync, rename, fsync of
//! the directory), so a run killed in the middle of a save still finds the
//! previous checkpoint intact when it resumes.
//!
//! # Checksums
//!
//! [`save_checkpoint`] adds checksums to the header's `__metadata__`, so that
//! a file damaged after it was written (a flipped bit on disk, a botched
//! copy, an edit) is refused rather than loaded as different weights. Each
//! is a CRC-32 — the IEEE polynomial of zlib, gzip and PNG, as Python's
//! `zlib.crc32` computes it — written `crc32:` and eight lowercase hex
//! digits:
//!
//! | key | covers |
//! |---|---|
//! | `checksum.<tensor name>` | the tensor's data bytes as stored (its little-endian elements) |
//! | `checksum.__metadata__` | the rest of the header: tensor list and metadata, as below |
//!
//! The header's checksum runs over, first, every tensor in the order of
//! their names — the byte `T`; the name and the dtype (`F32` or `F64`),
//! each as its byte length (u64 little-endian) followed by its UTF-8 bytes;
//! the number of dimensions and then each dimension, as u64 little-endian —
//! and then every metadata entry whose key does not start with `checksum.`,
//! in the order of the keys: the byte `M`, then key and value, each as
//! length and bytes. (No tensor can be called `__metadata__`, so its key
//! is free. The data offsets are not covered: the parser checks them
//! against the shapes, and the tensors' checksums check what they point
//! at.)
//!
//! [`load_checkpoint`] verifies every checksum and reports the first that
//! fails, naming the tensor (or the header); it also refuses a file in
//! which a tensor has no checksum, or a checksum names a tensor the file
//! does not hold. The checksums are not part of the loaded
//! [`Checkpoint::metadata`], and keys starting with `checksum.` are
//! reserved: [`save_checkpoint`] refuses them. A file with no checksum at
//! all — written before smoothout stored them, or by another program — is
//! refused with [`TrainError::UncheckedCheckpoint`], unless it is loaded
//! with [`LoadOptions::accept_unchecked`] (`--accept-unchecked-checkpoint`
//! on the command line); the next save of a resumed run adds checksums.
//!
//! [safetensors]: https://github.com/huggingface/safetensors

use std::any::Any;
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use safetensors::tensor::{Dtype, SafeTensorError, SafeTensors, View};
use smoothout::Real;

use crate::error::{Result, TrainError};

/// The element data of one tensor, in its stored precision.
#[derive(Clone, Debug, PartialEq)]
pub enum TensorData {
    /// Single precision (`F32` in the file).
    F32(Vec<f32>),
    /// Double precision (`F64` in the file).
    F64(Vec<f64>),
}

impl TensorData {
    /// The number of elements.
    #[must_use]
    pub fn len(&self) -> usize {
        match self {
            TensorData::F32(v) => v.len(),
            TensorData::F64(v) => v.len(),
        }
    }

    /// Whether there are no elements.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The name of the stored element type, as the safetensors header
    /// spells it (`"F32"` or `"F64"`).
    fn dtype_name(&self) -> &'static str {
        match self {
            TensorData::F32(_) => "F32",
            TensorData::F64(_) => "F64",
        }
    }

    /// The values as a `Vec<E>`, bit for bit.
    ///
    /// The stored precision must be the run's: `F32` data for `E = f32`,
    /// `F64` data for `E = f64` (decided by `size_of::<E>()`). No rounding
    /// or widening happens, so every value — `-0.0`, subnormals, infinities,
    /// NaN payloads — comes back with the bits it was saved with.
    ///
    /// # Errors
    ///
    /// [`TrainError::Checkpoint`] naming `path` and the tensor `name` when the
    /// precisions differ (e.g. a checkpoint of an `f64` run loaded into an
    /// `f32` run).
    pub fn to_vec<E: Real>(&self, path: &Path, name: &str) -> Result<Vec<E>> {
        let width = core::mem::size_of::<E>();
        match (self, width) {
            // `from_f32` is the identity for f32, so this copies the bits.
            (TensorData::F32(v), 4) => Ok(v.iter().map(|&x| E::from_f32(x)).collect()),
            // `from_f64` is the identity for f64.
            (TensorData::F64(v), 8) => Ok(v.iter().map(|&x| E::from_f64(x)).collect()),
            _ => Err(TrainError::checkpoint(
                path,
                format!(
                    "tensor '{name}' is stored as {} but this run uses f{}: \
                     the checkpoint comes from a run of the other precision",
                    self.dtype_name(),
                    width * 8
                ),
            )),
        }
    }

    /// Copies `v` into a `TensorData` of the matching precision: `F32` when
    /// `size_of::<E>()` is 4, `F64` otherwise. Bit-exact for `f32` and
    /// `f64` (signalling NaNs included).
    #[must_use]
    pub fn from_slice<E: Real>(v: &[E]) -> Self {
        if core::mem::size_of::<E>() == 4 {
            // Going through `to_f64` would quieten signalling NaNs on common
            // hardware; read the f32 directly when E is f32.
            TensorData::F32(
                v.iter()
                    .map(|x| {
                        (x as &dyn Any)
                            .downcast_ref::<f32>()
                            .copied()
                            .unwrap_or_else(|| Real::to_f64(*x) as f32)
                    })
                    .collect(),
            )
        } else {
            TensorData::F64(v.iter().map(|&x| Real::to_f64(x)).collect())
        }
    }

    /// The first element that is NaN or infinite — its index and value as
    /// text (`NaN`, `inf`, `-inf`) — and how many such elements there are;
    /// `None` when every element is finite.
    pub(crate) fn non_finite(&self) -> Option<(usize, String, usize)> {
        fn scan<T: Copy + core::fmt::Display>(
            v: &[T],
            finite: impl Fn(T) -> bool,
        ) -> Option<(usize, String, usize)> {
            let first = v.iter().position(|&x| !finite(x))?;
            let count = v[first..].iter().filter(|&&x| !finite(x)).count();
            Some((first, v[first].to_string(), count))
        }
        match self {
            TensorData::F32(v) => scan(v, f32::is_finite),
            TensorData::F64(v) => scan(v, f64::is_finite),
        }
    }

    /// Little-endian bytes of the elements.
    fn to_le_bytes(&self) -> Vec<u8> {
        match self {
            TensorData::F32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            TensorData::F64(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        }
    }
}

/// A checkpoint: named tensors with their shapes, and string metadata.
///
/// On save the tensors may be stored in any order (the safetensors writer
/// sorts them by element type, then by name); a loaded checkpoint lists them
/// in the file's order. Look tensors up by name with [`Checkpoint::tensor`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Checkpoint {
    /// `(name, shape, data)` for each tensor; the product of `shape` must
    /// equal `data.len()` (an empty shape is a scalar).
    pub tensors: Vec<(String, Vec<usize>, TensorData)>,
    /// Free-form string metadata (run settings, epoch, metrics history).
    pub metadata: BTreeMap<String, String>,
}

impl Checkpoint {
    /// An empty checkpoint.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a tensor. Names must be unique and non-empty and the shape
    /// must fit the data; both are checked by [`save_checkpoint`].
    pub fn push(&mut self, name: impl Into<String>, shape: &[usize], data: TensorData) {
        self.tensors.push((name.into(), shape.to_vec(), data));
    }

    /// The shape and data of the tensor called `name` (the first, if a name
    /// was pushed twice).
    #[must_use]
    pub fn tensor(&self, name: &str) -> Option<(&[usize], &TensorData)> {
        self.tensors
            .iter()
            .find(|(n, _, _)| n == name)
            .map(|(_, shape, data)| (shape.as_slice(), data))
    }

    /// The metadata value under `key`.
    #[must_use]
    pub fn meta(&self, key: &str) -> Option<&str> {
        self.metadata.get(key).map(String::as_str)
    }
}

/// How [`load_checkpoint_with`] treats a file.
///
/// The default is strict: every file must carry checksums.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LoadOptions {
    /// Accept a file that carries no checksum at all (written before
    /// smoothout stored them, or by another program), whose damage cannot
    /// be detected. A file that carries checksums is verified either way.
    pub accept_unchecked: bool,
}

/// Metadata keys starting with this are the checksums (reserved).
const CHECKSUM_PREFIX: &str = "checksum.";
/// The key of the header's checksum (no tensor can be called
/// `__metadata__`, so no tensor's checksum has this key).
const HEADER_CHECKSUM: &str = "checksum.__metadata__";
/// What a failed checksum means, and what to do.
const DAMAGED: &str = concat!(
    "the file was damaged after it was written (a disk or copy error, or an edit): ",
    "use an intact copy, or train the run afresh"
);

/// A checksum as the metadata spells it.
fn crc_text(crc: u32) -> String {
    format!("crc32:{crc:08x}")
}

/// The value of a checksum written by [`crc_text`].
fn parse_crc(text: &str) -> Option<u32> {
    let hex = text.strip_prefix("crc32:")?;
    if hex.len() != 8 || !hex.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    u32::from_str_radix(hex, 16).ok()
}

/// The header's checksum over `tensors` (name, dtype, shape; any order)
/// and the `metadata` entries that are not checksums (any order), as the
/// module documentation lays it out.
fn header_crc<'a>(
    tensors: impl IntoIterator<Item = (&'a str, &'a str, &'a [usize])>,
    metadata: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> u32 {
    fn text(h: &mut crc32fast::Hasher, s: &str) {
        h.update(&(s.len() as u64).to_le_bytes());
        h.update(s.as_bytes());
    }
    let mut tensors: Vec<_> = tensors.into_iter().collect();
    tensors.sort_unstable_by(|a, b| a.0.cmp(b.0));
    let mut metadata: Vec<_> = metadata
        .into_iter()
        .filter(|(k, _)| !k.starts_with(CHECKSUM_PREFIX))
        .collect();
    metadata.sort_unstable();
    let mut h = crc32fast::Hasher::new();
    for (name, dtype, shape) in tensors {
        h.update(b"T");
        text(&mut h, name);
        text(&mut h, dtype);
        h.update(&(shape.len() as u64).to_le_bytes());
        for &d in shape {
            h.update(&(d as u64).to_le_bytes());
        }
    }
    for (k, v) in metadata {
        h.update(b"M");
        text(&mut h, k);
        text(&mut h, v);
    }
    h.finalize()
}

/// A tensor ready for the safetensors writer.
struct Encoded {
    dtype: Dtype,
    shape: Vec<usize>,
    bytes: Vec<u8>,
}

impl View for &Encoded {
    fn dtype(&self) -> Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.bytes)
    }
    fn data_len(&self) -> usize {
        self.bytes.len()
    }
}

/// Checks names and shapes and produces the file's bytes.
fn encode(path: &Path, ckpt: &Checkpoint) -> Result<Vec<u8>> {
    let mut seen = HashSet::with_capacity(ckpt.tensors.len());
    let mut encoded = Vec::with_capacity(ckpt.tensors.len());
    for (name, shape, data) in &ckpt.tensors {
        if name.is_empty() {
            return Err(TrainError::checkpoint(path, "a tensor has an empty name"));
        }
        if name == "__metadata__" {
            return Err(TrainError::checkpoint(
                path,
                "a tensor is named '__metadata__', which safetensors reserves for the metadata",
            ));
        }
        if !seen.insert(name.as_str()) {
            return Err(TrainError::checkpoint(
                path,
                format!("two tensors are named '{name}'"),
            ));
        }
        let count = shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d));
        if count != Some(data.len()) {
            return Err(TrainError::checkpoint(
                path,
                format!(
                    "tensor '{name}' has shape {shape:?} but {} elements",
                    data.len()
                ),
            ));
        }
        let dtype = match data {
            TensorData::F32(_) => Dtype::F32,
            TensorData::F64(_) => Dtype::F64,
        };
        encoded.push((
            name.as_str(),
            Encoded {
                dtype,
                shape: shape.clone(),
                bytes: data.to_le_bytes(),
            },
        ));
    }
    if let Some(key) = ckpt
        .metadata
        .keys()
        .find(|k| k.starts_with(CHECKSUM_PREFIX))
    {
        return Err(TrainError::checkpoint(
            path,
            format!(
                "metadata key '{key}' starts with '{CHECKSUM_PREFIX}', which is reserved for the checksums the file carries"
            ),
        ));
    }
    let mut metadata: HashMap<String, String> = ckpt
        .metadata
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    for (name, e) in &encoded {
        metadata.insert(
            format!("{CHECKSUM_PREFIX}{name}"),
            crc_text(crc32fast::hash(&e.bytes)),
        );
    }
    let header = header_crc(
        ckpt.tensors
            .iter()
            .map(|(name, shape, data)| (name.as_str(), data.dtype_name(), shape.as_slice())),
        ckpt.metadata.iter().map(|(k, v)| (k.as_str(), v.as_str())),
    );
    metadata.insert(HEADER_CHECKSUM.to_string(), crc_text(header));
    safetensors::serialize(encoded.iter().map(|(n, e)| (*n, e)), Some(metadata))
        .map_err(|e| TrainError::checkpoint(path, format!("cannot encode: {e}")))
}

/// Writes `ckpt` to `path` as a safetensors file, atomically.
///
/// Tensors are stored little-endian as `F32` or `F64`; the metadata map
/// becomes the header's `__metadata__`, with checksums added: a CRC-32 of
/// each tensor's bytes under `checksum.<tensor name>` and one of the rest
/// of the header (tensor names, dtypes and shapes, and the metadata) under
/// `checksum.__metadata__`, each written `crc32:` and eight hex digits (the
/// exact layout is in the documentation at the top of
/// `models/src/train/checkpoint.rs`). The bytes go through
/// [`write_atomic`], so `path` holds either the old file or the complete new
/// one, never a mixture. The parent directory is created if missing.
///
/// # Errors
///
/// * [`TrainError::Checkpoint`] if two tensors share a name, a name is empty
///   or `"__metadata__"`, a shape's element count differs from its data's
///   length, or a metadata key starts with `checksum.` (reserved); nothing
///   is written then.
/// * [`TrainError::Io`] if creating, writing, syncing or renaming fails.
///
/// # Example
///
/// ```
/// use smoothout_models::train::{load_checkpoint, save_checkpoint, Checkpoint, TensorData};
///
/// let dir = std::env::temp_dir().join(format!("smoothout-doc-ckpt-{}", std::process::id()));
/// let path = dir.join("last.safetensors");
///
/// let mut ckpt = Checkpoint::new();
/// ckpt.push("fc.weight", &[2, 3], TensorData::from_slice(&[1.0f32, -0.0, 2.5, 3.0, 4.0, 5.0]));
/// ckpt.metadata.insert("epoch".into(), "7".into());
/// save_checkpoint(&path, &ckpt)?;
///
/// let back = load_checkpoint(&path)?;
/// assert_eq!(back.meta("epoch"), Some("7"));
/// let (shape, data) = back.tensor("fc.weight").unwrap();
/// assert_eq!(shape, &[2, 3]);
/// let w: Vec<f32> = data.to_vec(&path, "fc.weight")?;
/// assert_eq!(w[2], 2.5);
///
/// std::fs::remove_dir_all(&dir).unwrap();
/// # Ok::<(), smoothout_models::train::TrainError>(())
/// ```
pub fn save_checkpoint(path: &Path, ckpt: &Checkpoint) -> Result<()> {
    let bytes = encode(path, ckpt)?;
    write_atomic(path, &bytes)
}

/// Reads a checkpoint written by [`save_checkpoint`] and verifies its
/// checksums: [`load_checkpoint_with`] and the default (strict)
/// [`LoadOptions`], which refuse a file without checksums.
///
/// # Errors
///
/// As [`load_checkpoint_with`].
pub fn load_checkpoint(path: &Path) -> Result<Checkpoint> {
    load_checkpoint_with(path, LoadOptions::default())
}

/// Reads a checkpoint written by [`save_checkpoint`] (or, with
/// [`LoadOptions::accept_unchecked`], any safetensors file holding only
/// `F32` and `F64` tensors) and verifies its checksums.
///
/// Tensors are listed in the file's order (by data offset); metadata comes
/// from the header's `__metadata__` without the checksums, empty if
/// absent. Values are not judged: NaN and infinities load as they were
/// saved (the trainer's loaders refuse them). Never panics, whatever the
/// file holds.
///
/// # Errors
///
/// * [`TrainError::Io`] if the file cannot be read; the error keeps the
///   operating system's kind ([`io::ErrorKind::NotFound`] for a missing
///   file, `PermissionDenied` for an unreadable one) and says that the file
///   cannot be read.
/// * [`TrainError::Checkpoint`] if the bytes are not a valid safetensors
///   file (too short, header length past the end, header not UTF-8 JSON,
///   data offsets outside the file or not matching the shapes, trailing
///   bytes), a tensor has a type other than `F32`/`F64`, or a checksum is
///   missing, malformed or does not match: the reason names the tensor,
///   or the header.
/// * [`TrainError::UncheckedCheckpoint`] if the file carries no checksum at
///   all and `options` do not accept that.
pub fn load_checkpoint_with(path: &Path, options: LoadOptions) -> Result<Checkpoint> {
    let bytes = fs::read(path).map_err(|e| TrainError::io(path, unreadable(e)))?;
    decode(path, &bytes, options)
}

/// `e`, of the same kind, saying that the file cannot be read.
fn unreadable(e: io::Error) -> io::Error {
    /// The words around the operating system's error, which stays the
    /// source.
    #[derive(Debug)]
    struct CannotRead(io::Error);
    impl std::fmt::Display for CannotRead {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "cannot be read: {}", self.0)
        }
    }
    impl std::error::Error for CannotRead {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }
    io::Error::new(e.kind(), CannotRead(e))
}

/// The length of the header-size prefix.
const PREFIX: usize = 8;

/// Parses a whole file and verifies its checksums.
fn decode(path: &Path, bytes: &[u8], options: LoadOptions) -> Result<Checkpoint> {
    let bad = |reason: String| TrainError::checkpoint(path, reason);
    precheck(bytes).map_err(bad)?;
    let (_, meta) = SafeTensors::read_metadata(bytes)
        .map_err(|e| bad(format!("not a valid safetensors file: {}", describe(&e))))?;
    let file = SafeTensors::deserialize(bytes)
        .map_err(|e| bad(format!("not a valid safetensors file: {}", describe(&e))))?;

    let mut tensors = Vec::with_capacity(file.len());
    let mut crcs = Vec::with_capacity(file.len());
    for name in meta.offset_keys() {
        let view = file
            .tensor(&name)
            .map_err(|e| bad(format!("tensor '{name}': {}", describe(&e))))?;
        let raw = view.data();
        crcs.push(crc32fast::hash(raw));
        let data = match view.dtype() {
            Dtype::F32 => TensorData::F32(
                raw.chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect(),
            ),
            Dtype::F64 => TensorData::F64(
                raw.chunks_exact(8)
                    .map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
                    .collect(),
            ),
            other => {
                return Err(bad(format!(
                    "tensor '{name}' has element type {other}; only F32 and F64 are supported"
                )))
            }
        };
        tensors.push((name, view.shape().to_vec(), data));
    }
    let (checksums, metadata): (BTreeMap<String, String>, BTreeMap<String, String>) = meta
        .metadata()
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.clone()))
        .partition(|(k, _)| k.starts_with(CHECKSUM_PREFIX));
    let c = Checkpoint { tensors, metadata };
    if checksums.is_empty() {
        return if options.accept_unchecked {
            Ok(c)
        } else {
            Err(TrainError::UncheckedCheckpoint {
                path: path.to_path_buf(),
            })
        };
    }
    verify(&c, &crcs, &checksums).map_err(bad)?;
    Ok(c)
}

/// Checks the checksums of a file that carries some: each tensor's (in
/// the file's order, `crcs` computed from its bytes), that none names a
/// missing tensor, then the header's.
fn verify(
    c: &Checkpoint,
    crcs: &[u32],
    checksums: &BTreeMap<String, String>,
) -> core::result::Result<(), String> {
    let stored = |key: &str, what: &str| -> core::result::Result<u32, String> {
        let text = checksums.get(key).ok_or_else(|| {
            format!(
                "{what} has no checksum (metadata `{key}` is missing) although the file carries checksums: \
                 its header was damaged, or the file was edited"
            )
        })?;
        parse_crc(text).ok_or_else(|| {
            format!(
                "metadata `{key}` is not a checksum (`crc32:` and 8 lowercase hex digits): {DAMAGED}"
            )
        })
    };
    for ((name, _, _), &crc) in c.tensors.iter().zip(crcs) {
        let want = stored(
            &format!("{CHECKSUM_PREFIX}{name}"),
            &format!("tensor '{name}'"),
        )?;
        if want != crc {
            return Err(format!(
                "tensor '{name}' does not match its checksum (stored {}, its data give {}): {DAMAGED}",
                crc_text(want),
                crc_text(crc)
            ));
        }
    }
    for key in checksums.keys() {
        let name = &key[CHECKSUM_PREFIX.len()..];
        if key != HEADER_CHECKSUM && c.tensor(name).is_none() {
            return Err(format!(
                "metadata `{key}` is the checksum of a tensor '{name}' that the file does not hold: \
                 its header was damaged, or the file was edited"
            ));
        }
    }
    let want = stored(HEADER_CHECKSUM, "the header")?;
    let got = header_crc(
        c.tensors
            .iter()
            .map(|(name, shape, data)| (name.as_str(), data.dtype_name(), shape.as_slice())),
        c.metadata.iter().map(|(k, v)| (k.as_str(), v.as_str())),
    );
    if want != got {
        return Err(format!(
            "the header (its metadata and list of tensors) does not match its checksum (stored {}, the header gives {}): {DAMAGED}",
            crc_text(want),
            crc_text(got)
        ));
    }
    Ok(())
}

/// Checks what the safetensors parser takes on trust: that every data
/// offset lies inside the file. (Offsets near `usize::MAX` would otherwise
/// overflow its final length sum.) Clearer reasons for the common damage
/// come out of here too.
fn precheck(bytes: &[u8]) -> core::result::Result<(), String> {
    let Some(prefix) = bytes.get(..PREFIX) else {
        return Err(format!(
            "the file has {} bytes, fewer than the 8-byte header length of a safetensors file",
            bytes.len()
        ));
    };
    let mut len = [0u8; PREFIX];
    len.copy_from_slice(prefix);
    let n = u64::from_le_bytes(len);
    let available = (bytes.len() - PREFIX) as u64;
    if n > available {
        return Err(format!(
            "the header length says {n} bytes but only {available} follow (truncated, or not a safetensors file)"
        ));
    }
    // n <= available, so it fits in usize.
    let header_end = PREFIX + n as usize;
    let header = core::str::from_utf8(&bytes[PREFIX..header_end])
        .map_err(|e| format!("the header is not UTF-8 text: {e}"))?;
    let value: serde_json::Value =
        serde_json::from_str(header).map_err(|e| format!("the header is not valid JSON: {e}"))?;
    let serde_json::Value::Object(entries) = value else {
        return Err("the header is not a JSON object".to_string());
    };
    let data_len = (bytes.len() - header_end) as u64;
    for (name, info) in &entries {
        if name == "__metadata__" {
            continue;
        }
        let offsets = info
            .get("data_offsets")
            .and_then(serde_json::Value::as_array)
            .ok_or_else(|| format!("tensor '{name}' has no data_offsets pair"))?;
        for o in offsets {
            match o.as_u64() {
                Some(o) if o <= data_len => {}
                _ => {
                    let shown: Vec<String> = offsets.iter().map(ToString::to_string).collect();
                    return Err(format!(
                        "tensor '{name}' has data offsets [{}] outside the file's {data_len} data bytes \
                         (the file is truncated, or its header damaged)",
                        shown.join(", ")
                    ));
                }
            }
        }
    }
    Ok(())
}

/// A reason for a parser error, in words.
fn describe(e: &SafeTensorError) -> String {
    match e {
        SafeTensorError::MetadataIncompleteBuffer => {
            "the data section's length does not match the header (truncated or trailing bytes)"
                .to_string()
        }
        SafeTensorError::InvalidOffset(name) => format!(
            "tensor '{name}' has data offsets that do not follow on from the previous tensor's"
        ),
        SafeTensorError::TensorInvalidInfo => {
            "a tensor's data offsets do not span its shape's element count".to_string()
        }
        other => other.to_string(),
    }
}

/// Distinguishes temporary files of concurrent writers in one process.
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Replaces the file at `path` with `bytes`, atomically.
///
/// The bytes go to a temporary file `.<file name>.tmp-<pid>-<n>` in the same
/// directory, which is flushed and synced to disk, then renamed over
/// `path`; on unix the directory is synced afterwards so that the rename
/// itself survives a power cut. A reader therefore sees either the old
/// file or the new one in full. If any step before the rename fails, the
/// temporary file is removed and `path` is untouched. The parent directory
/// is created if missing.
///
/// # Errors
///
/// [`TrainError::Io`] naming the path that failed (the directory, the
/// temporary file or `path`); an `InvalidInput` error if `path` has no file
/// name.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let Some(file_name) = path.file_name() else {
        return Err(TrainError::io(
            path,
            io::Error::new(io::ErrorKind::InvalidInput, "the path names no file"),
        ));
    };
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    fs::create_dir_all(&dir).map_err(|e| TrainError::io(&dir, e))?;

    let mut temp_name = std::ffi::OsString::from(".");
    temp_name.push(file_name);
    temp_name.push(format!(
        ".tmp-{}-{}",
        std::process::id(),
        TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let temp = dir.join(temp_name);

    let written = fill(&temp, bytes).and_then(|()| fs::rename(&temp, path));
    if let Err(e) = written {
        // Best effort: the write already failed, report that error.
        let _ = fs::remove_file(&temp);
        return Err(TrainError::io(path, e));
    }
    sync_dir(&dir).map_err(|e| TrainError::io(&dir, e))
}

/// Creates (or truncates) `temp`, writes `bytes` and syncs them to disk.
fn fill(temp: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut file = fs::File::create(temp)?;
    file.write_all(bytes)?;
    file.flush()?;
    file.sync_all()
}

/// Makes a rename inside `dir` durable.
#[cfg(unix)]
fn sync_dir(dir: &Path) -> io::Result<()> {
    fs::File::open(dir)?.sync_all()
}

/// Directories cannot be opened for syncing here; the rename is as durable
/// as the platform makes it.
#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> io::Result<()> {
    Ok(())
}

/// Tag of the format of the trainer's checkpoints (metadata `format`).
pub const CHECKPOINT_FORMAT: &str = "smoothout-checkpoint-1";

/// Checked reads from a checkpoint, with errors that name its file.
pub(crate) struct CheckpointReader<'a> {
    c: &'a Checkpoint,
    path: &'a Path,
}

impl<'a> CheckpointReader<'a> {
    /// Reads `c`, whose errors name `path`.
    pub(crate) fn new(c: &'a Checkpoint, path: &'a Path) -> Self {
        CheckpointReader { c, path }
    }

    /// A [`TrainError::Checkpoint`] naming the file.
    pub(crate) fn bad(&self, reason: String) -> TrainError {
        TrainError::checkpoint(self.path, reason)
    }

    pub(crate) fn meta(&self, key: &str) -> Result<&'a str> {
        self.c
            .meta(key)
            .ok_or_else(|| self.bad(format!("metadata `{key}` is missing")))
    }

    pub(crate) fn number<T: std::str::FromStr>(&self, key: &str) -> Result<T> {
        self.meta(key)?
            .parse()
            .map_err(|_| self.bad(format!("metadata `{key}` is not a number")))
    }

    /// Metadata `key` as a finite number.
    pub(crate) fn finite(&self, key: &str) -> Result<f64> {
        let v: f64 = self.number(key)?;
        if v.is_finite() {
            Ok(v)
        } else {
            Err(self.bad(format!(
                "metadata `{key}` is {v}, not a finite number: the run that wrote it had diverged, \
                 or the file was edited"
            )))
        }
    }

    pub(crate) fn check_format(&self) -> Result<()> {
        if self.meta("format")? == CHECKPOINT_FORMAT {
            Ok(())
        } else {
            Err(self.bad(format!("format is not {CHECKPOINT_FORMAT}")))
        }
    }

    /// Every tensor of the checkpoint, whether it is used or not, holds
    /// only finite values; the error names the first tensor that does not.
    pub(crate) fn check_finite(&self) -> Result<()> {
        for (name, _, data) in &self.c.tensors {
            if let Some((at, value, count)) = data.non_finite() {
                let others = match count {
                    1 => String::new(),
                    n => format!("; {} more after it", n - 1),
                };
                return Err(self.bad(format!(
                    "tensor '{name}' holds {value} at element {at} of {}{others}: the checkpoint \
                     stores non-finite values (the run that wrote it had diverged, or the file was \
                     edited), so it cannot be used",
                    data.len()
                )));
            }
        }
        Ok(())
    }

    /// Tensor `name` as `len` elements of the run's type.
    pub(crate) fn tensor<E: Real>(&self, name: &str, len: usize) -> Result<Vec<E>> {
        let (_, data) = self
            .c
            .tensor(name)
            .ok_or_else(|| self.bad(format!("tensor `{name}` is missing")))?;
        let v = data.to_vec::<E>(self.path, name)?;
        if v.len() != len {
            return Err(self.bad(format!(
                "tensor `{name}` has {} elements, expected {len}",
                v.len()
            )));
        }
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p() -> &'static Path {
        Path::new("unit.safetensors")
    }

    #[test]
    fn encode_decode_in_memory() {
        let mut c = Checkpoint::new();
        c.push("b", &[2], TensorData::F64(vec![1.5, -0.0]));
        c.push("a", &[], TensorData::F32(vec![f32::MIN_POSITIVE / 8.0]));
        c.metadata.insert("k".into(), "v".into());
        let bytes = encode(p(), &c).unwrap();
        let back = decode(p(), &bytes, LoadOptions::default()).unwrap();
        assert_eq!(back.metadata, c.metadata);
        // The writer orders F64 (wider) before F32.
        let names: Vec<_> = back.tensors.iter().map(|t| t.0.as_str()).collect();
        assert_eq!(names, ["b", "a"]);
        assert_eq!(back.tensor("a"), c.tensor("a"));
        assert_eq!(back.tensor("b"), c.tensor("b"));
    }

    #[test]
    fn rejects_bad_names_and_shapes() {
        for (name, shape, len) in [
            ("", vec![1], 1),
            ("__metadata__", vec![1], 1),
            ("x", vec![2, 2], 3),
        ] {
            let mut c = Checkpoint::new();
            c.push(name, &shape, TensorData::F32(vec![0.0; len]));
            assert!(matches!(
                encode(p(), &c),
                Err(TrainError::Checkpoint { .. })
            ));
        }
        let mut c = Checkpoint::new();
        c.push("x", &[usize::MAX, 2], TensorData::F32(vec![]));
        assert!(matches!(
            encode(p(), &c),
            Err(TrainError::Checkpoint { .. })
        ));
    }

    #[test]
    fn from_slice_keeps_signalling_nan_bits() {
        let snan = f32::from_bits(0x7f80_0001);
        let d = TensorData::from_slice(&[snan]);
        let TensorData::F32(v) = &d else {
            panic!("expected F32")
        };
        assert_eq!(v[0].to_bits(), 0x7f80_0001);
        let back: Vec<f32> = d.to_vec(p(), "x").unwrap();
        assert_eq!(back[0].to_bits(), 0x7f80_0001);
    }

    #[test]
    fn huge_offsets_do_not_overflow() {
        // Offsets that are consistent with the shapes but sum close to
        // usize::MAX: the parser's final length check would overflow.
        let size = usize::MAX / 8;
        let mut header = String::from("{");
        let mut start = 0usize;
        for i in 0..8 {
            if i > 0 {
                header.push(',');
            }
            header.push_str(&format!(
                "\"t{i}\":{{\"dtype\":\"U8\",\"shape\":[{size}],\"data_offsets\":[{start},{}]}}",
                start + size
            ));
            start += size;
        }
        header.push('}');
        let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
        bytes.extend_from_slice(header.as_bytes());
        assert!(matches!(
            decode(p(), &bytes, LoadOptions::default()),
            Err(TrainError::Checkpoint { .. })
        ));
    }
}
