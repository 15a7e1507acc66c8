//! The lazy [`Tensor`]: a handle to a graph node. Nothing runs until a value is needed.

use crate::autograd::GradNode;
use crate::device::{canonical_device, default_device_name, init};
use crate::element::{from_bytes, to_bytes, Element};
use ferrograd_ir::{DType, Node, NodeRef, Scalar};
use ferrograd_runtime::Result;
use parking_lot::RwLock;
use std::fmt;
use std::sync::Arc;

/// A lazily evaluated n-dimensional array. Cloning is cheap and shares the value: realizing
/// one clone realizes all of them, and autograd state (`requires_grad`, `grad`) is shared too.
#[derive(Clone)]
pub struct Tensor {
    pub(crate) state: Arc<RwLock<State>>,
}

/// What a tensor handle shares between its clones.
pub(crate) struct State {
    /// The graph node holding the value (a buffer node once realized).
    pub(crate) node: NodeRef,
    /// How autograd reaches this tensor: a leaf that requires grad, or the op that computed it
    /// from such tensors. `None` for tensors that need no gradient.
    pub(crate) origin: Option<Arc<GradNode>>,
    /// The gradient accumulated by `backward` (into leaves) or set with `set_grad`.
    pub(crate) grad: Option<Tensor>,
}

impl fmt::Debug for Tensor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.node();
        write!(f, "Tensor({}{:?} on {})", n.dtype(), n.shape(), n.device())
    }
}

/// The default float dtype (for `rand`, division of integers, ...).
pub const DEFAULT_FLOAT: DType = DType::F32;

impl Tensor {
    /// Wraps a graph node as a tensor that autograd does not track (a constant).
    pub fn from_node(node: NodeRef) -> Tensor {
        Tensor::with_origin(node, None)
    }
    /// Wraps a graph node reached by autograd through `origin`.
    pub(crate) fn with_origin(node: NodeRef, origin: Option<Arc<GradNode>>) -> Tensor {
        Tensor {
            state: Arc::new(RwLock::new(State {
                node,
                origin,
                grad: None,
            })),
        }
    }
    /// The current graph node.
    pub fn node(&self) -> NodeRef {
        self.state.read().node.clone()
    }
    /// The shape.
    pub fn shape(&self) -> Vec<usize> {
        self.state.read().node.shape().to_vec()
    }
    /// Number of axes.
    pub fn ndim(&self) -> usize {
        self.state.read().node.shape().len()
    }
    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.state.read().node.numel()
    }
    /// The element type.
    pub fn dtype(&self) -> DType {
        self.state.read().node.dtype()
    }
    /// The device name.
    pub fn device(&self) -> Arc<str> {
        self.state.read().node.device().clone()
    }

    /// The buffer holding the value, if the current node is realized.
    pub(crate) fn buffer(&self) -> Option<ferrograd_ir::BufferHandle> {
        self.state.read().node.realized().cloned()
    }

    /// Makes `buffer` (of this tensor's shape, dtype and device) the value, keeping the
    /// tensor's autograd identity and gradient.
    pub(crate) fn set_buffer(&self, buffer: ferrograd_ir::BufferHandle) {
        let mut state = self.state.write();
        let n = &state.node;
        state.node = Node::buffer(buffer, n.dtype(), n.shape(), n.device());
    }

    // ---- creation -------------------------------------------------------------------------

    /// A tensor from a flat vector in row-major order.
    pub fn from_vec<T: Element>(data: Vec<T>, shape: &[usize]) -> Tensor {
        Self::from_slice(&data, shape)
    }

    /// A tensor from a flat slice in row-major order.
    pub fn from_slice<T: Element>(data: &[T], shape: &[usize]) -> Tensor {
        Self::from_bytes_on(&to_bytes(data), T::DTYPE, shape, &default_device_name())
    }

    /// A tensor from raw little-endian bytes on `device`. Panics if sizes disagree; device
    /// failures panic with the device's error (use [`Tensor::try_from_bytes_on`] to handle them).
    pub fn from_bytes_on(bytes: &[u8], dtype: DType, shape: &[usize], device: &Arc<str>) -> Tensor {
        Self::try_from_bytes_on(bytes, dtype, shape, device)
            .unwrap_or_else(|e| panic!("from_bytes: {e}"))
    }

    /// A tensor from raw little-endian bytes on `device`, with device errors as `Err`.
    pub fn try_from_bytes_on(
        bytes: &[u8],
        dtype: DType,
        shape: &[usize],
        device: &Arc<str>,
    ) -> Result<Tensor> {
        let n: usize = shape.iter().product();
        assert_eq!(
            bytes.len(),
            n * dtype.size(),
            "from_slice: {} bytes do not fill shape {shape:?} of {dtype}",
            bytes.len()
        );
        init();
        let dev = ferrograd_runtime::device(device)?;
        let handle = ferrograd_runtime::upload(&dev, bytes)?;
        Ok(Tensor::from_node(Node::buffer(
            handle,
            dtype,
            shape,
            dev.name(),
        )))
    }

    /// A 0-d tensor holding `value`.
    pub fn scalar<T: Element>(value: T) -> Tensor {
        Self::full(&[], value)
    }

    /// A tensor of `shape` filled with `value` (no memory until realized).
    pub fn full<T: Element>(shape: &[usize], value: T) -> Tensor {
        Self::full_dtype(shape, value.to_scalar(), T::DTYPE)
    }

    /// A tensor of `shape` and `dtype` filled with `value`.
    pub fn full_dtype(shape: &[usize], value: Scalar, dtype: DType) -> Tensor {
        Tensor::from_node(Node::constant(value, dtype, shape, &default_device_name()))
    }

    /// Zeros of the default float dtype.
    pub fn zeros(shape: &[usize]) -> Tensor {
        Self::full_dtype(shape, Scalar::Float(0.0), DEFAULT_FLOAT)
    }

    /// Ones of the default float dtype.
    pub fn ones(shape: &[usize]) -> Tensor {
        Self::full_dtype(shape, Scalar::Float(1.0), DEFAULT_FLOAT)
    }

    /// A tensor like `self` (shape, dtype, device) filled with `value`.
    pub fn full_like(&self, value: f64) -> Tensor {
        let n = self.node();
        Tensor::from_node(Node::constant(
            Scalar::Float(value),
            n.dtype(),
            n.shape(),
            n.device(),
        ))
    }

    /// Zeros like `self`.
    pub fn zeros_like(&self) -> Tensor {
        self.full_like(0.0)
    }

    /// Ones like `self`.
    pub fn ones_like(&self) -> Tensor {
        self.full_like(1.0)
    }

    /// A constant with `self`'s device and dtype, broadcastable to anything (shape `[]`).
    pub fn const_like(&self, value: Scalar) -> Tensor {
        let n = self.node();
        Tensor::from_node(Node::constant(value, n.dtype(), &[], n.device()))
    }

    /// `[start, start+step, ...)` up to `stop` (exclusive), as i32 when all arguments are
    /// integers, else the default float dtype.
    pub fn arange(start: f64, stop: f64, step: f64) -> Tensor {
        assert!(
            step != 0.0,
            "arange: step is zero (start {start}, stop {stop})"
        );
        let n = ((stop - start) / step).ceil().max(0.0) as usize;
        let ints = start.fract() == 0.0 && step.fract() == 0.0;
        let idx = Tensor::from_node(Node::arange(0, DType::I32, &[n], &default_device_name()));
        if ints {
            &(&idx * (step as i32)) + (start as i32)
        } else {
            &(&idx.cast(DEFAULT_FLOAT) * step) + start
        }
    }

    /// The index along `axis` of every element of a tensor of `shape` (i32).
    pub fn indices(shape: &[usize], axis: usize) -> Tensor {
        Tensor::from_node(Node::arange(
            axis,
            DType::I32,
            shape,
            &default_device_name(),
        ))
    }

    /// [`Tensor::indices`] on this tensor's device (what ops on any device need).
    pub(crate) fn indices_here(&self, shape: &[usize], axis: usize) -> Tensor {
        Tensor::from_node(Node::arange(axis, DType::I32, shape, &self.device()))
    }

    /// `steps` evenly spaced values from `start` to `end` inclusive (default float dtype).
    pub fn linspace(start: f64, end: f64, steps: usize) -> Tensor {
        let idx = Tensor::indices(&[steps], 0).cast(DEFAULT_FLOAT);
        let step = if steps > 1 {
            (end - start) / (steps - 1) as f64
        } else {
            0.0
        };
        &(&idx * step) + start
    }

    /// The `n`x`n` identity matrix (default float dtype).
    pub fn eye(n: usize) -> Tensor {
        let r = Tensor::indices(&[n, n], 0);
        let c = Tensor::indices(&[n, n], 1);
        r.eq(&c).cast(DEFAULT_FLOAT)
    }

    // ---- device and realization ------------------------------------------------------------

    /// The same values on `device` (an error if the device does not exist).
    pub fn to(&self, device: &str) -> Result<Tensor> {
        let name = canonical_device(device)?;
        Ok(Tensor::apply([self], |[n]| Node::copy_to(n, &name)))
    }

    /// Computes the value now (fusing and running kernels) and keeps it in device memory.
    pub fn realize(&self) -> Result<&Tensor> {
        Self::realize_all(std::slice::from_ref(self))?;
        Ok(self)
    }

    /// Realizes several tensors in one schedule (shared work runs once).
    pub fn realize_all(tensors: &[Tensor]) -> Result<()> {
        let nodes: Vec<NodeRef> = tensors.iter().map(|t| t.node()).collect();
        ferrograd_runtime::realize(&nodes)?;
        for (t, n) in tensors.iter().zip(&nodes) {
            if let Some(h) = n.realized() {
                if !matches!(n.op(), ferrograd_ir::Op::Buffer(_)) {
                    // Drop the graph behind a realized value: keep only its buffer. (Autograd
                    // keeps the expression it needs in the tensor's origin.)
                    let mut state = t.state.write();
                    if Arc::ptr_eq(&state.node, n) {
                        state.node = Node::buffer(h.clone(), n.dtype(), n.shape(), n.device());
                    }
                }
            }
        }
        Ok(())
    }

    /// The elements in row-major order. Panics if `T` is not the tensor's dtype.
    pub fn to_vec<T: Element>(&self) -> Result<Vec<T>> {
        assert_eq!(
            T::DTYPE,
            self.dtype(),
            "to_vec: tensor of shape {:?} has dtype {}, asked for {}",
            self.shape(),
            self.dtype(),
            T::DTYPE
        );
        self.realize()?;
        Ok(from_bytes(&ferrograd_runtime::download(&self.node())?))
    }

    /// The single element of a one-element tensor.
    pub fn item<T: Element>(&self) -> Result<T> {
        assert_eq!(
            self.numel(),
            1,
            "item: tensor of shape {:?} has {} elements",
            self.shape(),
            self.numel()
        );
        Ok(self.to_vec::<T>()?[0])
    }

    /// The raw little-endian bytes of the elements in row-major order (any dtype).
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        self.realize()?;
        ferrograd_runtime::download(&self.node())
    }

    /// The elements converted to f64 (any dtype), for printing and tests.
    pub fn to_f64_vec(&self) -> Result<Vec<f64>> {
        let t = if self.dtype() == DType::F64 {
            self.clone()
        } else {
            self.cast(DType::F64)
        };
        t.to_vec::<f64>()
    }
}
