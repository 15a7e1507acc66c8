//! The `ferrograd` command line.

use std::process::Command;

fn ferrograd(env: Option<(&str, &str)>) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ferrograd"));
    cmd.arg("devices").env_remove("FERROGRAD_DEVICE");
    if let Some((k, v)) = env {
        cmd.env(k, v);
    }
    cmd.output().expect("the ferrograd binary runs")
}

#[test]
fn devices_lists_the_cpu_with_capabilities() {
    let out = ferrograd(None);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.lines().any(|l| l.starts_with("cpu ")), "{text}");
    assert!(text.contains("dtypes:") && text.contains("f32"), "{text}");
    assert!(text.contains("compute units"), "{text}");
    assert!(text.lines().any(|l| l.starts_with("default: ")), "{text}");
}

#[test]
fn devices_rejects_an_unknown_default_device_listing_the_available_ones() {
    let out = ferrograd(Some(("FERROGRAD_DEVICE", "tpu:7")));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("FERROGRAD_DEVICE") && err.contains("tpu:7"),
        "{err}"
    );
    assert!(err.contains("available devices: cpu"), "{err}");
}
