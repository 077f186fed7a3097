//! [`Model`]: an [`Mlp`] together with its weights prepared for the GEMM backend.
//!
//! The weight matrices are the right-hand side of every product of a pass, for every chunk
//! and thread: they are laid out once, when the parameters are set, not once per call.

use crate::error::Result;
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
}

impl<T: Real> Model<T> {
    pub fn new(mlp: Mlp<T>) -> Self {
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
        };
        model.set_w1t();
        model
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
        let mut m = Model::new(a.clone());
        m.set_params(b.params()).unwrap();
        let fresh = Model::new(b.clone());
        assert_eq!(m.mlp().params(), b.params());
        assert_eq!(
            (&m.fwd, &m.bwd, &m.w1t),
            (&fresh.fwd, &fresh.bwd, &fresh.w1t)
        );
        // A refused update leaves the model as it was.
        let mut bad = a.params().to_vec();
        bad[4] = f64::NAN;
        assert!(m.set_params(&bad).is_err());
        assert_eq!(m.mlp().params(), b.params());
        assert_eq!(&m.fwd, &fresh.fwd);
    }
}
