//! `specc._specc`: the Rust half of the Python package. A spec is checked once into a
//! [`Model`]; its tensors are generated straight into memory Python owns (numpy arrays, torch
//! tensors) by the same generators as the file, in parallel and without the GIL, so the
//! values are the file's bytes. The Python half (python/specc/__init__.py) gives the
//! documented functions and raises `SpecError`.

use numpy::{PyArrayDyn, PyArrayMethods};
use pyo3::exceptions::{PyKeyError, PyOSError, PyValueError};
use pyo3::prelude::*;
use specc::build::Generator;
use specc::{DType, SourceFile, TensorDecl};

/// A checked spec: its source and its resolved model.
#[pyclass(module = "specc._specc", frozen)]
struct Model {
    src: SourceFile,
    model: specc::Model,
}

/// A rayon pool of `threads` workers (all cores, at most, when `None`), made once per
/// count: `tensors` fills hundreds of arrays, each with the pool.
fn pool(threads: Option<usize>) -> PyResult<std::sync::Arc<rayon::ThreadPool>> {
    use std::sync::{Arc, Mutex, OnceLock};
    type Pools = Mutex<Vec<(usize, Arc<rayon::ThreadPool>)>>;
    static POOLS: OnceLock<Pools> = OnceLock::new();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let n = threads.unwrap_or(cores).clamp(1, cores);
    let mut pools = POOLS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if let Some((_, p)) = pools.iter().find(|(k, _)| *k == n) {
        return Ok(p.clone());
    }
    let p = Arc::new(
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build()
            .map_err(|e| PyOSError::new_err(format!("cannot start {n} threads: {e}")))?,
    );
    pools.push((n, p.clone()));
    Ok(p)
}

impl Model {
    /// The stored tensor `name` holds, or the one a tied `name` shares.
    fn decl(&self, name: &str) -> PyResult<&TensorDecl> {
        let name = self
            .model
            .ties
            .iter()
            .find(|t| t.name == name)
            .map_or(name, |t| t.target.as_str());
        self.model
            .tensors
            .iter()
            .find(|t| t.name == name)
            .ok_or_else(|| PyKeyError::new_err(format!("the spec declares no tensor `{name}`")))
    }
}

/// A new uninitialized numpy array of `shape` with elements of type `T`, filled by `gen`.
fn array<'py, T: numpy::Element>(
    py: Python<'py>,
    shape: &[usize],
    fill: impl FnOnce(&mut [u8]) + Send,
) -> Bound<'py, PyAny> {
    // SAFETY: every element is written by `fill` before the array is handed to Python.
    let a = unsafe { PyArrayDyn::<T>::new(py, shape, false) };
    {
        // SAFETY: a new C-contiguous array that no one else can see yet.
        let slice = unsafe { a.as_slice_mut() }.expect("a new array is contiguous");
        let bytes = unsafe {
            std::slice::from_raw_parts_mut(
                slice.as_mut_ptr().cast::<u8>(),
                std::mem::size_of_val(slice),
            )
        };
        py.detach(|| fill(bytes));
    }
    a.into_any()
}

#[pymethods]
impl Model {
    /// The stored tensors, in declaration order: (name, shape, dtype).
    fn tensors(&self) -> Vec<(String, Vec<u64>, &'static str)> {
        self.model
            .tensors
            .iter()
            .map(|t| (t.name.clone(), t.shape.clone(), t.dtype.name()))
            .collect()
    }

    /// The tied names: (name, the stored tensor it shares).
    fn ties(&self) -> Vec<(String, String)> {
        self.model
            .ties
            .iter()
            .map(|t| (t.name.clone(), t.target.clone()))
            .collect()
    }

    /// The tensor `name` as a new numpy array (bf16 as its uint16 bits).
    #[pyo3(signature = (name, threads=None))]
    fn array<'py>(
        &self,
        py: Python<'py>,
        name: &str,
        threads: Option<usize>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let t = self.decl(name)?;
        let pool = pool(threads)?;
        let shape: Vec<usize> = t.shape.iter().map(|&d| d as usize).collect();
        let layout = self.model.layout;
        let fill = |bytes: &mut [u8]| pool.install(|| Generator::new(t, layout).fill(0, bytes));
        Ok(match t.dtype {
            DType::F32 => array::<f32>(py, &shape, fill),
            DType::F16 => array::<half::f16>(py, &shape, fill),
            DType::BF16 => array::<u16>(py, &shape, fill),
            DType::F64 => array::<f64>(py, &shape, fill),
            DType::I64 => array::<i64>(py, &shape, fill),
            DType::I32 => array::<i32>(py, &shape, fill),
            DType::Bool => array::<bool>(py, &shape, fill),
        })
    }

    /// Writes the tensor `name`'s bytes to `nbytes` bytes of memory at `address` (a
    /// contiguous CPU tensor's `data_ptr()`, checked by the caller to be this tensor's
    /// shape and dtype).
    #[pyo3(signature = (name, address, nbytes, threads=None))]
    fn fill(
        &self,
        py: Python<'_>,
        name: &str,
        address: usize,
        nbytes: usize,
        threads: Option<usize>,
    ) -> PyResult<()> {
        let t = self.decl(name)?;
        let want = t.numel() * t.dtype.size();
        if nbytes as u64 != want || address == 0 {
            return Err(PyValueError::new_err(format!(
                "`{name}` is {want} bytes; the memory given is {nbytes} bytes at {address:#x}"
            )));
        }
        let pool = pool(threads)?;
        let layout = self.model.layout;
        // SAFETY: the caller hands the memory of a live, contiguous tensor of exactly this
        // size, which nothing else writes while the GIL is released.
        let bytes = unsafe { std::slice::from_raw_parts_mut(address as *mut u8, nbytes) };
        py.detach(|| pool.install(|| Generator::new(t, layout).fill(0, bytes)));
        Ok(())
    }

    /// The documented summary JSON (docs/format.md), as text.
    fn summary_json(&self) -> String {
        serde_json::to_string(&specc::report::json(&self.model)).expect("the summary serializes")
    }

    /// Builds the file (or shard set) at `out`; returns (files, tensors, params, bytes).
    #[pyo3(signature = (out, threads=None, max_shard_size=None))]
    fn build(
        &self,
        py: Python<'_>,
        out: std::path::PathBuf,
        threads: Option<usize>,
        max_shard_size: Option<u64>,
    ) -> PyResult<(usize, usize, u64, u64)> {
        let options = specc::output::Options {
            threads,
            max_shard_size,
            ..Default::default()
        };
        // Planning hashes every from_file source: without the GIL, as the writing is.
        let r = py
            .detach(|| {
                let job = specc::output::Build::new(&self.model, &self.src, &out, options)?;
                job.run(&mut |_| {})
            })
            .map_err(|e| PyOSError::new_err(e.to_string()))?;
        Ok((r.files, r.tensors, r.params, r.bytes))
    }
}

/// Checks a spec (a path, or its text when `text` is true): (the model or None, the
/// diagnostics as JSON, the diagnostics rendered for people).
#[pyfunction]
#[pyo3(signature = (spec, text, seed=None, dtype=None, set=Vec::new()))]
fn open(
    py: Python<'_>,
    spec: String,
    text: bool,
    seed: Option<u64>,
    dtype: Option<String>,
    set: Vec<(String, String)>,
) -> PyResult<(Option<Model>, String, String)> {
    let dtype = match dtype.as_deref() {
        None => None,
        Some(d) => Some(
            DType::from_spec(d)
                .filter(|d| d.is_float())
                .ok_or_else(|| {
                    PyValueError::new_err(format!("dtype is one of f32, f16, bf16, f64, not {d:?}"))
                })?,
        ),
    };
    let options = specc::Options {
        seed,
        dtype,
        set,
        ..Default::default()
    };
    let (src, checked) = if text {
        let src = SourceFile::new("<spec>", spec);
        let checked = py.detach(|| specc::check_with(&src, options));
        (src, checked)
    } else {
        py.detach(|| specc::load_and_check(std::path::Path::new(&spec), options))
            .map_err(|e| PyOSError::new_err(e.to_string()))?
    };
    let json = serde_json::to_string(&specc::diag::to_json(&src, &checked.diagnostics))
        .expect("diagnostics serialize");
    let style = specc::diag::HumanStyle {
        color: false,
        width: 100,
    };
    let human = specc::diag::render_human(&src, &checked.diagnostics, style);
    let model = checked.model.map(|model| Model { src, model });
    Ok((model, json, human))
}

/// Runs the `specc` command line with `argv` (the program name first); returns its exit code.
#[pyfunction]
fn cli(py: Python<'_>, argv: Vec<String>) -> u8 {
    py.detach(|| specc::cli::run(argv))
}

#[pymodule]
fn _specc(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Model>()?;
    m.add_function(wrap_pyfunction!(open, m)?)?;
    m.add_function(wrap_pyfunction!(cli, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
