//! The energy MLP: architecture, parameters in their public layout, validated construction.
//!
//! Parameters live in one flat vector in the public order `[W_1, b_1, ..., W_L, b_L, w, c]`,
//! each `W` row-major with rows = outputs. Gradients use the same layout, so optimizers and
//! reductions work on one slice.

use crate::activation::Activation;
use crate::error::{try_filled, Error, Result};
use crate::real::Real;
use crate::rng::Stream;

/// The hint of a weight given in the (n_in, n_out) layout of JAX/Flax and Keras kernels.
pub const TRANSPOSED: &str =
    ": weights are (n_out, n_in), as PyTorch's Linear.weight; transpose a \
                          (n_in, n_out) kernel (JAX/Flax, Keras) first";

/// A shape as numpy prints it: `(3,)`, `(4, 2)`.
pub fn fmt_shape(shape: &[usize]) -> String {
    match shape {
        [n] => format!("({n},)"),
        _ => format!(
            "({})",
            shape
                .iter()
                .map(|n| n.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Largest number of parameters we accept: far beyond any model this library is for, and
/// small enough that no index computation can overflow.
const MAX_PARAMS: usize = 1 << 31;

/// `[dim, n_1, ..., n_L, 1]`, the offset of each layer's parameters and their total, which
/// must not exceed [`MAX_PARAMS`].
fn layout(dim: usize, hidden: &[usize]) -> Result<(Vec<usize>, Vec<usize>, usize)> {
    let mut widths = Vec::with_capacity(hidden.len() + 2);
    widths.push(dim);
    widths.extend_from_slice(hidden);
    widths.push(1);
    let mut offsets = Vec::with_capacity(widths.len() - 1);
    let mut total: usize = 0;
    for pair in widths.windows(2) {
        offsets.push(total);
        let len = pair[0]
            .checked_add(1)
            .and_then(|n| n.checked_mul(pair[1]))
            .filter(|&n| n <= MAX_PARAMS);
        total = len
            .and_then(|n| total.checked_add(n))
            .filter(|&n| n <= MAX_PARAMS)
            .ok_or_else(|| {
                Error::Value(format!(
                    "the architecture dim={dim}, hidden={hidden:?} has more than {MAX_PARAMS} parameters"
                ))
            })?;
    }
    Ok((widths, offsets, total))
}

/// One affine layer's parameters, borrowed from the flat vector.
#[derive(Debug, Clone, Copy)]
pub struct Layer<'a, T> {
    /// `W`, shape (n_out, n_in), row-major.
    pub w: &'a [T],
    /// `b`, shape (n_out,).
    pub b: &'a [T],
    pub n_in: usize,
    pub n_out: usize,
}

/// An energy MLP `E(x) = w·σ(W_L ··· σ(W_1 x + b_1) ··· + b_L) + c + (α/2)‖x‖²`.
#[derive(Debug, Clone, PartialEq)]
pub struct Mlp<T> {
    /// `[dim, n_1, ..., n_L, 1]`: the widths of every layer's input and the final output.
    widths: Vec<usize>,
    /// Offset of `W_l` in `params` for l = 1..=L+1 (the output layer last); `b_l` follows it.
    offsets: Vec<usize>,
    params: Vec<T>,
    activation: Activation,
    alpha: T,
    /// α as given, so that a float32 model reports the value the user passed.
    alpha_f64: f64,
}

impl<T: Real> Mlp<T> {
    /// A model with parameters drawn reproducibly from `seed`.
    ///
    /// Each layer is initialized as PyTorch's `nn.Linear`: weights and biases uniform in
    /// ±1/√n_in. Every layer draws from its own random stream, so changing one width does not
    /// change the draws of the layers before it.
    pub fn new(
        dim: usize,
        hidden: &[usize],
        activation: Activation,
        alpha: f64,
        seed: u64,
    ) -> Result<Self> {
        let mut mlp = Self::zeros(dim, hidden, activation, alpha)?;
        for l in 0..mlp.n_layers() + 1 {
            let (n_in, off, len) = (mlp.widths[l], mlp.offsets[l], mlp.layer_len(l));
            let bound = 1.0 / (n_in as f64).sqrt();
            let mut stream = Stream::new(seed, l as u64);
            for p in &mut mlp.params[off..off + len] {
                *p = T::c(bound * (2.0 * stream.uniform() - 1.0));
            }
        }
        Ok(mlp)
    }

    /// A model whose parameters are all zero: the energy is then the confining term alone.
    pub fn zeros(dim: usize, hidden: &[usize], activation: Activation, alpha: f64) -> Result<Self> {
        if dim == 0 {
            return Err(Error::Value("dim must be at least 1, got 0".into()));
        }
        if hidden.is_empty() {
            return Err(Error::Value(
                "hidden must list at least one layer width, got an empty list".into(),
            ));
        }
        if let Some(pos) = hidden.iter().position(|&n| n == 0) {
            return Err(Error::Value(format!(
                "every hidden width must be at least 1, got {hidden:?} (0 at position {pos})"
            )));
        }
        if !(alpha.is_finite() && alpha >= 0.0) {
            return Err(Error::Value(format!(
                "alpha must be a finite number >= 0, got {alpha}"
            )));
        }
        if !T::c(alpha).is_finite() {
            return Err(Error::Value(format!(
                "alpha = {alpha:e} overflows {}: use a float64 model or a smaller alpha",
                T::NAME
            )));
        }
        let (widths, offsets, total) = layout(dim, hidden)?;
        Ok(Mlp {
            widths,
            offsets,
            params: try_filled(total, T::zero(), "the model's parameters")?,
            activation,
            alpha: T::c(alpha),
            alpha_f64: alpha,
        })
    }

    /// The architecture `(dim, hidden)` that parameters of these shapes (in the layout of
    /// [`Mlp::from_parts`]) describe, with every check of that layout and of the number of
    /// parameters: a caller can make them before it reads or copies any value (a view of a
    /// huge shape that cannot be a model is refused without being copied).
    pub fn architecture(shapes: &[&[usize]]) -> Result<(usize, Vec<usize>)> {
        if shapes.len() < 4 || !shapes.len().is_multiple_of(2) {
            return Err(Error::Shape(format!(
                "params must be a list [W_1, b_1, ..., W_L, b_L, w, c] with at least one hidden layer \
                 (an even number >= 4 of arrays), got {} arrays",
                shapes.len()
            )));
        }
        let n_layers = shapes.len() / 2 - 1;
        let first = shapes[0];
        if first.len() != 2 {
            return Err(Error::Shape(format!(
                "params[0] (W_1) must be 2-D (n_1, dim), got shape {}",
                fmt_shape(first)
            )));
        }
        let dim = first[1];
        let mut hidden = Vec::with_capacity(n_layers);
        let mut n_in = dim;
        for (i, pair) in shapes.chunks(2).enumerate() {
            let is_out = i == n_layers;
            let (wname, bname) = if is_out {
                ("w".to_string(), "c".to_string())
            } else {
                (format!("W_{}", i + 1), format!("b_{}", i + 1))
            };
            let ws = pair[0];
            let n_out = if ws.len() == 2 { ws[0] } else { 0 };
            if ws.len() != 2 || ws[1] != n_in || (is_out && n_out != 1) || n_out == 0 {
                let want = if is_out {
                    "1".to_string()
                } else {
                    "n_out >= 1".to_string()
                };
                // (n_in, n_out), the kernel layout of JAX/Flax and Keras, where the bias agrees
                // with that reading: transposing it would make the layer whole.
                let flipped = ws.len() == 2 && ws[0] == n_in && ws[0] != ws[1];
                let hint = if flipped && pair[1] == [ws[1]] {
                    TRANSPOSED
                } else {
                    ""
                };
                return Err(Error::Shape(format!(
                    "params[{}] ({wname}) must have shape ({want}, {n_in}), got {}{hint}",
                    2 * i,
                    fmt_shape(ws)
                )));
            }
            if pair[1] != [n_out] {
                // The first layer's W read as (n_in, n_out) gives the dimension n_out and a
                // bias of the other length. If the next weight fits that (n_in, n_out) reading
                // (its first axis the bias's length) and not the given one (its second axis
                // W_1's first), the weight is at fault, not the bias.
                let next_flipped = shapes
                    .get(2)
                    .is_some_and(|s| s.len() == 2 && s[0] == dim && s[1] != n_out);
                if i == 0 && !is_out && pair[1] == [dim] && n_out != dim && next_flipped {
                    return Err(Error::Shape(format!(
                        "params[0] (W_1) has shape {} but params[1] (b_1) has {dim} entries: \
                         W_1 must be (n_1, dim) = ({dim}, {n_out}){TRANSPOSED}",
                        fmt_shape(ws)
                    )));
                }
                return Err(Error::Shape(format!(
                    "params[{}] ({bname}) must have shape ({n_out},), got {}",
                    2 * i + 1,
                    fmt_shape(pair[1])
                )));
            }
            if !is_out {
                hidden.push(n_out);
            }
            n_in = n_out;
        }
        layout(dim, &hidden)?;
        Ok((dim, hidden))
    }

    /// A model from parameters in the public layout `[W_1, b_1, ..., W_L, b_L, w, c]`, each given
    /// as (shape, row-major values). Shapes must chain: `W_l` is (n_l, n_{l-1}), `b_l` is (n_l,),
    /// `w` is (1, n_L) and `c` is (1,).
    pub fn from_parts(
        parts: &[(&[usize], &[T])],
        activation: Activation,
        alpha: f64,
    ) -> Result<Self> {
        let shapes: Vec<&[usize]> = parts.iter().map(|p| p.0).collect();
        let (dim, hidden) = Self::architecture(&shapes)?;
        let mut mlp = Self::zeros(dim, &hidden, activation, alpha)?;
        let mut pos = 0;
        for (i, (shape, values)) in parts.iter().enumerate() {
            let len: usize = shape.iter().product();
            if values.len() != len {
                return Err(Error::Shape(format!(
                    "params[{i}] has shape {} but {} values",
                    fmt_shape(shape),
                    values.len()
                )));
            }
            if let Some(j) = values.iter().position(|v| !v.is_finite()) {
                return Err(Error::Value(format!(
                    "params[{i}] contains NaN or Inf (at flat index {j})"
                )));
            }
            mlp.params[pos..pos + len].copy_from_slice(values);
            pos += len;
        }
        Ok(mlp)
    }

    /// Input dimension d.
    pub fn dim(&self) -> usize {
        self.widths[0]
    }

    /// Hidden widths `[n_1, ..., n_L]`.
    pub fn hidden(&self) -> &[usize] {
        &self.widths[1..self.widths.len() - 1]
    }

    /// `[dim, n_1, ..., n_L, 1]`.
    pub fn widths(&self) -> &[usize] {
        &self.widths
    }

    /// Number of hidden layers L.
    pub fn n_layers(&self) -> usize {
        self.widths.len() - 2
    }

    /// Widest hidden layer: the widest adjoint a reverse pass keeps (h̄_0, `dim` wide, goes
    /// straight to its output).
    pub fn max_hidden(&self) -> usize {
        self.hidden().iter().copied().max().unwrap_or(1)
    }

    pub fn activation(&self) -> Activation {
        self.activation
    }

    /// The confining coefficient α of the term (α/2)‖x‖².
    pub fn alpha(&self) -> T {
        self.alpha
    }

    /// α exactly as given at construction.
    pub fn alpha_f64(&self) -> f64 {
        self.alpha_f64
    }

    /// All parameters, flat, in the public order.
    pub fn params(&self) -> &[T] {
        &self.params
    }

    /// Replaces all parameters; `flat` must have [`Mlp::n_params`] finite values.
    pub fn set_params(&mut self, flat: &[T]) -> Result<()> {
        if flat.len() != self.params.len() {
            return Err(Error::Shape(format!(
                "expected {} parameters, got {}",
                self.params.len(),
                flat.len()
            )));
        }
        if let Some(j) = flat.iter().position(|v| !v.is_finite()) {
            return Err(Error::Value(format!(
                "parameters contain NaN or Inf (at flat index {j})"
            )));
        }
        self.params.copy_from_slice(flat);
        Ok(())
    }

    /// Total number of parameters.
    pub fn n_params(&self) -> usize {
        self.params.len()
    }

    /// Shapes of the public parameter list `[W_1, b_1, ..., w, c]`.
    pub fn param_shapes(&self) -> Vec<Vec<usize>> {
        self.widths
            .windows(2)
            .flat_map(|p| [vec![p[1], p[0]], vec![p[1]]])
            .collect()
    }

    /// Layer `l` in 0..=L (0-based; index L is the linear output layer `w, c`).
    #[inline]
    pub fn layer(&self, l: usize) -> Layer<'_, T> {
        let (n_in, n_out, off) = (self.widths[l], self.widths[l + 1], self.offsets[l]);
        let (w, b) = self.params[off..off + (n_in + 1) * n_out].split_at(n_in * n_out);
        Layer { w, b, n_in, n_out }
    }

    /// Offset and length of layer `l`'s block `[W_l, b_l]` in the flat vector.
    #[inline]
    pub fn layer_span(&self, l: usize) -> std::ops::Range<usize> {
        self.offsets[l]..self.offsets[l] + self.layer_len(l)
    }

    fn layer_len(&self, l: usize) -> usize {
        (self.widths[l] + 1) * self.widths[l + 1]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_round_trips_through_parts() {
        let m = Mlp::<f64>::new(3, &[4, 5], Activation::Tanh, 0.5, 7).unwrap();
        let shapes = m.param_shapes();
        assert_eq!(
            shapes,
            vec![
                vec![4, 3],
                vec![4],
                vec![5, 4],
                vec![5],
                vec![1, 5],
                vec![1]
            ]
        );
        let mut pos = 0;
        let mut parts = Vec::new();
        for s in &shapes {
            let len: usize = s.iter().product();
            parts.push((s.as_slice(), &m.params()[pos..pos + len]));
            pos += len;
        }
        assert_eq!(pos, m.n_params());
        let back = Mlp::from_parts(&parts, Activation::Tanh, 0.5).unwrap();
        assert_eq!(back, m);
    }

    #[test]
    fn init_is_reproducible_and_bounded() {
        let a = Mlp::<f32>::new(2, &[8, 8], Activation::Silu, 0.0, 1).unwrap();
        let b = Mlp::<f32>::new(2, &[8, 8], Activation::Silu, 0.0, 1).unwrap();
        let c = Mlp::<f32>::new(2, &[8, 8], Activation::Silu, 0.0, 2).unwrap();
        assert_eq!(a, b);
        assert_ne!(a.params(), c.params());
        let l0 = a.layer(0);
        assert!(l0.w.iter().all(|v| v.abs() <= 1.0 / 2f32.sqrt()));
    }

    /// α is kept exactly as given (the Python `alpha` property reads it), beside its value
    /// in the model's type.
    #[test]
    fn alpha_is_kept_as_given() {
        let m = Mlp::<f32>::new(2, &[3], Activation::Tanh, 0.1, 0).unwrap();
        assert_eq!((m.alpha_f64(), m.alpha()), (0.1, 0.1f32));
        assert_eq!((m.n_layers(), m.hidden()), (1, &[3][..]));
        let m = Mlp::<f64>::new(2, &[3, 4, 5], Activation::Tanh, 2.5, 0).unwrap();
        assert_eq!((m.alpha_f64(), m.n_layers()), (2.5, 3));
    }

    #[test]
    fn bad_architectures_are_errors() {
        assert!(Mlp::<f64>::zeros(0, &[3], Activation::Tanh, 0.0).is_err());
        assert!(Mlp::<f64>::zeros(2, &[], Activation::Tanh, 0.0).is_err());
        assert!(Mlp::<f64>::zeros(2, &[3, 0], Activation::Tanh, 0.0).is_err());
        assert!(Mlp::<f64>::zeros(2, &[3], Activation::Tanh, -1.0).is_err());
        assert!(Mlp::<f64>::zeros(2, &[3], Activation::Tanh, f64::NAN).is_err());
        assert!(Mlp::<f64>::zeros(1 << 20, &[1 << 20], Activation::Tanh, 0.0).is_err());
    }

    /// The architecture is read from shapes alone, with the checks of `from_parts`: the
    /// binding refuses parameters by shape before it copies any.
    #[test]
    fn architecture_is_read_from_shapes() {
        let shapes: [&[usize]; 6] = [&[4, 2], &[4], &[3, 4], &[3], &[1, 3], &[1]];
        assert_eq!(Mlp::<f64>::architecture(&shapes).unwrap(), (2, vec![4, 3]));
        let bad: [&[usize]; 4] = [&[4, 2], &[3], &[1, 4], &[1]];
        let err = Mlp::<f64>::architecture(&bad).unwrap_err().to_string();
        assert!(
            err.contains("params[1] (b_1) must have shape (4,), got (3,)"),
            "{err}"
        );
        let n = 1 << 31;
        let huge: [&[usize]; 4] = [&[n, 2], &[n], &[1, n], &[1]];
        let err = Mlp::<f64>::architecture(&huge).unwrap_err().to_string();
        assert!(err.contains("has more than 2147483648 parameters"), "{err}");
    }

    #[test]
    fn bad_parts_are_errors() {
        let w = [0.0; 6];
        let b = [0.0; 3];
        let wo = [0.0; 3];
        let c = [0.0; 1];
        let ok: Vec<(&[usize], &[f64])> =
            vec![(&[3, 2], &w), (&[3], &b), (&[1, 3], &wo), (&[1], &c)];
        assert!(Mlp::from_parts(&ok, Activation::Tanh, 0.0).is_ok());
        let err = |parts: &[(&[usize], &[f64])]| {
            Mlp::from_parts(parts, Activation::Tanh, 0.0)
                .unwrap_err()
                .to_string()
        };
        let mut bad = ok.clone();
        bad[2] = (&[1, 2], &wo[..2]);
        assert_eq!(
            err(&bad),
            "params[2] (w) must have shape (1, 3), got (1, 2)"
        );
        bad = ok.clone();
        bad[1] = (&[2], &b[..2]);
        assert_eq!(err(&bad), "params[1] (b_1) must have shape (3,), got (2,)");
        // Weights in the (n_in, n_out) layout of JAX/Flax: the first W is blamed, not b_1
        // (which the next weight agrees with); a later W is named as transposed.
        let flax = vec![
            (&[2, 3][..], &w[..]),
            (&[3], &b),
            (&[3, 1], &wo),
            (&[1], &c),
        ];
        assert!(
            err(&flax).starts_with(
                "params[0] (W_1) has shape (2, 3) but params[1] (b_1) has 3 entries: W_1 must \
                 be (n_1, dim) = (3, 2): weights are (n_out, n_in)"
            ),
            "{}",
            err(&flax)
        );
        let later = vec![
            (&[3, 2][..], &w[..]),
            (&[3], &b),
            (&[3, 1], &wo),
            (&[1], &c),
        ];
        assert_eq!(
            err(&later),
            format!("params[2] (w) must have shape (1, 3), got (3, 1){TRANSPOSED}")
        );
        // A right W_1 beside a wrong b_1 whose length the next weight also holds (here dim
        // = n_2): the bias's error, not a transposition.
        let w2 = [0.0; 6];
        let bias = vec![
            (&[3, 2][..], &w[..]),
            (&[2], &b[..2]),
            (&[2, 3], &w2[..]),
            (&[2], &b[..2]),
            (&[1, 2], &wo[..2]),
            (&[1], &c),
        ];
        assert_eq!(err(&bias), "params[1] (b_1) must have shape (3,), got (2,)");
        // A wrong second axis that transposing would not mend: no hint.
        let other = vec![
            (&[3, 2][..], &w[..]),
            (&[3], &b),
            (&[3, 4], &w[..]),
            (&[1], &c),
        ];
        assert_eq!(
            err(&other),
            "params[2] (w) must have shape (1, 3), got (3, 4)"
        );
        bad = ok.clone();
        bad[0] = (&[6], &w);
        assert_eq!(
            err(&bad),
            "params[0] (W_1) must be 2-D (n_1, dim), got shape (6,)"
        );
        bad = ok.clone();
        bad[0] = (&[3, 2], &w[..5]);
        assert_eq!(err(&bad), "params[0] has shape (3, 2) but 5 values");
        for n in [2, 3, 5] {
            let mut parts = ok.clone();
            parts.resize(n, (&[1], &c));
            assert!(err(&parts).ends_with(&format!("got {n} arrays")), "{n}");
        }
        bad = ok.clone();
        bad[2] = (&[2, 3], &w);
        assert_eq!(
            err(&bad),
            "params[2] (w) must have shape (1, 3), got (2, 3)"
        );
        bad = ok.clone();
        bad[0] = (&[0, 2], &[]);
        assert_eq!(
            err(&bad),
            "params[0] (W_1) must have shape (n_out >= 1, 2), got (0, 2)"
        );
        let nan = [f64::NAN];
        bad = ok.clone();
        bad[3] = (&[1], &nan);
        assert_eq!(err(&bad), "params[3] contains NaN or Inf (at flat index 0)");
    }

    #[test]
    fn shapes_print_as_numpy_does() {
        assert_eq!(fmt_shape(&[3]), "(3,)");
        assert_eq!(fmt_shape(&[4, 2]), "(4, 2)");
        assert_eq!(fmt_shape(&[2, 3, 4]), "(2, 3, 4)");
        assert_eq!(fmt_shape(&[]), "()");
    }
}
