//! numpy ⇄ core conversions. Nothing here copies an input array: inputs are read in place
//! through [`Rows`] views with their own strides.

use numpy::npyffi::{npy_intp, PY_ARRAY_API};
use numpy::{
    Element, PyArray, PyArray1, PyArray2, PyArrayDescrMethods, PyArrayDyn, PyArrayMethods,
    PyReadonlyArray2, PyUntypedArrayMethods,
};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use scorematch_core::{Real, Rows};

/// The element types the engine runs in.
pub trait Float: Real + Element {}
impl Float for f32 {}
impl Float for f64 {}

/// Borrows `obj` as a 2-D array of `T` (the Python layer has already converted dtype and ndim).
pub fn readonly2<'py, T: Float>(
    obj: &Bound<'py, PyAny>,
    what: &str,
) -> PyResult<PyReadonlyArray2<'py, T>> {
    Ok(array2(obj, what)?.try_readonly()?)
}

/// `obj` as a 2-D array of `T`, not borrowed (see [`readonly2`]).
fn array2<'py, T: Float>(obj: &Bound<'py, PyAny>, what: &str) -> PyResult<Bound<'py, PyArray2<T>>> {
    match obj.cast::<PyArray2<T>>() {
        // An empty array holds no element to read, but a view of it still needs an aligned
        // pointer, which numpy does not promise (its `aligned` flag is true of every empty
        // array, so the Python layer passes an empty view at an odd offset on as it is): it
        // stands for a fresh empty array of its shape, which is what the plain array gives.
        Ok(a) if a.is_empty() && !aligned(a) => {
            Ok(zeros::<T, 2>(obj.py(), [a.shape()[0], a.shape()[1]])?)
        }
        // The Python layer copies misaligned views (`_validate.as_batch`); refuse one that
        // arrives here another way rather than read it.
        Ok(a) if !aligned(a) => Err(PyTypeError::new_err(format!(
            "{what} is not aligned for {}: pass a copy (np.array({what}))",
            T::NAME
        ))),
        Ok(a) => Ok(a.clone()),
        Err(_) => Err(PyTypeError::new_err(format!(
            "{what} must be a 2-D numpy array of {}, got {}",
            T::NAME,
            describe(obj)
        ))),
    }
}

/// `x` as an (n, `dim`) array of `T` for a per-row method, not yet borrowed: the caller
/// borrows it with `try_readonly` to read it without the GIL, or reads it through
/// [`rows_with_gil`].
///
/// An array that already is one (any memory order or strides, read-only or not) is taken as
/// it is without running any Python code: a single-point call spends a quarter of its time in
/// the Python check otherwise. Anything else (another dtype or shape, a list, a non-native
/// byte order) goes through `scorematch._validate.as_batch`, the one place that decides what
/// is converted and what is an error, so both routes accept and reject the same inputs with
/// the same messages; NaN and Inf are checked by the engine on either route.
pub fn batch<'py, T: Float>(
    x: &Bound<'py, PyAny>,
    dim: usize,
    what: &str,
) -> PyResult<Bound<'py, PyArray2<T>>> {
    // Exactly an ndarray: a subclass (a masked array above all) goes through `as_batch`, which
    // decides what it means.
    if let Ok(a) = x.cast_exact::<PyArray2<T>>() {
        if a.shape()[1] == dim && aligned(a) {
            return Ok(a.clone());
        }
    }
    static AS_BATCH: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    let as_batch = AS_BATCH.import(x.py(), "scorematch._validate", "as_batch")?;
    array2(&as_batch.call1((x, dim, T::NAME, what))?, what)
}

/// Whether every element of `a` sits at an address aligned for `T` (numpy allows views at
/// any byte offset; Rust may only read aligned `T`s). The stride of an axis of length 0 or 1
/// never enters an address, so it may be anything, as numpy's own `aligned` flag has it.
fn aligned<T: Float, D: numpy::ndarray::Dimension>(a: &Bound<'_, PyArray<T, D>>) -> bool {
    let size = std::mem::size_of::<T>() as isize;
    (a.data() as usize).is_multiple_of(std::mem::align_of::<T>())
        && a.shape()
            .iter()
            .zip(a.strides())
            .all(|(&n, s)| n <= 1 || s % size == 0)
}

/// A view of a borrowed array; valid while `arr` lives.
pub fn rows<'a, T: Float>(arr: &'a PyReadonlyArray2<'_, T>) -> Rows<'a, T> {
    view(arr.as_array())
}

/// A view of `arr` for a computation that holds the GIL from start to end, without
/// rust-numpy's borrow tracking: registering and releasing the borrow cost ~0.15 µs, 8 % of
/// a single-point `score` (measured).
///
/// # Safety
/// The caller holds `'py`'s GIL for as long as the view lives, and never gives it up (no
/// `detach`, no call into Python that could). Then no Rust borrow of `arr` in this extension
/// can be mutable: the only one there is (`Optimizer.step`'s) also holds the GIL. Writers
/// that run without the GIL — numpy's own ufunc loops, another extension — are not stopped by
/// borrow tracking either, as with [`rows`]' reads.
pub unsafe fn rows_with_gil<'a, T: Float>(arr: &'a Bound<'_, PyArray2<T>>) -> Rows<'a, T> {
    // SAFETY: forwarded contract: no mutable Rust borrow of the array exists while it lives.
    view(unsafe { arr.as_array() })
}

fn view<T: Float>(view: numpy::ndarray::ArrayView2<'_, T>) -> Rows<'_, T> {
    let (n, d) = view.dim();
    let s = view.strides();
    // SAFETY: ndarray's view guarantees that every (i, j) in bounds at these element strides
    // points into the array, which outlives the view's lifetime, unwritten by Rust (see
    // `rows` and `rows_with_gil`). Another Python thread holding the array can still write it
    // while the engine runs without the GIL: numpy allows that race on plain floats, and the
    // engine then reads some mix of old and new values (never outside the array).
    unsafe { Rows::from_raw_parts(view.as_ptr(), n, d, s[0], s[1]) }
}

/// A fresh zero-filled C-ordered array of `shape`, or numpy's `MemoryError` where
/// rust-numpy's constructors panic. Zero-filled, not left uninitialized: a Rust slice over
/// uninitialized floats is undefined behaviour, and the fill costs nothing measurable (calloc
/// maps fresh zero pages for large arrays; a single-point `score` timed the same).
pub fn zeros<'py, T: Float, const N: usize>(
    py: Python<'py>,
    shape: [usize; N],
) -> PyResult<Bound<'py, PyArray<T, numpy::ndarray::Dim<[usize; N]>>>>
where
    numpy::ndarray::Dim<[usize; N]>: numpy::ndarray::Dimension,
{
    let mut dims = shape.map(|n| n as npy_intp);
    // SAFETY: the numpy C API as rust-numpy's `PyArray::zeros` calls it, with the descriptor
    // reference stolen by the call; a NULL result is turned into the error numpy set instead
    // of being dereferenced.
    unsafe {
        let descr = T::get_dtype(py).into_dtype_ptr();
        let ptr = PY_ARRAY_API.PyArray_Zeros(py, N as i32, dims.as_mut_ptr(), descr, 0);
        Ok(Bound::from_owned_ptr_or_err(py, ptr)?.cast_into_unchecked())
    }
}

/// A fresh zero-filled C-ordered array of `shape` and a mutable view of its data, for the
/// engine to fill without the GIL (no intermediate buffer, no copy).
pub fn output<T: Float, const N: usize>(
    py: Python<'_>,
    shape: [usize; N],
) -> PyResult<(Bound<'_, PyAny>, &mut [T])>
where
    numpy::ndarray::Dim<[usize; N]>: numpy::ndarray::Dimension,
{
    let arr = zeros::<T, N>(py, shape)?;
    // SAFETY: the array is fresh, C-contiguous, initialized and referenced nowhere else, so
    // the slice is the only access to its elements for as long as the owning `Bound` lives.
    let data = unsafe { std::slice::from_raw_parts_mut(arr.data(), shape.iter().product()) };
    Ok((arr.into_any(), data))
}

/// The public parameter list `[W_1, b_1, ..., w, c]` as fresh arrays, from a flat vector.
pub fn param_list<'py, T: Float>(
    py: Python<'py>,
    flat: &[T],
    shapes: &[Vec<usize>],
) -> PyResult<Vec<Bound<'py, PyAny>>> {
    let mut pos = 0;
    shapes
        .iter()
        .map(|s| {
            let len: usize = s.iter().product();
            let arr = PyArray1::from_slice(py, &flat[pos..pos + len]);
            pos += len;
            Ok(arr.reshape(s.as_slice())?.into_any())
        })
        .collect()
}

/// rust-numpy's views panic past ndarray's 32 dimensions, which numpy ≥ 2 allows; a
/// parameter has one or two. Checked first wherever `params[i]`'s shape is.
pub fn check_param_ndim(i: usize, ndim: usize) -> PyResult<()> {
    if ndim > 32 {
        return Err(PyValueError::new_err(format!(
            "params[{i}] must be 1-D or 2-D, got an array of {ndim} dimensions"
        )));
    }
    Ok(())
}

/// Shapes and values of a list of arrays of `T` (each copied: parameter lists are small).
pub fn arrays<T: Float>(list: &[Bound<'_, PyAny>]) -> PyResult<Vec<(Vec<usize>, Vec<T>)>> {
    list.iter()
        .enumerate()
        .map(|(i, obj)| {
            let arr = obj.cast::<PyArrayDyn<T>>().map_err(|_| {
                PyTypeError::new_err(format!(
                    "params[{i}] must be a numpy array of {}, got {}",
                    T::NAME,
                    describe(obj)
                ))
            })?;
            check_param_ndim(i, arr.ndim())?;
            // An empty array has no value to read; numpy calls it aligned wherever it points
            // (so `np.require` leaves an empty view at an odd offset as it is), but a view of
            // it needs an aligned pointer.
            if arr.is_empty() {
                return Ok((arr.shape().to_vec(), Vec::new()));
            }
            // The Python layer copies misaligned arrays (`np.require`); refuse one that
            // arrives here another way rather than read it.
            if !aligned(arr) {
                return Err(PyTypeError::new_err(format!(
                    "params[{i}] is not aligned for {}: pass a copy (np.array(params[{i}]))",
                    T::NAME
                )));
            }
            let ro = arr.try_readonly()?;
            Ok((ro.shape().to_vec(), ro.as_array().iter().copied().collect()))
        })
        .collect()
}

fn describe(obj: &Bound<'_, PyAny>) -> String {
    let dtype = obj
        .getattr("dtype")
        .map(|d| d.to_string())
        .unwrap_or_default();
    let ty = obj
        .get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".into());
    if dtype.is_empty() {
        ty
    } else {
        format!("{ty} of dtype {dtype}")
    }
}
