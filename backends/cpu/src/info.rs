//! What the CPU device reports about itself: model, ISA features, memory, threads.

use cranelift_codegen::isa::TargetIsa;
use ferrograd_ir::DType;
use ferrograd_runtime::{DeviceInfo, DeviceKind};

/// Memory reported when /proc/meminfo cannot be read.
const FALLBACK_MEMORY_BYTES: u64 = 8 << 30;

/// Width of the SIMD vectors the code generator emits.
pub(crate) const VECTOR_BYTES: usize = 16;

/// Describes this host as the code generator sees it.
pub(crate) fn device_info(isa: &dyn TargetIsa) -> DeviceInfo {
    let features = isa_features(isa);
    let model = cpu_model().unwrap_or_else(|| format!("{} CPU", isa.triple().architecture));
    let description = if features.is_empty() {
        model
    } else {
        format!("{model} ({})", features.join(" "))
    };
    DeviceInfo {
        name: "cpu".to_string(),
        description,
        kind: DeviceKind::Cpu,
        memory_bytes: mem_total().unwrap_or(FALLBACK_MEMORY_BYTES),
        compute_units: rayon::current_num_threads(),
        vector_bytes: VECTOR_BYTES,
        dtypes: DType::ALL.to_vec(),
        extra: vec![
            format!("target={}", isa.triple()),
            "codegen=cranelift".to_string(),
            format!("threads={}", rayon::current_num_threads()),
        ],
    }
}

/// The ISA extensions Cranelift detected and will use (`sse4.1`, `avx2`, `fma`, ...).
fn isa_features(isa: &dyn TargetIsa) -> Vec<String> {
    isa.isa_flags()
        .iter()
        .filter(|flag| flag.as_bool() == Some(true))
        .filter_map(|flag| flag.name.strip_prefix("has_"))
        .map(|name| match name {
            "sse41" => "sse4.1".to_string(),
            "sse42" => "sse4.2".to_string(),
            other => other.to_string(),
        })
        .collect()
}

/// The `model name` line of /proc/cpuinfo.
fn cpu_model() -> Option<String> {
    let text = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    text.lines()
        .find_map(|line| {
            line.strip_prefix("model name")?
                .split_once(':')
                .map(|(_, v)| v.trim().to_string())
        })
        .filter(|model| !model.is_empty())
}

/// `MemTotal` of /proc/meminfo in bytes.
fn mem_total() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text
        .lines()
        .find_map(|line| line.strip_prefix("MemTotal:"))?;
    let kib: u64 = line.trim().trim_end_matches("kB").trim().parse().ok()?;
    kib.checked_mul(1024)
}
