//! Storage buffers (params), workgroup memory (`DefineLocal`), and gated loads and stores.
//!
//! WGSL storage holds 32-bit scalars (and f16 with `shader-f16`, i64/f64 with wgpu's 64-bit
//! features). bool/i8/u8 and bf16 (and f16 without `shader-f16`) buffers are therefore arrays
//! of 32-bit words: a load extracts the element's bits from its word; a store clears and sets
//! them with `atomicAnd`/`atomicOr`, so invocations writing neighbouring elements of one word
//! never lose each other's writes (writable packed params are `array<atomic<u32>>`).
//!
//! A gated-off load reads element 0 instead and selects zero; a gated-off store is skipped.

use super::{int_lit, reg_ty, scalar_lit, Gen};
use ferrograd_ir::{DType, Inst, Memory, Scalar, VType, ValueId};
use std::fmt::Write as _;

impl Gen<'_> {
    /// True when f16 buffers are native `array<f16>`.
    pub(super) fn uses_native_f16(&self) -> bool {
        self.features.native_f16 && self.program.params.iter().any(|p| p.dtype == DType::F16)
    }

    /// Bits per element when `dtype` is packed into 32-bit words.
    fn packed_bits(&self, dtype: DType) -> Option<u32> {
        match dtype {
            DType::Bool | DType::I8 | DType::U8 => Some(8),
            DType::F16 if self.features.native_f16 => None,
            DType::F16 | DType::BF16 => Some(16),
            _ => None,
        }
    }

    /// The storage declarations of every param.
    pub(super) fn param_decls(&self) -> String {
        let mut out = String::new();
        for (i, p) in self.program.params.iter().enumerate() {
            let packed = self.packed_bits(p.dtype).is_some();
            let elem = match p.dtype {
                _ if packed && p.writable => "atomic<u32>",
                _ if packed => "u32",
                DType::F16 => "f16",
                d => reg_ty(d),
            };
            let access = if p.writable { "read_write" } else { "read" };
            let _ = writeln!(
                out,
                "@group(0) @binding({i}) var<storage, {access}> p{i}: array<{elem}>;"
            );
        }
        out
    }

    /// One workgroup array per `DefineLocal` (register form; bool as a 0/1 u32).
    pub(super) fn declare_local(&mut self, id: u32, dtype: DType, len: usize) {
        let elem = local_elem(dtype);
        let _ = writeln!(
            self.globals,
            "var<workgroup> l{id}: array<{elem}, {}>;",
            len.max(1)
        );
    }

    /// `Load`: `ty.lanes` consecutive elements, zero where the gate is false.
    pub(super) fn load(
        &mut self,
        mem: Memory,
        index: ValueId,
        gate: Option<ValueId>,
        ty: VType,
    ) -> Result<Vec<String>, String> {
        let index = self.scalar(index)?;
        let gate = gate.map(|g| self.scalar(g)).transpose()?;
        let ity = self.idx_ty();
        let zero_idx = self.idx_lit(0);
        let mut lanes = Vec::with_capacity(ty.lanes as usize);
        for lane in 0..ty.lanes {
            let mut at = self.lane_index(&index, lane);
            if let Some(g) = &gate {
                at = self.bind(ity, &format!("select({zero_idx}, {at}, {g})"));
            }
            let v = match mem {
                Memory::Global(p) => self.load_global(p, &at)?,
                Memory::Local(l) => {
                    let dtype = self.local_dtype(l)?;
                    let raw = format!("l{}[{}]", l.0, self.subscript(&at));
                    if dtype == DType::Bool {
                        format!("{raw} != 0u")
                    } else {
                        raw
                    }
                }
            };
            lanes.push(match &gate {
                Some(g) => {
                    let zero = scalar_lit(ty.dtype, Scalar::Int(0));
                    let v = self.bind(reg_ty(ty.dtype), &v);
                    format!("select({zero}, {v}, {g})")
                }
                None => v,
            });
        }
        Ok(lanes)
    }

    /// `Store`: the lanes of `value` to consecutive elements, if the gate holds.
    pub(super) fn store(
        &mut self,
        mem: Memory,
        index: ValueId,
        value: ValueId,
        gate: Option<ValueId>,
    ) -> Result<(), String> {
        let index = self.scalar(index)?;
        let lanes = self.lanes(value)?;
        if let Some(g) = gate {
            let g = self.scalar(g)?;
            self.open(&format!("if {g}"));
        }
        for (lane, v) in lanes.iter().enumerate() {
            let at = self.lane_index(&index, lane as u8);
            match mem {
                Memory::Global(p) => self.store_global(p, &at, v)?,
                Memory::Local(l) => {
                    let v = if self.local_dtype(l)? == DType::Bool {
                        format!("select(0u, 1u, {v})")
                    } else {
                        v.clone()
                    };
                    let at = self.subscript(&at);
                    self.line(&format!("l{}[{at}] = {v};", l.0));
                }
            }
        }
        if gate.is_some() {
            self.close();
        }
        Ok(())
    }

    /// The element dtype of local memory `l` (a `DefineLocal`).
    fn local_dtype(&self, l: ValueId) -> Result<DType, String> {
        match self.program.insts.get(l.0 as usize) {
            Some(Inst::DefineLocal { dtype, .. }) => Ok(*dtype),
            _ => Err("internal: local memory is not a DefineLocal".into()),
        }
    }

    /// An array subscript from index expression `at` (64-bit indices are narrowed: WGSL
    /// subscripts are 32-bit, and a buffer's elements fit in 32 bits).
    fn subscript(&self, at: &str) -> String {
        if self.program.index_dtype == DType::I64 {
            format!("u32({at})")
        } else {
            at.to_string()
        }
    }

    /// Element index of lane `lane` (`index + lane`).
    fn lane_index(&mut self, index: &str, lane: u8) -> String {
        if lane == 0 {
            return index.to_string();
        }
        let ity = self.idx_ty();
        let l = self.idx_lit(lane as i64);
        self.bind(ity, &format!("{index} + {l}"))
    }

    /// Element `at` of param `p` in register form.
    fn load_global(&mut self, p: u32, at: &str) -> Result<String, String> {
        let param = &self.program.params[p as usize];
        let (dtype, writable) = (param.dtype, param.writable);
        let Some(bits) = self.packed_bits(dtype) else {
            let at = self.subscript(at);
            return Ok(if dtype == DType::F16 {
                format!("f32(p{p}[{at}])")
            } else {
                format!("p{p}[{at}]")
            });
        };
        let (word, shift) = self.packed_word(at, bits);
        let raw = if writable {
            format!("atomicLoad(&p{p}[{word}])")
        } else {
            format!("p{p}[{word}]")
        };
        let field = self.bind(
            "u32",
            &format!("({raw} >> {shift}) & {:#x}u", (1u64 << bits) - 1),
        );
        Ok(self.bits_to_register(dtype, &field))
    }

    /// Stores register value `v` to element `at` of param `p`.
    fn store_global(&mut self, p: u32, at: &str, v: &str) -> Result<(), String> {
        let dtype = self.program.params[p as usize].dtype;
        let Some(width) = self.packed_bits(dtype) else {
            let v = if dtype == DType::F16 {
                // The register holds an f16 value exactly: the conversion does not round.
                format!("f16({v})")
            } else {
                v.to_string()
            };
            let at = self.subscript(at);
            self.line(&format!("p{p}[{at}] = {v};"));
            return Ok(());
        };
        let bits = self.register_to_bits(dtype, v);
        let bits = self.bind("u32", &bits);
        let (word, shift) = self.packed_word(at, width);
        let mask = self.bind("u32", &format!("{:#x}u << {shift}", (1u64 << width) - 1));
        // Relaxed atomics: other invocations may write the word's other elements.
        self.line(&format!("atomicAnd(&p{p}[{word}], ~{mask});"));
        self.line(&format!("atomicOr(&p{p}[{word}], {bits} << {shift});"));
        Ok(())
    }

    /// The index of the 32-bit word holding element `at` (`bits` per element) and the
    /// element's bit offset in it (both bound to temporaries).
    fn packed_word(&mut self, at: &str, bits: u32) -> (String, String) {
        let per_word = 32 / bits;
        let ity = self.idx_ty();
        let word = format!("{at} >> {}u", per_word.trailing_zeros());
        let word = self.subscript(&word);
        let word = self.bind(if ity == "i64" { "u32" } else { ity }, &word);
        let lane_mask = int_lit(self.program.index_dtype, per_word as i64 - 1);
        let shift = self.bind("u32", &format!("u32({at} & {lane_mask}) * {bits}u"));
        (word, shift)
    }

    /// The register value of an 8- or 16-bit element from its bits (a u32 expression).
    fn bits_to_register(&mut self, dtype: DType, bits: &str) -> String {
        match dtype {
            DType::Bool => format!("{bits} != 0u"),
            DType::I8 => self.wrap(DType::I8, &format!("bitcast<i32>({bits})")),
            DType::F16 => format!("{}({bits})", self.helper("f16_bits_to_f32")),
            DType::BF16 => format!("bitcast<f32>({bits} << 16u)"),
            _ => bits.to_string(),
        }
    }

    /// The bits (a u32 expression) of an 8- or 16-bit register value.
    fn register_to_bits(&mut self, dtype: DType, v: &str) -> String {
        match dtype {
            DType::Bool => format!("select(0u, 1u, {v})"),
            DType::I8 => format!("bitcast<u32>({v}) & 0xffu"),
            DType::F16 => format!("{}({v})", self.helper("f32_to_f16_bits")),
            DType::BF16 => format!("bitcast<u32>({v}) >> 16u"),
            _ => v.to_string(),
        }
    }
}

/// The WGSL type of one workgroup-memory element of `dtype` (register form; bool as a u32).
pub(super) fn local_elem(dtype: DType) -> &'static str {
    match dtype {
        DType::Bool => "u32",
        d => reg_ty(d),
    }
}
