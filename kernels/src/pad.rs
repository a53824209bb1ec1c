//! Zero channels around an NCHW tensor's own (the option-A shortcut's widening), and
//! its backward, which keeps the gradient of the tensor's own channels: image by image,
//! in parallel.

use rayon::prelude::*;

/// How a tensor [batch, channels, spatial] is padded: `before` zero channels ahead of
/// its own, `after` behind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PadChannels {
    pub batch: usize,
    pub channels: usize,
    pub spatial: usize,
    pub before: usize,
    pub after: usize,
}

impl PadChannels {
    pub fn input_len(&self) -> usize {
        self.batch * self.channels * self.spatial
    }

    pub fn output_len(&self) -> usize {
        self.batch * (self.before + self.channels + self.after) * self.spatial
    }

    /// Values per padded image, and the offset of its own channels in it.
    fn padded_image(&self) -> (usize, usize) {
        ((self.before + self.channels + self.after) * self.spatial, self.before * self.spatial)
    }
}

/// y [batch, before + channels + after, spatial]: zeros, x's channels, zeros.
pub fn pad_channels(pad: &PadChannels, x: &[f32]) -> Vec<f32> {
    assert!(pad.batch > 0 && pad.channels > 0 && pad.spatial > 0, "an empty tensor to pad");
    assert_eq!(x.len(), pad.input_len(), "padded tensor's input length");
    let (image, own) = pad.padded_image();
    let len = pad.channels * pad.spatial;
    let mut y = crate::uninit(pad.output_len());
    y.par_chunks_mut(image).zip(x.par_chunks(len)).with_min_len(crate::min_items(image)).for_each(|(out, input)| {
        let (head, rest) = out.split_at_mut(own);
        let (body, tail) = rest.split_at_mut(len);
        head.iter_mut().chain(tail).for_each(|v| {
            v.write(0.0);
        });
        body.iter_mut().zip(input).for_each(|(v, &x)| {
            v.write(x);
        });
    });
    // SAFETY: each padded image written whole: zeros, its own channels, zeros.
    unsafe { crate::assume_init(y) }
}

/// `pad_channels`' backward: the gradient of x's own channels, dy's padding dropped.
pub fn pad_channels_backward(pad: &PadChannels, dy: &[f32]) -> Vec<f32> {
    assert!(pad.batch > 0 && pad.channels > 0 && pad.spatial > 0, "an empty tensor to pad");
    assert_eq!(dy.len(), pad.output_len(), "padded tensor's output gradient length");
    let (image, own) = pad.padded_image();
    let len = pad.channels * pad.spatial;
    let mut dx = crate::uninit(pad.input_len());
    dx.par_chunks_mut(len).zip(dy.par_chunks(image)).with_min_len(crate::min_items(len)).for_each(|(out, dy)| {
        out.iter_mut().zip(&dy[own..][..len]).for_each(|(v, &g)| {
            v.write(g);
        });
    });
    // SAFETY: each image's own channels copied whole.
    unsafe { crate::assume_init(dx) }
}
