//! Small reference models used by the examples, tests and benchmarks.

use crate::nn::{Conv2d, Linear, Module};
use crate::{Conv2dOptions, Tensor};

/// The MNIST convnet: conv(1->8, 3x3) -> relu -> maxpool 2 -> conv(8->16, 3x3) -> relu ->
/// maxpool 2 -> linear(400->128) -> relu -> linear(128->10), for `[N, 1, 28, 28]` images.
#[derive(Module)]
pub struct MnistNet {
    conv1: Conv2d,
    conv2: Conv2d,
    fc1: Linear,
    fc2: Linear,
}

impl MnistNet {
    /// A freshly initialized network (parameters on the default device).
    pub fn new() -> MnistNet {
        MnistNet {
            conv1: Conv2d::new(1, 8, (3, 3), Conv2dOptions::default()),
            conv2: Conv2d::new(8, 16, (3, 3), Conv2dOptions::default()),
            fc1: Linear::new(16 * 5 * 5, 128),
            fc2: Linear::new(128, 10),
        }
    }

    /// Class scores `[N, 10]` for images `[N, 1, 28, 28]`.
    pub fn forward(&self, x: &Tensor) -> Tensor {
        let pool = Conv2dOptions::default().stride(2, 2);
        let h = self.conv1.forward(x).relu().max_pool2d((2, 2), pool);
        let h = self.conv2.forward(&h).relu().max_pool2d((2, 2), pool);
        let h = self.fc1.forward(&h.flatten(1, -1)).relu();
        self.fc2.forward(&h)
    }
}

impl Default for MnistNet {
    fn default() -> Self {
        MnistNet::new()
    }
}
