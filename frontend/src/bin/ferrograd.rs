//! The `ferrograd` command line.

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "ferrograd",
    version,
    about = "ferrograd tensor compiler and runtime"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Lists the devices found, with their capabilities.
    Devices,
}

fn main() {
    let cli = Cli::parse();
    match cli.command {
        Command::Devices => {
            let infos = ferrograd::device::list_devices();
            if infos.is_empty() {
                println!("no devices found");
            }
            for info in infos {
                println!("{info}");
            }
            for failure in ferrograd::device::backend_failures() {
                println!("unavailable: {failure}");
            }
            match ferrograd::device::default_device() {
                Ok(name) => println!("default: {name}"),
                Err(e) => {
                    eprintln!("error: {e}");
                    std::process::exit(2);
                }
            }
        }
    }
}
