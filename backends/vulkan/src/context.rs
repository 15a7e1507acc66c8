//! The logical device: queue, memory types and the on-disk pipeline cache. Buffers and kernels
//! hold an `Arc<Context>`, so the device outlives everything created from it.

use crate::alloc::Heaps;
use crate::error::vk_error;
use crate::info::Caps;
use crate::instance::Instance;
use ash::vk;
use ferrograd_runtime::{DeviceKind, Result};
use std::path::PathBuf;
use std::sync::Arc;

/// Where buffers live and how the host reaches them.
#[derive(Clone, Copy, Debug)]
pub(crate) struct MemoryTypes {
    /// Memory type of storage buffers.
    pub(crate) device: u32,
    /// The storage memory is host-visible and coherent: the host maps it directly.
    pub(crate) mapped: bool,
    /// Host-visible, coherent memory type for staging copies.
    pub(crate) staging: u32,
}

/// An opened Vulkan device.
pub(crate) struct Context {
    /// Keeps the instance alive while the device lives.
    _instance: Arc<Instance>,
    pub(crate) raw: ash::Device,
    pub(crate) push: Option<ash::khr::push_descriptor::Device>,
    pub(crate) queue: vk::Queue,
    pub(crate) queue_family: u32,
    /// Valid bits of the queue's timestamps (0: no timestamps).
    pub(crate) timestamp_bits: u32,
    pub(crate) memory: MemoryTypes,
    pub(crate) pipeline_cache: vk::PipelineCache,
    /// Sub-allocated device memory.
    pub(crate) heaps: parking_lot::Mutex<Heaps>,
    cache_file: Option<PathBuf>,
    /// The device name (`vulkan:N`), for errors.
    pub(crate) name: String,
}

fn find_type(
    props: &vk::PhysicalDeviceMemoryProperties,
    want: vk::MemoryPropertyFlags,
) -> Option<u32> {
    (0..props.memory_type_count)
        .find(|&i| props.memory_types[i as usize].property_flags.contains(want))
}

/// The pipeline-cache file of a device: `$XDG_CACHE_HOME/ferrograd/vulkan/<vendor>-<device>-<uuid>.bin`.
fn cache_path(props: &vk::PhysicalDeviceProperties) -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    let uuid: String = props
        .pipeline_cache_uuid
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Some(base.join("ferrograd").join("vulkan").join(format!(
        "{:04x}-{:04x}-{uuid}.bin",
        props.vendor_id, props.device_id
    )))
}

impl Context {
    /// Opens `pd` with one compute queue and every feature the code generator can use.
    pub(crate) fn open(
        instance: Arc<Instance>,
        pd: vk::PhysicalDevice,
        caps: &Caps,
        name: String,
        force_staging: bool,
    ) -> Result<Arc<Context>> {
        let err = |what: &str, r: vk::Result| vk_error(&name, what, r);
        let raw_instance = &instance.raw;
        // SAFETY: `pd` was enumerated from this live instance.
        let families = unsafe { raw_instance.get_physical_device_queue_family_properties(pd) };
        let queue_family = families
            .iter()
            .enumerate()
            .filter(|(_, f)| f.queue_flags.contains(vk::QueueFlags::COMPUTE))
            .max_by_key(|(_, f)| {
                (
                    f.timestamp_valid_bits > 0,
                    !f.queue_flags.contains(vk::QueueFlags::GRAPHICS),
                )
            })
            .map(|(i, _)| i as u32)
            .ok_or_else(|| ferrograd_runtime::Error::Device {
                device: name.clone(),
                reason: "the device has no compute queue".into(),
            })?;
        let timestamp_bits = families[queue_family as usize].timestamp_valid_bits;
        let priorities = [1.0f32];
        let queues = [vk::DeviceQueueCreateInfo::default()
            .queue_family_index(queue_family)
            .queue_priorities(&priorities)];
        let f = &caps.features;
        let base = vk::PhysicalDeviceFeatures::default()
            .shader_int64(f.int64)
            .shader_float64(f.float64);
        let mut f8 =
            vk::PhysicalDevice8BitStorageFeatures::default().storage_buffer8_bit_access(f.storage8);
        let mut f16 = vk::PhysicalDevice16BitStorageFeatures::default()
            .storage_buffer16_bit_access(f.storage16);
        let mut extensions = Vec::new();
        if caps.push_descriptor {
            extensions.push(ash::khr::push_descriptor::NAME.as_ptr());
        }
        if caps.ext_float_controls {
            extensions.push(ash::khr::shader_float_controls::NAME.as_ptr());
        }
        if caps.ext_8bit && f.storage8 {
            extensions.push(ash::khr::_8bit_storage::NAME.as_ptr());
        }
        let mut info = vk::DeviceCreateInfo::default()
            .queue_create_infos(&queues)
            .enabled_features(&base)
            .enabled_extension_names(&extensions)
            .push_next(&mut f16);
        if f.storage8 {
            info = info.push_next(&mut f8);
        }
        // SAFETY: `info` and everything it points to live across the call; the features and
        // extensions enabled were reported as supported by `pd`.
        let raw = unsafe { raw_instance.create_device(pd, &info, None) }
            .map_err(|r| err("creating the device", r))?;
        // SAFETY: the family and index were requested in `info`.
        let queue = unsafe { raw.get_device_queue(queue_family, 0) };
        let push = caps
            .push_descriptor
            .then(|| ash::khr::push_descriptor::Device::new(raw_instance, &raw));

        // SAFETY: `pd` is a live physical device.
        let mem_props = unsafe { raw_instance.get_physical_device_memory_properties(pd) };
        let host = vk::MemoryPropertyFlags::HOST_VISIBLE | vk::MemoryPropertyFlags::HOST_COHERENT;
        let unified =
            matches!(caps.kind(), DeviceKind::Cpu | DeviceKind::IntegratedGpu) && !force_staging;
        let shared_type =
            find_type(&mem_props, host | vk::MemoryPropertyFlags::DEVICE_LOCAL).filter(|_| unified);
        let device_type = shared_type
            .or_else(|| find_type(&mem_props, vk::MemoryPropertyFlags::DEVICE_LOCAL))
            .unwrap_or(0);
        let staging = find_type(&mem_props, host | vk::MemoryPropertyFlags::HOST_CACHED)
            .or_else(|| find_type(&mem_props, host))
            .ok_or_else(|| ferrograd_runtime::Error::Device {
                device: name.clone(),
                reason: "the device has no host-visible coherent memory".into(),
            });
        let staging = match staging {
            Ok(s) => s,
            Err(e) => {
                // SAFETY: nothing was created from the device yet.
                unsafe { raw.destroy_device(None) };
                return Err(e);
            }
        };
        let memory = MemoryTypes {
            device: device_type,
            mapped: shared_type.is_some(),
            staging,
        };

        let cache_file = cache_path(&caps.props);
        let initial = cache_file
            .as_ref()
            .and_then(|p| std::fs::read(p).ok())
            .unwrap_or_default();
        let cache_info = vk::PipelineCacheCreateInfo::default().initial_data(&initial);
        // SAFETY: the device is alive; the driver validates the initial data's header and
        // ignores data of another device or driver.
        let pipeline_cache = unsafe { raw.create_pipeline_cache(&cache_info, None) }
            .or_else(|_| {
                // SAFETY: as above, with no initial data.
                unsafe { raw.create_pipeline_cache(&vk::PipelineCacheCreateInfo::default(), None) }
            })
            .map_err(|r| err("creating the pipeline cache", r));
        let pipeline_cache = match pipeline_cache {
            Ok(c) => c,
            Err(e) => {
                // SAFETY: nothing else was created from the device.
                unsafe { raw.destroy_device(None) };
                return Err(e);
            }
        };
        Ok(Arc::new(Context {
            _instance: instance,
            raw,
            push,
            queue,
            queue_family,
            timestamp_bits,
            memory,
            pipeline_cache,
            heaps: parking_lot::Mutex::new(Heaps::default()),
            cache_file,
            name,
        }))
    }

    /// Writes the pipeline cache to disk (best effort: a failure only costs compile time later).
    fn save_cache(&self) {
        let Some(path) = &self.cache_file else { return };
        // SAFETY: the cache belongs to this live device.
        let Ok(data) = (unsafe { self.raw.get_pipeline_cache_data(self.pipeline_cache) }) else {
            return;
        };
        // A file name of its own per writer, so concurrent writers never rename a partial file.
        static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tmp = path.with_extension(format!("tmp.{}.{n}", std::process::id()));
        let written = path
            .parent()
            .is_some_and(|dir| std::fs::create_dir_all(dir).is_ok())
            && std::fs::write(&tmp, &data).is_ok()
            && std::fs::rename(&tmp, path).is_ok();
        if !written {
            let _ = std::fs::remove_file(&tmp);
            tracing::debug!(path = %path.display(), "could not save the Vulkan pipeline cache");
        }
    }
}

impl Drop for Context {
    fn drop(&mut self) {
        self.save_cache();
        // SAFETY: every buffer, kernel and command pool holds an `Arc<Context>`, so none is alive;
        // waiting for idle first makes sure no submitted work still runs.
        unsafe {
            let _ = self.raw.device_wait_idle();
            self.heaps.lock().release(&self.raw);
            self.raw.destroy_pipeline_cache(self.pipeline_cache, None);
            self.raw.destroy_device(None);
        }
    }
}
