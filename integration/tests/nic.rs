//! The physical NIC (Bochs's e1000 on slirp) as a link endpoint: real host clients (a UDP socket, `curl`) reach unikernels behind it, and a guest that lies about its MAC is stopped at the switch.

use integration::{Background, assert_exited, nic, nic_port, num, run, write_manifest};
use serde_json::Value;
use std::net::{TcpListener, UdpSocket};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

/// How long the clients keep trying to reach a server that is booting
/// (the emulator boots the machine first: tens of seconds).
const READY_WITHIN: Duration = Duration::from_secs(400);
/// Datagrams sent once the echo server answered.
const DATAGRAMS: usize = 20;

/// A port on 127.0.0.1 nobody listens on right now (for a forward).
fn free_port() -> u16 {
    let udp = UdpSocket::bind("127.0.0.1:0").expect("bind a UDP port");
    let port = udp.local_addr().unwrap().port();
    // The same number must be free for TCP too (both forwards use it).
    match TcpListener::bind(("127.0.0.1", port)) {
        Ok(_) => port,
        Err(_) => free_port(),
    }
}

fn curl() -> PathBuf {
    boot::tools::ensure_program("curl", "curl", &|m| eprintln!("nic test: {m}"))
        .expect("curl is needed to test the HTTP server")
}

/// `curl` GET of `path` on `port`: (status code, body); retries while the
/// server is not up yet.
fn get(curl: &PathBuf, port: u16, path: &str) -> (u16, String) {
    let out = Command::new(curl)
        .args([
            "-sS",
            "--max-time",
            "30",
            "--retry",
            "20",
            "--retry-all-errors",
        ])
        .args(["--retry-delay", "2", "-w", "\n%{http_code}"])
        .arg(format!("http://127.0.0.1:{port}{path}"))
        .output()
        .expect("run curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "curl {path}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (body, code) = text.rsplit_once('\n').expect("curl printed the status");
    (code.parse().expect("a status code"), body.to_string())
}

/// Sends `probe` to the UDP server at 127.0.0.1:`port` every two seconds
/// until it comes back (the server booted); panics if `run` ends first or
/// the bound passes. The socket is left with a ten-second read timeout;
/// returns the probes sent.
fn probe(sock: &UdpSocket, port: u16, probe: &[u8], run: &Background) -> usize {
    sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let start = Instant::now();
    let mut buf = [0u8; 2048];
    let mut sent = 0;
    loop {
        assert!(
            start.elapsed() < READY_WITHIN && !run.over(),
            "the server at port {port} never answered"
        );
        sock.send_to(probe, ("127.0.0.1", port)).unwrap();
        sent += 1;
        if let Ok((n, _)) = sock.recv_from(&mut buf) {
            assert_eq!(&buf[..n], probe);
            break;
        }
    }
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    sent
}

/// The next datagram on `sock` other than a late answer to `probe`.
fn next_echo(sock: &UdpSocket, probe: &[u8]) -> Vec<u8> {
    let mut buf = [0u8; 2048];
    loop {
        let (n, _) = sock.recv_from(&mut buf).expect("an echo");
        if &buf[..n] != probe {
            return buf[..n].to_vec();
        }
    }
}

/// `curl ARGS` (the server is up): its standard output.
fn curl_output(curl: &PathBuf, args: &[&str]) -> String {
    let out = Command::new(curl)
        .args(["-sS", "--max-time", "60"])
        .args(args)
        .output()
        .expect("run curl");
    assert!(
        out.status.success(),
        "curl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn host_clients_reach_unikernels_behind_the_nic() {
    let (udp_port, tcp_port) = (free_port(), free_port());
    let manifest = write_manifest(
        "nic-clients",
        "wire.toml",
        &format!(
            "[run]\ncpus = 2\ntimeout = 600\n\
             [[vm]]\nname = \"echo\"\nimage = \"echo\"\nmemory = \"4M\"\nnet = 1\n\
             args = \"ip=10.0.2.15/24 port=7 quit=bye idle=100000000000\"\n\
             [[vm]]\nname = \"web\"\nimage = \"httpd\"\nmemory = \"4M\"\nnet = 1\n\
             args = \"ip=10.0.2.16/24 requests=9 idle=100000000000\"\n\
             [[nic]]\nname = \"uplink\"\n\
             forward = [\"udp:{udp_port}:7\", \"tcp:{tcp_port}:10.0.2.16:80\"]\n\
             [[link]]\na = \"echo.0\"\nb = \"nic:uplink\"\n\
             [[link]]\na = \"web.0\"\nb = \"nic:uplink\"\n"
        ),
    );
    let curl = curl();
    let runner = Background::start("nic-clients", manifest, &[]);

    // UDP: probe until the echo server answers, then every datagram comes
    // back, in order.
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let server = ("127.0.0.1", udp_port);
    let probes = probe(&sock, udp_port, b"probe", &runner);
    for i in 0..DATAGRAMS {
        let msg = format!("datagram {i} {}", "x".repeat(i * 50));
        sock.send_to(msg.as_bytes(), server).unwrap();
        // Late answers to probes may come first.
        assert_eq!(next_echo(&sock, b"probe"), msg.as_bytes(), "datagram {i}");
    }
    sock.send_to(b"bye", server).unwrap();

    // HTTP with curl: the page, the counters as JSON, a missing page.
    let (code, page) = get(&curl, tcp_port, "/");
    assert_eq!(code, 200);
    assert!(page.contains("Hello from web"), "{page}");
    let (code, stats) = get(&curl, tcp_port, "/stats");
    assert_eq!(code, 200);
    let stats: Value = serde_json::from_str(&stats).expect("/stats is JSON");
    assert_eq!(stats["vm"], "web");
    assert!(num(&stats, "requests") >= 2, "{stats}");
    let (code, _) = get(&curl, tcp_port, "/no-such-page");
    assert_eq!(code, 404);
    // Three requests over one connection (keep-alive): only the first
    // transfer connects.
    let url = format!("http://127.0.0.1:{tcp_port}/");
    let reused = curl_output(
        &curl,
        &[
            "-w",
            "%{http_code} %{num_connects}\n",
            "-o",
            "/dev/null",
            &url,
            "-o",
            "/dev/null",
            &url,
            "-o",
            "/dev/null",
            &url,
        ],
    );
    assert_eq!(reused, "200 1\n200 0\n200 0\n");
    // Three at once, each on its own connection.
    let parallel = curl_output(
        &curl,
        &[
            "--parallel",
            "--parallel-immediate",
            "--parallel-max",
            "3",
            "-w",
            "%{http_code}\n",
            "-o",
            "/dev/null",
            &url,
            "-o",
            "/dev/null",
            &url,
            "-o",
            "/dev/null",
            &url,
        ],
    );
    assert_eq!(parallel, "200\n200\n200\n");

    let out = runner.finish();
    out.assert_succeeded();
    out.assert_completed();
    assert_exited(out.vm("echo"), 0);
    assert_exited(out.vm("web"), 0);
    // Every datagram after the probes, and `bye`, was echoed once; probes
    // that arrived before the server was up were lost on the way.
    let echoed = out.metric("echo", "echoed");
    assert!(echoed > DATAGRAMS as u64, "echoed {echoed}");
    assert!(echoed <= (DATAGRAMS + probes + 1) as u64, "echoed {echoed}");
    assert_eq!(out.metric("web", "requests"), 9);
    assert_eq!(out.metric("web", "bad_requests"), 0);
    // One connection each for the three single requests, one for the
    // keep-alive three, three for the parallel ones.
    assert_eq!(out.metric("web", "connections"), 7);

    let uplink = nic(&out.report, "uplink");
    let wire = &uplink["wire"];
    for key in ["drop_runt", "rx_errors"] {
        assert_eq!(num(wire, key), 0, "{uplink:#}");
    }
    let echo = nic_port(uplink, "echo.0");
    let web = nic_port(uplink, "web.0");
    assert!(num(echo, "rx_frames") > DATAGRAMS as u64, "{uplink:#}");
    assert!(num(echo, "tx_frames") > DATAGRAMS as u64, "{uplink:#}");
    assert!(
        num(web, "rx_frames") > 3 && num(web, "tx_frames") > 3,
        "{uplink:#}"
    );
    for port in [echo, web] {
        assert_eq!(num(port, "drop_spoofed"), 0, "{uplink:#}");
    }
    // What the guests sent is what went onto the wire.
    assert_eq!(
        num(wire, "tx_frames"),
        num(echo, "tx_frames") + num(web, "tx_frames"),
        "{uplink:#}"
    );
}

/// The counters `hvt_echo` printed at its end (`echoed=N arp=M end=WHY`).
fn hvt_echo_summary(out: &integration::Outcome, vm: &str) -> (u64, u64, String) {
    let prefix = format!("{vm} | hvt_echo: echoed=");
    let console = out.console();
    let line = console
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("{vm} printed no summary:\n{console}"));
    let mut words = line.split(' ');
    let mut field = |key: &str| {
        let w = words.next().unwrap_or("");
        w.strip_prefix(key).unwrap_or(w).to_string()
    };
    let echoed = field("").parse().expect("echoed=N");
    let arp = field("arp=").parse().expect("arp=N");
    (echoed, arp, field("end="))
}

#[test]
fn a_solo5_unikernel_behind_the_nic_answers_a_host_udp_socket() {
    let udp_port = free_port();
    let manifest = write_manifest(
        "nic-hvt",
        "wire.toml",
        &format!(
            "[run]\ncpus = 2\ntimeout = 600\n\
             [[vm]]\nname = \"hecho\"\nimage = \"hvt_echo\"\nmemory = \"6M\"\n\
             devices = {{ service0 = \"nic:uplink\" }}\n\
             args = \"ip=10.0.2.15 port=7 quit=bye idle_ms=600000\"\n\
             [[nic]]\nname = \"uplink\"\nforward = [\"udp:{udp_port}:7\"]\n"
        ),
    );
    let runner = Background::start("nic-hvt", manifest, &[]);
    // A real socket on the host reaches the unikernel's net_read through
    // slirp, the e1000 and the switch, and its net_write answers come
    // back the same way, in order.
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let server = ("127.0.0.1", udp_port);
    let probes = probe(&sock, udp_port, b"probe", &runner);
    for i in 0..DATAGRAMS {
        let msg = format!("hvt datagram {i} {}", "y".repeat(i * 70));
        sock.send_to(msg.as_bytes(), server).unwrap();
        assert_eq!(next_echo(&sock, b"probe"), msg.as_bytes(), "datagram {i}");
    }
    sock.send_to(b"bye", server).unwrap();
    assert_eq!(next_echo(&sock, b"probe"), b"bye");

    let out = runner.finish();
    out.assert_succeeded();
    out.assert_completed();
    assert_exited(out.vm("hecho"), 0);
    // Its frames went through Solo5's shared ring, which Corral offered.
    let console = out.console();
    assert!(
        console
            .lines()
            .any(|l| l.starts_with("hecho | hvt_echo: listening on") && l.ends_with(", io ring")),
        "{console}"
    );
    let (echoed, _, end) = hvt_echo_summary(&out, "hecho");
    assert_eq!(end, "quit");
    // Every datagram after the probes, and `bye`, was echoed once; probes
    // sent before it was up were lost on the way.
    assert!(echoed > DATAGRAMS as u64, "echoed {echoed}");
    assert!(echoed <= (DATAGRAMS + probes + 1) as u64, "echoed {echoed}");
    let uplink = nic(&out.report, "uplink");
    let port = nic_port(uplink, "hecho.0");
    // Its gratuitous ARP and its echoes went out; nothing was spoofed.
    assert!(num(port, "tx_frames") > echoed, "{uplink:#}");
    assert_eq!(num(port, "drop_spoofed"), 0, "{uplink:#}");
}

#[test]
fn a_guest_lying_about_its_mac_never_reaches_the_wire() {
    let manifest = write_manifest(
        "nic-spoof",
        "spoof.toml",
        "[run]\ncpus = 2\ntimeout = 300\n\
         [[vm]]\nname = \"honest\"\nimage = \"pktgen\"\nmemory = \"2M\"\nnet = 1\nargs = \"count=10\"\n\
         [[vm]]\nname = \"liar\"\nimage = \"pktgen\"\nmemory = \"2M\"\nnet = 1\n\
         args = \"count=10 src_mac=02:43:00:00:00:00\"\n\
         [[nic]]\nname = \"uplink\"\n\
         [[link]]\na = \"honest.0\"\nb = \"nic:uplink\"\n\
         [[link]]\na = \"liar.0\"\nb = \"nic:uplink\"\n",
    );
    let out = run("nic-spoof", &manifest, &[]);
    out.assert_succeeded();
    assert_exited(out.vm("honest"), 0);
    assert_exited(out.vm("liar"), 0);
    let uplink = nic(&out.report, "uplink");
    let honest = nic_port(uplink, "honest.0");
    let liar = nic_port(uplink, "liar.0");
    // The liar claims the honest guest's MAC: all 10 frames and its end
    // frame are dropped at the switch; the honest one's all go out.
    assert_eq!(num(liar, "drop_spoofed"), 11, "{uplink:#}");
    assert_eq!(num(liar, "tx_frames"), 0, "{uplink:#}");
    assert_eq!(num(honest, "drop_spoofed"), 0, "{uplink:#}");
    assert_eq!(num(honest, "tx_frames"), 11, "{uplink:#}");
    assert_eq!(num(&uplink["wire"], "tx_frames"), 11, "{uplink:#}");
}

#[test]
fn a_guest_pings_the_slirp_gateway_through_each_nic_mode() {
    // slirp answers ICMP echo requests to its gateway itself: a peer on the
    // wire that Corral did not write, with no host client involved.
    let manifest = write_manifest(
        "nic-ping",
        "ping.toml",
        "[run]\ncpus = 2\ntimeout = 300\n\
         [[vm]]\nname = \"pinger\"\nimage = \"pktgen\"\nmemory = \"2M\"\nnet = 1\ncores = [1]\n\
         args = \"mode=ping count=100 window=16 src_ip=10.0.2.15 dst_ip=10.0.2.2\"\n\
         [[vm]]\nname = \"big\"\nimage = \"pktgen\"\nmemory = \"2M\"\nnet = 1\ncores = [1]\n\
         args = \"mode=ping count=50 size=1500 src_ip=10.0.2.15 dst_ip=10.0.2.2\"\n\
         [[nic]]\nname = \"shared\"\ncore = 0\n\
         [[nic]]\nname = \"owned\"\nmode = \"owned\"\ncore = 0\n\
         [[link]]\na = \"pinger.0\"\nb = \"nic:shared\"\n\
         [[link]]\na = \"big.0\"\nb = \"nic:owned\"\n",
    );
    let out = run("nic-ping", &manifest, &[]);
    out.assert_succeeded();
    // pktgen exits 0 only if every request got exactly one matching reply.
    for (vm, nic_name, count) in [("pinger", "shared", 100), ("big", "owned", 50)] {
        assert_exited(out.vm(vm), 0);
        assert_eq!(out.metric(vm, "echo_matched"), count);
        assert_eq!(out.metric(vm, "echo_duplicate"), 0);
        let wire = &nic(&out.report, nic_name)["wire"];
        // The requests, the ARP request and the end frame went out; the
        // replies and the ARP reply came in.
        assert_eq!(num(wire, "tx_frames"), count + 2, "{wire:#}");
        assert_eq!(num(wire, "rx_frames"), count + 1, "{wire:#}");
    }
}

#[test]
fn a_firewall_stands_between_the_wire_and_a_server() {
    let (open_port, blocked_port) = (free_port(), free_port());
    let manifest = write_manifest(
        "nic-nf",
        "nf.toml",
        &format!(
            "[run]\ncpus = 2\ntimeout = 600\n\
             [[vm]]\nname = \"fw\"\nimage = \"firewall\"\nmemory = \"4M\"\nnet = 2\n\
             args = \"deny=blocked:dport=9999 end=idle idle=500000000\"\n\
             [[vm]]\nname = \"echo\"\nimage = \"echo\"\nmemory = \"4M\"\nnet = 1\n\
             args = \"ip=10.0.2.15/24 port=7 quit=bye idle=100000000000\"\n\
             [[nic]]\nname = \"uplink\"\n\
             forward = [\"udp:{open_port}:7\", \"udp:{blocked_port}:9999\"]\n\
             [[link]]\na = \"fw.0\"\nb = \"nic:uplink\"\nbridge = true\n\
             [[link]]\na = \"fw.1\"\nb = \"echo.0\"\n"
        ),
    );
    let runner = Background::start("nic-nf", manifest, &[]);
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    probe(&sock, open_port, b"probe", &runner);
    const BLOCKED: u64 = 5;
    for i in 0..BLOCKED {
        sock.send_to(
            format!("blocked {i}").as_bytes(),
            ("127.0.0.1", blocked_port),
        )
        .unwrap();
    }
    for i in 0..5 {
        let msg = format!("through the firewall {i}");
        sock.send_to(msg.as_bytes(), ("127.0.0.1", open_port))
            .unwrap();
        assert_eq!(next_echo(&sock, b"probe"), msg.as_bytes());
    }
    sock.send_to(b"bye", ("127.0.0.1", open_port)).unwrap();

    let out = runner.finish();
    out.assert_succeeded();
    assert_exited(out.vm("echo"), 0);
    assert_exited(out.vm("fw"), 0);
    // Every datagram to the blocked port died at the firewall, and none of
    // them reached the server.
    assert_eq!(out.metric("fw", "drop_blocked"), BLOCKED);
    let uplink = nic(&out.report, "uplink");
    let fw = nic_port(uplink, "fw.0");
    assert_eq!(num(fw, "drop_spoofed"), 0, "{uplink:#}");
    assert!(num(fw, "rx_frames") >= BLOCKED + 6, "{uplink:#}");
    assert!(num(fw, "tx_frames") >= 6, "{uplink:#}");
    assert_eq!(num(&uplink["wire"], "drop_unknown"), 0, "{uplink:#}");
}

#[test]
fn an_owned_nic_lets_go_of_a_guest_that_fails_mid_traffic_beside_a_shared_one() {
    let (port, web_port) = (free_port(), free_port());
    let curl = curl();
    // The server fails after 5 echoes, each of its two runs: the NIC held
    // its buffers (owned mode, zero-copy) and must let go of them before
    // its memory is freed and given to the restarted run.
    let manifest = write_manifest(
        "nic-owned",
        "owned.toml",
        &format!(
            "[run]\ncpus = 2\ntimeout = 600\n\
             [[vm]]\nname = \"echo\"\nimage = \"echo\"\nmemory = \"4M\"\nnet = 1\n\
             args = \"ip=10.0.2.15/24 port=7 crash_after=5 idle=100000000000\"\n\
             restart = \"on-failure\"\nrestart_limit = 1\nexpect = \"killed\"\n\
             [[vm]]\nname = \"web\"\nimage = \"httpd\"\nmemory = \"4M\"\nnet = 1\n\
             args = \"ip=10.0.2.15/24 requests=1 idle=100000000000\"\n\
             [[nic]]\nname = \"uplink\"\nmode = \"owned\"\n\
             forward = [\"udp:{port}:7\"]\n\
             [[nic]]\nname = \"lan\"\n\
             forward = [\"tcp:{web_port}:80\"]\n\
             [[link]]\na = \"echo.0\"\nb = \"nic:uplink\"\n\
             [[link]]\na = \"web.0\"\nb = \"nic:lan\"\n"
        ),
    );
    let runner = Background::start("nic-owned", manifest, &[]);
    // A second card, in shared mode, beside it in the same machine.
    let (code, page) = get(&curl, web_port, "/");
    assert_eq!(code, 200);
    assert!(page.contains("Hello from web"), "{page}");
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let start = Instant::now();
    let mut buf = [0u8; 2048];
    let mut answered = 0u32;
    let mut sent = 0u32;
    // One datagram at a time, each given two seconds to come back, until
    // the run is over (both runs failed) or the bound: datagrams sent while
    // the server restarts are lost, the others come back.
    while !runner.over() {
        assert!(start.elapsed() < READY_WITHIN, "the run never ended");
        let msg = format!("datagram {sent} {}", "z".repeat((sent as usize % 8) * 150));
        sock.send_to(msg.as_bytes(), ("127.0.0.1", port)).unwrap();
        sent += 1;
        if let Ok((n, _)) = sock.recv_from(&mut buf) {
            assert!(buf[..n].starts_with(b"datagram "), "an echo");
            answered += 1;
        }
    }
    let out = runner.finish();
    out.assert_succeeded();
    out.assert_completed();
    let echo = out.vm("echo");
    integration::assert_killed(echo, &["triple fault"]);
    assert_eq!(echo["restarts"], 1, "{echo:#}");
    // Each run echoed 5 datagrams through the NIC's zero-copy rings: the
    // second only because the NIC was given its new buffers.
    assert!(answered > 5, "{answered} echoes over both runs");
    assert!(
        answered <= 10,
        "{answered} echoes, but each run crashes after 5"
    );
    let uplink = nic(&out.report, "uplink");
    assert_eq!(num(&uplink["wire"], "rx_errors"), 0, "{uplink:#}");
    let port = nic_port(uplink, "echo.0");
    assert!(num(port, "tx_frames") >= u64::from(answered), "{uplink:#}");
    assert_eq!(num(port, "drop_spoofed"), 0, "{uplink:#}");
    assert_exited(out.vm("web"), 0);
    let lan = nic(&out.report, "lan");
    assert!(num(nic_port(lan, "web.0"), "tx_frames") > 0, "{lan:#}");
}

#[test]
fn an_owned_nic_stops_a_guest_whose_buffer_the_nic_could_overrun() {
    let port = free_port();
    // `ringbad mode=rxwin` posts a receive buffer that ends inside its
    // memory but too close to the end for the NIC's 2 KiB write window;
    // the owned NIC must refuse it by name, and the echo server behind the
    // other (shared) NIC goes on serving.
    let manifest = write_manifest(
        "nic-owned-bad",
        "bad.toml",
        &format!(
            "[run]\ncpus = 2\ntimeout = 600\n\
             [[vm]]\nname = \"bad\"\nimage = \"ringbad\"\nmemory = \"2M\"\nnet = 1\n\
             args = \"mode=rxwin\"\nexpect = \"killed:device 0 ring\"\n\
             [[vm]]\nname = \"echo\"\nimage = \"echo\"\nmemory = \"4M\"\nnet = 1\n\
             args = \"ip=10.0.2.15/24 port=7 quit=bye idle=100000000000\"\n\
             [[nic]]\nname = \"lan\"\nmode = \"owned\"\n\
             [[nic]]\nname = \"uplink\"\n\
             forward = [\"udp:{port}:7\"]\n\
             [[link]]\na = \"bad.0\"\nb = \"nic:lan\"\n\
             [[link]]\na = \"echo.0\"\nb = \"nic:uplink\"\n"
        ),
    );
    let runner = Background::start("nic-owned-bad", manifest, &[]);
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    for _ in 0..5 {
        probe(&sock, port, b"still here", &runner);
    }
    sock.send_to(b"bye", ("127.0.0.1", port)).unwrap();
    let out = runner.finish();
    out.assert_succeeded();
    integration::assert_killed(
        out.vm("bad"),
        &[
            "device 0 ring",
            "the NIC may write 2048 bytes",
            "beyond the guest's writable memory",
        ],
    );
    assert_exited(out.vm("echo"), 0);
}

/// The run's first hook in the JSON report.
fn first_hook(out: &integration::Outcome) -> serde_json::Value {
    out.report["hooks"]
        .as_array()
        .and_then(|h| h.first())
        .expect("the hook in the report")
        .clone()
}

/// The number under `key` in a hook's map `map`, if it has that entry.
fn map_entry(hook: &serde_json::Value, map: &str, key: &str) -> Option<u64> {
    hook["maps"][map]["values"]
        .as_array()?
        .iter()
        .find(|e| e["key"] == key)
        .map(|e| num(e, "number"))
}

#[test]
fn a_hook_on_the_nics_receive_queue_drops_one_port_before_any_guest_sees_it() {
    let (echo_port, denied_port) = (free_port(), free_port());
    let hook_source = integration::root().join("images/hooks/drop_port.bpf.c");
    let manifest = write_manifest(
        "nic-hook",
        "nic-hook.toml",
        &format!(
            "[run]\ncpus = 2\ntimeout = 600\n\
             [[vm]]\nname = \"echo\"\nimage = \"echo\"\nmemory = \"4M\"\nnet = 1\n\
             args = \"ip=10.0.2.15/24 port=7 quit=bye idle=100000000000\"\n\
             [[nic]]\nname = \"uplink\"\n\
             forward = [\"udp:{echo_port}:7\", \"udp:{denied_port}:9999\"]\n\
             [[link]]\na = \"echo.0\"\nb = \"nic:uplink\"\n\
             [[hook]]\nname = \"drop-9999\"\nkind = \"packet\"\nattach = \"nic:uplink:rx\"\n\
             source = \"{}\"\n",
            hook_source.display()
        ),
    );
    let runner = Background::start("nic-hook", manifest, &[]);
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let probes = probe(&sock, echo_port, b"probe", &runner);
    // Datagrams to the denied port go through slirp to the NIC, where the
    // hook drops them; the echo port's come back, every one.
    const DENIED: u64 = 7;
    for i in 0..DENIED {
        sock.send_to(format!("denied {i}").as_bytes(), ("127.0.0.1", denied_port))
            .unwrap();
    }
    for i in 0..DATAGRAMS {
        let msg = format!("datagram {i}");
        sock.send_to(msg.as_bytes(), ("127.0.0.1", echo_port))
            .unwrap();
        assert_eq!(next_echo(&sock, b"probe"), msg.as_bytes(), "datagram {i}");
    }
    sock.send_to(b"bye", ("127.0.0.1", echo_port)).unwrap();
    let out = runner.finish();
    out.assert_succeeded();
    out.assert_completed();
    assert_exited(out.vm("echo"), 0);
    let hook = first_hook(&out);
    assert_eq!(hook["attach"], "nic:uplink:rx");
    assert_eq!(num(&hook["verdicts"], "drop"), DENIED, "{hook:#}");
    let denied = map_entry(&hook, "ports", "0f27");
    assert_eq!(denied, Some(DENIED), "{hook:#}");
    let uplink = nic(&out.report, "uplink");
    assert_eq!(num(&uplink["wire"], "drop_hook"), DENIED, "{uplink:#}");
    // Every frame the NIC received was judged once: passed or dropped.
    assert_eq!(
        num(&hook, "runs"),
        num(&uplink["wire"], "rx_frames") - num(&uplink["wire"], "drop_runt"),
        "{hook:#} {uplink:#}"
    );
    // The echo port's datagrams and `bye` were echoed; probes sent while
    // the server booted may or may not have been.
    let echoed = out.metric("echo", "echoed");
    assert!(echoed > DATAGRAMS as u64, "echoed {echoed}");
    assert!(echoed <= (DATAGRAMS + probes + 1) as u64, "echoed {echoed}");
}

#[test]
fn a_hook_on_the_nics_receive_queue_answers_echo_requests_itself() {
    let (reflect_port, echo_port) = (free_port(), free_port());
    let hook_source = integration::root().join("images/hooks/reflect_udp.bpf.c");
    // The hook answers UDP port 7 itself (XDP_TX back onto the wire); the
    // echo server listens on port 8 only.
    let manifest = write_manifest(
        "nic-reflect",
        "nic-reflect.toml",
        &format!(
            "[run]\ncpus = 2\ntimeout = 600\n\
             [[vm]]\nname = \"echo\"\nimage = \"echo\"\nmemory = \"4M\"\nnet = 1\n\
             args = \"ip=10.0.2.15/24 port=8 quit=bye idle=100000000000\"\n\
             [[nic]]\nname = \"uplink\"\n\
             forward = [\"udp:{reflect_port}:7\", \"udp:{echo_port}:8\"]\n\
             [[link]]\na = \"echo.0\"\nb = \"nic:uplink\"\n\
             [[hook]]\nname = \"reflect\"\nkind = \"packet\"\nattach = \"nic:uplink:rx\"\n\
             source = \"{}\"\n",
            hook_source.display()
        ),
    );
    let runner = Background::start("nic-reflect", manifest, &[]);
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    // Up once the server answers on its port.
    let probes = probe(&sock, echo_port, b"probe", &runner);
    // A real socket's datagrams to port 7 come back from the hook, through
    // the e1000's transmit ring and slirp, every one and in order.
    for i in 0..DATAGRAMS {
        let msg = format!("reflected {i} {}", "z".repeat(i * 60));
        sock.send_to(msg.as_bytes(), ("127.0.0.1", reflect_port))
            .unwrap();
        assert_eq!(next_echo(&sock, b"probe"), msg.as_bytes(), "datagram {i}");
    }
    sock.send_to(b"bye", ("127.0.0.1", echo_port)).unwrap();
    let out = runner.finish();
    out.assert_succeeded();
    out.assert_completed();
    assert_exited(out.vm("echo"), 0);
    let hook = first_hook(&out);
    let v = &hook["verdicts"];
    assert_eq!(num(v, "tx"), DATAGRAMS as u64, "{hook:#}");
    assert_eq!(num(v, "sent"), DATAGRAMS as u64, "{hook:#}");
    assert_eq!(num(v, "unsent"), 0, "{hook:#}");
    assert_eq!(
        map_entry(&hook, "reflected", "00000000"),
        Some(DATAGRAMS as u64),
        "{hook:#}"
    );
    // The server saw none of them: it echoed only probes and `bye`.
    let echoed = out.metric("echo", "echoed");
    assert!(
        echoed >= 1 && echoed <= (probes + 1) as u64,
        "echoed {echoed}"
    );
    let uplink = nic(&out.report, "uplink");
    let wire = &uplink["wire"];
    // Sent back counts as not passed, and goes out onto the wire.
    assert_eq!(num(wire, "drop_hook"), DATAGRAMS as u64, "{uplink:#}");
    assert!(
        num(wire, "tx_frames") >= DATAGRAMS as u64 + echoed,
        "{uplink:#}"
    );
}

#[test]
fn a_hook_on_the_nics_receive_queue_steers_a_port_to_one_guest() {
    let port = free_port();
    let hook_source = integration::root().join("images/hooks/steer_port.bpf.c");
    // Two echo servers behind one NIC, both answering for 10.0.2.15:7;
    // the hook sends every datagram to port 7 to the second one's port
    // (port 1 of the run), whatever MAC slirp addressed it to. The first
    // gets none and ends on its idle timeout.
    let manifest = write_manifest(
        "nic-steer",
        "nic-steer.toml",
        &format!(
            "[run]\ncpus = 2\ntimeout = 600\n\
             [[vm]]\nname = \"first\"\nimage = \"echo\"\nmemory = \"4M\"\nnet = 1\n\
             args = \"ip=10.0.2.15/24 port=7 quit=bye idle=400000000\"\nexpect = \"exit:2\"\n\
             [[vm]]\nname = \"second\"\nimage = \"echo\"\nmemory = \"4M\"\nnet = 1\n\
             args = \"ip=10.0.2.15/24 port=7 quit=bye idle=100000000000\"\n\
             [[nic]]\nname = \"uplink\"\nforward = [\"udp:{port}:7\"]\n\
             [[link]]\na = \"first.0\"\nb = \"nic:uplink\"\n\
             [[link]]\na = \"second.0\"\nb = \"nic:uplink\"\n\
             [[hook]]\nname = \"steer\"\nkind = \"packet\"\nattach = \"nic:uplink:rx\"\n\
             source = \"{}\"\n",
            hook_source.display()
        ),
    );
    let runner = Background::start("nic-steer", manifest, &[]);
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let probes = probe(&sock, port, b"probe", &runner);
    for i in 0..DATAGRAMS {
        let msg = format!("steered {i}");
        sock.send_to(msg.as_bytes(), ("127.0.0.1", port)).unwrap();
        assert_eq!(next_echo(&sock, b"probe"), msg.as_bytes(), "datagram {i}");
    }
    sock.send_to(b"bye", ("127.0.0.1", port)).unwrap();
    let out = runner.finish();
    out.assert_succeeded();
    out.assert_completed();
    assert_exited(out.vm("first"), 2);
    assert_exited(out.vm("second"), 0);
    // Every datagram to port 7 went to the second server, none to the
    // first: the second echoed them all (and the probes it got, and bye).
    assert_eq!(out.metric("first", "echoed"), 0);
    let echoed = out.metric("second", "echoed");
    assert!(echoed > DATAGRAMS as u64, "echoed {echoed}");
    assert!(echoed <= (DATAGRAMS + probes + 1) as u64, "echoed {echoed}");
    let hook = first_hook(&out);
    let v = &hook["verdicts"];
    let steered = map_entry(&hook, "steered", "00000000").unwrap_or(0);
    // Every steered frame was delivered or counted: probes that came
    // while the second server's driver was not up yet found no buffer.
    let (sent, unsent) = (num(v, "sent"), num(v, "unsent"));
    assert_eq!(num(v, "redirect"), steered, "{hook:#}");
    assert_eq!(sent + unsent, steered, "{hook:#}");
    assert!(sent > DATAGRAMS as u64, "{hook:#}");
    assert!(unsent < probes as u64, "{hook:#}");
    let uplink = nic(&out.report, "uplink");
    // Those are the port's drops, not the hook's: every steered frame went
    // to an attached port.
    assert_eq!(num(&uplink["wire"], "drop_hook"), 0, "{uplink:#}");
    let second = nic_port(uplink, "second.0");
    // Counted as the second port's: received, or found no buffer.
    assert!(num(second, "rx_frames") >= sent, "{uplink:#}");
    assert!(num(second, "drop_no_buffer") >= unsent, "{uplink:#}");
}

#[test]
fn a_hook_on_the_nics_transmit_queue_answers_a_guest_before_the_wire() {
    let hook_source = integration::root().join("images/hooks/reflect_udp.bpf.c");
    // pktgen resolves the gateway (slirp answers its ARP), then sends
    // datagrams to 10.0.2.2:7; the transmit hook sends each one back to it
    // (XDP_TX) with its addresses swapped before it reaches the wire.
    let manifest = write_manifest(
        "nic-tx-reflect",
        "nic-tx-reflect.toml",
        &format!(
            "[run]\ncpus = 2\ntimeout = 600\n\
             [[vm]]\nname = \"client\"\nimage = \"pktgen\"\nmemory = \"4M\"\nnet = 1\n\
             args = \"mode=echo count=100 flows=2 size=128 src_ip=10.0.2.15 dst_ip=10.0.2.2 dport=7\"\n\
             [[nic]]\nname = \"uplink\"\n\
             [[link]]\na = \"client.0\"\nb = \"nic:uplink\"\n\
             [[hook]]\nname = \"reflect\"\nkind = \"packet\"\nattach = \"nic:uplink:tx\"\n\
             source = \"{}\"\n",
            hook_source.display()
        ),
    );
    let out = run("nic-tx-reflect", &manifest, &[]);
    out.assert_succeeded();
    out.assert_completed();
    assert_exited(out.vm("client"), 0);
    let sent = out.metric("client", "sent");
    assert_eq!(sent, 100);
    assert_eq!(out.metric("client", "echo_matched"), sent);
    let hook = first_hook(&out);
    let v = &hook["verdicts"];
    assert_eq!(num(v, "tx"), sent, "{hook:#}");
    assert_eq!(num(v, "sent"), sent, "{hook:#}");
    assert_eq!(num(v, "unsent"), 0, "{hook:#}");
    let uplink = nic(&out.report, "uplink");
    let port = nic_port(uplink, "client.0");
    // The datagrams never reached the wire: its ARP and end frame did.
    assert_eq!(num(port, "drop_hook"), sent, "{uplink:#}");
    assert!(num(port, "rx_frames") >= sent, "{uplink:#}");
    assert!(num(port, "tx_frames") < sent, "{uplink:#}");
}
