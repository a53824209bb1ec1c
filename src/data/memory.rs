//! Datasets in memory as bytes (one `u8` per pixel, C×H×W per image), the splits a
//! training run uses, and turning index lists into normalised, augmented batches.

use crate::tensor::Shape;
use burn::prelude::*;
use burn::tensor::TensorData;
use rand::Rng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

#[derive(Clone, Debug)]
pub struct Dataset {
    pub name: String,
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    pub pixels: Vec<u8>,
    pub labels: Vec<u32>,
    pub classes: Vec<String>,
}

impl Dataset {
    pub fn empty(name: &str, channels: usize, height: usize, width: usize) -> Dataset {
        Dataset {
            name: name.into(),
            channels,
            height,
            width,
            pixels: Vec::new(),
            labels: Vec::new(),
            classes: Vec::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    pub fn image_size(&self) -> usize {
        self.channels * self.height * self.width
    }

    pub fn shape(&self) -> Shape {
        Shape::Image { c: self.channels as u64, h: self.height as u64, w: self.width as u64 }
    }

    fn select(&self, indices: &[usize]) -> Dataset {
        let size = self.image_size();
        let mut out =
            Dataset { pixels: Vec::with_capacity(indices.len() * size), labels: Vec::new(), ..self.clone_meta() };
        for &i in indices {
            out.pixels.extend_from_slice(&self.pixels[i * size..(i + 1) * size]);
            out.labels.push(self.labels[i]);
        }
        out
    }

    fn clone_meta(&self) -> Dataset {
        Dataset { pixels: Vec::new(), labels: Vec::new(), ..self.clone() }
    }

    /// A stratified, seeded subset of `n` images: each class keeps its share.
    pub fn subset(&self, n: usize, seed: u64) -> Dataset {
        if n >= self.len() {
            return self.clone();
        }
        self.select(&self.stratified(n, seed))
    }

    /// Splits off a seeded, stratified validation part of `fraction` of the images.
    pub fn split(&self, fraction: f64, seed: u64) -> (Dataset, Dataset) {
        let val = self.stratified(((self.len() as f64) * fraction).round() as usize, seed);
        let mut in_val = vec![false; self.len()];
        for &i in &val {
            in_val[i] = true;
        }
        let train: Vec<usize> = (0..self.len()).filter(|&i| !in_val[i]).collect();
        (self.select(&train), self.select(&val))
    }

    /// `n` indices drawn per class in proportion to the class sizes (largest
    /// remainders get the rounding), in ascending order.
    fn stratified(&self, n: usize, seed: u64) -> Vec<usize> {
        let mut rng: StdRng = rand::SeedableRng::seed_from_u64(seed);
        let classes = self.labels.iter().max().map(|&m| m as usize + 1).unwrap_or(0);
        let mut by_class: Vec<Vec<usize>> = vec![Vec::new(); classes];
        for (i, &label) in self.labels.iter().enumerate() {
            by_class[label as usize].push(i);
        }
        let total = self.len().max(1);
        let mut take: Vec<usize> = by_class.iter().map(|m| m.len() * n / total).collect();
        let mut order: Vec<usize> = (0..classes).collect();
        order.sort_by_key(|&c| (std::cmp::Reverse(by_class[c].len() * n % total), c));
        let mut missing = n.saturating_sub(take.iter().sum());
        for c in order {
            if missing == 0 {
                break;
            }
            if take[c] < by_class[c].len() {
                take[c] += 1;
                missing -= 1;
            }
        }
        let mut chosen = Vec::with_capacity(n);
        for (members, count) in by_class.iter_mut().zip(take) {
            members.shuffle(&mut rng);
            chosen.extend_from_slice(&members[..count]);
        }
        chosen.sort();
        chosen
    }

    /// Per-channel mean and standard deviation of the pixels in [0, 1].
    pub fn channel_stats(&self) -> (Vec<f32>, Vec<f32>) {
        let plane = self.height * self.width;
        let mut sum = vec![0f64; self.channels];
        let mut squares = vec![0f64; self.channels];
        for image in self.pixels.chunks_exact(self.image_size()) {
            for c in 0..self.channels {
                for &p in &image[c * plane..(c + 1) * plane] {
                    let v = p as f64 / 255.0;
                    sum[c] += v;
                    squares[c] += v * v;
                }
            }
        }
        let n = (self.len() * plane).max(1) as f64;
        let mean: Vec<f64> = sum.iter().map(|s| s / n).collect();
        let std = squares.iter().zip(&mean).map(|(q, m)| ((q / n - m * m).max(1e-12)).sqrt() as f32).collect();
        (mean.iter().map(|m| *m as f32).collect(), std)
    }
}

/// How a batch is prepared.
#[derive(Clone, Debug)]
pub struct Pipeline {
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
    /// Random crop after zero-padding by this many pixels (0: no crop).
    pub crop_padding: usize,
    pub flip: bool,
}

impl Pipeline {
    /// A normalised batch as [N, C, H, W] and its labels; augmentation only when `rng`
    /// is given (training).
    pub fn batch<B: Backend>(
        &self,
        data: &Dataset,
        indices: &[usize],
        rng: Option<&mut StdRng>,
        device: &B::Device,
    ) -> (Tensor<B, 4>, Tensor<B, 1, Int>) {
        let (c, h, w) = (data.channels, data.height, data.width);
        let size = data.image_size();
        let mut out = vec![0f32; indices.len() * size];
        let mut rng = rng;
        for (k, &i) in indices.iter().enumerate() {
            let image = &data.pixels[i * size..(i + 1) * size];
            let (dy, dx, flip) = match rng.as_deref_mut() {
                Some(rng) => {
                    let p = self.crop_padding as i64;
                    let (dy, dx) = if p > 0 { (rng.random_range(-p..=p), rng.random_range(-p..=p)) } else { (0, 0) };
                    (dy, dx, self.flip && rng.random_bool(0.5))
                }
                None => (0, 0, false),
            };
            for ch in 0..c {
                let (m, s) = (self.mean[ch], self.std[ch]);
                for y in 0..h {
                    for x in 0..w {
                        let sy = y as i64 + dy;
                        let sx0 = if flip { (w - 1 - x) as i64 } else { x as i64 };
                        let sx = sx0 + dx;
                        let v = if sy < 0 || sx < 0 || sy >= h as i64 || sx >= w as i64 {
                            0.0 // the zero padding, before normalisation (torchvision pads the image)
                        } else {
                            image[ch * h * w + sy as usize * w + sx as usize] as f32 / 255.0
                        };
                        out[k * size + ch * h * w + y * w + x] = (v - m) / s;
                    }
                }
            }
        }
        let labels: Vec<i64> = indices.iter().map(|&i| data.labels[i] as i64).collect();
        (
            Tensor::from_data(TensorData::new(out, [indices.len(), c, h, w]), device),
            Tensor::from_data(TensorData::new(labels, [indices.len()]), device),
        )
    }
}
