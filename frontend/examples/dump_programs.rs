//! Prints the kernels (Programs) ferrograd generates for a few expressions, for inspection.

use ferrograd::Tensor;

fn main() {
    let which = std::env::args().nth(1).unwrap_or_else(|| "softmax".into());
    let t = match which.as_str() {
        "softmax" => Tensor::randn(&[4096, 1024]).realize().unwrap().softmax(-1),
        "matmul" => {
            let a = Tensor::randn(&[1024, 1024]);
            let b = Tensor::randn(&[1024, 1024]);
            Tensor::realize_all(&[a.clone(), b.clone()]).unwrap();
            a.matmul(&b)
        }
        "add" => {
            let a = Tensor::randn(&[1 << 24]);
            let b = Tensor::randn(&[1 << 24]);
            Tensor::realize_all(&[a.clone(), b.clone()]).unwrap();
            &a + &b
        }
        "conv" => {
            // The second convolution of the MNIST convnet.
            let x = Tensor::randn(&[64, 8, 13, 13]);
            let w = Tensor::randn(&[16, 8, 3, 3]);
            Tensor::realize_all(&[x.clone(), w.clone()]).unwrap();
            x.conv2d(&w, None, ferrograd::Conv2dOptions::default())
        }
        "conv_weight_grad" => {
            // The weight gradient of the second convolution of the MNIST convnet.
            let x = Tensor::randn(&[64, 8, 13, 13]);
            let upstream = Tensor::randn(&[64, 16, 11, 11]);
            let w = Tensor::randn(&[16, 8, 3, 3]);
            Tensor::realize_all(&[x.clone(), upstream.clone(), w.clone()]).unwrap();
            let w = w.requires_grad(true);
            let out = x.conv2d(&w, None, ferrograd::Conv2dOptions::default());
            (&out * &upstream).sum(ferrograd::All).backward();
            w.grad().unwrap()
        }
        other => panic!("unknown workload {other}"),
    };
    for p in ferrograd::runtime::programs(&[t.node()]).unwrap() {
        println!(
            "== {} global {:?} params {}",
            p.name,
            p.global,
            p.params.len()
        );
        if std::env::var("DISASM").is_ok() {
            let dev = ferrograd_cpu::CpuDevice::new().unwrap();
            println!("{}", dev.disassemble(&p).unwrap());
            continue;
        }
        for (i, inst) in p.insts.iter().enumerate() {
            println!("  %{i} = {inst:?}");
        }
    }
}
