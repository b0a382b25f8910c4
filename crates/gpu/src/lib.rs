//! The engine's matmuls as WGSL compute shaders, through wgpu.
//!
//! Owns the wgpu device, the kernels (`src/shaders/`: one shared prelude plus one file per
//! weight type that is dequantized in the shader — F32, F16, Q8_0, Q5_0, Q4_K, Q6_K; every other
//! dequantizable type is dequantized on the CPU and uploaded as f32), the tiling of weights and
//! outputs against the adapter's limits, and [`AdapterFacts`], the plain-data record of which
//! adapter ran them. Natively wgpu picks Vulkan (Mesa lavapipe in tests); in wasm it uses the
//! browser's WebGPU. Results arrive asynchronously (the browser cannot block on the GPU);
//! natively the futures complete on their first poll.
//!
//! Knows nothing about models, files or reports: a matrix is a GGML type, its bytes and a shape.

/// The wgpu this crate is built with (for `GpuOptions::backends`).
pub use wgpu;

use std::sync::{Arc, Mutex, OnceLock};

use parallax_quant::GgmlType;

/// Workgroups compute one row each for up to this many tokens (`TOK` in `common.wgsl`).
const TOKENS_PER_WORKGROUP: usize = 8;
/// CPU-dequantized tiles (types without a shader) are uploaded at most this many bytes at a time.
const CPU_DEQUANT_TILE_BYTES: u64 = 32 << 20;

/// Why the GPU path cannot run or could not finish. Each variant reads as a sentence.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum GpuError {
    /// No WebGPU / Vulkan adapter, or the device could not be created.
    NoAdapter { reason: String },
    /// The device was lost (driver reset, tab in the background for too long, …).
    DeviceLost { reason: String },
    /// A buffer could not be allocated.
    OutOfMemory { what: String, bytes: u64 },
    /// The matrix cannot be tiled within the adapter's limits (e.g. one row exceeds a binding).
    TooLarge { message: String },
    /// The caller passed inconsistent shapes or bytes.
    BadInput { message: String },
    /// wgpu rejected a shader, pipeline or command (a bug in this crate or in the driver).
    Internal { message: String },
}

impl GpuError {
    /// Whether the run should carry on without the GPU path (as opposed to a caller bug).
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            GpuError::NoAdapter { .. } | GpuError::DeviceLost { .. } | GpuError::OutOfMemory { .. }
        )
    }
}

impl std::fmt::Display for GpuError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GpuError::NoAdapter { reason } => write!(f, "no GPU adapter: {reason}"),
            GpuError::DeviceLost { reason } => write!(f, "the GPU device was lost: {reason}"),
            GpuError::OutOfMemory { what, bytes } => {
                write!(f, "the GPU ran out of memory allocating {bytes} bytes for {what}")
            }
            GpuError::TooLarge { message } => write!(f, "{message}"),
            GpuError::BadInput { message } => write!(f, "{message}"),
            GpuError::Internal { message } => write!(f, "GPU error: {message}"),
        }
    }
}

impl std::error::Error for GpuError {}

/// How to pick and use the adapter.
#[derive(Debug, Clone, Default)]
pub struct GpuOptions {
    /// Backends to try; `None`: the platform's primary ones natively (overridable with
    /// `WGPU_BACKEND`), the browser's WebGPU in wasm. `Some(Backends::empty())` finds none (tests
    /// of the fallback).
    pub backends: Option<wgpu::Backends>,
    /// Tile so that no binding exceeds this many bytes, if smaller than the adapter's limits
    /// (tests force several tiles on small matrices with it).
    pub max_binding_bytes: Option<u64>,
}

/// The adapter and what it allows, for the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdapterFacts {
    pub name: String,
    /// `vulkan`, `metal`, `dx12`, `gl`, `webgpu`.
    pub backend: String,
    /// `cpu` for software rasterizers (lavapipe, SwiftShader), `discrete-gpu`, …
    pub device_type: String,
    pub driver: String,
    /// The adapter's optional features, WebGPU names (`shader-f16`, `subgroups`, …).
    pub features: Vec<String>,
    /// The limits the tiling reads, by their WebGPU names.
    pub limits: Vec<(String, u64)>,
}

/// Which shader a weight type runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kernel {
    F32,
    F16,
    Q8_0,
    Q5_0,
    Q4K,
    Q6K,
}

const KERNELS: [Kernel; 6] =
    [Kernel::F32, Kernel::F16, Kernel::Q8_0, Kernel::Q5_0, Kernel::Q4K, Kernel::Q6K];

impl Kernel {
    fn for_type(ty: GgmlType) -> Option<Kernel> {
        Some(match ty {
            GgmlType::F32 => Kernel::F32,
            GgmlType::F16 => Kernel::F16,
            GgmlType::Q8_0 => Kernel::Q8_0,
            GgmlType::Q5_0 => Kernel::Q5_0,
            GgmlType::Q4_K => Kernel::Q4K,
            GgmlType::Q6_K => Kernel::Q6K,
            _ => return None,
        })
    }

    fn index(self) -> usize {
        KERNELS.iter().position(|k| *k == self).unwrap_or(0)
    }

    fn name(self) -> &'static str {
        match self {
            Kernel::F32 => "f32",
            Kernel::F16 => "f16",
            Kernel::Q8_0 => "q8_0",
            Kernel::Q5_0 => "q5_0",
            Kernel::Q4K => "q4_k",
            Kernel::Q6K => "q6_k",
        }
    }

    fn source(self) -> String {
        let body = match self {
            Kernel::F32 => include_str!("shaders/f32.wgsl"),
            Kernel::F16 => include_str!("shaders/f16.wgsl"),
            Kernel::Q8_0 => include_str!("shaders/q8_0.wgsl"),
            Kernel::Q5_0 => include_str!("shaders/q5_0.wgsl"),
            Kernel::Q4K => include_str!("shaders/q4_k.wgsl"),
            Kernel::Q6K => include_str!("shaders/q6_k.wgsl"),
        };
        format!("{}\n{}", include_str!("shaders/common.wgsl"), body)
    }
}

/// Whether `ty` is dequantized inside the shader (otherwise on the CPU, then uploaded as f32).
pub fn dequantized_in_shader(ty: GgmlType) -> bool {
    Kernel::for_type(ty).is_some()
}

/// How the GPU multiplies a matrix of type `ty`, for the report.
pub fn kernel_label(ty: GgmlType) -> String {
    match Kernel::for_type(ty) {
        Some(Kernel::F32) => "F32 × f32 dot (WGSL)".into(),
        Some(_) => format!("{ty} dequantized in WGSL → f32 dot"),
        None => format!("{ty} dequantized on the CPU, uploaded as f32 → f32 dot (WGSL)"),
    }
}

struct Pipelines {
    matmul: wgpu::ComputePipeline,
    dequant: wgpu::ComputePipeline,
}

/// What the device callbacks saw: set once, read before and after every call.
#[derive(Default)]
struct DeviceState {
    lost: Option<String>,
    uncaptured: Option<String>,
}

/// A wgpu device ready to run the matmul kernels.
pub struct GpuMatmul {
    device: wgpu::Device,
    queue: wgpu::Queue,
    facts: AdapterFacts,
    /// The largest binding (and buffer) the tiling may use.
    max_binding: u64,
    max_workgroups: u64,
    pipelines: [OnceLock<Pipelines>; KERNELS.len()],
    state: Arc<Mutex<DeviceState>>,
}

impl GpuMatmul {
    /// The default adapter with its full limits.
    pub async fn new() -> Result<GpuMatmul, GpuError> {
        GpuMatmul::with_options(GpuOptions::default()).await
    }

    pub async fn with_options(opts: GpuOptions) -> Result<GpuMatmul, GpuError> {
        #[cfg(target_arch = "wasm32")]
        let (mut desc, default_backends) = (
            wgpu::InstanceDescriptor::new_without_display_handle(),
            wgpu::Backends::BROWSER_WEBGPU,
        );
        #[cfg(not(target_arch = "wasm32"))]
        let (mut desc, default_backends) = {
            let d = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
            let b = d.backends;
            (d, b)
        };
        desc.backends = opts.backends.unwrap_or(default_backends);
        let instance = wgpu::Instance::new(desc);
        let adapter = instance
            .request_adapter(&wgpu::RequestAdapterOptions {
                power_preference: wgpu::PowerPreference::HighPerformance,
                ..Default::default()
            })
            .await
            .map_err(|e| GpuError::NoAdapter {
                reason: no_adapter_reason(&e.to_string(), opts.backends),
            })?;
        let info = adapter.get_info();
        let limits = adapter.limits();
        let features = adapter.features();
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("parallax-gpu"),
                required_features: wgpu::Features::empty(),
                required_limits: limits.clone(),
                ..Default::default()
            })
            .await
            .map_err(|e| GpuError::NoAdapter {
                reason: format!("adapter `{}` refused a device: {e}", info.name),
            })?;
        let state = Arc::new(Mutex::new(DeviceState::default()));
        {
            let state = state.clone();
            device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
                if let Ok(mut s) = state.lock() {
                    s.uncaptured.get_or_insert_with(|| e.to_string());
                }
            }));
        }
        {
            let state = state.clone();
            device.set_device_lost_callback(move |reason, message| {
                if let Ok(mut s) = state.lock() {
                    s.lost.get_or_insert_with(|| format!("{reason:?}: {message}"));
                }
            });
        }
        let max_binding = limits.max_storage_buffer_binding_size.min(limits.max_buffer_size);
        let max_binding = opts.max_binding_bytes.map_or(max_binding, |m| m.min(max_binding)).max(4);
        let name = match (info.name.is_empty(), info.device_type) {
            (false, _) => info.name.clone(),
            // Browsers may withhold the description; say what is known.
            (true, wgpu::DeviceType::Cpu) => {
                "unnamed fallback adapter (the browser gives no name; a software adapter such as SwiftShader)".into()
            }
            (true, _) => "unnamed adapter (the browser gives no name)".into(),
        };
        let facts = AdapterFacts {
            name,
            backend: info.backend.to_str().to_string(),
            device_type: match info.device_type {
                wgpu::DeviceType::Other => "other",
                wgpu::DeviceType::IntegratedGpu => "integrated-gpu",
                wgpu::DeviceType::DiscreteGpu => "discrete-gpu",
                wgpu::DeviceType::VirtualGpu => "virtual-gpu",
                wgpu::DeviceType::Cpu => "cpu",
            }
            .to_string(),
            driver: [info.driver.as_str(), info.driver_info.as_str()]
                .iter()
                .filter(|s| !s.is_empty())
                .copied()
                .collect::<Vec<_>>()
                .join(" "),
            features: features.iter().filter_map(|f| f.as_str()).map(String::from).collect(),
            limits: vec![
                ("maxStorageBufferBindingSize".into(), limits.max_storage_buffer_binding_size),
                ("maxBufferSize".into(), limits.max_buffer_size),
                (
                    "maxComputeWorkgroupsPerDimension".into(),
                    limits.max_compute_workgroups_per_dimension as u64,
                ),
                (
                    "maxComputeInvocationsPerWorkgroup".into(),
                    limits.max_compute_invocations_per_workgroup as u64,
                ),
                (
                    "maxComputeWorkgroupStorageSize".into(),
                    limits.max_compute_workgroup_storage_size as u64,
                ),
            ],
        };
        Ok(GpuMatmul {
            device,
            queue,
            facts,
            max_binding,
            max_workgroups: limits.max_compute_workgroups_per_dimension as u64,
            pipelines: Default::default(),
            state,
        })
    }

    /// Destroys the device, as a driver reset would: every later call fails with
    /// [`GpuError::DeviceLost`] (tests of the fallback use it).
    pub fn destroy(&self) {
        self.device.destroy();
        #[cfg(not(target_arch = "wasm32"))]
        let _ = self.device.poll(wgpu::PollType::wait_indefinitely());
        if let Ok(mut s) = self.state.lock() {
            s.lost.get_or_insert_with(|| "the device was destroyed".into());
        }
    }

    pub fn facts(&self) -> &AdapterFacts {
        &self.facts
    }

    /// The largest binding the tiling uses, in bytes.
    pub fn max_binding_bytes(&self) -> u64 {
        self.max_binding
    }

    /// `x` is `n_tokens` rows of `cols`; `bytes` is `rows` packed rows of `ty`. Returns `n_tokens`
    /// rows of `rows` — the layout of the engine's CPU matmul.
    pub async fn matmul(
        &self,
        ty: GgmlType,
        bytes: &[u8],
        rows: usize,
        cols: usize,
        x: &[f32],
        n_tokens: usize,
    ) -> Result<Vec<f32>, GpuError> {
        let row_bytes = check_shape(ty, bytes, rows, cols)?;
        if x.len() != n_tokens.saturating_mul(cols) || n_tokens == 0 {
            return Err(GpuError::BadInput {
                message: format!(
                    "the input holds {} values, not {n_tokens} tokens × {cols}",
                    x.len()
                ),
            });
        }
        self.check_device()?;
        let x_bytes = (x.len() * 4) as u64;
        if x_bytes > self.max_binding {
            return Err(GpuError::TooLarge {
                message: format!(
                    "the input ({n_tokens} tokens × {cols} values, {x_bytes} bytes) exceeds the GPU's largest binding of {} bytes",
                    self.max_binding
                ),
            });
        }
        let groups = n_tokens.div_ceil(TOKENS_PER_WORKGROUP) as u64;
        if groups > self.max_workgroups {
            return Err(GpuError::TooLarge {
                message: format!(
                    "{n_tokens} tokens need {groups} workgroups, more than the GPU's {}",
                    self.max_workgroups
                ),
            });
        }
        let (kernel, upload_row_bytes) = match Kernel::for_type(ty) {
            Some(k) => (k, row_bytes),
            None => (Kernel::F32, cols * 4),
        };
        let tile_rows = self.tile_rows(
            upload_row_bytes as u64,
            n_tokens as u64,
            Kernel::for_type(ty).is_none(),
        )?;
        let pipes = self.pipelines(kernel).await?;
        let x_buf = self.upload("activations", &f32_bytes(x)).await?;

        let mut out = vec![0f32; n_tokens * rows];
        let mut r0 = 0;
        while r0 < rows {
            let n = tile_rows.min(rows - r0);
            let src = &bytes[r0 * row_bytes..(r0 + n) * row_bytes];
            let w_buf = match Kernel::for_type(ty) {
                Some(_) => self.upload("weights", src).await?,
                None => {
                    let mut values = vec![0f32; n * cols];
                    parallax_quant::dequantize(ty, src, &mut values)
                        .map_err(|e| GpuError::BadInput { message: e.to_string() })?;
                    self.upload("weights (dequantized on the CPU)", &f32_bytes(&values)).await?
                }
            };
            let params = [n as u32, cols as u32, n_tokens as u32, upload_row_bytes as u32];
            let y = self
                .dispatch(
                    &pipes.matmul,
                    &w_buf,
                    Some(&x_buf),
                    &params,
                    n_tokens * n,
                    (n as u32, groups as u32),
                )
                .await?;
            for t in 0..n_tokens {
                out[t * rows + r0..t * rows + r0 + n].copy_from_slice(&y[t * n..(t + 1) * n]);
            }
            r0 += n;
        }
        Ok(out)
    }

    /// The shader's dequantization of `rows` rows of `ty` (one tile: small matrices only), to
    /// check it against the CPU's bit for bit.
    pub async fn dequantize(
        &self,
        ty: GgmlType,
        bytes: &[u8],
        rows: usize,
        cols: usize,
    ) -> Result<Vec<f32>, GpuError> {
        let row_bytes = check_shape(ty, bytes, rows, cols)?;
        let kernel = Kernel::for_type(ty).ok_or_else(|| GpuError::BadInput {
            message: format!("{ty} is dequantized on the CPU, not in a shader"),
        })?;
        self.check_device()?;
        let out_bytes = (rows * cols * 4) as u64;
        if out_bytes > self.max_binding
            || bytes.len() as u64 > self.max_binding
            || rows as u64 > self.max_workgroups
        {
            return Err(GpuError::TooLarge {
                message: format!("{rows} × {cols} is too large for one dequantization tile"),
            });
        }
        let pipes = self.pipelines(kernel).await?;
        let w_buf = self.upload("weights", bytes).await?;
        let params = [rows as u32, cols as u32, 1, row_bytes as u32];
        self.dispatch(&pipes.dequant, &w_buf, None, &params, rows * cols, (rows as u32, 1)).await
    }

    /// Rows per tile so that the weights, the output and the dispatch stay within the limits.
    fn tile_rows(
        &self,
        row_bytes: u64,
        n_tokens: u64,
        cpu_dequant: bool,
    ) -> Result<usize, GpuError> {
        let mut limit = self.max_binding / 4 * 4;
        if cpu_dequant {
            limit = limit.min(CPU_DEQUANT_TILE_BYTES);
        }
        let by_weights = limit / row_bytes.max(1);
        let by_output = limit / (n_tokens * 4);
        let rows = by_weights.min(by_output).min(self.max_workgroups);
        if rows == 0 {
            return Err(GpuError::TooLarge {
                message: format!(
                    "one row ({row_bytes} bytes of weights, {} bytes of output) exceeds the GPU's largest binding of {} bytes",
                    n_tokens * 4,
                    self.max_binding
                ),
            });
        }
        Ok(rows as usize)
    }

    fn check_device(&self) -> Result<(), GpuError> {
        let s = self
            .state
            .lock()
            .map_err(|_| GpuError::Internal { message: "device state poisoned".into() })?;
        if let Some(reason) = &s.lost {
            return Err(GpuError::DeviceLost { reason: reason.clone() });
        }
        if let Some(message) = &s.uncaptured {
            return Err(GpuError::Internal { message: message.clone() });
        }
        Ok(())
    }

    async fn pipelines(&self, kernel: Kernel) -> Result<&Pipelines, GpuError> {
        let cell = &self.pipelines[kernel.index()];
        if let Some(p) = cell.get() {
            return Ok(p);
        }
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let module = self.device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some(kernel.name()),
            source: wgpu::ShaderSource::Wgsl(kernel.source().into()),
        });
        let make = |entry: &str| {
            self.device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(kernel.name()),
                layout: None,
                module: &module,
                entry_point: Some(entry),
                compilation_options: Default::default(),
                cache: None,
            })
        };
        let pipes = Pipelines { matmul: make("matmul"), dequant: make("dequant") };
        if let Some(e) = scope.pop().await {
            return Err(GpuError::Internal { message: format!("kernel {}: {e}", kernel.name()) });
        }
        Ok(cell.get_or_init(|| pipes))
    }

    /// A storage buffer holding `data` (its size rounded up to 4 bytes).
    async fn upload(&self, what: &str, data: &[u8]) -> Result<wgpu::Buffer, GpuError> {
        let size = (data.len().max(4) as u64).div_ceil(4) * 4;
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let buf = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(what),
            size,
            usage: wgpu::BufferUsages::STORAGE,
            mapped_at_creation: true,
        });
        if scope.pop().await.is_some() {
            return Err(GpuError::OutOfMemory { what: what.into(), bytes: size });
        }
        {
            let mut view = buf
                .get_mapped_range_mut(..)
                .map_err(|e| self.lost_or(format!("cannot map the {what} buffer: {e}")))?;
            view.slice(..data.len()).copy_from_slice(data);
        }
        buf.unmap();
        Ok(buf)
    }

    /// Runs `pipeline` over a (rows, token groups) grid and reads back `out_len` f32.
    async fn dispatch(
        &self,
        pipeline: &wgpu::ComputePipeline,
        w_buf: &wgpu::Buffer,
        x_buf: Option<&wgpu::Buffer>,
        params: &[u32; 4],
        out_len: usize,
        grid: (u32, u32),
    ) -> Result<Vec<f32>, GpuError> {
        let out_size = (out_len.max(1) * 4) as u64;
        let oom = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let validation = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let uniform = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("params"),
            size: 16,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut p = [0u8; 16];
        for (d, v) in p.chunks_exact_mut(4).zip(params) {
            d.copy_from_slice(&v.to_le_bytes());
        }
        self.queue.write_buffer(&uniform, 0, &p);
        let out = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("output"),
            size: out_size,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        let readback = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("readback"),
            size: out_size,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut entries = vec![
            wgpu::BindGroupEntry { binding: 0, resource: w_buf.as_entire_binding() },
            wgpu::BindGroupEntry { binding: 2, resource: out.as_entire_binding() },
            wgpu::BindGroupEntry { binding: 3, resource: uniform.as_entire_binding() },
        ];
        if let Some(x) = x_buf {
            entries.push(wgpu::BindGroupEntry { binding: 1, resource: x.as_entire_binding() });
        }
        let bind = self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: None,
            layout: &pipeline.get_bind_group_layout(0),
            entries: &entries,
        });
        let mut enc =
            self.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None });
        {
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: None,
                timestamp_writes: None,
            });
            pass.set_pipeline(pipeline);
            pass.set_bind_group(0, &bind, &[]);
            pass.dispatch_workgroups(grid.0, grid.1, 1);
        }
        enc.copy_buffer_to_buffer(&out, 0, &readback, 0, out_size);
        self.queue.submit([enc.finish()]);
        if let Some(e) = validation.pop().await {
            return Err(GpuError::Internal { message: e.to_string() });
        }
        if oom.pop().await.is_some() {
            return Err(GpuError::OutOfMemory { what: "the output".into(), bytes: out_size * 2 });
        }

        // Natively the callback has run when `rx` is first polled; in the browser it runs from
        // the event loop. A dropped sender (the callback never runs) is `Canceled`.
        let (tx, rx) = futures_channel::oneshot::channel();
        readback.slice(..).map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        #[cfg(not(target_arch = "wasm32"))]
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| self.lost_or(format!("waiting for the GPU failed: {e}")))?;
        rx.await
            .map_err(|_| self.lost_or("the GPU never answered".into()))?
            .map_err(|e| self.lost_or(format!("cannot read the GPU's results: {e}")))?;
        let y = {
            let view = readback
                .get_mapped_range(..)
                .map_err(|e| self.lost_or(format!("cannot read the GPU's results: {e}")))?;
            view.chunks_exact(4)
                .take(out_len)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect()
        };
        readback.unmap();
        self.check_device()?;
        Ok(y)
    }

    /// The device-lost reason if the device is gone, else an internal error with `message`.
    fn lost_or(&self, message: String) -> GpuError {
        match self.state.lock().ok().and_then(|s| s.lost.clone()) {
            Some(reason) => GpuError::DeviceLost { reason },
            None => GpuError::Internal { message },
        }
    }
}

fn f32_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// Bytes per row, after checking that `bytes` holds exactly `rows` rows of `cols` values of `ty`.
fn check_shape(ty: GgmlType, bytes: &[u8], rows: usize, cols: usize) -> Result<usize, GpuError> {
    if !ty.is_dequantizable() {
        return Err(GpuError::BadInput {
            message: format!("tensor type {ty} cannot be dequantized"),
        });
    }
    let row_bytes =
        ty.bytes_for(cols as u64).and_then(|b| usize::try_from(b).ok()).ok_or_else(|| {
            GpuError::BadInput {
                message: format!(
                    "{cols} values is not a whole number of {ty} blocks ({} values each)",
                    ty.block_size()
                ),
            }
        })?;
    if rows.checked_mul(row_bytes) != Some(bytes.len()) || rows == 0 || cols == 0 {
        return Err(GpuError::BadInput {
            message: format!(
                "{rows} rows of {cols} {ty} values take {rows}×{row_bytes} bytes, but {} were given",
                bytes.len()
            ),
        });
    }
    if u32::try_from(cols).is_err() || u32::try_from(row_bytes).is_err() {
        return Err(GpuError::TooLarge {
            message: format!("rows of {cols} values are too wide for the GPU kernels"),
        });
    }
    Ok(row_bytes)
}

fn no_adapter_reason(wgpu_message: &str, backends: Option<wgpu::Backends>) -> String {
    if cfg!(target_arch = "wasm32") {
        format!("the browser offers no WebGPU adapter ({wgpu_message}); WebGPU needs a recent Chromium, Edge or Firefox, or Chromium's --enable-unsafe-webgpu flag")
    } else if backends == Some(wgpu::Backends::empty()) {
        "no GPU backend was enabled".into()
    } else {
        format!("{wgpu_message}; install a Vulkan driver (on Debian: `apt-get install mesa-vulkan-drivers` gives the lavapipe software adapter)")
    }
}
