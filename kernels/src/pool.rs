//! Windowed max and average pooling over NCHW with PyTorch's semantics (padding, ceil
//! mode, `count_include_pad`), forward and backward, rayon-parallel over planes.

use rayon::prelude::*;

/// A pooling's sizes and settings: input [batch, channels, height, width].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pool2d {
    pub batch: usize,
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    pub padding: [usize; 2],
    pub ceil_mode: bool,
    /// Average pooling only: whether padding counts towards the divisor.
    pub count_include_pad: bool,
}

/// One output index's window along one dimension: the input range it reads, and its
/// length counting padding (the divisor's factor under `count_include_pad`).
#[derive(Clone, Copy, Debug)]
struct Span {
    start: usize,
    end: usize,
    padded_len: usize,
}

impl Pool2d {
    /// PyTorch's output size: ⌊(n + 2p − k) / s⌋ + 1 (⌈⌉ in ceil mode, where the last
    /// window must still start inside the input or its left padding).
    pub fn output_size(&self) -> [usize; 2] {
        let size = |i: usize, input: usize| {
            let span = input + 2 * self.padding[i] - self.kernel[i];
            let mut out = if self.ceil_mode { span.div_ceil(self.stride[i]) } else { span / self.stride[i] } + 1;
            if self.ceil_mode && (out - 1) * self.stride[i] >= input + self.padding[i] {
                out -= 1;
            }
            out
        };
        [size(0, self.height), size(1, self.width)]
    }

    /// Non-empty, a window that fits the padded input, padding at most half the window
    /// (PyTorch's own conditions).
    pub fn is_supported(&self) -> bool {
        let fits = |i: usize, input: usize| {
            self.kernel[i] > 0
                && self.stride[i] > 0
                && 2 * self.padding[i] <= self.kernel[i]
                && input + 2 * self.padding[i] >= self.kernel[i]
        };
        self.batch > 0
            && self.channels > 0
            && self.height > 0
            && self.width > 0
            && fits(0, self.height)
            && fits(1, self.width)
    }

    /// A 1×1 window without padding: `subsample` computes it (max and average alike).
    pub fn is_subsampling(&self) -> bool {
        self.is_supported() && self.kernel == [1, 1] && self.padding == [0, 0]
    }

    pub fn input_len(&self) -> usize {
        self.batch * self.channels * self.height * self.width
    }

    pub fn output_len(&self) -> usize {
        let [h, w] = self.output_size();
        self.batch * self.channels * h * w
    }

    fn spans(&self, i: usize, input: usize, outputs: usize) -> Vec<Span> {
        (0..outputs)
            .map(|o| {
                let start = (o * self.stride[i]) as isize - self.padding[i] as isize;
                let end = (start + self.kernel[i] as isize).min((input + self.padding[i]) as isize);
                Span {
                    start: start.max(0) as usize,
                    end: end.clamp(0, input as isize) as usize,
                    padded_len: (end - start) as usize,
                }
            })
            .collect()
    }

    /// Every output position's (row span, column span), row by row.
    fn windows(&self) -> (Vec<Span>, Vec<Span>) {
        let [out_h, out_w] = self.output_size();
        (self.spans(0, self.height, out_h), self.spans(1, self.width, out_w))
    }

    fn plane(&self) -> usize {
        self.height * self.width
    }
}

/// Max pooling: the output, and for each output the index within its input plane of
/// the value it took (`u32::MAX` for a window with no input, which PyTorch rules out).
pub fn max_forward(pool: &Pool2d, x: &[f32]) -> (Vec<f32>, Vec<u32>) {
    assert!(pool.is_supported(), "unsupported pooling {pool:?}");
    assert_eq!(x.len(), pool.input_len(), "pooling input length");
    let (rows, cols) = pool.windows();
    let out_plane = rows.len() * cols.len();
    let mut y = vec![0f32; pool.output_len()];
    let mut arg = vec![0u32; pool.output_len()];
    let grain = crate::min_items(pool.plane());
    y.par_chunks_mut(out_plane)
        .zip(arg.par_chunks_mut(out_plane))
        .zip(x.par_chunks(pool.plane()))
        .with_min_len(grain)
        .for_each(|((y, arg), x)| {
            let mut at = 0;
            for r in &rows {
                for c in &cols {
                    let (mut best, mut best_at) = (f32::NEG_INFINITY, u32::MAX);
                    for i in r.start..r.end {
                        for j in c.start..c.end {
                            let v = x[i * pool.width + j];
                            // NaN wins (the last one, as in PyTorch); ties keep the first.
                            if v > best || v.is_nan() || best_at == u32::MAX {
                                (best, best_at) = (v, (i * pool.width + j) as u32);
                            }
                        }
                    }
                    (y[at], arg[at]) = (best, best_at);
                    at += 1;
                }
            }
        });
    (y, arg)
}

/// Max pooling's input gradient: each output's gradient goes to the value it took.
pub fn max_backward(pool: &Pool2d, arg: &[u32], dy: &[f32]) -> Vec<f32> {
    assert_eq!(dy.len(), pool.output_len(), "pooling output gradient length");
    let [out_h, out_w] = pool.output_size();
    let mut dx = vec![0f32; pool.input_len()];
    let grain = crate::min_items(pool.plane());
    dx.par_chunks_mut(pool.plane())
        .zip(dy.par_chunks(out_h * out_w))
        .zip(arg.par_chunks(out_h * out_w))
        .with_min_len(grain)
        .for_each(|((dx, dy), arg)| {
            for (&g, &at) in dy.iter().zip(arg) {
                if at != u32::MAX {
                    dx[at as usize] += g;
                }
            }
        });
    dx
}

/// Each output's divisor: the window's size with padding, or only what it reads.
fn divisor(pool: &Pool2d, r: &Span, c: &Span) -> f32 {
    if pool.count_include_pad {
        (r.padded_len * c.padded_len) as f32
    } else {
        ((r.end - r.start) * (c.end - c.start)).max(1) as f32
    }
}

/// Every output's divisor, row by row.
fn divisors(pool: &Pool2d, rows: &[Span], cols: &[Span]) -> Vec<f32> {
    rows.iter().flat_map(|r| cols.iter().map(move |c| divisor(pool, r, c))).collect()
}

/// Average pooling. Per output row, the window's input rows are first summed column by
/// column (whole rows: contiguous, vectorised), then each output sums its columns of
/// that: a window of k×k reads each input once instead of once per window row and column.
pub fn avg_forward(pool: &Pool2d, x: &[f32]) -> Vec<f32> {
    assert!(pool.is_supported(), "unsupported pooling {pool:?}");
    assert_eq!(x.len(), pool.input_len(), "pooling input length");
    let (rows, cols) = pool.windows();
    let width = pool.width;
    let mut y = vec![0f32; pool.output_len()];
    let grain = crate::min_items(pool.plane());
    let planes = y.par_chunks_mut(rows.len() * cols.len()).zip(x.par_chunks(pool.plane())).with_min_len(grain);
    if let Some(tiling) = Tiling::of(pool, &rows, &cols) {
        planes.for_each_init(|| vec![0f32; tiling.rows * width], |sums, (y, x)| tiling.forward(width, x, sums, y));
        return y;
    }
    let divisors = divisors(pool, &rows, &cols);
    planes.for_each_init(
        || vec![0f32; width],
        |column_sums, (y, x)| {
            for ((r, y), divisors) in rows.iter().zip(y.chunks_mut(cols.len())).zip(divisors.chunks(cols.len())) {
                column_sums.fill(0.0);
                for row in x[r.start * width..r.end * width].chunks(width) {
                    column_sums.iter_mut().zip(row).for_each(|(sum, v)| *sum += v);
                }
                for ((y, c), divisor) in y.iter_mut().zip(&cols).zip(divisors) {
                    *y = column_sums[c.start..c.end].iter().sum::<f32>() / divisor;
                }
            }
        },
    );
    y
}

/// Windows that tile the input: k×k blocks side by side (stride = kernel, no padding,
/// every window whole), as in LeNet's `avgpool(kernel: 2)`. The general loops spent
/// most of their time per output (its spans, its divisor); here the row sums of a whole
/// plane are one pass and each output adds k neighbours, with one divisor for all. The
/// sums are added in the general loops' order, so the values are the same.
#[derive(Clone, Copy, Debug)]
struct Tiling {
    /// Output rows and columns.
    rows: usize,
    cols: usize,
    kernel: [usize; 2],
    divisor: f32,
}

impl Tiling {
    fn of(pool: &Pool2d, rows: &[Span], cols: &[Span]) -> Option<Tiling> {
        let whole = |spans: &[Span], k: usize| spans.iter().all(|s| s.end - s.start == k && s.padded_len == k);
        (pool.stride == pool.kernel
            && pool.padding == [0, 0]
            && whole(rows, pool.kernel[0])
            && whole(cols, pool.kernel[1]))
        .then(|| Tiling {
            rows: rows.len(),
            cols: cols.len(),
            kernel: pool.kernel,
            divisor: (pool.kernel[0] * pool.kernel[1]) as f32,
        })
    }

    /// One plane: `sums` (rows × width) holds each output row's window rows added up.
    fn forward(&self, width: usize, x: &[f32], sums: &mut [f32], y: &mut [f32]) {
        let [kh, kw] = self.kernel;
        for (i, sum) in sums.chunks_exact_mut(width).enumerate() {
            let block = &x[i * kh * width..][..kh * width];
            // From zero, as the general loops start, so a -0.0 comes out as they give it.
            sum.iter_mut().zip(&block[..width]).for_each(|(s, v)| *s = 0.0 + v);
            for row in block[width..].chunks_exact(width) {
                sum.iter_mut().zip(row).for_each(|(s, v)| *s += v);
            }
        }
        if width == self.cols * kw {
            self.add_neighbours(sums, y);
        } else {
            for (sum, y) in sums.chunks_exact(width).zip(y.chunks_exact_mut(self.cols)) {
                self.add_neighbours(&sum[..self.cols * kw], y);
            }
        }
    }

    /// y[j] = (sums[kw·j] + … + sums[kw·j + kw − 1]) / divisor.
    fn add_neighbours(&self, sums: &[f32], y: &mut [f32]) {
        let d = self.divisor;
        match self.kernel[1] {
            2 => y.iter_mut().zip(sums.chunks_exact(2)).for_each(|(y, p)| *y = (p[0] + p[1]) / d),
            kw => y.iter_mut().zip(sums.chunks_exact(kw)).for_each(|(y, p)| *y = p.iter().sum::<f32>() / d),
        }
    }

    /// One plane's input gradient: each output's gradient, divided, over its block (the
    /// rows and columns no window reads stay zero).
    fn backward(&self, width: usize, dy: &[f32], spread: &mut [f32], dx: &mut [f32]) {
        let [kh, kw] = self.kernel;
        for (dy, block) in dy.chunks_exact(self.cols).zip(dx.chunks_exact_mut(kh * width)) {
            // Element by element: `fill` called a memset per window.
            for (g, s) in dy.iter().zip(spread.chunks_exact_mut(kw)) {
                // Onto zero, as the general loops spread it (a -0.0 comes out +0.0).
                let share = 0.0 + g / self.divisor;
                s.iter_mut().for_each(|v| *v = share);
            }
            for row in block.chunks_exact_mut(width) {
                row[..self.cols * kw].copy_from_slice(&spread[..self.cols * kw]);
            }
        }
    }
}

/// Average pooling's input gradient: each output's gradient, divided, spread over the
/// values its window read. Per output row the spread is built for one input row, then
/// added onto each row the window covers (contiguous, vectorised).
pub fn avg_backward(pool: &Pool2d, dy: &[f32]) -> Vec<f32> {
    assert_eq!(dy.len(), pool.output_len(), "pooling output gradient length");
    let (rows, cols) = pool.windows();
    let width = pool.width;
    let mut dx = vec![0f32; pool.input_len()];
    let grain = crate::min_items(pool.plane());
    let planes = dx.par_chunks_mut(pool.plane()).zip(dy.par_chunks(rows.len() * cols.len())).with_min_len(grain);
    if let Some(tiling) = Tiling::of(pool, &rows, &cols) {
        planes.for_each_init(|| vec![0f32; width], |spread, (dx, dy)| tiling.backward(width, dy, spread, dx));
        return dx;
    }
    let divisors = divisors(pool, &rows, &cols);
    planes.for_each_init(
        || vec![0f32; width],
        |spread, (dx, dy)| {
            for ((r, dy), divisors) in rows.iter().zip(dy.chunks(cols.len())).zip(divisors.chunks(cols.len())) {
                spread.fill(0.0);
                for ((&g, c), divisor) in dy.iter().zip(&cols).zip(divisors) {
                    let g = g / divisor;
                    spread[c.start..c.end].iter_mut().for_each(|v| *v += g);
                }
                for row in dx[r.start * width..r.end * width].chunks_mut(width) {
                    row.iter_mut().zip(spread.iter()).for_each(|(v, s)| *v += s);
                }
            }
        },
    );
    dx
}

/// A 1×1 window without padding picks every stride-th pixel (the option-A shortcut's
/// subsampling): y[b, c, i, j] = x[b, c, s₀·i, s₁·j], plane by plane.
pub fn subsample(pool: &Pool2d, x: &[f32]) -> Vec<f32> {
    assert!(pool.is_subsampling(), "a 1×1 window without padding");
    assert_eq!(x.len(), pool.input_len(), "pooling input length");
    let [out_h, out_w] = pool.output_size();
    let [s0, s1] = pool.stride;
    let mut y = crate::uninit(pool.output_len());
    y.par_chunks_mut(out_h * out_w)
        .zip(x.par_chunks(pool.height * pool.width))
        .with_min_len(crate::min_items(pool.height * pool.width))
        .for_each(|(out, plane)| {
            for (i, row) in out.chunks_exact_mut(out_w).enumerate() {
                let from = &plane[s0 * i * pool.width..][..pool.width];
                row.iter_mut().zip(from.iter().step_by(s1)).for_each(|(o, &v)| {
                    o.write(v);
                });
            }
        });
    // SAFETY: the planes cover y, each of their rows written whole.
    unsafe { crate::assume_init(y) }
}

/// `subsample`'s backward: dy at the picked pixels, zero at the others, in one pass.
pub fn subsample_backward(pool: &Pool2d, dy: &[f32]) -> Vec<f32> {
    assert!(pool.is_subsampling(), "a 1×1 window without padding");
    assert_eq!(dy.len(), pool.output_len(), "pooling output gradient length");
    let [out_h, out_w] = pool.output_size();
    let [s0, s1] = pool.stride;
    let mut dx = crate::uninit(pool.input_len());
    dx.par_chunks_mut(pool.height * pool.width)
        .zip(dy.par_chunks(out_h * out_w))
        .with_min_len(crate::min_items(pool.height * pool.width))
        .for_each(|(plane, dy)| {
            for (r, row) in plane.chunks_exact_mut(pool.width).enumerate() {
                row.iter_mut().for_each(|v| {
                    v.write(0.0);
                });
                if r % s0 == 0 && r / s0 < out_h {
                    let from = &dy[r / s0 * out_w..][..out_w];
                    row.iter_mut().step_by(s1).zip(from).for_each(|(v, &g)| {
                        v.write(g);
                    });
                }
            }
        });
    // SAFETY: every row of every plane was written whole (zeros, then the picked pixels).
    unsafe { crate::assume_init(dx) }
}
