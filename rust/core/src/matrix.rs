//! [`Rows`]: a read-only view of an (n, d) input matrix with arbitrary strides.
//!
//! The batch functions read their input through this view and copy one chunk of rows at a
//! time into a contiguous workspace buffer. Fortran-ordered, strided and reversed numpy arrays
//! are therefore read in place: no full copy of the input is ever made.

use std::marker::PhantomData;

use crate::error::{Error, Result};
use crate::real::Real;

/// A borrowed (rows × cols) matrix; element (i, j) is at `ptr + i·rs + j·cs` (in elements).
#[derive(Clone, Copy)]
pub struct Rows<'a, T> {
    ptr: *const T,
    rows: usize,
    cols: usize,
    rs: isize,
    cs: isize,
    _borrow: PhantomData<&'a [T]>,
}

// SAFETY: `Rows` is a shared borrow of `T` values (see `from_raw_parts`); sharing it across
// threads is as safe as sharing `&[T]`.
unsafe impl<T: Sync> Send for Rows<'_, T> {}
unsafe impl<T: Sync> Sync for Rows<'_, T> {}

impl<'a, T: Real> Rows<'a, T> {
    /// A view of a contiguous row-major slice.
    pub fn from_slice(data: &'a [T], rows: usize, cols: usize) -> Result<Self> {
        if rows.checked_mul(cols) != Some(data.len()) {
            return Err(Error::Shape(format!(
                "a ({rows}, {cols}) matrix needs {} values, got {}",
                rows.saturating_mul(cols),
                data.len()
            )));
        }
        Ok(Rows {
            ptr: data.as_ptr(),
            rows,
            cols,
            rs: cols as isize,
            cs: 1,
            _borrow: PhantomData,
        })
    }

    /// A view of memory owned elsewhere (a numpy array).
    ///
    /// # Safety
    /// For every `i < rows`, `j < cols`, `ptr.offset(i·rs + j·cs)` must point to an initialized
    /// `T` that stays valid for `'a` and that no Rust code writes meanwhile. Writes from
    /// outside Rust (numpy code in another thread, on an array the engine reads without the
    /// GIL) are a data race Rust's model does not allow: the binding accepts that race, as
    /// numpy does for plain floats, and documents it; the values read are then unspecified,
    /// but never outside the array.
    pub unsafe fn from_raw_parts(
        ptr: *const T,
        rows: usize,
        cols: usize,
        rs: isize,
        cs: isize,
    ) -> Self {
        Rows {
            ptr,
            rows,
            cols,
            rs,
            cs,
            _borrow: PhantomData,
        }
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Rows `start..start + len` as a view of their own.
    pub fn sub(&self, start: usize, len: usize) -> Self {
        assert!(
            start.checked_add(len).is_some_and(|end| end <= self.rows),
            "rows {start}.. ({len} of them) of {}",
            self.rows
        );
        // SAFETY: row `start` is in bounds (or the view is empty) and the strides are unchanged.
        // A view of zero columns promises no element at all, so its pointer only moves by
        // `wrapping_offset`, which is never undefined (and is never read through).
        let ptr = if len == 0 {
            self.ptr
        } else if self.cols == 0 {
            self.ptr.wrapping_offset(start as isize * self.rs)
        } else {
            unsafe { self.ptr.offset(start as isize * self.rs) }
        };
        Rows {
            ptr,
            rows: len,
            ..*self
        }
    }

    /// Element (i, j).
    #[inline(always)]
    pub fn at(&self, i: usize, j: usize) -> T {
        assert!(i < self.rows && j < self.cols);
        // SAFETY: in bounds by the assertion and the constructor's contract.
        unsafe { *self.ptr.offset(i as isize * self.rs + j as isize * self.cs) }
    }

    /// Copies rows `start..start + count` into `dst` (row-major, `count × cols`).
    #[inline]
    pub fn copy_rows(&self, start: usize, count: usize, dst: &mut [T]) {
        assert!(
            start.checked_add(count).is_some_and(|end| end <= self.rows)
                && count.checked_mul(self.cols) == Some(dst.len())
        );
        if self.cs == 1 {
            for (r, out) in dst.chunks_exact_mut(self.cols.max(1)).enumerate() {
                // SAFETY: row `start + r` is in bounds and contiguous because cs == 1.
                let src = unsafe {
                    std::slice::from_raw_parts(
                        self.ptr.offset((start + r) as isize * self.rs),
                        self.cols,
                    )
                };
                out.copy_from_slice(src);
            }
        } else {
            for (r, out) in dst.chunks_exact_mut(self.cols.max(1)).enumerate() {
                for (j, o) in out.iter_mut().enumerate() {
                    *o = self.at(start + r, j);
                }
            }
        }
    }

    /// The first row holding NaN or Inf, if any.
    pub fn first_nonfinite_row(&self) -> Option<usize> {
        (0..self.rows).find(|&i| (0..self.cols).any(|j| !self.at(i, j).is_finite()))
    }

    /// Fails with [`Error::NonFinite`] naming the first bad row of `what`.
    pub fn check_finite(&self, what: &'static str) -> Result<()> {
        match self.first_nonfinite_row() {
            Some(row) => Err(Error::NonFinite { what, row }),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strided_views_copy_the_same_rows() {
        let a: Vec<f64> = (0..12).map(f64::from).collect(); // 3 x 4 row-major
        let c = Rows::from_slice(&a, 3, 4).unwrap();
        // The same matrix read through its transpose's memory (Fortran order).
        let t: Vec<f64> = (0..4)
            .flat_map(|j| (0..3).map(move |i| (4 * i + j) as f64))
            .collect();
        let f = unsafe { Rows::from_raw_parts(t.as_ptr(), 3, 4, 1, 3) };
        let (mut x, mut y) = (vec![0.0; 8], vec![0.0; 8]);
        c.copy_rows(1, 2, &mut x);
        f.copy_rows(1, 2, &mut y);
        assert_eq!(x, y);
        assert_eq!(x, vec![4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0]);
    }

    #[test]
    fn sub_views_see_the_same_rows() {
        let a: Vec<f32> = (0..12).map(|v| v as f32).collect();
        let v = Rows::from_slice(&a, 6, 2).unwrap();
        let s = v.sub(2, 3);
        assert_eq!((s.rows(), s.cols()), (3, 2));
        assert_eq!(s.at(0, 1), 5.0);
        assert_eq!(s.at(2, 0), 8.0);
        // 3·2 ≠ 3 + 2 (at start 2, 2·2 = 2 + 2: an offset of start + rs passed).
        assert_eq!(v.sub(3, 2).at(0, 0), 6.0);
        assert_eq!(v.sub(6, 0).rows(), 0);
    }

    #[test]
    #[should_panic(expected = "rows 1..")]
    fn a_sub_view_whose_end_overflows_is_refused() {
        // 1 + usize::MAX wraps to 0 ≤ rows: a wrapping check let this through.
        let a = [0.0f32; 4];
        Rows::from_slice(&a, 2, 2).unwrap().sub(1, usize::MAX);
    }

    #[test]
    #[should_panic]
    fn copying_rows_past_the_end_is_refused_even_when_the_end_wraps() {
        // usize::MAX + 2 wraps to 1 ≤ rows: a wrapping check read row usize::MAX.
        let a = [0.0f32; 2];
        Rows::from_slice(&a, 2, 1)
            .unwrap()
            .copy_rows(usize::MAX, 2, &mut [0.0; 2]);
    }

    #[test]
    fn nonfinite_rows_are_found() {
        let mut a = vec![0.0f32; 6];
        let v = Rows::from_slice(&a, 3, 2).unwrap();
        assert!(v.check_finite("X").is_ok());
        a[5] = f32::INFINITY;
        let v = Rows::from_slice(&a, 3, 2).unwrap();
        assert_eq!(
            v.check_finite("X"),
            Err(Error::NonFinite { what: "X", row: 2 })
        );
        assert!(Rows::from_slice(&a, 4, 2).is_err());
    }
}
