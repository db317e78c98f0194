//! The network and normalisation of a saved run, rebuilt from its
//! checkpoint for evaluation (`smoothout eval`, the analysis).

use std::path::Path;

use smoothout::tensor::TensorBackend;

use super::checkpoint::{Checkpoint, CheckpointReader, TensorData};
use super::config::Network;
use super::memory::check_memory;
use crate::data::Normalize;
use crate::error::Result;
use crate::layers::Layer;
use crate::networks::Sequential;

/// The network and normalisation stored in a checkpoint written by
/// [`Trainer::save`](crate::train::Trainer::save), ready for [`evaluate`](crate::train::evaluate), with its image shape and
/// classes.
///
/// # Errors
/// [`TrainError::Checkpoint`](crate::train::TrainError::Checkpoint), naming `path`, when the checkpoint lacks a
/// tensor or metadata entry, holds another element type, holds a NaN or
/// an infinity in any tensor (named), or holds values no network is built
/// from (an unknown network, 0 classes, an image shape the network cannot
/// take, a standard deviation that is not positive, a network of another
/// size than its tensors); [`TrainError::Memory`](crate::train::TrainError::Memory) when the network its
/// metadata describes needs more memory than is available (checked before
/// anything is allocated).
pub fn network_from_checkpoint<B: TensorBackend + 'static>(
    b: &B,
    c: &Checkpoint,
    path: &Path,
) -> Result<(Sequential<B>, Normalize, [usize; 3], usize)> {
    let r = CheckpointReader::new(c, path);
    r.check_format()?;
    r.check_finite()?;
    let name = r.meta("network")?;
    let network = Network::parse(name)
        .map_err(|_| r.bad(format!("metadata `network` = `{name}` is not a network")))?;
    let dims: Vec<usize> = r
        .meta("image_shape")?
        .trim_matches(|ch| ch == '[' || ch == ']')
        .split(',')
        .map(|d| {
            d.trim()
                .parse()
                .map_err(|_| r.bad("metadata `image_shape` is malformed".into()))
        })
        .collect::<Result<_>>()?;
    let image_shape: [usize; 3] = dims
        .try_into()
        .map_err(|_| r.bad("metadata `image_shape` is not [C, H, W]".into()))?;
    let classes: usize = r.number("classes")?;
    if classes == 0 {
        return Err(r.bad("metadata `classes` is 0".into()));
    }
    // The sizes come from the file: check them before allocating.
    check_memory(
        || {
            format!(
                "the network of checkpoint {} (its metadata says network = {}, image_shape = \
                 {image_shape:?}, classes = {classes})",
                path.display(),
                network.name()
            )
        },
        network
            .memory(image_shape, classes, core::mem::size_of::<B::Elem>())
            .as_ref(),
        |_| {
            "evaluate it on a machine with more memory; if its metadata was edited, the \
             checkpoint is damaged (evaluate the run's own checkpoint, or train it again)"
                .to_string()
        },
    )?;
    if let Some(f) = network.footprint(image_shape, classes) {
        let stored: u64 = c
            .tensors
            .iter()
            .filter(|(name, _, _)| name.starts_with("param."))
            .map(|(_, _, d)| d.len() as u64)
            .sum();
        if stored != f.parameters {
            return Err(r.bad(format!(
                "its metadata (network = {}, image_shape = {image_shape:?}, classes = {classes}) \
                 describes {} parameters, its tensors hold {stored}: the metadata does not fit \
                 the tensors",
                network.name(),
                f.parameters
            )));
        }
    }
    let mut net = network.build(b, 0, image_shape, classes).map_err(|e| {
        r.bad(format!(
            "its network {name} cannot take {image_shape:?} images in {classes} classes: {e}"
        ))
    })?;
    let specs = net.specs();
    for (spec, p) in specs.iter().zip(net.params_mut()) {
        *p = b.upload(&r.tensor(&format!("param.{}", spec.name), spec.len())?)?;
    }
    for (name, buf) in net.buffers_mut() {
        let len = b.len(buf);
        *buf = b.upload(&r.tensor(&format!("buffer.{name}"), len)?)?;
    }
    let stats = |name: &str| -> Result<Vec<f32>> {
        match c.tensor(name) {
            Some((_, TensorData::F32(v))) => Ok(v.clone()),
            _ => Err(r.bad(format!("tensor `{name}` is missing or not f32"))),
        }
    };
    let normalize = Normalize::new(stats("normalize.mean")?, stats("normalize.std")?)
        .map_err(|e| r.bad(format!("tensors `normalize.mean`/`normalize.std`: {e}")))?;
    if normalize.mean().len() != image_shape[0] {
        return Err(r.bad(format!(
            "tensor `normalize.mean` has {} channels, metadata `image_shape` {}",
            normalize.mean().len(),
            image_shape[0]
        )));
    }
    Ok((net, normalize, image_shape, classes))
}
