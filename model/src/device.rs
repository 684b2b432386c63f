use std::fmt;
use std::str::FromStr;

use crate::error::{ModelError, Result};

/// The number type of the weights and activations: `fp32`, `fp16` (CUDA
/// only) or `bf16` (CUDA, and CPUs, fast on those with bf16 units).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Dtype {
    #[default]
    Fp32,
    Fp16,
    Bf16,
}

impl FromStr for Dtype {
    type Err = ModelError;

    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "fp32" | "f32" | "float32" => Ok(Self::Fp32),
            "fp16" | "f16" | "float16" | "half" => Ok(Self::Fp16),
            "bf16" | "bfloat16" => Ok(Self::Bf16),
            _ => Err(ModelError::BadDtype(s.into())),
        }
    }
}

impl fmt::Display for Dtype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Fp32 => "fp32",
            Self::Fp16 => "fp16",
            Self::Bf16 => "bf16",
        })
    }
}

impl Dtype {
    /// The tch kind (for the model thread, training and the benches).
    pub fn kind(self) -> tch::Kind {
        match self {
            Self::Fp32 => tch::Kind::Float,
            Self::Fp16 => tch::Kind::Half,
            Self::Bf16 => tch::Kind::BFloat16,
        }
    }
}

/// Where the model runs: `auto` (the first CUDA device if any, else CPU), `cpu`, `cuda` or `cuda:N`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceSpec {
    #[default]
    Auto,
    Cpu,
    Cuda(usize),
}

impl FromStr for DeviceSpec {
    type Err = ModelError;

    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(Self::Auto),
            "cpu" => Ok(Self::Cpu),
            "cuda" | "gpu" => Ok(Self::Cuda(0)),
            other => other
                .strip_prefix("cuda:")
                .and_then(|n| n.parse().ok())
                .map(Self::Cuda)
                .ok_or_else(|| ModelError::BadDevice(s.into())),
        }
    }
}

impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Auto => f.write_str("auto"),
            Self::Cpu => f.write_str("cpu"),
            Self::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

impl DeviceSpec {
    /// The torch device, checked to exist. A tch type: for loading here and
    /// for training; the serving side passes a `DeviceSpec` in [`crate::LoadOptions`].
    pub fn resolve(self) -> Result<tch::Device> {
        match self {
            Self::Auto => Ok(tch::Device::cuda_if_available()),
            Self::Cpu => Ok(tch::Device::Cpu),
            Self::Cuda(n) if n < tch::Cuda::device_count() as usize => Ok(tch::Device::Cuda(n)),
            Self::Cuda(_) => Err(ModelError::DeviceUnavailable(self.to_string())),
        }
    }
}
