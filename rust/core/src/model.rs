//! [`Model`]: an [`Mlp`] together with its weights prepared for the GEMM backend.
//!
//! The weight matrices are the right-hand side of every product of a pass, for every chunk
//! and thread: they are laid out once, when the parameters are set, not once per call.

use crate::error::{check_reservable, Result};
use crate::gemm::Rhs;
use crate::mlp::Mlp;
use crate::real::Real;

/// A model ready to compute: parameters plus `W_lᵀ` (forward) and `W_l` (reverse) per hidden layer.
#[derive(Debug, Clone)]
pub struct Model<T> {
    mlp: Mlp<T>,
    /// `W_lᵀ`, (n_{l-1} × n_l): `z = h · W_lᵀ`.
    pub(crate) fwd: Vec<Rhs<T>>,
    /// `W_l`, (n_l × n_{l-1}): `h̄_{l-1} = z̄ · W_l`.
    pub(crate) bwd: Vec<Rhs<T>>,
    /// `W_1ᵀ` row-major (dim × n_1): the layer-1 tangents A_1 of every sample when T = I.
    pub(crate) w1t: Vec<T>,
    /// Σ_m (W_1ᵀ[m, i])², the squared norms of W_1's rows (n_1): layer 1's q of every sample
    /// when T = I, summed over m in the order the tape's per-sample loop sums it (so the
    /// same bits).
    pub(crate) q1: Vec<T>,
}

impl<T: Real> Model<T> {
    /// Lays out `mlp`'s weights; [`crate::Error::OutOfMemory`] when the layouts cannot be
    /// allocated (they take twice the weights, more where a layer narrower than the kernel's
    /// panel width is padded to it).
    pub fn new(mlp: Mlp<T>) -> Result<Self> {
        check_reservable(Self::bytes(&mlp), || {
            format!(
                "cannot allocate the GEMM layouts of a model of {} parameters",
                mlp.n_params()
            )
        })?;
        let hidden = 0..mlp.n_layers();
        let fwd = hidden
            .clone()
            .map(|l| {
                let ly = mlp.layer(l);
                Rhs::transposed(ly.w, ly.n_out, ly.n_in)
            })
            .collect();
        let bwd = hidden
            .map(|l| {
                let ly = mlp.layer(l);
                Rhs::new(ly.w, ly.n_out, ly.n_in)
            })
            .collect();
        let mut model = Model {
            mlp,
            fwd,
            bwd,
            w1t: Vec::new(),
            q1: Vec::new(),
        };
        model.set_w1t();
        Ok(model)
    }

    /// Bytes of the layouts [`Model::new`] makes for `mlp`: each W_l forward and reverse,
    /// W_1ᵀ and its column norms (`None`: more than `usize` holds).
    fn bytes(mlp: &Mlp<T>) -> Option<usize> {
        let l1 = mlp.layer(0);
        let w1t = ((l1.n_in + 1) * l1.n_out).checked_mul(std::mem::size_of::<T>());
        (0..mlp.n_layers()).try_fold(w1t?, |s, l| {
            let ly = mlp.layer(l);
            let both = Rhs::<T>::bytes(ly.n_in, ly.n_out)?
                .checked_add(Rhs::<T>::bytes(ly.n_out, ly.n_in)?)?;
            s.checked_add(both)
        })
    }

    /// New parameters (the flat layout of [`Mlp::set_params`], same architecture), laid
    /// out in the buffers already held: no allocation, as a training step needs.
    pub fn set_params(&mut self, flat: &[T]) -> Result<()> {
        self.mlp.set_params(flat)?;
        for l in 0..self.mlp.n_layers() {
            let w = self.mlp.layer(l).w;
            self.fwd[l].set_transposed(w);
            self.bwd[l].set(w);
        }
        self.set_w1t();
        Ok(())
    }

    fn set_w1t(&mut self) {
        let l1 = self.mlp.layer(0);
        self.w1t.clear();
        self.w1t
            .extend((0..l1.n_in).flat_map(|j| (0..l1.n_out).map(move |i| l1.w[i * l1.n_in + j])));
        self.q1.clear();
        self.q1.resize(l1.n_out, T::zero());
        for arow in self.w1t.chunks_exact(l1.n_out) {
            for (q, &a) in self.q1.iter_mut().zip(arow) {
                *q += a * a;
            }
        }
    }

    pub fn mlp(&self) -> &Mlp<T> {
        &self.mlp
    }

    pub fn into_mlp(self) -> Mlp<T> {
        self.mlp
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::activation::Activation;

    #[test]
    fn set_params_equals_a_fresh_model() {
        let mlp = |seed| Mlp::<f64>::new(3, &[5, 7], Activation::Tanh, 0.5, seed).unwrap();
        let (a, b) = (mlp(1), mlp(2));
        let mut m = Model::new(a.clone()).unwrap();
        m.set_params(b.params()).unwrap();
        let fresh = Model::new(b.clone()).unwrap();
        assert_eq!(m.mlp().params(), b.params());
        assert_eq!(
            (&m.fwd, &m.bwd, &m.w1t, &m.q1),
            (&fresh.fwd, &fresh.bwd, &fresh.w1t, &fresh.q1)
        );
        // A refused update leaves the model as it was.
        let mut bad = a.params().to_vec();
        bad[4] = f64::NAN;
        assert!(m.set_params(&bad).is_err());
        assert_eq!(m.mlp().params(), b.params());
        assert_eq!(&m.fwd, &fresh.fwd);
    }

    #[test]
    fn the_memory_check_counts_the_layouts() {
        for (dim, hidden) in [(1, vec![3]), (5, vec![40, 17]), (33, vec![8, 8, 70])] {
            let mlp = Mlp::<f32>::new(dim, &hidden, Activation::Tanh, 0.0, 0).unwrap();
            let m = Model::new(mlp.clone()).unwrap();
            let data = |r: &[Rhs<f32>]| r.iter().map(|r| r.data.len()).sum::<usize>();
            let made = data(&m.fwd) + data(&m.bwd) + m.w1t.len() + m.q1.len();
            assert_eq!(Model::bytes(&mlp), Some(made * 4), "{dim} {hidden:?}");
        }
    }
}
