//! pktgen in echo mode against the smoltcp echo server over one link: the
//! client resolves the server by ARP, and every datagram it sends comes
//! back exactly once; the link's counters match both guests'.

use integration::{assert_exited, flow, manifest, run};

#[test]
fn every_datagram_comes_back_once() {
    let out = run("echo", &manifest("echo.toml"), &["--timeout", "900"]);
    out.assert_succeeded();
    out.assert_completed();
    for vm in out.vms() {
        assert_exited(vm, 0);
    }
    let sent = out.metric("client", "sent");
    assert!(sent > 0);
    assert_eq!(sent, out.metric("client", "planned"));
    assert_eq!(out.metric("client", "echo_matched"), sent);
    assert_eq!(out.metric("client", "echo_duplicate"), 0);
    assert_eq!(out.metric("server", "echoed"), sent);

    let link = out.link("client.0", "server.0");
    // Client to server: its ARP requests and replies, the datagrams and the
    // end-of-stream frame, all delivered.
    let (ab, ab_all) = flow(link, "ab");
    assert_eq!(ab, ab_all, "{link:#}");
    let arp = out.metric("client", "arp_requests") + out.metric("client", "arp_answered");
    assert!(arp >= 1, "the client never asked for the server's MAC");
    assert_eq!(ab, arp + sent + 1, "{link:#}");
    // Server to client: the echoes, the other frames the client counted, and
    // the server's ARP traffic (at least the reply that resolved it).
    let (ba, ba_all) = flow(link, "ba");
    assert_eq!(ba, ba_all, "{link:#}");
    let echoes = out.metric("client", "echo_matched") + out.metric("client", "echo_other");
    assert!(ba > echoes, "{link:#}");
}
