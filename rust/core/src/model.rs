//! [`Model`]: an [`Mlp`] together with its weights prepared for the GEMM backend.
//!
//! The weight matrices are the right-hand side of every product of a pass, for every chunk
//! and thread: they are laid out once, when the parameters are set, not once per call.

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
        let l1 = mlp.layer(0);
        let w1t = (0..l1.n_in)
            .flat_map(|j| (0..l1.n_out).map(move |i| l1.w[i * l1.n_in + j]))
            .collect();
        Model { mlp, fwd, bwd, w1t }
    }

    pub fn mlp(&self) -> &Mlp<T> {
        &self.mlp
    }

    pub fn into_mlp(self) -> Mlp<T> {
        self.mlp
    }
}
