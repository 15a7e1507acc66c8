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
    /// Serves this machine's devices to the cluster's clients.
    #[cfg(feature = "distributed")]
    Worker(distributed::WorkerArgs),
    /// Manages a cluster's certificate authority and join tokens.
    #[cfg(feature = "distributed")]
    #[command(subcommand)]
    Cluster(distributed::ClusterCommand),
}

fn main() {
    let cli = Cli::parse();
    match cli.command {
        Command::Devices => devices(),
        #[cfg(feature = "distributed")]
        Command::Worker(args) => exit_on_error(distributed::worker(args)),
        #[cfg(feature = "distributed")]
        Command::Cluster(command) => exit_on_error(distributed::cluster(command)),
    }
}

fn devices() {
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

#[cfg(feature = "distributed")]
fn exit_on_error(result: Result<(), ferrograd::distributed::Error>) {
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(2);
    }
}

#[cfg(feature = "distributed")]
mod distributed {
    use clap::{Args, Subcommand};
    use ferrograd::distributed::cluster::{self, Identity};
    use ferrograd::distributed::discovery;
    use ferrograd::distributed::worker::{Worker, WorkerConfig};
    use ferrograd::distributed::{Result, Security};
    use std::io::Write;
    use std::net::SocketAddr;
    use std::path::PathBuf;
    use std::time::Duration;

    #[derive(Args)]
    pub struct WorkerArgs {
        /// Address to listen on, e.g. `0.0.0.0:7070` (port 0 picks a free one).
        #[arg(long)]
        listen: SocketAddr,
        /// Joins the cluster with a token from `ferrograd cluster token` (stored in --state).
        #[arg(long, value_name = "TOKEN")]
        join: Option<String>,
        /// Where the worker keeps its identity (default: ~/.local/share/ferrograd/worker).
        #[arg(long, value_name = "DIR")]
        state: Option<PathBuf>,
        /// Serves without TLS; only allowed on a loopback address.
        #[arg(long)]
        insecure_loopback: bool,
        /// Announces the worker on the local network (multicast DNS), with its devices and
        /// its cluster's CA fingerprint.
        #[arg(long)]
        announce: bool,
    }

    #[derive(Subcommand)]
    pub enum ClusterCommand {
        /// Creates a cluster CA and a client identity in DIR.
        Init {
            /// Directory to create (point FERROGRAD_CLUSTER_DIR at it on clients).
            dir: PathBuf,
        },
        /// Prints a join token for one worker: a bearer secret valid for --ttl-secs.
        Token {
            /// The cluster directory made by `cluster init`.
            dir: PathBuf,
            /// Lifetime of the token and of the worker certificate inside it.
            #[arg(long, default_value_t = 7 * 24 * 3600)]
            ttl_secs: u64,
        },
        /// Lists the workers of this cluster: those announced on the local network (multicast
        /// DNS) and those of a static peer list that answer. Credentials come from
        /// FERROGRAD_CLUSTER_DIR (or FERROGRAD_INSECURE_LOOPBACK=1).
        Discover {
            /// Static peers, `host:port` separated by commas.
            #[arg(long, value_name = "HOST:PORT,...")]
            peers: Option<String>,
            /// A file of static peers (`host:port` per line, `#` comments).
            #[arg(long, value_name = "FILE")]
            peers_file: Option<PathBuf>,
            /// How long to listen for multicast announcements (0: static peers only).
            #[arg(long, default_value_t = 1500)]
            wait_ms: u64,
            /// Also listens on the loopback interface (workers on this machine).
            #[arg(long)]
            loopback: bool,
        },
    }

    pub fn worker(args: WorkerArgs) -> Result<()> {
        let security = if args.insecure_loopback {
            Security::InsecureLoopback
        } else {
            let state = match args.state {
                Some(dir) => dir,
                None => cluster::default_worker_state_dir()?,
            };
            if let Some(token) = &args.join {
                cluster::redeem(token)?.save(&state, "worker")?;
            }
            Security::MutualTls(Identity::load(&state, "worker")?)
        };
        // Open the devices now, so a driver problem shows at start and the first client does not
        // wait for it.
        let devices: Vec<String> = ferrograd::device::list_devices()
            .into_iter()
            .map(|d| d.name)
            .collect();
        let mode = match security {
            Security::MutualTls(_) => "mutual TLS",
            Security::InsecureLoopback => "plaintext, loopback only",
        };
        let worker = Worker::bind(WorkerConfig::new(args.listen, security.clone()))?;
        let addr = worker.local_addr()?;
        println!(
            "ferrograd worker listening on {addr} ({mode}); devices: {}",
            devices.join(", ")
        );
        let _announcement = if args.announce {
            let a = discovery::announce(addr, &devices, &security)?;
            println!(
                "announced on the local network as {} (cluster {})",
                discovery::SERVICE_TYPE,
                discovery::cluster_fingerprint(&security)
            );
            Some(a)
        } else {
            None
        };
        let _ = std::io::stdout().flush();
        worker.run()
    }

    fn discover(
        peers: Option<String>,
        peers_file: Option<PathBuf>,
        wait_ms: u64,
        loopback: bool,
    ) -> Result<()> {
        let security = ferrograd::distributed::remote::client_security()?;
        let mut list = match peers {
            Some(p) => discovery::parse_peers(&p)?,
            None => Vec::new(),
        };
        if let Some(file) = peers_file {
            list.extend(discovery::read_peer_file(&file)?);
        }
        let (mut found, failed) = discovery::probe_all(&list, &security);
        if wait_ms > 0 {
            let announced = discovery::browse(&security, Duration::from_millis(wait_ms), loopback)?;
            for w in announced {
                if !found.iter().any(|f| f.addr == w.addr) {
                    found.push(w);
                }
            }
        }
        for w in &found {
            println!(
                "{} ({:?}): {}",
                w.addr,
                w.source,
                w.remote_names().join(" ")
            );
        }
        for (peer, e) in &failed {
            println!("{peer}: unreachable: {e}");
        }
        if found.is_empty() {
            println!("no workers found");
        }
        Ok(())
    }

    pub fn cluster(command: ClusterCommand) -> Result<()> {
        match command {
            ClusterCommand::Init { dir } => {
                cluster::init(&dir)?;
                println!(
                    "cluster CA and client identity written to {}; on clients: export FERROGRAD_CLUSTER_DIR={}",
                    dir.display(),
                    dir.display()
                );
            }
            ClusterCommand::Token { dir, ttl_secs } => {
                println!("{}", cluster::token(&dir, Duration::from_secs(ttl_secs))?);
            }
            ClusterCommand::Discover {
                peers,
                peers_file,
                wait_ms,
                loopback,
            } => discover(peers, peers_file, wait_ms, loopback)?,
        }
        Ok(())
    }
}
