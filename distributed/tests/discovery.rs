//! Discovery: static peer lists (parsed, read from a file, probed over an authenticated
//! connection) and multicast DNS announcements on loopback, filtered by the cluster's CA.

mod common;

use common::*;
use ferrograd_distributed::discovery::{self, Source};
use ferrograd_distributed::{Error, Security};
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::time::Duration;

#[test]
fn static_peer_lists_parse_with_comments_and_refuse_bad_entries() {
    let peers = discovery::parse_peers("a:1, 10.0.0.2:7070 # two\n# none\n[::1]:9\tb:2").unwrap();
    assert_eq!(peers, ["a:1", "10.0.0.2:7070", "[::1]:9", "b:2"]);
    for bad in ["nohost", ":80", "a:99999", "a:x"] {
        assert!(
            matches!(discovery::parse_peers(bad), Err(Error::Address { .. })),
            "{bad}"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("peers");
    std::fs::write(&file, "# cluster\nw1:7070\nw2:7070\n").unwrap();
    assert_eq!(
        discovery::read_peer_file(&file).unwrap(),
        ["w1:7070", "w2:7070"]
    );
    assert!(matches!(
        discovery::read_peer_file(&dir.path().join("missing")),
        Err(Error::File { .. })
    ));
}

#[test]
fn static_peers_of_our_cluster_answer_with_their_devices_and_others_do_not() {
    let cluster = Cluster::new();
    let ours = cluster.worker();
    let foreign = Cluster::new().worker();
    let security = Security::MutualTls(cluster.client());
    let peers = vec![
        ours.addr().to_string(),
        foreign.addr().to_string(),
        "127.0.0.1:1".to_string(),
    ];
    let (found, failed) = discovery::probe_all(&peers, &security);
    assert_eq!(found.len(), 1, "{found:?} {failed:?}");
    assert_eq!(found[0].addr, ours.addr());
    assert_eq!(found[0].source, Source::Static);
    assert!(found[0].devices.iter().any(|d| d == "cpu"), "{found:?}");
    assert_eq!(
        found[0].remote_names()[0],
        format!("remote:{}/{}", ours.addr(), found[0].devices[0])
    );
    let failed: Vec<&str> = failed.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(failed, [peers[1].as_str(), peers[2].as_str()]);
    // The probe left the worker serving sessions.
    let device = connect(ours.addr(), &security).unwrap();
    ferrograd_runtime::Device::synchronize(&device).unwrap();
}

/// Whether a multicast datagram sent on loopback comes back: the sandbox may have no
/// multicast route, in which case multicast DNS cannot work and the test says so.
fn loopback_multicast_works() -> Result<(), String> {
    let group = Ipv4Addr::new(239, 255, 70, 71);
    let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).map_err(|e| e.to_string())?;
    let port = socket.local_addr().map_err(|e| e.to_string())?.port();
    socket
        .join_multicast_v4(&group, &Ipv4Addr::LOCALHOST)
        .map_err(|e| format!("joining a group on loopback: {e}"))?;
    socket
        .set_multicast_loop_v4(true)
        .map_err(|e| e.to_string())?;
    socket
        .set_read_timeout(Some(Duration::from_millis(500)))
        .map_err(|e| e.to_string())?;
    let sender = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None)
        .map_err(|e| e.to_string())?;
    sender
        .set_multicast_if_v4(&Ipv4Addr::LOCALHOST)
        .map_err(|e| format!("multicast on loopback: {e}"))?;
    let sender = UdpSocket::from(sender);
    sender
        .send_to(b"ferrograd", (group, port))
        .map_err(|e| format!("sending to a group on loopback: {e}"))?;
    let mut buf = [0u8; 16];
    match socket.recv_from(&mut buf) {
        Ok((9, _)) if &buf[..9] == b"ferrograd" => Ok(()),
        Ok(_) => Err("an unexpected datagram".into()),
        Err(e) => Err(format!("no multicast datagram came back on loopback: {e}")),
    }
}

#[test]
fn workers_announced_on_loopback_are_found_by_clients_of_their_cluster_only() {
    if let Err(why) = loopback_multicast_works() {
        eprintln!(
            "MULTICAST UNAVAILABLE in this environment ({why}): the multicast DNS test cannot \
             run here; static peer discovery is tested separately"
        );
        return;
    }
    let cluster = Cluster::new();
    let ours = Security::MutualTls(cluster.client());
    let theirs = Security::MutualTls(Cluster::new().client());
    // Workers are announced, not started: discovery only reads the announcements.
    let addr: SocketAddr = "127.0.0.1:47071".parse().unwrap();
    let other: SocketAddr = "127.0.0.1:47072".parse().unwrap();
    let devices = vec!["cpu".to_string(), "vulkan:0".to_string()];
    let _a = discovery::announce(addr, &devices, &ours).unwrap();
    let _b = discovery::announce(other, &["cpu".to_string()], &theirs).unwrap();
    let mut found = Vec::new();
    for _ in 0..3 {
        found = discovery::browse(&ours, Duration::from_millis(1500), true).unwrap();
        if !found.is_empty() {
            break;
        }
    }
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].addr, addr);
    assert_eq!(found[0].devices, devices);
    assert_eq!(found[0].source, Source::Mdns);
}
